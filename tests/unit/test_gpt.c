/* The decoder-only language model: gradients against finite differences, the
 * key-value cache against full passes, the fused attention path against the
 * reference one, generation, and bad input. (Outputs and gradients against
 * PyTorch are the conformance test's job.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "models/gpt_impl.h"
#include "testutil.h"


static int32_t *random_ids(attn_rng *rng, size_t n, int V)
{
    int32_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)attn_rng_below(rng, (uint32_t)V);
    return ids;
}

/* Perturbs the parameters away from nanoGPT's init (biases 0, norms 1), so every
 * term of the gradient matters. */
static void randomise(attn_gpt *m, attn_rng *rng)
{
    attn_params *p = attn_gpt_params(m);
    attn_rng_fill_uniform(rng, p->data, p->total, -0.5f, 0.5f);
}

typedef struct loss_ctx {
    attn_gpt *m;
    const int32_t *ids, *targets;
    int B, T;
} loss_ctx;

static double model_loss(void *ctx)
{
    loss_ctx *c = ctx;
    float loss = 0.0f;
    attn_gpt_pass pass = {.training = false};
    assert_int_equal(attn_gpt_forward(c->m, &loss, c->ids, c->targets, c->B, c->T, &pass), ATTN_OK);
    return loss;
}

static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    for (int variant = 0; variant < TEST_GPT_VARIANTS; variant++) {
        attn_rng rng = test_rng((uint64_t)variant);
        attn_gpt_config cfg = test_gpt_variant(variant);
        attn_gpt *m;
        assert_int_equal(attn_gpt_create(&m, &cfg, rng.seed), ATTN_OK);
        randomise(m, &rng);
        const int B = 2, T = 7;
        int32_t *ids = random_ids(&rng, (size_t)B * T, cfg.vocab_size);
        int32_t *targets = random_ids(&rng, (size_t)B * T, cfg.vocab_size);
        loss_ctx ctx = {m, ids, targets, B, T};
        attn_params *p = attn_gpt_params(m);
        attn_params_zero_grad(p);
        model_loss(&ctx);
        assert_int_equal(attn_gpt_backward(m), ATTN_OK);
        float *analytic = malloc(p->total * sizeof *analytic);
        memcpy(analytic, p->grad, p->total * sizeof *analytic);
        /* Every tensor, through a slice of it (the whole model would take minutes); the
         * error is relative to the largest gradient of the model. */
        float scale = 0.0f;
        for (size_t i = 0; i < p->total; i++) scale = fmaxf(scale, fabsf(analytic[i]));
        for (int i = 0; i < p->count; i++) {
            const attn_param *t = &p->items[i];
            const size_t n = t->numel < 16 ? t->numel : 16;
            float slice = 1e-6f;
            for (size_t j = 0; j < n; j++) slice = fmaxf(slice, fabsf(analytic[t->offset + j]));
            double err = test_gradcheck(p->data + t->offset, n, analytic + t->offset, model_loss,
                                        &ctx, 1e-2f) * slice / scale;
            if (err > 2e-3) print_error("variant %d, %s: gradient error %g\n", variant, t->name, err);
            assert_true(err <= 2e-3);
        }
        free(analytic);
        free(ids);
        free(targets);
        attn_gpt_free(m);
    }
}

