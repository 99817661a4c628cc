/* Hard attention: argmax, sampling and Gumbel-max against manual float64 choices,
 * the Gumbel relaxation and its straight-through backward, ties, sample
 * frequencies, reproducibility, masks, NaN, bad arguments. */
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

typedef struct hard_case {
    int B, Lq, Lk, Dv;
    bool masked;
    mask_case mc;           /* target (B, 1, Lq, Lk) */
    float *scores, *values; /* (B, Lq, Lk), (B, Lk, Dv) */
    int32_t *index;         /* (B, Lq) */
    float *context;         /* (B, Lq, Dv) */
} hard_case;

/* Scores are uniform in [-2, 2), or small integers when ties are wanted; a mask of
 * type mask_kind (an attn_mask_type, or 3 for none). */
static void make_case(hard_case *c, attn_rng *rng, int mask_kind, bool ties)
{
    c->B = 1 + (int)attn_rng_below(rng, 3);
    c->Lq = 1 + (int)attn_rng_below(rng, 10);
    c->Lk = 1 + (int)attn_rng_below(rng, 12);
    c->Dv = 1 + (int)attn_rng_below(rng, 6);
    size_t ns = (size_t)c->B * c->Lq * c->Lk;
    c->scores = test_random(rng, ns, -2.0f, 2.0f);
    if (ties)
        for (size_t e = 0; e < ns; e++) c->scores[e] = (float)attn_rng_below(rng, 3);
    c->values = test_random(rng, (size_t)c->B * c->Lk * c->Dv, -1.0f, 1.0f);
    c->index = calloc((size_t)c->B * c->Lq, sizeof *c->index);
    c->context = test_zeros((size_t)c->B * c->Lq * c->Dv);
    c->masked = mask_kind < 3;
    if (c->masked)
        assert_int_equal(mask_case_make(&c->mc, rng, (attn_mask_type)mask_kind, c->B, c->Lq,
                                        c->Lk),
                         ATTN_OK);
}

static void free_case(hard_case *c)
{
    free(c->scores), free(c->values), free(c->index), free(c->context);
    if (c->masked) mask_case_free(&c->mc);
}

static attn_status run(hard_case *c, attn_hard_mode mode, uint64_t seed)
{
    return attn_hard_attention_forward(c->index, c->context, NULL, c->scores,
                                       c->masked ? &c->mc.mask : NULL, c->values, c->B, c->Lq,
                                       c->Lk, c->Dv, &(attn_hard_pick){mode, seed, 0.0f});
}

/* The first key of largest masked score, -1 if every key is masked. */
static int manual_argmax(const hard_case *c, int b, int i)
{
    const float *row = c->scores + ((size_t)b * c->Lq + i) * c->Lk;
    int best = -1;
    double best_score = -INFINITY;
    for (int j = 0; j < c->Lk; j++) {
        double s = mask_case_apply(c->masked ? &c->mc : NULL, row[j], b, i, j);
        if (s > best_score) best = j, best_score = s;
    }
    return best;
}

/* The first key whose cumulative softmax probability exceeds u. */
static int manual_sample(const hard_case *c, int b, int i, double u)
{
    double p[64];
    size_t r = (size_t)b * c->Lq + i;
    if (!ref_softmax_row(p, c->scores + r * c->Lk, c->masked ? &c->mc : NULL, b, i, c->Lk))
        return -1;
    double cumulative = 0.0;
    int last = -1;
    for (int j = 0; j < c->Lk; j++) {
        if (p[j] == 0.0) continue;
        cumulative += p[j];
        last = j;
        if (cumulative > u) return j;
    }
    return last;
}

