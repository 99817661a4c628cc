/* Soft attention: float64 reference with masks of each type and broadcast shape,
 * finite differences for dscores and dvalues, accumulation, NULL gradients, fully
 * masked rows, NaN, bad arguments. */
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

typedef struct soft_case {
    int B, Lq, Lk, Dv;
    bool masked;
    mask_case mc;          /* target (B, 1, Lq, Lk) */
    float *scores, *values; /* (B, Lq, Lk), (B, Lk, Dv) */
    float *context, *weights;
} soft_case;

/* Lengths in [min_len, max_len], scores uniform in [-range, range), values in
 * [-1, 1), a mask of type mask_kind (an attn_mask_type, or 3 for none). */
static void make_case(soft_case *c, attn_rng *rng, int mask_kind, int min_len, int max_len,
                      int max_dim, float range)
{
    uint32_t lengths = (uint32_t)(max_len - min_len + 1);
    c->B = 1 + (int)attn_rng_below(rng, 3);
    c->Lq = min_len + (int)attn_rng_below(rng, lengths);
    c->Lk = min_len + (int)attn_rng_below(rng, lengths);
    c->Dv = 1 + (int)attn_rng_below(rng, (uint32_t)max_dim);
    size_t ns = (size_t)c->B * c->Lq * c->Lk;
    c->scores = test_random(rng, ns, -range, range);
    c->values = test_random(rng, (size_t)c->B * c->Lk * c->Dv, -1.0f, 1.0f);
    c->context = test_zeros((size_t)c->B * c->Lq * c->Dv);
    c->weights = test_zeros(ns);
    c->masked = mask_kind < 3;
    if (c->masked)
        assert_int_equal(mask_case_make(&c->mc, rng, (attn_mask_type)mask_kind, c->B, c->Lq,
                                        c->Lk),
                         ATTN_OK);
}

static void free_case(soft_case *c)
{
    free(c->scores), free(c->values), free(c->context), free(c->weights);
    if (c->masked) mask_case_free(&c->mc);
}

static void describe(char *buf, size_t size, const soft_case *c)
{
    if (c->masked)
        snprintf(buf, size, "B=%d Lq=%d Lk=%d Dv=%d mask %s (%lld, 1, %lld, %lld) ndim %d", c->B,
                 c->Lq, c->Lk, c->Dv, mask_type_name(c->mc.type), (long long)c->mc.dims[0],
                 (long long)c->mc.dims[2], (long long)c->mc.dims[3], c->mc.ndim);
    else
        snprintf(buf, size, "B=%d Lq=%d Lk=%d Dv=%d no mask", c->B, c->Lq, c->Lk, c->Dv);
}

static attn_status forward(soft_case *c)
{
    return attn_soft_attention_forward(c->context, c->weights, c->scores,
                                       c->masked ? &c->mc.mask : NULL, c->values, c->B, c->Lq,
                                       c->Lk, c->Dv);
}

/* The float64 forward and backward; live[b * Lq + i] says whether the row had a key. */
static void reference(const soft_case *c, const float *dcontext, double *weights,
                      double *context, double *dscores, double *dvalues, bool *live)
{
    int Lk = c->Lk, Dv = c->Dv;
    double *dweights = malloc((size_t)Lk * sizeof *dweights);
    for (int b = 0; b < c->B; b++)
        for (int i = 0; i < c->Lq; i++) {
            size_t r = (size_t)b * c->Lq + i;
            double *w = weights + r * Lk;
            live[r] = ref_softmax_row(w, c->scores + r * Lk, c->masked ? &c->mc : NULL, b, i, Lk);
            double dot = 0.0;
            for (int d = 0; d < Dv; d++) context[r * Dv + d] = 0.0;
            for (int j = 0; j < Lk; j++) {
                const float *vj = c->values + ((size_t)b * Lk + j) * Dv;
                dweights[j] = 0.0;
                for (int d = 0; d < Dv; d++) {
                    context[r * Dv + d] += w[j] * vj[d];
                    dweights[j] += (double)dcontext[r * Dv + d] * vj[d];
                    dvalues[((size_t)b * Lk + j) * Dv + d] += w[j] * dcontext[r * Dv + d];
                }
                dot += dweights[j] * w[j];
            }
            for (int j = 0; j < Lk; j++) dscores[r * Lk + j] = w[j] * (dweights[j] - dot);
        }
    free(dweights);
}

