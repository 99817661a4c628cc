/* Hard attention: one key per query, by argmax, by sampling from the softmax, or
 * by the Gumbel-max trick with its relaxation kept for a straight-through backward.
 *
 * A key whose masked score is -inf (excluded by a mask or scored -inf) is never
 * chosen. A NaN score counts as the largest, as in torch.argmax, so a row holding
 * NaN picks its first NaN key in both modes: NaN has no probability to sample from,
 * and the choice of that key is how the NaN shows in the output. Sampling also
 * falls back to the argmax when the largest score is +inf, the limit of the
 * softmax there. */
#include <math.h>
#include <string.h>

#include "attention/checks.h"
#include "attn/attention.h"
#include "core/error.h"

typedef struct score_row {
    const float *scores; /* (Lk) */
    const attn_mask *mask;
    int b, i, Lk;
} score_row;

static float masked_score(const score_row *row, int j)
{
    float s = row->scores[j];
    return row->mask ? attn_mask_score(row->mask, s, row->b, 0, row->i, j) : s;
}

/* The first largest key, the first NaN if there is one, -1 if all are -inf. */
static int argmax_key(const score_row *row)
{
    int best = -1;
    float best_score = -INFINITY;
    for (int j = 0; j < row->Lk; j++) {
        float s = masked_score(row, j);
        if (isnan(s)) return j;
        if (s > best_score) {
            best = j;
            best_score = s;
        }
    }
    return best;
}

/* Inverse CDF: the first key whose cumulative weight exceeds u * total. Weights are
 * summed in double so that rounding barely moves the boundaries; if it still leaves
 * u * total beyond the last boundary, the last key of nonzero weight is taken. */
static int sample_key(const score_row *row, float u)
{
    int best = argmax_key(row);
    if (best < 0) return -1;
    double max = masked_score(row, best);
    if (isnan(max) || isinf(max)) return best;
    double total = 0.0;
    for (int j = 0; j < row->Lk; j++) total += exp((double)masked_score(row, j) - max);
    double target = (double)u * total, cumulative = 0.0;
    int last = best;
    for (int j = 0; j < row->Lk; j++) {
        double weight = exp((double)masked_score(row, j) - max);
        if (weight <= 0.0) continue;
        cumulative += weight;
        last = j;
        if (cumulative > target) return j;
    }
    return last;
}

/* The Gumbel-max pick of one row: z_j = (masked score + g_j) / tau written to
 * y, the argmax of z taken, then y = softmax(z) in place. r is the row's index
 * b * Lq + i (see attn/attention.h for the keying). u is formed in double: in
 * float, 1 - 2^-25 rounds to 1, and g would be +inf. */
static int gumbel_key(const score_row *row, float *y, uint64_t seed, size_t r, float tau)
{
    for (int j = 0; j < row->Lk; j++) {
        double u = (double)attn_uniform_at(seed, r * (size_t)row->Lk + j) + 0x1p-25;
        y[j] = (masked_score(row, j) - (float)log(-log(u))) / tau;
    }
    score_row perturbed = {y, NULL, 0, 0, row->Lk};
    int key = argmax_key(&perturbed);
    attn_softmax_forward(y, y, NULL, 1, row->Lk);
    return key;
}

/* What GUMBEL needs besides the other modes' arguments. */
static attn_status check_gumbel(const attn_hard_pick *pick, const float *weights)
{
    if (!(isfinite(pick->tau) && pick->tau > 0.0f))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "tau %g is not finite and > 0",
                          (double)pick->tau);
    return attn_check_not_null(weights, "weights");
}

static attn_status check_args(const int32_t *index, const float *context, const float *weights,
                              const float *scores, const attn_mask *mask, const float *values,
                              int B, int Lq, int Lk, int Dv, const attn_hard_pick *pick)
{
    attn_status s;
    if ((s = attn_check_not_null(index, "index")) ||
        (s = attn_check_not_null(context, "context")) ||
        (s = attn_check_not_null(scores, "scores")) ||
        (s = attn_check_not_null(values, "values")) || (s = attn_check_not_null(pick, "pick")) ||
        (s = attn_check_at_least(B, 1, "B")) || (s = attn_check_at_least(Lq, 1, "Lq")) ||
        (s = attn_check_at_least(Lk, 1, "Lk")) || (s = attn_check_at_least(Dv, 1, "Dv")))
        return s;
    if (pick->mode != ATTN_HARD_ARGMAX && pick->mode != ATTN_HARD_SAMPLE &&
        pick->mode != ATTN_HARD_GUMBEL)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "mode %d is not an attn_hard_mode",
                          (int)pick->mode);
    if (pick->mode == ATTN_HARD_GUMBEL && (s = check_gumbel(pick, weights))) return s;
    return attn_mask_check(mask, "mask");
}

