/* The output layer over all steps at once, and its backward with the
 * cross-entropy's: feat: (T, R, F) -> logits: (T * R, V); dlogits -> dfeat. */
#include <string.h>

#include "attn/kernels.h"
#include "attn/train.h"
#include "core/error.h"
#include "models/seq2seq_rnn.h"

attn_status attn_s2s_output(s2s_rnn *r)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int rows = run->T * run->R;
    const float *in = run->feat;
    attn_status s;
    if (run->p > 0.0f) {
        if ((s = attn_dropout_forward(run->feat_drop, run->feat, (size_t)rows * d->F, run->p,
                                      attn_s2s_key(run->seed, run->step, S2S_SITE_OUTPUT, 0))))
            return s;
        in = run->feat_drop;
    }
    return attn_linear_forward_at(r->precision, run->logits, in, r->w.out_w, r->w.out_b, rows, d->F,
                                  d->V);
}

/* Of the output layer and the cross-entropy: dfeat. */
attn_status attn_s2s_output_backward(s2s_rnn *r)
{
    s2s_run *run = &r->run;
    const int rows = run->T * run->R;
    memset(run->dlogits, 0, (size_t)rows * r->d.V * sizeof(float));
    attn_status s = attn_cross_entropy_backward(run->dlogits, run->probs, run->tgt_out, rows,
                                                r->d.V, ATTN_TOKEN_PAD, run->label_smoothing,
                                                1.0f);
    return s ? s : attn_s2s_output_backward_logits(r);
}

attn_status attn_s2s_output_backward_logits(s2s_rnn *r)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int rows = run->T * run->R;
    const size_t feat = (size_t)rows * d->F;
    attn_status s;
    memset(run->dfeat, 0, feat * sizeof(float));
    if (run->p == 0.0f)
        return attn_linear_backward_at(r->precision, run->dfeat, r->g.out_w, r->g.out_b,
                                       run->dlogits, run->feat, r->w.out_w, rows, d->F, d->V);
    memset(run->dfeat_drop, 0, feat * sizeof(float));
    if ((s = attn_linear_backward_at(r->precision, run->dfeat_drop, r->g.out_w, r->g.out_b,
                                     run->dlogits, run->feat_drop, r->w.out_w, rows, d->F, d->V)))
        return s;
    return attn_dropout_backward(run->dfeat, run->dfeat_drop, feat, run->p,
                                 attn_s2s_key(run->seed, run->step, S2S_SITE_OUTPUT, 0));
}
