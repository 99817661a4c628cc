/* The Luong families (s2s_family), "dot" and "general": the cells run first
 * (layer 0's input is the embedding and the previous step's h~, the family's
 * feed), then the new top state h_t attends with score_j = h_t . key_j (keys
 * W_a h_j for "general", the bridged states for "dot", which are its values
 * too); h~_t = tanh(W_c [c_t; h_t]) feeds the output layer and the next step.
 *
 * Both score through the attention layer's dot scores (attn_score_dot_*):
 * "general"'s h_t W_a h_j is the same bilinear score with W_a applied to the
 * keys, once per source (attn_s2s_encode), instead of to every step's query. */
#include <string.h>

#include "attn/attention.h"
#include "attn/kernels.h"
#include "core/error.h"
#include "models/seq2seq_rnn.h"

/* gx0[t] += h~_{t-1} W_ih0[:, E:]^T -> cells -> h_t: (R, H) -> scores: (R, S) -> ctx[t]:
 * (R, Dv) -> z[t] = [c_t; h_t]: (R, Dv + H) -> h~_t = feed[t + 1] = feat[t]: (R, H).
 * The backward goes from dfeed[t + 1] (= dfeat[t], the output layer's share and
 * the next step's) to dh of the states, dkeys, dvalues and dfeed[t]. */
static attn_status step_forward(s2s_rnn *r, int t)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int R = run->R, S = run->S, H = d->H, Dv = d->Dv, Z = d->Dv + d->H;
    attn_status s;
    /* Input feeding: h~ of step t - 1 (zeros at t = 0). */
    attn_gemm(r->precision, false, true, R, d->GH, H, 1.0f, run->feed + (size_t)t * R * H, H,
              r->w.w_ih[0] + d->E, d->in0, 1.0f, attn_s2s_at(run, run->gx0, 0, t, (size_t)d->GH),
              d->GH);
    if ((s = attn_s2s_cells_forward(r, t))) return s;
    const float *top = attn_s2s_state(run, run->hs, d->L - 1, t + 1, H);
    /* The rows of a source are its queries: (Bs, beam, H) against keys (Bs, S, H). */
    if ((s = attn_score_dot_forward(run->scores, top, run->keys, run->Bs, run->beam, S, H, 1.0f)) ||
        (s = attn_s2s_attend(r, t)))
        return s;
    const float *ctx = run->ctx + (size_t)t * R * Dv;
    float *z = run->z + (size_t)t * R * Z;
    for (int row = 0; row < R; row++) {
        memcpy(z + (size_t)row * Z, ctx + (size_t)row * Dv, (size_t)Dv * sizeof(float));
        memcpy(z + (size_t)row * Z + Dv, top + (size_t)row * H, (size_t)H * sizeof(float));
    }
    float *ht = run->feed + (size_t)(t + 1) * R * H;
    attn_gemm(r->precision, false, true, R, H, Z, 1.0f, z, Z, r->w.combine, Z, 0.0f, ht, H);
    return attn_activation_forward(ATTN_ACT_TANH, ht, ht, (size_t)R * H);
}

static attn_status step_backward(s2s_rnn *r, int t)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int R = run->R, S = run->S, H = d->H, Dv = d->Dv, Z = d->Dv + d->H;
    attn_status s;
    /* h~ = tanh(pre): dpre = dh~ (1 - h~^2); dh~ has the output layer's share and
     * the next step's input feeding. */
    const float *ht = run->feed + (size_t)(t + 1) * R * H;
    const float *dht = run->dfeed + (size_t)(t + 1) * R * H;
    float *dpre = run->dpre + (size_t)t * R * H;
    for (size_t i = 0; i < (size_t)R * H; i++) dpre[i] = dht[i] * (1.0f - ht[i] * ht[i]);
    attn_gemm(r->precision, false, false, R, Z, H, 1.0f, dpre, H, r->w.combine, Z, 0.0f, run->dz,
              Z);
    const float *top = attn_s2s_state(run, run->hs, d->L - 1, t + 1, H);
    float *dtop = run->dh + (size_t)(d->L - 1) * R * H;
    for (int row = 0; row < R; row++) {
        const float *dz = run->dz + (size_t)row * Z;
        memcpy(run->dctx + ((size_t)t * R + row) * Dv, dz, (size_t)Dv * sizeof(float));
        for (int k = 0; k < H; k++) dtop[(size_t)row * H + k] += dz[Dv + k];
    }
    if ((s = attn_s2s_attend_backward(r, t)) ||
        (s = attn_score_dot_backward(dtop, run->dkeys, run->dscores, top, run->keys, run->Bs,
                                     run->beam, S, H, 1.0f)) ||
        (s = attn_s2s_cells_backward(r, t)))
        return s;
    /* Layer 0's input had h~ of step t - 1; h~_0 is the constant zero. */
    if (t > 0)
        attn_gemm(r->precision, false, false, R, H, d->GH, 1.0f,
                  attn_s2s_at(run, run->dgx, 0, t, (size_t)d->GH), d->GH, r->w.w_ih[0] + d->E,
                  d->in0, 1.0f, run->dfeed + (size_t)t * R * H, H);
    return ATTN_OK;
}

