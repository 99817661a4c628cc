/* Interventions on attention weights and on a model's inputs (attn/attention.h,
 * attn/capture.h): a permuted row holds the same weights on the same keys it
 * sees, each permutation of three keys about equally often, the same for a seed;
 * a uniform row is 1 / (keys seen); the masks' cells and the other heads stay as
 * they were. The edited SDPA and soft attention multiply the values by the
 * edited weights (against float64 loops). In the models: no intervention is
 * reproducible, permuting or making uniform a row that is already uniform or
 * has one key changes nothing, erasure moves a GPT's rows as documented, and bad
 * interventions are refused. Kendall's tau-b on known rankings with ties. The
 * distributions themselves are held to PyTorch by tests/conformance/
 * test_record.py. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

static int below(attn_rng *rng, int n) { return (int)attn_rng_below(rng, (uint32_t)n); }

static int compare_floats(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The weights of w at seen (n_seen of them), sorted: (n_seen). */
static void seen_sorted(float *out, const float *w, const int *seen, int n_seen)
{
    for (int c = 0; c < n_seen; c++) out[c] = w[seen[c]];
    qsort(out, (size_t)n_seen, sizeof *out, compare_floats);
}

static void test_edit_rows(void **state)
{
    (void)state;
    attn_rng rng = test_rng(1);
    enum { N = 9 };
    for (int c = 0; c < 200; c++) {
        float w[N], edited[N], a[N], b[N];
        int seen[N], n_seen = 0;
        for (int j = 0; j < N; j++) {
            w[j] = 0.0f;
            if (below(&rng, 3) != 0) seen[n_seen++] = j;
        }
        for (int s = 0; s < n_seen; s++) w[seen[s]] = attn_rng_uniform(&rng);
        const attn_weights_edit permute = {ATTN_EDIT_PERMUTE, -1, (uint64_t)c, 0};
        memcpy(edited, w, sizeof w);
        attn_weights_edit_row(edited, seen, n_seen, &permute, c);
        /* the same weights on the same keys; a key not seen keeps its 0 */
        seen_sorted(a, w, seen, n_seen);
        seen_sorted(b, edited, seen, n_seen);
        assert_memory_equal(a, b, (size_t)n_seen * sizeof *a);
        for (int j = 0; j < N; j++)
            if (w[j] == 0.0f) assert_true(edited[j] == 0.0f);
        if (n_seen == 1) assert_memory_equal(edited, w, sizeof w);
        /* the same seed and row, the same permutation */
        float again[N];
        memcpy(again, w, sizeof w);
        attn_weights_edit_row(again, seen, n_seen, &permute, c);
        assert_memory_equal(again, edited, sizeof w);
        const attn_weights_edit uniform = {ATTN_EDIT_UNIFORM, -1, 0, 0};
        memcpy(edited, w, sizeof w);
        attn_weights_edit_row(edited, seen, n_seen, &uniform, c);
        for (int j = 0, s = 0; j < N; j++) {
            const bool is_seen = s < n_seen && seen[s] == j;
            s += is_seen;
            assert_true(edited[j] == (is_seen ? 1.0f / (float)n_seen : 0.0f));
        }
    }
    /* Fisher-Yates draws each of the 6 orders of 3 keys with probability 1/6:
     * 6000 rows give each 1000 +- 5 standard deviations (29) */
    int counts[6] = {0};
    const int seen[3] = {0, 1, 2};
    const attn_weights_edit permute = {ATTN_EDIT_PERMUTE, -1, 77, 0};
    for (int row = 0; row < 6000; row++) {
        float w[3] = {0.0f, 1.0f, 2.0f};
        attn_weights_edit_row(w, seen, 3, &permute, row);
        const int first = (int)w[0], second = (int)w[1];
        counts[first * 2 + (second > first ? second - 1 : second)]++;
    }
    for (int k = 0; k < 6; k++) assert_true(abs(counts[k] - 1000) < 5 * 29);
    const attn_weights_edit bad_head = {ATTN_EDIT_UNIFORM, 2, 0, 0};
    test_expect_invalid(attn_weights_edit_check(&bad_head, 2), "edited head 2");
    const attn_weights_edit bad_kind = {(attn_edit_kind)7, -1, 0, 0};
    test_expect_invalid(attn_weights_edit_check(&bad_kind, 2), "edit kind 7");
}

/* SDPA with causal masking and a padding mask, one head edited or all: the
 * edited weights are the reference's permuted or made uniform on the keys each
 * row sees, the output is them times v (float64), and the other heads keep the
 * reference's bits. */
