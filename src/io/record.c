/* The attention record (attn/capture.h): its tokens and maps, and the checks a
 * record must pass before it is written or after it is read. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/utf8.h"
#include "io/record_internal.h"

void attn_record_init(attn_record *r, const char *model, const char *task)
{
    if (r == NULL) return;
    memset(r, 0, sizeof *r);
    snprintf(r->model, sizeof r->model, "%s", model ? model : "");
    snprintf(r->task, sizeof r->task, "%s", task ? task : "");
}

static void free_tokens(char **tokens, int n)
{
    if (tokens == NULL) return;
    for (int i = 0; i < n; i++) free(tokens[i]);
    free(tokens);
}

static void free_map(attn_attention_map *m)
{
    free(m->weights);
    free(m->q);
    free(m->k);
    free(m->gradient);
    memset(m, 0, sizeof *m);
}

void attn_record_free(attn_record *r)
{
    if (r == NULL) return;
    free_tokens(r->queries, r->n_queries);
    free_tokens(r->keys, r->n_keys);
    for (int i = 0; i < r->n_maps; i++) free_map(&r->maps[i]);
    memset(r, 0, sizeof *r);
}

/* *out: a copy of tokens[0..n), each checked to be UTF-8; what: "query" or "key". */
static attn_status copy_tokens(char ***out, const char *const *tokens, int n, const char *what)
{
    char label[32];
    snprintf(label, sizeof label, "%s token count", what);
    attn_status s = attn_check_at_least(n, 0, label);
    if (s) return s;
    if (n > 0 && (s = attn_check_not_null(tokens, label))) return s;
    char **copy = calloc((size_t)n + 1, sizeof *copy);
    if (copy == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d %s tokens", n, what);
    for (int i = 0; i < n; i++) {
        if (tokens[i] == NULL) {
            s = attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s token %d is NULL", what, i);
            break;
        }
        const size_t length = strlen(tokens[i]);
        if (!attn_utf8_valid(tokens[i], length)) {
            s = attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s token %d is not valid UTF-8", what, i);
            break;
        }
        if ((copy[i] = malloc(length + 1)) == NULL) {
            s = attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %s token %d", what, i);
            break;
        }
        memcpy(copy[i], tokens[i], length + 1);
    }
    if (s) {
        free_tokens(copy, n);
        return s;
    }
    *out = copy;
    return ATTN_OK;
}

attn_status attn_record_set_queries(attn_record *r, const char *const *tokens, int n)
{
    char **copy = NULL;
    attn_status s;
    if ((s = attn_check_not_null(r, "record")) ||
        (s = copy_tokens(&copy, tokens, n, "query")))
        return s;
    free_tokens(r->queries, r->n_queries);
    r->queries = copy;
    r->n_queries = n;
    return ATTN_OK;
}

attn_status attn_record_set_keys(attn_record *r, const char *const *tokens, int n)
{
    char **copy = NULL;
    attn_status s;
    if ((s = attn_check_not_null(r, "record")) || (s = copy_tokens(&copy, tokens, n, "key")))
        return s;
    free_tokens(r->keys, r->n_keys);
    r->keys = copy;
    r->n_keys = n;
    return ATTN_OK;
}

static attn_status check_name(const attn_record *r, const char *name)
{
    attn_status s = attn_check_not_null(name, "map name");
    if (s) return s;
    const size_t length = strlen(name);
    if (length == 0) return attn_error(ATTN_ERR_INVALID_ARGUMENT, "a map name is empty");
    if (length >= ATTN_RECORD_NAME_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "map name '%.40s...' has %zu bytes; at most %d fit", name, length,
                          ATTN_RECORD_NAME_MAX - 1);
    if (!attn_utf8_valid(name, length))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "map name '%s' is not valid UTF-8", name);
    if (attn_record_find(r, name) != NULL)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "the record already has a map '%s'", name);
    return ATTN_OK;
}

/* name: site with its first "*" replaced by the layer number. */
static attn_status name_at(char name[ATTN_RECORD_NAME_MAX], const char *site, int layer)
{
    attn_status s = attn_check_not_null(site, "map site");
    if (s) return s;
    const char *star = strchr(site, '*');
    const int length = star == NULL
                           ? snprintf(name, ATTN_RECORD_NAME_MAX, "%s", site)
                           : snprintf(name, ATTN_RECORD_NAME_MAX, "%.*s%d%s", (int)(star - site),
                                      site, layer, star + 1);
    if (length >= ATTN_RECORD_NAME_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "map site '%.40s...' in layer %d names a map of %d bytes; at most %d "
                          "fit",
                          site, layer, length, ATTN_RECORD_NAME_MAX - 1);
    return ATTN_OK;
}

