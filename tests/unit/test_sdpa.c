/* The reference scaled dot-product attention against a float64 triple loop written
 * here, finite differences, dropout, the sliding window and ALiBi, threads and bad
 * input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grad_tolerance.h"
#include "testutil.h"

/* A mask as the test made it: stored shape, data, and the attn_mask describing it. */
typedef struct test_mask {
    bool present;
    attn_mask_type type;
    int ndim;
    int64_t shape[4];
    void *data;
    attn_mask mask;
} test_mask;

typedef struct sdpa_case {
    attn_sdpa_config cfg;
    test_mask attn, padding;
    float *q, *k, *v, *dout, *probe;
    float *out, *lse, *weights;
    float *slopes; /* (H) ALiBi slopes, or NULL */
    char desc[256];
} sdpa_case;

static size_t n_q(const attn_sdpa_config *c) { return (size_t)c->batch * c->heads * c->len_q; }
static size_t n_k(const attn_sdpa_config *c) { return (size_t)c->batch * c->heads * c->len_k; }

/* The stored element a broadcast mask reads at (b, h, i, j), found from its shape
 * alone (independently of attn_mask's strides). */
static size_t mask_index(const test_mask *m, const int64_t at[4])
{
    size_t index = 0;
    for (int d = 0; d < m->ndim; d++) {
        int64_t coord = at[4 - m->ndim + d];
        index = index * (size_t)m->shape[d] + (size_t)(m->shape[d] == 1 ? 0 : coord);
    }
    return index;
}

static size_t mask_numel(const test_mask *m)
{
    size_t n = 1;
    for (int d = 0; d < m->ndim; d++) n *= (size_t)m->shape[d];
    return n;
}

/* A random mask whose shape broadcasts to (B, H, Lq, Lk) with `ndim` dimensions,
 * each either full or 1 (or a fixed shape if `fixed` is given). */
static void make_mask(test_mask *m, attn_rng *rng, attn_mask_type type, const int64_t target[4],
                      const int64_t *fixed, int fixed_ndim, float masked_fraction)
{
    memset(m, 0, sizeof *m);
    m->present = true;
    m->type = type;
    if (fixed) {
        m->ndim = fixed_ndim;
        memcpy(m->shape, fixed, (size_t)fixed_ndim * sizeof *fixed);
    } else {
        m->ndim = 1 + (int)attn_rng_below(rng, 4);
        for (int d = 0; d < m->ndim; d++)
            m->shape[d] = attn_rng_below(rng, 3) ? target[4 - m->ndim + d] : 1;
    }
    size_t n = mask_numel(m);
    if (type == ATTN_MASK_FLOAT) {
        float *f = test_random(rng, n, -3.0f, 1.0f);
        for (size_t e = 0; e < n; e++)
            if (attn_rng_uniform(rng) < masked_fraction) f[e] = -INFINITY;
        m->data = f;
    } else {
        uint8_t *u = malloc(n);
        for (size_t e = 0; e < n; e++) {
            bool masked = attn_rng_uniform(rng) < masked_fraction;
            u[e] = (uint8_t)(type == ATTN_MASK_BOOL ? masked : !masked);
        }
        m->data = u;
    }
    assert_int_equal(attn_mask_init(&m->mask, type, m->data, m->ndim, m->shape, target), ATTN_OK);
}

static void free_case(sdpa_case *c)
{
    free(c->q), free(c->k), free(c->v), free(c->dout), free(c->probe);
    free(c->out), free(c->lse), free(c->weights);
    free(c->attn.data), free(c->padding.data), free(c->slopes);
    memset(c, 0, sizeof *c);
}

static void attach_masks(sdpa_case *c)
{
    c->cfg.attn_mask = c->attn.present ? &c->attn.mask : NULL;
    c->cfg.key_padding_mask = c->padding.present ? &c->padding.mask : NULL;
}

static void alloc_tensors(sdpa_case *c, attn_rng *rng)
{
    const attn_sdpa_config *g = &c->cfg;
    c->q = test_random(rng, n_q(g) * g->dim_qk, -1, 1);
    c->k = test_random(rng, n_k(g) * g->dim_qk, -1, 1);
    c->v = test_random(rng, n_k(g) * g->dim_v, -1, 1);
    c->dout = test_random(rng, n_q(g) * g->dim_v, -1, 1);
    c->probe = test_random(rng, n_q(g) * g->dim_v, -1, 1);
    c->out = test_zeros(n_q(g) * g->dim_v);
    c->lse = test_zeros(n_q(g));
    c->weights = test_zeros(n_q(g) * g->len_k);
}

enum { MASK_KINDS = 10 };

/* A random case of mask kind `kind` (0 .. MASK_KINDS-1) with lengths in
 * [min_len, max_len] and dimensions up to max_dim. */