static void test_sdpa_edited(void **state)
{
    (void)state;
    for (int c = 0; c < 24; c++) {
        attn_rng rng = test_rng(100 + (uint64_t)c);
        const int B = 1 + below(&rng, 2), H = 1 + below(&rng, 3), L = 2 + below(&rng, 6), D = 4;
        const size_t nq = (size_t)B * H * L * D, nw = (size_t)B * H * L * L;
        float *q = test_random(&rng, nq, -2, 2), *k = test_random(&rng, nq, -2, 2),
              *v = test_random(&rng, nq, -1, 1);
        float *pad = test_zeros((size_t)B * L);
        for (int b = 0; b < B; b++) pad[(size_t)b * L + L - 1] = b == 1 ? -INFINITY : 0.0f;
        attn_mask mask;
        const int64_t shape[4] = {B, 1, 1, L}, target[4] = {B, H, L, L};
        assert_int_equal(attn_mask_init(&mask, ATTN_MASK_FLOAT, pad, 4, shape, target), ATTN_OK);
        const attn_sdpa_config cfg = {.batch = B, .heads = H, .len_q = L, .len_k = L,
                                      .dim_qk = D, .dim_v = D, .causal = true,
                                      .key_padding_mask = &mask};
        float *out = test_zeros(nq), *lse = test_zeros((size_t)B * H * L), *w = test_zeros(nw);
        float *eout = test_zeros(nq), *lse_edited = test_zeros((size_t)B * H * L), *ew = test_zeros(nw);
        assert_int_equal(attn_sdpa_reference_forward(out, lse, w, q, k, v, &cfg), ATTN_OK);
        const attn_weights_edit edit = {c % 2 ? ATTN_EDIT_PERMUTE : ATTN_EDIT_UNIFORM,
                                        below(&rng, H + 1) - 1, (uint64_t)c, 0};
        assert_int_equal(attn_sdpa_edited_forward(eout, lse_edited, ew, q, k, v, &cfg, &edit), ATTN_OK);
        assert_memory_equal(lse, lse_edited, (size_t)B * H * L * sizeof *lse);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < L; i++) {
                    const size_t row = ((size_t)(b * H + h) * L + i);
                    const float *wr = w + row * L, *er = ew + row * L;
                    if (edit.head >= 0 && h != edit.head) {
                        assert_memory_equal(wr, er, (size_t)L * sizeof *wr);
                        assert_memory_equal(out + row * D, eout + row * D, D * sizeof *out);
                        continue;
                    }
                    int seen[8], n_seen = 0;
                    for (int j = 0; j <= i; j++)
                        if (!(b == 1 && j == L - 1)) seen[n_seen++] = j;
                    for (int j = 0; j < L; j++) {
                        bool is_seen = false;
                        for (int s = 0; s < n_seen; s++) is_seen |= seen[s] == j;
                        if (!is_seen) assert_true(er[j] == 0.0f);
                        else if (edit.kind == ATTN_EDIT_UNIFORM)
                            assert_true(er[j] == 1.0f / (float)n_seen);
                    }
                    float a[8], e[8];
                    seen_sorted(a, wr, seen, n_seen);
                    seen_sorted(e, er, seen, n_seen);
                    if (edit.kind == ATTN_EDIT_PERMUTE)
                        assert_memory_equal(a, e, (size_t)n_seen * sizeof *a);
                    for (int d = 0; d < D; d++) {
                        double want = 0.0;
                        for (int j = 0; j < L; j++)
                            want += (double)er[j] * v[((size_t)(b * H + h) * L + j) * D + d];
                        assert_true(fabs(eout[row * D + d] - want) <= 1e-6 * (1 + fabs(want)));
                    }
                }
        const attn_weights_edit bad = {ATTN_EDIT_UNIFORM, H, 0, 0};
        test_expect_invalid(attn_sdpa_edited_forward(eout, lse_edited, ew, q, k, v, &cfg, &bad),
                            "edited head");
        free(q), free(k), free(v), free(pad), free(out), free(lse), free(w);
        free(eout), free(lse_edited), free(ew);
    }
}

/* Soft attention over padded sources: uniform rows give the mean of the values
 * the row sees; a permutation keeps the row's weights. */
