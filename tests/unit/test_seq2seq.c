/* attn_seq2seq, mostly with the RNN architectures: finite-difference gradients of the
 * whole model for every architecture and attention (the straight-through
 * Gumbel-softmax at fixed noise, REINFORCE's surrogate with its advantages held
 * fixed), repeatability from (seed, step), the REINFORCE baseline, Gumbel's
 * temperature, greedy and beam search (decoding's scores against teacher forcing
 * for the Transformer too), attention capture, and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/seq2seq_rnn.h"
#include "testutil.h"

static const attn_seq2seq_arch RNN_ARCHS[] = {
    ATTN_S2S_RNN_BAHDANAU,   ATTN_S2S_GRU_BAHDANAU,       ATTN_S2S_LSTM_BAHDANAU,
    ATTN_S2S_LSTM_LUONG_DOT, ATTN_S2S_LSTM_LUONG_GENERAL,
};
enum { ARCH_COUNT = sizeof RNN_ARCHS / sizeof RNN_ARCHS[0] };
static const attn_attention_kind KINDS[] = {ATTN_ATTEND_SOFT, ATTN_ATTEND_HARD_REINFORCE,
                                            ATTN_ATTEND_HARD_GUMBEL};
enum { KIND_COUNT = sizeof KINDS / sizeof KINDS[0] };

typedef struct model_case {
    attn_seq2seq_config cfg;
    attn_seq2seq *m;
    attn_batch batch;
    attn_seq2seq_pass pass;
    char desc[256];
} model_case;

static int below(attn_rng *rng, int n) { return (int)attn_rng_below(rng, (uint32_t)n); }

/* A random batch of B examples: lengths in [1, cap], ids in [3, vocab). */
static void make_batch(attn_batch *b, attn_rng *rng, int B, int S, int T, int src_vocab,
                       int tgt_vocab)
{
    *b = (attn_batch){.batch = B, .capacity = B, .src_cap = S, .tgt_cap = T};
    b->src = calloc((size_t)B * S, sizeof(int32_t));
    b->tgt_in = calloc((size_t)B * T, sizeof(int32_t));
    b->tgt_out = calloc((size_t)B * T, sizeof(int32_t));
    b->src_len = calloc((size_t)B, sizeof(int32_t));
    b->tgt_len = calloc((size_t)B, sizeof(int32_t));
    for (int i = 0; i < B; i++) {
        b->src_len[i] = 1 + below(rng, S);
        b->tgt_len[i] = 1 + below(rng, T);
        for (int j = 0; j < b->src_len[i]; j++)
            b->src[i * S + j] = ATTN_TOKEN_FIRST_CHAR + below(rng, src_vocab - 3);
        b->tgt_in[i * T] = ATTN_TOKEN_BOS;
        for (int t = 0; t + 1 < b->tgt_len[i]; t++) {
            const int32_t y = ATTN_TOKEN_FIRST_CHAR + below(rng, tgt_vocab - 3);
            b->tgt_out[i * T + t] = y;
            b->tgt_in[i * T + t + 1] = y;
        }
        b->tgt_out[i * T + b->tgt_len[i] - 1] = ATTN_TOKEN_EOS;
    }
}

static void free_batch(attn_batch *b)
{
    free(b->src), free(b->tgt_in), free(b->tgt_out), free(b->src_len), free(b->tgt_len);
}

/* A small model (sizes 1-3 so that every parameter can be differenced) and a
 * batch for it. */
static void make_case(model_case *c, attn_rng *rng, attn_seq2seq_arch arch,
                      attn_attention_kind kind, bool dropout)
{
    memset(c, 0, sizeof *c);
    attn_seq2seq_config *g = &c->cfg;
    *g = attn_seq2seq_defaults(arch, kind);
    g->src_vocab = 5 + below(rng, 3);
    g->tgt_vocab = 5 + below(rng, 3);
    g->max_src_len = 5;
    g->max_tgt_len = 4;
    g->embed_dim = 1 + below(rng, 3);
    g->hidden_dim = 1 + below(rng, 3);
    g->enc_layers = 1 + below(rng, 2);
    g->dec_layers = 1 + below(rng, 2);
    g->dropout = dropout ? 0.3f : 0.0f;
    g->entropy_weight = 0.1f;
    g->baseline_decay = 0.8f;
    g->gumbel_tau_start = 2.0f;
    g->gumbel_tau_end = 0.5f;
    g->gumbel_anneal_steps = 10;
    assert_int_equal(attn_seq2seq_create(&c->m, g, attn_rng_u32(rng)), ATTN_OK);
    make_batch(&c->batch, rng, 1 + below(rng, 3), g->max_src_len, g->max_tgt_len, g->src_vocab,
               g->tgt_vocab);
    c->pass =
        (attn_seq2seq_pass){.training = true, .step = below(rng, 20), .seed = attn_rng_u32(rng)};
    snprintf(c->desc, sizeof c->desc,
             "%s %s dropout %g: E=%d H=%d layers %d/%d V=%d/%d B=%d step %lld",
             attn_seq2seq_arch_name(arch), attn_attention_kind_name(kind), (double)g->dropout,
             g->embed_dim, g->hidden_dim, g->enc_layers, g->dec_layers, g->src_vocab, g->tgt_vocab,
             c->batch.batch, (long long)c->pass.step);
}

static void free_case(model_case *c)
{
    attn_seq2seq_free(c->m);
    free_batch(&c->batch);
}

static float forward(model_case *c)
{
    attn_seq2seq_stats stats;
    attn_status s = attn_seq2seq_forward(c->m, &stats, &c->batch, &c->pass);
    if (s != ATTN_OK) print_error("%s: forward failed: %s\n", c->desc, attn_last_error());
    assert_int_equal(s, ATTN_OK);
    return stats.loss;
}

/* ---- finite differences ------------------------------------------------------------ */

typedef struct fd_ctx {
    model_case *c;
    const int32_t *choice;  /* (T, B) the hard picks at the unperturbed point */
    const float *advantage; /* (B) REINFORCE's, held fixed */
    /* Gumbel: the soft sample y0 and G = dL/dctx . values, both (T, B, S) at the
     * unperturbed point. */
    const float *y0, *G;
    bool flipped; /* a perturbed forward picked other positions */
} fd_ctx;

/* REINFORCE's surrogate with fixed advantages A_b, from the forward's picks and
 * weights: -(1/B) sum_b A_b sum_t log pi(j_t) - w (mean entropy). */
