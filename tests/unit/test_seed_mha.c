/* The seed article's MultiHeadAttention: against a float64 transcription of its
 * forward, finite differences, its mask quirks and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grad_tolerance.h"
#include "testutil.h"

enum mask_kind { NO_MASK, PADDING_MASK, CAUSAL_MASK, RANDOM_MASK, MASK_KINDS };

typedef struct seed_case {
    int E, heads, N, Lq, Lk;
    attn_seed_mha *m;
    float *values, *keys, *query, *out, *weights, *probe;
    uint8_t *mask_data;
    int64_t mask_shape[4]; /* always 4-D here: (N or 1, H or 1, Lq or 1, Lk) */
    attn_mask mask;
    bool masked;
    char desc[200];
} seed_case;

static size_t q_size(const seed_case *c) { return (size_t)c->N * c->Lq * c->E; }
static size_t k_size(const seed_case *c) { return (size_t)c->N * c->Lk * c->E; }
static size_t w_size(const seed_case *c) { return (size_t)c->N * c->heads * c->Lq * c->Lk; }

static uint8_t mask_at(const seed_case *c, int n, int h, int i, int j)
{
    const int64_t *s = c->mask_shape;
    size_t at = (((size_t)(s[0] == 1 ? 0 : n) * s[1] + (s[1] == 1 ? 0 : h)) * s[2] +
                 (s[2] == 1 ? 0 : i)) * s[3] + j;
    return c->mask_data[at];
}

static void make_mask(seed_case *c, attn_rng *rng, enum mask_kind kind)
{
    const int64_t target[4] = {c->N, c->heads, c->Lq, c->Lk};
    int64_t *s = c->mask_shape;
    switch (kind) {
    case NO_MASK: return;
    case PADDING_MASK: s[0] = c->N, s[1] = 1, s[2] = 1, s[3] = c->Lk; break;
    case CAUSAL_MASK: s[0] = c->N, s[1] = 1, s[2] = c->Lq, s[3] = c->Lk; break;
    default:
        s[0] = attn_rng_below(rng, 2) ? c->N : 1, s[1] = attn_rng_below(rng, 2) ? c->heads : 1;
        s[2] = c->Lq, s[3] = c->Lk;
        break;
    }
    size_t n = (size_t)(s[0] * s[1] * s[2] * s[3]);
    c->mask_data = malloc(n);
    for (size_t e = 0; e < n; e++) {
        size_t j = e % (size_t)s[3], i = e / (size_t)s[3] % (size_t)s[2];
        if (kind == CAUSAL_MASK) c->mask_data[e] = j <= i; /* the seed's tril */
        else c->mask_data[e] = attn_rng_uniform(rng) < 0.6f;
    }
    assert_int_equal(attn_mask_init(&c->mask, ATTN_MASK_BOOL_KEEP, c->mask_data, 4, s, target),
                     ATTN_OK);
    c->masked = true;
}

static void make_case(seed_case *c, attn_rng *rng, int max_heads, int max_head_dim, int max_len)
{
    memset(c, 0, sizeof *c);
    c->heads = 1 + (int)attn_rng_below(rng, (uint32_t)max_heads);
    c->E = c->heads * (1 + (int)attn_rng_below(rng, (uint32_t)max_head_dim));
    c->N = 1 + (int)attn_rng_below(rng, 3);
    c->Lq = 1 + (int)attn_rng_below(rng, (uint32_t)max_len);
    c->Lk = 1 + (int)attn_rng_below(rng, (uint32_t)max_len);
    assert_int_equal(attn_seed_mha_create(&c->m, c->E, c->heads, attn_rng_u32(rng)), ATTN_OK);
    attn_params *p = attn_seed_mha_params(c->m);
    attn_rng_fill_uniform(rng, p->data, p->total, -0.8f, 0.8f);
    c->values = test_random(rng, k_size(c), -1, 1);
    c->keys = test_random(rng, k_size(c), -1, 1);
    c->query = test_random(rng, q_size(c), -1, 1);
    c->out = test_zeros(q_size(c));
    c->weights = test_zeros(w_size(c));
    c->probe = test_random(rng, q_size(c), -1, 1);
    enum mask_kind kind = (enum mask_kind)attn_rng_below(rng, MASK_KINDS);
    make_mask(c, rng, kind);
    snprintf(c->desc, sizeof c->desc, "E=%d heads=%d N=%d Lq=%d Lk=%d mask kind %d", c->E,
             c->heads, c->N, c->Lq, c->Lk, (int)kind);
}

