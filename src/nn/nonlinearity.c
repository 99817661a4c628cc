/* Pointwise activations (ReLU, GELU in its erf and tanh forms, tanh) and their
 * derivatives, with the formulas of torch.nn.functional: their names, argument
 * checks and split across threads. The loops themselves are vector kernels
 * (kernels/vec_activations_impl.h) of the instruction set the library chose
 * (kernels/isa.h); each element is computed alone, so neither the variant nor the
 * thread count changes a bit. */
#include <string.h>

#include "attn/nn.h"
#include "core/error.h"
#include "core/names.h"
#include "kernels/isa.h"
#include "nn/nonlinearity.h"

/* Below this many elements one thread is faster; above, runs of CHUNK elements
 * are the threads' tasks. */
enum { PARALLEL_MIN_ELEMENTS = 1 << 15, CHUNK = 1 << 14 };

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

attn_status attn_activation_forward(attn_activation f, float *y, const float *x, size_t n)
{
    attn_status s;
    const attn_isa *isa;
    if ((s = check_args(f, y, x)) || (s = attn_isa_current(&isa))) return s;
    const long chunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (long c = 0; c < chunks; c++) {
        const size_t first = (size_t)c * CHUNK;
        isa->vec->activation_forward(f, y + first, x + first,
                                     n - first < CHUNK ? n - first : CHUNK);
    }
    return ATTN_OK;
}

attn_status attn_activation_backward(attn_activation f, float *dx, const float *dy,
                                     const float *x, size_t n)
{
    attn_status s;
    const attn_isa *isa;
    if ((s = check_args(f, dx, dy)) || (s = attn_check_not_null(x, "activation x")) ||
        (s = attn_isa_current(&isa)))
        return s;
    const long chunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (long c = 0; c < chunks; c++) {
        const size_t first = (size_t)c * CHUNK;
        isa->vec->activation_backward(f, dx + first, dy + first, x + first,
                                      n - first < CHUNK ? n - first : CHUNK);
    }
    return ATTN_OK;
}

attn_status attn_gelu_forward_slope(float *y, uint16_t *y16, float *slope, const float *x,
                                    size_t n)
{
    attn_status s;
    const attn_isa *isa;
    if ((s = check_args(ATTN_ACT_GELU, y16 ? (const void *)y16 : y, x)) ||
        (s = attn_check_not_null(slope, "gelu slope")) || (s = attn_isa_current(&isa)))
        return s;
    const long chunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (long c = 0; c < chunks; c++) {
        const size_t first = (size_t)c * CHUNK;
        isa->vec->gelu_forward_slope(y16 ? NULL : y + first, y16 ? y16 + first : NULL,
                                     slope + first, x + first,
                                     n - first < CHUNK ? n - first : CHUNK);
    }
    return ATTN_OK;
}

attn_status attn_gelu_backward_slope(float *dx, const float *dy, const float *slope, size_t n)
{
    attn_status s;
    const attn_isa *isa;
    if ((s = check_args(ATTN_ACT_GELU, dx, dy)) ||
        (s = attn_check_not_null(slope, "gelu slope")) || (s = attn_isa_current(&isa)))
        return s;
    const long chunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (long c = 0; c < chunks; c++) {
        const size_t first = (size_t)c * CHUNK;
        isa->vec->gelu_backward_slope(dx + first, dy + first, slope + first,
                                      n - first < CHUNK ? n - first : CHUNK);
    }
    return ATTN_OK;
}
