/* Gradient clipping by the global L2 norm, as torch.nn.utils.clip_grad_norm_. */
#include <math.h>

#include "attn/train.h"
#include "core/error.h"

enum { LANES = 8 }; /* independent partial sums, so the adds do not wait on each other */

/* grads: (n). The squares are summed in double over LANES partial sums in a fixed
 * order. The scaling follows torch: clip_coef = max_norm / (norm + 1e-6), applied
 * when it is below 1. */
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
    double lane[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) lane[l] += (double)grads[i + l] * grads[i + l];
    double sum = 0.0;
    for (; i < n; i++) sum += (double)grads[i] * grads[i];
    for (int l = 0; l < LANES; l++) sum += lane[l];
    const double norm = sqrt(sum);
    if (!isfinite(norm)) return norm;
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        const float scale = (float)coef;
        for (i = 0; i < n; i++) grads[i] *= scale;
    }
    return norm;
}