static void test_soft_attention_edited(void **state)
{
    (void)state;
    attn_rng rng = test_rng(200);
    const int B = 3, Lq = 2, Lk = 5, Dv = 3;
    float *scores = test_random(&rng, (size_t)B * Lq * Lk, -3, 3);
    float *values = test_random(&rng, (size_t)B * Lk * Dv, -1, 1);
    float pad[3 * 5] = {0};
    const int lengths[3] = {5, 1, 3};
    for (int b = 0; b < B; b++)
        for (int j = lengths[b]; j < Lk; j++) pad[b * Lk + j] = -INFINITY;
    attn_mask mask;
    const int64_t shape[4] = {B, 1, 1, Lk}, target[4] = {B, 1, Lq, Lk};
    assert_int_equal(attn_mask_init(&mask, ATTN_MASK_FLOAT, pad, 4, shape, target), ATTN_OK);
    float ctx[3 * 2 * 3], w[3 * 2 * 5], ectx[3 * 2 * 3], ew[3 * 2 * 5];
    assert_int_equal(
        attn_soft_attention_forward(ctx, w, scores, &mask, values, B, Lq, Lk, Dv), ATTN_OK);
    const attn_weights_edit uniform = {ATTN_EDIT_UNIFORM, -1, 0, 0};
    assert_int_equal(attn_soft_attention_edited_forward(ectx, ew, scores, &mask, values, B, Lq, Lk,
                                                        Dv, &uniform),
                     ATTN_OK);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < Lq; i++)
            for (int d = 0; d < Dv; d++) {
                double mean = 0.0;
                for (int j = 0; j < lengths[b]; j++)
                    mean += values[((size_t)b * Lk + j) * Dv + d] / (double)lengths[b];
                assert_true(fabs(ectx[((size_t)b * Lq + i) * Dv + d] - mean) <= 1e-6);
            }
    const attn_weights_edit permute = {ATTN_EDIT_PERMUTE, 0, 9, 0};
    assert_int_equal(attn_soft_attention_edited_forward(ectx, ew, scores, &mask, values, B, Lq, Lk,
                                                        Dv, &permute),
                     ATTN_OK);
    /* source 1 has one key: its rows, weights and context, are the plain ones */
    assert_memory_equal(ew + Lq * Lk, w + Lq * Lk, (size_t)Lq * Lk * sizeof *w);
    assert_memory_equal(ectx + Lq * Dv, ctx + Lq * Dv, (size_t)Lq * Dv * sizeof *ctx);
    for (int r = 0; r < B * Lq; r++) {
        float a[5], e[5];
        memcpy(a, w + r * Lk, sizeof a);
        memcpy(e, ew + r * Lk, sizeof e);
        qsort(a, 5, sizeof *a, compare_floats);
        qsort(e, 5, sizeof *e, compare_floats);
        assert_memory_equal(a, e, sizeof a);
    }
    const attn_weights_edit bad = {ATTN_EDIT_UNIFORM, 1, 0, 0};
    test_expect_invalid(attn_soft_attention_edited_forward(ectx, ew, scores, &mask, values, B, Lq,
                                                           Lk, Dv, &bad),
                        "edited head 1");
    free(scores), free(values);
}

static double max_difference(const float *a, const float *b, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]));
    return worst;
}

/* A GPT whose queries are zero attends uniformly over the tokens before each
 * query (learned or sinusoidal positions: nothing else in the score): making a
 * layer uniform or permuting it changes nothing beyond the reference kernel's
 * rounding. Erasure: row t is the erased pass's row t - 1 from the erased token
 * on, and row 0 without token 0 is zeros. */
