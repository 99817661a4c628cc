/* bf16 inference: the products on bfloat16 weights (kernels/gemv_bf16.h) against
 * float64 with bounds derived from the roundings, the same bits in every
 * instruction set, and the language model's bf16 key-value cache against its
 * float32 one.
 *
 * The bounds. Rounding to bfloat16 (8 significant bits, to nearest) changes a
 * value by at most u |x|, u = 2^-8. A product of two rounded values is exact in
 * float32 (16 significant bits at most); the k products of a dot product are
 * added in float32, k additions each rounding by at most 2^-24, so with
 * gamma_k = k 2^-24 / (1 - k 2^-24) (Higham, Accuracy and Stability of Numerical
 * Algorithms, 3.1):
 *   |y - x'.w'| <= gamma_k sum_p |x'_p w'_p|        against float64 on the rounded
 *   |y - x.w|   <= (2u + u^2) sum_p |x_p w_p| + gamma_k sum_p |x'_p w'_p|
 *                                                    against the unrounded values.
 * The model's logits cross, per block, four Linears (input and weight rounded)
 * and attention (q, k, v and P rounded), then lm_head: R = 12 L + 2 roundings of
 * at most u each. To first order the logits move by at most R u times the scale
 * of the terms summed, which LayerNorm keeps near the logits' own, so they are
 * held to R u relative to their largest value, the bound of mixed-precision
 * training's test (test_gpt.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/bf16.h"
#include "kernels/gemv_bf16.h"
#include "kernels/isa.h"
#include "models/gpt_impl.h"
#include "testutil.h"

static const attn_isa *const all_variants[] = {&attn_isa_avx512bf16, &attn_isa_avx512,
                                              &attn_isa_avx2, &attn_isa_scalar};
enum { VARIANTS = sizeof all_variants / sizeof all_variants[0] };

static const double U = 1.0 / 256.0;

static double gamma_k(int k)
{
    const double e = (double)k * ldexp(1.0, -24);
    return e / (1.0 - e);
}

static uint16_t *rounded(const float *x, size_t n)
{
    uint16_t *r = malloc(n * sizeof *r);
    attn_bf16_from_float(r, x, n);
    return r;
}

/* Fresh shapes (k odd and even, with and without a tail past the 64-value lanes),
 * every variant's dot_rows_bf16 against float64 and against the scalar variant's
 * bits, and the threaded product against the kernel row by row. */
static void test_bf16_rows_within_bound(void **state)
{
    (void)state;
    for (int c = 0; c < 24; c++) {
        attn_rng rng = test_rng(100 + (uint64_t)c);
        const int k = 1 + (int)attn_rng_below(&rng, c < 12 ? 200 : 1600);
        const int n = 1 + (int)attn_rng_below(&rng, 40), m = 1 + (int)attn_rng_below(&rng, 6);
        float *x = test_random(&rng, (size_t)m * k, -1.0f, 1.0f);
        float *w = test_random(&rng, (size_t)n * k, -1.0f, 1.0f);
        uint16_t *x16 = rounded(x, (size_t)m * k), *w16 = rounded(w, (size_t)n * k);
        float *scalar = test_zeros((size_t)m * n), *y = test_zeros((size_t)m * n);
        for (int i = 0; i < m; i++)
            attn_isa_scalar.vec->dot_rows_bf16(scalar + (size_t)i * n, x16 + (size_t)i * k, w16,
                                               (size_t)k, n, k);
        for (int v = 0; v < VARIANTS; v++) {
            if (!all_variants[v]->supported()) continue;
            for (int i = 0; i < m; i++)
                all_variants[v]->vec->dot_rows_bf16(y + (size_t)i * n, x16 + (size_t)i * k, w16,
                                                    (size_t)k, n, k);
            if (memcmp(y, scalar, (size_t)m * n * sizeof *y) != 0)
                fail_msg("seed %llu: %s's bf16 dot products differ from the scalar variant's "
                         "bits (k %d)", (unsigned long long)rng.seed, all_variants[v]->name, k);
        }
        /* The threaded product, accumulating onto 1, gives the kernel's bits + 1. */
        for (size_t i = 0; i < (size_t)m * n; i++) y[i] = 1.0f;
        assert_int_equal(attn_bf16_weights_product(y, x16, w16, m, n, k, true), ATTN_OK);
        for (size_t i = 0; i < (size_t)m * n; i++) assert_true(y[i] == 1.0f + scalar[i]);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double exact_rounded = 0.0, exact = 0.0, abs_rounded = 0.0, abs_exact = 0.0;
                for (int p = 0; p < k; p++) {
                    const double a = attn_bf16_widen(x16[(size_t)i * k + p]);
                    const double b = attn_bf16_widen(w16[(size_t)j * k + p]);
                    const double xa = x[(size_t)i * k + p], wb = w[(size_t)j * k + p];
                    exact_rounded += a * b;
                    abs_rounded += fabs(a * b);
                    exact += xa * wb;
                    abs_exact += fabs(xa * wb);
                }
                const double got = scalar[(size_t)i * n + j];
                const double bound_rounded = gamma_k(k) * abs_rounded;
                const double bound = (2 * U + U * U) * abs_exact + bound_rounded;
                if (fabs(got - exact_rounded) > bound_rounded || fabs(got - exact) > bound)
                    fail_msg("seed %llu: k %d: %.9g vs %.9g on the rounded values (bound %.3g), "
                             "%.9g unrounded (bound %.3g)", (unsigned long long)rng.seed, k, got,
                             exact_rounded, bound_rounded, exact, bound);
            }
        free(x);
        free(w);
        free(x16);
        free(w16);
        free(scalar);
        free(y);
    }
}

