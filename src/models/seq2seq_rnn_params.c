/* The RNN models' parameters: the state_dict declared (the family adds its
 * own), views of them by role, and PyTorch's initialisation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/seq2seq_rnn.h"
#include "nn/rnn_impl.h"

void attn_s2s_add_spec(s2s_specs *l, const char *name, int ndim, int64_t d0, int64_t d1)
{
    attn_specs_add(l, "", name, ndim, d0, d1);
}

/* The encoder RNN's parameters live in the model's block under this prefix. */
static const char ENCODER_PREFIX[] = "encoder.rnn.";

/* The state_dict of the module described in attn/seq2seq.h. */
static void parameter_specs(s2s_specs *l, const s2s_rnn *r)
{
    const s2s_dims *d = &r->d;
    const int64_t E = d->E, H = d->H, GH = d->GH;
    attn_s2s_add_spec(l, "encoder.embed.weight", 2, d->Vs, E);
    attn_rnn_specs(r->encoder, l, ENCODER_PREFIX);
    attn_s2s_add_spec(l, "decoder.embed.weight", 2, d->V, E);
    attn_s2s_add_spec(l, "decoder.init.weight", 2, d->L * H, 2 * H);
    attn_s2s_add_spec(l, "decoder.init.bias", 1, d->L * H, 0);
    r->family->params(l, d, S2S_PARAMS_ATTENTION);
    for (int k = 0; k < d->L; k++) {
        char name[ATTN_PARAM_NAME_MAX];
        snprintf(name, sizeof name, "decoder.rnn.weight_ih_l%d", k);
        attn_s2s_add_spec(l, name, 2, GH, k == 0 ? d->in0 : H);
        snprintf(name, sizeof name, "decoder.rnn.weight_hh_l%d", k);
        attn_s2s_add_spec(l, name, 2, GH, H);
        snprintf(name, sizeof name, "decoder.rnn.bias_ih_l%d", k);
        attn_s2s_add_spec(l, name, 1, GH, 0);
        snprintf(name, sizeof name, "decoder.rnn.bias_hh_l%d", k);
        attn_s2s_add_spec(l, name, 1, GH, 0);
    }
    r->family->params(l, d, S2S_PARAMS_AFTER_LAYERS);
    attn_s2s_add_spec(l, "decoder.out.weight", 2, d->V, d->F);
    attn_s2s_add_spec(l, "decoder.out.bias", 1, d->V, 0);
}

/* The start of parameter `name` in base (data or grad), or NULL (also for no
 * name). */
static float *view(const attn_params *p, float *base, const char *name)
{
    const attn_param *it = name ? attn_params_find(p, name) : NULL;
    return it ? base + it->offset : NULL;
}

static s2s_weights point_weights(const attn_params *p, float *base, const s2s_rnn *r)
{
    s2s_weights w = {0};
    w.src_embed = view(p, base, "encoder.embed.weight");
    w.tgt_embed = view(p, base, "decoder.embed.weight");
    w.init_w = view(p, base, "decoder.init.weight");
    w.init_b = view(p, base, "decoder.init.bias");
    for (int k = 0; k < r->d.L; k++) {
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
    w.key = view(p, base, r->family->key_weight);
    w.key_b = view(p, base, r->family->key_bias);
    w.v = view(p, base, "decoder.attention.v");
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
 * weights and biases uniform in +-1/sqrt(H); drawn in the state_dict's order. */
static void init_parameters(s2s_rnn *r, attn_rng *rng)
{
    const s2s_dims *d = &r->d;
    const s2s_weights *w = &r->w;
    const int H = d->H;
    init_embedding(w->src_embed, d->Vs, d->E, rng);
    init_embedding(w->tgt_embed, d->V, d->E, rng);
    attn_init_linear(w->init_w, w->init_b, d->L * H, 2 * H, rng);
    r->family->init(w, d, rng, S2S_PARAMS_ATTENTION);
    const float bound = 1.0f / sqrtf((float)H);
    for (int k = 0; k < d->L; k++) {
        const size_t in = (size_t)(k == 0 ? d->in0 : H);
        attn_rng_fill_uniform(rng, w->w_ih[k], (size_t)d->GH * in, -bound, bound);
        attn_rng_fill_uniform(rng, w->w_hh[k], (size_t)d->GH * H, -bound, bound);
        attn_rng_fill_uniform(rng, w->b_ih[k], (size_t)d->GH, -bound, bound);
        attn_rng_fill_uniform(rng, w->b_hh[k], (size_t)d->GH, -bound, bound);
    }
    r->family->init(w, d, rng, S2S_PARAMS_AFTER_LAYERS);
    attn_init_linear(w->out_w, w->out_b, d->V, d->F, rng);
}

/* The encoder without parameters yet. */
static attn_status create_encoder(s2s_rnn *r, float dropout)
{
    const attn_rnn_config cfg = {.mode = r->d.mode,
                                 .input_size = r->d.E,
                                 .hidden_size = r->d.H,
                                 .num_layers = r->d.Le,
                                 .bias = true,
                                 .batch_first = true,
                                 .bidirectional = true,
                                 .dropout = dropout};
    return attn_rnn_new(&r->encoder, &cfg);
}

attn_status attn_s2s_params_count(s2s_rnn *r, float dropout, int64_t *count)
{
    attn_status s = create_encoder(r, dropout);
    if (s) return s;
    s2s_specs specs = {0};
    parameter_specs(&specs, r);
    s = attn_specs_count(&specs, count);
    attn_rnn_free(r->encoder);
    r->encoder = NULL;
    return s;
}

static attn_status create_parameters(attn_seq2seq *m, s2s_rnn *r, uint64_t encoder_seed)
{
    s2s_specs specs = {0};
    parameter_specs(&specs, r);
    attn_status s;
    if ((s = attn_specs_layout(&specs, &m->params)) ||
        (s = attn_rnn_bind(r->encoder, &m->params, ENCODER_PREFIX, encoder_seed)))
        return s;
    r->w = point_weights(&m->params, m->params.data, r);
    r->g = point_weights(&m->params, m->params.grad, r);
    if (r->d.kind == ATTN_ATTEND_HARD_REINFORCE) {
        const attn_param baseline = {.name = "decoder.baseline", .ndim = 1, .shape = {1}};
        if ((s = attn_params_init(&m->buffers, &baseline, 1))) return s;
        r->baseline = m->buffers.data;
    }
    return ATTN_OK;
}

attn_status attn_s2s_params_create(attn_seq2seq *m, s2s_rnn *r, uint64_t seed)
{
    attn_rng rng;
    attn_rng_init(&rng, seed);
    /* The encoder's own initialisation is seeded by the model's first draw, so
     * that the model's values follow it. */
    uint64_t encoder_seed = (uint64_t)attn_rng_u32(&rng) << 32;
    encoder_seed |= attn_rng_u32(&rng);
    attn_status s;
    if ((s = create_encoder(r, m->cfg.dropout)) ||
        (s = create_parameters(m, r, encoder_seed)))
        return s;
    init_parameters(r, &rng);
    return ATTN_OK;
}
