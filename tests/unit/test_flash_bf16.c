/* The fused attention kernels on bfloat16 inputs (src/kernels/flash_bf16_impl.h,
 * attn_sdpa_bf16_forward / _backward) against attention computed in float64, on
 * fresh random cases each run (the seed is printed; ATTN_TEST_SEED repeats it),
 * with every mask kind of the float32 kernel, windows, ALiBi, query offsets and
 * dropout, for every instruction-set variant this CPU runs.
 *
 * Two references, both float64:
 *  - on the bf16-rounded inputs (q^, k^, v^, dout^ widened): the kernel's own error;
 *  - on the original float32 inputs: the kernel's error plus the inputs' rounding.
 * The bounds (u = 2^-8 bf16's unit roundoff, u32 = 2^-24, g(n) = n u32 / (1 - n u32)
 * the bound of a float32 sum of n terms; P the exact probabilities, times dropout's
 * factor z where it applies):
 *   score error     E_i = g(D + 2) S_i + 4 u32 M_i, S_i = scale max_j sum_d |q_id k_jd|
 *                   (float32 sums over D), M_i = max_j (|s_ij| + |bias_ij|)
 *                   (the bias, masks and max subtracted in float32);
 *                   from the original inputs E_i + (2u + u^2) S_i as well;
 *   probabilities   |P~ - P| <= (e^{2E} - 1) P: every score off by at most E;
 *   out             |out - ref| <= [(1 + u)(e^{2E} - 1) + u + 2 g(n_L) + 2 e_exp]
 *                                  sum_j P_ij |v_jc|
 *                   u: P rounded to bf16 before P v; n_L = Lk + 3 ceil(Lk / 64) + 8
 *                   (the sums l and P v, a rescale per key block, and division);
 *                   e_exp = 2^-17 the bf16 kernels' exponential's relative error
 *                   (lane_exp_bf16), in each p of the sum l and of P v (a rescale
 *                   factor's scales both alike);
 *                   from the original inputs (1 + u)^2 (e^{2E} - 1) + 2u + u^2 + 2 g(n_L)
 *                   + 2 e_exp (v's rounding too);
 *   gradients       with e_P = (e^{2E} - 1) + 2 g(n_L) + 2 e_exp,
 *                   e_dP = g(Dv) (+ 2u + u^2 from the inputs), W_ij = z_ij dP_ij:
 *                   |dS~ - dS|_ij <= P_ij [e_P (|W_ij| + |delta_i|) + z_ij e_dP T_ij + e_delta_i],
 *                   T_ij = sum_c |dout_ic v_jc|,
 *                   e_delta_i = e_P sum_j P_ij |W_ij| + e_dP sum_j P_ij z_ij T_ij;
 *                   dq_ic: scale sum_j (|dS~ - dS|_ij + e_L |dS_ij|) |k_jc|, e_L = g(Lk + 2) + u
 *                   (u: dS rounded to bf16 before dS k; + u more from the inputs), dk
 *                   likewise over i with q and e_L = g(Lq + 2) + u, dv_jc:
 *                   (e_P + e_L) sum_i P_ij z_ij |dout_ic| (u: P' rounded before P'^T dout).
 * Every element is held to its own bound (plus u32 of its value for the output's
 * rounding, and 2^-100 for float32's underflow, see UNDERFLOW); the failure message names the element, both values and the bound.
 * The largest error / bound seen is printed.
 *
 * Also: the exponential within e_exp; conversion to bf16 (rounding to nearest
 * even, NaN, overflow); the same bits from 1 and 2 threads, and from the AVX-512
 * variant (products widened) and the AVX512_BF16 one (vdpbf16ps) when both run;
 * and the same forward bits with v given laid out as pairs of rows
 * (attn_flash_bf16_forward_pairs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/flash.h"
#include "kernels/isa.h"
#include "testutil.h"

static const attn_isa *const all_variants[] = {&attn_isa_avx512bf16, &attn_isa_avx512,
                                              &attn_isa_avx2, &attn_isa_scalar};
enum { VARIANTS = sizeof all_variants / sizeof all_variants[0] };

static const double U = 0x1p-8, U32 = 0x1p-24;

static double gamma_n(double n) { return n * U32 / (1.0 - n * U32); }

/* The relative error of the bf16 kernels' exponential (lane_exp_bf16, simd.h's
 * vf_exp_bf16) on [ln(FLT_MIN), 0], held by test_exp_within_bound. */
