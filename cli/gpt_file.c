/* The file of a language model: an attn checkpoint (attn/checkpoint.h) whose
 * metadata says what it is and how to rebuild it:
 *
 *   attn.kind    "gpt"
 *   model        the attn_gpt_config as a JSON object, its fields by name and
 *                the positions by name ("learned", ...)
 *   vocab        {"unit": "chars" or "bytes", "chars": [the code point of each
 *                id]} (no chars for bytes: ids are the bytes)
 *   train        the training options, the validation windows and the text
 *                file's absolute path, as a JSON object
 *   step         training steps done
 *
 * Reading checks every field before anything is built from it. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/checkpoint.h"
#include "cli.h"

/* ---- the metadata's fields ---- */

CLI_ENUM_NAMES(position_names, attn_position_kind, attn_position_name, attn_position_parse);

#define INT_FIELD(name) CLI_INT(attn_gpt_config, name, name, 0, INT32_MAX)
#define FLOAT_FIELD(name) CLI_FLOAT(attn_gpt_config, name, name, 0, 0)
#define BOOL_FIELD(name) CLI_BOOL(attn_gpt_config, name, name)

static const cli_field config_fields[] = {
    INT_FIELD(vocab_size),
    INT_FIELD(block_size),
    INT_FIELD(n_layer),
    INT_FIELD(n_head),
    INT_FIELD(n_kv_head),
    INT_FIELD(n_embd),
    CLI_NAME(attn_gpt_config, position, position, &position_names),
    FLOAT_FIELD(rope_theta),
    INT_FIELD(window),
    BOOL_FIELD(bias),
    BOOL_FIELD(tie_weights),
    FLOAT_FIELD(dropout),
};

/* A language model may validate only at the end (eval_every 0). */
static const cli_field train_fields[] = {
    CLI_TRAIN_FIELDS(cli_text_train, opt.),
    CLI_INT64(cli_text_train, eval_every, opt.eval_every, 0, INT32_MAX),
    CLI_INT64(cli_text_train, eval_windows, eval_windows, 1, INT32_MAX),
    CLI_STRING(cli_text_train, data, data, CLI_PATH_MAX - 1),
};

/* ---- writing ---- */

static char *vocab_json(const attn_text_vocab *v)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    cJSON_AddStringToObject(o, "unit", attn_text_unit_name(v->unit));
    cJSON *chars = cJSON_AddArrayToObject(o, "chars");
    for (int i = 0; chars != NULL && v->unit == ATTN_TEXT_CHARS && i < v->size; i++)
        cJSON_AddItemToArray(chars, cJSON_CreateNumber((double)v->chars[i]));
    char *text = chars ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

attn_adamw_config cli_gpt_adamw_config(const cli_train_options *t)
{
    attn_adamw_config c = cli_adamw_config(t);
    c.beta2 = 0.99f;
    return c;
}

int cli_gpt_save(const char *path, const cli_gpt_model *m, const attn_adamw *opt)
{
    char step[32];
    snprintf(step, sizeof step, "%" PRId64, m->step);
    char *model = cli_fields_json(attn_gpt_get_config(m->model), config_fields,
                                  CLI_FIELD_COUNT(config_fields));
    char *vocab = vocab_json(&m->vocab);
    char *train = cli_fields_json(&m->train, train_fields, CLI_FIELD_COUNT(train_fields));
    int status = EXIT_OK;
    if (model == NULL || vocab == NULL || train == NULL) {
        fprintf(stderr, "attn: out of memory writing %s\n", path);
        status = EXIT_RUNTIME;
    } else {
        const attn_metadata_pair meta[] = {
            {"attn.kind", CLI_GPT_KIND}, {"model", model}, {"vocab", vocab},
            {"train", train},            {"step", step},
        };
        if (attn_checkpoint_save(path, attn_gpt_params(m->model), NULL, opt, meta,
                                 (int)(sizeof meta / sizeof meta[0])) != ATTN_OK)
            status = cli_fail(path);
    }
    cJSON_free(model);
    cJSON_free(vocab);
    cJSON_free(train);
    return status;
}

