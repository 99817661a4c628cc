/* Internal: a struct's fields as a JSON object in a safetensors file's metadata,
 * from one table of fields per struct that both writes and reads, so that the
 * two cannot drift apart. Reading checks every field and names the metadata
 * object and the key of anything wrong (ATTN_ERR_FORMAT). The model files
 * (src/models/seq2seq_file.c, gpt_file.c) keep their configs this way, and the
 * tool its training options. */
#ifndef ATTN_SRC_IO_METADATA_FIELDS_H
#define ATTN_SRC_IO_METADATA_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "attn/io.h"

typedef enum attn_field_type {
    ATTN_FIELD_TYPE_INT,    /* int, in [lo, hi] */
    ATTN_FIELD_TYPE_INT64,  /* int64_t, in [lo, hi] */
    ATTN_FIELD_TYPE_UINT64, /* uint64_t, in [lo, hi] */
    ATTN_FIELD_TYPE_FLOAT,  /* float, finite, in [min, max] if min < max; written with
                               9 digits so it reads back the same */
    ATTN_FIELD_TYPE_BOOL,
    ATTN_FIELD_TYPE_NAME,   /* an enum (int-sized), by its name */
    ATTN_FIELD_TYPE_STRING, /* char[hi + 1] */
} attn_field_type;

/* The names of an enum, as an ATTN_FIELD_TYPE_NAME field writes and reads them. */
typedef struct attn_enum_names {
    const char *(*name)(int value);
    attn_status (*parse)(int *value, const char *name);
} attn_enum_names;

/* Defines `static const attn_enum_names var` from the library's name and parse
 * functions of the enum `type`, which must be int-sized. */
#define ATTN_ENUM_NAMES(var, type, name_of, parse)                                              \
    _Static_assert(sizeof(type) == sizeof(int), "name fields read enums as int");              \
    static const char *var##_name(int v) { return name_of((type)v); }                           \
    static attn_status var##_parse(int *v, const char *name)                                     \
    {                                                                                            \
        type value;                                                                              \
        attn_status s = parse(&value, name);                                                     \
        if (s == ATTN_OK) *v = (int)value;                                                       \
        return s;                                                                                \
    }                                                                                            \
    static const attn_enum_names var = {var##_name, var##_parse}

typedef struct attn_field {
    const char *key;
    attn_field_type type;
    size_t offset; /* in the struct */
    int64_t lo, hi;
    const attn_enum_names *names; /* ATTN_FIELD_TYPE_NAME only */
    bool optional; /* reading leaves the field as it is when the key is missing
                      (a field files written before it was added lack) */
    double min, max;              /* ATTN_FIELD_TYPE_FLOAT only */
} attn_field;

/* A table's rows: the JSON key `name`, the field (a member path of the struct
 * `config`) and its range. */
#define ATTN_FIELD_INT(config, name, field, low, high)                                             \
    {.key = #name, .type = ATTN_FIELD_TYPE_INT, .offset = offsetof(config, field), .lo = low,      \
     .hi = high}
#define ATTN_FIELD_INT64(config, name, field, low, high)                                           \
    {.key = #name, .type = ATTN_FIELD_TYPE_INT64, .offset = offsetof(config, field), .lo = low,    \
     .hi = high}
#define ATTN_FIELD_UINT64(config, name, field, low, high)                                          \
    {.key = #name, .type = ATTN_FIELD_TYPE_UINT64, .offset = offsetof(config, field), .lo = low,   \
     .hi = high}
/* low = high = 0: any finite value (the library checks a model's own). */
#define ATTN_FIELD_FLOAT(config, name, field, low, high)                                           \
    {.key = #name, .type = ATTN_FIELD_TYPE_FLOAT, .offset = offsetof(config, field), .min = low,   \
     .max = high}
#define ATTN_FIELD_BOOL(config, name, field)                                                       \
    {.key = #name, .type = ATTN_FIELD_TYPE_BOOL, .offset = offsetof(config, field)}
#define ATTN_FIELD_NAME(config, name, field, table)                                                \
    {.key = #name, .type = ATTN_FIELD_TYPE_NAME, .offset = offsetof(config, field), .names = table}
/* An enum field that files may lack: they read as the struct's value before (0). */
#define ATTN_FIELD_NAME_OPTIONAL(config, name, field, table)                                       \
    {.key = #name, .type = ATTN_FIELD_TYPE_NAME, .offset = offsetof(config, field), .names = table, \
     .optional = true}
#define ATTN_FIELD_STRING(config, name, field, longest)                                            \
    {.key = #name, .type = ATTN_FIELD_TYPE_STRING, .offset = offsetof(config, field), .hi = longest}

#define ATTN_FIELD_COUNT(table) ((int)(sizeof(table) / sizeof((table)[0])))

/* The fields of the struct at base as a JSON object's text, in the table's
 * order (cJSON_free it), or NULL out of memory. */
char *attn_fields_json(const void *base, const attn_field *fields, int count);

/* Reads the fields of the table into the struct at base from the metadata value
 * `key` of st, a JSON object. */
attn_status attn_metadata_fields(const attn_safetensors *st, const char *key,
                                 const attn_field *fields, int count, void *base);

/* The metadata value `key` of st parsed as a JSON object (*out, cJSON_Delete it). */
attn_status attn_metadata_object(const attn_safetensors *st, const char *key, cJSON **out);

/* The string `key` of the object o (the metadata value `object`). */
attn_status attn_metadata_string(const cJSON *o, const char *object, const char *key,
                                 const char **out);

#endif