static const double EXP_ERROR = 0x1p-17;

/* ---- the exponential ------------------------------------------------------------- */

/* Every variant's vf_exp_bf16 against exp() in float64 over the shifted scores'
 * range, 0 below ln(FLT_MIN) (and for -inf, a masked score), NaN kept. */
static void test_exp_within_bound(void **state)
{
    (void)state;
    enum { N = 400003 };
    const float lowest = -87.33f; /* just above ln(FLT_MIN) */
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (int i = 0; i < N; i++) x[i] = lowest - lowest * (float)i / (N - 1);
    for (int v = 0; v < VARIANTS; v++) {
        const attn_isa *kern = all_variants[v];
        if (!kern->supported()) continue;
        kern->flash->exp_bf16(y, x, N);
        double worst = 0.0;
        for (int i = 0; i < N; i++) {
            const double want = exp((double)x[i]), err = fabs(y[i] - want) / want;
            if (!(err <= EXP_ERROR))
                fail_msg("%s: exp(%.9g) = %.9g, relative error %.3g > 2^-17", kern->name,
                         (double)x[i], (double)y[i], err);
            if (err > worst) worst = err;
        }
        print_message("bf16 exp %s: max relative error %.3g (2^%.2f)\n", kern->name, worst,
                      log2(worst));
        const float special[] = {-INFINITY, -1000.0f, -88.0f, 0.0f, NAN};
        float got[5];
        kern->flash->exp_bf16(got, special, 5);
        assert_true(got[0] == 0.0f && got[1] == 0.0f && got[2] == 0.0f);
        assert_true(got[3] == 1.0f);
        assert_true(isnan(got[4]));
    }
    free(x);
    free(y);
}

/* ---- conversion ------------------------------------------------------------------ */

static float from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void test_conversion_rounds_to_nearest_even(void **state)
{
    (void)state;
    const float in[] = {1.0f,
                        from_bits(0x3f808000u), /* 1 + 2^-8, a tie: down to even 1 */
                        from_bits(0x3f818000u), /* 1 + 3 2^-8, a tie: up to even */
                        from_bits(0x3f808001u), /* just past the tie: up */
                        -0.0f,
                        INFINITY,
                        3.4028235e38f, /* rounds past the largest bf16 */
                        from_bits(0x00010000u), /* a subnormal, kept */
                        NAN};
    const uint16_t want[] = {0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x8000, 0x7f80, 0x7f80, 0x0001};
    uint16_t got[9];
    attn_bf16_from_float(got, in, 9);
    for (int i = 0; i < 8; i++) {
        if (got[i] != want[i]) print_error("value %d: 0x%04x, want 0x%04x\n", i, got[i], want[i]);
        assert_int_equal(got[i], want[i]);
    }
    float back;
    attn_float_from_bf16(&back, &got[8], 1);
    assert_true(isnan(back));
    /* Every non-NaN bf16 widens exactly and rounds back to itself. */
    for (uint32_t bits = 0; bits <= 0xffff; bits++) {
        uint16_t h = (uint16_t)bits, again;
        float wide;
        attn_float_from_bf16(&wide, &h, 1);
        if (isnan(wide)) continue;
        attn_bf16_from_float(&again, &wide, 1);
        assert_int_equal(again, h);
    }
}

/* ---- random cases ------------------------------------------------------------------ */

typedef enum case_kind {
    KIND_NONE,
    KIND_CAUSAL,
    KIND_KEY_PADDING, /* bool (B, 1, 1, Lk), the last batch fully padded */
    KIND_KEEP_FILL,   /* bool_keep (Lq, Lk) with a finite fill */
    KIND_FLOAT_2D,    /* float (Lq, Lk) with -inf entries, the last row all -inf */
    KIND_WINDOW,      /* causal sliding window */
    KIND_ALIBI,       /* ALiBi slopes, causal, a query offset */
    KIND_DROPOUT,     /* dropout and a scale of 2 / sqrt(D) */
    KINDS
} case_kind;

static const char *const kind_names[KINDS] = {"none",        "causal", "key padding",
                                              "keep+fill",   "float",  "window",
                                              "alibi+offset", "dropout"};

