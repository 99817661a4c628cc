/* Internal: what the models' recordings of gradients share (explain.c): the
 * gradient of the explained tokens' log-probability with respect to the logits,
 * and the parameters' gradients kept aside while a backward only records. */
#ifndef ATTN_SRC_MODELS_EXPLAIN_H
#define ATTN_SRC_MODELS_EXPLAIN_H

#include <stdint.h>

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

#endif
