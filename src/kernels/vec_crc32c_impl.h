/* Internal: CRC-32C (Castagnoli: the reflected polynomial 0x82F63B78, as in
 * iSCSI, ext4 and RFC 3720) of a run of bytes, continuing from crc (the value
 * before the final inversion; start from 0). With SSE4.2 (the AVX2 and AVX-512
 * variants) the crc32 instruction does 8 bytes at a time; the portable variant
 * goes a bit at a time. The result is the same bits either way. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

static uint32_t crc32c_update(uint32_t crc, const void *bytes, size_t n)
{
    const unsigned char *p = bytes;
    uint32_t c = ~crc;
#if defined(__SSE4_2__)
    uint64_t c64 = c;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t word;
        memcpy(&word, p, sizeof word);
        c64 = _mm_crc32_u64(c64, word);
    }
    c = (uint32_t)c64;
    for (; n > 0; n--, p++) c = _mm_crc32_u8(c, *p);
#else
    for (; n > 0; n--, p++) {
        c ^= *p;
        for (int bit = 0; bit < 8; bit++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
#endif
    return ~c;
}
