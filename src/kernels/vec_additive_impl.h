/* Internal, included by vec_impl.h once per instruction set: the tanh terms of
 * additive (Bahdanau) attention for one query, forward and backward, and the
 * gradient of the scoring vector v (attention/score_additive.c calls them). They
 * run B * Lq * Lk * A times per call, a decoder step's largest cost; every sum has
 * its order written out, so that each instruction set gives the same bits. */
#include <stddef.h>

#include "kernels/lane_math.h"

/* u: (S, A) = tanh(q + keys[j]) and scores: (S) = u[j] . v for every j;
 * q: (A), keys: (S, A), v: (A). */
static void additive_forward(float *restrict u, float *restrict scores, const float *restrict q,
                             const float *restrict keys, const float *restrict v, int S, int A)
{
    for (int j = 0; j < S; j++) {
        float *uj = u + (size_t)j * A;
        const float *kj = keys + (size_t)j * A;
        for (int a = 0; a < A; a++) uj[a] = lane_tanh(q[a] + kj[a]);
        scores[j] = lane_dot(uj, v, A);
    }
}

/* With g = ds[j] v_a (1 - u[j,a]^2): dq: (A) += g and dkeys[j]: (A) += g, for j in
 * order. */
static void additive_backward(float *restrict dq, float *restrict dkeys, const float *restrict ds,
                              const float *restrict u, const float *restrict v, int S, int A)
{
    for (int j = 0; j < S; j++) {
        if (ds[j] == 0.0f) continue; /* masked, or no gradient at this step */
        const float *uj = u + (size_t)j * A;
        float *dk = dkeys + (size_t)j * A;
        for (int a = 0; a < A; a++) {
            const float g = ds[j] * v[a] * (1.0f - uj[a] * uj[a]);
            dq[a] += g;
            dk[a] += g;
        }
    }
}

/* dv: (A) += sum over the rows i of ds[i] u[i], in order of i. */
static void additive_v_gradient(float *restrict dv, const float *restrict ds,
                                const float *restrict u, size_t rows, int A)
{
    for (size_t i = 0; i < rows; i++) {
        if (ds[i] == 0.0f) continue;
        const float *ui = u + i * A;
        for (int a = 0; a < A; a++) dv[a] += ds[i] * ui[a];
    }
}
