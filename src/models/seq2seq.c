/* attn_seq2seq: names, defaults, config and argument checks, and the dispatch to
 * each architecture's operations (seq2seq_impl.h). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/names.h"
#include "models/seq2seq_impl.h"

static const attn_name ARCH_TABLE[] = {
    {ATTN_S2S_RNN_BAHDANAU, "rnn-bahdanau"},
    {ATTN_S2S_GRU_BAHDANAU, "gru-bahdanau"},
    {ATTN_S2S_LSTM_BAHDANAU, "lstm-bahdanau"},
    {ATTN_S2S_LSTM_LUONG_DOT, "lstm-luong-dot"},
    {ATTN_S2S_LSTM_LUONG_GENERAL, "lstm-luong-general"},
    {ATTN_S2S_TRANSFORMER, "transformer"},
};
static const attn_names ARCH_NAMES = ATTN_NAMES("model", "models", ARCH_TABLE);
ATTN_NAMES_FUNCTIONS(attn_seq2seq_arch, ARCH_NAMES, attn_seq2seq_arch_name, attn_seq2seq_arch_parse)

static const attn_name KIND_TABLE[] = {
    {ATTN_ATTEND_SOFT, "soft"},
    {ATTN_ATTEND_HARD_REINFORCE, "hard-reinforce"},
    {ATTN_ATTEND_HARD_GUMBEL, "hard-gumbel"},
};
static const attn_names KIND_NAMES = ATTN_NAMES("attention", "attention kinds", KIND_TABLE);
ATTN_NAMES_FUNCTIONS(attn_attention_kind, KIND_NAMES, attn_attention_kind_name,
                     attn_attention_kind_parse)

/* Sizes that learn the dates task (sources of up to 40 characters, 10-character
 * targets) in well under a minute on two cores; the hard-attention settings
 * were tuned on the same task. */
attn_seq2seq_config attn_seq2seq_defaults(attn_seq2seq_arch arch, attn_attention_kind attention)
{
    attn_seq2seq_config c = {
        .arch = arch,
        .attention = attention,
        .embed_dim = 32,
        .hidden_dim = 64,
        .enc_layers = 1,
        .dec_layers = 1,
        .heads = 4,
        .ff_dim = 128,
        .dropout = 0.0f,
        .entropy_weight = 0.1f,
        .baseline_decay = 0.9f,
        .gumbel_tau_start = 1.0f,
        .gumbel_tau_end = 0.5f,
        .gumbel_anneal_steps = 2000,
    };
    /* No dropout for the transformer either: the built-in tasks never repeat an
     * example, and dropout 0.1 slowed learning several times over. */
    if (arch == ATTN_S2S_TRANSFORMER) {
        c.enc_layers = 2;
        c.dec_layers = 2;
    }
    return c;
}

static attn_status check_layers(int layers, const char *what)
{
    attn_status s;
    if ((s = attn_check_at_least(layers, 1, what))) return s;
    if (layers > ATTN_SEQ2SEQ_MAX_LAYERS)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s %d exceeds %d", what, layers,
                          ATTN_SEQ2SEQ_MAX_LAYERS);
    return ATTN_OK;
}

static attn_status check_hard_attention(const attn_seq2seq_config *c)
{
    if (c->attention == ATTN_ATTEND_HARD_REINFORCE) {
        if (!(c->entropy_weight >= 0.0f && isfinite(c->entropy_weight)))
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "entropy_weight %g is not a finite number >= 0",
                              (double)c->entropy_weight);
        if (!(c->baseline_decay >= 0.0f && c->baseline_decay < 1.0f))
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "baseline_decay %g is outside [0, 1)",
                              (double)c->baseline_decay);
    }
    if (c->attention == ATTN_ATTEND_HARD_GUMBEL) {
        if (!(c->gumbel_tau_start > 0.0f && isfinite(c->gumbel_tau_start)))
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "gumbel_tau_start %g is not a finite number > 0",
                              (double)c->gumbel_tau_start);
        if (!(c->gumbel_tau_end > 0.0f && isfinite(c->gumbel_tau_end)))
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "gumbel_tau_end %g is not a finite number > 0",
                              (double)c->gumbel_tau_end);
        if (c->gumbel_anneal_steps < 0)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "gumbel_anneal_steps %lld < 0",
                              (long long)c->gumbel_anneal_steps);
    }
    return ATTN_OK;
}

