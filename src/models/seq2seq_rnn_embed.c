/* The embedding of the decoder's input tokens and its share of layer 0's input
 * projection, computed for all steps at once; and the backward of both.
 * emb: (T, R, E) -> gx0: (T, R, GH); dgx[0]: (T, R, GH) -> the embedding's
 * gradient. */
#include <string.h>

#include "attn/kernels.h"
#include "core/error.h"
#include "models/seq2seq_rnn.h"

attn_status attn_s2s_embed_targets(s2s_rnn *r, const int32_t *tokens)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int rows = run->T * run->R;
    attn_status s;
    if ((s = attn_embedding_forward(run->emb, tokens, r->w.tgt_embed, rows, d->V, d->E))) return s;
    if (run->p > 0.0f &&
        (s = attn_dropout_forward(run->emb, run->emb, (size_t)rows * d->E, run->p,
                                  attn_s2s_key(run->seed, run->step, S2S_SITE_TGT_EMBED, 0))))
        return s;
    /* gx0 = emb W_ih0[:, :E]^T + b_ih0: the embedding columns of layer 0's weight. */
    for (int i = 0; i < rows; i++)
        memcpy(run->gx0 + (size_t)i * d->GH, r->w.b_ih[0], (size_t)d->GH * sizeof(float));
    attn_gemm(r->precision, false, true, rows, d->GH, d->E, 1.0f, run->emb, d->E, r->w.w_ih[0],
              d->in0, 1.0f, run->gx0, d->GH);
    return ATTN_OK;
}

attn_status attn_s2s_embed_targets_backward(s2s_rnn *r)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int rows = run->T * run->R;
    attn_gemm(r->precision, false, false, rows, d->E, d->GH, 1.0f, run->dgx, d->GH, r->w.w_ih[0],
              d->in0, 0.0f, run->demb, d->E);
    const float *demb = run->demb;
    attn_status s;
    if (run->p > 0.0f) {
        memset(run->demb_drop, 0, (size_t)rows * d->E * sizeof(float));
        if ((s = attn_dropout_backward(run->demb_drop, run->demb, (size_t)rows * d->E, run->p,
                                       attn_s2s_key(run->seed, run->step, S2S_SITE_TGT_EMBED, 0))))
            return s;
        demb = run->demb_drop;
    }
    return attn_embedding_backward(r->g.tgt_embed, demb, run->tgt_in, rows, d->V, d->E,
                                   ATTN_TOKEN_PAD);
}
