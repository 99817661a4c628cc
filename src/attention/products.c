/* The products of one batch entry (products.h): a GEMM from a size up, loops
 * below it. The loops skip no zero: 0 times a NaN value is NaN, as in a GEMM. */
#include "attention/products.h"

#include <string.h>

#include "attn/kernels.h"
#include "kernels/lane_math.h"

/* Below this many multiply-adds a product is a loop. */
#define LOOP_MAX_MACS (1.0 * (1 << 15))

static bool small(int m, int n, int k) { return (double)m * n * k < LOOP_MAX_MACS; }

void attn_product_nt(float *c, const float *a, const float *b, int m, int n, int k, float alpha,
                     bool accumulate)
{
    if (!small(m, n, k)) {
        attn_sgemm(false, true, m, n, k, alpha, a, k, b, k, accumulate ? 1.0f : 0.0f, c, n);
        return;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float dot = alpha * lane_dot(a + (size_t)i * k, b + (size_t)j * k, k);
            c[(size_t)i * n + j] = accumulate ? c[(size_t)i * n + j] + dot : dot;
        }
}

void attn_product_nn(float *c, const float *a, const float *b, int m, int n, int k, float alpha,
                     bool accumulate)
{
    if (!small(m, n, k)) {
        attn_sgemm(false, false, m, n, k, alpha, a, k, b, n, accumulate ? 1.0f : 0.0f, c, n);
        return;
    }
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * n;
        if (!accumulate) memset(ci, 0, (size_t)n * sizeof *ci);
        for (int p = 0; p < k; p++) {
            const float w = alpha * a[(size_t)i * k + p];
            const float *bp = b + (size_t)p * n;
            for (int x = 0; x < n; x++) ci[x] += w * bp[x];
        }
    }
}

void attn_product_tn_add(float *c, const float *a, const float *b, int m, int n, int k,
                         float alpha)
{
    if (!small(m, n, k)) {
        attn_sgemm(true, false, m, n, k, alpha, a, m, b, n, 1.0f, c, n);
        return;
    }
    for (int p = 0; p < k; p++) {
        const float *bp = b + (size_t)p * n;
        for (int i = 0; i < m; i++) {
            const float w = alpha * a[(size_t)p * m + i];
            float *ci = c + (size_t)i * n;
            for (int x = 0; x < n; x++) ci[x] += w * bp[x];
        }
    }
}
