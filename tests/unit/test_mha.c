/* torch.nn.MultiheadAttention: against a float64 reference written here, finite
 * differences, weights, aliasing, threads and bad input. */
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

typedef struct mha_case {
    attn_mha_config cfg;
    attn_mha *m;
    attn_mha_input in;
    float *query, *key, *value, *out, *probe, *weights;
    void *kpm, *mask;
    char desc[256];
} mha_case;

static size_t query_size(const mha_case *c)
{
    return (size_t)c->in.batch * c->in.len_q * c->cfg.embed_dim;
}
static size_t key_size(const mha_case *c)
{
    return (size_t)c->in.batch * c->in.len_k * (c->cfg.kdim ? c->cfg.kdim : c->cfg.embed_dim);
}
static size_t value_size(const mha_case *c)
{
    return (size_t)c->in.batch * c->in.len_k * (c->cfg.vdim ? c->cfg.vdim : c->cfg.embed_dim);
}
static size_t weights_size(const mha_case *c)
{
    return (size_t)c->in.batch * (c->in.average_attn_weights ? 1 : c->cfg.num_heads) *
           c->in.len_q * c->in.len_k;
}

/* A random mask of n entries: bool (about a third excluded) or float (a fifth
 * -inf, the rest in [-2, 1]). */
static void *random_mask(attn_rng *rng, attn_mask_type type, size_t n)
{
    if (type == ATTN_MASK_FLOAT) {
        float *f = test_random(rng, n, -2.0f, 1.0f);
        for (size_t e = 0; e < n; e++)
            if (attn_rng_uniform(rng) < 0.2f) f[e] = -INFINITY;
        return f;
    }
    uint8_t *u = malloc(n);
    for (size_t e = 0; e < n; e++) u[e] = attn_rng_uniform(rng) < 0.33f;
    return u;
}

static void make_case(mha_case *c, attn_rng *rng, int max_heads, int max_head_dim, int max_len,
                      bool dropout)
{
    memset(c, 0, sizeof *c);
    attn_mha_config *g = &c->cfg;
    g->num_heads = 1 + (int)attn_rng_below(rng, (uint32_t)max_heads);
    g->embed_dim = g->num_heads * (1 + (int)attn_rng_below(rng, (uint32_t)max_head_dim));
    if (attn_rng_below(rng, 3) == 0) {
        g->kdim = 1 + (int)attn_rng_below(rng, 8);
        g->vdim = 1 + (int)attn_rng_below(rng, 8);
    }
    g->bias = attn_rng_below(rng, 4) != 0;
    g->batch_first = attn_rng_below(rng, 2);
    g->dropout = dropout ? 0.1f + 0.4f * attn_rng_uniform(rng) : 0.0f;
    assert_int_equal(attn_mha_create(&c->m, g, attn_rng_u32(rng)), ATTN_OK);
    /* Parameters with non-zero biases, so that the biases are tested. */
    attn_params *p = attn_mha_params(c->m);
    attn_rng_fill_uniform(rng, p->data, p->total, -0.6f, 0.6f);

    attn_mha_input *in = &c->in;
    in->batch = 1 + (int)attn_rng_below(rng, 3);
    in->len_q = 1 + (int)attn_rng_below(rng, (uint32_t)max_len);
    in->len_k = 1 + (int)attn_rng_below(rng, (uint32_t)max_len);
    c->query = test_random(rng, query_size(c), -1, 1);
    c->key = test_random(rng, key_size(c), -1, 1);
    c->value = test_random(rng, value_size(c), -1, 1);
    in->query = c->query, in->key = c->key, in->value = c->value;
    in->is_causal = attn_rng_below(rng, 4) == 0;
    if (attn_rng_below(rng, 2)) {
        in->key_padding_mask_type = attn_rng_below(rng, 2) ? ATTN_MASK_FLOAT : ATTN_MASK_BOOL;
        c->kpm = random_mask(rng, in->key_padding_mask_type, (size_t)in->batch * in->len_k);
        in->key_padding_mask = c->kpm;
    }
    if (attn_rng_below(rng, 2)) {
        in->attn_mask_type = attn_rng_below(rng, 2) ? ATTN_MASK_FLOAT : ATTN_MASK_BOOL;
        in->attn_mask_ndim = 2 + (int)attn_rng_below(rng, 2);
        size_t n = (size_t)in->len_q * in->len_k * (in->attn_mask_ndim == 3 ? (size_t)in->batch *
                                                                                  g->num_heads
                                                                            : 1);
        c->mask = random_mask(rng, in->attn_mask_type, n);
        in->attn_mask = c->mask;
    }
    in->training = dropout;
    in->dropout_seed = attn_rng_u32(rng);
    in->average_attn_weights = attn_rng_below(rng, 2);
    c->out = test_zeros(query_size(c));
    c->probe = test_random(rng, query_size(c), -1, 1);
    c->weights = test_zeros(weights_size(c));
    in->weights = c->weights;
    snprintf(c->desc, sizeof c->desc,
             "E=%d H=%d kdim=%d vdim=%d bias=%d batch_first=%d dropout=%g B=%d Lq=%d Lk=%d "
             "causal=%d kpm=%d attn_mask ndim %d type %d average=%d",
             g->embed_dim, g->num_heads, g->kdim, g->vdim, g->bias, g->batch_first,
             (double)g->dropout, in->batch, in->len_q, in->len_k, in->is_causal,
             in->key_padding_mask ? (int)in->key_padding_mask_type : -1,
             in->attn_mask ? in->attn_mask_ndim : 0, (int)in->attn_mask_type,
             in->average_attn_weights);
}

