/* nn.Linear's forward and backward against float64 loops and finite differences,
 * and PyTorch's initialisation bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grad_tolerance.h"
#include "testutil.h"

typedef struct linear_case {
    int N, in, out;
    bool bias;
    float *x, *w, *b, *y, *probe;
} linear_case;

static void make_case(linear_case *c, attn_rng *rng, int max)
{
    c->N = 1 + (int)attn_rng_below(rng, (uint32_t)max);
    c->in = 1 + (int)attn_rng_below(rng, (uint32_t)max);
    c->out = 1 + (int)attn_rng_below(rng, (uint32_t)max);
    c->bias = attn_rng_below(rng, 2);
    c->x = test_random(rng, (size_t)c->N * c->in, -1, 1);
    c->w = test_random(rng, (size_t)c->out * c->in, -1, 1);
    c->b = c->bias ? test_random(rng, (size_t)c->out, -1, 1) : NULL;
    c->y = test_random(rng, (size_t)c->N * c->out, -1, 1); /* garbage: forward overwrites */
    c->probe = test_random(rng, (size_t)c->N * c->out, -1, 1);
}

static void free_case(linear_case *c)
{
    free(c->x), free(c->w), free(c->b), free(c->y), free(c->probe);
}

static void test_matches_float64_loops(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int n = 0; n < 50; n++) {
        attn_rng rng = test_rng((uint64_t)n);
        linear_case c;
        make_case(&c, &rng, 40);
        const size_t ny = (size_t)c.N * c.out, nx = (size_t)c.N * c.in, nw = (size_t)c.out * c.in;
        assert_int_equal(attn_linear_forward(c.y, c.x, c.w, c.b, c.N, c.in, c.out), ATTN_OK);
        /* Backward adds: start the gradients from random values. */
        float *dx = test_random(&rng, nx, -1, 1), *dw = test_random(&rng, nw, -1, 1);
        float *db = test_random(&rng, (size_t)c.out, -1, 1);
        double *ry = malloc(ny * sizeof *ry), *rdx = malloc(nx * sizeof *rdx);
        double *rdw = malloc(nw * sizeof *rdw), *rdb = malloc((size_t)c.out * sizeof *rdb);
        for (size_t e = 0; e < nx; e++) rdx[e] = dx[e];
        for (size_t e = 0; e < nw; e++) rdw[e] = dw[e];
        for (int o = 0; o < c.out; o++) rdb[o] = db[o];
        for (int r = 0; r < c.N; r++)
            for (int o = 0; o < c.out; o++) {
                double sum = c.bias ? c.b[o] : 0.0;
                double g = c.probe[(size_t)r * c.out + o];
                for (int i = 0; i < c.in; i++) {
                    sum += (double)c.x[(size_t)r * c.in + i] * c.w[(size_t)o * c.in + i];
                    rdx[(size_t)r * c.in + i] += g * c.w[(size_t)o * c.in + i];
                    rdw[(size_t)o * c.in + i] += g * c.x[(size_t)r * c.in + i];
                }
                ry[(size_t)r * c.out + o] = sum;
                rdb[o] += g;
            }
        assert_int_equal(attn_linear_backward(dx, dw, c.bias ? db : NULL, c.probe, c.x, c.w, c.N,
                                              c.in, c.out),
                         ATTN_OK);
        if (!c.bias)
            for (int o = 0; o < c.out; o++) rdb[o] = db[o];
        double errs[4] = {test_rel_error_f64(c.y, ry, ny), test_rel_error_f64(dx, rdx, nx),
                          test_rel_error_f64(dw, rdw, nw),
                          test_rel_error_f64(db, rdb, (size_t)c.out)};
        for (int t = 0; t < 4; t++) {
            if (errs[t] > worst) worst = errs[t];
            if (!(errs[t] <= 1e-5))
                print_error("case %d N=%d in=%d out=%d bias=%d: output %d error %g\n", n, c.N,
                            c.in, c.out, c.bias, t, errs[t]);
            assert_true(errs[t] <= 1e-5);
        }
        free(dx), free(dw), free(db), free(ry), free(rdx), free(rdw), free(rdb);
        free_case(&c);
    }
    printf("largest error against float64: %g\n", worst);
}

static double linear_loss(void *ctx)
{
    linear_case *c = ctx;
    assert_int_equal(attn_linear_forward(c->y, c->x, c->w, c->b, c->N, c->in, c->out), ATTN_OK);
    return test_dot(c->y, c->probe, (size_t)c->N * c->out);
}

