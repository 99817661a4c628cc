/* Transformer layers and nn.Transformer: finite differences (with dropout at a
 * fixed seed), encode + decode against forward, dropout, parameter names and the
 * one parameter block, threads, and bad input. PyTorch itself is the oracle of
 * tests/conformance/test_transformer.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/transformer.h"
#include "grad_tolerance.h"
#include "models/seq2seq_impl.h"
#include "testutil.h"

typedef enum module_kind { ENCODER_LAYER, DECODER_LAYER, TRANSFORMER } module_kind;

typedef struct tf_case {
    module_kind kind;
    attn_transformer_config cfg;
    attn_transformer_encoder_layer *enc;
    attn_transformer_decoder_layer *dec;
    attn_transformer *full;
    attn_params *p;
    attn_transformer_input in;
    float *src, *tgt, *memory, *out, *probe;
    uint8_t *src_padding; /* (B, S), bool */
    float *tgt_attn_mask; /* (T, T), float */
    size_t src_n, tgt_n, out_n;
    char desc[256];
} tf_case;

/* A bool (B, L) padding mask that keeps at least the first key of every row. */
static uint8_t *random_padding(attn_rng *rng, int B, int L)
{
    uint8_t *m = malloc((size_t)B * L);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < L; j++) m[(size_t)b * L + j] = j > 0 && attn_rng_uniform(rng) < 0.3f;
    return m;
}

static void make_case(tf_case *c, attn_rng *rng, module_kind kind, bool dropout)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    attn_transformer_layer_config *l = &c->cfg.layer;
    *l = attn_transformer_layer_defaults(0, 1 + (int)attn_rng_below(rng, 2));
    /* d_model >= 9: over a few features a LayerNorm's output is too curved a
     * function of its input for a finite difference (over two it is nearly a step
     * function), most of all where two norms follow each other, as a post-norm
     * stack's last layer and its final norm do. At 5 features one seed in a few
     * hundred failed so, a final norm's weight at 1.6e-3 (truncation: 7.2e-5 /
     * 1.6e-3 / 2.1e-2 at steps 5e-3 / 1e-2 / 2e-2); the chance that a norm's input
     * has a variance under v falls as v^((E-1)/2) with E features. */
    l->d_model =
        l->nhead == 1 ? 9 + (int)attn_rng_below(rng, 2) : 10 + 2 * (int)attn_rng_below(rng, 2);
    l->dim_feedforward = 2 + (int)attn_rng_below(rng, 6);
    l->dropout = dropout ? 0.2f + 0.3f * attn_rng_uniform(rng) : 0.0f;
    /* Smooth activations: a relu kink inside the finite-difference step would
     * fail the check for no fault of the code (PyTorch checks relu). */
    l->activation = attn_rng_below(rng, 2) ? ATTN_ACT_GELU : ATTN_ACT_TANH;
    l->layer_norm_eps = 1e-5f;
    l->batch_first = attn_rng_below(rng, 2);
    l->norm_first = attn_rng_below(rng, 2);
    c->cfg.num_encoder_layers = 1 + (int)attn_rng_below(rng, 2);
    c->cfg.num_decoder_layers = 1 + (int)attn_rng_below(rng, 2);
    const uint64_t seed = attn_rng_u32(rng);
    if (kind == ENCODER_LAYER) {
        assert_int_equal(attn_transformer_encoder_layer_create(&c->enc, l, seed), ATTN_OK);
        c->p = attn_transformer_encoder_layer_params(c->enc);
    } else if (kind == DECODER_LAYER) {
        assert_int_equal(attn_transformer_decoder_layer_create(&c->dec, l, seed), ATTN_OK);
        c->p = attn_transformer_decoder_layer_params(c->dec);
    } else {
        assert_int_equal(attn_transformer_create(&c->full, &c->cfg, seed), ATTN_OK);
        c->p = attn_transformer_params(c->full);
    }
    /* Biases and norms away from PyTorch's 0 and 1, so that they are tested. */
    for (int i = 0; i < c->p->count; i++) {
        const attn_param *it = &c->p->items[i];
        if (it->ndim == 1)
            attn_rng_fill_uniform(rng, c->p->data + it->offset, it->numel, -0.5f, 1.0f);
    }

    attn_transformer_input *in = &c->in;
    in->batch = 1 + (int)attn_rng_below(rng, 2);
    in->src_len = 1 + (int)attn_rng_below(rng, 4);
    in->tgt_len = 1 + (int)attn_rng_below(rng, 4);
    const int B = in->batch, S = in->src_len, T = in->tgt_len, E = l->d_model;
    c->src_n = (size_t)B * S * E;
    c->tgt_n = (size_t)B * T * E;
    c->out_n = kind == ENCODER_LAYER ? c->src_n : c->tgt_n;
    c->src = test_random(rng, c->src_n, -1, 1);
    c->memory = test_random(rng, c->src_n, -1, 1);
    c->tgt = test_random(rng, c->tgt_n, -1, 1);
    in->src = c->src;
    in->tgt = c->tgt;
    in->memory = kind == DECODER_LAYER ? c->memory : NULL;
    if (attn_rng_below(rng, 2)) {
        c->src_padding = random_padding(rng, B, S);
        in->src_mask.key_padding_mask = in->memory_mask.key_padding_mask = c->src_padding;
        in->src_mask.key_padding_mask_type = in->memory_mask.key_padding_mask_type = ATTN_MASK_BOOL;
    }
    in->tgt_mask.is_causal = attn_rng_below(rng, 2);
    if (attn_rng_below(rng, 2)) {
        c->tgt_attn_mask = test_random(rng, (size_t)T * T, -1, 1);
        in->tgt_mask.attn_mask = c->tgt_attn_mask;
        in->tgt_mask.attn_mask_type = ATTN_MASK_FLOAT;
        in->tgt_mask.attn_mask_ndim = 2;
    }
    in->training = dropout;
    in->dropout_seed = attn_rng_u32(rng);
    c->out = test_zeros(c->out_n);
    c->probe = test_random(rng, c->out_n, -1, 1);
    static const char *names[] = {"encoder layer", "decoder layer", "transformer"};
    snprintf(c->desc, sizeof c->desc,
             "%s E=%d H=%d F=%d %s norm_first=%d batch_first=%d dropout=%g layers %d+%d B=%d "
             "S=%d T=%d padding=%d causal=%d tgt mask=%d",
             names[kind], E, l->nhead, l->dim_feedforward, attn_activation_name(l->activation),
             l->norm_first, l->batch_first, (double)l->dropout, c->cfg.num_encoder_layers,
             c->cfg.num_decoder_layers, B, S, T, c->src_padding != NULL, in->tgt_mask.is_causal,
             c->tgt_attn_mask != NULL);
}

