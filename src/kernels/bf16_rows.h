/* Internal: float32 rows rounded to bfloat16 on the instruction set's vector
 * kernels and the threads, for the bf16 GEMM (gemm_bf16.c, which defines it)
 * and the models' bf16 attention operands. */
#ifndef ATTN_SRC_KERNELS_BF16_ROWS_H
#define ATTN_SRC_KERNELS_BF16_ROWS_H

#include <stdint.h>

/* src: `rows` rows of `cols` floats at row stride ld -> dst: (rows, cols)
 * compact, each value as attn_bf16_from_float rounds it. */
void attn_bf16_round_rows(uint16_t *dst, const float *src, int rows, int cols, int ld);

#endif
