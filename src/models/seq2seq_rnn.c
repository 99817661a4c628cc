/* The RNN encoder-decoder models: parameters and their initialisation, the
 * bidirectional encoder and the initial decoder state, the activation layout,
 * and the operations table. */
#include <math.h>
#include <stdio.h>
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

/* ---- parameters --------------------------------------------------------------------- */

static s2s_dims make_dims(const attn_seq2seq_config *c)
{
    s2s_dims d = {0};
    d.mode = c->arch == ATTN_S2S_RNN_BAHDANAU   ? ATTN_RNN_TANH
             : c->arch == ATTN_S2S_GRU_BAHDANAU ? ATTN_GRU
                                                : ATTN_LSTM;
    d.G = attn_rnn_gates(d.mode);
    d.E = c->embed_dim, d.H = c->hidden_dim, d.L = c->dec_layers, d.Le = c->enc_layers;
    d.GH = d.G * d.H;
    d.Vs = c->src_vocab, d.V = c->tgt_vocab;
    d.luong = c->arch == ATTN_S2S_LSTM_LUONG_DOT || c->arch == ATTN_S2S_LSTM_LUONG_GENERAL;
    d.dot = c->arch == ATTN_S2S_LSTM_LUONG_DOT;
    d.kind = c->attention;
    d.Ka = d.H;
    d.Dv = d.dot ? d.H : 2 * d.H;
    d.in0 = d.E + (d.luong ? d.H : d.Dv);
    d.F = d.luong ? d.H : d.H + d.Dv;
    d.saved = attn_rnn_cell_saved_size(d.mode, d.H);
    return d;
}

typedef struct spec_list {
    attn_param *items;
    int count;
} spec_list;