static int32_t *random_ids(attn_rng *rng, size_t n, int V)
{
    int32_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)attn_rng_below(rng, (uint32_t)V);
    return ids;
}

/* The logits of ids: (T), the first `prefill` in one call and then one token per
 * call, through a cache at `precision` -> logits: (T, V). */
static void cache_logits(attn_gpt *m, attn_precision precision, const int32_t *ids, int T,
                         int prefill, float *logits)
{
    const int V = attn_gpt_get_config(m)->vocab_size;
    attn_gpt_cache *c;
    assert_int_equal(attn_gpt_cache_create_at(&c, m, T, precision), ATTN_OK);
    assert_int_equal(attn_gpt_cache_forward(m, c, logits, ids, prefill), ATTN_OK);
    for (int t = prefill; t < T; t++)
        assert_int_equal(attn_gpt_cache_forward(m, c, logits + (size_t)t * V, ids + t, 1), ATTN_OK);
    assert_int_equal(attn_gpt_cache_length(c), T);
    attn_gpt_cache_free(c);
}

/* A model of the variant with a block long enough for prompts past
 * GPT_BF16_PRODUCT_ROWS. */
static attn_gpt *long_block_model(attn_rng *rng, int variant)
{
    attn_gpt_config cfg = test_gpt_variant(variant);
    cfg.block_size = 2 * GPT_BF16_PRODUCT_ROWS + 8;
    return test_gpt_random_config(rng, &cfg);
}

/* Every model variant (positions, grouped heads, windows, no biases, untied
 * head), a prompt shorter than GPT_BF16_PRODUCT_ROWS (its Linears as dot
 * products) and one as long or longer (as bf16 matrix products), then decoding:
 * the bf16 cache's logits within R u of float32's, and farther than float32's
 * own noise (it did round). Generation's pass (the last row alone past the last
 * block's attention) gives the last row's bits when the products run row by
 * row; over a long prompt the last block's Linears multiply one row where the
 * full pass multiplies the prompt's, in another order of float32 sums, which
 * can move a bf16 rounding: within R u as well. */
