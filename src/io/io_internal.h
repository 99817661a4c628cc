/* Internal: helpers shared by the safetensors reader and writer. The atomic file
 * writer they use is public (attn/io.h), since the tool writes its files with it too. */
#ifndef ATTN_SRC_IO_IO_INTERNAL_H
#define ATTN_SRC_IO_IO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/io.h"

/* Sets *dtype from its safetensors spelling ("F32", "BF16", ...); false if the
 * name is not one of ours. */
bool attn_dtype_from_name(const char *name, attn_dtype *dtype);

/* True if dtype is one of the enum's values (a caller may pass any int). */
bool attn_dtype_is_valid(attn_dtype dtype);

/* The exact float32 value of an IEEE half bit pattern (bfloat16's is
 * attn_bf16_widen of core/bf16.h). */
float attn_f16_to_f32(uint16_t bits);

/* The metadata key of a file's CRC-32C, and the value it has while the checksum
 * is computed (attn/io.h); and the key that says a file was written with one, so
 * that losing the first (a changed byte in its name) is caught, while files from
 * before checksums, which have neither, still load. */
#define ATTN_CHECKSUM_KEY "attn.crc32c"
#define ATTN_CHECKSUM_PLACEHOLDER "00000000"
#define ATTN_SEALED_KEY "attn.sealed"
#define ATTN_SEALED_VALUE "crc32c"

/* Writes the CRC-32C of the file the n parts make (the JSON's placeholder among
 * them) over the placeholder in json[0..json_len), which is one of the parts. */
void attn_checksum_seal(char *json, size_t json_len, const attn_file_part *parts, int n);
/* Checks a file's checksum: value and sealed are its two keys' values (NULL when
 * absent; both absent: nothing to check), found in the JSON at bytes
 * [json_begin, json_end) of the whole file bytes[0..size). */
attn_status attn_checksum_verify(const unsigned char *bytes, size_t size, size_t json_begin,
                                 size_t json_end, const char *value, const char *sealed);

#endif
