/* torch.nn.MultiheadAttention: input projections, scaled dot-product attention
 * per head, output projection. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/nn.h"
#include "core/error.h"
#include "nn/activations.h"
#include "nn/heads.h"
#include "nn/mha_impl.h"

/* Views of the parameters (or of their gradients) by role; the biases are NULL
 * without bias. With the packed in_proj_weight, w_q, w_k, w_v are its three
 * row blocks, as PyTorch's _in_projection_packed splits it. */
typedef struct mha_weights {
    float *w_q, *w_k, *w_v; /* (E, E), (E, kdim), (E, vdim) */
    float *b_q, *b_k, *b_v; /* (E) each */
    float *w_out, *b_out;   /* (E, E), (E) */
} mha_weights;

struct attn_mha {
    attn_mha_config cfg; /* kdim and vdim resolved */
    int head_dim;
    attn_precision precision; /* of the products (attn_mha_set_precision) */
    attn_params own;        /* its block when used alone; empty inside a parent's */
    mha_weights data, grad; /* views into the block it is bound to */

    /* The last forward, kept for backward. */
    bool has_forward;
    const float *query, *key, *value;
    int batch, len_q, len_k;
    attn_mask attn_mask, key_padding_mask;
    attn_sdpa_config sdpa; /* its mask pointers point at the two above */
    bool bf16_attention;   /* its SDPA ran on the heads rounded to bf16 */

    attn_activations acts;
    float *q_heads, *k_heads, *v_heads; /* (B, H, Lq, hd), (B, H, Lk, hd) x 2 */
    float *attn_heads;                  /* (B, H, Lq, hd): SDPA's output */
    float *lse;                         /* (B, H, Lq) */
    float *merged;                      /* (rows_q, E): out_proj's input */
    float *rows;                        /* (max(rows_q, rows_k), E): projection scratch */
    float *d_attn_heads, *dq_heads;     /* (B, H, Lq, hd) */
    float *dk_heads, *dv_heads;         /* (B, H, Lk, hd) */
    float *head_weights;                /* (B, H, Lq, Lk), only when averaging */
    /* In bf16 precision (else NULL), SDPA's operands rounded: q16 and dout16
     * (B, H, Lq, hd), k16 and v16 (B, H, Lk, hd), in the block's view bf16. */
    float *bf16;
    uint16_t *q16, *k16, *v16, *dout16;
    const attn_weights_edit *edit;      /* attn_mha_set_edit's, or NULL */
};

static attn_status check_config(const attn_mha_config *cfg)
{
    attn_status s;
    if ((s = attn_check_not_null(cfg, "mha config")) ||
        (s = attn_check_at_least(cfg->embed_dim, 1, "embed_dim")) ||
        (s = attn_check_at_least(cfg->num_heads, 1, "num_heads")) ||
        (s = attn_check_at_least(cfg->kdim, 0, "kdim")) ||
        (s = attn_check_at_least(cfg->vdim, 0, "vdim")))
        return s;
    if (cfg->embed_dim % cfg->num_heads != 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "embed_dim %d is not divisible by num_heads %d",
                          cfg->embed_dim, cfg->num_heads);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "dropout %g is outside [0, 1)",
                          (double)cfg->dropout);
    return ATTN_OK;
}

static bool is_packed(const attn_mha_config *cfg)
{
    return cfg->kdim == cfg->embed_dim && cfg->vdim == cfg->embed_dim;
}

/* The state_dict keys and shapes, in PyTorch's order. */
void attn_mha_specs(const attn_mha *m, attn_specs *specs, const char *prefix)
{
    const attn_mha_config *cfg = &m->cfg;
    const int64_t E = cfg->embed_dim;
    if (is_packed(cfg)) {
        attn_specs_add(specs, prefix, "in_proj_weight", 2, 3 * E, E);
    } else {
        attn_specs_add(specs, prefix, "q_proj_weight", 2, E, E);
        attn_specs_add(specs, prefix, "k_proj_weight", 2, E, cfg->kdim);
        attn_specs_add(specs, prefix, "v_proj_weight", 2, E, cfg->vdim);
    }
    if (cfg->bias) attn_specs_add(specs, prefix, "in_proj_bias", 1, 3 * E, 0);
    attn_specs_add(specs, prefix, "out_proj.weight", 2, E, E);
    if (cfg->bias) attn_specs_add(specs, prefix, "out_proj.bias", 1, E, 0);
}