static void test_cache_matches_full_pass(void **state)
{
    (void)state;
    for (int variant = 0; variant < TEST_GPT_VARIANTS; variant++) {
        attn_rng rng = test_rng(100 + (uint64_t)variant);
        attn_gpt_config cfg = test_gpt_variant(variant);
        attn_gpt *m;
        assert_int_equal(attn_gpt_create(&m, &cfg, rng.seed), ATTN_OK);
        randomise(m, &rng);
        const int T = cfg.block_size, V = cfg.vocab_size;
        int32_t *ids = random_ids(&rng, (size_t)T, V);
        attn_gpt_pass pass = {.training = false};
        assert_int_equal(attn_gpt_forward(m, NULL, ids, NULL, 1, T, &pass), ATTN_OK);
        float *full = malloc((size_t)T * V * sizeof *full);
        memcpy(full, attn_gpt_logits(m), (size_t)T * V * sizeof *full);

        /* A prompt of 5 tokens, then one at a time. */
        attn_gpt_cache *cache;
        assert_int_equal(attn_gpt_cache_create(&cache, m, T), ATTN_OK);
        float *cached = malloc((size_t)T * V * sizeof *cached);
        assert_int_equal(attn_gpt_cache_forward(m, cache, cached, ids, 5), ATTN_OK);
        for (int t = 5; t < T; t++)
            assert_int_equal(attn_gpt_cache_forward(m, cache, cached + (size_t)t * V, ids + t, 1),
                             ATTN_OK);
        assert_int_equal(attn_gpt_cache_length(cache), T);
        double err = test_rel_error(cached, full, (size_t)T * V);
        if (err > 1e-5) print_error("variant %d: cached logits differ by %g\n", variant, err);
        assert_true(err <= 1e-5);

        /* Full: nothing more fits, and nothing changes. */
        test_expect_invalid(attn_gpt_cache_forward(m, cache, cached, ids, 1), "exceeds the cache");
        assert_int_equal(attn_gpt_cache_length(cache), T);
        attn_gpt_cache_reset(cache);
        assert_int_equal(attn_gpt_cache_length(cache), 0);

        attn_gpt_cache_free(cache);
        free(full);
        free(cached);
        free(ids);
        attn_gpt_free(m);
    }
}

/* A model of a test variant (dropout 0.2, random weights), a batch, and two
 * training steps on it to compare: their losses, logits (B, T, V) and gradients. */
typedef struct two_steps {
    attn_gpt *m;
    attn_gpt_config cfg;
    int B, T;
    int32_t *ids, *targets;
    float loss[2];
    float *logits[2], *grads[2];
} two_steps;

static void two_steps_setup(two_steps *t, int variant, attn_rng *rng)
{
    t->cfg = test_gpt_variant(variant);
    t->cfg.dropout = 0.2f;
    assert_int_equal(attn_gpt_create(&t->m, &t->cfg, rng->seed), ATTN_OK);
    randomise(t->m, rng);
    t->B = 3;
    t->T = t->cfg.block_size;
    t->ids = random_ids(rng, (size_t)t->B * t->T, t->cfg.vocab_size);
    t->targets = random_ids(rng, (size_t)t->B * t->T, t->cfg.vocab_size);
}

/* Step i: a training forward and backward from zeroed gradients, copied out. */
static void two_steps_run(two_steps *t, int i, const attn_gpt_pass *pass)
{
    attn_params *p = attn_gpt_params(t->m);
    const size_t n_logits = (size_t)t->B * t->T * t->cfg.vocab_size;
    attn_params_zero_grad(p);
    assert_int_equal(attn_gpt_forward(t->m, &t->loss[i], t->ids, t->targets, t->B, t->T, pass),
                     ATTN_OK);
    assert_int_equal(attn_gpt_backward(t->m), ATTN_OK);
    t->logits[i] = malloc(n_logits * sizeof(float));
    memcpy(t->logits[i], attn_gpt_logits(t->m), n_logits * sizeof(float));
    t->grads[i] = malloc(p->total * sizeof(float));
    memcpy(t->grads[i], p->grad, p->total * sizeof(float));
}

static void two_steps_free(two_steps *t)
{
    for (int i = 0; i < 2; i++) {
        free(t->grads[i]);
        free(t->logits[i]);
    }
    free(t->ids);
    free(t->targets);
    attn_gpt_free(t->m);
}

/* The pass generation runs (attn_gpt_cache_forward_last): the last row's logits
 * alone, its last block past attention on that row only, against the full
 * forward's; a model wide enough that a prompt's heads, and past 256 tokens a
 * decoding step's, attend side by side on the threads (the unit models' heads
 * are all below the parallel threshold). */
