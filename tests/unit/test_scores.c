/* Score functions (dot, scaled dot, general, additive): float64 references,
 * finite differences for every gradient argument, accumulation, NULL gradients,
 * NaN, bad arguments; additive scores over projected queries and keys against
 * the raw ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

enum { CASES = 25 };

typedef enum score_kind { DOT, GENERAL, ADDITIVE, KINDS } score_kind;
static const char *const kind_names[KINDS] = {"dot", "general", "additive"};

/* Every input that has a gradient, in one table so that each test can walk them. */
enum { P_Q, P_K, P_W, P_WQ, P_WK, P_BIAS, P_V, PARAMS };
static const char *const param_names[PARAMS] = {"q", "k", "w", "wq", "wk", "bias", "v"};

typedef struct score_case {
    score_kind kind;
    int B, Lq, Lk, Dq, Dk, A;
    float scale;          /* dot only */
    float *x[PARAMS];     /* NULL where the kind has no such input (or no bias) */
    size_t size[PARAMS];  /* 0 there */
} score_case;

static size_t score_count(const score_case *c) { return (size_t)c->B * c->Lq * c->Lk; }

static void describe(char *buf, size_t size, const score_case *c)
{
    snprintf(buf, size, "%s B=%d Lq=%d Lk=%d Dq=%d Dk=%d A=%d scale=%g bias=%d",
             kind_names[c->kind], c->B, c->Lq, c->Lk, c->Dq, c->Dk, c->A, (double)c->scale,
             c->x[P_BIAS] != NULL);
}

/* Inputs, v and the bias uniform in [lo, 1); projection weights in [lo, 1) / sqrt(fan
 * in), as nn.Linear starts them (lo = -1), so that tanh works in its curved range and
 * is not saturated (where its gradient would vanish). The bias is left out one time
 * in 4. */
static void make_sized_case(score_case *c, attn_rng *rng, score_kind kind, int B, int Lq, int Lk,
                            int Dq, int Dk, int A, float lo)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->B = B, c->Lq = Lq, c->Lk = Lk, c->Dq = Dq, c->Dk = kind == DOT ? Dq : Dk;
    c->A = kind == ADDITIVE ? A : 0;
    c->scale = attn_rng_below(rng, 2) ? 1.0f : 1.0f / sqrtf((float)Dq);
    c->size[P_Q] = (size_t)B * Lq * Dq;
    c->size[P_K] = (size_t)B * Lk * c->Dk;
    if (kind == GENERAL) c->size[P_W] = (size_t)Dq * Dk;
    if (kind == ADDITIVE) {
        c->size[P_WQ] = (size_t)A * Dq;
        c->size[P_WK] = (size_t)A * Dk;
        c->size[P_BIAS] = attn_rng_below(rng, 4) ? (size_t)A : 0;
        c->size[P_V] = (size_t)A;
    }
    float fan_in[PARAMS] = {1, 1, (float)Dq, (float)Dq, (float)Dk, 1, 1};
    for (int p = 0; p < PARAMS; p++) {
        float bound = 1.0f / sqrtf(fan_in[p]);
        if (c->size[p]) c->x[p] = test_random(rng, c->size[p], lo * bound, bound);
    }
}

/* Lengths in [min_size, max_len], dimensions in [min_size, max_dim], hidden units in
 * [max(min_size, 4), max_dim], inputs of both signs.
 * With min_size >= 2 no output or gradient is a lone sum: a lone sum of terms of
 * both signs can cancel far below its float32 rounding, and the max relative error
 * of the comparisons would then measure the cancellation (test_size_one_dimensions
 * covers sizes of 1 with inputs of one sign). A single hidden unit makes dv and
 * dbias lone sums, hence at least 4. */
static void make_case(score_case *c, attn_rng *rng, score_kind kind, int min_size, int max_len,
                      int max_dim)
{
    uint32_t lengths = (uint32_t)(max_len - min_size + 1);
    uint32_t dims = (uint32_t)(max_dim - min_size + 1);
    int B = 1 + (int)attn_rng_below(rng, 3);
    int Lq = min_size + (int)attn_rng_below(rng, lengths);
    int Lk = min_size + (int)attn_rng_below(rng, lengths);
    int Dq = min_size + (int)attn_rng_below(rng, dims);
    int Dk = min_size + (int)attn_rng_below(rng, dims);
    int min_hidden = min_size > 4 ? min_size : 4;
    int A = min_hidden + (int)attn_rng_below(rng, (uint32_t)(max_dim - min_hidden + 1));
    make_sized_case(c, rng, kind, B, Lq, Lk, Dq, Dk, A, -1.0f);
}

