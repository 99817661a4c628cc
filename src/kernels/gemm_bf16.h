/* Internal: the products of a model's training step beside attn_gemm
 * (attn/kernels.h), both defined in gemm_bf16.c. */
#ifndef ATTN_SRC_KERNELS_GEMM_BF16_H
#define ATTN_SRC_KERNELS_GEMM_BF16_H

#include <stdbool.h>
#include <stdint.h>

#include "attn/core.h"

/* attn_gemm, with A and B optionally given already rounded to bfloat16: a16
 * (b16) NULL, or a's (b's) values rounded as attn_bf16_round_rows rounds them,
 * laid out as a (b) is but compactly (row stride: the stored rows' length). A
 * model that uses one operand in several products of a step rounds it once.
 * float32 precision reads a and b; at bf16, a (b) may be NULL when a16 (b16) is
 * given (out of memory, the product then runs by loops over the given values). */
void attn_gemm_rounded(attn_precision precision, bool trans_a, bool trans_b, int m, int n, int k,
                       float alpha, const float *a, const uint16_t *a16, int lda, const float *b,
                       const uint16_t *b16, int ldb, float beta, float *c, int ldc);

/* A Linear with what follows it, in one product:
 *   y: (N, out) = [residual +] x w^T [+ bias],
 * x: (N, in) (x16 its bf16 copy or NULL; at bf16 x may be NULL when x16 is
 * given), w: (out, in) (w16 likewise), bias: (out)
 * or NULL, residual: (N, out) or NULL, and y may be residual. With oneDNN, bias
 * and residual are the matmul primitive's bias and post-op, added as each output
 * tile is written rather than in passes over y of their own; elsewhere (and for
 * N of a few rows, decoding's products) y is filled with them first and the
 * product added. At ATTN_BF16, x and w are the rounded values, as attn_gemm. */
void attn_affine_product(attn_precision precision, float *y, const float *residual,
                         const float *x, const uint16_t *x16, const float *w,
                         const uint16_t *w16, const float *bias, int N, int in, int out);

#endif