/* Points the role views at prefix's parameters in p. With the packed weight and
 * bias, q, k and v are their three row blocks. */
static attn_status bind_views(attn_mha *m, const attn_params *p, const char *prefix)
{
    const attn_mha_config *cfg = &m->cfg;
    const size_t E = (size_t)cfg->embed_dim;
    mha_weights *w = &m->data, *g = &m->grad;
    attn_status s;
    if (is_packed(cfg)) {
        if ((s = attn_param_bind(&w->w_q, &g->w_q, p, prefix, "in_proj_weight"))) return s;
        w->w_k = w->w_q + E * E, g->w_k = g->w_q + E * E;
        w->w_v = w->w_q + 2 * E * E, g->w_v = g->w_q + 2 * E * E;
    } else if ((s = attn_param_bind(&w->w_q, &g->w_q, p, prefix, "q_proj_weight")) ||
               (s = attn_param_bind(&w->w_k, &g->w_k, p, prefix, "k_proj_weight")) ||
               (s = attn_param_bind(&w->w_v, &g->w_v, p, prefix, "v_proj_weight"))) {
        return s;
    }
    if (cfg->bias) {
        if ((s = attn_param_bind(&w->b_q, &g->b_q, p, prefix, "in_proj_bias")) ||
            (s = attn_param_bind(&w->b_out, &g->b_out, p, prefix, "out_proj.bias")))
            return s;
        w->b_k = w->b_q + E, g->b_k = g->b_q + E;
        w->b_v = w->b_q + 2 * E, g->b_v = g->b_q + 2 * E;
    }
    return attn_param_bind(&w->w_out, &g->w_out, p, prefix, "out_proj.weight");
}

/* As MultiheadAttention._reset_parameters: xavier_uniform_ on in_proj_weight as
 * one (3E, E) matrix (or on each separate weight), biases 0, out_proj.weight as
 * nn.Linear. */
static void init_parameters(attn_mha *m, uint64_t seed)
{
    const attn_mha_config *cfg = &m->cfg;
    const int E = cfg->embed_dim;
    attn_rng rng;
    attn_rng_init(&rng, seed);
    if (is_packed(cfg)) {
        attn_init_xavier_uniform(m->data.w_q, 3 * E, E, &rng);
    } else {
        attn_init_xavier_uniform(m->data.w_q, E, E, &rng);
        attn_init_xavier_uniform(m->data.w_k, E, cfg->kdim, &rng);
        attn_init_xavier_uniform(m->data.w_v, E, cfg->vdim, &rng);
    }
    if (cfg->bias) {
        memset(m->data.b_q, 0, 3 * (size_t)E * sizeof *m->data.b_q);
        memset(m->data.b_out, 0, (size_t)E * sizeof *m->data.b_out);
    }
    attn_init_linear(m->data.w_out, NULL, E, E, &rng);
}

attn_status attn_mha_bind(attn_mha *m, const attn_params *p, const char *prefix, uint64_t seed)
{
    attn_status s = bind_views(m, p, prefix);
    if (s) return s;
    init_parameters(m, seed);
    return ATTN_OK;
}

attn_status attn_mha_new(attn_mha **out, const attn_mha_config *cfg)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "out")) || (s = check_config(cfg))) return s;
    *out = NULL;
    attn_mha *m = calloc(1, sizeof *m);
    if (m == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the module");
    m->cfg = *cfg;
    if (m->cfg.kdim == 0) m->cfg.kdim = cfg->embed_dim;
    if (m->cfg.vdim == 0) m->cfg.vdim = cfg->embed_dim;
    m->head_dim = cfg->embed_dim / cfg->num_heads;
    *out = m;
    return ATTN_OK;
}

