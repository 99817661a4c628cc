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
 *                   REINFORCE: reward = the target's log-likelihood per token,
 *                   a moving-average baseline and an entropy bonus (Xu et al.,
 *                   2015);
 *   hard-gumbel     straight-through Gumbel-softmax: the forward uses the one-hot
 *                   argmax of softmax((scores + g) / tau), the backward the soft
 *                   sample's gradient; tau anneals from tau_start to tau_end.
 * At inference hard attention takes the argmax position, or samples one.
 *
 * ---- the RNN models, exactly ----------------------------------------------------------
 * E = embed_dim, H = hidden_dim, L = dec_layers, V = tgt_vocab; the cells are
 * torch.nn.RNN (tanh) / GRU / LSTM. Parameters are the state_dict of this PyTorch
 * module (the conformance test transcribes it and loads the same state_dict):
 *   encoder.embed.weight (src_vocab, E)   nn.Embedding(padding_idx=PAD)
 *   encoder.rnn.*                         nn.GRU(E, H, enc_layers, bidirectional,
 *                                         batch_first, dropout) over packed lengths
 *   decoder.embed.weight (V, E)           nn.Embedding(padding_idx=PAD)
 *   decoder.init.weight (L*H, 2H), decoder.init.bias (L*H)
 *       the initial decoder state of every layer from the encoder's top layer:
 *       s0 = tanh(init([h_fwd at the last step; h_bwd at the first])), row
 *       block l for layer l; an LSTM decoder's cell starts at 0.
 *   decoder.rnn.*                         nn.GRU(in0, H, L, dropout), stepped one
 *                                         token at a time
 * Bahdanau (in0 = E + 2H; A = H attention units):
 *   decoder.attention.query.weight (A, H), decoder.attention.key.weight (A, 2H),
 *   decoder.attention.key.bias (A), decoder.attention.v (A):
 *     score_tj = v . tanh(query(s_{t-1}) + key(h_j)), s the top layer's state;
 *   the cell input is [embed(y_{t-1}); c_t];
 *   decoder.out.weight (V, 3H), decoder.out.bias (V): logits = out([s_t; c_t]).
 * Luong (in0 = E + H):
 *   general: decoder.attention.weight (H, 2H): score_tj = h_t . (W h_j), and the
 *     context is over the encoder states h_j (2H);
 *   dot: decoder.bridge.weight (H, 2H), decoder.bridge.bias (H): the encoder
 *     states are first brought to the decoder's width, m_j = bridge(h_j); then
 *     score_tj = h_t . m_j and the context is over the m_j (H);
 *   decoder.combine.weight (H, Dv + H) (no bias): h~_t = tanh(combine([c_t; h_t]));
 *   decoder.out.weight (V, H), decoder.out.bias (V): logits = out(h~_t);
 *   the cell input is [embed(y_{t-1}); h~_{t-1}] with h~_{-1} = 0.
 * Padded source positions are excluded from attention. Dropout (training only)
 * applies to both embeddings, between stacked layers of the encoder and the
 * decoder, and to the output layer's input; each draw is keyed by (seed, step).
 * Buffers: hard-reinforce keeps "decoder.baseline" (1), the moving average of the
 * reward; 0 means not yet set (the first batch's mean reward sets it).
 *
 * Hard attention in training (RNN models), per output step t of sequence b:
 *   pi = the softmax of the scores. hard-reinforce samples j_t ~ pi (Philox,
 *   keyed by (seed, step, b, t)) and uses the state at j_t as the context (the
 *   encoder's, or for luong-dot its bridged m_j).
 *   The objective is
 *     mean token CE - (1/B) sum_b (R_b - baseline) sum_t log pi(j_t)
 *                   - entropy_weight * (mean over counted steps of H(pi)),
 *   with R_b = minus the mean of sequence b's token losses (its log-likelihood
 *   of the target per token, label smoothing included; detached) and the sums
 *   over the steps with a target. (A mean rather than a sum keeps the surrogate's gradient on the
 *   scale of the cross-entropy's.) Backward then moves the baseline:
 *   baseline = decay * baseline + (1 - decay) mean R.
 *   hard-gumbel adds Gumbel noise g (keyed likewise) and uses the state at the
 *   argmax of y = softmax((scores + g) / tau); the gradient flows back as if the
 *   context were sum_j y_j h_j (straight-through). tau anneals
 *   exponentially: tau = tau_start (tau_end / tau_start)^min(1, step /
 *   gumbel_anneal_steps).
 */
#ifndef ATTN_SEQ2SEQ_H
#define ATTN_SEQ2SEQ_H

#include <stdbool.h>
#include <stdint.h>

#include "attn/capture.h"
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
 * an unknown name fails listing the known ones. A value that is no arch or kind
 * is named "unknown". */
ATTN_API const char *attn_seq2seq_arch_name(attn_seq2seq_arch arch);
ATTN_API attn_status attn_seq2seq_arch_parse(attn_seq2seq_arch *arch, const char *name);
ATTN_API const char *attn_attention_kind_name(attn_attention_kind kind);
ATTN_API attn_status attn_attention_kind_parse(attn_attention_kind *kind, const char *name);

/* At most this many encoder or decoder layers. */
#define ATTN_SEQ2SEQ_MAX_LAYERS 8

typedef struct attn_seq2seq_config {
    attn_seq2seq_arch arch;
    attn_attention_kind attention; /* the transformer takes soft only */
    int src_vocab, tgt_vocab;      /* ids, the special ones of attn/data.h included */
    int max_src_len, max_tgt_len;  /* tokens, BOS/EOS included */
    int embed_dim;                 /* token embeddings (RNN models) */
    int hidden_dim;                /* RNN hidden size; the transformer's d_model */
    int enc_layers, dec_layers;
    int heads, ff_dim; /* transformer */
    float dropout;     /* in [0, 1) */
    /* hard attention */
    float entropy_weight;                   /* REINFORCE entropy bonus, >= 0 */
    float baseline_decay;                   /* of the moving-average reward baseline, in [0, 1) */
    float gumbel_tau_start, gumbel_tau_end; /* > 0 */
    int64_t gumbel_anneal_steps;            /* >= 0; 0 means tau_end throughout */
} attn_seq2seq_config;

/* Sensible sizes for the built-in tasks, for arch and attention; the caller sets
 * the vocabulary sizes and lengths. */
ATTN_API attn_seq2seq_config attn_seq2seq_defaults(attn_seq2seq_arch arch,
                                                   attn_attention_kind attention);

typedef struct attn_seq2seq attn_seq2seq;

/* Fails on a bad config, naming the field and value. */
ATTN_API attn_status attn_seq2seq_create(attn_seq2seq **out, const attn_seq2seq_config *cfg,
                                         uint64_t seed);
ATTN_API void attn_seq2seq_free(attn_seq2seq *m);
/* The number of parameters (floats, buffers not included) a model of cfg has,
 * without creating it. Fails on a bad config as attn_seq2seq_create. */
ATTN_API attn_status attn_seq2seq_param_count(const attn_seq2seq_config *cfg, int64_t *count);
ATTN_API const attn_seq2seq_config *attn_seq2seq_get_config(const attn_seq2seq *m);
/* The trained parameters, named by state_dict keys (above), and the state that is
 * saved but not trained (the REINFORCE baseline; possibly empty, count 0), as
 * PyTorch's buffers. */
ATTN_API attn_params *attn_seq2seq_params(attn_seq2seq *m);
ATTN_API attn_params *attn_seq2seq_buffers(attn_seq2seq *m);

/* The precision of the model's matrix products: ATTN_FLOAT32 (the default) or
 * ATTN_BF16, mixed precision as attn_gpt_set_precision's: each product's operands
 * rounded to bf16, its sums float32 (attn_gemm). In bf16 these run so, forward
 * and backward: every Linear (the RNN models' initial-state, key and output
 * layers, the transformer's projections, feed-forward and generator), the RNN
 * cells' input and recurrent products (encoder and decoder), Bahdanau's query
 * and Luong's combine, and the transformer's attention through
 * attn_sdpa_bf16_forward / _backward (q, k, v and dout rounded; scores, softmax
 * and sums float32). The parameters, their gradients, the embeddings, the RNN
 * models' attention scores and weights (small per-source products), the gates,
 * LayerNorm, the softmax and the loss stay float32, so an optimizer and a
 * checkpoint see float32 state as ever. Decoding runs the same code, so its
 * products follow this setting too, except the transformer's attention over its
 * key-value cache (float32); a pass asked to record weights or to edit them
 * (recording, interventions) runs that attention in float32. Fails on a value
 * that is no attn_precision. */
ATTN_API attn_status attn_seq2seq_set_precision(attn_seq2seq *m, attn_precision precision);
ATTN_API attn_precision attn_seq2seq_get_precision(const attn_seq2seq *m);

/* One training or validation pass. Dropout, hard-attention samples and Gumbel
 * noise are drawn from (seed, step), so a step repeats exactly. */
typedef struct attn_seq2seq_pass {
    bool training;
    int64_t step;
    uint64_t seed;
    float label_smoothing; /* of the cross-entropy, in [0, 1]; 0 is plain */
} attn_seq2seq_pass;

typedef struct attn_seq2seq_stats {
    float loss;      /* mean cross-entropy per target token (PAD excluded) */
    int64_t tokens;  /* target tokens counted */
    int64_t correct; /* of which the teacher-forced argmax is right */
} attn_seq2seq_stats;

/* Teacher-forced forward over a batch (attn/data.h): src_len in
 * [1, min(src_cap, max_src_len)], tgt_len in [1, min(tgt_cap, max_tgt_len)],
 * every id inside its vocabulary; a bad one fails naming it. */
ATTN_API attn_status attn_seq2seq_forward(attn_seq2seq *m, attn_seq2seq_stats *stats,
                                          const attn_batch *batch, const attn_seq2seq_pass *pass);
/* The gradient of the last training forward's objective (the mean cross-entropy,
 * plus the REINFORCE surrogate for hard-reinforce) into attn_seq2seq_params(m)->grad
 * (+=); updates the buffers (the baseline). The batch must be unchanged since the
 * forward. Fails if there was no training forward since the last backward or
 * decode. */
ATTN_API attn_status attn_seq2seq_backward(attn_seq2seq *m);

/* Decoding. beam 1 is greedy. For hard attention, sample_hard draws the position
 * from the weights (with seed) instead of taking the argmax.
 * Beam search keeps `beam` hypotheses per source, scored by the sum of their
 * tokens' log-probabilities (not normalised by length); a hypothesis ends when
 * EOS is among the beam's best candidates of a step, and a source is done when
 * its best ended hypothesis scores at least its best open one. It returns the
 * best-scoring ended hypothesis (or open one, at max_len), or the greedy output
 * if that scores higher: plain beam search can prune the greedy path, so
 * without this a wider beam could do worse. PAD and BOS are never produced. */
typedef struct attn_decode_options {
    int beam;
    bool sample_hard;
    uint64_t seed;
    int max_len; /* output tokens at most, EOS included; in [1, max_tgt_len] */
} attn_decode_options;

/* src: (B, S) ids padded with PAD, src_len: (B) each in [1, min(S, max_src_len)]
 * -> out: (B, max_len) ids, EOS-terminated unless max_len was reached, PAD after;
 *    out_len: (B) tokens before EOS;
 *    attention: optional (B, max_len, S), the weights each output step gave the
 *    source (the chosen position as one-hot for hard attention; the transformer's
 *    last decoder layer, averaged over heads), 0 past the end.
 * Decoding replaces what the last forward kept: backward needs a new forward. */
ATTN_API attn_status attn_seq2seq_decode(attn_seq2seq *m, int32_t *out, int32_t *out_len,
                                         float *attention, const int32_t *src,
                                         const int32_t *src_len, int B, int S,
                                         const attn_decode_options *opt);

/* Decodes one source (src: (S) ids, src_len in [1, min(S, max_src_len)]) as
 * attn_seq2seq_decode does with B = 1, and adds to `record` every attention map
 * the model used (attn/capture.h): the RNN decoders' "decoder.attention" (1 head,
 * hard for hard attention), or the transformer's encoder self-attention, decoder
 * self-attention and cross-attention of every layer, every head. Rows are the
 * output steps (EOS included), columns the source (or output) positions. The
 * caller sets the record's tokens. out and out_len are bit for bit what
 * attn_seq2seq_decode gives; opt->beam must be 1 (greedy).
 * options (NULL records the weights alone) may ask for every map's q and k
 * (after their projections; not for Bahdanau's additive scores) and its
 * gradient d log p / d weights (soft attention only; attn/capture.h): log p the log-probability of output step
 * options->gradient_step (the token the decoder chose there, EOS for the step
 * that ended it) given the source and the steps before, or with
 * ATTN_EXPLAIN_ALL the decoded output's (the sum over its steps, EOS included):
 * the output the model produced, as Chefer et al. (2021) explain a prediction.
 * They come from a teacher-forced pass over the decoded output with dropout off
 * and leave out and the parameters' gradients as they were. What a model does
 * not have fails with ATTN_ERR_UNSUPPORTED. */
ATTN_API attn_status attn_seq2seq_decode_record(attn_seq2seq *m, int32_t *out, int32_t *out_len,
                                                const int32_t *src, int S, int src_len,
                                                const attn_decode_options *opt,
                                                attn_record *record,
                                                const attn_record_options *options);

/* The output distributions of a teacher-forced pass (dropout off, attention as
 * in inference) over src: (src_len) ids and the output tokens: (steps), EOS
 * included as a record's queries hold them, under the intervention iv
 * (attn/capture.h; NULL or ATTN_INTERVENE_NONE: none) -> probs: (steps,
 * tgt_vocab), row t the distribution of output step t given the source and
 * outputs 0 .. t - 1. iv->map counts the maps as attn_seq2seq_decode_record adds
 * them ("decoder.attention" of an RNN decoder, soft attention only; the
 * transformer's encoder layers, then each decoder layer's self- and
 * cross-attention). ATTN_INTERVENE_ERASE deletes source character iv->token
 * (src_len must be at least 2). The pass replaces what the last forward kept. */
ATTN_API attn_status attn_seq2seq_intervene(attn_seq2seq *m, float *probs, const int32_t *src,
                                            int src_len, const int32_t *outputs, int steps,
                                            const attn_intervention *iv);

#ifdef __cplusplus
}
#endif
#endif
