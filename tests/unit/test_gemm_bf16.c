/* attn_gemm at bf16 precision against float64 on fresh random cases.
 *
 * The bound (attn/kernels.h): the operands are rounded to bfloat16 (a' = a(1 + d),
 * |d| <= u = 2^-8), whose products are exact in float32 (8 x 8 significant bits);
 * the k products are summed in float32 in any order, alpha scales and beta C0 is
 * added, so with u32 = 2^-24 and gamma(n) = n u32 / (1 - n u32), per element
 *   |C - (alpha sum_p a'b' + beta C0)| <= gamma(k + 2) |alpha| sum_p |a'b'| + gamma(2) |beta C0|
 * against float64 on the rounded operands, and against the float32 operands
 *   |C - (alpha sum_p ab + beta C0)| <= that + (2u + u^2) |alpha| sum_p |ab|.
 * The first bound is far below bf16's own error for k >= 2, so a product that did
 * not round its operands fails it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/bf16_rows.h"
#include "kernels/gemm_bf16.h"
#include "testutil.h"

static const double U_BF16 = 1.0 / 256.0, U_F32 = 1.0 / 16777216.0;

static double gamma_n(int n) { return n * U_F32 / (1.0 - n * U_F32); }

static float rounded(float x)
{
    uint16_t h;
    float back;
    attn_bf16_from_float(&h, &x, 1);
    attn_float_from_bf16(&back, &h, 1);
    return back;
}

typedef struct gemm_case {
    bool ta, tb;
    int m, n, k, lda, ldb, ldc;
    float alpha, beta;
} gemm_case;

static float op_a(const gemm_case *g, const float *a, int i, int p)
{
    return g->ta ? a[(size_t)p * g->lda + i] : a[(size_t)i * g->lda + p];
}

static float op_b(const gemm_case *g, const float *b, int p, int j)
{
    return g->tb ? b[(size_t)j * g->ldb + p] : b[(size_t)p * g->ldb + j];
}

/* Runs case g on fresh random operands (c holding random values, or NaN when beta
 * is 0, which must not be read) and checks both bounds on every element. */
static void check_case(const gemm_case *g, attn_rng *rng, int id)
{
    const size_t a_size = (size_t)(g->ta ? g->k : g->m) * g->lda;
    const size_t b_size = (size_t)(g->tb ? g->n : g->k) * g->ldb;
    const size_t c_size = (size_t)g->m * g->ldc;
    float *a = test_random(rng, a_size, -1, 1), *b = test_random(rng, b_size, -1, 1);
    float *c = test_random(rng, c_size, -1, 1), *c0 = malloc(c_size * sizeof *c0);
    if (g->beta == 0.0f)
        for (size_t i = 0; i < c_size; i++) c[i] = NAN;
    memcpy(c0, c, c_size * sizeof *c0);
    attn_gemm(ATTN_BF16, g->ta, g->tb, g->m, g->n, g->k, g->alpha, a, g->lda, b, g->ldb, g->beta,
              c, g->ldc);
    for (int i = 0; i < g->m; i++)
        for (int j = 0; j < g->n; j++) {
            double exact_rounded = 0, abs_rounded = 0, exact = 0, abs_exact = 0;
            for (int p = 0; p < g->k; p++) {
                const double x = op_a(g, a, i, p), y = op_b(g, b, p, j);
                const double xr = rounded((float)x), yr = rounded((float)y);
                exact_rounded += xr * yr;
                abs_rounded += fabs(xr * yr);
                exact += x * y;
                abs_exact += fabs(x * y);
            }
            const double c_in = g->beta == 0.0f ? 0.0 : (double)g->beta * c0[(size_t)i * g->ldc + j];
            const double got = c[(size_t)i * g->ldc + j];
            const double bound_rounded =
                gamma_n(g->k + 2) * fabs(g->alpha) * abs_rounded + gamma_n(2) * fabs(c_in);
            const double bound = bound_rounded + (2 * U_BF16 + U_BF16 * U_BF16) * fabs(g->alpha) * abs_exact;
            const double err_rounded = fabs(got - (g->alpha * exact_rounded + c_in));
            const double err = fabs(got - (g->alpha * exact + c_in));
            if (!(err_rounded <= bound_rounded && err <= bound))
                fail_msg("case %d (m %d n %d k %d ta %d tb %d alpha %g beta %g) C[%d,%d] = %.9g: "
                         "error %.3g against the rounded operands (bound %.3g), %.3g against "
                         "the float32 ones (bound %.3g)",
                         id, g->m, g->n, g->k, g->ta, g->tb, (double)g->alpha, (double)g->beta, i,
                         j, got, err_rounded, bound_rounded, err, bound);
        }
    /* Past each row's n columns, C is not written. */
    for (int i = 0; i < g->m; i++)
        for (int j = g->n; j < g->ldc; j++)
            if (memcmp(&c[(size_t)i * g->ldc + j], &c0[(size_t)i * g->ldc + j], sizeof *c) != 0)
                fail_msg("case %d: C[%d,%d] past the row's %d columns was written", id, i, j, g->n);
    free(a), free(b), free(c), free(c0);
}

