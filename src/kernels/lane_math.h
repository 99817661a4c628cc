/* Internal: functions of one float, written without branches (both sides of every
 * condition computed, then one selected) so that a loop calling them vectorises
 * for whatever instruction set its translation unit is compiled for. They are the
 * library's only exp, tanh and sigmoid for elementwise code: the scalar variant
 * of the attention kernels (simd.h), the activations, the recurrent cells'
 * gates and additive attention's tanh terms all use these. lane_dot is the
 * library's dot product of short rows for loops that are not GEMMs.
 *
 * The build keeps a * b + c as two roundings (-ffp-contract=off), so the results
 * are the same bits whichever instruction set a loop was vectorised for. */
#ifndef ATTN_SRC_KERNELS_LANE_MATH_H
#define ATTN_SRC_KERNELS_LANE_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define LANE_INLINE static inline __attribute__((always_inline))

/* e^x = 2^n e^r with n = round(x / ln 2) and r = x - n ln 2 in [-ln2/2, ln2/2]
 * (Cody and Waite's reduction: ln 2 split in a short high part, exact in n * hi,
 * and a low part). e^r = 1 + r + r^2 g(r) with g a degree-4 polynomial fitted to
 * (e^r - 1 - r) / r^2 by least squares on Chebyshev nodes, weighted for relative
 * error: the fit's own error is below 0.1 ulp, so the result is within about 1 ulp
 * (checked against exp() by the unit tests). 2^n is built in the exponent bits.
 * Below ln(FLT_MIN) the result is 0 (so -inf gives 0, and no subnormals), above
 * ln(FLT_MAX) it is +inf, NaN stays NaN. simd.h's wide forms use the same
 * constants. */
#define VF_EXP_LOG2E 1.44269504088896341f
#define VF_EXP_LN2_HI 0.693359375f
#define VF_EXP_LN2_LO -2.12194440e-4f
#define VF_EXP_C0 5.000000000e-01f
#define VF_EXP_C1 1.666651666e-01f
#define VF_EXP_C2 4.166626185e-02f
#define VF_EXP_C3 8.369151503e-03f
#define VF_EXP_C4 1.394644612e-03f
#define VF_EXP_MIN_ARG -87.3365402f /* ln(FLT_MIN) */
#define VF_EXP_MAX_ARG 88.3762589f  /* largest x with n <= 127 */

/* 1.5 * 2^23: adding and subtracting it rounds |t| < 2^22 to the nearest integer
 * (ties to even), as rintf does. */
#define LANE_EXP_ROUNDER 12582912.0f

/* The scalar exponentials' reduction: x clamped (NaN included) so that 2^n is a
 * normal float, *nf = n, and r returned. */
LANE_INLINE float lane_exp_reduce(float x, float *nf)
{
    float c = x > VF_EXP_MIN_ARG ? x : VF_EXP_MIN_ARG;
    c = c < VF_EXP_MAX_ARG ? c : VF_EXP_MAX_ARG;
    *nf = (c * VF_EXP_LOG2E + LANE_EXP_ROUNDER) - LANE_EXP_ROUNDER;
    float r = c - *nf * VF_EXP_LN2_HI; /* exact: the high part has few bits */
    return r - *nf * VF_EXP_LN2_LO;
}

/* e^x from er = e^r and n: er 2^n, 0 below ln(FLT_MIN), +inf above ln(FLT_MAX),
 * NaN kept. */
LANE_INLINE float lane_exp_scale(float x, float nf, float er)
{
    int32_t bits = ((int32_t)nf + 127) * (1 << 23);
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    float y = er * two_n;
    y = x < VF_EXP_MIN_ARG ? 0.0f : y;
    y = x > VF_EXP_MAX_ARG ? INFINITY : y;
    return x != x ? x : y;
}

LANE_INLINE float lane_exp(float x)
{
    float nf;
    const float r = lane_exp_reduce(x, &nf);
    float g = (((VF_EXP_C4 * r + VF_EXP_C3) * r + VF_EXP_C2) * r + VF_EXP_C1) * r + VF_EXP_C0;
    return lane_exp_scale(x, nf, (g * (r * r) + r) + 1.0f);
}

/* The bf16 attention kernels' exponential, of a shifted score x <= 0: e^x within
 * 2^-17 relative on [ln(FLT_MIN), 0] (0 below it, NaN stays NaN), where lane_exp
 * keeps 1 ulp. Those kernels round every probability to bf16 (2^-9) before P V,
 * so that the ulp buys nothing there, and the softmax's exponentials were a
 * quarter of the forward's vector instructions. It takes fewer: ln 2 in one
 * constant in a fused multiply-add (off by 1.9e-9, so r by at most 2.4e-7 at
 * x = -87; this scalar form keeps lane_exp's split), and e^r = 1 + r + r^2 h(r)
 * with h of degree 2 fitted as lane_exp's g (5.3e-6 in exact arithmetic), in
 * Horner's form; measured 5.6e-6 (2^-17.4) at worst. (Degree 3, 2^-21, ran the
 * bf16 forward 2-3 % slower.) The wide forms (simd.h) use the same constants. */
