/* One sublayer of a Transformer layer, and the naming helpers the modules share. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/nn.h"
#include "core/error.h"
#include "nn/mha_impl.h"
#include "nn/transformer_impl.h"

/* ---- parameters by name ---- */

attn_status attn_tf_affine_bind(attn_tf_affine *a, const attn_params *p, const char *prefix)
{
    attn_status s;
    if ((s = attn_param_bind(&a->w, &a->dw, p, prefix, "weight")) ||
        (s = attn_param_bind(&a->b, &a->db, p, prefix, "bias")))
        return s;
    return ATTN_OK;
}

uint64_t attn_tf_seed(uint64_t seed, uint64_t a, uint64_t b)
{
    uint32_t words[4];
    attn_philox4x32(words, seed, a, b);
    return (uint64_t)words[0] | (uint64_t)words[1] << 32;
}

void attn_tf_init_xavier(const attn_params *p, const char *prefix, attn_rng *rng)
{
    const size_t length = strlen(prefix);
    for (int i = 0; i < p->count; i++) {
        const attn_param *it = &p->items[i];
        if (it->ndim == 2 && strncmp(it->name, prefix, length) == 0)
            attn_init_xavier_uniform(p->data + it->offset, (int)it->shape[0], (int)it->shape[1],
                                     rng);
    }
}

attn_status attn_tf_check_layer_config(const attn_transformer_layer_config *cfg)
{
    attn_status s;
    if ((s = attn_check_not_null(cfg, "transformer layer config")) ||
        (s = attn_check_at_least(cfg->d_model, 1, "d_model")) ||
        (s = attn_check_at_least(cfg->nhead, 1, "nhead")) ||
        (s = attn_check_at_least(cfg->dim_feedforward, 1, "dim_feedforward")))
        return s;
    if (cfg->d_model % cfg->nhead != 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "d_model %d is not divisible by nhead %d",
                          cfg->d_model, cfg->nhead);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "dropout %g is outside [0, 1)",
                          (double)cfg->dropout);
    if (!(cfg->layer_norm_eps > 0.0f && isfinite(cfg->layer_norm_eps)))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "layer_norm_eps %g must be positive and finite",
                          (double)cfg->layer_norm_eps);
    switch (cfg->activation) {
    case ATTN_ACT_RELU:
    case ATTN_ACT_GELU:
    case ATTN_ACT_GELU_TANH:
    case ATTN_ACT_TANH:
        return ATTN_OK;
    }
    return attn_error(ATTN_ERR_INVALID_ARGUMENT, "activation %d is not an attn_activation",
                      (int)cfg->activation);
}

/* ---- the sublayer ---- */

static bool is_attention(const attn_tf_sublayer *s) { return s->role != ATTN_TF_FEEDFORWARD; }

static const char *attention_name(const attn_tf_sublayer *s)
{
    return s->role == ATTN_TF_SELF_ATTENTION ? "self_attn." : "multihead_attn.";
}

attn_status attn_tf_sublayer_init(attn_tf_sublayer *s, const attn_transformer_layer_config *cfg,
                                  attn_tf_role role, int norm_index, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->role = role;
    s->norm_index = norm_index;
    if (role == ATTN_TF_FEEDFORWARD) return ATTN_OK;
    s->mha_seed = seed;
    const attn_mha_config mha = {.embed_dim = cfg->d_model,
                                 .num_heads = cfg->nhead,
                                 .bias = true,
                                 .batch_first = cfg->batch_first,
                                 .dropout = cfg->dropout};
    return attn_mha_new(&s->mha, &mha);
}

void attn_tf_sublayer_free(attn_tf_sublayer *s)
{
    attn_mha_free(s->mha);
    attn_activations_free(&s->acts);
    memset(s, 0, sizeof *s);
}

void attn_tf_sublayer_specs_main(const attn_tf_sublayer *s, attn_specs *specs,
                                 const char *prefix)
{
    const int64_t E = s->cfg.d_model, F = s->cfg.dim_feedforward;
    if (is_attention(s)) {
        char inner[ATTN_PARAM_NAME_MAX];
        snprintf(inner, sizeof inner, "%s%s", prefix, attention_name(s));
        attn_mha_specs(s->mha, specs, inner);
        return;
    }
    attn_specs_add(specs, prefix, "linear1.weight", 2, F, E);
    attn_specs_add(specs, prefix, "linear1.bias", 1, F, 0);
    attn_specs_add(specs, prefix, "linear2.weight", 2, E, F);
    attn_specs_add(specs, prefix, "linear2.bias", 1, E, 0);
}

static void norm_prefix(char *buf, size_t size, const attn_tf_sublayer *s, const char *prefix)
{
    snprintf(buf, size, "%snorm%d.", prefix, s->norm_index);
}

void attn_tf_sublayer_specs_norm(const attn_tf_sublayer *s, attn_specs *specs,
                                 const char *prefix)
{
    char name[ATTN_PARAM_NAME_MAX];
    norm_prefix(name, sizeof name, s, prefix);
    attn_specs_add(specs, name, "weight", 1, s->cfg.d_model, 0);
    attn_specs_add(specs, name, "bias", 1, s->cfg.d_model, 0);
}

