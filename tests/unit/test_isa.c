/* The run-time instruction-set dispatch (src/kernels/isa.c) and the elementwise
 * vector kernels (src/kernels/vec*.h): how ATTN_SIMD picks a variant, and that
 * every variant this CPU runs gives the scalar variant's bits for every loop
 * (floating-point contraction is off, so vectorising must not change a result).
 * Also the one tanh of the library against double precision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/lane_math.h"
#include "testutil.h"

#define TANH_ULP_LIMIT 1.5

static const attn_isa *const all_variants[] = {&attn_isa_avx512bf16, &attn_isa_avx512,
                                              &attn_isa_avx2, &attn_isa_scalar};
enum { VARIANTS = sizeof all_variants / sizeof all_variants[0] };

/* ---- the choice ------------------------------------------------------------------ */

static void test_select_names_each_variant(void **state)
{
    (void)state;
    for (int v = 0; v < VARIANTS; v++) {
        const attn_isa *isa = NULL;
        attn_status s = attn_isa_select(&isa, all_variants[v]->name);
        if (!all_variants[v]->supported()) {
            assert_int_equal(s, ATTN_ERR_UNSUPPORTED);
            assert_non_null(strstr(attn_last_error(), all_variants[v]->name));
            continue;
        }
        assert_int_equal(s, ATTN_OK);
        assert_ptr_equal(isa, all_variants[v]);
        assert_non_null(isa->flash);
        assert_non_null(isa->vec);
    }
    const attn_isa *isa;
    assert_int_equal(attn_isa_select(&isa, "sse9"), ATTN_ERR_INVALID_ARGUMENT);
    assert_string_equal(attn_last_error(),
                        "ATTN_SIMD=sse9 is not one of avx512bf16, avx512, avx2, scalar");
    /* Unset or empty: the first variant, in order of preference, that runs. */
    for (int empty = 0; empty < 2; empty++) {
        assert_int_equal(attn_isa_select(&isa, empty ? "" : NULL), ATTN_OK);
        int best = 0;
        while (!all_variants[best]->supported()) best++;
        assert_ptr_equal(isa, all_variants[best]);
    }
    assert_true(attn_isa_scalar.supported());
}

/* The process's choice follows ATTN_SIMD as it was at the start. */
static void test_current_follows_the_environment(void **state)
{
    (void)state;
    const char *forced = getenv("ATTN_SIMD");
    const attn_isa *want, *got;
    attn_status s = attn_isa_select(&want, forced);
    assert_int_equal(attn_isa_current(&got), s);
    if (s == ATTN_OK) {
        assert_ptr_equal(got, want);
        assert_string_equal(attn_simd_variant(), want->name);
    } else {
        assert_non_null(strstr(attn_simd_variant(), "none"));
    }
    print_message("ATTN_SIMD=%s: %s\n", forced ? forced : "(unset)", attn_simd_variant());
}

/* ---- every variant gives the scalar variant's bits ----------------------------- */

/* Equal bits, or both NaN (a NaN's payload is not part of any contract). */
static void assert_same(const float *a, const float *b, size_t n, const char *what,
                        const char *variant)
{
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) && isnan(b[i])) continue;
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0)
            fail_msg("%s, %s: element %zu is %.9g, scalar gives %.9g", what, variant, i,
                     (double)a[i], (double)b[i]);
    }
}

static float *copy_of(const float *x, size_t n)
{
    float *y = malloc(n * sizeof *y);
    assert_non_null(y);
    memcpy(y, x, n * sizeof *y);
    return y;
}

/* Odd lengths, so that every vector loop's tail runs too. */
enum { N = 4099, B = 3, H = 45, S = 7, A = 37 };

/* N activation inputs over [-12, 12], the first ones special values. */
static float *activation_inputs(attn_rng *rng)
{
    float *x = test_random(rng, N, -12.0f, 12.0f);
    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e30f, -1e30f, 0.7f, -0.7f};
    memcpy(x, special, sizeof special);
    return x;
}