/* index as expected, and context the chosen value row, or zeros for index -1. */
static void check_rows(const hard_case *c, attn_hard_mode mode, uint64_t seed, int number)
{
    for (int b = 0; b < c->B; b++)
        for (int i = 0; i < c->Lq; i++) {
            size_t r = (size_t)b * c->Lq + i;
            int want = mode == ATTN_HARD_ARGMAX
                           ? manual_argmax(c, b, i)
                           : manual_sample(c, b, i, attn_uniform_at(seed, r));
            const mask_case *mc = c->masked ? &c->mc : NULL;
            if (c->index[r] != want)
                print_error("case %d B=%d Lq=%d Lk=%d mask %s mode %d: row %zu index %d, want %d\n",
                            number, c->B, c->Lq, c->Lk, mc ? mask_type_name(mc->type) : "none",
                            (int)mode, r, c->index[r], want);
            assert_int_equal(c->index[r], want);
            if (want >= 0) assert_true(mask_case_apply(mc, 0.0, b, i, want) > -INFINITY);
            for (int d = 0; d < c->Dv; d++) {
                float expect = want < 0 ? 0.0f : c->values[((size_t)b * c->Lk + want) * c->Dv + d];
                assert_true(c->context[r * c->Dv + d] == expect);
            }
        }
}

static void test_choices_match_manual(void **state)
{
    (void)state;
    for (int k = 0; k < CASES; k++) {
        attn_rng rng = test_rng((uint64_t)k);
        hard_case c;
        make_case(&c, &rng, k / 2 % 4, k % 2 == 1);
        uint64_t seed = attn_rng_u32(&rng);
        assert_int_equal(run(&c, ATTN_HARD_ARGMAX, seed), ATTN_OK);
        check_rows(&c, ATTN_HARD_ARGMAX, seed, k);
        assert_int_equal(run(&c, ATTN_HARD_SAMPLE, seed), ATTN_OK);
        check_rows(&c, ATTN_HARD_SAMPLE, seed, k);
        free_case(&c);
    }
}

/* z_j = (masked score + g_j) / tau in float64 with the layer's keying of g, its
 * argmax, and y = softmax(z); -1 and zeros for a fully masked row. */
static int manual_gumbel(const hard_case *c, int b, int i, uint64_t seed, float tau, double *y)
{
    size_t r = (size_t)b * c->Lq + i;
    const float *row = c->scores + r * c->Lk;
    int best = -1;
    double best_z = -INFINITY;
    for (int j = 0; j < c->Lk; j++) {
        double u = (double)attn_uniform_at(seed, r * (size_t)c->Lk + j) + 0x1p-25;
        double s = mask_case_apply(c->masked ? &c->mc : NULL, row[j], b, i, j);
        y[j] = (s - log(-log(u))) / tau;
        if (y[j] > best_z) best = j, best_z = y[j];
    }
    double sum = 0.0;
    for (int j = 0; j < c->Lk; j++) sum += y[j] = best < 0 ? 0.0 : exp(y[j] - best_z);
    for (int j = 0; j < c->Lk; j++) y[j] = best < 0 ? 0.0 : y[j] / sum;
    return best;
}

/* GUMBEL's picks and relaxed weights against float64, and its backward: the
 * chosen value rows get dcontext, the scores the straight-through gradient
 * (1 / tau) y_j (dy_j - sum_k y_k dy_k) with dy_j = dcontext . values_j. */
