/* The fields of a dates source (attn/data.h: attn_dates_fields): the source is read
 * back by its structure alone, so the reader is a check on the generator in dates.c
 * as well as a tool for scoring where a model looks. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "attn/data.h"
#include "core/error.h"

/* The formats write at most six words ("the 24th of November 2026"); room for more
 * lets a longer text fail on what is wrong with it. */
enum { MAX_WORDS = 16, REASON_CAP = 128 };

static const char *const month_names[12] = {
    "january", "february", "march",     "april",   "may",      "june",
    "july",    "august",   "september", "october", "november", "december",
};
static const char *const weekday_names[7] = {
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
};
static const char *const filler_words[] = {"the", "of"};
static const char *const ordinal_suffixes[] = {"st", "nd", "rd", "th"};

typedef struct word {
    int start, len;
    bool digits;  /* a run of digits, else of letters */
    bool ordinal; /* digits an ordinal suffix follows */
    int value;    /* digits: their number; a month name: 1-12 */
    attn_date_field field;
} word;

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static char ascii_lower(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch; }
static bool is_letter(char ch) { return ascii_lower(ch) >= 'a' && ascii_lower(ch) <= 'z'; }
/* Spaces and separators, which no field writes. */
static bool is_gap(char ch)
{
    return ch == ' ' || ch == ',' || ch == '.' || ch == '/' || ch == '-';
}

/* Whether the word is `name` (lower case) in any case, or its first three letters. */
static bool word_names(const char *src, const word *w, const char *name)
{
    if (w->len != 3 && (size_t)w->len != strlen(name)) return false;
    for (int i = 0; i < w->len; i++)
        if (ascii_lower(src[w->start + i]) != name[i]) return false;
    return true;
}

static bool word_in(const char *src, const word *w, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (word_names(src, w, names[i])) return true;
    return false;
}

/* The month a word names, 1-12, or 0. */
static int month_of(const char *src, const word *w)
{
    for (int m = 0; m < 12; m++)
        if (word_names(src, w, month_names[m])) return m + 1;
    return 0;
}

static int number_of(const char *src, int start, int len)
{
    int value = 0;
    for (int i = 0; i < len; i++) value = value * 10 + (src[start + i] - '0');
    return value;
}

static attn_status not_a_date(const char *src, const char *fmt, ...) ATTN_PRINTF(2, 3);

static attn_status not_a_date(const char *src, const char *fmt, ...)
{
    char reason[REASON_CAP];
    va_list args;
    va_start(args, fmt);
    vsnprintf(reason, sizeof reason, fmt, args);
    va_end(args);
    return attn_error(ATTN_ERR_INVALID_ARGUMENT, "\"%s\" is not a date of the dates task: %s", src,
                      reason);
}

/* Splits src into runs of digits and of letters; *count the words. */
static attn_status split_words(const char *src, int len, word *words, int *count)
{
    *count = 0;
    for (int i = 0; i < len;) {
        char ch = src[i];
        if (is_gap(ch)) {
            i++;
            continue;
        }
        if (!is_digit(ch) && !is_letter(ch))
            return not_a_date(src, "no format writes the byte 0x%02x at %d", (unsigned char)ch, i);
        if (*count == MAX_WORDS) return not_a_date(src, "more than %d words", MAX_WORDS);
        word *w = &words[(*count)++];
        *w = (word){.start = i, .digits = is_digit(ch)};
        while (i < len && (w->digits ? is_digit(src[i]) : is_letter(src[i]))) i++;
        w->len = i - w->start;
    }
    return ATTN_OK;
}

/* The named months, four-digit years, eight-digit dates and shorter numbers. */
typedef struct census {
    word *month, *year, *ymd, *numbers[2];
    int months, years, ymds, n_numbers;
} census;

static attn_status classify(const char *src, word *words, int count, census *c)
{
    *c = (census){0};
    for (int k = 0; k < count; k++) {
        word *w = &words[k];
        if (!w->digits) {
            word *before = k > 0 ? &words[k - 1] : NULL;
            if ((w->value = month_of(src, w)) > 0) {
                w->field = ATTN_DATE_MONTH;
                c->month = w;
                c->months++;
            } else if (before && before->digits && before->start + before->len == w->start &&
                       word_in(src, w, ordinal_suffixes, 4)) {
                w->field = ATTN_DATE_DAY;
                before->ordinal = true;
            } else if (!word_in(src, w, weekday_names, 7) && !word_in(src, w, filler_words, 2)) {
                return not_a_date(src, "the word '%.*s' is no month, weekday or ordinal", w->len,
                                  src + w->start);
            }
            continue;
        }
        if (w->len > 8) return not_a_date(src, "a number of %d digits", w->len);
        w->value = number_of(src, w->start, w->len);
        if (w->len == 8) {
            c->ymd = w;
            c->ymds++;
        } else if (w->len == 4) {
            w->field = ATTN_DATE_YEAR;
            c->year = w;
            c->years++;
        } else if (w->len <= 2) {
            if (c->n_numbers == 2)
                return not_a_date(src, "more than two numbers of one or two digits");
            c->numbers[c->n_numbers++] = w;
        } else {
            return not_a_date(src, "a number of %d digits", w->len);
        }
    }
    return ATTN_OK;
}

