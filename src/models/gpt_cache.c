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
 * grouped query heads share their key/value head by pointer.
 *
 * At ATTN_BF16 (bf16 inference) the cache holds its keys and values in bf16,
 * half the memory, the values in the pairs of rows the bf16 kernel's P V reads
 * (kernels/flash.h: rows 2t and 2t + 1 interleaved), so that a step attends over
 * them in place; and it rounds the model's Linear weights and lm_head to bf16 once,
 * at creation: each token then reads 2 bytes per weight and per cached value. The
 * Linears multiply them by their input rounded to bf16 (kernels/gemv_bf16.h; a
 * long prompt's as a matrix product, see GPT_BF16_PRODUCT_ROWS),
 * attention is the fused bf16 kernel (q rounded too; scores, softmax and sums
 * float32); embeddings, LayerNorms, GELU and the residual stream stay float32.
 *
 * The keys and values, the bf16 weights and the scratch live on huge pages
 * (core/large_alloc.h): each decoding step writes a row into every head's keys
 * and values, a new 4 KB page of each every 16 to 32 steps, and the first touch
 * of a page cost a fault of 5 to 17 us here, a few per step. */
#include <stdlib.h>
#include <string.h>

#include "attn/kernels.h"
#include "core/error.h"
#include "core/large_alloc.h"
#include "kernels/bf16_rows.h"
#include "kernels/flash.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemv_bf16.h"
#include "models/gpt_impl.h"

struct attn_gpt_cache {
    int capacity, length;
    int layers, kv_heads, head_dim;
    attn_precision precision;
    /* (layers, Hkv, capacity, hd), after RoPE: float32, or at ATTN_BF16 bf16 */
    float *keys, *values;
    uint16_t *keys16;
    /* At ATTN_BF16: (layers, Hkv, value_plane) in pairs of rows, zero padded */
    uint16_t *values16;
    /* At ATTN_BF16, the weights the passes read, rounded once at creation: the
     * Linears of every block and lm_head (V, C), in one allocation. */
    uint16_t *weights16, *head16;
    gpt_layer_bf16 layers16[ATTN_GPT_MAX_LAYERS];
    /* scratch for `rows` new tokens, views into one allocation (`scratch`) */
    int rows;
    void *scratch;
    float *x, *ln, *qkv, *merged, *wide; /* (n, C), (n, C), (n, qkv_width), (n, C), (n, 4C) */
    float *q, *att;                      /* (H, n, hd): the queries, attention's output */
    float *mean, *rstd, *lse;            /* (n), (n), (H, n) */
    uint16_t *x16, *q16;                 /* at ATTN_BF16: (n, 4C), (H, n, hd) */
    attn_status *head_status;            /* (H) of the heads attending side by side */
};

/* Rounds m's Linear weights and lm_head to bf16 into c->weights16, on the vector
 * kernels and the threads (attn_bf16_from_float's rounding). */
static attn_status round_weights(attn_gpt_cache *c, const attn_gpt *m)
{
    const size_t C = (size_t)m->cfg.n_embd, W = (size_t)m->qkv_width;
    const size_t per_layer = W * C + C * C + 4 * C * C + 4 * C * C;
    const size_t head = (size_t)m->cfg.vocab_size * C;
    c->weights16 = attn_alloc_large((per_layer * (size_t)c->layers + head) * sizeof *c->weights16);
    if (c->weights16 == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the bf16 weights");
    uint16_t *next = c->weights16;
    for (int l = 0; l < c->layers; l++) {
        const gpt_layer *L = &m->layers[l];
        gpt_layer_bf16 *L16 = &c->layers16[l];
        const struct {
            uint16_t **to;
            const float *from;
            size_t rows, cols;
        } parts[] = {{&L16->c_attn, L->c_attn.w, W, C},
                     {&L16->attn_proj, L->attn_proj.w, C, C},
                     {&L16->c_fc, L->c_fc.w, 4 * C, C},
                     {&L16->mlp_proj, L->mlp_proj.w, C, 4 * C}};
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            *parts[i].to = next;
            attn_bf16_round_rows(next, parts[i].from, (int)parts[i].rows, (int)parts[i].cols,
                                 (int)parts[i].cols);
            next += parts[i].rows * parts[i].cols;
        }
    }
    c->head16 = next;
    attn_bf16_round_rows(c->head16, m->head, m->cfg.vocab_size, (int)C, (int)C);
    return ATTN_OK;
}

/* One key/value head's values at ATTN_BF16, in pairs of rows (kernels/flash.h):
 * (ceil(capacity / 2), attn_flash_pair_width(hd), 2). */
static size_t value_plane(const attn_gpt_cache *c)
{
    return (size_t)(c->capacity + 1) / 2 * (size_t)attn_flash_pair_width(c->head_dim) * 2;
}

attn_status attn_gpt_cache_create_at(attn_gpt_cache **out, const attn_gpt *m, int capacity,
                                     attn_precision precision)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "cache output")) || (s = attn_check_not_null(m, "gpt")) ||
        (s = attn_check_at_least(capacity, 1, "cache capacity")) ||
        (s = attn_check_precision(precision)))
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
    c->precision = precision;
    const size_t n = (size_t)c->layers * c->kv_heads * capacity * c->head_dim;
    bool stored;
    if (precision == ATTN_BF16) {
        const size_t values = (size_t)c->layers * c->kv_heads * value_plane(c);
        c->keys16 = attn_alloc_large(n * sizeof *c->keys16);
        c->values16 = attn_alloc_large(values * sizeof *c->values16);
        stored = c->keys16 && c->values16;
        /* zeroed: the padding, and a pair's row not yet written, multiply zeros */
        if (stored) memset(c->values16, 0, values * sizeof *c->values16);
    } else {
        c->keys = attn_alloc_large(n * sizeof *c->keys);
        c->values = attn_alloc_large(n * sizeof *c->values);
        stored = c->keys && c->values;
    }
    if (!stored) {
        attn_gpt_cache_free(c);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for a cache of %d tokens",
                          capacity);
    }
    if (precision == ATTN_BF16 && (s = round_weights(c, m))) {
        attn_gpt_cache_free(c);
        return s;
    }
    *out = c;
    return ATTN_OK;
}