static void make_case(sdpa_case *c, attn_rng *rng, int kind, int min_len, int max_len,
                      int max_dim, bool dropout)
{
    memset(c, 0, sizeof *c);
    attn_sdpa_config *g = &c->cfg;
    g->batch = 1 + (int)attn_rng_below(rng, 3);
    g->heads = 1 + (int)attn_rng_below(rng, 3);
    g->len_q = min_len + (int)attn_rng_below(rng, (uint32_t)(max_len - min_len + 1));
    g->len_k = min_len + (int)attn_rng_below(rng, (uint32_t)(max_len - min_len + 1));
    g->dim_qk = 1 + (int)attn_rng_below(rng, (uint32_t)max_dim);
    g->dim_v = 1 + (int)attn_rng_below(rng, (uint32_t)max_dim);
    g->scale = attn_rng_below(rng, 2) ? 0.0f : 0.3f + attn_rng_uniform(rng);
    g->dropout_p = dropout ? 0.1f + 0.5f * attn_rng_uniform(rng) : 0.0f;
    g->dropout_seed = attn_rng_u32(rng);
    const int64_t target[4] = {g->batch, g->heads, g->len_q, g->len_k};
    const int64_t padding_shape[4] = {g->batch, 1, 1, g->len_k};
    float frac = 0.2f + 0.4f * attn_rng_uniform(rng);
    switch (kind) {
    case 0: break;
    case 1: make_mask(&c->attn, rng, ATTN_MASK_BOOL, target, NULL, 0, frac); break;
    case 2: make_mask(&c->attn, rng, ATTN_MASK_BOOL_KEEP, target, NULL, 0, frac); break;
    case 3: make_mask(&c->attn, rng, ATTN_MASK_FLOAT, target, NULL, 0, frac); break;
    case 4: g->causal = true; break;
    case 5: make_mask(&c->padding, rng, ATTN_MASK_BOOL, target, padding_shape, 4, frac); break;
    case 6:
        g->causal = true;
        make_mask(&c->attn, rng, ATTN_MASK_BOOL, target, NULL, 0, frac);
        make_mask(&c->padding, rng, ATTN_MASK_BOOL, target, padding_shape, 4, frac);
        break;
    case 7:
        make_mask(&c->attn, rng, ATTN_MASK_FLOAT, target, NULL, 0, frac);
        make_mask(&c->padding, rng, ATTN_MASK_FLOAT, target, padding_shape, 4, frac);
        break;
    case 8:
        make_mask(&c->attn, rng, ATTN_MASK_BOOL, target, NULL, 0, frac);
        c->attn.mask.fill = true;
        c->attn.mask.fill_value = -1e20f / sqrtf((float)(g->heads * g->dim_qk));
        break;
    default:
        g->causal = attn_rng_below(rng, 2);
        make_mask(&c->attn, rng, ATTN_MASK_BOOL_KEEP, target, NULL, 0, frac);
        c->attn.mask.fill = true;
        c->attn.mask.fill_value = -2.0f * attn_rng_uniform(rng);
        make_mask(&c->padding, rng, ATTN_MASK_FLOAT, target, padding_shape, 4, frac);
        break;
    }
    attach_masks(c);
    /* Independently of the kind: a sliding window in a third of the cases (from 1,
     * only the query's own key, to past the longest row), ALiBi slopes in a third. */
    if (attn_rng_below(rng, 3) == 0) g->window = 1 + (int)attn_rng_below(rng, (uint32_t)max_len + 1);
    if (attn_rng_below(rng, 3) == 0) {
        c->slopes = test_random(rng, (size_t)g->heads, 0.0f, 1.0f);
        g->alibi_slopes = c->slopes;
    }
    alloc_tensors(c, rng);
    /* A query offset in a third of the cases: up to past the last key. */
    if (attn_rng_below(rng, 3) == 0) g->q_offset = (int)attn_rng_below(rng, (uint32_t)max_len + 3);
    snprintf(c->desc, sizeof c->desc,
             "kind %d B=%d H=%d Lq=%d Lk=%d D=%d Dv=%d scale=%g causal=%d window=%d alibi=%d "
             "q_offset=%d p=%g attn_mask ndim %d padding %d",
             kind, g->batch, g->heads, g->len_q, g->len_k, g->dim_qk, g->dim_v, (double)g->scale,
             g->causal, g->window, g->alibi_slopes != NULL, g->q_offset, (double)g->dropout_p,
             c->attn.present ? c->attn.ndim : 0, c->padding.present);
}

/* ---- the float64 reference ---------------------------------------------------- */

/* Each result with the sum of the absolute values of its terms ("_mag"), the
 * scale float32 rounding works on: a gradient that is small because its terms
 * cancel cannot be computed in float32 to better than about 1e-7 of them. */
typedef struct reference {
    double *out, *lse, *weights, *dq, *dk, *dv;
    double *out_mag, *dq_mag, *dk_mag, *dv_mag;
} reference;

/* The masked score in float64; *constant is set where a fill replaced it. */
static double ref_apply(const test_mask *m, double s, const int64_t at[4], bool *constant)
{
    if (!m->present) return s;
    size_t e = mask_index(m, at);
    if (m->type == ATTN_MASK_FLOAT) return s + ((const float *)m->data)[e];
    bool flag = ((const uint8_t *)m->data)[e] != 0;
    bool excluded = m->type == ATTN_MASK_BOOL ? flag : !flag;
    if (!excluded) return s;
    if (!m->mask.fill) return -INFINITY;
    *constant = true;
    return m->mask.fill_value;
}

