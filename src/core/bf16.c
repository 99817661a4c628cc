/* Arrays to and from bfloat16 (attn/core.h), one value at a time by core/bf16.h. */
#include "attn/core.h"
#include "core/bf16.h"

void attn_bf16_from_float(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = attn_bf16_round(src[i]);
}

void attn_float_from_bf16(float *dst, const uint16_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = attn_bf16_widen(src[i]);
}
