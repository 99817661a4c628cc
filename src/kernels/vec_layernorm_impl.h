/* Internal, included by vec_impl.h once per instruction set: LayerNorm's rows
 * (nn/layernorm.c splits them across threads and explains the arithmetic).
 *
 * Row sums are taken in double over LANES independent partial sums, in a fixed
 * order: the lanes map onto a vector register of whatever width the variant
 * has, and the same additions happen in the same order in every variant, so all
 * give the same bits. */
#include <math.h>
#include <stddef.h>

enum { LAYERNORM_LANES = 8 };

/* sum over i < D of x[i] - shift. */
static double layernorm_row_sum(const float *x, int D, double shift)
{
    double lane[LAYERNORM_LANES] = {0};
    int i = 0;
    for (; i + LAYERNORM_LANES <= D; i += LAYERNORM_LANES)
        for (int l = 0; l < LAYERNORM_LANES; l++) lane[l] += (double)x[i + l] - shift;
    double total = 0.0;
    for (; i < D; i++) total += (double)x[i] - shift;
    for (int l = 0; l < LAYERNORM_LANES; l++) total += lane[l];
    return total;
}

/* sum over i < D of (x[i] - shift)^2. */
static double layernorm_row_sum_squares(const float *x, int D, double shift)
{
    double lane[LAYERNORM_LANES] = {0};
    int i = 0;
    for (; i + LAYERNORM_LANES <= D; i += LAYERNORM_LANES)
        for (int l = 0; l < LAYERNORM_LANES; l++) {
            double d = (double)x[i + l] - shift;
            lane[l] += d * d;
        }
    double total = 0.0;
    for (; i < D; i++) {
        double d = (double)x[i] - shift;
        total += d * d;
    }
    for (int l = 0; l < LAYERNORM_LANES; l++) total += lane[l];
    return total;
}

/* One row: x: (D) -> y: (D) = (x - mean) rstd weight + bias, *mean, *rstd. */
static void layernorm_row_forward(float *y, float *mean, float *rstd, const float *x,
                                  const float *weight, const float *bias, int D, float eps)
{
    const double mu = layernorm_row_sum(x, D, 0.0) / D;
    const double var = layernorm_row_sum_squares(x, D, mu) / D;
    const double rs = 1.0 / sqrt(var + eps);
    *mean = (float)mu;
    *rstd = (float)rs;
    for (int i = 0; i < D; i++) {
        float xhat = (float)(((double)x[i] - mu) * rs);
        y[i] = xhat * (weight ? weight[i] : 1.0f) + (bias ? bias[i] : 0.0f);
    }
}

/* The sums over a row of g = dy * weight (dy when weight is NULL) and of
 * g * xhat, xhat = (x - mu) * rs, in double over LAYERNORM_LANES lanes.
 * Inlined at two call sites, one with weight NULL, so that each is a plain loop
 * the compiler vectorises (with the choice inside the loop it did not). */
__attribute__((always_inline)) static inline void
layernorm_row_g_sums(double *sum_g, double *sum_gx, const float *dy, const float *x,
                     const float *weight, int D, double mu, double rs)
{
    double lane_g[LAYERNORM_LANES] = {0}, lane_gx[LAYERNORM_LANES] = {0};
    int i = 0;
    for (; i + LAYERNORM_LANES <= D; i += LAYERNORM_LANES)
        for (int l = 0; l < LAYERNORM_LANES; l++) {
            double g = (double)dy[i + l] * (weight ? weight[i + l] : 1.0f);
            lane_g[l] += g;
            lane_gx[l] += g * (((double)x[i + l] - mu) * rs);
        }
    double g_total = 0.0, gx_total = 0.0;
    for (; i < D; i++) {
        double g = (double)dy[i] * (weight ? weight[i] : 1.0f);
        g_total += g;
        gx_total += g * (((double)x[i] - mu) * rs);
    }
    for (int l = 0; l < LAYERNORM_LANES; l++) {
        g_total += lane_g[l];
        gx_total += lane_gx[l];
    }
    *sum_g = g_total;
    *sum_gx = gx_total;
}

/* One row's refined mean (returned: mean + the mean of x - mean, in double) and,
 * if dx is not NULL, dx: (D) += rstd * (g - mean(g) - xhat * mean(g * xhat)),
 * g = dy * weight, xhat = (x - mu) * rstd. */
static double layernorm_row_backward(float *dx, const float *dy, const float *x,
                                     const float *weight, int D, float mean, float rstd)
{
    const double mu = mean + layernorm_row_sum(x, D, mean) / D, rs = rstd;
    if (dx == NULL) return mu;
    double sum_g, sum_gx;
    if (weight)
        layernorm_row_g_sums(&sum_g, &sum_gx, dy, x, weight, D, mu, rs);
    else
        layernorm_row_g_sums(&sum_g, &sum_gx, dy, x, NULL, D, mu, rs);
    const double mean_g = sum_g / D, mean_gx = sum_gx / D;
    for (int i = 0; i < D; i++) {
        double xhat = ((double)x[i] - mu) * rs;
        double g = (double)dy[i] * (weight ? weight[i] : 1.0f);
        dx[i] += (float)(rs * (g - mean_g - xhat * mean_gx));
    }
    return mu;
}

/* dweight: (D) += sum over the N rows of dy * xhat and dbias: (D) += sum of dy
 * (either may be NULL), rows in order; mu: (N) the refined means, rstd: (N),
 * dy, x: (N, D). */
static void layernorm_columns_backward(float *dweight, float *dbias, const float *dy,
                                       const float *x, const double *mu, const float *rstd,
                                       int N, int D)
{
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * D, *dyr = dy + (size_t)n * D;
        const double m = mu[n], rs = rstd[n];
        if (dweight)
            for (int i = 0; i < D; i++) dweight[i] += dyr[i] * (float)(((double)xr[i] - m) * rs);
        if (dbias)
            for (int i = 0; i < D; i++) dbias[i] += dyr[i];
    }
}
