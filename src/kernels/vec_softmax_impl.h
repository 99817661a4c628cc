/* Internal, included by vec_impl.h once per instruction set: the exponentials of
 * a softmax row and their sum (train/cross_entropy.c's rows).
 *
 * The sum is taken in double over SOFTMAX_LANES independent partial sums in a
 * fixed order, as LayerNorm's rows are (vec_layernorm_impl.h): the same bits in
 * every variant. */
#include <stddef.h>

#include "kernels/lane_math.h"

enum { SOFTMAX_LANES = 8 };

/* p: (n) = e^(x - shift) by lane_exp; returned: the sum of p in double. */
static double exp_shifted_sum(float *p, const float *x, size_t n, float shift)
{
    for (size_t i = 0; i < n; i++) p[i] = lane_exp(x[i] - shift);
    double lane[SOFTMAX_LANES] = {0};
    size_t i = 0;
    for (; i + SOFTMAX_LANES <= n; i += SOFTMAX_LANES)
        for (int l = 0; l < SOFTMAX_LANES; l++) lane[l] += p[i + l];
    double total = 0.0;
    for (; i < n; i++) total += p[i];
    for (int l = 0; l < SOFTMAX_LANES; l++) total += lane[l];
    return total;
}
