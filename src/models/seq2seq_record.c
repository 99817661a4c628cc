/* Recording what an encoder-decoder attended to while it decoded one source
 * (attn_seq2seq_decode_record): the decode itself is attn_seq2seq_decode's,
 * untouched, and the maps come from what it reports or what its layers kept. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/record_internal.h"
#include "models/seq2seq_impl.h"

/* The RNN decoders' "decoder.attention" (1, steps, src_len) from the weights
 * decoding reported, attention: (max_len, S). */
static attn_status add_rnn_map(const attn_seq2seq *m, attn_record *record, const float *attention,
                               int S, int steps, int src_len)
{
    float *w;
    attn_status s = attn_record_add_map(record, "decoder.attention", 0, ATTN_MAP_CROSS,
                                        m->cfg.attention != ATTN_ATTEND_SOFT, 1, steps, src_len,
                                        &w);
    if (s) return s;
    for (int t = 0; t < steps; t++)
        memcpy(w + (size_t)t * src_len, attention + (size_t)t * S, (size_t)src_len * sizeof *w);
    return ATTN_OK;
}

/* What the options ask of this model: Bahdanau's additive score has no q and k,
 * hard attention's one-hot rows no gradient; the step must be an output step. */
static attn_status check_options(const attn_seq2seq *m, const attn_record_options *r, int max_len)
{
    const char *arch = attn_seq2seq_arch_name(m->cfg.arch);
    if (r->qk && strstr(arch, "bahdanau") != NULL)
        return attn_error(ATTN_ERR_UNSUPPORTED,
                          "%s scores v . tanh(W q + U k), not a dot product of a q and a k: it "
                          "records no q and k",
                          arch);
    if (r->gradient && m->cfg.attention != ATTN_ATTEND_SOFT)
        return attn_error(ATTN_ERR_UNSUPPORTED,
                          "hard attention picks one position per step (an argmax at inference), "
                          "which the output has no gradient through: no gradient to record");
    if (r->gradient && r->gradient_step != ATTN_EXPLAIN_ALL &&
        (r->gradient_step < 0 || r->gradient_step >= max_len))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "gradient step %d is not an output step 0 .. %d (or %d for all)",
                          r->gradient_step, max_len - 1, ATTN_EXPLAIN_ALL);
    return ATTN_OK;
}

/* targets: (steps) the decoded tokens, then EOS when it ended the output. */
static void decoded_targets(int32_t *targets, const int32_t *out, int32_t out_len, int steps)
{
    for (int t = 0; t < steps; t++) targets[t] = t < out_len ? out[t] : ATTN_TOKEN_EOS;
}

attn_status attn_seq2seq_decode_record(attn_seq2seq *m, int32_t *out, int32_t *out_len,
                                       const int32_t *src, int S, int src_len,
                                       const attn_decode_options *opt, attn_record *record,
                                       const attn_record_options *options)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "model")) || (s = attn_check_not_null(opt, "decode options")) ||
        (s = attn_check_not_null(record, "record")) || (s = attn_check_at_least(S, 1, "decode S")) ||
        (s = attn_check_at_least(opt->max_len, 1, "max_len")))
        return s;
    const attn_record_options extras = options ? *options : (attn_record_options){0};
    if ((s = check_options(m, &extras, opt->max_len))) return s;
    if (opt->beam != 1)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "recording attention decodes greedily; beam %d must be 1", opt->beam);
    const bool rnn = m->cfg.arch != ATTN_S2S_TRANSFORMER;
    float *attention = rnn ? malloc((size_t)opt->max_len * S * sizeof *attention) : NULL;
    if (rnn && attention == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d x %d weights", opt->max_len,
                          S);
    const int32_t length = src_len;
    const int before = record->n_maps;
    if ((s = attn_seq2seq_decode(m, out, out_len, attention, src, &length, 1, S, opt)) == ATTN_OK) {
        /* EOS is a step too, unless max_len ended the output first */
        const int steps = *out_len < opt->max_len ? *out_len + 1 : opt->max_len;
        int32_t *targets = malloc((size_t)steps * sizeof *targets);
        const bool extra = extras.qk || extras.gradient;
        if (extras.gradient && extras.gradient_step >= steps)
            s = attn_error(ATTN_ERR_INVALID_ARGUMENT,
                           "gradient step %d is past the output's %d steps (EOS included)",
                           extras.gradient_step, steps);
        else if (targets == NULL)
            s = attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d tokens", steps);
        else
            decoded_targets(targets, out, *out_len, steps);
        if (s == ATTN_OK && rnn) {
            s = add_rnn_map(m, record, attention, S, steps, src_len);
            if (s == ATTN_OK && extra)
                s = attn_s2s_rnn_record(m, record, record->n_maps - 1, src, src_len, targets,
                                        steps, &extras);
        } else if (s == ATTN_OK) {
            s = attn_s2s_transformer_record(m, record, steps, targets, &extras);
        }
        free(targets);
    }
    if (s) attn_record_drop_maps(record, before);
    free(attention);
    return s;
}
