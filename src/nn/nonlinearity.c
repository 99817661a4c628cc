/* Pointwise activations (ReLU, GELU in its erf and tanh forms, tanh) and their
 * derivatives, with the formulas of torch.nn.functional.
 *
 * GELU (erf form) sits in every Transformer MLP over 4 C values per token, where
 * libm's erfcf and expf (some 10 and 5 ns a call) cost as much as the matrix
 * products around them. Its loops therefore use a branch-free erfc (below) and
 * simd.h's exp, which the compiler vectorises; they are compiled for AVX-512, AVX2
 * and baseline x86-64, picked when the library loads, and split across threads
 * for large arrays. Each element is computed alone, so neither the instruction
 * set (no FMA contraction in ISO C mode) nor the thread count changes a bit. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "attn/nn.h"
#include "core/error.h"
#include "core/names.h"
/* vf_exp, the scalar form of the attention kernels' exp, which vectorises. */
#define ATTN_SIMD_SCALAR
#include "kernels/simd.h"

#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define GELU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#endif
#ifndef GELU_CLONES
#define GELU_CLONES
#endif

enum { PARALLEL_MIN_ELEMENTS = 1 << 15 };

#define SQRT1_2 0.70710678118654752440f    /* 1 / sqrt(2) */
#define INV_SQRT_2PI 0.39894228040143267794f /* 1 / sqrt(2 pi), the normal density at 0 */
#define SQRT_2_OVER_PI 0.79788456080286535588f
#define GELU_TANH_CUBIC 0.044715f

static const attn_name ACTIVATION_TABLE[] = {
    {ATTN_ACT_RELU, "relu"},
    {ATTN_ACT_GELU, "gelu"},
    {ATTN_ACT_GELU_TANH, "gelu_tanh"},
    {ATTN_ACT_TANH, "tanh"},
};
static const attn_names ACTIVATION_NAMES =
    ATTN_NAMES("activation", "activations", ACTIVATION_TABLE);
ATTN_NAMES_FUNCTIONS(attn_activation, ACTIVATION_NAMES, attn_activation_name,
                     attn_activation_parse)

static attn_status check_args(attn_activation f, const void *out, const void *in)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "activation output")) ||
        (s = attn_check_not_null(in, "activation input")))
        return s;
    if (!attn_names_has(&ACTIVATION_NAMES, (int)f))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "activation %d is not an attn_activation",
                          (int)f);
    return ATTN_OK;
}

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
    return t * (vf_exp(-(h * h)) * vf_exp(p - rest));
}

/* The normal CDF Phi(x) = erfc(-x / sqrt(2)) / 2: unlike (1 + erf(x / sqrt(2))) / 2
 * it keeps its relative accuracy in the left tail, where erf is near -1. */
static inline float normal_cdf(float x)
{
    float half_tail = 0.5f * erfc_nonnegative(fabsf(x) * SQRT1_2);
    return x < 0.0f ? half_tail : 1.0f - half_tail;
}

/* Elements per task when the GELU loops are split across threads. */
enum { GELU_CHUNK = 1 << 14 };

/* y may be x: element i is read before it is written. */
GELU_CLONES static void gelu_forward_chunk(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] * normal_cdf(x[i]);
}

/* The density at x is 0 beyond |x| of about 14 (e^-98 underflows), so x phi(x)
 * never meets 0 * inf. */
GELU_CLONES static void gelu_backward_chunk(float *restrict dx, const float *restrict dy,
                                            const float *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float pdf = INV_SQRT_2PI * vf_exp(-0.5f * x[i] * x[i]);
        dx[i] += dy[i] * (normal_cdf(x[i]) + x[i] * pdf);
    }
}

static void gelu_forward(float *y, const float *x, size_t n)
{
    const long chunks = (long)((n + GELU_CHUNK - 1) / GELU_CHUNK);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (long c = 0; c < chunks; c++) {
        const size_t first = (size_t)c * GELU_CHUNK;
        gelu_forward_chunk(y + first, x + first, n - first < GELU_CHUNK ? n - first : GELU_CHUNK);
    }
}

static void gelu_backward(float *dx, const float *dy, const float *x, size_t n)
{
    const long chunks = (long)((n + GELU_CHUNK - 1) / GELU_CHUNK);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (long c = 0; c < chunks; c++) {
        const size_t first = (size_t)c * GELU_CHUNK;
        gelu_backward_chunk(dx + first, dy + first, x + first,
                            n - first < GELU_CHUNK ? n - first : GELU_CHUNK);
    }
}

/* x, y: (n); y may be x. Each case is its own loop so that the compiler sees a
 * plain elementwise loop. */
attn_status attn_activation_forward(attn_activation f, float *y, const float *x, size_t n)
{
    attn_status s;
    if ((s = check_args(f, y, x))) return s;
    switch (f) {
    case ATTN_ACT_RELU:
        /* Written so that NaN passes through, as torch.relu does. */
        for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
        break;
    case ATTN_ACT_GELU:
        gelu_forward(y, x, n);
        break;
    case ATTN_ACT_GELU_TANH:
        for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + tanhf(gelu_tanh_inner(x[i])));
        break;
    case ATTN_ACT_TANH:
        for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
        break;
    }
    return ATTN_OK;
}

/* dx: (n) += f'(x) dy, with x the forward's input:
 *   relu       f' = [x > 0]
 *   gelu       f' = Phi(x) + x phi(x)   (Phi, phi: the normal CDF and density)
 *   gelu_tanh  f' = (1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2) / 2,
 *              t = tanh(sqrt(2/pi) (x + 0.044715 x^3))
 *   tanh       f' = 1 - tanh(x)^2 */
attn_status attn_activation_backward(attn_activation f, float *dx, const float *dy,
                                     const float *x, size_t n)
{
    attn_status s;
    if ((s = check_args(f, dx, dy)) || (s = attn_check_not_null(x, "activation x"))) return s;
    switch (f) {
    case ATTN_ACT_RELU:
        for (size_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case ATTN_ACT_GELU:
        gelu_backward(dx, dy, x, n);
        break;
    case ATTN_ACT_GELU_TANH:
        for (size_t i = 0; i < n; i++) {
            float t = tanhf(gelu_tanh_inner(x[i]));
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
            float t = tanhf(x[i]);
            dx[i] += dy[i] * (1.0f - t * t);
        }
        break;
    }
    return ATTN_OK;
}
