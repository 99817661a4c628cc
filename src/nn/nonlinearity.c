/* Pointwise activations (ReLU, GELU in its erf and tanh forms, tanh) and their
 * derivatives, with the formulas of torch.nn.functional: their names, argument
 * checks and split across threads. The loops themselves are vector kernels
 * (kernels/vec_activations_impl.h) of the instruction set the library chose
 * (kernels/isa.h); each element is computed alone, so neither the variant nor the
 * thread count changes a bit. */
#include <string.h>

#include "attn/nn.h"
#include "core/error.h"
#include "kernels/isa.h"

/* Below this many elements one thread is faster; above, runs of CHUNK elements
 * are the threads' tasks. */
enum { PARALLEL_MIN_ELEMENTS = 1 << 15, CHUNK = 1 << 14 };

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
