/* Status messages, the Philox generator, threads, CPU features, GEMM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/philox.h"
#include "kernels/isa.h"
#include "testutil.h"

static void test_error_message_names_value(void **state)
{
    (void)state;
    attn_clear_error();
    assert_string_equal(attn_last_error(), "");
    attn_status s = attn_check_at_least(-3, 1, "heads");
    assert_int_equal(s, ATTN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(attn_last_error(), "heads is -3"));
    assert_int_equal(attn_check_not_null(NULL, "q"), ATTN_ERR_INVALID_ARGUMENT);
    assert_string_equal(attn_last_error(), "q is NULL");
    assert_string_equal(attn_status_string(ATTN_ERR_FORMAT), "malformed file");
}

/* Known-answer values of Philox4x32-10 from the Random123 distribution's kat_vectors. */
static void test_philox_known_answers(void **state)
{
    (void)state;
    uint32_t out[4];
    attn_philox4x32(out, 0, 0, 0);
    assert_int_equal(out[0], 0x6627e8d5u);
    assert_int_equal(out[1], 0xe169c58du);
    assert_int_equal(out[2], 0xbc57ac4cu);
    assert_int_equal(out[3], 0x9b00dbd8u);
    attn_philox4x32(out, 0xffffffffffffffffull, 0xffffffffffffffffull, 0xffffffffffffffffull);
    assert_int_equal(out[0], 0x408f276du);
    assert_int_equal(out[1], 0x41c83b0eu);
    assert_int_equal(out[2], 0xa20bc7c6u);
    assert_int_equal(out[3], 0x6d5451fdu);
}

static void test_streams_match_index_access(void **state)
{
    (void)state;
    uint64_t seed = test_seed();
    attn_rng rng;
    attn_rng_init(&rng, seed);
    double sum = 0.0;
    for (uint64_t i = 0; i < 10000; i++) {
        float u = attn_rng_uniform(&rng);
        assert_true(u == attn_uniform_at(seed, i));
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
    }
    assert_true(fabs(sum / 10000.0 - 0.5) < 0.02);
    for (int i = 0; i < 1000; i++) assert_true(attn_rng_below(&rng, 7) < 7);
    double mean = 0.0, sq = 0.0;
    for (int i = 0; i < 20000; i++) {
        double x = attn_rng_normal(&rng);
        assert_true(isfinite(x));
        mean += x;
        sq += x * x;
    }
    mean /= 20000.0;
    assert_true(fabs(mean) < 0.05);
    assert_true(fabs(sq / 20000.0 - 1.0) < 0.05);
}

static void test_threads(void **state)
{
    (void)state;
    assert_true(attn_get_num_threads() >= 1);
    assert_int_equal(attn_set_num_threads(0), ATTN_ERR_INVALID_ARGUMENT);
    assert_int_equal(attn_set_num_threads(2), ATTN_OK);
    assert_int_equal(attn_get_num_threads(), 2);
}

static void test_cpu_describe(void **state)
{
    (void)state;
    attn_cpu_features f = attn_cpu_detect();
    char buf[256];
    attn_cpu_describe(&f, buf, sizeof buf);
    if (f.avx512f) assert_non_null(strstr(buf, "avx512f"));
    if (f.avx2) assert_true(f.avx);
    char tiny[4];
    attn_cpu_describe(&f, tiny, sizeof tiny);
    assert_true(strlen(tiny) < sizeof tiny);
}

/* attn_utf8_char: the one decoder behind validation, the text vocabularies and
 * the tool's output, at the edges RFC 3629 draws. */
