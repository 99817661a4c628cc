/* Softmax over the last axis: float64 reference, masks of each type and shape,
 * finite differences, accumulation, NaN, extreme inputs, bad arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention_ref.h"
#include "testutil.h"

enum { CASES = 40 };

typedef struct softmax_case {
    int rows, n;
    bool masked;
    mask_case mc; /* target (1, 1, rows, n) */
    float *x;     /* (rows, n) */
} softmax_case;

/* Random sizes, inputs in [-range, range) and a mask of type mask_kind (an
 * attn_mask_type, or 3 for none). */
static void make_case(softmax_case *c, attn_rng *rng, int mask_kind, int max_rows, int max_n,
                      float range)
{
    c->rows = 1 + (int)attn_rng_below(rng, (uint32_t)max_rows);
    c->n = 1 + (int)attn_rng_below(rng, (uint32_t)max_n);
    c->x = test_random(rng, (size_t)c->rows * c->n, -range, range);
    c->masked = mask_kind < 3;
    if (c->masked)
        assert_int_equal(mask_case_make(&c->mc, rng, (attn_mask_type)mask_kind, 1, c->rows, c->n),
                         ATTN_OK);
}

static void free_case(softmax_case *c)
{
    free(c->x);
    if (c->masked) mask_case_free(&c->mc);
}

static const char *case_mask_name(const softmax_case *c)
{
    return c->masked ? mask_type_name(c->mc.type) : "none";
}

static void test_forward_and_backward_match_float64(void **state)
{
    (void)state;
    double worst_y = 0.0, worst_dx = 0.0;
    for (int k = 0; k < CASES; k++) {
        attn_rng rng = test_rng((uint64_t)k);
        softmax_case c;
        make_case(&c, &rng, k % 4, 12, 40, 4.0f);
        size_t total = (size_t)c.rows * c.n;
        const mask_case *mc = c.masked ? &c.mc : NULL;
        float *y = test_zeros(total);
        float *dy = test_random(&rng, total, -1.0f, 1.0f);
        float *dx = test_zeros(total);
        double *y_ref = malloc(total * sizeof *y_ref), *dx_ref = malloc(total * sizeof *dx_ref);

        assert_int_equal(attn_softmax_forward(y, c.x, mc ? &mc->mask : NULL, c.rows, c.n), ATTN_OK);
        assert_int_equal(attn_softmax_backward(dx, dy, y, c.rows, c.n), ATTN_OK);
        for (int r = 0; r < c.rows; r++) {
            double *yr = y_ref + (size_t)r * c.n;
            bool live = ref_softmax_row(yr, c.x + (size_t)r * c.n, mc, 0, r, c.n);
            double dot = 0.0, sum = 0.0;
            for (int j = 0; j < c.n; j++) dot += dy[(size_t)r * c.n + j] * yr[j];
            for (int j = 0; j < c.n; j++) {
                size_t e = (size_t)r * c.n + j;
                dx_ref[e] = yr[j] * (dy[e] - dot);
                if (yr[j] == 0.0) assert_true(y[e] == 0.0f); /* masked keys get exactly 0 */
                sum += y[e];
            }
            if (fabs(sum - (live ? 1.0 : 0.0)) > 1e-5)
                print_error("case %d row %d sums to %.9g (live %d)\n", k, r, sum, live);
            assert_true(fabs(sum - (live ? 1.0 : 0.0)) <= 1e-5);
        }
        double ey = test_rel_error_f64(y, y_ref, total);
        double edx = test_rel_error_f64(dx, dx_ref, total);
        if (ey > 1e-5 || edx > 1e-5)
            print_error("case %d rows=%d n=%d mask=%s: y error %g, dx error %g\n", k, c.rows, c.n,
                        case_mask_name(&c), ey, edx);
        assert_true(ey <= 1e-5);
        assert_true(edx <= 1e-5);
        worst_y = fmax(worst_y, ey);
        worst_dx = fmax(worst_dx, edx);
        free(y), free(dy), free(dx), free(y_ref), free(dx_ref);
        free_case(&c);
    }
    printf("softmax: largest relative error y %.3g, dx %.3g\n", worst_y, worst_dx);
}

/* Each row a shuffle of n evenly spaced values in [-1, 1]: a probe whose entries
 * happened to be nearly equal would give a gradient near zero, below the float32
 * rounding of the loss. */