static void free_case(seed_case *c)
{
    attn_seed_mha_free(c->m);
    free(c->values), free(c->keys), free(c->query), free(c->out), free(c->weights);
    free(c->probe), free(c->mask_data);
}

static void run_forward(seed_case *c)
{
    attn_status s = attn_seed_mha_forward(c->m, c->out, c->weights, c->values, c->keys, c->query,
                                          c->N, c->Lk, c->Lq, c->masked ? &c->mask : NULL);
    if (s != ATTN_OK) print_error("%s: forward failed: %s\n", c->desc, attn_last_error());
    assert_int_equal(s, ATTN_OK);
}

/* ---- the seed's forward, line by line, in float64 ----------------------------------- */

/* self.values(values.reshape(N, L, heads, head_dim)): every head's slice times W^T. */
static double *per_head_linear(const float *x, const float *w, size_t rows, int hd)
{
    double *y = malloc(rows * (size_t)hd * sizeof *y);
    for (size_t r = 0; r < rows; r++)
        for (int o = 0; o < hd; o++) {
            double sum = 0.0;
            for (int i = 0; i < hd; i++) sum += (double)x[r * hd + i] * w[(size_t)o * hd + i];
            y[r * hd + o] = sum;
        }
    return y;
}

/* -> out, attention, and *magnitude: the largest, over the outputs, of the sum of
 * the absolute values of the terms each output adds up (|b| + sum |concat| |w|,
 * with |concat| = sum a |v|). An output that cancels to nearly zero (E = 1 gives a
 * single one) is known in float32 only to a rounding of those terms, so its error
 * is measured against them, not against the small result. */
static void reference_forward(const seed_case *c, double *out, double *attention,
                              double *magnitude)
{
    attn_params *p = attn_seed_mha_params(c->m);
    const int E = c->E, H = c->heads, hd = E / H, N = c->N, Lq = c->Lq, Lk = c->Lk;
    double *v = per_head_linear(c->values, attn_params_data(p, "values.weight"),
                                (size_t)N * Lk * H, hd);
    double *k = per_head_linear(c->keys, attn_params_data(p, "keys.weight"), (size_t)N * Lk * H,
                                hd);
    double *q = per_head_linear(c->query, attn_params_data(p, "queries.weight"),
                                (size_t)N * Lq * H, hd);
    double *concat = calloc((size_t)N * Lq * E, sizeof *concat);
    double *concat_abs = calloc((size_t)N * Lq * E, sizeof *concat_abs);
    double *energy = malloc((size_t)Lk * sizeof *energy);
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Lq; i++) {
                double max = -INFINITY;
                for (int j = 0; j < Lk; j++) {
                    double e = 0.0; /* einsum("nqhd,nkhd->nhqk") */
                    for (int d = 0; d < hd; d++)
                        e += q[(((size_t)n * Lq + i) * H + h) * hd + d] *
                             k[(((size_t)n * Lk + j) * H + h) * hd + d];
                    if (c->masked && mask_at(c, n, h, i, j) == 0) e = (double)-1e20f;
                    energy[j] = e / sqrt((double)E);
                    if (energy[j] > max) max = energy[j];
                }
                double sum = 0.0;
                for (int j = 0; j < Lk; j++) sum += exp(energy[j] - max);
                double *a = attention + (((size_t)n * H + h) * Lq + i) * Lk;
                for (int j = 0; j < Lk; j++) {
                    a[j] = exp(energy[j] - max) / sum;
                    for (int d = 0; d < hd; d++) { /* einsum("nhql,nlhd->nqhd") */
                        const size_t at = ((size_t)n * Lq + i) * E + (size_t)h * hd + d;
                        const double term = a[j] * v[(((size_t)n * Lk + j) * H + h) * hd + d];
                        concat[at] += term;
                        concat_abs[at] += fabs(term);
                    }
                }
            }
    const float *w = attn_params_data(p, "fc_out.weight"), *b = attn_params_data(p, "fc_out.bias");
    *magnitude = 0.0;
    for (size_t r = 0; r < (size_t)N * Lq; r++)
        for (int o = 0; o < E; o++) {
            double sum = b[o], terms = fabs(b[o]);
            for (int e = 0; e < E; e++) {
                sum += concat[r * E + e] * w[(size_t)o * E + e];
                terms += concat_abs[r * E + e] * fabs(w[(size_t)o * E + e]);
            }
            out[r * E + o] = sum;
            *magnitude = fmax(*magnitude, terms);
        }
    free(v), free(k), free(q), free(concat), free(concat_abs), free(energy);
}