/* dW_c += dpre^T z, one GEMM over all steps. */
static void weight_grads(s2s_rnn *r)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int rows = run->T * run->R, H = d->H, Z = d->Dv + d->H;
    attn_gemm(r->precision, true, false, H, Z, rows, 1.0f, run->dpre, H, run->z, Z, 1.0f,
              r->g.combine, Z);
}

/* The context is Dv wide: the bridged states (H) for "dot", the encoder's (2H)
 * for "general". */
static void dims(s2s_dims *d, int Dv)
{
    d->Dv = Dv;
    d->in0 = d->E + d->H;
    d->F = d->H;
    d->Wf = d->H;
}
static void dot_dims(s2s_dims *d) { dims(d, d->H); }
static void general_dims(s2s_dims *d) { dims(d, 2 * d->H); }

/* The key projection (W_a or the bridge) before the layers, combine after. */
static void dot_params(s2s_specs *l, const s2s_dims *d, s2s_param_group group)
{
    if (group == S2S_PARAMS_ATTENTION) {
        attn_s2s_add_spec(l, "decoder.bridge.weight", 2, d->H, 2 * d->H);
        attn_s2s_add_spec(l, "decoder.bridge.bias", 1, d->H, 0);
    } else {
        attn_s2s_add_spec(l, "decoder.combine.weight", 2, d->H, d->Dv + d->H);
    }
}
static void general_params(s2s_specs *l, const s2s_dims *d, s2s_param_group group)
{
    if (group == S2S_PARAMS_ATTENTION)
        attn_s2s_add_spec(l, "decoder.attention.weight", 2, d->H, 2 * d->H);
    else
        attn_s2s_add_spec(l, "decoder.combine.weight", 2, d->H, d->Dv + d->H);
}

/* Both as nn.Linear; w->key_b is NULL for "general". */
static void init(const s2s_weights *w, const s2s_dims *d, attn_rng *rng, s2s_param_group group)
{
    if (group == S2S_PARAMS_ATTENTION)
        attn_init_linear(w->key, w->key_b, d->H, 2 * d->H, rng);
    else
        attn_init_linear(w->combine, NULL, d->H, d->Dv + d->H, rng);
}

static int views(attn_activation_view *out, s2s_run *run, const s2s_dims *d, bool backward)
{
    const size_t TR = (size_t)run->T * run->R, H = (size_t)d->H, Z = (size_t)(d->Dv + d->H);
    const size_t bw = backward ? 1 : 0;
    out[0] = (attn_activation_view){&run->z, TR * Z};
    out[1] = (attn_activation_view){&run->dpre, bw * TR * H};
    out[2] = (attn_activation_view){&run->dz, bw * run->R * Z};
    return 3;
}

/* h~_t is both step t's output feature and what it feeds step t + 1. */
static void bind_feed(s2s_run *run, const s2s_dims *d)
{
    run->feat = run->feed + (size_t)run->R * d->Wf;
    run->dfeat = run->dfeed + (size_t)run->R * d->Wf;
    run->in0_rest = run->feed;
}
static void dot_bind(s2s_run *run, const s2s_dims *d)
{
    bind_feed(run, d);
    run->values = run->keys;
    run->dvalues = run->dkeys;
}
static void general_bind(s2s_run *run, const s2s_dims *d)
{
    bind_feed(run, d);
    run->values = run->enc;
    run->dvalues = run->denc;
}

const s2s_family attn_s2s_luong_dot = {
    .dims = dot_dims,
    .key_weight = "decoder.bridge.weight",
    .key_bias = "decoder.bridge.bias",
    .params = dot_params,
    .init = init,
    .views = views,
    .bind = dot_bind,
    .step = step_forward,
    .step_backward = step_backward,
    .weight_grads = weight_grads,
};

const s2s_family attn_s2s_luong_general = {
    .dims = general_dims,
    .key_weight = "decoder.attention.weight",
    .key_bias = NULL,
    .params = general_params,
    .init = init,
    .views = views,
    .bind = general_bind,
    .step = step_forward,
    .step_backward = step_backward,
    .weight_grads = weight_grads,
};