static void free_case(tf_case *c)
{
    attn_transformer_encoder_layer_free(c->enc);
    attn_transformer_decoder_layer_free(c->dec);
    attn_transformer_free(c->full);
    free(c->src), free(c->tgt), free(c->memory), free(c->out), free(c->probe);
    free(c->src_padding), free(c->tgt_attn_mask);
}

static attn_status forward_into(tf_case *c, float *out)
{
    if (c->kind == ENCODER_LAYER)
        return attn_transformer_encoder_layer_forward(c->enc, out, &c->in);
    if (c->kind == DECODER_LAYER)
        return attn_transformer_decoder_layer_forward(c->dec, out, &c->in);
    return attn_transformer_forward(c->full, out, &c->in);
}

static void run_forward(tf_case *c)
{
    attn_status s = forward_into(c, c->out);
    if (s != ATTN_OK) print_error("%s: forward failed: %s\n", c->desc, attn_last_error());
    assert_int_equal(s, ATTN_OK);
}

/* dsrc, dtgt, dmemory: each may be NULL. */
static void run_backward(tf_case *c, float *dsrc, float *dtgt, float *dmemory)
{
    attn_status s;
    if (c->kind == ENCODER_LAYER)
        s = attn_transformer_encoder_layer_backward(c->enc, dsrc, c->probe);
    else if (c->kind == DECODER_LAYER)
        s = attn_transformer_decoder_layer_backward(c->dec, dtgt, dmemory, c->probe);
    else
        s = attn_transformer_backward(c->full, dsrc, dtgt, c->probe);
    if (s != ATTN_OK) print_error("%s: backward failed: %s\n", c->desc, attn_last_error());
    assert_int_equal(s, ATTN_OK);
}

/* ---- finite differences ------------------------------------------------------------ */

static double case_loss(void *ctx)
{
    tf_case *c = ctx;
    run_forward(c);
    return test_dot(c->out, c->probe, c->out_n);
}

static double worst_fd;
enum { WINDOW = 16 };
static const double FD_BOUND = 1e-3; /* relative to the gradient's scale */

/* The finite-difference error of count entries of x from `first`, measured
 * against the scale of the whole gradient g (numel entries) floored at `floor`,
 * as gradcheck_error does for a whole tensor.
 *
 * The estimate's own error has two parts: truncation, which grows as h^4 with
 * the step h, and the float32 forward's rounding divided by the step, which
 * grows as it shrinks. Either can reach the bound alone at any one step, so a
 * window passes if it passes at any of the steps 1e-2, 2e-2 and 5e-3, tried in
 * that order until one does: a wrong gradient is wrong at all three. Two seeds
 * that failed at a single step show the two sides (errors at 5e-3 / 1e-2 / 2e-2):
 * - a key bias (true gradient 0), by rounding: 1.8e-3 / 1.1e-3 / 4.6e-4;
 * - the final norm's weight of a 2-layer stack 5 wide, by truncation:
 *   7.2e-5 / 1.6e-3 / 2.1e-2. */
static double window_error(float *x, const float *g, size_t numel, size_t first, size_t count,
                           double (*loss)(void *ctx), void *ctx, double floor)
{
    double window_scale = 1e-6; /* test_gradcheck's own floor */
    for (size_t e = first; e < first + count; e++)
        window_scale = fmax(window_scale, fabs((double)g[e]));
    double scale = floor;
    for (size_t e = 0; e < numel; e++) scale = fmax(scale, fabs((double)g[e]));
    static const float steps[] = {1e-2f, 2e-2f, 5e-3f};
    double best = INFINITY;
    for (size_t k = 0; k < sizeof steps / sizeof *steps && !(best <= FD_BOUND); k++)
        best = fmin(best, test_gradcheck(x + first, count, g + first, loss, ctx, steps[k]) *
                              window_scale / scale);
    return best;
}

