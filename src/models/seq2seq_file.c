/* The file of a trained sequence-to-sequence model (attn/model_file.h): the
 * config by its table of fields, the task, and the vocabularies, which must be
 * the task's (the task's generator makes the characters, so a file whose
 * vocabulary differs was trained on another version of the task). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "attn/checkpoint.h"
#include "core/error.h"
#include "io/metadata_fields.h"
#include "models/model_file.h"

ATTN_ENUM_NAMES(arch_names, attn_seq2seq_arch, attn_seq2seq_arch_name, attn_seq2seq_arch_parse);
ATTN_ENUM_NAMES(attention_names, attn_attention_kind, attn_attention_kind_name,
                attn_attention_kind_parse);

#define INT_FIELD(name) ATTN_FIELD_INT(attn_seq2seq_config, name, name, 0, INT32_MAX)
#define FLOAT_FIELD(name) ATTN_FIELD_FLOAT(attn_seq2seq_config, name, name, 0, 0)

static const attn_field config_fields[] = {
    ATTN_FIELD_NAME(attn_seq2seq_config, arch, arch, &arch_names),
    ATTN_FIELD_NAME(attn_seq2seq_config, attention, attention, &attention_names),
    INT_FIELD(src_vocab),
    INT_FIELD(tgt_vocab),
    INT_FIELD(max_src_len),
    INT_FIELD(max_tgt_len),
    INT_FIELD(embed_dim),
    INT_FIELD(hidden_dim),
    INT_FIELD(enc_layers),
    INT_FIELD(dec_layers),
    INT_FIELD(heads),
    INT_FIELD(ff_dim),
    FLOAT_FIELD(dropout),
    FLOAT_FIELD(entropy_weight),
    FLOAT_FIELD(baseline_decay),
    FLOAT_FIELD(gumbel_tau_start),
    FLOAT_FIELD(gumbel_tau_end),
    ATTN_FIELD_INT64(attn_seq2seq_config, gumbel_anneal_steps, gumbel_anneal_steps, 0, INT64_MAX),
};

/* ---- writing ---- */

attn_status attn_seq2seq_save(const char *path, attn_seq2seq *m, const attn_task *task,
                              int64_t step, const attn_adamw *opt,
                              const attn_metadata_pair *extra, int extra_count)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "model")) || (s = attn_check_not_null(task, "task")))
        return s;
    char src_chars[4 * ATTN_VOCAB_MAX + 1], tgt_chars[4 * ATTN_VOCAB_MAX + 1];
    if ((s = attn_vocab_chars(&task->src_vocab, src_chars, sizeof src_chars)) ||
        (s = attn_vocab_chars(&task->tgt_vocab, tgt_chars, sizeof tgt_chars)))
        return s;
    char *model = attn_fields_json(attn_seq2seq_get_config(m), config_fields,
                                   ATTN_FIELD_COUNT(config_fields));
    if (model == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for metadata");
    const attn_metadata_pair own[] = {
        {"task", attn_task_name(task->kind)},
        {"model", model},
        {"src_vocab", src_chars},
        {"tgt_vocab", tgt_chars},
    };
    s = attn_model_file_save(path, attn_seq2seq_params(m), attn_seq2seq_buffers(m), opt,
                             ATTN_SEQ2SEQ_KIND, step, own, (int)(sizeof own / sizeof own[0]),
                             extra, extra_count);
    cJSON_free(model);
    return s;
}

/* ---- reading ---- */

static attn_status check_vocab(const attn_safetensors *st, const char *key,
                               const attn_vocab *task_vocab)
{
    attn_vocab stored;
    const char *chars = attn_safetensors_metadata(st, key);
    if (chars == NULL) return attn_error(ATTN_ERR_FORMAT, "metadata '%s' is missing", key);
    if (attn_vocab_from_chars(&stored, chars) != ATTN_OK) {
        char what[32];
        snprintf(what, sizeof what, "metadata '%s'", key);
        return attn_error_about(ATTN_ERR_FORMAT, what);
    }
    if (stored.size != task_vocab->size ||
        memcmp(stored.chars, task_vocab->chars, sizeof stored.chars) != 0)
        return attn_error(ATTN_ERR_FORMAT, "metadata '%s' differs from the '%s' task's vocabulary",
                          key, attn_safetensors_metadata(st, "task"));
    return ATTN_OK;
}

