/* The seed article's MultiHeadAttention class, reproduced with its quirks: one
 * Linear(head_dim, head_dim, bias=False) per role shared by every head, scores
 * divided by sqrt(embed_size), masked_fill(mask == 0, -1e20) before that division,
 * fc_out with bias. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/nn.h"
#include "core/error.h"
#include "nn/activations.h"
#include "nn/heads.h"

typedef struct seed_weights {
    float *values, *keys, *queries; /* (hd, hd) each */
    float *fc_out_w, *fc_out_b;     /* (E, E), (E) */
} seed_weights;

struct attn_seed_mha {
    int embed_size, heads, head_dim;
    attn_params params;
    seed_weights data, grad;

    /* The last forward, kept for backward. */
    bool has_forward;
    const float *values, *keys, *query;
    int batch, len_k, len_q;
    attn_mask mask; /* the caller's mask with the seed's fill */
    attn_sdpa_config sdpa;

    attn_activations acts;
    float *q_heads, *k_heads, *v_heads; /* (N, H, Lq, hd), (N, H, Lk, hd) x 2 */
    float *attn_heads;                  /* (N, H, Lq, hd) */
    float *lse;                         /* (N, H, Lq) */
    float *concat;                      /* (N * Lq, E): fc_out's input */
    float *rows;                        /* (N * max(Lq, Lk), E): projection scratch */
    float *d_attn_heads, *dq_heads;     /* (N, H, Lq, hd) */
    float *dk_heads, *dv_heads;         /* (N, H, Lk, hd) */
};

static seed_weights point_weights(const attn_params *p, float *base)
{
    return (seed_weights){
        .values = base + attn_params_find(p, "values.weight")->offset,
        .keys = base + attn_params_find(p, "keys.weight")->offset,
        .queries = base + attn_params_find(p, "queries.weight")->offset,
        .fc_out_w = base + attn_params_find(p, "fc_out.weight")->offset,
        .fc_out_b = base + attn_params_find(p, "fc_out.bias")->offset,
    };
}

attn_status attn_seed_mha_create(attn_seed_mha **out, int embed_size, int heads, uint64_t seed)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "out")) ||
        (s = attn_check_at_least(embed_size, 1, "embed_size")) ||
        (s = attn_check_at_least(heads, 1, "heads")))
        return s;
    *out = NULL;
    if (embed_size % heads != 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "embed_size %d is not divisible by heads %d",
                          embed_size, heads);
    attn_seed_mha *m = calloc(1, sizeof *m);
    if (m == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the module");
    m->embed_size = embed_size;
    m->heads = heads;
    m->head_dim = embed_size / heads;
    const int64_t hd = m->head_dim, E = embed_size;
    const attn_param specs[] = {
        {.name = "values.weight", .ndim = 2, .shape = {hd, hd}},
        {.name = "keys.weight", .ndim = 2, .shape = {hd, hd}},
        {.name = "queries.weight", .ndim = 2, .shape = {hd, hd}},
        {.name = "fc_out.weight", .ndim = 2, .shape = {E, E}},
        {.name = "fc_out.bias", .ndim = 1, .shape = {E}},
    };
    if ((s = attn_params_init(&m->params, specs, (int)(sizeof specs / sizeof specs[0])))) {
        free(m);
        return s;
    }
    m->data = point_weights(&m->params, m->params.data);
    m->grad = point_weights(&m->params, m->params.grad);
    attn_rng rng;
    attn_rng_init(&rng, seed);
    attn_init_linear(m->data.values, NULL, m->head_dim, m->head_dim, &rng);
    attn_init_linear(m->data.keys, NULL, m->head_dim, m->head_dim, &rng);
    attn_init_linear(m->data.queries, NULL, m->head_dim, m->head_dim, &rng);
    attn_init_linear(m->data.fc_out_w, m->data.fc_out_b, embed_size, embed_size, &rng);
    *out = m;
    return ATTN_OK;
}

void attn_seed_mha_free(attn_seed_mha *m)
{
    if (m == NULL) return;
    attn_params_free(&m->params);
    attn_activations_free(&m->acts);
    free(m);
}

attn_params *attn_seed_mha_params(attn_seed_mha *m) { return m ? &m->params : NULL; }

/* energy.masked_fill(mask == 0, -1e20) / sqrt(E): a masked score becomes
 * -1e20 / sqrt(E), the same for every masked key, so a fully masked row is
 * uniform rather than zero. */
static attn_status prepare_sdpa(attn_seed_mha *m, const attn_mask *mask, int N, int len_k,
                                int len_q)
{
    m->sdpa = (attn_sdpa_config){.batch = N, .heads = m->heads, .len_q = len_q, .len_k = len_k,
                                 .dim_qk = m->head_dim, .dim_v = m->head_dim,
                                 .scale = 1.0f / sqrtf((float)m->embed_size)};
    if (mask == NULL) return ATTN_OK;
    if (mask->type != ATTN_MASK_BOOL_KEEP)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "the seed module's mask must be ATTN_MASK_BOOL_KEEP (zero = masked), "
                          "not mask type %d",
                          (int)mask->type);
    if (mask->data == NULL) return attn_error(ATTN_ERR_INVALID_ARGUMENT, "mask data is NULL");
    m->mask = *mask;
    m->mask.fill = true;
    m->mask.fill_value = -1e20f / sqrtf((float)m->embed_size);
    m->sdpa.attn_mask = &m->mask;
    return ATTN_OK;
}

