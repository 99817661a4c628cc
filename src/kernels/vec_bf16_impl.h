/* Internal, included by vec_impl.h once per instruction set: rounding float32 to
 * bfloat16 in bulk, the bf16 GEMM's operands. core/bf16.h's one rounding of a
 * value, integer operations only, which the compiler vectorises at each
 * variant's width: the same bits everywhere (unlike vcvtneps2bf16, which would
 * flush subnormals). */
#include <stddef.h>
#include <stdint.h>

#include "core/bf16.h"

static void bf16_round(uint16_t *restrict dst, const float *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = attn_bf16_round(src[i]);
}

/* See attn_vec_kernels.bf16_round_tile: the rows in one call, since the tiles
 * of a head's columns have short rows (a head's 32 or 64 values), where a call
 * per row cost more than its rounding. */
static void bf16_round_tile(uint16_t *dst, size_t ld_dst, const float *src, size_t ld_src,
                            size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) bf16_round(dst + r * ld_dst, src + r * ld_src, cols);
}

/* See attn_vec_kernels.bf16_round_scaled_sum: each case its own loop, so that
 * each is a plain elementwise loop the compiler vectorises. */
static void bf16_round_scaled_sum(uint16_t *restrict dst, float *restrict sums,
                                  const float *restrict src, const float *restrict scale,
                                  size_t n)
{
    if (scale && dst && sums)
        for (size_t i = 0; i < n; i++) {
            const float v = src[i] * scale[i];
            dst[i] = attn_bf16_round(v);
            sums[i] += v;
        }
    else if (scale && dst)
        for (size_t i = 0; i < n; i++) dst[i] = attn_bf16_round(src[i] * scale[i]);
    else if (dst && sums)
        for (size_t i = 0; i < n; i++) {
            dst[i] = attn_bf16_round(src[i]);
            sums[i] += src[i];
        }
    else if (dst)
        bf16_round(dst, src, n);
    else if (scale && sums)
        for (size_t i = 0; i < n; i++) sums[i] += src[i] * scale[i];
    else if (sums)
        for (size_t i = 0; i < n; i++) sums[i] += src[i];
}
