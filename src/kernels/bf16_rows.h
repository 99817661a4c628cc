/* Internal: float32 rows rounded to bfloat16 on the instruction set's vector
 * kernels and the threads, for the bf16 GEMM (gemm_bf16.c, which defines it)
 * and the models' bf16 attention operands; also with a Linear's bias gradient
 * summed in the same pass. */
#ifndef ATTN_SRC_KERNELS_BF16_ROWS_H
#define ATTN_SRC_KERNELS_BF16_ROWS_H

#include <stdint.h>

/* src: `rows` rows of `cols` floats at row stride ld -> dst: (rows, cols)
 * compact, each value as attn_bf16_from_float rounds it. */
void attn_bf16_round_rows(uint16_t *dst, const float *src, int rows, int cols, int ld);

/* The same rounding on the calling thread alone, with both row strides given:
 * src: rows of cols floats at stride ld_src -> dst: rows at stride ld_dst. For
 * loops that share out their tiles among the threads themselves (the language
 * model's head layouts). */
void attn_bf16_round_tile(uint16_t *dst, int ld_dst, const float *src, int ld_src, int rows,
                          int cols);

/* Rows per block of attn_bf16_round_rows_sum_columns's column sums, and the
 * blocks of `rows` rows: that function's block_sums holds blocks x cols floats. */
enum { ATTN_BF16_SUM_BLOCK_ROWS = 64 };
static inline int attn_bf16_sum_blocks(int rows)
{
    return (rows + ATTN_BF16_SUM_BLOCK_ROWS - 1) / ATTN_BF16_SUM_BLOCK_ROWS;
}

/* src: (rows, cols) compact, times scale: (rows, cols) elementwise when scale
 * is not NULL -> dst: (rows, cols) rounded as attn_bf16_round_rows rounds it
 * (dst may be NULL), and sums: (cols) += the column sums (sums may be NULL), in
 * one pass over src: a Linear's output gradient (through GELU's slope, for the
 * MLP's first Linear), rounded for its products and summed for its bias
 * gradient. Each product is one float32 multiply. Each column's sum is taken
 * over blocks of ATTN_BF16_SUM_BLOCK_ROWS rows, the rows of a block in order
 * (into block_sums: attn_bf16_sum_blocks(rows) x cols floats of scratch, unused
 * when sums is NULL), then the blocks' sums in order, and added to sums: the
 * same bits on any number of threads; the threads share the blocks. */
void attn_bf16_round_rows_sum_columns(uint16_t *dst, float *sums, float *block_sums,
                                      const float *src, const float *scale, int rows, int cols);

#endif
