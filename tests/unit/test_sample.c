/* Sampling the next token: greedy, then the frequencies over an even grid of u
 * against the filtered, renormalised distribution computed plainly (temperature,
 * top-k, top-p, ties, infinite logits), and the checks of bad options. */
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

/* u = (i + 0.5) / GRID for i < GRID: token j is drawn for a run of u of length
 * p_j, so it is drawn p_j GRID times up to one at each end of its run (and the
 * rounding of u to float, far below the spacing of the grid). */
enum { GRID = 20000 };
#define GRID_SLACK 2.0

static float grid_u(int i) { return (float)((i + 0.5) / GRID); }

/* The distribution attn_sample draws from, computed the plain way: probs: (V),
 * order: (V) the ids by rank; returns how many ranks are kept. A token's rank
 * counts the tokens more probable than it, or as probable with a smaller id;
 * top_k keeps ranks below k; top_p then keeps a token if the tokens ranked before
 * it hold less than top_p of the probability. */
static int expected_distribution(const float *logits, int V, const attn_sampling *s, double *probs,
                                 int *order)
{
    double top = -INFINITY;
    for (int i = 0; i < V; i++) top = fmax(top, (double)logits[i]);
    double *p = malloc((size_t)V * sizeof *p);
    assert_non_null(p);
    for (int i = 0; i < V; i++)
        p[i] =
            isinf(top) ? (logits[i] == INFINITY) : exp(((double)logits[i] - top) / s->temperature);
    for (int i = 0; i < V; i++) {
        int rank = 0;
        for (int j = 0; j < V; j++) rank += p[j] > p[i] || (p[j] == p[i] && j < i);
        order[rank] = i;
    }
    int kept = s->top_k > 0 && s->top_k < V ? s->top_k : V;
    double kept_total = 0;
    for (int r = 0; r < kept; r++) kept_total += p[order[r]];
    double before = 0;
    for (int r = 0; r < kept; r++) {
        if (before / kept_total >= s->top_p) {
            kept = r;
            break;
        }
        before += p[order[r]];
    }
    double sum = 0;
    for (int r = 0; r < kept; r++) sum += p[order[r]];
    for (int i = 0; i < V; i++) probs[i] = 0;
    for (int r = 0; r < kept; r++) probs[order[r]] = p[order[r]] / sum;
    free(p);
    return kept;
}

/* The token the plain computation draws for u: the first, in rank order, at
 * which the running probability passes u. */
static int expected_token(const double *probs, const int *order, int kept, float u)
{
    double sum = 0;
    for (int r = 0; r < kept; r++) {
        sum += probs[order[r]];
        if (sum > u) return order[r];
    }
    return order[kept - 1];
}

/* counts: (V) how often each token is drawn over the grid of u. */
static void draw_grid(const float *logits, int V, const attn_sampling *s, int *counts)
{
    memset(counts, 0, (size_t)V * sizeof *counts);
    for (int i = 0; i < GRID; i++) {
        int32_t token = -1;
        assert_int_equal(attn_sample(&token, logits, V, s, grid_u(i)), ATTN_OK);
        assert_in_range(token, 0, V - 1);
        counts[token]++;
    }
}

/* The grid's counts match probs: (V) to GRID_SLACK, and never-kept tokens never appear. */
static void expect_counts(const int *counts, const double *probs, int V)
{
    for (int i = 0; i < V; i++) {
        double want = probs[i] * GRID;
        if (fabs(counts[i] - want) > GRID_SLACK || (probs[i] == 0 && counts[i] != 0))
            print_error("token %d drawn %d times of %d, expected %.3f\n", i, counts[i], GRID, want);
        assert_true(fabs(counts[i] - want) <= GRID_SLACK);
        if (probs[i] == 0) assert_int_equal(counts[i], 0);
    }
}

