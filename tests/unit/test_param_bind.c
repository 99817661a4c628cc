/* Modules inside a parent's parameter block (nn/param_specs.h): attn_mha and
 * attn_rnn bound under a prefix hold the same names, initial values, outputs and
 * gradients as the same module alone, and touch nothing else of the block. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/mha_impl.h"
#include "nn/rnn_impl.h"
#include "testutil.h"

enum { SEED = 5 };

/* A parent block: a parameter before the module, the module under prefix, one
 * after; the module's part listed by `list`. */
static void parent_specs(attn_specs *specs, const char *prefix,
                         void (*list)(const void *m, attn_specs *specs, const char *prefix),
                         const void *m)
{
    attn_specs_add(specs, "", "before.weight", 2, 3, 5);
    list(m, specs, prefix);
    attn_specs_add(specs, "", "after.bias", 1, 7, 0);
}

static void list_mha(const void *m, attn_specs *specs, const char *prefix)
{
    attn_mha_specs(m, specs, prefix);
}

static void list_rnn(const void *m, attn_specs *specs, const char *prefix)
{
    attn_rnn_specs(m, specs, prefix);
}

/* Every parameter of `alone` is in `parent` under prefix with the same shape,
 * values and gradient; the parent holds two more, whose gradients stay zero. */
static void expect_same_parameters(const attn_params *alone, const attn_params *parent,
                                   const char *prefix)
{
    assert_int_equal(parent->count, alone->count + 2);
    for (int i = 0; i < alone->count; i++) {
        const attn_param *a = &alone->items[i];
        char name[ATTN_PARAM_NAME_MAX];
        snprintf(name, sizeof name, "%s%s", prefix, a->name);
        const attn_param *b = attn_params_find(parent, name);
        assert_non_null(b);
        assert_int_equal(b->ndim, a->ndim);
        assert_memory_equal(b->shape, a->shape, sizeof a->shape);
        assert_memory_equal(parent->data + b->offset, alone->data + a->offset,
                            a->numel * sizeof(float));
        assert_memory_equal(parent->grad + b->offset, alone->grad + a->offset,
                            a->numel * sizeof(float));
    }
    const char *others[] = {"before.weight", "after.bias"};
    for (int k = 0; k < 2; k++) {
        const attn_param *it = attn_params_find(parent, others[k]);
        assert_non_null(it);
        for (size_t e = 0; e < it->numel; e++) assert_true(parent->grad[it->offset + e] == 0.0f);
    }
}

static void test_specs_keep_the_first_failure(void **state)
{
    (void)state;
    char longname[ATTN_PARAM_NAME_MAX + 8];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    attn_specs specs = {0};
    attn_specs_add(&specs, "", "fine", 1, 4, 0);
    attn_specs_add(&specs, "prefix.", longname, 1, 4, 0);
    attn_specs_add(&specs, "", "later", 1, 4, 0);
    assert_int_equal(specs.count, 1);
    attn_params p = {0};
    test_expect_invalid(attn_specs_layout(&specs, &p), "exceeds");
    assert_null(specs.items);
    assert_null(p.data);
}

/* Forward and backward of m on fixed random inputs, self-attention. */
static void run_mha(attn_mha *m, int E)
{
    enum { B = 2, L = 3 };
    attn_rng rng = test_rng(1);
    float *x = test_random(&rng, (size_t)B * L * E, -1.0f, 1.0f);
    float *dout = test_random(&rng, (size_t)B * L * E, -1.0f, 1.0f);
    float *out = test_zeros((size_t)B * L * E), *dx = test_zeros((size_t)B * L * E);
    const attn_mha_input in = {.query = x, .key = x, .value = x, .batch = B, .len_q = L,
                               .len_k = L};
    assert_int_equal(attn_mha_forward(m, out, &in), ATTN_OK);
    assert_int_equal(attn_mha_backward(m, dx, dx, dx, dout), ATTN_OK);
    free(x), free(dout), free(out), free(dx);
}