static void test_match_float64(void **state)
{
    (void)state;
    double worst[4] = {0};
    for (int k = 0; k < CASES; k++) {
        attn_rng rng = test_rng((uint64_t)k);
        soft_case c;
        /* At least 2 queries and keys: with one live row of two keys, dscores is
         * one difference dcontext . (v1 - v2) that can cancel far below its float32
         * rounding, and the max relative error would measure the cancellation. */
        make_case(&c, &rng, k % 4, 2, 12, 16, 4.0f);
        char what[160];
        describe(what, sizeof what, &c);
        size_t ns = (size_t)c.B * c.Lq * c.Lk, nc = (size_t)c.B * c.Lq * c.Dv;
        size_t nv = (size_t)c.B * c.Lk * c.Dv;
        float *dcontext = test_random(&rng, nc, -1.0f, 1.0f);
        float *dscores = test_zeros(ns), *dvalues = test_zeros(nv);
        double *w_ref = malloc(ns * sizeof(double)), *c_ref = malloc(nc * sizeof(double));
        double *ds_ref = malloc(ns * sizeof(double)), *dv_ref = calloc(nv, sizeof(double));
        bool *live = malloc((size_t)c.B * c.Lq * sizeof *live);

        assert_int_equal(forward(&c), ATTN_OK);
        assert_int_equal(attn_soft_attention_backward(dscores, dvalues, dcontext, c.weights,
                                                      c.values, c.B, c.Lq, c.Lk, c.Dv),
                         ATTN_OK);
        reference(&c, dcontext, w_ref, c_ref, ds_ref, dv_ref, live);

        for (size_t r = 0; r < (size_t)c.B * c.Lq; r++) {
            double sum = 0.0;
            for (int j = 0; j < c.Lk; j++) {
                size_t e = r * c.Lk + j;
                sum += c.weights[e];
                if (w_ref[e] == 0.0) { /* a masked key: nothing in, nothing out */
                    assert_true(c.weights[e] == 0.0f);
                    assert_true(dscores[e] == 0.0f);
                }
            }
            if (fabs(sum - (live[r] ? 1.0 : 0.0)) > 1e-5)
                print_error("case %d %s: row %zu sums to %.9g\n", k, what, r, sum);
            assert_true(fabs(sum - (live[r] ? 1.0 : 0.0)) <= 1e-5);
            if (!live[r])
                for (int d = 0; d < c.Dv; d++) assert_true(c.context[r * c.Dv + d] == 0.0f);
        }
        double err[4] = {test_rel_error_f64(c.weights, w_ref, ns),
                         test_rel_error_f64(c.context, c_ref, nc),
                         test_rel_error_f64(dscores, ds_ref, ns),
                         test_rel_error_f64(dvalues, dv_ref, nv)};
        static const char *const names[4] = {"weights", "context", "dscores", "dvalues"};
        for (int t = 0; t < 4; t++) {
            if (err[t] > 1e-5) print_error("case %d %s: %s error %g\n", k, what, names[t], err[t]);
            assert_true(err[t] <= 1e-5);
            worst[t] = fmax(worst[t], err[t]);
        }
        free(dcontext), free(dscores), free(dvalues);
        free(w_ref), free(c_ref), free(ds_ref), free(dv_ref), free(live);
        free_case(&c);
    }
    printf("soft attention: largest relative error weights %.3g, context %.3g, dscores %.3g, "
           "dvalues %.3g\n",
           worst[0], worst[1], worst[2], worst[3]);
}