/* The module alone: bound into a block of its own. */
attn_status attn_mha_create(attn_mha **out, const attn_mha_config *cfg, uint64_t seed)
{
    attn_status s;
    if ((s = attn_mha_new(out, cfg))) return s;
    attn_mha *m = *out;
    attn_specs specs = {0};
    attn_mha_specs(m, &specs, "");
    if ((s = attn_specs_layout(&specs, &m->own)) || (s = attn_mha_bind(m, &m->own, "", seed))) {
        attn_mha_free(m);
        *out = NULL;
        return s;
    }
    return ATTN_OK;
}

void attn_mha_free(attn_mha *m)
{
    if (m == NULL) return;
    attn_params_free(&m->own);
    attn_activations_free(&m->acts);
    free(m);
}

/* A module bound into a parent's block has no block of its own. */
attn_params *attn_mha_params(attn_mha *m) { return m && m->own.items ? &m->own : NULL; }

const attn_mha_config *attn_mha_get_config(const attn_mha *m) { return m ? &m->cfg : NULL; }

static attn_status check_input(const attn_mha_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(in, "mha input")) ||
        (s = attn_check_not_null(in->query, "query")) ||
        (s = attn_check_not_null(in->key, "key")) ||
        (s = attn_check_not_null(in->value, "value")) ||
        (s = attn_check_at_least(in->batch, 1, "batch")) ||
        (s = attn_check_at_least(in->len_q, 1, "len_q")) ||
        (s = attn_check_at_least(in->len_k, 1, "len_k")))
        return s;
    /* The projections are GEMMs over batch * len rows, counted in int. */
    if ((int64_t)in->batch * in->len_q > INT_MAX || (int64_t)in->batch * in->len_k > INT_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "batch %d times len_q %d or len_k %d exceeds %d rows", in->batch,
                          in->len_q, in->len_k, INT_MAX);
    if (in->key_padding_mask && in->key_padding_mask_type != ATTN_MASK_BOOL &&
        in->key_padding_mask_type != ATTN_MASK_FLOAT)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "key_padding_mask_type %d must be ATTN_MASK_BOOL or ATTN_MASK_FLOAT",
                          (int)in->key_padding_mask_type);
    if (in->attn_mask && in->attn_mask_type != ATTN_MASK_BOOL &&
        in->attn_mask_type != ATTN_MASK_FLOAT)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "attn_mask_type %d must be ATTN_MASK_BOOL or ATTN_MASK_FLOAT",
                          (int)in->attn_mask_type);
    if (in->attn_mask && in->attn_mask_ndim != 2 && in->attn_mask_ndim != 3)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "attn_mask_ndim %d must be 2 (Lq, Lk) or 3 (B*H, Lq, Lk)",
                          in->attn_mask_ndim);
    return ATTN_OK;
}

/* key_padding_mask (B, Lk) is read as (B, 1, 1, Lk); attn_mask (Lq, Lk) broadcasts
 * and (B*H, Lq, Lk) is (B, H, Lq, Lk) in memory. */
static attn_status prepare_sdpa(attn_mha *m, const attn_mha_input *in)
{
    const int64_t B = in->batch, H = m->cfg.num_heads, Lq = in->len_q, Lk = in->len_k;
    const int64_t target[4] = {B, H, Lq, Lk};
    attn_sdpa_config *c = &m->sdpa;
    *c = (attn_sdpa_config){.batch = in->batch, .heads = m->cfg.num_heads, .len_q = in->len_q,
                            .len_k = in->len_k, .dim_qk = m->head_dim, .dim_v = m->head_dim,
                            .scale = 1.0f / sqrtf((float)m->head_dim), .causal = in->is_causal};
    if (in->training) {
        c->dropout_p = m->cfg.dropout;
        c->dropout_seed = in->dropout_seed;
    }
    attn_status s;
    if (in->key_padding_mask) {
        const int64_t shape[4] = {B, 1, 1, Lk};
        if ((s = attn_mask_init(&m->key_padding_mask, in->key_padding_mask_type,
                                in->key_padding_mask, 4, shape, target)))
            return s;
        c->key_padding_mask = &m->key_padding_mask;
    }
    if (in->attn_mask) {
        const int64_t shape2[2] = {Lq, Lk};
        if ((s = attn_mask_init(&m->attn_mask, in->attn_mask_type, in->attn_mask,
                                in->attn_mask_ndim == 2 ? 2 : 4,
                                in->attn_mask_ndim == 2 ? shape2 : target, target)))
            return s;
        c->attn_mask = &m->attn_mask;
    }
    return ATTN_OK;
}

