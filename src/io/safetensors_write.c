/* Writing safetensors files: validate everything first, build the header with
 * cJSON, then write the file atomically (attn_write_file_atomically), so that
 * readers see either the old file or the complete new one. */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "core/utf8.h"
#include "io/io_internal.h"

/* Tensor data is written as it lies in memory, and the format is little-endian. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "attn_safetensors_save assumes a little-endian host"
#endif

#define METADATA_KEY "__metadata__"
/* The data section starts at a multiple of this, as the Python library writes it,
 * so that a mapped file can be read in place as float64. */
#define DATA_ALIGN 8
#define MAX_DATA_BYTES (UINT64_C(1) << 53)

/* ---- validating the arguments --------------------------------------------------- */

static attn_status check_name(const char *name, const char *what, int i)
{
    if (name == NULL)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s %d has a NULL name", what, i);
    if (!attn_utf8_valid(name, strlen(name)))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s %d name is not valid UTF-8", what, i);
    return ATTN_OK;
}

/* Checks one tensor and sets *nbytes to the size of its data. */
static attn_status check_tensor(const attn_tensor_out *t, int i, size_t *nbytes)
{
    attn_status s = check_name(t->name, "tensor", i);
    if (s != ATTN_OK) return s;
    if (strcmp(t->name, METADATA_KEY) == 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "tensor %d may not be named '%s'", i,
                          METADATA_KEY);
    if (!attn_dtype_is_valid(t->dtype))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "tensor '%s' has invalid dtype %d", t->name,
                          (int)t->dtype);
    if (t->ndim < 0 || t->ndim > ATTN_MAX_DIMS)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "tensor '%s' has ndim %d, outside 0..%d",
                          t->name, t->ndim, ATTN_MAX_DIMS);
    if (t->ndim > 0 && t->shape == NULL)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "tensor '%s' has a NULL shape", t->name);
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "tensor '%s' dimension %d is %lld",
                              t->name, d, (long long)t->shape[d]);
        uint64_t n = (uint64_t)t->shape[d];
        if (n != 0 && numel > SIZE_MAX / n)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "tensor '%s' has too many elements",
                              t->name);
        numel *= (size_t)n;
    }
    size_t size = attn_dtype_size(t->dtype);
    if (numel > SIZE_MAX / size)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "tensor '%s' has too many bytes", t->name);
    *nbytes = numel * size;
    if (*nbytes > 0 && t->data == NULL)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "tensor '%s' has NULL data", t->name);
    return ATTN_OK;
}

static int compare_strings(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* Fails naming the first name that appears twice in names[0..n). Sorts names. */
static attn_status check_unique(const char **names, int n, const char *what)
{
    qsort(names, (size_t)n, sizeof *names, compare_strings);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s '%s' appears twice", what, names[i]);
    return ATTN_OK;
}

static attn_status check_tensors(const attn_tensor_out *tensors, int count, size_t *nbytes)
{
    uint64_t total = 0;
    for (int i = 0; i < count; i++) {
        attn_status s = check_tensor(&tensors[i], i, &nbytes[i]);
        if (s != ATTN_OK) return s;
        /* Readers take offsets as JSON numbers, exact only below 2^53. */
        if (nbytes[i] > MAX_DATA_BYTES - total)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "the tensors up to '%s' hold more than 2^53 bytes", tensors[i].name);
        total += nbytes[i];
    }
    const char **names = malloc(((size_t)count + 1) * sizeof *names);
    if (names == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d names", count);
    for (int i = 0; i < count; i++) names[i] = tensors[i].name;
    attn_status s = check_unique(names, count, "tensor name");
    free(names);
    return s;
}

static attn_status check_metadata(const attn_metadata_pair *meta, int count)
{
    for (int i = 0; i < count; i++) {
        attn_status s = check_name(meta[i].key, "metadata pair", i);
        if (s != ATTN_OK) return s;
        if (strcmp(meta[i].key, ATTN_CHECKSUM_KEY) == 0 ||
            strcmp(meta[i].key, ATTN_SEALED_KEY) == 0)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "metadata '%s' belongs to the file's checksum, which the writer "
                              "adds",
                              meta[i].key);
        if (meta[i].value == NULL)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "metadata '%s' has a NULL value",
                              meta[i].key);
        if (!attn_utf8_valid(meta[i].value, strlen(meta[i].value)))
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "metadata '%s' value is not valid UTF-8",
                              meta[i].key);
    }
    const char **keys = malloc(((size_t)count + 1) * sizeof *keys);
    if (keys == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d keys", count);
    for (int i = 0; i < count; i++) keys[i] = meta[i].key;
    attn_status s = check_unique(keys, count, "metadata key");
    free(keys);
    return s;
}

/* ---- the header ---------------------------------------------------------------- */

/* An integer as raw JSON text: cJSON would print numbers past 2^31 in %g form,
 * which other readers reject as offsets. */