static void free_case(mha_case *c)
{
    attn_mha_free(c->m);
    free(c->query), free(c->key), free(c->value), free(c->out), free(c->probe), free(c->weights);
    free(c->kpm), free(c->mask);
}

static void run_forward(mha_case *c)
{
    attn_status s = attn_mha_forward(c->m, c->out, &c->in);
    if (s != ATTN_OK) print_error("%s: forward failed: %s\n", c->desc, attn_last_error());
    assert_int_equal(s, ATTN_OK);
}

/* ---- the float64 reference, written from multi_head_attention_forward ------------- */

/* Row (b, l) of a (L, B, X) or (B, L, X) array. */
static size_t row_of(const mha_case *c, int b, int l, int L)
{
    return c->cfg.batch_first ? (size_t)b * L + l : (size_t)l * c->in.batch + b;
}

/* y[(row, E)] = x[(row, in)] w^T + b, in float64. */
static double *project(const float *x, const float *w, const float *b, size_t rows, int in,
                       int E)
{
    double *y = malloc(rows * (size_t)E * sizeof *y);
    for (size_t r = 0; r < rows; r++)
        for (int o = 0; o < E; o++) {
            double sum = b ? b[o] : 0.0;
            for (int i = 0; i < in; i++) sum += (double)x[r * in + i] * w[(size_t)o * in + i];
            y[r * E + o] = sum;
        }
    return y;
}

static double mask_term(attn_mask_type type, const void *data, size_t at)
{
    if (type == ATTN_MASK_FLOAT) return ((const float *)data)[at];
    return ((const uint8_t *)data)[at] ? -INFINITY : 0.0;
}

