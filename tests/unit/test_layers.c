/* The building blocks of nn.h: embedding, layer normalisation, dropout and the
 * pointwise activations, against float64 loops, finite differences and their
 * contracts (accumulation, aliasing, thread count, bad input). */
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

static int random_int(attn_rng *rng, int lo, int hi) /* in [lo, hi] */
{
    return lo + (int)attn_rng_below(rng, (uint32_t)(hi - lo + 1));
}

static double *copy_f64(const float *x, size_t n)
{
    double *y = malloc((n ? n : 1) * sizeof *y);
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

static void expect_close(const char *what, int case_number, double err, double limit)
{
    if (!(err <= limit)) print_error("case %d: %s error %g > %g\n", case_number, what, err, limit);
    assert_true(err <= limit);
}

/* ---- embedding -------------------------------------------------------------------- */

static void test_embedding_gathers_and_scatters(void **state)
{
    (void)state;
    for (int n = 0; n < 30; n++) {
        attn_rng rng = test_rng((uint64_t)n);
        const int num = random_int(&rng, 1, 20), dim = random_int(&rng, 1, 33);
        const int N = random_int(&rng, 1, 60); /* more ids than rows: repeats */
        const int padding_idx = attn_rng_below(&rng, 2) ? -1 : random_int(&rng, 0, num - 1);
        int32_t *ids = malloc((size_t)N * sizeof *ids);
        for (int i = 0; i < N; i++) ids[i] = random_int(&rng, 0, num - 1);
        float *w = test_random(&rng, (size_t)num * dim, -1, 1);
        float *y = test_random(&rng, (size_t)N * dim, -1, 1);
        float *dy = test_random(&rng, (size_t)N * dim, -1, 1);
        float *dw = test_random(&rng, (size_t)num * dim, -1, 1);
        double *want = copy_f64(dw, (size_t)num * dim);
        assert_int_equal(attn_embedding_forward(y, ids, w, N, num, dim), ATTN_OK);
        for (int i = 0; i < N; i++)
            assert_memory_equal(y + (size_t)i * dim, w + (size_t)ids[i] * dim,
                                (size_t)dim * sizeof *y);
        assert_int_equal(attn_embedding_backward(dw, dy, ids, N, num, dim, padding_idx), ATTN_OK);
        for (int i = 0; i < N; i++)
            if (ids[i] != padding_idx)
                for (int d = 0; d < dim; d++)
                    want[(size_t)ids[i] * dim + d] += dy[(size_t)i * dim + d];
        expect_close("embedding dweight", n, test_rel_error_f64(dw, want, (size_t)num * dim),
                     1e-6);
        free(ids), free(w), free(y), free(dy), free(dw), free(want);
    }
}

static void test_embedding_rejects_bad_input(void **state)
{
    (void)state;
    float w[16] = {0}, y[16] = {0};
    const int32_t ids[3] = {0, 2, 1};
    test_expect_invalid(attn_embedding_forward(y, ids, w, 3, 2, 3),
                        "embedding id 2 at position 1 is outside [0, 2)");
    const int32_t negative[2] = {1, -4};
    test_expect_invalid(attn_embedding_forward(y, negative, w, 2, 3, 2), "id -4 at position 1");
    test_expect_invalid(attn_embedding_backward(w, y, negative, 2, 3, 2, -1), "id -4");
    test_expect_invalid(attn_embedding_backward(w, y, ids, 3, 3, 2, 3), "padding_idx 3");
    test_expect_invalid(attn_embedding_backward(w, y, ids, 3, 3, 2, -2), "padding_idx -2");
    test_expect_invalid(attn_embedding_forward(y, ids, w, 0, 3, 2), "embedding N is 0");
    test_expect_invalid(attn_embedding_forward(y, ids, w, 3, 3, 0), "embedding dim is 0");
    test_expect_invalid(attn_embedding_forward(y, NULL, w, 3, 3, 2), "embedding ids is NULL");
    test_expect_invalid(attn_embedding_forward(y, ids, NULL, 3, 3, 2), "embedding weight");
    test_expect_invalid(attn_embedding_backward(NULL, y, ids, 3, 3, 2, -1), "dweight");
    /* A bad id leaves the output untouched. */
    float before[6] = {1, 2, 3, 4, 5, 6}, out[6];
    memcpy(out, before, sizeof out);
    const int32_t late[2] = {0, 7};
    assert_int_not_equal(attn_embedding_forward(out, late, w, 2, 3, 2), ATTN_OK);
    assert_memory_equal(out, before, sizeof out);
}

/* ---- layer normalisation ------------------------------------------------------------ */

typedef struct ln_case {
    int N, D;
    float eps;
    bool affine;
    float *x, *w, *b, *y, *mean, *rstd, *probe;
} ln_case;

/* Rows around an offset hundreds of times their spread in some cases, where a
 * one-pass or float variance, or a backward centring with the mean rounded to
 * float, would lose digits. */
static void make_ln_case(ln_case *c, attn_rng *rng, int max_n, int max_d)
{
    c->N = random_int(rng, 1, max_n);
    c->D = random_int(rng, 1, max_d);
    const float epsilons[3] = {1e-5f, 1e-6f, 1e-3f};
    c->eps = epsilons[attn_rng_below(rng, 3)];
    c->affine = attn_rng_below(rng, 3) != 0;
    const size_t n = (size_t)c->N * c->D;
    const float offset = attn_rng_below(rng, 3) == 0 ? 50.0f : 0.0f;
    const float spread = attn_rng_below(rng, 2) ? 1.0f : 0.1f;
    c->x = test_random(rng, n, offset - spread, offset + spread);
    c->w = c->affine ? test_random(rng, (size_t)c->D, 0.5f, 1.5f) : NULL;
    c->b = c->affine ? test_random(rng, (size_t)c->D, -1, 1) : NULL;
    c->y = test_random(rng, n, -1, 1);
    c->mean = test_random(rng, (size_t)c->N, -1, 1);
    c->rstd = test_random(rng, (size_t)c->N, -1, 1);
    c->probe = test_random(rng, n, -1, 1);
}

static void free_ln_case(ln_case *c)
{
    free(c->x), free(c->w), free(c->b), free(c->y), free(c->mean), free(c->rstd), free(c->probe);
}

static void test_layernorm_matches_float64_loops(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int n = 0; n < 60; n++) {
        attn_rng rng = test_rng(100 + (uint64_t)n);
        ln_case c;
        make_ln_case(&c, &rng, 12, 200);
        const int N = c.N, D = c.D;
        const size_t nx = (size_t)N * D;
        assert_int_equal(attn_layernorm_forward(c.y, c.mean, c.rstd, c.x, c.w, c.b, N, D, c.eps),
                         ATTN_OK);
        float *dx = test_random(&rng, nx, -1, 1), *dw = test_random(&rng, (size_t)D, -1, 1);
        float *db = test_random(&rng, (size_t)D, -1, 1);
        double *rdx = copy_f64(dx, nx), *rdw = copy_f64(dw, (size_t)D);
        double *rdb = copy_f64(db, (size_t)D), *ry = malloc(nx * sizeof *ry);
        double *rmean = malloc((size_t)N * sizeof *rmean);
        double *rrstd = malloc((size_t)N * sizeof *rrstd);
        for (int r = 0; r < N; r++) {
            const float *x = c.x + (size_t)r * D, *g = c.probe + (size_t)r * D;
            double mu = 0.0, var = 0.0;
            for (int i = 0; i < D; i++) mu += x[i];
            mu /= D;
            for (int i = 0; i < D; i++) var += (x[i] - mu) * (x[i] - mu);
            var /= D;
            const double rs = 1.0 / sqrt(var + c.eps);
            rmean[r] = mu, rrstd[r] = rs;
            double mean_gw = 0.0, mean_gwx = 0.0;
            for (int i = 0; i < D; i++) {
                const double xhat = (x[i] - mu) * rs, w = c.affine ? c.w[i] : 1.0;
                ry[(size_t)r * D + i] = xhat * w + (c.affine ? c.b[i] : 0.0);
                mean_gw += g[i] * w / D;
                mean_gwx += g[i] * w * xhat / D;
                rdw[i] += g[i] * xhat;
                rdb[i] += g[i];
            }
            for (int i = 0; i < D; i++) {
                const double xhat = (x[i] - mu) * rs, w = c.affine ? c.w[i] : 1.0;
                rdx[(size_t)r * D + i] += rs * (g[i] * w - mean_gw - xhat * mean_gwx);
            }
        }
        assert_int_equal(attn_layernorm_backward(dx, c.affine ? dw : NULL, c.affine ? db : NULL,
                                                 c.probe, c.x, c.mean, c.rstd, c.w, N, D),
                         ATTN_OK);
        struct {
            const char *name;
            double err;
        } errs[] = {{"y", test_rel_error_f64(c.y, ry, nx)},
                    {"mean", test_rel_error_f64(c.mean, rmean, (size_t)N)},
                    {"rstd", test_rel_error_f64(c.rstd, rrstd, (size_t)N)},
                    {"dx", test_rel_error_f64(dx, rdx, nx)},
                    {"dweight", c.affine ? test_rel_error_f64(dw, rdw, (size_t)D) : 0.0},
                    {"dbias", c.affine ? test_rel_error_f64(db, rdb, (size_t)D) : 0.0}};
        for (size_t t = 0; t < sizeof errs / sizeof errs[0]; t++) {
            if (errs[t].err > worst) worst = errs[t].err;
            char what[128];
            snprintf(what, sizeof what, "layernorm N=%d D=%d eps=%g affine=%d %s", N, D,
                     (double)c.eps, c.affine, errs[t].name);
            expect_close(what, n, errs[t].err, 1e-5);
        }
        free(dx), free(dw), free(db), free(rdx), free(rdw), free(rdb), free(ry), free(rmean),
            free(rrstd);
        free_ln_case(&c);
    }
    printf("layernorm: largest error against float64: %g\n", worst);
}

