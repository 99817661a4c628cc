/* Internal: a layer's product on weights kept in bfloat16 (bf16 inference: the
 * language model's key-value cache at ATTN_BF16 reads each weight as 2 bytes). */
#ifndef ATTN_SRC_KERNELS_GEMV_BF16_H
#define ATTN_SRC_KERNELS_GEMV_BF16_H

#include <stdbool.h>
#include <stdint.h>

#include "attn/core.h"

/* y: (m, n) = x w^T, or y += x w^T when `accumulate`, for bfloat16 x: (m, k) and
 * w: (n, k): every element a dot product of the vector kernels'
 * dot_rows_bf16 (float32 products and sums, the same bits in every instruction
 * set and for any thread count or m). The threads share the rows of w, each row
 * read from memory once for all m rows of x. Fails only when no instruction set
 * runs (ATTN_SIMD). */
attn_status attn_bf16_weights_product(float *y, const uint16_t *x, const uint16_t *w, int m, int n,
                                      int k, bool accumulate);

#endif