/* out (rows_q, E) and per-head weights (B, H, Lq, Lk), without dropout. */
static void reference_forward(const mha_case *c, double *out, double *head_weights)
{
    attn_params *p = attn_mha_params(c->m);
    const attn_mha_config *g = attn_mha_get_config(c->m);
    const int E = g->embed_dim, H = g->num_heads, hd = E / H;
    const int B = c->in.batch, Lq = c->in.len_q, Lk = c->in.len_k;
    const float *wq, *wk, *wv, *bq = NULL, *bk = NULL, *bv = NULL;
    if (attn_params_find(p, "in_proj_weight")) {
        wq = attn_params_data(p, "in_proj_weight");
        wk = wq + (size_t)E * E, wv = wq + 2 * (size_t)E * E;
    } else {
        wq = attn_params_data(p, "q_proj_weight");
        wk = attn_params_data(p, "k_proj_weight");
        wv = attn_params_data(p, "v_proj_weight");
    }
    if (g->bias) {
        bq = attn_params_data(p, "in_proj_bias");
        bk = bq + E, bv = bq + 2 * E;
    }
    double *q = project(c->query, wq, bq, (size_t)B * Lq, E, E);
    double *k = project(c->key, wk, bk, (size_t)B * Lk, g->kdim, E);
    double *v = project(c->value, wv, bv, (size_t)B * Lk, g->vdim, E);
    double *merged = calloc((size_t)B * Lq * E, sizeof *merged);
    double *s = malloc((size_t)Lk * sizeof *s);
    const attn_mha_input *in = &c->in;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Lq; i++) {
                const size_t qi = row_of(c, b, i, Lq) * E + (size_t)h * hd;
                double max = -INFINITY;
                for (int j = 0; j < Lk; j++) {
                    const size_t kj = row_of(c, b, j, Lk) * E + (size_t)h * hd;
                    double dot = 0.0;
                    for (int d = 0; d < hd; d++) dot += q[qi + d] * k[kj + d];
                    s[j] = dot / sqrt((double)hd);
                    if (in->is_causal && j > i) s[j] = -INFINITY;
                    if (in->attn_mask) {
                        size_t at = (size_t)i * Lk + j;
                        if (in->attn_mask_ndim == 3) at += ((size_t)b * H + h) * Lq * Lk;
                        s[j] += mask_term(in->attn_mask_type, in->attn_mask, at);
                    }
                    if (in->key_padding_mask)
                        s[j] += mask_term(in->key_padding_mask_type, in->key_padding_mask,
                                          (size_t)b * Lk + j);
                    if (s[j] > max) max = s[j];
                }
                double *w = head_weights + (((size_t)b * H + h) * Lq + i) * Lk;
                if (max == -INFINITY) {
                    for (int j = 0; j < Lk; j++) w[j] = 0.0;
                    continue;
                }
                double sum = 0.0;
                for (int j = 0; j < Lk; j++) sum += exp(s[j] - max);
                for (int j = 0; j < Lk; j++) {
                    w[j] = exp(s[j] - max) / sum;
                    const size_t vj = row_of(c, b, j, Lk) * E + (size_t)h * hd;
                    for (int d = 0; d < hd; d++) merged[qi + d] += w[j] * v[vj + d];
                }
            }
    const float *wo = attn_params_data(p, "out_proj.weight");
    const float *bo = g->bias ? attn_params_data(p, "out_proj.bias") : NULL;
    for (size_t r = 0; r < (size_t)B * Lq; r++)
        for (int o = 0; o < E; o++) {
            double sum = bo ? bo[o] : 0.0;
            for (int e = 0; e < E; e++) sum += merged[r * E + e] * wo[(size_t)o * E + e];
            out[r * E + o] = sum;
        }
    free(q), free(k), free(v), free(merged), free(s);
}