static double ln_loss(void *ctx)
{
    ln_case *c = ctx;
    assert_int_equal(attn_layernorm_forward(c->y, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->D,
                                            c->eps),
                     ATTN_OK);
    return test_dot(c->y, c->probe, (size_t)c->N * c->D);
}

static void test_layernorm_gradients_match_finite_differences(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int n = 0; n < 20; n++) {
        attn_rng rng = test_rng(200 + (uint64_t)n);
        ln_case c;
        make_ln_case(&c, &rng, 5, 12);
        /* Finite differences need every row's values well apart compared with
         * h: a row is 0, 1, ..., D - 1 shuffled, jittered by up to 0.25. */
        for (int r = 0; r < c.N; r++) {
            float *xr = c.x + (size_t)r * c.D;
            for (int i = 0; i < c.D; i++) xr[i] = (float)i + 0.5f * attn_rng_uniform(&rng) - 0.25f;
            for (int i = c.D - 1; i > 0; i--) {
                int j = (int)attn_rng_below(&rng, (uint32_t)i + 1);
                float t = xr[i];
                xr[i] = xr[j], xr[j] = t;
            }
        }
        const size_t nx = (size_t)c.N * c.D;
        float *dx = test_zeros(nx), *dw = test_zeros((size_t)c.D), *db = test_zeros((size_t)c.D);
        ln_loss(&c);
        const double magnitude = loss_magnitude(c.y, c.probe, nx);
        assert_int_equal(attn_layernorm_backward(dx, dw, db, c.probe, c.x, c.mean, c.rstd, c.w,
                                                 c.N, c.D),
                         ATTN_OK);
        struct {
            const char *name;
            float *x, *grad;
            size_t n;
        } inputs[3] = {{"dx", c.x, dx, nx}, {"dweight", c.w, dw, (size_t)c.D},
                       {"dbias", c.b, db, (size_t)c.D}};
        for (int t = 0; t < (c.affine ? 3 : 1); t++) {
            double err = gradcheck_error(test_gradcheck(inputs[t].x, inputs[t].n, inputs[t].grad,
                                                        ln_loss, &c, 1e-2f),
                                         inputs[t].grad, inputs[t].n, magnitude);
            if (err > worst) worst = err;
            expect_close(inputs[t].name, n, err, 1e-3);
        }
        free(dx), free(dw), free(db);
        free_ln_case(&c);
    }
    printf("layernorm: largest finite-difference error: %g\n", worst);
}