static attn_status check_config(const attn_seq2seq_config *c)
{
    attn_status s;
    if ((s = attn_check_not_null(c, "seq2seq config"))) return s;
    if (!attn_names_has(&ARCH_NAMES, (int)c->arch))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "arch %d is not an attn_seq2seq_arch",
                          (int)c->arch);
    if (!attn_names_has(&KIND_NAMES, (int)c->attention))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "attention %d is not an attn_attention_kind",
                          (int)c->attention);
    if (c->arch == ATTN_S2S_TRANSFORMER && c->attention != ATTN_ATTEND_SOFT)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "attention %s: the transformer takes soft attention only",
                          attn_attention_kind_name(c->attention));
    /* The special ids and at least one real token. */
    if ((s = attn_check_range(c->src_vocab, ATTN_TOKEN_FIRST_CHAR + 1, ATTN_MAX_VOCAB,
                              "src_vocab")) ||
        (s = attn_check_range(c->tgt_vocab, ATTN_TOKEN_FIRST_CHAR + 1, ATTN_MAX_VOCAB,
                              "tgt_vocab")) ||
        (s = attn_check_range(c->max_src_len, 1, ATTN_MAX_LENGTH, "max_src_len")) ||
        (s = attn_check_range(c->max_tgt_len, 1, ATTN_MAX_LENGTH, "max_tgt_len")) ||
        (s = attn_check_range(c->hidden_dim, 1, ATTN_MAX_WIDTH, "hidden_dim")) ||
        (s = check_layers(c->enc_layers, "enc_layers")) ||
        (s = check_layers(c->dec_layers, "dec_layers")))
        return s;
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "dropout %g is outside [0, 1)",
                          (double)c->dropout);
    if (c->arch == ATTN_S2S_TRANSFORMER) {
        if ((s = attn_check_range(c->heads, 1, ATTN_MAX_WIDTH, "heads")) ||
            (s = attn_check_range(c->ff_dim, 1, ATTN_MAX_WIDTH, "ff_dim")))
            return s;
        if (c->hidden_dim % c->heads != 0)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "hidden_dim %d is not divisible by heads %d", c->hidden_dim,
                              c->heads);
        return ATTN_OK;
    }
    if ((s = attn_check_range(c->embed_dim, 1, ATTN_MAX_WIDTH, "embed_dim"))) return s;
    return check_hard_attention(c);
}

attn_status attn_seq2seq_create(attn_seq2seq **out, const attn_seq2seq_config *cfg, uint64_t seed)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "out")) || (s = check_config(cfg))) return s;
    *out = NULL;
    attn_seq2seq *m = calloc(1, sizeof *m);
    if (m == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the model");
    m->cfg = *cfg;
    s = cfg->arch == ATTN_S2S_TRANSFORMER ? attn_seq2seq_transformer_init(m, seed)
                                          : attn_seq2seq_rnn_init(m, seed);
    if (s != ATTN_OK) {
        attn_seq2seq_free(m);
        return s;
    }
    *out = m;
    return ATTN_OK;
}

attn_status attn_seq2seq_param_count(const attn_seq2seq_config *cfg, int64_t *count)
{
    attn_status s;
    if ((s = attn_check_not_null(count, "count")) || (s = check_config(cfg))) return s;
    return cfg->arch == ATTN_S2S_TRANSFORMER ? attn_seq2seq_transformer_param_count(cfg, count)
                                             : attn_seq2seq_rnn_param_count(cfg, count);
}

void attn_seq2seq_free(attn_seq2seq *m)
{
    if (m == NULL) return;
    if (m->ops && m->ops->destroy) m->ops->destroy(m);
    attn_params_free(&m->params);
    attn_params_free(&m->buffers);
    free(m);
}

const attn_seq2seq_config *attn_seq2seq_get_config(const attn_seq2seq *m)
{
    return m ? &m->cfg : NULL;
}

attn_params *attn_seq2seq_params(attn_seq2seq *m) { return m ? &m->params : NULL; }

attn_params *attn_seq2seq_buffers(attn_seq2seq *m) { return m ? &m->buffers : NULL; }

attn_status attn_seq2seq_set_precision(attn_seq2seq *m, attn_precision precision)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "seq2seq model")) || (s = attn_check_precision(precision)))
        return s;
    m->precision = precision;
    m->ops->set_precision(m, precision);
    return ATTN_OK;
}

attn_precision attn_seq2seq_get_precision(const attn_seq2seq *m)
{
    return m ? m->precision : ATTN_FLOAT32;
}

/* Lengths: (n) each in [1, max], named `what` in the message. */
static attn_status check_lengths(const int32_t *len, int n, int max, const char *what)
{
    for (int i = 0; i < n; i++)
        if (len[i] < 1 || len[i] > max)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s[%d] = %d is outside [1, %d]", what, i,
                              (int)len[i], max);
    return ATTN_OK;
}

static int min_int(int a, int b) { return a < b ? a : b; }

static attn_status check_batch(const attn_seq2seq *m, const attn_batch *b)
{
    attn_status s;
    if ((s = attn_check_not_null(b, "batch")) || (s = attn_check_at_least(b->batch, 1, "batch")) ||
        (s = attn_check_at_least(b->src_cap, 1, "batch src_cap")) ||
        (s = attn_check_at_least(b->tgt_cap, 1, "batch tgt_cap")) ||
        (s = attn_check_not_null(b->src, "batch src")) ||
        (s = attn_check_not_null(b->src_len, "batch src_len")) ||
        (s = attn_check_not_null(b->tgt_in, "batch tgt_in")) ||
        (s = attn_check_not_null(b->tgt_out, "batch tgt_out")) ||
        (s = attn_check_not_null(b->tgt_len, "batch tgt_len")))
        return s;
    if ((int64_t)b->batch * b->src_cap > INT_MAX / 8 ||
        (int64_t)b->batch * b->tgt_cap > INT_MAX / 8)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "batch %d of %d and %d tokens is too large",
                          b->batch, b->src_cap, b->tgt_cap);
    if ((s = check_lengths(b->src_len, b->batch, min_int(b->src_cap, m->cfg.max_src_len),
                           "batch src_len")) ||
        (s = check_lengths(b->tgt_len, b->batch, min_int(b->tgt_cap, m->cfg.max_tgt_len),
                           "batch tgt_len")))
        return s;
    return ATTN_OK;
}

