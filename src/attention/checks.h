/* Internal: what the attention functions share, written once: the argument
 * checks, a mask's slice for one batch entry and the backward through the
 * weights of soft and Gumbel attention. */
#ifndef ATTN_SRC_ATTENTION_CHECKS_H
#define ATTN_SRC_ATTENTION_CHECKS_H

#include <math.h>

#include "attn/attention.h"

/* A mask argument: NULL (no mask), or a known attn_mask_type with data. The
 * messages start with `name` ("mask", "attn_mask", ...). */
attn_status attn_mask_check(const attn_mask *mask, const char *name);

/* attn_mask_apply, inline for the loops that apply a mask to every score of a
 * row (softmax, hard attention): a call per score costs as much as the softmax. */
static inline float attn_mask_score(const attn_mask *mask, float score, int64_t b, int64_t h,
                                    int64_t i, int64_t j)
{
    int64_t at = b * mask->stride[0] + h * mask->stride[1] + i * mask->stride[2] +
                 j * mask->stride[3];
    if (mask->type == ATTN_MASK_FLOAT) return score + ((const float *)mask->data)[at];
    bool flag = ((const uint8_t *)mask->data)[at] != 0;
    bool excluded = mask->type == ATTN_MASK_BOOL ? flag : !flag;
    if (!excluded) return score;
    return mask->fill ? mask->fill_value : -INFINITY;
}

/* The mask seen as (B, 1, Lq, Lk), moved to batch entry b so that the softmax,
 * which reads a mask as (1, 1, rows, n), sees entry b's (Lq, Lk) slice. */
attn_mask attn_mask_of_batch(const attn_mask *mask, int b);

/* dscores: (B, Lq, Lk) += the gradient through weights = softmax(x) of
 * dweights = scale * dcontext values^T, where context = weights @ values and
 * x = scores / scale: soft attention's (scale 1) and the straight-through
 * Gumbel-softmax's (scale 1 / tau). dcontext: (B, Lq, Dv), weights: (B, Lq, Lk),
 * values: (B, Lk, Dv), all checked. */
attn_status attn_weights_backward(float *dscores, const float *dcontext, const float *weights,
                                  const float *values, int B, int Lq, int Lk, int Dv,
                                  float scale);

/* Everything attn_sdpa_forward (and the reference's, and the bf16 one's) needs
 * before a kernel runs: the config (attn_sdpa_check) and the pointers it reads or
 * writes (q, k, v, dout float32 or bfloat16). The kernels then take the config as
 * checked. weights may be NULL. */
attn_status attn_sdpa_check_forward(const attn_sdpa_config *cfg, const float *out,
                                    const float *lse, const void *q, const void *k,
                                    const void *v);

/* The same for the backward: dq, dk and dv may each be NULL (not wanted). */
attn_status attn_sdpa_check_backward(const attn_sdpa_config *cfg, const void *dout,
                                     const void *q, const void *k, const void *v,
                                     const float *lse);

#endif