static void test_cache_last_row(void **state)
{
    (void)state;
    attn_rng rng = test_rng(150);
    attn_gpt_config cfg = test_gpt_variant(0);
    cfg.block_size = 300;
    cfg.n_embd = 128;
    cfg.n_head = 8;
    attn_gpt *m;
    assert_int_equal(attn_gpt_create(&m, &cfg, rng.seed), ATTN_OK);
    randomise(m, &rng);
    const int T = cfg.block_size, V = cfg.vocab_size, prompt = 250;
    int32_t *ids = random_ids(&rng, (size_t)T, V);
    attn_gpt_pass pass = {.training = false};
    assert_int_equal(attn_gpt_forward(m, NULL, ids, NULL, 1, T, &pass), ATTN_OK);
    const float *full = attn_gpt_logits(m);
    float *every = malloc((size_t)T * V * sizeof *every), *last = malloc((size_t)V * sizeof *last);
    attn_gpt_cache *cache;
    assert_int_equal(attn_gpt_cache_create(&cache, m, T), ATTN_OK);
    /* The whole context in one pass, as generation without the cache runs it. */
    assert_int_equal(attn_gpt_cache_forward_last(m, cache, last, ids, T), ATTN_OK);
    double err = test_rel_error(last, full + (size_t)(T - 1) * V, (size_t)V);
    if (err > 1e-5) print_error("last row of %d differs by %g\n", T, err);
    assert_true(err <= 1e-5);
    /* A prompt, then one token at a time, each step's row against the full pass
     * and against the cache's pass with every row's logits. */
    attn_gpt_cache_reset(cache);
    assert_int_equal(attn_gpt_cache_forward(m, cache, every, ids, prompt), ATTN_OK);
    attn_gpt_cache_reset(cache);
    assert_int_equal(attn_gpt_cache_forward_last(m, cache, last, ids, prompt), ATTN_OK);
    err = test_rel_error(last, every + (size_t)(prompt - 1) * V, (size_t)V);
    assert_true(err <= 1e-5);
    for (int t = prompt; t < T; t++) {
        assert_int_equal(attn_gpt_cache_forward_last(m, cache, last, ids + t, 1), ATTN_OK);
        err = test_rel_error(last, full + (size_t)t * V, (size_t)V);
        if (err > 1e-5) print_error("step %d differs by %g\n", t, err);
        assert_true(err <= 1e-5);
    }
    attn_gpt_cache_free(cache);
    free(every);
    free(last);
    free(ids);
    attn_gpt_free(m);
}

static void test_fused_matches_reference(void **state)
{
    (void)state;
    for (int variant = 0; variant < TEST_GPT_VARIANTS; variant++) {
        attn_rng rng = test_rng(200 + (uint64_t)variant);
        two_steps t;
        two_steps_setup(&t, variant, &rng);
        for (int reference = 0; reference < 2; reference++) {
            attn_gpt_pass pass = {.training = true, .step = 3, .seed = rng.seed,
                                  .reference_attention = reference};
            two_steps_run(&t, reference, &pass);
        }
        const size_t total = attn_gpt_params(t.m)->total;
        assert_true(fabsf(t.loss[0] - t.loss[1]) <= 1e-5f * fabsf(t.loss[1]));
        assert_true(test_rel_error(t.logits[0], t.logits[1],
                                   (size_t)t.B * t.T * t.cfg.vocab_size) <= 1e-5);
        double err = test_rel_error(t.grads[0], t.grads[1], total);
        if (err > 1e-5) print_error("variant %d: fused gradients differ by %g\n", variant, err);
        assert_true(err <= 1e-5);
        two_steps_free(&t);
    }
}

/* One training step in bf16 precision against the same step in float32.
 * Every product of the bf16 step reads operands rounded to bfloat16, each such
 * rounding a relative change of at most u = 2^-8 of the terms it enters. The
 * logits' path crosses, per block, four Linears (two rounded operands each) and
 * attention (q, k, v and P rounded), then lm_head: R_fwd = 12 L + 2 roundings; a
 * gradient's path adds the backward's (dy, or dout and dS, rounded besides the
 * forward's operands): R = 2 R_fwd. To first order the result moves by at most
 * R u times the scale of the terms summed, which LayerNorm keeps near the
 * result's own, so each tensor is held to R u relative to its largest value
 * (test_rel_error). A step that did not round (float32 in disguise) differs
 * from float32 by float32's noise, under 1e-5: the bf16 step must differ by more. */
