/* Additive (concat) scores of Bahdanau et al.: v . tanh(Wq q + Wk k + bias), and
 * their backward, for raw queries and keys and for projected ones.
 *
 * The projections are GEMMs over all queries and keys; what remains are the
 * B * Lq * Lk * A tanh terms, the vector kernels of the instruction set the
 * library chose (kernels/vec_additive_impl.h), one query row at a time. The
 * projected pair is what a decoder calls: it projects each source's keys once and
 * keeps the terms u for the backward. The raw pair projects on every call and
 * keeps no terms: it computes them a few batch entries at a time into scratch,
 * and its backward recomputes them, for A times less memory than keeping them. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attention.h"
#include "attn/kernels.h"
#include "core/error.h"
#include "kernels/isa.h"

/* Below this many tanh terms, starting threads costs more than it saves. */
enum { PARALLEL_MIN_TERMS = 1 << 15 };
/* The most tanh terms the raw pair holds in scratch at once. */
enum { SCRATCH_MAX_TERMS = 1 << 20 };

static attn_status check_sizes(int B, int Lq, int Lk, int A)
{
    attn_status s;
    if ((s = attn_check_at_least(B, 1, "B")) || (s = attn_check_at_least(Lq, 1, "Lq")) ||
        (s = attn_check_at_least(Lk, 1, "Lk")) || (s = attn_check_at_least(A, 1, "A")))
        return s;
    return ATTN_OK;
}

/* The terms and scores of the checked arguments; see the public forward. */
static void projected_forward(const attn_vec_kernels *vec, float *scores, float *u,
                              const float *qp, const float *kp, const float *v, int B, int Lq,
                              int Lk, int A)
{
#pragma omp parallel for collapse(2) schedule(static) \
    if ((double)B * Lq * Lk * A >= PARALLEL_MIN_TERMS) num_threads(attn_get_num_threads())
    for (int b = 0; b < B; b++)
        for (int i = 0; i < Lq; i++) {
            size_t r = (size_t)b * Lq + i;
            vec->additive_forward(u + r * Lk * A, scores + r * Lk, qp + r * A,
                                  kp + (size_t)b * Lk * A, v, Lk, A);
        }
}

/* The backward of the checked arguments, dqp and dkp required; threads split the
 * batch, so the Lq queries that share a batch entry's keys stay on one thread. */
static void projected_backward(const attn_vec_kernels *vec, float *dqp, float *dkp, float *dv,
                               const float *dscores, const float *u, const float *v, int B,
                               int Lq, int Lk, int A)
{
#pragma omp parallel for schedule(static) \
    if (B > 1 && (double)B * Lq * Lk * A >= PARALLEL_MIN_TERMS) num_threads(attn_get_num_threads())
    for (int b = 0; b < B; b++)
        for (int i = 0; i < Lq; i++) {
            size_t r = (size_t)b * Lq + i;
            vec->additive_backward(dqp + r * A, dkp + (size_t)b * Lk * A, dscores + r * Lk,
                                   u + r * Lk * A, v, Lk, A);
        }
    if (dv) vec->additive_v_gradient(dv, dscores, u, (size_t)B * Lq * Lk, A);
}

/* scores: (B, Lq, Lk), u: (B, Lq, Lk, A), qp: (B, Lq, A), kp: (B, Lk, A), v: (A). */
attn_status attn_score_additive_projected_forward(float *scores, float *u, const float *qp,
                                                  const float *kp, const float *v, int B, int Lq,
                                                  int Lk, int A)
{
    attn_status s;
    const attn_isa *isa;
    if ((s = attn_check_not_null(scores, "scores")) || (s = attn_check_not_null(u, "u")) ||
        (s = attn_check_not_null(qp, "qp")) || (s = attn_check_not_null(kp, "kp")) ||
        (s = attn_check_not_null(v, "v")) || (s = check_sizes(B, Lq, Lk, A)) ||
        (s = attn_isa_current(&isa)))
        return s;
    projected_forward(isa->vec, scores, u, qp, kp, v, B, Lq, Lk, A);
    return ATTN_OK;
}

/* dqp: (B, Lq, A), dkp: (B, Lk, A), dv: (A), each optional; dscores: (B, Lq, Lk);
 * u: (B, Lq, Lk, A) from the forward, v: (A).
 * Differentiates scores[b,i,j] = sum_a v_a u[b,i,j,a], u = tanh(qp[b,i] + kp[b,j]):
 * with g = dscores[b,i,j] v_a (1 - u^2), dqp[b,i,a] and dkp[b,j,a] get g, and
 * dv_a gets dscores u, summed over the rows in order. A gradient not wanted is
 * summed into scratch when the other is. */