/* The buffers for rows_q query rows and rows_k key rows (0 for none: the cache
 * holds a cached attention's keys, and appending to it has no queries), and
 * `weights` floats of per-head weights to average. */
static attn_status layout_activations(attn_mha *m, size_t rows_q, size_t rows_k, size_t weights)
{
    const size_t E = (size_t)m->cfg.embed_dim;
    /* two bf16 values to a float: 2 rows_q E + 2 rows_k E of them */
    const size_t bf16_floats = m->precision == ATTN_BF16 ? (rows_q + rows_k) * E : 0;
    const attn_activation_view views[] = {
        {&m->q_heads, rows_q * E},
        {&m->k_heads, rows_k * E},
        {&m->v_heads, rows_k * E},
        {&m->attn_heads, rows_q * E},
        {&m->lse, rows_q * (size_t)m->cfg.num_heads},
        {&m->merged, rows_q * E},
        {&m->rows, (rows_q > rows_k ? rows_q : rows_k) * E},
        {&m->d_attn_heads, rows_q * E},
        {&m->dq_heads, rows_q * E},
        {&m->dk_heads, rows_k * E},
        {&m->dv_heads, rows_k * E},
        {&m->head_weights, weights},
        {&m->bf16, bf16_floats},
    };
    attn_status s = attn_activations_layout(&m->acts, views, (int)(sizeof views / sizeof views[0]));
    if (s || bf16_floats == 0) return s;
    m->q16 = (uint16_t *)(void *)m->bf16;
    m->dout16 = m->q16 + rows_q * E;
    m->k16 = m->dout16 + rows_q * E;
    m->v16 = m->k16 + rows_k * E;
    return ATTN_OK;
}

/* weights: (B, Lq, Lk) = sum over h of head_weights (B, H, Lq, Lk), divided by H
 * (PyTorch's sum(dim=1) / num_heads). */
static void average_heads(float *weights, const float *head_weights, int B, int H, int Lq, int Lk)
{
    const size_t plane = (size_t)Lq * (size_t)Lk;
    for (int b = 0; b < B; b++) {
        for (size_t e = 0; e < plane; e++) {
            float sum = 0.0f;
            for (int h = 0; h < H; h++) sum += head_weights[((size_t)b * H + h) * plane + e];
            weights[(size_t)b * plane + e] = sum / (float)H;
        }
    }
}

/* query: (Lq, B, E) [or (B, Lq, E)], key: (Lk, B, kdim), value: (Lk, B, vdim)
 *   q = query Wq^T + bq, k = key Wk^T + bk, v = value Wv^T + bv, split into heads
 *   attn = SDPA(q, k, v) with scale 1/sqrt(hd) and the masks
 *   out: (Lq, B, E) = merge(attn) Wout^T + bout */