typedef struct loss_ctx {
    soft_case *c;
    float *probe; /* (B, Lq, Dv) */
} loss_ctx;

static double context_loss(void *p)
{
    loss_ctx *ctx = p;
    forward(ctx->c);
    return test_dot(ctx->c->context, ctx->probe, (size_t)ctx->c->B * ctx->c->Lq * ctx->c->Dv);
}

static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int k = 0; k < CASES; k++) {
        int number = 1000 + k;
        attn_rng rng = test_rng((uint64_t)number);
        soft_case c;
        /* Moderate scores: a nearly one-hot row has gradients so small that the
         * float32 rounding of the loss (~1e-5 after differencing) would dominate. */
        make_case(&c, &rng, k % 4, 2, 6, 5, 1.0f);
        char what[160];
        describe(what, sizeof what, &c);
        size_t ns = (size_t)c.B * c.Lq * c.Lk, nv = (size_t)c.B * c.Lk * c.Dv;
        size_t nc = (size_t)c.B * c.Lq * c.Dv;
        loss_ctx ctx = {&c, NULL};
        float *dscores = test_zeros(ns), *dvalues = test_zeros(nv);
        assert_int_equal(forward(&c), ATTN_OK);
        /* For the same reason, values and probe are drawn again while every dscores
         * is near zero, as when the probe is nearly orthogonal to all differences
         * of two value rows. (Rows with at most one key keep a gradient of exactly
         * 0, which finite differences reproduce exactly.) */
        for (int attempt = 0; attempt < 20; attempt++) {
            free(ctx.probe);
            ctx.probe = test_random(&rng, nc, -1.0f, 1.0f);
            attn_rng_fill_uniform(&rng, c.values, nv, -1.0f, 1.0f);
            memset(dscores, 0, ns * sizeof *dscores);
            memset(dvalues, 0, nv * sizeof *dvalues);
            assert_int_equal(attn_soft_attention_backward(dscores, dvalues, ctx.probe, c.weights,
                                                          c.values, c.B, c.Lq, c.Lk, c.Dv),
                             ATTN_OK);
            float largest = 0.0f;
            for (size_t e = 0; e < ns; e++) largest = fmaxf(largest, fabsf(dscores[e]));
            if (largest >= 0.05f) break;
        }
        double es = test_gradcheck(c.scores, ns, dscores, context_loss, &ctx, 1e-2f);
        double ev = test_gradcheck(c.values, nv, dvalues, context_loss, &ctx, 1e-2f);
        if (es > 1e-3 || ev > 1e-3)
            print_error("case %d %s: gradcheck error dscores %g, dvalues %g\n", number, what, es,
                        ev);
        assert_true(es <= 1e-3);
        assert_true(ev <= 1e-3);
        worst = fmax(worst, fmax(es, ev));
        free(ctx.probe), free(dscores), free(dvalues);
        free_case(&c);
    }
    printf("soft attention: largest gradcheck error %.3g\n", worst);
}