static double reinforce_surrogate(const s2s_rnn *r, const float *advantage, float weight)
{
    const s2s_run *run = &r->run;
    const int B = run->R, S = run->S;
    double pg = 0.0, entropy = 0.0;
    int counted = 0;
    for (int t = 0; t < run->T; t++)
        for (int b = 0; b < B; b++) {
            if (run->tgt_out[t * B + b] == ATTN_TOKEN_PAD) continue;
            const float *pi = run->weights + ((size_t)t * B + b) * S;
            counted++;
            pg += advantage[b] * log((double)pi[run->choice[t * B + b]]);
            for (int j = 0; j < run->src_len[b]; j++)
                if (pi[j] > 0.0f) entropy -= (double)pi[j] * log((double)pi[j]);
        }
    return -pg / B - (double)weight * entropy / counted;
}

static double objective(void *p)
{
    fd_ctx *ctx = p;
    double loss = forward(ctx->c);
    const s2s_rnn *r = attn_s2s_rnn(ctx->c->m);
    if (ctx->choice &&
        memcmp(ctx->choice, r->run.choice, (size_t)r->run.T * r->run.R * sizeof(int32_t)) != 0)
        ctx->flipped = true;
    if (ctx->advantage) loss += reinforce_surrogate(r, ctx->advantage, ctx->c->cfg.entropy_weight);
    if (ctx->G) /* the straight-through term sum (y - y0) G, zero at the point itself */
        for (size_t i = 0; i < (size_t)r->run.T * r->run.R * r->run.S; i++)
            loss += ((double)r->run.weights[i] - ctx->y0[i]) * ctx->G[i];
    return loss;
}

/* Every parameter's gradient against the fourth-order central difference of
 * the objective. A perturbation that changes a hard pick moves the objective by
 * a jump, not a slope: those parameters are skipped. They must stay few over
 * the whole test (test_gradients), not in each case: a pick that REINFORCE drew
 * near a boundary of its distribution's CDF flips under the perturbation of any
 * parameter upstream of it, so one case can skip many (40 of 141 for seed
 * 357311846).
 * The straight-through Gumbel gradient is the gradient of
 *   L + sum over steps and positions of (y_j - stop_gradient(y_j)) dL/dctx . h_j,
 * whose extra term is 0 in value: differenced with y0 and dL/dctx (from the
 * backward) and the values h_j held at the point, it is what the model's
 * backward must return. */
typedef struct fd_summary {
    double worst;
    int skipped, total;
} fd_summary;

static void check_gradients(model_case *c, fd_summary *summary)
{
    attn_params *p = attn_seq2seq_params(c->m);
    const s2s_rnn *r = attn_s2s_rnn(c->m);
    attn_params_zero_grad(p);
    forward(c);
    attn_status s = attn_seq2seq_backward(c->m);
    if (s != ATTN_OK) print_error("%s: backward failed: %s\n", c->desc, attn_last_error());
    assert_int_equal(s, ATTN_OK);
    float *analytic = malloc(p->total * sizeof *analytic);
    memcpy(analytic, p->grad, p->total * sizeof *analytic);
    const size_t picks = (size_t)r->run.T * r->run.R;
    int32_t *choice = malloc(picks * sizeof *choice);
    memcpy(choice, r->run.choice, picks * sizeof *choice);
    float advantage[8];
    memcpy(advantage, r->run.advantage, (size_t)r->run.R * sizeof(float));
    fd_ctx ctx = {.c = c,
                  .choice = c->cfg.attention == ATTN_ATTEND_SOFT ? NULL : choice,
                  .advantage = c->cfg.attention == ATTN_ATTEND_HARD_REINFORCE ? advantage : NULL};
    const int T = r->run.T, B = r->run.R, S = r->run.S, Dv = r->d.Dv;
    float *y0 = malloc((size_t)T * B * S * sizeof *y0), *G = calloc((size_t)T * B * S, sizeof *G);
    if (c->cfg.attention == ATTN_ATTEND_HARD_GUMBEL) {
        memcpy(y0, r->run.weights, (size_t)T * B * S * sizeof *y0);
        for (int t = 0; t < T; t++)
            for (int b = 0; b < B; b++)
                for (int j = 0; j < r->run.src_len[b]; j++) {
                    double dot = 0.0;
                    for (int k = 0; k < Dv; k++)
                        dot += (double)r->run.dctx[((size_t)t * B + b) * Dv + k] *
                               r->run.values[((size_t)b * S + j) * Dv + k];
                    G[((size_t)t * B + b) * S + j] = (float)dot;
                }
        ctx.y0 = y0, ctx.G = G;
    }

    double scale = 1e-2, worst = 0.0;
    const char *worst_name = "";
    int skipped = 0, total = 0;
    for (size_t e = 0; e < p->total; e++) scale = fmax(scale, fabs((double)analytic[e]));
    for (int i = 0; i < p->count; i++) {
        const attn_param *it = &p->items[i];
        for (size_t e = it->offset; e < it->offset + it->numel; e++) {
            ctx.flipped = false;
            double err = test_gradcheck(p->data + e, 1, analytic + e, objective, &ctx, 1e-2f);
            total++;
            if (ctx.flipped) {
                skipped++;
                continue;
            }
            err *= fmax(fabs((double)analytic[e]), 1e-6); /* back to an absolute error */
            if (err > worst) worst = err, worst_name = it->name;
        }
    }
    if (worst / scale > 1e-3)
        print_error("%s: gradient error %.3g (of %s) relative to %.3g, %d of %d skipped\n", c->desc,
                    worst / scale, worst_name, scale, skipped, total);
    assert_true(worst / scale <= 1e-3);
    summary->worst = fmax(summary->worst, worst / scale);
    summary->skipped += skipped;
    summary->total += total;
    free(analytic);
    free(choice);
    free(y0);
    free(G);
}

static void test_gradients(void **state)
{
    (void)state;
    fd_summary summary = {0};
    for (int a = 0; a < ARCH_COUNT; a++)
        for (int k = 0; k < KIND_COUNT; k++)
            for (int dropout = 0; dropout < 2; dropout++) {
                attn_rng rng = test_rng((uint64_t)(a * KIND_COUNT + k) * 2 + dropout);
                model_case c;
                make_case(&c, &rng, RNN_ARCHS[a], KINDS[k], dropout);
                check_gradients(&c, &summary);
                free_case(&c);
            }
    printf("largest gradient error %.3g (limit 1e-3); %d of %d differences skipped for a "
           "changed hard pick (limit 1 in 20)\n",
           summary.worst, summary.skipped, summary.total);
    assert_true(summary.skipped <= summary.total / 20);
}

/* ---- repeatability, the baseline, the temperature -------------------------------------- */

static float *gradients_of(model_case *c, float *loss)
{
    attn_params *p = attn_seq2seq_params(c->m);
    attn_params_zero_grad(p);
    *loss = forward(c);
    assert_int_equal(attn_seq2seq_backward(c->m), ATTN_OK);
    float *g = malloc(p->total * sizeof *g);
    memcpy(g, p->grad, p->total * sizeof *g);
    return g;
}