attn_status attn_mha_forward(attn_mha *m, float *out, const attn_mha_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "mha")) || (s = attn_check_not_null(out, "out")) ||
        (s = check_input(in)))
        return s;
    m->has_forward = false;
    const size_t rows_q = (size_t)in->batch * (size_t)in->len_q;
    const size_t averaged = in->weights && in->average_attn_weights
                                ? rows_q * (size_t)m->cfg.num_heads * (size_t)in->len_k
                                : 0;
    if ((s = prepare_sdpa(m, in)) ||
        (s = layout_activations(m, rows_q, (size_t)in->batch * (size_t)in->len_k, averaged)))
        return s;
    const attn_mha_config *cfg = &m->cfg;
    const int B = in->batch, H = cfg->num_heads, hd = m->head_dim, E = cfg->embed_dim;
    const int Lq = in->len_q, Lk = in->len_k, bf = cfg->batch_first;
    const mha_weights *w = &m->data;

    const attn_precision p = m->precision;
    attn_linear_forward_at(p, m->rows, in->query, w->w_q, w->b_q, B * Lq, E, E);
    attn_heads_split(m->q_heads, m->rows, B, Lq, H, hd, bf);
    attn_linear_forward_at(p, m->rows, in->key, w->w_k, w->b_k, B * Lk, cfg->kdim, E);
    attn_heads_split(m->k_heads, m->rows, B, Lk, H, hd, bf);
    attn_linear_forward_at(p, m->rows, in->value, w->w_v, w->b_v, B * Lk, cfg->vdim, E);
    attn_heads_split(m->v_heads, m->rows, B, Lk, H, hd, bf);

    float *weights = in->weights && in->average_attn_weights ? m->head_weights : in->weights;
    /* The fused bf16 kernel gives no weights and takes no edit: asked for either,
     * attention runs in float32. */
    m->bf16_attention = p == ATTN_BF16 && weights == NULL && m->edit == NULL;
    if (m->bf16_attention) {
        attn_heads_round(m->q16, m->q_heads, B, H, Lq, hd);
        attn_heads_round(m->k16, m->k_heads, B, H, Lk, hd);
        attn_heads_round(m->v16, m->v_heads, B, H, Lk, hd);
        s = attn_sdpa_bf16_forward(m->attn_heads, m->lse, m->q16, m->k16, m->v16, &m->sdpa);
    } else if (m->edit != NULL) {
        s = attn_sdpa_edited_forward(m->attn_heads, m->lse, weights, m->q_heads, m->k_heads,
                                     m->v_heads, &m->sdpa, m->edit);
    } else {
        s = attn_sdpa_forward(m->attn_heads, m->lse, weights, m->q_heads, m->k_heads, m->v_heads,
                              &m->sdpa);
    }
    if (s) return s;
    if (in->weights && in->average_attn_weights)
        average_heads(in->weights, m->head_weights, B, H, Lq, Lk);

    attn_heads_merge(m->merged, m->attn_heads, B, Lq, H, hd, bf);
    attn_linear_forward_at(p, out, m->merged, w->w_out, w->b_out, B * Lq, E, E);

    m->query = in->query;
    m->key = in->key;
    m->value = in->value;
    m->batch = B;
    m->len_q = Lq;
    m->len_k = Lk;
    m->has_forward = true;
    return ATTN_OK;
}

/* Backward of the forward above, in reverse:
 *   d merged = dout Wout, dWout += dout^T merged, dbout += sum dout
 *   dq, dk, dv (heads) from SDPA's backward
 *   dquery += dq Wq, dWq += dq^T query, dbq += sum dq (and so for k, v)
 * dquery, dkey, dvalue may be one buffer: each step only adds into it. */
