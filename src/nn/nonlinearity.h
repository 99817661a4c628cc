/* Internal: GELU for a training pass that keeps its slope instead of its input
 * (the language model's MLP, models/gpt_block.c): the forward computes the
 * derivative beside the value, which backward then only multiplies by, rather
 * than evaluating the normal CDF and density again. Bits as
 * attn_activation_forward and _backward with ATTN_ACT_GELU (nonlinearity.c). */
#ifndef ATTN_SRC_NN_NONLINEARITY_H
#define ATTN_SRC_NN_NONLINEARITY_H

#include <stddef.h>
#include <stdint.h>

#include "attn/core.h"

/* x: (n) -> y: (n) = GELU(x), slope: (n) = GELU'(x); slope may be x. With y16
 * not NULL, y is not written (may be NULL) and y16: (n) gets GELU(x) rounded to
 * bfloat16 (attn_bf16_round), the input of a bf16 product. */
attn_status attn_gelu_forward_slope(float *y, uint16_t *y16, float *slope, const float *x,
                                    size_t n);
/* dx: (n) = dy * slope, overwritten: the gradient through GELU. */
attn_status attn_gelu_backward_slope(float *dx, const float *dy, const float *slope, size_t n);

#endif
