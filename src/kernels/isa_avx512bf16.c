/* Every vector kernel of the library for AVX-512 with AVX512_BF16: the AVX-512
 * variant's code, built with -mavx512bf16 as well, so that the bf16 attention
 * kernels' pair products are vdpbf16ps (ATTN_SIMD_DPBF16, see simd.h) where the
 * AVX-512 variant widens them to float32. Every float32 kernel is the AVX-512
 * variant's, bit for bit. Elsewhere the variant exists but reports itself
 * unsupported (see isa.h). */
#include "kernels/isa.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__FMA__) && defined(__AVX512BF16__)
#define ATTN_SIMD_AVX512
#define ATTN_SIMD_DPBF16
#include "kernels/flash_impl.h"
#include "kernels/vec_impl.h"

static bool cpu_has_avx512_bf16(void)
{
    attn_cpu_features features = attn_cpu_detect();
    return features.avx512f && features.avx512bw && features.avx512bf16;
}

const attn_isa attn_isa_avx512bf16 = {.name = "avx512bf16",
                                      .supported = cpu_has_avx512_bf16,
                                      .flash = &flash_kernels,
                                      .vec = &vec_kernels};
#else
static bool not_built(void) { return false; }

const attn_isa attn_isa_avx512bf16 = {.name = "avx512bf16", .supported = not_built};
#endif
