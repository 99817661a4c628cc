/* attn/checkpoint.h: a training run's state in one safetensors file, written
 * atomically (a temporary file, fsync, rename), so that an interrupted run
 * always leaves the last good checkpoint whole.
 *
 * Tensors (all F32):
 *   <key>                          every parameter and buffer, under its state_dict
 *                                  key, so the file is also a state_dict
 *   optimizer.exp_avg.<key>        AdamW's moments of every parameter, named as
 *   optimizer.exp_avg_sq.<key>     torch.optim.AdamW's state
 * Metadata: "optimizer.step" and the caller's pairs. */
#ifndef ATTN_CHECKPOINT_H
#define ATTN_CHECKPOINT_H

#include "attn/core.h"
#include "attn/io.h"
#include "attn/nn.h"
#include "attn/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* buffers and opt may be NULL (nothing of theirs is written). */
ATTN_API attn_status attn_checkpoint_save(const char *path, const attn_params *params,
                                          const attn_params *buffers, const attn_adamw *opt,
                                          const attn_metadata_pair *meta, int meta_count);

/* Loads what attn_checkpoint_save wrote from an open file: the file must hold
 * exactly the keys implied by params, buffers and opt (each may be NULL; a NULL
 * opt accepts and ignores the optimizer's keys), with their shapes. Fails
 * naming the first missing, unexpected or mis-shaped key, or a bad
 * "optimizer.step"; on failure nothing is changed. */
ATTN_API attn_status attn_checkpoint_load(const attn_safetensors *st, attn_params *params,
                                          attn_params *buffers, attn_adamw *opt);

#ifdef __cplusplus
}
#endif
#endif
