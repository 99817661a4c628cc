/* Reading safetensors files: map or borrow the bytes, validate the header
 * completely, then hand out views into the data section.
 *
 * Every number in the file is hostile until checked. The order of checks is:
 * the 8-byte length; the header bytes (UTF-8, no NUL, and a leading '{', so that
 * a JSON value that parses is an object); the JSON; each entry on its own
 * (dtype, shape, offsets against the data size and the byte count the shape
 * implies); then the entries together (unique names, and the sorted extents
 * tile the data section with no overlap and no gap, as the reference
 * implementation requires). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "core/utf8.h"
#include "io/io_internal.h"

/* The reference implementation's limit; a larger header is a corrupt length. */
#define MAX_HEADER_BYTES 100000000ull
/* JSON numbers are doubles: above this not every integer is exact, so a larger
 * offset or dimension cannot be trusted to be the one that was written. */
#define MAX_EXACT_INTEGER 9007199254740992.0 /* 2^53 */
#define METADATA_KEY "__metadata__"

struct attn_safetensors {
    void *mapping; /* the mmap this object owns, or NULL when the bytes are borrowed */
    size_t mapping_size;
    cJSON *header; /* tensor names and metadata strings point into it */
    attn_tensor_view *tensors; /* in header order */
    int count;
    const attn_tensor_view **by_name; /* sorted by name, for binary search */
    const char **meta_keys, **meta_values; /* in header order */
    int meta_count;
};

/* One tensor's place in the data section, for the overlap and gap checks. */
typedef struct extent {
    size_t begin, end;
    const char *name;
} extent;

/* ---- small helpers ------------------------------------------------------------ */

static uint64_t load_u64_le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* The item as a non-negative integer that a double holds exactly. */
static bool json_exact_count(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!(v >= 0.0 && v < MAX_EXACT_INTEGER)) return false; /* also rejects NaN */
    uint64_t n = (uint64_t)v;
    if ((double)n != v) return false;
    *out = n;
    return true;
}

/* A short description of a JSON value for messages: the number, or its type. */
static void describe_json(char *buf, size_t size, const cJSON *item)
{
    if (cJSON_IsNumber(item)) snprintf(buf, size, "%.17g", item->valuedouble);
    else if (cJSON_IsString(item)) snprintf(buf, size, "the string \"%.40s\"", item->valuestring);
    else if (cJSON_IsArray(item)) snprintf(buf, size, "an array");
    else if (cJSON_IsObject(item)) snprintf(buf, size, "an object");
    else if (cJSON_IsBool(item)) snprintf(buf, size, "a boolean");
    else if (cJSON_IsNull(item)) snprintf(buf, size, "null");
    else snprintf(buf, size, "an invalid value");
}