/* A mean 10^4 times the spread: the centred values, the variance and so y
 * still come out to float precision; so does backward. */
static void test_layernorm_forward_is_stable_far_from_zero(void **state)
{
    (void)state;
    attn_rng rng = test_rng(250);
    const int N = 4, D = 1000;
    float *x = test_random(&rng, (size_t)N * D, 999.9f, 1000.1f), *y = test_zeros((size_t)N * D);
    float mean[4], rstd[4];
    double *ry = malloc((size_t)N * D * sizeof *ry);
    assert_int_equal(attn_layernorm_forward(y, mean, rstd, x, NULL, NULL, N, D, 1e-5f), ATTN_OK);
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * D;
        double mu = 0.0, var = 0.0;
        for (int i = 0; i < D; i++) mu += xr[i];
        mu /= D;
        for (int i = 0; i < D; i++) var += (xr[i] - mu) * (xr[i] - mu);
        const double rs = 1.0 / sqrt(var / D + 1e-5f);
        for (int i = 0; i < D; i++) ry[(size_t)r * D + i] = (xr[i] - mu) * rs;
        assert_true(fabs(rstd[r] - rs) <= 1e-6 * rs);
    }
    expect_close("layernorm far from zero", 0, test_rel_error_f64(y, ry, (size_t)N * D), 1e-6);
    free(x), free(y), free(ry);
}