typedef struct bf16_case {
    char label[200];
    int B, H, Lq, Lk, D, Dv;
    attn_sdpa_config cfg;
    attn_mask mask;
    void *mask_data;
    float slopes[4];
    float *q, *k, *v, *dout;         /* as drawn, float32 */
    uint16_t *qh, *kh, *vh, *douth;  /* rounded to bf16 */
    float *qr, *kr, *vr, *doutr;     /* the rounded values, widened */
} bf16_case;

static size_t q_size(const bf16_case *c) { return (size_t)c->B * c->H * c->Lq * c->D; }
static size_t k_size(const bf16_case *c) { return (size_t)c->B * c->H * c->Lk * c->D; }
static size_t v_size(const bf16_case *c) { return (size_t)c->B * c->H * c->Lk * c->Dv; }
static size_t out_size(const bf16_case *c) { return (size_t)c->B * c->H * c->Lq * c->Dv; }
static size_t lse_size(const bf16_case *c) { return (size_t)c->B * c->H * c->Lq; }

static void round_input(float *x, size_t n, uint16_t **h, float **r)
{
    *h = malloc(n * sizeof **h);
    *r = malloc(n * sizeof **r);
    assert_non_null(*h);
    assert_non_null(*r);
    attn_bf16_from_float(*h, x, n);
    attn_float_from_bf16(*r, *h, n);
}

static void make_mask(bf16_case *c, attn_rng *rng, case_kind kind)
{
    const int64_t target[4] = {c->B, c->H, c->Lq, c->Lk};
    if (kind == KIND_KEY_PADDING) {
        const int64_t shape[4] = {c->B, 1, 1, c->Lk};
        uint8_t *m = malloc((size_t)c->B * c->Lk);
        assert_non_null(m);
        for (int e = 0; e < c->B * c->Lk; e++)
            m[e] = (uint8_t)(e >= (c->B - 1) * c->Lk && c->B > 1 ? 1 : attn_rng_uniform(rng) < 0.25f);
        c->mask_data = m;
        assert_int_equal(attn_mask_init(&c->mask, ATTN_MASK_BOOL, m, 4, shape, target), ATTN_OK);
        c->cfg.key_padding_mask = &c->mask;
    } else if (kind == KIND_KEEP_FILL || kind == KIND_FLOAT_2D) {
        const int64_t shape[2] = {c->Lq, c->Lk};
        const size_t n = (size_t)c->Lq * c->Lk;
        if (kind == KIND_KEEP_FILL) {
            uint8_t *m = malloc(n);
            assert_non_null(m);
            for (size_t e = 0; e < n; e++) m[e] = attn_rng_uniform(rng) >= 0.25f;
            c->mask_data = m;
            assert_int_equal(attn_mask_init(&c->mask, ATTN_MASK_BOOL_KEEP, m, 2, shape, target),
                             ATTN_OK);
            c->mask.fill = true;
            c->mask.fill_value = -3.0f;
        } else {
            float *m = test_random(rng, n, -2.0f, 2.0f);
            for (size_t e = 0; e < n; e++)
                if (attn_rng_uniform(rng) < 0.25f || e >= n - (size_t)c->Lk) m[e] = -INFINITY;
            c->mask_data = m;
            assert_int_equal(attn_mask_init(&c->mask, ATTN_MASK_FLOAT, m, 2, shape, target),
                             ATTN_OK);
        }
        c->cfg.attn_mask = &c->mask;
    }
}

static const int dims[] = {8, 16, 33, 64, 80, 7, 128};
enum { DIMS = sizeof dims / sizeof dims[0] };

/* Case n: the kind and D cycle; Lq in 1 .. max_q, Lk = Lq or in min_k .. max_k; B
 * of 1 or 2 times batch_factor. */
