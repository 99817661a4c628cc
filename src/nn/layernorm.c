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

#include "attn/nn.h"
#include "core/error.h"
#include "kernels/isa.h"
#include "nn/layernorm.h"

enum {
    PARALLEL_MIN_ELEMENTS = 1 << 15, /* below this a parallel region costs more than it saves */
    COLUMN_BLOCK = 64                /* columns of dweight, dbias given to one thread */
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
        if (y16) isa->vec->bf16_round(y16 + row, y + row, (size_t)D);
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
 * First each row's refined mean (and its dx), one row per task, then dweight
 * and dbias, which sum over rows, one block of columns per task walking all rows
 * in order. The refined means are kept for all N rows (N doubles of scratch), so
 * the threads need to meet only once, between the two loops. */
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
    double *mu = malloc((size_t)N * sizeof *mu);
    if (mu == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d layernorm row means", N);
    const int blocks = (D + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
#pragma omp parallel if ((size_t)N * D >= PARALLEL_MIN_ELEMENTS) \
    num_threads(attn_get_num_threads())
    {
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const size_t row = (size_t)n * D;
            mu[n] = isa->vec->layernorm_row_backward(dx ? dx + row : NULL, dy + row, x + row,
                                                     weight, D, mean[n], rstd[n]);
        }
        if (dweight || dbias) {
#pragma omp for schedule(static)
            for (int blk = 0; blk < blocks; blk++) {
                const int lo = blk * COLUMN_BLOCK;
                const int hi = lo + COLUMN_BLOCK < D ? lo + COLUMN_BLOCK : D;
                isa->vec->layernorm_columns_backward(dweight, dbias, dy, x, mu, rstd, N, D, lo,
                                                     hi);
            }
        }
    }
    free(mu);
    return ATTN_OK;
}
