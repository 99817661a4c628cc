/* Internal, included by vec_impl.h once per instruction set: the pointwise
 * activations and their derivatives, with the formulas of
 * torch.nn.functional, over one contiguous run.
 *
 * GELU (erf form) sits in every Transformer MLP over 4 C values per token, where
 * libm's erfcf and expf (some 10 and 5 ns a call) would cost as much as the
 * matrix products around them: it uses the branch-free erfc below and
 * lane_exp. Each case is its own loop so that the compiler sees a plain
 * elementwise loop. */
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

/* erfc(a) for a >= 0 (NaN for NaN), to a few parts in 10^7 relative: the
 * Chebyshev fit erfc(a) = t exp(-a^2 + P(t)), t = 1 / (1 + a / 2), of Numerical
 * Recipes (section 6.2; relative error below 1.2e-7 in exact arithmetic). The
 * square is split as a^2 = h^2 + (a - h)(a + h) with h = a cut to 12 significant
 * bits, so h^2 is exact and exp(-h^2) carries only exp's rounding rather than
 * a^2's (which would cost 25 ulp at a = 5). Infinite a gives 0, not NaN. */
static inline float erfc_nonnegative(float a)
{
    float t = 1.0f / (1.0f + 0.5f * a);
    float p = ((((((((0.17087277f * t - 0.82215223f) * t + 1.48851587f) * t - 1.13520398f) * t +
                  0.27886807f) * t - 0.18628806f) * t + 0.09678418f) * t + 0.37409196f) * t +
               1.00002368f) * t - 1.26551223f;
    uint32_t bits;
    memcpy(&bits, &a, sizeof bits);
    bits &= 0xfffff000u;
    float h;
    memcpy(&h, &bits, sizeof h);
    float rest = (a - h) * (a + h);
    rest = a == INFINITY ? 0.0f : rest; /* inf - inf */
    return t * (lane_exp(-(h * h)) * lane_exp(p - rest));
}

/* The normal CDF Phi(x) = erfc(-x / sqrt(2)) / 2: unlike (1 + erf(x / sqrt(2))) / 2
 * it keeps its relative accuracy in the left tail, where erf is near -1. */
static inline float normal_cdf(float x)
{
    float half_tail = 0.5f * erfc_nonnegative(fabsf(x) * SQRT1_2);
    return x < 0.0f ? half_tail : 1.0f - half_tail;
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
        /* The density is 0 beyond |x| of about 14 (e^-98 underflows), so x phi(x)
         * never meets 0 * inf. */
        for (size_t i = 0; i < n; i++) {
            float pdf = INV_SQRT_2PI * lane_exp(-0.5f * x[i] * x[i]);
            dx[i] += dy[i] * (normal_cdf(x[i]) + x[i] * pdf);
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
    float cdf = normal_cdf(x);
    float pdf = INV_SQRT_2PI * lane_exp(-0.5f * x * x);
    *value = x * cdf;
    return cdf + x * pdf;
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