static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int n = 0; n < 20; n++) {
        attn_rng rng = test_rng(100 + (uint64_t)n);
        linear_case c;
        make_case(&c, &rng, 9);
        const size_t nx = (size_t)c.N * c.in, nw = (size_t)c.out * c.in;
        float *dx = test_zeros(nx), *dw = test_zeros(nw), *db = test_zeros((size_t)c.out);
        linear_loss(&c);
        const double magnitude = loss_magnitude(c.y, c.probe, (size_t)c.N * c.out);
        assert_int_equal(attn_linear_backward(dx, dw, db, c.probe, c.x, c.w, c.N, c.in, c.out),
                         ATTN_OK);
        struct {
            const char *name;
            float *x, *grad;
            size_t n;
        } inputs[3] = {{"dx", c.x, dx, nx}, {"dw", c.w, dw, nw}, {"db", c.b, db, (size_t)c.out}};
        for (int t = 0; t < (c.bias ? 3 : 2); t++) {
            double err = gradcheck_error(test_gradcheck(inputs[t].x, inputs[t].n, inputs[t].grad,
                                                        linear_loss, &c, 1e-2f),
                                         inputs[t].grad, inputs[t].n, magnitude);
            if (err > worst) worst = err;
            if (!(err <= 1e-3))
                print_error("case %d N=%d in=%d out=%d: %s finite-difference error %g\n", n, c.N,
                            c.in, c.out, inputs[t].name, err);
            assert_true(err <= 1e-3);
        }
        free(dx), free(dw), free(db);
        free_case(&c);
    }
    printf("largest finite-difference error: %g\n", worst);
}

static void test_null_gradients_are_skipped(void **state)
{
    (void)state;
    attn_rng rng = test_rng(200);
    linear_case c;
    make_case(&c, &rng, 12);
    float *dx = test_zeros((size_t)c.N * c.in);
    assert_int_equal(attn_linear_backward(dx, NULL, NULL, c.probe, NULL, c.w, c.N, c.in, c.out),
                     ATTN_OK);
    assert_int_equal(attn_linear_backward(NULL, NULL, NULL, c.probe, NULL, NULL, c.N, c.in, c.out),
                     ATTN_OK);
    free(dx);
    free_case(&c);
}

static void test_bad_input_is_rejected(void **state)
{
    (void)state;
    float buf[8] = {0};
    test_expect_invalid(attn_linear_forward(buf, buf, buf, NULL, 0, 2, 2), "linear N is 0");
    test_expect_invalid(attn_linear_forward(buf, buf, buf, NULL, 2, -1, 2), "linear in is -1");
    test_expect_invalid(attn_linear_forward(buf, buf, buf, NULL, 2, 2, 0), "linear out is 0");
    test_expect_invalid(attn_linear_forward(NULL, buf, buf, NULL, 2, 2, 2), "linear y is NULL");
    test_expect_invalid(attn_linear_forward(buf, NULL, buf, NULL, 2, 2, 2), "linear x is NULL");
    test_expect_invalid(attn_linear_forward(buf, buf, NULL, NULL, 2, 2, 2), "linear w is NULL");
    test_expect_invalid(attn_linear_backward(buf, buf, buf, NULL, buf, buf, 2, 2, 2), "linear dy");
    test_expect_invalid(attn_linear_backward(NULL, buf, NULL, buf, NULL, buf, 2, 2, 2), "linear x");
    test_expect_invalid(attn_linear_backward(buf, NULL, NULL, buf, buf, NULL, 2, 2, 2), "linear w");
    test_expect_invalid(attn_linear_backward(buf, buf, buf, buf, buf, buf, 2, 0, 2), "linear in");
}

/* Bounds and spread of the uniform initialisations. */
static void check_uniform(const float *x, size_t n, float bound)
{
    double mean = 0.0, lo = bound, hi = -bound;
    for (size_t e = 0; e < n; e++) {
        assert_true(x[e] >= -bound && x[e] <= bound);
        mean += x[e];
        if (x[e] < lo) lo = x[e];
        if (x[e] > hi) hi = x[e];
    }
    mean /= (double)n;
    assert_true(fabs(mean) < 0.05 * bound);
    assert_true(lo < -0.9 * bound && hi > 0.9 * bound); /* uses the whole range */
}

static void test_init_bounds_are_pytorchs(void **state)
{
    (void)state;
    attn_rng rng = test_rng(300);
    const int out = 64, in = 48;
    float *w = malloc((size_t)out * in * sizeof *w), *b = malloc((size_t)out * sizeof *b);
    attn_init_linear(w, b, out, in, &rng);
    check_uniform(w, (size_t)out * in, 1.0f / sqrtf((float)in));
    for (int o = 0; o < out; o++) assert_true(fabsf(b[o]) <= 1.0f / sqrtf((float)in));
    attn_init_linear(w, NULL, out, in, &rng);
    check_uniform(w, (size_t)out * in, 1.0f / sqrtf((float)in));
    attn_init_xavier_uniform(w, out, in, &rng);
    check_uniform(w, (size_t)out * in, sqrtf(6.0f / (float)(in + out)));
    free(w), free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_float64_loops),
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_null_gradients_are_skipped),
        cmocka_unit_test(test_bad_input_is_rejected),
        cmocka_unit_test(test_init_bounds_are_pytorchs),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