attn_status attn_score_additive_projected_backward(float *dqp, float *dkp, float *dv,
                                                   const float *dscores, const float *u,
                                                   const float *v, int B, int Lq, int Lk, int A)
{
    attn_status s;
    const attn_isa *isa;
    if ((s = attn_check_not_null(dscores, "dscores")) || (s = attn_check_not_null(u, "u")) ||
        (s = attn_check_not_null(v, "v")) || (s = check_sizes(B, Lq, Lk, A)) ||
        (s = attn_isa_current(&isa)))
        return s;
    if (!dqp && !dkp) {
        if (dv) isa->vec->additive_v_gradient(dv, dscores, u, (size_t)B * Lq * Lk, A);
        return ATTN_OK;
    }
    size_t count = dqp ? (size_t)B * Lk * A : (size_t)B * Lq * A;
    float *scratch = NULL;
    if (!dqp || !dkp) {
        scratch = calloc(count, sizeof *scratch);
        if (scratch == NULL)
            return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %zu floats of scratch",
                              count);
    }
    projected_backward(isa->vec, dqp ? dqp : scratch, dkp ? dkp : scratch, dv, dscores, u, v, B,
                       Lq, Lk, A);
    free(scratch);
    return ATTN_OK;
}

/* ---- raw queries and keys ---------------------------------------------------------- */

static attn_status check_args(const float *q, const float *k, const attn_additive_weights *w,
                              int B, int Lq, int Lk, int Dq, int Dk)
{
    attn_status s;
    if ((s = attn_check_not_null(q, "q")) || (s = attn_check_not_null(k, "k")) ||
        (s = attn_check_not_null(w, "w")))
        return s;
    if ((s = attn_check_not_null(w->wq, "w->wq")) || (s = attn_check_not_null(w->wk, "w->wk")) ||
        (s = attn_check_not_null(w->v, "w->v")) ||
        (s = attn_check_at_least(w->hidden, 1, "w->hidden")))
        return s;
    if ((s = check_sizes(B, Lq, Lk, w->hidden)) || (s = attn_check_at_least(Dq, 1, "Dq")) ||
        (s = attn_check_at_least(Dk, 1, "Dk")))
        return s;
    if ((long long)B * Lq > INT_MAX || (long long)B * Lk > INT_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "B * Lq = %lld or B * Lk = %lld is more than one GEMM takes",
                          (long long)B * Lq, (long long)B * Lk);
    return ATTN_OK;
}

/* qp: (B, Lq, A) = q Wq^T + bias; kp: (B, Lk, A) = k Wk^T. */
static void project(float *qp, float *kp, const float *q, const float *k,
                    const attn_additive_weights *w, int B, int Lq, int Lk, int Dq, int Dk)
{
    int A = w->hidden;
    attn_sgemm(false, true, B * Lq, A, Dq, 1.0f, q, Dq, w->wq, Dq, 0.0f, qp, A);
    attn_sgemm(false, true, B * Lk, A, Dk, 1.0f, k, Dk, w->wk, Dk, 0.0f, kp, A);
    if (w->bias)
        for (size_t r = 0; r < (size_t)B * Lq; r++)
            for (int a = 0; a < A; a++) qp[r * A + a] += w->bias[a];
}

/* The batch entries whose terms fit in the scratch at once (at least one). */
static int chunk_of(int Lq, int Lk, int A)
{
    size_t terms = (size_t)Lq * Lk * A;
    return terms >= SCRATCH_MAX_TERMS ? 1 : (int)(SCRATCH_MAX_TERMS / terms);
}

