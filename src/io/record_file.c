/* Attention records on disk (attn/capture.h): safetensors with the record's JSON
 * in the metadata, or one JSON document with the weights inline.
 *
 * Loading trusts nothing: the JSON is read field by field, every count and size
 * is bounded before anything is allocated for it, each map's tensor must have
 * exactly its shape, and the finished record passes the same checks that saving
 * requires (attn_record_check_map). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "attn/io.h"
#include "core/error.h"
#include "core/utf8.h"
#include "io/io_internal.h"
#include "io/record_internal.h"

#define FORMAT_NAME "attn-attention"
#define FORMAT_VERSION 1
#define TENSOR_PREFIX "attention."
#define KIND_KEY "attn.kind"
#define KIND_VALUE "attention"
#define RECORD_KEY "record"
/* Larger token lists or files are corrupt sizes, not recordings. */
#define MAX_TOKENS (1 << 20)
#define MAX_FILE_BYTES ((size_t)1 << 30)

/* ---- writing ------------------------------------------------------------------------------ */

static bool has_json_extension(const char *path)
{
    const size_t n = strlen(path);
    if (n < 5) return false;
    const char *ext = path + n - 5;
    for (int i = 0; i < 5; i++)
        if (tolower((unsigned char)ext[i]) != ".json"[i]) return false;
    return true;
}

static bool add_tokens(cJSON *root, const char *key, char *const *tokens, int n)
{
    cJSON *array = cJSON_AddArrayToObject(root, key);
    if (array == NULL) return false;
    for (int i = 0; i < n; i++) {
        cJSON *item = cJSON_CreateString(tokens[i]);
        if (item == NULL || !cJSON_AddItemToArray(array, item)) {
            cJSON_Delete(item);
            return false;
        }
    }
    return true;
}

/* A map's tensor by its role: the weights, or the optional q, k and gradient. */
typedef struct map_part {
    const char *key;    /* its JSON key: "weights", "q", "k", "gradient" */
    const char *prefix; /* its safetensors name's: "attention.", "query.", ... */
} map_part;

enum { PART_WEIGHTS, PART_Q, PART_K, PART_GRADIENT, PARTS };
static const map_part PART[PARTS] = {{"weights", TENSOR_PREFIX},
                                     {"q", "query."},
                                     {"k", "key."},
                                     {"gradient", "gradient."}};
#define TENSOR_NAME_MAX (sizeof "gradient." + ATTN_RECORD_NAME_MAX)

/* Part p of map m: its data (NULL when absent) and shape. */
static float *part_of(const attn_attention_map *m, int p, int shape[3])
{
    shape[0] = m->heads;
    shape[1] = p == PART_K ? m->cols : m->rows;
    shape[2] = p == PART_Q || p == PART_K ? m->head_dim : m->cols;
    float *const data[PARTS] = {m->weights, m->q, m->k, m->gradient};
    return data[p];
}

/* x: (d[0], d[1], d[2]) as JSON text, [[[x, ...], ...], ...], each with 9
 * significant digits, enough to read back the same float. NULL when out of
 * memory. */
static char *array_text(const float *x, const int d[3])
{
    enum { NUMBER_MAX = 16 }; /* "-1.23456789e-38," */
    const size_t count = (size_t)d[0] * d[1] * d[2];
    const size_t size = count * NUMBER_MAX + (size_t)d[0] * (3 * (size_t)d[1] + 3) + 3;
    char *text = malloc(size);
    if (text == NULL) return NULL;
    char *p = text;
    *p++ = '[';
    for (int h = 0; h < d[0]; h++) {
        *p++ = h ? ',' : '[';
        if (h) *p++ = '[';
        for (int i = 0; i < d[1]; i++) {
            *p++ = i ? ',' : '[';
            if (i) *p++ = '[';
            const float *row = x + ((size_t)h * d[1] + i) * d[2];
            for (int j = 0; j < d[2]; j++)
                p += snprintf(p, NUMBER_MAX + 1, "%s%.9g", j ? "," : "", (double)row[j]);
            *p++ = ']';
        }
        *p++ = ']';
    }
    *p++ = ']';
    *p = '\0';
    return text;
}