static void test_utf8_char(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t n;
        int len;
        uint32_t cp;
    } cases[] = {
        {"a", 1, 1, 0x61},
        {"", 1, 1, 0},                  /* NUL is a character */
        {"\x7f", 1, 1, 0x7f},
        {"\xc2\x80", 2, 2, 0x80},
        {"\xdf\xbf", 2, 2, 0x7ff},
        {"\xe0\xa0\x80", 3, 3, 0x800},
        {"\xe2\x86\x92", 3, 3, 0x2192},
        {"\xef\xbf\xbf", 3, 3, 0xffff},
        {"\xf0\x90\x80\x80", 4, 4, 0x10000},
        {"\xf4\x8f\xbf\xbf", 4, 4, 0x10ffff},
        {"\xe2\x86\x92", 2, 0, 0},      /* cut short by n */
        {"\xc2", 1, 0, 0},
        {"a", 0, 0, 0},
        {"\x80", 1, 0, 0},              /* a stray continuation byte */
        {"\xc0\x80", 2, 0, 0},          /* overlong */
        {"\xc1\xbf", 2, 0, 0},
        {"\xe0\x9f\xbf", 3, 0, 0},
        {"\xf0\x8f\xbf\xbf", 4, 0, 0},
        {"\xed\xa0\x80", 3, 0, 0},      /* a surrogate */
        {"\xf4\x90\x80\x80", 4, 0, 0},  /* past U+10FFFF */
        {"\xf5\x80\x80\x80", 4, 0, 0},
        {"\xe2\x28\x92", 3, 0, 0},      /* not a continuation byte */
        {"\xe2\x86\x28", 3, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t cp = 0xdead;
        int len = attn_utf8_char(cases[i].bytes, cases[i].n, &cp);
        if (len != cases[i].len || (len > 0 && cp != cases[i].cp))
            print_error("case %zu: length %d, U+%04X; expected %d, U+%04X\n", i, len,
                        (unsigned)cp, cases[i].len, (unsigned)cases[i].cp);
        assert_int_equal(len, cases[i].len);
        assert_int_equal(attn_utf8_char(cases[i].bytes, cases[i].n, NULL), cases[i].len);
    }
}

static void test_gemm_matches_reference(void **state)
{
    (void)state;
    for (int c = 0; c < 40; c++) {
        attn_rng rng = test_rng((uint64_t)c);
        int m = 1 + (int)attn_rng_below(&rng, 70), n = 1 + (int)attn_rng_below(&rng, 70);
        int k = 1 + (int)attn_rng_below(&rng, 130);
        bool ta = attn_rng_below(&rng, 2), tb = attn_rng_below(&rng, 2);
        float alpha = attn_rng_uniform(&rng) + 0.5f, beta = (float)attn_rng_below(&rng, 2);
        float *a = test_random(&rng, (size_t)m * k, -1, 1);
        float *b = test_random(&rng, (size_t)k * n, -1, 1);
        float *c1 = test_random(&rng, (size_t)m * n, -1, 1);
        float *c2 = malloc((size_t)m * n * sizeof *c2);
        memcpy(c2, c1, (size_t)m * n * sizeof *c2);
        int lda = ta ? m : k, ldb = tb ? k : n;
        attn_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, n);
        attn_sgemm_reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c2, n);
        double err = test_rel_error(c1, c2, (size_t)m * n);
        if (err > 1e-5) print_error("case %d m=%d n=%d k=%d err %g\n", c, m, n, k, err);
        assert_true(err <= 1e-5);
        free(a), free(b), free(c1), free(c2);
    }
    assert_non_null(attn_gemm_backend());
}

/* The same product on 1 and 2 threads gives the same bits, single rows and
 * columns (which the GEMM backend would split over k) included. */
static void test_sgemm_bits_do_not_depend_on_threads(void **state)
{
    (void)state;
    static const int shapes[][3] = {{1, 96, 256}, {96, 1, 256}, {1, 1, 300}, {64, 192, 64},
                                    {192, 64, 1920}, {13, 64, 1920}};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t >> 1;
            int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            attn_rng rng = test_rng((uint64_t)(4 * s + t));
            float *a = test_random(&rng, (size_t)m * k, -1, 1);
            float *b = test_random(&rng, (size_t)k * n, -1, 1);
            float *one = test_zeros((size_t)m * n), *two = test_zeros((size_t)m * n);
            int lda = ta ? m : k, ldb = tb ? k : n;
            assert_int_equal(attn_set_num_threads(1), ATTN_OK);
            attn_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, one, n);
            assert_int_equal(attn_set_num_threads(2), ATTN_OK);
            attn_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, two, n);
            if (memcmp(one, two, (size_t)m * n * sizeof *one) != 0)
                fail_msg("m %d n %d k %d trans_a %d trans_b %d: 1 and 2 threads differ", m, n, k,
                         ta, tb);
            free(a);
            free(b);
            free(one);
            free(two);
        }
}