/* Twice gives twice the gradient; either gradient alone is the same as with both. */
static void test_accumulation_and_null_gradients(void **state)
{
    (void)state;
    attn_rng rng = test_rng(2000);
    soft_case c;
    make_case(&c, &rng, ATTN_MASK_BOOL, 1, 10, 8, 3.0f);
    size_t ns = (size_t)c.B * c.Lq * c.Lk, nv = (size_t)c.B * c.Lk * c.Dv;
    float *dcontext = test_random(&rng, (size_t)c.B * c.Lq * c.Dv, -1.0f, 1.0f);
    float *ds1 = test_zeros(ns), *dv1 = test_zeros(nv), *ds2 = test_zeros(ns),
          *dv2 = test_zeros(nv), *ds_alone = test_zeros(ns), *dv_alone = test_zeros(nv);
    assert_int_equal(forward(&c), ATTN_OK);
    for (int t = 0; t < 3; t++)
        assert_int_equal(attn_soft_attention_backward(t ? ds2 : ds1, t ? dv2 : dv1, dcontext,
                                                      c.weights, c.values, c.B, c.Lq, c.Lk, c.Dv),
                         ATTN_OK);
    assert_int_equal(attn_soft_attention_backward(ds_alone, NULL, dcontext, c.weights, c.values,
                                                  c.B, c.Lq, c.Lk, c.Dv),
                     ATTN_OK);
    assert_int_equal(attn_soft_attention_backward(NULL, dv_alone, dcontext, c.weights, c.values,
                                                  c.B, c.Lq, c.Lk, c.Dv),
                     ATTN_OK);
    assert_int_equal(attn_soft_attention_backward(NULL, NULL, dcontext, c.weights, c.values, c.B,
                                                  c.Lq, c.Lk, c.Dv),
                     ATTN_OK);
    for (size_t e = 0; e < ns; e++) ds2[e] *= 0.5f;
    for (size_t e = 0; e < nv; e++) dv2[e] *= 0.5f;
    assert_true(test_rel_error(ds2, ds1, ns) <= 1e-6);
    assert_true(test_rel_error(dv2, dv1, nv) <= 1e-6);
    assert_true(test_rel_error(ds_alone, ds1, ns) <= 1e-6);
    assert_true(test_rel_error(dv_alone, dv1, nv) <= 1e-6);
    free(dcontext), free(ds1), free(dv1), free(ds2), free(dv2), free(ds_alone), free(dv_alone);
    free_case(&c);
}

/* Rows with every key masked, by a key padding mask (B, 1, 1, Lk) that excludes all of
 * batch entry 1: weights, context and gradients are zero and nothing is NaN, even
 * though the scores of that entry are huge. */
static void test_fully_masked_batch_entry(void **state)
{
    (void)state;
    enum { B = 3, LQ = 4, LK = 5, DV = 3 };
    attn_rng rng = test_rng(3000);
    float *scores = test_random(&rng, B * LQ * LK, -3.0f, 3.0f);
    float *values = test_random(&rng, B * LK * DV, -1.0f, 1.0f);
    float *dcontext = test_random(&rng, B * LQ * DV, -1.0f, 1.0f);
    for (int e = LQ * LK; e < 2 * LQ * LK; e++) scores[e] = 1e30f;
    uint8_t padding[B * LK] = {0};
    for (int j = 0; j < LK; j++) padding[LK + j] = 1;
    padding[2 * LK + 4] = 1;
    const int64_t shape[4] = {B, 1, 1, LK}, target[4] = {B, 1, LQ, LK};
    attn_mask mask;
    assert_int_equal(attn_mask_init(&mask, ATTN_MASK_BOOL, padding, 4, shape, target), ATTN_OK);
    float context[B * LQ * DV], weights[B * LQ * LK], dscores[B * LQ * LK] = {0},
                                                        dvalues[B * LK * DV] = {0};
    assert_int_equal(attn_soft_attention_forward(context, weights, scores, &mask, values, B, LQ, LK,
                                                 DV),
                     ATTN_OK);
    assert_int_equal(attn_soft_attention_backward(dscores, dvalues, dcontext, weights, values, B,
                                                  LQ, LK, DV),
                     ATTN_OK);
    assert_false(has_nan(context, B * LQ * DV) || has_nan(weights, B * LQ * LK) ||
                 has_nan(dscores, B * LQ * LK) || has_nan(dvalues, B * LK * DV));
    for (int e = LQ * LK; e < 2 * LQ * LK; e++)
        assert_true(weights[e] == 0.0f && dscores[e] == 0.0f);
    for (int e = LQ * DV; e < 2 * LQ * DV; e++) assert_true(context[e] == 0.0f);
    for (int e = LK * DV; e < 2 * LK * DV; e++) assert_true(dvalues[e] == 0.0f);
    for (int i = 0; i < LQ; i++) assert_true(weights[(2 * LQ + i) * LK + 4] == 0.0f);
    free(scores), free(values), free(dcontext);
}