static bool add_map(cJSON *maps, const attn_attention_map *m, bool with_weights)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddItemToArray(maps, o)) {
        cJSON_Delete(o);
        return false;
    }
    bool ok = cJSON_AddStringToObject(o, "name", m->name) &&
              cJSON_AddStringToObject(o, "site", m->site) &&
              cJSON_AddNumberToObject(o, "layer", m->layer) &&
              cJSON_AddStringToObject(o, "kind", attn_map_kind_name(m->kind)) &&
              cJSON_AddBoolToObject(o, "hard", m->hard) &&
              (m->kind != ATTN_MAP_SELF ||
               cJSON_AddStringToObject(o, "tokens", m->over_queries ? "queries" : "keys")) &&
              cJSON_AddNumberToObject(o, "heads", m->heads) &&
              cJSON_AddNumberToObject(o, "rows", m->rows) &&
              cJSON_AddNumberToObject(o, "cols", m->cols) &&
              (m->head_dim == 0 || cJSON_AddNumberToObject(o, "head_dim", m->head_dim));
    for (int p = 0; p < PARTS && ok && with_weights; p++) {
        int shape[3];
        const float *x = part_of(m, p, shape);
        if (x == NULL) continue;
        char *text = array_text(x, shape);
        ok = text != NULL && cJSON_AddRawToObject(o, PART[p].key, text) != NULL;
        free(text);
    }
    return ok;
}

static bool has_gradients(const attn_record *r)
{
    for (int i = 0; i < r->n_maps; i++)
        if (r->maps[i].gradient) return true;
    return false;
}

/* The record as JSON text (free with cJSON_free), or NULL when out of memory. A
 * JSON file (with_weights) carries its checksum's keys, the sum's placeholder
 * first; a safetensors record's is the file's. */
static char *record_json(const attn_record *r, bool with_weights)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root && cJSON_AddStringToObject(root, "format", FORMAT_NAME) &&
              (!with_weights ||
               (cJSON_AddStringToObject(root, ATTN_SEALED_KEY, ATTN_SEALED_VALUE) &&
                cJSON_AddStringToObject(root, ATTN_CHECKSUM_KEY, ATTN_CHECKSUM_PLACEHOLDER))) &&
              cJSON_AddNumberToObject(root, "version", FORMAT_VERSION) &&
              cJSON_AddStringToObject(root, "model", r->model) &&
              cJSON_AddStringToObject(root, "task", r->task) &&
              add_tokens(root, "queries", r->queries, r->n_queries) &&
              add_tokens(root, "keys", r->keys, r->n_keys);
    cJSON *maps = ok ? cJSON_AddArrayToObject(root, "maps") : NULL;
    ok = maps != NULL;
    for (int i = 0; i < r->n_maps && ok; i++) ok = add_map(maps, &r->maps[i], with_weights);
    ok = ok && (!has_gradients(r) ||
                cJSON_AddNumberToObject(root, "gradient_step", r->gradient_step));
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

/* Writes text and a newline atomically (attn_write_file_atomically), its
 * checksum over the placeholder. */
static attn_status write_json_atomically(const char *path, char *text)
{
    const attn_file_part parts[2] = {{text, strlen(text)}, {"\n", 1}};
    attn_checksum_seal(text, parts[0].size, parts, 2);
    return attn_write_file_atomically(path, parts, 2);
}

