/* The file of a trained language model: the library's model file
 * (attn/model_file.h: the model, its vocabulary, the steps done) with the
 * tool's training options, the validation windows and the text file's absolute
 * path as the metadata "train" (cli_text_train, as a JSON object). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"

/* A language model may validate only at the end (eval_every 0). */
static const attn_field train_fields[] = {
    CLI_TRAIN_FIELDS(cli_text_train, opt.),
    ATTN_FIELD_INT64(cli_text_train, eval_every, opt.eval_every, 0, INT32_MAX),
    ATTN_FIELD_INT64(cli_text_train, eval_windows, eval_windows, 1, INT32_MAX),
    ATTN_FIELD_STRING(cli_text_train, data, data, CLI_PATH_MAX - 1),
};

/* ---- writing ---- */

attn_adamw_config cli_gpt_adamw_config(const cli_train_options *t)
{
    attn_adamw_config c = cli_adamw_config(t);
    c.beta2 = 0.99f;
    return c;
}

int cli_gpt_save(const char *path, const cli_gpt_model *m, const attn_adamw *opt)
{
    char *train = attn_fields_json(&m->train, train_fields, ATTN_FIELD_COUNT(train_fields));
    if (train == NULL) {
        fprintf(stderr, "attn: out of memory writing %s\n", path);
        return EXIT_RUNTIME;
    }
    const attn_metadata_pair extra[] = {{"train", train}};
    const attn_status s = attn_gpt_save(path, m->model, &m->vocab, m->step, opt, extra, 1);
    cJSON_free(train);
    return s == ATTN_OK ? EXIT_OK : cli_fail(path);
}

/* ---- reading ---- */

static void wrong_kind(const cli_reader *r, const char *name)
{
    cli_bad(r, "holds a '%s' model, not a language model%s", name,
            strcmp(name, ATTN_SEQ2SEQ_KIND) == 0 ? "; use attn translate or attn eval" : "");
}

static bool create(const cli_reader *r, void *model)
{
    cli_gpt_model *m = model;
    if (attn_gpt_from_file(&m->model, &m->vocab, r->st) != ATTN_OK) {
        cli_bad(r, "%s", attn_last_error());
        return false;
    }
    return cli_read_train(r, train_fields, ATTN_FIELD_COUNT(train_fields), &m->train);
}

static attn_params *params(void *model) { return attn_gpt_params(((cli_gpt_model *)model)->model); }
static attn_adamw_config adamw_config(const void *model)
{
    return cli_gpt_adamw_config(&((const cli_gpt_model *)model)->train.opt);
}
static const cli_train_options *train_options(const void *model)
{
    return &((const cli_gpt_model *)model)->train.opt;
}
static void free_model(void *model) { cli_gpt_free(model); }

static const cli_model_kind gpt_kind = {
    .name = ATTN_GPT_KIND,
    .wrong_kind = wrong_kind,
    .create = create,
    .params = params,
    .buffers = NULL,
    .adamw_config = adamw_config,
    .train = train_options,
    .free = free_model,
};

int cli_gpt_load(const char *path, cli_gpt_model *m, attn_adamw *opt)
{
    memset(m, 0, sizeof *m);
    return cli_load_model_file(path, &gpt_kind, m, &m->step, opt);
}

void cli_gpt_free(cli_gpt_model *m)
{
    attn_gpt_free(m->model);
    m->model = NULL;
}

bool cli_is_gpt_file(const char *path)
{
    attn_safetensors *st = NULL;
    if (attn_safetensors_open(&st, path) != ATTN_OK) return false;
    const char *kind = attn_safetensors_metadata(st, "attn.kind");
    bool gpt = kind != NULL && strcmp(kind, ATTN_GPT_KIND) == 0;
    attn_safetensors_close(st);
    return gpt;
}
