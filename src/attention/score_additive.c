/* Additive (concat) scores of Bahdanau et al.: v . tanh(Wq q + Wk k + bias), and
 * their backward.
 *
 * The projections Wq q (with the bias folded in) and Wk k are two GEMMs over all
 * queries and keys; only the B * Lq * Lk * A tanh terms remain, in a loop whose
 * (b, i) iterations are independent. Backward recomputes tanh instead of keeping
 * a (B, Lq, Lk, A) tensor from the forward: A times less memory for one more tanh.
 * tanh is the library's one (kernels/lane_math.h), as in the Bahdanau decoder. */
#include <limits.h>
#include <stdlib.h>

#include "attn/attention.h"
#include "attn/kernels.h"
#include "core/error.h"
#include "kernels/lane_math.h"

/* Below this many tanh terms, starting threads costs more than it saves. */
enum { PARALLEL_MIN_TERMS = 1 << 15 };

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
    if ((s = attn_check_at_least(B, 1, "B")) || (s = attn_check_at_least(Lq, 1, "Lq")) ||
        (s = attn_check_at_least(Lk, 1, "Lk")) || (s = attn_check_at_least(Dq, 1, "Dq")) ||
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

/* scores: (B, Lq, Lk), q: (B, Lq, Dq), k: (B, Lk, Dk); w as in attn_additive_weights. */
attn_status attn_score_additive_forward(float *scores, const float *q, const float *k,
                                        const attn_additive_weights *w, int B, int Lq, int Lk,
                                        int Dq, int Dk)
{
    attn_status s;
    if ((s = attn_check_not_null(scores, "scores")) ||
        (s = check_args(q, k, w, B, Lq, Lk, Dq, Dk)))
        return s;
    int A = w->hidden;
    size_t count = ((size_t)B * Lq + (size_t)B * Lk) * A;
    float *qp = malloc(count * sizeof *qp);
    if (qp == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %zu floats of projections",
                          count);
    float *kp = qp + (size_t)B * Lq * A;
    project(qp, kp, q, k, w, B, Lq, Lk, Dq, Dk);
    const float *v = w->v;
#pragma omp parallel for collapse(2) schedule(static) \
    if ((double)B * Lq * Lk * A > PARALLEL_MIN_TERMS) num_threads(attn_get_num_threads())
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < Lq; i++) {
            const float *qrow = qp + ((size_t)b * Lq + i) * A;
            float *out = scores + ((size_t)b * Lq + i) * Lk;
            for (int j = 0; j < Lk; j++) {
                const float *krow = kp + ((size_t)b * Lk + j) * A;
                float sum = 0.0f;
                for (int a = 0; a < A; a++) sum += v[a] * lane_tanh(qrow[a] + krow[a]);
                out[j] = sum;
            }
        }
    }
    free(qp);
    return ATTN_OK;
}

/* dq: (B, Lq, Dq), dk: (B, Lk, Dk), dw: gradients shaped as the weights; each pointer
 * optional. dscores: (B, Lq, Lk).
 * Differentiates scores[b,i,j] = sum_a v_a tanh(qp[b,i,a] + kp[b,j,a]) of the
 * forward: with t = tanh(.) and g = dscores[b,i,j] v_a (1 - t^2), dv_a gets
 * dscores t, dqp[b,i,a] and dkp[b,j,a] get g; then through the projections
 * dq += dqp Wq, dWq += dqp^T q, dbias += sum of dqp rows, dk += dkp Wk,
 * dWk += dkp^T k. Each batch entry has its own dv partial sum, added in order of b,
 * so the result does not depend on the thread count. */
attn_status attn_score_additive_backward(float *dq, float *dk, const attn_additive_grads *dw,
                                         const float *dscores, const float *q, const float *k,
                                         const attn_additive_weights *w, int B, int Lq, int Lk,
                                         int Dq, int Dk)
{
    attn_status s;
    if ((s = attn_check_not_null(dscores, "dscores")) ||
        (s = check_args(q, k, w, B, Lq, Lk, Dq, Dk)))
        return s;
    attn_additive_grads none = {NULL, NULL, NULL, NULL};
    if (dw == NULL) dw = &none;
    if (!dq && !dk && !dw->wq && !dw->wk && !dw->bias && !dw->v) return ATTN_OK;

    int A = w->hidden;
    size_t nq = (size_t)B * Lq * A, nk = (size_t)B * Lk * A;
    size_t count = 2 * (nq + nk) + (size_t)B * A;
    float *qp = calloc(count, sizeof *qp);
    if (qp == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %zu floats of scratch", count);
    float *kp = qp + nq;
    float *dqp = kp + nk;         /* (B, Lq, A), zeroed */
    float *dkp = dqp + nq;        /* (B, Lk, A), zeroed */
    float *dv_partial = dkp + nk; /* (B, A), zeroed */
    project(qp, kp, q, k, w, B, Lq, Lk, Dq, Dk);
    const float *v = w->v;
#pragma omp parallel for schedule(static) \
    if (B > 1 && (double)B * Lq * Lk * A > PARALLEL_MIN_TERMS) num_threads(attn_get_num_threads())
    for (int b = 0; b < B; b++) {
        float *dvb = dv_partial + (size_t)b * A;
        for (int i = 0; i < Lq; i++) {
            const float *qrow = qp + ((size_t)b * Lq + i) * A;
            float *dqrow = dqp + ((size_t)b * Lq + i) * A;
            const float *ds = dscores + ((size_t)b * Lq + i) * Lk;
            for (int j = 0; j < Lk; j++) {
                const float *krow = kp + ((size_t)b * Lk + j) * A;
                float *dkrow = dkp + ((size_t)b * Lk + j) * A;
                for (int a = 0; a < A; a++) {
                    float t = lane_tanh(qrow[a] + krow[a]);
                    float g = ds[j] * v[a] * (1.0f - t * t);
                    dqrow[a] += g;
                    dkrow[a] += g;
                    dvb[a] += ds[j] * t;
                }
            }
        }
    }
    /* Reduced in double and added once, so that a call adds the same amount
     * whatever the gradient buffer held before. */
    if (dw->v)
        for (int a = 0; a < A; a++) {
            double sum = 0.0;
            for (int b = 0; b < B; b++) sum += dv_partial[(size_t)b * A + a];
            dw->v[a] += (float)sum;
        }
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
    free(qp);
    return ATTN_OK;
}
