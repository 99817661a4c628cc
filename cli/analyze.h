/* What attn analyze's files share: the dates task's alignment (analyze_dates.c),
 * the numbers as text and JSON, and the faithfulness checks against the model
 * the records came from (faithfulness.c). */
#ifndef ATTN_CLI_ANALYZE_H
#define ATTN_CLI_ANALYZE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "attn/attn.h"

/* ---- the dates task's alignment ---- */

/* Counts by field: [ATTN_DATE_NONE] holds every field. */
enum { ANALYZE_FIELDS = ATTN_DATE_YEAR + 1 };
extern const char *const analyze_field_names[ANALYZE_FIELDS];

/* Whether the record's output is "YYYY-MM-DD" (and its EOS). */
bool analyze_iso_output(const attn_record *r);
/* The fields of the record's source characters (keys), or false if its keys are
 * not one date of the task, one character each. text: (n_keys + 1), fields:
 * (n_keys). */
bool analyze_source_fields(const attn_record *r, char *text, int *fields);
/* Scores every digit of the output: the key with the most weight, summed over
 * the heads of w: (heads, rows, cols) (any sign: an erasure's importance may be
 * negative), against the field the digit reads, into digits and aligned:
 * (ANALYZE_FIELDS). Row i is output character i. */
void analyze_add_alignment(int64_t *digits, int64_t *aligned, const float *w, int heads, int rows,
                           int cols, const int *fields);
/* The share of field f's digits aligned, of those counted; NaN without any. */
double analyze_alignment_of(const int64_t *aligned, const int64_t *digits, attn_date_field f);
/* "  what: 96.9% of 32 digits (year 100.0%, month 100.0%, day 87.5%)". */
void analyze_print_alignment(FILE *out, const char *what, const int64_t *aligned,
                             const int64_t *digits);
/* {"all": {"digits": n, "aligned": n, "score": x}, "day": ...}. */
void analyze_print_alignment_json(FILE *out, const int64_t *aligned, const int64_t *digits);

/* ---- numbers ---- */

/* part / whole, NaN when there is no whole. */
double analyze_ratio(double part, double whole);
/* v, or null for NaN. */
void analyze_print_json_number(FILE *out, double v);
/* v with `decimals` decimals in `width` columns, or "-" for NaN. */
void analyze_print_text_number(FILE *out, double v, int width, int decimals);

/* ---- faithfulness (faithfulness.c) ----
 * With --model: the output change when a site's weights are permuted or made
 * uniform, leave-one-out erasure, and Kendall's tau between erasure and each
 * explanation the records give, per record and pooled. */
typedef struct faithfulness faithfulness;

/* Loads the model at path (a sequence model or a language model); NULL after a
 * message on failure. permutations: the seeded permutations per site. */
faithfulness *faithfulness_open(const char *path, int permutations, bool json);
/* Runs the checks on record r (from file path), keeping its report: refuses,
 * with a message and EXIT_RUNTIME, a record the model did not write. fields:
 * the dates source's fields when the record is a scored date, else NULL. */
int faithfulness_add(faithfulness *f, const attn_record *r, const char *path, const int *fields);
/* The reports of the records, then the pooled one: text, or the value of the
 * JSON object's "faithfulness". */
void faithfulness_print(const faithfulness *f, FILE *out);
void faithfulness_free(faithfulness *f);

#endif