static void test_activations_agree(void **state)
{
    (void)state;
    attn_rng rng = test_rng(31);
    float *x = activation_inputs(&rng), *dy = test_random(&rng, N, -1.0f, 1.0f);
    const attn_activation kinds[] = {ATTN_ACT_RELU, ATTN_ACT_GELU, ATTN_ACT_GELU_TANH,
                                     ATTN_ACT_TANH};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        float *y0 = test_zeros(N), *dx0 = test_random(&rng, N, -1.0f, 1.0f);
        float *dx_start = copy_of(dx0, N);
        attn_isa_scalar.vec->activation_forward(kinds[k], y0, x, N);
        attn_isa_scalar.vec->activation_backward(kinds[k], dx0, dy, x, N);
        for (int v = 0; v < VARIANTS; v++) {
            if (!all_variants[v]->supported()) continue;
            float *y = test_zeros(N), *dx = copy_of(dx_start, N);
            all_variants[v]->vec->activation_forward(kinds[k], y, x, N);
            all_variants[v]->vec->activation_backward(kinds[k], dx, dy, x, N);
            assert_same(y, y0, N, attn_activation_name(kinds[k]), all_variants[v]->name);
            assert_same(dx, dx0, N, attn_activation_name(kinds[k]), all_variants[v]->name);
            free(y), free(dx);
        }
        free(y0), free(dx0), free(dx_start);
    }
    free(x), free(dy);
}

/* GELU with its slope gives activation_forward's values and, times dy,
 * activation_backward's gradient from 0, bit for bit, in every variant; the slope
 * may overwrite x. */
static void test_gelu_slope_agrees(void **state)
{
    (void)state;
    attn_rng rng = test_rng(37);
    float *x = activation_inputs(&rng), *dy = test_random(&rng, N, -1.0f, 1.0f);
    float *y0 = test_zeros(N), *dx0 = test_zeros(N);
    attn_isa_scalar.vec->activation_forward(ATTN_ACT_GELU, y0, x, N);
    attn_isa_scalar.vec->activation_backward(ATTN_ACT_GELU, dx0, dy, x, N);
    for (int v = 0; v < VARIANTS; v++) {
        if (!all_variants[v]->supported()) continue;
        const attn_vec_kernels *vec = all_variants[v]->vec;
        float *y = test_zeros(N), *slope = copy_of(x, N), *dx = test_random(&rng, N, -1, 1);
        vec->gelu_forward_slope(y, NULL, slope, slope, N); /* in place, as the GPT runs it */
        vec->gelu_backward_slope(dx, dy, slope, N);
        /* the bf16 output: y rounded */
        uint16_t *y16 = malloc(N * sizeof *y16), *want16 = malloc(N * sizeof *want16);
        float *slope_again = copy_of(x, N);
        assert_non_null(y16), assert_non_null(want16);
        vec->gelu_forward_slope(NULL, y16, slope_again, slope_again, N);
        attn_bf16_from_float(want16, y0, N);
        for (size_t i = 0; i < N; i++) {
            const bool both_nan = (y16[i] & 0x7fff) > 0x7f80 && (want16[i] & 0x7fff) > 0x7f80;
            if (!both_nan && y16[i] != want16[i])
                fail_msg("gelu in bf16, %s: element %zu is 0x%04x, the rounded value 0x%04x",
                         all_variants[v]->name, i, y16[i], want16[i]);
        }
        assert_same(slope_again, slope, N, "gelu slope beside bf16 values", all_variants[v]->name);
        free(y16), free(want16), free(slope_again);
        /* activation_backward added into zeros, which turns -0 into +0 */
        for (size_t i = 0; i < N; i++) dx[i] += 0.0f;
        assert_same(y, y0, N, "gelu with slope", all_variants[v]->name);
        assert_same(dx, dx0, N, "gelu backward from the slope", all_variants[v]->name);
        free(y), free(slope), free(dx);
    }
    free(x), free(dy), free(y0), free(dx0);
}

/* LayerNorm's rows: forward, the refined means and dx, dweight and dbias, with
 * and without an affine transform, the same bits in every variant. */