static void test_bf16_step_near_float32(void **state)
{
    (void)state;
    const double u = 1.0 / 256.0;
    for (int variant = 0; variant < TEST_GPT_VARIANTS; variant++) {
        attn_rng rng = test_rng(900 + (uint64_t)variant);
        two_steps t;
        two_steps_setup(&t, variant, &rng);
        for (int bf16 = 0; bf16 < 2; bf16++) {
            assert_int_equal(attn_gpt_set_precision(t.m, bf16 ? ATTN_BF16 : ATTN_FLOAT32),
                             ATTN_OK);
            attn_gpt_pass pass = {.training = true, .step = 5, .seed = rng.seed};
            two_steps_run(&t, bf16, &pass);
        }
        assert_int_equal(attn_gpt_get_precision(t.m), ATTN_BF16);
        const attn_params *p = attn_gpt_params(t.m);
        const double r_fwd = 12.0 * t.cfg.n_layer + 2.0, r_grad = 2.0 * r_fwd;
        const double loss_err = fabs((double)t.loss[1] - t.loss[0]) / fabs((double)t.loss[0]);
        const double logits_err =
            test_rel_error(t.logits[1], t.logits[0], (size_t)t.B * t.T * t.cfg.vocab_size);
        double worst_grad = 0.0;
        for (int i = 0; i < p->count; i++) {
            const attn_param *q = &p->items[i];
            const double err =
                test_rel_error(t.grads[1] + q->offset, t.grads[0] + q->offset, q->numel);
            if (err > r_grad * u)
                fail_msg("variant %d: bf16 gradient of %s differs from float32's by %.3g > "
                         "R u = %.3g", variant, q->name, err, r_grad * u);
            if (err > worst_grad) worst_grad = err;
        }
        if (loss_err > r_fwd * u || logits_err > r_fwd * u)
            fail_msg("variant %d: bf16 loss %.6g vs %.6g (%.3g), logits %.3g; bound R u = %.3g",
                     variant, (double)t.loss[1], (double)t.loss[0], loss_err, logits_err,
                     r_fwd * u);
        if (!(logits_err > 1e-5 && worst_grad > 1e-5))
            fail_msg("variant %d: the bf16 step is float32's within %.3g, %.3g: not rounded",
                     variant, logits_err, worst_grad);
        print_message("variant %d: bf16 vs float32: loss %.2e, logits %.2e, worst gradient %.2e "
                      "(bounds %.2e, %.2e)\n", variant, loss_err, logits_err, worst_grad,
                      r_fwd * u, r_grad * u);
        two_steps_free(&t);
    }
    test_expect_invalid(attn_gpt_set_precision(NULL, ATTN_BF16), "gpt");
}

static void test_dropout_repeats_per_step(void **state)
{
    (void)state;
    attn_rng rng = test_rng(300);
    attn_gpt_config cfg = test_gpt_variant(0);
    cfg.dropout = 0.3f;
    attn_gpt *m;
    assert_int_equal(attn_gpt_create(&m, &cfg, rng.seed), ATTN_OK);
    const int B = 2, T = 8;
    int32_t *ids = random_ids(&rng, (size_t)B * T, cfg.vocab_size);
    float a, b, c, eval;
    attn_gpt_pass pass = {.training = true, .step = 5, .seed = 9};
    assert_int_equal(attn_gpt_forward(m, &a, ids, ids, B, T, &pass), ATTN_OK);
    assert_int_equal(attn_gpt_forward(m, &b, ids, ids, B, T, &pass), ATTN_OK);
    pass.step = 6;
    assert_int_equal(attn_gpt_forward(m, &c, ids, ids, B, T, &pass), ATTN_OK);
    pass.training = false;
    assert_int_equal(attn_gpt_forward(m, &eval, ids, ids, B, T, &pass), ATTN_OK);
    assert_true(a == b);
    assert_true(a != c);
    assert_true(a != eval);
    free(ids);
    attn_gpt_free(m);
}

/* A replica reads its model's values and keeps gradients of its own: two
 * threads, one running the model on one half of a batch and one a replica on
 * the other, give each half's loss and gradient, bit for bit, that the model
 * alone gives one after the other, in float32 and bf16, with dropout; a change
 * of the model's values is the replica's; freeing the replica leaves the model
 * whole. */