static void test_matches_the_seed_in_float64(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int n = 0; n < 100; n++) {
        attn_rng rng = test_rng((uint64_t)n);
        seed_case c;
        make_case(&c, &rng, 4, 6, 8);
        run_forward(&c);
        double *out = malloc(q_size(&c) * sizeof *out), *att = malloc(w_size(&c) * sizeof *att);
        double magnitude;
        reference_forward(&c, out, att, &magnitude);
        double err_out = 0.0;
        for (size_t i = 0; i < q_size(&c); i++) { /* a NaN stays: fmax would drop it */
            const double err = fabs((double)c.out[i] - out[i]) / magnitude;
            if (!(err <= err_out)) err_out = err;
        }
        double err_w = test_rel_error_f64(c.weights, att, w_size(&c));
        worst = fmax(worst, fmax(err_out, err_w));
        if (!(err_out <= 1e-5 && err_w <= 1e-5))
            print_error("case %d (%s): out error %g, weights error %g\n", n, c.desc, err_out,
                        err_w);
        assert_true(err_out <= 1e-5 && err_w <= 1e-5);
        free(out), free(att);
        free_case(&c);
    }
    printf("largest error against the float64 seed: %g\n", worst);
}

/* ---- finite differences ---------------------------------------------------------- */

static double seed_loss(void *ctx)
{
    seed_case *c = ctx;
    run_forward(c);
    return test_dot(c->out, c->probe, q_size(c));
}

static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int n = 0; n < 24; n++) {
        attn_rng rng = test_rng(1000 + (uint64_t)n);
        seed_case c;
        make_case(&c, &rng, 3, 3, 5);
        run_forward(&c);
        const double magnitude = loss_magnitude(c.out, c.probe, q_size(&c));
        attn_params *p = attn_seed_mha_params(c.m);
        attn_params_zero_grad(p);
        float *dv = test_zeros(k_size(&c)), *dk = test_zeros(k_size(&c));
        float *dq = test_zeros(q_size(&c));
        assert_int_equal(attn_seed_mha_backward(c.m, dv, dk, dq, c.probe), ATTN_OK);
        struct {
            const char *name;
            float *x, *grad;
            size_t n;
        } checks[8] = {{"dvalues", c.values, dv, k_size(&c)},
                       {"dkeys", c.keys, dk, k_size(&c)},
                       {"dquery", c.query, dq, q_size(&c)}};
        int count = 3;
        for (int t = 0; t < p->count; t++, count++) {
            checks[count].name = p->items[t].name;
            checks[count].x = p->data + p->items[t].offset;
            checks[count].grad = p->grad + p->items[t].offset;
            checks[count].n = p->items[t].numel;
        }
        for (int t = 0; t < count; t++) {
            double err = gradcheck_error(test_gradcheck(checks[t].x, checks[t].n, checks[t].grad,
                                                        seed_loss, &c, 1e-2f),
                                         checks[t].grad, checks[t].n, magnitude);
            worst = fmax(worst, err);
            if (!(err <= 1e-3))
                print_error("case %d (%s): %s finite-difference error %g\n", n, c.desc,
                            checks[t].name, err);
            assert_true(err <= 1e-3);
        }
        free(dv), free(dk), free(dq);
        free_case(&c);
    }
    printf("largest finite-difference error: %g\n", worst);
}

