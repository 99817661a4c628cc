/* The matrix product behind every projection, and its reference loop. */
#include "attn/kernels.h"
#include "kernels/isa.h"

#if defined(ATTN_GEMM_DNNL)
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_version.h>
#ifdef _OPENMP
#include <omp.h>
#endif
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

#if defined(ATTN_GEMM_DNNL)
/* Below this many multiply-adds a product takes a few microseconds, less than
 * waking and joining a second thread costs (recurrent steps are such products). */
#define GEMM_PARALLEL_MIN_MACS (1.0 * (1 << 20))

/* Runs a product on the calling thread alone: in a team of one thread whose own
 * thread setting, which oneDNN reads, is 1. */
static dnnl_status_t dnnl_sgemm_one_thread(char transa, char transb, dnnl_dim_t m, dnnl_dim_t n,
                                           dnnl_dim_t k, float alpha, const float *a,
                                           dnnl_dim_t lda, const float *b, dnnl_dim_t ldb,
                                           float beta, float *c, dnnl_dim_t ldc)
{
#ifdef _OPENMP
    dnnl_status_t status = dnnl_success;
#pragma omp parallel num_threads(1)
    {
        omp_set_num_threads(1);
        status = dnnl_sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
    return status;
#else
    return dnnl_sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}
#endif

/* A product of at most FEW_ROWS rows of A with B transposed, a layer's weights
 * (n, k) applied to one token or a few (decoding; an RNN step of a small batch),
 * runs as dot products (kernels/vec.h): each row of B is read from memory once
 * for every row of A, and each output is one thread's sum in a fixed order, so
 * that the threads share the product without changing its bits. (oneDNN splits
 * such a product over k between threads, which is why it ran on one.) */
enum { FEW_ROWS = 4, B_ROWS_PER_TASK = 16 };
#define FEW_ROWS_PARALLEL_MIN_MACS (1.0 * (1 << 16))

static void few_rows_product(const attn_vec_kernels *vec, int m, int n, int k, float alpha,
                             const float *a, int lda, const float *b, int ldb, float beta,
                             float *c, int ldc)
{
    const long tasks = (n + B_ROWS_PER_TASK - 1) / B_ROWS_PER_TASK;
#pragma omp parallel for schedule(static) \
    if ((double)m * n * k >= FEW_ROWS_PARALLEL_MIN_MACS) num_threads(attn_get_num_threads())
    for (long task = 0; task < tasks; task++) {
        const int first = (int)task * B_ROWS_PER_TASK;
        const int count = n - first < B_ROWS_PER_TASK ? n - first : B_ROWS_PER_TASK;
        float dots[B_ROWS_PER_TASK];
        for (int i = 0; i < m; i++) {
            vec->dot_rows(dots, a + (size_t)i * lda, b + (size_t)first * ldb, (size_t)ldb, count,
                          k);
            float *ci = c + (size_t)i * ldc + first;
            for (int j = 0; j < count; j++)
                ci[j] = alpha * dots[j] + (beta == 0.0f ? 0.0f : beta * ci[j]);
        }
    }
}

void attn_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0) return;
    const attn_isa *isa;
    if (!trans_a && trans_b && m <= FEW_ROWS && k > 0 && attn_isa_current(&isa) == ATTN_OK) {
        few_rows_product(isa->vec, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#if defined(ATTN_GEMM_DNNL)
    /* With a single row or column oneDNN splits the sum over k between threads,
     * so the result's bits would depend on the thread count: those run on one
     * thread too. */
    bool one_thread = m == 1 || n == 1 || (double)m * n * k < GEMM_PARALLEL_MIN_MACS;
    if (k > 0 && (one_thread ? dnnl_sgemm_one_thread : dnnl_sgemm)(
                     trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb,
                     beta, c, ldc) == dnnl_success)
        return;
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
