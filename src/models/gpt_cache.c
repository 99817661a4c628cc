/* Inference with a key-value cache: each block keeps the keys and values of the
 * tokens seen so far, so new tokens attend to them without running the context
 * again. New rows attend through two products per head against the cached
 * rows (a row of scores per new token), which for one token is O(context). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/kernels.h"
#include "core/error.h"
#include "models/gpt_impl.h"

struct attn_gpt_cache {
    int capacity, length;
    int layers, kv_heads, head_dim;
    float *keys, *values; /* (layers, Hkv, capacity, hd), after RoPE */
    /* scratch for `rows` new tokens */
    int rows;
    float *x, *ln, *qkv, *q, *merged, *wide, *scores;
    float *mean, *rstd;
};

attn_status attn_gpt_cache_create(attn_gpt_cache **out, const attn_gpt *m, int capacity)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "cache output")) || (s = attn_check_not_null(m, "gpt")) ||
        (s = attn_check_at_least(capacity, 1, "cache capacity")))
        return s;
    *out = NULL;
    if (capacity > m->cfg.block_size)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "a cache of %d tokens exceeds the block size %d", capacity,
                          m->cfg.block_size);
    attn_gpt_cache *c = calloc(1, sizeof *c);
    if (c == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for a cache");
    c->capacity = capacity;
    c->layers = m->cfg.n_layer;
    c->kv_heads = m->cfg.n_kv_head;
    c->head_dim = m->head_dim;
    const size_t n = (size_t)c->layers * c->kv_heads * capacity * c->head_dim;
    c->keys = malloc(n * sizeof *c->keys);
    c->values = malloc(n * sizeof *c->values);
    if (c->keys == NULL || c->values == NULL) {
        attn_gpt_cache_free(c);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for a cache of %d tokens",
                          capacity);
    }
    *out = c;
    return ATTN_OK;
}

static void free_scratch(attn_gpt_cache *c)
{
    free(c->x);
    free(c->ln);
    free(c->qkv);
    free(c->q);
    free(c->merged);
    free(c->wide);
    free(c->scores);
    free(c->mean);
    free(c->rstd);
    c->x = c->ln = c->qkv = c->q = c->merged = c->wide = c->scores = c->mean = c->rstd = NULL;
    c->rows = 0;
}

void attn_gpt_cache_free(attn_gpt_cache *c)
{
    if (c == NULL) return;
    free_scratch(c);
    free(c->keys);
    free(c->values);
    free(c);
}

int attn_gpt_cache_length(const attn_gpt_cache *c) { return c ? c->length : 0; }

void attn_gpt_cache_reset(attn_gpt_cache *c)
{
    if (c) c->length = 0;
}

static attn_status ensure_scratch(attn_gpt_cache *c, const attn_gpt *m, int rows)
{
    if (rows <= c->rows) return ATTN_OK;
    free_scratch(c);
    const size_t C = (size_t)m->cfg.n_embd, n = (size_t)rows;
    c->x = malloc(n * C * sizeof(float));
    c->ln = malloc(n * C * sizeof(float));
    c->qkv = malloc(n * (size_t)m->qkv_width * sizeof(float));
    c->q = malloc(n * C * sizeof(float));
    c->merged = malloc(n * C * sizeof(float));
    c->wide = malloc(n * 4 * C * sizeof(float));
    c->scores = malloc(n * (size_t)c->capacity * sizeof(float));
    c->mean = malloc(n * sizeof(float));
    c->rstd = malloc(n * sizeof(float));
    if (!c->x || !c->ln || !c->qkv || !c->q || !c->merged || !c->wide || !c->scores || !c->mean ||
        !c->rstd) {
        free_scratch(c);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory to run %d tokens", rows);
    }
    c->rows = rows;
    return ATTN_OK;
}

/* Block l's attention for n new rows at positions pos0 .. pos0 + n - 1: their
 * keys and values join the cache, then each head's rows attend to every cached
 * row they may see -> c->merged: (n, C); weights: (H, n, pos0 + n) or NULL, a
 * copy of the softmax each head took. */