static void test_gumbel_matches_manual(void **state)
{
    (void)state;
    for (int k = 0; k < CASES; k++) {
        attn_rng rng = test_rng(1000 + (uint64_t)k);
        hard_case c;
        make_case(&c, &rng, k % 4, false);
        const attn_hard_pick pick = {ATTN_HARD_GUMBEL, attn_rng_u32(&rng),
                                     0.3f + 2.0f * attn_rng_uniform(&rng)};
        const size_t nw = (size_t)c.B * c.Lq * c.Lk, nv = (size_t)c.B * c.Lk * c.Dv;
        float *weights = test_zeros(nw), *dscores = test_zeros(nw), *dvalues = test_zeros(nv);
        float *dcontext = test_random(&rng, (size_t)c.B * c.Lq * c.Dv, -1.0f, 1.0f);
        assert_int_equal(attn_hard_attention_forward(c.index, c.context, weights, c.scores,
                                                     c.masked ? &c.mc.mask : NULL, c.values, c.B,
                                                     c.Lq, c.Lk, c.Dv, &pick),
                         ATTN_OK);
        assert_int_equal(attn_hard_attention_backward(dscores, dvalues, dcontext, c.index, weights,
                                                      c.values, c.B, c.Lq, c.Lk, c.Dv, &pick),
                         ATTN_OK);
        double *dv_want = calloc(nv, sizeof *dv_want);
        for (int b = 0; b < c.B; b++)
            for (int i = 0; i < c.Lq; i++) {
                size_t r = (size_t)b * c.Lq + i;
                double y[64], dy[64], mean = 0.0;
                int want = manual_gumbel(&c, b, i, pick.seed, pick.tau, y);
                assert_int_equal(c.index[r], want);
                for (int j = 0; j < c.Lk; j++) {
                    assert_true(fabs(weights[r * c.Lk + j] - y[j]) <= 1e-5);
                    dy[j] = 0.0;
                    for (int d = 0; d < c.Dv; d++)
                        dy[j] += (double)dcontext[r * c.Dv + d] *
                                 c.values[((size_t)b * c.Lk + j) * c.Dv + d];
                    mean += y[j] * dy[j];
                }
                for (int j = 0; j < c.Lk; j++)
                    assert_true(fabs(dscores[r * c.Lk + j] - y[j] * (dy[j] - mean) / pick.tau) <=
                                1e-4);
                for (int d = 0; want >= 0 && d < c.Dv; d++)
                    dv_want[((size_t)b * c.Lk + want) * c.Dv + d] += dcontext[r * c.Dv + d];
            }
        for (size_t e = 0; e < nv; e++) assert_true(fabs(dvalues[e] - dv_want[e]) <= 1e-5);
        free(weights), free(dscores), free(dvalues), free(dcontext), free(dv_want);
        free_case(&c);
    }
}

static void test_ties_take_the_first(void **state)
{
    (void)state;
    const float scores[2 * 5] = {1, 3, 3, 2, 3, 0, 0, 0, 0, 0};
    const float values[5] = {10, 11, 12, 13, 14};
    int32_t index[2];
    float context[2];
    assert_int_equal(attn_hard_attention_forward(index, context, NULL, scores, NULL, values, 1, 2,
                                                 5, 1,
                                                 &(attn_hard_pick){ATTN_HARD_ARGMAX, 0, 0.0f}),
                     ATTN_OK);
    assert_int_equal(index[0], 1);
    assert_int_equal(index[1], 0);
    assert_true(context[0] == 11.0f && context[1] == 10.0f);
}

/* Over many seeds, each key is drawn about as often as its softmax probability says;
 * the masked key never. Chi-square with 4 degrees of freedom: 35 is exceeded with
 * probability below 1e-6. */
