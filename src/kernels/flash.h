/* Internal: the fused (FlashAttention-2 style) scaled dot-product attention
 * kernels, forward and backward.
 *
 * attn_flash_forward / attn_flash_backward compute exactly what attn_sdpa_forward
 * / attn_sdpa_backward of attn/attention.h compute (same shapes, masks, causal
 * alignment, dropout decisions, log-sum-exp, fully masked rows giving 0 and lse
 * -inf; backward adds into dq, dk, dv, any of which may be NULL), without the
 * optional weights output, in O(B·H·L) extra memory and without ever forming the
 * (Lq, Lk) score matrix:
 *   q: (B, H, Lq, D), k: (B, H, Lk, D), v: (B, H, Lk, Dv)
 *   out, dout: (B, H, Lq, Dv), lse: (B, H, Lq)
 *   dq: (B, H, Lq, D), dk: (B, H, Lk, D), dv: (B, H, Lk, Dv)
 * Results are bitwise the same for any thread count; they differ between
 * instruction sets only by rounding.
 *
 * The instruction set is chosen at run time: AVX-512 when the CPU has it, else
 * AVX2 with FMA, else portable C. The environment variable ATTN_SIMD
 * (avx512, avx2 or scalar) forces one; forcing one the CPU lacks, or an unknown
 * name, makes the calls fail with a message.
 */
#ifndef ATTN_SRC_KERNELS_FLASH_H
#define ATTN_SRC_KERNELS_FLASH_H

#include <stdbool.h>
#include <stddef.h>

#include "attn/attention.h"

attn_status attn_flash_forward(float *out, float *lse, const float *q, const float *k,
                               const float *v, const attn_sdpa_config *cfg);

attn_status attn_flash_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                const float *k, const float *v, const float *lse,
                                const attn_sdpa_config *cfg);

/* The variant the calls above use now: "avx512", "avx2" or "scalar", or a
 * sentence saying why none can be used (a bad ATTN_SIMD). */
const char *attn_flash_variant(void);

/* The scratch memory one call allocates, in bytes, for `threads` threads: per-thread
 * tiles plus, for backward, one float per query row. */
size_t attn_flash_workspace_bytes(const attn_sdpa_config *cfg, int threads, bool backward);

/* One instruction set's kernels. The entry points above check their arguments
 * and then call these; tests call each variant's table directly. */
typedef struct attn_flash_kernels {
    const char *name;
    bool (*supported)(void); /* whether this CPU runs the variant */
    attn_status (*forward)(float *out, float *lse, const float *q, const float *k, const float *v,
                           const attn_sdpa_config *cfg);
    attn_status (*backward)(float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *lse,
                            const attn_sdpa_config *cfg);
    size_t (*workspace_bytes)(const attn_sdpa_config *cfg, int threads, bool backward);
    /* y[i] = e^x[i] with the variant's vector exponential (for its tests). */
    void (*exp)(float *y, const float *x, size_t n);
} attn_flash_kernels;

/* Defined whatever the target; on a compiler or CPU family without the
 * instruction set, `supported` returns false and the kernels are not built. */
extern const attn_flash_kernels attn_flash_avx512;
extern const attn_flash_kernels attn_flash_avx2;
extern const attn_flash_kernels attn_flash_scalar;

#endif
