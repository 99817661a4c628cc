/* Every vector kernel of the library for AVX-512: this file is built with
 * -mavx512f -mavx512bw -mfma on x86 (BW for byte masks, as in AdamW's decay mask); elsewhere the variant exists but reports itself
 * unsupported (see isa.h). */
#include "kernels/isa.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__FMA__)
#define ATTN_SIMD_AVX512
#include "kernels/flash_impl.h"
#include "kernels/vec_impl.h"

static bool cpu_has_avx512(void)
{
    attn_cpu_features features = attn_cpu_detect();
    return features.avx512f && features.avx512bw;
}

const attn_isa attn_isa_avx512 = {.name = "avx512",
                                  .supported = cpu_has_avx512,
                                  .flash = &flash_kernels,
                                  .vec = &vec_kernels};
#else
static bool not_built(void) { return false; }

const attn_isa attn_isa_avx512 = {.name = "avx512", .supported = not_built};
#endif
