/* A stack of Transformer layers with its final norm (nn.TransformerEncoder or
 * TransformerDecoder as nn.Transformer builds them), or one layer alone: either
 * way a chain of sublayers, each feeding its output to the next. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/nn.h"
#include "core/error.h"
#include "nn/transformer_impl.h"

static int per_layer(const attn_tf_stack *st) { return st->decoder ? 3 : 2; }

/* An encoder layer is self-attention (norm1) then the feed-forward block (norm2);
 * a decoder layer puts the cross-attention (norm2) between them. */
static attn_tf_role role_of(const attn_tf_stack *st, int j)
{
    if (j == 0) return ATTN_TF_SELF_ATTENTION;
    if (st->decoder && j == 1) return ATTN_TF_CROSS_ATTENTION;
    return ATTN_TF_FEEDFORWARD;
}

attn_status attn_tf_stack_init(attn_tf_stack *st, const attn_transformer_layer_config *cfg,
                               bool decoder, bool stacked, int layers, uint64_t seed)
{
    memset(st, 0, sizeof *st);
    st->cfg = *cfg;
    st->decoder = decoder;
    st->stacked = stacked;
    st->layers = layers;
    st->count = layers * per_layer(st);
    st->sub = calloc((size_t)st->count, sizeof *st->sub);
    if (st->sub == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d sublayers", st->count);
    for (int k = 0; k < st->count; k++) {
        const int j = k % per_layer(st);
        attn_status s = attn_tf_sublayer_init(&st->sub[k], cfg, role_of(st, j), j + 1,
                                              attn_tf_seed(seed, (uint64_t)k, 0));
        if (s) {
            attn_tf_stack_free(st);
            return s;
        }
    }
    return ATTN_OK;
}

void attn_tf_stack_free(attn_tf_stack *st)
{
    if (st->sub != NULL)
        for (int k = 0; k < st->count; k++) attn_tf_sublayer_free(&st->sub[k]);
    free(st->sub);
    attn_activations_free(&st->acts);
    memset(st, 0, sizeof *st);
}

void attn_tf_stack_set_precision(attn_tf_stack *st, attn_precision precision)
{
    for (int k = 0; k < st->count; k++) {
        attn_tf_sublayer *s = &st->sub[k];
        s->precision = precision;
        if (s->mha != NULL) attn_mha_set_precision(s->mha, precision);
    }
}

/* "<prefix>layers.<i>." in a stack, "<prefix>" for one layer alone. */
static void layer_prefix(char *buf, size_t size, const attn_tf_stack *st, const char *prefix,
                         int layer)
{
    if (st->stacked)
        snprintf(buf, size, "%slayers.%d.", prefix, layer);
    else
        snprintf(buf, size, "%s", prefix);
}

/* In PyTorch's state_dict order: per layer the attentions and linears, then the
 * norms; the final norm last. */
void attn_tf_stack_specs(const attn_tf_stack *st, attn_specs *specs, const char *prefix)
{
    char lp[ATTN_PARAM_NAME_MAX];
    const int pl = per_layer(st);
    for (int i = 0; i < st->layers; i++) {
        layer_prefix(lp, sizeof lp, st, prefix, i);
        for (int j = 0; j < pl; j++) attn_tf_sublayer_specs_main(&st->sub[i * pl + j], specs, lp);
        for (int j = 0; j < pl; j++) attn_tf_sublayer_specs_norm(&st->sub[i * pl + j], specs, lp);
    }
    if (!st->stacked) return;
    attn_specs_add(specs, prefix, "norm.weight", 1, st->cfg.d_model, 0);
    attn_specs_add(specs, prefix, "norm.bias", 1, st->cfg.d_model, 0);
}

attn_status attn_tf_stack_bind(attn_tf_stack *st, const attn_params *p, const char *prefix,
                               attn_rng *rng)
{
    char lp[ATTN_PARAM_NAME_MAX];
    attn_status s;
    for (int k = 0; k < st->count; k++) {
        layer_prefix(lp, sizeof lp, st, prefix, k / per_layer(st));
        if ((s = attn_tf_sublayer_bind(&st->sub[k], p, lp, rng))) return s;
    }
    if (!st->stacked) return ATTN_OK;
    snprintf(lp, sizeof lp, "%snorm.", prefix);
    if ((s = attn_tf_affine_bind(&st->norm, p, lp))) return s;
    for (int e = 0; e < st->cfg.d_model; e++) st->norm.w[e] = 1.0f, st->norm.b[e] = 0.0f;
    return ATTN_OK;
}

static attn_status check_input(const attn_tf_stack *st, float *out, const float *x,
                               const float *memory, const attn_transformer_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(in, "transformer input")) ||
        (s = attn_check_not_null(out, "out")) ||
        (s = attn_check_not_null(x, st->decoder ? "tgt" : "src")) ||
        (s = attn_check_at_least(in->batch, 1, "batch")) ||
        (s = attn_check_at_least(in->src_len, 1, "src_len")) ||
        (st->decoder && (s = attn_check_at_least(in->tgt_len, 1, "tgt_len"))) ||
        (st->decoder && (s = attn_check_not_null(memory, "memory"))))
        return s;
    const int len = st->decoder ? in->tgt_len : in->src_len;
    const int64_t floats = (int64_t)in->batch * len * st->cfg.d_model;
    const int64_t ff = (int64_t)in->batch * len * st->cfg.dim_feedforward;
    if (floats > INT_MAX || ff > INT_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "batch %d times length %d is too many rows for d_model %d and "
                          "dim_feedforward %d",
                          in->batch, len, st->cfg.d_model, st->cfg.dim_feedforward);
    return ATTN_OK;
}