static void make_case_sized(bf16_case *c, uint64_t n, int max_q, int min_k, int max_k,
                            int batch_factor)
{
    memset(c, 0, sizeof *c);
    attn_rng rng = test_rng(n);
    const case_kind kind = (case_kind)(n % KINDS);
    c->D = dims[n % DIMS];
    c->Dv = attn_rng_below(&rng, 2) ? c->D : dims[attn_rng_below(&rng, DIMS)];
    c->B = (1 + (int)attn_rng_below(&rng, 2)) * batch_factor;
    c->H = 1 + (int)attn_rng_below(&rng, 2);
    c->Lq = 1 + (int)attn_rng_below(&rng, (uint32_t)max_q);
    c->Lk = attn_rng_below(&rng, 2) && c->Lq >= min_k
                ? c->Lq
                : min_k + (int)attn_rng_below(&rng, (uint32_t)(max_k - min_k + 1));
    c->cfg = (attn_sdpa_config){.batch = c->B, .heads = c->H, .len_q = c->Lq, .len_k = c->Lk,
                                .dim_qk = c->D, .dim_v = c->Dv};
    make_mask(c, &rng, kind);
    if (kind == KIND_CAUSAL || kind == KIND_WINDOW || kind == KIND_ALIBI) c->cfg.causal = true;
    if (kind == KIND_WINDOW) c->cfg.window = 1 + (int)attn_rng_below(&rng, 100);
    if (kind == KIND_ALIBI) {
        for (int h = 0; h < c->H; h++) c->slopes[h] = exp2f(-8.0f * (float)(h + 1) / c->H);
        c->cfg.alibi_slopes = c->slopes;
        c->cfg.q_offset = c->Lk >= c->Lq ? c->Lk - c->Lq : 0;
    }
    if (kind == KIND_DROPOUT) {
        c->cfg.dropout_p = 0.2f;
        c->cfg.dropout_seed = attn_rng_u32(&rng);
        c->cfg.scale = 2.0f / sqrtf((float)c->D);
    }
    snprintf(c->label, sizeof c->label,
             "case %llu: B=%d H=%d Lq=%d Lk=%d D=%d Dv=%d kind=%s window=%d q_offset=%d",
             (unsigned long long)n, c->B, c->H, c->Lq, c->Lk, c->D, c->Dv, kind_names[kind],
             c->cfg.window, c->cfg.q_offset);
    c->q = test_random(&rng, q_size(c), -2.0f, 2.0f);
    c->k = test_random(&rng, k_size(c), -2.0f, 2.0f);
    c->v = test_random(&rng, v_size(c), -1.0f, 1.0f);
    c->dout = test_random(&rng, out_size(c), -1.0f, 1.0f);
    round_input(c->q, q_size(c), &c->qh, &c->qr);
    round_input(c->k, k_size(c), &c->kh, &c->kr);
    round_input(c->v, v_size(c), &c->vh, &c->vr);
    round_input(c->dout, out_size(c), &c->douth, &c->doutr);
}

/* Lengths up to max_length (past the 64-key blocks). */
static void make_case(bf16_case *c, uint64_t n, int max_length)
{
    make_case_sized(c, n, max_length, 1, max_length, 1);
}

static void free_case(bf16_case *c)
{
    void *arrays[] = {c->q,  c->k,  c->v,  c->dout,  c->qh,       c->kh, c->vh,
                      c->douth, c->qr, c->kr, c->vr, c->doutr, c->mask_data};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
}

/* ---- the float64 reference and the bounds --------------------------------------------- */

/* The config's score of (b, h, i, j) in float64 from the float32 inputs q_i, k_j
 * (-inf if excluded), whether a fill replaced it (a constant: no gradient), and
 * |s| + |bias| for M_i. */
static double exact_score(const bf16_case *c, const float *q_i, const float *k_j, int b, int h,
                          int i, int j, bool *filled, double *magnitude, double *abs_dot)
{
    const attn_sdpa_config *cfg = &c->cfg;
    const double scale = attn_sdpa_scale(cfg);
    double dot = 0.0, dot_abs = 0.0;
    for (int d = 0; d < c->D; d++) {
        dot += (double)q_i[d] * k_j[d];
        dot_abs += fabs((double)q_i[d] * k_j[d]);
    }
    *abs_dot = scale * dot_abs;
    double s = scale * dot, bias = 0.0;
    const int64_t p = cfg->q_offset + i;
    if (cfg->alibi_slopes) bias = -(double)cfg->alibi_slopes[h] * (double)(p > j ? p - j : j - p);
    *magnitude = fabs(s) + fabs(bias);
    s += bias;
    *filled = false;
    if (cfg->causal && j > p) s = -INFINITY;
    if (cfg->window > 0 && p - j >= cfg->window) s = -INFINITY;
    const attn_mask *masks[2] = {cfg->attn_mask, cfg->key_padding_mask};
    for (int m = 0; m < 2; m++) {
        if (masks[m] == NULL) continue;
        const attn_mask *mk = masks[m];
        const int64_t at = b * mk->stride[0] + h * mk->stride[1] + i * mk->stride[2] +
                           j * mk->stride[3];
        if (mk->type == ATTN_MASK_FLOAT) {
            s += ((const float *)mk->data)[at];
            continue;
        }
        const bool flag = ((const uint8_t *)mk->data)[at] != 0;
        if (mk->type == ATTN_MASK_BOOL ? flag : !flag) {
            *filled = mk->fill;
            s = mk->fill ? mk->fill_value : -INFINITY;
        }
    }
    return s;
}

