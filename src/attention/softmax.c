/* Softmax over the last axis, with an optional mask, and its backward. */
#include <math.h>

#include "attention/checks.h"
#include "attn/attention.h"
#include "core/error.h"

/* One row: the masked scores are written to y first so that the mask is read once.
 * The running max lets NaN win, so a NaN score turns its whole row to NaN (as in
 * PyTorch) instead of being skipped by the comparisons; a max of -inf means every
 * key is excluded, and the row becomes zeros rather than 0/0. */
static void softmax_row(float *y, const float *x, const attn_mask *mask, int row, int n)
{
    float max = -INFINITY;
    for (int j = 0; j < n; j++) {
        float s = mask ? attn_mask_score(mask, x[j], 0, 0, row, j) : x[j];
        y[j] = s;
        if (isnan(s) || s > max) max = s;
    }
    if (max == -INFINITY) {
        for (int j = 0; j < n; j++) y[j] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        y[j] = expf(y[j] - max);
        sum += y[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) y[j] *= inv;
}

/* y, x: (rows, n); mask: optional, seen as (1, 1, rows, n). */
attn_status attn_softmax_forward(float *y, const float *x, const attn_mask *mask, int rows, int n)
{
    attn_status s;
    if ((s = attn_check_not_null(y, "y")) || (s = attn_check_not_null(x, "x")) ||
        (s = attn_mask_check(mask, "mask")) || (s = attn_check_at_least(rows, 1, "rows")) ||
        (s = attn_check_at_least(n, 1, "n")))
        return s;
    for (int r = 0; r < rows; r++)
        softmax_row(y + (size_t)r * n, x + (size_t)r * n, mask, r, n);
    return ATTN_OK;
}

/* dx, dy, y: (rows, n). Differentiates y = exp(x - max) / sum of the forward:
 * dx += y * (dy - sum_j dy_j y_j). Excluded keys have y = 0, so they get nothing,
 * and a fully masked row gets zeros.
 * The dot is taken in double and divided by sum_j y_j (1 up to rounding): when one
 * weight is near 1, dy_j - dot cancels down to about y_other * (dy_j - dy_other),
 * and the float rounding of sum_j y_j (~1e-7) would otherwise swamp that. */
attn_status attn_softmax_backward(float *dx, const float *dy, const float *y, int rows, int n)
{
    attn_status s;
    if ((s = attn_check_not_null(dx, "dx")) || (s = attn_check_not_null(dy, "dy")) ||
        (s = attn_check_not_null(y, "y")) || (s = attn_check_at_least(rows, 1, "rows")) ||
        (s = attn_check_at_least(n, 1, "n")))
        return s;
    for (int r = 0; r < rows; r++) {
        const float *yr = y + (size_t)r * n, *dyr = dy + (size_t)r * n;
        float *dxr = dx + (size_t)r * n;
        double dot = 0.0, total = 0.0;
        for (int j = 0; j < n; j++) {
            dot += (double)dyr[j] * yr[j];
            total += yr[j];
        }
        if (total == 0.0) continue; /* every key excluded */
        double mean = dot / total;
        for (int j = 0; j < n; j++) dxr[j] += (float)(yr[j] * (dyr[j] - mean));
    }
    return ATTN_OK;
}