static reference run_reference(const sdpa_case *c)
{
    const attn_sdpa_config *g = &c->cfg;
    const int B = g->batch, H = g->heads, Lq = g->len_q, Lk = g->len_k;
    const int D = g->dim_qk, Dv = g->dim_v;
    const double scale = g->scale != 0.0f ? (double)g->scale : 1.0 / sqrt((double)D);
    reference r;
    r.out = calloc(n_q(g) * Dv, sizeof(double));
    r.lse = calloc(n_q(g), sizeof(double));
    r.weights = calloc(n_q(g) * Lk, sizeof(double));
    r.dq = calloc(n_q(g) * D, sizeof(double));
    r.dk = calloc(n_k(g) * D, sizeof(double));
    r.dv = calloc(n_k(g) * Dv, sizeof(double));
    r.out_mag = calloc(n_q(g) * Dv, sizeof(double));
    r.dq_mag = calloc(n_q(g) * D, sizeof(double));
    r.dk_mag = calloc(n_k(g) * D, sizeof(double));
    r.dv_mag = calloc(n_k(g) * Dv, sizeof(double));
    double *s = malloc((size_t)Lk * sizeof *s), *p = malloc((size_t)Lk * sizeof *p);
    double *z = malloc((size_t)Lk * sizeof *z), *dp = malloc((size_t)Lk * sizeof *dp);
    double *dp_mag = malloc((size_t)Lk * sizeof *dp_mag);
    bool *constant = malloc((size_t)Lk * sizeof *constant);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Lq; i++) {
                const size_t row = ((size_t)b * H + h) * Lq + i;
                const size_t kv0 = ((size_t)b * H + h) * Lk;
                double max = -INFINITY;
                for (int j = 0; j < Lk; j++) {
                    double dot = 0.0;
                    for (int d = 0; d < D; d++)
                        dot += (double)c->q[row * D + d] * (double)c->k[(kv0 + j) * D + d];
                    const int pos = g->q_offset + i; /* the row's position among the keys */
                    s[j] = scale * dot;
                    if (g->alibi_slopes) s[j] -= (double)g->alibi_slopes[h] * abs(pos - j);
                    constant[j] = false;
                    if (g->causal && j > pos) s[j] = -INFINITY;
                    if (g->window > 0 && pos - j >= g->window) s[j] = -INFINITY;
                    const int64_t at[4] = {b, h, i, j};
                    s[j] = ref_apply(&c->attn, s[j], at, &constant[j]);
                    s[j] = ref_apply(&c->padding, s[j], at, &constant[j]);
                    if (s[j] > max) max = s[j];
                }
                if (max == -INFINITY) {
                    r.lse[row] = -INFINITY;
                    continue;
                }
                double sum = 0.0;
                for (int j = 0; j < Lk; j++) sum += exp(s[j] - max);
                r.lse[row] = max + log(sum);
                for (int j = 0; j < Lk; j++) {
                    p[j] = exp(s[j] - max) / sum;
                    uint64_t flat = (uint64_t)(row * Lk + j);
                    bool keep = g->dropout_p == 0.0f ||
                                attn_uniform_at(g->dropout_seed, flat) >= g->dropout_p;
                    z[j] = keep ? 1.0 / (1.0 - (double)g->dropout_p) : 0.0;
                    r.weights[row * Lk + j] = p[j] * z[j];
                    for (int e = 0; e < Dv; e++) {
                        double term = p[j] * z[j] * (double)c->v[(kv0 + j) * Dv + e];
                        r.out[row * Dv + e] += term;
                        r.out_mag[row * Dv + e] += fabs(term);
                    }
                }
                /* backward: dP = Z dP', dS = P (dP - sum_l P_l dP_l) */
                double pdp = 0.0;
                for (int j = 0; j < Lk; j++) {
                    double dpj = 0.0, dpj_mag = 0.0;
                    for (int e = 0; e < Dv; e++) {
                        double term = (double)c->dout[row * Dv + e] * c->v[(kv0 + j) * Dv + e];
                        dpj += term;
                        dpj_mag += fabs(term);
                    }
                    dp[j] = z[j] * dpj;
                    dp_mag[j] = z[j] * dpj_mag;
                    pdp += p[j] * dp[j];
                    for (int e = 0; e < Dv; e++) {
                        double term = p[j] * z[j] * (double)c->dout[row * Dv + e];
                        r.dv[(kv0 + j) * Dv + e] += term;
                        r.dv_mag[(kv0 + j) * Dv + e] += fabs(term);
                    }
                }
                double pdp_mag = 0.0;
                for (int j = 0; j < Lk; j++) pdp_mag += p[j] * dp_mag[j];
                for (int j = 0; j < Lk; j++) {
                    if (constant[j]) continue;
                    double ds = p[j] * (dp[j] - pdp);
                    double ds_mag = p[j] * (dp_mag[j] + pdp_mag);
                    for (int d = 0; d < D; d++) {
                        double kd = (double)c->k[(kv0 + j) * D + d];
                        double qd = (double)c->q[row * D + d];
                        r.dq[row * D + d] += scale * ds * kd;
                        r.dk[(kv0 + j) * D + d] += scale * ds * qd;
                        r.dq_mag[row * D + d] += fabs(scale * ds_mag * kd);
                        r.dk_mag[(kv0 + j) * D + d] += fabs(scale * ds_mag * qd);
                    }
                }
            }
    free(s), free(p), free(z), free(dp), free(dp_mag), free(constant);
    return r;
}

static void free_reference(reference *r)
{
    free(r->out), free(r->lse), free(r->weights), free(r->dq), free(r->dk), free(r->dv);
    free(r->out_mag), free(r->dq_mag), free(r->dk_mag), free(r->dv_mag);
}

/* max |a - ref| / max |mag| (mag = ref when NULL; at least 1e-6). */
static double compare(const float *a, const double *ref, const double *mag, size_t n)
{
    double diff = 0.0, scale = 1e-6;
    for (size_t e = 0; e < n; e++) {
        double d = fabs((double)a[e] - ref[e]);
        if (d > diff || isnan(d)) diff = isnan(d) ? INFINITY : d;
        double m = fabs(mag ? mag[e] : ref[e]);
        if (m > scale) scale = m;
    }
    return diff / scale;
}

/* Relative to max(max |lse|, 1); -inf (a fully masked row) must match exactly. */
static double compare_lse(const float *a, const double *ref, size_t n)
{
    double diff = 0.0, scale = 1.0;
    for (size_t e = 0; e < n; e++) {
        if (ref[e] == -INFINITY) {
            if (a[e] != -INFINITY) return INFINITY;
            continue;
        }
        double d = fabs((double)a[e] - ref[e]);
        if (d > diff || isnan(d)) diff = isnan(d) ? INFINITY : d;
        if (fabs(ref[e]) > scale) scale = fabs(ref[e]);
    }
    return diff / scale;
}

static double worst_seen;

static void expect_close(const char *what, double err, double limit, int case_number,
                         const sdpa_case *c)
{
    if (err > worst_seen) worst_seen = err;
    if (!(err <= limit))
        print_error("case %d (%s): %s error %g > %g\n", case_number, c->desc, what, err, limit);
    assert_true(err <= limit);
}

