/* UTF-8 (RFC 3629): the one decoder, and validation, encoding and the error
 * message built on it. */
#include <string.h>

#include "core/error.h"
#include "core/utf8.h"

/* The length of the sequence that starts with lead byte b, or 0 if b cannot
 * start one (a continuation byte, or C0, C1, F5..FF, which only overlong or
 * out-of-range sequences would use). */
static size_t sequence_length(unsigned char b)
{
    if (b < 0x80) return 1;
    if (b >= 0xc2 && b <= 0xdf) return 2;
    if (b >= 0xe0 && b <= 0xef) return 3;
    if (b >= 0xf0 && b <= 0xf4) return 4;
    return 0;
}

/* The allowed range of the second byte depends on the lead byte: these bounds
 * rule out overlong 3- and 4-byte forms, the surrogates and > U+10FFFF. */
static bool second_byte_ok(unsigned char lead, unsigned char b)
{
    unsigned char lo = 0x80, hi = 0xbf;
    if (lead == 0xe0) lo = 0xa0;
    else if (lead == 0xed) hi = 0x9f;
    else if (lead == 0xf0) lo = 0x90;
    else if (lead == 0xf4) hi = 0x8f;
    return b >= lo && b <= hi;
}

int attn_utf8_char(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = n > 0 ? sequence_length(p[0]) : 0;
    if (len == 0 || len > n) return 0;
    if (len >= 2 && !second_byte_ok(p[0], p[1])) return 0;
    for (size_t k = 2; k < len; k++)
        if ((p[k] & 0xc0) != 0x80) return 0;
    if (cp != NULL) {
        /* The lead byte's payload is its low 7 - len bits (all 7 for ASCII). */
        uint32_t value = len == 1 ? p[0] : p[0] & (0x7fu >> len);
        for (size_t k = 1; k < len; k++) value = (value << 6) | (p[k] & 0x3f);
        *cp = value;
    }
    return (int)len;
}

bool attn_utf8_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        int n = attn_utf8_char(s + i, len - i, NULL);
        if (n == 0) return false;
        i += (size_t)n;
    }
    return true;
}

int attn_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *p = (unsigned char *)out;
    if (cp < 0x80) {
        p[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (unsigned char)(0xc0 | (cp >> 6));
        p[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return 0;
    if (cp < 0x10000) {
        p[0] = (unsigned char)(0xe0 | (cp >> 12));
        p[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        p[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    p[0] = (unsigned char)(0xf0 | (cp >> 18));
    p[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    p[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    p[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

attn_status attn_utf8_error(const char *text, size_t at)
{
    return attn_error(ATTN_ERR_INVALID_ARGUMENT, "invalid UTF-8 at byte %zu (0x%02x)", at,
                      (unsigned)(unsigned char)text[at]);
}

attn_status attn_utf8_append(char *out, size_t cap, size_t *used, const char *bytes, int k,
                             size_t n)
{
    if (*used + (size_t)k >= cap)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "the text of %zu ids does not fit in %zu bytes", n, cap);
    memcpy(out + *used, bytes, (size_t)k);
    *used += (size_t)k;
    return ATTN_OK;
}

attn_status attn_utf8_append_char(char *out, size_t cap, size_t *used, uint32_t cp, int32_t id,
                                  size_t n)
{
    char bytes[4];
    const int k = attn_utf8_encode(cp, bytes);
    if (k == 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "vocab id %d holds U+%04X, which is not a Unicode character", (int)id,
                          (unsigned)cp);
    return attn_utf8_append(out, cap, used, bytes, k, n);
}