#define VF_EXP_BF16_LN2 0.693147181f
#define VF_EXP_BF16_C0 0.500051141f
#define VF_EXP_BF16_C1 0.167535141f
#define VF_EXP_BF16_C2 0.0412777476f

LANE_INLINE float lane_exp_bf16(float x)
{
    /* Without a fused multiply-add nf ln 2 would round (by up to 3.8e-6 at x = -87):
     * lane_exp's split reduction instead, as exact as the wide forms' fused one. */
    float nf;
    const float r = lane_exp_reduce(x, &nf);
    float h = (VF_EXP_BF16_C2 * r + VF_EXP_BF16_C1) * r + VF_EXP_BF16_C0;
    return lane_exp_scale(x, nf, (h * r + 1.0f) * r + 1.0f);
}

/* Within 2.5 ulp (the rounding of 1 + e^-x and the division added to exp's). */
LANE_INLINE float lane_sigmoid(float x) { return 1.0f / (1.0f + lane_exp(-x)); }

/* Conditions as all-ones masks, from unsigned differences of float magnitudes
 * (< 2^31): comparisons of floats would keep the compiler from vectorizing for
 * AVX2 under the default -ftrapping-math. */
LANE_INLINE uint32_t lane_below(uint32_t a, uint32_t b) { return 0u - ((a - b) >> 31); }

/* tanh(x) to about 1 ulp (1.4e-7 relative, 8e-8 absolute), branch-free; libm's
 * tanhf (some 18 ns a call) does not vectorise.
 * |x| < 0.625: x + x^3 P(x^2), P of degree 4 fitted to (tanh x - x) / x^3 by
 * least squares on Chebyshev nodes (its own error 5e-9).
 * Above: 1 - 2 / (e^{2|x|} + 1), exact to a rounding or two with no
 * cancellation there; e^y = 2^n e^r with n the nearest integer to y / ln 2 and
 * r = y - n ln 2 (ln 2 split in two, Cody and Waite), e^r = 1 + r + r^2 G(r) with
 * G of degree 4 fitted likewise (not lane_exp, whose float comparisons would
 * not vectorise for AVX2); |x| is capped at 10, where tanh is 1 in float
 * (at 9 it is not: 1 - 3e-8 rounds to 1 - 2^-24).
 * The sign is put back last; NaN passes through. */
LANE_INLINE float lane_tanh(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const uint32_t sign = bits & 0x80000000u, mag = bits & 0x7fffffffu;
    const uint32_t small = lane_below(mag, 0x3f200000u); /* 0.625f */
    const uint32_t nan = lane_below(0x7f800000u, mag);
    const uint32_t capped = mag - ((mag - 0x41200000u) & lane_below(0x41200000u, mag)); /* 10.0f */
    float a;
    memcpy(&a, &capped, sizeof a);
    const float a2 = a * a;
    float p = -5.7189627550542355e-3f;
    p = p * a2 + 2.0653124898672104e-2f;
    p = p * a2 - 5.374465882778168e-2f;
    p = p * a2 + 1.3331513106822968e-1f;
    p = p * a2 - 3.333328664302826e-1f;
    const float near_zero = a + a * a2 * p;
    /* n by rounding: adding 1.5 * 2^23 leaves n in the low mantissa bits. */
    const float y = 2.0f * a;
    const float shifted = y * VF_EXP_LOG2E + LANE_EXP_ROUNDER;
    uint32_t n;
    memcpy(&n, &shifted, sizeof n);
    n = (n & 0x7fffffu) - 0x400000u;
    const float nf = shifted - LANE_EXP_ROUNDER;
    const float r = (y - nf * VF_EXP_LN2_HI) - nf * VF_EXP_LN2_LO;
    float g = 1.3751407386735082e-3f;
    g = g * r + 8.368915878236294e-3f;
    g = g * r + 4.166953265666962e-2f;
    g = g * r + 1.66665181517601e-1f;
    g = g * r + 4.9999988079071045e-1f;
    const uint32_t two_n_bits = (n + 127u) << 23;
    float two_n;
    memcpy(&two_n, &two_n_bits, sizeof two_n);
    const float away = 1.0f - 2.0f / ((1.0f + r + r * r * g) * two_n + 1.0f);
    uint32_t near_bits, away_bits;
    memcpy(&near_bits, &near_zero, sizeof near_bits);
    memcpy(&away_bits, &away, sizeof away_bits);
    uint32_t t = ((near_bits & small) | (away_bits & ~small)) | sign;
    t = (t & ~nan) | (bits & nan);
    float out;
    memcpy(&out, &t, sizeof out);
    return out;
}

/* a . b summed in eight lanes, in a fixed order (the compiler may keep the
 * lanes in one vector register; the result is the same either way). */
LANE_INLINE float lane_dot(const float *a, const float *b, int n)
{
    float lane[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) lane[k] += a[i + k] * b[i + k];
    float sum =
        ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

#endif
