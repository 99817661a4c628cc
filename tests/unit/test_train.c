/* The training utilities of train.h: cross-entropy (ignore_index, label
 * smoothing), AdamW, gradient clipping and the warm-up + cosine schedule,
 * against float64 transcriptions of PyTorch's definitions, finite differences
 * and bad input. */
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

#define PI 3.14159265358979323846

static int random_int(attn_rng *rng, int lo, int hi) /* in [lo, hi] */
{
    return lo + (int)attn_rng_below(rng, (uint32_t)(hi - lo + 1));
}

static void expect_close(const char *what, int case_number, double err, double limit)
{
    if (!(err <= limit)) print_error("case %d: %s error %g > %g\n", case_number, what, err, limit);
    assert_true(err <= limit);
}

/* ---- cross-entropy ---------------------------------------------------------------------- */

typedef struct ce_case {
    int N, C, ignore_index;
    float smoothing;
    float *logits, *probs, *row_loss;
    int32_t *targets;
} ce_case;

/* Logits of spread `scale`; about a fifth of the targets ignored; smoothing 0 in
 * half of the cases. */
static void make_ce_case(ce_case *c, attn_rng *rng, int max_n, int max_c, float scale)
{
    c->N = random_int(rng, 1, max_n);
    c->C = random_int(rng, 1, max_c);
    c->ignore_index = attn_rng_below(rng, 2) ? -100 : random_int(rng, 0, c->C - 1);
    c->smoothing = attn_rng_below(rng, 2) ? 0.0f : attn_rng_uniform(rng) * 0.5f;
    c->logits = test_random(rng, (size_t)c->N * c->C, -scale, scale);
    c->probs = test_random(rng, (size_t)c->N * c->C, -1, 1);
    c->row_loss = test_random(rng, (size_t)c->N, -1, 1);
    c->targets = malloc((size_t)c->N * sizeof *c->targets);
    for (int n = 0; n < c->N; n++)
        c->targets[n] =
            attn_rng_below(rng, 5) == 0 ? c->ignore_index : random_int(rng, 0, c->C - 1);
}

static void free_ce_case(ce_case *c)
{
    free(c->logits), free(c->probs), free(c->row_loss), free(c->targets);
}

/* F.cross_entropy in float64: the mean loss, each row's loss, the softmax, and
 * d(mean loss)/d(logits) times dloss added to dlogits. */
static double reference_ce(const ce_case *c, double *row_loss, double *probs, double *dlogits,
                           double dloss)
{
    const int N = c->N, C = c->C;
    const double e = c->smoothing;
    int counted = 0;
    for (int n = 0; n < N; n++) counted += c->targets[n] != c->ignore_index;
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const float *x = c->logits + (size_t)n * C;
        double max = -INFINITY, sum = 0.0, sum_logp = 0.0;
        for (int k = 0; k < C; k++) max = fmax(max, x[k]);
        for (int k = 0; k < C; k++) sum += exp(x[k] - max);
        for (int k = 0; k < C; k++) {
            probs[(size_t)n * C + k] = exp(x[k] - max) / sum;
            sum_logp += x[k] - max - log(sum);
        }
        const int t = c->targets[n];
        if (t == c->ignore_index) {
            row_loss[n] = 0.0;
            continue;
        }
        const double logp_t = x[t] - max - log(sum);
        row_loss[n] = -(1 - e) * logp_t - e * sum_logp / C;
        total += row_loss[n];
        for (int k = 0; k < C; k++) {
            const double q = (1 - e) * (k == t) + e / C;
            dlogits[(size_t)n * C + k] += dloss / counted * (probs[(size_t)n * C + k] - q);
        }
    }
    return counted ? total / counted : 0.0;
}

