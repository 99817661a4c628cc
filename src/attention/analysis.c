/* What recorded attention says (attn/capture.h): the entropy of each row of a
 * map, and attention rollout across layers (Abnar and Zuidema, "Quantifying
 * Attention Flow in Transformers", ACL 2020). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/capture.h"
#include "attn/kernels.h"
#include "core/error.h"

static attn_status check_map(const attn_attention_map *m, const char *what)
{
    attn_status s;
    if ((s = attn_check_not_null(m, what)) || (s = attn_check_not_null(m->weights, "map weights")) ||
        (s = attn_check_at_least(m->heads, 1, "map heads")) ||
        (s = attn_check_at_least(m->rows, 1, "map rows")) ||
        (s = attn_check_at_least(m->cols, 1, "map cols")))
        return s;
    return ATTN_OK;
}

/* entropy: (heads, rows), -sum_j w_j log w_j over the positive weights, summed
 * in double. */
attn_status attn_map_entropy(const attn_attention_map *m, float *entropy)
{
    attn_status s;
    if ((s = check_map(m, "map")) || (s = attn_check_not_null(entropy, "entropy"))) return s;
    const size_t rows = (size_t)m->heads * m->rows;
    for (size_t i = 0; i < rows; i++) {
        const float *w = m->weights + i * m->cols;
        double sum = 0.0;
        for (int j = 0; j < m->cols; j++)
            if (w[j] > 0.0f) sum -= (double)w[j] * log((double)w[j]);
        entropy[i] = (float)sum;
    }
    return ATTN_OK;
}

/* a: (n, n) = the mean of m's heads, plus the identity, each row divided by its
 * sum: (A + I) / 2 renormalised is (A + I) renormalised. */
static void residual_average(float *a, const attn_attention_map *m, int n)
{
    const size_t plane = (size_t)n * n;
    for (size_t e = 0; e < plane; e++) {
        float sum = 0.0f;
        for (int h = 0; h < m->heads; h++) sum += m->weights[(size_t)h * plane + e];
        a[e] = sum / (float)m->heads;
    }
    for (int i = 0; i < n; i++) {
        float *row = a + (size_t)i * n;
        row[i] += 1.0f;
        double total = 0.0;
        for (int j = 0; j < n; j++) total += row[j];
        const float inv = (float)(1.0 / total);
        for (int j = 0; j < n; j++) row[j] *= inv;
    }
}

attn_status attn_rollout(const attn_attention_map *const *layers, int n_layers, float *out)
{
    attn_status s;
    if ((s = attn_check_not_null(layers, "layers")) ||
        (s = attn_check_at_least(n_layers, 1, "n_layers")) ||
        (s = attn_check_not_null(out, "out")))
        return s;
    for (int l = 0; l < n_layers; l++) {
        const attn_attention_map *m = layers[l];
        if ((s = check_map(m, "layer map"))) return s;
        if (m->kind != ATTN_MAP_SELF || m->rows != m->cols)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "layer %d map '%s' is %s attention of %d x %d; rollout needs square "
                              "self-attention",
                              l, m->name, attn_map_kind_name(m->kind), m->rows, m->cols);
        if (m->rows != layers[0]->rows)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "layer %d map '%s' is %d x %d but layer 0 is %d x %d", l, m->name,
                              m->rows, m->cols, layers[0]->rows, layers[0]->cols);
    }
    const int n = layers[0]->rows;
    const size_t plane = (size_t)n * n;
    float *a = malloc(2 * plane * sizeof *a);
    if (a == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for a rollout of %d tokens", n);
    float *product = a + plane;
    residual_average(out, layers[0], n);
    for (int l = 1; l < n_layers; l++) {
        residual_average(a, layers[l], n);
        /* rollout_l = A'_l rollout_{l-1} */
        attn_sgemm(false, false, n, n, n, 1.0f, a, n, out, n, 0.0f, product, n);
        memcpy(out, product, plane * sizeof *out);
    }
    free(a);
    return ATTN_OK;
}
