/* Internal: the activations a module keeps between forward and backward, as named
 * views into one block that grows when a bigger shape arrives. */
#ifndef ATTN_SRC_NN_ACTIVATIONS_H
#define ATTN_SRC_NN_ACTIVATIONS_H

#include <stddef.h>
#include <stdint.h>

#include "attn/core.h"

typedef struct attn_activations {
    float *block;
    size_t capacity; /* floats */
} attn_activations;

typedef struct attn_activation_view {
    float **view;
    size_t count; /* floats */
} attn_activation_view;

/* Points every view into the block, each 64-byte aligned, reallocating the block
 * (its contents are not kept) only if it is too small. On failure the block is
 * unchanged and the views are untouched. */
attn_status attn_activations_layout(attn_activations *acts, const attn_activation_view *views,
                                    int count);
void attn_activations_free(attn_activations *acts);

/* Integer scratch (token ids, row orders) that grows the same way. */
typedef struct attn_int_block {
    int32_t *data;
    size_t capacity; /* ints */
} attn_int_block;

/* Makes room for count ints, reallocating (contents not kept) only if too few;
 * `what` names them in the out-of-memory message. */
attn_status attn_int_block_reserve(attn_int_block *b, size_t count, const char *what);
void attn_int_block_free(attn_int_block *b);

#endif