static void run_forward(sdpa_case *c)
{
    assert_int_equal(attn_sdpa_reference_forward(c->out, c->lse, c->weights, c->q, c->k, c->v, &c->cfg),
                     ATTN_OK);
}

static void check_against_reference(int case_number, bool dropout)
{
    attn_rng rng = test_rng((uint64_t)case_number);
    sdpa_case c;
    make_case(&c, &rng, case_number % MASK_KINDS, 1, 9, 17, dropout);
    const attn_sdpa_config *g = &c.cfg;
    run_forward(&c);
    float *dq = test_zeros(n_q(g) * g->dim_qk), *dk = test_zeros(n_k(g) * g->dim_qk);
    float *dv = test_zeros(n_k(g) * g->dim_v);
    assert_int_equal(attn_sdpa_reference_backward(dq, dk, dv, c.dout, c.q, c.k, c.v, c.lse, g),
                     ATTN_OK);
    reference r = run_reference(&c);
    expect_close("out", compare(c.out, r.out, r.out_mag, n_q(g) * g->dim_v), 1e-5, case_number,
                 &c);
    expect_close("lse", compare_lse(c.lse, r.lse, n_q(g)), 1e-5, case_number, &c);
    expect_close("weights", compare(c.weights, r.weights, NULL, n_q(g) * g->len_k), 1e-5,
                 case_number, &c);
    expect_close("dq", compare(dq, r.dq, r.dq_mag, n_q(g) * g->dim_qk), 1e-5, case_number, &c);
    expect_close("dk", compare(dk, r.dk, r.dk_mag, n_k(g) * g->dim_qk), 1e-5, case_number, &c);
    expect_close("dv", compare(dv, r.dv, r.dv_mag, n_k(g) * g->dim_v), 1e-5, case_number, &c);
    free_reference(&r);
    free(dq), free(dk), free(dv);
    free_case(&c);
}

static void test_matches_float64_reference(void **state)
{
    (void)state;
    for (int n = 0; n < 200; n++) check_against_reference(n, false);
    printf("largest error against the float64 reference: %g\n", worst_seen);
}

static void test_matches_float64_reference_with_dropout(void **state)
{
    (void)state;
    for (int n = 1000; n < 1100; n++) check_against_reference(n, true);
    printf("largest error against the float64 reference: %g\n", worst_seen);
}

/* ---- finite differences ---------------------------------------------------------- */

static double sdpa_loss(void *ctx)
{
    sdpa_case *c = ctx;
    run_forward(c);
    return test_dot(c->out, c->probe, n_q(&c->cfg) * c->cfg.dim_v);
}

static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int n = 0; n < 30; n++) {
        attn_rng rng = test_rng(2000 + (uint64_t)n);
        sdpa_case c;
        make_case(&c, &rng, n % MASK_KINDS, 1, 6, 7, n % 3 == 2);
        const attn_sdpa_config *g = &c.cfg;
        run_forward(&c);
        const double magnitude = loss_magnitude(c.out, c.probe, n_q(g) * g->dim_v);
        float *dq = test_zeros(n_q(g) * g->dim_qk), *dk = test_zeros(n_k(g) * g->dim_qk);
        float *dv = test_zeros(n_k(g) * g->dim_v);
        assert_int_equal(attn_sdpa_reference_backward(dq, dk, dv, c.probe, c.q, c.k, c.v, c.lse, g),
                         ATTN_OK);
        struct {
            const char *name;
            float *x, *grad;
            size_t n;
        } inputs[3] = {{"dq", c.q, dq, n_q(g) * g->dim_qk},
                       {"dk", c.k, dk, n_k(g) * g->dim_qk},
                       {"dv", c.v, dv, n_k(g) * g->dim_v}};
        for (int t = 0; t < 3; t++) {
            double err = gradcheck_error(test_gradcheck(inputs[t].x, inputs[t].n, inputs[t].grad,
                                                        sdpa_loss, &c, 1e-2f),
                                         inputs[t].grad, inputs[t].n, magnitude);
            if (err > worst) worst = err;
            if (!(err <= 1e-3))
                print_error("case %d (%s): %s finite-difference error %g\n", n, c.desc,
                            inputs[t].name, err);
            assert_true(err <= 1e-3);
        }
        free(dq), free(dk), free(dv);
        free_case(&c);
    }
    printf("largest finite-difference error: %g\n", worst);
}

/* ---- masks --------------------------------------------------------------------- */

static bool all_finite(const float *x, size_t n)
{
    for (size_t e = 0; e < n; e++)
        if (!isfinite(x[e])) return false;
    return true;
}

/* A bool mask excluding every key of query 0 (and half of those of the others). */
static void make_row_masked_case(sdpa_case *c, attn_rng *rng, bool keep_type, bool fill)
{
    memset(c, 0, sizeof *c);
    attn_sdpa_config *g = &c->cfg;
    *g = (attn_sdpa_config){.batch = 2, .heads = 2, .len_q = 4, .len_k = 5, .dim_qk = 3,
                            .dim_v = 6};
    const int64_t target[4] = {2, 2, 4, 5}, shape[2] = {4, 5};
    make_mask(&c->attn, rng, keep_type ? ATTN_MASK_BOOL_KEEP : ATTN_MASK_BOOL, target, shape, 2,
              0.5f);
    uint8_t *u = c->attn.data;
    for (int j = 0; j < 5; j++) u[j] = keep_type ? 0 : 1;
    if (fill) {
        c->attn.mask.fill = true;
        c->attn.mask.fill_value = -1e20f / sqrtf(6.0f);
    }
    attach_masks(c);
    alloc_tensors(c, rng);
}

