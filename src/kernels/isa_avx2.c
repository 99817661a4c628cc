/* Every vector kernel of the library for AVX2 with FMA: this file is built with
 * -mavx2 -mfma on x86; elsewhere the variant exists but reports itself
 * unsupported (see isa.h). */
#include "kernels/isa.h"

#if defined(__AVX2__) && defined(__FMA__)
#define ATTN_SIMD_AVX2
#include "kernels/flash_impl.h"
#include "kernels/vec_impl.h"

static bool cpu_has_avx2_fma(void)
{
    attn_cpu_features features = attn_cpu_detect();
    return features.avx2 && features.fma;
}

const attn_isa attn_isa_avx2 = {.name = "avx2",
                                .supported = cpu_has_avx2_fma,
                                .flash = &flash_kernels,
                                .vec = &vec_kernels};
#else
static bool not_built(void) { return false; }

const attn_isa attn_isa_avx2 = {.name = "avx2", .supported = not_built};
#endif