static attn_status layout(attn_tf_stack *st)
{
    const size_t rows = (size_t)st->rows, E = (size_t)st->cfg.d_model;
    const size_t F = (size_t)st->cfg.dim_feedforward;
    const attn_activation_view views[] = {
        {&st->mean, st->stacked ? rows : 0},
        {&st->rstd, st->stacked ? rows : 0},
        {&st->grad[0], rows * E},
        {&st->grad[1], rows * E},
        {&st->scratch.ds, rows * E},
        {&st->scratch.dz, rows * E},
        {&st->scratch.dff[0], rows * F},
        {&st->scratch.dff[1], rows * F},
    };
    return attn_activations_layout(&st->acts, views, (int)(sizeof views / sizeof views[0]));
}

/* The sublayers in order, then the final norm; with a cache, one position of a
 * decoder attending through it. */
static attn_status run(attn_tf_stack *st, float *out, const float *x, const float *memory,
                       const attn_transformer_input *in, uint64_t seed,
                       attn_tf_decoder_cache *cache)
{
    attn_status s;
    const int len = cache ? 1 : st->decoder ? in->tgt_len : in->src_len, E = st->cfg.d_model;
    st->rows = in->batch * len;
    if ((s = layout(st))) return s;
    const int pl = per_layer(st);
    const float *h = x;
    for (int k = 0; k < st->count; k++) {
        const attn_tf_role role = st->sub[k].role;
        const int layer = k / pl;
        const bool last_cross = role == ATTN_TF_CROSS_ATTENTION && layer == st->layers - 1;
        const attn_tf_call call = {
            .batch = in->batch,
            .len = len,
            .memory_len = in->src_len,
            .memory = memory,
            .mask = role == ATTN_TF_CROSS_ATTENTION ? &in->memory_mask
                    : st->decoder                   ? &in->tgt_mask
                                                    : &in->src_mask,
            .training = in->training,
            .seed = attn_tf_seed(seed, (uint64_t)k, 1),
            .weights = last_cross ? in->cross_weights : NULL,
            .cache = cache == NULL                    ? NULL
                     : role == ATTN_TF_SELF_ATTENTION  ? &cache->self[layer]
                     : role == ATTN_TF_CROSS_ATTENTION ? &cache->cross[layer]
                                                       : NULL,
        };
        if ((s = attn_tf_sublayer_forward(&st->sub[k], h, &call))) return s;
        h = st->sub[k].y;
    }
    st->last = h;
    if (st->stacked)
        return attn_layernorm_forward(out, st->mean, st->rstd, h, st->norm.w, st->norm.b,
                                      st->rows, E, st->cfg.layer_norm_eps);
    memcpy(out, h, (size_t)st->rows * (size_t)E * sizeof *out);
    return ATTN_OK;
}

attn_status attn_tf_stack_forward(attn_tf_stack *st, float *out, const float *x,
                                  const float *memory, const attn_transformer_input *in,
                                  uint64_t seed)
{
    attn_status s;
    st->has_forward = false;
    if ((s = check_input(st, out, x, memory, in)) || (s = run(st, out, x, memory, in, seed, NULL)))
        return s;
    st->has_forward = true;
    return ATTN_OK;
}