/* The same (seed, step) gives the same loss and gradients, bit for bit;
 * another step draws other dropout and samples. Six examples, so that the
 * dropout masks are never the same by chance (with one example of one token and
 * E = H = 1 only a few units are dropped, and two steps drew the same masks for
 * seed 1796424413466335853). */
static void test_repeatable(void **state)
{
    (void)state;
    for (int k = 0; k < KIND_COUNT; k++) {
        attn_rng rng = test_rng(100 + (uint64_t)k);
        model_case c;
        make_case(&c, &rng, RNN_ARCHS[below(&rng, ARCH_COUNT)], KINDS[k], true);
        free_batch(&c.batch);
        make_batch(&c.batch, &rng, 6, c.cfg.max_src_len, c.cfg.max_tgt_len, c.cfg.src_vocab,
                   c.cfg.tgt_vocab);
        attn_params *p = attn_seq2seq_params(c.m);
        float *baseline = attn_seq2seq_buffers(c.m)->data;
        float loss1, loss2, loss3;
        const float saved_baseline = baseline ? *baseline : 0.0f;
        float *g1 = gradients_of(&c, &loss1);
        if (baseline) *baseline = saved_baseline; /* backward moved it */
        float *g2 = gradients_of(&c, &loss2);
        assert_memory_equal(&loss1, &loss2, sizeof loss1);
        assert_memory_equal(g1, g2, p->total * sizeof *g1);
        c.pass.step++;
        float *g3 = gradients_of(&c, &loss3);
        assert_true(loss3 != loss1 || memcmp(g1, g3, p->total * sizeof *g1) != 0);
        free(g1), free(g2), free(g3);
        free_case(&c);
    }
}

/* The thread count changes nothing: a batch big enough for the decoder's loops
 * to run in parallel gives the same bits with one thread and with two. The
 * encoder's gradients come from attn_rnn and are held to this by its tests. */
static void test_thread_count(void **state)
{
    (void)state;
    const int threads = attn_get_num_threads();
    for (int k = 0; k < KIND_COUNT; k++) {
        attn_rng rng = test_rng(150 + (uint64_t)k);
        model_case c;
        make_case(&c, &rng, k == 1 ? ATTN_S2S_LSTM_LUONG_DOT : ATTN_S2S_GRU_BAHDANAU, KINDS[k],
                  true);
        free_case(&c);
        c.cfg.embed_dim = 8, c.cfg.hidden_dim = 32, c.cfg.max_src_len = 24;
        assert_int_equal(attn_seq2seq_create(&c.m, &c.cfg, 5), ATTN_OK);
        make_batch(&c.batch, &rng, 48, 24, c.cfg.max_tgt_len, c.cfg.src_vocab, c.cfg.tgt_vocab);
        c.batch.src_len[0] = 24;
        attn_params *p = attn_seq2seq_params(c.m);
        float loss[2], *grads[2];
        for (int run = 0; run < 2; run++) {
            assert_int_equal(attn_set_num_threads(run + 1), ATTN_OK);
            grads[run] = gradients_of(&c, &loss[run]);
            if (attn_seq2seq_buffers(c.m)->count) attn_seq2seq_buffers(c.m)->data[0] = 0.0f;
        }
        assert_memory_equal(&loss[0], &loss[1], sizeof(float));
        for (int i = 0; i < p->count; i++) {
            const attn_param *it = &p->items[i];
            if (strncmp(it->name, "encoder.", 8) == 0) continue;
            if (memcmp(grads[0] + it->offset, grads[1] + it->offset, it->numel * sizeof(float)))
                print_error("%s: the gradient of %s depends on the thread count\n",
                            attn_attention_kind_name(KINDS[k]), it->name);
            assert_memory_equal(grads[0] + it->offset, grads[1] + it->offset,
                                it->numel * sizeof(float));
        }
        free(grads[0]), free(grads[1]);
        free_case(&c);
    }
    assert_int_equal(attn_set_num_threads(threads), ATTN_OK);
}

/* The baseline starts unset (0), takes the first batch's mean reward (a
 * sequence's reward: minus its mean token loss), then moves by baseline_decay. */
static void test_reinforce_baseline(void **state)
{
    (void)state;
    attn_rng rng = test_rng(200);
    model_case c;
    make_case(&c, &rng, RNN_ARCHS[below(&rng, ARCH_COUNT)], ATTN_ATTEND_HARD_REINFORCE, false);
    attn_params *buffers = attn_seq2seq_buffers(c.m);
    assert_int_equal(buffers->count, 1);
    assert_string_equal(buffers->items[0].name, "decoder.baseline");
    assert_true(buffers->data[0] == 0.0f);
    const s2s_rnn *r = attn_s2s_rnn(c.m);
    double mean = 0.0;
    for (int step = 0; step < 3; step++) {
        c.pass.step = step;
        const float before = buffers->data[0];
        forward(&c);
        mean = 0.0;
        for (int b = 0; b < r->run.R; b++) {
            double reward = 0.0;
            for (int t = 0; t < r->run.T; t++) reward -= r->run.row_loss[t * r->run.R + b];
            mean += reward / c.batch.tgt_len[b] / r->run.R;
        }
        assert_int_equal(attn_seq2seq_backward(c.m), ATTN_OK);
        const double used = step == 0 ? mean : before;
        const double want = 0.8 * used + 0.2 * mean;
        assert_true(fabs(buffers->data[0] - want) <= 1e-5 * (1.0 + fabs(want)));
    }
    /* A soft model has no buffers. */
    attn_seq2seq *soft;
    attn_seq2seq_config cfg = c.cfg;
    cfg.attention = ATTN_ATTEND_SOFT;
    assert_int_equal(attn_seq2seq_create(&soft, &cfg, 1), ATTN_OK);
    assert_int_equal(attn_seq2seq_buffers(soft)->count, 0);
    attn_seq2seq_free(soft);
    free_case(&c);
}

/* tau = tau_start (tau_end / tau_start)^(step / steps), then tau_end. */
static void test_gumbel_temperature(void **state)
{
    (void)state;
    attn_rng rng = test_rng(300);
    model_case c;
    make_case(&c, &rng, RNN_ARCHS[below(&rng, ARCH_COUNT)], ATTN_ATTEND_HARD_GUMBEL, false);
    const s2s_rnn *r = attn_s2s_rnn(c.m);
    const int64_t steps[] = {0, 5, 10, 1000};
    for (int i = 0; i < 4; i++) {
        c.pass.step = steps[i];
        forward(&c);
        const double progress = fmin(1.0, steps[i] / 10.0);
        const double want = 2.0 * pow(0.25, progress);
        assert_true(fabs(r->run.tau - want) <= 1e-6 * want);
    }
    free_case(&c);
}

/* ---- decoding --------------------------------------------------------------------------- */

