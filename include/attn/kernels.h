/* attn/kernels.h: the matrix product every layer is built on.
 *
 * attn_sgemm computes, on row-major matrices,
 *     C = alpha * op(A) * op(B) + beta * C
 * with op(X) = X, or X transposed when trans_x is true; op(A) is (m, k),
 * op(B) is (k, n), C is (m, n); lda, ldb, ldc are the row strides as stored.
 * beta == 0 overwrites C without reading it (so C may hold NaN on entry).
 *
 * The backend is chosen when the library is built: oneDNN's dnnl_sgemm by
 * default, a CBLAS (OpenBLAS) as an option, else the portable loop below.
 */
#ifndef ATTN_KERNELS_H
#define ATTN_KERNELS_H

#include <stdbool.h>

#include "attn/core.h"

#ifdef __cplusplus
extern "C" {
#endif

ATTN_API void attn_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc);

/* The same product by plain loops; the oracle the backends are tested against. */
ATTN_API void attn_sgemm_reference(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                                   const float *a, int lda, const float *b, int ldb, float beta,
                                   float *c, int ldc);

/* The same product at a precision: ATTN_FLOAT32 is attn_sgemm; ATTN_BF16 rounds
 * every element of A and B to the nearest bfloat16 (attn_bf16_from_float) and
 * multiplies the rounded values with float32 products and sums (oneDNN's bf16
 * matmul, vdpbf16ps where the CPU has AVX512_BF16; else the rounded values
 * through attn_sgemm), then applies alpha and beta in float32. With u = 2^-8
 * (bf16) and u32 = 2^-24, each element satisfies
 *   |C - alpha sum_p a'_ip b'_pj - beta C0| <= gamma(k + 2) |alpha| sum_p |a'_ip b'_pj|
 *                                              + gamma(2) |beta C0|
 * where a', b' are the rounded operands and gamma(n) = n u32 / (1 - n u32), and
 * |a'b' - ab| <= (2u + u^2) |ab| against the float32 operands. Not every bit is
 * the same across backends and CPUs (the order of the sums differs). */
ATTN_API void attn_gemm(attn_precision precision, bool trans_a, bool trans_b, int m, int n, int k,
                        float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                        float *c, int ldc);

/* The backend in use, e.g. "oneDNN 2.6.3 (dnnl_sgemm)". */
ATTN_API const char *attn_gemm_backend(void);
/* attn_gemm's bf16 path, e.g. "oneDNN 2.6.3 matmul (brg:avx512_core_bf16)", or
 * "bf16-rounded operands through the float32 GEMM" (no oneDNN, or only its
 * reference loops on this CPU). */
ATTN_API const char *attn_gemm_bf16_backend(void);

#ifdef __cplusplus
}
#endif
#endif