/* ---- the quirks ---------------------------------------------------------------- */

/* masked_fill(-1e20) is finite: a row with every key masked attends uniformly. */
static void test_fully_masked_row_is_uniform(void **state)
{
    (void)state;
    attn_rng rng = test_rng(2000);
    seed_case c;
    make_case(&c, &rng, 3, 4, 6);
    free(c.mask_data);
    const int64_t target[4] = {c.N, c.heads, c.Lq, c.Lk};
    c.mask_shape[0] = c.N, c.mask_shape[1] = 1, c.mask_shape[2] = 1, c.mask_shape[3] = c.Lk;
    c.mask_data = calloc((size_t)c.N * c.Lk, 1); /* every key of every row masked */
    assert_int_equal(attn_mask_init(&c.mask, ATTN_MASK_BOOL_KEEP, c.mask_data, 4, c.mask_shape,
                                    target),
                     ATTN_OK);
    c.masked = true;
    run_forward(&c);
    for (size_t e = 0; e < w_size(&c); e++)
        assert_true(fabs(c.weights[e] - 1.0 / c.Lk) <= 1e-6);
    /* The scores are constants now: queries and keys get no gradient. */
    attn_params *p = attn_seed_mha_params(c.m);
    attn_params_zero_grad(p);
    float *dq = test_zeros(q_size(&c)), *dk = test_zeros(k_size(&c));
    assert_int_equal(attn_seed_mha_backward(c.m, NULL, dk, dq, c.probe), ATTN_OK);
    for (size_t e = 0; e < q_size(&c); e++) assert_true(dq[e] == 0.0f);
    for (size_t e = 0; e < k_size(&c); e++) assert_true(dk[e] == 0.0f);
    free(dq), free(dk);
    free_case(&c);
}

static void test_self_attention_gradients_may_alias(void **state)
{
    (void)state;
    attn_rng rng = test_rng(2100);
    seed_case c;
    make_case(&c, &rng, 3, 4, 6);
    c.Lk = c.Lq;
    c.masked = false;
    free(c.values), free(c.keys), free(c.weights);
    c.values = c.keys = NULL;
    c.weights = test_zeros(w_size(&c));
    assert_int_equal(attn_seed_mha_forward(c.m, c.out, c.weights, c.query, c.query, c.query, c.N,
                                           c.Lq, c.Lq, NULL),
                     ATTN_OK);
    const size_t n = q_size(&c);
    float *apart[3] = {test_zeros(n), test_zeros(n), test_zeros(n)}, *together = test_zeros(n);
    assert_int_equal(attn_seed_mha_backward(c.m, apart[0], apart[1], apart[2], c.probe), ATTN_OK);
    assert_int_equal(attn_seed_mha_backward(c.m, together, together, together, c.probe), ATTN_OK);
    double *sum = malloc(n * sizeof *sum);
    for (size_t e = 0; e < n; e++) sum[e] = (double)apart[0][e] + apart[1][e] + apart[2][e];
    assert_true(test_rel_error_f64(together, sum, n) <= 1e-6);
    for (int t = 0; t < 3; t++) free(apart[t]);
    free(together), free(sum);
    free_case(&c);
}

