/* Internal, included by vec_impl.h once per instruction set: the dot products of
 * one vector with rows of a matrix, a layer's product for one or a few tokens
 * (gemm.c), on float32 rows and on bfloat16 rows (gemv_bf16.c). The bfloat16
 * ones are written on simd.h's pairs. */
#include <stddef.h>

#include "kernels/simd.h"
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

/* ---- bfloat16 rows (bf16 inference) ---- */

/* Pair lanes per dot product: 32 pairs, 64 values, in vectors of simd.h's pairs
 * (vp: VF_WIDTH pairs each). */
enum { DOT_PAIRS = 32, DOT_PAIR_VECS = DOT_PAIRS / VF_WIDTH };

/* lanes += the pair products of the 2 DOT_PAIRS values x[0, 64) and w[0, 64):
 * pair lane l adds x[2l+1] w[2l+1], then x[2l] w[2l] (vp_dot). */
VF_INLINE void dot_pairs_add(vf *lanes, const uint16_t *x, const uint16_t *w)
{
    for (int v = 0; v < DOT_PAIR_VECS; v++)
        lanes[v] = vp_dot(lanes[v], vp_load(x + 2 * v * VF_WIDTH), vp_load(w + 2 * v * VF_WIDTH));
}

/* sum_p x[p] w[p] over k of bfloat16 x and w: pair lane l sums, for t = l mod
 * DOT_PAIRS over the lanes' whole span, the odd product x[2t+1] w[2t+1] and then
 * the even one (vp_dot: each product exact, each sum rounded to float32); the
 * tail past the last whole span joins the lanes padded with zeros (whose
 * products add nothing), and the lanes are then added in halves, a fixed tree:
 * the same bits in every variant. Subnormals are flushed (the caller's
 * subnormals_flush), as vdpbf16ps flushes them. */
static float dot_bf16(const uint16_t *restrict x, const uint16_t *restrict w, int k)
{
    vf lanes[DOT_PAIR_VECS];
    for (int v = 0; v < DOT_PAIR_VECS; v++) lanes[v] = vf_zero();
    int p = 0;
    for (; p + 2 * DOT_PAIRS <= k; p += 2 * DOT_PAIRS) dot_pairs_add(lanes, x + p, w + p);
    if (p < k) {
        uint16_t x_tail[2 * DOT_PAIRS] = {0}, w_tail[2 * DOT_PAIRS] = {0};
        memcpy(x_tail, x + p, (size_t)(k - p) * sizeof *x);
        memcpy(w_tail, w + p, (size_t)(k - p) * sizeof *w);
        dot_pairs_add(lanes, x_tail, w_tail);
    }
    for (int half = DOT_PAIR_VECS / 2; half >= 1; half /= 2)
        for (int v = 0; v < half; v++) lanes[v] = vf_add(lanes[v], lanes[v + half]);
    float last[VF_WIDTH];
    vf_store(last, lanes[0]);
    for (int half = VF_WIDTH / 2; half >= 1; half /= 2)
        for (int l = 0; l < half; l++) last[l] += last[l + half];
    return last[0];
}

/* y: (n) with y[j] = x . w[j], x: (k) and w: n rows of k at stride ldw, all
 * bfloat16. */
static void dot_rows_bf16(float *restrict y, const uint16_t *restrict x,
                          const uint16_t *restrict w, size_t ldw, int n, int k)
{
    const unsigned saved = subnormals_flush();
    for (int j = 0; j < n; j++) y[j] = dot_bf16(x, w + (size_t)j * ldw, k);
    subnormals_restore(saved);
}
