/* Inference with a key-value cache: each block keeps the keys and values of the
 * tokens seen so far, so new tokens attend to them without running the context
 * again. New rows attend through the fused kernel, as in training, with the
 * query offset set to the number of cached tokens: the causal mask, the window
 * and ALiBi then see the rows at their positions, as a full pass does.
 *
 * The cache keeps each key/value head's rows contiguous, (Hkv, capacity, hd) per
 * block, so that the first `length` rows of a head are the (Lk, hd) array SDPA
 * reads, with no copy. With capacity > Lk the heads are not contiguous with each
 * other, so attention runs one call per query head (B = H = 1), which also lets
 * grouped query heads share their key/value head by pointer. */
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
    float *x, *ln, *qkv, *merged, *wide; /* (n, C), (n, C), (n, qkv_width), (n, C), (n, 4C) */
    float *q, *att;                      /* (H, n, hd): the queries, attention's output */
    float *mean, *rstd, *lse;            /* (n), (n), (H, n) */
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
    free(c->merged);
    free(c->wide);
    free(c->q);
    free(c->att);
    free(c->mean);
    free(c->rstd);
    free(c->lse);
    c->x = c->ln = c->qkv = c->merged = c->wide = c->q = c->att = NULL;
    c->mean = c->rstd = c->lse = NULL;
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
    c->merged = malloc(n * C * sizeof(float));
    c->wide = malloc(n * 4 * C * sizeof(float));
    c->q = malloc(n * C * sizeof(float));
    c->att = malloc(n * C * sizeof(float));
    c->mean = malloc(n * sizeof(float));
    c->rstd = malloc(n * sizeof(float));
    c->lse = malloc(n * (size_t)m->cfg.n_head * sizeof(float));
    if (!c->x || !c->ln || !c->qkv || !c->merged || !c->wide || !c->q || !c->att || !c->mean ||
        !c->rstd || !c->lse) {
        free_scratch(c);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory to run %d tokens", rows);
    }
    c->rows = rows;
    return ATTN_OK;
}

/* Query head h's attention for the n new rows over the first pos0 + n cached
 * rows of its key/value head: q: (n, hd), k, v: (pos0 + n, hd) -> out: (n, hd),
 * lse: (n); weights: (n, pos0 + n) or NULL. The output always comes from the
 * fused kernel, so that asking for the weights, which only the reference forms,
 * does not change a bit of it: the reference runs first, for the weights alone. */
static attn_status attend_head(const attn_gpt *m, float *out, float *lse, float *weights,
                               const float *q, const float *k, const float *v, int h, int n,
                               int pos0)
{
    const attn_sdpa_config cfg = {
        .batch = 1,
        .heads = 1,
        .len_q = n,
        .len_k = pos0 + n,
        .dim_qk = m->head_dim,
        .dim_v = m->head_dim,
        .causal = true,
        .window = m->cfg.window,
        .q_offset = pos0,
        .alibi_slopes = m->slopes ? m->slopes + h : NULL,
    };
    attn_status s;
    if (weights && (s = attn_sdpa_forward(out, lse, weights, q, k, v, &cfg))) return s;
    return attn_sdpa_forward(out, lse, NULL, q, k, v, &cfg);
}

/* One call's new rows: n of them at positions pos0 .. pos0 + n - 1, and where
 * each block copies the softmax its heads took (NULL: nowhere). */
typedef struct cache_step {
    attn_gpt_cache *c;
    const attn_gpt *m;
    int n, pos0;
    float *const *weights;
} cache_step;

/* Inference's attention for block l: the new rows' keys and values join the
 * cache, then each head's rows attend to the cached rows:
 * qkv: (n, qkv_width) -> merged: (n, C), and weights[l]: (H, n, pos0 + n). */
