#define _POSIX_C_SOURCE 200809L /* clock_gettime, mkdtemp */
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t test_seed(void)
{
    static uint64_t seed;
    static int ready;
    if (!ready) {
        const char *env = getenv("ATTN_TEST_SEED");
        if (env != NULL && *env != '\0') {
            seed = strtoull(env, NULL, 10);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec;
        }
        ready = 1;
        printf("test seed %" PRIu64 " (repeat with ATTN_TEST_SEED=%" PRIu64 ")\n", seed, seed);
    }
    return seed;
}

attn_rng test_rng(uint64_t case_number)
{
    attn_rng rng;
    attn_rng_init(&rng, test_seed() ^ (case_number * 0x9E3779B97F4A7C15ull));
    return rng;
}

float *test_random(attn_rng *rng, size_t n, float lo, float hi)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (x == NULL) abort();
    attn_rng_fill_uniform(rng, x, n, lo, hi);
    return x;
}

float *test_zeros(size_t n)
{
    float *x = calloc(n ? n : 1, sizeof *x);
    if (x == NULL) abort();
    return x;
}

double test_rel_error(const float *a, const float *b, size_t n)
{
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > diff || isnan(d)) diff = d;
        if (fabs((double)b[i]) > scale) scale = fabs((double)b[i]);
    }
    if (isnan(diff)) return INFINITY;
    if (scale == 0.0) return diff == 0.0 ? 0.0 : INFINITY;
    return diff / scale;
}

double test_rel_error_f64(const float *a, const double *b, size_t n)
{
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > diff || isnan(d)) diff = d;
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    if (isnan(diff)) return INFINITY;
    if (scale == 0.0) return diff == 0.0 ? 0.0 : INFINITY;
    return diff / scale;
}

double test_dot(const float *out, const float *probe, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += (double)out[i] * (double)probe[i];
    return sum;
}

double test_gradcheck(float *x, size_t n, const float *analytic, double (*loss)(void *ctx),
                      void *ctx, float h)
{
    double worst = 0.0, scale = 1e-6;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)analytic[i]) > scale) scale = fabs((double)analytic[i]);
    for (size_t i = 0; i < n; i++) {
        float saved = x[i];
        double l[4];
        const float steps[4] = {2.0f * h, h, -h, -2.0f * h};
        for (int s = 0; s < 4; s++) {
            x[i] = saved + steps[s];
            l[s] = loss(ctx);
        }
        x[i] = saved;
        double fd = (-l[0] + 8.0 * l[1] - 8.0 * l[2] + l[3]) / (12.0 * (double)h);
        double err = fabs(fd - (double)analytic[i]);
        if (err > worst || isnan(err)) worst = isnan(err) ? INFINITY : err;
    }
    return worst / scale;
}

void test_expect_invalid(attn_status status, const char *fragment)
{
    if (status != ATTN_ERR_INVALID_ARGUMENT || strstr(attn_last_error(), fragment) == NULL)
        print_error("expected an error naming '%s', got status %d: '%s'\n", fragment,
                    (int)status, attn_last_error());
    assert_int_equal(status, ATTN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(attn_last_error(), fragment));
}

void test_expect_param(attn_params *p, const char *name, int64_t rows, int64_t cols)
{
    const attn_param *it = attn_params_find(p, name);
    if (it == NULL) print_error("no parameter '%s'\n", name);
    assert_non_null(it);
    assert_int_equal(it->ndim, cols ? 2 : 1);
    assert_int_equal(it->shape[0], rows);
    if (cols) assert_int_equal(it->shape[1], cols);
}

int64_t test_params_numel(const attn_params *p)
{
    int64_t n = 0;
    for (int i = 0; i < p->count; i++) n += (int64_t)p->items[i].numel;
    return n;
}

attn_gpt_config test_gpt_variant(int variant)
{
    attn_gpt_config c = attn_gpt_defaults();
    c.vocab_size = 11;
    c.block_size = 12;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_embd = 16;
    switch (variant) {
    case 0: break;
    case 1: c.position = ATTN_POS_SINUSOIDAL; c.n_kv_head = 2; break;
    case 2: c.position = ATTN_POS_ROPE; c.n_kv_head = 1; c.tie_weights = false; break;
    case 3: c.position = ATTN_POS_ALIBI; c.window = 3; c.bias = false; break;
    case 4: c.position = ATTN_POS_ROPE; c.n_head = 2; c.window = 4; c.n_kv_head = 2; break;
    default: c.position = ATTN_POS_ALIBI; c.n_head = 3; c.n_embd = 18; c.n_kv_head = 1; break;
    }
    return c;
}

attn_gpt *test_gpt_random_config(attn_rng *rng, const attn_gpt_config *cfg)
{
    attn_gpt *m;
    assert_int_equal(attn_gpt_create(&m, cfg, rng->seed), ATTN_OK);
    attn_params *p = attn_gpt_params(m);
    attn_rng_fill_uniform(rng, p->data, p->total, -0.5f, 0.5f);
    return m;
}

attn_gpt *test_gpt_random(attn_rng *rng, int variant)
{
    const attn_gpt_config cfg = test_gpt_variant(variant);
    return test_gpt_random_config(rng, &cfg);
}

attn_seq2seq *test_seq2seq_random(attn_rng *rng, attn_seq2seq_arch arch, attn_attention_kind kind,
                                  float dropout)
{
    attn_seq2seq_config cfg = attn_seq2seq_defaults(arch, kind);
    cfg.src_vocab = 9;
    cfg.tgt_vocab = 8;
    cfg.max_src_len = 9;
    cfg.max_tgt_len = 7;
    cfg.embed_dim = 6;
    cfg.hidden_dim = 8;
    cfg.enc_layers = 1 + (int)attn_rng_below(rng, 2);
    cfg.dec_layers = 1 + (int)attn_rng_below(rng, 2);
    cfg.heads = 2;
    cfg.ff_dim = 12;
    cfg.dropout = dropout;
    attn_seq2seq *m;
    assert_int_equal(attn_seq2seq_create(&m, &cfg, attn_rng_u32(rng)), ATTN_OK);
    attn_params *p = attn_seq2seq_params(m);
    attn_rng_fill_uniform(rng, p->data, p->total, -1.0f, 1.0f);
    return m;
}

char *test_temp_dir(const char *name)
{
    char *dir = malloc(strlen(name) + sizeof "/tmp/attn_test__XXXXXX");
    assert_non_null(dir);
    sprintf(dir, "/tmp/attn_test_%s_XXXXXX", name);
    assert_non_null(mkdtemp(dir));
    return dir;
}

void test_temp_dir_remove(char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            remove(path);
        }
        closedir(d);
    }
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}
