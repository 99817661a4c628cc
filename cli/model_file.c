/* The file of a trained sequence-to-sequence model: the library's model file
 * (attn/model_file.h: the model, its task and vocabularies, the steps done)
 * with the tool's training options as the metadata "train" (cli_train_options,
 * as a JSON object). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"

/* A sequence model validates every eval_every >= 1 steps. */
static const attn_field train_fields[] = {
    CLI_TRAIN_FIELDS(cli_train_options, ),
    ATTN_FIELD_INT64(cli_train_options, eval_every, eval_every, 1, INT32_MAX),
    ATTN_FIELD_FLOAT(cli_train_options, label_smoothing, label_smoothing, 0, 0.5),
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
    char *train = attn_fields_json(&m->train, train_fields, ATTN_FIELD_COUNT(train_fields));
    if (train == NULL) {
        fprintf(stderr, "attn: out of memory writing %s\n", path);
        return EXIT_RUNTIME;
    }
    const attn_metadata_pair extra[] = {{"train", train}};
    const attn_status s = attn_seq2seq_save(path, m->model, &m->task, m->step, opt, extra, 1);
    cJSON_free(train);
    return s == ATTN_OK ? EXIT_OK : cli_fail(path);
}

/* ---- reading ---- */

static void wrong_kind(const cli_reader *r, const char *name)
{
    if (strcmp(name, ATTN_GPT_KIND) == 0)
        cli_bad(r, "a language model, not a sequence-to-sequence one; use attn generate");
    else
        cli_bad(r, "holds a '%s' model, not a sequence-to-sequence one", name);
}

static bool create(const cli_reader *r, void *model)
{
    cli_model *m = model;
    if (attn_seq2seq_from_file(&m->model, &m->task, r->st) != ATTN_OK) {
        cli_bad(r, "%s", attn_last_error());
        return false;
    }
    return cli_read_train(r, train_fields, ATTN_FIELD_COUNT(train_fields), &m->train);
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
    .name = ATTN_SEQ2SEQ_KIND,
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
