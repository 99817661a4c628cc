/* Layer normalisation over the last axis, as nn.LayerNorm.
 *
 * Row sums are taken in double over LANES independent partial sums: double keeps
 * the mean exact enough when |mean| is large against the spread (float would put
 * an error of |mean| * 1e-7 * sqrt(D) into every centred value), and the separate
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

enum {
    LANES = 8,
    PARALLEL_MIN_ELEMENTS = 1 << 15, /* below this a parallel region costs more than it saves */
    COLUMN_BLOCK = 64                /* columns of dweight, dbias given to one thread */
};

/* sum over i < D of x[i] - shift. */
static double row_sum(const float *x, int D, double shift)
{
    double lane[LANES] = {0};
    int i = 0;
    for (; i + LANES <= D; i += LANES)
        for (int l = 0; l < LANES; l++) lane[l] += (double)x[i + l] - shift;
    double total = 0.0;
    for (; i < D; i++) total += (double)x[i] - shift;
    for (int l = 0; l < LANES; l++) total += lane[l];
    return total;
}

/* sum over i < D of (x[i] - shift)^2. */
static double row_sum_squares(const float *x, int D, double shift)
{
    double lane[LANES] = {0};
    int i = 0;
    for (; i + LANES <= D; i += LANES)
        for (int l = 0; l < LANES; l++) {
            double d = (double)x[i + l] - shift;
            lane[l] += d * d;
        }
    double total = 0.0;
    for (; i < D; i++) {
        double d = (double)x[i] - shift;
        total += d * d;
    }
    for (int l = 0; l < LANES; l++) total += lane[l];
    return total;
}

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
attn_status attn_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                   const float *weight, const float *bias, int N, int D,
                                   float eps)
{
    attn_status s;
    if ((s = check_sizes(N, D)) || (s = attn_check_not_null(y, "layernorm y")) ||
        (s = attn_check_not_null(mean, "layernorm mean")) ||
        (s = attn_check_not_null(rstd, "layernorm rstd")) ||
        (s = attn_check_not_null(x, "layernorm x")))
        return s;
    /* eps > 0 keeps a constant row (variance 0) finite. */
    if (!(eps > 0.0f) || isinf(eps))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "layernorm eps %g must be finite and > 0",
                          (double)eps);
#pragma omp parallel for schedule(static) if ((size_t)N * D >= PARALLEL_MIN_ELEMENTS) \
    num_threads(attn_get_num_threads())
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * D;
        float *yr = y + (size_t)n * D;
        double mu = row_sum(xr, D, 0.0) / D;
        double var = row_sum_squares(xr, D, mu) / D;
        double rs = 1.0 / sqrt(var + eps);
        mean[n] = (float)mu;
        rstd[n] = (float)rs;
        for (int i = 0; i < D; i++) {
            float xhat = (float)(((double)xr[i] - mu) * rs);
            yr[i] = xhat * (weight ? weight[i] : 1.0f) + (bias ? bias[i] : 0.0f);
        }
    }
    return ATTN_OK;
}

/* One row of dx += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w,
 * xhat = (x - mu) * rstd. */
static void row_dx(float *dx, const float *dy, const float *x, const float *weight, int D,
                   double mu, double rs)
{
    double lane_g[LANES] = {0}, lane_gx[LANES] = {0};
    int i = 0;
    for (; i + LANES <= D; i += LANES)
        for (int l = 0; l < LANES; l++) {
            double g = (double)dy[i + l] * (weight ? weight[i + l] : 1.0f);
            lane_g[l] += g;
            lane_gx[l] += g * (((double)x[i + l] - mu) * rs);
        }
    double sum_g = 0.0, sum_gx = 0.0;
    for (; i < D; i++) {
        double g = (double)dy[i] * (weight ? weight[i] : 1.0f);
        sum_g += g;
        sum_gx += g * (((double)x[i] - mu) * rs);
    }
    for (int l = 0; l < LANES; l++) {
        sum_g += lane_g[l];
        sum_gx += lane_gx[l];
    }
    const double mean_g = sum_g / D, mean_gx = sum_gx / D;
    for (i = 0; i < D; i++) {
        double xhat = ((double)x[i] - mu) * rs;
        double g = (double)dy[i] * (weight ? weight[i] : 1.0f);
        dx[i] += (float)(rs * (g - mean_g - xhat * mean_gx));
    }
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
    if ((s = check_sizes(N, D)) || (s = attn_check_not_null(dy, "layernorm dy")) ||
        (s = attn_check_not_null(x, "layernorm x")) ||
        (s = attn_check_not_null(mean, "layernorm mean")) ||
        (s = attn_check_not_null(rstd, "layernorm rstd")))
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
            mu[n] = mean[n] + row_sum(x + row, D, mean[n]) / D;
            if (dx) row_dx(dx + row, dy + row, x + row, weight, D, mu[n], rstd[n]);
        }
        if (dweight || dbias) {
#pragma omp for schedule(static)
            for (int blk = 0; blk < blocks; blk++) {
                const int lo = blk * COLUMN_BLOCK;
                const int hi = lo + COLUMN_BLOCK < D ? lo + COLUMN_BLOCK : D;
                for (int n = 0; n < N; n++) {
                    const float *xr = x + (size_t)n * D, *dyr = dy + (size_t)n * D;
                    const double m = mu[n], rs = rstd[n];
                    if (dweight)
                        for (int i = lo; i < hi; i++)
                            dweight[i] += dyr[i] * (float)(((double)xr[i] - m) * rs);
                    if (dbias)
                        for (int i = lo; i < hi; i++) dbias[i] += dyr[i];
                }
            }
        }
    }
    free(mu);
    return ATTN_OK;
}
