/* attn show --html: the interactive attention page (html_page.h).
 *
 * The page is the document up to the record's <script type="application/json">
 * element, the record as JSON, and the script that draws it. The JSON follows
 * the record schema of attn/capture.h, with two differences: weights are
 * rounded to 6 decimals (finer than the page shows, and shorter than the
 * file's 9 significant digits), and each map names the token
 * lists of its rows and columns ("row_tokens", "col_tokens": "queries" or
 * "keys"), so the script need not know which lists label which maps. Every "<"
 * in the JSON is written as \u003c, so no token can end the element early
 * ("</script>") or open a comment ("<!--").
 *
 * The document, its style and its script are the files in cli/page, which the
 * build embeds (page_data.h); their content security policy lets the page load
 * nothing at all from anywhere. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/io.h"
#include "cli.h"
#include "html_page.h"
#include "page_data.h"

/* Which of r's token lists labels m's rows (rows true) or columns, as
 * "queries" or "keys"; NULL after saying so (for the page at path) if the list
 * does not have a token for each of them. */
static const char *token_list(const attn_record *r, const attn_attention_map *m, bool rows,
                              const char *path)
{
    char *const *tokens = rows ? attn_map_row_tokens(r, m) : attn_map_col_tokens(r, m);
    const char *what = rows ? "rows" : "columns";
    if (tokens == NULL) {
        cli_message(stderr, "attn: %s: map '%s' has %d %s but the record has no tokens for them\n",
                    path, m->name, rows ? m->rows : m->cols, what);
        return NULL;
    }
    bool queries = tokens == r->queries;
    int have = queries ? r->n_queries : r->n_keys, want = rows ? m->rows : m->cols;
    if (have != want) {
        cli_message(stderr, "attn: %s: map '%s' has %d %s but the record has %d %s tokens\n", path,
                    m->name, want, what, have, queries ? "query" : "key");
        return NULL;
    }
    return queries ? "queries" : "keys";
}

/* Whether every weight of m is finite and in [0, 1]; says which is not (for
 * the page at path). */
static bool check_weights(const attn_attention_map *m, const char *path)
{
    const size_t per_head = (size_t)m->rows * (size_t)m->cols;
    for (size_t k = 0; k < (size_t)m->heads * per_head; k++) {
        const float w = m->weights[k];
        if (isfinite(w) && w >= 0.0f && w <= 1.0f) continue;
        cli_message(stderr,
                    "attn: %s: map '%s' head %d row %d column %d: weight %g is not in [0, 1]\n",
                    path, m->name, (int)(k / per_head), (int)(k % per_head / (size_t)m->cols),
                    (int)(k % (size_t)m->cols), (double)w);
        return false;
    }
    return true;
}

static void write_tokens(FILE *out, char *const *tokens, int n)
{
    fputc('[', out);
    for (int i = 0; i < n; i++) {
        if (i > 0) fputc(',', out);
        cli_json_string(out, tokens[i]);
    }
    fputc(']', out);
}

/* w with 6 decimals, without trailing zeros: "0.25", "1", "0". */
static void write_weight(FILE *out, float w)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%.6f", (double)w);
    while (n > 1 && text[n - 1] == '0') n--;
    if (text[n - 1] == '.') n--;
    fwrite(text, 1, (size_t)n, out);
}

static void write_map(FILE *out, const attn_attention_map *m, const char *row_tokens,
                      const char *col_tokens)
{
    fputs("{\"name\":", out);
    cli_json_string(out, m->name);
    fprintf(out,
            ",\"layer\":%d,\"kind\":\"%s\",\"hard\":%s,\"row_tokens\":\"%s\","
            "\"col_tokens\":\"%s\",\"heads\":%d,\"rows\":%d,\"cols\":%d,\"weights\":[",
            m->layer, attn_map_kind_name(m->kind), m->hard ? "true" : "false", row_tokens,
            col_tokens, m->heads, m->rows, m->cols);
    const float *w = m->weights;
    for (int h = 0; h < m->heads; h++) {
        fputs(h > 0 ? ",[" : "[", out);
        for (int i = 0; i < m->rows; i++) {
            fputs(i > 0 ? ",[" : "[", out);
            for (int j = 0; j < m->cols; j++) {
                if (j > 0) fputc(',', out);
                write_weight(out, *w++);
            }
            fputc(']', out);
        }
        fputc(']', out);
    }
    fputs("]}", out);
}

/* Writes r as JSON to out; false after saying why if r cannot be shown on the
 * page at path. */
static bool write_record(FILE *out, const attn_record *r, const char *path)
{
    fputs("{\"format\":\"attn-attention\",\"version\":1,\"model\":", out);
    cli_json_string(out, r->model);
    fputs(",\"task\":", out);
    cli_json_string(out, r->task);
    fputs(",\"queries\":", out);
    write_tokens(out, r->queries, r->n_queries);
    fputs(",\"keys\":", out);
    write_tokens(out, r->keys, r->n_keys);
    fputs(",\"maps\":[", out);
    for (int k = 0; k < r->n_maps; k++) {
        const attn_attention_map *m = &r->maps[k];
        const char *rows = token_list(r, m, true, path), *cols = token_list(r, m, false, path);
        if (rows == NULL || cols == NULL || !check_weights(m, path)) return false;
        if (k > 0) fputc(',', out);
        write_map(out, m, rows, cols);
    }
    fputs("]}", out);
    return true;
}

/* The JSON as the content of a <script> element: each "<" (only ever inside a
 * string) becomes the escape \u003c, which JSON.parse reads back as "<". A
 * malloc'd copy of *size bytes (not terminated), or NULL without memory. */
static char *script_text(const char *json, size_t *size)
{
    static const char escape[] = "\\u003c";
    const char *end = json + *size;
    size_t lt = 0;
    for (const char *p = json; (p = memchr(p, '<', (size_t)(end - p))) != NULL; p++) lt++;
    char *text = malloc(*size + lt * (sizeof escape - 2) + 1);
    if (text == NULL) return NULL;
    char *out = text;
    for (const char *p = json; p < end; p++) {
        if (*p != '<') {
            *out++ = *p;
        } else {
            memcpy(out, escape, sizeof escape - 1);
            out += sizeof escape - 1;
        }
    }
    *size = (size_t)(out - text);
    return text;
}

/* Writes the page around the record's JSON, atomically. */
static int write_page(const char *path, const char *json, size_t size)
{
    char *text = script_text(json, &size);
    if (text == NULL) {
        cli_message(stderr, "attn: no memory for the page '%s'\n", path);
        return EXIT_RUNTIME;
    }
    const attn_file_part parts[] = {
        {cli_page_head, cli_page_head_size}, {text, size}, {cli_page_tail, cli_page_tail_size}};
    attn_status s = attn_write_file_atomically(path, parts, 3);
    free(text);
    if (s == ATTN_OK) return EXIT_OK;
    cli_message(stderr, "attn: %s\n", attn_last_error());
    return EXIT_RUNTIME;
}

int cli_show_html(const attn_record *r, const char *path)
{
    char *json = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&json, &size);
    if (mem == NULL) {
        cli_message(stderr, "attn: no memory for the page '%s'\n", path);
        return EXIT_RUNTIME;
    }
    bool shown = write_record(mem, r, path);
    bool written = !ferror(mem);
    if (fclose(mem) != 0) written = false;
    int status = EXIT_RUNTIME;
    if (!written) cli_message(stderr, "attn: no memory for the page '%s'\n", path);
    else if (shown) status = write_page(path, json, size);
    free(json);
    return status;
}