attn_status attn_gpt_cache_create(attn_gpt_cache **out, const attn_gpt *m, int capacity)
{
    return attn_gpt_cache_create_at(out, m, capacity, ATTN_FLOAT32);
}

static void free_scratch(attn_gpt_cache *c)
{
    free(c->scratch);
    c->scratch = NULL;
    c->rows = 0;
}

void attn_gpt_cache_free(attn_gpt_cache *c)
{
    if (c == NULL) return;
    free_scratch(c);
    free(c->keys);
    free(c->values);
    free(c->keys16);
    free(c->values16);
    free(c->weights16);
    free(c);
}

int attn_gpt_cache_length(const attn_gpt_cache *c) { return c ? c->length : 0; }

size_t attn_gpt_cache_bytes(const attn_gpt *m, int capacity, attn_precision precision)
{
    if (m == NULL || capacity < 0) return 0;
    const size_t values = (size_t)m->cfg.n_layer * m->cfg.n_kv_head * capacity * m->head_dim;
    return 2 * values * (precision == ATTN_BF16 ? sizeof(uint16_t) : sizeof(float));
}

void attn_gpt_cache_reset(attn_gpt_cache *c)
{
    if (c) c->length = 0;
}

/* Lays c's scratch for `rows` new tokens out in base; with base NULL only counts
 * (and sets the views to NULL). Returns the bytes used. */
static size_t scratch_layout(attn_gpt_cache *c, const attn_gpt *m, int rows, char *base)
{
    const size_t C = (size_t)m->cfg.n_embd, n = (size_t)rows, H = (size_t)m->cfg.n_head;
    const size_t bf16 = c->precision == ATTN_BF16, f = sizeof(float);
    size_t used = 0;
    c->x = attn_carve(base, &used, n * C * f);
    c->ln = attn_carve(base, &used, n * C * f);
    c->qkv = attn_carve(base, &used, n * (size_t)m->qkv_width * f);
    c->merged = attn_carve(base, &used, n * C * f);
    c->wide = attn_carve(base, &used, n * 4 * C * f);
    c->q = attn_carve(base, &used, n * C * f);
    c->att = attn_carve(base, &used, n * C * f);
    c->mean = attn_carve(base, &used, n * f);
    c->rstd = attn_carve(base, &used, n * f);
    c->lse = attn_carve(base, &used, n * H * f);
    c->head_status = attn_carve(base, &used, H * sizeof *c->head_status);
    c->x16 = attn_carve(base, &used, bf16 * n * 4 * C * sizeof *c->x16);
    c->q16 = attn_carve(base, &used, bf16 * n * C * sizeof *c->q16);
    return used;
}

