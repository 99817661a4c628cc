/* Internal: a parameter layout without storage, and a strict read of a
 * safetensors file into one, for readers that keep only part of what a file
 * holds (a checkpoint's optimizer moments when only the weights are wanted). */
#ifndef ATTN_SRC_NN_PARAMS_READ_H
#define ATTN_SRC_NN_PARAMS_READ_H

#include "attn/nn.h"

/* Lays out `count` parameters as attn_params_init does (items, offsets, total)
 * but allocates no data or grad: both stay NULL. attn_params_free frees it. */
attn_status attn_params_plan(attn_params *p, const attn_param *specs, int count);

/* Checks that st holds exactly p's keys, with p's shapes, in a float dtype
 * (PyTorch's strict load_state_dict), then converts the first read_count of
 * them to float32 at their offsets in `into`, which has room up to the end of
 * the last of them. The keys past read_count are checked but not read; p's own
 * data is not touched. */
attn_status attn_params_read_strict(const attn_params *p, int read_count,
                                   const attn_safetensors *st, float *into);

#endif