static gemm_case random_case(attn_rng *rng, int max_mn, int max_k)
{
    gemm_case g = {.ta = attn_rng_below(rng, 2), .tb = attn_rng_below(rng, 2)};
    g.m = 1 + (int)attn_rng_below(rng, (uint32_t)max_mn);
    g.n = 1 + (int)attn_rng_below(rng, (uint32_t)max_mn);
    g.k = 1 + (int)attn_rng_below(rng, (uint32_t)max_k);
    /* leading dimensions at least the stored row, sometimes longer */
    g.lda = (g.ta ? g.m : g.k) + (int)attn_rng_below(rng, 3);
    g.ldb = (g.tb ? g.k : g.n) + (int)attn_rng_below(rng, 3);
    g.ldc = g.n + (int)attn_rng_below(rng, 3);
    static const float betas[] = {0.0f, 1.0f, -0.75f};
    g.alpha = attn_rng_below(rng, 2) ? 1.0f : attn_rng_uniform(rng) + 0.5f;
    g.beta = betas[attn_rng_below(rng, 3)];
    return g;
}

static void test_bf16_within_bound(void **state)
{
    (void)state;
    for (int c = 0; c < 60; c++) {
        attn_rng rng = test_rng((uint64_t)c);
        const gemm_case g = random_case(&rng, 90, 700);
        check_case(&g, &rng, c);
    }
}

/* Shapes of a language model's step (rows = batch x block), where the product
 * takes oneDNN's blocked kernels and threads. */
static void test_bf16_model_shapes_within_bound(void **state)
{
    (void)state;
    static const gemm_case shapes[] = {
        {false, true, 256, 384, 128, 128, 128, 384, 1.0f, 1.0f},  /* linear forward */
        {false, false, 256, 128, 384, 384, 128, 128, 1.0f, 0.0f}, /* dx = dy w */
        {true, false, 384, 128, 256, 384, 128, 128, 1.0f, 1.0f},  /* dw += dy^T x */
        {false, true, 512, 65, 192, 192, 192, 65, 1.0f, 0.0f},    /* a vocabulary head */
    };
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        attn_rng rng = test_rng((uint64_t)(100 + s));
        check_case(&shapes[s], &rng, 100 + s);
    }
}

/* More distinct shapes than the library keeps primitives for: those past the
 * cache run on primitives made for the call, within the same bound; and a shape
 * run again on its cached primitive gives the same bits. */
static void test_bf16_many_shapes(void **state)
{
    (void)state;
    for (int c = 0; c < 300; c++) {
        attn_rng rng = test_rng((uint64_t)(1000 + c));
        gemm_case g = random_case(&rng, 8, 40);
        g.m = 1 + c; /* distinct from each other */
        g.lda = g.ta ? g.m : g.k;
        check_case(&g, &rng, 1000 + c);
    }
    attn_rng rng = test_rng(2000);
    const int m = 37, n = 29, k = 53;
    float *a = test_random(&rng, (size_t)m * k, -1, 1), *b = test_random(&rng, (size_t)k * n, -1, 1);
    float *first = test_zeros((size_t)m * n), *again = test_zeros((size_t)m * n);
    attn_gemm(ATTN_BF16, false, false, m, n, k, 1.0f, a, k, b, n, 0.0f, first, n);
    attn_gemm(ATTN_BF16, false, false, m, n, k, 1.0f, a, k, b, n, 0.0f, again, n);
    assert_memory_equal(first, again, (size_t)m * n * sizeof *first);
    free(a), free(b), free(first), free(again);
}

