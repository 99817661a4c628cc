/* Checkpoints: parameters, buffers and AdamW's state round-trip exactly, the file
 * is also a state_dict, and a bad or mismatched file changes nothing. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/checkpoint.h"
#include "testutil.h"

static const attn_param PARAM_SPECS[] = {
    {.name = "encoder.weight", .ndim = 2, .shape = {5, 3}},
    {.name = "encoder.bias", .ndim = 1, .shape = {5}},
    {.name = "decoder.v", .ndim = 1, .shape = {7}},
};
static const attn_param BUFFER_SPECS[] = {
    {.name = "baseline", .ndim = 1, .shape = {1}},
};

typedef struct fixture {
    char *dir, path[128];
    attn_params params, buffers;
    attn_adamw opt;
} fixture;

static void fill(attn_rng *rng, float *x, size_t n) { attn_rng_fill_uniform(rng, x, n, -1, 1); }

/* Parameters, buffers and an optimizer with a few steps behind it. */
static void make_state(fixture *f, uint64_t case_number)
{
    attn_rng rng = test_rng(case_number);
    assert_int_equal(attn_params_init(&f->params, PARAM_SPECS, 3), ATTN_OK);
    assert_int_equal(attn_params_init(&f->buffers, BUFFER_SPECS, 1), ATTN_OK);
    attn_adamw_config cfg = attn_adamw_defaults();
    assert_int_equal(attn_adamw_init(&f->opt, f->params.total, &cfg), ATTN_OK);
    fill(&rng, f->params.data, f->params.total);
    fill(&rng, f->buffers.data, f->buffers.total);
    for (int step = 0; step < 3; step++) {
        fill(&rng, f->params.grad, f->params.total);
        assert_int_equal(attn_adamw_step(&f->opt, f->params.data, f->params.grad, NULL, 1e-2f),
                         ATTN_OK);
    }
}

static void free_state(fixture *f)
{
    attn_params_free(&f->params);
    attn_params_free(&f->buffers);
    attn_adamw_free(&f->opt);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL) return -1;
    f->dir = test_temp_dir("checkpoint");
    snprintf(f->path, sizeof f->path, "%s/run.safetensors", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    test_temp_dir_remove(f->dir);
    free(f);
    return 0;
}

static attn_safetensors *open_file(const char *path)
{
    attn_safetensors *st = NULL;
    assert_int_equal(attn_safetensors_open(&st, path), ATTN_OK);
    return st;
}

/* Every parameter's values (not the padding between them) in x and y. */
static void assert_same_values(const attn_params *p, const float *x, const float *y)
{
    for (int i = 0; i < p->count; i++)
        assert_memory_equal(x + p->items[i].offset, y + p->items[i].offset,
                            p->items[i].numel * sizeof(float));
}

/* Every value the optimizer and model keep. */
static void assert_same_state(fixture *a, fixture *b)
{
    assert_same_values(&a->params, a->params.data, b->params.data);
    assert_same_values(&a->params, a->opt.m, b->opt.m);
    assert_same_values(&a->params, a->opt.v, b->opt.v);
    assert_same_values(&a->buffers, a->buffers.data, b->buffers.data);
    assert_int_equal(a->opt.step, b->opt.step);
}

static void test_round_trip(void **state)
{
    fixture *f = *state, loaded = {0};
    make_state(f, 1);
    const attn_metadata_pair meta[] = {{"task", "dates"}};
    assert_int_equal(attn_checkpoint_save(f->path, &f->params, &f->buffers, &f->opt, meta, 1),
                     ATTN_OK);
    make_state(&loaded, 2); /* different values, the same layout */
    attn_safetensors *st = open_file(f->path);
    assert_string_equal(attn_safetensors_metadata(st, "task"), "dates");
    assert_string_equal(attn_safetensors_metadata(st, "optimizer.step"), "3");
    assert_non_null(attn_safetensors_find(st, "optimizer.exp_avg_sq.decoder.v"));
    assert_int_equal(attn_checkpoint_load(st, &loaded.params, &loaded.buffers, &loaded.opt),
                     ATTN_OK);
    assert_same_state(f, &loaded);

    /* The same file is a state_dict: without an optimizer the moments are skipped. */
    attn_params weights_only = {0};
    assert_int_equal(attn_params_init(&weights_only, PARAM_SPECS, 3), ATTN_OK);
    assert_int_equal(attn_checkpoint_load(st, &weights_only, &loaded.buffers, NULL), ATTN_OK);
    assert_same_values(&f->params, weights_only.data, f->params.data);
    attn_params_free(&weights_only);
    attn_safetensors_close(st);
    free_state(f);
    free_state(&loaded);
}

static void test_mismatch_changes_nothing(void **state)
{
    fixture *f = *state, other = {0};
    make_state(f, 3);
    /* Saved without buffers, so loading with buffers misses "baseline". */
    assert_int_equal(attn_checkpoint_save(f->path, &f->params, NULL, &f->opt, NULL, 0), ATTN_OK);
    make_state(&other, 4);
    fixture before = {0};
    make_state(&before, 4);
    attn_safetensors *st = open_file(f->path);
    attn_status s = attn_checkpoint_load(st, &other.params, &other.buffers, &other.opt);
    assert_int_equal(s, ATTN_ERR_NOT_FOUND);
    assert_non_null(strstr(attn_last_error(), "baseline"));
    assert_same_state(&other, &before);
    attn_safetensors_close(st);

    /* A parameter of another shape is named, with both shapes. */
    attn_param bigger[3];
    memcpy(bigger, PARAM_SPECS, sizeof bigger);
    bigger[1].shape[0] = 6;
    attn_params wrong = {0};
    assert_int_equal(attn_params_init(&wrong, bigger, 3), ATTN_OK);
    st = open_file(f->path);
    s = attn_checkpoint_load(st, &wrong, NULL, NULL);
    assert_int_equal(s, ATTN_ERR_FORMAT);
    assert_non_null(strstr(attn_last_error(), "encoder.bias"));
    attn_safetensors_close(st);
    attn_params_free(&wrong);

    /* Saved without an optimizer, the file cannot resume one. */
    assert_int_equal(attn_checkpoint_save(f->path, &f->params, &f->buffers, NULL, NULL, 0),
                     ATTN_OK);
    st = open_file(f->path);
    s = attn_checkpoint_load(st, &other.params, &other.buffers, &other.opt);
    assert_int_equal(s, ATTN_ERR_NOT_FOUND);
    assert_non_null(strstr(attn_last_error(), "optimizer.step"));
    assert_same_state(&other, &before);
    attn_safetensors_close(st);
    free_state(f);
    free_state(&other);
    free_state(&before);
}

static void test_bad_arguments(void **state)
{
    fixture *f = *state;
    make_state(f, 5);
    attn_adamw small = {0};
    attn_adamw_config cfg = attn_adamw_defaults();
    assert_int_equal(attn_adamw_init(&small, 4, &cfg), ATTN_OK);
    test_expect_invalid(attn_checkpoint_save(f->path, &f->params, NULL, &small, NULL, 0),
                        "optimizer holds 4 values");
    test_expect_invalid(attn_checkpoint_save(NULL, &f->params, NULL, NULL, NULL, 0), "path");
    assert_int_equal(access(f->path, F_OK), -1); /* nothing was written */
    attn_adamw_free(&small);
    free_state(f);
}

int main(void)
{
    test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mismatch_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