static void free_case(score_case *c)
{
    for (int p = 0; p < PARAMS; p++) free(c->x[p]);
}

static attn_additive_weights additive_weights(const score_case *c)
{
    return (attn_additive_weights){c->x[P_WQ], c->x[P_WK], c->x[P_BIAS], c->x[P_V], c->A};
}

static attn_status forward(const score_case *c, float *scores)
{
    switch (c->kind) {
    case DOT:
        return attn_score_dot_forward(scores, c->x[P_Q], c->x[P_K], c->B, c->Lq, c->Lk, c->Dq,
                                      c->scale);
    case GENERAL:
        return attn_score_general_forward(scores, c->x[P_Q], c->x[P_W], c->x[P_K], c->B, c->Lq,
                                          c->Lk, c->Dq, c->Dk);
    default: {
        attn_additive_weights w = additive_weights(c);
        return attn_score_additive_forward(scores, c->x[P_Q], c->x[P_K], &w, c->B, c->Lq, c->Lk,
                                           c->Dq, c->Dk);
    }
    }
}

/* g[p] receives the gradient of input p, or is NULL. */
static attn_status backward(const score_case *c, float *g[PARAMS], const float *dscores)
{
    switch (c->kind) {
    case DOT:
        return attn_score_dot_backward(g[P_Q], g[P_K], dscores, c->x[P_Q], c->x[P_K], c->B, c->Lq,
                                       c->Lk, c->Dq, c->scale);
    case GENERAL:
        return attn_score_general_backward(g[P_Q], g[P_W], g[P_K], dscores, c->x[P_Q], c->x[P_W],
                                           c->x[P_K], c->B, c->Lq, c->Lk, c->Dq, c->Dk);
    default: {
        attn_additive_weights w = additive_weights(c);
        attn_additive_grads dw = {g[P_WQ], g[P_WK], g[P_BIAS], g[P_V]};
        return attn_score_additive_backward(g[P_Q], g[P_K], &dw, dscores, c->x[P_Q], c->x[P_K],
                                            &w, c->B, c->Lq, c->Lk, c->Dq, c->Dk);
    }
    }
}

/* ---- float64 references: plain loops over the definitions ---- */

static void ref_dot(const score_case *c, const float *ds, double *s, double *g[PARAMS])
{
    const float *q = c->x[P_Q], *k = c->x[P_K];
    int D = c->Dq;
    for (int b = 0; b < c->B; b++)
        for (int i = 0; i < c->Lq; i++)
            for (int j = 0; j < c->Lk; j++) {
                const float *qi = q + ((size_t)b * c->Lq + i) * D;
                const float *kj = k + ((size_t)b * c->Lk + j) * D;
                size_t e = ((size_t)b * c->Lq + i) * c->Lk + j;
                double sum = 0.0;
                for (int d = 0; d < D; d++) sum += (double)qi[d] * kj[d];
                s[e] = c->scale * sum;
                for (int d = 0; d < D; d++) {
                    g[P_Q][((size_t)b * c->Lq + i) * D + d] += (double)c->scale * ds[e] * kj[d];
                    g[P_K][((size_t)b * c->Lk + j) * D + d] += (double)c->scale * ds[e] * qi[d];
                }
            }
}