static void test_mha_in_a_parent_is_the_mha_alone(void **state)
{
    (void)state;
    const attn_mha_config cfg = {.embed_dim = 8, .num_heads = 2, .bias = true,
                                 .batch_first = true};
    const char *prefix = "layers.0.self_attn.";
    attn_mha *alone = NULL, *bound = NULL;
    assert_int_equal(attn_mha_create(&alone, &cfg, SEED), ATTN_OK);
    assert_int_equal(attn_mha_new(&bound, &cfg), ATTN_OK);
    attn_specs specs = {0};
    parent_specs(&specs, prefix, list_mha, bound);
    attn_params parent = {0};
    assert_int_equal(attn_specs_layout(&specs, &parent), ATTN_OK);
    assert_int_equal(attn_mha_bind(bound, &parent, prefix, SEED), ATTN_OK);
    assert_null(attn_mha_params(bound));
    run_mha(alone, cfg.embed_dim);
    run_mha(bound, cfg.embed_dim);
    expect_same_parameters(attn_mha_params(alone), &parent, prefix);
    attn_mha_free(alone);
    attn_mha_free(bound);
    attn_params_free(&parent);
}

/* Forward and backward of m on fixed random inputs of unequal lengths. */
static void run_rnn(attn_rnn *m, const attn_rnn_config *cfg)
{
    enum { B = 3, T = 4 };
    const size_t out = (size_t)B * T * 2 * cfg->hidden_size;
    attn_rng rng = test_rng(2);
    float *x = test_random(&rng, (size_t)B * T * cfg->input_size, -1.0f, 1.0f);
    float *dy = test_random(&rng, out, -1.0f, 1.0f);
    float *y = test_zeros(out), *dx = test_zeros((size_t)B * T * cfg->input_size);
    const int32_t lengths[B] = {4, 2, 3};
    const attn_rnn_input in = {.x = x, .batch = B, .seq_len = T, .lengths = lengths};
    assert_int_equal(attn_rnn_forward(m, y, NULL, NULL, &in), ATTN_OK);
    assert_int_equal(attn_rnn_backward(m, dx, NULL, NULL, dy, NULL, NULL), ATTN_OK);
    free(x), free(dy), free(y), free(dx);
}

static void test_rnn_in_a_parent_is_the_rnn_alone(void **state)
{
    (void)state;
    const attn_rnn_config cfg = {.mode = ATTN_LSTM, .input_size = 5, .hidden_size = 4,
                                 .num_layers = 2, .bias = true, .batch_first = true,
                                 .bidirectional = true};
    const char *prefix = "encoder.rnn.";
    attn_rnn *alone = NULL, *bound = NULL;
    assert_int_equal(attn_rnn_create(&alone, &cfg, SEED), ATTN_OK);
    assert_int_equal(attn_rnn_new(&bound, &cfg), ATTN_OK);
    attn_specs specs = {0};
    parent_specs(&specs, prefix, list_rnn, bound);
    attn_params parent = {0};
    assert_int_equal(attn_specs_layout(&specs, &parent), ATTN_OK);
    assert_int_equal(attn_rnn_bind(bound, &parent, prefix, SEED), ATTN_OK);
    assert_null(attn_rnn_params(bound));
    run_rnn(alone, &cfg);
    run_rnn(bound, &cfg);
    expect_same_parameters(attn_rnn_params(alone), &parent, prefix);
    attn_rnn_free(alone);
    attn_rnn_free(bound);
    attn_params_free(&parent);
}

static void test_bind_names_a_missing_parameter(void **state)
{
    (void)state;
    const attn_mha_config cfg = {.embed_dim = 4, .num_heads = 1, .bias = true};
    attn_mha *m = NULL;
    assert_int_equal(attn_mha_new(&m, &cfg), ATTN_OK);
    attn_specs specs = {0};
    attn_mha_specs(m, &specs, "a.");
    attn_params parent = {0};
    assert_int_equal(attn_specs_layout(&specs, &parent), ATTN_OK);
    assert_int_equal(attn_mha_bind(m, &parent, "b.", SEED), ATTN_ERR_NOT_FOUND);
    assert_non_null(strstr(attn_last_error(), "b.in_proj_weight"));
    attn_mha_free(m);
    attn_params_free(&parent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specs_keep_the_first_failure),
        cmocka_unit_test(test_mha_in_a_parent_is_the_mha_alone),
        cmocka_unit_test(test_rnn_in_a_parent_is_the_rnn_alone),
        cmocka_unit_test(test_bind_names_a_missing_parameter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
