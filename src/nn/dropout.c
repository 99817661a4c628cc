/* Inverted dropout, as nn.Dropout in training, with the mask drawn from the
 * counter-based generator so that backward can redraw it instead of storing it. */
#include <math.h>

#include "attn/nn.h"
#include "core/error.h"

enum {
    PHILOX_WORDS = 4,
    PARALLEL_MIN_ELEMENTS = 1 << 16 /* below this a parallel region costs more than it saves */
};

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

/* attn_uniform_at(seed, i) is the top 24 bits of word i % 4 of the Philox block
 * i / 4, times 2^-24. Comparing those bits with ceil(p 2^24) gives the same
 * decision as uniform >= p (both sides are exact), and one Philox call serves
 * four elements instead of being repeated for each. */
static uint32_t keep_threshold(float p) { return (uint32_t)ceil((double)p * 16777216.0); }

/* out[i] = in[i] * scale where element i is kept, else 0 (accumulate adds instead
 * of storing). Blocks are independent, so the result is the same for any thread
 * count. */
static void apply_mask(float *out, const float *in, size_t n, float p, uint64_t seed,
                       bool accumulate)
{
    const uint32_t threshold = keep_threshold(p);
    const float scale = 1.0f / (1.0f - p);
    const size_t blocks = (n + PHILOX_WORDS - 1) / PHILOX_WORDS;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS) \
    num_threads(attn_get_num_threads())
    for (size_t blk = 0; blk < blocks; blk++) {
        uint32_t words[PHILOX_WORDS];
        attn_philox4x32(words, seed, 0, blk);
        size_t first = blk * PHILOX_WORDS;
        size_t count = n - first < PHILOX_WORDS ? n - first : PHILOX_WORDS;
        for (size_t w = 0; w < count; w++) {
            float kept = (words[w] >> 8) >= threshold ? in[first + w] * scale : 0.0f;
            if (accumulate)
                out[first + w] += kept;
            else
                out[first + w] = kept;
        }
    }
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
    apply_mask(y, x, n, p, seed, false);
    return ATTN_OK;
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
    apply_mask(dx, dy, n, p, seed, true);
    return ATTN_OK;
}