static void ref_general(const score_case *c, const float *ds, double *s, double *g[PARAMS])
{
    const float *q = c->x[P_Q], *w = c->x[P_W], *k = c->x[P_K];
    int Dq = c->Dq, Dk = c->Dk;
    double *qw = calloc((size_t)Dk, sizeof *qw), *gqw = calloc((size_t)Dk, sizeof *gqw);
    for (int b = 0; b < c->B; b++)
        for (int i = 0; i < c->Lq; i++) {
            const float *qi = q + ((size_t)b * c->Lq + i) * Dq;
            for (int f = 0; f < Dk; f++) {
                qw[f] = 0.0;
                gqw[f] = 0.0;
                for (int d = 0; d < Dq; d++) qw[f] += (double)qi[d] * w[(size_t)d * Dk + f];
            }
            for (int j = 0; j < c->Lk; j++) {
                const float *kj = k + ((size_t)b * c->Lk + j) * Dk;
                size_t e = ((size_t)b * c->Lq + i) * c->Lk + j;
                double sum = 0.0;
                for (int f = 0; f < Dk; f++) sum += qw[f] * kj[f];
                s[e] = sum;
                for (int f = 0; f < Dk; f++) {
                    gqw[f] += ds[e] * (double)kj[f];
                    g[P_K][((size_t)b * c->Lk + j) * Dk + f] += ds[e] * qw[f];
                }
            }
            for (int d = 0; d < Dq; d++)
                for (int f = 0; f < Dk; f++) {
                    g[P_Q][((size_t)b * c->Lq + i) * Dq + d] += gqw[f] * w[(size_t)d * Dk + f];
                    g[P_W][(size_t)d * Dk + f] += (double)qi[d] * gqw[f];
                }
        }
    free(qw), free(gqw);
}

static void ref_additive(const score_case *c, const float *ds, double *s, double *g[PARAMS])
{
    const float *q = c->x[P_Q], *k = c->x[P_K], *wq = c->x[P_WQ], *wk = c->x[P_WK];
    const float *bias = c->x[P_BIAS], *v = c->x[P_V];
    int Dq = c->Dq, Dk = c->Dk, A = c->A;
    double *qp = calloc((size_t)A, sizeof *qp), *kp = calloc((size_t)A, sizeof *kp);
    for (int b = 0; b < c->B; b++)
        for (int i = 0; i < c->Lq; i++)
            for (int j = 0; j < c->Lk; j++) {
                const float *qi = q + ((size_t)b * c->Lq + i) * Dq;
                const float *kj = k + ((size_t)b * c->Lk + j) * Dk;
                size_t e = ((size_t)b * c->Lq + i) * c->Lk + j;
                for (int a = 0; a < A; a++) {
                    qp[a] = bias ? bias[a] : 0.0;
                    kp[a] = 0.0;
                    for (int d = 0; d < Dq; d++) qp[a] += (double)wq[(size_t)a * Dq + d] * qi[d];
                    for (int d = 0; d < Dk; d++) kp[a] += (double)wk[(size_t)a * Dk + d] * kj[d];
                }
                s[e] = 0.0;
                for (int a = 0; a < A; a++) {
                    double t = tanh(qp[a] + kp[a]), gz = ds[e] * (double)v[a] * (1.0 - t * t);
                    s[e] += v[a] * t;
                    g[P_V][a] += ds[e] * t;
                    if (bias) g[P_BIAS][a] += gz;
                    for (int d = 0; d < Dq; d++) {
                        g[P_Q][((size_t)b * c->Lq + i) * Dq + d] += gz * wq[(size_t)a * Dq + d];
                        g[P_WQ][(size_t)a * Dq + d] += gz * qi[d];
                    }
                    for (int d = 0; d < Dk; d++) {
                        g[P_K][((size_t)b * c->Lk + j) * Dk + d] += gz * wk[(size_t)a * Dk + d];
                        g[P_WK][(size_t)a * Dk + d] += gz * kj[d];
                    }
                }
            }
    free(qp), free(kp);
}

/* Forward and backward against the float64 reference, each at most 1e-5 off. */
static void check_against_float64(const score_case *c, const float *ds, int number,
                                  double *worst_s, double *worst_g)
{
    char what[160];
    describe(what, sizeof what, c);
    size_t ns = score_count(c);
    float *s = malloc(ns * sizeof *s);
    for (size_t e = 0; e < ns; e++) s[e] = NAN; /* forward must overwrite, not read */
    double *s_ref = calloc(ns, sizeof *s_ref);
    float *g[PARAMS] = {0};
    double *g_ref[PARAMS] = {0};
    for (int p = 0; p < PARAMS; p++) {
        if (!c->size[p]) continue;
        g[p] = test_zeros(c->size[p]);
        g_ref[p] = calloc(c->size[p], sizeof *g_ref[p]);
    }
    assert_int_equal(forward(c, s), ATTN_OK);
    assert_int_equal(backward(c, g, ds), ATTN_OK);
    if (c->kind == DOT) ref_dot(c, ds, s_ref, g_ref);
    if (c->kind == GENERAL) ref_general(c, ds, s_ref, g_ref);
    if (c->kind == ADDITIVE) ref_additive(c, ds, s_ref, g_ref);
    double err = test_rel_error_f64(s, s_ref, ns);
    if (err > 1e-5) print_error("case %d %s: scores error %g\n", number, what, err);
    assert_true(err <= 1e-5);
    *worst_s = fmax(*worst_s, err);
    for (int p = 0; p < PARAMS; p++) {
        if (!c->size[p]) continue;
        err = test_rel_error_f64(g[p], g_ref[p], c->size[p]);
        if (err > 1e-5)
            print_error("case %d %s: d%s error %g\n", number, what, param_names[p], err);
        assert_true(err <= 1e-5);
        *worst_g = fmax(*worst_g, err);
        free(g[p]), free(g_ref[p]);
    }
    free(s), free(s_ref);
}

