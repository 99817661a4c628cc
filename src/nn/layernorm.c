/* Layer normalisation over the last axis, as nn.LayerNorm.
 *
 * The rows are the instruction set's vector kernels (kernels/vec_layernorm_impl.h),
 * the same bits in every variant. Row sums are taken in double over 8 independent
 * partial sums: double keeps the mean exact enough when |mean| is large against
 * the spread (float would put an error of |mean| * 1e-7 * sqrt(D) into every
 * centred value), and the separate
 * lanes break the chain of dependent additions so the loop runs at the adders'
 * throughput instead of their latency. The order is fixed, so results do not
 * depend on the thread count.
 *
 * The mean reaches backward rounded to float, off by up to 6e-8 |mean|; centring
 * with it would cost backward 6e-8 |mean| / std of relative accuracy (1e-5 at a
 * mean 150 times the spread). Backward therefore refines it: the mean of
 * x - stored mean, taken in double, is the part the rounding lost. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/nn.h"
#include "core/error.h"
#include "kernels/isa.h"
#include "nn/layernorm.h"

enum {
    PARALLEL_MIN_ELEMENTS = 1 << 15, /* below this a parallel region costs more than it saves */
    ROW_BLOCK = 64                   /* rows of one task of the backward pass */
};

static attn_status check_sizes(int N, int D)
{
    attn_status s;
    if ((s = attn_check_at_least(N, 1, "layernorm N")) ||
        (s = attn_check_at_least(D, 1, "layernorm D")))
        return s;
    return ATTN_OK;
}

/* x: (N, D), weight, bias: (D) or NULL -> y: (N, D), mean, rstd: (N).
 * y = (x - mean) * rstd * weight + bias, rstd = 1 / sqrt(biased variance + eps).
 * The variance is the mean square of the centred values (two passes), which
 * does not cancel as E[x^2] - mean^2 does. */
attn_status attn_layernorm_forward_rounded(float *y, uint16_t *y16, float *mean, float *rstd,
                                           const float *x, const float *weight,
                                           const float *bias, int N, int D, float eps)
{
    attn_status s;
    const attn_isa *isa;
    if ((s = check_sizes(N, D)) || (s = attn_check_not_null(y, "layernorm y")) ||
        (s = attn_check_not_null(mean, "layernorm mean")) ||
        (s = attn_check_not_null(rstd, "layernorm rstd")) ||
        (s = attn_check_not_null(x, "layernorm x")) || (s = attn_isa_current(&isa)))
        return s;
    /* eps > 0 keeps a constant row (variance 0) finite. */
    if (!(eps > 0.0f) || isinf(eps))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "layernorm eps %g must be finite and > 0",
                          (double)eps);
#pragma omp parallel for schedule(static) if ((size_t)N * D >= PARALLEL_MIN_ELEMENTS) \
    num_threads(attn_get_num_threads())
    for (int n = 0; n < N; n++) {
        const size_t row = (size_t)n * D;
        isa->vec->layernorm_row_forward(y + row, mean + n, rstd + n, x + row, weight, bias, D,
                                        eps);
        if (y16)
            isa->vec->bf16_round_tile(y16 + row, (size_t)D, y + row, (size_t)D, 1, (size_t)D);
    }
    return ATTN_OK;
}

attn_status attn_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                   const float *weight, const float *bias, int N, int D,
                                   float eps)
{
    return attn_layernorm_forward_rounded(y, NULL, mean, rstd, x, weight, bias, N, D, eps);
}

/* Of y = xhat * w + b with xhat = (x - mean) * rstd, per row (means over D):
 *   g = dy * w
 *   dx += rstd * (g - mean(g) - xhat * mean(g * xhat))
 *   dweight += sum over rows of dy * xhat;  dbias += sum over rows of dy.
 * One pass over blocks of ROW_BLOCK rows, a block per task: each row's refined
 * mean and dx, then the block's own sums for dweight and dbias (rows in order)
 * while its rows are in cache; the blocks' sums are then added in block order,
 * so the bits do not depend on the thread count. (Sharing the columns among the
 * threads instead, each walking all rows after a barrier, ran slower on two
 * threads than on one at 768 x 128.) */
attn_status attn_layernorm_backward(float *dx, float *dweight, float *dbias, const float *dy,
                                    const float *x, const float *mean, const float *rstd,
                                    const float *weight, int N, int D)
{
    attn_status s;
    const attn_isa *isa;
    if ((s = check_sizes(N, D)) || (s = attn_check_not_null(dy, "layernorm dy")) ||
        (s = attn_check_not_null(x, "layernorm x")) ||
        (s = attn_check_not_null(mean, "layernorm mean")) ||
        (s = attn_check_not_null(rstd, "layernorm rstd")) || (s = attn_isa_current(&isa)))
        return s;
    const int blocks = (N + ROW_BLOCK - 1) / ROW_BLOCK;
    const bool columns = dweight || dbias;
    /* per block: its dweight sums (D), then its dbias sums (D) */
    float *block_sums = NULL;
    if (columns && (block_sums = malloc((size_t)blocks * 2 * D * sizeof *block_sums)) == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %zu layernorm column sums",
                          (size_t)blocks * 2 * D);
#pragma omp parallel for schedule(static) if ((size_t)N * D >= PARALLEL_MIN_ELEMENTS) \
    num_threads(attn_get_num_threads())
    for (int b = 0; b < blocks; b++) {
        const int first = b * ROW_BLOCK, rows = N - first < ROW_BLOCK ? N - first : ROW_BLOCK;
        double mu[ROW_BLOCK];
        for (int r = 0; r < rows; r++) {
            const size_t row = (size_t)(first + r) * D;
            mu[r] = isa->vec->layernorm_row_backward(dx ? dx + row : NULL, dy + row, x + row,
                                                     weight, D, mean[first + r],
                                                     rstd[first + r]);
        }
        if (columns) {
            float *sums = block_sums + (size_t)b * 2 * D;
            memset(sums, 0, 2 * (size_t)D * sizeof *sums);
            const size_t at = (size_t)first * D;
            isa->vec->layernorm_columns_backward(dweight ? sums : NULL, dbias ? sums + D : NULL,
                                                 dy + at, x + at, mu, rstd + first, rows, D);
        }
    }
    if (columns)
        for (int i = 0; i < D; i++) {
            float w = block_sums[i], bias = block_sums[D + i];
            for (int b = 1; b < blocks; b++) {
                w += block_sums[(size_t)b * 2 * D + i];
                bias += block_sums[(size_t)b * 2 * D + D + i];
            }
            if (dweight) dweight[i] += w;
            if (dbias) dbias[i] += bias;
        }
    free(block_sums);
    return ATTN_OK;
}
