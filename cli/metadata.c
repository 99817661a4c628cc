/* The metadata of model files: JSON objects written so that they read back to
 * the same values, from one table of fields per config (cli_field) that both
 * writes and reads, and a reader that checks every field and names the file,
 * the object and the key of anything wrong. Shared by the sequence-to-sequence
 * (model_file.c) and language model (gpt_file.c) files. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"

/* ---- writing ---- */

static void add_int(cJSON *o, const char *key, int64_t v)
{
    cJSON_AddNumberToObject(o, key, (double)v);
}

/* Floats go through "%.9g" so that they read back to the same float. */
static void add_float(cJSON *o, const char *key, float v)
{
    char text[32];
    snprintf(text, sizeof text, "%.9g", (double)v);
    cJSON_AddRawToObject(o, key, text);
}

/* The field f of the struct at base, to read (FIELD_OF) or to set (FIELD_AT). */
#define FIELD_OF(type, base, f) ((const type *)((const char *)(base) + (f)->offset))
#define FIELD_AT(type, base, f) ((type *)((char *)(base) + (f)->offset))

void cli_fields_write(cJSON *o, const void *base, const cli_field *fields, int count)
{
    for (const cli_field *f = fields; f < fields + count; f++) {
        switch (f->type) {
        case CLI_FIELD_INT: add_int(o, f->key, *FIELD_OF(int, base, f)); break;
        case CLI_FIELD_INT64: add_int(o, f->key, *FIELD_OF(int64_t, base, f)); break;
        case CLI_FIELD_UINT64: add_int(o, f->key, (int64_t)*FIELD_OF(uint64_t, base, f)); break;
        case CLI_FIELD_FLOAT: add_float(o, f->key, *FIELD_OF(float, base, f)); break;
        case CLI_FIELD_BOOL: cJSON_AddBoolToObject(o, f->key, *FIELD_OF(bool, base, f)); break;
        case CLI_FIELD_NAME:
            cJSON_AddStringToObject(o, f->key, f->names->name(*FIELD_OF(int, base, f)));
            break;
        case CLI_FIELD_STRING: cJSON_AddStringToObject(o, f->key, FIELD_OF(char, base, f)); break;
        }
    }
}

char *cli_fields_json(const void *base, const cli_field *fields, int count)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    cli_fields_write(o, base, fields, count);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* ---- reading ---- */

int cli_bad(const cli_reader *r, const char *fmt, ...)
{
    va_list args;
    cli_message(stderr, "attn: %s: ", r->path);
    va_start(args, fmt);
    cli_vmessage(stderr, fmt, args);
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

/* A step count in [0, INT32_MAX] (the most steps a schedule has) from the
 * metadata value `key`; false after saying what is wrong. */
static bool meta_step_count(const cli_reader *r, const char *key, int64_t *step)
{
    const char *text = cli_meta(r, key);
    if (text == NULL) {
        cli_bad(r, "metadata '%s' is missing", key);
        return false;
    }
    char *end = NULL;
    errno = 0;
    const long long value = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || value < 0 || value > INT32_MAX) {
        cli_bad(r, "metadata '%s' is '%.40s', not a step count in [0, %d]", key, text, INT32_MAX);
        return false;
    }
    *step = value;
    return true;
}

bool cli_meta_step(const cli_reader *r, int64_t *step)
{
    if (!meta_step_count(r, "step", step)) return false;
    /* A checkpoint's optimizer has taken exactly its steps. */
    int64_t taken;
    if (cli_meta(r, "optimizer.step") == NULL) return true;
    if (!meta_step_count(r, "optimizer.step", &taken)) return false;
    if (taken != *step) {
        cli_bad(r, "metadata 'optimizer.step' is %lld but 'step' is %lld: the optimizer's state "
                   "is not the model's",
                (long long)taken, (long long)*step);
        return false;
    }
    return true;
}

