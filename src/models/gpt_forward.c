/* The language model's forward pass over a batch of sequences, keeping what
 * backward needs. Each block is gpt_block.c's, with attention within the batch
 * through the fused kernel: causal, with the sliding window and ALiBi computed
 * inside it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attn/kernels.h"
#include "attn/train.h"
#include "core/error.h"
#include "kernels/bf16_rows.h"
#include "models/gpt_impl.h"

enum { ALIGN_FLOATS = 16 };

static size_t aligned(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

/* Carves the arena into the buffers of a B x T pass; with base NULL only counts. */
static size_t layout(attn_gpt *m, float *base, int B, int T)
{
    const size_t N = (size_t)B * T, C = (size_t)m->cfg.n_embd, V = (size_t)m->cfg.vocab_size;
    const size_t H = (size_t)m->cfg.n_head, L = (size_t)m->cfg.n_layer;
    const bool bf16 = m->precision == ATTN_BF16;
    size_t used = 0;
#define TAKE(ptr, count)                                                                          \
    do {                                                                                         \
        if (base) (ptr) = base + used;                                                          \
        used += aligned(count);                                                                 \
    } while (0)
/* count bf16 values, two to a float, only in bf16 precision (else NULL) */
#define TAKE_BF16(ptr, count)                                                                     \
    do {                                                                                         \
        if (base) (ptr) = bf16 ? (uint16_t *)(void *)(base + used) : NULL;                      \
        if (bf16) used += aligned(((count) + 1) / 2);                                           \
    } while (0)
    TAKE(m->stream, (L + 1) * N * C);
    for (size_t l = 0; l < L; l++) {
        gpt_layer_acts *a = &m->acts[l];
        TAKE(a->mid, N * C);
        TAKE(a->ln1, N * C);
        TAKE(a->ln1_mean, N);
        TAKE(a->ln1_rstd, N);
        TAKE(a->q, N * C);
        TAKE(a->k, N * C);
        TAKE(a->v, N * C);
        TAKE_BF16(a->q16, N * C);
        TAKE_BF16(a->k16, N * C);
        TAKE_BF16(a->v16, N * C);
        TAKE(a->att, N * C);
        TAKE(a->lse, N * H);
        TAKE(a->merged, N * C);
        TAKE(a->ln2, N * C);
        TAKE(a->ln2_mean, N);
        TAKE(a->ln2_rstd, N);
        TAKE(a->fc, 4 * N * C);
        TAKE(a->gelu, 4 * N * C);
    }
    TAKE(m->lnf, N * C);
    TAKE(m->lnf_mean, N);
    TAKE(m->lnf_rstd, N);
    TAKE(m->logits, N * V);
    TAKE(m->probs, N * V);
    TAKE(m->qkv, N * (size_t)m->qkv_width);
    TAKE(m->dstream, N * C);
    TAKE(m->dln, N * C);
    TAKE(m->dwide, 4 * N * C);
    TAKE(m->dwide2, 4 * N * C);
    TAKE(m->dqkv, N * (size_t)m->qkv_width);
    TAKE(m->dq, N * C);
    TAKE(m->dk, N * C);
    TAKE(m->dv, N * C);
    TAKE(m->drot, N * C);
    TAKE(m->dlogits, N * V);
    TAKE_BF16(m->datt16, N * C);
#undef TAKE_BF16
#undef TAKE
    return used;
}

/* The arena grows to at least twice its size: generation without the cache runs
 * one token longer each call, and a fresh arena each time costs its pages'
 * faults and zeroing, more than the pass itself. */
static attn_status prepare(attn_gpt *m, int B, int T)
{
    size_t need = layout(m, NULL, B, T);
    if (need > m->capacity) {
        if (need < 2 * m->capacity) need = 2 * m->capacity;
        /* aligned_alloc takes a multiple of the alignment */
        need = (need + 15) / 16 * 16;
        free(m->arena);
        m->capacity = 0;
        m->arena = aligned_alloc(64, need * sizeof(float));
        if (m->arena == NULL)
            return attn_error(ATTN_ERR_OUT_OF_MEMORY,
                              "no memory for a batch of %d x %d tokens (%zu MB)", B, T,
                              need * sizeof(float) >> 20);
        m->capacity = need;
    }
    layout(m, m->arena, B, T);
    m->B = B;
    m->T = T;
    return ATTN_OK;
}