static void test_parameters_are_the_seeds(void **state)
{
    (void)state;
    attn_seed_mha *m;
    assert_int_equal(attn_seed_mha_create(&m, 256, 8, test_seed()), ATTN_OK);
    attn_params *p = attn_seed_mha_params(m);
    assert_int_equal(p->count, 5);
    const char *square[3] = {"values.weight", "keys.weight", "queries.weight"};
    for (int t = 0; t < 3; t++) {
        const attn_param *it = attn_params_find(p, square[t]);
        assert_non_null(it);
        assert_int_equal(it->ndim, 2);
        assert_int_equal(it->shape[0], 32);
        assert_int_equal(it->shape[1], 32);
        const float *w = attn_params_data(p, square[t]);
        for (int e = 0; e < 32 * 32; e++) assert_true(fabsf(w[e]) <= 1.0f / sqrtf(32.0f));
    }
    const attn_param *fc = attn_params_find(p, "fc_out.weight");
    assert_non_null(fc);
    assert_int_equal(fc->shape[0], 256);
    assert_int_equal(fc->shape[1], 256);
    const attn_param *bias = attn_params_find(p, "fc_out.bias");
    assert_non_null(bias);
    assert_int_equal(bias->ndim, 1);
    assert_int_equal(bias->shape[0], 256);
    const float *b = attn_params_data(p, "fc_out.bias");
    bool nonzero = false;
    for (int e = 0; e < 256; e++) {
        assert_true(fabsf(b[e]) <= 1.0f / 16.0f);
        nonzero |= b[e] != 0.0f;
    }
    assert_true(nonzero); /* nn.Linear's bias is random, unlike MultiheadAttention's */
    attn_seed_mha_free(m);
}

static void test_bad_input_is_rejected(void **state)
{
    (void)state;
    attn_seed_mha *m = NULL;
    test_expect_invalid(attn_seed_mha_create(&m, 10, 3, 1), "embed_size 10 is not divisible by heads 3");
    assert_null(m);
    test_expect_invalid(attn_seed_mha_create(&m, 0, 1, 1), "embed_size is 0");
    test_expect_invalid(attn_seed_mha_create(&m, 4, 0, 1), "heads is 0");
    test_expect_invalid(attn_seed_mha_create(NULL, 4, 2, 1), "out is NULL");
    assert_int_equal(attn_seed_mha_create(&m, 4, 2, 1), ATTN_OK);
    float x[64] = {0}, out[64];
    test_expect_invalid(attn_seed_mha_backward(m, x, x, x, x), "needs a successful");
    test_expect_invalid(attn_seed_mha_forward(m, out, NULL, NULL, x, x, 2, 3, 3, NULL),
                   "values is NULL");
    test_expect_invalid(attn_seed_mha_forward(m, out, NULL, x, x, NULL, 2, 3, 3, NULL),
                   "query is NULL");
    test_expect_invalid(attn_seed_mha_forward(m, NULL, NULL, x, x, x, 2, 3, 3, NULL), "out is NULL");
    test_expect_invalid(attn_seed_mha_forward(m, out, NULL, x, x, x, 0, 3, 3, NULL), "N is 0");
    test_expect_invalid(attn_seed_mha_forward(m, out, NULL, x, x, x, 2, 0, 3, NULL), "len_k is 0");
    test_expect_invalid(attn_seed_mha_forward(m, out, NULL, x, x, x, 2, 3, -1, NULL), "len_q is -1");
    test_expect_invalid(attn_seed_mha_forward(m, out, NULL, x, x, x, 1 << 20, 1 << 10, 3, NULL),
                   "exceeds");
    uint8_t data[9] = {0};
    const int64_t shape[2] = {3, 3}, target[4] = {2, 2, 3, 3};
    attn_mask mask;
    assert_int_equal(attn_mask_init(&mask, ATTN_MASK_BOOL, data, 2, shape, target), ATTN_OK);
    test_expect_invalid(attn_seed_mha_forward(m, out, NULL, x, x, x, 2, 3, 3, &mask),
                   "ATTN_MASK_BOOL_KEEP");
    test_expect_invalid(attn_seed_mha_backward(m, x, x, x, x), "needs a successful");
    assert_int_equal(attn_seed_mha_forward(m, out, NULL, x, x, x, 2, 3, 3, NULL), ATTN_OK);
    test_expect_invalid(attn_seed_mha_backward(m, x, x, x, NULL), "dout is NULL");
    assert_int_equal(attn_seed_mha_backward(m, NULL, NULL, NULL, x), ATTN_OK);
    attn_seed_mha_free(m);
    attn_seed_mha_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_the_seed_in_float64),
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_fully_masked_row_is_uniform),
        cmocka_unit_test(test_self_attention_gradients_may_alias),
        cmocka_unit_test(test_parameters_are_the_seeds),
        cmocka_unit_test(test_bad_input_is_rejected),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