/* ---- reading ---- */

static bool read_config(const cli_reader *r, attn_gpt_config *c)
{
    if (!cli_meta_fields(r, "model", config_fields, CLI_FIELD_COUNT(config_fields), c))
        return false;
    if (attn_gpt_check_config(c) != ATTN_OK) {
        cli_bad(r, "metadata 'model': %s", attn_last_error());
        return false;
    }
    return true;
}

/* The code points of a chars vocabulary, in id order. */
static bool read_chars(const cli_reader *r, const cJSON *chars, attn_text_vocab *v)
{
    uint32_t points[ATTN_TEXT_VOCAB_MAX];
    int count = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, chars)
    {
        if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble > 0x10FFFF ||
            item->valuedouble != (double)(uint32_t)item->valuedouble) {
            cli_bad(r, "'chars' in metadata 'vocab' holds %s", cJSON_IsNumber(item) ?
                    "a number that is no code point" : "something other than a number");
            return false;
        }
        points[count++] = (uint32_t)item->valuedouble;
    }
    if (attn_text_vocab_from_chars(v, points, count) != ATTN_OK) {
        cli_bad(r, "metadata 'vocab': %s", attn_last_error());
        return false;
    }
    return true;
}

static bool read_vocab(const cli_reader *r, attn_text_vocab *v)
{
    cJSON *o = cli_meta_object(r, "vocab");
    if (o == NULL) return false;
    const char *unit_name = cli_get_string(r, o, "vocab", "unit");
    const cJSON *chars = cJSON_GetObjectItemCaseSensitive(o, "chars");
    attn_text_unit unit = ATTN_TEXT_CHARS;
    bool ok = unit_name != NULL;
    if (ok && attn_text_unit_parse(&unit, unit_name) != ATTN_OK) {
        cli_bad(r, "metadata 'vocab': %s", attn_last_error());
        ok = false;
    }
    if (ok && (!cJSON_IsArray(chars) || cJSON_GetArraySize(chars) > ATTN_TEXT_VOCAB_MAX)) {
        cli_bad(r,
                "'chars' in metadata 'vocab' is missing or not an array of at most %d code "
                "points",
                ATTN_TEXT_VOCAB_MAX);
        ok = false;
    }
    if (ok && unit == ATTN_TEXT_BYTES)
        *v = (attn_text_vocab){.unit = ATTN_TEXT_BYTES, .size = 256}; /* ids are the bytes */
    else if (ok)
        ok = read_chars(r, chars, v);
    cJSON_Delete(o);
    return ok;
}

static void wrong_kind(const cli_reader *r, const char *name)
{
    cli_bad(r, "holds a '%s' model, not a language model%s", name,
            strcmp(name, "seq2seq") == 0 ? "; use attn translate or attn eval" : "");
}

static bool create(const cli_reader *r, void *model)
{
    cli_gpt_model *m = model;
    attn_gpt_config cfg = {0};
    if (!read_config(r, &cfg) || !read_vocab(r, &m->vocab) ||
        !cli_meta_fields(r, "train", train_fields, CLI_FIELD_COUNT(train_fields), &m->train))
        return false;
    if (cfg.vocab_size != m->vocab.size) {
        cli_bad(r, "the model's vocabulary size %d differs from its vocabulary's %d",
                cfg.vocab_size, m->vocab.size);
        return false;
    }
    int64_t params = 0;
    const attn_status counted = attn_gpt_param_count(&cfg, &params);
    if (!cli_meta_fits_file(r, counted, params)) return false;
    if (attn_gpt_create(&m->model, &cfg, m->train.opt.seed) != ATTN_OK) {
        cli_bad(r, "metadata 'model': %s", attn_last_error());
        return false;
    }
    return true;
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
    .name = CLI_GPT_KIND,
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
    bool gpt = kind != NULL && strcmp(kind, CLI_GPT_KIND) == 0;
    attn_safetensors_close(st);
    return gpt;
}
