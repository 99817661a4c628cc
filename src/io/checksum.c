/* The CRC-32C of the files attn writes, on the instruction set chosen for the
 * process (the portable one when ATTN_SIMD names none this CPU runs: a checksum
 * must never fail), and its place in a file: the eight digits of the key
 * "attn.crc32c" in the file's JSON, summed as "00000000". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/io_internal.h"
#include "kernels/isa.h"

uint32_t attn_crc32c(uint32_t crc, const void *bytes, size_t n)
{
    const attn_isa *isa;
    if (attn_isa_current(&isa) != ATTN_OK || isa->vec == NULL) isa = &attn_isa_scalar;
    return isa->vec->crc32c(crc, bytes, n);
}

void attn_checksum_seal(char *json, size_t json_len, const attn_file_part *parts, int n)
{
    static const char pattern[] = "\"" ATTN_CHECKSUM_KEY "\":\"" ATTN_CHECKSUM_PLACEHOLDER "\"";
    const size_t length = sizeof pattern - 1;
    for (size_t i = 0; i + length <= json_len; i++) {
        if (memcmp(json + i, pattern, length) != 0) continue;
        uint32_t crc = 0;
        for (int k = 0; k < n; k++) crc = attn_crc32c(crc, parts[k].bytes, parts[k].size);
        char digits[9];
        snprintf(digits, sizeof digits, "%08" PRIx32, crc);
        memcpy(json + i + length - 9, digits, 8);
        return;
    }
}

static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

attn_status attn_checksum_verify(const unsigned char *bytes, size_t size, size_t json_begin,
                                 size_t json_end, const char *value, const char *sealed)
{
    if (value == NULL && sealed == NULL) return ATTN_OK; /* from elsewhere, or older */
    if (value == NULL || sealed == NULL || strcmp(sealed, ATTN_SEALED_VALUE) != 0)
        return attn_error(ATTN_ERR_FORMAT,
                          "its checksum metadata is damaged ('%s' %s, '%s' %s): the file was "
                          "changed after attn wrote it",
                          ATTN_SEALED_KEY, sealed ? "present" : "missing", ATTN_CHECKSUM_KEY,
                          value ? "present" : "missing");
    const size_t digits = sizeof ATTN_CHECKSUM_PLACEHOLDER - 1;
    if (strlen(value) != digits || strspn(value, "0123456789abcdef") != digits)
        return attn_error(ATTN_ERR_FORMAT, "'%s' is '%.20s', not 8 hex digits",
                          ATTN_CHECKSUM_KEY, value);
    const unsigned long stored = strtoul(value, NULL, 16);
    /* The value's place: the key's first appearance as a JSON key, then ':' and '"'. */
    static const char key[] = "\"" ATTN_CHECKSUM_KEY "\"";
    size_t at = 0;
    for (size_t i = json_begin; i + sizeof key - 1 <= json_end && at == 0; i++) {
        if (memcmp(bytes + i, key, sizeof key - 1) != 0) continue;
        size_t j = i + sizeof key - 1;
        while (j < json_end && is_space(bytes[j])) j++;
        if (j >= json_end || bytes[j] != ':') continue;
        for (j++; j < json_end && is_space(bytes[j]);) j++;
        if (j + 1 + digits < json_end && bytes[j] == '"' &&
            memcmp(bytes + j + 1, value, digits) == 0)
            at = j + 1;
    }
    if (at == 0)
        return attn_error(ATTN_ERR_FORMAT, "'%s' is not where a checksum is written",
                          ATTN_CHECKSUM_KEY);
    uint32_t crc = attn_crc32c(0, bytes, at);
    crc = attn_crc32c(crc, ATTN_CHECKSUM_PLACEHOLDER, digits);
    crc = attn_crc32c(crc, bytes + at + digits, size - at - digits);
    if (crc != (uint32_t)stored)
        return attn_error(ATTN_ERR_FORMAT,
                          "its bytes do not match their checksum (CRC-32C %08lx written, %08" PRIx32
                          " now): the file is damaged or was changed after attn wrote it",
                          stored, crc);
    return ATTN_OK;
}
