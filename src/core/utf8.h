/* Internal: UTF-8 (RFC 3629), written once for the whole library. The decoder
 * they are built on, attn_utf8_char, is public (attn/core.h), since the tool
 * reads its strings with it too. */
#ifndef ATTN_SRC_CORE_UTF8_H
#define ATTN_SRC_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/core.h"

/* True if s[0..len) is well-formed UTF-8: the safetensors header is a UTF-8
 * string, and names we write must read back. */
bool attn_utf8_valid(const char *s, size_t len);

/* Writes cp as UTF-8 into out (4 bytes at most); returns the length, or 0 for a
 * surrogate or a value past U+10FFFF. */
int attn_utf8_encode(uint32_t cp, char *out);

/* Decoding ids to text: appends k bytes to out, which holds *used of its cap
 * bytes, keeping one for the final NUL; else fails naming the ids' count n. */
attn_status attn_utf8_append(char *out, size_t cap, size_t *used, const char *bytes, int k,
                             size_t n);
/* The same for the character cp that vocabulary entry id holds, which must be a
 * Unicode scalar value. */
attn_status attn_utf8_append_char(char *out, size_t cap, size_t *used, uint32_t cp, int32_t id,
                                  size_t n);

/* ATTN_ERR_INVALID_ARGUMENT for text whose byte `at` starts no well-formed
 * character, naming the offset and the byte. */
attn_status attn_utf8_error(const char *text, size_t at);

#endif