static void test_fully_masked_row_gives_zeros(void **state)
{
    (void)state;
    attn_rng rng = test_rng(3000);
    for (int keep_type = 0; keep_type < 2; keep_type++) {
        sdpa_case c;
        make_row_masked_case(&c, &rng, keep_type, false);
        const attn_sdpa_config *g = &c.cfg;
        run_forward(&c);
        float *dq = test_zeros(n_q(g) * 3), *dk = test_zeros(n_k(g) * 3);
        float *dv = test_zeros(n_k(g) * 6);
        assert_int_equal(attn_sdpa_reference_backward(dq, dk, dv, c.dout, c.q, c.k, c.v, c.lse, g),
                         ATTN_OK);
        for (int bh = 0; bh < 4; bh++) {
            const size_t row0 = (size_t)bh * 4;
            assert_true(c.lse[row0] == -INFINITY);
            for (int e = 0; e < 6; e++) assert_true(c.out[row0 * 6 + e] == 0.0f);
            for (int j = 0; j < 5; j++) assert_true(c.weights[row0 * 5 + j] == 0.0f);
            for (int d = 0; d < 3; d++) assert_true(dq[row0 * 3 + d] == 0.0f);
        }
        assert_true(all_finite(c.out, n_q(g) * 6));
        assert_true(all_finite(c.weights, n_q(g) * 5));
        assert_true(all_finite(dq, n_q(g) * 3));
        assert_true(all_finite(dk, n_k(g) * 3));
        assert_true(all_finite(dv, n_k(g) * 6));
        free(dq), free(dk), free(dv);
        free_case(&c);
    }
}

/* masked_fill with a finite value (the seed's -1e20) makes a fully masked row
 * uniform, and those scores no longer depend on q or k. */
static void test_filling_mask_gives_uniform_rows(void **state)
{
    (void)state;
    attn_rng rng = test_rng(3100);
    sdpa_case c;
    make_row_masked_case(&c, &rng, true, true);
    const attn_sdpa_config *g = &c.cfg;
    run_forward(&c);
    float *dq = test_zeros(n_q(g) * 3), *dk = test_zeros(n_k(g) * 3), *dv = test_zeros(n_k(g) * 6);
    assert_int_equal(attn_sdpa_reference_backward(dq, dk, dv, c.dout, c.q, c.k, c.v, c.lse, g),
                     ATTN_OK);
    for (int bh = 0; bh < 4; bh++) {
        const size_t row0 = (size_t)bh * 4;
        assert_true(isfinite(c.lse[row0]));
        for (int j = 0; j < 5; j++) assert_true(fabsf(c.weights[row0 * 5 + j] - 0.2f) < 1e-6f);
        for (int e = 0; e < 6; e++) {
            float mean = 0.0f;
            for (int j = 0; j < 5; j++) mean += 0.2f * c.v[((size_t)bh * 5 + j) * 6 + e];
            assert_true(fabsf(c.out[row0 * 6 + e] - mean) < 1e-5f);
        }
        for (int d = 0; d < 3; d++) assert_true(dq[row0 * 3 + d] == 0.0f);
    }
    free(dq), free(dk), free(dv);
    free_case(&c);
}

static void test_weights_rows_sum_to_one(void **state)
{
    (void)state;
    for (int n = 0; n < 40; n++) {
        attn_rng rng = test_rng(3200 + (uint64_t)n);
        sdpa_case c;
        make_case(&c, &rng, n % MASK_KINDS, 1, 12, 9, false);
        run_forward(&c);
        for (size_t row = 0; row < n_q(&c.cfg); row++) {
            double sum = 0.0;
            for (int j = 0; j < c.cfg.len_k; j++) sum += c.weights[row * c.cfg.len_k + j];
            bool masked = c.lse[row] == -INFINITY;
            if (fabs(sum - (masked ? 0.0 : 1.0)) > 1e-5)
                print_error("case %d (%s): row %zu sums to %.9g\n", n, c.desc, row, sum);
            assert_true(fabs(sum - (masked ? 0.0 : 1.0)) <= 1e-5);
        }
        free_case(&c);
    }
}

static void test_default_scale_is_inverse_sqrt_dim(void **state)
{
    (void)state;
    attn_rng rng = test_rng(3300);
    sdpa_case c;
    make_case(&c, &rng, 0, 1, 8, 16, false);
    size_t n = n_q(&c.cfg) * c.cfg.dim_v;
    c.cfg.scale = 0.0f;
    run_forward(&c);
    float *first = malloc(n * sizeof *first);
    memcpy(first, c.out, n * sizeof *first);
    c.cfg.scale = 1.0f / sqrtf((float)c.cfg.dim_qk);
    run_forward(&c);
    assert_memory_equal(first, c.out, n * sizeof *first);
    free(first);
    free_case(&c);
}

/* ---- the sliding window and ALiBi -------------------------------------------------- */

/* With q = 0 every score is the ALiBi bias alone, so the weights are known in
 * closed form: w_ij = exp(-m_h |i - j|) / Z_i over the keys the causal mask and
 * the window leave (i - window < j, and j <= i under causal). Checked for the
 * reference's weights and for out of both implementations (attn_sdpa_forward
 * without weights runs the fused kernel). */