static double dropout_factor(const attn_sdpa_config *cfg, int b, int h, int i, int j)
{
    if (cfg->dropout_p == 0.0f) return 1.0;
    uint64_t index = (uint64_t)((((int64_t)b * cfg->heads + h) * cfg->len_q + i) * cfg->len_k + j);
    return attn_uniform_at(cfg->dropout_seed, index) < cfg->dropout_p
               ? 0.0
               : 1.0 / (1.0 - (double)cfg->dropout_p);
}

/* Exact results and bounds, each (B, H, L, D) like the quantity it bounds. */
typedef struct exact {
    double *out, *dq, *dk, *dv;
    double *out_bound, *dq_bound, *dk_bound, *dv_bound;
} exact;

static double *zeros(size_t n)
{
    double *x = calloc(n ? n : 1, sizeof *x);
    assert_non_null(x);
    return x;
}

/* The reference on inputs (q, k, v, dout) and the bounds of the kernel run on
 * their bf16 rounding: `from_original` adds the input rounding's terms (see the
 * opening comment). */
static exact reference(const bf16_case *c, const float *q, const float *k, const float *v,
                       const float *dout, bool from_original)
{
    const int Lq = c->Lq, Lk = c->Lk, D = c->D, Dv = c->Dv;
    const double scale = attn_sdpa_scale(&c->cfg);
    exact e = {zeros(out_size(c)), zeros(q_size(c)), zeros(k_size(c)), zeros(v_size(c)),
               zeros(out_size(c)), zeros(q_size(c)), zeros(k_size(c)), zeros(v_size(c))};
    double *s = zeros((size_t)Lk), *p = zeros((size_t)Lk), *z = zeros((size_t)Lk);
    double *dp = zeros((size_t)Lk), *t = zeros((size_t)Lk), *ds = zeros((size_t)Lk);
    double *ds_err = zeros((size_t)Lk);
    bool *filled = calloc((size_t)Lk, sizeof *filled);
    assert_non_null(filled);
    const double n_l = Lk + 3.0 * ((Lk + 63) / 64) + 8.0;
    const double in_u = from_original ? U : 0.0;
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++) {
            const int64_t bh = (int64_t)b * c->H + h;
            for (int i = 0; i < Lq; i++) {
                const float *q_i = q + (bh * Lq + i) * D, *dout_i = dout + (bh * Lq + i) * Dv;
                double max = -INFINITY, S = 0.0, M = 0.0;
                for (int j = 0; j < Lk; j++) {
                    double magnitude, abs_dot;
                    s[j] = exact_score(c, q_i, k + (bh * Lk + j) * D, b, h, i, j, &filled[j],
                                       &magnitude, &abs_dot);
                    if (s[j] > max) max = s[j];
                    if (abs_dot > S) S = abs_dot;
                    if (magnitude > M) M = magnitude;
                }
                if (max == -INFINITY) continue; /* fully masked: zeros, exactly */
                double sum = 0.0;
                for (int j = 0; j < Lk; j++) sum += p[j] = exp(s[j] - max);
                for (int j = 0; j < Lk; j++) {
                    p[j] /= sum;
                    z[j] = dropout_factor(&c->cfg, b, h, i, j);
                }
                const double E = gamma_n(D + 2) * S + 4 * U32 * M + (2 * in_u + in_u * in_u) * S;
                const double spread = expm1(2 * E);
                const double out_factor =
                    (from_original ? (1 + U) * (1 + U) * spread + 2 * U + U * U
                                   : (1 + U) * spread + U) +
                    2 * gamma_n(n_l) + 2 * EXP_ERROR;
                const double e_p = spread + 2 * gamma_n(n_l) + 2 * EXP_ERROR;
                const double e_dp = gamma_n(Dv) + 2 * in_u + in_u * in_u;
                /* + U: P' and dS are rounded to bf16 before the products. */
                const double e_lq = gamma_n(Lq + 2) + in_u + U, e_lk = gamma_n(Lk + 2) + in_u + U;
                double delta = 0.0, w_abs = 0.0, t_sum = 0.0;
                for (int j = 0; j < Lk; j++) {
                    const float *v_j = v + (bh * Lk + j) * Dv;
                    double dot = 0.0, dot_abs = 0.0;
                    for (int cc = 0; cc < Dv; cc++) {
                        dot += (double)dout_i[cc] * v_j[cc];
                        dot_abs += fabs((double)dout_i[cc] * v_j[cc]);
                    }
                    dp[j] = z[j] * dot;
                    t[j] = dot_abs;
                    delta += p[j] * dp[j];
                    w_abs += p[j] * fabs(dp[j]);
                    t_sum += p[j] * z[j] * dot_abs;
                }
                const double e_delta = e_p * w_abs + e_dp * t_sum;
                for (int j = 0; j < Lk; j++) {
                    ds[j] = filled[j] ? 0.0 : p[j] * (dp[j] - delta);
                    ds_err[j] = filled[j] ? 0.0
                                          : p[j] * (e_p * (fabs(dp[j]) + fabs(delta)) +
                                                    z[j] * e_dp * t[j] + e_delta);
                }
                double *out_i = e.out + (bh * Lq + i) * Dv, *ob = e.out_bound + (bh * Lq + i) * Dv;
                double *dq_i = e.dq + (bh * Lq + i) * D, *dqb = e.dq_bound + (bh * Lq + i) * D;
                for (int j = 0; j < Lk; j++) {
                    const float *v_j = v + (bh * Lk + j) * Dv, *k_j = k + (bh * Lk + j) * D;
                    double *dv_j = e.dv + (bh * Lk + j) * Dv, *dvb = e.dv_bound + (bh * Lk + j) * Dv;
                    double *dk_j = e.dk + (bh * Lk + j) * D, *dkb = e.dk_bound + (bh * Lk + j) * D;
                    const double pz = p[j] * z[j];
                    for (int cc = 0; cc < Dv; cc++) {
                        out_i[cc] += pz * v_j[cc];
                        ob[cc] += out_factor * pz * fabs(v_j[cc]);
                        dv_j[cc] += pz * dout_i[cc];
                        dvb[cc] += (e_p + e_lq) * pz * fabs(dout_i[cc]);
                    }
                    for (int d = 0; d < D; d++) {
                        dq_i[d] += scale * ds[j] * k_j[d];
                        dqb[d] += scale * (ds_err[j] + e_lk * fabs(ds[j])) * fabs(k_j[d]);
                        dk_j[d] += scale * ds[j] * q_i[d];
                        dkb[d] += scale * (ds_err[j] + e_lq * fabs(ds[j])) * fabs(q_i[d]);
                    }
                }
            }
        }
    free(s);
    free(p);
    free(z);
    free(dp);
    free(t);
    free(ds);
    free(ds_err);
    free(filled);
    return e;
}

