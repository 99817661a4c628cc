/* The fused attention kernels (src/kernels/flash*.c) against the reference
 * attn_sdpa_reference_forward / attn_sdpa_reference_backward, on fresh random
 * shapes each run, with every mask kind, with and without a sliding window and
 * ALiBi slopes, for every instruction-set variant this CPU runs, and 1 against 2
 * threads.
 *
 * Limit: out, lse, dq, dk, dv agree with the reference to a relative error
 * (test_rel_error: max |a - b| / max |b|) below 1e-5; fp32 rounding of the two
 * different summation orders gives about 1e-6 at these sizes. dq and dk are
 * measured against the size of the terms they sum (see score_gradient_scales).
 * Rows over 16,000 keys take out and lse from float64 loops instead (exact_forward).
 * Thread counts must agree bit for bit. */
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

#define REL_LIMIT 1e-5
#define EXP_ULP_LIMIT 2.0

static const attn_isa *const all_variants[] = {&attn_isa_avx512bf16, &attn_isa_avx512,
                                              &attn_isa_avx2, &attn_isa_scalar};
enum { VARIANTS = sizeof all_variants / sizeof all_variants[0] };

/* ---- the vector exponential ----------------------------------------------------- */

static double ulp_error(float got, double want)
{
    if (want < 1.17549435e-38) return got == 0.0f ? 0.0 : INFINITY; /* flushed below FLT_MIN */
    int exponent;
    frexp(want, &exponent);
    return fabs((double)got - want) / ldexp(1.0, exponent - 24);
}

static void test_exp_accuracy(void **state)
{
    (void)state;
    enum { N = 200003 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (int i = 0; i < N; i++) x[i] = -87.3f + (88.3f + 87.3f) * (float)i / (N - 1);
    for (int v = 0; v < VARIANTS; v++) {
        const attn_isa *kern = all_variants[v];
        if (!kern->supported()) continue;
        kern->flash->exp(y, x, N);
        double worst = 0.0;
        for (int i = 0; i < N; i++) {
            double e = ulp_error(y[i], exp((double)x[i]));
            if (e > worst) worst = e;
        }
        print_message("exp %s: max error %.2f ulp\n", kern->name, worst);
        assert_true(worst <= EXP_ULP_LIMIT);
        const float special[] = {-INFINITY, -1000.0f, -88.0f, 0.0f, 100.0f, INFINITY, NAN};
        float got[7];
        kern->flash->exp(got, special, 7);
        assert_true(got[0] == 0.0f && got[1] == 0.0f && got[2] == 0.0f);
        assert_true(got[3] == 1.0f);
        assert_true(isinf(got[4]) && isinf(got[5]));
        assert_true(isnan(got[6]));
    }
    free(x);
    free(y);
}

/* ---- random cases ------------------------------------------------------------------- */

/* What each case masks; every run walks all of them. */
typedef enum mask_kind {
    MASK_NONE,
    MASK_CAUSAL,
    MASK_KEY_PADDING,    /* bool (B, 1, 1, Lk); the last batch fully padded */
    MASK_BOOL_2D,        /* bool (Lq, Lk), excluded = nonzero; last row fully masked */
    MASK_KEEP_4D,        /* bool_keep (B, H, Lq, Lk) */
    MASK_FLOAT_2D,       /* float (Lq, Lk) with -inf entries, last row all -inf */
    MASK_FLOAT_KEYS,     /* float (B, 1, 1, Lk) */
    MASK_FLOAT_HEADS,    /* float (H, 1, Lk) */
    MASK_CAUSAL_FILL,    /* causal + bool (Lq, Lk) with a finite fill */
    MASK_CAUSAL_PADDING, /* causal + key padding */
    MASK_PADDING_FILL,   /* key padding with a finite fill + float (Lq, Lk) */
    MASK_SEED_FILL,      /* key padding filled with the seed's -1e20 / 8, the last
                          * batch fully padded: rows of -1.25e19 whose lse is too
                          * coarse for backward to use */
    MASK_KINDS
} mask_kind;

static const char *const mask_names[MASK_KINDS] = {"none",
                                                   "causal",
                                                   "key padding",
                                                   "bool (Lq,Lk)",
                                                   "keep (B,H,Lq,Lk)",
                                                   "float (Lq,Lk)",
                                                   "float (B,1,1,Lk)",
                                                   "float (H,1,Lk)",
                                                   "causal+fill",
                                                   "causal+padding",
                                                   "padding fill+float",
                                                   "seed fill"};

static const int dims[] = {8, 16, 32, 48, 64, 80, 96, 128, 256};
enum { DIMS = sizeof dims / sizeof dims[0] };

typedef struct flash_case {
    char label[200];
    int B, H, Lq, Lk, D, Dv;
    attn_sdpa_config cfg;
    attn_mask mask[2];
    void *mask_data[2];
    float *slopes; /* (H) ALiBi slopes, or NULL */
    float *q, *k, *v, *dout;
    float *out, *lse, *dq, *dk, *dv; /* the reference's */
} flash_case;

static size_t q_size(const flash_case *c) { return (size_t)c->B * c->H * c->Lq * c->D; }
static size_t k_size(const flash_case *c) { return (size_t)c->B * c->H * c->Lk * c->D; }
static size_t v_size(const flash_case *c) { return (size_t)c->B * c->H * c->Lk * c->Dv; }
static size_t out_size(const flash_case *c) { return (size_t)c->B * c->H * c->Lq * c->Dv; }
static size_t lse_size(const flash_case *c) { return (size_t)c->B * c->H * c->Lq; }

static bool all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

static int random_below(attn_rng *rng, int n) { return (int)attn_rng_below(rng, (uint32_t)n); }

/* A length in 1..600: often small or prime, sometimes up to 600. */
static int random_length(attn_rng *rng)
{
    static const int primes[] = {1, 2, 3, 5, 7, 13, 31, 61, 67, 97, 127, 131, 257, 263, 509, 599};
    switch (random_below(rng, 3)) {
    case 0: return primes[random_below(rng, sizeof primes / sizeof primes[0])];
    case 1: return 1 + random_below(rng, 96);
    default: return 1 + random_below(rng, 600);
    }
}

/* Builds mask slot `slot` (0: attn_mask, 1: key_padding_mask) of the given type and
 * shape, excluding entries with probability 1/4 (bool) or adding -inf likewise
 * (float). */
static void make_mask(flash_case *c, attn_rng *rng, int slot, attn_mask_type type, int ndim,
                      const int64_t *shape)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    if (type == ATTN_MASK_FLOAT) {
        float *m = test_random(rng, n, -2.0f, 2.0f);
        for (size_t e = 0; e < n; e++)
            if (attn_rng_uniform(rng) < 0.25f) m[e] = -INFINITY;
        c->mask_data[slot] = m;
    } else {
        uint8_t *m = malloc(n);
        assert_non_null(m);
        for (size_t e = 0; e < n; e++) {
            bool excluded = attn_rng_uniform(rng) < 0.25f;
            m[e] = (uint8_t)(type == ATTN_MASK_BOOL ? excluded : !excluded);
        }
        c->mask_data[slot] = m;
    }
    const int64_t target[4] = {c->B, c->H, c->Lq, c->Lk};
    assert_int_equal(attn_mask_init(&c->mask[slot], type, c->mask_data[slot], ndim, shape, target),
                     ATTN_OK);
    if (slot == 0)
        c->cfg.attn_mask = &c->mask[0];
    else
        c->cfg.key_padding_mask = &c->mask[1];
}