/* Large enough for the parallel paths: one thread and two give the same bits. */
static void test_layernorm_is_independent_of_threads(void **state)
{
    (void)state;
    attn_rng rng = test_rng(300);
    const int N = 300, D = 257;
    const size_t n = (size_t)N * D;
    float *x = test_random(&rng, n, -2, 3), *w = test_random(&rng, (size_t)D, -1, 1);
    float *b = test_random(&rng, (size_t)D, -1, 1), *dy = test_random(&rng, n, -1, 1);
    float *out[2][6];
    const int saved = attn_get_num_threads();
    for (int t = 0; t < 2; t++) {
        assert_int_equal(attn_set_num_threads(t + 1), ATTN_OK);
        float **o = out[t];
        o[0] = test_zeros(n), o[1] = test_zeros((size_t)N), o[2] = test_zeros((size_t)N);
        o[3] = test_zeros(n), o[4] = test_zeros((size_t)D), o[5] = test_zeros((size_t)D);
        assert_int_equal(attn_layernorm_forward(o[0], o[1], o[2], x, w, b, N, D, 1e-5f), ATTN_OK);
        assert_int_equal(attn_layernorm_backward(o[3], o[4], o[5], dy, x, o[1], o[2], w, N, D),
                         ATTN_OK);
    }
    assert_int_equal(attn_set_num_threads(saved), ATTN_OK);
    const size_t sizes[6] = {n, (size_t)N, (size_t)N, n, (size_t)D, (size_t)D};
    for (int k = 0; k < 6; k++) {
        assert_memory_equal(out[0][k], out[1][k], sizes[k] * sizeof(float));
        free(out[0][k]), free(out[1][k]);
    }
    free(x), free(w), free(b), free(dy);
}