static attn_status layout_activations(attn_seed_mha *m, int N, int len_k, int len_q)
{
    const size_t E = (size_t)m->embed_size;
    const size_t rows_q = (size_t)N * (size_t)len_q, rows_k = (size_t)N * (size_t)len_k;
    const attn_activation_view views[] = {
        {&m->q_heads, rows_q * E},
        {&m->k_heads, rows_k * E},
        {&m->v_heads, rows_k * E},
        {&m->attn_heads, rows_q * E},
        {&m->lse, rows_q * (size_t)m->heads},
        {&m->concat, rows_q * E},
        {&m->rows, (rows_q > rows_k ? rows_q : rows_k) * E},
        {&m->d_attn_heads, rows_q * E},
        {&m->dq_heads, rows_q * E},
        {&m->dk_heads, rows_k * E},
        {&m->dv_heads, rows_k * E},
    };
    return attn_activations_layout(&m->acts, views, (int)(sizeof views / sizeof views[0]));
}

/* values, keys: (N, Lk, E), query: (N, Lq, E), seen as (N, L, H, hd)
 *   v = values Wv^T, k = keys Wk^T, q = query Wq^T on every head's slice
 *   attention = softmax(masked_fill(q k^T, mask == 0, -1e20) / sqrt(E))
 *   out: (N, Lq, E) = (attention v, heads concatenated) Wfc^T + bfc */
attn_status attn_seed_mha_forward(attn_seed_mha *m, float *out, float *weights,
                                  const float *values, const float *keys, const float *query,
                                  int N, int len_k, int len_q, const attn_mask *mask)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "seed mha")) || (s = attn_check_not_null(out, "out")) ||
        (s = attn_check_not_null(values, "values")) ||
        (s = attn_check_not_null(keys, "keys")) || (s = attn_check_not_null(query, "query")) ||
        (s = attn_check_at_least(N, 1, "N")) || (s = attn_check_at_least(len_k, 1, "len_k")) ||
        (s = attn_check_at_least(len_q, 1, "len_q")))
        return s;
    /* The per-head projections are GEMMs over N * len * heads rows, counted in int. */
    const int64_t longest = len_k > len_q ? len_k : len_q;
    if ((int64_t)N * longest * m->heads > INT_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "N %d times length %lld times heads %d exceeds %d rows", N,
                          (long long)longest, m->heads, INT_MAX);
    m->has_forward = false;
    if ((s = prepare_sdpa(m, mask, N, len_k, len_q)) ||
        (s = layout_activations(m, N, len_k, len_q)))
        return s;
    const int H = m->heads, hd = m->head_dim, E = m->embed_size;
    const seed_weights *w = &m->data;

    attn_linear_forward(m->rows, values, w->values, NULL, N * len_k * H, hd, hd);
    attn_heads_split(m->v_heads, m->rows, N, len_k, H, hd, true);
    attn_linear_forward(m->rows, keys, w->keys, NULL, N * len_k * H, hd, hd);
    attn_heads_split(m->k_heads, m->rows, N, len_k, H, hd, true);
    attn_linear_forward(m->rows, query, w->queries, NULL, N * len_q * H, hd, hd);
    attn_heads_split(m->q_heads, m->rows, N, len_q, H, hd, true);

    if ((s = attn_sdpa_forward(m->attn_heads, m->lse, weights, m->q_heads, m->k_heads,
                               m->v_heads, &m->sdpa)))
        return s;
    attn_heads_merge(m->concat, m->attn_heads, N, len_q, H, hd, true);
    attn_linear_forward(out, m->concat, w->fc_out_w, w->fc_out_b, N * len_q, E, E);

    m->values = values;
    m->keys = keys;
    m->query = query;
    m->batch = N;
    m->len_k = len_k;
    m->len_q = len_q;
    m->has_forward = true;
    return ATTN_OK;
}

/* Backward of the forward above, in reverse:
 *   d concat = dout Wfc, dWfc += dout^T concat, dbfc += sum dout
 *   dq, dk, dv (heads) from SDPA's backward
 *   dquery += dq Wq, dWq += dq^T query on (N * Lq * H, hd) rows (and so for k, v)
 * The three input gradients may be one buffer: each step only adds into it. */
attn_status attn_seed_mha_backward(attn_seed_mha *m, float *dvalues, float *dkeys,
                                   float *dquery, const float *dout)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "seed mha")) || (s = attn_check_not_null(dout, "dout")))
        return s;
    if (!m->has_forward)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "attn_seed_mha_backward needs a successful attn_seed_mha_forward first");
    const int N = m->batch, Lk = m->len_k, Lq = m->len_q;
    const int H = m->heads, hd = m->head_dim, E = m->embed_size;
    const size_t n_q = (size_t)N * Lq * E;
    const seed_weights *w = &m->data, *g = &m->grad;

    memset(m->rows, 0, n_q * sizeof *m->rows);
    attn_linear_backward(m->rows, g->fc_out_w, g->fc_out_b, dout, m->concat, w->fc_out_w, N * Lq,
                         E, E);
    const attn_heads_grads heads = {m->d_attn_heads, m->dq_heads, m->dk_heads, m->dv_heads};
    if ((s = attn_heads_sdpa_backward(&heads, m->rows, m->q_heads, m->k_heads, m->v_heads, m->lse,
                                      &m->sdpa, true)))
        return s;

    attn_heads_merge(m->rows, m->dq_heads, N, Lq, H, hd, true);
    attn_linear_backward(dquery, g->queries, NULL, m->rows, m->query, w->queries, N * Lq * H, hd,
                         hd);
    attn_heads_merge(m->rows, m->dk_heads, N, Lk, H, hd, true);
    attn_linear_backward(dkeys, g->keys, NULL, m->rows, m->keys, w->keys, N * Lk * H, hd, hd);
    attn_heads_merge(m->rows, m->dv_heads, N, Lk, H, hd, true);
    attn_linear_backward(dvalues, g->values, NULL, m->rows, m->values, w->values, N * Lk * H, hd,
                         hd);
    return ATTN_OK;
}
