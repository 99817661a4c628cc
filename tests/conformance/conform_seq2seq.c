/* Conformance kind "seq2seq": an RNN attn_seq2seq model with a PyTorch state_dict
 * (test_seq2seq.py transcribes the module): the teacher-forced loss, logits and
 * parameter gradients of one batch, and its greedy decoding with attention. */
#include <stdlib.h>
#include <string.h>

#include "conform.h"
#include "conform_kinds.h"
#include "models/seq2seq_rnn.h"

static attn_seq2seq *model;

static void free_model(void) { attn_seq2seq_free(model); }

static float *as_float(const int32_t *x, size_t n)
{
    float *f = alloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}

attn_seq2seq_config conform_seq2seq_rnn_config(void)
{
    attn_seq2seq_config cfg = {0};
    check(attn_seq2seq_arch_parse(&cfg.arch, meta_string("arch")), "arch");
    cfg.attention = ATTN_ATTEND_SOFT;
    cfg.src_vocab = meta_int("src_vocab");
    cfg.tgt_vocab = meta_int("tgt_vocab");
    cfg.embed_dim = meta_int("embed_dim");
    cfg.hidden_dim = meta_int("hidden_dim");
    cfg.enc_layers = meta_int("enc_layers");
    cfg.dec_layers = meta_int("dec_layers");
    cfg.max_src_len = meta_int("src_cap");
    cfg.max_tgt_len = meta_int("tgt_cap");
    return cfg;
}

void conform_seq2seq(const char *dir)
{
    const attn_seq2seq_config cfg = conform_seq2seq_rnn_config();
    const int B = meta_int("batch"), S = cfg.max_src_len, T = cfg.max_tgt_len;
    if (B < 1 || S < 1 || T < 1) die("bad sizes in the config");

    atexit(free_model);
    check(attn_seq2seq_create(&model, &cfg, 12345), "attn_seq2seq_create");
    attn_params *p = attn_seq2seq_params(model);
    check(attn_params_load(p, join(dir, "weights.safetensors")), "attn_params_load");
    attn_params_zero_grad(p);

    const int64_t bs[2] = {B, S}, bt[2] = {B, T}, b1[1] = {B};
    attn_batch batch = {.batch = B, .capacity = B, .src_cap = S, .tgt_cap = T};
    batch.src = input_i32("src", 2, bs);
    batch.src_len = input_i32("src_len", 1, b1);
    batch.tgt_in = input_i32("tgt_in", 2, bt);
    batch.tgt_out = input_i32("tgt_out", 2, bt);
    batch.tgt_len = input_i32("tgt_len", 1, b1);

    attn_seq2seq_stats stats;
    const attn_seq2seq_pass pass = {.training = true, .step = 0, .seed = 1};
    check(attn_seq2seq_forward(model, &stats, &batch, &pass), "attn_seq2seq_forward");
    /* The logits, time-major inside the model, as (B, T', V) with T' the longest
     * target. */
    const s2s_run *run = &attn_s2s_rnn(model)->run;
    const int Tr = run->T, V = cfg.tgt_vocab;
    float *logits = alloc((size_t)B * Tr * V, sizeof(float));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tr; t++)
            memcpy(logits + ((size_t)b * Tr + t) * V, run->logits + ((size_t)t * B + b) * V,
                   (size_t)V * sizeof(float));
    check(attn_seq2seq_backward(model), "attn_seq2seq_backward");

    const attn_decode_options opt = {.beam = 1, .max_len = T};
    int32_t *out = alloc((size_t)B * T, sizeof(int32_t)), *out_len = alloc(B, sizeof(int32_t));
    float *attention = alloc((size_t)B * T * S, sizeof(float));
    check(attn_seq2seq_decode(model, out, out_len, attention, batch.src, batch.src_len, B, S, &opt),
          "attn_seq2seq_decode");

    float *loss = alloc(1, sizeof(float));
    *loss = stats.loss;
    float *counts = alloc(2, sizeof(float));
    counts[0] = (float)stats.tokens;
    counts[1] = (float)stats.correct;
    const int64_t one[1] = {1}, two[1] = {2}, logits_shape[3] = {B, Tr, V},
                  att_shape[3] = {B, T, S};
    add_output("loss", loss, 1, one);
    add_output("counts", counts, 1, two);
    add_output("logits", logits, 3, logits_shape);
    add_output("decode.out", as_float(out, (size_t)B * T), 2, bt);
    add_output("decode.out_len", as_float(out_len, (size_t)B), 1, b1);
    add_output("decode.attention", attention, 3, att_shape);
    add_param_grads(p);
    write_outputs(dir);
    check(attn_params_save(p, join(dir, "saved_weights.safetensors"), NULL, 0), "attn_params_save");
}