static void test_layernorm_rejects_bad_input(void **state)
{
    (void)state;
    float buf[8] = {0}, m[2], r[2];
    test_expect_invalid(attn_layernorm_forward(buf, m, r, buf, NULL, NULL, 0, 4, 1e-5f),
                        "layernorm N is 0");
    test_expect_invalid(attn_layernorm_forward(buf, m, r, buf, NULL, NULL, 2, -3, 1e-5f),
                        "layernorm D is -3");
    test_expect_invalid(attn_layernorm_forward(buf, m, r, buf, NULL, NULL, 2, 4, -1e-5f),
                        "layernorm eps -1e-05");
    test_expect_invalid(attn_layernorm_forward(buf, m, r, buf, NULL, NULL, 2, 4, NAN),
                        "layernorm eps nan");
    test_expect_invalid(attn_layernorm_forward(buf, m, r, buf, NULL, NULL, 2, 4, 0.0f),
                        "layernorm eps 0 must be finite and > 0");
    test_expect_invalid(attn_layernorm_forward(buf, NULL, r, buf, NULL, NULL, 2, 4, 1e-5f),
                        "layernorm mean is NULL");
    test_expect_invalid(attn_layernorm_forward(buf, m, r, NULL, NULL, NULL, 2, 4, 1e-5f),
                        "layernorm x is NULL");
    test_expect_invalid(attn_layernorm_backward(buf, NULL, NULL, buf, buf, m, NULL, NULL, 2, 4),
                        "layernorm rstd is NULL");
    test_expect_invalid(attn_layernorm_backward(buf, NULL, NULL, NULL, buf, m, r, NULL, 2, 4),
                        "layernorm dy is NULL");
}

/* ---- dropout ---------------------------------------------------------------------------- */

static void test_dropout_keeps_by_the_generator_and_scales(void **state)
{
    (void)state;
    for (int n = 0; n < 10; n++) {
        attn_rng rng = test_rng(400 + (uint64_t)n);
        const size_t count = 1 + attn_rng_below(&rng, 5000); /* not always a multiple of 4 */
        const float p = attn_rng_uniform(&rng) * 0.9f;
        const uint64_t seed = attn_rng_u32(&rng);
        float *x = test_random(&rng, count, -1, 1), *y = test_random(&rng, count, -1, 1);
        float *dy = test_random(&rng, count, -1, 1), *dx = test_random(&rng, count, -1, 1);
        float *dx_before = malloc(count * sizeof *dx_before);
        memcpy(dx_before, dx, count * sizeof *dx);
        assert_int_equal(attn_dropout_forward(y, x, count, p, seed), ATTN_OK);
        assert_int_equal(attn_dropout_backward(dx, dy, count, p, seed), ATTN_OK);
        const float scale = 1.0f / (1.0f - p);
        for (size_t i = 0; i < count; i++) {
            const bool keep = attn_uniform_at(seed, i) >= p;
            assert_true(y[i] == (keep ? x[i] * scale : 0.0f));
            assert_true(dx[i] == dx_before[i] + (keep ? dy[i] * scale : 0.0f));
        }
        free(x), free(y), free(dy), free(dx), free(dx_before);
    }
}

/* The kept fraction is 1 - p within five standard deviations, and the mean of
 * y is the mean of x (the point of the 1 / (1 - p) scale). */
static void test_dropout_keeps_the_right_fraction(void **state)
{
    (void)state;
    const size_t count = 1 << 20;
    float *x = malloc(count * sizeof *x), *y = malloc(count * sizeof *y);
    for (size_t i = 0; i < count; i++) x[i] = 1.0f;
    const float ps[4] = {0.1f, 0.25f, 0.5f, 0.9f};
    attn_rng rng = test_rng(500);
    for (int k = 0; k < 4; k++) {
        const float p = ps[k];
        assert_int_equal(attn_dropout_forward(y, x, count, p, attn_rng_u32(&rng)), ATTN_OK);
        size_t kept = 0;
        double sum = 0.0;
        for (size_t i = 0; i < count; i++) {
            kept += y[i] != 0.0f;
            sum += y[i];
        }
        const double expected = (1.0 - p) * (double)count;
        const double sigma = sqrt((double)count * p * (1.0 - p));
        if (!(fabs((double)kept - expected) < 5 * sigma))
            print_error("p %g: kept %zu of %zu, expected %g\n", (double)p, kept, count, expected);
        assert_true(fabs((double)kept - expected) < 5 * sigma);
        assert_true(fabs(sum / (double)count - 1.0) < 5 * sigma / ((1.0 - p) * (double)count));
    }
    free(x), free(y);
}

