/* Hard attention: one key per query, by argmax or by sampling from the softmax.
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
    return row->mask ? attn_mask_apply(row->mask, s, row->b, 0, row->i, j) : s;
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

static attn_status check_args(const int32_t *index, const float *context, const float *scores,
                              const attn_mask *mask, const float *values, int B, int Lq, int Lk,
                              int Dv, attn_hard_mode mode)
{
    attn_status s;
    if ((s = attn_check_not_null(index, "index")) ||
        (s = attn_check_not_null(context, "context")) ||
        (s = attn_check_not_null(scores, "scores")) ||
        (s = attn_check_not_null(values, "values")) || (s = attn_check_at_least(B, 1, "B")) ||
        (s = attn_check_at_least(Lq, 1, "Lq")) || (s = attn_check_at_least(Lk, 1, "Lk")) ||
        (s = attn_check_at_least(Dv, 1, "Dv")))
        return s;
    if (mode != ATTN_HARD_ARGMAX && mode != ATTN_HARD_SAMPLE)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "mode %d is not an attn_hard_mode",
                          (int)mode);
    return attn_mask_check(mask, "mask");
}

/* index: (B, Lq), context: (B, Lq, Dv), scores: (B, Lq, Lk),
 * mask: optional, seen as (B, 1, Lq, Lk), values: (B, Lk, Dv). */
attn_status attn_hard_attention_forward(int32_t *index, float *context, const float *scores,
                                        const attn_mask *mask, const float *values, int B,
                                        int Lq, int Lk, int Dv, attn_hard_mode mode,
                                        uint64_t seed)
{
    attn_status s;
    if ((s = check_args(index, context, scores, mask, values, B, Lq, Lk, Dv, mode))) return s;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < Lq; i++) {
            size_t r = (size_t)b * Lq + i;
            score_row row = {scores + r * Lk, mask, b, i, Lk};
            int key = mode == ATTN_HARD_ARGMAX ? argmax_key(&row)
                                               : sample_key(&row, attn_uniform_at(seed, r));
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
