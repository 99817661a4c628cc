/* Internal, included by vec_impl.h once per instruction set: the dot products of
 * one vector with rows of a matrix, a layer's product for one or a few tokens
 * (gemm.c). */
#include <stddef.h>

#include "kernels/vec.h"

/* Independent partial sums per dot product: enough to keep the vector adds of
 * every variant busy while the rows stream in from memory. */
enum { DOT_LANES = 64 };

/* sum_p x[p] w[p] over k: lane l sums the p = l mod DOT_LANES of the whole
 * lanes' span, the lanes are then added in halves (lane l + lane l + half, a
 * tree in a fixed order, which vectorises: a row of a few hundred weights would
 * otherwise wait on 64 dependent adds), and the tail last: the same bits in
 * every variant. */
static inline float dot(const float *restrict x, const float *restrict w, int k)
{
    float lane[DOT_LANES] = {0};
    int p = 0;
    for (; p + DOT_LANES <= k; p += DOT_LANES)
        for (int l = 0; l < DOT_LANES; l++) lane[l] += x[p + l] * w[p + l];
    for (int half = DOT_LANES / 2; half >= 1; half /= 2)
        for (int l = 0; l < half; l++) lane[l] += lane[l + half];
    float sum = lane[0];
    for (; p < k; p++) sum += x[p] * w[p];
    return sum;
}

/* y: (n) with y[j] = x . w[j], x: (k), w: n rows of k at stride ldw. */
static void dot_rows(float *restrict y, const float *restrict x, const float *restrict w,
                     size_t ldw, int n, int k)
{
    for (int j = 0; j < n; j++) y[j] = dot(x, w + (size_t)j * ldw, k);
}
