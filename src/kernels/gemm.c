/* The matrix product behind every projection, and its reference loop. */
#include "attn/kernels.h"

#if defined(ATTN_GEMM_DNNL)
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_version.h>
#elif defined(ATTN_GEMM_CBLAS)
#include <cblas.h>
#endif

void attn_sgemm_reference(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                          const float *a, int lda, const float *b, int ldb, float beta, float *c,
                          int ldc)
{
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            float sum = 0.0f;
            for (int p = 0; p < k; p++) {
                float aip = trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                float bpj = trans_b ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                sum += aip * bpj;
            }
            float *cij = &c[(size_t)i * ldc + j];
            *cij = alpha * sum + (beta == 0.0f ? 0.0f : beta * *cij);
        }
    }
}

void attn_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0) return;
#if defined(ATTN_GEMM_DNNL)
    if (k > 0) {
        dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha,
                                          a, lda, b, ldb, beta, c, ldc);
        if (status == dnnl_success) return;
    }
#elif defined(ATTN_GEMM_CBLAS)
    if (k > 0) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                    ldc);
        return;
    }
#endif
    /* No backend, k == 0 (C = beta C), or a backend that refused the call. */
    attn_sgemm_reference(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

const char *attn_gemm_backend(void)
{
#if defined(ATTN_GEMM_DNNL)
#define ATTN_STR2(x) #x
#define ATTN_STR(x) ATTN_STR2(x)
    return "oneDNN " ATTN_STR(DNNL_VERSION_MAJOR) "." ATTN_STR(DNNL_VERSION_MINOR) "." ATTN_STR(
        DNNL_VERSION_PATCH) " (dnnl_sgemm)";
#elif defined(ATTN_GEMM_CBLAS)
    return "CBLAS (cblas_sgemm)";
#else
    return "portable loops (no BLAS found at build time)";
#endif
}