/* Decoding's float32 dot products (vec.h's dot_rows: attn_sgemm's few-rows path)
 * give the scalar variant's bits in every instruction set, for n not a multiple
 * of 4, strided rows and k with and without a tail past the 64 lanes; and each is within gamma_k sum_p |x_p w_p| of float64, gamma_k =
 * k 2^-24 / (1 - k 2^-24) for the k products and k additions rounded to float32
 * (Higham 3.1; 2k roundings, so gamma_2k). */
static void test_dot_rows_same_bits_in_every_variant(void **state)
{
    (void)state;
    static const attn_isa *const variants[] = {&attn_isa_avx512bf16, &attn_isa_avx512,
                                               &attn_isa_avx2, &attn_isa_scalar};
    for (int c = 0; c < 24; c++) {
        attn_rng rng = test_rng(200 + (uint64_t)c);
        const int k = 1 + (int)attn_rng_below(&rng, c < 12 ? 200 : 1600);
        const int n = 1 + (int)attn_rng_below(&rng, 40);
        const size_t ldw = (size_t)k + attn_rng_below(&rng, 3);
        float *x = test_random(&rng, (size_t)k, -1.0f, 1.0f);
        float *w = test_random(&rng, (size_t)n * ldw, -1.0f, 1.0f);
        float *scalar = test_zeros((size_t)n), *y = test_zeros((size_t)n);
        attn_isa_scalar.vec->dot_rows(scalar, x, w, ldw, n, k);
        for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
            if (!variants[v]->supported()) continue;
            variants[v]->vec->dot_rows(y, x, w, ldw, n, k);
            if (memcmp(y, scalar, (size_t)n * sizeof *y) != 0)
                fail_msg("seed %llu: %s's dot products differ from the scalar variant's bits "
                         "(n %d, k %d)", (unsigned long long)rng.seed, variants[v]->name, n, k);
        }
        const double e = 2.0 * k * ldexp(1.0, -24), gamma = e / (1.0 - e);
        for (int j = 0; j < n; j++) {
            double exact = 0.0, magnitude = 0.0;
            for (int p = 0; p < k; p++) {
                exact += (double)x[p] * w[(size_t)j * ldw + p];
                magnitude += fabs((double)x[p] * w[(size_t)j * ldw + p]);
            }
            if (fabs(scalar[j] - exact) > gamma * magnitude)
                fail_msg("seed %llu: k %d: %.9g vs %.9g (bound %.3g)", (unsigned long long)rng.seed,
                         k, scalar[j], exact, gamma * magnitude);
        }
        free(x);
        free(w);
        free(scalar);
        free(y);
    }
}

/* The version a binding checks, and the sizes of the structs it mirrors. */
static void test_version_and_struct_sizes(void **state)
{
    (void)state;
    assert_string_equal(attn_version(), ATTN_VERSION_STRING);
    assert_int_equal(attn_struct_size("attn_sdpa_config"), sizeof(attn_sdpa_config));
    assert_int_equal(attn_struct_size("attn_record"), sizeof(attn_record));
    assert_int_equal(attn_struct_size("attn_text_vocab"), sizeof(attn_text_vocab));
    assert_int_equal(attn_struct_size("attn_no_such_struct"), 0);
    assert_int_equal(attn_struct_size(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_message_names_value),
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_streams_match_index_access),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_cpu_describe),
        cmocka_unit_test(test_utf8_char),
        cmocka_unit_test(test_gemm_matches_reference),
        cmocka_unit_test(test_sgemm_bits_do_not_depend_on_threads),
        cmocka_unit_test(test_dot_rows_same_bits_in_every_variant),
        cmocka_unit_test(test_version_and_struct_sizes),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