static attn_status save_safetensors(const attn_record *r, const char *path, const char *json)
{
    const int n = r->n_maps * PARTS;
    attn_tensor_out *tensors = calloc((size_t)n + 1, sizeof *tensors);
    char (*names)[TENSOR_NAME_MAX] = calloc((size_t)n + 1, sizeof *names);
    int64_t(*shapes)[3] = calloc((size_t)n + 1, sizeof *shapes);
    attn_status s;
    if (tensors == NULL || names == NULL || shapes == NULL) {
        s = attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory to write %d maps", r->n_maps);
    } else {
        int count = 0;
        for (int i = 0; i < r->n_maps; i++)
            for (int p = 0; p < PARTS; p++) {
                int shape[3];
                const float *x = part_of(&r->maps[i], p, shape);
                if (x == NULL) continue;
                snprintf(names[count], sizeof names[count], "%s%s", PART[p].prefix,
                         r->maps[i].name);
                for (int d = 0; d < 3; d++) shapes[count][d] = shape[d];
                tensors[count] = (attn_tensor_out){.name = names[count],
                                                   .dtype = ATTN_DTYPE_F32,
                                                   .ndim = 3,
                                                   .shape = shapes[count],
                                                   .data = x};
                count++;
            }
        const attn_metadata_pair meta[] = {{KIND_KEY, KIND_VALUE}, {RECORD_KEY, json}};
        s = attn_safetensors_save(path, tensors, count, meta, 2);
    }
    free(tensors);
    free(names);
    free(shapes);
    return s;
}

attn_status attn_record_save(const attn_record *r, const char *path)
{
    attn_status s;
    if ((s = attn_check_not_null(r, "record")) || (s = attn_check_not_null(path, "path")))
        return s;
    if (!attn_utf8_valid(r->model, strlen(r->model)) || !attn_utf8_valid(r->task, strlen(r->task)))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "the record's model or task is not UTF-8");
    for (int i = 0; i < r->n_maps; i++)
        if ((s = attn_record_check_map(r, i, ATTN_ERR_INVALID_ARGUMENT))) return s;
    const bool json = has_json_extension(path);
    char *text = record_json(r, json);
    if (text == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the JSON of '%s'", path);
    s = json ? write_json_atomically(path, text) : save_safetensors(r, path, text);
    cJSON_free(text);
    return s;
}

/* ---- reading ------------------------------------------------------------------------------- */

/* What a load is reading: the file for messages, and its tensors (safetensors) or
 * NULL (JSON, weights inline). */
typedef struct loader {
    const char *path;
    const attn_safetensors *st;
} loader;