/* Excludes every key of the last row of a 2-D (Lq, Lk) mask, or of the last batch
 * of a (B, 1, 1, Lk) one, so that fully masked rows occur. */
static void mask_all_of_last(flash_case *c, int slot, int64_t count)
{
    attn_mask *m = &c->mask[slot];
    int64_t first = (int64_t)0;
    if (m->stride[2] != 0)
        first = (int64_t)(c->Lq - 1) * m->stride[2];
    else if (m->stride[0] != 0)
        first = (int64_t)(c->B - 1) * m->stride[0];
    for (int64_t j = 0; j < count; j++) {
        if (m->type == ATTN_MASK_FLOAT)
            ((float *)c->mask_data[slot])[first + j] = -INFINITY;
        else
            ((uint8_t *)c->mask_data[slot])[first + j] = m->type == ATTN_MASK_BOOL ? 1 : 0;
    }
}

static void make_masks(flash_case *c, attn_rng *rng, mask_kind kind)
{
    const int64_t keys[4] = {c->B, 1, 1, c->Lk}, scores2[2] = {c->Lq, c->Lk};
    const int64_t scores4[4] = {c->B, c->H, c->Lq, c->Lk}, heads[3] = {c->H, 1, c->Lk};
    switch (kind) {
    case MASK_NONE: break;
    case MASK_CAUSAL: c->cfg.causal = true; break;
    case MASK_KEY_PADDING:
        make_mask(c, rng, 1, ATTN_MASK_BOOL, 4, keys);
        if (c->B > 1) mask_all_of_last(c, 1, c->Lk);
        break;
    case MASK_BOOL_2D:
        make_mask(c, rng, 0, ATTN_MASK_BOOL, 2, scores2);
        mask_all_of_last(c, 0, c->Lk);
        break;
    case MASK_KEEP_4D: make_mask(c, rng, 0, ATTN_MASK_BOOL_KEEP, 4, scores4); break;
    case MASK_FLOAT_2D:
        make_mask(c, rng, 0, ATTN_MASK_FLOAT, 2, scores2);
        mask_all_of_last(c, 0, c->Lk);
        break;
    case MASK_FLOAT_KEYS: make_mask(c, rng, 1, ATTN_MASK_FLOAT, 4, keys); break;
    case MASK_FLOAT_HEADS: make_mask(c, rng, 0, ATTN_MASK_FLOAT, 3, heads); break;
    case MASK_CAUSAL_FILL:
        c->cfg.causal = true;
        make_mask(c, rng, 0, ATTN_MASK_BOOL, 2, scores2);
        c->mask[0].fill = true;
        c->mask[0].fill_value = -3.0f;
        break;
    case MASK_CAUSAL_PADDING:
        c->cfg.causal = true;
        make_mask(c, rng, 1, ATTN_MASK_BOOL, 4, keys);
        if (c->B > 1) mask_all_of_last(c, 1, c->Lk);
        break;
    case MASK_PADDING_FILL:
        make_mask(c, rng, 0, ATTN_MASK_FLOAT, 2, scores2);
        make_mask(c, rng, 1, ATTN_MASK_BOOL_KEEP, 4, keys);
        c->mask[1].fill = true;
        c->mask[1].fill_value = -1e9f;
        break;
    case MASK_SEED_FILL: /* with B = 1, every key of the one batch is padded */
        make_mask(c, rng, 1, ATTN_MASK_BOOL, 4, keys);
        mask_all_of_last(c, 1, c->Lk);
        c->mask[1].fill = true;
        c->mask[1].fill_value = -1.25e19f;
        break;
    case MASK_KINDS: fail();
    }
}