static void free_exact(exact *e)
{
    double *arrays[] = {e->out, e->dq, e->dk, e->dv, e->out_bound, e->dq_bound, e->dk_bound,
                        e->dv_bound};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
}

/* The largest error / bound seen, per reference and quantity. */
enum { QUANTITIES = 4 };
static const char *const quantities[QUANTITIES] = {"out", "dq", "dk", "dv"};
static double worst_ratio[2][QUANTITIES];

/* float32's underflow, which the relative bounds do not cover: the kernels' exp
 * gives 0 below 2^-126, so each probability is off by at most 2^-126 in absolute
 * terms (a row whose keys lie 16,000 positions away under ALiBi has them all
 * there): under (Lq + Lk) 2^-126 |operand|^2 < 2^-100 for these sizes. */
static const double UNDERFLOW = 0x1p-100;

/* Holds got[e] within bound[e] + u32 |want[e]| + UNDERFLOW of want[e] for every
 * element. */
static void check_bounded(const float *got, const double *want, const double *bound, size_t n,
                          const bf16_case *c, const char *variant, int quantity, bool from_original)
{
    for (size_t e = 0; e < n; e++) {
        const double limit = bound[e] + U32 * fabs(want[e]) + UNDERFLOW;
        const double err = fabs((double)got[e] - want[e]);
        if (limit > 0.0 && err / limit > worst_ratio[from_original][quantity])
            worst_ratio[from_original][quantity] = err / limit;
        if (err <= limit) continue;
        print_error("%s [%s]: %s[%zu] = %.9g, float64 from the %s inputs %.9g: error %.3g exceeds "
                    "its bound %.3g (the formula of tests/unit/test_flash_bf16.c: u = 2^-8 per "
                    "bf16 rounding, float32 sums over D and L)\n",
                    c->label, variant, quantities[quantity], e, (double)got[e],
                    from_original ? "original float32" : "bf16-rounded", want[e], err, limit);
        fail();
    }
}

