/* What a record holds beside the weights (attn/capture.h): q, k and d log p /
 * d weights. Their files read back bit for bit and old records still load; the
 * loaders refuse a part without its partner, a bad shape or value, a gradient
 * on a hard map and a gradient without its step. Recording them changes nothing
 * the model computes (logits, decoded tokens, weights, parameters' gradients:
 * the same bits), q and k give the weights again through the softmax, and the
 * gradient is 0 where the masks exclude a key and on every row after the
 * explained output. Gradient-weighted attention and its relevance against
 * float64 loops. The values themselves are held to PyTorch autograd by
 * tests/conformance/test_record.py. */
#define _POSIX_C_SOURCE 200809L /* unlink */

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/record_internal.h"
#include "testutil.h"

static char *temp_dir;

static int make_temp_dir(void **state)
{
    (void)state;
    temp_dir = test_temp_dir("extras");
    return 0;
}

static int remove_temp_dir(void **state)
{
    (void)state;
    test_temp_dir_remove(temp_dir);
    return 0;
}

static int below(attn_rng *rng, int n) { return (int)attn_rng_below(rng, (uint32_t)n); }

static size_t plane(const attn_attention_map *m) { return (size_t)m->heads * m->rows * m->cols; }

/* A record of two tokens each way: a soft cross map with q, k and a gradient, a
 * self map with a gradient only, and a hard map with neither. */
static void make_record(attn_record *r, attn_rng *rng)
{
    attn_record_init(r, "transformer", "test");
    const char *tokens[] = {"a", "b", "c"};
    assert_int_equal(attn_record_set_queries(r, tokens, 2), ATTN_OK);
    assert_int_equal(attn_record_set_keys(r, tokens, 3), ATTN_OK);
    float *w, *q, *k, *g;
    assert_int_equal(attn_record_add_map(r, "cross", 0, ATTN_MAP_CROSS, false, 2, 2, 3, &w),
                     ATTN_OK);
    for (int i = 0; i < 12; i++) w[i] = 1.0f / 3.0f;
    assert_int_equal(attn_record_add_qk(r, 0, 4, &q, &k), ATTN_OK);
    attn_rng_fill_uniform(rng, q, 2 * 2 * 4, -3.0f, 3.0f);
    attn_rng_fill_uniform(rng, k, 2 * 3 * 4, -3.0f, 3.0f);
    assert_int_equal(attn_record_add_gradient(r, 0, &g), ATTN_OK);
    attn_rng_fill_uniform(rng, g, 12, -1.0f, 1.0f);
    g[0] = -1e-30f;
    assert_int_equal(attn_record_add_map(r, "self", 1, ATTN_MAP_SELF, false, 1, 3, 3, &w),
                     ATTN_OK);
    for (int i = 0; i < 9; i++) w[i] = 1.0f / 3.0f;
    assert_int_equal(attn_record_add_gradient(r, 1, &g), ATTN_OK);
    attn_rng_fill_uniform(rng, g, 9, -1.0f, 1.0f);
    assert_int_equal(attn_record_add_map(r, "hard", 0, ATTN_MAP_CROSS, true, 1, 2, 3, &w),
                     ATTN_OK);
    w[0] = w[4] = 1.0f;
    r->gradient_step = 1;
}

static void expect_same_part(const float *a, const float *b, size_t n)
{
    assert_true((a == NULL) == (b == NULL));
    if (a) assert_memory_equal(a, b, n * sizeof *a);
}

static void expect_same_extras(const attn_record *a, const attn_record *b)
{
    assert_int_equal(a->n_maps, b->n_maps);
    assert_int_equal(a->gradient_step, b->gradient_step);
    for (int i = 0; i < a->n_maps; i++) {
        const attn_attention_map *x = &a->maps[i], *y = &b->maps[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->head_dim, y->head_dim);
        expect_same_part(x->weights, y->weights, plane(x));
        expect_same_part(x->q, y->q, (size_t)x->heads * x->rows * x->head_dim);
        expect_same_part(x->k, y->k, (size_t)x->heads * x->cols * x->head_dim);
        expect_same_part(x->gradient, y->gradient, plane(x));
    }
}