/* A sliding window for rows of up to `length` keys: the query's own key only,
 * around a block boundary, small, or anything up to past the end. */
static int random_window(attn_rng *rng, int length)
{
    switch (random_below(rng, 4)) {
    case 0: return 1 + random_below(rng, 2);
    case 1: return 63 + random_below(rng, 3);
    case 2: return 1 + random_below(rng, 20);
    default: return 1 + random_below(rng, length + 8);
    }
}

/* What a case adds to its mask kind (bits): a window, ALiBi, the causal mask, a
 * query offset, at most 9 query rows (decoding steps). */
enum { WITH_WINDOW = 1, WITH_ALIBI = 2, FORCE_CAUSAL = 4, WITH_OFFSET = 8, FEW_ROWS = 16 };

/* A query offset for Lq rows over Lk keys: the decoding one (Lk - Lq: the rows
 * are the last keys' queries), around a block boundary, or anything up to past
 * the last key. */
static int random_offset(attn_rng *rng, int Lq, int Lk)
{
    switch (random_below(rng, 4)) {
    case 0:
    case 1: return Lk >= Lq ? Lk - Lq : random_below(rng, Lk);
    case 2: return 63 + random_below(rng, 3);
    default: return random_below(rng, Lk + 70);
    }
}

/* Case number n: mask kind and D cycle so that every run sees all of them;
 * lengths (at least min_length), Dv, batch, heads, dropout and scale are random,
 * and `extras` adds a window, ALiBi slopes (random in (0, 1], or the geometric
 * 2^(-8 (h + 1) / H) of the paper) or the causal mask. The reference's cost,
 * B H Lq Lk (D + Dv), is kept under `budget`. */
/* Random q, k, v, dout for the case's config, and the reference's results. */
static void fill_case(flash_case *c, attn_rng *rng)
{
    c->q = test_random(rng, q_size(c), -2.0f, 2.0f);
    c->k = test_random(rng, k_size(c), -2.0f, 2.0f);
    c->v = test_random(rng, v_size(c), -1.0f, 1.0f);
    c->dout = test_random(rng, out_size(c), -1.0f, 1.0f);
    c->out = test_zeros(out_size(c));
    c->lse = test_zeros(lse_size(c));
    c->dq = test_zeros(q_size(c));
    c->dk = test_zeros(k_size(c));
    c->dv = test_zeros(v_size(c));
    assert_int_equal(attn_sdpa_reference_forward(c->out, c->lse, NULL, c->q, c->k, c->v, &c->cfg),
                     ATTN_OK);
    assert_int_equal(attn_sdpa_reference_backward(c->dq, c->dk, c->dv, c->dout, c->q, c->k, c->v,
                                                  c->lse, &c->cfg),
                     ATTN_OK);
}

static void make_case_with(flash_case *c, uint64_t n, double budget, int extras, int min_length)
{
    memset(c, 0, sizeof *c);
    attn_rng rng = test_rng(n);
    mask_kind kind = (mask_kind)(n % MASK_KINDS);
    c->D = dims[n % DIMS];
    do {
        c->Dv = random_below(&rng, 2) ? c->D : dims[random_below(&rng, DIMS)];
        c->B = 1 + random_below(&rng, 2);
        c->H = 1 + random_below(&rng, 3);
        c->Lq = extras & FEW_ROWS ? 1 + random_below(&rng, 9) : random_length(&rng);
        c->Lk = random_below(&rng, 3) ? random_length(&rng) : c->Lq;
    } while ((double)c->B * c->H * c->Lq * c->Lk * (c->D + c->Dv) > budget ||
             c->Lq < min_length || c->Lk < min_length);
    c->cfg = (attn_sdpa_config){.batch = c->B,
                                .heads = c->H,
                                .len_q = c->Lq,
                                .len_k = c->Lk,
                                .dim_qk = c->D,
                                .dim_v = c->Dv};
    if (random_below(&rng, 4) == 0) c->cfg.scale = 2.0f / sqrtf((float)c->D);
    if (random_below(&rng, 4) == 0) {
        c->cfg.dropout_p = 0.2f;
        c->cfg.dropout_seed = attn_rng_u32(&rng);
    }
    make_masks(c, &rng, kind);
    if (extras & FORCE_CAUSAL) c->cfg.causal = true;
    if (extras & WITH_WINDOW) c->cfg.window = random_window(&rng, c->Lq > c->Lk ? c->Lq : c->Lk);
    if (extras & WITH_ALIBI) {
        c->slopes = test_random(&rng, (size_t)c->H, 0.0f, 1.0f);
        if (random_below(&rng, 2))
            for (int h = 0; h < c->H; h++) c->slopes[h] = exp2f(-8.0f * (float)(h + 1) / c->H);
        c->cfg.alibi_slopes = c->slopes;
    }
    if (extras & WITH_OFFSET) c->cfg.q_offset = random_offset(&rng, c->Lq, c->Lk);
    snprintf(c->label, sizeof c->label,
             "case %llu: B=%d H=%d Lq=%d Lk=%d D=%d Dv=%d mask=%s%s window=%d alibi=%s "
             "q_offset=%d dropout=%g scale=%g",
             (unsigned long long)n, c->B, c->H, c->Lq, c->Lk, c->D, c->Dv, mask_names[kind],
             c->cfg.causal && kind != MASK_CAUSAL ? "+causal" : "", c->cfg.window,
             c->slopes ? "yes" : "no", c->cfg.q_offset, (double)c->cfg.dropout_p,
             (double)c->cfg.scale);

    fill_case(c, &rng);
}