static void check_gradient(tf_case *c, int n, const char *name, float *x, const float *grad,
                           size_t numel, size_t first, size_t count, double magnitude)
{
    const double err =
        window_error(x, grad, numel, first, count, case_loss, c, fmax(0.05, 0.05 * magnitude));
    if (err > worst_fd) worst_fd = err;
    if (!(err <= FD_BOUND))
        print_error("case %d (%s): %s finite-difference error %g\n", n, c->desc, name, err);
    assert_true(err <= FD_BOUND);
}

static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    for (int n = 0; n < 12; n++) {
        attn_rng rng = test_rng((uint64_t)n);
        tf_case c;
        make_case(&c, &rng, (module_kind)(n % 3), n % 2 == 1);
        run_forward(&c);
        const double magnitude = loss_magnitude(c.out, c.probe, c.out_n);
        attn_params_zero_grad(c.p);
        float *dsrc = test_zeros(c.src_n), *dtgt = test_zeros(c.tgt_n);
        float *dmemory = test_zeros(c.src_n);
        run_backward(&c, dsrc, dtgt, dmemory);
        if (c.kind != DECODER_LAYER)
            check_gradient(&c, n, "dsrc", c.src, dsrc, c.src_n, 0, c.src_n, magnitude);
        if (c.kind != ENCODER_LAYER)
            check_gradient(&c, n, "dtgt", c.tgt, dtgt, c.tgt_n, 0, c.tgt_n, magnitude);
        if (c.kind == DECODER_LAYER)
            check_gradient(&c, n, "dmemory", c.memory, dmemory, c.src_n, 0, c.src_n, magnitude);
        /* Every parameter, each in a random window of at most WINDOW entries: the
         * stacks have thousands, and each costs four forward passes. */
        for (int t = 0; t < c.p->count; t++) {
            const attn_param *it = &c.p->items[t];
            const size_t count = it->numel < WINDOW ? it->numel : WINDOW;
            const size_t first = attn_rng_below(&rng, (uint32_t)(it->numel - count + 1));
            check_gradient(&c, n, it->name, c.p->data + it->offset, c.p->grad + it->offset,
                           it->numel, first, count, magnitude);
        }
        free(dsrc), free(dtgt), free(dmemory);
        free_case(&c);
    }
    printf("largest finite-difference error: %g\n", worst_fd);
}

/* Backward adds into the input gradients and the parameter gradients. */
static void test_backward_accumulates(void **state)
{
    (void)state;
    for (int n = 0; n < 6; n++) {
        attn_rng rng = test_rng(100 + (uint64_t)n);
        tf_case c;
        make_case(&c, &rng, (module_kind)(n % 3), n % 2 == 1);
        run_forward(&c);
        attn_params_zero_grad(c.p);
        float *once = test_zeros(c.tgt_n > c.src_n ? c.tgt_n : c.src_n);
        float *twice = test_zeros(c.tgt_n > c.src_n ? c.tgt_n : c.src_n);
        const bool on_src = c.kind == ENCODER_LAYER;
        run_backward(&c, on_src ? once : NULL, on_src ? NULL : once, NULL);
        float *grad_once = malloc(c.p->total * sizeof(float));
        memcpy(grad_once, c.p->grad, c.p->total * sizeof(float));
        run_backward(&c, on_src ? twice : NULL, on_src ? NULL : twice, NULL);
        run_backward(&c, on_src ? twice : NULL, on_src ? NULL : twice, NULL);
        const size_t n_in = on_src ? c.src_n : c.tgt_n;
        for (size_t i = 0; i < n_in; i++) assert_true(fabsf(twice[i] - 2 * once[i]) <= 1e-5f);
        for (size_t i = 0; i < c.p->total; i++)
            assert_true(fabsf(c.p->grad[i] - 3 * grad_once[i]) <=
                        1e-5f * (1 + fabsf(grad_once[i])));
        free(once), free(twice), free(grad_once);
        free_case(&c);
    }
}

/* ---- encode + decode, dropout --------------------------------------------------------- */

static bool same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

static void test_encode_then_decode_is_forward(void **state)
{
    (void)state;
    for (int n = 0; n < 8; n++) {
        attn_rng rng = test_rng(200 + (uint64_t)n);
        tf_case c;
        make_case(&c, &rng, TRANSFORMER, n % 2 == 1);
        const int B = c.in.batch, T = c.in.tgt_len, S = c.in.src_len;
        float *weights = test_zeros((size_t)B * T * S), *weights2 = test_zeros((size_t)B * T * S);
        c.in.cross_weights = weights;
        run_forward(&c);
        float *memory = test_zeros(c.src_n), *out = test_zeros(c.tgt_n);
        assert_int_equal(attn_transformer_encode(c.full, memory, &c.in), ATTN_OK);
        attn_transformer_input in = c.in;
        in.memory = memory;
        in.cross_weights = weights2;
        assert_int_equal(attn_transformer_decode(c.full, out, &in), ATTN_OK);
        if (!same_bits(out, c.out, c.tgt_n) || !same_bits(weights, weights2, (size_t)B * T * S))
            print_error("case %d (%s): encode + decode differs from forward\n", n, c.desc);
        assert_true(same_bits(out, c.out, c.tgt_n));
        assert_true(same_bits(weights, weights2, (size_t)B * T * S));
        /* Without dropout each query's weights over the source sum to 1. */
        if (!c.in.training)
            for (size_t row = 0; row < (size_t)B * T; row++) {
                double sum = 0.0;
                for (int j = 0; j < S; j++) sum += weights[row * S + j];
                assert_true(fabs(sum - 1.0) <= 1e-5);
            }
        /* encode and decode replace what backward needs */
        test_expect_invalid(attn_transformer_backward(c.full, NULL, NULL, c.probe),
                            "needs a successful attn_transformer_forward");
        free(memory), free(out), free(weights), free(weights2);
        free_case(&c);
    }
}