static void path_of(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", temp_dir, name);
}

static void test_files_round_trip(void **state)
{
    (void)state;
    attn_rng rng = test_rng(1);
    attn_record r;
    make_record(&r, &rng);
    for (int step = ATTN_EXPLAIN_ALL; step <= 1; step += 2) {
        r.gradient_step = step;
        for (int f = 0; f < 2; f++) {
            char path[128];
            path_of(path, sizeof path, f ? "extras.safetensors" : "extras.json");
            assert_int_equal(attn_record_save(&r, path), ATTN_OK);
            attn_record back;
            const attn_status s = attn_record_load(&back, path);
            if (s) print_error("%s: %s\n", path, attn_last_error());
            assert_int_equal(s, ATTN_OK);
            expect_same_extras(&r, &back);
            attn_record_free(&back);
            unlink(path);
        }
    }
    attn_record_free(&r);
}

static void test_adding_checks(void **state)
{
    (void)state;
    attn_rng rng = test_rng(2);
    attn_record r;
    make_record(&r, &rng);
    float *q, *k, *g;
    test_expect_invalid(attn_record_add_qk(&r, 0, 4, &q, &k), "has its q and k already");
    test_expect_invalid(attn_record_add_gradient(&r, 0, &g), "has its gradient already");
    test_expect_invalid(attn_record_add_gradient(&r, 2, &g), "hard attention");
    test_expect_invalid(attn_record_add_qk(&r, 3, 4, &q, &k), "map 3 is not one of the record's 3");
    test_expect_invalid(attn_record_add_qk(&r, 1, 0, &q, &k), "head_dim");
    /* saving refuses what loading would */
    char path[128];
    path_of(path, sizeof path, "bad.json");
    r.maps[0].gradient[5] = NAN;
    test_expect_invalid(attn_record_save(&r, path), "map 'cross': gradient value 5 is nan");
    r.maps[0].gradient[5] = 0.0f;
    r.maps[0].q[3] = INFINITY;
    test_expect_invalid(attn_record_save(&r, path), "map 'cross': q value 3 is inf");
    r.maps[0].q[3] = 0.0f;
    r.gradient_step = 2;
    test_expect_invalid(attn_record_save(&r, path), "gradient_step 2");
    r.gradient_step = ATTN_EXPLAIN_ALL;
    assert_int_equal(attn_record_save(&r, path), ATTN_OK);
    unlink(path);
    attn_record_free(&r);
}

/* The saved JSON record `text` with `from` replaced by `to` and its seal taken
 * out (a record without one loads unchecked), which must fail to load naming
 * `fragment`. */
