/* Internal: the fused (FlashAttention-2 style) scaled dot-product attention
 * kernels, forward and backward.
 *
 * attn_flash_forward / attn_flash_backward compute exactly what attn_sdpa_forward
 * / attn_sdpa_backward of attn/attention.h compute (same shapes, masks, causal
 * alignment, dropout decisions, log-sum-exp, fully masked rows giving 0 and lse
 * -inf; backward adds into dq, dk, dv, any of which may be NULL), without the
 * optional weights output, in O(B·H·L) extra memory and without ever forming the
 * (Lq, Lk) score matrix:
 *   q: (B, H, Lq, D), k: (B, H, Lk, D), v: (B, H, Lk, Dv)
 *   out, dout: (B, H, Lq, Dv), lse: (B, H, Lq)
 *   dq: (B, H, Lq, D), dk: (B, H, Lk, D), dv: (B, H, Lk, Dv)
 * each (B, L, H, D) at a row stride instead when the config's row_stride says so
 * (attn_rows below). Results are bitwise the same for any thread count; they differ between
 * instruction sets only by rounding.
 *
 * The instruction set is the library's one run-time choice (isa.h), which the
 * environment variable ATTN_SIMD can force.
 */
#ifndef ATTN_SRC_KERNELS_FLASH_H
#define ATTN_SRC_KERNELS_FLASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <math.h>

#include "attn/attention.h"

/* Every function here takes cfg as checked by the attention layer
 * (attn_sdpa_check_forward / _backward of attention/checks.h): sizes, masks and
 * pointers are not checked again. */

/* The scale in use (attn_sdpa_scale of attn/attention.h): cfg->scale, or
 * 1 / sqrt(D) when it is 0. */
static inline float attn_flash_scale(const attn_sdpa_config *cfg)
{
    return cfg->scale != 0.0f ? cfg->scale : 1.0f / sqrtf((float)cfg->dim_qk);
}

/* Where one tensor's rows lie (attn_sdpa_config's row_stride): row i of head
 * bh = b H + h starts at attn_rows_at(bh, i), and a head's rows are `step`
 * apart, so the kernels read and write a head as rows at a leading dimension. */
typedef struct attn_rows {
    int64_t step, head, batch; /* between rows of a head, heads, batch entries */
    int heads;
} attn_rows;

/* The rows of a tensor of `length` rows of `width` per head at row stride
 * `stride` (0: (B, H, L, width) contiguous). */
static inline attn_rows attn_rows_of(int64_t stride, int heads, int64_t length, int width)
{
    if (stride == 0) return (attn_rows){width, length * width, heads * length * width, heads};
    return (attn_rows){stride, width, length * stride, heads};
}

static inline int64_t attn_rows_at(const attn_rows *r, int64_t bh, int64_t i)
{
    /* When a batch entry's heads follow each other (batch = heads * head, as in
     * (B, H, L, D)), b * batch + h * head = bh * head: no division, which the
     * kernels would otherwise pay per tile. */
    if (r->batch == r->heads * r->head) return bh * r->head + i * r->step;
    return bh / r->heads * r->batch + bh % r->heads * r->head + i * r->step;
}

/* The rows of q (and dq), k (dk), v (dv) and out (dout) under cfg. */
static inline attn_rows attn_q_rows(const attn_sdpa_config *cfg)
{
    return attn_rows_of(cfg->row_stride.q, cfg->heads, cfg->len_q, cfg->dim_qk);
}
static inline attn_rows attn_k_rows(const attn_sdpa_config *cfg)
{
    return attn_rows_of(cfg->row_stride.k, cfg->heads, cfg->len_k, cfg->dim_qk);
}
static inline attn_rows attn_v_rows(const attn_sdpa_config *cfg)
{
    return attn_rows_of(cfg->row_stride.v, cfg->heads, cfg->len_k, cfg->dim_v);
}
static inline attn_rows attn_out_rows(const attn_sdpa_config *cfg)
{
    return attn_rows_of(cfg->row_stride.out, cfg->heads, cfg->len_q, cfg->dim_v);
}

attn_status attn_flash_forward(float *out, float *lse, const float *q, const float *k,
                               const float *v, const attn_sdpa_config *cfg);

attn_status attn_flash_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                const float *k, const float *v, const float *lse,
                                const attn_sdpa_config *cfg);

