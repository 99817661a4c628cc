/* Internal: one bfloat16 value to and from float32, for the loops that convert
 * (core/bf16.c, the safetensors reader) and the fused bf16 attention kernels.
 *
 * bfloat16 is the top half of a float32: a sign, the same 8 exponent bits and 7
 * stored significand bits (8 significant bits, so rounding to nearest has unit
 * roundoff u = 2^-8). Widening is exact; narrowing rounds. */
#ifndef ATTN_SRC_CORE_BF16_H
#define ATTN_SRC_CORE_BF16_H

#include <stdint.h>
#include <string.h>

/* The exact float32 value of a bfloat16 bit pattern, NaN payloads included. */
static inline float attn_bf16_widen(uint16_t bits)
{
    const uint32_t wide = (uint32_t)bits << 16;
    float f;
    memcpy(&f, &wide, sizeof f);
    return f;
}

/* x rounded to the nearest bfloat16, ties to even, as PyTorch's
 * .to(torch.bfloat16) rounds (subnormals kept, values past the largest bfloat16
 * become infinite); a NaN stays a NaN of the same sign, made quiet (PyTorch
 * returns the positive 0x7fc0). */
static inline uint16_t attn_bf16_round(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u);
    /* Adding 0x7fff rounds the low half up past 0x8000; the low bit of the kept
     * half adds the one that breaks a tie towards an even result. The carry may
     * run into the exponent, which is the correct rounding up (to infinity past
     * the largest finite value). */
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

#endif
