/* Internal: the one way a module declares its parameters and finds them again.
 *
 * Parameters compose by name. A module lists its parameters under a name prefix
 * (attn_specs_add); the outermost module lays every one of them out in one
 * attn_params block (attn_specs_layout); then each module points its views at its
 * own names in that block (attn_param_bind) and writes its initial values there.
 * A module used alone is the same code with an empty prefix and a block of its
 * own, so a module inside a parent never copies weights in or gradients out:
 * optimisers and checkpoints see one flat array. */
#ifndef ATTN_SRC_NN_PARAM_SPECS_H
#define ATTN_SRC_NN_PARAM_SPECS_H

#include <stdint.h>

#include "attn/nn.h"

/* A growing list of parameter specs. The first failure (no memory, a name longer
 * than ATTN_PARAM_NAME_MAX) is kept, and later additions are ignored, so a
 * module may list its parameters without checking each one. */
typedef struct attn_specs {
    attn_param *items;
    int count, capacity;
    attn_status status;
} attn_specs;

/* Appends the parameter named prefix + name, of shape (d0) if ndim is 1 or
 * (d0, d1) if 2. */
void attn_specs_add(attn_specs *s, const char *prefix, const char *name, int ndim,
                    int64_t d0, int64_t d1);
/* Lays out p with the listed parameters (attn_params_init), or returns the list's
 * first failure; frees the list either way. */
attn_status attn_specs_layout(attn_specs *s, attn_params *p);
/* The number of floats the listed parameters hold (without layout padding), or the
 * list's first failure; frees the list either way. */
attn_status attn_specs_count(attn_specs *s, int64_t *count);
void attn_specs_free(attn_specs *s);

/* Points *data and *grad at the parameter prefix + name of p; fails naming it if
 * p has no such parameter. */
attn_status attn_param_bind(float **data, float **grad, const attn_params *p, const char *prefix,
                            const char *name);

#endif