static void test_layernorm_rows_agree(void **state)
{
    (void)state;
    enum { ROWS = 5, D = 203 };
    attn_rng rng = test_rng(41);
    float *x = test_random(&rng, (size_t)ROWS * D, -3.0f, 5.0f);
    float *dy = test_random(&rng, (size_t)ROWS * D, -1.0f, 1.0f);
    float *w = test_random(&rng, D, 0.5f, 1.5f), *b = test_random(&rng, D, -1.0f, 1.0f);
    for (int affine = 0; affine < 2; affine++) {
        const float *wt = affine ? w : NULL, *bt = affine ? b : NULL;
        float *out[VARIANTS][5] = {{0}}; /* y, mean, rstd, dx, dweight ++ dbias */
        double mu[VARIANTS][ROWS];
        int first = -1;
        for (int v = 0; v < VARIANTS; v++) {
            if (!all_variants[v]->supported()) continue;
            const attn_vec_kernels *vec = all_variants[v]->vec;
            float *y = test_zeros((size_t)ROWS * D), *mean = test_zeros(ROWS),
                  *rstd = test_zeros(ROWS), *dx = test_zeros((size_t)ROWS * D),
                  *dwb = test_zeros(2 * D);
            for (int r = 0; r < ROWS; r++) {
                const size_t row = (size_t)r * D;
                vec->layernorm_row_forward(y + row, mean + r, rstd + r, x + row, wt, bt, D, 1e-5f);
                mu[v][r] = vec->layernorm_row_backward(dx + row, dy + row, x + row, wt, D, mean[r],
                                                       rstd[r]);
            }
            vec->layernorm_columns_backward(dwb, dwb + D, dy, x, mu[v], rstd, ROWS, D);
            float *kept[5] = {y, mean, rstd, dx, dwb};
            memcpy(out[v], kept, sizeof kept);
            if (first < 0) {
                first = v;
                continue;
            }
            const size_t sizes[5] = {(size_t)ROWS * D, ROWS, ROWS, (size_t)ROWS * D, 2 * D};
            static const char *const names[5] = {"layernorm y", "layernorm mean",
                                                 "layernorm rstd", "layernorm dx",
                                                 "layernorm dweight, dbias"};
            for (int o = 0; o < 5; o++)
                assert_same(out[v][o], out[first][o], sizes[o], names[o], all_variants[v]->name);
            assert_memory_equal(mu[v], mu[first], sizeof mu[v]);
        }
        for (int v = 0; v < VARIANTS; v++)
            for (int o = 0; o < 5; o++) free(out[v][o]);
    }
    free(x), free(dy), free(w), free(b);
}

/* One step of each cell kind, forward and backward, from the same inputs. */
typedef struct rnn_outputs {
    float *h_out, *c_out, *saved, *dgx, *dgh, *dh, *dc;
} rnn_outputs;

static rnn_outputs run_rnn_rows(const attn_vec_kernels *vec, attn_rnn_mode mode,
                                const float *saved_in, const float *gx, const float *h,
                                const float *c, const float *dh_out, const float *dc_out)
{
    const size_t GH = (size_t)attn_rnn_gates(mode) * H, SR = attn_rnn_cell_saved_size(mode, H);
    rnn_outputs o = {test_zeros((size_t)B * H), test_zeros((size_t)B * H),
                     copy_of(saved_in, B * SR), test_zeros(B * GH), test_zeros(B * GH),
                     test_zeros((size_t)B * H), test_zeros((size_t)B * H)};
    vec->rnn_rows_forward(mode, o.h_out, o.c_out, o.saved, gx, h, c, B, H, GH, SR);
    vec->rnn_rows_backward(mode, o.dgx, mode == ATTN_GRU ? o.dgh : o.dgx, o.dh, o.dc, dh_out,
                           dc_out, o.saved, h, c, B, H, GH, SR);
    return o;
}

static void free_rnn_outputs(rnn_outputs *o)
{
    free(o->h_out), free(o->c_out), free(o->saved), free(o->dgx), free(o->dgh), free(o->dh),
        free(o->dc);
}

