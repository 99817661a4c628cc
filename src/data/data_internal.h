/* Internal: the generators behind the built-in tasks of attn/data.h. */
#ifndef ATTN_SRC_DATA_DATA_INTERNAL_H
#define ATTN_SRC_DATA_DATA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/core.h"
#include "attn/data.h"

/* ---- characters in messages ---------------------------------------------------------- */
/* The character as it reads in a message: 'x' (U+0078), or U+0009 alone for a
 * control character; at: its n bytes of UTF-8. */
void attn_describe_char(char *buf, size_t size, const char *at, int n, uint32_t cp);

/* ---- dates: human-written dates -> ISO "YYYY-MM-DD" --------------------------------------
 * Days are counted from 1900-01-01 (day 0, a Monday) to 2099-12-31 (day 73048). A
 * two-digit year is written only for 1950-2049, the years the pivot maps back:
 * 50-99 -> 19xx, 00-49 -> 20xx. */
enum {
    DATES_DAY_COUNT = 73049,
    DATES_FORMAT_COUNT = 18,
    DATES_MAX_SRC = 32, /* "Wednesday, September 30, 2026" with its three spaces doubled */
    DATES_MAX_TGT = 10,
    DATES_CHARSET_CAP = 512,
};

typedef enum date_case {
    DATE_CASE_AS_WRITTEN, /* as the format spells it: "Nov 24, 2026", "24-NOV-26" */
    DATE_CASE_LOWER,
    DATE_CASE_UPPER,
    DATE_CASE_TITLE, /* a letter after a non-alphanumeric is upper, the others lower */
} date_case;

typedef enum date_spacing {
    DATE_SPACING_PLAIN,
    DATE_SPACING_DOUBLED, /* space k (from 0) is doubled when bit k of `doubling` is set */
    DATE_SPACING_SPACED,  /* one space on each side of every ',' '/' '.' '-' */
} date_spacing;

typedef struct date_style {
    int format; /* 0 .. DATES_FORMAT_COUNT - 1 */
    date_case letter_case;
    date_spacing spacing;
    uint32_t doubling;
} date_style;

/* Whether the format can write the day: false for a two-digit year outside 1950-2049. */
bool attn_dates_format_allows(int format, int32_t day);
/* The day in the style, into out (DATES_MAX_SRC + 1 bytes); returns its length. The
 * format must allow the day. */
int attn_dates_render(char *out, int32_t day, const date_style *style);
/* "YYYY-MM-DD" into out (DATES_MAX_TGT + 1 bytes). */
void attn_dates_iso(char *out, int32_t day);
/* A uniform day, then a format that allows it, a case and a spacing. */
void attn_dates_draw(attn_rng *rng, char *src, char *tgt);
/* Every character some format writes, as a UTF-8 string (out: DATES_CHARSET_CAP). */
void attn_dates_charset(char *out);

/* ---- digit strings ----------------------------------------------------------------------- */
enum { DIGITS_MAX_LEN = 20 };

/* 1 .. DIGITS_MAX_LEN uniform digits, the length uniform too. */
void attn_digits_draw(attn_rng *rng, char *src);
/* The target of a digit task (reverse, sort, copy) for src. */
void attn_digits_target(attn_task_kind kind, const char *src, char *tgt);

#endif