static bool add_integer(cJSON *array, uint64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, value);
    cJSON *item = cJSON_CreateRaw(text);
    return item != NULL && cJSON_AddItemToArray(array, item);
}

static bool add_tensor_entry(cJSON *root, const attn_tensor_out *t, size_t begin, size_t end)
{
    cJSON *entry = cJSON_AddObjectToObject(root, t->name);
    if (entry == NULL || cJSON_AddStringToObject(entry, "dtype", attn_dtype_name(t->dtype)) == NULL)
        return false;
    cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
    if (shape == NULL) return false;
    for (int d = 0; d < t->ndim; d++)
        if (!add_integer(shape, (uint64_t)t->shape[d])) return false;
    cJSON *offsets = cJSON_AddArrayToObject(entry, "data_offsets");
    return offsets != NULL && add_integer(offsets, begin) && add_integer(offsets, end);
}

/* The caller's pairs, then the mark of a checksummed file and the checksum's
 * placeholder. */
static bool add_metadata(cJSON *root, const attn_metadata_pair *meta, int count)
{
    cJSON *object = cJSON_AddObjectToObject(root, METADATA_KEY);
    if (object == NULL) return false;
    for (int i = 0; i < count; i++)
        if (cJSON_AddStringToObject(object, meta[i].key, meta[i].value) == NULL) return false;
    return cJSON_AddStringToObject(object, ATTN_SEALED_KEY, ATTN_SEALED_VALUE) != NULL &&
           cJSON_AddStringToObject(object, ATTN_CHECKSUM_KEY, ATTN_CHECKSUM_PLACEHOLDER) != NULL;
}

/* The header's JSON text, or NULL when out of memory (free with cJSON_free). */
static char *build_header_json(const attn_tensor_out *tensors, int count, const size_t *nbytes,
                               const attn_metadata_pair *meta, int meta_count)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL && add_metadata(root, meta, meta_count);
    size_t offset = 0;
    for (int i = 0; i < count && ok; i++) {
        ok = add_tensor_entry(root, &tensors[i], offset, offset + nbytes[i]);
        offset += nbytes[i];
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

/* The 8-byte length, the JSON, then spaces up to a multiple of DATA_ALIGN.
 * Sets *size; NULL when out of memory. */
static unsigned char *build_header(const char *json, size_t *size)
{
    size_t json_len = strlen(json);
    size_t padded = json_len + (DATA_ALIGN - (8 + json_len) % DATA_ALIGN) % DATA_ALIGN;
    unsigned char *header = malloc(8 + padded);
    if (header == NULL) return NULL;
    for (int i = 0; i < 8; i++) header[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(header + 8, json, json_len);
    memset(header + 8 + json_len, ' ', padded - json_len);
    *size = 8 + padded;
    return header;
}

/* The header, then every tensor's bytes, written atomically, with the checksum. */
static attn_status write_file(const char *path, unsigned char *header, size_t header_size,
                              const attn_tensor_out *tensors, int count, const size_t *nbytes)
{
    attn_file_part *parts = malloc(((size_t)count + 1) * sizeof *parts);
    if (parts == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d parts", count);
    parts[0] = (attn_file_part){header, header_size};
    for (int i = 0; i < count; i++) parts[i + 1] = (attn_file_part){tensors[i].data, nbytes[i]};
    attn_checksum_seal((char *)header, header_size, parts, count + 1);
    attn_status s = attn_write_file_atomically(path, parts, count + 1);
    free(parts);
    return s;
}

attn_status attn_safetensors_save(const char *path, const attn_tensor_out *tensors, int count,
                                  const attn_metadata_pair *meta, int meta_count)
{
    attn_status s;
    if ((s = attn_check_not_null(path, "path")) ||
        (s = attn_check_at_least(count, 0, "tensor count")) ||
        (s = attn_check_at_least(meta_count, 0, "metadata count")))
        return s;
    if (count > 0 && (s = attn_check_not_null(tensors, "tensors"))) return s;
    if (meta_count > 0 && (s = attn_check_not_null(meta, "meta"))) return s;
    size_t *nbytes = calloc((size_t)count + 1, sizeof *nbytes);
    if (nbytes == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d sizes", count);
    char *json = NULL;
    unsigned char *header = NULL;
    size_t header_size = 0;
    if ((s = check_tensors(tensors, count, nbytes)) == ATTN_OK &&
        (s = check_metadata(meta, meta_count)) == ATTN_OK) {
        json = build_header_json(tensors, count, nbytes, meta, meta_count);
        header = json ? build_header(json, &header_size) : NULL;
        s = header ? write_file(path, header, header_size, tensors, count, nbytes)
                   : attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the header of '%s'", path);
    }
    free(header);
    cJSON_free(json);
    free(nbytes);
    return s;
}
