/* attn/io.h: safetensors files, read and written.
 *
 * The format (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON mapping each tensor name to
 * {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the byte
 * after the header) plus an optional "__metadata__" object of string values, then
 * the tensor bytes, little-endian, row-major.
 *
 * Reading treats every byte as hostile: the header length, the JSON, each dtype,
 * shape and offset pair are checked before use; offsets must lie inside the data,
 * match the size the dtype and shape imply, not overlap, and leave no gap; names
 * must be unique. A failure returns ATTN_ERR_FORMAT with a message naming the
 * tensor and the values. Files are memory-mapped, not copied.
 *
 * Writing goes to "<path>.tmp.<pid>" and is renamed over path only when complete,
 * so a crash never leaves a half-written file behind. Every file the library and
 * the attn tool write goes through attn_write_file_atomically, at the end.
 */
#ifndef ATTN_IO_H
#define ATTN_IO_H

#include <stddef.h>
#include <stdint.h>

#include "attn/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_MAX_DIMS 8

typedef enum attn_dtype {
    ATTN_DTYPE_F64,
    ATTN_DTYPE_F32,
    ATTN_DTYPE_F16,
    ATTN_DTYPE_BF16,
    ATTN_DTYPE_I64,
    ATTN_DTYPE_I32,
    ATTN_DTYPE_I16,
    ATTN_DTYPE_I8,
    ATTN_DTYPE_U8,
    ATTN_DTYPE_BOOL
} attn_dtype;

/* "F32", "BF16", ... as safetensors spells them. */
ATTN_API const char *attn_dtype_name(attn_dtype dtype);
ATTN_API size_t attn_dtype_size(attn_dtype dtype);

typedef struct attn_tensor_view {
    const char *name;
    attn_dtype dtype;
    int ndim; /* 0 for a scalar */
    int64_t shape[ATTN_MAX_DIMS];
    size_t numel;
    const void *data; /* inside the mapped file; not necessarily aligned */
    size_t nbytes;
} attn_tensor_view;

typedef struct attn_safetensors attn_safetensors;

/* The largest safetensors file attn opens: 64 GiB, refused by its size before it
 * is mapped, as its checksum would be read over the whole file. */
#define ATTN_SAFETENSORS_MAX_BYTES (64ull << 30)

/* Maps and validates the file. On success *out owns the mapping; on failure
 * *out is NULL. */
ATTN_API attn_status attn_safetensors_open(attn_safetensors **out, const char *path);

/* Validates bytes[0..size) already in memory; *out borrows them (they must
 * outlive it). */
ATTN_API attn_status attn_safetensors_parse(attn_safetensors **out, const void *bytes, size_t size);

ATTN_API void attn_safetensors_close(attn_safetensors *st);

ATTN_API int attn_safetensors_count(const attn_safetensors *st);
/* The i-th tensor in file order (0 <= i < count), or NULL. */
ATTN_API const attn_tensor_view *attn_safetensors_at(const attn_safetensors *st, int i);
/* The tensor named `name`, or NULL. */
ATTN_API const attn_tensor_view *attn_safetensors_find(const attn_safetensors *st,
                                                       const char *name);

/* Converts the tensor's elements to float32 into dst, which holds exactly
 * `count` floats; fails if count != numel. Every dtype converts (F64 and the
 * integers by rounding to nearest, F16/BF16 exactly). */
ATTN_API attn_status attn_tensor_read_f32(const attn_tensor_view *t, float *dst, size_t count);

/* The value of a `__metadata__` key, or NULL. */
ATTN_API const char *attn_safetensors_metadata(const attn_safetensors *st, const char *key);
ATTN_API int attn_safetensors_metadata_count(const attn_safetensors *st);
/* The i-th metadata pair; returns the key and sets *value. NULL if out of range. */
ATTN_API const char *attn_safetensors_metadata_at(const attn_safetensors *st, int i,
                                                  const char **value);

/* ---- writing ---- */
typedef struct attn_tensor_out {
    const char *name;
    attn_dtype dtype; /* of data, written as is */
    int ndim;
    const int64_t *shape;
    const void *data;
} attn_tensor_out;

typedef struct attn_metadata_pair {
    const char *key, *value;
} attn_metadata_pair;

/* Writes `count` tensors and `meta_count` metadata pairs to path atomically.
 * Names must be unique and not "__metadata__". */
ATTN_API attn_status attn_safetensors_save(const char *path, const attn_tensor_out *tensors,
                                           int count, const attn_metadata_pair *meta,
                                           int meta_count);

/* ---- checksums ---- */

/* CRC-32C (Castagnoli, as iSCSI and ext4 use it) of n bytes, continuing from crc
 * (0 to start): attn_crc32c(0, "123456789", 9) is 0xE3069283. Every safetensors
 * file attn writes carries the CRC-32C of its bytes in the metadata key
 * "attn.crc32c" (eight hex digits, computed with those digits as "00000000")
 * beside "attn.sealed": "crc32c", and attn_safetensors_open and _parse check it,
 * so that a changed byte anywhere in the file is caught (a file with only one of
 * the two keys is damaged). Files with neither (from elsewhere, or written before
 * attn checksummed its files) load as they are. */
ATTN_API uint32_t attn_crc32c(uint32_t crc, const void *bytes, size_t n);

/* ---- any file, read whole with a bound ---- */

/* Reads the file at path into a new buffer (*bytes, free() it; NUL-terminated
 * after its *n bytes). A file of more than max bytes is refused (ATTN_ERR_
 * UNSUPPORTED, naming what it was meant to be: "a text", "a record") before it is
 * read: a regular file by its size, a stream (a pipe, /dev/zero) as soon as it
 * passes max. The library's text and record loaders and the tool's prompt files
 * read through it. */
ATTN_API attn_status attn_read_file(const char *path, size_t max, const char *what, char **bytes,
                                    size_t *n);

/* ---- any file, written atomically ---- */

/* One piece of a file's contents. */
typedef struct attn_file_part {
    const void *bytes;
    size_t size;
} attn_file_part;

/* Writes the `count` parts in order to "<path>.tmp.<pid>", syncs it, renames it
 * over path and syncs the directory, so that readers find the old file or the
 * whole new one, even after a crash. On failure the temporary file is removed and
 * path is untouched. After a write, the temporary files that killed writers of
 * path left ("<path>.tmp.<pid>", regular, this user's, no process <pid> running)
 * are removed. */
ATTN_API attn_status attn_write_file_atomically(const char *path, const attn_file_part *parts,
                                               int count);

#ifdef __cplusplus
}
#endif
#endif