/* The same on bfloat16 q, k, v and dout (core/bf16.h), out, lse and the
 * gradients float32 (see flash_bf16_impl.h for how it computes and how its bits
 * compare between instruction sets): attn_sdpa_bf16_forward / _backward of
 * attn/attention.h, with the same shapes. */
attn_status attn_flash_bf16_forward(float *out, float *lse, const uint16_t *q, const uint16_t *k,
                                    const uint16_t *v, const attn_sdpa_config *cfg);

/* The same forward with v given as the kernel reads it, pairs of rows (so that a
 * caller keeping v, as a key-value cache does, lays it out once, not per call):
 *   v_pairs: (B H, ceil(Lk / 2), attn_flash_pair_width(Dv), 2), rows 2t and 2t + 1
 *   of each head interleaved column by column, zero padded (a missing last row
 *   too), the layout attn_flash_bf16_pair_rows writes. The same bits as the
 *   forward on v itself. */
attn_status attn_flash_bf16_forward_pairs(float *out, float *lse, const uint16_t *q,
                                          const uint16_t *k, const uint16_t *v_pairs,
                                          const attn_sdpa_config *cfg);
/* The padded width of a row in the pairs-of-rows layout: whole vectors of every
 * instruction set (16 floats), so that one layout serves every variant. */
enum { ATTN_FLASH_PAIR_ALIGN = 16 };
static inline int attn_flash_pair_width(int width)
{
    return (width + ATTN_FLASH_PAIR_ALIGN - 1) / ATTN_FLASH_PAIR_ALIGN * ATTN_FLASH_PAIR_ALIGN;
}
/* Rows first .. first + rows - 1 of one head's v in pairs of rows: src (rows,
 * width) float32, rounded to bfloat16 (attn_bf16_from_float's rounding), into
 * pairs: (ceil(length / 2), attn_flash_pair_width(width), 2); the padding columns
 * and the partner of a row not yet written must already be zero (or any finite
 * value: they multiply zeros). */
void attn_flash_bf16_pair_rows(uint16_t *pairs, const float *src, int64_t first, int rows,
                               int width);
attn_status attn_flash_bf16_backward(float *dq, float *dk, float *dv, const uint16_t *dout,
                                     const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                     const float *lse, const attn_sdpa_config *cfg);

/* How the chosen variant's bf16 kernels multiply (attn_flash_kernels'
 * bf16_products), "none" when no variant runs. */
const char *attn_flash_bf16_products(void);

/* The scratch memory one call allocates, in bytes, for `threads` threads: per-thread
 * tiles plus, for backward, four floats per query row. */
size_t attn_flash_workspace_bytes(const attn_sdpa_config *cfg, int threads, bool backward);
/* The same for the bf16 kernels: tiles, k and v laid out in pairs of bf16 and, for
 * backward, the inputs widened to float32. */
size_t attn_flash_bf16_workspace_bytes(const attn_sdpa_config *cfg, int threads, bool backward);

/* One instruction set's kernels (a member of its attn_isa). The entry points
 * above call the chosen variant's; tests call each variant's table directly. */
typedef struct attn_flash_kernels {
    attn_status (*forward)(float *out, float *lse, const float *q, const float *k, const float *v,
                           const attn_sdpa_config *cfg);
    attn_status (*backward)(float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *lse,
                            const attn_sdpa_config *cfg);
    size_t (*workspace_bytes)(const attn_sdpa_config *cfg, int threads, bool backward);
    /* v as given, or (v NULL) v_pairs laid out as attn_flash_bf16_forward_pairs's */
    attn_status (*forward_bf16)(float *out, float *lse, const uint16_t *q, const uint16_t *k,
                                const uint16_t *v, const uint16_t *v_pairs,
                                const attn_sdpa_config *cfg);
    attn_status (*backward_bf16)(float *dq, float *dk, float *dv, const uint16_t *dout,
                                 const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                 const float *lse, const attn_sdpa_config *cfg);
    size_t (*workspace_bytes_bf16)(const attn_sdpa_config *cfg, int threads, bool backward);
    /* How the bf16 kernels multiply: "vdpbf16ps" or "widened to float32". */
    const char *bf16_products;
    /* y[i] = e^x[i] with the variant's vector exponential, the float32 kernels'
     * and the bf16 kernels' (for their tests). */
    void (*exp)(float *y, const float *x, size_t n);
    void (*exp_bf16)(float *y, const float *x, size_t n);
} attn_flash_kernels;

#endif
