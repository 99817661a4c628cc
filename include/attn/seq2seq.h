/* attn/seq2seq.h: encoder-decoder models with attention, trained with teacher
 * forcing and decoded greedily or by beam search.
 *
 * Architectures:
 *   rnn-bahdanau, gru-bahdanau, lstm-bahdanau
 *       a bidirectional encoder; the decoder's previous state attends over the
 *       encoder states with additive scores, and the context is fed into the cell
 *       with the previous token's embedding (Bahdanau et al., 2015).
 *   lstm-luong-dot, lstm-luong-general
 *       the current decoder state attends with dot or bilinear scores; context and
 *       state combine as tanh(W_c [c; h]), which predicts the token and is fed to
 *       the next step (input feeding, Luong et al., 2015).
 *   transformer
 *       torch.nn.Transformer with token embeddings scaled by sqrt(d_model),
 *       sinusoidal positions and a linear generator.
 * Attention of the RNN decoders:
 *   soft            the softmax weights, as above;
 *   hard-reinforce  one encoder position sampled per output step; trained with
 *                   REINFORCE: reward = the log-likelihood of the target, a
 *                   moving-average baseline and an entropy bonus (Xu et al., 2015);
 *   hard-gumbel     straight-through Gumbel-softmax: the forward uses the one-hot
 *                   argmax of softmax((scores + g) / tau), the backward the soft
 *                   sample's gradient; tau anneals from tau_start to tau_end.
 * At inference hard attention takes the argmax position, or samples one. */
#ifndef ATTN_SEQ2SEQ_H
#define ATTN_SEQ2SEQ_H

#include <stdbool.h>
#include <stdint.h>

#include "attn/core.h"
#include "attn/data.h"
#include "attn/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_seq2seq_arch {
    ATTN_S2S_RNN_BAHDANAU,
    ATTN_S2S_GRU_BAHDANAU,
    ATTN_S2S_LSTM_BAHDANAU,
    ATTN_S2S_LSTM_LUONG_DOT,
    ATTN_S2S_LSTM_LUONG_GENERAL,
    ATTN_S2S_TRANSFORMER,
} attn_seq2seq_arch;

typedef enum attn_attention_kind {
    ATTN_ATTEND_SOFT,
    ATTN_ATTEND_HARD_REINFORCE,
    ATTN_ATTEND_HARD_GUMBEL,
} attn_attention_kind;

/* Names as the command line spells them ("gru-bahdanau", "hard-gumbel"); parsing
 * an unknown name fails listing the known ones. */
const char *attn_seq2seq_arch_name(attn_seq2seq_arch arch);
attn_status attn_seq2seq_arch_parse(attn_seq2seq_arch *arch, const char *name);
const char *attn_attention_kind_name(attn_attention_kind kind);
attn_status attn_attention_kind_parse(attn_attention_kind *kind, const char *name);

typedef struct attn_seq2seq_config {
    attn_seq2seq_arch arch;
    attn_attention_kind attention; /* the transformer takes soft only */
    int src_vocab, tgt_vocab;      /* ids, the special ones of attn/data.h included */
    int max_src_len, max_tgt_len;  /* tokens, BOS/EOS included */
    int embed_dim;                 /* token embeddings (RNN models) */
    int hidden_dim;                /* RNN hidden size; the transformer's d_model */
    int enc_layers, dec_layers;
    int heads, ff_dim;             /* transformer */
    float dropout;
    /* hard attention */
    float entropy_weight;  /* REINFORCE entropy bonus */
    float baseline_decay;  /* of the moving-average reward baseline */
    float gumbel_tau_start, gumbel_tau_end;
    int64_t gumbel_anneal_steps;
} attn_seq2seq_config;

/* Sensible sizes for the built-in tasks, for arch and attention; the caller sets
 * the vocabulary sizes and lengths. */
attn_seq2seq_config attn_seq2seq_defaults(attn_seq2seq_arch arch, attn_attention_kind attention);

typedef struct attn_seq2seq attn_seq2seq;

/* Fails on a bad config, naming the field and value. */
attn_status attn_seq2seq_create(attn_seq2seq **out, const attn_seq2seq_config *cfg,
                                uint64_t seed);
void attn_seq2seq_free(attn_seq2seq *m);
const attn_seq2seq_config *attn_seq2seq_get_config(const attn_seq2seq *m);
/* The trained parameters, named by state_dict keys (e.g. "encoder.weight_ih_l0",
 * "decoder.attention.v"), and the state that is saved but not trained (the
 * REINFORCE baseline; possibly empty), as PyTorch's buffers. */
attn_params *attn_seq2seq_params(attn_seq2seq *m);
attn_params *attn_seq2seq_buffers(attn_seq2seq *m);

/* One training or validation pass. Dropout, hard-attention samples and Gumbel
 * noise are drawn from (seed, step), so a step repeats exactly. */
typedef struct attn_seq2seq_pass {
    bool training;
    int64_t step;
    uint64_t seed;
} attn_seq2seq_pass;

typedef struct attn_seq2seq_stats {
    float loss;      /* mean cross-entropy per target token (PAD excluded) */
    int64_t tokens;  /* target tokens counted */
    int64_t correct; /* of which the teacher-forced argmax is right */
} attn_seq2seq_stats;

/* Teacher-forced forward over a batch (attn/data.h). */
attn_status attn_seq2seq_forward(attn_seq2seq *m, attn_seq2seq_stats *stats,
                                 const attn_batch *batch, const attn_seq2seq_pass *pass);
/* The gradient of the last training forward's objective (the mean cross-entropy,
 * plus the REINFORCE surrogate for hard-reinforce) into attn_seq2seq_params(m)->grad
 * (+=); updates the buffers (the baseline). */
attn_status attn_seq2seq_backward(attn_seq2seq *m);

/* Decoding. beam 1 is greedy. For hard attention, sample_hard draws the position
 * from the weights (with seed) instead of taking the argmax. */
typedef struct attn_decode_options {
    int beam;
    bool sample_hard;
    uint64_t seed;
    int max_len; /* output tokens at most, EOS included; at most max_tgt_len */
} attn_decode_options;

/* src: (B, S) ids padded with PAD, src_len: (B)
 * -> out: (B, max_len) ids, EOS-terminated unless max_len was reached, PAD after;
 *    out_len: (B) tokens before EOS;
 *    attention: optional (B, max_len, S), the weights each output step gave the
 *    source (the chosen position as one-hot for hard attention; the transformer's
 *    last decoder layer, averaged over heads), 0 past the end. */
attn_status attn_seq2seq_decode(attn_seq2seq *m, int32_t *out, int32_t *out_len,
                                float *attention, const int32_t *src, const int32_t *src_len,
                                int B, int S, const attn_decode_options *opt);

#ifdef __cplusplus
}
#endif
#endif