static void test_matches_float64_reference(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int n = 0; n < 100; n++) {
        attn_rng rng = test_rng((uint64_t)n);
        mha_case c;
        make_case(&c, &rng, 4, 6, 8, false);
        run_forward(&c);
        const int H = c.cfg.num_heads;
        const size_t plane = (size_t)c.in.len_q * c.in.len_k;
        double *out = malloc(query_size(&c) * sizeof *out);
        double *head_weights = malloc((size_t)c.in.batch * H * plane * sizeof *head_weights);
        reference_forward(&c, out, head_weights);
        double *weights = head_weights;
        if (c.in.average_attn_weights) { /* mean over heads, into the first H-th */
            for (int b = 0; b < c.in.batch; b++)
                for (size_t e = 0; e < plane; e++) {
                    double sum = 0.0;
                    for (int h = 0; h < H; h++) sum += head_weights[((size_t)b * H + h) * plane + e];
                    weights[(size_t)b * plane + e] = sum / H;
                }
        }
        double err_out = test_rel_error_f64(c.out, out, query_size(&c));
        double err_w = test_rel_error_f64(c.weights, weights, weights_size(&c));
        worst = fmax(worst, fmax(err_out, err_w));
        if (!(err_out <= 1e-5 && err_w <= 1e-5))
            print_error("case %d (%s): out error %g, weights error %g\n", n, c.desc, err_out,
                        err_w);
        assert_true(err_out <= 1e-5 && err_w <= 1e-5);
        free(out), free(head_weights);
        free_case(&c);
    }
    printf("largest error against the float64 reference: %g\n", worst);
}

/* ---- finite differences ---------------------------------------------------------- */

static double mha_loss(void *ctx)
{
    mha_case *c = ctx;
    run_forward(c);
    return test_dot(c->out, c->probe, query_size(c));
}

static double worst_fd;

static void check_gradient(mha_case *c, int n, const char *name, float *x, const float *grad,
                           size_t count, double magnitude)
{
    double err = gradcheck_error(test_gradcheck(x, count, grad, mha_loss, c, 1e-2f), grad, count,
                                 magnitude);
    if (err > worst_fd) worst_fd = err;
    if (!(err <= 1e-3))
        print_error("case %d (%s): %s finite-difference error %g\n", n, c->desc, name, err);
    assert_true(err <= 1e-3);
}

static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    for (int n = 0; n < 24; n++) {
        attn_rng rng = test_rng(1000 + (uint64_t)n);
        mha_case c;
        make_case(&c, &rng, 3, 3, 5, n % 3 == 1);
        run_forward(&c);
        const double magnitude = loss_magnitude(c.out, c.probe, query_size(&c));
        attn_params *p = attn_mha_params(c.m);
        attn_params_zero_grad(p);
        float *dq = test_zeros(query_size(&c)), *dk = test_zeros(key_size(&c));
        float *dv = test_zeros(value_size(&c));
        assert_int_equal(attn_mha_backward(c.m, dq, dk, dv, c.probe), ATTN_OK);
        check_gradient(&c, n, "dquery", c.query, dq, query_size(&c), magnitude);
        check_gradient(&c, n, "dkey", c.key, dk, key_size(&c), magnitude);
        check_gradient(&c, n, "dvalue", c.value, dv, value_size(&c), magnitude);
        for (int t = 0; t < p->count; t++)
            check_gradient(&c, n, p->items[t].name, p->data + p->items[t].offset,
                           p->grad + p->items[t].offset, p->items[t].numel, magnitude);
        free(dq), free(dk), free(dv);
        free_case(&c);
    }
    printf("largest finite-difference error: %g\n", worst_fd);
}

/* Self-attention passes one buffer as query, key and value and one as their
 * gradients; the sum must equal the three gradients taken apart. */
static void test_self_attention_gradients_may_alias(void **state)
{
    (void)state;
    for (int n = 0; n < 10; n++) {
        attn_rng rng = test_rng(2000 + (uint64_t)n);
        mha_case c;
        make_case(&c, &rng, 3, 4, 6, n % 2);
        if (c.cfg.kdim || c.cfg.vdim) { /* self-attention needs kdim == vdim == E */
            free_case(&c);
            continue;
        }
        c.in.len_k = c.in.len_q;
        free(c.kpm), free(c.mask);
        c.kpm = c.mask = NULL;
        c.in.key_padding_mask = c.in.attn_mask = NULL;
        free(c.weights);
        c.in.weights = c.weights = NULL;
        c.in.key = c.in.value = c.query;
        run_forward(&c);
        const size_t nq = query_size(&c);
        float *apart[3] = {test_zeros(nq), test_zeros(nq), test_zeros(nq)};
        float *together = test_zeros(nq);
        assert_int_equal(attn_mha_backward(c.m, apart[0], apart[1], apart[2], c.probe), ATTN_OK);
        assert_int_equal(attn_mha_backward(c.m, together, together, together, c.probe), ATTN_OK);
        double *sum = malloc(nq * sizeof *sum);
        for (size_t e = 0; e < nq; e++) sum[e] = (double)apart[0][e] + apart[1][e] + apart[2][e];
        double err = test_rel_error_f64(together, sum, nq);
        if (!(err <= 1e-6)) print_error("case %d (%s): error %g\n", n, c.desc, err);
        assert_true(err <= 1e-6);
        for (int t = 0; t < 3; t++) free(apart[t]);
        free(together), free(sum);
        free_case(&c);
    }
}

