/* The decoder's layers of cells at one step, and their backward: layer 0 takes
 * its complete input projection gx0[t], the layers above the state below after
 * dropout. States hs/cs: (L, T + 1, R, H), step t reads index t, writes t + 1. */
#include <string.h>

#include "attn/kernels.h"
#include "core/error.h"
#include "models/seq2seq_rnn.h"

attn_status attn_s2s_cells_forward(s2s_rnn *r, int t)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int R = run->R, H = d->H;
    const bool lstm = d->mode == ATTN_LSTM;
    attn_status s;
    for (int l = 0; l < d->L; l++) {
        const float *gx = attn_s2s_at(run, run->gx0, 0, t, (size_t)d->GH);
        if (l > 0) {
            float *x = attn_s2s_at(run, run->x, l, t, (size_t)H);
            const float *below = attn_s2s_state(run, run->hs, l - 1, t + 1, H);
            if ((s = attn_dropout_forward(
                     x, below, (size_t)R * H, run->p,
                     attn_s2s_key(run->seed, run->step, S2S_SITE_DEC_LAYER + (unsigned)l, t))) ||
                (s = attn_linear_forward_at(r->precision, run->gx, x, r->w.w_ih[l], r->w.b_ih[l], R,
                                            H, d->GH)))
                return s;
            gx = run->gx;
        }
        if ((s = attn_rnn_cell_forward_at(r->precision, d->mode,
                                          attn_s2s_state(run, run->hs, l, t + 1, H),
                                          lstm ? attn_s2s_state(run, run->cs, l, t + 1, H) : NULL,
                                          attn_s2s_at(run, run->saved, l, t, d->saved), gx,
                                          attn_s2s_state(run, run->hs, l, t, H),
                                          lstm ? attn_s2s_state(run, run->cs, l, t, H) : NULL,
                                          r->w.w_hh[l], r->w.b_hh[l], R, H)))
            return s;
    }
    return ATTN_OK;
}

attn_status attn_s2s_cells_backward(s2s_rnn *r, int t)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int R = run->R, H = d->H;
    const size_t RH = (size_t)R * H;
    const bool lstm = d->mode == ATTN_LSTM;
    attn_status s;
    for (int l = d->L - 1; l >= 0; l--) {
        float *dgx = attn_s2s_at(run, run->dgx, l, t, (size_t)d->GH);
        /* GRU leaves the gradient of h W_hh^T + b_hh in its scratch: kept per step
         * for the W_hh gradient; for RNN and LSTM it is dgx. */
        float *dgh = d->mode == ATTN_GRU ? attn_s2s_at(run, run->dgh, l, t, (size_t)d->GH) : NULL;
        if ((s = attn_rnn_cell_backward_at(
                 r->precision, d->mode, dgx, run->dh_prev + l * RH,
                 lstm ? run->dc_prev + l * RH : NULL, NULL, NULL, dgh, run->dh + l * RH,
                 lstm ? run->dc + l * RH : NULL, attn_s2s_at(run, run->saved, l, t, d->saved),
                 attn_s2s_state(run, run->hs, l, t, H),
                 lstm ? attn_s2s_state(run, run->cs, l, t, H) : NULL, r->w.w_hh[l], R, H)))
            return s;
        if (l > 0) {
            /* Back through layer l's input: the layer below's output, dropped out. */
            attn_gemm(r->precision, false, false, R, H, d->GH, 1.0f, dgx, d->GH, r->w.w_ih[l], H,
                      0.0f, run->tmp, H);
            if ((s = attn_dropout_backward(
                     run->dh + (l - 1) * RH, run->tmp, RH, run->p,
                     attn_s2s_key(run->seed, run->step, S2S_SITE_DEC_LAYER + (unsigned)l, t))))
                return s;
        }
    }
    return ATTN_OK;
}