static void add_spec(spec_list *l, const char *name, int ndim, int64_t d0, int64_t d1)
{
    attn_param *p = &l->items[l->count++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = d1;
}

/* The state_dict of the module described in attn/seq2seq.h. */
static void parameter_specs(spec_list *l, const s2s_dims *d, const attn_params *encoder)
{
    const int64_t E = d->E, H = d->H, GH = d->GH;
    add_spec(l, "encoder.embed.weight", 2, d->Vs, E);
    for (int i = 0; i < encoder->count; i++) {
        attn_param *p = &l->items[l->count++];
        *p = encoder->items[i];
        /* attn_rnn's names are short ("weight_hh_l7_reverse"): the prefix fits. */
        snprintf(p->name, sizeof p->name, "encoder.rnn.%.100s", encoder->items[i].name);
    }
    add_spec(l, "decoder.embed.weight", 2, d->V, E);
    add_spec(l, "decoder.init.weight", 2, d->L * H, 2 * H);
    add_spec(l, "decoder.init.bias", 1, d->L * H, 0);
    if (!d->luong) {
        add_spec(l, "decoder.attention.query.weight", 2, d->Ka, H);
        add_spec(l, "decoder.attention.key.weight", 2, d->Ka, 2 * H);
        add_spec(l, "decoder.attention.key.bias", 1, d->Ka, 0);
        add_spec(l, "decoder.attention.v", 1, d->Ka, 0);
    } else if (d->dot) {
        add_spec(l, "decoder.bridge.weight", 2, H, 2 * H);
        add_spec(l, "decoder.bridge.bias", 1, H, 0);
    } else {
        add_spec(l, "decoder.attention.weight", 2, H, 2 * H);
    }
    for (int k = 0; k < d->L; k++) {
        char name[ATTN_PARAM_NAME_MAX];
        snprintf(name, sizeof name, "decoder.rnn.weight_ih_l%d", k);
        add_spec(l, name, 2, GH, k == 0 ? d->in0 : H);
        snprintf(name, sizeof name, "decoder.rnn.weight_hh_l%d", k);
        add_spec(l, name, 2, GH, H);
        snprintf(name, sizeof name, "decoder.rnn.bias_ih_l%d", k);
        add_spec(l, name, 1, GH, 0);
        snprintf(name, sizeof name, "decoder.rnn.bias_hh_l%d", k);
        add_spec(l, name, 1, GH, 0);
    }
    if (d->luong) add_spec(l, "decoder.combine.weight", 2, H, d->Dv + H);
    add_spec(l, "decoder.out.weight", 2, d->V, d->F);
    add_spec(l, "decoder.out.bias", 1, d->V, 0);
}

/* The start of parameter `name` in base (data or grad), or NULL. */
static float *view(const attn_params *p, float *base, const char *name)
{
    const attn_param *it = attn_params_find(p, name);
    return it ? base + it->offset : NULL;
}

static s2s_weights point_weights(const attn_params *p, float *base, const s2s_dims *d)
{
    s2s_weights w = {0};
    w.src_embed = view(p, base, "encoder.embed.weight");
    w.tgt_embed = view(p, base, "decoder.embed.weight");
    w.init_w = view(p, base, "decoder.init.weight");
    w.init_b = view(p, base, "decoder.init.bias");
    for (int k = 0; k < d->L; k++) {
        char name[ATTN_PARAM_NAME_MAX];
        snprintf(name, sizeof name, "decoder.rnn.weight_ih_l%d", k);
        w.w_ih[k] = view(p, base, name);
        snprintf(name, sizeof name, "decoder.rnn.weight_hh_l%d", k);
        w.w_hh[k] = view(p, base, name);
        snprintf(name, sizeof name, "decoder.rnn.bias_ih_l%d", k);
        w.b_ih[k] = view(p, base, name);
        snprintf(name, sizeof name, "decoder.rnn.bias_hh_l%d", k);
        w.b_hh[k] = view(p, base, name);
    }
    w.query = view(p, base, "decoder.attention.query.weight");
    w.key = view(p, base, "decoder.attention.key.weight");
    w.key_b = view(p, base, "decoder.attention.key.bias");
    w.v = view(p, base, "decoder.attention.v");
    w.general = view(p, base, "decoder.attention.weight");
    w.bridge = view(p, base, "decoder.bridge.weight");
    w.bridge_b = view(p, base, "decoder.bridge.bias");
    w.combine = view(p, base, "decoder.combine.weight");
    w.out_w = view(p, base, "decoder.out.weight");
    w.out_b = view(p, base, "decoder.out.bias");
    return w;
}

/* nn.Embedding's N(0, 1) with the PAD row zero. */
static void init_embedding(float *w, int num, int dim, attn_rng *rng)
{
    attn_rng_fill_normal(rng, w, (size_t)num * dim, 0.0f, 1.0f);
    memset(w + (size_t)ATTN_TOKEN_PAD * dim, 0, (size_t)dim * sizeof *w);
}

/* PyTorch's defaults: embeddings N(0, 1), nn.Linear's bounds, the recurrent
 * weights and biases uniform in +-1/sqrt(H), v as a Linear(A, 1) would be. */
static void init_parameters(s2s_rnn *r, attn_rng *rng)
{
    const s2s_dims *d = &r->d;
    const s2s_weights *w = &r->w;
    const int H = d->H;
    init_embedding(w->src_embed, d->Vs, d->E, rng);
    init_embedding(w->tgt_embed, d->V, d->E, rng);
    attn_init_linear(w->init_w, w->init_b, d->L * H, 2 * H, rng);
    if (!d->luong) {
        attn_init_linear(w->query, NULL, d->Ka, H, rng);
        attn_init_linear(w->key, w->key_b, d->Ka, 2 * H, rng);
        attn_init_linear(w->v, NULL, 1, d->Ka, rng);
    } else if (d->dot) {
        attn_init_linear(w->bridge, w->bridge_b, H, 2 * H, rng);
    } else {
        attn_init_linear(w->general, NULL, H, 2 * H, rng);
    }
    const float bound = 1.0f / sqrtf((float)H);
    for (int k = 0; k < d->L; k++) {
        const size_t in = (size_t)(k == 0 ? d->in0 : H);
        attn_rng_fill_uniform(rng, w->w_ih[k], (size_t)d->GH * in, -bound, bound);
        attn_rng_fill_uniform(rng, w->w_hh[k], (size_t)d->GH * H, -bound, bound);
        attn_rng_fill_uniform(rng, w->b_ih[k], (size_t)d->GH, -bound, bound);
        attn_rng_fill_uniform(rng, w->b_hh[k], (size_t)d->GH, -bound, bound);
    }
    if (d->luong) attn_init_linear(w->combine, NULL, H, d->Dv + H, rng);
    attn_init_linear(w->out_w, w->out_b, d->V, d->F, rng);
    /* The encoder initialised itself; the model's block holds the values. */
    const attn_params *enc = attn_rnn_params(r->encoder);
    for (int i = 0; i < enc->count; i++)
        memcpy(r->params->data + r->encoder_offsets[i], enc->data + enc->items[i].offset,
               enc->items[i].numel * sizeof(float));
}

/* The encoder module keeps its own parameter block: the model's block is the one
 * trained and saved, so the encoder's is refreshed from it before each use. */
static void sync_encoder(s2s_rnn *r)
{
    attn_params *enc = attn_rnn_params(r->encoder);
    for (int i = 0; i < enc->count; i++)
        memcpy(enc->data + enc->items[i].offset, r->params->data + r->encoder_offsets[i],
               enc->items[i].numel * sizeof(float));
}

static attn_status create_encoder(s2s_rnn *r, attn_rng *rng, float dropout)
{
    const attn_rnn_config cfg = {.mode = r->d.mode,
                                 .input_size = r->d.E,
                                 .hidden_size = r->d.H,
                                 .num_layers = r->d.Le,
                                 .bias = true,
                                 .batch_first = true,
                                 .bidirectional = true,
                                 .dropout = dropout};
    const uint64_t seed = ((uint64_t)attn_rng_u32(rng) << 32) | attn_rng_u32(rng);
    return attn_rnn_create(&r->encoder, &cfg, seed);
}

static attn_status create_parameters(attn_seq2seq *m, s2s_rnn *r)
{
    const attn_params *enc = attn_rnn_params(r->encoder);
    /* Embeddings, init, attention (4 at most), the decoder's layers, combine, out. */
    const int max = enc->count + 12 + 4 * r->d.L;
    spec_list specs = {.items = calloc((size_t)max, sizeof(attn_param))};
    r->encoder_offsets = calloc((size_t)enc->count, sizeof *r->encoder_offsets);
    if (specs.items == NULL || r->encoder_offsets == NULL) {
        free(specs.items);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the parameter list");
    }
    parameter_specs(&specs, &r->d, enc);
    attn_status s = attn_params_init(&m->params, specs.items, specs.count);
    free(specs.items);
    if (s) return s;
    for (int i = 0; i < enc->count; i++) /* listed right after encoder.embed.weight */
        r->encoder_offsets[i] = m->params.items[1 + i].offset;
    r->w = point_weights(&m->params, m->params.data, &r->d);
    r->g = point_weights(&m->params, m->params.grad, &r->d);
    if (r->d.kind == ATTN_ATTEND_HARD_REINFORCE) {
        const attn_param baseline = {.name = "decoder.baseline", .ndim = 1, .shape = {1}};
        if ((s = attn_params_init(&m->buffers, &baseline, 1))) return s;
        r->baseline = m->buffers.data;
    }
    return ATTN_OK;
}

static void rnn_destroy(attn_seq2seq *m)
{
    s2s_rnn *r = m->impl;
    if (r == NULL) return;
    attn_rnn_free(r->encoder);
    free(r->encoder_offsets);
    attn_activations_free(&r->acts);
    free(r->ints);
    free(r);
    m->impl = NULL;
}

static const attn_seq2seq_ops RNN_OPS = {
    .forward = attn_s2s_rnn_forward,
    .backward = attn_s2s_rnn_backward,
    .encode = attn_s2s_rnn_encode,
    .step = attn_s2s_rnn_step,
    .reorder = attn_s2s_rnn_reorder,
    .destroy = rnn_destroy,
};

attn_status attn_seq2seq_rnn_init(attn_seq2seq *m, uint64_t seed)
{
    s2s_rnn *r = calloc(1, sizeof *r);
    if (r == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the model");
    m->impl = r;
    m->ops = &RNN_OPS;
    r->params = &m->params;
    r->d = make_dims(&m->cfg);
    attn_rng rng;
    attn_rng_init(&rng, seed);
    attn_status s;
    if ((s = create_encoder(r, &rng, m->cfg.dropout)) || (s = create_parameters(m, r))) return s;
    init_parameters(r, &rng);
    return ATTN_OK;
}

/* ---- activations -------------------------------------------------------------------- */

static attn_status layout_ints(s2s_rnn *r, int Bs, int S, int T, int R)
{
    const size_t src = (size_t)Bs * S, steps = (size_t)T * R;
    const size_t need = src + (size_t)Bs + 3 * steps;
    if (need > r->int_capacity) {
        int32_t *grown = malloc(need * sizeof *grown);
        if (grown == NULL)
            return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %zu token ids", need);
        free(r->ints);
        r->ints = grown;
        r->int_capacity = need;
    }
    s2s_run *run = &r->run;
    run->src = r->ints;
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
    const size_t bah = d->luong ? 0 : 1, lu = d->luong ? 1 : 0, lstm = d->mode == ATTN_LSTM;
    const size_t bw = backward ? 1 : 0, gru = d->mode == ATTN_GRU;
    const size_t enc_rows = 2 * (size_t)d->Le * Bs, Dv = (size_t)d->Dv, F = (size_t)d->F;
    const size_t wide = H > (size_t)S ? H : (size_t)S;
    const attn_activation_view views[] = {
        {&run->src_emb, BS * d->E},
        {&run->enc, BS * 2 * H},
        {&run->h_n, enc_rows * H},
        {&run->final, Bs * 2 * H},
        {&run->init, Bs * L * H},
        {&run->keys, BS * A},
        {&run->emb, TR * d->E},
        {&run->gx0, TR * GH},
        {&run->gx, R * GH},
        {&run->x, L > 1 ? L * TR * H : 0},
        {&run->hs, L * (T + 1) * R * H},
        {&run->cs, lstm * L * (T + 1) * R * H},
        {&run->saved, L * TR * d->saved},
        {&run->qp, bah * TR * A},
        {&run->u, bah * TR * S * A},
        {&run->scores, R * S},
        {&run->weights, TR * S},
        {&run->ctx, TR * Dv},
        {&run->z, lu * TR * (Dv + H)},
        {&run->ht, lu * (T + 1) * R * H},
        {&run->feat, bah * TR * F},
        {&run->feat_drop, TR * F},
        {&run->logits, TR * d->V},
        {&run->probs, TR * d->V},
        {&run->row_loss, TR},
        {&run->tmp, R * wide},
        {&run->dlogits, bw * TR * d->V},
        {&run->dfeat_drop, bw * TR * F},
        {&run->dfeat, bw * bah * TR * F},
        {&run->dht, bw * lu * (T + 1) * R * H},
        {&run->dgx, bw * L * TR * GH},
        {&run->dgh, bw * gru * L * TR * GH},
        {&run->dh, bw * L * R * H},
        {&run->dh_prev, bw * L * R * H},
        {&run->dc, bw * lstm * L * R * H},
        {&run->dc_prev, bw * lstm * L * R * H},
        {&run->dctx, bw * TR * Dv},
        {&run->dscores, bw * R * S},
        {&run->dqp, bw * bah * TR * A},
        {&run->dpre, bw * lu * TR * H},
        {&run->dz, bw * lu * R * (Dv + H)},
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
    attn_status s;
    if ((s = attn_activations_layout(&r->acts, views, (int)(sizeof views / sizeof views[0]))) ||
        (s = layout_ints(r, Bs, S, T, (int)R)))
        return s;
    run->R = (int)R, run->Bs = Bs, run->beam = beam, run->S = S, run->T = T;
    /* luong-dot attends over the bridged states, keys and values alike. */
    run->values = d->dot ? run->keys : run->enc;
    run->dvalues = d->dot ? run->dkeys : run->denc;
    if (d->luong) {
        run->feat = run->ht + R * H;
        run->dfeat = run->dht + R * H;
    }
    return ATTN_OK;
}

/* ---- the encoder -------------------------------------------------------------------- */

attn_status attn_s2s_encode(s2s_rnn *r)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int Bs = run->Bs, S = run->S, H = d->H, LH = d->L * H;
    const size_t n = (size_t)Bs * S;
    attn_status s;
    if ((s = attn_embedding_forward(run->src_emb, run->src, r->w.src_embed, (int)n, d->Vs, d->E)))
        return s;
    if (run->p > 0.0f &&
        (s = attn_dropout_forward(run->src_emb, run->src_emb, n * d->E, run->p,
                                  attn_s2s_key(run->seed, run->step, S2S_SITE_SRC_EMBED, 0))))
        return s;
    sync_encoder(r);
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
    if ((s = attn_linear_forward(run->init, run->final, r->w.init_w, r->w.init_b, Bs, 2 * H, LH)) ||
        (s = attn_activation_forward(ATTN_ACT_TANH, run->init, run->init, (size_t)Bs * LH)))
        return s;
    const float *key_w = d->luong ? (d->dot ? r->w.bridge : r->w.general) : r->w.key;
    const float *key_b = d->luong ? (d->dot ? r->w.bridge_b : NULL) : r->w.key_b;
    if ((s = attn_linear_forward(run->keys, run->enc, key_w, key_b, (int)n, 2 * H, d->Ka)))
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
    if (d->luong) memset(run->ht, 0, (size_t)run->R * H * sizeof(float));
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
    if ((s = attn_linear_backward(run->dfinal, r->g.init_w, r->g.init_b, run->dinit, run->final,
                                  r->w.init_w, Bs, 2 * H, LH)))
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
    const float *key_w = d->luong ? (d->dot ? r->w.bridge : r->w.general) : r->w.key;
    float *dkey_w = d->luong ? (d->dot ? r->g.bridge : r->g.general) : r->g.key;
    float *dkey_b = d->luong ? (d->dot ? r->g.bridge_b : NULL) : r->g.key_b;
    if ((s = attn_linear_backward(run->denc, dkey_w, dkey_b, run->dkeys, run->enc, key_w, (int)n,
                                  2 * H, d->Ka)))
        return s;
    attn_params *enc = attn_rnn_params(r->encoder);
    attn_params_zero_grad(enc);
    memset(run->dsrc_emb, 0, n * d->E * sizeof(float));
    if ((s = attn_rnn_backward(r->encoder, run->dsrc_emb, NULL, NULL, run->denc, run->dh_n, NULL)))
        return s;
    for (int i = 0; i < enc->count; i++) {
        const float *from = enc->grad + enc->items[i].offset;
        float *to = r->params->grad + r->encoder_offsets[i];
        for (size_t e = 0; e < enc->items[i].numel; e++) to[e] += from[e];
    }
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