static void test_replica_runs_beside_its_model(void **state)
{
    (void)state;
    for (int variant = 0; variant < TEST_GPT_VARIANTS; variant++)
        for (int bf16 = 0; bf16 < 2; bf16++) {
            attn_rng rng = test_rng(1100 + 2 * (uint64_t)variant + (uint64_t)bf16);
            attn_gpt_config cfg = test_gpt_variant(variant);
            cfg.dropout = 0.2f;
            attn_gpt *m, *replica;
            assert_int_equal(attn_gpt_create(&m, &cfg, rng.seed), ATTN_OK);
            assert_int_equal(attn_gpt_set_precision(m, bf16 ? ATTN_BF16 : ATTN_FLOAT32),
                             ATTN_OK);
            randomise(m, &rng);
            assert_int_equal(attn_gpt_replicate(&replica, m), ATTN_OK);
            assert_int_equal(attn_gpt_get_precision(replica), attn_gpt_get_precision(m));
            attn_params *p = attn_gpt_params(m), *q = attn_gpt_params(replica);
            assert_ptr_equal(p->data, q->data);
            assert_ptr_not_equal(p->grad, q->grad);
            const int B = 2, T = 8;
            const size_t n = (size_t)B * T, total = p->total;
            int32_t *ids = random_ids(&rng, 2 * n, cfg.vocab_size);
            float serial[2], together[2];
            float *grads = malloc(2 * total * sizeof *grads);
            for (int half = 0; half < 2; half++) { /* the model alone, one after the other */
                attn_gpt_pass pass = {.training = true, .step = 4, .seed = 7 + (uint64_t)half};
                attn_params_zero_grad(p);
                assert_int_equal(attn_gpt_forward(m, &serial[half], ids + half * n,
                                                  ids + half * n, B, T, &pass), ATTN_OK);
                assert_int_equal(attn_gpt_backward(m), ATTN_OK);
                memcpy(grads + half * total, p->grad, total * sizeof *grads);
            }
            attn_gpt *models[2] = {m, replica};
            int status[2];
#pragma omp parallel for num_threads(2)
            for (int half = 0; half < 2; half++) {
                attn_gpt_pass pass = {.training = true, .step = 4, .seed = 7 + (uint64_t)half};
                attn_params_zero_grad(attn_gpt_params(models[half]));
                status[half] = attn_gpt_forward(models[half], &together[half], ids + half * n,
                                                ids + half * n, B, T, &pass);
                if (status[half] == ATTN_OK) status[half] = attn_gpt_backward(models[half]);
            }
            for (int half = 0; half < 2; half++) {
                assert_int_equal(status[half], ATTN_OK);
                assert_true(together[half] == serial[half]);
                const float *g = attn_gpt_params(models[half])->grad;
                assert_memory_equal(g, grads + half * total, total * sizeof *g);
            }
            p->data[0] += 1.0f;
            assert_true(q->data[0] == p->data[0]);
            attn_gpt_free(replica);
            float loss;
            attn_gpt_pass eval = {.training = false};
            assert_int_equal(attn_gpt_forward(m, &loss, ids, ids, B, T, &eval), ATTN_OK);
            assert_true(isfinite(loss));
            free(grads);
            free(ids);
            attn_gpt_free(m);
        }
    attn_gpt *replica = NULL;
    test_expect_invalid(attn_gpt_replicate(&replica, NULL), "gpt");
}

typedef struct collected {
    int32_t tokens[64];
    int count, stop_after;
} collected;

static bool collect(int32_t token, void *user)
{
    collected *c = user;
    c->tokens[c->count++] = token;
    return c->count != c->stop_after;
}

