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
#include "core/large_alloc.h"
#include "kernels/bf16_rows.h"
#include "kernels/gemm_bf16.h"
#include "models/gpt_impl.h"
#include "nn/layernorm.h"

/* Carves the arena into the buffers of a B x T pass (attn_carve); with base NULL
 * only counts. Returns the bytes used. */
static size_t layout(attn_gpt *m, void *base, int B, int T)
{
    const size_t N = (size_t)B * T, C = (size_t)m->cfg.n_embd, V = (size_t)m->cfg.vocab_size;
    const size_t H = (size_t)m->cfg.n_head, L = (size_t)m->cfg.n_layer;
    const bool bf16 = m->precision == ATTN_BF16;
    size_t used = 0;
#define TAKE(ptr, count) ((ptr) = attn_carve(base, &used, (count) * sizeof(float)))
/* count bf16 values only in bf16 precision (else NULL) */
#define TAKE_BF16(ptr, count)                                                                     \
    ((ptr) = attn_carve(base, &used, bf16 ? (count) * sizeof(uint16_t) : 0))
/* count floats only in float32 precision (else NULL: bf16 keeps a bf16 copy) */
#define TAKE_FLOAT32(ptr, count)                                                                  \
    ((ptr) = attn_carve(base, &used, bf16 ? 0 : (count) * sizeof(float)))
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
        TAKE(a->lse, N * H);
        TAKE(a->merged, N * C);
        TAKE(a->ln2, N * C);
        TAKE(a->ln2_mean, N);
        TAKE(a->ln2_rstd, N);
        TAKE(a->fc_slope, 4 * N * C);
        TAKE_FLOAT32(a->gelu, 4 * N * C);
        TAKE_BF16(a->ln1_16, N * C);
        TAKE_BF16(a->merged16, N * C);
        TAKE_BF16(a->ln2_16, N * C);
        TAKE_BF16(a->gelu16, 4 * N * C);
    }
    TAKE(m->lnf, N * C);
    TAKE_BF16(m->lnf16, N * C);
    TAKE(m->lnf_mean, N);
    TAKE(m->lnf_rstd, N);
    TAKE(m->logits, N * V);
    TAKE(m->probs, N * V);
    TAKE(m->qkv, N * (size_t)m->qkv_width);
    TAKE(m->att, N * C);
    TAKE(m->dstream, N * C);
    TAKE(m->dln, N * C);
    TAKE(m->dwide, 4 * N * C);
    TAKE_FLOAT32(m->dwide2, 4 * N * C);
    TAKE(m->dqkv, N * (size_t)m->qkv_width);
    TAKE(m->dq, N * C);
    TAKE(m->dk, N * C);
    TAKE(m->dv, N * C);
    TAKE(m->drot, N * C);
    TAKE(m->dlogits, N * V);
    TAKE_BF16(m->datt16, N * C);
    size_t widest = (size_t)m->qkv_width > 4 * C ? (size_t)m->qkv_width : 4 * C;
    widest = widest > V ? widest : V;
    TAKE_BF16(m->dy16, N * widest);
    TAKE(m->bias_block_sums, (size_t)attn_bf16_sum_blocks((int)N) * widest);
#undef TAKE_FLOAT32
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
        free(m->arena);
        m->capacity = 0;
        m->arena = attn_alloc_large(need);
        if (m->arena == NULL)
            return attn_error(ATTN_ERR_OUT_OF_MEMORY,
                              "no memory for a batch of %d x %d tokens (%zu MB)", B, T,
                              need >> 20);
        m->capacity = need;
    }
    layout(m, m->arena, B, T);
    m->B = B;
    m->T = T;
    return ATTN_OK;
}

/* In bf16 precision, every parameter rounded into m->params16, once for all the
 * products of the pass and its backward. */