static void test_dropout_in_place_zero_p_and_seeds(void **state)
{
    (void)state;
    attn_rng rng = test_rng(600);
    const size_t count = 1001;
    float *x = test_random(&rng, count, -1, 1), *y = test_zeros(count);
    float *inplace = malloc(count * sizeof *inplace);
    memcpy(inplace, x, count * sizeof *x);
    assert_int_equal(attn_dropout_forward(y, x, count, 0.3f, 77), ATTN_OK);
    assert_int_equal(attn_dropout_forward(inplace, inplace, count, 0.3f, 77), ATTN_OK);
    assert_memory_equal(inplace, y, count * sizeof *y);
    /* Another seed, another mask. */
    assert_int_equal(attn_dropout_forward(inplace, x, count, 0.3f, 78), ATTN_OK);
    assert_memory_not_equal(inplace, y, count * sizeof *y);
    /* p = 0 copies, and its backward adds dy as it is. */
    assert_int_equal(attn_dropout_forward(y, x, count, 0.0f, 77), ATTN_OK);
    assert_memory_equal(y, x, count * sizeof *y);
    float *dx = test_zeros(count);
    assert_int_equal(attn_dropout_backward(dx, x, count, 0.0f, 77), ATTN_OK);
    assert_memory_equal(dx, x, count * sizeof *dx);
    /* Nothing to do for n = 0. */
    assert_int_equal(attn_dropout_forward(y, x, 0, 0.5f, 1), ATTN_OK);
    free(x), free(y), free(inplace), free(dx);
}

static void test_dropout_is_independent_of_threads(void **state)
{
    (void)state;
    attn_rng rng = test_rng(700);
    const size_t count = (1 << 18) + 3;
    float *x = test_random(&rng, count, -1, 1);
    float *y[2] = {test_zeros(count), test_zeros(count)};
    const int saved = attn_get_num_threads();
    for (int t = 0; t < 2; t++) {
        assert_int_equal(attn_set_num_threads(t + 1), ATTN_OK);
        assert_int_equal(attn_dropout_forward(y[t], x, count, 0.4f, 1234), ATTN_OK);
    }
    assert_int_equal(attn_set_num_threads(saved), ATTN_OK);
    assert_memory_equal(y[0], y[1], count * sizeof(float));
    free(x), free(y[0]), free(y[1]);
}

static void test_dropout_rejects_bad_input(void **state)
{
    (void)state;
    float buf[4] = {0};
    test_expect_invalid(attn_dropout_forward(buf, buf, 4, 1.0f, 0), "dropout p 1 is not in [0, 1)");
    test_expect_invalid(attn_dropout_forward(buf, buf, 4, -0.1f, 0), "dropout p -0.1");
    test_expect_invalid(attn_dropout_backward(buf, buf, 4, NAN, 0), "dropout p nan");
    test_expect_invalid(attn_dropout_forward(NULL, buf, 4, 0.5f, 0), "dropout output is NULL");
    test_expect_invalid(attn_dropout_backward(buf, NULL, 4, 0.5f, 0), "dropout input is NULL");
}

/* ---- pointwise activations ----------------------------------------------------------- */

static const attn_activation ALL_ACTIVATIONS[4] = {ATTN_ACT_RELU, ATTN_ACT_GELU,
                                                   ATTN_ACT_GELU_TANH, ATTN_ACT_TANH};

/* f(x) and f'(x) in float64, from torch's definitions. */
static void reference_activation(attn_activation f, double x, double *y, double *dy)
{
    const double pi = 3.14159265358979323846;
    const double k = sqrt(2.0 / pi), c = 0.044715;
    switch (f) {
    case ATTN_ACT_RELU:
        *y = x > 0 ? x : 0;
        *dy = x > 0 ? 1 : 0;
        return;
    case ATTN_ACT_GELU: {
        const double cdf = 0.5 * erfc(-x / sqrt(2.0));
        *y = x * cdf;
        *dy = cdf + x * exp(-0.5 * x * x) / sqrt(2 * pi);
        return;
    }
    case ATTN_ACT_GELU_TANH: {
        const double t = tanh(k * (x + c * x * x * x));
        *y = 0.5 * x * (1 + t);
        *dy = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * c * x * x);
        return;
    }
    case ATTN_ACT_TANH:
        *y = tanh(x);
        *dy = 1 - tanh(x) * tanh(x);
        return;
    }
}