static void test_rnn_rows_agree(void **state)
{
    (void)state;
    attn_rng rng = test_rng(32);
    const attn_rnn_mode modes[] = {ATTN_RNN_TANH, ATTN_RNN_RELU, ATTN_LSTM, ATTN_GRU};
    const size_t most = 5 * (size_t)H * B;
    float *saved = test_random(&rng, most, -3.0f, 3.0f), *gx = test_random(&rng, most, -3, 3);
    float *h = test_random(&rng, (size_t)B * H, -1, 1), *c = test_random(&rng, (size_t)B * H, -2, 2);
    float *dh_out = test_random(&rng, (size_t)B * H, -1, 1);
    float *dc_out = test_random(&rng, (size_t)B * H, -1, 1);
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        const size_t GH = (size_t)attn_rnn_gates(modes[m]) * H;
        rnn_outputs want =
            run_rnn_rows(attn_isa_scalar.vec, modes[m], saved, gx, h, c, dh_out, dc_out);
        for (int v = 0; v < VARIANTS; v++) {
            if (!all_variants[v]->supported()) continue;
            const char *name = all_variants[v]->name;
            rnn_outputs got =
                run_rnn_rows(all_variants[v]->vec, modes[m], saved, gx, h, c, dh_out, dc_out);
            assert_same(got.h_out, want.h_out, (size_t)B * H, "rnn h_out", name);
            assert_same(got.c_out, want.c_out, (size_t)B * H, "rnn c_out", name);
            assert_same(got.saved, want.saved, B * attn_rnn_cell_saved_size(modes[m], H),
                        "rnn saved", name);
            assert_same(got.dgx, want.dgx, B * GH, "rnn dgx", name);
            assert_same(got.dgh, want.dgh, B * GH, "rnn dgh", name);
            assert_same(got.dh, want.dh, (size_t)B * H, "rnn dh", name);
            assert_same(got.dc, want.dc, (size_t)B * H, "rnn dc", name);
            free_rnn_outputs(&got);
        }
        free_rnn_outputs(&want);
    }
    free(saved), free(gx), free(h), free(c), free(dh_out), free(dc_out);
}

static void test_adamw_agrees(void **state)
{
    (void)state;
    attn_rng rng = test_rng(33);
    float *p = test_random(&rng, N, -1, 1), *m = test_random(&rng, N, -0.1f, 0.1f);
    float *v = test_random(&rng, N, 0, 0.01f), *g = test_random(&rng, N, -1, 1);
    uint8_t *decay = malloc(N);
    assert_non_null(decay);
    for (int i = 0; i < N; i++) decay[i] = (uint8_t)(attn_rng_below(&rng, 2));
    const attn_adamw_scalars c = {0.999f, 0.9f, 0.999f, 0.1f, 0.001f, -0.003f, 0.05f, 1e-8f};
    for (int masked = 0; masked < 2; masked++) {
        float *p0 = copy_of(p, N), *m0 = copy_of(m, N), *v0 = copy_of(v, N);
        attn_isa_scalar.vec->adamw_update(p0, m0, v0, g, masked ? decay : NULL, N, &c);
        for (int k = 0; k < VARIANTS; k++) {
            if (!all_variants[k]->supported()) continue;
            float *p1 = copy_of(p, N), *m1 = copy_of(m, N), *v1 = copy_of(v, N);
            all_variants[k]->vec->adamw_update(p1, m1, v1, g, masked ? decay : NULL, N, &c);
            assert_same(p1, p0, N, "adamw params", all_variants[k]->name);
            assert_same(m1, m0, N, "adamw m", all_variants[k]->name);
            assert_same(v1, v0, N, "adamw v", all_variants[k]->name);
            free(p1), free(m1), free(v1);
        }
        free(p0), free(m0), free(v0);
    }
    free(p), free(m), free(v), free(g), free(decay);
}

static void test_additive_terms_agree(void **state)
{
    (void)state;
    attn_rng rng = test_rng(34);
    float *q = test_random(&rng, A, -2, 2), *keys = test_random(&rng, (size_t)S * A, -2, 2);
    float *vv = test_random(&rng, A, -1, 1), *ds = test_random(&rng, S, -1, 1);
    ds[2] = 0.0f; /* a masked position */
    const attn_vec_kernels *base = attn_isa_scalar.vec;
    float *u0 = test_zeros((size_t)S * A), *dq0 = test_zeros(A);
    float *dk0 = test_zeros((size_t)S * A), *dv0 = test_zeros(A), *s0 = test_zeros(S);
    base->additive_forward(u0, s0, q, keys, vv, S, A);
    base->additive_backward(dq0, dk0, ds, u0, vv, S, A);
    base->additive_v_gradient(dv0, ds, u0, S, A);
    for (int v = 0; v < VARIANTS; v++) {
        if (!all_variants[v]->supported()) continue;
        const attn_vec_kernels *vec = all_variants[v]->vec;
        float *u = test_zeros((size_t)S * A), *dq = test_zeros(A);
        float *dk = test_zeros((size_t)S * A), *dv = test_zeros(A), *sc = test_zeros(S);
        vec->additive_forward(u, sc, q, keys, vv, S, A);
        vec->additive_backward(dq, dk, ds, u, vv, S, A);
        vec->additive_v_gradient(dv, ds, u, S, A);
        assert_same(u, u0, (size_t)S * A, "additive u", all_variants[v]->name);
        assert_same(sc, s0, S, "additive scores", all_variants[v]->name);
        assert_same(dq, dq0, A, "additive dq", all_variants[v]->name);
        assert_same(dk, dk0, (size_t)S * A, "additive dkeys", all_variants[v]->name);
        assert_same(dv, dv0, A, "additive dv", all_variants[v]->name);
        free(u), free(dq), free(dk), free(dv), free(sc);
    }
    free(q), free(keys), free(vv), free(ds), free(u0), free(dq0), free(dk0), free(dv0), free(s0);
}