static void test_gpt_interventions(void **state)
{
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        attn_rng rng = test_rng(300 + (uint64_t)variant);
        const attn_gpt_config cfg = test_gpt_variant(variant);
        attn_gpt *m = test_gpt_random(&rng, variant);
        const int n = 6, V = cfg.vocab_size, C = cfg.n_embd;
        int32_t ids[6];
        for (int i = 0; i < n; i++) ids[i] = below(&rng, V);
        float *base = test_zeros((size_t)n * V), *probs = test_zeros((size_t)n * V);
        float *kept = test_zeros((size_t)n * V);
        assert_int_equal(attn_gpt_intervene(m, base, ids, n, NULL), ATTN_OK);
        const attn_intervention none = {.kind = ATTN_INTERVENE_NONE};
        assert_int_equal(attn_gpt_intervene(m, probs, ids, n, &none), ATTN_OK);
        assert_memory_equal(base, probs, (size_t)(n - 1) * V * sizeof *base);
        /* erasing token 2: rows 0, 1 the erased pass's 0, 1; rows 2 .. its 1 .. */
        const attn_intervention erase = {.kind = ATTN_INTERVENE_ERASE, .token = 2};
        int32_t rest[5] = {ids[0], ids[1], ids[3], ids[4], ids[5]};
        assert_int_equal(attn_gpt_intervene(m, probs, ids, n, &erase), ATTN_OK);
        assert_int_equal(attn_gpt_intervene(m, kept, rest, n - 1, NULL), ATTN_OK);
        assert_memory_equal(probs, kept, 2 * (size_t)V * sizeof *probs);
        assert_memory_equal(probs + 2 * (size_t)V, kept + (size_t)V, 2 * (size_t)V * sizeof *probs);
        const attn_intervention first = {.kind = ATTN_INTERVENE_ERASE, .token = 0};
        assert_int_equal(attn_gpt_intervene(m, probs, ids, n, &first), ATTN_OK);
        for (int v = 0; v < V; v++) assert_true(probs[v] == 0.0f);
        /* zero queries: uniform causal rows */
        attn_params *p = attn_gpt_params(m);
        for (int l = 0; l < cfg.n_layer; l++) {
            char name[64];
            snprintf(name, sizeof name, "transformer.h.%d.attn.c_attn.weight", l);
            memset(attn_params_data(p, name), 0, (size_t)C * C * sizeof(float));
            snprintf(name, sizeof name, "transformer.h.%d.attn.c_attn.bias", l);
            if (cfg.bias) memset(attn_params_data(p, name), 0, (size_t)C * sizeof(float));
        }
        assert_int_equal(attn_gpt_intervene(m, base, ids, n, NULL), ATTN_OK);
        for (int k = 0; k < 2 * cfg.n_layer; k++) {
            const attn_intervention iv = {.kind = k % 2 ? ATTN_INTERVENE_PERMUTE
                                                        : ATTN_INTERVENE_UNIFORM,
                                          .map = k / 2, .head = -1, .seed = 5};
            assert_int_equal(attn_gpt_intervene(m, probs, ids, n, &iv), ATTN_OK);
            assert_true(max_difference(base, probs, (size_t)(n - 1) * V) < 1e-6);
        }
        const attn_intervention bad_map = {.kind = ATTN_INTERVENE_UNIFORM, .map = cfg.n_layer};
        test_expect_invalid(attn_gpt_intervene(m, probs, ids, n, &bad_map), "intervention map");
        const attn_intervention bad_head = {.kind = ATTN_INTERVENE_PERMUTE,
                                            .head = cfg.n_head};
        test_expect_invalid(attn_gpt_intervene(m, probs, ids, n, &bad_head), "edited head");
        const attn_intervention bad_token = {.kind = ATTN_INTERVENE_ERASE, .token = n};
        test_expect_invalid(attn_gpt_intervene(m, probs, ids, n, &bad_token), "erased token");
        test_expect_invalid(attn_gpt_intervene(m, probs, ids, 1, NULL), "context tokens");
        free(base), free(probs), free(kept);
        attn_gpt_free(m);
    }
}

/* A source of one character: every cross-attention row has one key, so editing
 * it changes nothing (bit for bit in the RNN decoders, whose edited soft
 * attention is the plain one plus the edit; the transformer's edited site runs
 * the reference attention instead of the fused kernel). Erasing a character is
 * the pass over the source without it. */