typedef struct decoded {
    int32_t *out, *len;
    float *attention, *scores;
} decoded;

static decoded decoded_alloc(int B, int T, int S)
{
    return (decoded){.out = calloc((size_t)B * T, sizeof(int32_t)),
                     .len = calloc((size_t)B, sizeof(int32_t)),
                     .attention = calloc((size_t)B * T * S, sizeof(float)),
                     .scores = calloc((size_t)B, sizeof(float))};
}

static void decoded_free(decoded *d)
{
    free(d->out), free(d->len), free(d->attention), free(d->scores);
}

/* A model whose outputs are far from uniform, and sources to decode. */
static void make_decode_case(model_case *c, attn_rng *rng, attn_seq2seq_arch arch,
                             attn_attention_kind kind)
{
    make_case(c, rng, arch, kind, false);
    attn_params *p = attn_seq2seq_params(c->m);
    for (size_t e = 0; e < p->total; e++) p->data[e] *= 2.5f;
    free_batch(&c->batch);
    make_batch(&c->batch, rng, 6, c->cfg.max_src_len, c->cfg.max_tgt_len, c->cfg.src_vocab,
               c->cfg.tgt_vocab);
}

/* The sum of the log-probabilities of output b under teacher forcing. */
static double teacher_forced_score(model_case *c, const decoded *d, int b, int T)
{
    attn_rng rng = test_rng(1);
    attn_batch one;
    make_batch(&one, &rng, 1, c->batch.src_cap, T, c->cfg.src_vocab, c->cfg.tgt_vocab);
    memcpy(one.src, c->batch.src + (size_t)b * c->batch.src_cap,
           c->batch.src_cap * sizeof(int32_t));
    one.src_len[0] = c->batch.src_len[b];
    const int len = d->len[b], steps = len < T ? len + 1 : T; /* EOS included */
    one.tgt_len[0] = steps;
    memset(one.tgt_in, 0, (size_t)T * sizeof(int32_t));
    memset(one.tgt_out, 0, (size_t)T * sizeof(int32_t));
    one.tgt_in[0] = ATTN_TOKEN_BOS;
    for (int t = 0; t < steps; t++) {
        one.tgt_out[t] = d->out[(size_t)b * T + t];
        if (t + 1 < steps) one.tgt_in[t + 1] = d->out[(size_t)b * T + t];
    }
    attn_seq2seq_stats stats;
    const attn_seq2seq_pass pass = {.training = false};
    assert_int_equal(attn_seq2seq_forward(c->m, &stats, &one, &pass), ATTN_OK);
    free_batch(&one);
    return -(double)stats.loss * (double)stats.tokens;
}

/* Beam search with beam 1 is greedy decoding: same tokens, weights, scores. */
static void test_beam_one_is_greedy(void **state)
{
    (void)state;
    for (int a = 0; a < ARCH_COUNT; a++)
        for (int k = 0; k < KIND_COUNT; k++) {
            attn_rng rng = test_rng(400 + (uint64_t)(a * KIND_COUNT + k));
            model_case c;
            make_decode_case(&c, &rng, RNN_ARCHS[a], KINDS[k]);
            const int B = c.batch.batch, S = c.batch.src_cap, T = c.cfg.max_tgt_len;
            decoded g = decoded_alloc(B, T, S), bs = decoded_alloc(B, T, S);
            const attn_decode_options opt = {.beam = 1, .max_len = T};
            assert_int_equal(attn_seq2seq_greedy(c.m, g.out, g.len, g.attention, g.scores,
                                                 c.batch.src, c.batch.src_len, B, S, &opt),
                             ATTN_OK);
            assert_int_equal(attn_seq2seq_beam_search(c.m, bs.out, bs.len, bs.attention, bs.scores,
                                                      c.batch.src, c.batch.src_len, B, S, &opt),
                             ATTN_OK);
            assert_memory_equal(g.out, bs.out, (size_t)B * T * sizeof(int32_t));
            assert_memory_equal(g.len, bs.len, (size_t)B * sizeof(int32_t));
            assert_memory_equal(g.attention, bs.attention, (size_t)B * T * S * sizeof(float));
            assert_memory_equal(g.scores, bs.scores, (size_t)B * sizeof(float));
            decoded_free(&g), decoded_free(&bs);
            free_case(&c);
        }
}

/* A wider beam never returns an output that scores lower, by the model's own
 * teacher-forced score, than greedy decoding's; outputs and weights are well
 * formed; decoding with and without attention gives the same outputs. */
static void test_beam_search(void **state)
{
    (void)state;
    int better = 0;
    for (int a = 0; a < ARCH_COUNT; a++)
        for (int k = 0; k < KIND_COUNT; k++) {
            attn_rng rng = test_rng(500 + (uint64_t)(a * KIND_COUNT + k));
            model_case c;
            make_decode_case(&c, &rng, RNN_ARCHS[a], KINDS[k]);
            const int B = c.batch.batch, S = c.batch.src_cap, T = c.cfg.max_tgt_len;
            decoded g = decoded_alloc(B, T, S), bs = decoded_alloc(B, T, S),
                    plain = decoded_alloc(B, T, S);
            attn_decode_options opt = {.beam = 1, .max_len = T};
            assert_int_equal(attn_seq2seq_decode(c.m, g.out, g.len, g.attention, c.batch.src,
                                                 c.batch.src_len, B, S, &opt),
                             ATTN_OK);
            opt.beam = 2 + below(&rng, 4);
            assert_int_equal(attn_seq2seq_decode(c.m, bs.out, bs.len, bs.attention, c.batch.src,
                                                 c.batch.src_len, B, S, &opt),
                             ATTN_OK);
            assert_int_equal(attn_seq2seq_decode(c.m, plain.out, plain.len, NULL, c.batch.src,
                                                 c.batch.src_len, B, S, &opt),
                             ATTN_OK);
            assert_memory_equal(bs.out, plain.out, (size_t)B * T * sizeof(int32_t));
            assert_memory_equal(bs.len, plain.len, (size_t)B * sizeof(int32_t));
            for (int b = 0; b < B; b++) {
                const double gs = teacher_forced_score(&c, &g, b, T);
                const double bss = teacher_forced_score(&c, &bs, b, T);
                if (bss < gs - 1e-4 * (1.0 + fabs(gs)))
                    print_error("%s beam %d source %d: beam scores %.6f < greedy %.6f\n", c.desc,
                                opt.beam, b, bss, gs);
                assert_true(bss >= gs - 1e-4 * (1.0 + fabs(gs)));
                better += bss > gs + 1e-4 * (1.0 + fabs(gs));
                /* Tokens: no PAD or BOS before the end, EOS at len, PAD after. */
                for (int t = 0; t < T; t++) {
                    const int32_t y = bs.out[b * T + t];
                    if (t < bs.len[b])
                        assert_true(y >= ATTN_TOKEN_FIRST_CHAR);
                    else if (t == bs.len[b])
                        assert_int_equal(y, ATTN_TOKEN_EOS);
                    else
                        assert_int_equal(y, ATTN_TOKEN_PAD);
                    /* Weights over the source's positions summing to 1 (one-hot
                     * for hard attention) up to the end, zero after. */
                    const float *w = bs.attention + ((size_t)b * T + t) * S;
                    double sum = 0.0;
                    for (int j = 0; j < S; j++) {
                        assert_true(w[j] >= 0.0f);
                        if (j >= c.batch.src_len[b]) assert_true(w[j] == 0.0f);
                        if (KINDS[k] != ATTN_ATTEND_SOFT) assert_true(w[j] == 0.0f || w[j] == 1.0f);
                        sum += w[j];
                    }
                    assert_true(fabs(sum - (t <= bs.len[b] && t < T ? 1.0 : 0.0)) < 1e-5);
                }
            }
            decoded_free(&g), decoded_free(&bs), decoded_free(&plain);
            free_case(&c);
        }
    printf("beam search beat greedy decoding on %d sources\n", better);
}

