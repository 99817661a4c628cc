/* Internal: what the models' recordings of gradients share (explain.c): the
 * gradient of the explained tokens' log-probability with respect to the logits,
 * and the parameters' gradients kept aside while a backward only records; and
 * what their interventions share (attn_seq2seq_intervene, attn_gpt_intervene):
 * the check, the weights edit a site is given, and the erasure of a token. */
#ifndef ATTN_SRC_MODELS_EXPLAIN_H
#define ATTN_SRC_MODELS_EXPLAIN_H

#include <stdint.h>

#include "attn/attention.h"
#include "attn/capture.h"
#include "attn/nn.h"

/* dlogits: (rows, V) = d log p / d logits, log p the log-probability of
 * targets[row] under softmax(logits[row]) with probs: (rows, V) that softmax:
 * onehot(targets[row]) - probs[row] on row `row` (every row for
 * ATTN_EXPLAIN_ALL, the sum of their log p), 0 on the others. */
void attn_explained_logits(float *dlogits, const float *probs, const int32_t *targets, int rows,
                           int V, int row);

/* The parameters' gradients (p->total floats), copied to be put back by
 * attn_grads_restore; NULL with a message on no memory. */
float *attn_grads_save(const attn_params *p);
/* Puts saved back into p's gradients and frees it. */
void attn_grads_restore(attn_params *p, float *saved);

/* Checks iv (NULL is none) against a model whose record has n_maps maps, of
 * heads[i] heads each, editable[i] false for a hard map, over n_inputs input
 * tokens, at least min_left of which must stay after an erasure. */
attn_status attn_intervention_check(const attn_intervention *iv, int n_maps, const int *heads,
                                    const bool *editable, int n_inputs, int min_left);
/* Whether a checked iv edits a site's weights. */
bool attn_intervention_edits(const attn_intervention *iv);
/* The weights edit of a checked PERMUTE or UNIFORM iv (first_row 0). */
attn_weights_edit attn_intervention_edit(const attn_intervention *iv);
/* ids: (n) -> kept: (n - 1), ids without ids[token]. */
void attn_erase_token(int32_t *kept, const int32_t *ids, int n, int token);

#endif
