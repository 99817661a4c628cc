/* Pointwise activations (ReLU, GELU in its erf and tanh forms, tanh) and their
 * derivatives, with the formulas of torch.nn.functional. */
#include <math.h>
#include <string.h>

#include "attn/nn.h"
#include "core/error.h"

#define SQRT1_2 0.70710678118654752440f    /* 1 / sqrt(2) */
#define INV_SQRT_2PI 0.39894228040143267794f /* 1 / sqrt(2 pi), the normal density at 0 */
#define SQRT_2_OVER_PI 0.79788456080286535588f
#define GELU_TANH_CUBIC 0.044715f

static const struct {
    attn_activation f;
    const char *name;
} NAMES[] = {
    {ATTN_ACT_RELU, "relu"},
    {ATTN_ACT_GELU, "gelu"},
    {ATTN_ACT_GELU_TANH, "gelu_tanh"},
    {ATTN_ACT_TANH, "tanh"},
};
enum { NAME_COUNT = sizeof NAMES / sizeof NAMES[0] };

/* The entry of f in NAMES, or -1 if f is no attn_activation. */
static int name_index(attn_activation f)
{
    for (int i = 0; i < NAME_COUNT; i++)
        if (NAMES[i].f == f) return i;
    return -1;
}

const char *attn_activation_name(attn_activation f)
{
    int i = name_index(f);
    return i < 0 ? "unknown" : NAMES[i].name;
}

attn_status attn_activation_parse(attn_activation *f, const char *name)
{
    attn_status s;
    if ((s = attn_check_not_null(f, "activation")) ||
        (s = attn_check_not_null(name, "activation name")))
        return s;
    for (int i = 0; i < NAME_COUNT; i++)
        if (strcmp(NAMES[i].name, name) == 0) {
            *f = NAMES[i].f;
            return ATTN_OK;
        }
    return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                      "unknown activation '%s' (expected relu, gelu, gelu_tanh or tanh)", name);
}

static attn_status check_args(attn_activation f, const void *out, const void *in)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "activation output")) ||
        (s = attn_check_not_null(in, "activation input")))
        return s;
    if (name_index(f) < 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "activation %d is not an attn_activation",
                          (int)f);
    return ATTN_OK;
}

/* The argument of tanh in GELU's tanh form: sqrt(2/pi) (x + 0.044715 x^3). */
static inline float gelu_tanh_inner(float x)
{
    return SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x * x * x);
}

/* The normal CDF Phi(x) = erfc(-x / sqrt(2)) / 2: unlike (1 + erf(x / sqrt(2))) / 2
 * it keeps its relative accuracy in the left tail, where erf is near -1. */
static inline float normal_cdf(float x) { return 0.5f * erfcf(-x * SQRT1_2); }

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
        for (size_t i = 0; i < n; i++) y[i] = x[i] * normal_cdf(x[i]);
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
        for (size_t i = 0; i < n; i++) {
            float pdf = INV_SQRT_2PI * expf(-0.5f * x[i] * x[i]);
            dx[i] += dy[i] * (normal_cdf(x[i]) + x[i] * pdf);
        }
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
