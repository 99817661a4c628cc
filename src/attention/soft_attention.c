/* Soft attention: a masked softmax over the keys, then a weighted sum of the
 * values. Per batch entry: the softmax of attention/softmax.c and one product
 * (attention/products.h). */
#include <math.h>
#include <stdlib.h>

#include "attention/checks.h"
#include "attention/products.h"
#include "attn/attention.h"
#include "core/error.h"

static attn_status check_sizes(int B, int Lq, int Lk, int Dv)
{
    attn_status s;
    if ((s = attn_check_at_least(B, 1, "B")) || (s = attn_check_at_least(Lq, 1, "Lq")) ||
        (s = attn_check_at_least(Lk, 1, "Lk")) || (s = attn_check_at_least(Dv, 1, "Dv")))
        return s;
    return ATTN_OK;
}

/* The rows of wb: (Lq, Lk), batch entry b's weights, edited: a key is seen
 * where its masked score in scores: (Lq, Lk) is not -inf; seen: (Lk) scratch. */
static void edit_rows(float *wb, const float *scores, const attn_mask *mask, int b, int Lq, int Lk,
                      const attn_weights_edit *edit, int *seen)
{
    for (int i = 0; i < Lq; i++) {
        int n_seen = 0;
        for (int j = 0; j < Lk; j++) {
            const float x = scores[(size_t)i * Lk + j];
            if ((mask ? attn_mask_score(mask, x, 0, 0, i, j) : x) != -INFINITY) seen[n_seen++] = j;
        }
        if (n_seen > 0)
            attn_weights_edit_row(wb + (size_t)i * Lk, seen, n_seen, edit,
                                  edit->first_row + (int64_t)b * Lq + i);
    }
}

/* context: (B, Lq, Dv), weights: (B, Lq, Lk), scores: (B, Lq, Lk),
 * mask: optional, seen as (B, 1, Lq, Lk), values: (B, Lk, Dv); edit: optional,
 * checked. */
static attn_status forward(float *context, float *weights, const float *scores,
                           const attn_mask *mask, const float *values, int B, int Lq, int Lk,
                           int Dv, const attn_weights_edit *edit)
{
    attn_status s;
    if ((s = attn_check_not_null(context, "context")) ||
        (s = attn_check_not_null(weights, "weights")) ||
        (s = attn_check_not_null(scores, "scores")) ||
        (s = attn_check_not_null(values, "values")) || (s = attn_mask_check(mask, "mask")) ||
        (s = check_sizes(B, Lq, Lk, Dv)))
        return s;
    int *seen = edit ? malloc((size_t)Lk * sizeof *seen) : NULL;
    if (edit && seen == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for a row of %d keys", Lk);
    for (int b = 0; b < B && s == ATTN_OK; b++) {
        float *wb = weights + (size_t)b * Lq * Lk;
        attn_mask slice;
        if (mask) slice = attn_mask_of_batch(mask, b);
        if ((s = attn_softmax_forward(wb, scores + (size_t)b * Lq * Lk, mask ? &slice : NULL, Lq,
                                      Lk)))
            break;
        if (edit)
            edit_rows(wb, scores + (size_t)b * Lq * Lk, mask ? &slice : NULL, b, Lq, Lk, edit,
                      seen);
        attn_product_nn(context + (size_t)b * Lq * Dv, wb, values + (size_t)b * Lk * Dv, Lq, Dv,
                        Lk, 1.0f, false);
    }
    free(seen);
    return s;
}

attn_status attn_soft_attention_forward(float *context, float *weights, const float *scores,
                                        const attn_mask *mask, const float *values, int B,
                                        int Lq, int Lk, int Dv)
{
    return forward(context, weights, scores, mask, values, B, Lq, Lk, Dv, NULL);
}

attn_status attn_soft_attention_edited_forward(float *context, float *weights,
                                               const float *scores, const attn_mask *mask,
                                               const float *values, int B, int Lq, int Lk, int Dv,
                                               const attn_weights_edit *edit)
{
    attn_status s = attn_weights_edit_check(edit, 1);
    return s ? s : forward(context, weights, scores, mask, values, B, Lq, Lk, Dv, edit);
}

attn_status attn_weights_backward(float *dscores, const float *dcontext, const float *weights,
                                  const float *values, int B, int Lq, int Lk, int Dv, float scale)
{
    float *dweights = malloc((size_t)Lq * Lk * sizeof *dweights); /* (Lq, Lk), per entry */
    if (dweights == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for dweights of %d x %d", Lq, Lk);
    for (int b = 0; b < B; b++) {
        attn_product_nt(dweights, dcontext + (size_t)b * Lq * Dv, values + (size_t)b * Lk * Dv,
                        Lq, Lk, Dv, scale, false);
        attn_softmax_backward(dscores + (size_t)b * Lq * Lk, dweights,
                              weights + (size_t)b * Lq * Lk, Lq, Lk);
    }
    free(dweights);
    return ATTN_OK;
}

/* dscores: (B, Lq, Lk), dvalues: (B, Lk, Dv), each optional; dcontext: (B, Lq, Dv);
 * weights: (B, Lq, Lk) from the forward; values: (B, Lk, Dv).
 * Differentiates context = weights @ values: dvalues += weights^T dcontext and
 * dweights = dcontext values^T; then weights = softmax(scores + mask) through
 * attn_softmax_backward, which leaves masked keys and fully masked rows at zero. */
attn_status attn_soft_attention_backward(float *dscores, float *dvalues, const float *dcontext,
                                         const float *weights, const float *values, int B,
                                         int Lq, int Lk, int Dv)
{
    attn_status s;
    if ((s = attn_check_not_null(dcontext, "dcontext")) ||
        (s = attn_check_not_null(weights, "weights")) ||
        (s = attn_check_not_null(values, "values")) || (s = check_sizes(B, Lq, Lk, Dv)))
        return s;
    if (dvalues)
        for (int b = 0; b < B; b++)
            attn_product_tn_add(dvalues + (size_t)b * Lk * Dv, weights + (size_t)b * Lq * Lk,
                                dcontext + (size_t)b * Lq * Dv, Lk, Dv, Lq, 1.0f);
    return dscores ? attn_weights_backward(dscores, dcontext, weights, values, B, Lq, Lk, Dv, 1.0f)
                   : ATTN_OK;
}