attn_status attn_mha_backward(attn_mha *m, float *dquery, float *dkey, float *dvalue,
                              const float *dout)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "mha")) || (s = attn_check_not_null(dout, "dout"))) return s;
    if (!m->has_forward)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "attn_mha_backward needs a successful attn_mha_forward first");
    const attn_mha_config *cfg = &m->cfg;
    const int B = m->batch, H = cfg->num_heads, hd = m->head_dim, E = cfg->embed_dim;
    const int Lq = m->len_q, Lk = m->len_k, bf = cfg->batch_first;
    const size_t n_q = (size_t)B * Lq * E;
    const mha_weights *w = &m->data, *g = &m->grad;

    const attn_precision p = m->precision;
    memset(m->rows, 0, n_q * sizeof *m->rows);
    attn_linear_backward_at(p, m->rows, g->w_out, g->b_out, dout, m->merged, w->w_out, B * Lq, E,
                            E);
    const attn_heads_grads heads = {m->d_attn_heads, m->dq_heads, m->dk_heads, m->dv_heads};
    if ((s = m->bf16_attention ? attn_heads_sdpa_bf16_backward(&heads, m->dout16, m->rows, m->q16,
                                                               m->k16, m->v16, m->lse, &m->sdpa, bf)
                               : attn_heads_sdpa_backward(&heads, m->rows, m->q_heads, m->k_heads,
                                                          m->v_heads, m->lse, &m->sdpa, bf)))
        return s;

    attn_heads_merge(m->rows, m->dq_heads, B, Lq, H, hd, bf);
    attn_linear_backward_at(p, dquery, g->w_q, g->b_q, m->rows, m->query, w->w_q, B * Lq, E, E);
    attn_heads_merge(m->rows, m->dk_heads, B, Lk, H, hd, bf);
    attn_linear_backward_at(p, dkey, g->w_k, g->b_k, m->rows, m->key, w->w_k, B * Lk, cfg->kdim, E);
    attn_heads_merge(m->rows, m->dv_heads, B, Lk, H, hd, bf);
    attn_linear_backward_at(p, dvalue, g->w_v, g->b_v, m->rows, m->value, w->w_v, B * Lk, cfg->vdim,
                            E);
    return ATTN_OK;
}

void attn_mha_last_qk(const attn_mha *m, const float **q, const float **k)
{
    *q = m->q_heads;
    *k = m->k_heads;
}

void attn_mha_set_edit(attn_mha *m, const attn_weights_edit *edit) { m->edit = edit; }

void attn_mha_set_precision(attn_mha *m, attn_precision precision) { m->precision = precision; }

/* d_attn_heads still holds the backward's dO per head, v_heads the forward's V. */
attn_status attn_mha_weights_backward(const attn_mha *m, float *dweights)
{
    return attn_sdpa_weights_backward(dweights, m->d_attn_heads, m->q_heads, m->k_heads,
                                      m->v_heads, &m->sdpa);
}

/* ---- incremental decoding ---- */

attn_status attn_mha_cache_init(attn_mha_cache *c, const attn_mha *m, int batch, int capacity)
{
    attn_status s;
    if ((s = attn_check_at_least(batch, 1, "batch")) ||
        (s = attn_check_at_least(capacity, 1, "cache capacity")))
        return s;
    const size_t n = (size_t)batch * (size_t)capacity * (size_t)m->cfg.embed_dim;
    *c = (attn_mha_cache){.batch = batch,
                          .heads = m->cfg.num_heads,
                          .head_dim = m->head_dim,
                          .capacity = capacity,
                          .k_heads = calloc(n, sizeof(float)),
                          .v_heads = calloc(n, sizeof(float)),
                          .spare = calloc(n, sizeof(float))};
    if (c->k_heads == NULL || c->v_heads == NULL || c->spare == NULL) {
        attn_mha_cache_free(c);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory to cache %d x %d positions", batch,
                          capacity);
    }
    return ATTN_OK;
}

void attn_mha_cache_free(attn_mha_cache *c)
{
    free(c->k_heads);
    free(c->v_heads);
    free(c->spare);
    memset(c, 0, sizeof *c);
}

/* heads: (batch, H, n, hd) -> positions c->length .. + n of cache (batch, H, capacity, hd). */
static void cache_store(const attn_mha_cache *c, float *cache, const float *heads, int n)
{
    const size_t hd = (size_t)c->head_dim, planes = (size_t)c->batch * (size_t)c->heads;
    for (size_t p = 0; p < planes; p++)
        memcpy(cache + (p * (size_t)c->capacity + (size_t)c->length) * hd, heads + p * n * hd,
               n * hd * sizeof *cache);
}