/* The attention's parameters under prefix + "self_attn." or "multihead_attn.". */
static attn_status bind_attention(attn_tf_sublayer *s, const attn_params *p, const char *prefix)
{
    char inner[ATTN_PARAM_NAME_MAX];
    snprintf(inner, sizeof inner, "%s%s", prefix, attention_name(s));
    return attn_mha_bind(s->mha, p, inner, s->mha_seed);
}

attn_status attn_tf_sublayer_bind(attn_tf_sublayer *s, const attn_params *p, const char *prefix,
                                  attn_rng *rng)
{
    char name[ATTN_PARAM_NAME_MAX];
    attn_status st;
    norm_prefix(name, sizeof name, s, prefix);
    if ((st = attn_tf_affine_bind(&s->norm, p, name))) return st;
    const int E = s->cfg.d_model, F = s->cfg.dim_feedforward;
    for (int e = 0; e < E; e++) s->norm.w[e] = 1.0f, s->norm.b[e] = 0.0f;
    if (is_attention(s)) return bind_attention(s, p, prefix);
    snprintf(name, sizeof name, "%slinear1.", prefix);
    if ((st = attn_tf_affine_bind(&s->linear1, p, name))) return st;
    snprintf(name, sizeof name, "%slinear2.", prefix);
    if ((st = attn_tf_affine_bind(&s->linear2, p, name))) return st;
    attn_init_linear(s->linear1.w, s->linear1.b, F, E, rng);
    attn_init_linear(s->linear2.w, s->linear2.b, E, F, rng);
    return ATTN_OK;
}

static attn_status layout(attn_tf_sublayer *s)
{
    const size_t rows = (size_t)s->rows, E = (size_t)s->cfg.d_model;
    const size_t F = s->role == ATTN_TF_FEEDFORWARD ? (size_t)s->cfg.dim_feedforward : 0;
    const attn_activation_view views[] = {
        {&s->y, rows * E}, {&s->z, rows * E},  {&s->mean, rows},
        {&s->rstd, rows},  {&s->f1, rows * F}, {&s->a, rows * F},
    };
    return attn_activations_layout(&s->acts, views, (int)(sizeof views / sizeof views[0]));
}

attn_mha_input attn_tf_attention_input(const attn_tf_sublayer *s, const float *u,
                                       const attn_tf_call *c)
{
    const bool self = s->role == ATTN_TF_SELF_ATTENTION;
    const attn_transformer_mask *m = c->mask;
    return (attn_mha_input){
        .query = u,
        .key = self ? u : c->memory,
        .value = self ? u : c->memory,
        .batch = c->batch,
        .len_q = c->len,
        .len_k = self ? c->len : c->memory_len,
        .key_padding_mask = m->key_padding_mask,
        .key_padding_mask_type = m->key_padding_mask_type,
        .attn_mask = m->attn_mask,
        .attn_mask_type = m->attn_mask_type,
        .attn_mask_ndim = m->attn_mask_ndim,
        .is_causal = m->is_causal,
        .training = c->training,
        .dropout_seed = s->seed_inner,
        .weights = c->weights,
        .average_attn_weights = true,
    };
}

/* out: (rows, E) = the attention of u (rows, E) over itself or over the memory, or
 * over the cached positions (u's own appended first for self-attention). */
static attn_status attention_forward(attn_tf_sublayer *s, float *out, const float *u,
                                     const attn_tf_call *c)
{
    const attn_mha_input in = attn_tf_attention_input(s, u, c);
    if (c->cache == NULL) return attn_mha_forward(s->mha, out, &in);
    attn_status st;
    if (s->role == ATTN_TF_SELF_ATTENTION &&
        (st = attn_mha_cache_append(s->mha, c->cache, u, u, c->len)))
        return st;
    return attn_mha_cached_forward(s->mha, out, c->cache, &in);
}

/* out: (rows, E) = linear2(dropout(activation(linear1(u)))), keeping f1 and a. */
static attn_status feedforward_forward(attn_tf_sublayer *s, float *out, const float *u)
{
    const int rows = s->rows, E = s->cfg.d_model, F = s->cfg.dim_feedforward;
    const size_t n = (size_t)rows * (size_t)F;
    attn_status st;
    if ((st = attn_linear_forward_at(s->precision, s->f1, u, s->linear1.w, s->linear1.b, rows, E,
                                     F)) ||
        (st = attn_activation_forward(s->cfg.activation, s->a, s->f1, n)) ||
        (s->p > 0.0f && (st = attn_dropout_forward(s->a, s->a, n, s->p, s->seed_inner))))
        return st;
    return attn_linear_forward_at(s->precision, out, s->a, s->linear2.w, s->linear2.b, rows, F, E);
}