/* arch with soft attention, vocabularies of vocab + 0..3 ids, S source and T
 * target positions, width E (embeddings, RNN states, d_model; feed-forward 2 E),
 * `heads` heads and 1-2 layers each side. */
static attn_seq2seq_config sized_config(attn_rng *rng, attn_seq2seq_arch arch, int vocab, int S,
                                        int T, int E, int heads)
{
    attn_seq2seq_config g = attn_seq2seq_defaults(arch, ATTN_ATTEND_SOFT);
    g.src_vocab = vocab + below(rng, 4);
    g.tgt_vocab = vocab + below(rng, 4);
    g.max_src_len = S;
    g.max_tgt_len = T;
    g.embed_dim = E;
    g.hidden_dim = E;
    g.heads = heads;
    g.ff_dim = 2 * E;
    g.enc_layers = 1 + below(rng, 2);
    g.dec_layers = 1 + below(rng, 2);
    return g;
}

/* A small Transformer (E 8, 2 heads, 1-2 layers each side) whose outputs are far
 * from uniform, and sources to decode. */
static void make_transformer_case(model_case *c, attn_rng *rng)
{
    memset(c, 0, sizeof *c);
    attn_seq2seq_config *g = &c->cfg;
    *g = sized_config(rng, ATTN_S2S_TRANSFORMER, 6, 7, 8, 8, 2);
    assert_int_equal(attn_seq2seq_create(&c->m, g, attn_rng_u32(rng)), ATTN_OK);
    attn_params *p = attn_seq2seq_params(c->m);
    for (size_t e = 0; e < p->total; e++) p->data[e] *= 2.0f;
    make_batch(&c->batch, rng, 32, g->max_src_len, g->max_tgt_len, g->src_vocab, g->tgt_vocab);
    snprintf(c->desc, sizeof c->desc, "transformer layers %d/%d V=%d/%d", g->enc_layers,
             g->dec_layers, g->src_vocab, g->tgt_vocab);
}

/* How far one float32 rounding of the weights moves output b's teacher-forced
 * score, relative as in test_decoding_is_teacher_forced: the largest change over
 * 3 random one-ulp perturbations of every parameter. */
static double score_sensitivity(model_case *c, const decoded *d, int b, int T, double want)
{
    attn_params *p = attn_seq2seq_params(c->m);
    float *kept = malloc(p->total * sizeof *kept);
    assert_non_null(kept);
    memcpy(kept, p->data, p->total * sizeof *kept);
    attn_rng rng = test_rng(700);
    double worst = 0.0;
    for (int trial = 0; trial < 3; trial++) {
        for (size_t e = 0; e < p->total; e++)
            p->data[e] = nextafterf(kept[e], (attn_rng_u32(&rng) & 1) ? INFINITY : -INFINITY);
        const double moved = teacher_forced_score(c, d, b, T);
        worst = fmax(worst, fabs(moved - want) / (1.0 + fabs(want)));
    }
    memcpy(p->data, kept, p->total * sizeof *kept);
    free(kept);
    return worst;
}

/* Decoding scores each output as teacher forcing does: the step-by-step
 * log-probabilities (the Transformer's decoder one position at a time over its
 * key-value caches, reordered with the beams; the RNNs' recurrent states) sum to
 * the score a full forward over the output gives it, within 1e-5 relative.
 *
 * Some outputs are ill-conditioned: one float32 rounding of the weights moves
 * their score by more than 1e-6 (by 3e-5 to 5e-5 for seed 1796440560978496282,
 * where the Transformer decodes 1.2e-5 to 1.9e-5 from teacher forcing), and
 * two float32 orderings of the same computation differ by as much. As in the
 * conformance tests, such an output is held to 16 times that sensitivity
 * instead; they are counted and must stay few (the outputs of one model share
 * its condition, so a few per run). */
static void test_decoding_is_teacher_forced(void **state)
{
    (void)state;
    int ill_conditioned = 0, outputs = 0;
    for (int a = 0; a <= ARCH_COUNT; a++) {
        attn_rng rng = test_rng(600 + (uint64_t)a);
        model_case c;
        if (a < ARCH_COUNT)
            make_decode_case(&c, &rng, RNN_ARCHS[a], ATTN_ATTEND_SOFT);
        else
            make_transformer_case(&c, &rng);
        const int B = c.batch.batch, S = c.batch.src_cap, T = c.cfg.max_tgt_len;
        for (int beam = 1; beam <= 5; beam += 2) {
            decoded d = decoded_alloc(B, T, S);
            const attn_decode_options opt = {.beam = beam, .max_len = T};
            assert_int_equal(beam == 1 ? attn_seq2seq_greedy(c.m, d.out, d.len, d.attention,
                                                             d.scores, c.batch.src,
                                                             c.batch.src_len, B, S, &opt)
                                       : attn_seq2seq_beam_search(c.m, d.out, d.len, d.attention,
                                                                  d.scores, c.batch.src,
                                                                  c.batch.src_len, B, S, &opt),
                             ATTN_OK);
            for (int b = 0; b < B; b++) {
                const double want = teacher_forced_score(&c, &d, b, T);
                const double err = fabs((double)d.scores[b] - want) / (1.0 + fabs(want));
                double bound = 1e-5;
                outputs++;
                if (err > bound) {
                    const double sensitivity = score_sensitivity(&c, &d, b, T, want);
                    if (sensitivity > 1e-6) {
                        ill_conditioned++;
                        bound = fmax(bound, 16.0 * sensitivity);
                    }
                }
                if (err > bound)
                    print_error("%s beam %d source %d: decoding scored %.7f, teacher forcing "
                                "%.7f (relative difference %.3g, bound %.3g)\n",
                                c.desc, beam, b, (double)d.scores[b], want, err, bound);
                assert_true(err <= bound);
            }
            decoded_free(&d);
        }
        free_case(&c);
    }
    if (ill_conditioned)
        print_message("%d of %d outputs ill-conditioned, held to 16 times their sensitivity\n",
                      ill_conditioned, outputs);
    assert_true(ill_conditioned <= outputs / 10);
}