static void test_cross_entropy_matches_float64(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int n = 0; n < 80; n++) {
        attn_rng rng = test_rng((uint64_t)n);
        ce_case c;
        /* Every fourth case has logits spread over +-30: rows where one class
         * takes nearly all the mass, whose loss and gradient are small numbers. */
        make_ce_case(&c, &rng, 40, 60, n % 4 == 3 ? 30.0f : 3.0f);
        const size_t nl = (size_t)c.N * c.C;
        const float dloss = 0.5f + attn_rng_uniform(&rng);
        float *dlogits = test_random(&rng, nl, -1e-3f, 1e-3f), loss = NAN;
        double *rdl = malloc(nl * sizeof *rdl), *rprobs = malloc(nl * sizeof *rprobs);
        double *rrow = malloc((size_t)c.N * sizeof *rrow);
        for (size_t i = 0; i < nl; i++) rdl[i] = dlogits[i];
        const double rloss = reference_ce(&c, rrow, rprobs, rdl, dloss);
        assert_int_equal(attn_cross_entropy_forward(&loss, c.probs, c.row_loss, c.logits,
                                                    c.targets, c.N, c.C, c.ignore_index,
                                                    c.smoothing),
                         ATTN_OK);
        assert_int_equal(attn_cross_entropy_backward(dlogits, c.probs, c.targets, c.N, c.C,
                                                     c.ignore_index, c.smoothing, dloss),
                         ATTN_OK);
        struct {
            const char *name;
            double err;
        } errs[] = {{"loss", test_rel_error_f64(&loss, &rloss, 1)},
                    {"row_loss", test_rel_error_f64(c.row_loss, rrow, (size_t)c.N)},
                    {"probs", test_rel_error_f64(c.probs, rprobs, nl)},
                    {"dlogits", test_rel_error_f64(dlogits, rdl, nl)}};
        for (size_t t = 0; t < sizeof errs / sizeof errs[0]; t++) {
            char what[160];
            snprintf(what, sizeof what, "cross-entropy N=%d C=%d smoothing=%g ignore=%d %s", c.N,
                     c.C, (double)c.smoothing, c.ignore_index, errs[t].name);
            expect_close(what, n, errs[t].err, 1e-5);
            if (errs[t].err > worst) worst = errs[t].err;
        }
        free(dlogits), free(rdl), free(rprobs), free(rrow);
        free_ce_case(&c);
    }
    printf("cross-entropy: largest error against float64: %g\n", worst);
}

/* A confident row: the loss and the gradient of the target are about 1e-6, and
 * keep their own relative accuracy, not just one relative to the other entries. */
static void test_cross_entropy_confident_rows_keep_their_digits(void **state)
{
    (void)state;
    const float logits[3] = {14.0f, 0.0f, 0.5f};
    const int32_t target = 0;
    float loss, probs[3], row, dlogits[3] = {0};
    assert_int_equal(attn_cross_entropy_forward(&loss, probs, &row, logits, &target, 1, 3, -100,
                                                0.0f),
                     ATTN_OK);
    assert_int_equal(attn_cross_entropy_backward(dlogits, probs, &target, 1, 3, -100, 0.0f, 1.0f),
                     ATTN_OK);
    const double others = exp(-14.0) + exp(-13.5), want = log1p(others);
    assert_true(fabs(loss - want) <= 1e-6 * want);
    assert_true(fabs(row - want) <= 1e-6 * want);
    const double want_grad = -others / (1.0 + others);
    assert_true(fabs(dlogits[0] - want_grad) <= 1e-6 * fabs(want_grad));
}

typedef struct ce_fd {
    ce_case *c;
    float dloss;
} ce_fd;

static double ce_loss(void *ctx)
{
    ce_fd *f = ctx;
    ce_case *c = f->c;
    float loss;
    assert_int_equal(attn_cross_entropy_forward(&loss, c->probs, NULL, c->logits, c->targets,
                                                c->N, c->C, c->ignore_index, c->smoothing),
                     ATTN_OK);
    return (double)loss * f->dloss;
}

static void test_cross_entropy_gradient_matches_finite_differences(void **state)
{
    (void)state;
    for (int n = 0; n < 20; n++) {
        attn_rng rng = test_rng(100 + (uint64_t)n);
        ce_case c;
        make_ce_case(&c, &rng, 6, 9, 2.0f);
        ce_fd f = {&c, 1.0f + attn_rng_uniform(&rng)};
        const size_t nl = (size_t)c.N * c.C;
        float *dlogits = test_zeros(nl);
        ce_loss(&f);
        assert_int_equal(attn_cross_entropy_backward(dlogits, c.probs, c.targets, c.N, c.C,
                                                     c.ignore_index, c.smoothing, f.dloss),
                         ATTN_OK);
        /* The loss is a mean of numbers of order 1, so its float32 noise is about
         * 1e-7; h = 1e-2 leaves the difference at about 1e-5, far below 1e-3. */
        expect_close("cross-entropy dlogits", n,
                     test_gradcheck(c.logits, nl, dlogits, ce_loss, &f, 1e-2f), 1e-3);
        free(dlogits);
        free_ce_case(&c);
    }
}