static void test_generation(void **state)
{
    (void)state;
    for (int variant = 0; variant < TEST_GPT_VARIANTS; variant++) {
        attn_rng rng = test_rng(400 + (uint64_t)variant);
        attn_gpt_config cfg = test_gpt_variant(variant);
        attn_gpt *m;
        assert_int_equal(attn_gpt_create(&m, &cfg, rng.seed), ATTN_OK);
        randomise(m, &rng);
        int32_t prompt[3] = {1, 2, 3};
        /* Within the block, greedy decoding reads the same logits either way. */
        const int n = cfg.block_size - 3;
        int32_t cached[32], uncached[32];
        attn_generate_options opt = {.n_new = n, .sampling = {.temperature = 0.0f, .top_p = 1.0f}, .use_cache = true};
        int produced = 0;
        assert_int_equal(attn_gpt_generate(m, cached, &produced, prompt, 3, &opt), ATTN_OK);
        assert_int_equal(produced, n);
        opt.use_cache = false;
        assert_int_equal(attn_gpt_generate(m, uncached, &produced, prompt, 3, &opt), ATTN_OK);
        assert_memory_equal(cached, uncached, (size_t)n * sizeof *cached);
        /* So does a shorter generation, whose cache holds only its own tokens. */
        opt.n_new = n / 2;
        assert_int_equal(attn_gpt_generate(m, uncached, &produced, prompt, 3, &opt), ATTN_OK);
        opt.use_cache = true;
        assert_int_equal(attn_gpt_generate(m, cached, &produced, prompt, 3, &opt), ATTN_OK);
        assert_int_equal(produced, n / 2);
        assert_memory_equal(cached, uncached, (size_t)(n / 2) * sizeof *cached);

        /* Past the block: the context shifts, tokens stay valid, sampling repeats. */
        opt = (attn_generate_options){.n_new = 40, .sampling = {.temperature = 1.0f, .top_k = 5,
                                      .top_p = 0.9f}, .seed = 7, .use_cache = true};
        int32_t first[40], second[40];
        attn_status st = attn_gpt_generate(m, first, NULL, prompt, 3, &opt);
        if (st) print_error("%s\n", attn_last_error());
        assert_int_equal(st, ATTN_OK);
        assert_int_equal(attn_gpt_generate(m, second, NULL, prompt, 3, &opt), ATTN_OK);
        assert_memory_equal(first, second, sizeof first);
        for (int i = 0; i < 40; i++) assert_true(first[i] >= 0 && first[i] < cfg.vocab_size);
        opt.use_cache = false;
        assert_int_equal(attn_gpt_generate(m, second, NULL, prompt, 3, &opt), ATTN_OK);

        /* The callback sees every token and may stop early. */
        collected seen = {.stop_after = 4};
        opt.on_token = collect;
        opt.user = &seen;
        assert_int_equal(attn_gpt_generate(m, first, &produced, prompt, 3, &opt), ATTN_OK);
        assert_int_equal(produced, 4);
        assert_int_equal(seen.count, 4);
        assert_memory_equal(seen.tokens, first, 4 * sizeof *first);
        attn_gpt_free(m);
    }
}

static void test_bad_input(void **state)
{
    (void)state;
    attn_gpt_config cfg = test_gpt_variant(0);
    cfg.n_embd = 10;
    cfg.n_head = 3;
    attn_gpt *m = NULL;
    test_expect_invalid(attn_gpt_create(&m, &cfg, 1), "n_embd 10 is not divisible by n_head 3");
    cfg = test_gpt_variant(0);
    cfg.n_kv_head = 3;
    test_expect_invalid(attn_gpt_create(&m, &cfg, 1), "n_head 4 is not divisible by n_kv_head 3");
    cfg = test_gpt_variant(0);
    cfg.position = ATTN_POS_ROPE;
    cfg.n_embd = 12; /* head size 3 */
    test_expect_invalid(attn_gpt_create(&m, &cfg, 1), "even head size");
    cfg = test_gpt_variant(0);
    cfg.dropout = 1.0f;
    test_expect_invalid(attn_gpt_create(&m, &cfg, 1), "dropout");
    attn_position_kind kind;
    test_expect_invalid(attn_position_parse(&kind, "absolute"),
                        "learned, sinusoidal, rope and alibi");
    assert_int_equal(attn_position_parse(&kind, "alibi"), ATTN_OK);
    assert_int_equal(kind, ATTN_POS_ALIBI);
    assert_string_equal(attn_position_name(ATTN_POS_ROPE), "rope");

    cfg = test_gpt_variant(0);
    assert_int_equal(attn_gpt_create(&m, &cfg, 1), ATTN_OK);
    int32_t ids[13] = {0};
    float loss;
    attn_gpt_pass pass = {0};
    test_expect_invalid(attn_gpt_forward(m, &loss, ids, ids, 1, 13, &pass),
                        "context of 13 tokens exceeds the block size 12");
    ids[4] = 11;
    test_expect_invalid(attn_gpt_forward(m, &loss, ids, ids, 1, 8, &pass), "token id 11 at position 4");
    test_expect_invalid(attn_gpt_backward(m), "forward with targets");
    ids[4] = 0;
    assert_int_equal(attn_gpt_forward(m, NULL, ids, NULL, 1, 8, &pass), ATTN_OK);
    test_expect_invalid(attn_gpt_backward(m), "forward with targets");
    assert_int_equal(attn_gpt_forward(m, &loss, ids, ids, 1, 8, &pass), ATTN_OK);
    assert_int_equal(attn_gpt_backward(m), ATTN_OK);
    test_expect_invalid(attn_gpt_backward(m), "forward with targets");

    attn_gpt_cache *cache;
    test_expect_invalid(attn_gpt_cache_create(&cache, m, 13), "exceeds the block size 12");
    int32_t out[4];
    attn_generate_options opt = {.n_new = 4, .sampling = {.temperature = -1.0f}, .use_cache = true};
    assert_int_not_equal(attn_gpt_generate(m, out, NULL, ids, 3, &opt), ATTN_OK);
    opt.sampling.temperature = 0.0f;
    ids[1] = -1;
    test_expect_invalid(attn_gpt_generate(m, out, NULL, ids, 3, &opt), "prompt id -1 at position 1");
    attn_gpt_free(m);
}