/* k = 0 leaves beta C; float32 precision is attn_sgemm, bit for bit. */
static void test_edges_and_float32(void **state)
{
    (void)state;
    float c[4] = {1, 2, 3, 4};
    const float a[1] = {5}, b[1] = {7};
    attn_gemm(ATTN_BF16, false, false, 2, 2, 0, 1.0f, a, 1, b, 2, 0.5f, c, 2);
    const float half[4] = {0.5f, 1, 1.5f, 2};
    assert_memory_equal(c, half, sizeof c);

    attn_rng rng = test_rng(3000);
    const int m = 70, n = 50, k = 90;
    float *x = test_random(&rng, (size_t)m * k, -1, 1), *y = test_random(&rng, (size_t)n * k, -1, 1);
    float *one = test_random(&rng, (size_t)m * n, -1, 1), *two = malloc((size_t)m * n * sizeof *two);
    memcpy(two, one, (size_t)m * n * sizeof *two);
    attn_gemm(ATTN_FLOAT32, false, true, m, n, k, 1.0f, x, k, y, k, 1.0f, one, n);
    attn_sgemm(false, true, m, n, k, 1.0f, x, k, y, k, 1.0f, two, n);
    assert_memory_equal(one, two, (size_t)m * n * sizeof *one);
    free(x), free(y), free(one), free(two);
    assert_non_null(attn_gemm_bf16_backend());
}

/* attn_affine_product, y = [residual +] x w^T [+ bias], at both precisions, with
 * and without bias, with the residual apart, in place (y is the residual) or
 * none, on a few rows (the fill-then-product path) and many (oneDNN's epilogue),
 * bf16 operands rounded by the call or given rounded. The result is a sum of
 * in + 2 terms in float32 (the products, exact on bf16 operands, the bias and the
 * residual), so per element
 *   |y - exact| <= gamma(in + 2) (sum_p |x'_p w'_p| + |bias| + |residual|)
 * against float64 on the operands the product multiplies (x', w': rounded to
 * bf16 at ATTN_BF16, as given at ATTN_FLOAT32). */
static void test_affine_product_within_bound(void **state)
{
    (void)state;
    for (int c = 0; c < 48; c++) {
        attn_rng rng = test_rng(1000 + (uint64_t)c);
        const attn_precision precision = c % 2 ? ATTN_BF16 : ATTN_FLOAT32;
        const int N = c % 3 == 0 ? 1 + (int)attn_rng_below(&rng, 4)
                                 : 5 + (int)attn_rng_below(&rng, 200);
        const int in = 1 + (int)attn_rng_below(&rng, 300), out = 1 + (int)attn_rng_below(&rng, 200);
        const int residual_kind = (c / 2) % 3; /* 0 none, 1 apart, 2 in place */
        const bool with_bias = (c / 6) % 2 == 0, given_rounded = (c / 12) % 2 == 0;
        float *x = test_random(&rng, (size_t)N * in, -1, 1);
        float *w = test_random(&rng, (size_t)out * in, -1, 1);
        float *bias = with_bias ? test_random(&rng, out, -1, 1) : NULL;
        float *r = test_random(&rng, (size_t)N * out, -1, 1);
        float *y = malloc((size_t)N * out * sizeof *y);
        assert_non_null(y);
        if (residual_kind == 2)
            memcpy(y, r, (size_t)N * out * sizeof *y);
        else
            for (size_t i = 0; i < (size_t)N * out; i++) y[i] = NAN; /* must not be read */
        uint16_t *x16 = NULL, *w16 = NULL;
        if (precision == ATTN_BF16 && given_rounded) {
            x16 = malloc((size_t)N * in * sizeof *x16);
            w16 = malloc((size_t)out * in * sizeof *w16);
            assert_non_null(x16), assert_non_null(w16);
            attn_bf16_from_float(x16, x, (size_t)N * in);
            attn_bf16_from_float(w16, w, (size_t)out * in);
        }
        const float *residual = residual_kind == 1 ? r : residual_kind == 2 ? y : NULL;
        /* given rounded, the float32 values may be left out */
        const float *x_arg = x16 && c % 4 == 1 ? NULL : x;
        attn_affine_product(precision, y, residual, x_arg, x16, w, w16, bias, N, in, out);
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out; o++) {
                double exact = 0, sum_abs = 0;
                for (int p = 0; p < in; p++) {
                    double xp = x[(size_t)n * in + p], wp = w[(size_t)o * in + p];
                    if (precision == ATTN_BF16) xp = rounded((float)xp), wp = rounded((float)wp);
                    exact += xp * wp;
                    sum_abs += fabs(xp * wp);
                }
                const double b = bias ? bias[o] : 0.0, res = residual_kind ? r[(size_t)n * out + o] : 0.0;
                const double got = y[(size_t)n * out + o];
                const double bound = gamma_n(in + 2) * (sum_abs + fabs(b) + fabs(res));
                if (!(fabs(got - (exact + b + res)) <= bound))
                    fail_msg("case %d (%s, N %d in %d out %d, bias %d, residual %d, given "
                             "rounded %d) y[%d,%d] = %.9g, float64 %.9g, bound %.3g",
                             c, attn_precision_name(precision), N, in, out, with_bias,
                             residual_kind, given_rounded, n, o, got, exact + b + res, bound);
            }
        free(x), free(w), free(bias), free(r), free(y), free(x16), free(w16);
    }
}