/* ATTN_ERR_FORMAT with the file's name before the message. */
static attn_status fail(const loader *ld, const char *fmt, ...) ATTN_PRINTF(2, 3);
static attn_status fail(const loader *ld, const char *fmt, ...)
{
    char message[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    return attn_error(ATTN_ERR_FORMAT, "'%s': %s", ld->path, message);
}

/* The message of the last failure, as a format error of the file. */
static attn_status fail_with_last(const loader *ld, attn_status status)
{
    if (status == ATTN_ERR_OUT_OF_MEMORY) return status;
    char message[512];
    snprintf(message, sizeof message, "%s", attn_last_error());
    return fail(ld, "%s", message);
}

static const cJSON *field(const cJSON *object, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(object, key);
}

/* An integer in [lo, hi] that a double holds exactly. */
static bool json_int(const cJSON *item, int lo, int hi, int *out)
{
    if (!cJSON_IsNumber(item)) return false;
    const double v = item->valuedouble;
    if (!(v >= lo && v <= hi) || v != (double)(int)v) return false;
    *out = (int)v;
    return true;
}

static attn_status read_string(const loader *ld, const cJSON *object, const char *key, char *out,
                               size_t size)
{
    const cJSON *item = field(object, key);
    if (!cJSON_IsString(item)) return fail(ld, "\"%s\" is missing or not a string", key);
    if (strlen(item->valuestring) >= size)
        return fail(ld, "\"%s\" has %zu bytes; at most %zu fit", key, strlen(item->valuestring),
                    size - 1);
    if (!attn_utf8_valid(item->valuestring, strlen(item->valuestring)))
        return fail(ld, "\"%s\" is not UTF-8", key);
    snprintf(out, size, "%s", item->valuestring);
    return ATTN_OK;
}

static attn_status read_tokens(const loader *ld, attn_record *r, const cJSON *root, bool queries)
{
    const char *key = queries ? "queries" : "keys";
    const cJSON *array = field(root, key);
    if (!cJSON_IsArray(array)) return fail(ld, "\"%s\" is missing or not an array", key);
    const int n = cJSON_GetArraySize(array);
    if (n > MAX_TOKENS) return fail(ld, "\"%s\" holds %d tokens; at most %d", key, n, MAX_TOKENS);
    const char **tokens = calloc((size_t)n + 1, sizeof *tokens);
    if (tokens == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d tokens", n);
    attn_status s = ATTN_OK;
    int i = 0;
    for (const cJSON *item = array->child; item != NULL; item = item->next, i++)
        if (!cJSON_IsString(item)) {
            s = fail(ld, "\"%s\"[%d] is not a string", key, i);
            break;
        } else {
            tokens[i] = item->valuestring;
        }
    if (s == ATTN_OK) {
        s = queries ? attn_record_set_queries(r, tokens, n) : attn_record_set_keys(r, tokens, n);
        if (s) s = fail_with_last(ld, s);
    }
    free(tokens);
    return s;
}

/* o's part p must be an array of d[0] arrays of d[1] arrays of d[2] numbers. */
static attn_status check_inline(const loader *ld, const char *name, const cJSON *o, int p,
                                const int d[3])
{
    const char *key = PART[p].key;
    /* the weights' messages name no part, as before the others existed */
    char part[16] = "";
    if (p != PART_WEIGHTS) snprintf(part, sizeof part, "\"%s\" ", key);
    const char *unit = p == PART_WEIGHTS ? "weights" : "values";
    const cJSON *heads = field(o, key);
    if (!cJSON_IsArray(heads) || cJSON_GetArraySize(heads) != d[0])
        return fail(ld, "map '%s': \"%s\" is not an array of %d heads", name, key, d[0]);
    int h = 0;
    for (const cJSON *head = heads->child; head != NULL; head = head->next, h++) {
        if (!cJSON_IsArray(head) || cJSON_GetArraySize(head) != d[1])
            return fail(ld, "map '%s': head %d of \"%s\" is not an array of %d rows", name, h,
                        key, d[1]);
        int i = 0;
        for (const cJSON *row = head->child; row != NULL; row = row->next, i++) {
            if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != d[2])
                return fail(ld, "map '%s': %shead %d row %d is not an array of %d %s", name,
                            part, h, i, d[2], unit);
            int j = 0;
            for (const cJSON *w = row->child; w != NULL; w = w->next, j++)
                if (!cJSON_IsNumber(w))
                    return fail(ld, "map '%s': %shead %d row %d column %d is not a number",
                                name, part, h, i, j);
        }
    }
    return ATTN_OK;
}

/* out: the checked arrays of o's part p, in order. */
static void read_inline(float *out, const cJSON *o, int p)
{
    for (const cJSON *head = field(o, PART[p].key)->child; head != NULL; head = head->next)
        for (const cJSON *row = head->child; row != NULL; row = row->next)
            for (const cJSON *w = row->child; w != NULL; w = w->next)
                *out++ = (float)w->valuedouble;
}

/* The tensor of map `map`'s part p, shaped d; *out NULL when an optional part is
 * absent. */
static attn_status find_tensor(const loader *ld, const char *map, int p, const int d[3],
                               const attn_tensor_view **out)
{
    char name[TENSOR_NAME_MAX];
    snprintf(name, sizeof name, "%s%s", PART[p].prefix, map);
    const attn_tensor_view *t = attn_safetensors_find(ld->st, name);
    *out = t;
    if (t == NULL)
        return p == PART_WEIGHTS ? fail(ld, "map '%s' has no tensor '%s'", map, name) : ATTN_OK;
    if (t->ndim != 3 || t->shape[0] != d[0] || t->shape[1] != d[1] || t->shape[2] != d[2]) {
        char shape[160];
        attn_format_shape(shape, sizeof shape, t->shape, t->ndim);
        return fail(ld, "tensor '%s' is shaped %s, but its map%s%s is (%d, %d, %d)", name, shape,
                    p == PART_WEIGHTS ? "" : "'s ", p == PART_WEIGHTS ? "" : PART[p].key, d[0],
                    d[1], d[2]);
    }
    return ATTN_OK;
}

/* The map's sizes as the file claims them, checked against its data before
 * anything is allocated for them. */
typedef struct map_sizes {
    const char *name;
    int heads, rows, cols, head_dim;
} map_sizes;

/* The map z as it would be added, to read its parts' shapes before it is. */
static attn_attention_map sized(const map_sizes *z)
{
    return (attn_attention_map){
        .heads = z->heads, .rows = z->rows, .cols = z->cols, .head_dim = z->head_dim};
}

/* Map z's tensors (safetensors; NULL for an absent optional part) or inline
 * arrays (JSON; *has[p] says which are there), every one checked against its
 * shape before the map is added. */
static attn_status find_parts(const loader *ld, const map_sizes *z, const cJSON *o,
                              const attn_tensor_view *tensors[PARTS], bool has[PARTS])
{
    for (int p = 0; p < PARTS; p++) {
        char name[TENSOR_NAME_MAX];
        snprintf(name, sizeof name, "%s%s", PART[p].prefix, z->name);
        has[p] = p == PART_WEIGHTS || (ld->st ? attn_safetensors_find(ld->st, name) != NULL
                                              : field(o, PART[p].key) != NULL);
    }
    if (has[PART_Q] != has[PART_K] || has[PART_Q] != (z->head_dim > 0))
        return fail(ld, "map '%s' needs q, k and \"head_dim\" together (it has %s)", z->name,
                    has[PART_Q] ? "q" : has[PART_K] ? "k" : "\"head_dim\"");
    const attn_attention_map shape_of = sized(z);
    for (int p = 0; p < PARTS; p++) {
        int d[3];
        part_of(&shape_of, p, d);
        attn_status s;
        tensors[p] = NULL;
        if (ld->st && (s = find_tensor(ld, z->name, p, d, &tensors[p]))) return s;
        if (!ld->st && has[p] && (s = check_inline(ld, z->name, o, p, d))) return s;
    }
    return ATTN_OK;
}

/* Fills part p of map i of r from its tensor t or from o. */
static attn_status read_part(const loader *ld, attn_record *r, int i, const cJSON *o, int p,
                             const attn_tensor_view *t)
{
    int d[3];
    float *x = part_of(&r->maps[i], p, d);
    if (t == NULL) {
        read_inline(x, o, p);
        return ATTN_OK;
    }
    attn_status s = attn_tensor_read_f32(t, x, (size_t)d[0] * d[1] * d[2]);
    return s ? fail_with_last(ld, s) : ATTN_OK;
}

static attn_status read_map(const loader *ld, attn_record *r, const cJSON *o, int index)
{
    if (!cJSON_IsObject(o)) return fail(ld, "map %d is not an object", index);
    const cJSON *name = field(o, "name"), *kind = field(o, "kind"), *hard = field(o, "hard");
    const cJSON *tokens = field(o, "tokens"), *site = field(o, "site");
    if (!cJSON_IsString(name)) return fail(ld, "map %d has no \"name\" string", index);
    map_sizes z = {.name = name->valuestring};
    int layer;
    if (!json_int(field(o, "layer"), 0, 1 << 20, &layer))
        return fail(ld, "map '%s': \"layer\" is not an integer in [0, %d]", z.name, 1 << 20);
    /* Records written before maps had sites: each map is a site of its own. */
    if (site != NULL && !cJSON_IsString(site))
        return fail(ld, "map '%s': \"site\" is not a string", z.name);
    const char *at = site ? site->valuestring : z.name;
    if (!cJSON_IsString(kind) ||
        (strcmp(kind->valuestring, "self") != 0 && strcmp(kind->valuestring, "cross") != 0))
        return fail(ld, "map '%s': \"kind\" is not \"self\" or \"cross\"", z.name);
    const attn_map_kind k = kind->valuestring[0] == 's' ? ATTN_MAP_SELF : ATTN_MAP_CROSS;
    if (!cJSON_IsBool(hard)) return fail(ld, "map '%s': \"hard\" is not true or false", z.name);
    bool over_queries = false;
    if (k == ATTN_MAP_SELF && tokens != NULL) {
        if (!cJSON_IsString(tokens) || (strcmp(tokens->valuestring, "keys") != 0 &&
                                        strcmp(tokens->valuestring, "queries") != 0))
            return fail(ld, "map '%s': \"tokens\" is not \"keys\" or \"queries\"", z.name);
        over_queries = tokens->valuestring[0] == 'q';
    }
    if (!json_int(field(o, "heads"), 1, MAX_TOKENS, &z.heads) ||
        !json_int(field(o, "rows"), 1, MAX_TOKENS, &z.rows) ||
        !json_int(field(o, "cols"), 1, MAX_TOKENS, &z.cols))
        return fail(ld, "map '%s': \"heads\", \"rows\" and \"cols\" must be integers in [1, %d]",
                    z.name, MAX_TOKENS);
    const cJSON *head_dim = field(o, "head_dim");
    if (head_dim != NULL && !json_int(head_dim, 1, MAX_TOKENS, &z.head_dim))
        return fail(ld, "map '%s': \"head_dim\" is not an integer in [1, %d]", z.name,
                    MAX_TOKENS);
    const attn_tensor_view *tensors[PARTS];
    bool has[PARTS];
    attn_status s = find_parts(ld, &z, o, tensors, has);
    if (s) return s;
    float *x;
    const int i = r->n_maps;
    if ((s = attn_record_add_map(r, at, layer, k, cJSON_IsTrue(hard), z.heads, z.rows, z.cols,
                                 &x)) ||
        (has[PART_Q] && (s = attn_record_add_qk(r, i, z.head_dim, NULL, NULL))) ||
        (has[PART_GRADIENT] && (s = attn_record_add_gradient(r, i, &x))))
        return fail_with_last(ld, s);
    if (strcmp(r->maps[i].name, z.name) != 0)
        return fail(ld, "map '%s' is not what its site '%s' names in layer %d", z.name, at, layer);
    r->maps[i].over_queries = over_queries;
    for (int p = 0; p < PARTS; p++)
        if (has[p] && (s = read_part(ld, r, i, o, p, tensors[p]))) return s;
    return ATTN_OK;
}

/* Every tensor of a safetensors record belongs to one of its maps. */
static attn_status check_no_stray_tensors(const loader *ld, const attn_record *r)
{
    const int count = attn_safetensors_count(ld->st);
    for (int i = 0; i < count; i++) {
        const char *name = attn_safetensors_at(ld->st, i)->name;
        bool found = false;
        for (int p = 0; p < PARTS && !found; p++) {
            const size_t prefix = strlen(PART[p].prefix);
            found = strncmp(name, PART[p].prefix, prefix) == 0 &&
                    attn_record_find(r, name + prefix) != NULL;
        }
        if (!found) return fail(ld, "tensor '%s' belongs to no map of the record", name);
    }
    return ATTN_OK;
}

static attn_status read_record(const loader *ld, attn_record *r, const cJSON *root)
{
    if (!cJSON_IsObject(root)) return fail(ld, "the record is not a JSON object");
    const cJSON *format = field(root, "format");
    if (!cJSON_IsString(format) || strcmp(format->valuestring, FORMAT_NAME) != 0)
        return fail(ld, "not an attention record (\"format\" is not \"%s\")", FORMAT_NAME);
    int version;
    if (!json_int(field(root, "version"), 0, 1 << 30, &version) || version != FORMAT_VERSION)
        return fail(ld, "\"version\" is not %d", FORMAT_VERSION);
    attn_status s;
    if ((s = read_string(ld, root, "model", r->model, sizeof r->model)) ||
        (s = read_string(ld, root, "task", r->task, sizeof r->task)) ||
        (s = read_tokens(ld, r, root, true)) || (s = read_tokens(ld, r, root, false)))
        return s;
    const cJSON *maps = field(root, "maps");
    if (!cJSON_IsArray(maps)) return fail(ld, "\"maps\" is missing or not an array");
    const int n = cJSON_GetArraySize(maps);
    if (n > ATTN_RECORD_MAPS_MAX)
        return fail(ld, "%d maps; a record holds at most %d", n, ATTN_RECORD_MAPS_MAX);
    int i = 0;
    const cJSON *step = field(root, "gradient_step");
    if (step != NULL && !json_int(step, ATTN_EXPLAIN_ALL, MAX_TOKENS, &r->gradient_step))
        return fail(ld, "\"gradient_step\" is not an integer in [%d, %d]", ATTN_EXPLAIN_ALL,
                    MAX_TOKENS);
    for (const cJSON *o = maps->child; o != NULL; o = o->next, i++)
        if ((s = read_map(ld, r, o, i))) return s;
    if (step == NULL && has_gradients(r))
        return fail(ld, "maps have gradients but the record has no \"gradient_step\"");
    if (ld->st && (s = check_no_stray_tensors(ld, r))) return s;
    for (i = 0; i < r->n_maps; i++)
        if ((s = attn_record_check_map(r, i, ATTN_ERR_FORMAT))) return fail_with_last(ld, s);
    return ATTN_OK;
}

/* text: a JSON record; a whole file (file true) is checked against its checksum. */
static attn_status parse_json(const loader *ld, attn_record *r, const char *text, size_t size,
                              bool file)
{
    cJSON *root = cJSON_ParseWithLength(text, size);
    if (root == NULL) {
        const char *at = cJSON_GetErrorPtr();
        return fail(ld, "not valid JSON (at byte %td)", at && at >= text ? at - text : (ptrdiff_t)0);
    }
    attn_status s = ATTN_OK;
    if (file) {
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(root, ATTN_CHECKSUM_KEY);
        const cJSON *sealed = cJSON_GetObjectItemCaseSensitive(root, ATTN_SEALED_KEY);
        if ((s = attn_checksum_verify((const unsigned char *)text, size, 0, size,
                                      cJSON_IsString(value) ? value->valuestring : NULL,
                                      cJSON_IsString(sealed) ? sealed->valuestring : NULL)))
            s = fail_with_last(ld, s);
    }
    if (s == ATTN_OK) s = read_record(ld, r, root);
    cJSON_Delete(root);
    return s;
}

static attn_status parse_safetensors(loader *ld, attn_record *r, const void *bytes, size_t size)
{
    attn_safetensors *st;
    attn_status s = attn_safetensors_parse(&st, bytes, size);
    if (s) return fail_with_last(ld, s);
    ld->st = st;
    const char *kind = attn_safetensors_metadata(st, KIND_KEY);
    const char *json = attn_safetensors_metadata(st, RECORD_KEY);
    if (kind == NULL || strcmp(kind, KIND_VALUE) != 0)
        s = fail(ld, "not an attention record (metadata \"%s\" is not \"%s\")", KIND_KEY,
                 KIND_VALUE);
    else if (json == NULL)
        s = fail(ld, "the metadata has no \"%s\"", RECORD_KEY);
    else
        s = parse_json(ld, r, json, strlen(json), false);
    attn_safetensors_close(st);
    return s;
}

/* A safetensors file starts with its header's length, little-endian in 8 bytes,
 * which must fit in the file; text never does (it has no NUL bytes to make the
 * number small). */
static bool looks_like_safetensors(const char *bytes, size_t size)
{
    if (size < 8) return false;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | (unsigned char)bytes[i];
    return n <= size - 8;
}

attn_status attn_record_load(attn_record *r, const char *path)
{
    attn_status s;
    if ((s = attn_check_not_null(r, "record")) || (s = attn_check_not_null(path, "path")))
        return s;
    attn_record_init(r, "", "");
    char *bytes = NULL;
    size_t size = 0;
    if ((s = attn_read_file(path, MAX_FILE_BYTES, "a record", &bytes, &size))) return s;
    loader ld = {.path = path};
    s = looks_like_safetensors(bytes, size) ? parse_safetensors(&ld, r, bytes, size)
                                            : parse_json(&ld, r, bytes, size, true);
    free(bytes);
    if (s) attn_record_free(r);
    return s;
}