typedef struct results {
    float *out, *lse, *dq, *dk, *dv;
} results;

/* The forward on v given as pairs of rows (attn_flash_bf16_forward_pairs, as the
 * language model's bf16 cache keeps its values) gives the bits of the forward on
 * v itself: out and lse of r. */
static void check_given_pairs(const attn_isa *kern, const bf16_case *c, const results *r)
{
    const size_t heads = (size_t)c->B * c->H;
    const size_t plane = (size_t)(c->Lk + 1) / 2 * attn_flash_pair_width(c->Dv) * 2;
    uint16_t *pairs = calloc(heads * plane, sizeof *pairs);
    for (size_t bh = 0; bh < heads; bh++)
        attn_flash_bf16_pair_rows(pairs + bh * plane, c->vr + bh * c->Lk * c->Dv, 0, c->Lk, c->Dv);
    float *out = test_zeros(out_size(c)), *lse = test_zeros(lse_size(c));
    assert_int_equal(kern->flash->forward_bf16(out, lse, c->qh, c->kh, NULL, pairs, &c->cfg),
                     ATTN_OK);
    if (memcmp(out, r->out, out_size(c) * sizeof *out) != 0 ||
        memcmp(lse, r->lse, lse_size(c) * sizeof *lse) != 0) {
        print_error("%s [%s]: the forward on v laid out as pairs of rows differs from the "
                    "forward on v\n", c->label, kern->name);
        fail();
    }
    free(pairs);
    free(out);
    free(lse);
}

static results run_bf16(const attn_isa *kern, const bf16_case *c)
{
    results r = {test_zeros(out_size(c)), test_zeros(lse_size(c)), test_zeros(q_size(c)),
                 test_zeros(k_size(c)), test_zeros(v_size(c))};
    assert_int_equal(kern->flash->forward_bf16(r.out, r.lse, c->qh, c->kh, c->vh, NULL, &c->cfg),
                     ATTN_OK);
    check_given_pairs(kern, c, &r);
    assert_int_equal(kern->flash->backward_bf16(r.dq, r.dk, r.dv, c->douth, c->qh, c->kh, c->vh,
                                                r.lse, &c->cfg),
                     ATTN_OK);
    return r;
}

static void free_results(results *r)
{
    free(r->out);
    free(r->lse);
    free(r->dq);
    free(r->dk);
    free(r->dv);
}

static void check_same_bits(const results *a, const results *b, const bf16_case *c,
                            const char *what)
{
    const size_t sizes[5] = {out_size(c), lse_size(c), q_size(c), k_size(c), v_size(c)};
    const float *xa[5] = {a->out, a->lse, a->dq, a->dk, a->dv};
    const float *xb[5] = {b->out, b->lse, b->dq, b->dk, b->dv};
    const char *names[5] = {"out", "lse", "dq", "dk", "dv"};
    for (int i = 0; i < 5; i++) {
        if (memcmp(xa[i], xb[i], sizes[i] * sizeof(float)) == 0) continue;
        print_error("%s: %s differs %s\n", c->label, names[i], what);
        fail();
    }
}

