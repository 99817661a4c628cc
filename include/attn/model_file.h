/* attn/model_file.h: a trained model's file, as `attn train` writes it and
 * `attn translate`, `attn generate` and the Python package read it. It is an
 * attn checkpoint (attn/checkpoint.h) whose metadata says what it holds and how
 * to rebuild it:
 *
 *   attn.kind    "seq2seq" (a sequence-to-sequence model) or "gpt" (a
 *                language model)
 *   step         the training steps done
 *   model        the config (attn_seq2seq_config, attn_gpt_config) as a JSON
 *                object: every field by name, the enums by their names
 *                ("lstm-luong-general", "rope", ...)
 *   seq2seq:  task        the built-in task it was trained on ("dates")
 *             src_vocab   the source characters in id order, from
 *             tgt_vocab   ATTN_TOKEN_FIRST_CHAR; the target characters
 *   gpt:      vocab       {"unit": "chars" or "bytes", "chars": [the code
 *                         point of each id]} (empty for bytes: ids are bytes)
 *
 * and the writer's own pairs (the tool adds "train", its training options).
 * Reading checks every value before anything is built from it, and that the
 * config's parameters fit in the numbers the file holds, so that a damaged
 * config cannot ask for any amount of memory. Failures are ATTN_ERR_FORMAT
 * naming the metadata and the key, e.g. "'heads' in metadata 'model' is
 * missing or not a whole number in [0, 2147483647]".
 *
 * To load a model to use it, attn_seq2seq_load or attn_gpt_load. A trainer that
 * also restores the optimizer and reads pairs of its own opens the file
 * (attn_safetensors_open) and takes the steps apart: attn_model_file_step,
 * attn_seq2seq_from_file or attn_gpt_from_file, then attn_checkpoint_load. */
#ifndef ATTN_MODEL_FILE_H
#define ATTN_MODEL_FILE_H

#include "attn/core.h"
#include "attn/data.h"
#include "attn/gpt.h"
#include "attn/io.h"
#include "attn/seq2seq.h"
#include "attn/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The "attn.kind" of each kind of model file. */
#define ATTN_SEQ2SEQ_KIND "seq2seq"
#define ATTN_GPT_KIND "gpt"

/* The training steps done ("step", and "optimizer.step" if the file has it,
 * which must equal it), in [0, INT32_MAX]. */
ATTN_API attn_status attn_model_file_step(const attn_safetensors *st, int64_t *step);

/* ---- sequence-to-sequence models ---- */

/* Writes m (its parameters and buffers, and opt's state unless NULL) with its
 * task and steps to path, atomically, with the `extra_count` pairs of extra. */
ATTN_API attn_status attn_seq2seq_save(const char *path, attn_seq2seq *m, const attn_task *task,
                                       int64_t step, const attn_adamw *opt,
                                       const attn_metadata_pair *extra, int extra_count);

/* Reads the metadata of an open model file: its kind, its task (into *task; the
 * file's vocabularies and lengths must be the task's), its config; creates the
 * model (*out, attn_seq2seq_free it) with its parameters not yet loaded. */
ATTN_API attn_status attn_seq2seq_from_file(attn_seq2seq **out, attn_task *task,
                                            const attn_safetensors *st);

/* The model in the file at path, ready to decode (*out, attn_seq2seq_free it),
 * its task and its steps (step may be NULL). Messages start with the path. */
ATTN_API attn_status attn_seq2seq_load(attn_seq2seq **out, attn_task *task, int64_t *step,
                                       const char *path);

/* ---- language models ---- */

/* Writes m (and opt's state unless NULL) with its vocabulary and steps to path,
 * atomically, with the `extra_count` pairs of extra. */
ATTN_API attn_status attn_gpt_save(const char *path, attn_gpt *m, const attn_text_vocab *vocab,
                                   int64_t step, const attn_adamw *opt,
                                   const attn_metadata_pair *extra, int extra_count);

/* Reads the metadata of an open model file: its kind, its vocabulary (*vocab),
 * its config; creates the model (*out, attn_gpt_free it) with its parameters
 * zero, not yet loaded. */
ATTN_API attn_status attn_gpt_from_file(attn_gpt **out, attn_text_vocab *vocab,
                                        const attn_safetensors *st);

/* The model in the file at path, ready to generate (*out, attn_gpt_free it),
 * its vocabulary and its steps (step may be NULL). Messages start with the path. */
ATTN_API attn_status attn_gpt_load(attn_gpt **out, attn_text_vocab *vocab, int64_t *step,
                                   const char *path);

#ifdef __cplusplus
}
#endif
#endif
