/* Recording what the language model attended to (attn_gpt_record): the context
 * runs through the cached inference path on a fresh cache, which asks the
 * reference attention for every head's weights beside the fused kernel's output
 * (so the logits are those of a run without a record, bit for bit).
 *
 * q, k and the gradients come from a second, separate pass: the training forward
 * over the same tokens (dropout off) keeps every block's q and k after RoPE, and
 * its backward, started from d log p / d logits of the explained tokens instead
 * of the loss's, leaves d log p / d weights of every block (gpt_backward.c). The
 * parameters' gradients that backward adds to are put back as they were. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/record_internal.h"
#include "models/explain.h"
#include "models/gpt_impl.h"

static attn_status check_options(const attn_record_options *opt, int n)
{
    if (!opt->gradient) return ATTN_OK;
    if (n < 2)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "a gradient explains a token from those before it; a context of %d "
                          "token has none",
                          n);
    if (opt->gradient_step != ATTN_EXPLAIN_ALL &&
        (opt->gradient_step < 1 || opt->gradient_step >= n))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "gradient step %d is not a token of the context that has tokens "
                          "before it, 1 .. %d (or %d for all)",
                          opt->gradient_step, n - 1, ATTN_EXPLAIN_ALL);
    return ATTN_OK;
}

/* The options' extras for the maps first .. first + n_layer - 1 of record. */
static attn_status record_extras(attn_gpt *m, const int32_t *ids, int n, attn_record *record,
                                 int first, const attn_record_options *opt)
{
    const int L = m->cfg.n_layer, H = m->cfg.n_head, hd = m->head_dim;
    float *gradient[ATTN_GPT_MAX_LAYERS];
    attn_status s = ATTN_OK;
    for (int l = 0; l < L && opt->gradient && s == ATTN_OK; l++)
        s = attn_record_add_gradient(record, first + l, &gradient[l]);
    /* the targets only make the forward keep probs: row t predicts ids[t + 1] */
    int32_t *targets = malloc((size_t)n * sizeof *targets);
    if (s == ATTN_OK && targets == NULL)
        s = attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d targets", n);
    if (s == ATTN_OK) {
        for (int t = 0; t < n; t++) targets[t] = ids[t + 1 < n ? t + 1 : t];
        const attn_gpt_pass pass = {.training = false};
        float loss;
        s = attn_gpt_forward(m, &loss, ids, targets, 1, n, &pass);
    }
    for (int l = 0; l < L && opt->qk && s == ATTN_OK; l++) {
        float *q, *k;
        const size_t count = (size_t)H * n * hd;
        if ((s = attn_record_add_qk(record, first + l, hd, &q, &k)) == ATTN_OK) {
            memcpy(q, m->acts[l].q, count * sizeof *q);
            memcpy(k, m->acts[l].k, count * sizeof *k);
        }
    }
    float *saved = s == ATTN_OK && opt->gradient ? attn_grads_save(&m->params) : NULL;
    if (saved != NULL) {
        /* token t is row t - 1's target; the last row predicts past the context */
        attn_explained_logits(m->dlogits, m->probs, targets, n - 1, m->cfg.vocab_size,
                              opt->gradient_step == ATTN_EXPLAIN_ALL ? ATTN_EXPLAIN_ALL
                                                                     : opt->gradient_step - 1);
        memset(m->dlogits + (size_t)(n - 1) * m->cfg.vocab_size, 0,
               (size_t)m->cfg.vocab_size * sizeof *m->dlogits);
        m->weights_grad = gradient;
        s = attn_gpt_backward_logits(m);
        m->weights_grad = NULL;
        attn_grads_restore(&m->params, saved);
        record->gradient_step = opt->gradient_step;
    } else if (s == ATTN_OK && opt->gradient) {
        s = ATTN_ERR_OUT_OF_MEMORY;
    }
    free(targets);
    return s;
}

attn_status attn_gpt_record(attn_gpt *m, const int32_t *ids, int n, float *logits,
                            attn_record *record, const attn_record_options *options)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "gpt")) || (s = attn_check_not_null(ids, "ids")) ||
        (s = attn_check_not_null(record, "record")) ||
        (s = attn_check_at_least(n, 1, "context tokens")))
        return s;
    if (n > m->cfg.block_size)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "context of %d tokens exceeds the block size %d",
                          n, m->cfg.block_size);
    const attn_record_options opt = options ? *options : (attn_record_options){0};
    if ((s = check_options(&opt, n))) return s;
    const int before = record->n_maps, H = m->cfg.n_head;
    float *weights[ATTN_GPT_MAX_LAYERS];
    for (int l = 0; l < m->cfg.n_layer && s == ATTN_OK; l++)
        s = attn_record_add_map(record, "transformer.h.*.attn", l, ATTN_MAP_SELF, false, H, n, n,
                                &weights[l]);
    attn_gpt_cache *cache = NULL;
    if (s == ATTN_OK && (s = attn_gpt_cache_create(&cache, m, n)) == ATTN_OK)
        s = attn_gpt_cache_forward_weights(m, cache, logits, ids, n, weights);
    attn_gpt_cache_free(cache);
    if (s == ATTN_OK && (opt.qk || opt.gradient))
        s = record_extras(m, ids, n, record, before, &opt);
    if (s) attn_record_drop_maps(record, before);
    return s;
}
