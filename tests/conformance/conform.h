/* Helpers of the conformance driver shared by every kind (conform_<kind>.c).
 * Every allocation is tracked and freed at exit; any failure prints a message
 * and exits with status 1. */
#ifndef ATTN_CONFORM_H
#define ATTN_CONFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "attn/attn.h"
#include "core/error.h"

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2), noreturn))
#endif
void die(const char *fmt, ...);
/* Dies naming `what` and attn_last_error() unless status is ATTN_OK. */
void check(attn_status status, const char *what);
/* count * size zeroed bytes, freed at exit. */
void *alloc(size_t count, size_t size);
/* dir/file, freed at exit. */
const char *join(const char *dir, const char *file);

/* The case config: one JSON value per __metadata__ key of inputs.safetensors. */
cJSON *meta_value(const char *key); /* the caller deletes it */
double meta_double(const char *key);
int meta_int(const char *key);
bool meta_bool(const char *key);
const char *meta_string(const char *key);

/* Input tensors of inputs.safetensors. */
const attn_tensor_view *input_view(const char *name);
/* The tensor `name`, which must have exactly `shape`, as float32. */
float *input_f32(const char *name, int ndim, const int64_t *shape);
/* The I32 tensor `name`, which must have exactly `shape`. */
int32_t *input_i32(const char *name, int ndim, const int64_t *shape);

typedef struct mask_input {
    const void *data; /* uint8_t for bool kinds, float for float */
    int ndim;
    int64_t shape[ATTN_MAX_DIMS];
} mask_input;

/* A mask tensor of any shape: BOOL or U8 for the bool kinds (copied as bytes 0/1),
 * F32 (or anything convertible) for float. */
mask_input input_mask(const char *name, bool is_float);
/* The config value `key`: "none", "bool", "bool_keep" or "float"; false for "none". */
bool mask_kind(const char *key, attn_mask_type *type);
/* A mask of nn.MultiheadAttention or nn.Transformer (module names it in messages):
 * bool or float by the config `key`, exactly `shape`; NULL for "none". */
const void *read_mask(const char *key, int ndim, const int64_t *shape, attn_mask_type *type,
                      const char *module);

/* Outputs, written to outputs.safetensors by write_outputs. */
void add_output(const char *name, const float *data, int ndim, const int64_t *shape);
/* "grad.<key>" for every parameter. */
void add_param_grads(const attn_params *p);
void write_outputs(const char *dir);

/* The configs of the kinds' models, from the case's metadata (shared by the kinds
 * that run them): the GPT of kind "gpt" (conform_gpt.c), dropout included; the
 * seq2seq transformer of kind "transformer", module "seq2seq"
 * (conform_transformer.c), dropout 0. */
attn_gpt_config conform_gpt_config(void);
attn_seq2seq_config conform_seq2seq_transformer_config(void);
/* The RNN model of kind "seq2seq" (conform_seq2seq.c): max_src_len src_cap,
 * max_tgt_len tgt_cap, soft attention. */
attn_seq2seq_config conform_seq2seq_rnn_config(void);

#endif