static float *spread_probe(attn_rng *rng, int rows, int n)
{
    float *probe = test_zeros((size_t)rows * n);
    for (int r = 0; r < rows; r++) {
        float *row = probe + (size_t)r * n;
        for (int j = 0; j < n; j++)
            row[j] = n == 1 ? 0.0f : -1.0f + 2.0f * (float)j / (float)(n - 1);
        for (int j = n - 1; j > 0; j--) {
            int other = (int)attn_rng_below(rng, (uint32_t)j + 1);
            float t = row[j];
            row[j] = row[other];
            row[other] = t;
        }
    }
    return probe;
}

typedef struct loss_ctx {
    softmax_case *c;
    float *y, *probe;
} loss_ctx;

static double softmax_loss(void *p)
{
    loss_ctx *ctx = p;
    softmax_case *c = ctx->c;
    attn_softmax_forward(ctx->y, c->x, c->masked ? &c->mc.mask : NULL, c->rows, c->n);
    return test_dot(ctx->y, ctx->probe, (size_t)c->rows * c->n);
}

static void test_gradient_matches_finite_differences(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int k = 0; k < CASES; k++) {
        attn_rng rng = test_rng(1000 + (uint64_t)k);
        softmax_case c;
        /* Moderate scores: a nearly one-hot row has gradients so small that the
         * float32 rounding of the loss (~1e-5 after differencing) would dominate. */
        make_case(&c, &rng, k % 4, 5, 12, 1.0f);
        size_t total = (size_t)c.rows * c.n;
        loss_ctx ctx = {&c, test_zeros(total), spread_probe(&rng, c.rows, c.n)};
        float *dx = test_zeros(total);
        softmax_loss(&ctx);
        assert_int_equal(attn_softmax_backward(dx, ctx.probe, ctx.y, c.rows, c.n), ATTN_OK);
        double err = test_gradcheck(c.x, total, dx, softmax_loss, &ctx, 1e-2f);
        if (err > 1e-3)
            print_error("case %d rows=%d n=%d mask=%s: gradcheck error %g\n", k, c.rows, c.n,
                        case_mask_name(&c), err);
        assert_true(err <= 1e-3);
        worst = fmax(worst, err);
        free(ctx.y), free(ctx.probe), free(dx);
        free_case(&c);
    }
    printf("softmax: largest gradcheck error %.3g\n", worst);
}

static void test_backward_accumulates(void **state)
{
    (void)state;
    attn_rng rng = test_rng(2000);
    int rows = 7, n = 13;
    size_t total = (size_t)rows * n;
    float *x = test_random(&rng, total, -3.0f, 3.0f), *dy = test_random(&rng, total, -1.0f, 1.0f);
    float *y = test_zeros(total), *once = test_zeros(total), *twice = test_zeros(total);
    assert_int_equal(attn_softmax_forward(y, x, NULL, rows, n), ATTN_OK);
    assert_int_equal(attn_softmax_backward(once, dy, y, rows, n), ATTN_OK);
    assert_int_equal(attn_softmax_backward(twice, dy, y, rows, n), ATTN_OK);
    assert_int_equal(attn_softmax_backward(twice, dy, y, rows, n), ATTN_OK);
    for (size_t e = 0; e < total; e++) assert_true(twice[e] == 2.0f * once[e]);
    free(x), free(dy), free(y), free(once), free(twice);
}

/* Every key masked, by each mask type: zeros, no NaN, and no gradient. A finite
 * fill (the seed's masked_fill(-1e20)) gives a uniform row instead, as in PyTorch. */
static void test_fully_masked_rows(void **state)
{
    (void)state;
    enum { N = 5 };
    const float x[2 * N] = {1, 2, 3, 4, 5, 0.5f, -1, 2, 0, 7};
    const uint8_t all_excluded[N] = {1, 1, 1, 1, 1}, none_kept[N] = {0, 0, 0, 0, 0};
    const float minus_inf[N] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    const void *data[3] = {all_excluded, none_kept, minus_inf};
    const int64_t shape[1] = {N}, target[4] = {1, 1, 2, N};
    for (int type = 0; type < 3; type++) {
        attn_mask mask;
        assert_int_equal(attn_mask_init(&mask, (attn_mask_type)type, data[type], 1, shape, target),
                         ATTN_OK);
        float y[2 * N], dx[2 * N] = {0}, dy[2 * N];
        for (int e = 0; e < 2 * N; e++) dy[e] = (float)e - 3.0f;
        assert_int_equal(attn_softmax_forward(y, x, &mask, 2, N), ATTN_OK);
        assert_int_equal(attn_softmax_backward(dx, dy, y, 2, N), ATTN_OK);
        for (int e = 0; e < 2 * N; e++) {
            assert_true(y[e] == 0.0f);
            assert_true(dx[e] == 0.0f);
        }
        if (type != ATTN_MASK_FLOAT) {
            mask.fill = true;
            mask.fill_value = -1e20f;
            assert_int_equal(attn_softmax_forward(y, x, &mask, 2, N), ATTN_OK);
            for (int e = 0; e < 2 * N; e++) assert_float_equal(y[e], 1.0f / N, 1e-7f);
        }
    }
}