/* ---- incremental decoding ---- */

void attn_tf_decoder_cache_free(attn_tf_decoder_cache *c)
{
    for (int l = 0; l < c->layers; l++) {
        if (c->self) attn_mha_cache_free(&c->self[l]);
        if (c->cross) attn_mha_cache_free(&c->cross[l]);
    }
    free(c->self);
    free(c->cross);
    memset(c, 0, sizeof *c);
}

attn_status attn_tf_decoder_cache_init(attn_tf_decoder_cache *c, attn_tf_stack *st,
                                       const float *memory, int batch, int memory_len,
                                       int capacity)
{
    attn_status s;
    attn_tf_decoder_cache_free(c);
    if (!st->decoder)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "only a decoder stack decodes step by step");
    if ((s = attn_check_not_null(memory, "memory")) ||
        (s = attn_check_at_least(memory_len, 1, "memory_len")))
        return s;
    c->layers = st->layers;
    c->self = calloc((size_t)st->layers, sizeof *c->self);
    c->cross = calloc((size_t)st->layers, sizeof *c->cross);
    if (c->self == NULL || c->cross == NULL) {
        attn_tf_decoder_cache_free(c);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d layers' caches", st->layers);
    }
    const int pl = per_layer(st);
    for (int l = 0; l < st->layers; l++) {
        attn_mha *self = st->sub[l * pl].mha, *cross = st->sub[l * pl + 1].mha;
        if ((s = attn_mha_cache_init(&c->self[l], self, batch, capacity)) ||
            (s = attn_mha_cache_init(&c->cross[l], cross, batch, memory_len)) ||
            (s = attn_mha_cache_append(cross, &c->cross[l], memory, memory, memory_len))) {
            attn_tf_decoder_cache_free(c);
            return s;
        }
    }
    return ATTN_OK;
}

void attn_tf_decoder_cache_reorder(attn_tf_decoder_cache *c, const int32_t *parent)
{
    for (int l = 0; l < c->layers; l++) attn_mha_cache_reorder(&c->self[l], parent);
}

attn_status attn_tf_stack_step(attn_tf_stack *st, float *out, const float *x,
                               attn_tf_decoder_cache *cache, const attn_transformer_input *in)
{
    attn_status s;
    st->has_forward = false;
    if ((s = attn_check_not_null(cache, "cache")) || (s = attn_check_not_null(in, "input")) ||
        (s = attn_check_not_null(x, "tgt")) || (s = attn_check_not_null(out, "out")))
        return s;
    if (cache->layers != st->layers || in->batch != cache->self[0].batch ||
        in->src_len != cache->cross[0].capacity)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "a decoding step of batch %d over %d memory positions does not fit a "
                          "cache of %d layers, batch %d, %d memory positions",
                          in->batch, in->src_len, cache->layers, cache->self[0].batch,
                          cache->cross[0].capacity);
    attn_transformer_input one = *in;
    one.training = false;
    return run(st, out, x, NULL, &one, 0, cache);
}

attn_status attn_tf_stack_backward(attn_tf_stack *st, float *dx, float *dmemory, const float *dout)
{
    attn_status s;
    if ((s = attn_check_not_null(dout, "dout"))) return s;
    if (!st->has_forward)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "a transformer backward needs a successful forward first");
    const int E = st->cfg.d_model;
    const size_t n = (size_t)st->rows * (size_t)E;
    const float *dy = dout;
    /* The final norm writes grad[1] and the sublayers then alternate from grad[0], so
     * that no sublayer writes the buffer it reads. */
    if (st->stacked) {
        memset(st->grad[1], 0, n * sizeof *st->grad[1]);
        if ((s = attn_layernorm_backward(st->grad[1], st->norm.dw, st->norm.db, dout, st->last,
                                         st->mean, st->rstd, st->norm.w, st->rows, E)))
            return s;
        dy = st->grad[1];
    }
    int next = 0;
    for (int k = st->count - 1; k >= 0; k--) {
        float *g = st->grad[next];
        next ^= 1;
        if ((s = attn_tf_sublayer_backward(&st->sub[k], g, dmemory, dy, &st->scratch))) return s;
        dy = g;
    }
    if (dx != NULL)
        for (size_t i = 0; i < n; i++) dx[i] += dy[i];
    return ATTN_OK;
}
