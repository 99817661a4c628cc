/* A struct's fields as a JSON object in a file's metadata: one table per struct
 * writes the object and reads it back (metadata_fields.h). */
#include "io/metadata_fields.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

/* The field f of the struct at base, to read (FIELD_OF) or to set (FIELD_AT). */
#define FIELD_OF(type, base, f) ((const type *)((const char *)(base) + (f)->offset))
#define FIELD_AT(type, base, f) ((type *)((char *)(base) + (f)->offset))

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

static void add_field(cJSON *o, const void *base, const attn_field *f)
{
    switch (f->type) {
    case ATTN_FIELD_TYPE_INT: add_int(o, f->key, *FIELD_OF(int, base, f)); break;
    case ATTN_FIELD_TYPE_INT64: add_int(o, f->key, *FIELD_OF(int64_t, base, f)); break;
    case ATTN_FIELD_TYPE_UINT64:
        add_int(o, f->key, (int64_t)*FIELD_OF(uint64_t, base, f));
        break;
    case ATTN_FIELD_TYPE_FLOAT: add_float(o, f->key, *FIELD_OF(float, base, f)); break;
    case ATTN_FIELD_TYPE_BOOL: cJSON_AddBoolToObject(o, f->key, *FIELD_OF(bool, base, f)); break;
    case ATTN_FIELD_TYPE_NAME:
        cJSON_AddStringToObject(o, f->key, f->names->name(*FIELD_OF(int, base, f)));
        break;
    case ATTN_FIELD_TYPE_STRING:
        cJSON_AddStringToObject(o, f->key, FIELD_OF(char, base, f));
        break;
    }
}

char *attn_fields_json(const void *base, const attn_field *fields, int count)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    for (const attn_field *f = fields; f < fields + count; f++) add_field(o, base, f);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* ---- reading ---- */

attn_status attn_metadata_object(const attn_safetensors *st, const char *key, cJSON **out)
{
    const char *text = attn_safetensors_metadata(st, key);
    /* Nothing may follow the object: a value is one JSON object, whole. */
    cJSON *o = text ? cJSON_ParseWithOpts(text, NULL, true) : NULL;
    if (o != NULL && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    *out = o;
    if (o == NULL)
        return attn_error(ATTN_ERR_FORMAT, "metadata '%s' is missing or not a JSON object", key);
    return ATTN_OK;
}

static attn_status get_int(const cJSON *o, const char *object, const attn_field *f, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble ||
        v->valuedouble < (double)f->lo || v->valuedouble > (double)f->hi)
        return attn_error(ATTN_ERR_FORMAT,
                          "'%s' in metadata '%s' is missing or not a whole number in [%" PRId64
                          ", %" PRId64 "]",
                          f->key, object, f->lo, f->hi);
    *out = (int64_t)v->valuedouble;
    return ATTN_OK;
}

static attn_status get_float(const cJSON *o, const char *object, const attn_field *f, float *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->key);
    if (!cJSON_IsNumber(v))
        return attn_error(ATTN_ERR_FORMAT, "'%s' in metadata '%s' is missing or not a number",
                          f->key, object);
    const double x = v->valuedouble;
    const bool ranged = f->min < f->max;
    if (!isfinite(x) || !isfinite((float)x) || (ranged && !(x >= f->min && x <= f->max))) {
        if (ranged)
            return attn_error(ATTN_ERR_FORMAT,
                              "'%s' in metadata '%s' is %g; it must be in [%g, %g]", f->key,
                              object, x, f->min, f->max);
        return attn_error(ATTN_ERR_FORMAT, "'%s' in metadata '%s' is %g, not a finite float",
                          f->key, object, x);
    }
    *out = (float)x;
    return ATTN_OK;
}

static attn_status get_bool(const cJSON *o, const char *object, const attn_field *f, bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->key);
    if (!cJSON_IsBool(v))
        return attn_error(ATTN_ERR_FORMAT, "'%s' in metadata '%s' is missing or not true or false",
                          f->key, object);
    *out = cJSON_IsTrue(v);
    return ATTN_OK;
}

attn_status attn_metadata_string(const cJSON *o, const char *object, const char *key,
                                 const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v))
        return attn_error(ATTN_ERR_FORMAT, "'%s' in metadata '%s' is missing or not a string", key,
                          object);
    *out = v->valuestring;
    return ATTN_OK;
}

static attn_status get_field(const cJSON *o, const char *object, const attn_field *f, void *base)
{
    attn_status s;
    int64_t v = 0;
    const char *text = NULL;
    switch (f->type) {
    case ATTN_FIELD_TYPE_INT:
    case ATTN_FIELD_TYPE_INT64:
    case ATTN_FIELD_TYPE_UINT64:
        if ((s = get_int(o, object, f, &v)) != ATTN_OK) return s;
        if (f->type == ATTN_FIELD_TYPE_INT) *FIELD_AT(int, base, f) = (int)v;
        if (f->type == ATTN_FIELD_TYPE_INT64) *FIELD_AT(int64_t, base, f) = v;
        if (f->type == ATTN_FIELD_TYPE_UINT64) *FIELD_AT(uint64_t, base, f) = (uint64_t)v;
        return ATTN_OK;
    case ATTN_FIELD_TYPE_FLOAT: return get_float(o, object, f, FIELD_AT(float, base, f));
    case ATTN_FIELD_TYPE_BOOL: return get_bool(o, object, f, FIELD_AT(bool, base, f));
    case ATTN_FIELD_TYPE_NAME:
        if ((s = attn_metadata_string(o, object, f->key, &text)) != ATTN_OK) return s;
        if ((s = f->names->parse(FIELD_AT(int, base, f), text)) != ATTN_OK) {
            char what[64];
            snprintf(what, sizeof what, "metadata '%s'", object);
            return attn_error_about(ATTN_ERR_FORMAT, what);
        }
        return ATTN_OK;
    case ATTN_FIELD_TYPE_STRING:
        if ((s = attn_metadata_string(o, object, f->key, &text)) != ATTN_OK) return s;
        if (strlen(text) > (size_t)f->hi)
            return attn_error(ATTN_ERR_FORMAT, "'%s' in metadata '%s' is longer than %" PRId64
                              " bytes", f->key, object, f->hi);
        strcpy(FIELD_AT(char, base, f), text);
        return ATTN_OK;
    }
    return attn_error(ATTN_ERR_INVALID_ARGUMENT, "field '%s' has no type", f->key);
}

attn_status attn_metadata_fields(const attn_safetensors *st, const char *key,
                                 const attn_field *fields, int count, void *base)
{
    cJSON *o = NULL;
    attn_status s = attn_metadata_object(st, key, &o);
    for (const attn_field *f = fields; s == ATTN_OK && f < fields + count; f++)
        if (!f->optional || cJSON_GetObjectItemCaseSensitive(o, f->key) != NULL)
            s = get_field(o, key, f, base);
    cJSON_Delete(o);
    return s;
}