static void test_activations_match_float64(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int n = 0; n < 40; n++) {
        attn_rng rng = test_rng(800 + (uint64_t)n);
        const attn_activation f = ALL_ACTIVATIONS[n % 4];
        const size_t count = 1 + attn_rng_below(&rng, 3000);
        const float range = n % 8 < 4 ? 4.0f : 12.0f;
        float *x = test_random(&rng, count, -range, range), *y = test_zeros(count);
        float *dy = test_random(&rng, count, -1, 1), *dx = test_random(&rng, count, -1, 1);
        double *ry = malloc(count * sizeof *ry), *rdx = copy_f64(dx, count);
        for (size_t i = 0; i < count; i++) {
            double d = 0.0;
            reference_activation(f, x[i], &ry[i], &d);
            rdx[i] += d * dy[i];
        }
        assert_int_equal(attn_activation_forward(f, y, x, count), ATTN_OK);
        assert_int_equal(attn_activation_backward(f, dx, dy, x, count), ATTN_OK);
        const double err_y = test_rel_error_f64(y, ry, count);
        const double err_dx = test_rel_error_f64(dx, rdx, count);
        char what[64];
        snprintf(what, sizeof what, "%s forward", attn_activation_name(f));
        expect_close(what, n, err_y, 1e-6);
        snprintf(what, sizeof what, "%s backward", attn_activation_name(f));
        expect_close(what, n, err_dx, 1e-6);
        worst = fmax(worst, fmax(err_y, err_dx));
        /* In place. */
        assert_int_equal(attn_activation_forward(f, x, x, count), ATTN_OK);
        assert_memory_equal(x, y, count * sizeof *x);
        free(x), free(y), free(dy), free(dx), free(ry), free(rdx);
    }
    printf("activations: largest error against float64: %g\n", worst);
}

/* GELU keeps its relative accuracy element by element, in the left tail too,
 * where x Phi(x) is tiny: the value within 1e-6 of float64 at every x, and the
 * slope wherever it is not near its zero (x about -0.75, where it cancels). */
static void test_gelu_elements_match_float64(void **state)
{
    (void)state;
    enum { N = 20000 };
    attn_rng rng = test_rng(810);
    float *x = test_random(&rng, N, -13.0f, 13.0f), *y = test_zeros(N), *dx = test_zeros(N);
    float *ones = test_random(&rng, N, 1.0f, 1.0f);
    assert_int_equal(attn_activation_forward(ATTN_ACT_GELU, y, x, N), ATTN_OK);
    assert_int_equal(attn_activation_backward(ATTN_ACT_GELU, dx, ones, x, N), ATTN_OK);
    double worst_y = 0.0, worst_dx = 0.0;
    for (size_t i = 0; i < N; i++) {
        double ry, rdx;
        reference_activation(ATTN_ACT_GELU, x[i], &ry, &rdx);
        if (ry != 0.0) worst_y = fmax(worst_y, fabs(y[i] - ry) / fabs(ry));
        if (fabs(rdx) > 1e-2) worst_dx = fmax(worst_dx, fabs(dx[i] - rdx) / fabs(rdx));
    }
    printf("gelu element by element: value %g, slope %g\n", worst_y, worst_dx);
    assert_true(worst_y < 1e-6);
    assert_true(worst_dx < 1e-5);
    free(x), free(y), free(dx), free(ones);
}

typedef struct act_case {
    attn_activation f;
    float *x, *y, *probe;
    size_t n;
} act_case;

static double act_loss(void *ctx)
{
    act_case *c = ctx;
    assert_int_equal(attn_activation_forward(c->f, c->y, c->x, c->n), ATTN_OK);
    return test_dot(c->y, c->probe, c->n);
}