attn_sdpa_config attn_gpt_sdpa_config(const attn_gpt *m, int l)
{
    return (attn_sdpa_config){
        .batch = m->B,
        .heads = m->cfg.n_head,
        .len_q = m->T,
        .len_k = m->T,
        .dim_qk = m->head_dim,
        .dim_v = m->head_dim,
        .causal = true,
        .window = m->cfg.window,
        .alibi_slopes = m->slopes,
        .dropout_p = attn_gpt_dropout(m),
        .dropout_seed = attn_gpt_dropout_seed(m, GPT_SITE_ATTENTION(l)),
    };
}

/* qkv: (B, T, (H + 2 Hkv) hd) -> q: (B, H, T, hd), and k, v: (B, H, T, hd) with
 * key/value head h / (H / Hkv) repeated for every query head of its group. */
static void split_heads(const attn_gpt *m, float *q, float *k, float *v, const float *qkv)
{
    const int B = m->B, T = m->T, H = m->cfg.n_head, group = H / m->cfg.n_kv_head;
    const int hd = m->head_dim, W = m->qkv_width;
    const size_t bytes = (size_t)hd * sizeof(float);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const int g = h / group;
            for (int t = 0; t < T; t++) {
                const float *row = qkv + ((size_t)b * T + t) * W;
                const size_t dst = (((size_t)b * H + h) * T + t) * hd;
                memcpy(q + dst, row + (size_t)h * hd, bytes);
                memcpy(k + dst, row + (size_t)(H + g) * hd, bytes);
                memcpy(v + dst, row + (size_t)(H + m->cfg.n_kv_head + g) * hd, bytes);
            }
        }
}

/* att: (B, H, T, hd) -> merged: (B, T, H hd). */
static void merge_heads(const attn_gpt *m, float *merged, const float *att)
{
    const int B = m->B, T = m->T, H = m->cfg.n_head, hd = m->head_dim;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++)
                memcpy(merged + ((size_t)b * T + t) * H * hd + (size_t)h * hd,
                       att + (((size_t)b * H + h) * T + t) * hd, (size_t)hd * sizeof(float));
}

/* Attention in bf16: q, k and v rounded (kept for backward), scores, softmax
 * and sums float32 in the bf16 kernel. */
static attn_status attend_bf16(attn_gpt *m, gpt_layer_acts *a, const attn_sdpa_config *sc)
{
    const int rows = m->B * m->T, C = m->cfg.n_embd;
    attn_bf16_round_rows(a->q16, a->q, rows, C, C);
    attn_bf16_round_rows(a->k16, a->k, rows, C, C);
    attn_bf16_round_rows(a->v16, a->v, rows, C, C);
    return attn_sdpa_bf16_forward(a->att, a->lse, a->q16, a->k16, a->v16, sc);
}

/* Training's attention for block l, keeping what backward needs in acts[l]:
 * qkv: (B T, qkv_width) -> q, k, v: (B, H, T, hd) after RoPE, att: (B, H, T, hd),
 * lse: (B, H, T) -> merged: (B T, C). */
static attn_status attend_batch(void *ctx, int l, float *merged, const float *qkv)
{
    attn_gpt *m = ctx;
    gpt_layer_acts *a = &m->acts[l];
    attn_status s;
    split_heads(m, a->q, a->k, a->v, qkv);
    if (m->cfg.position == ATTN_POS_ROPE &&
        ((s = attn_rope_forward(a->q, a->q, m->B, m->cfg.n_head, m->T, m->head_dim, 0,
                                m->cfg.rope_theta)) ||
         (s = attn_rope_forward(a->k, a->k, m->B, m->cfg.n_head, m->T, m->head_dim, 0,
                                m->cfg.rope_theta))))
        return s;
    const attn_sdpa_config sc = attn_gpt_sdpa_config(m, l);
    if (m->edit != NULL && m->edit_layer == l)
        s = attn_sdpa_edited_forward(a->att, a->lse, NULL, a->q, a->k, a->v, &sc, m->edit);
    else if (m->pass.reference_attention)
        s = attn_sdpa_reference_forward(a->att, a->lse, NULL, a->q, a->k, a->v, &sc);
    else if (m->precision == ATTN_BF16)
        s = attend_bf16(m, a, &sc);
    else
        s = attn_sdpa_forward(a->att, a->lse, NULL, a->q, a->k, a->v, &sc);
    if (s) return s;
    merge_heads(m, merged, a->att);
    return ATTN_OK;
}