static void check_distribution(const float *logits, int V, const attn_sampling *s)
{
    double *probs = malloc((size_t)V * sizeof *probs);
    int *counts = malloc((size_t)V * sizeof *counts), *order = malloc((size_t)V * sizeof *order);
    assert_non_null(probs);
    assert_non_null(counts);
    assert_non_null(order);
    int kept = expected_distribution(logits, V, s, probs, order);
    draw_grid(logits, V, s, counts);
    expect_counts(counts, probs, V);
    /* Token by token too (a random u falls on a boundary with probability ~1e-16). */
    attn_rng rng = test_rng((uint64_t)V);
    for (int i = 0; i < 200; i++) {
        float u = attn_rng_uniform(&rng);
        int32_t token = -1;
        assert_int_equal(attn_sample(&token, logits, V, s, u), ATTN_OK);
        assert_int_equal(token, expected_token(probs, order, kept, u));
    }
    free(probs);
    free(counts);
    free(order);
}

static int argmax(const float *x, int V)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Integer logits, so that ties are common. */
static void tied_logits(attn_rng *rng, float *logits, int V)
{
    for (int i = 0; i < V; i++) logits[i] = (float)attn_rng_below(rng, 7) - 3.0f;
}

static void test_greedy(void **state)
{
    (void)state;
    attn_rng rng = test_rng(1);
    float logits[100];
    for (int trial = 0; trial < 200; trial++) {
        int V = 1 + (int)attn_rng_below(&rng, 100);
        tied_logits(&rng, logits, V);
        attn_sampling s = {0.0f, (int)attn_rng_below(&rng, 5),
                           0.1f + 0.9f * attn_rng_uniform(&rng)};
        int32_t token = -1;
        assert_int_equal(attn_sample(&token, logits, V, &s, attn_rng_uniform(&rng)), ATTN_OK);
        assert_int_equal(token, argmax(logits, V));
    }
}

static void test_top_k_one_is_greedy(void **state)
{
    (void)state;
    attn_rng rng = test_rng(2);
    float logits[100];
    for (int trial = 0; trial < 200; trial++) {
        int V = 1 + (int)attn_rng_below(&rng, 100);
        tied_logits(&rng, logits, V);
        attn_sampling s = {0.1f + 3.0f * attn_rng_uniform(&rng), 1,
                           0.1f + 0.9f * attn_rng_uniform(&rng)};
        for (int i = 0; i < 10; i++) {
            int32_t token = -1;
            assert_int_equal(attn_sample(&token, logits, V, &s, attn_rng_uniform(&rng)), ATTN_OK);
            assert_int_equal(token, argmax(logits, V));
        }
    }
}

static void test_frequencies(void **state)
{
    (void)state;
    attn_rng rng = test_rng(3);
    float logits[60];
    for (int trial = 0; trial < 12; trial++) {
        int V = 2 + (int)attn_rng_below(&rng, 59);
        attn_rng_fill_uniform(&rng, logits, (size_t)V, -4.0f, 4.0f);
        attn_sampling s = {0.3f + 2.7f * attn_rng_uniform(&rng), 0, 1.0f};
        if (trial % 2) s.top_k = (int)attn_rng_below(&rng, (uint32_t)V + 1);
        if (trial % 3) s.top_p = 0.2f + 0.8f * attn_rng_uniform(&rng);
        check_distribution(logits, V, &s);
    }
}

static void test_top_p_cut(void **state)
{
    (void)state;
    /* Probabilities 0.05, 0.5, 0.15, 0.3 in id order, so sorting matters. */
    const double p[] = {0.05, 0.5, 0.15, 0.3};
    float logits[4];
    for (int i = 0; i < 4; i++) logits[i] = (float)log(p[i]);
    static const struct {
        float top_p;
        double want[4];
    } cases[] = {
        {0.4f, {0, 1, 0, 0}},                  /* the best alone reaches 0.4 */
        {0.75f, {0, 0.5 / 0.8, 0, 0.3 / 0.8}}, /* 0.5 + 0.3 */
        {0.85f, {0, 0.5 / 0.95, 0.15 / 0.95, 0.3 / 0.95}},
        {1.0f, {0.05, 0.5, 0.15, 0.3}},
    };
    int counts[4];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        attn_sampling s = {1.0f, 0, cases[c].top_p};
        draw_grid(logits, 4, &s, counts);
        expect_counts(counts, cases[c].want, 4);
    }
    /* top_k first, then top_p of what it kept: of 0.5 and 0.3 (0.625 and 0.375
     * renormalised), 0.7 needs both. */
    attn_sampling s = {1.0f, 2, 0.7f};
    const double want[] = {0, 0.5 / 0.8, 0, 0.3 / 0.8};
    draw_grid(logits, 4, &s, counts);
    expect_counts(counts, want, 4);
}

