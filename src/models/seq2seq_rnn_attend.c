/* The RNN decoders' attention after the scores: soft weights, or one hard
 * position (sampled, Gumbel-argmax or argmax), the context, and the backward of
 * each, REINFORCE's surrogate and the straight-through Gumbel-softmax included. */
#include <math.h>
#include <string.h>

#include "attn/attention.h"
#include "core/error.h"
#include "models/seq2seq_rnn.h"

/* Uniform in (0, 1), never 0 or 1, at counter (row, j) of the stream `key`:
 * 23 random bits, centred in their interval. */
static float open_uniform(uint64_t key, uint64_t row, uint64_t j)
{
    uint32_t w[4];
    attn_philox4x32(w, key, row, j);
    return ((float)(w[0] >> 9) + 0.5f) * 0x1p-23f;
}

/* The first position whose cumulative weight passes u; the last one with any
 * weight if rounding leaves the sum short of u. */
static int sample_position(const float *w, int len, float u)
{
    float cum = 0.0f;
    int last = 0;
    for (int j = 0; j < len; j++) {
        if (w[j] <= 0.0f) continue;
        cum += w[j];
        last = j;
        if (u < cum) return j;
    }
    return last;
}

static int argmax_position(const float *x, int len)
{
    int best = 0;
    for (int j = 1; j < len; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

/* ctx: (Dv) = sum over j < len of w[j] values[j]. */
static void weighted_context(float *ctx, const float *w, const float *values, int len, int Dv)
{
    memset(ctx, 0, (size_t)Dv * sizeof *ctx);
    for (int j = 0; j < len; j++) {
        const float wj = w[j];
        const float *v = values + (size_t)j * Dv;
        for (int k = 0; k < Dv; k++) ctx[k] += wj * v[k];
    }
}

attn_status attn_s2s_attend(s2s_rnn *r, int t)
{
    s2s_run *run = &r->run;
    const int R = run->R, S = run->S, Dv = r->d.Dv;
    float *scores = run->scores, *weights = run->weights + (size_t)t * R * S;
    int32_t *choice = run->choice + (size_t)t * R;
    float *ctx = run->ctx + (size_t)t * R * Dv;
    for (int row = 0; row < R; row++)
        for (int j = run->src_len[row / run->beam]; j < S; j++)
            scores[(size_t)row * S + j] = -INFINITY;
    const uint64_t key = attn_s2s_key(run->seed, run->step, S2S_SITE_ATTENTION, t);
    attn_status s;
    if (run->pick == S2S_PICK_GUMBEL) {
        /* y = softmax((scores + g) / tau), g = -log(-log u); its argmax is the
         * argmax of scores + g. The perturbed scores go through tmp. */
        for (int row = 0; row < R; row++) {
            const int len = run->src_len[row / run->beam];
            float *z = run->tmp + (size_t)row * S;
            for (int j = 0; j < S; j++) {
                const float g = -logf(-logf(open_uniform(key, (uint64_t)row, (uint64_t)j)));
                z[j] = j < len ? (scores[(size_t)row * S + j] + g) / run->tau : -INFINITY;
            }
            choice[row] = argmax_position(z, len);
        }
        s = attn_softmax_forward(weights, run->tmp, NULL, R, S);
    } else {
        s = attn_softmax_forward(weights, scores, NULL, R, S);
    }
    if (s) return s;
    for (int row = 0; row < R; row++) {
        const int b = row / run->beam, len = run->src_len[b];
        const float *values = run->values + (size_t)b * S * Dv;
        const float *w = weights + (size_t)row * S;
        if (run->pick == S2S_PICK_SOFT) {
            weighted_context(ctx + (size_t)row * Dv, w, values, len, Dv);
            continue;
        }
        if (run->pick == S2S_PICK_SAMPLE)
            choice[row] = sample_position(w, len, open_uniform(key, (uint64_t)row, 0));
        else if (run->pick == S2S_PICK_ARGMAX)
            choice[row] = argmax_position(scores + (size_t)row * S, len);
        memcpy(ctx + (size_t)row * Dv, values + (size_t)choice[row] * Dv,
               (size_t)Dv * sizeof(float));
    }
    return ATTN_OK;
}

/* REINFORCE at one row: of -pg log pi(c) - ent H(pi) with respect to the scores,
 *   pg (pi_j - [j == c]) + ent pi_j (log pi_j + H),  H = -sum_j pi_j log pi_j. */
static void reinforce_row(float *dscores, const float *pi, int c, int len, float pg, float ent)
{
    double entropy = 0.0;
    for (int j = 0; j < len; j++)
        if (pi[j] > 0.0f) entropy -= (double)pi[j] * log((double)pi[j]);
    for (int j = 0; j < len; j++) {
        double g = (double)pg * pi[j];
        if (pi[j] > 0.0f) g += (double)ent * pi[j] * (log((double)pi[j]) + entropy);
        dscores[j] = (float)g;
    }
    dscores[c] -= pg;
}

attn_status attn_s2s_attend_backward(s2s_rnn *r, int t)
{
    s2s_run *run = &r->run;
    const int R = run->R, S = run->S, Dv = r->d.Dv;
    const float *weights = run->weights + (size_t)t * R * S;
    const int32_t *choice = run->choice + (size_t)t * R;
    memset(run->dscores, 0, (size_t)R * S * sizeof(float));
    /* dw (in tmp): the gradient of the weights the context was formed with, soft
     * ones or, straight through, Gumbel's soft sample. */
    for (int row = 0; row < R; row++) {
        const int b = row / run->beam, len = run->src_len[b];
        const float *values = run->values + (size_t)b * S * Dv;
        float *dvalues = run->dvalues + (size_t)b * S * Dv;
        const float *dctx = run->dctx + ((size_t)t * R + row) * Dv;
        const float *w = weights + (size_t)row * S;
        float *dw = run->tmp + (size_t)row * S;
        if (run->pick == S2S_PICK_SOFT) {
            for (int j = 0; j < len; j++) {
                float *dv = dvalues + (size_t)j * Dv;
                const float wj = w[j];
                for (int k = 0; k < Dv; k++) dv[k] += wj * dctx[k];
            }
        } else {
            float *dv = dvalues + (size_t)choice[row] * Dv;
            for (int k = 0; k < Dv; k++) dv[k] += dctx[k];
        }
        if (run->pick == S2S_PICK_SAMPLE) {
            reinforce_row(run->dscores + (size_t)row * S, w, choice[row], len, run->pg[row],
                          run->ent[row]);
            continue;
        }
        for (int j = 0; j < S; j++)
            dw[j] = j < len ? attn_s2s_dot(dctx, values + (size_t)j * Dv, Dv) : 0.0f;
    }
    if (run->pick == S2S_PICK_SAMPLE) return ATTN_OK;
    attn_status s = attn_softmax_backward(run->dscores, run->tmp, weights, R, S);
    if (s || run->pick != S2S_PICK_GUMBEL) return s;
    /* y = softmax(z / tau) with z the perturbed scores. */
    const float inv_tau = 1.0f / run->tau;
    for (size_t i = 0; i < (size_t)R * S; i++) run->dscores[i] *= inv_tau;
    return ATTN_OK;
}
