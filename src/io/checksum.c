/* The CRC-32C of the files attn writes, on the instruction set chosen for the
 * process (the portable one when ATTN_SIMD names none this CPU runs: a checksum
 * must never fail). */
#include "attn/io.h"
#include "kernels/isa.h"

uint32_t attn_crc32c(uint32_t crc, const void *bytes, size_t n)
{
    const attn_isa *isa;
    if (attn_isa_current(&isa) != ATTN_OK || isa->vec == NULL) isa = &attn_isa_scalar;
    return isa->vec->crc32c(crc, bytes, n);
}
