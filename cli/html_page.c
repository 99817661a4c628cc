/* attn show --html: the interactive attention page (html_page.h).
 *
 * The page is the document up to the record's <script type="application/json">
 * element, the record as JSON, and the script that draws it. The JSON follows
 * the record schema of attn/capture.h, with these differences: a map's weights
 * are only those of its window of query rows ("first", "count"), as the base64
 * of their float32 bytes, little-endian (exact, and shorter than decimals); each
 * map has its thumbnails ("thumb_rows" x "thumb_cols" values a head, base64 of
 * a byte each, 255 for the map's "vmax") and says whether it is causal; each
 * map names the token lists of its rows and columns ("row_tokens",
 * "col_tokens": "queries" or "keys"), so the script need not know which lists
 * label which maps; and the record says how many weights a page may hold
 * ("weights_max") and whether the window was chosen. A recorded map's "vmax"
 * is the record's largest weight (the model view's one scale).
 * After the record's maps come those derived from them (page_maps.h), each
 * with "derived" ("gradient-weighted", "rollout", "relevance") and "layers".
 * A map with q and k has "head_dim", "score_scale", "q" (the window's rows,
 * base64 float32) and "k" with "k_keys" (write_qk); one whose q and k do not
 * fit has "qk_not_held", and a Bahdanau map "additive". The record says the
 * keys the neuron view shows ("neuron_top" of a query's largest past
 * "neuron_all"), and the output the gradients explain ("gradient_step").
 * Every "<" in the JSON is written as \u003c, so no token can end the element
 * early ("</script>") or open a comment ("<!--").
 *
 * The document, its style and its script are the files in cli/page, which the
 * build embeds (page_data.h); their content security policy lets the page load
 * nothing at all from anywhere. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/io.h"
#include "cli.h"
#include "heatmap.h"
#include "html_page.h"
#include "page_data.h"
#include "page_maps.h"

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

/* The largest weight of m (0 if none is above 0). */
static float largest_weight(const attn_attention_map *m)
{
    float top = 0.0f;
    for (size_t k = 0; k < (size_t)m->heads * (size_t)m->rows * (size_t)m->cols; k++)
        top = m->weights[k] > top ? m->weights[k] : top;
    return top;
}

/* Whether m is causal self-attention: square, every weight above the diagonal
 * 0, so that row t is what token t saw of the tokens before it (the page's step
 * slider). */
