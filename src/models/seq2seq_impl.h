/* Internal: what each architecture of attn_seq2seq implements. seq2seq.c checks
 * configs and dispatches; seq2seq_decode.c runs greedy and beam search once for
 * all architectures through encode / step / reorder. */
#ifndef ATTN_SRC_MODELS_SEQ2SEQ_IMPL_H
#define ATTN_SRC_MODELS_SEQ2SEQ_IMPL_H

#include "attn/seq2seq.h"

typedef struct attn_seq2seq_ops {
    attn_status (*forward)(attn_seq2seq *m, attn_seq2seq_stats *stats, const attn_batch *batch,
                           const attn_seq2seq_pass *pass);
    attn_status (*backward)(attn_seq2seq *m);
    /* Decoding rows = B * beam: encodes src (B, S) once and starts every row of
     * source b (rows b * beam .. b * beam + beam - 1) from BOS. */
    attn_status (*encode)(attn_seq2seq *m, const int32_t *src, const int32_t *src_len, int B,
                          int S, int beam);
    /* Feeds tokens: (rows) -> logprobs: (rows, tgt_vocab) of the next token,
     * attention: (rows, S) or NULL, what each row attended to. */
    attn_status (*step)(attn_seq2seq *m, float *logprobs, float *attention,
                        const int32_t *tokens, const attn_decode_options *opt, int position);
    /* Row r continues from row parent[r]'s state: (rows). */
    attn_status (*reorder)(attn_seq2seq *m, const int32_t *parent);
    void (*destroy)(attn_seq2seq *m);
} attn_seq2seq_ops;

struct attn_seq2seq {
    attn_seq2seq_config cfg;
    const attn_seq2seq_ops *ops;
    attn_params params;
    attn_params buffers;
    void *impl; /* the architecture's own state */
};

/* Each architecture's constructor fills m->ops, m->params, m->buffers and m->impl. */
attn_status attn_seq2seq_rnn_init(attn_seq2seq *m, uint64_t seed);
attn_status attn_seq2seq_transformer_init(attn_seq2seq *m, uint64_t seed);

#endif