/* weights: (B, Lq, Lk) = softmax(scores + mask), one batch entry at a time. */
static attn_status softmax_weights(float *weights, const float *scores, const attn_mask *mask,
                                   int B, int Lq, int Lk)
{
    attn_status s;
    for (int b = 0; b < B; b++) {
        attn_mask slice;
        if (mask) slice = attn_mask_of_batch(mask, b);
        size_t at = (size_t)b * Lq * Lk;
        if ((s = attn_softmax_forward(weights + at, scores + at, mask ? &slice : NULL, Lq, Lk)))
            return s;
    }
    return ATTN_OK;
}

/* index: (B, Lq), context: (B, Lq, Dv), weights: (B, Lq, Lk) optional but for
 * GUMBEL, scores: (B, Lq, Lk), mask: optional, seen as (B, 1, Lq, Lk),
 * values: (B, Lk, Dv). */
attn_status attn_hard_attention_forward(int32_t *index, float *context, float *weights,
                                        const float *scores, const attn_mask *mask,
                                        const float *values, int B, int Lq, int Lk, int Dv,
                                        const attn_hard_pick *pick)
{
    attn_status s;
    if ((s = check_args(index, context, weights, scores, mask, values, B, Lq, Lk, Dv, pick)))
        return s;
    if (weights && pick->mode != ATTN_HARD_GUMBEL &&
        (s = softmax_weights(weights, scores, mask, B, Lq, Lk)))
        return s;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < Lq; i++) {
            size_t r = (size_t)b * Lq + i;
            score_row row = {scores + r * Lk, mask, b, i, Lk};
            int key;
            if (pick->mode == ATTN_HARD_ARGMAX)
                key = argmax_key(&row);
            else if (pick->mode == ATTN_HARD_SAMPLE)
                key = sample_key(&row, attn_uniform_at(pick->seed, r));
            else
                key = gumbel_key(&row, weights + r * Lk, pick->seed, r, pick->tau);
            index[r] = key;
            float *out = context + r * Dv;
            if (key < 0)
                memset(out, 0, (size_t)Dv * sizeof *out);
            else
                memcpy(out, values + ((size_t)b * Lk + key) * Dv, (size_t)Dv * sizeof *out);
        }
    }
    return ATTN_OK;
}

/* dscores: (B, Lq, Lk), dvalues: (B, Lk, Dv), each optional; dcontext: (B, Lq, Dv);
 * index: (B, Lq) and weights: (B, Lq, Lk) from the forward; values: (B, Lk, Dv).
 * The forward's context is a copy of the chosen value row, so its gradient goes
 * there; Gumbel's straight-through gradient treats the context as y @ values with
 * y = softmax(z), z = (scores + g) / tau, hence the 1 / tau. */
attn_status attn_hard_attention_backward(float *dscores, float *dvalues, const float *dcontext,
                                         const int32_t *index, const float *weights,
                                         const float *values, int B, int Lq, int Lk, int Dv,
                                         const attn_hard_pick *pick)
{
    attn_status s;
    if ((s = attn_check_not_null(dcontext, "dcontext")) ||
        (s = attn_check_not_null(index, "index")) ||
        (s = attn_check_not_null(values, "values")) || (s = attn_check_not_null(pick, "pick")) ||
        (s = attn_check_at_least(B, 1, "B")) || (s = attn_check_at_least(Lq, 1, "Lq")) ||
        (s = attn_check_at_least(Lk, 1, "Lk")) || (s = attn_check_at_least(Dv, 1, "Dv")))
        return s;
    bool straight_through = dscores && pick->mode == ATTN_HARD_GUMBEL;
    if (straight_through && (s = check_gumbel(pick, weights))) return s;
    /* The forward's indices: a key, or -1 for a row with every key masked. Any
     * other value would write outside dvalues. */
    for (size_t r = 0; r < (size_t)B * Lq; r++)
        if (index[r] < -1 || index[r] >= Lk)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "index %d of query row %zu is neither a key in [0, %d) nor -1",
                              (int)index[r], r, Lk);
    if (dvalues)
        for (int b = 0; b < B; b++)
            for (int i = 0; i < Lq; i++) {
                size_t r = (size_t)b * Lq + i;
                if (index[r] < 0) continue;
                float *dv = dvalues + ((size_t)b * Lk + index[r]) * Dv;
                const float *dc = dcontext + r * Dv;
                for (int k = 0; k < Dv; k++) dv[k] += dc[k];
            }
    return straight_through ? attn_weights_backward(dscores, dcontext, weights, values, B, Lq, Lk,
                                                    Dv, 1.0f / pick->tau)
                            : ATTN_OK;
}