static int compare_names(const void *a, const void *b)
{
    const attn_tensor_view *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int compare_strings(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* By begin, then by end, so that an empty tensor at offset k sorts before a
 * non-empty one starting at k and both fit. */
static int compare_extents(const void *a, const void *b)
{
    const extent *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* ---- one tensor entry -------------------------------------------------------------- */

static attn_status parse_dtype(attn_tensor_view *t, const cJSON *entry)
{
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    if (dtype == NULL) return attn_error(ATTN_ERR_FORMAT, "tensor '%s' has no dtype", t->name);
    if (!cJSON_IsString(dtype)) {
        char what[64];
        describe_json(what, sizeof what, dtype);
        return attn_error(ATTN_ERR_FORMAT, "tensor '%s' has dtype %s, not a string", t->name,
                          what);
    }
    if (!attn_dtype_from_name(dtype->valuestring, &t->dtype))
        return attn_error(ATTN_ERR_FORMAT, "tensor '%s' has unknown dtype \"%.40s\"", t->name,
                          dtype->valuestring);
    return ATTN_OK;
}

static attn_status parse_shape(attn_tensor_view *t, const cJSON *entry)
{
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    if (shape == NULL) return attn_error(ATTN_ERR_FORMAT, "tensor '%s' has no shape", t->name);
    if (!cJSON_IsArray(shape))
        return attn_error(ATTN_ERR_FORMAT, "tensor '%s' has a shape that is not an array",
                          t->name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > ATTN_MAX_DIMS)
        return attn_error(ATTN_ERR_FORMAT, "tensor '%s' has %d dimensions; at most %d are allowed",
                          t->name, ndim, ATTN_MAX_DIMS);
    uint64_t numel = 1;
    int d = 0;
    for (const cJSON *dim = shape->child; dim != NULL; dim = dim->next, d++) {
        uint64_t n;
        if (!json_exact_count(dim, &n)) {
            char what[64];
            describe_json(what, sizeof what, dim);
            return attn_error(ATTN_ERR_FORMAT,
                              "tensor '%s': shape dimension %d is %s, not a non-negative integer",
                              t->name, d, what);
        }
        t->shape[d] = (int64_t)n;
        if (n != 0 && numel > SIZE_MAX / n)
            return attn_error(ATTN_ERR_FORMAT,
                              "tensor '%s': the element count of its shape overflows at "
                              "dimension %d (%llu)", t->name, d, (unsigned long long)n);
        numel *= n;
    }
    t->ndim = ndim;
    t->numel = (size_t)numel;
    return ATTN_OK;
}

/* Checks data_offsets against the data section and the shape; sets the extent. */
static attn_status parse_offsets(attn_tensor_view *t, extent *ext, const cJSON *entry,
                                 size_t data_size)
{
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (offsets == NULL)
        return attn_error(ATTN_ERR_FORMAT, "tensor '%s' has no data_offsets", t->name);
    uint64_t begin, end;
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        !json_exact_count(offsets->child, &begin) ||
        !json_exact_count(offsets->child->next, &end))
        return attn_error(ATTN_ERR_FORMAT,
                          "tensor '%s': data_offsets is not a pair of non-negative integers",
                          t->name);
    if (begin > end)
        return attn_error(ATTN_ERR_FORMAT,
                          "tensor '%s': data_offsets [%llu, %llu] ends before it begins",
                          t->name, (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return attn_error(ATTN_ERR_FORMAT,
                          "tensor '%s': data_offsets [%llu, %llu] end past the %zu-byte "
                          "data section",
                          t->name, (unsigned long long)begin, (unsigned long long)end, data_size);
    size_t size = attn_dtype_size(t->dtype);
    size_t nbytes = (size_t)(end - begin);
    /* Compare by division so that numel * size cannot overflow. */
    if (nbytes % size != 0 || nbytes / size != t->numel) {
        char shape[160];
        attn_format_shape(shape, sizeof shape, t->shape, t->ndim);
        return attn_error(ATTN_ERR_FORMAT,
                          "tensor '%s': data_offsets [%llu, %llu] span %zu bytes but %s shape %s "
                          "needs %zu elements of %zu bytes",
                          t->name, (unsigned long long)begin, (unsigned long long)end, nbytes,
                          attn_dtype_name(t->dtype), shape, t->numel, size);
    }
    t->nbytes = nbytes;
    ext->begin = (size_t)begin;
    ext->end = (size_t)end;
    ext->name = t->name;
    return ATTN_OK;
}

static attn_status parse_tensor(attn_tensor_view *t, extent *ext, const cJSON *entry,
                                const unsigned char *data, size_t data_size)
{
    memset(t, 0, sizeof *t);
    t->name = entry->string;
    if (!cJSON_IsObject(entry))
        return attn_error(ATTN_ERR_FORMAT, "entry '%s' is not an object", t->name);
    attn_status s;
    if ((s = parse_dtype(t, entry)) || (s = parse_shape(t, entry)) ||
        (s = parse_offsets(t, ext, entry, data_size)))
        return s;
    t->data = data + ext->begin;
    return ATTN_OK;
}

/* ---- checks across entries ---------------------------------------------------------- */

static attn_status check_unique_names(attn_safetensors *st)
{
    for (int i = 0; i < st->count; i++) st->by_name[i] = &st->tensors[i];
    qsort(st->by_name, (size_t)st->count, sizeof *st->by_name, compare_names);
    for (int i = 1; i < st->count; i++)
        if (strcmp(st->by_name[i - 1]->name, st->by_name[i]->name) == 0)
            return attn_error(ATTN_ERR_FORMAT, "tensor name '%s' appears twice",
                              st->by_name[i]->name);
    return ATTN_OK;
}

/* The tensors must tile [0, data_size) exactly: sorted by begin, each starts
 * where the previous one ended. */
static attn_status check_tiling(extent *extents, int count, size_t data_size)
{
    qsort(extents, (size_t)count, sizeof *extents, compare_extents);
    size_t covered = 0;
    const extent *last_nonempty = NULL;
    for (int i = 0; i < count; i++) {
        const extent *e = &extents[i];
        if (e->begin < covered)
            return attn_error(ATTN_ERR_FORMAT,
                              "tensors '%s' [%zu, %zu] and '%s' [%zu, %zu] overlap",
                              last_nonempty->name, last_nonempty->begin, last_nonempty->end,
                              e->name, e->begin, e->end);
        if (e->begin > covered)
            return attn_error(ATTN_ERR_FORMAT,
                              "bytes [%zu, %zu) of the data section belong to no tensor "
                              "(a gap before '%s')", covered, e->begin, e->name);
        if (e->end > e->begin) last_nonempty = e;
        covered = e->end;
    }
    if (covered != data_size)
        return attn_error(ATTN_ERR_FORMAT,
                          "bytes [%zu, %zu) at the end of the data section belong to no tensor",
                          covered, data_size);
    return ATTN_OK;
}

/* ---- metadata -------------------------------------------------------------------- */

static attn_status check_unique_metadata_keys(const attn_safetensors *st)
{
    if (st->meta_count < 2) return ATTN_OK;
    const char **keys = malloc((size_t)st->meta_count * sizeof *keys);
    if (keys == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d metadata keys", st->meta_count);
    memcpy(keys, st->meta_keys, (size_t)st->meta_count * sizeof *keys);
    qsort(keys, (size_t)st->meta_count, sizeof *keys, compare_strings);
    attn_status s = ATTN_OK;
    for (int i = 1; i < st->meta_count && s == ATTN_OK; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            s = attn_error(ATTN_ERR_FORMAT, "__metadata__ key '%s' appears twice", keys[i]);
    free(keys);
    return s;
}

static attn_status parse_metadata(attn_safetensors *st, const cJSON *meta)
{
    if (st->meta_keys != NULL) return attn_error(ATTN_ERR_FORMAT, "__metadata__ appears twice");
    if (!cJSON_IsObject(meta))
        return attn_error(ATTN_ERR_FORMAT, "__metadata__ is not an object");
    int n = cJSON_GetArraySize(meta);
    /* One extra slot keeps the arrays non-NULL for an empty object, which marks
     * __metadata__ as seen. */
    st->meta_keys = calloc((size_t)n + 1, sizeof *st->meta_keys);
    st->meta_values = calloc((size_t)n + 1, sizeof *st->meta_values);
    if (st->meta_keys == NULL || st->meta_values == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d metadata pairs", n);
    for (const cJSON *item = meta->child; item != NULL; item = item->next) {
        if (!cJSON_IsString(item)) {
            char what[64];
            describe_json(what, sizeof what, item);
            return attn_error(ATTN_ERR_FORMAT, "__metadata__ value of '%s' is %s, not a string",
                              item->string, what);
        }
        st->meta_keys[st->meta_count] = item->string;
        st->meta_values[st->meta_count] = item->valuestring;
        st->meta_count++;
    }
    return check_unique_metadata_keys(st);
}

/* ---- the header ---------------------------------------------------------------- */

static bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Parses header bytes (not NUL-terminated) into a JSON object. Trailing
 * whitespace is allowed, since writers pad the header to align the data. */
static attn_status parse_header_json(cJSON **out, const unsigned char *bytes, size_t len)
{
    const void *nul = memchr(bytes, '\0', len);
    if (nul != NULL)
        return attn_error(ATTN_ERR_FORMAT, "header has a NUL byte at offset %zu",
                          (size_t)((const unsigned char *)nul - bytes));
    if (!attn_utf8_valid((const char *)bytes, len))
        return attn_error(ATTN_ERR_FORMAT, "header is not valid UTF-8");
    /* As the reference implementation: no leading space or byte-order mark,
     * which the JSON parser alone would skip. */
    if (len == 0 || bytes[0] != '{')
        return attn_error(ATTN_ERR_FORMAT,
                          "header does not start with '{' (it must be a JSON object)");
    /* A terminated copy: the JSON parser then never reads past the header. */
    char *text = malloc(len + 1);
    if (text == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for a %zu-byte header", len);
    memcpy(text, bytes, len);
    text[len] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    attn_status s = ATTN_OK;
    if (root == NULL) {
        s = attn_error(ATTN_ERR_FORMAT, "header is not valid JSON (error near byte %zu of %zu)",
                       end != NULL ? (size_t)(end - text) : (size_t)0, len);
    } else {
        size_t pos = (size_t)(end - text);
        while (pos < len && is_json_space(text[pos])) pos++;
        if (pos < len)
            s = attn_error(ATTN_ERR_FORMAT,
                           "header has bytes after the JSON value at byte %zu of %zu", pos, len);
    }
    free(text);
    if (s != ATTN_OK) {
        cJSON_Delete(root);
        return s;
    }
    *out = root;
    return ATTN_OK;
}

static attn_status allocate_tensors(attn_safetensors *st, int count)
{
    st->tensors = calloc((size_t)count + 1, sizeof *st->tensors);
    st->by_name = calloc((size_t)count + 1, sizeof *st->by_name);
    if (st->tensors == NULL || st->by_name == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d tensor entries", count);
    return ATTN_OK;
}

/* Fills st from its parsed header; data is the data section. */
static attn_status parse_entries(attn_safetensors *st, const unsigned char *data, size_t data_size)
{
    int entries = cJSON_GetArraySize(st->header);
    attn_status s = allocate_tensors(st, entries);
    if (s != ATTN_OK) return s;
    extent *extents = calloc((size_t)entries + 1, sizeof *extents);
    if (extents == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d tensor entries", entries);
    for (const cJSON *item = st->header->child; item != NULL && s == ATTN_OK; item = item->next) {
        if (strcmp(item->string, METADATA_KEY) == 0) {
            s = parse_metadata(st, item);
        } else {
            s = parse_tensor(&st->tensors[st->count], &extents[st->count], item, data, data_size);
            if (s == ATTN_OK) st->count++;
        }
    }
    if (s == ATTN_OK) s = check_unique_names(st);
    if (s == ATTN_OK) s = check_tiling(extents, st->count, data_size);
    free(extents);
    return s;
}

static attn_status parse_file(attn_safetensors *st, const unsigned char *bytes, size_t size)
{
    if (size < 8)
        return attn_error(ATTN_ERR_FORMAT,
                          "file is %zu bytes, shorter than the 8-byte header length", size);
    uint64_t header_len = load_u64_le(bytes);
    if (header_len > MAX_HEADER_BYTES)
        return attn_error(ATTN_ERR_FORMAT, "header length %llu is over the limit of %llu bytes",
                          (unsigned long long)header_len, MAX_HEADER_BYTES);
    if (header_len > size - 8)
        return attn_error(ATTN_ERR_FORMAT,
                          "header length %llu is larger than the %zu bytes that follow it",
                          (unsigned long long)header_len, size - 8);
    attn_status s = parse_header_json(&st->header, bytes + 8, (size_t)header_len);
    if (s != ATTN_OK) return s;
    size_t data_offset = 8 + (size_t)header_len;
    if ((s = parse_entries(st, bytes + data_offset, size - data_offset))) return s;
    /* A file attn wrote carries the CRC-32C of its bytes (attn/io.h). */
    return attn_checksum_verify(bytes, size, 8, data_offset,
                                attn_safetensors_metadata(st, ATTN_CHECKSUM_KEY),
                                attn_safetensors_metadata(st, ATTN_SEALED_KEY));
}

/* ---- public API ------------------------------------------------------------------ */

void attn_safetensors_close(attn_safetensors *st)
{
    if (st == NULL) return;
    cJSON_Delete(st->header);
    free(st->tensors);
    free(st->by_name);
    free(st->meta_keys);
    free(st->meta_values);
    if (st->mapping != NULL) munmap(st->mapping, st->mapping_size);
    free(st);
}

attn_status attn_safetensors_parse(attn_safetensors **out, const void *bytes, size_t size)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "out"))) return s;
    *out = NULL;
    if (size > 0 && (s = attn_check_not_null(bytes, "bytes"))) return s;
    attn_safetensors *st = calloc(1, sizeof *st);
    if (st == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for a safetensors reader");
    s = parse_file(st, bytes, size);
    if (s != ATTN_OK) {
        attn_safetensors_close(st);
        return s;
    }
    *out = st;
    return ATTN_OK;
}

attn_status attn_safetensors_open(attn_safetensors **out, const char *path)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "out")) || (s = attn_check_not_null(path, "path")))
        return s;
    *out = NULL;
    /* O_NONBLOCK so that a FIFO given by mistake fails below instead of hanging. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return attn_error(ATTN_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat info;
    if (fstat(fd, &info) != 0) {
        s = attn_error(ATTN_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
        close(fd);
        return s;
    }
    if (!S_ISREG(info.st_mode)) {
        close(fd);
        return attn_error(ATTN_ERR_IO, "'%s' is not a regular file", path);
    }
    if ((unsigned long long)info.st_size > ATTN_SAFETENSORS_MAX_BYTES) {
        close(fd);
        return attn_error(ATTN_ERR_UNSUPPORTED,
                          "'%s' is larger than %llu bytes, the most a safetensors file may hold",
                          path, ATTN_SAFETENSORS_MAX_BYTES);
    }
    size_t size = (size_t)info.st_size;
    if (size < 8) { /* checked here because mmap cannot map an empty file */
        close(fd);
        return attn_error(ATTN_ERR_FORMAT,
                          "%s: file is %zu bytes, shorter than the 8-byte header length", path,
                          size);
    }
    void *mapping = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (mapping == MAP_FAILED)
        return attn_error(ATTN_ERR_IO, "cannot map '%s' (%zu bytes): %s", path, size,
                          strerror(map_errno));
    s = attn_safetensors_parse(out, mapping, size);
    if (s != ATTN_OK) {
        munmap(mapping, size);
        return attn_error_about(s, path); /* which of a user's files is bad */
    }
    (*out)->mapping = mapping;
    (*out)->mapping_size = size;
    return ATTN_OK;
}

int attn_safetensors_count(const attn_safetensors *st) { return st ? st->count : 0; }

const attn_tensor_view *attn_safetensors_at(const attn_safetensors *st, int i)
{
    if (st == NULL || i < 0 || i >= st->count) return NULL;
    return &st->tensors[i];
}

const attn_tensor_view *attn_safetensors_find(const attn_safetensors *st, const char *name)
{
    if (st == NULL || name == NULL) return NULL;
    int lo = 0, hi = st->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, st->by_name[mid]->name);
        if (c == 0) return st->by_name[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *attn_safetensors_metadata(const attn_safetensors *st, const char *key)
{
    if (st == NULL || key == NULL) return NULL;
    for (int i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}

int attn_safetensors_metadata_count(const attn_safetensors *st) { return st ? st->meta_count : 0; }

const char *attn_safetensors_metadata_at(const attn_safetensors *st, int i, const char **value)
{
    if (st == NULL || i < 0 || i >= st->meta_count) return NULL;
    if (value != NULL) *value = st->meta_values[i];
    return st->meta_keys[i];
}