static attn_status round_params(attn_gpt *m)
{
    if (m->precision != ATTN_BF16) return ATTN_OK;
    const size_t total = m->params.total;
    if (m->params16 == NULL &&
        (m->params16 = attn_alloc_large(total * sizeof *m->params16)) == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %zu parameters in bf16", total);
    /* As rows, so that the threads share the rounding. */
    enum { ROW = 4096 };
    const size_t rows = total / ROW, rest = total % ROW;
    if (rows > 0) attn_bf16_round_rows(m->params16, m->params.data, (int)rows, ROW, ROW);
    if (rest > 0)
        attn_bf16_round_rows(m->params16 + rows * ROW, m->params.data + rows * ROW, 1, (int)rest,
                             (int)rest);
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
 * key/value head h / (H / Hkv) repeated for every query head of its group; as
 * float32 (q, k, v) or, with q16 not NULL, rounded to bf16 (q16, k16, v16: the
 * bf16 kernel's operands, written in the same pass over qkv). The (b, h) planes
 * are independent, so the threads share them. */
static void split_heads(const attn_gpt *m, float *q, float *k, float *v, uint16_t *q16,
                        uint16_t *k16, uint16_t *v16, const float *qkv)
{
    const int B = m->B, T = m->T, H = m->cfg.n_head, group = H / m->cfg.n_kv_head;
    const int hd = m->head_dim, W = m->qkv_width;
    const int column[3] = {0, H * hd, (H + m->cfg.n_kv_head) * hd};
#pragma omp parallel for schedule(static) num_threads(attn_get_num_threads())
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H, g = h / group;
        const float *rows = qkv + (size_t)b * T * W;
        const int offset[3] = {column[0] + h * hd, column[1] + g * hd, column[2] + g * hd};
        const size_t plane = (size_t)bh * T * hd;
        if (q16 != NULL) {
            uint16_t *dst[3] = {q16 + plane, k16 + plane, v16 + plane};
            for (int i = 0; i < 3; i++) attn_bf16_round_tile(dst[i], hd, rows + offset[i], W, T, hd);
            continue;
        }
        float *dst[3] = {q + plane, k + plane, v + plane};
        for (int i = 0; i < 3; i++) attn_gpt_copy_tile(dst[i], hd, rows + offset[i], W, T, hd);
    }
}

/* att: (B, H, T, hd) -> merged: (B, T, H hd) as float32, or with merged16 not
 * NULL only rounded to bf16 there; the threads share the (b, h) planes. */
static void merge_heads(const attn_gpt *m, float *merged, uint16_t *merged16, const float *att)
{
    const int B = m->B, T = m->T, H = m->cfg.n_head, hd = m->head_dim, C = H * hd;
#pragma omp parallel for schedule(static) num_threads(attn_get_num_threads())
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        const float *plane = att + (size_t)bh * T * hd;
        const size_t first = (size_t)b * T * C + (size_t)h * hd; /* row (b, 0), head h */
        if (merged16 != NULL) {
            attn_bf16_round_tile(merged16 + first, C, plane, hd, T, hd);
            continue;
        }
        attn_gpt_copy_tile(merged + first, C, plane, hd, T, hd);
    }
}

/* Whether block attention keeps its operands only in bf16 (split_heads rounds
 * them as it lays them out): a training pass in bf16 on the fused kernel without
 * RoPE, which rotates them in float32 first. Nothing of such a pass reads the
 * float32 q, k, v (recording and interventions are not training passes). */
static bool heads_only_bf16(const attn_gpt *m)
{
    return m->precision == ATTN_BF16 && m->pass.training && !m->pass.reference_attention &&
           m->edit == NULL && m->cfg.position != ATTN_POS_ROPE;
}

/* Whether attention's merged output is kept only rounded to bf16 (merged16):
 * in bf16 precision, where attn_proj's product and its weight gradient read
 * nothing else of it. */
static bool merged_only_bf16(const attn_gpt *m) { return m->precision == ATTN_BF16; }

/* Training's attention for block l, keeping what backward needs in acts[l]:
 * qkv: (B T, qkv_width) -> q, k, v: (B, H, T, hd) after RoPE (in bf16 precision
 * also rounded into q16, k16, v16, or only there: heads_only_bf16), m->att:
 * (B, H, T, hd) (scratch), lse: (B, H, T) -> merged: (B T, C). In bf16 the
 * scores, softmax and sums are float32 in the bf16 kernel. */
static attn_status attend_batch(void *ctx, int l, float *merged, const float *qkv)
{
    attn_gpt *m = ctx;
    gpt_layer_acts *a = &m->acts[l];
    attn_status s;
    const bool edited = m->edit != NULL && m->edit_layer == l;
    const bool bf16 = m->precision == ATTN_BF16 && !m->pass.reference_attention && !edited;
    if (heads_only_bf16(m)) {
        split_heads(m, NULL, NULL, NULL, a->q16, a->k16, a->v16, qkv);
    } else {
        split_heads(m, a->q, a->k, a->v, NULL, NULL, NULL, qkv);
        if (m->cfg.position == ATTN_POS_ROPE &&
            ((s = attn_rope_forward(a->q, a->q, m->B, m->cfg.n_head, m->T, m->head_dim, 0,
                                    m->cfg.rope_theta)) ||
             (s = attn_rope_forward(a->k, a->k, m->B, m->cfg.n_head, m->T, m->head_dim, 0,
                                    m->cfg.rope_theta))))
            return s;
        if (bf16) {
            const int rows = m->B * m->T, C = m->cfg.n_embd;
            attn_bf16_round_rows(a->q16, a->q, rows, C, C);
            attn_bf16_round_rows(a->k16, a->k, rows, C, C);
            attn_bf16_round_rows(a->v16, a->v, rows, C, C);
        }
    }
    const attn_sdpa_config sc = attn_gpt_sdpa_config(m, l);
    if (edited)
        s = attn_sdpa_edited_forward(m->att, a->lse, NULL, a->q, a->k, a->v, &sc, m->edit);
    else if (m->pass.reference_attention)
        s = attn_sdpa_reference_forward(m->att, a->lse, NULL, a->q, a->k, a->v, &sc);
    else if (bf16)
        s = attn_sdpa_bf16_forward(m->att, a->lse, a->q16, a->k16, a->v16, &sc);
    else
        s = attn_sdpa_forward(m->att, a->lse, NULL, a->q, a->k, a->v, &sc);
    if (s) return s;
    merge_heads(m, merged, merged_only_bf16(m) ? a->merged16 : NULL, m->att);
    return ATTN_OK;
}

/* The rounded parameters of the pass: m->params16 in bf16 precision, else NULL. */
static const uint16_t *params16(const attn_gpt *m)
{
    return m->precision == ATTN_BF16 ? m->params16 : NULL;
}

/* Block l over the batch, each intermediate kept in acts[l] for backward. */
static attn_status block_forward(attn_gpt *m, int l)
{
    const size_t NC = (size_t)m->B * m->T * m->cfg.n_embd;
    gpt_layer_acts *a = &m->acts[l];
    const gpt_block_buffers b = {.ln1 = a->ln1, .ln1_mean = a->ln1_mean, .ln1_rstd = a->ln1_rstd,
                                 .qkv = m->qkv, .merged = a->merged, .mid = a->mid,
                                 .ln2 = a->ln2, .ln2_mean = a->ln2_mean, .ln2_rstd = a->ln2_rstd,
                                 .fc = a->fc_slope, .gelu = a->gelu,
                                 .gelu_slope = a->fc_slope, .ln1_16 = a->ln1_16,
                                 .merged16 = a->merged16, .ln2_16 = a->ln2_16,
                                 .gelu16 = a->gelu16, .params16 = params16(m),
                                 .merged_rounded = merged_only_bf16(m)};
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
    if ((s = prepare(m, B, T)) || (s = round_params(m))) return s;
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
    if ((s = attn_layernorm_forward_rounded(m->lnf, m->lnf16, m->lnf_mean, m->lnf_rstd, top,
                                            m->ln_f.w, m->ln_f.b, (int)N, C, GPT_LN_EPS)))
        return s;
    const uint16_t *lnf16 = m->lnf16;
    attn_affine_product(m->precision, m->logits, NULL, m->lnf, lnf16, m->head,
                        attn_gpt_rounded(m, params16(m), m->head), NULL, (int)N, C, V);
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