/* Case n with the extras cycling over rounds of the mask kinds: none, a window,
 * ALiBi, both. */
static void make_case(flash_case *c, uint64_t n, double budget)
{
    make_case_with(c, n, budget, (int)(n / MASK_KINDS % 4), 1);
}

static void free_case(flash_case *c)
{
    float *arrays[] = {c->q, c->k, c->v, c->dout, c->out, c->lse, c->dq, c->dk, c->dv};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
    free(c->mask_data[0]);
    free(c->mask_data[1]);
    free(c->slopes);
}

/* The log-sum-exp: -inf in the same rows, else the error relative to
 * max(max |lse|, 1). An error e in lse is a relative error e in every probability
 * exp(s - lse), so below 1 it is held in absolute terms (a row whose lse is near 0
 * would otherwise measure the rounding of its score against nothing). */
static double lse_error(const float *got, const float *want, size_t n)
{
    double diff = 0.0, scale = 1.0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(want[i]) || isinf(got[i])) {
            if (got[i] != want[i]) return INFINITY;
            continue;
        }
        double d = fabs((double)got[i] - (double)want[i]);
        if (d > diff || isnan(d)) diff = d;
        if (fabs((double)want[i]) > scale) scale = fabs((double)want[i]);
    }
    return isnan(diff) ? INFINITY : diff / scale;
}

/* dq and dk are sums of dS_ij = P_ij (Z_ij dP_ij / (1 - p) - delta_i) times k_j or
 * q_i, where dP_ij and delta_i (both about sqrt(Dv) in size) cancel: whatever the
 * summation order, fp32 leaves an error of about 1e-7 of the terms, not of the
 * result, which may be far smaller (one key gives dS = 0 in real numbers). So their
 * error is measured relative to the size of the terms,
 *   scale * max_i sum_j P_ij (|dP_ij| / (1 - p) + |delta_i|) * max |k|
 * for dq (and over i for each j, times max |q|, for dk), or to the largest
 * reference value if that is larger. P comes from the reference without dropout. */
static void score_gradient_scales(const flash_case *c, double *dq_scale, double *dk_scale)
{
    attn_sdpa_config plain = c->cfg;
    plain.dropout_p = 0.0f;
    const size_t scores = lse_size(c) * (size_t)c->Lk;
    float *p = test_zeros(scores), *out = test_zeros(out_size(c)), *lse = test_zeros(lse_size(c));
    assert_int_equal(attn_sdpa_reference_forward(out, lse, p, c->q, c->k, c->v, &plain), ATTN_OK);
    double *key_sum = calloc((size_t)c->Lk, sizeof *key_sum);
    assert_non_null(key_sum);
    double row_max = 0.0, key_max = 0.0;
    for (int64_t bh = 0; bh < (int64_t)c->B * c->H; bh++) {
        memset(key_sum, 0, (size_t)c->Lk * sizeof *key_sum);
        for (int64_t i = 0; i < c->Lq; i++) {
            const float *g = c->dout + (bh * c->Lq + i) * c->Dv;
            const float *o = c->out + (bh * c->Lq + i) * c->Dv;
            double delta = 0.0, row = 0.0;
            for (int d = 0; d < c->Dv; d++) delta += (double)g[d] * o[d];
            for (int64_t j = 0; j < c->Lk; j++) {
                const float *v = c->v + (bh * c->Lk + j) * c->Dv;
                double dp = 0.0;
                for (int d = 0; d < c->Dv; d++) dp += (double)g[d] * v[d];
                double term = p[(bh * c->Lq + i) * c->Lk + j] *
                              (fabs(dp) / (1.0 - c->cfg.dropout_p) + fabs(delta));
                row += term;
                key_sum[j] += term;
            }
            if (row > row_max) row_max = row;
        }
        for (int64_t j = 0; j < c->Lk; j++)
            if (key_sum[j] > key_max) key_max = key_sum[j];
    }
    double q_max = 0.0, k_max = 0.0;
    for (size_t e = 0; e < q_size(c); e++) q_max = fmax(q_max, fabs((double)c->q[e]));
    for (size_t e = 0; e < k_size(c); e++) k_max = fmax(k_max, fabs((double)c->k[e]));
    const double scale = c->cfg.scale != 0.0f ? c->cfg.scale : 1.0 / sqrt((double)c->D);
    *dq_scale = scale * row_max * k_max;
    *dk_scale = scale * key_max * q_max;
    free(key_sum);
    free(p);
    free(out);
    free(lse);
}

/* max |got - want| / max(max |want|, terms). */
static double error_against(const float *got, const float *want, size_t n, double terms)
{
    double diff = 0.0, size = terms;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= diff)) diff = d;
        if (fabs((double)want[i]) > size) size = fabs((double)want[i]);
    }
    if (isnan(diff)) return INFINITY;
    if (size == 0.0) return diff == 0.0 ? 0.0 : INFINITY;
    return diff / size;
}