static bool is_causal(const attn_attention_map *m)
{
    if (m->kind != ATTN_MAP_SELF || m->rows != m->cols) return false;
    for (int h = 0; h < m->heads; h++)
        for (int i = 0; i < m->rows; i++) {
            const float *row = m->weights + ((size_t)h * m->rows + i) * (size_t)m->cols;
            for (int j = i + 1; j < m->cols; j++)
                if (row[j] != 0.0f) return false;
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

/* Base64 (RFC 4648, padded) written as bytes come. */
typedef struct base64_out {
    FILE *out;
    unsigned char held[3];
    int n_held;
} base64_out;

static void base64_flush(base64_out *b)
{
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (b->n_held == 0) return;
    for (int k = b->n_held; k < 3; k++) b->held[k] = 0;
    const unsigned long bits =
        (unsigned long)b->held[0] << 16 | (unsigned long)b->held[1] << 8 | b->held[2];
    for (int k = 0; k < 4; k++)
        fputc(k <= b->n_held ? digits[bits >> (18 - 6 * k) & 63] : '=', b->out);
    b->n_held = 0;
}

static void base64_byte(base64_out *b, unsigned char byte)
{
    b->held[b->n_held++] = byte;
    if (b->n_held == 3) base64_flush(b);
}

/* w's float32 bytes, little-endian whatever the machine's order, as the page
 * reads them (DataView.getFloat32 with littleEndian true). */
static void base64_float(base64_out *b, float w)
{
    uint32_t bits;
    memcpy(&bits, &w, sizeof bits);
    for (int k = 0; k < 4; k++) base64_byte(b, (unsigned char)(bits >> (8 * k)));
}

/* Every head's thumbnail, row by row, as base64 of a byte a value: its shade,
 * 255 for vmax (the record's largest weight, the top of the model view's one
 * colour scale), to the nearest 1/255: all a colour needs, in a quarter of the
 * bytes of a float. */
static void write_thumbnails(FILE *out, const attn_attention_map *m, int rows, int cols,
                             float vmax)
{
    base64_out b = {.out = out};
    const size_t plane = (size_t)m->rows * (size_t)m->cols;
    fputc('"', out);
    for (int h = 0; h < m->heads; h++)
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < cols; x++) {
                double w = heatmap_pixel_weight(m->weights + h * plane, m, x, cols, y, rows);
                base64_byte(&b, (unsigned char)lround(fmin(255.0, 255.0 * w / vmax)));
            }
    base64_flush(&b);
    fputc('"', out);
}

/* The window's rows of every head, as base64. */
static void write_window(FILE *out, const attn_attention_map *m, map_window w)
{
    base64_out b = {.out = out};
    const size_t plane = (size_t)m->rows * (size_t)m->cols;
    fputc('"', out);
    for (int h = 0; h < m->heads; h++) {
        const float *rows = m->weights + h * plane + (size_t)w.first * (size_t)m->cols;
        for (size_t k = 0; k < (size_t)w.count * (size_t)m->cols; k++) base64_float(&b, rows[k]);
    }
    base64_flush(&b);
    fputc('"', out);
}

static int at_most(int a, int b) { return a < b ? a : b; }

/* ---- q and k, for the neuron view ---- */

/* The dot products' scale (attn/capture.h): Luong's decoders score q . k
 * unscaled, the Transformers q . k / sqrt(head_dim). */
static double score_scale(const attn_record *r, const attn_attention_map *m)
{
    return strstr(r->model, "luong") != NULL ? 1.0 : 1.0 / sqrt((double)m->head_dim);
}

/* What the page holds of q and k: every key's k if they fit HTML_QK_MAX, else
 * for each head the keys that some held query row gives one of its `top`
 * largest weights (0: none, the rows are too many). */
static int qk_top_keys(const page_maps *p)
{
    size_t all = 0, queries = 0;
    for (int k = 0; k < p->n; k++) {
        const attn_attention_map *m = &p->maps[k].m;
        if (m->q == NULL || m->k == NULL) continue;
        const size_t per_head = (size_t)m->heads * (size_t)m->head_dim;
        all += per_head * ((size_t)p->maps[k].window.count + (size_t)m->cols);
        queries += per_head * (size_t)p->maps[k].window.count;
    }
    if (all <= HTML_QK_MAX) return INT_MAX;
    if (queries == 0) return 0;
    const size_t top = HTML_QK_MAX / queries - 1; /* each row's q, and k of its top keys */
    return top < HTML_NEURON_TOP ? (int)top : HTML_NEURON_TOP;
}

/* Marks in held[j] (cols) the keys that some of the rows [first, first + count)
 * of head h of m gives one of its `top` (at most HTML_NEURON_TOP) largest
 * weights, ties to the first key, as the page picks them. */
static void mark_top_keys(bool *held, const attn_attention_map *m, int h, map_window w, int top)
{
    memset(held, 0, (size_t)m->cols * sizeof *held);
    for (int i = w.first; i < w.first + w.count; i++) {
        const float *row = m->weights + ((size_t)h * m->rows + i) * (size_t)m->cols;
        int chosen[HTML_NEURON_TOP], n = 0; /* the largest so far, largest first */
        for (int j = 0; j < m->cols; j++) {
            if (n == top && !(row[j] > row[chosen[n - 1]])) continue;
            int at = n < top ? n++ : top - 1; /* a new place, or the smallest's */
            for (; at > 0 && row[j] > row[chosen[at - 1]]; at--) chosen[at] = chosen[at - 1];
            chosen[at] = j;
        }
        for (int k = 0; k < n; k++) held[chosen[k]] = true;
    }
}

/* ,"head_dim":D,"score_scale":s,"q":...,"k_keys":...,"k":... of a map with q
 * and k: q of the window's rows (heads, count, D), and k of every key (heads,
 * cols, D; "k_keys" null) or, when top < cols, of the keys mark_top_keys marks
 * for each head, listed in "k_keys" (a list a head), head by head. held:
 * (cols) scratch. */
static void write_qk(FILE *out, const attn_record *r, const page_map *p, int top, bool *held)
{
    const attn_attention_map *m = &p->m;
    const int D = m->head_dim;
    const bool some = top < m->cols;
    fprintf(out, ",\"head_dim\":%d,\"score_scale\":%.17g,\"q\":\"", D, score_scale(r, m));
    base64_out b = {.out = out};
    for (int h = 0; h < m->heads; h++) {
        const float *q = m->q + ((size_t)h * m->rows + p->window.first) * D;
        for (size_t k = 0; k < (size_t)p->window.count * D; k++) base64_float(&b, q[k]);
    }
    base64_flush(&b);
    fputs("\",\"k_keys\":", out);
    if (!some) fputs("null", out);
    for (int h = 0; h < m->heads && some; h++) {
        mark_top_keys(held, m, h, p->window, top);
        fputs(h == 0 ? "[[" : "],[", out);
        for (int j = 0, n = 0; j < m->cols; j++)
            if (held[j]) fprintf(out, n++ ? ",%d" : "%d", j);
    }
    fputs(some ? "]],\"k\":\"" : ",\"k\":\"", out);
    for (int h = 0; h < m->heads; h++) {
        if (some) mark_top_keys(held, m, h, p->window, top);
        for (int j = 0; j < m->cols; j++) {
            if (some && !held[j]) continue;
            const float *k = m->k + ((size_t)h * m->cols + j) * D;
            for (int d = 0; d < D; d++) base64_float(&b, k[d]);
        }
    }
    base64_flush(&b);
    fputc('"', out);
}

static void write_map(FILE *out, const attn_record *r, const page_map *p, const char *row_tokens,
                      const char *col_tokens, int qk_top, bool *held)
{
    const attn_attention_map *m = &p->m;
    const int thumb_rows = at_most(m->rows, HTML_THUMB_SIDE);
    const int thumb_cols = at_most(m->cols, HTML_THUMB_SIDE);
    fputs("{\"name\":", out);
    cli_json_string(out, m->name);
    fprintf(out,
            ",\"layer\":%d,\"kind\":\"%s\",\"hard\":%s,\"row_tokens\":\"%s\","
            "\"col_tokens\":\"%s\",\"causal\":%s,\"heads\":%d,\"rows\":%d,\"cols\":%d,"
            "\"vmax\":%.9g,\"thumb_rows\":%d,\"thumb_cols\":%d,\"thumbs\":",
            m->layer, attn_map_kind_name(m->kind), m->hard ? "true" : "false", row_tokens,
            col_tokens, is_causal(m) ? "true" : "false", m->heads, m->rows, m->cols,
            (double)p->vmax, thumb_rows, thumb_cols);
    write_thumbnails(out, m, thumb_rows, thumb_cols, p->vmax);
    fprintf(out, ",\"first\":%d,\"count\":%d,\"weights\":", p->window.first, p->window.count);
    write_window(out, m, p->window);
    if (p->derived != PAGE_RECORDED)
        fprintf(out, ",\"derived\":\"%s\",\"layers\":%d", page_derived_name(p->derived),
                p->layers);
    else if (m->q != NULL && m->k != NULL && qk_top > 0)
        write_qk(out, r, p, qk_top, held);
    else if (m->q != NULL && m->k != NULL)
        fputs(",\"qk_not_held\":true", out);
    else if (strstr(r->model, "bahdanau") != NULL)
        fputs(",\"additive\":true", out);
    fputc('}', out);
}

/* ---- the window ---- */

/* The weights a row costs in every map at once. */
static size_t weights_a_row(const page_maps *p)
{
    size_t n = 0;
    for (int k = 0; k < p->n; k++) n += (size_t)p->maps[k].m.heads * (size_t)p->maps[k].m.cols;
    return n;
}

static int most_rows(const page_maps *p)
{
    int most = 0;
    for (int k = 0; k < p->n; k++) most = p->maps[k].m.rows > most ? p->maps[k].m.rows : most;
    return most;
}

/* The rows of every map a page can hold (at least one, even past the limit). */
static int rows_that_fit(const page_maps *p)
{
    const size_t fit = HTML_WEIGHTS_MAX / weights_a_row(p);
    return fit > 1 ? (int)fit : 1;
}

/* The default: every row if the record fits, else the last rows of each map,
 * as many as fit (at least one). */
static void default_windows(page_maps *p)
{
    size_t total = 0;
    for (int k = 0; k < p->n; k++) {
        const attn_attention_map *m = &p->maps[k].m;
        total += (size_t)m->rows * (size_t)m->heads * (size_t)m->cols;
    }
    const int count = total <= HTML_WEIGHTS_MAX ? most_rows(p) : rows_that_fit(p);
    for (int k = 0; k < p->n; k++) {
        const int rows = p->maps[k].m.rows, kept = at_most(count, rows);
        p->maps[k].window = (map_window){rows - kept, kept};
    }
}

/* The given window, clipped to each map; false (EXIT_USAGE) after saying why if
 * no map has its first row or it holds more than HTML_WEIGHTS_MAX weights. */
static bool given_windows(page_maps *p, const html_window *given)
{
    const int rows = most_rows(p);
    if (given->first >= rows) {
        cli_usage_error("show", "--window %ld:%ld starts past every map: the record's maps have "
                                "at most %d rows (0 to %d)",
                        given->first, given->count, rows, rows - 1);
        return false;
    }
    size_t total = 0;
    for (int k = 0; k < p->n; k++) {
        const attn_attention_map *m = &p->maps[k].m;
        const long left = given->first < m->rows ? m->rows - given->first : 0;
        p->maps[k].window = (map_window){(int)(left > 0 ? given->first : m->rows),
                                         (int)(left < given->count ? left : given->count)};
        total += (size_t)p->maps[k].window.count * (size_t)m->heads * (size_t)m->cols;
    }
    if (total > HTML_WEIGHTS_MAX) {
        cli_usage_error("show", "--window %ld:%ld holds %zu weights, more than a page's %d: "
                                "at most %d rows fit",
                        given->first, given->count, total, HTML_WEIGHTS_MAX, rows_that_fit(p));
        return false;
    }
    return true;
}

/* Writes r as JSON to out, with its maps and those derived from them (p); false
 * after saying why if r cannot be shown on the page at path, or on no memory. */
static bool write_record(FILE *out, const attn_record *r, page_maps *p, const char *path,
                         bool given)
{
    fputs("{\"format\":\"attn-attention\",\"version\":1,\"model\":", out);
    cli_json_string(out, r->model);
    fputs(",\"task\":", out);
    cli_json_string(out, r->task);
    fputs(",\"queries\":", out);
    write_tokens(out, r->queries, r->n_queries);
    fputs(",\"keys\":", out);
    write_tokens(out, r->keys, r->n_keys);
    float vmax = 0.0f;
    for (int k = 0; k < r->n_maps; k++) {
        const attn_attention_map *m = &r->maps[k];
        if (!check_weights(m, path)) return false;
        vmax = fmaxf(vmax, largest_weight(m));
    }
    /* One colour scale for the thumbnails of every recorded map: the largest
     * weight of all, as the model view of attn show --grid draws it; a derived
     * map's values are no weights, and have a scale of their own. */
    for (int k = 0; k < p->n; k++) {
        const page_map *m = &p->maps[k];
        const float top = m->derived == PAGE_RECORDED ? vmax : largest_weight(&m->m);
        p->maps[k].vmax = top > 0.0f ? top : 1.0f;
    }
    const int qk_top = qk_top_keys(p);
    fprintf(out,
            ",\"weights_max\":%d,\"window_given\":%s,\"vmax\":%.9g,\"gradient_step\":%d,"
            "\"neuron_top\":%d,\"neuron_all\":%d,\"maps\":[",
            HTML_WEIGHTS_MAX, given ? "true" : "false", (double)(vmax > 0.0f ? vmax : 1.0f),
            r->gradient_step, at_most(qk_top, HTML_NEURON_TOP), HTML_NEURON_ALL);
    bool *held = malloc((size_t)(r->n_keys > r->n_queries ? r->n_keys : r->n_queries) + 1);
    if (held == NULL) {
        cli_message(stderr, "attn: no memory for the page '%s'\n", path);
        return false;
    }
    bool shown = true;
    for (int k = 0; k < p->n && shown; k++) {
        const attn_attention_map *m = &p->maps[k].m;
        const char *rows = token_list(r, m, true, path), *cols = token_list(r, m, false, path);
        shown = rows != NULL && cols != NULL;
        if (!shown) break;
        if (k > 0) fputc(',', out);
        write_map(out, r, &p->maps[k], rows, cols, qk_top, held);
    }
    free(held);
    if (shown) fputs("]}", out);
    return shown;
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

int cli_show_html(const attn_record *r, const char *path, const html_window *window,
                  int *windowed)
{
    page_maps p;
    int status = page_maps_build(&p, r);
    if (status != EXIT_OK) return status;
    if (!window->given) default_windows(&p);
    else if (!given_windows(&p, window)) status = EXIT_USAGE;
    *windowed = 0;
    for (int k = 0; k < r->n_maps; k++) *windowed += p.maps[k].window.count < r->maps[k].rows;
    char *json = NULL;
    size_t size = 0;
    FILE *mem = status == EXIT_OK ? open_memstream(&json, &size) : NULL;
    if (status == EXIT_OK && mem == NULL) {
        cli_message(stderr, "attn: no memory for the page '%s'\n", path);
        status = EXIT_RUNTIME;
    }
    if (mem != NULL) {
        bool shown = write_record(mem, r, &p, path, window->given);
        bool written = !ferror(mem);
        if (fclose(mem) != 0) written = false;
        status = EXIT_RUNTIME;
        if (!written) cli_message(stderr, "attn: no memory for the page '%s'\n", path);
        else if (shown) status = write_page(path, json, size);
    }
    free(json);
    page_maps_free(&p);
    return status;
}