static void test_dropout_only_in_training(void **state)
{
    (void)state;
    for (int n = 0; n < 6; n++) {
        attn_rng rng = test_rng(300 + (uint64_t)n);
        tf_case c;
        make_case(&c, &rng, (module_kind)(n % 3), true);
        float *a = test_zeros(c.out_n), *b = test_zeros(c.out_n);
        /* Evaluation ignores dropout and the seed. */
        c.in.training = false;
        assert_int_equal(forward_into(&c, a), ATTN_OK);
        c.in.dropout_seed++;
        assert_int_equal(forward_into(&c, b), ATTN_OK);
        assert_true(same_bits(a, b, c.out_n));
        /* Training draws its masks from the seed: the same seed repeats. */
        c.in.training = true;
        assert_int_equal(forward_into(&c, a), ATTN_OK);
        assert_int_equal(forward_into(&c, b), ATTN_OK);
        assert_true(same_bits(a, b, c.out_n));
        c.in.dropout_seed++;
        assert_int_equal(forward_into(&c, b), ATTN_OK);
        assert_false(same_bits(a, b, c.out_n));
        free(a), free(b);
        free_case(&c);
    }
}

/* ---- parameters ---------------------------------------------------------------------- */

static void expect_names(const attn_params *p, const char *const *names, int count)
{
    assert_int_equal(p->count, count);
    for (int i = 0; i < count; i++) {
        if (strcmp(p->items[i].name, names[i]) != 0)
            print_error("parameter %d is '%s', expected '%s'\n", i, p->items[i].name, names[i]);
        assert_string_equal(p->items[i].name, names[i]);
    }
}

static void test_parameters_are_pytorchs(void **state)
{
    (void)state;
    attn_transformer_config cfg = {.layer = attn_transformer_layer_defaults(8, 2),
                                   .num_encoder_layers = 2,
                                   .num_decoder_layers = 1};
    cfg.layer.dim_feedforward = 16;
    attn_transformer_decoder_layer *dec;
    assert_int_equal(attn_transformer_decoder_layer_create(&dec, &cfg.layer, 1), ATTN_OK);
    static const char *const decoder_names[] = {
        "self_attn.in_proj_weight",
        "self_attn.in_proj_bias",
        "self_attn.out_proj.weight",
        "self_attn.out_proj.bias",
        "multihead_attn.in_proj_weight",
        "multihead_attn.in_proj_bias",
        "multihead_attn.out_proj.weight",
        "multihead_attn.out_proj.bias",
        "linear1.weight",
        "linear1.bias",
        "linear2.weight",
        "linear2.bias",
        "norm1.weight",
        "norm1.bias",
        "norm2.weight",
        "norm2.bias",
        "norm3.weight",
        "norm3.bias",
    };
    attn_params *p = attn_transformer_decoder_layer_params(dec);
    expect_names(p, decoder_names, 18);
    const attn_param *w1 = attn_params_find(p, "linear1.weight");
    assert_int_equal(w1->shape[0], 16);
    assert_int_equal(w1->shape[1], 8);
    /* The layer's own init: LayerNorm 1 and 0, attention biases 0. */
    for (int e = 0; e < 8; e++) {
        assert_true(attn_params_data(p, "norm3.weight")[e] == 1.0f);
        assert_true(attn_params_data(p, "norm3.bias")[e] == 0.0f);
        assert_true(attn_params_data(p, "multihead_attn.out_proj.bias")[e] == 0.0f);
    }
    attn_transformer_decoder_layer_free(dec);

    attn_transformer *t;
    assert_int_equal(attn_transformer_create(&t, &cfg, 1), ATTN_OK);
    p = attn_transformer_params(t);
    assert_int_equal(p->count, 2 * 12 + 2 + 18 + 2);
    static const char *const some[] = {"encoder.layers.0.self_attn.in_proj_weight",
                                       "encoder.layers.1.norm2.bias",
                                       "encoder.norm.weight",
                                       "decoder.layers.0.multihead_attn.out_proj.weight",
                                       "decoder.layers.0.norm3.weight",
                                       "decoder.norm.bias"};
    for (int i = 0; i < 6; i++) assert_non_null(attn_params_find(p, some[i]));
    assert_string_equal(p->items[0].name, "encoder.layers.0.self_attn.in_proj_weight");
    assert_string_equal(p->items[p->count - 1].name, "decoder.norm.bias");
    /* nn.Transformer draws every matrix with xavier_uniform_: in_proj_weight
     * (3E, E) within sqrt(6 / 4E), out_proj.weight (E, E) within sqrt(6 / 2E). */
    const float *in_proj = attn_params_data(p, "decoder.layers.0.multihead_attn.in_proj_weight");
    const float *out_proj = attn_params_data(p, "encoder.layers.1.self_attn.out_proj.weight");
    float max_in = 0, max_out = 0;
    for (int i = 0; i < 3 * 64; i++) max_in = fmaxf(max_in, fabsf(in_proj[i]));
    for (int i = 0; i < 64; i++) max_out = fmaxf(max_out, fabsf(out_proj[i]));
    assert_true(max_in <= sqrtf(6.0f / 32) && max_in > 0.5f * sqrtf(6.0f / 32));
    assert_true(max_out <= sqrtf(6.0f / 16) && max_out > 0.5f * sqrtf(6.0f / 16));
    attn_transformer_free(t);
}

