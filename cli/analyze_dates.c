/* attn analyze's dates alignment and its numbers (analyze.h). */
#include <math.h>
#include <string.h>

#include "analyze.h"

/* "YYYY-MM-DD": the output characters that are digits, and the field each reads. */
enum { ISO_LENGTH = 10 };
static const attn_date_field iso_fields[ISO_LENGTH] = {
    ATTN_DATE_YEAR,  ATTN_DATE_YEAR,  ATTN_DATE_YEAR, ATTN_DATE_YEAR, ATTN_DATE_NONE,
    ATTN_DATE_MONTH, ATTN_DATE_MONTH, ATTN_DATE_NONE, ATTN_DATE_DAY,  ATTN_DATE_DAY,
};
const char *const analyze_field_names[ANALYZE_FIELDS] = {"all", "day", "month", "year"};

bool analyze_iso_output(const attn_record *r)
{
    if (r->n_queries < ISO_LENGTH || r->n_queries > ISO_LENGTH + 1) return false;
    for (int i = 0; i < ISO_LENGTH; i++) {
        const char *q = r->queries[i];
        bool digit = q[0] >= '0' && q[0] <= '9' && q[1] == '\0';
        bool dash = q[0] == '-' && q[1] == '\0';
        if (iso_fields[i] == ATTN_DATE_NONE ? !dash : !digit) return false;
    }
    return true;
}

bool analyze_source_fields(const attn_record *r, char *text, int *fields)
{
    for (int j = 0; j < r->n_keys; j++) {
        if (strlen(r->keys[j]) != 1) return false;
        text[j] = r->keys[j][0];
    }
    text[r->n_keys] = '\0';
    return attn_dates_fields(text, fields, r->n_keys) == ATTN_OK;
}

void analyze_add_alignment(int64_t *digits, int64_t *aligned, const float *w, int heads, int rows,
                           int cols, const int *fields)
{
    for (int i = 0; i < ISO_LENGTH; i++) {
        attn_date_field want = iso_fields[i];
        if (want == ATTN_DATE_NONE) continue;
        int best = 0;
        double best_weight = -INFINITY;
        for (int j = 0; j < cols; j++) {
            double sum = 0.0;
            for (int h = 0; h < heads; h++) sum += w[((size_t)h * rows + i) * cols + j];
            if (sum > best_weight) {
                best_weight = sum;
                best = j;
            }
        }
        bool hit = fields[best] == (int)want;
        digits[want]++;
        digits[ATTN_DATE_NONE]++;
        aligned[want] += hit;
        aligned[ATTN_DATE_NONE] += hit;
    }
}

double analyze_ratio(double part, double whole) { return whole > 0 ? part / whole : NAN; }

double analyze_alignment_of(const int64_t *aligned, const int64_t *digits, attn_date_field f)
{
    return analyze_ratio((double)aligned[f], (double)digits[f]);
}

void analyze_print_json_number(FILE *out, double v)
{
    if (isnan(v)) fprintf(out, "null");
    else fprintf(out, "%.6g", v);
}

void analyze_print_text_number(FILE *out, double v, int width, int decimals)
{
    if (isnan(v)) fprintf(out, "%*s", width, "-");
    else fprintf(out, "%*.*f", width, decimals, v);
}

void analyze_print_alignment(FILE *out, const char *what, const int64_t *aligned,
                             const int64_t *digits)
{
    fprintf(out, "  %s: ", what);
    analyze_print_text_number(out, 100.0 * analyze_alignment_of(aligned, digits, ATTN_DATE_NONE), 0,
                              1);
    fprintf(out, "%% of %lld digits (year ", (long long)digits[ATTN_DATE_NONE]);
    analyze_print_text_number(out, 100.0 * analyze_alignment_of(aligned, digits, ATTN_DATE_YEAR), 0,
                              1);
    fprintf(out, "%%, month ");
    analyze_print_text_number(out, 100.0 * analyze_alignment_of(aligned, digits, ATTN_DATE_MONTH),
                              0, 1);
    fprintf(out, "%%, day ");
    analyze_print_text_number(out, 100.0 * analyze_alignment_of(aligned, digits, ATTN_DATE_DAY), 0,
                              1);
    fprintf(out, "%%)\n");
}

void analyze_print_alignment_json(FILE *out, const int64_t *aligned, const int64_t *digits)
{
    for (int f = 0; f < ANALYZE_FIELDS; f++) {
        fprintf(out, "%s\"%s\": {\"digits\": %lld, \"aligned\": %lld, \"score\": ", f ? ", " : "{",
                analyze_field_names[f], (long long)digits[f], (long long)aligned[f]);
        analyze_print_json_number(out, analyze_alignment_of(aligned, digits, (attn_date_field)f));
        fprintf(out, "}");
    }
    fprintf(out, "}");
}
