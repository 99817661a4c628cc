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

/* The backend in use, e.g. "oneDNN 2.6.3 (dnnl_sgemm)". */
ATTN_API const char *attn_gemm_backend(void);

#ifdef __cplusplus
}
#endif
#endif