/* ---- weights ---------------------------------------------------------------------- */

static void test_average_weights_are_the_mean_over_heads(void **state)
{
    (void)state;
    for (int n = 0; n < 20; n++) {
        attn_rng rng = test_rng(3000 + (uint64_t)n);
        mha_case c;
        make_case(&c, &rng, 4, 4, 8, n % 2);
        const int H = c.cfg.num_heads, B = c.in.batch;
        const size_t plane = (size_t)c.in.len_q * c.in.len_k;
        float *per_head = test_zeros((size_t)B * H * plane), *mean = test_zeros((size_t)B * plane);
        c.in.average_attn_weights = false;
        c.in.weights = per_head;
        run_forward(&c);
        c.in.average_attn_weights = true;
        c.in.weights = mean;
        run_forward(&c);
        for (int b = 0; b < B; b++)
            for (size_t e = 0; e < plane; e++) {
                double sum = 0.0;
                for (int h = 0; h < H; h++) sum += per_head[((size_t)b * H + h) * plane + e];
                assert_true(fabs(mean[(size_t)b * plane + e] - sum / H) <= 1e-6);
            }
        /* Without dropout every row sums to 1, or to 0 when fully masked. */
        if (c.cfg.dropout == 0.0f) {
            for (size_t row = 0; row < (size_t)B * H * c.in.len_q; row++) {
                double sum = 0.0;
                for (int j = 0; j < c.in.len_k; j++) sum += per_head[row * c.in.len_k + j];
                if (!(fabs(sum - 1.0) <= 1e-5 || sum == 0.0))
                    print_error("case %d (%s): row %zu sums to %.9g\n", n, c.desc, row, sum);
                assert_true(fabs(sum - 1.0) <= 1e-5 || sum == 0.0);
            }
        }
        free(per_head), free(mean);
        c.in.weights = NULL;
        free_case(&c);
    }
}

static void test_dropout_only_in_training(void **state)
{
    (void)state;
    attn_rng rng = test_rng(3500);
    mha_case c;
    make_case(&c, &rng, 2, 4, 8, true);
    const size_t n = query_size(&c);
    float *eval = test_zeros(n), *train = test_zeros(n);
    c.in.training = false;
    run_forward(&c);
    memcpy(eval, c.out, n * sizeof *eval);
    c.in.training = true;
    run_forward(&c);
    memcpy(train, c.out, n * sizeof *train);
    run_forward(&c);
    assert_memory_equal(train, c.out, n * sizeof *train); /* same seed, same mask */
    c.cfg.dropout = 0.0f;
    attn_mha *no_dropout;
    attn_params *p = attn_mha_params(c.m);
    assert_int_equal(attn_mha_create(&no_dropout, &c.cfg, 1), ATTN_OK);
    memcpy(attn_mha_params(no_dropout)->data, p->data, p->total * sizeof(float));
    assert_int_equal(attn_mha_forward(no_dropout, c.out, &c.in), ATTN_OK);
    assert_memory_equal(eval, c.out, n * sizeof *eval); /* training without dropout = eval */
    attn_mha_free(no_dropout);
    free(eval), free(train);
    free_case(&c);
}

