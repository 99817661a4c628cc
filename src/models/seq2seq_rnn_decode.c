/* Decoding with the RNN models: encode once, then one step at a time with T = 1,
 * the new state (the cells', and what the family's step feeds the next) copied
 * back over the old so that the next step finds it at index 0. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "models/seq2seq_rnn.h"

attn_status attn_s2s_rnn_encode(attn_seq2seq *m, const int32_t *src, const int32_t *src_len, int B,
                                int S, int beam)
{
    s2s_rnn *r = attn_s2s_rnn(m);
    s2s_run *run = &r->run;
    r->has_forward = false;
    int longest = 1;
    for (int b = 0; b < B; b++)
        if (src_len[b] > longest) longest = src_len[b];
    attn_status s;
    if ((s = attn_s2s_layout(r, B, beam, longest, 1, false))) return s;
    r->decode_S = S;
    run->training = false;
    run->p = 0.0f;
    run->seed = 0;
    run->step = 0;
    run->pick = S2S_PICK_SOFT;
    for (int b = 0; b < B; b++) {
        memcpy(run->src + (size_t)b * longest, src + (size_t)b * S,
               (size_t)longest * sizeof(int32_t));
        run->src_len[b] = src_len[b];
    }
    return attn_s2s_encode(r);
}

/* logprobs: (R, V) = logits - logsumexp(logits), row by row. */
static void log_softmax(float *logprobs, const float *logits, int R, int V)
{
    for (int row = 0; row < R; row++) {
        const float *x = logits + (size_t)row * V;
        float max = x[0];
        for (int v = 1; v < V; v++)
            if (x[v] > max) max = x[v];
        double sum = 0.0;
        for (int v = 0; v < V; v++) sum += exp((double)(x[v] - max));
        const float lse = max + (float)log(sum);
        for (int v = 0; v < V; v++) logprobs[(size_t)row * V + v] = x[v] - lse;
    }
}

/* attention: (R, decode_S): the weights, or the chosen position as one-hot. */
static void report_attention(const s2s_rnn *r, float *attention)
{
    const s2s_run *run = &r->run;
    const int S = run->S, out_S = r->decode_S;
    for (int row = 0; row < run->R; row++) {
        float *a = attention + (size_t)row * out_S;
        memset(a, 0, (size_t)out_S * sizeof(float));
        if (run->pick == S2S_PICK_SOFT)
            memcpy(a, run->weights + (size_t)row * S, (size_t)S * sizeof(float));
        else
            a[run->choice[row]] = 1.0f;
    }
}

attn_status attn_s2s_rnn_step(attn_seq2seq *m, float *logprobs, float *attention,
                              const int32_t *tokens, const attn_decode_options *opt, int position)
{
    s2s_rnn *r = attn_s2s_rnn(m);
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int R = run->R, H = d->H;
    if (d->kind != ATTN_ATTEND_SOFT)
        run->pick = opt->sample_hard ? S2S_PICK_SAMPLE : S2S_PICK_ARGMAX;
    run->seed = opt->seed;
    run->step = position;
    attn_status s;
    if ((s = attn_s2s_embed_targets(r, tokens)) ||
        (s = r->family->step(r, 0)) ||
        (s = attn_s2s_output(r)))
        return s;
    log_softmax(logprobs, run->logits, R, d->V);
    if (attention) report_attention(r, attention);
    const size_t state = (size_t)R * H * sizeof(float);
    for (int l = 0; l < d->L; l++) {
        memcpy(attn_s2s_state(run, run->hs, l, 0, H), attn_s2s_state(run, run->hs, l, 1, H), state);
        if (d->mode == ATTN_LSTM)
            memcpy(attn_s2s_state(run, run->cs, l, 0, H), attn_s2s_state(run, run->cs, l, 1, H),
                   state);
    }
    memcpy(run->feed, run->feed + (size_t)R * d->Wf, (size_t)R * d->Wf * sizeof(float));
    return ATTN_OK;
}

/* rows: (R, width) <- rows[parent]. */
static void gather_rows(float *rows, float *tmp, const int32_t *parent, int R, int width)
{
    for (int row = 0; row < R; row++)
        memcpy(tmp + (size_t)row * width, rows + (size_t)parent[row] * width,
               (size_t)width * sizeof(float));
    memcpy(rows, tmp, (size_t)R * width * sizeof(float));
}

attn_status attn_s2s_rnn_reorder(attn_seq2seq *m, const int32_t *parent)
{
    s2s_rnn *r = attn_s2s_rnn(m);
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int R = run->R, H = d->H;
    for (int row = 0; row < R; row++)
        if (parent[row] < 0 || parent[row] >= R || parent[row] / run->beam != row / run->beam)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "parent[%d] = %d is not a row of the same source", row,
                              (int)parent[row]);
    for (int l = 0; l < d->L; l++) {
        gather_rows(attn_s2s_state(run, run->hs, l, 0, H), run->tmp, parent, R, H);
        if (d->mode == ATTN_LSTM)
            gather_rows(attn_s2s_state(run, run->cs, l, 0, H), run->tmp, parent, R, H);
    }
    gather_rows(run->feed, run->tmp, parent, R, d->Wf);
    return ATTN_OK;
}