/* The parameters live in the module's one block: two modules with the same block
 * contents compute the same thing, and a change in the block changes the result. */
static void test_parameter_block_is_the_truth(void **state)
{
    (void)state;
    for (int n = 0; n < 6; n++) {
        attn_rng rng = test_rng(400 + (uint64_t)n);
        tf_case a, b;
        make_case(&a, &rng, (module_kind)(n % 3), false);
        attn_rng again = test_rng(400 + (uint64_t)n);
        make_case(&b, &again, (module_kind)(n % 3), false);
        attn_rng_fill_uniform(&rng, b.p->data, b.p->total, -0.5f, 0.5f);
        run_forward(&b);
        memcpy(a.p->data, b.p->data, a.p->total * sizeof(float));
        run_forward(&a);
        assert_true(same_bits(a.out, b.out, a.out_n));
        /* The first attention's output bias moves every output before a norm. */
        const char *name = a.kind == TRANSFORMER ? "decoder.layers.0.self_attn.out_proj.bias"
                                                 : "self_attn.out_proj.bias";
        float *bias = attn_params_data(a.p, name);
        assert_non_null(bias);
        bias[0] += 1.0f;
        run_forward(&a);
        assert_false(same_bits(a.out, b.out, a.out_n));
        free_case(&a);
        free_case(&b);
    }
}

static void test_thread_count_does_not_change_results(void **state)
{
    (void)state;
    const int before = attn_get_num_threads();
    for (int n = 0; n < 3; n++) {
        attn_rng rng = test_rng(500 + (uint64_t)n);
        tf_case c;
        make_case(&c, &rng, TRANSFORMER, true);
        float *out[2], *dsrc[2], *grads[2];
        for (int t = 0; t < 2; t++) {
            assert_int_equal(attn_set_num_threads(t + 1), ATTN_OK);
            out[t] = test_zeros(c.out_n);
            dsrc[t] = test_zeros(c.src_n);
            assert_int_equal(forward_into(&c, out[t]), ATTN_OK);
            attn_params_zero_grad(c.p);
            run_backward(&c, dsrc[t], NULL, NULL);
            grads[t] = malloc(c.p->total * sizeof(float));
            memcpy(grads[t], c.p->grad, c.p->total * sizeof(float));
        }
        assert_true(same_bits(out[0], out[1], c.out_n));
        assert_true(same_bits(dsrc[0], dsrc[1], c.src_n));
        assert_true(same_bits(grads[0], grads[1], c.p->total));
        for (int t = 0; t < 2; t++) free(out[t]), free(dsrc[t]), free(grads[t]);
        free_case(&c);
    }
    assert_int_equal(attn_set_num_threads(before), ATTN_OK);
}

/* ---- bad input --------------------------------------------------------------------------- */

static void test_bad_input_is_rejected(void **state)
{
    (void)state;
    attn_transformer_encoder_layer *enc = NULL;
    attn_transformer_layer_config l = attn_transformer_layer_defaults(10, 3);
    test_expect_invalid(attn_transformer_encoder_layer_create(&enc, &l, 1),
                        "d_model 10 is not divisible by nhead 3");
    l = attn_transformer_layer_defaults(8, 2);
    l.dim_feedforward = 0;
    test_expect_invalid(attn_transformer_encoder_layer_create(&enc, &l, 1), "dim_feedforward is 0");
    l = attn_transformer_layer_defaults(8, 2);
    l.dropout = 1.0f;
    test_expect_invalid(attn_transformer_encoder_layer_create(&enc, &l, 1), "dropout 1");
    l = attn_transformer_layer_defaults(8, 2);
    l.layer_norm_eps = 0.0f;
    test_expect_invalid(attn_transformer_encoder_layer_create(&enc, &l, 1), "layer_norm_eps 0");
    l = attn_transformer_layer_defaults(8, 2);
    l.activation = (attn_activation)99;
    test_expect_invalid(attn_transformer_encoder_layer_create(&enc, &l, 1), "activation 99");
    test_expect_invalid(attn_transformer_encoder_layer_create(&enc, NULL, 1), "config is NULL");
    assert_null(enc);
    attn_transformer *t = NULL;
    attn_transformer_config cfg = {.layer = attn_transformer_layer_defaults(8, 2),
                                   .num_encoder_layers = 1,
                                   .num_decoder_layers = 0};
    test_expect_invalid(attn_transformer_create(&t, &cfg, 1), "num_decoder_layers is 0");
    assert_null(t);

    cfg.num_decoder_layers = 1;
    cfg.layer.dim_feedforward = 8;
    assert_int_equal(attn_transformer_create(&t, &cfg, 1), ATTN_OK);
    float x[64] = {0}, out[64];
    test_expect_invalid(attn_transformer_backward(t, NULL, NULL, x),
                        "needs a successful attn_transformer_forward");
    attn_transformer_input in = {.src = x, .tgt = x, .batch = 2, .src_len = 2, .tgt_len = 0};
    test_expect_invalid(attn_transformer_forward(t, out, &in), "tgt_len is 0");
    in.tgt_len = 2;
    in.src = NULL;
    test_expect_invalid(attn_transformer_forward(t, out, &in), "src is NULL");
    in.src = x;
    test_expect_invalid(attn_transformer_forward(t, NULL, &in), "out is NULL");
    test_expect_invalid(attn_transformer_decode(t, out, &in), "memory is NULL");
    in.tgt_mask.attn_mask = x;
    in.tgt_mask.attn_mask_type = ATTN_MASK_FLOAT;
    in.tgt_mask.attn_mask_ndim = 4;
    test_expect_invalid(attn_transformer_forward(t, out, &in), "attn_mask_ndim 4");
    in.tgt_mask.attn_mask_ndim = 2;
    assert_int_equal(attn_transformer_forward(t, out, &in), ATTN_OK);
    test_expect_invalid(attn_transformer_backward(t, NULL, NULL, NULL), "dout is NULL");
    test_expect_invalid(attn_transformer_forward(NULL, out, &in), "transformer is NULL");
    attn_transformer_free(t);
}