static void test_window_and_alibi_follow_their_definitions(void **state)
{
    (void)state;
    enum { H = 2, LQ = 11, LK = 9, D = 3, DV = 4 };
    const float slopes[H] = {0.5f, 0.125f};
    const struct {
        bool causal;
        int window;
    } variants[] = {{false, 0}, {false, 1}, {false, 3}, {true, 1}, {true, 4}, {true, 20}};
    attn_rng rng = test_rng(3400);
    float q[H * LQ * D] = {0}, k[H * LK * D], v[H * LK * DV];
    for (int e = 0; e < H * LK * D; e++) k[e] = 2.0f * attn_rng_uniform(&rng) - 1.0f;
    for (int e = 0; e < H * LK * DV; e++) v[e] = 2.0f * attn_rng_uniform(&rng) - 1.0f;
    for (size_t n = 0; n < sizeof variants / sizeof variants[0]; n++) {
        attn_sdpa_config cfg = {.batch = 1, .heads = H, .len_q = LQ, .len_k = LK, .dim_qk = D,
                                .dim_v = DV, .causal = variants[n].causal,
                                .window = variants[n].window, .alibi_slopes = slopes};
        float out[H * LQ * DV], fused_out[H * LQ * DV], lse[H * LQ], weights[H * LQ * LK];
        assert_int_equal(attn_sdpa_reference_forward(out, lse, weights, q, k, v, &cfg), ATTN_OK);
        assert_int_equal(attn_sdpa_forward(fused_out, lse, NULL, q, k, v, &cfg), ATTN_OK);
        for (int h = 0; h < H; h++)
            for (int i = 0; i < LQ; i++) {
                double want[LK], z = 0.0;
                for (int j = 0; j < LK; j++) {
                    bool seen = (!cfg.causal || j <= i) && (cfg.window == 0 || i - j < cfg.window);
                    want[j] = seen ? exp(-(double)slopes[h] * abs(i - j)) : 0.0;
                    z += want[j];
                }
                for (int e = 0; e < DV; e++) {
                    double o = 0.0;
                    for (int j = 0; j < LK; j++)
                        o += (z > 0.0 ? want[j] / z : 0.0) * v[(h * LK + j) * DV + e];
                    assert_true(fabs(out[(h * LQ + i) * DV + e] - o) <= 1e-6);
                    assert_true(fabs(fused_out[(h * LQ + i) * DV + e] - o) <= 1e-6);
                }
                for (int j = 0; j < LK; j++) {
                    double w = z > 0.0 ? want[j] / z : 0.0;
                    if (!(fabs(weights[(h * LQ + i) * LK + j] - w) <= 1e-6))
                        print_error("causal %d window %d: w[%d][%d][%d] = %g, want %g\n",
                                    cfg.causal, cfg.window, h, i, j,
                                    (double)weights[(h * LQ + i) * LK + j], w);
                    assert_true(fabs(weights[(h * LQ + i) * LK + j] - w) <= 1e-6);
                }
            }
    }
}

/* q_offset = Lk - Lq aligns the causal mask at the bottom right, as PyTorch's
 * causal_lower_right does for Lq <= Lk: row i sees keys j <= i + Lk - Lq, so the
 * last row sees every key. Checked on the reference's weights and on the fused
 * kernel's output against the same rows computed one at a time as single queries
 * (Lq = 1) at their positions, which is what a decoder with a cache does. */
static void test_offset_aligns_causal_at_the_bottom_right(void **state)
{
    (void)state;
    enum { H = 2, LQ = 5, LK = 13, D = 6, DV = 3 };
    const float slopes[H] = {0.5f, 0.0625f};
    attn_rng rng = test_rng(3500);
    float *q = test_random(&rng, H * LQ * D, -1, 1), *k = test_random(&rng, H * LK * D, -1, 1);
    float *v = test_random(&rng, H * LK * DV, -1, 1);
    for (int alibi = 0; alibi < 2; alibi++) {
        attn_sdpa_config cfg = {.batch = 1, .heads = H, .len_q = LQ, .len_k = LK, .dim_qk = D,
                                .dim_v = DV, .causal = true, .window = alibi ? 4 : 0,
                                .q_offset = LK - LQ, .alibi_slopes = alibi ? slopes : NULL};
        float out[H * LQ * DV], fused[H * LQ * DV], lse[H * LQ], weights[H * LQ * LK];
        assert_int_equal(attn_sdpa_reference_forward(out, lse, weights, q, k, v, &cfg), ATTN_OK);
        assert_int_equal(attn_sdpa_forward(fused, lse, NULL, q, k, v, &cfg), ATTN_OK);
        for (int h = 0; h < H; h++)
            for (int i = 0; i < LQ; i++) {
                for (int j = 0; j < LK; j++) {
                    const int pos = i + LK - LQ;
                    const bool seen = j <= pos && (!cfg.window || pos - j < cfg.window);
                    assert_true(seen == (weights[(h * LQ + i) * LK + j] > 0.0f));
                }
                /* the same row alone: one query at position i + Lk - Lq over its keys */
                attn_sdpa_config one = cfg;
                one.heads = 1;
                one.len_q = 1;
                one.len_k = i + LK - LQ + 1;
                one.q_offset = i + LK - LQ;
                one.alibi_slopes = alibi ? &slopes[h] : NULL;
                float row[DV], row_lse;
                assert_int_equal(attn_sdpa_forward(row, &row_lse, NULL, q + (h * LQ + i) * D,
                                                   k + h * LK * D, v + h * LK * DV, &one),
                                 ATTN_OK);
                for (int e = 0; e < DV; e++) {
                    assert_true(fabsf(row[e] - out[(h * LQ + i) * DV + e]) <= 1e-6f);
                    assert_true(fabsf(row[e] - fused[(h * LQ + i) * DV + e]) <= 1e-6f);
                }
            }
    }
    free(q), free(k), free(v);
}

/* ---- dropout ------------------------------------------------------------------- */