static void test_cache_bf16_near_float32(void **state)
{
    (void)state;
    for (int variant = 0; variant < TEST_GPT_VARIANTS; variant++)
        for (int longer = 0; longer < 2; longer++) {
            attn_rng rng = test_rng(300 + 2 * (uint64_t)variant + (uint64_t)longer);
            attn_gpt *m = long_block_model(&rng, variant);
            const attn_gpt_config cfg = *attn_gpt_get_config(m);
            const int T = cfg.block_size, V = cfg.vocab_size;
            const int prefill =
                longer ? GPT_BF16_PRODUCT_ROWS +
                             (int)attn_rng_below(&rng, (uint32_t)(T - GPT_BF16_PRODUCT_ROWS))
                       : 1 + (int)attn_rng_below(&rng, GPT_BF16_PRODUCT_ROWS - 1);
            int32_t *ids = random_ids(&rng, (size_t)T, V);
            const size_t n = (size_t)T * V;
            float *f32 = test_zeros(n), *b16 = test_zeros(n);
            cache_logits(m, ATTN_FLOAT32, ids, T, prefill, f32);
            cache_logits(m, ATTN_BF16, ids, T, prefill, b16);
            const double R = 12.0 * cfg.n_layer + 2.0, err = test_rel_error(b16, f32, n);
            if (!(err <= R * U) || !(err > 1e-5))
                fail_msg("seed %llu, variant %d, prompt %d: bf16 logits differ from float32's "
                         "by %.3g, not in (1e-5, R u = %.3g]",
                         (unsigned long long)rng.seed, variant, prefill, err, R * U);
            print_message("variant %d, prompt %d: bf16 cache vs float32: logits %.2e (bound R u "
                          "= %.2e)\n",
                          variant, prefill, err, R * U);
            assert_true(attn_gpt_cache_bytes(m, T, ATTN_BF16) * 2 ==
                        attn_gpt_cache_bytes(m, T, ATTN_FLOAT32));
            attn_gpt_cache *c;
            float *last = test_zeros((size_t)V);
            const float *full_last = b16 + (size_t)(prefill - 1) * V;
            assert_int_equal(attn_gpt_cache_create_at(&c, m, T, ATTN_BF16), ATTN_OK);
            assert_int_equal(attn_gpt_cache_forward_last(m, c, last, ids, prefill), ATTN_OK);
            if (prefill < GPT_BF16_PRODUCT_ROWS) {
                assert_memory_equal(last, full_last, (size_t)V * sizeof *last);
            } else {
                const double moved = test_rel_error(last, full_last, (size_t)V);
                print_message("  last-row pass against the full pass: %.2e\n", moved);
                if (!(moved <= R * U))
                    fail_msg("seed %llu, variant %d, prompt %d: the last-row pass moved the "
                             "logits by %.3g > R u = %.3g",
                             (unsigned long long)rng.seed, variant, prefill, moved, R * U);
            }
            attn_gpt_cache_free(c);
            free(last);
            free(ids);
            free(f32);
            free(b16);
            attn_gpt_free(m);
        }
}

/* Generation in bf16 runs through the cache; without it, and with a value that is
 * no precision, it fails saying so; recording needs float32. */
static void test_generate_bf16_options(void **state)
{
    (void)state;
    attn_rng rng = test_rng(500);
    attn_gpt_config cfg = test_gpt_variant(0);
    attn_gpt *m;
    assert_int_equal(attn_gpt_create(&m, &cfg, rng.seed), ATTN_OK);
    const int32_t prompt[] = {1, 2, 3};
    int32_t out[20];
    int produced = 0;
    attn_generate_options opt = {.n_new = 20,
                                 .sampling = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f},
                                 .use_cache = true,
                                 .precision = ATTN_BF16};
    assert_int_equal(attn_gpt_generate(m, out, &produced, prompt, 3, &opt), ATTN_OK);
    assert_int_equal(produced, 20);
    opt.use_cache = false;
    assert_int_equal(attn_gpt_generate(m, out, &produced, prompt, 3, &opt), ATTN_ERR_UNSUPPORTED);
    assert_non_null(strstr(attn_last_error(), "float32 only"));
    opt.use_cache = true;
    opt.precision = (attn_precision)7;
    test_expect_invalid(attn_gpt_generate(m, out, &produced, prompt, 3, &opt), "precision 7");
    attn_gpt_cache *c;
    test_expect_invalid(attn_gpt_cache_create_at(&c, m, 4, (attn_precision)-1), "precision -1");
    assert_int_equal(attn_gpt_cache_bytes(NULL, 4, ATTN_BF16), 0);
    attn_gpt_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_rows_within_bound),
        cmocka_unit_test(test_cache_bf16_near_float32),
        cmocka_unit_test(test_generate_bf16_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
