/* The metadata of model files: JSON objects written so that they read back to
 * the same values, and a reader that checks every field and names the file, the
 * object and the key of anything wrong. Shared by the sequence-to-sequence
 * (model_file.c) and language model (gpt_file.c) files. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"

/* ---- writing ---- */

void cli_json_add_int(cJSON *o, const char *key, int64_t v)
{
    cJSON_AddNumberToObject(o, key, (double)v);
}

/* Floats go through "%.9g" so that they read back to the same float. */
void cli_json_add_float(cJSON *o, const char *key, float v)
{
    char text[32];
    snprintf(text, sizeof text, "%.9g", (double)v);
    cJSON_AddRawToObject(o, key, text);
}

void cli_json_add_train(cJSON *o, const cli_train_options *t)
{
    cli_json_add_int(o, "steps", t->steps);
    cli_json_add_int(o, "batch", t->batch);
    cli_json_add_float(o, "lr", t->lr);
    cli_json_add_float(o, "min_lr", t->min_lr);
    cli_json_add_int(o, "warmup", t->warmup);
    cli_json_add_float(o, "weight_decay", t->weight_decay);
    cli_json_add_float(o, "clip", t->clip);
    cli_json_add_int(o, "seed", (int64_t)t->seed);
    cli_json_add_int(o, "eval_every", t->eval_every);
}

/* ---- reading ---- */

int cli_bad(const cli_reader *r, const char *fmt, ...)
{
    va_list args;
    fprintf(stderr, "attn: %s: ", r->path);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    return EXIT_RUNTIME;
}

const char *cli_meta(const cli_reader *r, const char *key)
{
    return attn_safetensors_metadata(r->st, key);
}

cJSON *cli_meta_object(const cli_reader *r, const char *key)
{
    const char *text = cli_meta(r, key);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    if (o != NULL && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    if (o == NULL) cli_bad(r, "metadata '%s' is missing or not a JSON object", key);
    return o;
}

bool cli_meta_step(const cli_reader *r, int64_t *step)
{
    const char *text = cli_meta(r, "step");
    char *end = NULL;
    if (text == NULL || (*step = strtoll(text, &end, 10), end == text || *end != '\0') ||
        *step < 0) {
        cli_bad(r, "metadata 'step' is missing or not a step count");
        return false;
    }
    return true;
}

bool cli_get_int(const cli_reader *r, const cJSON *o, const char *object, const char *key,
                 int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble ||
        v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
        cli_bad(r,
                "'%s' in metadata '%s' is missing or not a whole number in [%" PRId64
                ", %" PRId64 "]",
                key, object, lo, hi);
        return false;
    }
    *out = (int64_t)v->valuedouble;
    return true;
}

bool cli_get_int32(const cli_reader *r, const cJSON *o, const char *object, const char *key,
                   int *out)
{
    int64_t v;
    if (!cli_get_int(r, o, object, key, 0, INT32_MAX, &v)) return false;
    *out = (int)v;
    return true;
}

bool cli_get_float(const cli_reader *r, const cJSON *o, const char *object, const char *key,
                   float *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) {
        cli_bad(r, "'%s' in metadata '%s' is missing or not a number", key, object);
        return false;
    }
    *out = (float)v->valuedouble;
    return true;
}

bool cli_get_bool(const cli_reader *r, const cJSON *o, const char *object, const char *key,
                  bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsBool(v)) {
        cli_bad(r, "'%s' in metadata '%s' is missing or not true or false", key, object);
        return false;
    }
    *out = cJSON_IsTrue(v);
    return true;
}

const char *cli_get_string(const cli_reader *r, const cJSON *o, const char *object,
                           const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) {
        cli_bad(r, "'%s' in metadata '%s' is missing or not a string", key, object);
        return NULL;
    }
    return v->valuestring;
}

bool cli_get_train(const cli_reader *r, const cJSON *o, const char *object, int64_t min_eval_every,
                   cli_train_options *t)
{
    int64_t seed = 0;
    bool ok = cli_get_int(r, o, object, "steps", 1, INT32_MAX, &t->steps) &&
              cli_get_int(r, o, object, "batch", 1, 65536, &t->batch) &&
              cli_get_float(r, o, object, "lr", &t->lr) &&
              cli_get_float(r, o, object, "min_lr", &t->min_lr) &&
              cli_get_int(r, o, object, "warmup", 0, INT32_MAX, &t->warmup) &&
              cli_get_float(r, o, object, "weight_decay", &t->weight_decay) &&
              cli_get_float(r, o, object, "clip", &t->clip) &&
              cli_get_int(r, o, object, "seed", 0, INT64_MAX, &seed) &&
              cli_get_int(r, o, object, "eval_every", min_eval_every, INT32_MAX,
                          &t->eval_every);
    t->seed = (uint64_t)seed;
    return ok;
}
