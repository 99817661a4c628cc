/* The fused attention kernels for AVX-512 (this file is built with -mavx512f -mfma
 * on x86; elsewhere the table exists but reports the variant unsupported). */
#include "kernels/flash.h"

#if defined(__AVX512F__) && defined(__FMA__)
#include "attn/core.h"

#define ATTN_SIMD_AVX512
#include "kernels/flash_impl.h"

static bool cpu_has_avx512(void) { return attn_cpu_detect().avx512f; }

const attn_flash_kernels attn_flash_avx512 = {.name = "avx512",
                                              .supported = cpu_has_avx512,
                                              .forward = flash_forward,
                                              .backward = flash_backward,
                                              .workspace_bytes = flash_workspace_bytes,
                                              .exp = flash_exp};
#else
static bool not_built(void) { return false; }

const attn_flash_kernels attn_flash_avx512 = {.name = "avx512", .supported = not_built};
#endif
