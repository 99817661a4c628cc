/* An encoder-decoder's outputs under an intervention (attn_seq2seq_intervene):
 * the checks, the erasure of a source character, and the teacher-forced batch
 * each architecture's probe runs (seq2seq_impl.h), with the site's weights
 * edited there (the RNN decoders' soft attention, seq2seq_rnn_attend.c; the
 * transformer's attn_mha, nn/mha.c). */
#include <stdlib.h>

#include "core/error.h"
#include "models/explain.h"
#include "models/seq2seq_impl.h"

attn_batch attn_s2s_teacher_batch(int32_t *ints, const int32_t *src, int src_len,
                                  const int32_t *outputs, int steps)
{
    int32_t *tgt_in = ints, *tgt_out = ints + steps, *lengths = ints + 2 * steps;
    tgt_in[0] = ATTN_TOKEN_BOS;
    for (int t = 0; t < steps; t++) {
        tgt_out[t] = outputs[t];
        if (t + 1 < steps) tgt_in[t + 1] = outputs[t];
    }
    lengths[0] = src_len;
    lengths[1] = steps;
    return (attn_batch){.batch = 1, .capacity = 1, .src_cap = src_len, .tgt_cap = steps,
                        .src = (int32_t *)src, .src_len = &lengths[0], .tgt_in = tgt_in,
                        .tgt_out = tgt_out, .tgt_len = &lengths[1]};
}

static attn_status check_ids(const int32_t *ids, int n, int vocab, const char *what)
{
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s id %d at %d is outside [0, %d)", what,
                              (int)ids[i], i, vocab);
    return ATTN_OK;
}

/* The maps attn_seq2seq_decode_record adds, their heads and whether they are
 * soft; returns their count. heads, soft: (ATTN_RECORD_MAPS_MAX). */
static int record_maps(const attn_seq2seq_config *c, int *heads, bool *soft)
{
    if (c->arch != ATTN_S2S_TRANSFORMER) {
        heads[0] = 1;
        soft[0] = c->attention == ATTN_ATTEND_SOFT;
        return 1;
    }
    const int n = c->enc_layers + 2 * c->dec_layers;
    for (int i = 0; i < n; i++) {
        heads[i] = c->heads;
        soft[i] = true;
    }
    return n;
}

attn_status attn_seq2seq_intervene(attn_seq2seq *m, float *probs, const int32_t *src, int src_len,
                                   const int32_t *outputs, int steps, const attn_intervention *iv)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "model")) || (s = attn_check_not_null(probs, "probs")) ||
        (s = attn_check_not_null(src, "src")) || (s = attn_check_not_null(outputs, "outputs")) ||
        (s = attn_check_at_least(src_len, 1, "source tokens")) ||
        (s = attn_check_at_least(steps, 1, "output steps")))
        return s;
    const attn_seq2seq_config *c = &m->cfg;
    if (src_len > c->max_src_len || steps > c->max_tgt_len)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "%d source tokens and %d output steps exceed the model's %d and %d",
                          src_len, steps, c->max_src_len, c->max_tgt_len);
    if ((s = check_ids(src, src_len, c->src_vocab, "source")) ||
        (s = check_ids(outputs, steps, c->tgt_vocab, "output")))
        return s;
    int heads[ATTN_RECORD_MAPS_MAX];
    bool soft[ATTN_RECORD_MAPS_MAX];
    const int n_maps = record_maps(c, heads, soft);
    if ((s = attn_intervention_check(iv, n_maps, heads, soft, src_len, 1))) return s;
    const bool erase = iv != NULL && iv->kind == ATTN_INTERVENE_ERASE;
    const int len = erase ? src_len - 1 : src_len;
    int32_t *ints = malloc((2 * (size_t)steps + 2 + (size_t)len) * sizeof *ints);
    if (ints == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d steps", steps);
    int32_t *kept = ints + 2 * steps + 2;
    if (erase) attn_erase_token(kept, src, src_len, iv->token);
    const attn_batch batch = attn_s2s_teacher_batch(ints, erase ? kept : src, len, outputs, steps);
    const attn_weights_edit edit = attn_intervention_edits(iv) ? attn_intervention_edit(iv)
                                                               : (attn_weights_edit){0};
    s = m->ops->probe(m, probs, &batch, attn_intervention_edits(iv) ? iv->map : 0,
                      attn_intervention_edits(iv) ? &edit : NULL);
    free(ints);
    return s;
}