static void test_sample_frequencies_follow_softmax(void **state)
{
    (void)state;
    enum { LK = 6, DRAWS = 30000, MASKED_KEY = 2 };
    attn_rng rng = test_rng(1000);
    float *scores = test_random(&rng, LK, -1.5f, 1.5f);
    scores[MASKED_KEY] = 5.0f; /* the likeliest key, were it not masked */
    const float values[LK] = {0, 1, 2, 3, 4, 5};
    uint8_t keep[LK] = {1, 1, 1, 1, 1, 1};
    keep[MASKED_KEY] = 0;
    const int64_t shape[1] = {LK}, target[4] = {1, 1, 1, LK};
    attn_mask mask;
    assert_int_equal(attn_mask_init(&mask, ATTN_MASK_BOOL_KEEP, keep, 1, shape, target), ATTN_OK);
    double p[LK], total = 0.0;
    for (int j = 0; j < LK; j++) total += (p[j] = j == MASKED_KEY ? 0.0 : exp(scores[j]));
    long counts[LK] = {0};
    uint64_t first_seed = test_seed();
    for (uint64_t n = 0; n < DRAWS; n++) {
        int32_t index;
        float context;
        assert_int_equal(
            attn_hard_attention_forward(&index, &context, NULL, scores, &mask, values, 1, 1, LK, 1,
                                        &(attn_hard_pick){ATTN_HARD_SAMPLE, first_seed + n, 0.0f}),
            ATTN_OK);
        assert_true(index >= 0 && index < LK && index != MASKED_KEY);
        assert_true(context == values[index]);
        counts[index]++;
    }
    double chi2 = 0.0;
    for (int j = 0; j < LK; j++) {
        if (j == MASKED_KEY) continue;
        double expected = DRAWS * p[j] / total;
        chi2 += (counts[j] - expected) * (counts[j] - expected) / expected;
    }
    printf("hard attention: chi-square %.3g over %d draws (4 degrees of freedom)\n", chi2, DRAWS);
    if (chi2 > 35.0) print_error("chi-square %g over %d draws\n", chi2, DRAWS);
    assert_true(chi2 <= 35.0);
    free(scores);
}

static void test_same_seed_same_indices(void **state)
{
    (void)state;
    attn_rng rng = test_rng(2000);
    enum { B = 3, LQ = 20, LK = 8, DV = 2 };
    float *scores = test_random(&rng, B * LQ * LK, -1.0f, 1.0f);
    float *values = test_random(&rng, B * LK * DV, -1.0f, 1.0f);
    int32_t first[B * LQ], second[B * LQ], other[B * LQ];
    float context[B * LQ * DV];
    uint64_t seed = attn_rng_u32(&rng);
    assert_int_equal(attn_hard_attention_forward(first, context, NULL, scores, NULL, values, B, LQ,
                                                 LK, DV,
                                                 &(attn_hard_pick){ATTN_HARD_SAMPLE, seed, 0.0f}),
                     ATTN_OK);
    assert_int_equal(attn_hard_attention_forward(second, context, NULL, scores, NULL, values, B, LQ,
                                                 LK, DV,
                                                 &(attn_hard_pick){ATTN_HARD_SAMPLE, seed, 0.0f}),
                     ATTN_OK);
    assert_int_equal(
        attn_hard_attention_forward(other, context, NULL, scores, NULL, values, B, LQ, LK, DV,
                                    &(attn_hard_pick){ATTN_HARD_SAMPLE, seed + 1, 0.0f}),
        ATTN_OK);
    assert_memory_equal(first, second, sizeof first);
    assert_memory_not_equal(first, other, sizeof first);
    free(scores), free(values);
}

/* A NaN score wins in both modes (as in torch.argmax): its first NaN key is taken.
 * With a +inf score, sampling takes the first +inf key, the softmax's limit. */