/* Hard attention decodes the argmax position, or samples one from a seed. */
static void test_sample_hard(void **state)
{
    (void)state;
    attn_rng rng = test_rng(600);
    model_case c;
    make_decode_case(&c, &rng, RNN_ARCHS[below(&rng, ARCH_COUNT)], ATTN_ATTEND_HARD_REINFORCE);
    const int B = c.batch.batch, S = c.batch.src_cap, T = c.cfg.max_tgt_len;
    decoded d1 = decoded_alloc(B, T, S), d2 = decoded_alloc(B, T, S);
    attn_decode_options opt = {.beam = 1, .max_len = T, .sample_hard = true, .seed = 7};
    assert_int_equal(attn_seq2seq_decode(c.m, d1.out, d1.len, d1.attention, c.batch.src,
                                         c.batch.src_len, B, S, &opt),
                     ATTN_OK);
    assert_int_equal(attn_seq2seq_decode(c.m, d2.out, d2.len, d2.attention, c.batch.src,
                                         c.batch.src_len, B, S, &opt),
                     ATTN_OK);
    assert_memory_equal(d1.out, d2.out, (size_t)B * T * sizeof(int32_t));
    assert_memory_equal(d1.attention, d2.attention, (size_t)B * T * S * sizeof(float));
    decoded_free(&d1), decoded_free(&d2);
    free_case(&c);
}

/* ---- names and bad input --------------------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    for (int a = 0; a <= (int)ATTN_S2S_TRANSFORMER; a++) {
        attn_seq2seq_arch arch;
        assert_int_equal(attn_seq2seq_arch_parse(&arch, attn_seq2seq_arch_name(a)), ATTN_OK);
        assert_int_equal(arch, a);
    }
    for (int k = 0; k < KIND_COUNT; k++) {
        attn_attention_kind kind;
        assert_int_equal(attn_attention_kind_parse(&kind, attn_attention_kind_name(KINDS[k])),
                         ATTN_OK);
        assert_int_equal(kind, KINDS[k]);
    }
    attn_seq2seq_arch arch;
    attn_attention_kind kind;
    test_expect_invalid(attn_seq2seq_arch_parse(&arch, "lstm-luong"), "lstm-luong-general");
    test_expect_invalid(attn_attention_kind_parse(&kind, "hard"), "hard-gumbel");
    assert_string_equal(attn_seq2seq_arch_name((attn_seq2seq_arch)99), "unknown");
}

static attn_seq2seq_config valid_config(attn_attention_kind kind)
{
    attn_seq2seq_config c = attn_seq2seq_defaults(ATTN_S2S_GRU_BAHDANAU, kind);
    c.src_vocab = 10, c.tgt_vocab = 8, c.max_src_len = 6, c.max_tgt_len = 5;
    return c;
}

static void expect_bad_config(attn_seq2seq_config c, const char *field)
{
    attn_seq2seq *m = NULL;
    test_expect_invalid(attn_seq2seq_create(&m, &c, 1), field);
    assert_null(m);
}

static void test_bad_configs(void **state)
{
    (void)state;
    attn_seq2seq_config c;
    c = valid_config(ATTN_ATTEND_SOFT), c.embed_dim = 0, expect_bad_config(c, "embed_dim is 0");
    c = valid_config(ATTN_ATTEND_SOFT), c.hidden_dim = -2, expect_bad_config(c, "hidden_dim is -2");
    c = valid_config(ATTN_ATTEND_SOFT), c.enc_layers = 0, expect_bad_config(c, "enc_layers is 0");
    c = valid_config(ATTN_ATTEND_SOFT), c.dec_layers = 9, expect_bad_config(c, "dec_layers 9");
    c = valid_config(ATTN_ATTEND_SOFT), c.src_vocab = 3, expect_bad_config(c, "src_vocab is 3");
    c = valid_config(ATTN_ATTEND_SOFT), c.tgt_vocab = 0, expect_bad_config(c, "tgt_vocab is 0");
    c = valid_config(ATTN_ATTEND_SOFT), c.max_tgt_len = 0, expect_bad_config(c, "max_tgt_len is 0");
    c = valid_config(ATTN_ATTEND_SOFT), c.dropout = 1.0f, expect_bad_config(c, "dropout 1");
    c = valid_config(ATTN_ATTEND_SOFT), c.dropout = NAN, expect_bad_config(c, "dropout nan");
    c = valid_config(ATTN_ATTEND_SOFT), c.arch = (attn_seq2seq_arch)17,
    expect_bad_config(c, "arch 17");
    c = valid_config(ATTN_ATTEND_SOFT), c.attention = (attn_attention_kind)5,
    expect_bad_config(c, "attention 5");
    c = valid_config(ATTN_ATTEND_HARD_REINFORCE), c.entropy_weight = -0.5f,
    expect_bad_config(c, "entropy_weight -0.5");
    c = valid_config(ATTN_ATTEND_HARD_REINFORCE), c.baseline_decay = 1.0f,
    expect_bad_config(c, "baseline_decay 1");
    c = valid_config(ATTN_ATTEND_HARD_GUMBEL), c.gumbel_tau_start = 0.0f,
    expect_bad_config(c, "gumbel_tau_start 0");
    c = valid_config(ATTN_ATTEND_HARD_GUMBEL), c.gumbel_tau_end = INFINITY,
    expect_bad_config(c, "gumbel_tau_end inf");
    c = valid_config(ATTN_ATTEND_HARD_GUMBEL), c.gumbel_anneal_steps = -1,
    expect_bad_config(c, "gumbel_anneal_steps -1");
    c = valid_config(ATTN_ATTEND_HARD_GUMBEL), c.arch = ATTN_S2S_TRANSFORMER,
    expect_bad_config(c, "attention hard-gumbel");
    /* Settings of the other kinds are not looked at. */
    attn_seq2seq *m;
    c = valid_config(ATTN_ATTEND_SOFT), c.gumbel_tau_start = -1.0f;
    assert_int_equal(attn_seq2seq_create(&m, &c, 1), ATTN_OK);
    attn_seq2seq_free(m);
    test_expect_invalid(attn_seq2seq_create(&m, NULL, 1), "config");
}

/* The count without a model is the created model's, for every architecture and
 * attention kind. */