attn_status attn_tf_sublayer_forward(attn_tf_sublayer *s, const float *x, const attn_tf_call *c)
{
    attn_status st;
    s->rows = c->batch * c->len;
    if ((st = layout(s))) return st;
    const int rows = s->rows, E = s->cfg.d_model;
    const size_t n = (size_t)rows * (size_t)E;
    const float eps = s->cfg.layer_norm_eps;
    s->x = x;
    s->p = c->training ? s->cfg.dropout : 0.0f;
    s->seed_residual = attn_tf_seed(c->seed, 0, 0);
    s->seed_inner = attn_tf_seed(c->seed, 1, 0);
    const bool pre = s->cfg.norm_first;
    const float *u = x; /* f's input */
    if (pre) {
        if ((st = attn_layernorm_forward(s->z, s->mean, s->rstd, x, s->norm.w, s->norm.b, rows, E,
                                         eps)))
            return st;
        u = s->z;
    }
    float *f = pre ? s->y : s->z; /* f's output, then the residual sum */
    st = is_attention(s) ? attention_forward(s, f, u, c) : feedforward_forward(s, f, u);
    if (st) return st;
    if (s->p > 0.0f && (st = attn_dropout_forward(f, f, n, s->p, s->seed_residual))) return st;
    for (size_t i = 0; i < n; i++) f[i] += x[i];
    if (!pre)
        return attn_layernorm_forward(s->y, s->mean, s->rstd, s->z, s->norm.w, s->norm.b, rows, E,
                                      eps);
    return ATTN_OK;
}

/* du (+=) and dmemory (+=) from df, the gradient of the attention's output; the
 * attention adds its parameter gradients straight into the parent's block. */
static attn_status attention_backward(attn_tf_sublayer *s, float *du, float *dmemory,
                                      const float *df)
{
    float *dkv = s->role == ATTN_TF_SELF_ATTENTION ? du : dmemory;
    return attn_mha_backward(s->mha, du, dkv, dkv, df);
}

/* du (+=) from df, the gradient of linear2's output; two (rows, F) scratch buffers. */
static attn_status feedforward_backward(attn_tf_sublayer *s, float *du, const float *df,
                                        const attn_tf_scratch *scratch, const float *u)
{
    const int rows = s->rows, E = s->cfg.d_model, F = s->cfg.dim_feedforward;
    const size_t n = (size_t)rows * (size_t)F;
    float *da = scratch->dff[0], *other = scratch->dff[1];
    attn_status st;
    memset(da, 0, n * sizeof *da);
    if ((st = attn_linear_backward_at(s->precision, da, s->linear2.dw, s->linear2.db, df, s->a,
                                      s->linear2.w, rows, F, E)))
        return st;
    if (s->p > 0.0f) { /* da becomes the activation's output gradient in `other` */
        memset(other, 0, n * sizeof *other);
        if ((st = attn_dropout_backward(other, da, n, s->p, s->seed_inner))) return st;
        float *swap = da;
        da = other;
        other = swap;
    }
    memset(other, 0, n * sizeof *other);
    if ((st = attn_activation_backward(s->cfg.activation, other, da, s->f1, n))) return st;
    return attn_linear_backward_at(s->precision, du, s->linear1.dw, s->linear1.db, other, u,
                                   s->linear1.w, rows, E, F);
}

attn_status attn_tf_sublayer_backward(attn_tf_sublayer *s, float *dx, float *dmemory,
                                      const float *dy, const attn_tf_scratch *scratch)
{
    const int rows = s->rows, E = s->cfg.d_model;
    const size_t n = (size_t)rows * (size_t)E;
    const bool pre = s->cfg.norm_first;
    attn_status st;
    /* dsum: the gradient of the residual sum x + dropout(f) */
    const float *dsum = dy;
    if (!pre) {
        memset(scratch->dz, 0, n * sizeof *scratch->dz);
        if ((st = attn_layernorm_backward(scratch->dz, s->norm.dw, s->norm.db, dy, s->z, s->mean,
                                          s->rstd, s->norm.w, rows, E)))
            return st;
        dsum = scratch->dz;
    }
    memcpy(dx, dsum, n * sizeof *dx);
    const float *df = dsum;
    if (s->p > 0.0f) {
        memset(scratch->ds, 0, n * sizeof *scratch->ds);
        if ((st = attn_dropout_backward(scratch->ds, dsum, n, s->p, s->seed_residual))) return st;
        df = scratch->ds;
    }
    /* f's input is x after norm, so its gradient adds into dx; before norm it is
     * norm(x), whose gradient then goes through the norm into dx */
    float *du = dx;
    const float *u = s->x;
    if (pre) {
        du = scratch->dz;
        u = s->z;
        memset(du, 0, n * sizeof *du);
    }
    st = is_attention(s) ? attention_backward(s, du, dmemory, df)
                         : feedforward_backward(s, du, df, scratch, u);
    if (st || !pre) return st;
    return attn_layernorm_backward(dx, s->norm.dw, s->norm.db, du, s->x, s->mean, s->rstd,
                                   s->norm.w, rows, E);
}