/* ---- parameters ---------------------------------------------------------------- */

static void test_parameters_are_pytorchs(void **state)
{
    (void)state;
    attn_mha *m;
    attn_mha_config cfg = {.embed_dim = 32, .num_heads = 4, .bias = true};
    assert_int_equal(attn_mha_create(&m, &cfg, test_seed()), ATTN_OK);
    attn_params *p = attn_mha_params(m);
    assert_int_equal(p->count, 4);
    test_expect_param(p, "in_proj_weight", 96, 32);
    test_expect_param(p, "in_proj_bias", 96, 0);
    test_expect_param(p, "out_proj.weight", 32, 32);
    test_expect_param(p, "out_proj.bias", 32, 0);
    assert_int_equal(attn_mha_get_config(m)->kdim, 32);
    const float xavier = sqrtf(6.0f / (96 + 32)), linear = 1.0f / sqrtf(32.0f);
    float *w = attn_params_data(p, "in_proj_weight");
    float lo = 0, hi = 0;
    for (int e = 0; e < 96 * 32; e++) {
        assert_true(fabsf(w[e]) <= xavier);
        lo = fminf(lo, w[e]), hi = fmaxf(hi, w[e]);
    }
    assert_true(lo < -0.9f * xavier && hi > 0.9f * xavier);
    w = attn_params_data(p, "out_proj.weight");
    for (int e = 0; e < 32 * 32; e++) assert_true(fabsf(w[e]) <= linear);
    for (int e = 0; e < 96; e++) assert_true(attn_params_data(p, "in_proj_bias")[e] == 0.0f);
    for (int e = 0; e < 32; e++) assert_true(attn_params_data(p, "out_proj.bias")[e] == 0.0f);
    attn_mha_free(m);

    cfg = (attn_mha_config){.embed_dim = 6, .num_heads = 3, .kdim = 5, .vdim = 7};
    assert_int_equal(attn_mha_create(&m, &cfg, test_seed()), ATTN_OK);
    p = attn_mha_params(m);
    assert_int_equal(p->count, 4);
    test_expect_param(p, "q_proj_weight", 6, 6);
    test_expect_param(p, "k_proj_weight", 6, 5);
    test_expect_param(p, "v_proj_weight", 6, 7);
    test_expect_param(p, "out_proj.weight", 6, 6);
    assert_null(attn_params_find(p, "in_proj_weight"));
    assert_null(attn_params_find(p, "out_proj.bias"));
    w = attn_params_data(p, "k_proj_weight");
    for (int e = 0; e < 30; e++) assert_true(fabsf(w[e]) <= sqrtf(6.0f / 11.0f));
    attn_mha_free(m);
}

/* Activations grow and shrink with the shapes: a reused module agrees with a
 * fresh one. */
static void test_reuse_across_shapes(void **state)
{
    (void)state;
    attn_rng rng = test_rng(4000);
    mha_case c[3];
    for (int t = 0; t < 3; t++) make_case(&c[t], &rng, 3, 4, 4 + 8 * (t == 1), false);
    for (int t = 1; t < 3; t++) c[t].cfg = c[0].cfg;
    for (int t = 0; t < 3; t++) {
        /* Run case t's inputs through case 0's module and through a fresh copy. */
        mha_case *x = &c[t];
        if (t > 0) {
            free(x->query), free(x->key), free(x->value);
            x->query = test_random(&rng, query_size(x), -1, 1);
            x->key = test_random(&rng, key_size(x), -1, 1);
            x->value = test_random(&rng, value_size(x), -1, 1);
            x->in.query = x->query, x->in.key = x->key, x->in.value = x->value;
            x->in.key_padding_mask = x->in.attn_mask = NULL;
            free(x->weights);
            x->in.weights = x->weights = NULL;
        }
        const size_t n = query_size(x);
        float *reused = test_zeros(n), *fresh = test_zeros(n);
        assert_int_equal(attn_mha_forward(c[0].m, reused, &x->in), ATTN_OK);
        attn_mha *copy;
        assert_int_equal(attn_mha_create(&copy, &c[0].cfg, 5), ATTN_OK);
        attn_params *p = attn_mha_params(c[0].m);
        memcpy(attn_mha_params(copy)->data, p->data, p->total * sizeof(float));
        assert_int_equal(attn_mha_forward(copy, fresh, &x->in), ATTN_OK);
        assert_memory_equal(reused, fresh, n * sizeof(float));
        attn_mha_free(copy);
        free(reused), free(fresh);
    }
    for (int t = 0; t < 3; t++) free_case(&c[t]);
}