typedef struct results {
    float *out, *lse, *dq, *dk, *dv;
} results;

static results run_kernels(const attn_isa *kern, const flash_case *c)
{
    results r = {test_zeros(out_size(c)), test_zeros(lse_size(c)), test_zeros(q_size(c)),
                 test_zeros(k_size(c)), test_zeros(v_size(c))};
    assert_int_equal(kern->flash->forward(r.out, r.lse, c->q, c->k, c->v, &c->cfg), ATTN_OK);
    /* Backward from the reference's out and lse, so that only backward is measured. */
    assert_int_equal(
        kern->flash->backward(r.dq, r.dk, r.dv, c->dout, c->q, c->k, c->v, c->lse, &c->cfg),
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

static const char *const quantities[] = {"out", "lse", "dq", "dk", "dv"};
enum { QUANTITIES = sizeof quantities / sizeof quantities[0] };
static double worst_seen[VARIANTS][QUANTITIES];

static void check_close(int quantity, double err, const flash_case *c, int v)
{
    const char *what = quantities[quantity], *variant = all_variants[v]->name;
    if (err > worst_seen[v][quantity]) worst_seen[v][quantity] = err;
    if (err < REL_LIMIT) return;
    print_error("%s [%s]: %s relative error %.3g exceeds %.0e\n", c->label, variant, what, err,
                REL_LIMIT);
    fail();
}

static void check_identical(const char *what, const float *a, const float *b, size_t n,
                            const flash_case *c, const char *variant)
{
    if (memcmp(a, b, n * sizeof *a) == 0) return;
    print_error("%s [%s]: %s differs between 1 and 2 threads\n", c->label, variant, what);
    fail();
}

static void check_case(const flash_case *c)
{
    double dq_scale, dk_scale;
    score_gradient_scales(c, &dq_scale, &dk_scale);
    for (int v = 0; v < VARIANTS; v++) {
        const attn_isa *kern = all_variants[v];
        if (!kern->supported()) continue;
        assert_int_equal(attn_set_num_threads(2), ATTN_OK);
        results two = run_kernels(kern, c);
        check_close(0, test_rel_error(two.out, c->out, out_size(c)), c, v);
        check_close(1, lse_error(two.lse, c->lse, lse_size(c)), c, v);
        check_close(2, error_against(two.dq, c->dq, q_size(c), dq_scale), c, v);
        check_close(3, error_against(two.dk, c->dk, k_size(c), dk_scale), c, v);
        check_close(4, test_rel_error(two.dv, c->dv, v_size(c)), c, v);

        assert_int_equal(attn_set_num_threads(1), ATTN_OK);
        results one = run_kernels(kern, c);
        check_identical("out", one.out, two.out, out_size(c), c, kern->name);
        check_identical("lse", one.lse, two.lse, lse_size(c), c, kern->name);
        check_identical("dq", one.dq, two.dq, q_size(c), c, kern->name);
        check_identical("dk", one.dk, two.dk, k_size(c), c, kern->name);
        check_identical("dv", one.dv, two.dv, v_size(c), c, kern->name);
        free_results(&one);
        free_results(&two);
    }
    assert_int_equal(attn_set_num_threads(2), ATTN_OK);
}

/* Many small and medium cases: every mask kind with every D. */
static void test_random_cases_match_reference(void **state)
{
    (void)state;
    const int cases = 2 * MASK_KINDS * 3;
    for (int n = 0; n < cases; n++) {
        flash_case c;
        make_case(&c, (uint64_t)n, 4e6);
        check_case(&c);
        free_case(&c);
    }
    for (int v = 0; v < VARIANTS; v++) {
        if (!all_variants[v]->supported()) continue;
        print_message("%s: worst errors (limit %.0e):", all_variants[v]->name, REL_LIMIT);
        for (int w = 0; w < QUANTITIES; w++)
            print_message(" %s %.1e", quantities[w], worst_seen[v][w]);
        print_message("\n");
    }
}

/* A few cases at the top of the length range. */
static void test_long_cases_match_reference(void **state)
{
    (void)state;
    for (uint64_t n = 1000; n < 1000 + 4; n++) {
        flash_case c;
        make_case(&c, n, 6e7);
        check_case(&c);
        free_case(&c);
    }
}

/* Causal sliding windows over rows long enough for the kernels to skip whole
 * blocks outside the window in every pass, with any mask kind (the filling ones
 * turn skipping off) and ALiBi in half of them. */
static void test_causal_window_cases_match_reference(void **state)
{
    (void)state;
    for (uint64_t n = 2000; n < 2000 + MASK_KINDS; n++) {
        flash_case c;
        make_case_with(&c, n, 8e6, FORCE_CAUSAL | WITH_WINDOW | (n % 2 ? WITH_ALIBI : 0), 130);
        check_case(&c);
        free_case(&c);
    }
    /* and with a query offset, which moves the blocks each query block sees */
    for (uint64_t n = 2100; n < 2100 + MASK_KINDS; n++) {
        flash_case c;
        make_case_with(&c, n, 8e6,
                       FORCE_CAUSAL | WITH_WINDOW | WITH_OFFSET | (n % 2 ? WITH_ALIBI : 0), 130);
        check_case(&c);
        free_case(&c);
    }
}

/* With a query offset (row i at position q_offset + i for the causal mask, the
 * window and ALiBi): every mask kind, with none, a window, ALiBi or both, causal
 * in half of the rounds. */
static void test_offset_cases_match_reference(void **state)
{
    (void)state;
    for (uint64_t n = 3000; n < 3000 + 8 * MASK_KINDS; n++) {
        const int extras = (int)(n / MASK_KINDS % 4) | (n / MASK_KINDS / 4 % 2 ? FORCE_CAUSAL : 0);
        flash_case c;
        make_case_with(&c, n, 4e6, extras | WITH_OFFSET, 1);
        check_case(&c);
        free_case(&c);
    }
}

/* Decoding steps: a few query rows at an offset over up to 600 keys, causal, with
 * a window and ALiBi in turn (the key-value cache's calls). */
static void test_decoding_rows_match_reference(void **state)
{
    (void)state;
    for (uint64_t n = 4000; n < 4000 + 2 * MASK_KINDS; n++) {
        flash_case c;
        make_case_with(&c, n, 4e6, FEW_ROWS | WITH_OFFSET | FORCE_CAUSAL | (int)(n % 4), 1);
        check_case(&c);
        free_case(&c);
    }
}

/* The blocks a causal window skips are never read: with NaN in the keys and values
 * of the first key block, the query blocks whose windows start after it (and the
 * keys they alone see) get the same bits as with finite numbers there. Without
 * skipping, 0 * NaN would reach them through P V. */
static void test_causal_window_skips_keys_outside_it(void **state)
{
    (void)state;
    enum { H = 2, L = 300, D = 24, DV = 40, POISONED = 64, CLEAN = 128 };
    const float slopes[H] = {0.25f, 0.0625f};
    attn_rng rng = test_rng(9100);
    const size_t nq = (size_t)H * L * D, nv = (size_t)H * L * DV;
    float *q = test_random(&rng, nq, -2, 2), *k = test_random(&rng, nq, -2, 2);
    float *v = test_random(&rng, nv, -1, 1), *dout = test_random(&rng, nv, -1, 1);
    float *k_nan = malloc(nq * sizeof *k_nan), *v_nan = malloc(nv * sizeof *v_nan);
    assert_non_null(k_nan);
    assert_non_null(v_nan);
    memcpy(k_nan, k, nq * sizeof *k);
    memcpy(v_nan, v, nv * sizeof *v);
    for (int h = 0; h < H; h++)
        for (int j = 0; j < POISONED; j++) {
            for (int d = 0; d < D; d++) k_nan[((size_t)h * L + j) * D + d] = NAN;
            for (int d = 0; d < DV; d++) v_nan[((size_t)h * L + j) * DV + d] = NAN;
        }
    const int windows[] = {1, 50, 64};
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        /* Row blocks from CLEAN on start their windows at CLEAN - window + 1 >= 64. */
        attn_sdpa_config cfg = {.batch = 1, .heads = H, .len_q = L, .len_k = L, .dim_qk = D,
                                .dim_v = DV, .causal = true, .window = windows[w],
                                .alibi_slopes = slopes};
        for (int variant = 0; variant < VARIANTS; variant++) {
            const attn_isa *kern = all_variants[variant];
            if (!kern->supported()) continue;
            results r[2];
            for (int poisoned = 0; poisoned < 2; poisoned++) {
                const float *kk = poisoned ? k_nan : k, *vv = poisoned ? v_nan : v;
                r[poisoned] = (results){test_zeros(nv), test_zeros((size_t)H * L),
                                        test_zeros(nq), test_zeros(nq), test_zeros(nv)};
                assert_int_equal(kern->flash->forward(r[poisoned].out, r[poisoned].lse, q, kk, vv, &cfg),
                                 ATTN_OK);
                assert_int_equal(kern->flash->backward(r[poisoned].dq, r[poisoned].dk, r[poisoned].dv,
                                                dout, q, kk, vv,
                                                r[poisoned].lse, &cfg),
                                 ATTN_OK);
            }
            for (int h = 0; h < H; h++) {
                const size_t row = (size_t)h * L + CLEAN, rows = L - CLEAN;
                assert_true(isnan(r[1].out[(size_t)h * L * DV + (size_t)(POISONED - 1) * DV]));
                assert_true(all_finite(r[1].out + row * DV, rows * DV));
                assert_memory_equal(r[0].out + row * DV, r[1].out + row * DV,
                                    rows * DV * sizeof(float));
                assert_memory_equal(r[0].lse + row, r[1].lse + row, rows * sizeof(float));
                assert_memory_equal(r[0].dq + row * D, r[1].dq + row * D,
                                    rows * D * sizeof(float));
                assert_true(all_finite(r[1].dk + row * D, rows * D));
                assert_memory_equal(r[0].dk + row * D, r[1].dk + row * D,
                                    rows * D * sizeof(float));
                assert_memory_equal(r[0].dv + row * DV, r[1].dv + row * DV,
                                    rows * DV * sizeof(float));
            }
            free_results(&r[0]);
            free_results(&r[1]);
        }
    }
    free(q), free(k), free(v), free(dout), free(k_nan), free(v_nan);
}

/* Backward adds into its gradients: a second call doubles them exactly. */
/* More keys than the backward's tile cache holds for one query block (16384): the
 * backward recomputes the score tiles of such a block instead of keeping them. */
/* out and lse of an unmasked case in float64, rounded once to float: the oracle
 * for rows over many keys, where the float32 reference's running sum of p_j v_j
 * (16,000 terms) is itself off by about 1e-5. */
static void exact_forward(flash_case *c)
{
    const double scale = c->cfg.scale != 0.0f ? c->cfg.scale : 1.0 / sqrt((double)c->D);
    double *p = malloc((size_t)c->Lk * sizeof *p), *row = malloc((size_t)c->Dv * sizeof *row);
    assert_true(p != NULL && row != NULL);
    for (int bh = 0; bh < c->B * c->H; bh++) {
        for (int i = 0; i < c->Lq; i++) {
            const float *q_i = c->q + ((size_t)bh * c->Lq + i) * c->D;
            double max = -INFINITY, sum = 0.0;
            for (int j = 0; j < c->Lk; j++) {
                const float *k_j = c->k + ((size_t)bh * c->Lk + j) * c->D;
                double dot = 0.0;
                for (int d = 0; d < c->D; d++) dot += (double)q_i[d] * k_j[d];
                p[j] = dot * scale;
                max = fmax(max, p[j]);
            }
            for (int j = 0; j < c->Lk; j++) sum += (p[j] = exp(p[j] - max));
            for (int e = 0; e < c->Dv; e++) row[e] = 0.0;
            for (int j = 0; j < c->Lk; j++) {
                const float *v_j = c->v + ((size_t)bh * c->Lk + j) * c->Dv;
                for (int e = 0; e < c->Dv; e++) row[e] += p[j] / sum * v_j[e];
            }
            float *out_i = c->out + ((size_t)bh * c->Lq + i) * c->Dv;
            for (int e = 0; e < c->Dv; e++) out_i[e] = (float)row[e];
            c->lse[(size_t)bh * c->Lq + i] = (float)(max + log(sum));
        }
    }
    free(p);
    free(row);
}

static void test_long_key_ranges_match_reference(void **state)
{
    (void)state;
    flash_case c;
    memset(&c, 0, sizeof c);
    attn_rng rng = test_rng(2000);
    c.B = 1;
    c.H = 1;
    c.Lq = 70;
    c.Lk = 16385 + random_below(&rng, 200);
    c.D = 8;
    c.Dv = 16;
    c.cfg = (attn_sdpa_config){.batch = c.B, .heads = c.H, .len_q = c.Lq, .len_k = c.Lk,
                               .dim_qk = c.D, .dim_v = c.Dv};
    snprintf(c.label, sizeof c.label, "long key range: Lq=%d Lk=%d D=%d Dv=%d", c.Lq, c.Lk, c.D,
             c.Dv);
    fill_case(&c, &rng);
    exact_forward(&c);
    check_case(&c);
    free_case(&c);
}

static void test_backward_accumulates(void **state)
{
    (void)state;
    flash_case c;
    make_case(&c, 77, 1e6);
    float *dq = test_zeros(q_size(&c)), *dk = test_zeros(k_size(&c)), *dv = test_zeros(v_size(&c));
    assert_int_equal(attn_flash_backward(dq, dk, dv, c.dout, c.q, c.k, c.v, c.lse, &c.cfg),
                     ATTN_OK);
    float *once = malloc(q_size(&c) * sizeof *once);
    assert_non_null(once);
    memcpy(once, dq, q_size(&c) * sizeof *once);
    assert_int_equal(
        attn_flash_backward(dq, NULL, NULL, c.dout, c.q, c.k, c.v, c.lse, &c.cfg), ATTN_OK);
    for (size_t i = 0; i < q_size(&c); i++) assert_true(dq[i] == 2.0f * once[i]);
    free(once);
    free(dq);
    free(dk);
    free(dv);
    free_case(&c);
}

/* A row with one live key has P = 1 whatever its score: dq and dk get nothing, in
 * exact arithmetic and so here, bit for bit (not rounding noise, which a tensor of
 * otherwise tiny gradients would not outweigh). Here key padding leaves one key in
 * batch 0, and the causal mask leaves one key in row 0 of batch 1. */
static void test_single_key_rows_pass_no_score_gradient(void **state)
{
    (void)state;
    enum { B = 2, H = 2, L = 37, D = 19, DV = 23, LIVE_KEY = 5 };
    attn_rng rng = test_rng(9001);
    float *q = test_random(&rng, (size_t)B * H * L * D, -2, 2);
    float *k = test_random(&rng, (size_t)B * H * L * D, -2, 2);
    float *v = test_random(&rng, (size_t)B * H * L * DV, -2, 2);
    float *dout = test_random(&rng, (size_t)B * H * L * DV, -2, 2);
    uint8_t keep[B * L];
    for (int b = 0; b < B; b++)
        for (int j = 0; j < L; j++) keep[b * L + j] = b == 1 || j == LIVE_KEY;
    attn_mask padding;
    const int64_t shape[4] = {B, 1, 1, L}, target[4] = {B, H, L, L};
    assert_int_equal(attn_mask_init(&padding, ATTN_MASK_BOOL_KEEP, keep, 4, shape, target),
                     ATTN_OK);
    attn_sdpa_config cfg = {.batch = B, .heads = H, .len_q = L, .len_k = L, .dim_qk = D,
                            .dim_v = DV, .causal = true, .key_padding_mask = &padding};
    float *out = test_zeros((size_t)B * H * L * DV), *lse = test_zeros((size_t)B * H * L);
    for (int variant = 0; variant < VARIANTS; variant++) {
        const attn_isa *kern = all_variants[variant];
        if (!kern->supported()) continue;
        float *dq = test_zeros((size_t)B * H * L * D), *dk = test_zeros((size_t)B * H * L * D);
        float *dv = test_zeros((size_t)B * H * L * DV);
        assert_int_equal(kern->flash->forward(out, lse, q, k, v, &cfg), ATTN_OK);
        assert_int_equal(kern->flash->backward(dq, dk, dv, dout, q, k, v, lse, &cfg), ATTN_OK);
        for (int h = 0; h < H; h++) {
            /* batch 0: rows from LIVE_KEY on see exactly one key; earlier rows none */
            for (size_t e = 0; e < (size_t)L * D; e++) {
                assert_true(dq[(size_t)h * L * D + e] == 0.0f);
                assert_true(dk[(size_t)h * L * D + e] == 0.0f);
            }
            /* batch 1, row 0 sees key 0 only */
            for (int d = 0; d < D; d++) assert_true(dq[((size_t)(H + h) * L) * D + d] == 0.0f);
        }
        free(dq), free(dk), free(dv);
    }
    free(q), free(k), free(v), free(dout), free(out), free(lse);
}

/* The entry points run the variant the library chose (the one ATTN_SIMD names
 * when set: CI runs the unit tests under each), bit for bit. */
static void test_entry_points_run_the_chosen_variant(void **state)
{
    (void)state;
    flash_case c;
    make_case(&c, 5, 1e6);
    const attn_isa *chosen;
    assert_int_equal(attn_isa_current(&chosen), ATTN_OK);
    float *out = test_zeros(out_size(&c)), *lse = test_zeros(lse_size(&c));
    assert_int_equal(attn_flash_forward(out, lse, c.q, c.k, c.v, &c.cfg), ATTN_OK);
    results direct = run_kernels(chosen, &c);
    assert_memory_equal(out, direct.out, out_size(&c) * sizeof *out);
    assert_memory_equal(lse, direct.lse, lse_size(&c) * sizeof *lse);
    print_message("variant: %s\n", chosen->name);
    free_results(&direct);
    free(out);
    free(lse);
    free_case(&c);
}

/* The kernels take a checked config: the fused path's checks are attn_sdpa_forward's
 * and attn_sdpa_backward's. */
static void test_bad_arguments_are_reported(void **state)
{
    (void)state;
    float x[64] = {0};
    attn_sdpa_config cfg = {
        .batch = 1, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 4, .dim_v = 4};
    assert_int_equal(attn_sdpa_forward(x, x, NULL, NULL, x, x, &cfg), ATTN_ERR_INVALID_ARGUMENT);
    assert_string_equal(attn_last_error(), "q is NULL");
    cfg.dim_qk = 0;
    assert_int_equal(attn_sdpa_forward(x, x, NULL, x, x, x, &cfg), ATTN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(attn_last_error(), "dim_qk"));
    cfg.dim_qk = 4;
    attn_mask broken = {.type = ATTN_MASK_BOOL, .data = NULL};
    cfg.key_padding_mask = &broken;
    assert_int_equal(attn_sdpa_backward(x, x, x, x, x, x, x, x, &cfg), ATTN_ERR_INVALID_ARGUMENT);
    assert_string_equal(attn_last_error(), "key_padding_mask data is NULL");
}

/* Scratch grows with L, not L^2: L = 16384, D = 64, 8 heads; under 1 MiB of tiles
 * plus, for backward, four floats per query row and each thread's cache of one
 * query block's score and dP tiles (2 x 64 x 16384 floats, at most 8 MiB). */
static void test_workspace_is_linear_in_length(void **state)
{
    (void)state;
    attn_sdpa_config cfg = {.batch = 1,
                            .heads = 8,
                            .len_q = 16384,
                            .len_k = 16384,
                            .dim_qk = 64,
                            .dim_v = 64,
                            .causal = true};
    size_t forward = attn_flash_workspace_bytes(&cfg, 2, false);
    size_t backward = attn_flash_workspace_bytes(&cfg, 2, true);
    print_message("L=16384: forward scratch %zu KiB, backward %zu KiB\n", forward / 1024,
                  backward / 1024);
    assert_true(forward > 0 && forward < (1u << 20));
    assert_true(backward > 0 && backward < (1u << 20) + 4u * 8u * 16384u * sizeof(float) +
                                               2u * (8u << 20));
}

int main(void)
{
    test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp_accuracy),
        cmocka_unit_test(test_random_cases_match_reference),
        cmocka_unit_test(test_long_cases_match_reference),
        cmocka_unit_test(test_long_key_ranges_match_reference),
        cmocka_unit_test(test_causal_window_cases_match_reference),
        cmocka_unit_test(test_offset_cases_match_reference),
        cmocka_unit_test(test_decoding_rows_match_reference),
        cmocka_unit_test(test_causal_window_skips_keys_outside_it),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_single_key_rows_pass_no_score_gradient),
        cmocka_unit_test(test_entry_points_run_the_chosen_variant),
        cmocka_unit_test(test_bad_arguments_are_reported),
        cmocka_unit_test(test_workspace_is_linear_in_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