static void test_nan_and_inf_scores(void **state)
{
    (void)state;
    const float scores[3 * 5] = {0, 1, 2, NAN, NAN, NAN, 9, 0, 0, 0, 1, INFINITY, 2, INFINITY, 0};
    const float values[5] = {10, 11, 12, 13, 14};
    for (int mode = 0; mode < 2; mode++) {
        int32_t index[3];
        float context[3];
        assert_int_equal(
            attn_hard_attention_forward(index, context, NULL, scores, NULL, values, 1, 3, 5, 1,
                                        &(attn_hard_pick){(attn_hard_mode)mode, 7, 0.0f}),
            ATTN_OK);
        assert_int_equal(index[0], 3);
        assert_int_equal(index[1], 0);
        assert_int_equal(index[2], 1);
        assert_true(context[0] == 13.0f && context[1] == 10.0f && context[2] == 11.0f);
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float x[16] = {0}, o[16];
    int32_t index[4];
    const attn_hard_mode am = ATTN_HARD_ARGMAX;
    test_expect_invalid(attn_hard_attention_forward(NULL, o, NULL, x, NULL, x, 1, 2, 2, 2,
                                                    &(attn_hard_pick){am, 0, 0.0f}),
                        "index is NULL");
    test_expect_invalid(attn_hard_attention_forward(index, NULL, NULL, x, NULL, x, 1, 2, 2, 2,
                                                    &(attn_hard_pick){am, 0, 0.0f}),
                        "context is NULL");
    test_expect_invalid(attn_hard_attention_forward(index, o, NULL, NULL, NULL, x, 1, 2, 2, 2,
                                                    &(attn_hard_pick){am, 0, 0.0f}),
                        "scores is NULL");
    test_expect_invalid(attn_hard_attention_forward(index, o, NULL, x, NULL, NULL, 1, 2, 2, 2,
                                                    &(attn_hard_pick){am, 0, 0.0f}),
                        "values is NULL");
    test_expect_invalid(attn_hard_attention_forward(index, o, NULL, x, NULL, x, 0, 2, 2, 2,
                                                    &(attn_hard_pick){am, 0, 0.0f}),
                        "B is 0");
    test_expect_invalid(attn_hard_attention_forward(index, o, NULL, x, NULL, x, 1, 0, 2, 2,
                                                    &(attn_hard_pick){am, 0, 0.0f}),
                        "Lq is 0");
    test_expect_invalid(attn_hard_attention_forward(index, o, NULL, x, NULL, x, 1, 2, 0, 2,
                                                    &(attn_hard_pick){am, 0, 0.0f}),
                        "Lk is 0");
    test_expect_invalid(attn_hard_attention_forward(index, o, NULL, x, NULL, x, 1, 2, 2, -4,
                                                    &(attn_hard_pick){am, 0, 0.0f}),
                        "Dv is -4");
    test_expect_invalid(attn_hard_attention_forward(index, o, NULL, x, NULL, x, 1, 2, 2, 2,
                                                    &(attn_hard_pick){(attn_hard_mode)7, 0, 0.0f}),
                        "mode 7");
    const attn_hard_pick cold = {ATTN_HARD_GUMBEL, 0, 0.0f}, warm = {ATTN_HARD_GUMBEL, 0, 1.0f};
    test_expect_invalid(attn_hard_attention_forward(index, o, o, x, NULL, x, 1, 2, 2, 2, &cold),
                        "tau 0");
    test_expect_invalid(attn_hard_attention_forward(index, o, NULL, x, NULL, x, 1, 2, 2, 2, &warm),
                        "weights is NULL");
    test_expect_invalid(attn_hard_attention_backward(o, NULL, NULL, index, o, x, 1, 2, 2, 2, &warm),
                        "dcontext is NULL");
    const int32_t outside[2] = {0, 2}, below[2] = {-2, 1};
    test_expect_invalid(attn_hard_attention_backward(NULL, o, x, outside, NULL, x, 1, 2, 2, 2, &warm),
                        "index 2 of query row 1 is neither a key in [0, 2) nor -1");
    test_expect_invalid(attn_hard_attention_backward(NULL, o, x, below, NULL, x, 1, 2, 2, 2, &warm),
                        "index -2 of query row 0");
    attn_mask mask = {.type = (attn_mask_type)3, .data = x};
    test_expect_invalid(attn_hard_attention_forward(index, o, NULL, x, &mask, x, 1, 2, 2, 2,
                                                    &(attn_hard_pick){am, 0, 0.0f}),
                        "mask type 3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choices_match_manual),
        cmocka_unit_test(test_gumbel_matches_manual),
        cmocka_unit_test(test_ties_take_the_first),
        cmocka_unit_test(test_sample_frequencies_follow_softmax),
        cmocka_unit_test(test_same_seed_same_indices),
        cmocka_unit_test(test_nan_and_inf_scores),
        cmocka_unit_test(test_bad_arguments),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
