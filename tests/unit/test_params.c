/* Parameter blocks saved and loaded as safetensors state_dicts: round trips,
 * dtype conversion, and strict loading that leaves the parameters unchanged on
 * any failure. */
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

#include "testutil.h"

/* The parameters of nn.MultiheadAttention(4, 2) with bias. */
static const attn_param MHA_SPECS[] = {
    {.name = "in_proj_weight", .ndim = 2, .shape = {12, 4}},
    {.name = "in_proj_bias", .ndim = 1, .shape = {12}},
    {.name = "out_proj.weight", .ndim = 2, .shape = {4, 4}},
    {.name = "out_proj.bias", .ndim = 1, .shape = {4}},
};
enum { MHA_COUNT = sizeof MHA_SPECS / sizeof MHA_SPECS[0] };

typedef struct fixture {
    char *dir;
    char path[128];
    attn_params params;
    float *before; /* a copy of params.data, to check that failures change nothing */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL) return -1;
    f->dir = test_temp_dir("params");
    snprintf(f->path, sizeof f->path, "%s/state.safetensors", f->dir);
    if (attn_params_init(&f->params, MHA_SPECS, MHA_COUNT) != ATTN_OK) return -1;
    attn_rng rng = test_rng(7);
    attn_rng_fill_uniform(&rng, f->params.data, f->params.total, -1.0f, 1.0f);
    f->before = malloc(f->params.total * sizeof *f->before);
    if (f->before == NULL) return -1;
    memcpy(f->before, f->params.data, f->params.total * sizeof *f->before);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    test_temp_dir_remove(f->dir);
    attn_params_free(&f->params);
    free(f->before);
    free(f);
    return 0;
}

/* The whole block, padding included, is as setup left it. */
static void assert_params_unchanged(const fixture *f)
{
    assert_memory_equal(f->params.data, f->before, f->params.total * sizeof(float));
}

/* Every parameter holds the value setup gave it (padding aside). */
static void assert_values_restored(const fixture *f)
{
    for (int i = 0; i < f->params.count; i++) {
        const attn_param *p = &f->params.items[i];
        assert_memory_equal(f->params.data + p->offset, f->before + p->offset,
                            p->numel * sizeof(float));
    }
}

/* Writes a file with the module's tensors as F32, except that `skip` is left
 * out, `extra` (if not NULL) is added, and `reshaped` (if not NULL) gets the
 * shape (12, 5). Values are 0.5 everywhere. */
static void write_state(const fixture *f, const char *skip, const char *extra,
                        const char *reshaped)
{
    static float values[64];
    for (int i = 0; i < 64; i++) values[i] = 0.5f;
    static const int64_t wide[2] = {12, 5}, one[1] = {1};
    attn_tensor_out tensors[MHA_COUNT + 1];
    int n = 0;
    for (int i = 0; i < MHA_COUNT; i++) {
        const attn_param *p = &MHA_SPECS[i];
        if (skip != NULL && strcmp(p->name, skip) == 0) continue;
        bool wider = reshaped != NULL && strcmp(p->name, reshaped) == 0;
        tensors[n++] = (attn_tensor_out){p->name, ATTN_DTYPE_F32, p->ndim,
                                         wider ? wide : p->shape, values};
    }
    if (extra != NULL) tensors[n++] = (attn_tensor_out){extra, ATTN_DTYPE_F32, 1, one, values};
    attn_status s = attn_safetensors_save(f->path, tensors, n, NULL, 0);
    if (s != ATTN_OK) fail_msg("%s", attn_last_error());
}

static void expect_load_failure(fixture *f, attn_status status, const char *message)
{
    attn_status s = attn_params_load(&f->params, f->path);
    if (s != status)
        fail_msg("status %d, want %d; message: %s", s, status, attn_last_error());
    if (strstr(attn_last_error(), message) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", attn_last_error(), message);
    assert_params_unchanged(f);
}

static void test_save_load_round_trip(void **state)
{
    fixture *f = *state;
    const attn_metadata_pair meta[] = {{"format", "pt"}};
    assert_int_equal(attn_params_save(&f->params, f->path, meta, 1), ATTN_OK);

    attn_params loaded;
    assert_int_equal(attn_params_init(&loaded, MHA_SPECS, MHA_COUNT), ATTN_OK);
    attn_status s = attn_params_load(&loaded, f->path);
    if (s != ATTN_OK) fail_msg("%s", attn_last_error());
    for (int i = 0; i < MHA_COUNT; i++) {
        const attn_param *p = &loaded.items[i];
        assert_memory_equal(attn_params_data(&loaded, p->name),
                            attn_params_data(&f->params, p->name), p->numel * sizeof(float));
    }
    attn_params_free(&loaded);

    /* The file is a plain state_dict: F32 tensors with the module's shapes. */
    attn_safetensors *st = NULL;
    assert_int_equal(attn_safetensors_open(&st, f->path), ATTN_OK);
    assert_int_equal(attn_safetensors_count(st), MHA_COUNT);
    const attn_tensor_view *w = attn_safetensors_find(st, "in_proj_weight");
    assert_non_null(w);
    assert_int_equal(w->dtype, ATTN_DTYPE_F32);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 12);
    assert_int_equal(w->shape[1], 4);
    assert_string_equal(attn_safetensors_metadata(st, "format"), "pt");
    attn_safetensors_close(st);
}

