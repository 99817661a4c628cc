/* A layer's product on bfloat16 weights (gemv_bf16.h): the threads split the
 * weights' rows into tasks, and a task runs every row of x over its block of
 * weights, which stays in the nearest cache meanwhile. */
#include "core/threads.h"
#include "kernels/gemv_bf16.h"
#include "kernels/isa.h"

enum { W_ROWS_PER_TASK = 16 };
/* Below this many multiply-adds the product takes less than waking a thread. */
#define BF16_PRODUCT_PARALLEL_MIN_MACS (1.0 * (1 << 16))

attn_status attn_bf16_weights_product(float *y, const uint16_t *x, const uint16_t *w, int m, int n,
                                      int k, bool accumulate)
{
    const attn_isa *isa;
    attn_status s = attn_isa_current(&isa);
    if (s) return s;
    const attn_vec_kernels *vec = isa->vec;
    const long tasks = (n + W_ROWS_PER_TASK - 1) / W_ROWS_PER_TASK;
#pragma omp parallel for schedule(static) \
    if ((double)m * n * k >= BF16_PRODUCT_PARALLEL_MIN_MACS) num_threads(attn_get_num_threads())
    for (long task = 0; task < tasks; task++) {
        const int first = (int)task * W_ROWS_PER_TASK;
        const int count = n - first < W_ROWS_PER_TASK ? n - first : W_ROWS_PER_TASK;
        float dots[W_ROWS_PER_TASK];
        for (int i = 0; i < m; i++) {
            vec->dot_rows_bf16(dots, x + (size_t)i * k, w + (size_t)first * k, (size_t)k, count, k);
            float *yi = y + (size_t)i * n + first;
            for (int j = 0; j < count; j++) yi[j] = accumulate ? yi[j] + dots[j] : dots[j];
        }
    }
    return ATTN_OK;
}
