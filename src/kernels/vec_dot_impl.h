/* Internal, included by vec_impl.h once per instruction set: the dot products of
 * one vector with rows of a matrix, a layer's product for one or a few tokens
 * (gemm.c), on float32 rows and on bfloat16 rows (gemv_bf16.c). The bfloat16 ones
 * are written on simd.h's pairs and run DOT_ROWS rows of the matrix at a time:
 * the rows' sums are independent chains of vector adds that keep the adders
 * busy, and each vector of x is loaded once for all of them. Each row's sum has
 * an order of its own, the same whichever rows it is computed beside, so the
 * bits depend on neither the group nor the variant. */
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
 * every variant. (Four rows at a time, as the bf16 rows run, took 15 to 30 %
 * longer per decoding step of the 6 x 384 model on one thread, streaming its
 * 43 MB of weights, though faster on weights held in L2.) */
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

enum { DOT_ROWS = 4 };

/* The lanes' sum: lane l + lane l + half, for half = half the lanes down to 1 (a
 * tree in a fixed order: across the vectors, then vf_sum's halves within one). */
VF_INLINE float lanes_sum(vf *lanes, int vecs)
{
    for (int half = vecs / 2; half >= 1; half /= 2)
        for (int v = 0; v < half; v++) lanes[v] = vf_add(lanes[v], lanes[v + half]);
    return vf_sum(lanes[0]);
}

/* Pair lanes per dot product: 32 pairs, 64 values, in vectors of simd.h's pairs
 * (vp: VF_WIDTH pairs each). */
enum { DOT_PAIRS = 32, DOT_PAIR_VECS = DOT_PAIRS / VF_WIDTH };

/* y[r] = sum_p x[p] w[r ldw + p] over k of bfloat16 x and w, for r < rows: pair
 * lane l sums, for t = l mod DOT_PAIRS over the lanes' whole span, the odd
 * product x[2t+1] w[2t+1] and then the even one (vp_dot: each product exact,
 * each sum rounded to float32); the tail past the last whole span joins the
 * lanes padded with zeros (whose products add nothing), and the lanes are then
 * added by lanes_sum's tree. Subnormals are flushed (the caller's
 * subnormals_flush), as vdpbf16ps flushes them. */
VF_INLINE void dot_bf16_group(float *restrict y, const uint16_t *restrict x,
                              const uint16_t *restrict w, size_t ldw, int k, const int rows)
{
    vf lanes[DOT_ROWS][DOT_PAIR_VECS];
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < DOT_PAIR_VECS; v++) lanes[r][v] = vf_zero();
    int p = 0;
    for (; p + 2 * DOT_PAIRS <= k; p += 2 * DOT_PAIRS)
        for (int v = 0; v < DOT_PAIR_VECS; v++) {
            const vp xv = vp_load(x + p + 2 * v * VF_WIDTH);
            for (int r = 0; r < rows; r++)
                lanes[r][v] = vp_dot(lanes[r][v], xv, vp_load(w + r * ldw + p + 2 * v * VF_WIDTH));
        }
    if (p < k) {
        uint16_t x_tail[2 * DOT_PAIRS] = {0}, w_tail[2 * DOT_PAIRS] = {0};
        memcpy(x_tail, x + p, (size_t)(k - p) * sizeof *x);
        for (int r = 0; r < rows; r++) {
            memcpy(w_tail, w + r * ldw + p, (size_t)(k - p) * sizeof *w);
            for (int v = 0; v < DOT_PAIR_VECS; v++)
                lanes[r][v] = vp_dot(lanes[r][v], vp_load(x_tail + 2 * v * VF_WIDTH),
                                     vp_load(w_tail + 2 * v * VF_WIDTH));
        }
    }
    for (int r = 0; r < rows; r++) y[r] = lanes_sum(lanes[r], DOT_PAIR_VECS);
}

/* y: (n) with y[j] = x . w[j], x: (k) and w: n rows of k at stride ldw, all
 * bfloat16. */
static void dot_rows_bf16(float *restrict y, const uint16_t *restrict x,
                          const uint16_t *restrict w, size_t ldw, int n, int k)
{
    const unsigned saved = subnormals_flush();
    int j = 0;
    for (; j + DOT_ROWS <= n; j += DOT_ROWS)
        dot_bf16_group(y + j, x, w + (size_t)j * ldw, ldw, k, DOT_ROWS);
    for (; j < n; j++) dot_bf16_group(y + j, x, w + (size_t)j * ldw, ldw, k, 1);
    subnormals_restore(saved);
}