static void test_match_float64(void **state)
{
    (void)state;
    double worst_s[KINDS] = {0}, worst_g[KINDS] = {0};
    for (int kind = 0; kind < KINDS; kind++) {
        for (int n = 0; n < CASES; n++) {
            int number = kind * 1000 + n;
            attn_rng rng = test_rng((uint64_t)number);
            score_case c;
            /* the last cases are large enough for the threaded additive loops */
            make_case(&c, &rng, (score_kind)kind, 2, n < CASES - 3 ? 12 : 40, 24);
            float *ds = test_random(&rng, score_count(&c), -1.0f, 1.0f);
            check_against_float64(&c, ds, number, &worst_s[kind], &worst_g[kind]);
            free(ds);
            free_case(&c);
        }
        printf("%s: largest relative error scores %.3g, gradients %.3g\n", kind_names[kind],
               worst_s[kind], worst_g[kind]);
    }
}

/* Every combination of sizes 1 and 3, with inputs and dscores of one sign so that
 * no lone sum cancels. */
static void test_size_one_dimensions(void **state)
{
    (void)state;
    double worst_s = 0.0, worst_g = 0.0;
    for (int kind = 0; kind < KINDS; kind++)
        for (int bits = 0; bits < 64; bits++) {
            int number = 5000 + kind * 100 + bits;
            attn_rng rng = test_rng((uint64_t)number);
            int size[6];
            for (int d = 0; d < 6; d++) size[d] = (bits >> d) & 1 ? 3 : 1;
            score_case c;
            make_sized_case(&c, &rng, (score_kind)kind, size[0], size[1], size[2], size[3],
                            size[4], size[5], 0.2f);
            float *ds = test_random(&rng, score_count(&c), 0.2f, 1.0f);
            check_against_float64(&c, ds, number, &worst_s, &worst_g);
            free(ds);
            free_case(&c);
        }
    printf("sizes of one: largest relative error scores %.3g, gradients %.3g\n", worst_s,
           worst_g);
}

typedef struct loss_ctx {
    const score_case *c;
    float *scores, *probe;
} loss_ctx;

static double score_loss(void *p)
{
    loss_ctx *ctx = p;
    forward(ctx->c, ctx->scores);
    return test_dot(ctx->scores, ctx->probe, score_count(ctx->c));
}

static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int kind = 0; kind < KINDS; kind++) {
        for (int n = 0; n < 8; n++) {
            int number = 10000 + kind * 1000 + n;
            attn_rng rng = test_rng((uint64_t)number);
            score_case c;
            /* Sizes of at least 3: with fewer rows, every gradient entry of a tensor
             * is now and then a small sum, where the float32 rounding of the loss
             * (~1e-5 after differencing) reaches the 1e-3 limit. */
            make_case(&c, &rng, (score_kind)kind, 3, 5, 6);
            char what[160];
            describe(what, sizeof what, &c);
            size_t ns = score_count(&c);
            loss_ctx ctx = {&c, test_zeros(ns), test_random(&rng, ns, -1.0f, 1.0f)};
            float *g[PARAMS] = {0};
            for (int p = 0; p < PARAMS; p++)
                if (c.size[p]) g[p] = test_zeros(c.size[p]);
            assert_int_equal(backward(&c, g, ctx.probe), ATTN_OK);
            for (int p = 0; p < PARAMS; p++) {
                if (!c.size[p]) continue;
                double err = test_gradcheck(c.x[p], c.size[p], g[p], score_loss, &ctx, 1e-2f);
                if (err > 1e-3)
                    print_error("case %d %s: gradcheck of d%s error %g\n", number, what,
                                param_names[p], err);
                assert_true(err <= 1e-3);
                worst = fmax(worst, err);
                free(g[p]);
            }
            free(ctx.scores), free(ctx.probe);
            free_case(&c);
        }
    }
    printf("scores: largest gradcheck error %.3g\n", worst);
}