/* The task first: the file's vocabularies and lengths must be its. */
static attn_status read_task(const attn_safetensors *st, attn_task *task)
{
    const char *name = attn_safetensors_metadata(st, "task");
    attn_task_kind kind;
    attn_status s;
    if (name == NULL) return attn_error(ATTN_ERR_FORMAT, "metadata 'task' is missing");
    if (attn_task_parse(&kind, name) != ATTN_OK)
        return attn_error_about(ATTN_ERR_FORMAT, "metadata 'task'");
    if ((s = attn_task_init(task, kind)) || (s = check_vocab(st, "src_vocab", &task->src_vocab)) ||
        (s = check_vocab(st, "tgt_vocab", &task->tgt_vocab)))
        return s;
    return ATTN_OK;
}

static attn_status check_task_config(const attn_seq2seq_config *cfg, const attn_task *task)
{
    if (cfg->src_vocab != task->src_vocab.size || cfg->tgt_vocab != task->tgt_vocab.size)
        return attn_error(ATTN_ERR_FORMAT,
                          "the model's vocabulary sizes (%d, %d) differ from the task's (%d, %d)",
                          cfg->src_vocab, cfg->tgt_vocab, task->src_vocab.size,
                          task->tgt_vocab.size);
    /* The task's longest source, and its longest target with EOS. */
    if (cfg->max_src_len != task->max_src_len || cfg->max_tgt_len != task->max_tgt_len + 1)
        return attn_error(ATTN_ERR_FORMAT,
                          "the model's lengths (max_src_len %d, max_tgt_len %d) are not its "
                          "task's (%d, %d)",
                          cfg->max_src_len, cfg->max_tgt_len, task->max_src_len,
                          task->max_tgt_len + 1);
    return ATTN_OK;
}

attn_status attn_seq2seq_from_file(attn_seq2seq **out, attn_task *task,
                                   const attn_safetensors *st)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "out")) || (s = attn_check_not_null(task, "task")) ||
        (s = attn_check_not_null(st, "file")))
        return s;
    *out = NULL;
    attn_seq2seq_config cfg = {0};
    int64_t params = 0;
    if ((s = attn_model_file_check_kind(st, ATTN_SEQ2SEQ_KIND, "a sequence-to-sequence one")) ||
        (s = read_task(st, task)) ||
        (s = attn_metadata_fields(st, "model", config_fields, ATTN_FIELD_COUNT(config_fields),
                                  &cfg)) ||
        (s = check_task_config(&cfg, task)) ||
        (s = attn_model_file_fits(st, attn_seq2seq_param_count(&cfg, &params), &params)))
        return s;
    /* The seed draws the initial parameters, which the file's replace. */
    if ((s = attn_seq2seq_create(out, &cfg, 0)) != ATTN_OK)
        return attn_error_about(s == ATTN_ERR_OUT_OF_MEMORY ? s : ATTN_ERR_FORMAT,
                                "metadata 'model'");
    return ATTN_OK;
}

attn_status attn_seq2seq_load(attn_seq2seq **out, attn_task *task, int64_t *step,
                              const char *path)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "out")) || (s = attn_check_not_null(task, "task")))
        return s;
    *out = NULL;
    attn_safetensors *st = NULL;
    if ((s = attn_safetensors_open(&st, path)) != ATTN_OK) return s;
    int64_t steps = 0;
    attn_seq2seq *m = NULL;
    if (!(s = attn_model_file_step(st, &steps)) && !(s = attn_seq2seq_from_file(&m, task, st)))
        s = attn_checkpoint_load(st, attn_seq2seq_params(m), attn_seq2seq_buffers(m), NULL);
    attn_safetensors_close(st);
    if (s != ATTN_OK) {
        attn_seq2seq_free(m);
        return attn_error_about(s, path);
    }
    *out = m;
    if (step) *step = steps;
    return ATTN_OK;
}