/* ---- the one tanh ----------------------------------------------------------------- */

/* Every variant's dropout keeps what attn_uniform_at draws, element by element,
 * at any start and length (the runs of dropout layers and the attention kernels'
 * rows share its draws), counters whose low word wraps included, and adds into
 * out when asked. */
static void test_dropout_matches_uniform_at(void **state)
{
    (void)state;
    attn_rng rng = test_rng(34);
    enum { MOST = 600 };
    float in[MOST], out[MOST], sums[MOST];
    for (int i = 0; i < MOST; i++) in[i] = attn_rng_uniform(&rng) + 0.5f;
    for (int trial = 0; trial < 200; trial++) {
        const uint64_t seed = ((uint64_t)attn_rng_u32(&rng) << 32) | attn_rng_u32(&rng);
        uint64_t first = ((uint64_t)attn_rng_u32(&rng) << 20) + attn_rng_below(&rng, 64);
        if (trial % 10 == 0) first = (0xffffffffull << 2) - attn_rng_below(&rng, 200);
        const size_t n = attn_rng_below(&rng, MOST) + 1;
        const float p = attn_rng_uniform(&rng), scale = 1.0f / (1.0f - p);
        for (int k = 0; k < VARIANTS; k++) {
            if (!all_variants[k]->supported()) continue;
            all_variants[k]->vec->dropout_run(out, in, n, seed, first, p, scale, false);
            for (size_t i = 0; i < n; i++) sums[i] = 1.0f;
            all_variants[k]->vec->dropout_run(sums, in, n, seed, first, p, scale, true);
            for (size_t i = 0; i < n; i++) {
                const float kept = attn_uniform_at(seed, first + i) < p ? 0.0f : in[i] * scale;
                if (out[i] != kept || sums[i] != 1.0f + kept)
                    fail_msg("%s: element %zu of %zu from %llu (seed %llu, p %g): %g, not %g",
                             all_variants[k]->name, i, n, (unsigned long long)first,
                             (unsigned long long)seed, (double)p, (double)out[i], (double)kept);
            }
        }
    }
}

static void test_tanh_accuracy(void **state)
{
    (void)state;
    enum { STEPS = 600001 };
    double worst = 0.0;
    for (int i = 0; i < STEPS; i++) {
        const float x = -30.0f + 60.0f * (float)i / (STEPS - 1);
        const double want = tanh((double)x);
        int exponent;
        frexp(want, &exponent);
        const double ulp = want == 0.0 ? 1e-45 : ldexp(1.0, exponent - 24);
        const double err = fabs((double)lane_tanh(x) - want) / ulp;
        if (err > worst) worst = err;
    }
    print_message("tanh: max error %.2f ulp\n", worst);
    assert_true(worst <= TANH_ULP_LIMIT);
    assert_true(lane_tanh(INFINITY) == 1.0f && lane_tanh(-INFINITY) == -1.0f);
    assert_true(isnan(lane_tanh(NAN)));
    assert_true(lane_tanh(0.0f) == 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_names_each_variant),
        cmocka_unit_test(test_current_follows_the_environment),
        cmocka_unit_test(test_activations_agree),
        cmocka_unit_test(test_gelu_slope_agrees),
        cmocka_unit_test(test_layernorm_rows_agree),
        cmocka_unit_test(test_rnn_rows_agree),
        cmocka_unit_test(test_adamw_agrees),
        cmocka_unit_test(test_additive_terms_agree),
        cmocka_unit_test(test_dropout_matches_uniform_at),
        cmocka_unit_test(test_tanh_accuracy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
