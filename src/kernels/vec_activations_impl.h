/* Internal, included by vec_impl.h once per instruction set: the pointwise
 * activations and their derivatives, with the formulas of
 * torch.nn.functional, over one contiguous run.
 *
 * GELU (erf form) sits in every Transformer MLP over 4 C values per token, where
 * libm's erfcf and expf (some 10 and 5 ns a call) would cost as much as the
 * matrix products around them: it uses the branch-free normal CDF below, one
 * lane_exp per element for the CDF and the density together. Each case is its
 * own loop so that the compiler sees a plain elementwise loop. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "attn/nn.h"
#include "core/bf16.h"
#include "kernels/lane_math.h"

#define SQRT1_2 0.70710678118654752440f      /* 1 / sqrt(2) */
#define INV_SQRT_2PI 0.39894228040143267794f /* 1 / sqrt(2 pi), the normal density at 0 */
#define SQRT_2_OVER_PI 0.79788456080286535588f
#define GELU_TANH_CUBIC 0.044715f

/* The argument of tanh in GELU's tanh form: sqrt(2/pi) (x + 0.044715 x^3). */
static inline float gelu_tanh_inner(float x)
{
    return SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x * x * x);
}

/* e^(-x^2 / 2), the normal density times sqrt(2 pi), for any x to a few ulp.
 * x^2 / 2 is split as h^2 / 2 + (a - h)(a + h) / 2 with a = |x| and h = a cut to
 * 12 significant bits, so h^2 / 2 is exact and e^(-h^2 / 2) carries only
 * lane_exp's rounding rather than x^2's (which would cost 25 ulp at x = 7); the
 * rest r = (a - h)(a + h) / 2 lies in [0, a^2 2^-11] and e^-r is its Taylor
 * polynomial of degree 5 (within 6e-10 up to r = 0.09). a is capped at 16, where
 * the result is 0 (below 13.2 it is already), so that no product overflows;
 * NaN is capped too: the callers' other terms carry it. Integer operations
 * on the bits, which every variant vectorises (lane_below's reason). */
LANE_INLINE float half_square_exp(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits &= 0x7fffffffu;
    bits = bits < 0x41800000u ? bits : 0x41800000u; /* 16.0f */
    float a, h;
    memcpy(&a, &bits, sizeof a);
    bits &= 0xfffff000u;
    memcpy(&h, &bits, sizeof h);
    const float r = 0.5f * ((a - h) * (a + h));
    const float e_r =
        ((((-8.33333333e-3f * r + 4.16666667e-2f) * r - 1.66666667e-1f) * r + 0.5f) * r - 1.0f) *
            r + 1.0f;
    return lane_exp(-0.5f * (h * h)) * e_r;
}

/* The normal CDF Phi(x), given e = half_square_exp(x), within 4.5e-7 relative
 * in both tails (measured against float64 at every float in [-13, 13] spaced
 * 1e-5). Phi(-|x|) = erfc(a) / 2 with a = |x| / sqrt(2), and erfc(a) = t Q(t) e^(-a^2),
 * t = 1 / (1 + a / 2), where Q(t) = erfcx(a) / t is smooth on (0, 1] (from 1 / sqrt(pi)
 * at t = 0 to 1 at t = 1): the substitution of Numerical Recipes' erfc (section
 * 6.2), whose e^(P(t)) is here a polynomial itself, so that the exponential is
 * the density's, e, and a's rounding never reaches the exponent (where it
 * would cost up to 2^-23 a^2 relative: 8.6e-6 at x = -12). Q is of degree
 * 10 in s = t - 1/2, fitted by least squares on Chebyshev nodes of t in
 * [1/6, 1] (a up to 10, beyond which e is 0) weighted for relative error (its
 * own error 3.5e-9), and evaluated in Estrin's scheme, whose short dependency
 * chains run half again as fast as Horner's here. NaN stays NaN; at +-inf, t is 0
 * and Phi 1 or 0. */
LANE_INLINE float normal_cdf_from(float x, float e)
{
    const float t = 1.0f / (1.0f + 0.5f * (fabsf(x) * SQRT1_2));
    const float s = t - 0.5f, s2 = s * s, s4 = s2 * s2, s8 = s4 * s4;
    const float q01 = 6.871606954e-01f * s + 5.107913544e-01f;
    const float q23 = 1.457672834e-01f * s + 5.589435324e-01f;
    const float q45 = -1.036178188e-01f * s - 1.720455096e-01f;
    const float q67 = 5.328763719e-02f * s + 9.800254879e-02f;
    const float q89 = -1.212773498e-02f * s - 7.587160042e-02f;
    const float q03 = q23 * s2 + q01, q47 = q67 * s2 + q45;
    const float q8a = 3.570683956e-02f * s2 + q89;
    const float q = q8a * s8 + (q47 * s4 + q03);
    const float half_tail = (0.5f * t) * (q * e);
    return x < 0.0f ? half_tail : 1.0f - half_tail;
}

LANE_INLINE float normal_cdf(float x) { return normal_cdf_from(x, half_square_exp(x)); }