static void test_cross_entropy_edges(void **state)
{
    (void)state;
    /* Every row ignored: loss 0, no gradient. */
    const float logits[4] = {1, 2, 3, 4};
    const int32_t ignored[2] = {-1, -1};
    float loss = NAN, probs[6], rows[2], d[4] = {0};
    assert_int_equal(attn_cross_entropy_forward(&loss, probs, rows, logits, ignored, 2, 2, -1,
                                                0.1f),
                     ATTN_OK);
    assert_true(loss == 0.0f && rows[0] == 0.0f && rows[1] == 0.0f);
    assert_int_equal(attn_cross_entropy_backward(d, probs, ignored, 2, 2, -1, 0.1f, 1.0f),
                     ATTN_OK);
    for (int k = 0; k < 4; k++) assert_true(d[k] == 0.0f);
    /* -inf logits are classes of probability 0; the loss stays finite. */
    const float masked[3] = {-INFINITY, 1.0f, 2.0f};
    const int32_t two = 2;
    assert_int_equal(attn_cross_entropy_forward(&loss, probs, NULL, masked, &two, 1, 3, -100,
                                                0.0f),
                     ATTN_OK);
    assert_true(probs[0] == 0.0f && isfinite(loss));
    /* A NaN logit is an error, not a silent NaN loss. */
    const float bad[3] = {0.0f, NAN, 1.0f};
    assert_int_equal(attn_cross_entropy_forward(&loss, probs, NULL, bad, &two, 1, 3, -100, 0.0f),
                     ATTN_ERR_NUMERIC);
    assert_non_null(strstr(attn_last_error(), "loss of row 0 is nan: its logit 1 is nan"));
    /* An ignored row may hold anything; the row to blame is the counted one. */
    const float rows2[6] = {NAN, NAN, NAN, 0.0f, -INFINITY, 1.0f};
    const int32_t targets2[2] = {-100, 1};
    assert_int_equal(attn_cross_entropy_forward(&loss, probs, NULL, rows2, targets2, 2, 3, -100,
                                                0.0f),
                     ATTN_ERR_NUMERIC);
    assert_non_null(strstr(attn_last_error(), "loss of row 1 is inf: its logit 1 is -inf"));
    /* Masked classes are fine without smoothing, not with it: -log p is inf there. */
    const float one_masked[3] = {0.0f, -INFINITY, 1.0f};
    assert_int_equal(attn_cross_entropy_forward(&loss, probs, NULL, one_masked, &two, 1, 3, -100,
                                                0.1f),
                     ATTN_ERR_NUMERIC);
    assert_non_null(strstr(attn_last_error(), "its logit 1 is -inf"));
}

static void test_cross_entropy_rejects_bad_input(void **state)
{
    (void)state;
    float x[6] = {0}, p[6], loss;
    const int32_t targets[2] = {1, 3};
    test_expect_invalid(attn_cross_entropy_forward(&loss, p, NULL, x, targets, 2, 3, -100, 0.0f),
                        "target 3 of row 1 is outside [0, 3)");
    const int32_t ok[2] = {1, 2};
    test_expect_invalid(attn_cross_entropy_forward(&loss, p, NULL, x, ok, 2, 3, -100, 1.5f),
                        "label_smoothing 1.5");
    test_expect_invalid(attn_cross_entropy_forward(&loss, p, NULL, x, ok, 2, 3, -100, NAN),
                        "label_smoothing nan");
    test_expect_invalid(attn_cross_entropy_forward(&loss, p, NULL, x, ok, 0, 3, -100, 0.0f),
                        "cross-entropy N is 0");
    test_expect_invalid(attn_cross_entropy_forward(&loss, p, NULL, x, ok, 2, 0, -100, 0.0f),
                        "cross-entropy C is 0");
    test_expect_invalid(attn_cross_entropy_forward(NULL, p, NULL, x, ok, 2, 3, -100, 0.0f),
                        "cross-entropy loss is NULL");
    test_expect_invalid(attn_cross_entropy_forward(&loss, p, NULL, NULL, ok, 2, 3, -100, 0.0f),
                        "cross-entropy logits is NULL");
    test_expect_invalid(attn_cross_entropy_backward(x, NULL, ok, 2, 3, -100, 0.0f, 1.0f),
                        "cross-entropy probs is NULL");
    test_expect_invalid(attn_cross_entropy_backward(x, p, targets, 2, 3, -100, 0.0f, 1.0f),
                        "target 3 of row 1");
}

