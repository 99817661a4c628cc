/* Dot-product scores (Luong's dot, and the Transformer's scaled dot) and their
 * backward: one product per batch entry (attention/products.h). */
#include <math.h>

#include "attention/products.h"
#include "attn/attention.h"
#include "core/error.h"

static attn_status check_sizes(int B, int Lq, int Lk, int D, float scale)
{
    attn_status s;
    if ((s = attn_check_at_least(B, 1, "B")) || (s = attn_check_at_least(Lq, 1, "Lq")) ||
        (s = attn_check_at_least(Lk, 1, "Lk")) || (s = attn_check_at_least(D, 1, "D")))
        return s;
    if (!isfinite(scale))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "scale %g is not finite", (double)scale);
    return ATTN_OK;
}

/* scores: (B, Lq, Lk), q: (B, Lq, D), k: (B, Lk, D). */
attn_status attn_score_dot_forward(float *scores, const float *q, const float *k, int B, int Lq,
                                   int Lk, int D, float scale)
{
    attn_status s;
    if ((s = attn_check_not_null(scores, "scores")) || (s = attn_check_not_null(q, "q")) ||
        (s = attn_check_not_null(k, "k")) || (s = check_sizes(B, Lq, Lk, D, scale)))
        return s;
    for (int b = 0; b < B; b++)
        attn_product_nt(scores + (size_t)b * Lq * Lk, q + (size_t)b * Lq * D,
                        k + (size_t)b * Lk * D, Lq, Lk, D, scale, false);
    return ATTN_OK;
}

/* dq: (B, Lq, D), dk: (B, Lk, D), each optional; dscores: (B, Lq, Lk).
 * Differentiates scores = scale * q k^T of the forward:
 * dq += scale * dscores k, dk += scale * dscores^T q. */
attn_status attn_score_dot_backward(float *dq, float *dk, const float *dscores, const float *q,
                                    const float *k, int B, int Lq, int Lk, int D, float scale)
{
    attn_status s;
    if ((s = attn_check_not_null(dscores, "dscores")) || (s = attn_check_not_null(q, "q")) ||
        (s = attn_check_not_null(k, "k")) || (s = check_sizes(B, Lq, Lk, D, scale)))
        return s;
    for (int b = 0; b < B; b++) {
        const float *ds = dscores + (size_t)b * Lq * Lk;
        if (dq)
            attn_product_nn(dq + (size_t)b * Lq * D, ds, k + (size_t)b * Lk * D, Lq, D, Lk, scale,
                            true);
        if (dk)
            attn_product_tn_add(dk + (size_t)b * Lk * D, ds, q + (size_t)b * Lq * D, Lk, D, Lq,
                                scale);
    }
    return ATTN_OK;
}