/* ---- the seq2seq model "transformer" ------------------------------------------------------ */

typedef struct model_case {
    attn_seq2seq_config cfg;
    attn_seq2seq *m;
    attn_batch batch;
    attn_seq2seq_pass pass;
    attn_seq2seq_stats stats;
} model_case;

/* One example: a source of src_len random tokens, a target of tgt_len - 1 random
 * tokens then EOS, padded with PAD. */
static void fill_example(attn_batch *b, int r, attn_rng *rng, int src_vocab, int tgt_vocab,
                         int src_len, int tgt_len)
{
    b->src_len[r] = src_len;
    b->tgt_len[r] = tgt_len;
    for (int j = 0; j < b->src_cap; j++)
        b->src[(size_t)r * b->src_cap + j] =
            j < src_len
                ? ATTN_TOKEN_FIRST_CHAR +
                      (int32_t)attn_rng_below(rng, (uint32_t)(src_vocab - ATTN_TOKEN_FIRST_CHAR))
                : ATTN_TOKEN_PAD;
    int32_t *in = b->tgt_in + (size_t)r * b->tgt_cap, *out = b->tgt_out + (size_t)r * b->tgt_cap;
    for (int j = 0; j < b->tgt_cap; j++) in[j] = out[j] = ATTN_TOKEN_PAD;
    in[0] = ATTN_TOKEN_BOS;
    for (int j = 0; j + 1 < tgt_len; j++) {
        out[j] = in[j + 1] =
            ATTN_TOKEN_FIRST_CHAR +
            (int32_t)attn_rng_below(rng, (uint32_t)(tgt_vocab - ATTN_TOKEN_FIRST_CHAR));
    }
    out[tgt_len - 1] = ATTN_TOKEN_EOS;
}

static void alloc_batch(attn_batch *b, int B, int S, int T)
{
    *b = (attn_batch){.batch = B, .capacity = B, .src_cap = S, .tgt_cap = T};
    b->src = calloc((size_t)B * S, sizeof(int32_t));
    b->src_len = calloc((size_t)B, sizeof(int32_t));
    b->tgt_in = calloc((size_t)B * T, sizeof(int32_t));
    b->tgt_out = calloc((size_t)B * T, sizeof(int32_t));
    b->tgt_len = calloc((size_t)B, sizeof(int32_t));
}

static void free_batch(attn_batch *b)
{
    free(b->src), free(b->src_len), free(b->tgt_in), free(b->tgt_out), free(b->tgt_len);
}

static void make_model(model_case *c, attn_rng *rng, float dropout)
{
    memset(c, 0, sizeof *c);
    attn_seq2seq_config *g = &c->cfg;
    *g = attn_seq2seq_defaults(ATTN_S2S_TRANSFORMER, ATTN_ATTEND_SOFT);
    g->src_vocab = 6 + (int)attn_rng_below(rng, 4);
    g->tgt_vocab = 5 + (int)attn_rng_below(rng, 4);
    g->max_src_len = 3 + (int)attn_rng_below(rng, 4);
    g->max_tgt_len = 3 + (int)attn_rng_below(rng, 3);
    g->heads = 1 + (int)attn_rng_below(rng, 2);
    /* Wide enough for finite differences, see make_case: at 6 and 8 dropout's
     * zeros left a norm's input nearly constant in one seed of a few hundred (the
     * loss's slope swung from -0.01 to -0.68 within 3e-3 of the point). */
    g->hidden_dim = g->heads == 1 ? 12 : 16;
    g->ff_dim = 4 + (int)attn_rng_below(rng, 5);
    g->enc_layers = 1 + (int)attn_rng_below(rng, 2);
    g->dec_layers = 1 + (int)attn_rng_below(rng, 2);
    g->dropout = dropout;
    assert_int_equal(attn_seq2seq_create(&c->m, g, attn_rng_u32(rng)), ATTN_OK);
    /* Biases and norms away from their initial 0 and 1. */
    attn_params *p = attn_seq2seq_params(c->m);
    for (int i = 0; i < p->count; i++)
        if (p->items[i].ndim == 1)
            attn_rng_fill_uniform(rng, p->data + p->items[i].offset, p->items[i].numel, -0.5f,
                                  1.0f);
    const int B = 1 + (int)attn_rng_below(rng, 3);
    alloc_batch(&c->batch, B, g->max_src_len, g->max_tgt_len);
    for (int r = 0; r < B; r++)
        fill_example(&c->batch, r, rng, g->src_vocab, g->tgt_vocab,
                     1 + (int)attn_rng_below(rng, (uint32_t)g->max_src_len),
                     1 + (int)attn_rng_below(rng, (uint32_t)g->max_tgt_len));
    c->pass = (attn_seq2seq_pass){.training = true,
                                  .step = attn_rng_below(rng, 1000),
                                  .seed = attn_rng_u32(rng),
                                  .label_smoothing = 0.0f};
    if (attn_rng_below(rng, 2)) c->pass.label_smoothing = 0.1f;
}