/* GELU's slope Phi(x) + x phi(x) from x, Phi(x) and e = half_square_exp(x). The
 * density is 0 beyond |x| of about 13 (e underflows), so x phi(x) never meets
 * 0 * inf for finite x. */
LANE_INLINE float gelu_slope_from(float x, float cdf, float e)
{
    return cdf + x * (INV_SQRT_2PI * e);
}

/* y may be x: element i is read before it is written. */
static void activation_forward(attn_activation f, float *y, const float *x, size_t n)
{
    switch (f) {
    case ATTN_ACT_RELU:
        /* Written so that NaN passes through, as torch.relu does. */
        for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
        break;
    case ATTN_ACT_GELU:
        for (size_t i = 0; i < n; i++) y[i] = x[i] * normal_cdf(x[i]);
        break;
    case ATTN_ACT_GELU_TANH:
        for (size_t i = 0; i < n; i++)
            y[i] = 0.5f * x[i] * (1.0f + lane_tanh(gelu_tanh_inner(x[i])));
        break;
    case ATTN_ACT_TANH:
        for (size_t i = 0; i < n; i++) y[i] = lane_tanh(x[i]);
        break;
    }
}

/* dx += f'(x) dy:
 *   relu       f' = [x > 0]
 *   gelu       f' = Phi(x) + x phi(x)   (Phi, phi: the normal CDF and density)
 *   gelu_tanh  f' = (1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2) / 2,
 *              t = tanh(sqrt(2/pi) (x + 0.044715 x^3))
 *   tanh       f' = 1 - tanh(x)^2 */
static void activation_backward(attn_activation f, float *restrict dx, const float *restrict dy,
                                const float *restrict x, size_t n)
{
    switch (f) {
    case ATTN_ACT_RELU:
        for (size_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case ATTN_ACT_GELU:
        for (size_t i = 0; i < n; i++) {
            const float e = half_square_exp(x[i]);
            dx[i] += dy[i] * gelu_slope_from(x[i], normal_cdf_from(x[i], e), e);
        }
        break;
    case ATTN_ACT_GELU_TANH:
        for (size_t i = 0; i < n; i++) {
            float t = lane_tanh(gelu_tanh_inner(x[i]));
            float sech2 = 1.0f - t * t;
            /* sech2 is exactly 0 from |x| of about 10 on, where x^2 may overflow
             * and 0 * inf would give NaN. */
            float slope = sech2 == 0.0f ? 0.0f
                                        : 0.5f * x[i] * sech2 * SQRT_2_OVER_PI *
                                              (1.0f + 3.0f * GELU_TANH_CUBIC * x[i] * x[i]);
            dx[i] += dy[i] * (0.5f * (1.0f + t) + slope);
        }
        break;
    case ATTN_ACT_TANH:
        for (size_t i = 0; i < n; i++) {
            float t = lane_tanh(x[i]);
            dx[i] += dy[i] * (1.0f - t * t);
        }
        break;
    }
}

/* GELU (erf form) at x: *value = x Phi(x), returned: the slope Phi(x) + x phi(x),
 * each the same bits as activation_forward's y and the factor of dy in
 * activation_backward. */
LANE_INLINE float gelu_value_slope(float x, float *value)
{
    const float e = half_square_exp(x), cdf = normal_cdf_from(x, e);
    *value = x * cdf;
    return gelu_slope_from(x, cdf, e);
}

/* GELU and its slope over xs: (n), the slope written over xs, the value into y
 * or, rounded as attn_bf16_round rounds it, y16 (the other NULL). Element i is
 * read and written through the one pointer, so the loop vectorises with no
 * check for overlap, and the outputs go straight to memory. */
static void gelu_slope_in_place(float *restrict y, uint16_t *restrict y16, float *restrict xs,
                                size_t n)
{
    float value;
    if (y16)
        for (size_t i = 0; i < n; i++) {
            xs[i] = gelu_value_slope(xs[i], &value);
            y16[i] = attn_bf16_round(value);
        }
    else
        for (size_t i = 0; i < n; i++) {
            xs[i] = gelu_value_slope(xs[i], &value);
            y[i] = value;
        }
}

/* GELU (erf form) and its slope, for a training pass that keeps the slope
 * rather than the input: y = x Phi(x) and slope = Phi(x) + x phi(x)
 * (gelu_value_slope); y in float32 (y16 NULL) or only rounded to bfloat16 as
 * attn_bf16_round rounds it (y NULL), the input of a bf16 product. slope may be
 * x (the training pass writes it over c_fc's output): then gelu_slope_in_place;
 * else x is first copied to slope, which costs a pass but keeps one loop. */
static void gelu_forward_slope(float *y, uint16_t *y16, float *slope, const float *x, size_t n)
{
    if (slope != x) memmove(slope, x, n * sizeof *slope);
    gelu_slope_in_place(y, y16, slope, n);
}

/* dx = dy slope, overwritten (the GELU backward from gelu_forward_slope's slope). */
static void gelu_backward_slope(float *restrict dx, const float *restrict dy,
                                const float *restrict slope, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * slope[i];
}
