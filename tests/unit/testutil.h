/* Shared helpers of the unit tests: random inputs with a printed seed, and
 * finite-difference gradient checks. */
#ifndef ATTN_TESTUTIL_H
#define ATTN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "attn/attn.h"

/* The seed of this test run: ATTN_TEST_SEED if set, else fresh from the clock.
 * Printed once, so that a failing run can be repeated. */
uint64_t test_seed(void);

/* A generator for one case: derived from test_seed() and the case number. */
attn_rng test_rng(uint64_t case_number);

/* n floats uniform in [lo, hi), freshly allocated (free with free()). */
float *test_random(attn_rng *rng, size_t n, float lo, float hi);
/* n zeroed floats, freshly allocated. */
float *test_zeros(size_t n);

/* max |a - b| / max |b| (0 when both are all zero): the error measure of every
 * comparison in the tests, relative to the scale of the reference tensor. */
double test_rel_error(const float *a, const float *b, size_t n);
double test_rel_error_f64(const float *a, const double *b, size_t n);

/* Finite-difference gradient check. `loss` recomputes the forward pass and
 * returns sum(output * probe) accumulated in float64 (probe is a fixed random
 * tensor the caller keeps in ctx). For each of the n entries of x it takes the
 * fourth-order central difference
 *   (-L(x+2h) + 8 L(x+h) - 8 L(x-h) + L(x-2h)) / 12h
 * and returns max |fd - analytic| / max(max |analytic|, 1e-6). The forward runs in
 * float32, so the result carries rounding noise of about 1e-7 |L| / h; checks
 * hold it to 1e-3 with h = 1e-2 on inputs of order 1. */
double test_gradcheck(float *x, size_t n, const float *analytic, double (*loss)(void *ctx),
                      void *ctx, float h);

/* Asserts that status is ATTN_ERR_INVALID_ARGUMENT and that attn_last_error()
 * contains fragment (the argument it must name), printing both if not. */
void test_expect_invalid(attn_status status, const char *fragment);

/* Asserts that p has a parameter `name` shaped (rows) if cols is 0, else
 * (rows, cols). */
void test_expect_param(attn_params *p, const char *name, int64_t rows, int64_t cols);
/* The number of floats p's parameters hold, layout padding not counted. */
int64_t test_params_numel(const attn_params *p);

/* Small language models (vocabulary 11, block 12, 2 layers) covering every
 * position kind, grouped- and multi-query attention, sliding windows, untied
 * weights and no biases: variant 0 .. TEST_GPT_VARIANTS - 1. */
enum { TEST_GPT_VARIANTS = 6 };
attn_gpt_config test_gpt_variant(int variant);

/* A model of cfg created with rng's seed, its parameters uniform in [-0.5, 0.5):
 * weights large enough that every path of the model shows. */
attn_gpt *test_gpt_random_config(attn_rng *rng, const attn_gpt_config *cfg);

/* test_gpt_random_config of test_gpt_variant(variant). */
attn_gpt *test_gpt_random(attn_rng *rng, int variant);

/* A small encoder-decoder of arch and kind (vocabularies 9 and 8, sources up to
 * 9 tokens, outputs up to 7, width 8, 2 heads, 1 or 2 layers each side drawn from
 * rng), its parameters uniform in [-1, 1). */
attn_seq2seq *test_seq2seq_random(attn_rng *rng, attn_seq2seq_arch arch, attn_attention_kind kind,
                                  float dropout);

/* A fresh directory /tmp/attn_test_<name>_XXXXXX (free with test_temp_dir_remove,
 * which removes it with the files in it). */
char *test_temp_dir(const char *name);
void test_temp_dir_remove(char *dir);

/* sum(out * probe) in float64, for writing `loss` callbacks. */
double test_dot(const float *out, const float *probe, size_t n);

#endif