static void free_model(model_case *c)
{
    attn_seq2seq_free(c->m);
    free_batch(&c->batch);
}

static double model_loss(void *ctx)
{
    model_case *c = ctx;
    assert_int_equal(attn_seq2seq_forward(c->m, &c->stats, &c->batch, &c->pass), ATTN_OK);
    return c->stats.loss;
}

/* The model's feed-forward blocks use relu, and a kink within reach of the step
 * would spoil a finite difference; so every linear1.bias is set to 8, some six
 * standard deviations of linear1's output, which keeps the relu inputs above 0
 * (the relu itself is checked against PyTorch in the conformance tests). The loss is a float32 mean, so its rounding noise
 * scales with it: the error is floored at 0.05 of the loss. */
static void test_model_gradients_match_finite_differences(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int n = 0; n < 6; n++) {
        attn_rng rng = test_rng(600 + (uint64_t)n);
        model_case c;
        make_model(&c, &rng, n % 2 ? 0.3f : 0.0f);
        attn_params *p = attn_seq2seq_params(c.m);
        const char *suffix = "linear1.bias";
        for (int t = 0; t < p->count; t++) {
            const attn_param *it = &p->items[t];
            const size_t length = strlen(it->name);
            if (length >= strlen(suffix) && strcmp(it->name + length - strlen(suffix), suffix) == 0)
                for (size_t e = 0; e < it->numel; e++) p->data[it->offset + e] = 8.0f;
        }
        attn_params_zero_grad(p);
        const double loss = model_loss(&c);
        assert_int_equal(attn_seq2seq_backward(c.m), ATTN_OK);
        for (int t = 0; t < p->count; t++) {
            const attn_param *it = &p->items[t];
            const size_t count = it->numel < WINDOW ? it->numel : WINDOW;
            const size_t first = attn_rng_below(&rng, (uint32_t)(it->numel - count + 1));
            const double err = window_error(p->data + it->offset, p->grad + it->offset, it->numel,
                                            first, count, model_loss, &c, 0.05 * fmax(1.0, loss));
            worst = fmax(worst, err);
            if (!(err <= FD_BOUND))
                print_error("model case %d (dropout %g, layers %d+%d): %s finite-difference "
                            "error %g\n",
                            n, (double)c.cfg.dropout, c.cfg.enc_layers, c.cfg.dec_layers, it->name,
                            err);
            assert_true(err <= FD_BOUND);
        }
        free_model(&c);
    }
    printf("largest finite-difference error of the model: %g\n", worst);
}

static void test_model_parameters_and_passes(void **state)
{
    (void)state;
    attn_rng rng = test_rng(700);
    model_case c;
    make_model(&c, &rng, 0.3f);
    attn_params *p = attn_seq2seq_params(c.m);
    assert_string_equal(p->items[0].name, "src_embed.weight");
    assert_string_equal(p->items[1].name, "tgt_embed.weight");
    assert_string_equal(p->items[2].name, "transformer.encoder.layers.0.self_attn.in_proj_weight");
    assert_string_equal(p->items[p->count - 2].name, "generator.weight");
    assert_string_equal(p->items[p->count - 1].name, "generator.bias");
    assert_non_null(attn_params_find(p, "transformer.decoder.norm.weight"));
    assert_int_equal(attn_seq2seq_buffers(c.m)->count, 0);
    /* Dropout draws from (seed, step): the same pass repeats, another step differs. */
    assert_int_equal(attn_seq2seq_forward(c.m, &c.stats, &c.batch, &c.pass), ATTN_OK);
    const float loss = c.stats.loss;
    assert_int_equal(attn_seq2seq_forward(c.m, &c.stats, &c.batch, &c.pass), ATTN_OK);
    assert_true(c.stats.loss == loss);
    c.pass.step++;
    assert_int_equal(attn_seq2seq_forward(c.m, &c.stats, &c.batch, &c.pass), ATTN_OK);
    assert_true(c.stats.loss != loss);
    int64_t tokens = 0;
    for (int r = 0; r < c.batch.batch; r++) tokens += c.batch.tgt_len[r];
    assert_int_equal(c.stats.tokens, tokens);
    assert_true(c.stats.correct >= 0 && c.stats.correct <= tokens);
    /* Backward needs a training forward since the last backward or decode. */
    assert_int_equal(attn_seq2seq_backward(c.m), ATTN_OK);
    test_expect_invalid(attn_seq2seq_backward(c.m), "training forward");
    c.pass.training = false;
    assert_int_equal(attn_seq2seq_forward(c.m, &c.stats, &c.batch, &c.pass), ATTN_OK);
    test_expect_invalid(attn_seq2seq_backward(c.m), "training forward");
    /* A bad id fails naming it. */
    c.batch.src[0] = (int32_t)c.cfg.src_vocab;
    test_expect_invalid(attn_seq2seq_forward(c.m, &c.stats, &c.batch, &c.pass), "source id");
    free_model(&c);
}