attn_status attn_seq2seq_forward(attn_seq2seq *m, attn_seq2seq_stats *stats,
                                 const attn_batch *batch, const attn_seq2seq_pass *pass)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "model")) || (s = attn_check_not_null(stats, "stats")) ||
        (s = attn_check_not_null(pass, "pass")) || (s = check_batch(m, batch)))
        return s;
    if (!(pass->label_smoothing >= 0.0f && pass->label_smoothing <= 1.0f))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "label_smoothing %g is outside [0, 1]",
                          (double)pass->label_smoothing);
    if (pass->step < 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "pass step %lld < 0", (long long)pass->step);
    return m->ops->forward(m, stats, batch, pass);
}

attn_status attn_seq2seq_backward(attn_seq2seq *m)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "model"))) return s;
    return m->ops->backward(m);
}

static attn_status check_decode(const attn_seq2seq *m, const int32_t *out, const int32_t *out_len,
                                const int32_t *src, const int32_t *src_len, int B, int S,
                                const attn_decode_options *opt)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "model")) || (s = attn_check_not_null(out, "out")) ||
        (s = attn_check_not_null(out_len, "out_len")) || (s = attn_check_not_null(src, "src")) ||
        (s = attn_check_not_null(src_len, "src_len")) ||
        (s = attn_check_not_null(opt, "decode options")) ||
        (s = attn_check_at_least(B, 1, "decode B")) ||
        (s = attn_check_at_least(S, 1, "decode S")) ||
        (s = attn_check_at_least(opt->beam, 1, "beam")) ||
        (s = attn_check_at_least(opt->max_len, 1, "max_len")))
        return s;
    if (opt->max_len > m->cfg.max_tgt_len)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "max_len %d exceeds max_tgt_len %d",
                          opt->max_len, m->cfg.max_tgt_len);
    if ((int64_t)B * opt->beam * (S > opt->max_len ? S : opt->max_len) > INT_MAX / 8)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "B %d times beam %d is too large", B,
                          opt->beam);
    return check_lengths(src_len, B, min_int(S, m->cfg.max_src_len), "src_len");
}

/* Beam search, and greedy decoding kept when it scores higher (see seq2seq.h). */
static attn_status beam_or_greedy(attn_seq2seq *m, int32_t *out, int32_t *out_len, float *attention,
                                  const int32_t *src, const int32_t *src_len, int B, int S,
                                  const attn_decode_options *opt)
{
    const int T = opt->max_len;
    const size_t att = attention ? (size_t)B * T * S : 0;
    float *scores = malloc((size_t)B * 2 * sizeof *scores);
    int32_t *greedy = malloc((size_t)B * (T + 1) * sizeof *greedy);
    float *greedy_att = att ? malloc(att * sizeof *greedy_att) : NULL;
    attn_status s = ATTN_OK;
    if (scores == NULL || greedy == NULL || (att && greedy_att == NULL)) {
        s = attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory to decode %d sources", B);
        goto done;
    }
    int32_t *greedy_len = greedy + (size_t)B * T;
    if ((s = attn_seq2seq_beam_search(m, out, out_len, attention, scores, src, src_len, B, S,
                                      opt)) ||
        (s = attn_seq2seq_greedy(m, greedy, greedy_len, greedy_att, scores + B, src, src_len, B, S,
                                 opt)))
        goto done;
    for (int b = 0; b < B; b++) {
        if (!(scores[B + b] > scores[b])) continue;
        memcpy(out + (size_t)b * T, greedy + (size_t)b * T, (size_t)T * sizeof *out);
        out_len[b] = greedy_len[b];
        if (att)
            memcpy(attention + (size_t)b * T * S, greedy_att + (size_t)b * T * S,
                   (size_t)T * S * sizeof *attention);
    }
done:
    free(scores);
    free(greedy);
    free(greedy_att);
    return s;
}

attn_status attn_seq2seq_decode(attn_seq2seq *m, int32_t *out, int32_t *out_len, float *attention,
                                const int32_t *src, const int32_t *src_len, int B, int S,
                                const attn_decode_options *opt)
{
    attn_status s;
    if ((s = check_decode(m, out, out_len, src, src_len, B, S, opt))) return s;
    if (opt->beam == 1)
        return attn_seq2seq_greedy(m, out, out_len, attention, NULL, src, src_len, B, S, opt);
    return beam_or_greedy(m, out, out_len, attention, src, src_len, B, S, opt);
}