/* ---- threads, NaN, bad input -------------------------------------------------------- */

static void test_thread_count_does_not_change_results(void **state)
{
    (void)state;
    for (int n = 0; n < 4; n++) {
        attn_rng rng = test_rng(5000 + (uint64_t)n);
        mha_case c;
        make_case(&c, &rng, 4, 16, 40, n % 2);
        attn_params *p = attn_mha_params(c.m);
        float *out[2], *grad[2], *dq[2];
        for (int t = 0; t < 2; t++) {
            assert_int_equal(attn_set_num_threads(t + 1), ATTN_OK);
            run_forward(&c);
            attn_params_zero_grad(p);
            dq[t] = test_zeros(query_size(&c));
            assert_int_equal(attn_mha_backward(c.m, dq[t], NULL, NULL, c.probe), ATTN_OK);
            out[t] = malloc(query_size(&c) * sizeof(float));
            memcpy(out[t], c.out, query_size(&c) * sizeof(float));
            grad[t] = malloc(p->total * sizeof(float));
            memcpy(grad[t], p->grad, p->total * sizeof(float));
        }
        if (memcmp(out[0], out[1], query_size(&c) * sizeof(float)) ||
            memcmp(grad[0], grad[1], p->total * sizeof(float)) ||
            memcmp(dq[0], dq[1], query_size(&c) * sizeof(float)))
            print_error("case %d (%s): 1 and 2 threads differ\n", n, c.desc);
        assert_memory_equal(out[0], out[1], query_size(&c) * sizeof(float));
        assert_memory_equal(grad[0], grad[1], p->total * sizeof(float));
        assert_memory_equal(dq[0], dq[1], query_size(&c) * sizeof(float));
        for (int t = 0; t < 2; t++) free(out[t]), free(grad[t]), free(dq[t]);
        free_case(&c);
    }
}

/* NaN in one query element reaches exactly that query's output row (every head
 * of it), as in PyTorch. */
static void test_nan_in_query_reaches_its_row(void **state)
{
    (void)state;
    attn_rng rng = test_rng(6000);
    mha_case c;
    make_case(&c, &rng, 2, 4, 6, false);
    c.in.key_padding_mask = c.in.attn_mask = NULL;
    c.in.is_causal = false;
    const int E = c.cfg.embed_dim;
    const size_t rows = (size_t)c.in.batch * c.in.len_q, bad_row = rows - 1;
    c.query[bad_row * E] = NAN;
    run_forward(&c);
    for (size_t r = 0; r < rows; r++)
        for (int e = 0; e < E; e++)
            assert_true(r == bad_row ? isnan(c.out[r * E + e]) : isfinite(c.out[r * E + e]));
    free_case(&c);
}