static void test_param_count(void **state)
{
    (void)state;
    for (int a = 0; a <= ARCH_COUNT; a++)
        for (int k = 0; k < (a < ARCH_COUNT ? KIND_COUNT : 1); k++) {
            attn_seq2seq_config c = valid_config(KINDS[k]);
            c.arch = a < ARCH_COUNT ? RNN_ARCHS[a] : ATTN_S2S_TRANSFORMER;
            c.enc_layers = 2, c.dec_layers = 3, c.heads = 2, c.hidden_dim = 8, c.ff_dim = 12;
            attn_seq2seq *m;
            int64_t count = -1;
            assert_int_equal(attn_seq2seq_create(&m, &c, 1), ATTN_OK);
            assert_int_equal(attn_seq2seq_param_count(&c, &count), ATTN_OK);
            assert_int_equal(count, test_params_numel(attn_seq2seq_params(m)));
            attn_seq2seq_free(m);
        }
    attn_seq2seq_config c = valid_config(ATTN_ATTEND_SOFT);
    int64_t count;
    c.hidden_dim = 0;
    test_expect_invalid(attn_seq2seq_param_count(&c, &count), "hidden_dim is 0");
}

static void test_bad_input(void **state)
{
    (void)state;
    attn_rng rng = test_rng(700);
    model_case c;
    make_case(&c, &rng, ATTN_S2S_LSTM_LUONG_GENERAL, ATTN_ATTEND_SOFT, false);
    attn_seq2seq_stats stats;
    attn_batch *b = &c.batch;
    test_expect_invalid(attn_seq2seq_backward(c.m), "training forward");
    int32_t saved = b->src_len[0];
    b->src_len[0] = 0;
    test_expect_invalid(attn_seq2seq_forward(c.m, &stats, b, &c.pass), "src_len[0] = 0");
    b->src_len[0] = 6;
    test_expect_invalid(attn_seq2seq_forward(c.m, &stats, b, &c.pass), "src_len[0] = 6");
    b->src_len[0] = saved;
    saved = b->tgt_len[0];
    b->tgt_len[0] = 5;
    test_expect_invalid(attn_seq2seq_forward(c.m, &stats, b, &c.pass), "tgt_len[0] = 5");
    b->tgt_len[0] = saved;
    saved = b->src[0];
    b->src[0] = c.cfg.src_vocab;
    attn_status s = attn_seq2seq_forward(c.m, &stats, b, &c.pass);
    assert_int_not_equal(s, ATTN_OK);
    assert_non_null(strstr(attn_last_error(), "id"));
    b->src[0] = saved;
    saved = b->tgt_out[0];
    b->tgt_out[0] = -3;
    assert_int_not_equal(attn_seq2seq_forward(c.m, &stats, b, &c.pass), ATTN_OK);
    assert_non_null(strstr(attn_last_error(), "-3"));
    b->tgt_out[0] = saved;
    attn_seq2seq_pass pass = c.pass;
    pass.label_smoothing = 2.0f;
    test_expect_invalid(attn_seq2seq_forward(c.m, &stats, b, &pass), "label_smoothing 2");
    test_expect_invalid(attn_seq2seq_forward(c.m, &stats, NULL, &c.pass), "batch");
    /* A forward that was not training, or a decode since, leaves nothing for
     * backward. */
    pass = c.pass;
    pass.training = false;
    assert_int_equal(attn_seq2seq_forward(c.m, &stats, b, &pass), ATTN_OK);
    test_expect_invalid(attn_seq2seq_backward(c.m), "training forward");

    const int B = b->batch, S = b->src_cap, T = c.cfg.max_tgt_len;
    decoded d = decoded_alloc(B, T, S);
    attn_decode_options opt = {.beam = 0, .max_len = T};
    test_expect_invalid(
        attn_seq2seq_decode(c.m, d.out, d.len, NULL, b->src, b->src_len, B, S, &opt), "beam is 0");
    opt.beam = 2, opt.max_len = T + 1;
    test_expect_invalid(
        attn_seq2seq_decode(c.m, d.out, d.len, NULL, b->src, b->src_len, B, S, &opt), "max_len 5");
    opt.max_len = T;
    forward(&c);
    assert_int_equal(attn_seq2seq_decode(c.m, d.out, d.len, NULL, b->src, b->src_len, B, S, &opt),
                     ATTN_OK);
    test_expect_invalid(attn_seq2seq_backward(c.m), "training forward");
    /* Parameters gone to NaN fail loudly, in training and in decoding. */
    attn_seq2seq_params(c.m)->data[0] = NAN;
    attn_seq2seq_params(c.m)
        ->data[attn_params_find(attn_seq2seq_params(c.m), "decoder.out.bias")->offset] = NAN;
    assert_int_equal(attn_seq2seq_forward(c.m, &stats, b, &c.pass), ATTN_ERR_NUMERIC);
    assert_int_equal(attn_seq2seq_decode(c.m, d.out, d.len, NULL, b->src, b->src_len, B, S, &opt),
                     ATTN_ERR_NUMERIC);
    assert_non_null(strstr(attn_last_error(), "nan"));
    decoded_free(&d);
    free_case(&c);
}

/* ---- mixed precision -------------------------------------------------------------------- */

/* A model of a dates-like width for arch (width 32, 4 heads, dropout 0.1, 1-2
 * layers each side) and a batch of 4-8 examples for it. */
static void make_bf16_case(model_case *c, attn_rng *rng, attn_seq2seq_arch arch)
{
    memset(c, 0, sizeof *c);
    attn_seq2seq_config *g = &c->cfg;
    *g = sized_config(rng, arch, 12, 12, 8, 32, 4);
    g->dropout = 0.1f;
    assert_int_equal(attn_seq2seq_create(&c->m, g, attn_rng_u32(rng)), ATTN_OK);
    make_batch(&c->batch, rng, 4 + below(rng, 5), g->max_src_len, g->max_tgt_len, g->src_vocab,
               g->tgt_vocab);
    c->pass = (attn_seq2seq_pass){.training = true, .step = 7, .seed = attn_rng_u32(rng)};
    snprintf(c->desc, sizeof c->desc, "%s layers %d/%d B=%d", attn_seq2seq_arch_name(arch),
             g->enc_layers, g->dec_layers, c->batch.batch);
}

/* ReLU's derivative jumps at 0, so a pre-activation within rounding of 0 may
 * open the gate in one precision and close it in the other, and no first-order
 * bound holds across the jump: the Transformer's feed-forward biases are raised
 * so that every gate is open. linear1's input u is a LayerNorm's output at its
 * initial weight 1 and bias 0 (post-norm), so |u| <= sqrt(E) and
 * |w_j . u| <= |w_j| sqrt(E): bias_j = |w_j| sqrt(E) + 1 keeps every
 * pre-activation at 1 or more in either precision. */
