/* The file of a trained sequence-to-sequence model: an attn checkpoint
 * (attn/checkpoint.h) whose metadata says what it is and how to rebuild it:
 *
 *   attn.kind    "seq2seq"
 *   task         the built-in task it was trained on ("dates")
 *   model        the attn_seq2seq_config as a JSON object
 *   src_vocab    the source characters, in id order from ATTN_TOKEN_FIRST_CHAR
 *   tgt_vocab    the target characters
 *   train        the training options as a JSON object (cli_train_options)
 *   step         training steps done
 *
 * Reading checks every field before anything is built from it. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "attn/attn.h"
#include "attn/checkpoint.h"
#include "cli.h"

static const char KIND[] = "seq2seq";

/* ---- the metadata's fields ---- */

CLI_ENUM_NAMES(arch_names, attn_seq2seq_arch, attn_seq2seq_arch_name, attn_seq2seq_arch_parse);
CLI_ENUM_NAMES(attention_names, attn_attention_kind, attn_attention_kind_name,
               attn_attention_kind_parse);

#define INT_FIELD(name) CLI_INT(attn_seq2seq_config, name, name, 0, INT32_MAX)
#define FLOAT_FIELD(name) CLI_FLOAT(attn_seq2seq_config, name, name, 0, 0)

static const cli_field config_fields[] = {
    CLI_NAME(attn_seq2seq_config, arch, arch, &arch_names),
    CLI_NAME(attn_seq2seq_config, attention, attention, &attention_names),
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
    CLI_INT64(attn_seq2seq_config, gumbel_anneal_steps, gumbel_anneal_steps, 0, INT64_MAX),
};

/* A sequence model validates every eval_every >= 1 steps. */
static const cli_field train_fields[] = {
    CLI_TRAIN_FIELDS(cli_train_options, ),
    CLI_INT64(cli_train_options, eval_every, eval_every, 1, INT32_MAX),
    CLI_FLOAT(cli_train_options, label_smoothing, label_smoothing, 0, 0.5),
};

/* ---- writing ---- */

attn_adamw_config cli_adamw_config(const cli_train_options *t)
{
    attn_adamw_config c = attn_adamw_defaults();
    c.weight_decay = t->weight_decay;
    return c;
}

int cli_model_save(const char *path, const cli_model *m, const attn_adamw *opt)
{
    char src_chars[4 * ATTN_VOCAB_MAX + 1], tgt_chars[4 * ATTN_VOCAB_MAX + 1], step[32];
    if (attn_vocab_chars(&m->task.src_vocab, src_chars, sizeof src_chars) != ATTN_OK ||
        attn_vocab_chars(&m->task.tgt_vocab, tgt_chars, sizeof tgt_chars) != ATTN_OK)
        return cli_fail("saving the model");
    snprintf(step, sizeof step, "%" PRId64, m->step);
    char *model = cli_fields_json(attn_seq2seq_get_config(m->model), config_fields,
                                  CLI_FIELD_COUNT(config_fields));
    char *train = cli_fields_json(&m->train, train_fields, CLI_FIELD_COUNT(train_fields));
    int status = EXIT_OK;
    if (model == NULL || train == NULL) {
        fprintf(stderr, "attn: out of memory writing %s\n", path);
        status = EXIT_RUNTIME;
    } else {
        const attn_metadata_pair meta[] = {
            {"attn.kind", KIND},
            {"task", attn_task_name(m->task.kind)},
            {"model", model},
            {"src_vocab", src_chars},
            {"tgt_vocab", tgt_chars},
            {"train", train},
            {"step", step},
        };
        if (attn_checkpoint_save(path, attn_seq2seq_params(m->model),
                                 attn_seq2seq_buffers(m->model), opt, meta,
                                 (int)(sizeof meta / sizeof meta[0])) != ATTN_OK)
            status = cli_fail(path);
    }
    cJSON_free(model);
    cJSON_free(train);
    return status;
}

/* ---- reading ---- */

/* The file's vocabulary must be the task's: the task's generator makes the
 * characters, so a file whose vocabulary differs was trained on another version
 * of the task. */