static void test_bad_input_is_rejected(void **state)
{
    (void)state;
    attn_mha *m = NULL;
    attn_mha_config cfg = {.embed_dim = 10, .num_heads = 3};
    test_expect_invalid(attn_mha_create(&m, &cfg, 1), "embed_dim 10 is not divisible by num_heads 3");
    assert_null(m);
    cfg = (attn_mha_config){.embed_dim = 0, .num_heads = 1};
    test_expect_invalid(attn_mha_create(&m, &cfg, 1), "embed_dim is 0");
    cfg = (attn_mha_config){.embed_dim = 4, .num_heads = 0};
    test_expect_invalid(attn_mha_create(&m, &cfg, 1), "num_heads is 0");
    cfg = (attn_mha_config){.embed_dim = 4, .num_heads = 2, .kdim = -1};
    test_expect_invalid(attn_mha_create(&m, &cfg, 1), "kdim is -1");
    cfg = (attn_mha_config){.embed_dim = 4, .num_heads = 2, .vdim = -2};
    test_expect_invalid(attn_mha_create(&m, &cfg, 1), "vdim is -2");
    cfg = (attn_mha_config){.embed_dim = 4, .num_heads = 2, .dropout = 1.0f};
    test_expect_invalid(attn_mha_create(&m, &cfg, 1), "dropout 1");
    test_expect_invalid(attn_mha_create(&m, NULL, 1), "config is NULL");
    cfg = (attn_mha_config){.embed_dim = 4, .num_heads = 2};
    test_expect_invalid(attn_mha_create(NULL, &cfg, 1), "out is NULL");

    assert_int_equal(attn_mha_create(&m, &cfg, 1), ATTN_OK);
    float x[64] = {0}, out[64];
    uint8_t mask[64] = {0};
    test_expect_invalid(attn_mha_backward(m, x, x, x, x), "needs a successful attn_mha_forward");
    attn_mha_input good = {.query = x, .key = x, .value = x, .batch = 2, .len_q = 3, .len_k = 3};
    attn_mha_input in = good;
    in.query = NULL;
    test_expect_invalid(attn_mha_forward(m, out, &in), "query is NULL");
    in = good, in.value = NULL;
    test_expect_invalid(attn_mha_forward(m, out, &in), "value is NULL");
    in = good, in.batch = 0;
    test_expect_invalid(attn_mha_forward(m, out, &in), "batch is 0");
    in = good, in.len_k = -1;
    test_expect_invalid(attn_mha_forward(m, out, &in), "len_k is -1");
    in = good, in.batch = 1 << 20, in.len_k = 1 << 12;
    test_expect_invalid(attn_mha_forward(m, out, &in), "exceeds");
    in = good, in.attn_mask = mask, in.attn_mask_ndim = 4;
    test_expect_invalid(attn_mha_forward(m, out, &in), "attn_mask_ndim 4");
    in = good, in.attn_mask = mask, in.attn_mask_ndim = 2, in.attn_mask_type = ATTN_MASK_BOOL_KEEP;
    test_expect_invalid(attn_mha_forward(m, out, &in), "attn_mask_type");
    in = good, in.key_padding_mask = mask, in.key_padding_mask_type = (attn_mask_type)7;
    test_expect_invalid(attn_mha_forward(m, out, &in), "key_padding_mask_type 7");
    test_expect_invalid(attn_mha_forward(m, NULL, &good), "out is NULL");
    test_expect_invalid(attn_mha_forward(m, out, NULL), "input is NULL");
    /* A failed forward leaves nothing for backward. */
    test_expect_invalid(attn_mha_backward(m, x, x, x, x), "needs a successful attn_mha_forward");
    assert_int_equal(attn_mha_forward(m, out, &good), ATTN_OK);
    assert_int_equal(attn_mha_backward(m, NULL, NULL, NULL, x), ATTN_OK);
    test_expect_invalid(attn_mha_backward(m, NULL, NULL, NULL, NULL), "dout is NULL");
    attn_mha_free(m);
    attn_mha_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_float64_reference),
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_self_attention_gradients_may_alias),
        cmocka_unit_test(test_average_weights_are_the_mean_over_heads),
        cmocka_unit_test(test_dropout_only_in_training),
        cmocka_unit_test(test_parameters_are_pytorchs),
        cmocka_unit_test(test_reuse_across_shapes),
        cmocka_unit_test(test_thread_count_does_not_change_results),
        cmocka_unit_test(test_nan_in_query_reaches_its_row),
        cmocka_unit_test(test_bad_input_is_rejected),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
