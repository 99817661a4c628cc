/* Internal: moving projected rows into per-head blocks and back. */
#ifndef ATTN_SRC_NN_HEADS_H
#define ATTN_SRC_NN_HEADS_H

#include <stdbool.h>
#include <stdint.h>

#include "attn/attention.h"

/* rows: (L, B, H * hd), or (B, L, H * hd) if batch_first <-> heads: (B, H, L, hd).
 * Both copy (no accumulation); the buffers must not overlap. */
void attn_heads_split(float *heads, const float *rows, int B, int L, int H, int hd,
                      bool batch_first);
void attn_heads_merge(float *rows, const float *heads, int B, int L, int H, int hd,
                      bool batch_first);

/* The head-split gradients of one multi-head attention's SDPA. */
typedef struct attn_heads_grads {
    float *dout;   /* (B, H, Lq, hd): of SDPA's output */
    float *dq;     /* (B, H, Lq, hd) */
    float *dk, *dv; /* (B, H, Lk, hd) */
} attn_heads_grads;

/* SDPA's backward between the heads, for both attention modules: dout_rows
 * (B*Lq, E), the gradient of the merged heads, split into g->dout; then g->dq,
 * g->dk, g->dv overwritten from the forward's q, k, v and lse under cfg. */
attn_status attn_heads_sdpa_backward(const attn_heads_grads *g, const float *dout_rows,
                                     const float *q, const float *k, const float *v,
                                     const float *lse, const attn_sdpa_config *cfg,
                                     bool batch_first);

/* heads: (B, H, L, hd) -> dst: (B, H, L, hd) rounded to bfloat16, the operands of
 * attn_sdpa_bf16_forward. */
void attn_heads_round(uint16_t *dst, const float *heads, int B, int H, int L, int hd);

/* The same backward through attn_sdpa_bf16_backward, after a forward through
 * attn_sdpa_bf16_forward on the rounded heads q, k, v: g->dout is also rounded
 * into dout16: (B, H, Lq, hd). */
attn_status attn_heads_sdpa_bf16_backward(const attn_heads_grads *g, uint16_t *dout16,
                                          const float *dout_rows, const uint16_t *q,
                                          const uint16_t *k, const uint16_t *v, const float *lse,
                                          const attn_sdpa_config *cfg, bool batch_first);

#endif