static void test_temperature(void **state)
{
    (void)state;
    attn_rng rng = test_rng(4);
    enum { V = 16 };
    float logits[V], doubled[V];
    attn_rng_fill_uniform(&rng, logits, V, -3.0f, 3.0f);
    for (int i = 0; i < V; i++) doubled[i] = 2.0f * logits[i];
    /* softmax(l / T) written out for T = 1: doubling the logits and the
     * temperature changes nothing. */
    double want[V], total = 0;
    for (int i = 0; i < V; i++) total += exp(logits[i]);
    for (int i = 0; i < V; i++) want[i] = exp(logits[i]) / total;
    int counts[V];
    attn_sampling s = {2.0f, 0, 1.0f};
    draw_grid(doubled, V, &s, counts);
    expect_counts(counts, want, V);

    /* Cold: the best token always (0.1 ahead, so the next has probability e^-100);
     * hot: every token alike. */
    logits[argmax(logits, V)] += 0.1f;
    s.temperature = 1e-3f;
    draw_grid(logits, V, &s, counts);
    assert_int_equal(counts[argmax(logits, V)], GRID);
    s.temperature = 1e6f;
    draw_grid(logits, V, &s, counts);
    for (int i = 0; i < V; i++) assert_true(fabs(counts[i] - GRID / (double)V) <= GRID_SLACK + 1);
}

static void test_ties_by_id(void **state)
{
    (void)state;
    const float logits[5] = {0, 0, 0, 0, 0};
    int counts[5];
    attn_sampling s = {1.0f, 2, 1.0f};
    draw_grid(logits, 5, &s, counts);
    expect_counts(counts, (const double[]){0.5, 0.5, 0, 0, 0}, 5);
    s = (attn_sampling){1.0f, 0, 0.5f};
    draw_grid(logits, 5, &s, counts);
    expect_counts(counts, (const double[]){1 / 3.0, 1 / 3.0, 1 / 3.0, 0, 0}, 5);
    /* Exactly on a boundary: half of four reaches top_p 0.5, and u = 0.5 of two
     * starts the second token's run. */
    s = (attn_sampling){1.0f, 0, 0.5f};
    draw_grid(logits, 4, &s, counts);
    expect_counts(counts, (const double[]){0.5, 0.5, 0, 0}, 4);
    int32_t token = -1;
    assert_int_equal(attn_sample(&token, logits, 4, &s, 0.5f), ATTN_OK);
    assert_int_equal(token, 1);
    /* The draw runs from the most probable: small u take the best token. */
    const float ranked[3] = {0.0f, 2.0f, 1.0f};
    s = (attn_sampling){1.0f, 0, 1.0f};
    assert_int_equal(attn_sample(&token, ranked, 3, &s, 0.0f), ATTN_OK);
    assert_int_equal(token, 1);
    assert_int_equal(attn_sample(&token, ranked, 3, &s, 0.999f), ATTN_OK);
    assert_int_equal(token, 0);
}

static void test_infinite_logits(void **state)
{
    (void)state;
    int counts[5];
    const float with_inf[5] = {1.0f, INFINITY, 3.0f, INFINITY, -INFINITY};
    attn_sampling s = {0.7f, 0, 1.0f};
    draw_grid(with_inf, 5, &s, counts);
    expect_counts(counts, (const double[]){0, 0.5, 0, 0.5, 0}, 5);
    s.temperature = 0;
    int32_t token = -1;
    assert_int_equal(attn_sample(&token, with_inf, 5, &s, 0.5f), ATTN_OK);
    assert_int_equal(token, 1);

    const float masked[3] = {-INFINITY, 2.0f, -INFINITY};
    s.temperature = 1.0f;
    draw_grid(masked, 3, &s, counts);
    assert_int_equal(counts[1], GRID);

    const float none[3] = {-INFINITY, -INFINITY, -INFINITY};
    assert_int_equal(attn_sample(&token, none, 3, &s, 0.5f), ATTN_ERR_NUMERIC);
    assert_non_null(strstr(attn_last_error(), "all 3 logits are -inf"));
    const float nan[4] = {0.0f, 1.0f, NAN, 2.0f};
    s.temperature = 0;
    assert_int_equal(attn_sample(&token, nan, 4, &s, 0.5f), ATTN_ERR_NUMERIC);
    assert_non_null(strstr(attn_last_error(), "logit 2 of 4 is NaN"));
}

