/* The file of a trained language model (attn/model_file.h): the config by its
 * table of fields, and the vocabulary, {"unit": "chars" or "bytes", "chars":
 * [the code point of each id]}. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "attn/checkpoint.h"
#include "core/error.h"
#include "io/metadata_fields.h"
#include "models/gpt_impl.h"
#include "models/model_file.h"

ATTN_ENUM_NAMES(position_names, attn_position_kind, attn_position_name, attn_position_parse);

#define INT_FIELD(name) ATTN_FIELD_INT(attn_gpt_config, name, name, 0, INT32_MAX)
#define FLOAT_FIELD(name) ATTN_FIELD_FLOAT(attn_gpt_config, name, name, 0, 0)
#define BOOL_FIELD(name) ATTN_FIELD_BOOL(attn_gpt_config, name, name)

static const attn_field config_fields[] = {
    INT_FIELD(vocab_size),
    INT_FIELD(block_size),
    INT_FIELD(n_layer),
    INT_FIELD(n_head),
    INT_FIELD(n_kv_head),
    INT_FIELD(n_embd),
    ATTN_FIELD_NAME(attn_gpt_config, position, position, &position_names),
    FLOAT_FIELD(rope_theta),
    INT_FIELD(window),
    BOOL_FIELD(bias),
    BOOL_FIELD(tie_weights),
    FLOAT_FIELD(dropout),
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

attn_status attn_gpt_save(const char *path, attn_gpt *m, const attn_text_vocab *vocab,
                          int64_t step, const attn_adamw *opt, const attn_metadata_pair *extra,
                          int extra_count)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "model")) || (s = attn_check_not_null(vocab, "vocab")))
        return s;
    char *model = attn_fields_json(attn_gpt_get_config(m), config_fields,
                                   ATTN_FIELD_COUNT(config_fields));
    char *vocab_text = vocab_json(vocab);
    if (model == NULL || vocab_text == NULL) {
        s = attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for metadata");
    } else {
        const attn_metadata_pair own[] = {{"model", model}, {"vocab", vocab_text}};
        s = attn_model_file_save(path, attn_gpt_params(m), NULL, opt, ATTN_GPT_KIND, step, own,
                                 (int)(sizeof own / sizeof own[0]), extra, extra_count);
    }
    cJSON_free(model);
    cJSON_free(vocab_text);
    return s;
}

/* ---- reading ---- */

/* The code points of a chars vocabulary, in id order. */
static attn_status read_chars(const cJSON *chars, attn_text_vocab *v)
{
    uint32_t points[ATTN_TEXT_VOCAB_MAX];
    int count = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, chars)
    {
        if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble > 0x10FFFF ||
            item->valuedouble != (double)(uint32_t)item->valuedouble)
            return attn_error(ATTN_ERR_FORMAT, "'chars' in metadata 'vocab' holds %s",
                              cJSON_IsNumber(item) ? "a number that is no code point"
                                                   : "something other than a number");
        points[count++] = (uint32_t)item->valuedouble;
    }
    if (attn_text_vocab_from_chars(v, points, count) != ATTN_OK)
        return attn_error_about(ATTN_ERR_FORMAT, "metadata 'vocab'");
    return ATTN_OK;
}

static attn_status read_vocab(const cJSON *o, attn_text_vocab *v)
{
    const char *unit_name = NULL;
    const cJSON *chars = cJSON_GetObjectItemCaseSensitive(o, "chars");
    attn_text_unit unit = ATTN_TEXT_CHARS;
    attn_status s = attn_metadata_string(o, "vocab", "unit", &unit_name);
    if (s) return s;
    if (attn_text_unit_parse(&unit, unit_name) != ATTN_OK)
        return attn_error_about(ATTN_ERR_FORMAT, "metadata 'vocab'");
    if (!cJSON_IsArray(chars) || cJSON_GetArraySize(chars) > ATTN_TEXT_VOCAB_MAX)
        return attn_error(ATTN_ERR_FORMAT,
                          "'chars' in metadata 'vocab' is missing or not an array of at most %d "
                          "code points",
                          ATTN_TEXT_VOCAB_MAX);
    if (unit == ATTN_TEXT_BYTES) {
        *v = (attn_text_vocab){.unit = ATTN_TEXT_BYTES, .size = 256}; /* ids are the bytes */
        return ATTN_OK;
    }
    return read_chars(chars, v);
}

attn_status attn_gpt_from_file(attn_gpt **out, attn_text_vocab *vocab, const attn_safetensors *st)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "out")) || (s = attn_check_not_null(vocab, "vocab")) ||
        (s = attn_check_not_null(st, "file")))
        return s;
    *out = NULL;
    attn_gpt_config cfg = {0};
    cJSON *vocab_object = NULL;
    if ((s = attn_model_file_check_kind(st, ATTN_GPT_KIND, "a language model")) ||
        (s = attn_metadata_fields(st, "model", config_fields, ATTN_FIELD_COUNT(config_fields),
                                  &cfg)))
        return s;
    if (attn_gpt_check_config(&cfg) != ATTN_OK)
        return attn_error_about(ATTN_ERR_FORMAT, "metadata 'model'");
    if (!(s = attn_metadata_object(st, "vocab", &vocab_object)))
        s = read_vocab(vocab_object, vocab);
    cJSON_Delete(vocab_object);
    if (s) return s;
    if (cfg.vocab_size != vocab->size)
        return attn_error(ATTN_ERR_FORMAT,
                          "the model's vocabulary size %d differs from its vocabulary's %d",
                          cfg.vocab_size, vocab->size);
    int64_t params = 0;
    if ((s = attn_model_file_fits(st, attn_gpt_param_count(&cfg, &params), &params))) return s;
    /* The parameters stay zero: the caller reads the file's into them. */
    if ((s = attn_gpt_allocate(out, &cfg)) != ATTN_OK)
        return attn_error_about(s == ATTN_ERR_OUT_OF_MEMORY ? s : ATTN_ERR_FORMAT,
                                "metadata 'model'");
    return ATTN_OK;
}

attn_status attn_gpt_load(attn_gpt **out, attn_text_vocab *vocab, int64_t *step, const char *path)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "out")) || (s = attn_check_not_null(vocab, "vocab")))
        return s;
    *out = NULL;
    attn_safetensors *st = NULL;
    if ((s = attn_safetensors_open(&st, path)) != ATTN_OK) return s;
    int64_t steps = 0;
    attn_gpt *m = NULL;
    if (!(s = attn_model_file_step(st, &steps)) && !(s = attn_gpt_from_file(&m, vocab, st)))
        s = attn_checkpoint_load(st, attn_gpt_params(m), NULL, NULL);
    attn_safetensors_close(st);
    if (s != ATTN_OK) {
        attn_gpt_free(m);
        return attn_error_about(s, path);
    }
    *out = m;
    if (step) *step = steps;
    return ATTN_OK;
}