/* The scratch of `rows` new tokens, in one allocation on huge pages
 * (core/large_alloc.h): a prompt's pass writes megabytes of it, and the first
 * touch of each 4 KB page cost a fault, 17 us each on this machine when busy.
 * It grows to at least twice its rows (up to the capacity): generation without
 * the cache runs one token more each pass, and fresh scratch each time would
 * cost its pages' faults and clearing again. */
static attn_status ensure_scratch(attn_gpt_cache *c, const attn_gpt *m, int rows)
{
    if (rows <= c->rows) return ATTN_OK;
    const int doubled = c->rows < c->capacity / 2 ? 2 * c->rows : c->capacity;
    if (rows < doubled) rows = doubled;
    free_scratch(c);
    if ((c->scratch = attn_alloc_large(scratch_layout(c, m, rows, NULL))) == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory to run %d tokens", rows);
    scratch_layout(c, m, rows, c->scratch);
    c->rows = rows;
    return ATTN_OK;
}

/* Query head h's attention config for n new rows over the first pos0 + n cached
 * rows of its key/value head. */
static attn_sdpa_config head_config(const attn_gpt *m, int h, int n, int pos0)
{
    return (attn_sdpa_config){
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
}

/* One call's new rows: n of them at positions pos0 .. pos0 + n - 1, and where
 * each block copies the softmax its heads took (NULL: nowhere). */
typedef struct cache_step {
    attn_gpt_cache *c;
    const attn_gpt *m;
    int n, pos0;
    float *const *weights;
} cache_step;

/* Query head h of block l: its n rows (c->q, or c->q16 at ATTN_BF16) over the
 * cached rows of its key/value head -> c->att: (n, hd) and c->lse: (n) of the
 * head; weights: (n, pos0 + n) or NULL. The output always comes from the fused
 * kernel, so that asking for the weights, which only the reference forms, does
 * not change a bit of it: the reference runs first, for the weights alone. At
 * ATTN_BF16 the fused bf16 kernel reads bf16 q, k and v, with scores, softmax
 * and sums in float32. */
static attn_status attend_head(const cache_step *step, int l, int h, float *weights)
{
    attn_gpt_cache *c = step->c;
    const attn_gpt *m = step->m;
    const int n = step->n, hd = m->head_dim, Hkv = m->cfg.n_kv_head;
    const size_t plane = (size_t)c->capacity * hd;
    const size_t head = (size_t)l * Hkv + (size_t)(h / (m->cfg.n_head / Hkv)), kv = head * plane;
    const size_t rows = (size_t)h * n * hd;
    float *out = c->att + rows, *lse = c->lse + (size_t)h * n;
    const attn_sdpa_config cfg = head_config(m, h, n, step->pos0);
    if (c->precision == ATTN_BF16)
        return attn_flash_bf16_forward_pairs(out, lse, c->q16 + rows, c->keys16 + kv,
                                             c->values16 + head * value_plane(c), &cfg);
    const float *q = c->q + rows, *k = c->keys + kv, *v = c->values + kv;
    attn_status s;
    if (weights && (s = attn_sdpa_forward(out, lse, weights, q, k, v, &cfg))) return s;
    return attn_sdpa_forward(out, lse, NULL, q, k, v, &cfg);
}

/* Every query head of block l. The fused kernel runs one query block (64 rows)
 * of one head on one thread, so the heads run side by side on the threads (each
 * head's kernel then on its thread alone, the inner parallel region inactive):
 * a decoding step's single row, and a prompt's few blocks per head, which one
 * head at a time spread unevenly over the threads (the causal blocks differ in
 * cost). Each head writes only its own rows, so the bits are those of one after
 * another. Only a head per thread or fewer takes the heads one at a time, each
 * over every thread. Even a short context's step shares its heads: run one
 * after another on this thread (6 heads over 64 keys, 49k multiply-adds), a
 * parallel region fewer per block, they took less CPU but 15-25 % more wall
 * time per bf16 decoding step (31 steps 17.2-19.3 ms against 14.3-15.4). */
static attn_status attend_heads(const cache_step *step, int l, float *weights)
{
    attn_gpt_cache *c = step->c;
    const int H = step->m->cfg.n_head, ctx = step->pos0 + step->n;
    if (weights || (step->n > 64 && H <= attn_get_num_threads())) {
        attn_status s;
        for (int h = 0; h < H; h++)
            if ((s = attend_head(step, l, h, weights ? weights + (size_t)h * step->n * ctx : NULL)))
                return s;
        return ATTN_OK;
    }
#pragma omp parallel for schedule(static) num_threads(attn_get_num_threads())
    for (int h = 0; h < H; h++) c->head_status[h] = attend_head(step, l, h, NULL);
    for (int h = 0; h < H; h++)
        if (c->head_status[h])
            return attn_error(c->head_status[h], "attention of head %d over the cache failed: %s",
                              h, attn_status_string(c->head_status[h]));
    return ATTN_OK;
}

/* Inference's attention for block l: the new rows' keys and values join the
 * cache (rounded to bf16 at ATTN_BF16, after RoPE), then each head's rows attend
 * to the cached rows:
 * qkv: (n, qkv_width) -> merged: (n, C), and weights[l]: (H, n, pos0 + n). */
static attn_status attend_cached(void *pass, int l, float *merged, const float *qkv)
{
    const cache_step *step = pass;
    attn_gpt_cache *c = step->c;
    const attn_gpt *m = step->m;
    const int n = step->n, pos0 = step->pos0;
    float *weights = step->weights ? step->weights[l] : NULL;
    const int H = m->cfg.n_head, Hkv = m->cfg.n_kv_head, hd = m->head_dim, W = m->qkv_width;
    const int C = m->cfg.n_embd;
    const bool bf16 = c->precision == ATTN_BF16;
    const size_t plane = (size_t)c->capacity * hd, bytes = (size_t)hd * sizeof(float);
    const size_t block = (size_t)l * Hkv * plane;
    /* The new keys go where attention reads them (float32), or through c->att
     * (Hkv, n, hd), free until attention writes it, on their way to bf16. */
    float *keys = bf16 ? c->att : c->keys + block;
    const size_t key_plane = bf16 ? (size_t)n * hd : plane, key_row0 = bf16 ? 0 : (size_t)pos0;
    attn_status s;

    /* qkv: (n, (H + 2 Hkv) hd) -> q: (H, n, hd), the new keys and values */
    for (int h = 0; h < H; h++)
        for (int t = 0; t < n; t++)
            memcpy(c->q + ((size_t)h * n + t) * hd, qkv + (size_t)t * W + (size_t)h * hd, bytes);
    for (int g = 0; g < Hkv; g++)
        for (int t = 0; t < n; t++) {
            const float *row = qkv + (size_t)t * W;
            const size_t at = block + g * plane + (size_t)(pos0 + t) * hd;
            memcpy(keys + g * key_plane + (key_row0 + t) * hd, row + (size_t)(H + g) * hd, bytes);
            if (bf16)
                attn_flash_bf16_pair_rows(c->values16 + ((size_t)l * Hkv + g) * value_plane(c),
                                          row + (size_t)(H + Hkv + g) * hd, pos0 + t, 1, hd);
            else
                memcpy(c->values + at, row + (size_t)(H + Hkv + g) * hd, bytes);
        }
    if (m->cfg.position == ATTN_POS_ROPE) {
        if ((s = attn_rope_forward(c->q, c->q, 1, H, n, hd, pos0, m->cfg.rope_theta))) return s;
        for (int g = 0; g < Hkv; g++) {
            float *k = keys + g * key_plane + key_row0 * hd;
            if ((s = attn_rope_forward(k, k, 1, 1, n, hd, pos0, m->cfg.rope_theta))) return s;
        }
    }
    if (bf16) {
        attn_bf16_from_float(c->q16, c->q, (size_t)H * n * hd);
        for (int g = 0; g < Hkv; g++)
            attn_bf16_from_float(c->keys16 + block + g * plane + (size_t)pos0 * hd,
                                 keys + g * key_plane, (size_t)n * hd);
    }
    if ((s = attend_heads(step, l, weights))) return s;
    /* att: (H, n, hd) -> merged: (n, H hd) */
    for (int h = 0; h < H; h++)
        for (int t = 0; t < n; t++)
            memcpy(merged + (size_t)t * C + (size_t)h * hd, c->att + ((size_t)h * n + t) * hd,
                   bytes);
    return ATTN_OK;
}

/* Which rows of a pass get logits. */
typedef enum { LOGITS_EVERY_ROW, LOGITS_LAST_ROW } logit_rows;

/* The n tokens' pass over the cache (see attn_gpt_cache_forward) -> logits:
 * (n, V), or (V) of the last row (lm_head on that row alone); weights as
 * attn_gpt_cache_forward_weights. */
static attn_status cache_pass(attn_gpt *m, attn_gpt_cache *c, float *logits, logit_rows rows,
                              const int32_t *ids, int n, float *const *weights)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "gpt")) || (s = attn_check_not_null(c, "cache")) ||
        (s = attn_check_not_null(ids, "ids")) || (s = attn_check_at_least(n, 1, "new tokens")))
        return s;
    if (c->layers != m->cfg.n_layer || c->kv_heads != m->cfg.n_kv_head ||
        c->head_dim != m->head_dim)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "the cache was made for another model");
    if (weights && c->precision != ATTN_FLOAT32)
        return attn_error(ATTN_ERR_UNSUPPORTED, "recording attention needs a float32 cache");
    if (n > c->capacity - c->length)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "context of %d tokens exceeds the cache's %d", c->length + n,
                          c->capacity);
    if ((s = attn_gpt_check_ids(m, ids, n, "token")) || (s = ensure_scratch(c, m, n))) return s;

    const int C = m->cfg.n_embd, V = m->cfg.vocab_size;
    attn_gpt_embed(m, c->x, ids, n, c->length);
    /* The block's passes in place on c->x, through one set of scratch. */
    const gpt_block_buffers b = {.ln1 = c->ln, .ln1_mean = c->mean, .ln1_rstd = c->rstd,
                                 .qkv = c->qkv, .merged = c->merged, .mid = c->x,
                                 .ln2 = c->ln, .ln2_mean = c->mean, .ln2_rstd = c->rstd,
                                 .fc = c->wide, .gelu = c->wide, .x16 = c->x16,
                                 .last_rows = rows == LOGITS_LAST_ROW ? 1 : 0};
    cache_step step = {c, m, n, c->length, weights};
    const gpt_block_attention att = {attend_cached, &step, 0.0f,
                                     c->precision == ATTN_BF16 ? c->layers16 : NULL};
    for (int l = 0; l < m->cfg.n_layer; l++)
        if ((s = attn_gpt_block_forward(m, l, c->x, c->x, n, &b, &att))) return s;
    c->length += n;
    if (logits == NULL) return ATTN_OK;
    /* The rows that get logits: every one, or the last (generation draws from
     * it alone, so the others' lm_head would be wasted). */
    const float *top = rows == LOGITS_LAST_ROW ? c->x + (size_t)(n - 1) * C : c->x;
    const int out = rows == LOGITS_LAST_ROW ? 1 : n;
    if ((s = attn_layernorm_forward(c->ln, c->mean, c->rstd, top, m->ln_f.w, m->ln_f.b, out, C,
                                    GPT_LN_EPS)))
        return s;
    if (c->precision == ATTN_BF16) {
        attn_bf16_from_float(c->x16, c->ln, (size_t)out * C);
        return attn_bf16_weights_product(logits, c->x16, c->head16, out, V, C, false);
    }
    /* lm_head as the full forward takes it (on the matmul primitive past a few
     * rows): dnnl_sgemm's first call of this transposed shape spent 39 ms of a
     * 224-token prompt's 92 ms prefill. */
    attn_affine_product(ATTN_FLOAT32, logits, NULL, c->ln, NULL, m->head, NULL, NULL, out, C, V);
    return ATTN_OK;
}

attn_status attn_gpt_cache_forward(attn_gpt *m, attn_gpt_cache *c, float *logits,
                                   const int32_t *ids, int n)
{
    return cache_pass(m, c, logits, LOGITS_EVERY_ROW, ids, n, NULL);
}

attn_status attn_gpt_cache_forward_weights(attn_gpt *m, attn_gpt_cache *c, float *logits,
                                           const int32_t *ids, int n, float *const *weights)
{
    return cache_pass(m, c, logits, LOGITS_EVERY_ROW, ids, n, weights);
}

attn_status attn_gpt_cache_forward_last(attn_gpt *m, attn_gpt_cache *c, float *logits,
                                        const int32_t *ids, int n)
{
    return cache_pass(m, c, logits, LOGITS_LAST_ROW, ids, n, NULL);
}