static bool get_int(const cli_reader *r, const cJSON *o, const char *object, const char *key,
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

static bool get_float(const cli_reader *r, const cJSON *o, const char *object,
                      const cli_field *f, float *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->key);
    if (!cJSON_IsNumber(v)) {
        cli_bad(r, "'%s' in metadata '%s' is missing or not a number", f->key, object);
        return false;
    }
    const double x = v->valuedouble;
    const bool ranged = f->min < f->max;
    if (!isfinite(x) || !isfinite((float)x) || (ranged && !(x >= f->min && x <= f->max))) {
        if (ranged)
            cli_bad(r, "'%s' in metadata '%s' is %g; it must be in [%g, %g]", f->key, object, x,
                    f->min, f->max);
        else
            cli_bad(r, "'%s' in metadata '%s' is %g, not a finite float", f->key, object, x);
        return false;
    }
    *out = (float)x;
    return true;
}

static bool get_bool(const cli_reader *r, const cJSON *o, const char *object, const char *key,
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

bool cli_fields_read(const cli_reader *r, const cJSON *o, const char *object,
                     const cli_field *fields, int count, void *base)
{
    for (const cli_field *f = fields; f < fields + count; f++) {
        int64_t v = 0;
        const char *text = NULL;
        bool ok = true;
        switch (f->type) {
        case CLI_FIELD_INT:
        case CLI_FIELD_INT64:
        case CLI_FIELD_UINT64:
            ok = get_int(r, o, object, f->key, f->lo, f->hi, &v);
            if (ok && f->type == CLI_FIELD_INT) *FIELD_AT(int, base, f) = (int)v;
            if (ok && f->type == CLI_FIELD_INT64) *FIELD_AT(int64_t, base, f) = v;
            if (ok && f->type == CLI_FIELD_UINT64) *FIELD_AT(uint64_t, base, f) = (uint64_t)v;
            break;
        case CLI_FIELD_FLOAT: ok = get_float(r, o, object, f, FIELD_AT(float, base, f)); break;
        case CLI_FIELD_BOOL: ok = get_bool(r, o, object, f->key, FIELD_AT(bool, base, f)); break;
        case CLI_FIELD_NAME:
            ok = (text = cli_get_string(r, o, object, f->key)) != NULL;
            if (ok && f->names->parse(FIELD_AT(int, base, f), text) != ATTN_OK) {
                cli_bad(r, "metadata '%s': %s", object, attn_last_error());
                ok = false;
            }
            break;
        case CLI_FIELD_STRING:
            ok = (text = cli_get_string(r, o, object, f->key)) != NULL;
            if (ok && strlen(text) > (size_t)f->hi) {
                cli_bad(r, "'%s' in metadata '%s' is longer than %" PRId64 " bytes", f->key,
                        object, f->hi);
                ok = false;
            }
            if (ok) strcpy(FIELD_AT(char, base, f), text);
            break;
        }
        if (!ok) return false;
    }
    return true;
}

bool cli_meta_fits_file(const cli_reader *r, attn_status counted, int64_t params)
{
    if (counted != ATTN_OK) {
        cli_bad(r, "metadata 'model': %s", attn_last_error());
        return false;
    }
    uint64_t held = 0; /* at most the file's bytes */
    for (int i = 0; i < attn_safetensors_count(r->st); i++)
        held += attn_safetensors_at(r->st, i)->numel;
    if ((uint64_t)params > held) {
        cli_bad(r, "metadata 'model' describes a model of %" PRId64 " parameters, but the file "
                   "holds only %" PRIu64 " numbers",
                params, held);
        return false;
    }
    return true;
}

bool cli_meta_fields(const cli_reader *r, const char *key, const cli_field *fields, int count,
                     void *base)
{
    cJSON *o = cli_meta_object(r, key);
    if (o == NULL) return false;
    bool ok = cli_fields_read(r, o, key, fields, count, base);
    cJSON_Delete(o);
    return ok;
}