/* A NaN score makes the weights, context and dscores of its row NaN, as in PyTorch,
 * and no other row's; dvalues of its batch entry become NaN too, since every value
 * there is weighted by that row. */
static void test_nan_stays_in_its_row(void **state)
{
    (void)state;
    enum { B = 2, LQ = 3, LK = 4, DV = 2 };
    attn_rng rng = test_rng(4000);
    float *scores = test_random(&rng, B * LQ * LK, -3.0f, 3.0f);
    float *values = test_random(&rng, B * LK * DV, -1.0f, 1.0f);
    float *dcontext = test_random(&rng, B * LQ * DV, -1.0f, 1.0f);
    const int nan_row = LQ + 1; /* b = 1, i = 1 */
    scores[nan_row * LK + 2] = NAN;
    float context[B * LQ * DV], weights[B * LQ * LK], dscores[B * LQ * LK] = {0},
                                                        dvalues[B * LK * DV] = {0};
    assert_int_equal(attn_soft_attention_forward(context, weights, scores, NULL, values, B, LQ, LK,
                                                 DV),
                     ATTN_OK);
    assert_int_equal(attn_soft_attention_backward(dscores, dvalues, dcontext, weights, values, B,
                                                  LQ, LK, DV),
                     ATTN_OK);
    for (int r = 0; r < B * LQ; r++) {
        for (int j = 0; j < LK; j++) {
            assert_true(isnan(weights[r * LK + j]) == (r == nan_row));
            assert_true(isnan(dscores[r * LK + j]) == (r == nan_row));
        }
        for (int d = 0; d < DV; d++) assert_true(isnan(context[r * DV + d]) == (r == nan_row));
    }
    for (int e = 0; e < B * LK * DV; e++) assert_true(isnan(dvalues[e]) == (e >= LK * DV));
    free(scores), free(values), free(dcontext);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float x[16] = {0}, o[16];
    test_expect_invalid(attn_soft_attention_forward(NULL, o, x, NULL, x, 1, 2, 2, 2),
                   "context is NULL");
    test_expect_invalid(attn_soft_attention_forward(o, NULL, x, NULL, x, 1, 2, 2, 2),
                   "weights is NULL");
    test_expect_invalid(attn_soft_attention_forward(o, o, NULL, NULL, x, 1, 2, 2, 2), "scores is NULL");
    test_expect_invalid(attn_soft_attention_forward(o, o, x, NULL, NULL, 1, 2, 2, 2), "values is NULL");
    test_expect_invalid(attn_soft_attention_forward(o, o, x, NULL, x, 0, 2, 2, 2), "B is 0");
    test_expect_invalid(attn_soft_attention_forward(o, o, x, NULL, x, 1, 0, 2, 2), "Lq is 0");
    test_expect_invalid(attn_soft_attention_forward(o, o, x, NULL, x, 1, 2, -1, 2), "Lk is -1");
    test_expect_invalid(attn_soft_attention_forward(o, o, x, NULL, x, 1, 2, 2, 0), "Dv is 0");
    attn_mask mask = {.type = (attn_mask_type)5, .data = x};
    test_expect_invalid(attn_soft_attention_forward(o, o, x, &mask, x, 1, 2, 2, 2), "mask type 5");
    test_expect_invalid(attn_soft_attention_backward(o, o, NULL, x, x, 1, 2, 2, 2), "dcontext is NULL");
    test_expect_invalid(attn_soft_attention_backward(o, o, x, NULL, x, 1, 2, 2, 2), "weights is NULL");
    test_expect_invalid(attn_soft_attention_backward(o, o, x, x, NULL, 1, 2, 2, 2), "values is NULL");
    test_expect_invalid(attn_soft_attention_backward(o, o, x, x, x, 1, 2, 2, 0), "Dv is 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_float64),
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_accumulation_and_null_gradients),
        cmocka_unit_test(test_fully_masked_batch_entry),
        cmocka_unit_test(test_nan_stays_in_its_row),
        cmocka_unit_test(test_bad_arguments),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