static void test_large_vocabulary(void **state)
{
    (void)state;
    /* More ids than the stack holds: the candidates go to the heap. */
    enum { V = ATTN_TEXT_VOCAB_MAX + 904 };
    attn_rng rng = test_rng(5);
    float *logits = test_random(&rng, V, -6.0f, 6.0f);
    double *probs = malloc(V * sizeof *probs);
    int *order = malloc(V * sizeof *order);
    assert_non_null(probs);
    assert_non_null(order);
    const attn_sampling cases[] = {{0.8f, 0, 0.9f}, {1.3f, 4500, 1.0f}, {2.0f, 0, 1.0f}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int kept = expected_distribution(logits, V, &cases[c], probs, order);
        for (int i = 0; i < 300; i++) {
            float u = attn_rng_uniform(&rng);
            int32_t token = -1;
            assert_int_equal(attn_sample(&token, logits, V, &cases[c], u), ATTN_OK);
            assert_int_equal(token, expected_token(probs, order, kept, u));
        }
    }
    free(logits);
    free(probs);
    free(order);
}

static void test_bad_options(void **state)
{
    (void)state;
    const float logits[3] = {0.0f, 1.0f, 2.0f};
    int32_t token;
    attn_sampling s = {-1.0f, 0, 1.0f};
    test_expect_invalid(attn_sample(&token, logits, 3, &s, 0.5f),
                        "temperature -1 must be finite and at least 0");
    s.temperature = INFINITY;
    test_expect_invalid(attn_sample(&token, logits, 3, &s, 0.5f), "temperature inf");
    s.temperature = NAN;
    test_expect_invalid(attn_sample(&token, logits, 3, &s, 0.5f), "temperature nan");
    s = (attn_sampling){1.0f, -2, 1.0f};
    test_expect_invalid(attn_sample(&token, logits, 3, &s, 0.5f), "top_k -2 is negative");
    s = (attn_sampling){1.0f, 0, 0.0f};
    test_expect_invalid(attn_sample(&token, logits, 3, &s, 0.5f), "top_p 0 is outside (0, 1]");
    s.top_p = 1.5f;
    test_expect_invalid(attn_sample(&token, logits, 3, &s, 0.5f), "top_p 1.5 is outside");
    s.top_p = NAN;
    test_expect_invalid(attn_sample(&token, logits, 3, &s, 0.5f), "top_p nan is outside");
    s = (attn_sampling){1.0f, 0, 1.0f};
    test_expect_invalid(attn_sample(&token, logits, 3, &s, 1.0f),
                        "uniform number u 1 is outside [0, 1)");
    test_expect_invalid(attn_sample(&token, logits, 3, &s, -0.25f), "u -0.25 is outside");
    test_expect_invalid(attn_sample(&token, logits, 3, &s, NAN), "u nan is outside");
    test_expect_invalid(attn_sample(&token, logits, 0, &s, 0.5f), "vocab size is 0");
    test_expect_invalid(attn_sample(NULL, logits, 3, &s, 0.5f), "token is NULL");
    test_expect_invalid(attn_sample(&token, NULL, 3, &s, 0.5f), "logits is NULL");
    test_expect_invalid(attn_sample(&token, logits, 3, NULL, 0.5f), "sampling options is NULL");
    /* Greedy checks its options too. */
    s = (attn_sampling){0.0f, -1, 1.0f};
    test_expect_invalid(attn_sample(&token, logits, 3, &s, 0.5f), "top_k -1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_top_k_one_is_greedy),
        cmocka_unit_test(test_frequencies),
        cmocka_unit_test(test_top_p_cut),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_ties_by_id),
        cmocka_unit_test(test_infinite_logits),
        cmocka_unit_test(test_large_vocabulary),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