attn_status attn_record_add_map(attn_record *r, const char *site, int layer, attn_map_kind kind,
                                bool hard, int heads, int rows, int cols, float **weights)
{
    attn_status s;
    char name[ATTN_RECORD_NAME_MAX];
    if ((s = attn_check_not_null(r, "record")) || (s = attn_check_not_null(weights, "weights")) ||
        (s = attn_check_at_least(layer, 0, "layer")) || (s = name_at(name, site, layer)) ||
        (s = check_name(r, name)) ||
        (s = attn_check_at_least(heads, 1, "heads")) ||
        (s = attn_check_at_least(rows, 1, "rows")) || (s = attn_check_at_least(cols, 1, "cols")))
        return s;
    if (kind != ATTN_MAP_SELF && kind != ATTN_MAP_CROSS)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "map '%s' has kind %d, not self or cross",
                          name, (int)kind);
    if (r->n_maps >= ATTN_RECORD_MAPS_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "the record holds %d maps already; '%s' does not fit", r->n_maps, name);
    const unsigned long long count = (unsigned long long)heads * rows * cols;
    if (count > ATTN_RECORD_MAX_WEIGHTS)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "map '%s' of %d heads x %d rows x %d cols has more than %llu weights",
                          name, heads, rows, cols, ATTN_RECORD_MAX_WEIGHTS);
    float *w = calloc((size_t)count, sizeof *w);
    if (w == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the %llu weights of map '%s'",
                          count, name);
    attn_attention_map *m = &r->maps[r->n_maps++];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->site, sizeof m->site, "%s", site);
    m->layer = layer;
    m->kind = kind;
    m->hard = hard;
    m->heads = heads;
    m->rows = rows;
    m->cols = cols;
    m->weights = w;
    *weights = w;
    return ATTN_OK;
}

void attn_record_drop_maps(attn_record *r, int n_maps)
{
    for (; r->n_maps > n_maps; r->n_maps--) free_map(&r->maps[r->n_maps - 1]);
}

/* *out: count zeroed floats for the `what` of map m. */
static attn_status zeroed(float **out, size_t count, const attn_attention_map *m, const char *what)
{
    if ((*out = calloc(count, sizeof **out)) == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the %zu %s values of map '%s'",
                          count, what, m->name);
    return ATTN_OK;
}

static attn_status check_map_index(const attn_record *r, int i)
{
    attn_status s = attn_check_not_null(r, "record");
    if (s) return s;
    if (i < 0 || i >= r->n_maps)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "map %d is not one of the record's %d", i,
                          r->n_maps);
    return ATTN_OK;
}

attn_status attn_record_add_qk(attn_record *r, int i, int head_dim, float **q, float **k)
{
    attn_status s;
    if ((s = check_map_index(r, i)) || (s = attn_check_at_least(head_dim, 1, "head_dim")))
        return s;
    attn_attention_map *m = &r->maps[i];
    if (m->q != NULL)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "map '%s' has its q and k already", m->name);
    const unsigned long long per_head = (unsigned long long)head_dim * (m->rows + m->cols);
    if (per_head * m->heads > ATTN_RECORD_MAX_WEIGHTS)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "map '%s' with head_dim %d has more than %llu q and k values", m->name,
                          head_dim, ATTN_RECORD_MAX_WEIGHTS);
    const size_t n_q = (size_t)m->heads * m->rows * head_dim;
    const size_t n_k = (size_t)m->heads * m->cols * head_dim;
    if ((s = zeroed(&m->q, n_q, m, "q"))) return s;
    if ((s = zeroed(&m->k, n_k, m, "k"))) {
        free(m->q);
        m->q = NULL;
        return s;
    }
    m->head_dim = head_dim;
    if (q) *q = m->q;
    if (k) *k = m->k;
    return ATTN_OK;
}

attn_status attn_record_add_gradient(attn_record *r, int i, float **gradient)
{
    attn_status s;
    if ((s = check_map_index(r, i)) || (s = attn_check_not_null(gradient, "gradient")))
        return s;
    attn_attention_map *m = &r->maps[i];
    if (m->hard)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "map '%s' is hard attention: its one-hot rows are choices, and the "
                          "output has no gradient with respect to them",
                          m->name);
    if (m->gradient != NULL)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "map '%s' has its gradient already",
                          m->name);
    if ((s = zeroed(&m->gradient, (size_t)m->heads * m->rows * m->cols, m, "gradient"))) return s;
    *gradient = m->gradient;
    return ATTN_OK;
}

const attn_attention_map *attn_record_find(const attn_record *r, const char *name)
{
    if (r == NULL || name == NULL) return NULL;
    for (int i = 0; i < r->n_maps; i++)
        if (strcmp(r->maps[i].name, name) == 0) return &r->maps[i];
    return NULL;
}

const char *attn_map_kind_name(attn_map_kind kind)
{
    switch (kind) {
    case ATTN_MAP_SELF: return "self";
    case ATTN_MAP_CROSS: return "cross";
    }
    return "unknown";
}