attn_status attn_mha_cache_append(attn_mha *m, attn_mha_cache *c, const float *key,
                                  const float *value, int n)
{
    attn_status s;
    if ((s = attn_check_not_null(key, "key")) || (s = attn_check_not_null(value, "value")) ||
        (s = attn_check_at_least(n, 1, "positions")))
        return s;
    if (n > c->capacity - c->length)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "%d more positions overflow a cache holding %d of %d", n, c->length,
                          c->capacity);
    if ((s = layout_activations(m, 0, (size_t)c->batch * (size_t)n, 0))) return s;
    const attn_mha_config *cfg = &m->cfg;
    const int B = c->batch, H = cfg->num_heads, hd = m->head_dim, E = cfg->embed_dim;
    const mha_weights *w = &m->data;
    m->has_forward = false;
    attn_linear_forward_at(m->precision, m->rows, key, w->w_k, w->b_k, B * n, cfg->kdim, E);
    attn_heads_split(m->k_heads, m->rows, B, n, H, hd, cfg->batch_first);
    cache_store(c, c->k_heads, m->k_heads, n);
    attn_linear_forward_at(m->precision, m->rows, value, w->w_v, w->b_v, B * n, cfg->vdim, E);
    attn_heads_split(m->v_heads, m->rows, B, n, H, hd, cfg->batch_first);
    cache_store(c, c->v_heads, m->v_heads, n);
    c->length += n;
    return ATTN_OK;
}

void attn_mha_cache_reorder(attn_mha_cache *c, const int32_t *parent)
{
    const size_t row = (size_t)c->heads * (size_t)c->capacity * (size_t)c->head_dim;
    float **caches[2] = {&c->k_heads, &c->v_heads};
    for (int i = 0; i < 2; i++) {
        for (int r = 0; r < c->batch; r++)
            memcpy(c->spare + r * row, *caches[i] + (size_t)parent[r] * row,
                   row * sizeof *c->spare);
        float *gathered = c->spare;
        c->spare = *caches[i];
        *caches[i] = gathered;
    }
}

attn_status attn_mha_cached_forward(attn_mha *m, float *out, const attn_mha_cache *c,
                                    const attn_mha_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "mha")) || (s = attn_check_not_null(out, "out")) ||
        (s = attn_check_not_null(in, "mha input")))
        return s;
    if (in->batch != c->batch || in->len_q != 1 || c->length < 1)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "a cached attention takes one position of each of the cache's %d "
                          "sequences, after at least one cached position; got batch %d, "
                          "len_q %d over %d positions",
                          c->batch, in->batch, in->len_q, c->length);
    attn_mha_input q = *in;
    q.key = q.value = in->query; /* the cache stands for them */
    q.len_k = c->capacity;
    q.is_causal = true;
    q.attn_mask = NULL;
    q.training = false;
    m->has_forward = false;
    const size_t averaged = q.weights && q.average_attn_weights
                                ? (size_t)c->batch * (size_t)m->cfg.num_heads * (size_t)c->capacity
                                : 0;
    if ((s = check_input(&q)) || (s = prepare_sdpa(m, &q)) ||
        (s = layout_activations(m, (size_t)c->batch, 0, averaged)))
        return s;
    m->sdpa.q_offset = c->length - 1;
    const attn_mha_config *cfg = &m->cfg;
    const int B = c->batch, H = cfg->num_heads, hd = m->head_dim, E = cfg->embed_dim;
    const mha_weights *w = &m->data;
    attn_linear_forward_at(m->precision, m->rows, q.query, w->w_q, w->b_q, B, E, E);
    attn_heads_split(m->q_heads, m->rows, B, 1, H, hd, cfg->batch_first);
    if ((s = attn_sdpa_forward(m->attn_heads, m->lse, NULL, m->q_heads, c->k_heads, c->v_heads,
                               &m->sdpa)))
        return s;
    if (q.weights) { /* the reference run, its output to scratch */
        float *weights = q.average_attn_weights ? m->head_weights : q.weights;
        if ((s = attn_sdpa_forward(m->d_attn_heads, m->lse, weights, m->q_heads, c->k_heads,
                                   c->v_heads, &m->sdpa)))
            return s;
        if (q.average_attn_weights) average_heads(q.weights, m->head_weights, B, H, 1, c->capacity);
    }
    attn_heads_merge(m->merged, m->attn_heads, B, 1, H, hd, cfg->batch_first);
    attn_linear_forward_at(m->precision, out, m->merged, w->w_out, w->b_out, B, E, E);
    return ATTN_OK;
}
