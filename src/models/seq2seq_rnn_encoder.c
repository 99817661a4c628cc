/* The bidirectional encoder: source embeddings, the encoder RNN, the keys (the
 * family's key projection of the states) and every row's initial decoder state,
 * and the backward of all of it. */
#include <string.h>

#include "attn/kernels.h"
#include "core/error.h"
#include "models/seq2seq_rnn.h"

attn_status attn_s2s_encode(s2s_rnn *r)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int Bs = run->Bs, S = run->S, H = d->H, LH = d->L * H;
    const size_t n = (size_t)Bs * S;
    attn_status s;
    if ((s = attn_s2s_attend_mask(run)) ||
        (s = attn_embedding_forward(run->src_emb, run->src, r->w.src_embed, (int)n, d->Vs, d->E)))
        return s;
    if (run->p > 0.0f &&
        (s = attn_dropout_forward(run->src_emb, run->src_emb, n * d->E, run->p,
                                  attn_s2s_key(run->seed, run->step, S2S_SITE_SRC_EMBED, 0))))
        return s;
    const attn_rnn_input in = {
        .x = run->src_emb,
        .batch = Bs,
        .seq_len = S,
        .lengths = run->src_len,
        .training = run->training,
        .dropout_seed = attn_s2s_key(run->seed, run->step, S2S_SITE_ENCODER, 0),
    };
    if ((s = attn_rnn_forward(r->encoder, run->enc, run->h_n, NULL, &in))) return s;
    /* The top layer's forward state after the last step, backward after the first. */
    const float *fwd = run->h_n + (size_t)(2 * (d->Le - 1)) * Bs * H;
    const float *bwd = fwd + (size_t)Bs * H;
    for (int b = 0; b < Bs; b++) {
        memcpy(run->final + (size_t)b * 2 * H, fwd + (size_t)b * H, (size_t)H * sizeof(float));
        memcpy(run->final + (size_t)b * 2 * H + H, bwd + (size_t)b * H, (size_t)H * sizeof(float));
    }
    if ((s = attn_linear_forward_at(r->precision, run->init, run->final, r->w.init_w, r->w.init_b,
                                    Bs, 2 * H, LH)) ||
        (s = attn_activation_forward(ATTN_ACT_TANH, run->init, run->init, (size_t)Bs * LH)))
        return s;
    if ((s = attn_linear_forward_at(r->precision, run->keys, run->enc, r->w.key, r->w.key_b, (int)n,
                                    2 * H, d->Ka)))
        return s;
    /* Every row of source b starts from its initial state. */
    for (int l = 0; l < d->L; l++) {
        float *h0 = attn_s2s_state(run, run->hs, l, 0, H);
        for (int row = 0; row < run->R; row++)
            memcpy(h0 + (size_t)row * H, run->init + (size_t)(row / run->beam) * LH + l * H,
                   (size_t)H * sizeof(float));
        if (d->mode == ATTN_LSTM)
            memset(attn_s2s_state(run, run->cs, l, 0, H), 0, (size_t)run->R * H * sizeof(float));
    }
    /* Step 0 is fed zeros (Luong's h~_0; nothing for Bahdanau, Wf = 0). */
    memset(run->feed, 0, (size_t)run->R * d->Wf * sizeof(float));
    return ATTN_OK;
}

attn_status attn_s2s_encode_backward(s2s_rnn *r)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int Bs = run->Bs, S = run->S, H = d->H, LH = d->L * H;
    const size_t n = (size_t)Bs * S;
    attn_status s;
    /* init = tanh(pre): dpre = dinit (1 - init^2), in place. */
    for (size_t i = 0; i < (size_t)Bs * LH; i++)
        run->dinit[i] *= 1.0f - run->init[i] * run->init[i];
    memset(run->dfinal, 0, (size_t)Bs * 2 * H * sizeof(float));
    if ((s = attn_linear_backward_at(r->precision, run->dfinal, r->g.init_w, r->g.init_b,
                                     run->dinit, run->final, r->w.init_w, Bs, 2 * H, LH)))
        return s;
    memset(run->dh_n, 0, (size_t)2 * d->Le * Bs * H * sizeof(float));
    float *dfwd = run->dh_n + (size_t)(2 * (d->Le - 1)) * Bs * H;
    float *dbwd = dfwd + (size_t)Bs * H;
    for (int b = 0; b < Bs; b++) {
        memcpy(dfwd + (size_t)b * H, run->dfinal + (size_t)b * 2 * H, (size_t)H * sizeof(float));
        memcpy(dbwd + (size_t)b * H, run->dfinal + (size_t)b * 2 * H + H,
               (size_t)H * sizeof(float));
    }
    /* The keys (and for luong-dot the values: the same array) back to the states;
     * the other architectures' value gradients are already in denc. */
    if ((s = attn_linear_backward_at(r->precision, run->denc, r->g.key, r->g.key_b, run->dkeys,
                                     run->enc, r->w.key, (int)n, 2 * H, d->Ka)))
        return s;
    /* The encoder adds its parameter gradients straight into the model's block. */
    memset(run->dsrc_emb, 0, n * d->E * sizeof(float));
    if ((s = attn_rnn_backward(r->encoder, run->dsrc_emb, NULL, NULL, run->denc, run->dh_n, NULL)))
        return s;
    const float *demb = run->dsrc_emb;
    if (run->p > 0.0f) {
        memset(run->dsrc_emb_drop, 0, n * d->E * sizeof(float));
        if ((s = attn_dropout_backward(run->dsrc_emb_drop, run->dsrc_emb, n * d->E, run->p,
                                       attn_s2s_key(run->seed, run->step, S2S_SITE_SRC_EMBED, 0))))
            return s;
        demb = run->dsrc_emb_drop;
    }
    return attn_embedding_backward(r->g.src_embed, demb, run->src, (int)n, d->Vs, d->E,
                                   ATTN_TOKEN_PAD);
}