static attn_status attend_cached(void *pass, int l, float *merged, const float *qkv)
{
    const cache_step *step = pass;
    attn_gpt_cache *c = step->c;
    const attn_gpt *m = step->m;
    const int n = step->n, pos0 = step->pos0;
    float *weights = step->weights ? step->weights[l] : NULL;
    const int H = m->cfg.n_head, Hkv = m->cfg.n_kv_head, hd = m->head_dim, W = m->qkv_width;
    const int C = m->cfg.n_embd, group = H / Hkv, ctx = pos0 + n;
    const size_t plane = (size_t)c->capacity * hd, bytes = (size_t)hd * sizeof(float);
    float *keys = c->keys + (size_t)l * Hkv * plane, *values = c->values + (size_t)l * Hkv * plane;
    attn_status s;

    /* qkv: (n, (H + 2 Hkv) hd) -> q: (H, n, hd) and the cache's rows pos0 .. ctx - 1 */
    for (int h = 0; h < H; h++)
        for (int t = 0; t < n; t++)
            memcpy(c->q + ((size_t)h * n + t) * hd, qkv + (size_t)t * W + (size_t)h * hd, bytes);
    for (int g = 0; g < Hkv; g++)
        for (int t = 0; t < n; t++) {
            const float *row = qkv + (size_t)t * W;
            memcpy(keys + g * plane + (size_t)(pos0 + t) * hd, row + (size_t)(H + g) * hd, bytes);
            memcpy(values + g * plane + (size_t)(pos0 + t) * hd, row + (size_t)(H + Hkv + g) * hd,
                   bytes);
        }
    if (m->cfg.position == ATTN_POS_ROPE) {
        if ((s = attn_rope_forward(c->q, c->q, 1, H, n, hd, pos0, m->cfg.rope_theta))) return s;
        for (int g = 0; g < Hkv; g++) {
            float *k = keys + g * plane + (size_t)pos0 * hd;
            if ((s = attn_rope_forward(k, k, 1, 1, n, hd, pos0, m->cfg.rope_theta))) return s;
        }
    }
    for (int h = 0; h < H; h++) {
        const size_t kv = (size_t)(h / group) * plane;
        if ((s = attend_head(m, c->att + (size_t)h * n * hd, c->lse + (size_t)h * n,
                             weights ? weights + (size_t)h * n * ctx : NULL,
                             c->q + (size_t)h * n * hd, keys + kv, values + kv, h, n, pos0)))
            return s;
    }
    /* att: (H, n, hd) -> merged: (n, H hd) */
    for (int h = 0; h < H; h++)
        for (int t = 0; t < n; t++)
            memcpy(merged + (size_t)t * C + (size_t)h * hd, c->att + ((size_t)h * n + t) * hd,
                   bytes);
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

    const int C = m->cfg.n_embd;
    attn_gpt_embed(m, c->x, ids, n, c->length);
    /* The block's passes in place on c->x, through one set of scratch. */
    const gpt_block_buffers b = {.ln1 = c->ln, .ln1_mean = c->mean, .ln1_rstd = c->rstd,
                                 .qkv = c->qkv, .merged = c->merged, .mid = c->x,
                                 .ln2 = c->ln, .ln2_mean = c->mean, .ln2_rstd = c->rstd,
                                 .fc = c->wide, .gelu = c->wide};
    cache_step step = {c, m, n, c->length, weights};
    const gpt_block_attention att = {attend_cached, &step, 0.0f};
    for (int l = 0; l < m->cfg.n_layer; l++)
        if ((s = attn_gpt_block_forward(m, l, c->x, c->x, n, &b, &att))) return s;
    c->length += n;
    if (logits == NULL) return ATTN_OK;
    if ((s = attn_layernorm_forward(c->ln, c->mean, c->rstd, c->x, m->ln_f.w, m->ln_f.b, n, C,
                                    GPT_LN_EPS)))
        return s;
    attn_sgemm(false, true, n, m->cfg.vocab_size, C, 1.0f, c->ln, C, m->head, C, 0.0f, logits,
               m->cfg.vocab_size);
    return ATTN_OK;
}
