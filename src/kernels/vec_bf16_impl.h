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
