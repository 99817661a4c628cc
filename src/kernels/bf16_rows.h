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

/* src: (rows, cols) compact, times scale: (rows, cols) elementwise when scale
 * is not NULL -> dst: (rows, cols) rounded as attn_bf16_round_rows rounds it
 * (dst may be NULL), and sums: (cols) += the column sums (sums may be NULL), in
 * one pass over src: a Linear's output gradient (through GELU's slope, for the
 * MLP's first Linear), rounded for its products and summed for its bias
 * gradient. Each product is one float32 multiply and each column adds its rows
 * in order, as plain loops over rows and columns do (the same bits); the threads
 * share blocks of columns. */
void attn_bf16_round_rows_sum_columns(uint16_t *dst, float *sums, const float *src,
                                      const float *scale, int rows, int cols);

#endif
