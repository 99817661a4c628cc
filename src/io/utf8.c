/* UTF-8 validation (RFC 3629), for safetensors headers and the names we write. */
#include "io/io_internal.h"

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

bool attn_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = sequence_length(p[i]);
        if (n == 0 || n > len - i) return false;
        if (n >= 2 && !second_byte_ok(p[i], p[i + 1])) return false;
        for (size_t k = 2; k < n; k++)
            if ((p[i + k] & 0xc0) != 0x80) return false;
        i += n;
    }
    return true;
}