static void check_case(const bf16_case *c)
{
    exact from_rounded = reference(c, c->qr, c->kr, c->vr, c->doutr, false);
    exact from_original = reference(c, c->q, c->k, c->v, c->dout, true);
    results per_variant[VARIANTS] = {{0}};
    for (int v = 0; v < VARIANTS; v++) {
        const attn_isa *kern = all_variants[v];
        if (!kern->supported()) continue;
        assert_int_equal(attn_set_num_threads(2), ATTN_OK);
        results r = run_bf16(kern, c);
        for (int o = 0; o < 2; o++) {
            const exact *x = o ? &from_original : &from_rounded;
            check_bounded(r.out, x->out, x->out_bound, out_size(c), c, kern->name, 0, o);
            check_bounded(r.dq, x->dq, x->dq_bound, q_size(c), c, kern->name, 1, o);
            check_bounded(r.dk, x->dk, x->dk_bound, k_size(c), c, kern->name, 2, o);
            check_bounded(r.dv, x->dv, x->dv_bound, v_size(c), c, kern->name, 3, o);
        }
        assert_int_equal(attn_set_num_threads(1), ATTN_OK);
        results one = run_bf16(kern, c);
        char what[64];
        snprintf(what, sizeof what, "between 1 and 2 threads [%s]", kern->name);
        check_same_bits(&one, &r, c, what);
        free_results(&one);
        per_variant[v] = r;
    }
    assert_int_equal(attn_set_num_threads(2), ATTN_OK);
    /* vdpbf16ps and its emulation: the same bits, subnormals flushed alike (the
     * ALiBi cases over 16,000 keys have them). */
    if (per_variant[0].out != NULL && per_variant[1].out != NULL)
        check_same_bits(&per_variant[0], &per_variant[1], c,
                        "between avx512bf16 (vdpbf16ps) and avx512 (widened products)");
    for (int v = 0; v < VARIANTS; v++)
        if (per_variant[v].out != NULL) free_results(&per_variant[v]);
    free_exact(&from_rounded);
    free_exact(&from_original);
}

static void print_worst(void)
{
    for (int o = 0; o < 2; o++) {
        print_message("largest error / bound, from the %s inputs:",
                      o ? "original float32" : "bf16-rounded");
        for (int w = 0; w < QUANTITIES; w++) print_message(" %s %.3f", quantities[w], worst_ratio[o][w]);
        print_message("\n");
    }
}

static void test_random_cases_within_bounds(void **state)
{
    (void)state;
    for (uint64_t n = 0; n < 3 * KINDS; n++) {
        bf16_case c;
        make_case(&c, n, 200);
        check_case(&c);
        free_case(&c);
    }
    print_worst();
}

/* Rows over many key blocks, where the float32 sums are longest. */
static void test_long_cases_within_bounds(void **state)
{
    (void)state;
    for (uint64_t n = 100; n < 100 + 3; n++) {
        bf16_case c;
        make_case(&c, n, 1200);
        check_case(&c);
        free_case(&c);
    }
    print_worst();
}

/* Heads enough that two threads run the kernels one task per head (head_tasks),
 * against one thread's tasks and the bounds: 8 to 32 heads. */
static void test_many_heads_within_bounds(void **state)
{
    (void)state;
    for (uint64_t n = 300; n < 300 + KINDS; n++) {
        bf16_case c;
        make_case_sized(&c, n, 130, 1, 130, 8);
        check_case(&c);
        free_case(&c);
    }
    print_worst();
}

/* A few query rows over more keys than the backward's query pass keeps tiles for
 * (FUSED_CACHE_BYTES, 256 key blocks): it recomputes them in each step instead. */
static void test_long_key_ranges_within_bounds(void **state)
{
    (void)state;
    /* Kinds none, keep+fill (no block skipped), alibi+offset, dropout. */
    const uint64_t cases[] = {200, 203, 206, 207};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bf16_case c;
        make_case_sized(&c, cases[i], 9, 16500, 17000, 1);
        check_case(&c);
        free_case(&c);
    }
    print_worst();
}

/* The entry points check their arguments as the float32 ones do. */
static void test_bad_arguments_are_reported(void **state)
{
    (void)state;
    attn_sdpa_config cfg = {.batch = 1, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 4, .dim_v = 4};
    uint16_t x[8] = {0};
    float out[8], lse[2];
    test_expect_invalid(attn_sdpa_bf16_forward(out, lse, NULL, x, x, &cfg), "q");
    test_expect_invalid(attn_sdpa_bf16_backward(out, NULL, NULL, NULL, x, x, x, lse, &cfg), "dout");
    cfg.dim_qk = 0;
    test_expect_invalid(attn_sdpa_bf16_forward(out, lse, x, x, x, &cfg), "dim_qk");
    assert_int_equal(attn_sdpa_bf16_workspace_bytes(&cfg, true), 0);
}

int main(void)
{
    test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp_within_bound),
        cmocka_unit_test(test_conversion_rounds_to_nearest_even),
        cmocka_unit_test(test_random_cases_within_bounds),
        cmocka_unit_test(test_long_cases_within_bounds),
        cmocka_unit_test(test_many_heads_within_bounds),
        cmocka_unit_test(test_long_key_ranges_within_bounds),
        cmocka_unit_test(test_bad_arguments_are_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