static bool rows_are_queries(const attn_attention_map *m)
{
    return m->kind == ATTN_MAP_CROSS || m->over_queries;
}

char *const *attn_map_row_tokens(const attn_record *r, const attn_attention_map *m)
{
    if (r == NULL || m == NULL) return NULL;
    return rows_are_queries(m) ? r->queries : r->keys;
}

char *const *attn_map_col_tokens(const attn_record *r, const attn_attention_map *m)
{
    if (r == NULL || m == NULL) return NULL;
    return m->kind == ATTN_MAP_SELF && m->over_queries ? r->queries : r->keys;
}

/* One row of weights: each finite and in [0, 1]; a hard row holds zeros and at
 * most one 1. Returns the index of the first bad weight, or -1. */
static int bad_weight(const float *row, int cols, bool hard)
{
    int ones = 0;
    for (int j = 0; j < cols; j++) {
        const float w = row[j];
        if (!(w >= 0.0f && w <= 1.0f)) return j; /* also NaN */
        if (hard && w != 0.0f && (w != 1.0f || ++ones > 1)) return j;
    }
    return -1;
}

/* The index of the first value of x (n) that is not finite, or -1. */
static long long not_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long long)i;
    return -1;
}

/* A map's optional q, k and gradient: present together with their sizes, finite,
 * no gradient on a hard map, and the record's gradient_step in range. */
static attn_status check_extras(const attn_record *r, const attn_attention_map *m,
                                attn_status status)
{
    if ((m->q == NULL) != (m->k == NULL) || (m->q == NULL) != (m->head_dim == 0))
        return attn_error(status, "map '%s' has head_dim %d but %s q and %s k", m->name,
                          m->head_dim, m->q ? "a" : "no", m->k ? "a" : "no");
    if (m->head_dim < 0)
        return attn_error(status, "map '%s' has head_dim %d", m->name, m->head_dim);
    const struct {
        const char *what;
        const float *x;
        size_t n;
    } parts[] = {{"q", m->q, (size_t)m->heads * m->rows * m->head_dim},
                 {"k", m->k, (size_t)m->heads * m->cols * m->head_dim},
                 {"gradient", m->gradient, (size_t)m->heads * m->rows * m->cols}};
    for (size_t p = 0; p < sizeof parts / sizeof *parts; p++) {
        const long long at = parts[p].x ? not_finite(parts[p].x, parts[p].n) : -1;
        if (at >= 0)
            return attn_error(status, "map '%s': %s value %lld is %g, not finite", m->name,
                              parts[p].what, at, (double)parts[p].x[at]);
    }
    if (m->gradient == NULL) return ATTN_OK;
    if (m->hard)
        return attn_error(status, "map '%s' is hard attention but has a gradient", m->name);
    if (r->gradient_step < ATTN_EXPLAIN_ALL || r->gradient_step >= r->n_queries)
        return attn_error(status,
                          "the record's gradient_step %d is neither %d (every output token) nor "
                          "one of its %d query tokens",
                          r->gradient_step, ATTN_EXPLAIN_ALL, r->n_queries);
    return ATTN_OK;
}

attn_status attn_record_check_map(const attn_record *r, int i, attn_status status)
{
    const attn_attention_map *m = &r->maps[i];
    const bool queries_down = rows_are_queries(m);
    const int rows_want = queries_down ? r->n_queries : r->n_keys;
    const int cols_want = m->kind == ATTN_MAP_SELF ? rows_want : r->n_keys;
    const char *rows_what = queries_down ? "query" : "key";
    const char *cols_what = m->kind == ATTN_MAP_SELF ? rows_what : "key";
    if (m->kind == ATTN_MAP_CROSS && m->over_queries)
        return attn_error(status, "map '%s' is cross-attention but marked as over the queries",
                          m->name);
    if (m->rows != rows_want)
        return attn_error(status, "map '%s' has %d rows but the record has %d %s tokens", m->name,
                          m->rows, rows_want, rows_what);
    if (m->cols != cols_want)
        return attn_error(status, "map '%s' has %d columns but the record has %d %s tokens",
                          m->name, m->cols, cols_want, cols_what);
    if (m->weights == NULL) return attn_error(status, "map '%s' has no weights", m->name);
    attn_status s = check_extras(r, m, status);
    if (s) return s;
    for (int h = 0; h < m->heads; h++)
        for (int row = 0; row < m->rows; row++) {
            const float *w = m->weights + ((size_t)h * m->rows + row) * m->cols;
            const int j = bad_weight(w, m->cols, m->hard);
            if (j >= 0)
                return attn_error(status,
                                  "map '%s' head %d row %d column %d: weight %g is not %s",
                                  m->name, h, row, j, (double)w[j],
                                  m->hard ? "0 or the row's single 1 of a hard map"
                                          : "a probability in [0, 1]");
        }
    return ATTN_OK;
}
