/* The Luong decoder step: the cells run first (layer 0's input is the embedding
 * and the previous step's h~), then the new top state h_t attends with
 * score_j = h_t . key_j (keys W h_j for "general", the bridged states for
 * "dot"); h~_t = tanh(W_c [c_t; h_t]) feeds the output layer and the next step. */
#include <string.h>

#include "attn/kernels.h"
#include "core/error.h"
#include "models/seq2seq_rnn.h"

attn_status attn_s2s_luong_step(s2s_rnn *r, int t)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int R = run->R, S = run->S, H = d->H, Dv = d->Dv, Z = d->Dv + d->H;
    attn_status s;
    /* Input feeding: h~ of step t - 1 (zeros at t = 0). */
    attn_sgemm(false, true, R, d->GH, H, 1.0f, run->ht + (size_t)t * R * H, H, r->w.w_ih[0] + d->E,
               d->in0, 1.0f, attn_s2s_at(run, run->gx0, 0, t, (size_t)d->GH), d->GH);
    if ((s = attn_s2s_cells_forward(r, t))) return s;
    const float *top = attn_s2s_state(run, run->hs, d->L - 1, t + 1, H);
    for (int row = 0; row < R; row++) {
        const float *h = top + (size_t)row * H;
        const float *keys = run->keys + (size_t)(row / run->beam) * S * H;
        for (int j = 0; j < S; j++)
            run->scores[(size_t)row * S + j] = attn_s2s_dot(h, keys + (size_t)j * H, H);
    }
    if ((s = attn_s2s_attend(r, t))) return s;
    const float *ctx = run->ctx + (size_t)t * R * Dv;
    float *z = run->z + (size_t)t * R * Z;
    for (int row = 0; row < R; row++) {
        memcpy(z + (size_t)row * Z, ctx + (size_t)row * Dv, (size_t)Dv * sizeof(float));
        memcpy(z + (size_t)row * Z + Dv, top + (size_t)row * H, (size_t)H * sizeof(float));
    }
    float *ht = run->ht + (size_t)(t + 1) * R * H;
    attn_sgemm(false, true, R, H, Z, 1.0f, z, Z, r->w.combine, Z, 0.0f, ht, H);
    return attn_activation_forward(ATTN_ACT_TANH, ht, ht, (size_t)R * H);
}

attn_status attn_s2s_luong_step_backward(s2s_rnn *r, int t)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int R = run->R, S = run->S, H = d->H, Dv = d->Dv, Z = d->Dv + d->H;
    attn_status s;
    /* h~ = tanh(pre): dpre = dh~ (1 - h~^2); dh~ has the output layer's share and
     * the next step's input feeding. */
    const float *ht = run->ht + (size_t)(t + 1) * R * H;
    const float *dht = run->dht + (size_t)(t + 1) * R * H;
    float *dpre = run->dpre + (size_t)t * R * H;
    for (size_t i = 0; i < (size_t)R * H; i++) dpre[i] = dht[i] * (1.0f - ht[i] * ht[i]);
    attn_sgemm(false, false, R, Z, H, 1.0f, dpre, H, r->w.combine, Z, 0.0f, run->dz, Z);
    const float *top = attn_s2s_state(run, run->hs, d->L - 1, t + 1, H);
    float *dtop = run->dh + (size_t)(d->L - 1) * R * H;
    for (int row = 0; row < R; row++) {
        const float *dz = run->dz + (size_t)row * Z;
        memcpy(run->dctx + ((size_t)t * R + row) * Dv, dz, (size_t)Dv * sizeof(float));
        for (int k = 0; k < H; k++) dtop[(size_t)row * H + k] += dz[Dv + k];
    }
    if ((s = attn_s2s_attend_backward(r, t))) return s;
    /* score_j = h . key_j: dh += ds_j key_j, dkey_j += ds_j h. */
    for (int row = 0; row < R; row++) {
        const float *h = top + (size_t)row * H, *ds = run->dscores + (size_t)row * S;
        const float *keys = run->keys + (size_t)row * S * H;
        float *dh = dtop + (size_t)row * H, *dkeys = run->dkeys + (size_t)row * S * H;
        for (int j = 0; j < S; j++) {
            if (ds[j] == 0.0f) continue; /* masked, or no gradient at this step */
            const float *k = keys + (size_t)j * H;
            float *dk = dkeys + (size_t)j * H;
            for (int a = 0; a < H; a++) {
                dh[a] += ds[j] * k[a];
                dk[a] += ds[j] * h[a];
            }
        }
    }
    if ((s = attn_s2s_cells_backward(r, t))) return s;
    /* Layer 0's input had h~ of step t - 1. */
    attn_sgemm(false, false, R, H, d->GH, 1.0f, attn_s2s_at(run, run->dgx, 0, t, (size_t)d->GH),
               d->GH, r->w.w_ih[0] + d->E, d->in0, 1.0f, run->dht + (size_t)t * R * H, H);
    return ATTN_OK;
}
