/* The RNN decoders' attention after the scores, through the attention layer:
 * soft attention, or one hard position (sampled, Gumbel-argmax or argmax) with
 * the layer's keying of its draws, each over the sources' padding mask; and the
 * backward of each, with REINFORCE's surrogate, the one piece that is the
 * model's (its reward comes from the loss). The rows of a source are its
 * queries: scores (Bs, beam, S) against values (Bs, S, Dv). */
#include <math.h>
#include <string.h>

#include "attn/attention.h"
#include "core/error.h"
#include "models/seq2seq_rnn.h"

attn_status attn_s2s_attend_mask(s2s_run *run)
{
    const int Bs = run->Bs, S = run->S;
    for (int b = 0; b < Bs; b++)
        for (int j = 0; j < S; j++)
            run->pad[(size_t)b * S + j] = j < run->src_len[b] ? 0.0f : -INFINITY;
    const int64_t shape[4] = {Bs, 1, 1, S}, target[4] = {Bs, 1, run->beam, S};
    return attn_mask_init(&run->pad_mask, ATTN_MASK_FLOAT, run->pad, 4, shape, target);
}

/* The layer's pick for a hard step t: draws keyed by a seed of their own per
 * (seed, step, t), and the layer's per (row, position) below it. */
static attn_hard_pick hard_pick(const s2s_run *run, int t)
{
    attn_hard_mode mode = run->pick == S2S_PICK_SAMPLE   ? ATTN_HARD_SAMPLE
                          : run->pick == S2S_PICK_GUMBEL ? ATTN_HARD_GUMBEL
                                                         : ATTN_HARD_ARGMAX;
    return (attn_hard_pick){mode, attn_s2s_key(run->seed, run->step, S2S_SITE_ATTENTION, t),
                            run->tau};
}

/* scores: (R, S) -> weights[t]: (R, S), choice[t]: (R) for hard picks, ctx[t]: (R, Dv). */
attn_status attn_s2s_attend(s2s_rnn *r, int t)
{
    s2s_run *run = &r->run;
    const int R = run->R, S = run->S, Dv = r->d.Dv;
    float *weights = run->weights + (size_t)t * R * S, *ctx = run->ctx + (size_t)t * R * Dv;
    if (run->pick == S2S_PICK_SOFT && run->edit != NULL) {
        attn_weights_edit edit = *run->edit;
        edit.first_row = (int64_t)t * R;
        return attn_soft_attention_edited_forward(ctx, weights, run->scores, &run->pad_mask,
                                                  run->values, run->Bs, run->beam, S, Dv, &edit);
    }
    if (run->pick == S2S_PICK_SOFT)
        return attn_soft_attention_forward(ctx, weights, run->scores, &run->pad_mask, run->values,
                                           run->Bs, run->beam, S, Dv);
    const attn_hard_pick pick = hard_pick(run, t);
    return attn_hard_attention_forward(run->choice + (size_t)t * R, ctx, weights, run->scores,
                                       &run->pad_mask, run->values, run->Bs, run->beam, S, Dv,
                                       &pick);
}

/* REINFORCE at one row: dscores += the gradient of -pg log pi(c) - ent H(pi) with
 * respect to the scores,
 *   pg (pi_j - [j == c]) + ent pi_j (log pi_j + H),  H = -sum_j pi_j log pi_j;
 * masked positions have pi_j = 0 and get nothing. */
static void reinforce_row(float *dscores, const float *pi, int c, int S, float pg, float ent)
{
    double entropy = 0.0;
    for (int j = 0; j < S; j++)
        if (pi[j] > 0.0f) entropy -= (double)pi[j] * log((double)pi[j]);
    for (int j = 0; j < S; j++) {
        double g = (double)pg * pi[j];
        if (pi[j] > 0.0f) g += (double)ent * pi[j] * (log((double)pi[j]) + entropy);
        dscores[j] += (float)g;
    }
    dscores[c] -= pg;
}

/* dweights: (R, S) += dctx values^T of each row's source, ctx = weights values:
 * dweights[row][j] = dctx[row] . values[row / beam][j] for j in the source. */
static void weights_backward(float *dweights, const s2s_run *run, const float *dctx, int Dv)
{
    for (int row = 0; row < run->R; row++) {
        const int b = row / run->beam;
        for (int j = 0; j < run->src_len[b]; j++) {
            const float *v = run->values + ((size_t)b * run->S + j) * Dv;
            float sum = 0.0f;
            for (int c = 0; c < Dv; c++) sum += dctx[(size_t)row * Dv + c] * v[c];
            dweights[(size_t)row * run->S + j] += sum;
        }
    }
}

/* dctx[t]: (R, Dv) -> dscores: (R, S) (overwritten), dvalues: (Bs, S, Dv) +=. */
attn_status attn_s2s_attend_backward(s2s_rnn *r, int t)
{
    s2s_run *run = &r->run;
    const int R = run->R, S = run->S, Dv = r->d.Dv;
    const float *weights = run->weights + (size_t)t * R * S;
    const float *dctx = run->dctx + (size_t)t * R * Dv;
    const int32_t *choice = run->choice + (size_t)t * R;
    memset(run->dscores, 0, (size_t)R * S * sizeof(float));
    if (run->weights_grad != NULL && run->pick == S2S_PICK_SOFT)
        weights_backward(run->weights_grad + (size_t)t * R * S, run, dctx, Dv);
    if (run->pick == S2S_PICK_SOFT)
        return attn_soft_attention_backward(run->dscores, run->dvalues, dctx, weights,
                                            run->values, run->Bs, run->beam, S, Dv);
    const attn_hard_pick pick = hard_pick(run, t);
    attn_status s = attn_hard_attention_backward(run->dscores, run->dvalues, dctx, choice, weights,
                                                 run->values, run->Bs, run->beam, S, Dv, &pick);
    if (s || run->pick != S2S_PICK_SAMPLE) return s;
    for (int row = 0; row < R; row++)
        reinforce_row(run->dscores + (size_t)row * S, weights + (size_t)row * S, choice[row], S,
                      run->pg[row], run->ent[row]);
    return ATTN_OK;
}