/* ---- AdamW -------------------------------------------------------------------------------- */

/* torch.optim.AdamW's step in float64. */
static void reference_adamw(double *p, double *m, double *v, const float *g, const uint8_t *decay,
                            size_t n, attn_adamw_config c, double lr, int64_t t)
{
    const double bc1 = 1 - pow(c.beta1, (double)t), bc2 = 1 - pow(c.beta2, (double)t);
    for (size_t i = 0; i < n; i++) {
        if (decay == NULL || decay[i]) p[i] *= 1 - lr * c.weight_decay;
        m[i] = c.beta1 * m[i] + (1 - (double)c.beta1) * g[i];
        v[i] = c.beta2 * v[i] + (1 - (double)c.beta2) * g[i] * g[i];
        p[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + c.eps);
    }
}

static void test_adamw_matches_float64_over_steps(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int k = 0; k < 10; k++) {
        attn_rng rng = test_rng(200 + (uint64_t)k);
        const size_t n = 1 + attn_rng_below(&rng, 3000);
        attn_adamw_config cfg = attn_adamw_defaults();
        if (k % 2) {
            cfg.beta1 = 0.8f + 0.15f * attn_rng_uniform(&rng);
            cfg.beta2 = 0.9f + 0.099f * attn_rng_uniform(&rng);
            cfg.weight_decay = 0.1f * attn_rng_uniform(&rng);
            cfg.eps = 1e-6f;
        }
        attn_adamw opt;
        assert_int_equal(attn_adamw_init(&opt, n, &cfg), ATTN_OK);
        float *p = test_random(&rng, n, -1, 1);
        uint8_t *decay = NULL;
        if (k % 3 == 0) {
            decay = malloc(n);
            for (size_t i = 0; i < n; i++) decay[i] = attn_rng_below(&rng, 2);
        }
        double *rp = malloc(n * sizeof *rp), *rm = calloc(n, sizeof *rm);
        double *rv = calloc(n, sizeof *rv);
        for (size_t i = 0; i < n; i++) rp[i] = p[i];
        for (int64_t t = 1; t <= 5; t++) {
            float *g = test_random(&rng, n, -1, 1);
            const float lr = 1e-3f * (float)t;
            assert_int_equal(attn_adamw_step(&opt, p, g, decay, lr), ATTN_OK);
            reference_adamw(rp, rm, rv, g, decay, n, cfg, lr, t);
            free(g);
        }
        assert_int_equal(opt.step, 5);
        const double errs[3] = {test_rel_error_f64(p, rp, n), test_rel_error_f64(opt.m, rm, n),
                                test_rel_error_f64(opt.v, rv, n)};
        for (int e = 0; e < 3; e++) {
            expect_close(e == 0 ? "AdamW params" : e == 1 ? "AdamW m" : "AdamW v", k, errs[e],
                         1e-6);
            if (errs[e] > worst) worst = errs[e];
        }
        attn_adamw_free(&opt);
        assert_null(opt.m);
        free(p), free(decay), free(rp), free(rm), free(rv);
    }
    printf("AdamW: largest error against float64 after 5 steps: %g\n", worst);
}

/* With a zero gradient from a fresh state the update is 0 / (0 + eps) = 0, so a
 * parameter moves only by weight decay, and only where the mask allows it. */
static void test_adamw_decay_mask(void **state)
{
    (void)state;
    attn_adamw_config cfg = attn_adamw_defaults();
    cfg.weight_decay = 0.5f;
    attn_adamw opt;
    assert_int_equal(attn_adamw_init(&opt, 2, &cfg), ATTN_OK);
    float p[2] = {2.0f, 2.0f};
    const float g[2] = {0.0f, 0.0f};
    const uint8_t decay[2] = {1, 0};
    assert_int_equal(attn_adamw_step(&opt, p, g, decay, 0.1f), ATTN_OK);
    assert_true(p[0] == 2.0f * (float)(1.0 - 0.1f * (double)0.5f));
    assert_true(p[1] == 2.0f);
    attn_adamw_free(&opt);
    const attn_adamw_config d = attn_adamw_defaults();
    assert_true(d.beta1 == 0.9f && d.beta2 == 0.999f && d.eps == 1e-8f && d.weight_decay == 0.01f);
}