/* Twice into the same buffers gives twice the gradient; asking for one gradient
 * (the others NULL) gives the same values as asking for all; none at all is fine. */
static void test_accumulation_and_null_gradients(void **state)
{
    (void)state;
    for (int kind = 0; kind < KINDS; kind++) {
        int number = 20000 + kind;
        attn_rng rng = test_rng((uint64_t)number);
        score_case c;
        make_case(&c, &rng, (score_kind)kind, 2, 8, 10);
        char what[160];
        describe(what, sizeof what, &c);
        float *ds = test_random(&rng, score_count(&c), -1.0f, 1.0f);
        float *once[PARAMS] = {0}, *twice[PARAMS] = {0}, *none[PARAMS] = {0};
        for (int p = 0; p < PARAMS; p++) {
            if (!c.size[p]) continue;
            once[p] = test_zeros(c.size[p]);
            twice[p] = test_zeros(c.size[p]);
        }
        assert_int_equal(backward(&c, once, ds), ATTN_OK);
        assert_int_equal(backward(&c, twice, ds), ATTN_OK);
        assert_int_equal(backward(&c, twice, ds), ATTN_OK);
        assert_int_equal(backward(&c, none, ds), ATTN_OK);
        for (int p = 0; p < PARAMS; p++) {
            if (!c.size[p]) continue;
            for (size_t e = 0; e < c.size[p]; e++) twice[p][e] *= 0.5f;
            double err = test_rel_error(twice[p], once[p], c.size[p]);
            if (err > 1e-6)
                print_error("case %d %s: d%s twice / 2 differs by %g\n", number, what,
                            param_names[p], err);
            assert_true(err <= 1e-6);
            float *alone[PARAMS] = {0};
            alone[p] = test_zeros(c.size[p]);
            assert_int_equal(backward(&c, alone, ds), ATTN_OK);
            err = test_rel_error(alone[p], once[p], c.size[p]);
            if (err > 1e-6)
                print_error("case %d %s: d%s alone differs by %g\n", number, what, param_names[p],
                            err);
            assert_true(err <= 1e-6);
            free(alone[p]), free(once[p]), free(twice[p]);
        }
        if (kind == ADDITIVE) {
            attn_additive_weights w = additive_weights(&c);
            assert_int_equal(attn_score_additive_backward(NULL, NULL, NULL, ds, c.x[P_Q], c.x[P_K],
                                                          &w, c.B, c.Lq, c.Lk, c.Dq, c.Dk),
                             ATTN_OK);
        }
        free(ds);
        free_case(&c);
    }
}

/* The additive loops run on threads; the results must not depend on how many. */
static void test_additive_same_on_any_thread_count(void **state)
{
    (void)state;
    attn_rng rng = test_rng(40000);
    score_case c;
    make_sized_case(&c, &rng, ADDITIVE, 4, 30, 40, 9, 7, 16, -1.0f); /* above the threading limit */
    size_t ns = score_count(&c);
    float *ds = test_random(&rng, ns, -1.0f, 1.0f);
    float *s[2], *g[2][PARAMS] = {{0}};
    int saved = attn_get_num_threads();
    for (int t = 0; t < 2; t++) {
        assert_int_equal(attn_set_num_threads(t + 1), ATTN_OK);
        s[t] = test_zeros(ns);
        for (int p = 0; p < PARAMS; p++)
            if (c.size[p]) g[t][p] = test_zeros(c.size[p]);
        assert_int_equal(forward(&c, s[t]), ATTN_OK);
        assert_int_equal(backward(&c, g[t], ds), ATTN_OK);
    }
    assert_int_equal(attn_set_num_threads(saved), ATTN_OK);
    assert_memory_equal(s[0], s[1], ns * sizeof(float));
    for (int p = 0; p < PARAMS; p++) {
        if (!c.size[p]) continue;
        assert_memory_equal(g[0][p], g[1][p], c.size[p] * sizeof(float));
        free(g[0][p]), free(g[1][p]);
    }
    free(s[0]), free(s[1]), free(ds);
    free_case(&c);
}

