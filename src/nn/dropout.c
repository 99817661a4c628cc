/* Inverted dropout, as nn.Dropout in training, with the mask drawn from the
 * counter-based generator so that backward can redraw it instead of storing it. */
#include "attn/nn.h"
#include "core/error.h"
#include "kernels/isa.h"

/* Below this many elements a parallel region costs more than it saves. */
enum { PARALLEL_MIN_ELEMENTS = 1 << 16, CHUNK = 1 << 12 };

static attn_status check_args(const void *out, const void *in, float p)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "dropout output")) ||
        (s = attn_check_not_null(in, "dropout input")))
        return s;
    if (!(p >= 0.0f && p < 1.0f)) /* also rejects NaN */
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "dropout p %g is not in [0, 1)", (double)p);
    return ATTN_OK;
}

/* out[i] = in[i] / (1 - p) where element i is kept (attn_uniform_at(seed, i) >= p),
 * else 0 (accumulate adds instead of storing). Each element's draw depends on its
 * index alone, so the result is the same for any thread count and variant. */
static attn_status apply_mask(float *out, const float *in, size_t n, float p, uint64_t seed,
                              bool accumulate)
{
    const attn_isa *isa;
    attn_status s = attn_isa_current(&isa);
    if (s) return s;
    const float scale = 1.0f / (1.0f - p);
    const long chunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS) \
    num_threads(attn_get_num_threads())
    for (long c = 0; c < chunks; c++) {
        const size_t first = (size_t)c * CHUNK, count = n - first < CHUNK ? n - first : CHUNK;
        isa->vec->dropout_run(out + first, in + first, count, seed, first, p, scale, accumulate);
    }
    return ATTN_OK;
}

/* x, y: (n); y may be x. */
attn_status attn_dropout_forward(float *y, const float *x, size_t n, float p, uint64_t seed)
{
    attn_status s;
    if ((s = check_args(y, x, p))) return s;
    if (p == 0.0f) {
        for (size_t i = 0; i < n; i++) y[i] = x[i];
        return ATTN_OK;
    }
    return apply_mask(y, x, n, p, seed, false);
}

/* Of y = x * keep / (1 - p): dx: (n) += dy * keep / (1 - p), the same keep. */
attn_status attn_dropout_backward(float *dx, const float *dy, size_t n, float p, uint64_t seed)
{
    attn_status s;
    if ((s = check_args(dx, dy, p))) return s;
    if (p == 0.0f) {
        for (size_t i = 0; i < n; i++) dx[i] += dy[i];
        return ATTN_OK;
    }
    return apply_mask(dx, dy, n, p, seed, true);
}
