/* Kendall's rank correlation with ties, tau-b (Kendall, "The treatment of ties in
 * ranking problems", Biometrika 1945), by counting every pair: the rankings
 * compared here (a row of attention against erasure) have tens to hundreds of
 * entries, where the n^2 pairs cost less than sorting would save. */
#include <math.h>

#include "attn/capture.h"
#include "core/error.h"

attn_status attn_kendall_tau_b(const double *x, const double *y, int n, double *tau)
{
    attn_status s;
    if ((s = attn_check_not_null(tau, "tau")) || (s = attn_check_at_least(n, 0, "n"))) return s;
    if (n > 0 && ((s = attn_check_not_null(x, "x")) || (s = attn_check_not_null(y, "y")))) return s;
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i]) || !isfinite(y[i]))
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "value %d of the rankings is %g and %g, "
                              "not finite", i, x[i], y[i]);
    /* concordant minus discordant pairs, and the pairs not tied in x, in y */
    double score = 0.0, untied_x = 0.0, untied_y = 0.0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            const int dx = (x[i] > x[j]) - (x[i] < x[j]), dy = (y[i] > y[j]) - (y[i] < y[j]);
            score += dx * dy;
            untied_x += dx != 0;
            untied_y += dy != 0;
        }
    *tau = untied_x > 0 && untied_y > 0 ? score / sqrt(untied_x * untied_y) : NAN;
    return ATTN_OK;
}