/* Scratch for the projections and a chunk's terms; qp first. */
static attn_status scratch_alloc(float **out, size_t count)
{
    *out = calloc(count, sizeof **out);
    if (*out == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %zu floats of scratch", count);
    return ATTN_OK;
}

/* scores: (B, Lq, Lk), q: (B, Lq, Dq), k: (B, Lk, Dk); w as in attn_additive_weights. */
attn_status attn_score_additive_forward(float *scores, const float *q, const float *k,
                                        const attn_additive_weights *w, int B, int Lq, int Lk,
                                        int Dq, int Dk)
{
    attn_status s;
    const attn_isa *isa;
    if ((s = attn_check_not_null(scores, "scores")) ||
        (s = check_args(q, k, w, B, Lq, Lk, Dq, Dk)) || (s = attn_isa_current(&isa)))
        return s;
    const int A = w->hidden, chunk = B < chunk_of(Lq, Lk, A) ? B : chunk_of(Lq, Lk, A);
    const size_t nq = (size_t)B * Lq * A, nk = (size_t)B * Lk * A;
    float *qp;
    if ((s = scratch_alloc(&qp, nq + nk + (size_t)chunk * Lq * Lk * A))) return s;
    float *kp = qp + nq, *u = kp + nk; /* u: (chunk, Lq, Lk, A) */
    project(qp, kp, q, k, w, B, Lq, Lk, Dq, Dk);
    for (int b = 0; b < B; b += chunk) {
        int n = B - b < chunk ? B - b : chunk;
        projected_forward(isa->vec, scores + (size_t)b * Lq * Lk, u, qp + (size_t)b * Lq * A,
                          kp + (size_t)b * Lk * A, w->v, n, Lq, Lk, A);
    }
    free(qp);
    return ATTN_OK;
}

/* dq: (B, Lq, Dq), dk: (B, Lk, Dk), dw: gradients shaped as the weights; each pointer
 * optional. dscores: (B, Lq, Lk).
 * Recomputes the forward's terms a chunk at a time, takes the projected backward
 * (dqp, dkp, and dv per chunk), then goes through the projections:
 * dq += dqp Wq, dWq += dqp^T q, dbias += sum of dqp rows, dk += dkp Wk,
 * dWk += dkp^T k. dv and dbias are reduced in double and added once, so that a call
 * adds the same amount whatever the gradient buffer held before. */
attn_status attn_score_additive_backward(float *dq, float *dk, const attn_additive_grads *dw,
                                         const float *dscores, const float *q, const float *k,
                                         const attn_additive_weights *w, int B, int Lq, int Lk,
                                         int Dq, int Dk)
{
    attn_status s;
    const attn_isa *isa;
    if ((s = attn_check_not_null(dscores, "dscores")) ||
        (s = check_args(q, k, w, B, Lq, Lk, Dq, Dk)) || (s = attn_isa_current(&isa)))
        return s;
    attn_additive_grads none = {NULL, NULL, NULL, NULL};
    if (dw == NULL) dw = &none;
    if (!dq && !dk && !dw->wq && !dw->wk && !dw->bias && !dw->v) return ATTN_OK;

    const int A = w->hidden, chunk = B < chunk_of(Lq, Lk, A) ? B : chunk_of(Lq, Lk, A);
    const size_t nq = (size_t)B * Lq * A, nk = (size_t)B * Lk * A, nu = (size_t)chunk * Lq * Lk * A;
    float *qp;
    if ((s = scratch_alloc(&qp, 2 * (nq + nk) + nu + (size_t)chunk * Lq * Lk + A))) return s;
    float *kp = qp + nq;
    float *dqp = kp + nk;               /* (B, Lq, A), zeroed */
    float *dkp = dqp + nq;              /* (B, Lk, A), zeroed */
    float *u = dkp + nk;                /* (chunk, Lq, Lk, A) */
    float *chunk_scores = u + nu;       /* (chunk, Lq, Lk), recomputed and unused */
    float *dv_chunk = chunk_scores + (size_t)chunk * Lq * Lk; /* (A) */
    double *dv_sum = calloc((size_t)A, sizeof *dv_sum);
    if (dv_sum == NULL) {
        free(qp);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d doubles", A);
    }
    project(qp, kp, q, k, w, B, Lq, Lk, Dq, Dk);
    for (int b = 0; b < B; b += chunk) {
        int n = B - b < chunk ? B - b : chunk;
        const float *qpb = qp + (size_t)b * Lq * A, *kpb = kp + (size_t)b * Lk * A;
        const float *ds = dscores + (size_t)b * Lq * Lk;
        projected_forward(isa->vec, chunk_scores, u, qpb, kpb, w->v, n, Lq, Lk, A);
        memset(dv_chunk, 0, (size_t)A * sizeof *dv_chunk);
        projected_backward(isa->vec, dqp + (size_t)b * Lq * A, dkp + (size_t)b * Lk * A,
                           dv_chunk, ds, u, w->v, n, Lq, Lk, A);
        for (int a = 0; a < A; a++) dv_sum[a] += dv_chunk[a];
    }
    if (dw->v)
        for (int a = 0; a < A; a++) dw->v[a] += (float)dv_sum[a];
    if (dw->bias)
        for (int a = 0; a < A; a++) {
            double sum = 0.0;
            for (size_t r = 0; r < (size_t)B * Lq; r++) sum += dqp[r * A + a];
            dw->bias[a] += (float)sum;
        }
    if (dq) attn_sgemm(false, false, B * Lq, Dq, A, 1.0f, dqp, A, w->wq, Dq, 1.0f, dq, Dq);
    if (dw->wq) attn_sgemm(true, false, A, Dq, B * Lq, 1.0f, dqp, A, q, Dq, 1.0f, dw->wq, Dq);
    if (dk) attn_sgemm(false, false, B * Lk, Dk, A, 1.0f, dkp, A, w->wk, Dk, 1.0f, dk, Dk);
    if (dw->wk) attn_sgemm(true, false, A, Dk, B * Lk, 1.0f, dkp, A, k, Dk, 1.0f, dw->wk, Dk);
    free(dv_sum);
    free(qp);
    return ATTN_OK;
}