/* attn_bf16_round_rows_sum_columns against plain loops, bit for bit: each value
 * (times its scale, one float32 multiply) rounded as attn_bf16_from_float, and
 * each column's sum over the rows of each block of ATTN_BF16_SUM_BLOCK_ROWS in
 * order, the blocks' sums in order, added to the sums given; on 1, 2 and 3
 * threads, with and without each of scale, dst and sums, and on shapes both
 * below and above the size at which the threads share the work. */
static void test_round_rows_sum_columns(void **state)
{
    (void)state;
    const int threads_before = attn_get_num_threads();
    for (int c = 0; c < 36; c++) {
        attn_rng rng = test_rng(2000 + (uint64_t)c);
        const int rows = 1 + (int)attn_rng_below(&rng, c % 2 ? 400 : 20);
        const int cols = 1 + (int)attn_rng_below(&rng, c % 3 ? 700 : 40);
        const bool with_scale = c % 4 < 2, with_dst = (c / 2) % 3 != 2, with_sums = c % 3 != 1;
        const int threads = 1 + c % 3;
        const size_t n = (size_t)rows * cols;
        float *src = test_random(&rng, n, -4, 4);
        float *scale = with_scale ? test_random(&rng, n, -2, 2) : NULL;
        float *sums = test_random(&rng, cols, -1, 1);
        float *expect_sums = malloc(cols * sizeof *expect_sums);
        uint16_t *dst = malloc(n * sizeof *dst), *expect = malloc(n * sizeof *expect);
        assert_non_null(expect_sums), assert_non_null(dst), assert_non_null(expect);
        for (int k = 0; k < cols; k++) {
            float total = 0.0f, block = 0.0f;
            for (int r = 0; r < rows; r++) {
                const size_t i = (size_t)r * cols + k;
                float v = src[i];
                if (scale) v = v * scale[i];
                attn_bf16_from_float(expect + i, &v, 1);
                block += v;
                if ((r + 1) % ATTN_BF16_SUM_BLOCK_ROWS == 0 || r + 1 == rows) {
                    total = r < ATTN_BF16_SUM_BLOCK_ROWS ? block : total + block;
                    block = 0.0f;
                }
            }
            expect_sums[k] = sums[k] + total;
        }
        float *block_sums = malloc((size_t)attn_bf16_sum_blocks(rows) * cols * sizeof *block_sums);
        assert_non_null(block_sums);
        assert_int_equal(attn_set_num_threads(threads), ATTN_OK);
        attn_bf16_round_rows_sum_columns(with_dst ? dst : NULL, with_sums ? sums : NULL,
                                         block_sums, src, scale, rows, cols);
        free(block_sums);
        if (with_dst && memcmp(dst, expect, n * sizeof *dst) != 0)
            fail_msg("case %d (%d x %d, scale %d, %d threads): a rounded value differs", c, rows,
                     cols, with_scale, threads);
        if (with_sums && memcmp(sums, expect_sums, cols * sizeof *sums) != 0)
            fail_msg("case %d (%d x %d, scale %d, %d threads): a column sum differs", c, rows,
                     cols, with_scale, threads);
        free(src), free(scale), free(sums), free(expect_sums), free(dst), free(expect);
    }
    assert_int_equal(attn_set_num_threads(threads_before), ATTN_OK);
}

static void test_precision_names(void **state)
{
    (void)state;
    attn_precision p = ATTN_FLOAT32;
    assert_int_equal(attn_precision_parse(&p, "bf16"), ATTN_OK);
    assert_int_equal(p, ATTN_BF16);
    assert_string_equal(attn_precision_name(ATTN_FLOAT32), "float32");
    test_expect_invalid(attn_precision_parse(&p, "fp16"), "'fp16'");
    assert_int_equal(p, ATTN_BF16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_within_bound),
        cmocka_unit_test(test_bf16_model_shapes_within_bound),
        cmocka_unit_test(test_bf16_many_shapes),
        cmocka_unit_test(test_edges_and_float32),
        cmocka_unit_test(test_affine_product_within_bound),
        cmocka_unit_test(test_round_rows_sum_columns),
        cmocka_unit_test(test_precision_names),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