/* y: (rows, out) = x W^T (+ bias) in float64, rounded: x: (rows, in), W: (out, in). */
static void project_rows(float *y, const float *x, const float *w, const float *bias, int rows,
                         int in, int out)
{
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < out; o++) {
            double sum = bias ? bias[o] : 0.0;
            for (int i = 0; i < in; i++) sum += (double)x[r * in + i] * w[o * in + i];
            y[r * out + o] = (float)sum;
        }
}

/* The projected pair gives the raw pair's scores and, through the projections'
 * transposes, its gradients (dq = dqp Wq, dk = dkp Wk, dv alike). */
static void test_additive_projected_matches_raw(void **state)
{
    (void)state;
    enum { B = 3, LQ = 2, LK = 5, A = 6, DQ = 4, DK = 7 };
    attn_rng rng = test_rng(50000);
    float *q = test_random(&rng, B * LQ * DQ, -1, 1), *k = test_random(&rng, B * LK * DK, -1, 1);
    float *wq = test_random(&rng, A * DQ, -1, 1), *wk = test_random(&rng, A * DK, -1, 1);
    float *bias = test_random(&rng, A, -1, 1), *v = test_random(&rng, A, -1, 1);
    float *ds = test_random(&rng, B * LQ * LK, -1, 1);
    const attn_additive_weights w = {wq, wk, bias, v, A};
    float raw[B * LQ * LK], scores[B * LQ * LK], qp[B * LQ * A], kp[B * LK * A];
    float *u = test_zeros((size_t)B * LQ * LK * A);
    project_rows(qp, q, wq, bias, B * LQ, DQ, A);
    project_rows(kp, k, wk, NULL, B * LK, DK, A);
    assert_int_equal(attn_score_additive_forward(raw, q, k, &w, B, LQ, LK, DQ, DK), ATTN_OK);
    assert_int_equal(attn_score_additive_projected_forward(scores, u, qp, kp, v, B, LQ, LK, A),
                     ATTN_OK);
    for (int e = 0; e < B * LQ * LK; e++) assert_true(fabsf(scores[e] - raw[e]) <= 1e-5f);

    float dq[B * LQ * DQ] = {0}, dk[B * LK * DK] = {0}, dv_raw[A] = {0};
    float dqp[B * LQ * A] = {0}, dkp[B * LK * A] = {0}, dv[A] = {0};
    const attn_additive_grads dw = {NULL, NULL, NULL, dv_raw};
    assert_int_equal(attn_score_additive_backward(dq, dk, &dw, ds, q, k, &w, B, LQ, LK, DQ, DK),
                     ATTN_OK);
    assert_int_equal(attn_score_additive_projected_backward(dqp, dkp, dv, ds, u, v, B, LQ, LK, A),
                     ATTN_OK);
    for (int a = 0; a < A; a++) assert_true(fabsf(dv[a] - dv_raw[a]) <= 1e-5f);
    for (int r = 0; r < B * LQ; r++)
        for (int i = 0; i < DQ; i++) {
            double sum = 0.0;
            for (int a = 0; a < A; a++) sum += (double)dqp[r * A + a] * wq[a * DQ + i];
            assert_true(fabs(dq[r * DQ + i] - sum) <= 1e-5);
        }
    for (int r = 0; r < B * LK; r++)
        for (int i = 0; i < DK; i++) {
            double sum = 0.0;
            for (int a = 0; a < A; a++) sum += (double)dkp[r * A + a] * wk[a * DK + i];
            assert_true(fabs(dk[r * DK + i] - sum) <= 1e-5);
        }
    free(q), free(k), free(wq), free(wk), free(bias), free(v), free(ds), free(u);
}