static void test_dropout_is_a_function_of_the_seed(void **state)
{
    (void)state;
    attn_rng rng = test_rng(4000);
    sdpa_case c;
    memset(&c, 0, sizeof c);
    c.cfg = (attn_sdpa_config){.batch = 2, .heads = 2, .len_q = 64, .len_k = 64, .dim_qk = 8,
                               .dim_v = 8, .dropout_p = 0.3f, .dropout_seed = 77};
    alloc_tensors(&c, &rng);
    const size_t n_out = n_q(&c.cfg) * 8, n_w = n_q(&c.cfg) * 64;
    float *out1 = malloc(n_out * sizeof(float)), *w1 = malloc(n_w * sizeof(float));
    run_forward(&c);
    memcpy(out1, c.out, n_out * sizeof(float));
    memcpy(w1, c.weights, n_w * sizeof(float));
    run_forward(&c);
    assert_memory_equal(out1, c.out, n_out * sizeof(float));
    c.cfg.dropout_seed = 78;
    run_forward(&c);
    assert_true(memcmp(out1, c.out, n_out * sizeof(float)) != 0);

    /* Kept entries are the undropped weights scaled by 1 / (1 - p). */
    c.cfg.dropout_p = 0.0f;
    run_forward(&c);
    size_t kept = 0;
    for (size_t e = 0; e < n_w; e++) {
        if (w1[e] == 0.0f) continue;
        kept++;
        assert_true(fabsf(w1[e] - c.weights[e] / 0.7f) <= 1e-6f * fmaxf(1.0f, w1[e]));
    }
    double fraction = (double)kept / (double)n_w;
    if (fabs(fraction - 0.7) > 0.02) print_error("kept fraction %g, expected 0.7\n", fraction);
    assert_true(fabs(fraction - 0.7) <= 0.02);
    free(out1), free(w1);
    free_case(&c);
}

/* ---- threads --------------------------------------------------------------------- */

static void run_all(sdpa_case *c, float *dq, float *dk, float *dv, int threads)
{
    assert_int_equal(attn_set_num_threads(threads), ATTN_OK);
    run_forward(c);
    const attn_sdpa_config *g = &c->cfg;
    memset(dq, 0, n_q(g) * g->dim_qk * sizeof *dq);
    memset(dk, 0, n_k(g) * g->dim_qk * sizeof *dk);
    memset(dv, 0, n_k(g) * g->dim_v * sizeof *dv);
    assert_int_equal(attn_sdpa_reference_backward(dq, dk, dv, c->dout, c->q, c->k, c->v, c->lse, g),
                     ATTN_OK);
}

static void test_thread_count_does_not_change_results(void **state)
{
    (void)state;
    for (int n = 0; n < 10; n++) {
        attn_rng rng = test_rng(5000 + (uint64_t)n);
        sdpa_case c;
        make_case(&c, &rng, n % MASK_KINDS, 32, 48, 24, n % 2); /* big enough for threads */
        const attn_sdpa_config *g = &c.cfg;
        const size_t sizes[6] = {n_q(g) * g->dim_v, n_q(g), n_q(g) * g->len_k,
                                 n_q(g) * g->dim_qk, n_k(g) * g->dim_qk, n_k(g) * g->dim_v};
        float *one[6], *two[6];
        for (int t = 0; t < 6; t++) one[t] = test_zeros(sizes[t]), two[t] = test_zeros(sizes[t]);
        run_all(&c, one[3], one[4], one[5], 1);
        memcpy(one[0], c.out, sizes[0] * sizeof(float));
        memcpy(one[1], c.lse, sizes[1] * sizeof(float));
        memcpy(one[2], c.weights, sizes[2] * sizeof(float));
        run_all(&c, two[3], two[4], two[5], 2);
        memcpy(two[0], c.out, sizes[0] * sizeof(float));
        memcpy(two[1], c.lse, sizes[1] * sizeof(float));
        memcpy(two[2], c.weights, sizes[2] * sizeof(float));
        for (int t = 0; t < 6; t++) {
            if (memcmp(one[t], two[t], sizes[t] * sizeof(float)) != 0)
                print_error("case %d (%s): output %d differs between 1 and 2 threads\n", n, c.desc,
                            t);
            assert_memory_equal(one[t], two[t], sizes[t] * sizeof(float));
            free(one[t]), free(two[t]);
        }
        free_case(&c);
    }
}

/* ---- NaN ------------------------------------------------------------------------ */

static bool row_is_nan(const float *x, size_t row, int n)
{
    for (int e = 0; e < n; e++)
        if (!isnan(x[row * n + e])) return false;
    return true;
}

static bool row_is_finite(const float *x, size_t row, int n)
{
    return all_finite(x + row * n, (size_t)n);
}

/* What NaN does (as in PyTorch, where it depends on the NaN):
 *  - NaN in q row i makes out row i and lse i NaN, and nothing else;
 *  - NaN in k_j reaches the rows that can attend key j; a row for which j is
 *    causally masked never computes that score and stays finite;
 *  - NaN in v_j reaches every row of its (b, h) with a live key, since
 *    out = sum_j P'_ij v_j includes 0 * NaN; other (b, h) stay finite. */
static void test_nan_propagates(void **state)
{
    (void)state;
    attn_rng rng = test_rng(6000);
    sdpa_case c;
    memset(&c, 0, sizeof c);
    c.cfg = (attn_sdpa_config){.batch = 1, .heads = 2, .len_q = 5, .len_k = 5, .dim_qk = 4,
                               .dim_v = 3, .causal = true};
    alloc_tensors(&c, &rng);
    c.q[2 * 4 + 1] = NAN; /* head 0, query 2 */
    run_forward(&c);
    for (size_t row = 0; row < 10; row++) {
        if (row == 2) {
            assert_true(row_is_nan(c.out, row, 3));
            assert_true(isnan(c.lse[row]));
        } else {
            assert_true(row_is_finite(c.out, row, 3));
        }
    }
    c.q[2 * 4 + 1] = 0.5f;
    c.k[3 * 4] = NAN; /* head 0, key 3: rows 3 and 4 of head 0 see it */
    run_forward(&c);
    for (size_t row = 0; row < 10; row++) {
        if (row == 3 || row == 4) assert_true(row_is_nan(c.out, row, 3));
        else assert_true(row_is_finite(c.out, row, 3));
    }
    c.k[3 * 4] = 0.5f;
    c.v[(5 + 1) * 3] = NAN; /* head 1, value 1 */
    run_forward(&c);
    for (size_t row = 0; row < 10; row++) {
        if (row < 5) assert_true(row_is_finite(c.out, row, 3));
        else assert_true(isnan(c.out[row * 3]));
    }
    free_case(&c);
}