static void test_seq2seq_interventions(void **state)
{
    (void)state;
    static const attn_seq2seq_arch archs[] = {ATTN_S2S_GRU_BAHDANAU, ATTN_S2S_LSTM_LUONG_GENERAL,
                                              ATTN_S2S_TRANSFORMER};
    for (int c = 0; c < 3; c++) {
        attn_rng rng = test_rng(400 + (uint64_t)c);
        attn_seq2seq *m = test_seq2seq_random(&rng, archs[c], ATTN_ATTEND_SOFT, 0.1f);
        const bool tf = archs[c] == ATTN_S2S_TRANSFORMER;
        /* the first cross-attention: after the encoder's layers and a self-attention */
        const int steps = 4, cross = tf ? attn_seq2seq_get_config(m)->enc_layers + 1 : 0;
        const int32_t one[1] = {5}, src[4] = {3, 4, 5, 6}, rest[3] = {3, 5, 6},
                      outputs[4] = {4, 3, 5, ATTN_TOKEN_EOS};
        float base[4 * 8], probs[4 * 8];
        assert_int_equal(attn_seq2seq_intervene(m, base, one, 1, outputs, steps, NULL), ATTN_OK);
        for (int kind = 0; kind < 2; kind++) {
            const attn_intervention iv = {.kind = kind ? ATTN_INTERVENE_PERMUTE
                                                       : ATTN_INTERVENE_UNIFORM,
                                          .map = cross, .head = -1, .seed = 3};
            assert_int_equal(attn_seq2seq_intervene(m, probs, one, 1, outputs, steps, &iv),
                             ATTN_OK);
            if (tf) assert_true(max_difference(base, probs, sizeof base / sizeof *base) < 1e-6);
            else assert_memory_equal(base, probs, sizeof base);
        }
        const attn_intervention erase = {.kind = ATTN_INTERVENE_ERASE, .token = 1};
        assert_int_equal(attn_seq2seq_intervene(m, probs, src, 4, outputs, steps, &erase),
                         ATTN_OK);
        assert_int_equal(attn_seq2seq_intervene(m, base, rest, 3, outputs, steps, NULL), ATTN_OK);
        assert_memory_equal(base, probs, sizeof base);
        test_expect_invalid(attn_seq2seq_intervene(m, probs, one, 1, outputs, steps, &erase),
                            "erased token 1");
        const attn_intervention bad_map = {.kind = ATTN_INTERVENE_UNIFORM, .map = 99};
        test_expect_invalid(attn_seq2seq_intervene(m, probs, src, 4, outputs, steps, &bad_map),
                            "intervention map 99");
        const int32_t bad_out[4] = {4, 3, 99, 2};
        test_expect_invalid(attn_seq2seq_intervene(m, probs, src, 4, bad_out, steps, NULL),
                            "output id 99");
        attn_seq2seq_free(m);
    }
    attn_rng rng = test_rng(500);
    attn_seq2seq *hard = test_seq2seq_random(&rng, ATTN_S2S_GRU_BAHDANAU, ATTN_ATTEND_HARD_GUMBEL, 0.1f);
    const int32_t src[2] = {3, 4}, outputs[2] = {4, ATTN_TOKEN_EOS};
    float probs[2 * 8];
    const attn_intervention iv = {.kind = ATTN_INTERVENE_UNIFORM, .head = -1};
    assert_int_equal(attn_seq2seq_intervene(hard, probs, src, 2, outputs, 2, &iv),
                     ATTN_ERR_UNSUPPORTED);
    assert_non_null(strstr(attn_last_error(), "hard attention"));
    attn_seq2seq_free(hard);
}

static void test_kendall_tau(void **state)
{
    (void)state;
    const double up[5] = {1, 2, 3, 4, 5}, down[5] = {5, 4, 3, 2, 1}, flat[5] = {2, 2, 2, 2, 2};
    double tau;
    assert_int_equal(attn_kendall_tau_b(up, up, 5, &tau), ATTN_OK);
    assert_true(tau == 1.0);
    assert_int_equal(attn_kendall_tau_b(up, down, 5, &tau), ATTN_OK);
    assert_true(tau == -1.0);
    assert_int_equal(attn_kendall_tau_b(up, flat, 5, &tau), ATTN_OK);
    assert_true(isnan(tau));
    assert_int_equal(attn_kendall_tau_b(up, up, 1, &tau), ATTN_OK);
    assert_true(isnan(tau));
    /* ties in both: C = 4, D = 0, 5 pairs untied in each: 4 / 5 (scipy's 0.8) */
    const double x[4] = {1, 2, 2, 3}, y[4] = {1, 2, 3, 3};
    assert_int_equal(attn_kendall_tau_b(x, y, 4, &tau), ATTN_OK);
    assert_true(fabs(tau - 0.8) < 1e-15);
    /* C = 4, D = 1, untied 5 in x and 6 in y: 3 / sqrt(30) (scipy: 0.5477225575051662) */
    const double a[4] = {1, 1, 2, 3}, b[4] = {2, 1, 4, 3};
    assert_int_equal(attn_kendall_tau_b(a, b, 4, &tau), ATTN_OK);
    assert_true(fabs(tau - 3.0 / sqrt(30.0)) < 1e-15);
    const double bad[2] = {1, NAN};
    test_expect_invalid(attn_kendall_tau_b(up, bad, 2, &tau), "not finite");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edit_rows),
        cmocka_unit_test(test_sdpa_edited),
        cmocka_unit_test(test_soft_attention_edited),
        cmocka_unit_test(test_gpt_interventions),
        cmocka_unit_test(test_seq2seq_interventions),
        cmocka_unit_test(test_kendall_tau),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
