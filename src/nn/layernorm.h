/* Internal: LayerNorm's forward for a pass whose next product reads its output
 * in bfloat16 (the language model's training step in bf16, models/gpt_block.c
 * and gpt_forward.c): each row is rounded while it is still in cache, instead of
 * by a pass of its own over the whole output afterwards. */
#ifndef ATTN_SRC_NN_LAYERNORM_H
#define ATTN_SRC_NN_LAYERNORM_H

#include <stdint.h>

#include "attn/core.h"

/* attn_layernorm_forward (attn/nn.h), and with y16 not NULL y: (N, D) also
 * rounded into y16: (N, D) as attn_bf16_round_rows rounds it. */
attn_status attn_layernorm_forward_rounded(float *y, uint16_t *y16, float *mean, float *rstd,
                                           const float *x, const float *weight,
                                           const float *bias, int N, int D, float eps);

#endif