static void test_parameter_names(void **state)
{
    (void)state;
    attn_gpt_config cfg = test_gpt_variant(0);
    attn_gpt *m;
    assert_int_equal(attn_gpt_create(&m, &cfg, 1), ATTN_OK);
    attn_params *p = attn_gpt_params(m);
    test_expect_param(p, "transformer.wte.weight", 11, 16);
    test_expect_param(p, "transformer.wpe.weight", 12, 16);
    test_expect_param(p, "transformer.h.1.attn.c_attn.weight", 48, 16);
    test_expect_param(p, "transformer.h.0.mlp.c_proj.weight", 16, 64);
    test_expect_param(p, "transformer.ln_f.bias", 16, 0);
    assert_null(attn_params_find(p, "lm_head.weight"));
    attn_gpt_free(m);

    cfg = test_gpt_variant(2); /* rope, one kv head, untied */
    assert_int_equal(attn_gpt_create(&m, &cfg, 1), ATTN_OK);
    p = attn_gpt_params(m);
    test_expect_param(p, "transformer.h.0.attn.c_attn.weight", (4 + 2) * 4, 16);
    test_expect_param(p, "lm_head.weight", 11, 16);
    assert_null(attn_params_find(p, "transformer.wpe.weight"));
    attn_gpt_free(m);
}

/* The count without a model is the created model's, and is exact far past what
 * could be allocated: the largest config every field allows. */
static void test_param_count(void **state)
{
    (void)state;
    for (int v = 0; v <= 5; v++) {
        attn_gpt_config cfg = test_gpt_variant(v);
        attn_gpt *m;
        int64_t count = -1;
        assert_int_equal(attn_gpt_create(&m, &cfg, 1), ATTN_OK);
        assert_int_equal(attn_gpt_param_count(&cfg, &count), ATTN_OK);
        assert_int_equal(count, test_params_numel(attn_gpt_params(m)));
        attn_gpt_free(m);
    }
    attn_gpt_config cfg = attn_gpt_defaults();
    cfg.vocab_size = ATTN_MAX_VOCAB, cfg.block_size = ATTN_MAX_LENGTH;
    cfg.n_layer = ATTN_GPT_MAX_LAYERS, cfg.n_embd = ATTN_MAX_WIDTH;
    const int64_t V = cfg.vocab_size, T = cfg.block_size, L = cfg.n_layer, C = cfg.n_embd;
    /* wte, wpe; per block ln_1, c_attn, c_proj, ln_2, c_fc, mlp c_proj; ln_f */
    const int64_t block = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C +
                          (4 * C * C + 4 * C) + (4 * C * C + C);
    int64_t count = -1;
    assert_int_equal(attn_gpt_param_count(&cfg, &count), ATTN_OK);
    assert_int_equal(count, V * C + T * C + L * block + 2 * C);
    cfg.n_embd = 100, cfg.n_head = 3;
    test_expect_invalid(attn_gpt_param_count(&cfg, &count), "not divisible by n_head 3");
    test_expect_invalid(attn_gpt_param_count(&cfg, NULL), "count");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_cache_matches_full_pass),
        cmocka_unit_test(test_cache_last_row),
        cmocka_unit_test(test_fused_matches_reference),
        cmocka_unit_test(test_bf16_step_near_float32),
        cmocka_unit_test(test_dropout_repeats_per_step),
        cmocka_unit_test(test_replica_runs_beside_its_model),
        cmocka_unit_test(test_generation),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_parameter_names),
        cmocka_unit_test(test_param_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