/* Block l over the batch, each intermediate kept in acts[l] for backward. */
static attn_status block_forward(attn_gpt *m, int l)
{
    const size_t NC = (size_t)m->B * m->T * m->cfg.n_embd;
    gpt_layer_acts *a = &m->acts[l];
    const gpt_block_buffers b = {.ln1 = a->ln1, .ln1_mean = a->ln1_mean, .ln1_rstd = a->ln1_rstd,
                                 .qkv = m->qkv, .merged = a->merged, .mid = a->mid,
                                 .ln2 = a->ln2, .ln2_mean = a->ln2_mean, .ln2_rstd = a->ln2_rstd,
                                 .fc = a->fc, .gelu = a->gelu};
    const gpt_block_attention att = {attend_batch, m, attn_gpt_dropout(m), NULL};
    return attn_gpt_block_forward(m, l, m->stream + (l + 1) * NC, m->stream + l * NC,
                                  m->B * m->T, &b, &att);
}

attn_status attn_gpt_forward(attn_gpt *m, float *loss, const int32_t *ids, const int32_t *targets,
                             int B, int T, const attn_gpt_pass *pass)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "gpt")) || (s = attn_check_not_null(ids, "gpt ids")) ||
        (s = attn_check_not_null(pass, "gpt pass")) || (s = attn_check_at_least(B, 1, "batch")) ||
        (s = attn_check_at_least(T, 1, "context length")))
        return s;
    if (targets && (s = attn_check_not_null(loss, "gpt loss"))) return s;
    if (T > m->cfg.block_size)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "context of %d tokens exceeds the block size %d", T,
                          m->cfg.block_size);
    const int64_t N = (int64_t)B * T;
    if ((s = attn_gpt_check_ids(m, ids, N, "token")) ||
        (targets && (s = attn_gpt_check_ids(m, targets, N, "target"))))
        return s;
    m->has_targets = false;
    m->has_backward_input = false;
    if ((s = prepare(m, B, T))) return s;
    m->pass = *pass;
    m->ids = ids;
    m->targets = targets;

    const int C = m->cfg.n_embd, V = m->cfg.vocab_size;
    for (int b = 0; b < B; b++)
        attn_gpt_embed(m, m->stream + (size_t)b * T * C, ids + (size_t)b * T, T, 0);
    const float p = attn_gpt_dropout(m);
    if (p > 0.0f && (s = attn_dropout_forward(m->stream, m->stream, (size_t)N * C, p,
                                              attn_gpt_dropout_seed(m, GPT_SITE_EMBEDDING))))
        return s;
    for (int l = 0; l < m->cfg.n_layer; l++)
        if ((s = block_forward(m, l))) return s;
    const float *top = m->stream + (size_t)m->cfg.n_layer * N * C;
    if ((s = attn_layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, top, m->ln_f.w, m->ln_f.b,
                                    (int)N, C, GPT_LN_EPS)))
        return s;
    attn_gemm(m->precision, false, true, (int)N, V, C, 1.0f, m->lnf, C, m->head, C, 0.0f,
              m->logits, V);
    if (targets) {
        if ((s = attn_cross_entropy_forward(loss, m->probs, NULL, m->logits, targets, (int)N, V,
                                            GPT_IGNORE_NONE, 0.0f)))
            return s;
        m->has_targets = true;
        m->has_backward_input = true;
    }
    return ATTN_OK;
}

const float *attn_gpt_logits(const attn_gpt *m) { return m && m->B > 0 ? m->logits : NULL; }
