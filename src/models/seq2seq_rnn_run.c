/* One forward's activations, laid out for its sizes (the family adds its own),
 * and the keys of its random streams. */
#include <stdlib.h>
#include <string.h>

#include "attn/kernels.h"
#include "core/error.h"
#include "models/seq2seq_rnn.h"

uint64_t attn_s2s_key(uint64_t seed, int64_t step, unsigned site, int t)
{
    uint32_t w[4];
    attn_philox4x32(w, seed, (uint64_t)step, ((uint64_t)site << 32) | (uint32_t)t);
    return ((uint64_t)w[0] << 32) | w[1];
}

static attn_status layout_ints(s2s_rnn *r, int Bs, int S, int T, int R)
{
    const size_t src = (size_t)Bs * S, steps = (size_t)T * R;
    attn_status s = attn_int_block_reserve(&r->ints, src + (size_t)Bs + 3 * steps, "token ids");
    if (s) return s;
    s2s_run *run = &r->run;
    run->src = r->ints.data;
    run->src_len = run->src + src;
    run->tgt_in = run->src_len + Bs;
    run->tgt_out = run->tgt_in + steps;
    run->choice = run->tgt_out + steps;
    return ATTN_OK;
}

attn_status attn_s2s_layout(s2s_rnn *r, int Bs, int beam, int S, int T, bool backward)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const size_t R = (size_t)Bs * beam, TR = (size_t)T * R, BS = (size_t)Bs * S;
    const size_t H = (size_t)d->H, L = (size_t)d->L, GH = (size_t)d->GH, A = (size_t)d->Ka;
    const size_t lstm = d->mode == ATTN_LSTM, gru = d->mode == ATTN_GRU, bw = backward ? 1 : 0;
    const size_t enc_rows = 2 * (size_t)d->Le * Bs, Dv = (size_t)d->Dv, F = (size_t)d->F;
    const size_t feed = (size_t)(T + 1) * R * d->Wf;
    /* Set first: the family's views are sized from them. */
    run->R = (int)R, run->Bs = Bs, run->beam = beam, run->S = S, run->T = T;
    const attn_activation_view shared[] = {
        {&run->src_emb, BS * d->E},
        {&run->enc, BS * 2 * H},
        {&run->h_n, enc_rows * H},
        {&run->final, Bs * 2 * H},
        {&run->init, Bs * L * H},
        {&run->keys, BS * A},
        {&run->pad, BS},
        {&run->emb, TR * d->E},
        {&run->gx0, TR * GH},
        {&run->gx, R * GH},
        {&run->x, L > 1 ? L * TR * H : 0},
        {&run->hs, L * (T + 1) * R * H},
        {&run->cs, lstm * L * (T + 1) * R * H},
        {&run->saved, L * TR * d->saved},
        {&run->scores, R * S},
        {&run->weights, TR * S},
        {&run->ctx, TR * Dv},
        {&run->feed, feed},
        {&run->feat_drop, TR * F},
        {&run->logits, TR * d->V},
        {&run->probs, TR * d->V},
        {&run->row_loss, TR},
        {&run->tmp, R * H},
        {&run->dlogits, bw * TR * d->V},
        {&run->dfeat_drop, bw * TR * F},
        {&run->dfeed, bw * feed},
        {&run->dgx, bw * L * TR * GH},
        {&run->dgh, bw * gru * L * TR * GH},
        {&run->dh, bw * L * R * H},
        {&run->dh_prev, bw * L * R * H},
        {&run->dc, bw * lstm * L * R * H},
        {&run->dc_prev, bw * lstm * L * R * H},
        {&run->dctx, bw * TR * Dv},
        {&run->dscores, bw * R * S},
        {&run->dkeys, bw * BS * A},
        {&run->denc, bw * BS * 2 * H},
        {&run->dh_n, bw * enc_rows * H},
        {&run->dinit, bw * Bs * L * H},
        {&run->dfinal, bw * Bs * 2 * H},
        {&run->demb, bw * TR * d->E},
        {&run->demb_drop, bw * TR * d->E},
        {&run->dsrc_emb, bw * BS * d->E},
        {&run->dsrc_emb_drop, bw * BS * d->E},
        {&run->advantage, bw * R},
        {&run->pg, bw * R},
        {&run->ent, bw * R},
    };
    enum { SHARED = sizeof shared / sizeof shared[0] };
    attn_activation_view views[SHARED + S2S_FAMILY_VIEWS_MAX];
    memcpy(views, shared, sizeof shared);
    const int count = SHARED + r->family->views(views + SHARED, run, d, backward);
    attn_status s;
    if ((s = attn_activations_layout(&r->acts, views, count)) ||
        (s = layout_ints(r, Bs, S, T, (int)R)))
        return s;
    r->family->bind(run, d);
    return ATTN_OK;
}
