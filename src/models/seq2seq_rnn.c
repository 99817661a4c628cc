/* The RNN encoder-decoder models: the decoder family chosen once, the model
 * created and destroyed, and the operations table (seq2seq_impl.h). */
#include <stdlib.h>

#include "core/error.h"
#include "models/seq2seq_rnn.h"
#include "nn/rnn_impl.h"

static const s2s_family *family_of(attn_seq2seq_arch arch)
{
    switch (arch) {
    case ATTN_S2S_LSTM_LUONG_DOT: return &attn_s2s_luong_dot;
    case ATTN_S2S_LSTM_LUONG_GENERAL: return &attn_s2s_luong_general;
    default: return &attn_s2s_bahdanau;
    }
}

static s2s_dims make_dims(const attn_seq2seq_config *c, const s2s_family *family)
{
    s2s_dims d = {0};
    d.mode = c->arch == ATTN_S2S_RNN_BAHDANAU   ? ATTN_RNN_TANH
             : c->arch == ATTN_S2S_GRU_BAHDANAU ? ATTN_GRU
                                                : ATTN_LSTM;
    d.G = attn_rnn_gates(d.mode);
    d.E = c->embed_dim, d.H = c->hidden_dim, d.L = c->dec_layers, d.Le = c->enc_layers;
    d.GH = d.G * d.H;
    d.Vs = c->src_vocab, d.V = c->tgt_vocab;
    d.kind = c->attention;
    d.Ka = d.H;
    family->dims(&d);
    d.saved = attn_rnn_cell_saved_size(d.mode, d.H);
    return d;
}

static void rnn_destroy(attn_seq2seq *m)
{
    s2s_rnn *r = m->impl;
    if (r == NULL) return;
    attn_rnn_free(r->encoder);
    attn_activations_free(&r->acts);
    attn_int_block_free(&r->ints);
    free(r);
    m->impl = NULL;
}

/* The encoder's products follow the model's, set in its layer. */
static void rnn_set_precision(attn_seq2seq *m, attn_precision precision)
{
    s2s_rnn *r = attn_s2s_rnn(m);
    r->precision = precision;
    attn_rnn_set_precision(r->encoder, precision);
}

static const attn_seq2seq_ops RNN_OPS = {
    .forward = attn_s2s_rnn_forward,
    .backward = attn_s2s_rnn_backward,
    .encode = attn_s2s_rnn_encode,
    .step = attn_s2s_rnn_step,
    .reorder = attn_s2s_rnn_reorder,
    .probe = attn_s2s_rnn_probe,
    .set_precision = rnn_set_precision,
    .destroy = rnn_destroy,
};

attn_status attn_seq2seq_rnn_param_count(const attn_seq2seq_config *c, int64_t *count)
{
    s2s_rnn r = {.family = family_of(c->arch)};
    r.d = make_dims(c, r.family);
    return attn_s2s_params_count(&r, c->dropout, count);
}

attn_status attn_seq2seq_rnn_init(attn_seq2seq *m, uint64_t seed)
{
    s2s_rnn *r = calloc(1, sizeof *r);
    if (r == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the model");
    m->impl = r;
    m->ops = &RNN_OPS;
    r->family = family_of(m->cfg.arch);
    r->d = make_dims(&m->cfg, r->family);
    return attn_s2s_params_create(m, r, seed);
}