static void test_adamw_rejects_bad_input(void **state)
{
    (void)state;
    attn_adamw opt = {0};
    attn_adamw_config cfg = attn_adamw_defaults();
    float p[2] = {0}, g[2] = {0};
    test_expect_invalid(attn_adamw_step(&opt, p, g, NULL, 0.1f), "call attn_adamw_init");
    test_expect_invalid(attn_adamw_init(&opt, 0, &cfg), "AdamW parameter count is 0");
    test_expect_invalid(attn_adamw_init(&opt, 2, NULL), "AdamW config is NULL");
    cfg.beta1 = 1.0f;
    test_expect_invalid(attn_adamw_init(&opt, 2, &cfg), "beta1 1 is not in [0, 1)");
    cfg = attn_adamw_defaults();
    cfg.beta2 = -0.5f;
    test_expect_invalid(attn_adamw_init(&opt, 2, &cfg), "beta2 -0.5");
    cfg = attn_adamw_defaults();
    cfg.eps = -1.0f;
    test_expect_invalid(attn_adamw_init(&opt, 2, &cfg), "eps -1");
    cfg = attn_adamw_defaults();
    cfg.weight_decay = NAN;
    test_expect_invalid(attn_adamw_init(&opt, 2, &cfg), "weight_decay nan");
    cfg = attn_adamw_defaults();
    assert_int_equal(attn_adamw_init(&opt, 2, &cfg), ATTN_OK);
    test_expect_invalid(attn_adamw_step(&opt, p, g, NULL, -1.0f), "learning rate -1");
    test_expect_invalid(attn_adamw_step(&opt, p, g, NULL, INFINITY), "learning rate inf");
    test_expect_invalid(attn_adamw_step(&opt, NULL, g, NULL, 0.1f), "AdamW params is NULL");
    test_expect_invalid(attn_adamw_step(&opt, p, NULL, NULL, 0.1f), "AdamW grads is NULL");
    assert_int_equal(opt.step, 0); /* failed steps are not counted */
    attn_adamw_free(&opt);
    attn_adamw_free(NULL);
}

/* ---- gradient clipping ------------------------------------------------------------------ */

/* The norm from block-aligned shards (each rank's part in data-parallel training)
 * is the whole's, bit for bit, and the clipping of a shard is the whole's slice. */
static void test_norm_in_shards(void **state)
{
    (void)state;
    attn_rng rng = test_rng(301);
    for (int trial = 0; trial < 20; trial++) {
        const size_t n = 1 + attn_rng_below(&rng, 12 * ATTN_NORM_BLOCK);
        const size_t blocks = attn_norm_blocks(n);
        float *g = test_random(&rng, n, -3, 3), *whole = malloc(n * sizeof *whole);
        double *sums = malloc(blocks * sizeof *sums);
        memcpy(whole, g, n * sizeof *g);
        const double max_norm = trial % 2 ? INFINITY : 1.0;
        const double norm = attn_clip_grad_norm(whole, n, max_norm);
        /* Shards of whole blocks, cut at random block boundaries. */
        size_t first = 0, b = 0;
        while (first < n) {
            size_t take = 1 + attn_rng_below(&rng, (uint32_t)(blocks - b));
            size_t count = take * ATTN_NORM_BLOCK < n - first ? take * ATTN_NORM_BLOCK : n - first;
            attn_square_sums(g + first, count, sums + b);
            first += count;
            b += take;
        }
        assert_int_equal(b, blocks);
        const double shard_norm = attn_norm_of_sums(sums, blocks);
        assert_memory_equal(&shard_norm, &norm, sizeof norm);
        attn_clip_to_norm(g, n, shard_norm, max_norm);
        assert_memory_equal(g, whole, n * sizeof *g);
        free(g);
        free(whole);
        free(sums);
    }
}