static void test_activation_gradients_match_finite_differences(void **state)
{
    (void)state;
    for (int k = 0; k < 4; k++) {
        attn_rng rng = test_rng(900 + (uint64_t)k);
        act_case c = {ALL_ACTIVATIONS[k], NULL, NULL, NULL, 64};
        c.x = test_random(&rng, c.n, -3, 3);
        if (c.f == ATTN_ACT_RELU) /* away from the kink, where no difference is defined */
            for (size_t i = 0; i < c.n; i++)
                if (fabsf(c.x[i]) < 0.05f) c.x[i] = 0.5f;
        c.y = test_zeros(c.n);
        c.probe = test_random(&rng, c.n, -1, 1);
        float *dx = test_zeros(c.n);
        assert_int_equal(attn_activation_backward(c.f, dx, c.probe, c.x, c.n), ATTN_OK);
        const double err = test_gradcheck(c.x, c.n, dx, act_loss, &c, 1e-2f);
        expect_close(attn_activation_name(c.f), k, err, 1e-3);
        free(c.x), free(c.y), free(c.probe), free(dx);
    }
}

static void test_activation_names_and_edges(void **state)
{
    (void)state;
    for (int k = 0; k < 4; k++) {
        attn_activation parsed;
        assert_int_equal(attn_activation_parse(&parsed, attn_activation_name(ALL_ACTIVATIONS[k])),
                         ATTN_OK);
        assert_int_equal(parsed, ALL_ACTIVATIONS[k]);
    }
    assert_string_equal(attn_activation_name(ATTN_ACT_GELU_TANH), "gelu_tanh");
    attn_activation f;
    test_expect_invalid(attn_activation_parse(&f, "swish"), "unknown activation 'swish'");
    test_expect_invalid(attn_activation_parse(&f, NULL), "activation name is NULL");
    float x[3] = {NAN, -1.0f, 2.0f}, y[3];
    test_expect_invalid(attn_activation_forward((attn_activation)17, y, x, 3),
                        "activation 17 is not an attn_activation");
    test_expect_invalid(attn_activation_backward(ATTN_ACT_TANH, y, x, NULL, 3),
                        "activation x is NULL");
    test_expect_invalid(attn_activation_forward(ATTN_ACT_TANH, NULL, x, 3),
                        "activation output is NULL");
    /* NaN goes through ReLU as it does through torch.relu. */
    assert_int_equal(attn_activation_forward(ATTN_ACT_RELU, y, x, 3), ATTN_OK);
    assert_true(isnan(y[0]) && y[1] == 0.0f && y[2] == 2.0f);
    /* Far in the tails GELU is 0 and x, without NaN from the exponentials. */
    float tails[4] = {-30.0f, 30.0f, -1e30f, 1e30f}, out[4], grad[4] = {0};
    const float ones[4] = {1, 1, 1, 1};
    for (int k = 1; k < 3; k++) {
        assert_int_equal(attn_activation_forward(ALL_ACTIVATIONS[k], out, tails, 4), ATTN_OK);
        assert_true(fabsf(out[0]) < 1e-30f && out[1] == 30.0f && out[3] == 1e30f);
        memset(grad, 0, sizeof grad);
        assert_int_equal(attn_activation_backward(ALL_ACTIVATIONS[k], grad, ones, tails, 4),
                         ATTN_OK);
        assert_true(fabsf(grad[0]) < 1e-30f && grad[1] == 1.0f && grad[3] == 1.0f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedding_gathers_and_scatters),
        cmocka_unit_test(test_embedding_rejects_bad_input),
        cmocka_unit_test(test_layernorm_matches_float64_loops),
        cmocka_unit_test(test_layernorm_gradients_match_finite_differences),
        cmocka_unit_test(test_layernorm_forward_is_stable_far_from_zero),
        cmocka_unit_test(test_layernorm_is_independent_of_threads),
        cmocka_unit_test(test_layernorm_rejects_bad_input),
        cmocka_unit_test(test_dropout_keeps_by_the_generator_and_scales),
        cmocka_unit_test(test_dropout_keeps_the_right_fraction),
        cmocka_unit_test(test_dropout_in_place_zero_p_and_seeds),
        cmocka_unit_test(test_dropout_is_independent_of_threads),
        cmocka_unit_test(test_dropout_rejects_bad_input),
        cmocka_unit_test(test_activations_match_float64),
        cmocka_unit_test(test_gelu_elements_match_float64),
        cmocka_unit_test(test_activation_gradients_match_finite_differences),
        cmocka_unit_test(test_activation_names_and_edges),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
