/* What the RNN decoders record beside their weights (attn_seq2seq_decode_record):
 * Luong's q and k, and d log p / d weights of soft attention. A teacher-forced
 * pass over the decoded output (dropout off, attention as in inference) keeps
 * what the backward needs; the backward then walks the decoder's steps from
 * d log p / d logits, and soft attention's backward adds dctx values^T at each
 * step (seq2seq_rnn_attend.c). The encoder's backward is not needed and not run;
 * the parameters' gradients the steps add to are put back. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/record_internal.h"
#include "models/explain.h"
#include "models/seq2seq_rnn.h"

/* Luong's score is h_t . key_j, unscaled: q the top layer's new state at each
 * step, k the keys (W_a h_j for "general", the bridged states for "dot"). */
static attn_status record_qk(s2s_rnn *r, attn_record *record, int map)
{
    const s2s_run *run = &r->run;
    const int H = r->d.H, src_len = run->src_len[0];
    float *q, *k;
    attn_status s = attn_record_add_qk(record, map, r->d.Ka, &q, &k);
    if (s) return s;
    for (int t = 0; t < run->T; t++)
        memcpy(q + (size_t)t * H, attn_s2s_state(run, run->hs, r->d.L - 1, t + 1, H),
               (size_t)H * sizeof *q);
    memcpy(k, run->keys, (size_t)src_len * r->d.Ka * sizeof *k);
    return ATTN_OK;
}

attn_status attn_s2s_rnn_record(attn_seq2seq *m, attn_record *record, int map, const int32_t *src,
                                int src_len, const int32_t *targets, int steps,
                                const attn_record_options *opt)
{
    s2s_rnn *r = attn_s2s_rnn(m);
    int32_t *ints = malloc((2 * (size_t)steps + 2) * sizeof *ints);
    if (ints == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d steps", steps);
    const attn_batch batch = attn_s2s_teacher_batch(ints, src, src_len, targets, steps);
    const int32_t *tgt_out = batch.tgt_out;
    attn_status s = attn_s2s_rnn_forward_kept(m, &batch);
    if (s == ATTN_OK && opt->qk) s = record_qk(r, record, map);
    float *saved = s == ATTN_OK && opt->gradient ? attn_grads_save(&m->params) : NULL;
    float *gradient;
    if (saved != NULL && (s = attn_record_add_gradient(record, map, &gradient)) == ATTN_OK) {
        attn_explained_logits(r->run.dlogits, r->run.probs, tgt_out, steps, r->d.V,
                              opt->gradient_step);
        /* (T, R, S) with R = 1 and S = src_len is the map's (1, steps, src_len) */
        s = attn_s2s_rnn_weights_backward(m, gradient);
        record->gradient_step = opt->gradient_step;
    }
    if (saved != NULL) attn_grads_restore(&m->params, saved);
    else if (s == ATTN_OK && opt->gradient) s = ATTN_ERR_OUT_OF_MEMORY;
    free(ints);
    return s;
}

attn_status attn_s2s_rnn_probe(attn_seq2seq *m, float *probs, const attn_batch *batch, int map,
                               const attn_weights_edit *edit)
{
    (void)map; /* the decoder's one attention */
    s2s_rnn *r = attn_s2s_rnn(m);
    const attn_seq2seq_pass pass = {.training = false};
    attn_seq2seq_stats stats;
    r->run.edit = edit;
    attn_status s = attn_s2s_rnn_forward(m, &stats, batch, &pass);
    r->run.edit = NULL;
    if (s == ATTN_OK)
        memcpy(probs, r->run.probs, (size_t)r->run.T * r->d.V * sizeof *probs);
    return s;
}