/* A NaN in one query reaches that query's row of scores and no other. */
static void test_nan_in_a_query_stays_in_its_row(void **state)
{
    (void)state;
    for (int kind = 0; kind < KINDS; kind++) {
        attn_rng rng = test_rng(30000 + (uint64_t)kind);
        score_case c;
        make_case(&c, &rng, (score_kind)kind, 1, 6, 6);
        int row = (int)attn_rng_below(&rng, (uint32_t)(c.B * c.Lq));
        c.x[P_Q][(size_t)row * c.Dq + attn_rng_below(&rng, (uint32_t)c.Dq)] = NAN;
        float *s = test_zeros(score_count(&c));
        assert_int_equal(forward(&c, s), ATTN_OK);
        for (int r = 0; r < c.B * c.Lq; r++)
            for (int j = 0; j < c.Lk; j++)
                assert_true(isnan(s[(size_t)r * c.Lk + j]) == (r == row));
        free(s);
        free_case(&c);
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float x[16] = {0}, s[16];
    test_expect_invalid(attn_score_dot_forward(NULL, x, x, 1, 2, 2, 2, 1.0f), "scores is NULL");
    test_expect_invalid(attn_score_dot_forward(s, NULL, x, 1, 2, 2, 2, 1.0f), "q is NULL");
    test_expect_invalid(attn_score_dot_forward(s, x, NULL, 1, 2, 2, 2, 1.0f), "k is NULL");
    test_expect_invalid(attn_score_dot_forward(s, x, x, 0, 2, 2, 2, 1.0f), "B is 0");
    test_expect_invalid(attn_score_dot_forward(s, x, x, 1, 0, 2, 2, 1.0f), "Lq is 0");
    test_expect_invalid(attn_score_dot_forward(s, x, x, 1, 2, 0, 2, 1.0f), "Lk is 0");
    test_expect_invalid(attn_score_dot_forward(s, x, x, 1, 2, 2, 0, 1.0f), "D is 0");
    test_expect_invalid(attn_score_dot_forward(s, x, x, 1, 2, 2, 2, NAN), "scale nan");
    test_expect_invalid(attn_score_dot_backward(x, x, NULL, x, x, 1, 2, 2, 2, 1.0f), "dscores is NULL");
    test_expect_invalid(attn_score_dot_backward(x, x, x, x, x, 1, 2, 2, -2, 1.0f), "D is -2");

    test_expect_invalid(attn_score_general_forward(s, x, NULL, x, 1, 2, 2, 2, 2), "w is NULL");
    test_expect_invalid(attn_score_general_forward(s, x, x, x, 1, 2, 2, 0, 2), "Dq is 0");
    test_expect_invalid(attn_score_general_forward(s, x, x, x, 1, 2, 2, 2, 0), "Dk is 0");
    test_expect_invalid(attn_score_general_backward(x, x, x, x, x, x, NULL, 1, 2, 2, 2, 2), "k is NULL");
    test_expect_invalid(attn_score_general_backward(x, x, x, x, x, x, x, 1, 2, 2, 2, -1), "Dk is -1");

    attn_additive_weights w = {x, x, NULL, x, 2};
    test_expect_invalid(attn_score_additive_forward(s, x, x, NULL, 1, 2, 2, 2, 2), "w is NULL");
    test_expect_invalid(attn_score_additive_forward(NULL, x, x, &w, 1, 2, 2, 2, 2), "scores is NULL");
    test_expect_invalid(attn_score_additive_forward(s, x, x, &w, 1, 2, 2, 2, 0), "Dk is 0");
    w.wk = NULL;
    test_expect_invalid(attn_score_additive_forward(s, x, x, &w, 1, 2, 2, 2, 2), "w->wk is NULL");
    w.wk = x;
    w.hidden = 0;
    test_expect_invalid(attn_score_additive_forward(s, x, x, &w, 1, 2, 2, 2, 2), "w->hidden is 0");
    w.hidden = 2;
    w.v = NULL;
    test_expect_invalid(attn_score_additive_backward(x, x, NULL, x, x, x, &w, 1, 2, 2, 2, 2),
                   "w->v is NULL");
    w.v = x;
    test_expect_invalid(attn_score_additive_backward(x, x, NULL, NULL, x, x, &w, 1, 2, 2, 2, 2),
                   "dscores is NULL");
    test_expect_invalid(attn_score_additive_backward(x, x, NULL, x, x, x, &w, 1, 2, -3, 2, 2),
                   "Lk is -3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_float64),
        cmocka_unit_test(test_size_one_dimensions),
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_accumulation_and_null_gradients),
        cmocka_unit_test(test_additive_same_on_any_thread_count),
        cmocka_unit_test(test_additive_projected_matches_raw),
        cmocka_unit_test(test_nan_in_a_query_stays_in_its_row),
        cmocka_unit_test(test_bad_arguments),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
