/* Internal: what each architecture of attn_seq2seq implements. seq2seq.c checks
 * configs and arguments and dispatches; seq2seq_decode.c runs greedy and beam
 * search once for all architectures through encode / step / reorder. */
#ifndef ATTN_SRC_MODELS_SEQ2SEQ_IMPL_H
#define ATTN_SRC_MODELS_SEQ2SEQ_IMPL_H

#include "attn/seq2seq.h"

typedef struct attn_seq2seq_ops {
    /* The batch and pass are checked (ids are checked where they are used). */
    attn_status (*forward)(attn_seq2seq *m, attn_seq2seq_stats *stats, const attn_batch *batch,
                           const attn_seq2seq_pass *pass);
    attn_status (*backward)(attn_seq2seq *m);
    /* Decoding rows = B * beam: encodes src (B, S) once and starts every row of
     * source b (rows b * beam .. b * beam + beam - 1) from BOS. src_len is checked. */
    attn_status (*encode)(attn_seq2seq *m, const int32_t *src, const int32_t *src_len, int B, int S,
                          int beam);
    /* Feeds tokens: (rows), the tokens output at position - 1 (BOS at position 0)
     * -> logprobs: (rows, tgt_vocab) of the token at `position`,
     * attention: (rows, S) or NULL, what each row attended to. */
    attn_status (*step)(attn_seq2seq *m, float *logprobs, float *attention, const int32_t *tokens,
                        const attn_decode_options *opt, int position);
    /* Row r continues from row parent[r]'s state: (rows); parent[r] is a row of
     * the same source. */
    attn_status (*reorder)(attn_seq2seq *m, const int32_t *parent);
    /* A teacher-forced pass over a checked batch of one source (dropout off,
     * attention as in inference) with the attention of map `map` (the order
     * attn_seq2seq_decode_record adds them in) edited by edit, or none if NULL
     * (checked) -> probs: (T, tgt_vocab), the output distributions. */
    attn_status (*probe)(attn_seq2seq *m, float *probs, const attn_batch *batch, int map,
                         const attn_weights_edit *edit);
    /* The checked precision of the products from now on (attn_seq2seq_set_precision). */
    void (*set_precision)(attn_seq2seq *m, attn_precision precision);
    void (*destroy)(attn_seq2seq *m);
} attn_seq2seq_ops;

struct attn_seq2seq {
    attn_seq2seq_config cfg;
    const attn_seq2seq_ops *ops;
    attn_params params;
    attn_params buffers;
    attn_precision precision; /* of the products: ATTN_FLOAT32 unless set */
    void *impl; /* the architecture's own state */
};

/* Each architecture's constructor fills m->ops, m->params, m->buffers and m->impl. */
attn_status attn_seq2seq_rnn_init(attn_seq2seq *m, uint64_t seed);
attn_status attn_seq2seq_transformer_init(attn_seq2seq *m, uint64_t seed);
/* The number of parameters of the model of the checked config c, without creating
 * it (attn_seq2seq_param_count). */
attn_status attn_seq2seq_rnn_param_count(const attn_seq2seq_config *c, int64_t *count);
attn_status attn_seq2seq_transformer_param_count(const attn_seq2seq_config *c, int64_t *count);

/* After attn_seq2seq_greedy decoded one source (B = 1, beam 1), adds the
 * transformer's maps to record (attn_seq2seq_decode_record): the last step ran
 * the decoder over every output position, steps of them, and the layers keep
 * what they read, so each attention runs again asking for its weights.
 * targets: (steps) the tokens decoded (EOS last if it ended the output), which
 * the options' gradient explains; opt: checked. */
attn_status attn_s2s_transformer_record(attn_seq2seq *m, attn_record *record, int steps,
                                        const int32_t *targets, const attn_record_options *opt);

/* The same for the RNN decoders' map (index `map` of record, "decoder.attention"):
 * Luong's q and k and soft attention's gradient, from a teacher-forced pass over
 * src (src_len ids) and the decoded targets (steps); opt checked (no q and k for
 * Bahdanau, no gradient for hard attention). */
attn_status attn_s2s_rnn_record(attn_seq2seq *m, attn_record *record, int map, const int32_t *src,
                                int src_len, const int32_t *targets, int steps,
                                const attn_record_options *opt);

/* The teacher-forced batch of one source and its output: ints: (2 steps + 2),
 * room for tgt_in (BOS, then outputs 0 .. steps - 2), tgt_out (outputs) and the
 * two lengths; src and outputs are read, not copied (seq2seq_intervene.c). */
attn_batch attn_s2s_teacher_batch(int32_t *ints, const int32_t *src, int src_len,
                                  const int32_t *outputs, int steps);

/* The two searches behind attn_seq2seq_decode (seq2seq_decode.c), on checked
 * arguments: greedy, and beam search without the greedy fallback (so that with
 * beam 1 it must agree with greedy, which the tests hold it to).
 * scores: optional (B), the sum of each output's token log-probabilities. */
attn_status attn_seq2seq_greedy(attn_seq2seq *m, int32_t *out, int32_t *out_len, float *attention,
                                float *scores, const int32_t *src, const int32_t *src_len, int B,
                                int S, const attn_decode_options *opt);
attn_status attn_seq2seq_beam_search(attn_seq2seq *m, int32_t *out, int32_t *out_len,
                                     float *attention, float *scores, const int32_t *src,
                                     const int32_t *src_len, int B, int S,
                                     const attn_decode_options *opt);

#endif