/* Greedy decoding's score, the sum of its tokens' log-probabilities, must be what
 * teacher forcing gives the same output: the step path and the forward agree. */
static void test_decoding_agrees_with_teacher_forcing(void **state)
{
    (void)state;
    for (int n = 0; n < 6; n++) {
        attn_rng rng = test_rng(800 + (uint64_t)n);
        model_case c;
        make_model(&c, &rng, 0.2f);
        const int B = c.batch.batch, S = c.batch.src_cap, T = c.cfg.max_tgt_len;
        int32_t *out = calloc((size_t)B * T, sizeof *out),
                *out_len = calloc((size_t)B, sizeof *out_len);
        float *scores = calloc((size_t)B, sizeof *scores);
        float *attention = calloc((size_t)B * T * S, sizeof *attention);
        const attn_decode_options opt = {.beam = 1, .max_len = T};
        assert_int_equal(attn_seq2seq_greedy(c.m, out, out_len, attention, scores, c.batch.src,
                                             c.batch.src_len, B, S, &opt),
                         ATTN_OK);
        attn_batch one;
        alloc_batch(&one, 1, S, T);
        for (int b = 0; b < B; b++) {
            /* The decoded tokens as a target: EOS included if it came. */
            const int len = out_len[b] < T ? out_len[b] + 1 : T;
            one.src_len[0] = c.batch.src_len[b];
            memcpy(one.src, c.batch.src + (size_t)b * S, (size_t)S * sizeof *one.src);
            one.tgt_len[0] = len;
            for (int j = 0; j < T; j++) {
                one.tgt_out[j] = j < len ? out[(size_t)b * T + j] : ATTN_TOKEN_PAD;
                one.tgt_in[j] = j == 0    ? ATTN_TOKEN_BOS
                                : j < len ? out[(size_t)b * T + j - 1]
                                          : ATTN_TOKEN_PAD;
            }
            const attn_seq2seq_pass eval = {.training = false};
            assert_int_equal(attn_seq2seq_forward(c.m, &c.stats, &one, &eval), ATTN_OK);
            const double want = -(double)scores[b] / len;
            if (!(fabs(c.stats.loss - want) <= 1e-5 * fmax(1.0, fabs(want))))
                print_error("case %d row %d: teacher-forced loss %.8g, decoding's %.8g\n", n, b,
                            (double)c.stats.loss, want);
            assert_true(fabs(c.stats.loss - want) <= 1e-5 * fmax(1.0, fabs(want)));
            /* Each step's attention is a distribution over the real source tokens. */
            for (int t = 0; t < len; t++) {
                const float *a = attention + ((size_t)b * T + t) * S;
                double sum = 0.0;
                for (int j = 0; j < S; j++) {
                    if (j >= c.batch.src_len[b]) assert_true(a[j] == 0.0f);
                    sum += a[j];
                }
                assert_true(fabs(sum - 1.0) <= 1e-5);
            }
        }
        /* Beam search with one beam is greedy, through encode, step and reorder. */
        int32_t *beam_out = calloc((size_t)B * T, sizeof *beam_out);
        int32_t *beam_len = calloc((size_t)B, sizeof *beam_len);
        float *beam_scores = calloc((size_t)B, sizeof *beam_scores);
        assert_int_equal(attn_seq2seq_beam_search(c.m, beam_out, beam_len, NULL, beam_scores,
                                                  c.batch.src, c.batch.src_len, B, S, &opt),
                         ATTN_OK);
        assert_memory_equal(beam_out, out, (size_t)B * T * sizeof *out);
        assert_memory_equal(beam_len, out_len, (size_t)B * sizeof *out_len);
        /* A wider beam finds an output at least as likely as greedy's. */
        const attn_decode_options wide = {.beam = 3, .max_len = T};
        assert_int_equal(attn_seq2seq_beam_search(c.m, beam_out, beam_len, NULL, beam_scores,
                                                  c.batch.src, c.batch.src_len, B, S, &wide),
                         ATTN_OK);
        assert_int_equal(attn_seq2seq_decode(c.m, beam_out, beam_len, attention, c.batch.src,
                                             c.batch.src_len, B, S, &wide),
                         ATTN_OK);
        test_expect_invalid(attn_seq2seq_backward(c.m), "training forward");
        free(out), free(out_len), free(scores), free(attention);
        free(beam_out), free(beam_len), free(beam_scores);
        free_batch(&one);
        free_model(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_encode_then_decode_is_forward),
        cmocka_unit_test(test_dropout_only_in_training),
        cmocka_unit_test(test_parameters_are_pytorchs),
        cmocka_unit_test(test_parameter_block_is_the_truth),
        cmocka_unit_test(test_thread_count_does_not_change_results),
        cmocka_unit_test(test_bad_input_is_rejected),
        cmocka_unit_test(test_model_gradients_match_finite_differences),
        cmocka_unit_test(test_model_parameters_and_passes),
        cmocka_unit_test(test_decoding_agrees_with_teacher_forcing),
    };
    test_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
