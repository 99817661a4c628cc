/* General (bilinear) scores of Luong et al.: q W k^T, and their backward.
 * q W is formed once for all B * Lq queries, so W is read by one GEMM. */
#include <limits.h>
#include <stdlib.h>

#include "attn/attention.h"
#include "attn/kernels.h"
#include "core/error.h"

static attn_status check_sizes(int B, int Lq, int Lk, int Dq, int Dk)
{
    attn_status s;
    if ((s = attn_check_at_least(B, 1, "B")) || (s = attn_check_at_least(Lq, 1, "Lq")) ||
        (s = attn_check_at_least(Lk, 1, "Lk")) || (s = attn_check_at_least(Dq, 1, "Dq")) ||
        (s = attn_check_at_least(Dk, 1, "Dk")))
        return s;
    if ((long long)B * Lq > INT_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "B * Lq = %lld is more than one GEMM takes",
                          (long long)B * Lq);
    return ATTN_OK;
}

/* scores: (B, Lq, Lk), q: (B, Lq, Dq), w: (Dq, Dk), k: (B, Lk, Dk). */
attn_status attn_score_general_forward(float *scores, const float *q, const float *w,
                                       const float *k, int B, int Lq, int Lk, int Dq, int Dk)
{
    attn_status s;
    if ((s = attn_check_not_null(scores, "scores")) || (s = attn_check_not_null(q, "q")) ||
        (s = attn_check_not_null(w, "w")) || (s = attn_check_not_null(k, "k")) ||
        (s = check_sizes(B, Lq, Lk, Dq, Dk)))
        return s;
    float *qw = malloc((size_t)B * Lq * Dk * sizeof *qw); /* (B, Lq, Dk) */
    if (qw == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for q W of %d x %d floats", B * Lq,
                          Dk);
    attn_sgemm(false, false, B * Lq, Dk, Dq, 1.0f, q, Dq, w, Dk, 0.0f, qw, Dk);
    for (int b = 0; b < B; b++)
        attn_sgemm(false, true, Lq, Lk, Dk, 1.0f, qw + (size_t)b * Lq * Dk, Dk,
                   k + (size_t)b * Lk * Dk, Dk, 0.0f, scores + (size_t)b * Lq * Lk, Lk);
    free(qw);
    return ATTN_OK;
}

/* dq: (B, Lq, Dq), dw: (Dq, Dk), dk: (B, Lk, Dk), each optional; dscores: (B, Lq, Lk).
 * Differentiates scores = (q W) k^T of the forward. With G = dscores k, the gradient
 * of q W: dq += G W^T, dw += q^T G, and dk += dscores^T (q W). */
attn_status attn_score_general_backward(float *dq, float *dw, float *dk, const float *dscores,
                                        const float *q, const float *w, const float *k, int B,
                                        int Lq, int Lk, int Dq, int Dk)
{
    attn_status s;
    if ((s = attn_check_not_null(dscores, "dscores")) || (s = attn_check_not_null(q, "q")) ||
        (s = attn_check_not_null(w, "w")) || (s = attn_check_not_null(k, "k")) ||
        (s = check_sizes(B, Lq, Lk, Dq, Dk)))
        return s;
    size_t block = (size_t)B * Lq * Dk;
    bool want_g = dq != NULL || dw != NULL;
    size_t count = (want_g ? block : 0) + (dk != NULL ? block : 0);
    if (count == 0) return ATTN_OK;
    float *scratch = malloc(count * sizeof *scratch);
    if (scratch == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %zu floats of scratch", count);
    float *g = scratch;                             /* (B, Lq, Dk) if want_g */
    float *qw = want_g ? scratch + block : scratch; /* (B, Lq, Dk) if dk */
    if (dk) attn_sgemm(false, false, B * Lq, Dk, Dq, 1.0f, q, Dq, w, Dk, 0.0f, qw, Dk);
    for (int b = 0; b < B; b++) {
        const float *ds = dscores + (size_t)b * Lq * Lk;
        if (want_g)
            attn_sgemm(false, false, Lq, Dk, Lk, 1.0f, ds, Lk, k + (size_t)b * Lk * Dk, Dk, 0.0f,
                       g + (size_t)b * Lq * Dk, Dk);
        if (dk)
            attn_sgemm(true, false, Lk, Dk, Lq, 1.0f, ds, Lk, qw + (size_t)b * Lq * Dk, Dk, 1.0f,
                       dk + (size_t)b * Lk * Dk, Dk);
    }
    if (dq) attn_sgemm(false, true, B * Lq, Dq, Dk, 1.0f, g, Dk, w, Dk, 1.0f, dq, Dq);
    if (dw) attn_sgemm(true, false, Dq, Dk, B * Lq, 1.0f, q, Dq, g, Dk, 1.0f, dw, Dk);
    free(scratch);
    return ATTN_OK;
}
