/* Internal: what the two kinds of model file share (attn/model_file.h). */
#ifndef ATTN_SRC_MODELS_MODEL_FILE_H
#define ATTN_SRC_MODELS_MODEL_FILE_H

#include <stdint.h>

#include "attn/model_file.h"

/* ATTN_ERR_FORMAT unless st's "attn.kind" is `kind`; `what` names the kind in
 * the message ("a language model"). */
attn_status attn_model_file_check_kind(const attn_safetensors *st, const char *kind,
                                       const char *what);

/* ATTN_ERR_FORMAT if a model of *params parameters (as attn_*_param_count
 * counted them, returning `counted`) is more than the numbers st holds. Checked
 * before the model is created: a config whose model is larger than its file
 * would otherwise be allocated first. params is a pointer so that the count is
 * read after the call that sets it: attn_model_file_fits(st,
 * attn_gpt_param_count(&cfg, &n), &n). */
attn_status attn_model_file_fits(const attn_safetensors *st, attn_status counted,
                                 const int64_t *params);

/* Writes a model file: the checkpoint of params, buffers and opt (each but
 * params may be NULL) with the metadata "attn.kind" = kind, the kind's own pairs
 * (own, at most 8), "step", and the caller's extra pairs (at most 64). */
attn_status attn_model_file_save(const char *path, const attn_params *params,
                                 const attn_params *buffers, const attn_adamw *opt,
                                 const char *kind, int64_t step, const attn_metadata_pair *own,
                                 int own_count, const attn_metadata_pair *extra,
                                 int extra_count);

#endif
