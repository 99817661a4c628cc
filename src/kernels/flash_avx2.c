/* The fused attention kernels for AVX2 with FMA (this file is built with -mavx2
 * -mfma on x86; elsewhere the table exists but reports the variant unsupported). */
#include "kernels/flash.h"

#if defined(__AVX2__) && defined(__FMA__)
#include "attn/core.h"

#define ATTN_SIMD_AVX2
#include "kernels/flash_impl.h"

static bool cpu_has_avx2_fma(void)
{
    attn_cpu_features features = attn_cpu_detect();
    return features.avx2 && features.fma;
}

const attn_flash_kernels attn_flash_avx2 = {.name = "avx2",
                                            .supported = cpu_has_avx2_fma,
                                            .forward = flash_forward,
                                            .backward = flash_backward,
                                            .workspace_bytes = flash_workspace_bytes,
                                            .exp = flash_exp};
#else
static bool not_built(void) { return false; }

const attn_flash_kernels attn_flash_avx2 = {.name = "avx2", .supported = not_built};
#endif