static void test_clip_grad_norm(void **state)
{
    (void)state;
    attn_rng rng = test_rng(300);
    const size_t n = 10007;
    float *g = test_random(&rng, n, -1, 1), *orig = malloc(n * sizeof *orig);
    memcpy(orig, g, n * sizeof *g);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += (double)g[i] * g[i];
    const double want = sqrt(sum);
    /* Below the limit: returned, nothing scaled. */
    double norm = attn_clip_grad_norm(g, n, want * 2);
    assert_true(fabs(norm - want) <= 1e-12 * want);
    assert_memory_equal(g, orig, n * sizeof *g);
    /* Above it: scaled by max_norm / (norm + 1e-6), to a norm of max_norm. */
    norm = attn_clip_grad_norm(g, n, 1.0);
    assert_true(fabs(norm - want) <= 1e-12 * want);
    const float coef = (float)(1.0 / (want + 1e-6));
    for (size_t i = 0; i < n; i++) assert_true(g[i] == orig[i] * coef);
    assert_true(fabs(attn_clip_grad_norm(g, n, 10.0) - 1.0) < 1e-5);
    /* An infinite limit measures without clipping (torch's coefficient clamps to 1). */
    memcpy(g, orig, n * sizeof *g);
    norm = attn_clip_grad_norm(g, n, INFINITY);
    assert_true(fabs(norm - want) <= 1e-12 * want);
    assert_memory_equal(g, orig, n * sizeof *g);
    /* A non-finite norm is returned as it is, grads unchanged. */
    memcpy(g, orig, n * sizeof *g);
    g[17] = INFINITY;
    assert_true(isinf(attn_clip_grad_norm(g, n, 1.0)));
    g[17] = NAN;
    assert_true(isnan(attn_clip_grad_norm(g, n, 1.0)));
    g[17] = orig[17];
    assert_memory_equal(g, orig, n * sizeof *g);
    /* Bad arguments give NaN and a message. */
    assert_true(isnan(attn_clip_grad_norm(NULL, 3, 1.0)));
    assert_non_null(strstr(attn_last_error(), "grads is NULL"));
    assert_true(isnan(attn_clip_grad_norm(g, n, -1.0)));
    assert_non_null(strstr(attn_last_error(), "max_norm -1"));
    assert_true(isnan(attn_clip_grad_norm(g, n, NAN)));
    assert_non_null(strstr(attn_last_error(), "max_norm nan"));
    assert_memory_equal(g, orig, n * sizeof *g);
    assert_true(attn_clip_grad_norm(NULL, 0, 1.0) == 0.0);
    free(g), free(orig);
}

/* ---- schedule ----------------------------------------------------------------------------- */

static void test_warmup_cosine_schedule(void **state)
{
    (void)state;
    const float lr_max = 3e-3f, lr_min = 1e-5f;
    const int64_t warmup = 10, total = 110;
    for (int64_t step = 0; step < 130; step++) {
        double want;
        if (step < warmup) {
            want = (double)lr_max * (step + 1) / warmup;
        } else {
            double progress = fmin(1.0, (double)(step - warmup) / (total - warmup));
            want = lr_min + ((double)lr_max - lr_min) * (1 + cos(PI * progress)) / 2;
        }
        const float got = attn_lr_warmup_cosine(step, warmup, total, lr_max, lr_min);
        if (!(fabs(got - want) <= 1e-6 * want))
            print_error("step %lld: %g, want %g\n", (long long)step, (double)got, want);
        assert_true(fabs(got - want) <= 1e-6 * want);
    }
    assert_true(attn_lr_warmup_cosine(warmup - 1, warmup, total, lr_max, lr_min) == lr_max);
    assert_true(attn_lr_warmup_cosine(warmup, warmup, total, lr_max, lr_min) == lr_max);
    assert_true(attn_lr_warmup_cosine(total, warmup, total, lr_max, lr_min) == lr_min);
    /* No warm-up; no decay phase; a negative step counts as step 0. */
    assert_true(attn_lr_warmup_cosine(0, 0, 100, lr_max, lr_min) == lr_max);
    assert_true(attn_lr_warmup_cosine(50, 10, 10, lr_max, lr_min) == lr_min);
    assert_true(attn_lr_warmup_cosine(-5, 10, 100, lr_max, lr_min) ==
                attn_lr_warmup_cosine(0, 10, 100, lr_max, lr_min));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_entropy_matches_float64),
        cmocka_unit_test(test_cross_entropy_confident_rows_keep_their_digits),
        cmocka_unit_test(test_cross_entropy_gradient_matches_finite_differences),
        cmocka_unit_test(test_cross_entropy_edges),
        cmocka_unit_test(test_cross_entropy_rejects_bad_input),
        cmocka_unit_test(test_adamw_matches_float64_over_steps),
        cmocka_unit_test(test_adamw_decay_mask),
        cmocka_unit_test(test_adamw_rejects_bad_input),
        cmocka_unit_test(test_clip_grad_norm),
        cmocka_unit_test(test_norm_in_shards),
        cmocka_unit_test(test_warmup_cosine_schedule),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
