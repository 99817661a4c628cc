/* Hard attention: argmax and sampling against manual float64 choices, ties, sample
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
    return attn_hard_attention_forward(c->index, c->context, c->scores,
                                       c->masked ? &c->mc.mask : NULL, c->values, c->B, c->Lq,
                                       c->Lk, c->Dv, mode, seed);
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

static void test_ties_take_the_first(void **state)
{
    (void)state;
    const float scores[2 * 5] = {1, 3, 3, 2, 3, 0, 0, 0, 0, 0};
    const float values[5] = {10, 11, 12, 13, 14};
    int32_t index[2];
    float context[2];
    assert_int_equal(attn_hard_attention_forward(index, context, scores, NULL, values, 1, 2, 5, 1,
                                                 ATTN_HARD_ARGMAX, 0),
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
        assert_int_equal(attn_hard_attention_forward(&index, &context, scores, &mask, values, 1, 1,
                                                     LK, 1, ATTN_HARD_SAMPLE, first_seed + n),
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
    assert_int_equal(attn_hard_attention_forward(first, context, scores, NULL, values, B, LQ, LK,
                                                 DV, ATTN_HARD_SAMPLE, seed),
                     ATTN_OK);
    assert_int_equal(attn_hard_attention_forward(second, context, scores, NULL, values, B, LQ, LK,
                                                 DV, ATTN_HARD_SAMPLE, seed),
                     ATTN_OK);
    assert_int_equal(attn_hard_attention_forward(other, context, scores, NULL, values, B, LQ, LK,
                                                 DV, ATTN_HARD_SAMPLE, seed + 1),
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
        assert_int_equal(attn_hard_attention_forward(index, context, scores, NULL, values, 1, 3, 5,
                                                     1, (attn_hard_mode)mode, 7),
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
    test_expect_invalid(attn_hard_attention_forward(NULL, o, x, NULL, x, 1, 2, 2, 2, am, 0),
                   "index is NULL");
    test_expect_invalid(attn_hard_attention_forward(index, NULL, x, NULL, x, 1, 2, 2, 2, am, 0),
                   "context is NULL");
    test_expect_invalid(attn_hard_attention_forward(index, o, NULL, NULL, x, 1, 2, 2, 2, am, 0),
                   "scores is NULL");
    test_expect_invalid(attn_hard_attention_forward(index, o, x, NULL, NULL, 1, 2, 2, 2, am, 0),
                   "values is NULL");
    test_expect_invalid(attn_hard_attention_forward(index, o, x, NULL, x, 0, 2, 2, 2, am, 0), "B is 0");
    test_expect_invalid(attn_hard_attention_forward(index, o, x, NULL, x, 1, 0, 2, 2, am, 0), "Lq is 0");
    test_expect_invalid(attn_hard_attention_forward(index, o, x, NULL, x, 1, 2, 0, 2, am, 0), "Lk is 0");
    test_expect_invalid(attn_hard_attention_forward(index, o, x, NULL, x, 1, 2, 2, -4, am, 0),
                   "Dv is -4");
    test_expect_invalid(attn_hard_attention_forward(index, o, x, NULL, x, 1, 2, 2, 2, (attn_hard_mode)7,
                                               0),
                   "mode 7");
    attn_mask mask = {.type = (attn_mask_type)3, .data = x};
    test_expect_invalid(attn_hard_attention_forward(index, o, x, &mask, x, 1, 2, 2, 2, am, 0),
                   "mask type 3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choices_match_manual),
        cmocka_unit_test(test_ties_take_the_first),
        cmocka_unit_test(test_sample_frequencies_follow_softmax),
        cmocka_unit_test(test_same_seed_same_indices),
        cmocka_unit_test(test_nan_and_inf_scores),
        cmocka_unit_test(test_bad_arguments),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