/* Gives the short numbers their fields; *day and *month their values. */
static attn_status assign(const char *src, census *c, int *day, int *month)
{
    word **num = c->numbers;
    if (c->months > 1) return not_a_date(src, "%d month names", c->months);
    if (c->years > 1) return not_a_date(src, "%d four-digit years", c->years);
    if (c->ymds > 1) return not_a_date(src, "%d eight-digit dates", c->ymds);
    if (c->ymd) {
        if (c->months || c->years || c->n_numbers)
            return not_a_date(src, "an eight-digit date with more fields");
        *month = number_of(src, c->ymd->start + 4, 2);
        *day = number_of(src, c->ymd->start + 6, 2);
        return ATTN_OK;
    }
    if (c->months == 1) {
        if (c->n_numbers != 2 - c->years)
            return not_a_date(src,
                              c->years ? "a named month and a four-digit year take one shorter "
                                         "number, the day, not %d"
                                       : "a named month without a four-digit year takes two "
                                         "shorter numbers, the day and the year, not %d",
                              c->n_numbers);
        if (c->years == 0 && num[1]->len != 2)
            return not_a_date(src, "the year %d has neither two digits nor four", num[1]->value);
        num[0]->field = ATTN_DATE_DAY;
        if (c->years == 0) num[1]->field = ATTN_DATE_YEAR;
        *day = num[0]->value;
        *month = c->month->value;
    } else {
        if (c->years != 1 || c->n_numbers != 2)
            return not_a_date(src,
                              "without a month name it takes a four-digit year and two "
                              "shorter numbers, not %d and %d",
                              c->years, c->n_numbers);
        bool year_first = c->year->start < num[0]->start;
        if (!year_first && c->year->start < num[1]->start)
            return not_a_date(src, "the year comes between the day and the month");
        word *d = year_first ? num[1] : num[0], *m = year_first ? num[0] : num[1];
        d->field = ATTN_DATE_DAY;
        m->field = ATTN_DATE_MONTH;
        *day = d->value;
        *month = m->value;
    }
    for (int k = 0; k < c->n_numbers; k++)
        if (num[k]->ordinal && num[k]->field != ATTN_DATE_DAY)
            return not_a_date(src, "an ordinal that is not the day");
    return ATTN_OK;
}

attn_status attn_dates_fields(const char *src, int *field_of_char, int n)
{
    attn_status status;
    if ((status = attn_check_not_null(src, "src")) != ATTN_OK) return status;
    if ((status = attn_check_not_null(field_of_char, "field_of_char")) != ATTN_OK) return status;
    size_t length = strlen(src);
    if (n < 0 || (size_t)n < length)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "field_of_char holds %d entries, fewer than the %zu characters of "
                          "\"%s\"",
                          n, length, src);
    int len = (int)length;
    word words[MAX_WORDS];
    int count = 0;
    census c;
    int day = 0, month = 0;
    if ((status = split_words(src, len, words, &count)) != ATTN_OK ||
        (status = classify(src, words, count, &c)) != ATTN_OK ||
        (status = assign(src, &c, &day, &month)) != ATTN_OK)
        return status;
    if (day < 1 || day > 31) return not_a_date(src, "day %d is not in 1-31", day);
    if (month < 1 || month > 12) return not_a_date(src, "month %d is not in 1-12", month);
    for (int i = 0; i < len; i++) field_of_char[i] = ATTN_DATE_NONE;
    for (int k = 0; k < count; k++)
        for (int i = 0; i < words[k].len; i++)
            field_of_char[words[k].start + i] = (int)words[k].field;
    if (c.ymd) {
        static const attn_date_field ymd_fields[8] = {
            ATTN_DATE_YEAR,  ATTN_DATE_YEAR,  ATTN_DATE_YEAR, ATTN_DATE_YEAR,
            ATTN_DATE_MONTH, ATTN_DATE_MONTH, ATTN_DATE_DAY,  ATTN_DATE_DAY,
        };
        for (int i = 0; i < 8; i++) field_of_char[c.ymd->start + i] = (int)ymd_fields[i];
    }
    return ATTN_OK;
}
