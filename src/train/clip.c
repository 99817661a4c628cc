/* Gradient clipping by the global L2 norm, as torch.nn.utils.clip_grad_norm_.
 *
 * The squares are summed in double in blocks of ATTN_NORM_BLOCK elements, each
 * over LANES partial sums in a fixed order, and the block sums are then added in
 * block order. A gradient held in block-aligned shards (data-parallel training
 * that shards the optimizer) thus gets the very norm one process gets from the
 * whole, bit for bit, from the shards' block sums. */
#include <math.h>
#include <stdlib.h>

#include "attn/train.h"
#include "core/error.h"

enum {
    LANES = 8,               /* independent partial sums, so the adds do not wait on each other */
    PARALLEL_MIN_BLOCKS = 64 /* below this a parallel region costs more than it saves */
};

size_t attn_norm_blocks(size_t n) { return (n + ATTN_NORM_BLOCK - 1) / ATTN_NORM_BLOCK; }

/* x: (n) -> sums: (attn_norm_blocks(n)), block b's sum of squares. */
void attn_square_sums(const float *x, size_t n, double *sums)
{
    const long blocks = (long)attn_norm_blocks(n);
#pragma omp parallel for schedule(static) if (blocks >= PARALLEL_MIN_BLOCKS) \
    num_threads(attn_get_num_threads())
    for (long b = 0; b < blocks; b++) {
        const size_t first = (size_t)b * ATTN_NORM_BLOCK;
        const size_t count = n - first < ATTN_NORM_BLOCK ? n - first : ATTN_NORM_BLOCK;
        const float *v = x + first;
        double lane[LANES] = {0};
        size_t i = 0;
        for (; i + LANES <= count; i += LANES)
            for (int l = 0; l < LANES; l++) lane[l] += (double)v[i + l] * v[i + l];
        double sum = 0.0;
        for (; i < count; i++) sum += (double)v[i] * v[i];
        for (int l = 0; l < LANES; l++) sum += lane[l];
        sums[b] = sum;
    }
}

double attn_norm_of_sums(const double *sums, size_t blocks)
{
    double sum = 0.0;
    for (size_t b = 0; b < blocks; b++) sum += sums[b];
    return sqrt(sum);
}

/* The scaling follows torch: clip_coef = max_norm / (norm + 1e-6), applied when
 * it is below 1. */
void attn_clip_to_norm(float *grads, size_t n, double norm, double max_norm)
{
    if (!isfinite(norm)) return;
    const double coef = max_norm / (norm + 1e-6);
    if (coef >= 1.0) return;
    const float scale = (float)coef;
    for (size_t i = 0; i < n; i++) grads[i] *= scale;
}

double attn_clip_grad_norm(float *grads, size_t n, double max_norm)
{
    if (grads == NULL && n > 0) {
        attn_error(ATTN_ERR_INVALID_ARGUMENT, "clip_grad_norm grads is NULL");
        return NAN;
    }
    if (!(max_norm >= 0.0)) {
        attn_error(ATTN_ERR_INVALID_ARGUMENT, "clip_grad_norm max_norm %g is not >= 0", max_norm);
        return NAN;
    }
    const size_t blocks = attn_norm_blocks(n);
    double small[16], *sums = blocks <= 16 ? small : malloc(blocks * sizeof *sums);
    if (sums == NULL) {
        attn_error(ATTN_ERR_OUT_OF_MEMORY, "clip_grad_norm: out of memory for %zu block sums",
                   blocks);
        return NAN;
    }
    attn_square_sums(grads, n, sums);
    const double norm = attn_norm_of_sums(sums, blocks);
    if (sums != small) free(sums);
    attn_clip_to_norm(grads, n, norm, max_norm);
    return norm;
}
