/* The fused attention kernels for AVX-512 (this file is built with -mavx512f -mfma
 * on x86; elsewhere the table exists but reports the variant unsupported). */
#include "kernels/flash.h"

#if defined(__AVX512F__) && defined(__FMA__)
#include "attn/core.h"

#define ATTN_SIMD_AVX512
#include "kernels/flash_impl.h"

static bool cpu_has_avx512(void) { return attn_cpu_detect().avx512f; }

const attn_flash_kernels attn_flash_avx512 = {"avx512",       cpu_has_avx512,
                                              flash_forward,  flash_backward,
                                              flash_workspace_bytes, flash_exp};
#else
static bool not_built(void) { return false; }

const attn_flash_kernels attn_flash_avx512 = {"avx512", not_built, NULL, NULL, NULL, NULL};
#endif