static void open_relu_gates(model_case *c)
{
    const attn_params *p = attn_seq2seq_params(c->m);
    const double root_e = sqrt((double)c->cfg.hidden_dim);
    int raised = 0;
    for (int i = 0; i < p->count; i++) {
        const attn_param *bias = &p->items[i];
        const char *suffix = strstr(bias->name, "linear1.bias");
        if (suffix == NULL) continue;
        char name[ATTN_PARAM_NAME_MAX];
        snprintf(name, sizeof name, "%.*sweight", (int)(suffix - bias->name) + 8, bias->name);
        const attn_param *weight = attn_params_find(p, name);
        assert_non_null(weight);
        const int64_t rows = weight->shape[0], cols = weight->shape[1];
        for (int64_t j = 0; j < rows; j++) {
            double norm = 0.0;
            for (int64_t k = 0; k < cols; k++) {
                const double w = p->data[weight->offset + (size_t)(j * cols + k)];
                norm += w * w;
            }
            p->data[bias->offset + (size_t)j] = (float)(sqrt(norm) * root_e + 1.0);
        }
        raised++;
    }
    assert_int_equal(raised, c->cfg.enc_layers + c->cfg.dec_layers);
}

/* P, the matrix products on the longest chain from the inputs to the logits, for
 * S source and T target positions. An RNN encoder layer: its input projection,
 * then one recurrent product per position; then the initial state or the keys
 * (1); a decoder step: at most L + 1 products lead from one step's top state to
 * the next's (Bahdanau: the query, the context's part of layer 0's input, the
 * input projections of the layers above; Luong: combine, the feed's part of
 * layer 0's input, the layers above), counted as L + 2 with the recurrent one;
 * then the output layer (1). A Transformer encoder layer: the projections, q k^T,
 * P v, out_proj, the two feed-forward linears (6); a decoder layer: two
 * attentions and the feed-forward (10); then the generator (1). */
static double longest_products(const attn_seq2seq_config *g)
{
    const double Le = g->enc_layers, L = g->dec_layers;
    if (g->arch == ATTN_S2S_TRANSFORMER) return 6.0 * Le + 10.0 * L + 1.0;
    return Le * (g->max_src_len + 1.0) + 1.0 + g->max_tgt_len * (L + 2.0) + 1.0;
}

/* One training step in bf16 precision against the same step (weights, batch,
 * dropout) in float32, for every architecture. Each product of the bf16 step
 * reads its two operands rounded to bfloat16, a relative change of at most
 * u = 2^-8 of each term it sums; to first order the errors of the R_fwd = 2 P
 * roundings on the longest path add (the gates, tanh and LayerNorm keep the
 * states at the scale of the terms summed), so the loss is held to R_fwd u of
 * float32's; a gradient's path also rounds the backward's dy (or dout and dS)
 * for each product: R_grad = 2 R_fwd, each parameter's gradient held to R_grad u
 * relative to its largest value (test_rel_error). A step that did not round
 * (float32 in disguise) would differ by float32's noise, under 1e-5: the bf16
 * step must differ by more. */
static void test_bf16_step_near_float32(void **state)
{
    (void)state;
    const double u = 1.0 / 256.0;
    static const attn_seq2seq_arch archs[] = {
        ATTN_S2S_RNN_BAHDANAU,   ATTN_S2S_GRU_BAHDANAU,       ATTN_S2S_LSTM_BAHDANAU,
        ATTN_S2S_LSTM_LUONG_DOT, ATTN_S2S_LSTM_LUONG_GENERAL, ATTN_S2S_TRANSFORMER,
    };
    for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
        attn_rng rng = test_rng(1000 + a);
        model_case c;
        make_bf16_case(&c, &rng, archs[a]);
        if (archs[a] == ATTN_S2S_TRANSFORMER) open_relu_gates(&c);
        assert_int_equal(attn_seq2seq_get_precision(c.m), ATTN_FLOAT32);
        float loss[2], *grads[2];
        for (int bf16 = 0; bf16 < 2; bf16++) {
            assert_int_equal(attn_seq2seq_set_precision(c.m, bf16 ? ATTN_BF16 : ATTN_FLOAT32),
                             ATTN_OK);
            grads[bf16] = gradients_of(&c, &loss[bf16]);
        }
        assert_int_equal(attn_seq2seq_get_precision(c.m), ATTN_BF16);
        const double r_fwd = 2.0 * longest_products(&c.cfg), r_grad = 2.0 * r_fwd;
        const double loss_err = fabs((double)loss[1] - loss[0]) / fabs((double)loss[0]);
        if (loss_err > r_fwd * u)
            fail_msg("%s: bf16 loss %.6g vs float32 %.6g (%.3g) > R u = %.3g", c.desc,
                     (double)loss[1], (double)loss[0], loss_err, r_fwd * u);
        const attn_params *p = attn_seq2seq_params(c.m);
        double worst = 0.0;
        for (int i = 0; i < p->count; i++) {
            const attn_param *q = &p->items[i];
            const double err = test_rel_error(grads[1] + q->offset, grads[0] + q->offset, q->numel);
            if (err > r_grad * u)
                fail_msg("%s: bf16 gradient of %s differs from float32's by %.3g > R u = %.3g",
                         c.desc, q->name, err, r_grad * u);
            if (err > worst) worst = err;
        }
        if (!(worst > 1e-5))
            fail_msg("%s: the bf16 step's gradients are float32's within %.3g: not rounded", c.desc,
                     worst);
        print_message("%s: bf16 vs float32: loss %.2e, worst gradient %.2e (bounds %.2e, %.2e)\n",
                      c.desc, loss_err, worst, r_fwd * u, r_grad * u);
        free(grads[0]), free(grads[1]);
        free_case(&c);
    }
    test_expect_invalid(attn_seq2seq_set_precision(NULL, ATTN_BF16), "seq2seq model");
    attn_rng rng = test_rng(1100);
    model_case c;
    make_bf16_case(&c, &rng, ATTN_S2S_GRU_BAHDANAU);
    test_expect_invalid(attn_seq2seq_set_precision(c.m, (attn_precision)7), "precision 7");
    assert_int_equal(attn_seq2seq_get_precision(c.m), ATTN_FLOAT32);
    free_case(&c);
}

int main(void)
{
    test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_param_count),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_repeatable),
        cmocka_unit_test(test_thread_count),
        cmocka_unit_test(test_reinforce_baseline),
        cmocka_unit_test(test_gumbel_temperature),
        cmocka_unit_test(test_beam_one_is_greedy),
        cmocka_unit_test(test_beam_search),
        cmocka_unit_test(test_decoding_is_teacher_forced),
        cmocka_unit_test(test_sample_hard),
        cmocka_unit_test(test_bf16_step_near_float32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