/* A NaN score makes its own row NaN, as in PyTorch, and no other; a NaN under a
 * bool mask is replaced by -inf first (masked_fill), so it does not spread. */
static void test_nan_stays_in_its_row(void **state)
{
    (void)state;
    enum { ROWS = 4, N = 6 };
    attn_rng rng = test_rng(3000);
    float *x = test_random(&rng, ROWS * N, -2.0f, 2.0f), y[ROWS * N], dx[ROWS * N] = {0};
    x[1 * N + 2] = NAN;
    x[3 * N + 4] = NAN;
    uint8_t excluded[ROWS * N] = {0};
    excluded[3 * N + 4] = 1;
    const int64_t shape[2] = {ROWS, N}, target[4] = {1, 1, ROWS, N};
    attn_mask mask;
    assert_int_equal(attn_mask_init(&mask, ATTN_MASK_BOOL, excluded, 2, shape, target), ATTN_OK);
    assert_int_equal(attn_softmax_forward(y, x, &mask, ROWS, N), ATTN_OK);
    assert_int_equal(attn_softmax_backward(dx, y, y, ROWS, N), ATTN_OK);
    for (int r = 0; r < ROWS; r++) {
        for (int j = 0; j < N; j++) {
            assert_true(isnan(y[r * N + j]) == (r == 1));
            assert_true(isnan(dx[r * N + j]) == (r == 1));
        }
    }
    assert_true(y[3 * N + 4] == 0.0f);
    free(x);
}

/* Subtracting the row max keeps scores near the float limits from overflowing. */
static void test_extreme_scores_are_stable(void **state)
{
    (void)state;
    enum { ROWS = 3, N = 8 };
    attn_rng rng = test_rng(4000);
    float *x = test_random(&rng, ROWS * N, -3e4f, 3e4f), y[ROWS * N];
    x[5] = 1e38f;
    x[N + 1] = -1e38f;
    assert_int_equal(attn_softmax_forward(y, x, NULL, ROWS, N), ATTN_OK);
    for (int r = 0; r < ROWS; r++) {
        double sum = 0.0;
        for (int j = 0; j < N; j++) {
            assert_true(isfinite(y[r * N + j]));
            sum += y[r * N + j];
        }
        assert_true(fabs(sum - 1.0) < 1e-6);
    }
    assert_true(y[5] == 1.0f);
    free(x);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float x[4] = {0}, y[4];
    test_expect_invalid(attn_softmax_forward(NULL, x, NULL, 2, 2), "y is NULL");
    test_expect_invalid(attn_softmax_forward(y, NULL, NULL, 2, 2), "x is NULL");
    test_expect_invalid(attn_softmax_forward(y, x, NULL, 0, 2), "rows is 0");
    test_expect_invalid(attn_softmax_forward(y, x, NULL, 2, -1), "n is -1");
    attn_mask mask = {.type = (attn_mask_type)9, .data = x};
    test_expect_invalid(attn_softmax_forward(y, x, &mask, 2, 2), "mask type 9");
    mask.type = ATTN_MASK_FLOAT;
    mask.data = NULL;
    test_expect_invalid(attn_softmax_forward(y, x, &mask, 2, 2), "mask data is NULL");
    test_expect_invalid(attn_softmax_backward(NULL, x, y, 2, 2), "dx is NULL");
    test_expect_invalid(attn_softmax_backward(y, NULL, x, 2, 2), "dy is NULL");
    test_expect_invalid(attn_softmax_backward(y, x, NULL, 2, 2), "y is NULL");
    test_expect_invalid(attn_softmax_backward(y, x, x, 2, 0), "n is 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_and_backward_match_float64),
        cmocka_unit_test(test_gradient_matches_finite_differences),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_fully_masked_rows),
        cmocka_unit_test(test_nan_stays_in_its_row),
        cmocka_unit_test(test_extreme_scores_are_stable),
        cmocka_unit_test(test_bad_arguments),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