static void expect_refused(const char *text, const char *from, const char *to,
                           const char *fragment)
{
    const char *at = strstr(text, from);
    assert_non_null(at);
    const size_t n = strlen(text) + strlen(to) + 1;
    char *changed = malloc(n);
    snprintf(changed, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    /* ,"attn.sealed":"crc32c","attn.crc32c":"0123abcd" */
    char *seal = strstr(changed, ",\"attn.sealed\"");
    const char *sum = strstr(changed, "\"attn.crc32c\":\"");
    assert_true(seal != NULL && sum != NULL);
    const char *after = sum + strlen("\"attn.crc32c\":\"") + 9;
    memmove(seal, after, strlen(after) + 1);
    char path[128];
    path_of(path, sizeof path, "changed.json");
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs(changed, file);
    fclose(file);
    attn_record r;
    const attn_status s = attn_record_load(&r, path);
    if (s != ATTN_ERR_FORMAT || strstr(attn_last_error(), fragment) == NULL)
        print_error("'%s' -> '%s': status %d, %s\n", from, to, (int)s, attn_last_error());
    assert_int_equal(s, ATTN_ERR_FORMAT);
    assert_non_null(strstr(attn_last_error(), fragment));
    unlink(path);
    free(changed);
}

static void test_loader_refusals(void **state)
{
    (void)state;
    attn_rng rng = test_rng(3);
    attn_record r;
    make_record(&r, &rng);
    char path[128];
    path_of(path, sizeof path, "good.json");
    assert_int_equal(attn_record_save(&r, path), ATTN_OK);
    char *text;
    size_t size;
    assert_int_equal(attn_read_file(path, 1 << 20, "a record", &text, &size), ATTN_OK);
    unlink(path);
    text[size - 1] = '\0'; /* the newline */
    expect_refused(text, "\"gradient_step\":1", "\"gradient_step\":-2", "\"gradient_step\"");
    expect_refused(text, "\"gradient_step\":1", "\"no_step\":1", "no \"gradient_step\"");
    expect_refused(text, "\"head_dim\":4", "\"head_dim\":0", "\"head_dim\" is not an integer");
    expect_refused(text, "\"head_dim\":4", "\"head_dim\":5", "\"q\" head 0 row 0 is not an array of 5 values");
    expect_refused(text, "\"head_dim\":4,", "", "needs q, k and \"head_dim\" together");
    expect_refused(text, ",\"k\":", ",\"kk\":", "needs q, k and \"head_dim\" together");
    /* the first gradient, -1e-30 */
    expect_refused(text, "\"gradient\":[[[-1e-30", "\"gradient\":[[[\"x\"", "is not a number");
    expect_refused(text, "\"gradient\":[[[-1e-30", "\"gradient\":[[[1e99", "not finite");
    expect_refused(text, "\"hard\":true,\"heads\":1,\"rows\":2,\"cols\":3",
                   "\"hard\":true,\"heads\":1,\"rows\":2,\"cols\":3,\"gradient\":[[[0,0,0],[0,0,0]]]",
                   "hard attention");
    free(text);
    attn_record_free(&r);
}

/* ---- the models --------------------------------------------------------------------- */

/* Every map's gradient: 0 where the weights are structurally 0 (masked) and on the
 * rows past `last_row`; not 0 everywhere. */
static void expect_gradient_structure(const attn_record *r, int first, int last_row,
                                      bool self_only)
{
    bool any = false;
    for (int i = first; i < r->n_maps; i++) {
        const attn_attention_map *m = &r->maps[i];
        assert_non_null(m->gradient);
        const bool rows_are_outputs = m->kind == ATTN_MAP_CROSS || m->over_queries || self_only;
        for (int h = 0; h < m->heads; h++)
            for (int row = 0; row < m->rows; row++)
                for (int j = 0; j < m->cols; j++) {
                    const size_t at = ((size_t)h * m->rows + row) * m->cols + j;
                    if (m->weights[at] == 0.0f || (rows_are_outputs && row > last_row))
                        assert_true(m->gradient[at] == 0.0f);
                    any |= m->gradient[at] != 0.0f;
                }
    }
    assert_true(any);
}

/* q, k of every map give its weights back: softmax(q k^T scale) over the keys it
 * sees (no ALiBi); scale 0 means 1 / sqrt(head_dim). */
static void expect_qk_give_weights(const attn_record *r, int first, double scale)
{
    for (int i = first; i < r->n_maps; i++) {
        const attn_attention_map *m = &r->maps[i];
        assert_non_null(m->q);
        const int hd = m->head_dim;
        double *row = calloc((size_t)m->cols, sizeof *row);
        double worst = 0.0;
        for (int h = 0; h < m->heads; h++)
            for (int a = 0; a < m->rows; a++) {
                double max = -INFINITY, sum = 0.0;
                const float *w = m->weights + ((size_t)h * m->rows + a) * m->cols;
                for (int j = 0; j < m->cols; j++) {
                    double dot = 0.0;
                    for (int d = 0; d < hd; d++)
                        dot += (double)m->q[((size_t)h * m->rows + a) * hd + d] *
                               m->k[((size_t)h * m->cols + j) * hd + d];
                    row[j] = w[j] == 0.0f ? -INFINITY : dot * (scale ? scale : 1.0 / sqrt(hd));
                    max = fmax(max, row[j]);
                }
                for (int j = 0; j < m->cols; j++) sum += row[j] = exp(row[j] - max);
                for (int j = 0; j < m->cols; j++)
                    worst = fmax(worst, fabs(row[j] / sum - w[j]));
            }
        if (worst > 1e-5) print_error("map '%s': q and k give weights off by %g\n", m->name, worst);
        assert_true(worst <= 1e-5);
        free(row);
    }
}

static void test_gpt_extras(void **state)
{
    (void)state;
    for (int variant = 0; variant < TEST_GPT_VARIANTS; variant++) {
        attn_rng rng = test_rng(500 + (uint64_t)variant);
        const attn_gpt_config cfg = test_gpt_variant(variant);
        attn_gpt *m = test_gpt_random(&rng, variant);
        attn_params *p = attn_gpt_params(m);
        attn_rng_fill_uniform(&rng, p->grad, p->total, -1.0f, 1.0f);
        float *grads = test_zeros(p->total);
        memcpy(grads, p->grad, p->total * sizeof *grads);
        const int n = 2 + below(&rng, cfg.block_size - 1), V = cfg.vocab_size;
        int32_t ids[16];
        for (int i = 0; i < n; i++) ids[i] = below(&rng, V);
        const int step = variant % 2 ? ATTN_EXPLAIN_ALL : 1 + below(&rng, n - 1);
        float *plain = test_zeros((size_t)n * V), *with = test_zeros((size_t)n * V);
        attn_record r, extras;
        attn_record_init(&r, "gpt", "text");
        attn_record_init(&extras, "gpt", "text");
        assert_int_equal(attn_gpt_record(m, ids, n, plain, &r, NULL), ATTN_OK);
        const attn_record_options opt = {.qk = true, .gradient = true, .gradient_step = step};
        assert_int_equal(attn_gpt_record(m, ids, n, with, &extras, &opt), ATTN_OK);
        /* the same bits, the parameters' gradients as they were */
        assert_memory_equal(plain, with, (size_t)n * V * sizeof *plain);
        assert_memory_equal(grads, p->grad, p->total * sizeof *grads);
        for (int l = 0; l < cfg.n_layer; l++) {
            assert_memory_equal(r.maps[l].weights, extras.maps[l].weights,
                                plane(&r.maps[l]) * sizeof(float));
            assert_null(r.maps[l].q);
            assert_null(r.maps[l].gradient);
            assert_int_equal(extras.maps[l].head_dim, cfg.n_embd / cfg.n_head);
        }
        assert_int_equal(extras.gradient_step, step);
        /* token t is predicted by row t - 1: later rows do not touch it */
        expect_gradient_structure(&extras, 0, step == ATTN_EXPLAIN_ALL ? n : step - 1, true);
        if (cfg.position != ATTN_POS_ALIBI) expect_qk_give_weights(&extras, 0, 0.0);
        /* refusals, each leaving the record as it was */
        attn_record_options bad = opt;
        bad.gradient_step = n;
        test_expect_invalid(attn_gpt_record(m, ids, n, NULL, &r, &bad), "gradient step");
        bad.gradient_step = 0;
        test_expect_invalid(attn_gpt_record(m, ids, n, NULL, &r, &bad), "gradient step 0");
        test_expect_invalid(attn_gpt_record(m, ids, 1, NULL, &r, &opt), "has none");
        assert_int_equal(r.n_maps, cfg.n_layer);
        attn_record_free(&r);
        attn_record_free(&extras);
        free(plain), free(with), free(grads);
        attn_gpt_free(m);
    }
}

/* One source decoded with and without q, k and gradients (as the family has
 * them): the same output, weights and parameters' gradients; the gradient 0 past
 * the explained step (and on the encoder's maps nowhere); q and k giving the
 * weights back (scale 0: 1 / sqrt(head_dim)). */
static void check_seq2seq_extras(attn_seq2seq *m, attn_rng *rng, bool qk, double scale)
{
    attn_params *p = attn_seq2seq_params(m);
    float *grads = test_zeros(p->total);
    const int S = 8, T = 6, src_len = 1 + below(rng, S);
    int32_t src[8] = {0}, out[2][6], len[2];
    for (int j = 0; j < src_len; j++) src[j] = ATTN_TOKEN_FIRST_CHAR + below(rng, 6);
    const attn_decode_options opt = {.beam = 1, .max_len = T};
    attn_record r, extras;
    attn_record_init(&r, "", "test");
    attn_record_init(&extras, "", "test");
    assert_int_equal(attn_seq2seq_decode_record(m, out[0], &len[0], src, S, src_len, &opt, &r,
                                                NULL),
                     ATTN_OK);
    const int steps = len[0] < T ? len[0] + 1 : T;
    const int step = below(rng, 2) ? ATTN_EXPLAIN_ALL : below(rng, steps);
    const attn_record_options x = {.qk = qk, .gradient = true, .gradient_step = step};
    const attn_status s =
        attn_seq2seq_decode_record(m, out[1], &len[1], src, S, src_len, &opt, &extras, &x);
    if (s) print_error("%s\n", attn_last_error());
    assert_int_equal(s, ATTN_OK);
    assert_int_equal(len[1], len[0]);
    assert_memory_equal(out[1], out[0], (size_t)len[0] * sizeof(int32_t));
    assert_memory_equal(grads, p->grad, p->total * sizeof *grads);
    for (int i = 0; i < r.n_maps; i++)
        assert_memory_equal(r.maps[i].weights, extras.maps[i].weights,
                            plane(&r.maps[i]) * sizeof(float));
    /* output step t depends on the decoder's rows up to t only; the encoder's
     * rows (over the source) all feed it */
    expect_gradient_structure(&extras, 0, step == ATTN_EXPLAIN_ALL ? T : step, false);
    if (qk) expect_qk_give_weights(&extras, 0, scale);
    attn_record_options bad = x;
    bad.gradient_step = steps;
    if (steps < T)
        test_expect_invalid(
            attn_seq2seq_decode_record(m, out[1], &len[1], src, S, src_len, &opt, &r, &bad),
            "past the output's");
    bad.gradient_step = T;
    test_expect_invalid(
        attn_seq2seq_decode_record(m, out[1], &len[1], src, S, src_len, &opt, &r, &bad),
        "not an output step");
    attn_record_free(&r);
    attn_record_free(&extras);
    free(grads);
}

static void test_seq2seq_extras(void **state)
{
    (void)state;
    static const struct {
        attn_seq2seq_arch arch;
        bool qk;
        double scale; /* of q . k */
    } models[] = {{ATTN_S2S_TRANSFORMER, true, 0.0},
                  {ATTN_S2S_GRU_BAHDANAU, false, 0.0},
                  {ATTN_S2S_LSTM_LUONG_DOT, true, 1.0},
                  {ATTN_S2S_LSTM_LUONG_GENERAL, true, 1.0}};
    for (int c = 0; c < 16; c++) {
        attn_rng rng = test_rng(600 + (uint64_t)c);
        attn_seq2seq *m = test_seq2seq_random(&rng, models[c % 4].arch, ATTN_ATTEND_SOFT, 0.1f);
        check_seq2seq_extras(m, &rng, models[c % 4].qk, models[c % 4].scale);
        attn_seq2seq_free(m);
    }
    /* what a family does not have: Bahdanau's q and k, hard attention's gradient */
    attn_rng rng = test_rng(700);
    int32_t src[8] = {3, 4, 5}, out[6], len;
    const attn_decode_options opt = {.beam = 1, .max_len = 6};
    static const struct {
        attn_seq2seq_arch arch;
        attn_attention_kind kind;
        attn_record_options options;
        const char *fragment;
    } refused[] = {
        {ATTN_S2S_GRU_BAHDANAU, ATTN_ATTEND_SOFT, {.qk = true}, "records no q and k"},
        {ATTN_S2S_LSTM_LUONG_DOT, ATTN_ATTEND_HARD_GUMBEL, {.gradient = true},
         "no gradient to record"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        attn_seq2seq *m = test_seq2seq_random(&rng, refused[i].arch, refused[i].kind, 0.1f);
        attn_record r;
        attn_record_init(&r, "", "test");
        const attn_status s =
            attn_seq2seq_decode_record(m, out, &len, src, 8, 3, &opt, &r, &refused[i].options);
        assert_int_equal(s, ATTN_ERR_UNSUPPORTED);
        assert_non_null(strstr(attn_last_error(), refused[i].fragment));
        assert_int_equal(r.n_maps, 0);
        attn_seq2seq_free(m);
    }
}

/* ---- analysis ------------------------------------------------------------------------- */

static void test_gradient_weighted(void **state)
{
    (void)state;
    attn_rng rng = test_rng(800);
    enum { L = 3, N = 5, H = 2 };
    attn_record r;
    attn_record_init(&r, "gpt", "text");
    const char *tokens[N] = {"a", "b", "c", "d", "e"};
    assert_int_equal(attn_record_set_queries(&r, tokens, N), ATTN_OK);
    assert_int_equal(attn_record_set_keys(&r, tokens, N), ATTN_OK);
    const attn_attention_map *layers[L];
    for (int l = 0; l < L; l++) {
        float *w, *g;
        assert_int_equal(attn_record_add_map(&r, "h.*", l, ATTN_MAP_SELF, false, H, N, N, &w),
                         ATTN_OK);
        attn_rng_fill_uniform(&rng, w, H * N * N, 0.0f, 0.4f);
        assert_int_equal(attn_record_add_gradient(&r, l, &g), ATTN_OK);
        attn_rng_fill_uniform(&rng, g, H * N * N, -1.0f, 1.0f);
        layers[l] = &r.maps[l];
    }
    float got[N * N];
    double want[N * N], a[L][N * N];
    for (int l = 0; l < L; l++) {
        assert_int_equal(attn_map_gradient_weighted(layers[l], got), ATTN_OK);
        for (int e = 0; e < N * N; e++) {
            double sum = 0.0;
            for (int h = 0; h < H; h++)
                sum += fmax(0.0, (double)layers[l]->gradient[h * N * N + e] *
                                     layers[l]->weights[h * N * N + e]);
            a[l][e] = sum / H;
            assert_true(fabs(got[e] - a[l][e]) <= 1e-6 * fmax(1.0, a[l][e]));
        }
    }
    /* R = I, R <- R + A_l R */
    for (int e = 0; e < N * N; e++) want[e] = e % (N + 1) == 0;
    for (int l = 0; l < L; l++) {
        double next[N * N];
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                double sum = want[i * N + j];
                for (int k = 0; k < N; k++) sum += a[l][i * N + k] * want[k * N + j];
                next[i * N + j] = sum;
            }
        memcpy(want, next, sizeof want);
    }
    assert_int_equal(attn_gradient_rollout(layers, L, got), ATTN_OK);
    const double err = test_rel_error_f64(got, want, N * N);
    if (err > 1e-6) print_error("relevance off by %g\n", err);
    assert_true(err <= 1e-6);
    /* a map without a gradient */
    free(r.maps[1].gradient);
    r.maps[1].gradient = NULL;
    test_expect_invalid(attn_map_gradient_weighted(layers[1], got), "map 'h.1' has no gradient");
    test_expect_invalid(attn_gradient_rollout(layers, L, got), "map 'h.1' has no gradient");
    attn_record_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_round_trip), cmocka_unit_test(test_adding_checks),
        cmocka_unit_test(test_loader_refusals),  cmocka_unit_test(test_gpt_extras),
        cmocka_unit_test(test_seq2seq_extras),   cmocka_unit_test(test_gradient_weighted),
    };
    return cmocka_run_group_tests(tests, make_temp_dir, remove_temp_dir);
}