static bool check_vocab(const cli_reader *r, const char *key, const attn_vocab *task)
{
    attn_vocab stored, *v = &stored;
    const char *chars = cli_meta(r, key);
    if (chars == NULL) {
        cli_bad(r, "metadata '%s' is missing", key);
        return false;
    }
    if (attn_vocab_from_chars(v, chars) != ATTN_OK) {
        cli_bad(r, "metadata '%s': %s", key, attn_last_error());
        return false;
    }
    if (v->size != task->size || memcmp(v->chars, task->chars, sizeof v->chars) != 0) {
        cli_bad(r, "metadata '%s' differs from the '%s' task's vocabulary", key,
                cli_meta(r, "task"));
        return false;
    }
    return true;
}

static void wrong_kind(const cli_reader *r, const char *name)
{
    if (strcmp(name, CLI_GPT_KIND) == 0)
        cli_bad(r, "a language model, not a sequence-to-sequence one; use attn generate");
    else
        cli_bad(r, "holds a '%s' model, not a sequence-to-sequence one", name);
}

/* The task first: the file's vocabularies must be its. */
static bool create(const cli_reader *r, void *model)
{
    cli_model *m = model;
    const char *task = cli_meta(r, "task");
    attn_task_kind task_kind;
    attn_seq2seq_config cfg = {0};
    if (task == NULL || attn_task_parse(&task_kind, task) != ATTN_OK) {
        cli_bad(r, "metadata 'task' is %s", task ? attn_last_error() : "missing");
        return false;
    }
    if (attn_task_init(&m->task, task_kind) != ATTN_OK) {
        cli_fail(r->path);
        return false;
    }
    if (!cli_meta_fields(r, "model", config_fields, CLI_FIELD_COUNT(config_fields), &cfg) ||
        !cli_meta_fields(r, "train", train_fields, CLI_FIELD_COUNT(train_fields), &m->train) ||
        !check_vocab(r, "src_vocab", &m->task.src_vocab) ||
        !check_vocab(r, "tgt_vocab", &m->task.tgt_vocab))
        return false;
    if (cfg.src_vocab != m->task.src_vocab.size || cfg.tgt_vocab != m->task.tgt_vocab.size) {
        cli_bad(r, "the model's vocabulary sizes (%d, %d) differ from the task's (%d, %d)",
                cfg.src_vocab, cfg.tgt_vocab, m->task.src_vocab.size, m->task.tgt_vocab.size);
        return false;
    }
    /* The task's longest source, and its longest target with EOS. */
    if (cfg.max_src_len != m->task.max_src_len || cfg.max_tgt_len != m->task.max_tgt_len + 1) {
        cli_bad(r, "the model's lengths (max_src_len %d, max_tgt_len %d) are not its task's "
                   "(%d, %d)",
                cfg.max_src_len, cfg.max_tgt_len, m->task.max_src_len, m->task.max_tgt_len + 1);
        return false;
    }
    int64_t params = 0;
    const attn_status counted = attn_seq2seq_param_count(&cfg, &params);
    if (!cli_meta_fits_file(r, counted, params)) return false;
    if (attn_seq2seq_create(&m->model, &cfg, m->train.seed) != ATTN_OK) {
        cli_bad(r, "metadata 'model': %s", attn_last_error());
        return false;
    }
    return true;
}

static attn_params *params(void *model) { return attn_seq2seq_params(((cli_model *)model)->model); }
static attn_params *buffers(void *model)
{
    return attn_seq2seq_buffers(((cli_model *)model)->model);
}
static attn_adamw_config adamw_config(const void *model)
{
    return cli_adamw_config(&((const cli_model *)model)->train);
}
static const cli_train_options *train_options(const void *model)
{
    return &((const cli_model *)model)->train;
}
static void free_model(void *model) { cli_model_free(model); }

static const cli_model_kind seq2seq_kind = {
    .name = KIND,
    .wrong_kind = wrong_kind,
    .create = create,
    .params = params,
    .buffers = buffers,
    .adamw_config = adamw_config,
    .train = train_options,
    .free = free_model,
};

int cli_model_load(const char *path, cli_model *m, attn_adamw *opt)
{
    memset(m, 0, sizeof *m);
    return cli_load_model_file(path, &seq2seq_kind, m, &m->step, opt);
}

void cli_model_free(cli_model *m)
{
    attn_seq2seq_free(m->model);
    m->model = NULL;
}
