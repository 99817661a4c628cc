/* The Bahdanau family (s2s_family): the previous top state attends with additive
 * scores v . tanh(W_q s + W_k h_j + b) over keys W_k h_j + b projected once per
 * source (attn_s2s_encode); the context joins the embedding at layer 0's input,
 * and [s_t; c_t] feeds the output layer. Nothing is fed from step to step
 * besides the cells' states (Wf = 0).
 *
 * The scores are the attention layer's additive scores over projected keys
 * (attn_score_additive_projected_*): a step projects its one query per row,
 * the layer keeps the R * S * A tanh terms for the backward. */
#include <string.h>

#include "attn/attention.h"
#include "attn/kernels.h"
#include "core/error.h"
#include "models/seq2seq_rnn.h"

/* qp[t]: (R, A) = s_{t-1} W_q^T -> scores -> ctx[t]: (R, Dv) -> gx0[t] += ctx W_ih0[:, E:]^T
 * -> cells -> feat[t]: (R, F = H + Dv) = [s_t; c_t]. The backward goes from
 * dfeat[t] to dh of the states and dqp[t], dkeys, dvalues. */
static attn_status step_forward(s2s_rnn *r, int t)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int R = run->R, H = d->H, A = d->Ka, Dv = d->Dv, F = d->F;
    attn_status s;
    const float *query = attn_s2s_state(run, run->hs, d->L - 1, t, H);
    float *qp = run->qp + (size_t)t * R * A;
    attn_gemm(r->precision, false, true, R, A, H, 1.0f, query, H, r->w.query, H, 0.0f, qp, A);
    /* The rows of a source are its queries: (Bs, beam, A) against keys (Bs, S, A). */
    if ((s = attn_score_additive_projected_forward(run->scores, run->u + (size_t)t * R * run->S * A,
                                                   qp, run->keys, r->w.v, run->Bs, run->beam,
                                                   run->S, A)) ||
        (s = attn_s2s_attend(r, t)))
        return s;
    const float *ctx = run->ctx + (size_t)t * R * Dv;
    attn_gemm(r->precision, false, true, R, d->GH, Dv, 1.0f, ctx, Dv, r->w.w_ih[0] + d->E, d->in0,
              1.0f, attn_s2s_at(run, run->gx0, 0, t, (size_t)d->GH), d->GH);
    if ((s = attn_s2s_cells_forward(r, t))) return s;
    const float *top = attn_s2s_state(run, run->hs, d->L - 1, t + 1, H);
    float *feat = run->feat + (size_t)t * R * F;
    for (int row = 0; row < R; row++) {
        memcpy(feat + (size_t)row * F, top + (size_t)row * H, (size_t)H * sizeof(float));
        memcpy(feat + (size_t)row * F + H, ctx + (size_t)row * Dv, (size_t)Dv * sizeof(float));
    }
    return ATTN_OK;
}

static attn_status step_backward(s2s_rnn *r, int t)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int R = run->R, H = d->H, A = d->Ka, Dv = d->Dv, F = d->F;
    const size_t RH = (size_t)R * H;
    attn_status s;
    /* feat = [s_t; c_t] */
    const float *dfeat = run->dfeat + (size_t)t * R * F;
    float *dctx = run->dctx + (size_t)t * R * Dv;
    float *dtop = run->dh + (size_t)(d->L - 1) * RH;
    for (int row = 0; row < R; row++) {
        const float *df = dfeat + (size_t)row * F;
        for (int k = 0; k < H; k++) dtop[(size_t)row * H + k] += df[k];
        memcpy(dctx + (size_t)row * Dv, df + H, (size_t)Dv * sizeof(float));
    }
    if ((s = attn_s2s_cells_backward(r, t))) return s;
    /* The context's share of layer 0's input. */
    attn_gemm(r->precision, false, false, R, Dv, d->GH, 1.0f,
              attn_s2s_at(run, run->dgx, 0, t, (size_t)d->GH), d->GH, r->w.w_ih[0] + d->E, d->in0,
              1.0f, dctx, Dv);
    float *dqp = run->dqp + (size_t)t * R * A;
    memset(dqp, 0, (size_t)R * A * sizeof *dqp);
    if ((s = attn_s2s_attend_backward(r, t)) ||
        (s = attn_score_additive_projected_backward(
             dqp, run->dkeys, r->g.v, run->dscores, run->u + (size_t)t * R * run->S * A, r->w.v,
             run->Bs, run->beam, run->S, A)))
        return s;
    /* The query was the top state at t - 1. */
    attn_gemm(r->precision, false, false, R, H, A, 1.0f, dqp, A, r->w.query, H, 1.0f,
              run->dh_prev + (size_t)(d->L - 1) * RH, H);
    return ATTN_OK;
}

/* dW_q += dqp^T [the top states at 0 .. T - 1], one GEMM over all steps. */
static void weight_grads(s2s_rnn *r)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int rows = run->T * run->R, H = d->H;
    attn_gemm(r->precision, true, false, d->Ka, H, rows, 1.0f, run->dqp, d->Ka,
              attn_s2s_state(run, run->hs, d->L - 1, 0, H), H, 1.0f, r->g.query, H);
}

static void dims(s2s_dims *d)
{
    d->Dv = 2 * d->H;
    d->in0 = d->E + d->Dv;
    d->F = d->H + d->Dv;
    d->Wf = 0;
}

static void params(s2s_specs *l, const s2s_dims *d, s2s_param_group group)
{
    if (group != S2S_PARAMS_ATTENTION) return;
    attn_s2s_add_spec(l, "decoder.attention.query.weight", 2, d->Ka, d->H);
    attn_s2s_add_spec(l, "decoder.attention.key.weight", 2, d->Ka, 2 * d->H);
    attn_s2s_add_spec(l, "decoder.attention.key.bias", 1, d->Ka, 0);
    attn_s2s_add_spec(l, "decoder.attention.v", 1, d->Ka, 0);
}

/* v as a Linear(A, 1) would be. */
static void init(const s2s_weights *w, const s2s_dims *d, attn_rng *rng, s2s_param_group group)
{
    if (group != S2S_PARAMS_ATTENTION) return;
    attn_init_linear(w->query, NULL, d->Ka, d->H, rng);
    attn_init_linear(w->key, w->key_b, d->Ka, 2 * d->H, rng);
    attn_init_linear(w->v, NULL, 1, d->Ka, rng);
}

static int views(attn_activation_view *out, s2s_run *run, const s2s_dims *d, bool backward)
{
    const size_t TR = (size_t)run->T * run->R, A = (size_t)d->Ka, bw = backward ? 1 : 0;
    out[0] = (attn_activation_view){&run->qp, TR * A};
    out[1] = (attn_activation_view){&run->u, TR * run->S * A};
    out[2] = (attn_activation_view){&run->feat, TR * d->F};
    out[3] = (attn_activation_view){&run->dfeat, bw * TR * d->F};
    out[4] = (attn_activation_view){&run->dqp, bw * TR * A};
    return 5;
}

static void bind(s2s_run *run, const s2s_dims *d)
{
    (void)d;
    run->values = run->enc;
    run->dvalues = run->denc;
    run->in0_rest = run->ctx;
}

const s2s_family attn_s2s_bahdanau = {
    .dims = dims,
    .key_weight = "decoder.attention.key.weight",
    .key_bias = "decoder.attention.key.bias",
    .params = params,
    .init = init,
    .views = views,
    .bind = bind,
    .step = step_forward,
    .step_backward = step_backward,
    .weight_grads = weight_grads,
};