/* F16, BF16 and F64 tensors load converted. */
static void test_load_converts_float_dtypes(void **state)
{
    fixture *f = *state;
    static uint16_t half[48], bf[12];
    static double f64[16];
    static float f32[4];
    for (int i = 0; i < 48; i++) half[i] = 0x3800; /* 0.5 */
    for (int i = 0; i < 12; i++) bf[i] = 0xc000;   /* -2 */
    for (int i = 0; i < 16; i++) f64[i] = 0.25 * i;
    for (int i = 0; i < 4; i++) f32[i] = 3.0f;
    const attn_tensor_out tensors[] = {
        {"in_proj_weight", ATTN_DTYPE_F16, 2, MHA_SPECS[0].shape, half},
        {"in_proj_bias", ATTN_DTYPE_BF16, 1, MHA_SPECS[1].shape, bf},
        {"out_proj.weight", ATTN_DTYPE_F64, 2, MHA_SPECS[2].shape, f64},
        {"out_proj.bias", ATTN_DTYPE_F32, 1, MHA_SPECS[3].shape, f32},
    };
    assert_int_equal(attn_safetensors_save(f->path, tensors, 4, NULL, 0), ATTN_OK);
    attn_status s = attn_params_load(&f->params, f->path);
    if (s != ATTN_OK) fail_msg("%s", attn_last_error());
    const float *w = attn_params_data(&f->params, "in_proj_weight");
    for (int i = 0; i < 48; i++) assert_true(w[i] == 0.5f);
    const float *b = attn_params_data(&f->params, "in_proj_bias");
    for (int i = 0; i < 12; i++) assert_true(b[i] == -2.0f);
    const float *o = attn_params_data(&f->params, "out_proj.weight");
    for (int i = 0; i < 16; i++) assert_true(o[i] == 0.25f * (float)i);
    const float *ob = attn_params_data(&f->params, "out_proj.bias");
    for (int i = 0; i < 4; i++) assert_true(ob[i] == 3.0f);
}

static void test_missing_key_fails_unchanged(void **state)
{
    fixture *f = *state;
    write_state(f, "out_proj.bias", NULL, NULL);
    expect_load_failure(f, ATTN_ERR_NOT_FOUND, "missing key 'out_proj.bias'");
}

static void test_unexpected_key_fails_unchanged(void **state)
{
    fixture *f = *state;
    write_state(f, NULL, "foo", NULL);
    expect_load_failure(f, ATTN_ERR_FORMAT, "unexpected key 'foo'");
}

static void test_misshaped_key_fails_unchanged(void **state)
{
    fixture *f = *state;
    write_state(f, NULL, NULL, "in_proj_weight");
    expect_load_failure(f, ATTN_ERR_FORMAT,
                        "key 'in_proj_weight' has shape (12, 5) in the file but (12, 4) in the "
                        "module");
}

static void test_integer_dtype_fails_unchanged(void **state)
{
    fixture *f = *state;
    static int32_t ints[48];
    attn_tensor_out tensors[MHA_COUNT];
    static float values[48];
    for (int i = 0; i < MHA_COUNT; i++)
        tensors[i] = (attn_tensor_out){MHA_SPECS[i].name, ATTN_DTYPE_F32, MHA_SPECS[i].ndim,
                                       MHA_SPECS[i].shape, values};
    tensors[0].dtype = ATTN_DTYPE_I32;
    tensors[0].data = ints;
    assert_int_equal(attn_safetensors_save(f->path, tensors, MHA_COUNT, NULL, 0), ATTN_OK);
    expect_load_failure(f, ATTN_ERR_UNSUPPORTED, "key 'in_proj_weight' has dtype I32");
}

static void test_bad_files_fail_unchanged(void **state)
{
    fixture *f = *state;
    expect_load_failure(f, ATTN_ERR_IO, "cannot open");

    FILE *file = fopen(f->path, "wb");
    assert_non_null(file);
    fputs("not a safetensors file", file);
    fclose(file);
    expect_load_failure(f, ATTN_ERR_FORMAT, "state.safetensors: header length");

    assert_int_equal(attn_params_load(NULL, f->path), ATTN_ERR_INVALID_ARGUMENT);
    assert_int_equal(attn_params_load(&f->params, NULL), ATTN_ERR_INVALID_ARGUMENT);
    assert_int_equal(attn_params_load_from(&f->params, NULL), ATTN_ERR_INVALID_ARGUMENT);
    assert_int_equal(attn_params_save(NULL, f->path, NULL, 0), ATTN_ERR_INVALID_ARGUMENT);
    assert_params_unchanged(f);
}

/* A save that cannot be written leaves an existing state_dict as it was. */
static void test_failed_save_keeps_old_state(void **state)
{
    fixture *f = *state;
    assert_int_equal(attn_params_save(&f->params, f->path, NULL, 0), ATTN_OK);
    const attn_metadata_pair dup[] = {{"k", "1"}, {"k", "2"}};
    float *first = attn_params_data(&f->params, "in_proj_bias");
    first[0] += 1.0f;
    assert_int_equal(attn_params_save(&f->params, f->path, dup, 2), ATTN_ERR_INVALID_ARGUMENT);
    first[0] -= 1.0f;
    memset(f->params.data, 0, f->params.total * sizeof(float));
    assert_int_equal(attn_params_load(&f->params, f->path), ATTN_OK);
    assert_values_restored(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_save_load_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_converts_float_dtypes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_key_fails_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unexpected_key_fails_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misshaped_key_fails_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_integer_dtype_fails_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files_fail_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_save_keeps_old_state, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
