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
#include <stdio.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/checkpoint.h"
#include "cli.h"

/* ---- writing ---- */

static char *config_json(const attn_gpt_config *c)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    cli_json_add_int(o, "vocab_size", c->vocab_size);
    cli_json_add_int(o, "block_size", c->block_size);
    cli_json_add_int(o, "n_layer", c->n_layer);
    cli_json_add_int(o, "n_head", c->n_head);
    cli_json_add_int(o, "n_kv_head", c->n_kv_head);
    cli_json_add_int(o, "n_embd", c->n_embd);
    cJSON_AddStringToObject(o, "position", attn_position_name(c->position));
    cli_json_add_float(o, "rope_theta", c->rope_theta);
    cli_json_add_int(o, "window", c->window);
    cJSON_AddBoolToObject(o, "bias", c->bias);
    cJSON_AddBoolToObject(o, "tie_weights", c->tie_weights);
    cli_json_add_float(o, "dropout", c->dropout);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

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

static char *train_json(const cli_text_train *t)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    cli_json_add_train(o, &t->opt);
    cli_json_add_int(o, "eval_windows", t->eval_windows);
    cJSON_AddStringToObject(o, "data", t->data);
    char *text = cJSON_PrintUnformatted(o);
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
    char *model = config_json(attn_gpt_get_config(m->model));
    char *vocab = vocab_json(&m->vocab);
    char *train = train_json(&m->train);
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
    cJSON *o = cli_meta_object(r, "model");
    if (o == NULL) return false;
    const char *position = cli_get_string(r, o, "model", "position");
    bool ok = position != NULL;
    if (ok && attn_position_parse(&c->position, position) != ATTN_OK) {
        cli_bad(r, "metadata 'model': %s", attn_last_error());
        ok = false;
    }
    ok = ok && cli_get_int32(r, o, "model", "vocab_size", &c->vocab_size) &&
         cli_get_int32(r, o, "model", "block_size", &c->block_size) &&
         cli_get_int32(r, o, "model", "n_layer", &c->n_layer) &&
         cli_get_int32(r, o, "model", "n_head", &c->n_head) &&
         cli_get_int32(r, o, "model", "n_kv_head", &c->n_kv_head) &&
         cli_get_int32(r, o, "model", "n_embd", &c->n_embd) &&
         cli_get_float(r, o, "model", "rope_theta", &c->rope_theta) &&
         cli_get_int32(r, o, "model", "window", &c->window) &&
         cli_get_bool(r, o, "model", "bias", &c->bias) &&
         cli_get_bool(r, o, "model", "tie_weights", &c->tie_weights) &&
         cli_get_float(r, o, "model", "dropout", &c->dropout);
    cJSON_Delete(o);
    if (ok && attn_gpt_check_config(c) != ATTN_OK) {
        cli_bad(r, "metadata 'model': %s", attn_last_error());
        ok = false;
    }
    return ok;
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

static bool read_train(const cli_reader *r, cli_text_train *t)
{
    cJSON *o = cli_meta_object(r, "train");
    if (o == NULL) return false;
    bool ok = cli_get_train(r, o, "train", 0, &t->opt) &&
              cli_get_int(r, o, "train", "eval_windows", 1, INT32_MAX, &t->eval_windows);
    const char *data = ok ? cli_get_string(r, o, "train", "data") : NULL;
    if (data != NULL && strlen(data) >= sizeof t->data) {
        cli_bad(r, "'data' in metadata 'train' is a path longer than %zu bytes",
                sizeof t->data - 1);
        data = NULL;
    }
    if (data != NULL) strcpy(t->data, data);
    cJSON_Delete(o);
    return data != NULL;
}

int cli_gpt_load(const char *path, cli_gpt_model *m, attn_adamw *opt)
{
    memset(m, 0, sizeof *m);
    if (opt) memset(opt, 0, sizeof *opt);
    attn_safetensors *st = NULL;
    if (attn_safetensors_open(&st, path) != ATTN_OK) return cli_fail("reading the model");
    cli_reader r = {path, st};
    int status = EXIT_RUNTIME;
    const char *kind = cli_meta(&r, "attn.kind");
    attn_gpt_config cfg = {0};
    if (kind == NULL) {
        cli_bad(&r, "not an attn model file (no 'attn.kind' in its metadata)");
    } else if (strcmp(kind, CLI_GPT_KIND) != 0) {
        cli_bad(&r, "holds a '%s' model, not a language model%s", kind,
                strcmp(kind, "seq2seq") == 0 ? "; use attn translate or attn eval" : "");
    } else if (cli_meta_step(&r, &m->step) && read_config(&r, &cfg) &&
               read_vocab(&r, &m->vocab) && read_train(&r, &m->train)) {
        attn_adamw_config adamw = cli_gpt_adamw_config(&m->train.opt);
        if (cfg.vocab_size != m->vocab.size) {
            cli_bad(&r, "the model's vocabulary size %d differs from its vocabulary's %d",
                    cfg.vocab_size, m->vocab.size);
        } else if (attn_gpt_create(&m->model, &cfg, m->train.opt.seed) != ATTN_OK) {
            cli_bad(&r, "metadata 'model': %s", attn_last_error());
        } else if (opt &&
                   attn_adamw_init(opt, attn_gpt_params(m->model)->total, &adamw) != ATTN_OK) {
            cli_fail(path);
        } else if (attn_checkpoint_load(st, attn_gpt_params(m->model), NULL, opt) != ATTN_OK) {
            cli_bad(&r, "%s", attn_last_error());
        } else {
            status = EXIT_OK;
        }
    }
    attn_safetensors_close(st);
    if (status != EXIT_OK) {
        cli_gpt_free(m);
        if (opt) attn_adamw_free(opt);
    }
    return status;
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