/* ---- bad input ------------------------------------------------------------------ */

static void test_bad_input_is_rejected(void **state)
{
    (void)state;
    const attn_sdpa_config good = {.batch = 1, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 2,
                                   .dim_v = 2};
    const float nan_slope[2] = {0.5f, NAN}, inf_slope[2] = {-INFINITY, 0.5f};
    float buf[16] = {0}, lse[2];
    assert_int_equal(attn_sdpa_check(&good), ATTN_OK);
    struct {
        const char *field;
        attn_sdpa_config cfg;
    } bad[] = {
        {"batch", {.batch = 0, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 2, .dim_v = 2}},
        {"heads", {.batch = 1, .heads = -1, .len_q = 2, .len_k = 2, .dim_qk = 2, .dim_v = 2}},
        {"len_q", {.batch = 1, .heads = 1, .len_q = 0, .len_k = 2, .dim_qk = 2, .dim_v = 2}},
        {"len_k", {.batch = 1, .heads = 1, .len_q = 2, .len_k = 0, .dim_qk = 2, .dim_v = 2}},
        {"dim_qk", {.batch = 1, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 0, .dim_v = 2}},
        {"dim_v", {.batch = 1, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 2, .dim_v = 0}},
        {"dropout_p",
         {.batch = 1, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 2, .dim_v = 2,
          .dropout_p = 1.0f}},
        {"dropout_p",
         {.batch = 1, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 2, .dim_v = 2,
          .dropout_p = -0.1f}},
        {"dropout_p",
         {.batch = 1, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 2, .dim_v = 2,
          .dropout_p = NAN}},
        {"scale",
         {.batch = 1, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 2, .dim_v = 2,
          .scale = INFINITY}},
        {"scale",
         {.batch = 1, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 2, .dim_v = 2,
          .scale = NAN}},
        {"window",
         {.batch = 1, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 2, .dim_v = 2,
          .window = -1}},
        {"q_offset",
         {.batch = 1, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 2, .dim_v = 2,
          .q_offset = -1}},
        {"q_offset",
         {.batch = 1, .heads = 1, .len_q = 2, .len_k = 2, .dim_qk = 2, .dim_v = 2,
          .q_offset = INT_MAX - 1}},
        {"alibi_slopes[1]",
         {.batch = 1, .heads = 2, .len_q = 2, .len_k = 2, .dim_qk = 2, .dim_v = 2,
          .alibi_slopes = nan_slope}},
        {"alibi_slopes[0]",
         {.batch = 1, .heads = 2, .len_q = 2, .len_k = 2, .dim_qk = 2, .dim_v = 2,
          .alibi_slopes = inf_slope}},
    };
    for (size_t t = 0; t < sizeof bad / sizeof bad[0]; t++) {
        test_expect_invalid(attn_sdpa_check(&bad[t].cfg), bad[t].field);
        test_expect_invalid(attn_sdpa_reference_forward(buf, lse, NULL, buf, buf, buf, &bad[t].cfg),
                       bad[t].field);
        test_expect_invalid(attn_sdpa_reference_backward(buf, buf, buf, buf, buf, buf, buf, lse, &bad[t].cfg),
                       bad[t].field);
    }
    test_expect_invalid(attn_sdpa_check(NULL), "config");
    test_expect_invalid(attn_sdpa_reference_forward(NULL, lse, NULL, buf, buf, buf, &good), "out");
    test_expect_invalid(attn_sdpa_reference_forward(buf, NULL, NULL, buf, buf, buf, &good), "lse");
    test_expect_invalid(attn_sdpa_reference_forward(buf, lse, NULL, NULL, buf, buf, &good), "q is NULL");
    test_expect_invalid(attn_sdpa_reference_forward(buf, lse, NULL, buf, NULL, buf, &good), "k is NULL");
    test_expect_invalid(attn_sdpa_reference_forward(buf, lse, NULL, buf, buf, NULL, &good), "v is NULL");
    test_expect_invalid(attn_sdpa_reference_backward(buf, buf, buf, NULL, buf, buf, buf, lse, &good),
                   "dout");
    test_expect_invalid(attn_sdpa_reference_backward(buf, buf, buf, buf, buf, buf, buf, NULL, &good),
                   "lse");
    /* Gradients are optional. */
    assert_int_equal(attn_sdpa_reference_forward(buf, lse, NULL, buf, buf, buf, &good), ATTN_OK);
    assert_int_equal(attn_sdpa_reference_backward(NULL, NULL, NULL, buf, buf, buf, buf, lse, &good),
                     ATTN_OK);
    attn_mask no_data = {.type = ATTN_MASK_BOOL};
    attn_sdpa_config masked = good;
    masked.attn_mask = &no_data;
    test_expect_invalid(attn_sdpa_reference_forward(buf, lse, NULL, buf, buf, buf, &masked), "attn_mask");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_float64_reference),
        cmocka_unit_test(test_matches_float64_reference_with_dropout),
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_fully_masked_row_gives_zeros),
        cmocka_unit_test(test_filling_mask_gives_uniform_rows),
        cmocka_unit_test(test_weights_rows_sum_to_one),
        cmocka_unit_test(test_default_scale_is_inverse_sqrt_dim),
        cmocka_unit_test(test_window_and_alibi_follow_their_definitions),
        cmocka_unit_test(test_offset_aligns_causal_at_the_bottom_right),
        cmocka_unit_test(test_dropout_is_a_function_of_the_seed),
        cmocka_unit_test(test_thread_count_does_not_change_results),
        cmocka_unit_test(test_nan_propagates),
        cmocka_unit_test(test_bad_input_is_rejected),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