static attn_status attend(attn_gpt_cache *c, const attn_gpt *m, int l, int n, int pos0,
                          float *weights)
{
    const int H = m->cfg.n_head, Hkv = m->cfg.n_kv_head, hd = m->head_dim, W = m->qkv_width;
    const int C = m->cfg.n_embd, group = H / Hkv, ctx = pos0 + n;
    const size_t plane = (size_t)c->capacity * hd;
    float *keys = c->keys + (size_t)l * Hkv * plane, *values = c->values + (size_t)l * Hkv * plane;
    attn_status s;

    for (int h = 0; h < H; h++)
        for (int t = 0; t < n; t++)
            memcpy(c->q + ((size_t)h * n + t) * hd, c->qkv + (size_t)t * W + (size_t)h * hd,
                   (size_t)hd * sizeof(float));
    for (int g = 0; g < Hkv; g++)
        for (int t = 0; t < n; t++) {
            memcpy(keys + g * plane + (size_t)(pos0 + t) * hd,
                   c->qkv + (size_t)t * W + (size_t)(H + g) * hd, (size_t)hd * sizeof(float));
            memcpy(values + g * plane + (size_t)(pos0 + t) * hd,
                   c->qkv + (size_t)t * W + (size_t)(H + Hkv + g) * hd, (size_t)hd * sizeof(float));
        }
    if (m->cfg.position == ATTN_POS_ROPE) {
        if ((s = attn_rope_forward(c->q, c->q, 1, H, n, hd, pos0, m->cfg.rope_theta))) return s;
        for (int g = 0; g < Hkv; g++) {
            float *k = keys + g * plane + (size_t)pos0 * hd;
            if ((s = attn_rope_forward(k, k, 1, 1, n, hd, pos0, m->cfg.rope_theta))) return s;
        }
    }

    const float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < H; h++) {
        const float *k = keys + (size_t)(h / group) * plane, *v = values + (size_t)(h / group) * plane;
        const float slope = m->slopes ? m->slopes[h] : 0.0f;
        attn_sgemm(false, true, n, ctx, hd, scale, c->q + (size_t)h * n * hd, hd, k, hd, 0.0f,
                   c->scores, ctx);
        for (int t = 0; t < n; t++) {
            const int pos = pos0 + t;
            float *row = c->scores + (size_t)t * ctx;
            for (int j = 0; j < ctx; j++) {
                if (m->slopes) row[j] -= slope * (float)(pos - j);
                if (j > pos || (m->cfg.window > 0 && pos - j >= m->cfg.window)) row[j] = -INFINITY;
            }
        }
        if ((s = attn_softmax_forward(c->scores, c->scores, NULL, n, ctx))) return s;
        if (weights)
            memcpy(weights + (size_t)h * n * ctx, c->scores, (size_t)n * ctx * sizeof(float));
        attn_sgemm(false, false, n, hd, ctx, 1.0f, c->scores, ctx, v, hd, 0.0f,
                   c->merged + (size_t)h * hd, C);
    }
    return ATTN_OK;
}

attn_status attn_gpt_cache_forward(attn_gpt *m, attn_gpt_cache *c, float *logits,
                                   const int32_t *ids, int n)
{
    return attn_gpt_cache_forward_weights(m, c, logits, ids, n, NULL);
}

attn_status attn_gpt_cache_forward_weights(attn_gpt *m, attn_gpt_cache *c, float *logits,
                                           const int32_t *ids, int n, float *const *weights)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "gpt")) || (s = attn_check_not_null(c, "cache")) ||
        (s = attn_check_not_null(ids, "ids")) || (s = attn_check_at_least(n, 1, "new tokens")))
        return s;
    if (c->layers != m->cfg.n_layer || c->kv_heads != m->cfg.n_kv_head ||
        c->head_dim != m->head_dim)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "the cache was made for another model");
    if (n > c->capacity - c->length)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "context of %d tokens exceeds the cache's %d", c->length + n,
                          c->capacity);
    if ((s = attn_gpt_check_ids(m, ids, n, "token")) || (s = ensure_scratch(c, m, n))) return s;

    const int C = m->cfg.n_embd, pos0 = c->length;
    attn_gpt_embed(m, c->x, ids, n, pos0);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const gpt_layer *L = &m->layers[l];
        if ((s = attn_layernorm_forward(c->ln, c->mean, c->rstd, c->x, L->ln_1.w, L->ln_1.b, n, C,
                                        GPT_LN_EPS)) ||
            (s = attn_linear_forward(c->qkv, c->ln, L->c_attn.w, L->c_attn.b, n, C,
                                     m->qkv_width)) ||
            (s = attend(c, m, l, n, pos0, weights ? weights[l] : NULL)))
            return s;
        attn_gpt_residual_linear(c->x, c->x, c->merged, &L->attn_proj, n, C, C);
        if ((s = attn_layernorm_forward(c->ln, c->mean, c->rstd, c->x, L->ln_2.w, L->ln_2.b, n, C,
                                        GPT_LN_EPS)) ||
            (s = attn_linear_forward(c->wide, c->ln, L->c_fc.w, L->c_fc.b, n, C, 4 * C)))
            return s;
        attn_gpt_gelu(c->wide, c->wide, (size_t)n * 4 * C);
        attn_gpt_residual_linear(c->x, c->x, c->wide, &L->mlp_proj, n, 4 * C, C);
    }
    c->length += n;
    if (logits == NULL) return ATTN_OK;
    if ((s = attn_layernorm_forward(c->ln, c->mean, c->rstd, c->x, m->ln_f.w, m->ln_f.b, n, C,
                                    GPT_LN_EPS)))
        return s;
    attn_sgemm(false, true, n, m->cfg.vocab_size, C, 1.0f, c->ln, C, m->head, C, 0.0f, logits,
               m->cfg.vocab_size);
    return ATTN_OK;
}
