/* Conformance kind "transformer": attn_transformer_encoder_layer_*,
 * attn_transformer_decoder_layer_* or attn_transformer_* (the config's "module":
 * encoder_layer, decoder_layer, transformer) with a state_dict of
 * torch.nn.TransformerEncoderLayer, TransformerDecoderLayer or Transformer; or
 * the attn_seq2seq model "transformer" (module "seq2seq"): its training loss on
 * one batch and the gradient of every parameter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/transformer.h"
#include "conform.h"
#include "conform_kinds.h"

static attn_transformer_encoder_layer *encoder_layer;
static attn_transformer_decoder_layer *decoder_layer;
static attn_transformer *transformer;
static attn_seq2seq *seq2seq;

static void free_modules(void)
{
    attn_transformer_encoder_layer_free(encoder_layer);
    attn_transformer_decoder_layer_free(decoder_layer);
    attn_transformer_free(transformer);
    attn_seq2seq_free(seq2seq);
}

attn_seq2seq_config conform_seq2seq_transformer_config(void)
{
    attn_seq2seq_config cfg = attn_seq2seq_defaults(ATTN_S2S_TRANSFORMER, ATTN_ATTEND_SOFT);
    cfg.src_vocab = meta_int("src_vocab");
    cfg.tgt_vocab = meta_int("tgt_vocab");
    cfg.max_src_len = meta_int("max_src_len");
    cfg.max_tgt_len = meta_int("max_tgt_len");
    cfg.hidden_dim = meta_int("hidden_dim");
    cfg.heads = meta_int("heads");
    cfg.ff_dim = meta_int("ff_dim");
    cfg.enc_layers = meta_int("enc_layers");
    cfg.dec_layers = meta_int("dec_layers");
    cfg.dropout = 0.0f;
    return cfg;
}

/* One training step's loss and gradients of the seq2seq model, dropout 0. */
static void run_seq2seq(const char *dir)
{
    const attn_seq2seq_config cfg = conform_seq2seq_transformer_config();
    atexit(free_modules);
    check(attn_seq2seq_create(&seq2seq, &cfg, 12345), "attn_seq2seq_create");
    attn_params *p = attn_seq2seq_params(seq2seq);
    check(attn_params_load(p, join(dir, "weights.safetensors")), "attn_params_load");
    attn_params_zero_grad(p);

    attn_batch b = {
        .batch = meta_int("batch"), .src_cap = meta_int("src_cap"), .tgt_cap = meta_int("tgt_cap")};
    b.capacity = b.batch;
    const int64_t src_shape[2] = {b.batch, b.src_cap}, tgt_shape[2] = {b.batch, b.tgt_cap};
    const int64_t len_shape[1] = {b.batch};
    b.src = input_i32("src", 2, src_shape);
    b.src_len = input_i32("src_len", 1, len_shape);
    b.tgt_in = input_i32("tgt_in", 2, tgt_shape);
    b.tgt_out = input_i32("tgt_out", 2, tgt_shape);
    b.tgt_len = input_i32("tgt_len", 1, len_shape);
    const attn_seq2seq_pass pass = {.training = true,
                                    .label_smoothing = (float)meta_double("label_smoothing")};
    attn_seq2seq_stats stats;
    check(attn_seq2seq_forward(seq2seq, &stats, &b, &pass), "attn_seq2seq_forward");
    check(attn_seq2seq_backward(seq2seq), "attn_seq2seq_backward");
    float *loss = alloc(1, sizeof *loss);
    *loss = stats.loss;
    const int64_t one[1] = {1};
    add_output("loss", loss, 1, one);
    add_param_grads(p);
    write_outputs(dir);
    check(attn_params_save(p, join(dir, "saved_weights.safetensors"), NULL, 0), "attn_params_save");
}

/* The config key "<which><suffix>". */
static const char *key_of(const char *which, const char *suffix)
{
    char *key = alloc(strlen(which) + strlen(suffix) + 1, 1);
    sprintf(key, "%s%s", which, suffix);
    return key;
}

/* The masks of one attention, "<which>_mask", "<which>_mask_ndim",
 * "<which>_is_causal", "<which>_key_padding_mask"; which is src, tgt or memory. */
static attn_transformer_mask read_masks(const char *which, int B, int H, int Lq, int Lk)
{
    attn_transformer_mask m = {0};
    m.attn_mask_ndim = meta_int(key_of(which, "_mask_ndim"));
    const int64_t shape2[2] = {Lq, Lk}, shape3[3] = {(int64_t)B * H, Lq, Lk};
    const char *key = key_of(which, "_mask");
    if (m.attn_mask_ndim == 2 || m.attn_mask_ndim == 3) {
        m.attn_mask = read_mask(key, m.attn_mask_ndim, m.attn_mask_ndim == 2 ? shape2 : shape3,
                                &m.attn_mask_type, "nn.Transformer");
    } else {
        attn_mask_type unused;
        if (mask_kind(key, &unused)) die("%s_mask_ndim must be 2 or 3 with a mask", which);
    }
    m.is_causal = meta_bool(key_of(which, "_is_causal"));
    const int64_t kpm_shape[2] = {B, Lk};
    m.key_padding_mask =
        read_mask(key_of(which, "_key_padding_mask"), 2, kpm_shape, &m.key_padding_mask_type,
                  "nn.Transformer");
    return m;
}

void conform_transformer(const char *dir)
{
    if (strcmp(meta_string("module"), "seq2seq") == 0) {
        run_seq2seq(dir);
        return;
    }
    attn_transformer_layer_config layer = {0};
    layer.d_model = meta_int("d_model");
    layer.nhead = meta_int("nhead");
    layer.dim_feedforward = meta_int("dim_feedforward");
    layer.dropout = (float)meta_double("dropout");
    check(attn_activation_parse(&layer.activation, meta_string("activation")), "activation");
    layer.layer_norm_eps = (float)meta_double("layer_norm_eps");
    layer.batch_first = meta_bool("batch_first");
    layer.norm_first = meta_bool("norm_first");
    const char *module = meta_string("module");
    const bool is_encoder = strcmp(module, "encoder_layer") == 0;
    const bool is_decoder = strcmp(module, "decoder_layer") == 0;
    const bool is_transformer = strcmp(module, "transformer") == 0;
    if (!is_encoder && !is_decoder && !is_transformer)
        die("module '%s' is not encoder_layer, decoder_layer or transformer", module);

    attn_transformer_input in = {0};
    const int B = meta_int("batch"), S = meta_int("src_len"), T = meta_int("tgt_len");
    const int64_t E = layer.d_model, H = layer.nhead;
    in.batch = B, in.src_len = S, in.tgt_len = T;
    in.training = meta_bool("training");
    in.dropout_seed = 0;
    if (B < 1 || S < 1 || T < 1) die("bad sizes in the config");
    const int64_t src_shape[3] = {layer.batch_first ? B : S, layer.batch_first ? S : B, E};
    const int64_t tgt_shape[3] = {layer.batch_first ? B : T, layer.batch_first ? T : B, E};
    const int64_t weights_shape[3] = {B, T, S};
    const size_t src_n = (size_t)B * S * E, tgt_n = (size_t)B * T * E;

    atexit(free_modules);
    attn_params *p;
    if (is_encoder) {
        check(attn_transformer_encoder_layer_create(&encoder_layer, &layer, 12345), "create");
        p = attn_transformer_encoder_layer_params(encoder_layer);
    } else if (is_decoder) {
        check(attn_transformer_decoder_layer_create(&decoder_layer, &layer, 12345), "create");
        p = attn_transformer_decoder_layer_params(decoder_layer);
    } else {
        const attn_transformer_config cfg = {.layer = layer,
                                             .num_encoder_layers = meta_int("num_encoder_layers"),
                                             .num_decoder_layers = meta_int("num_decoder_layers")};
        check(attn_transformer_create(&transformer, &cfg, 12345), "create");
        p = attn_transformer_params(transformer);
    }
    check(attn_params_load(p, join(dir, "weights.safetensors")), "attn_params_load");
    attn_params_zero_grad(p);

    if (!is_decoder) {
        in.src = input_f32("src", 3, src_shape);
        in.src_mask = read_masks("src", B, (int)H, S, S);
    }
    if (is_decoder) in.memory = input_f32("memory", 3, src_shape);
    if (!is_encoder) {
        in.tgt = input_f32("tgt", 3, tgt_shape);
        in.tgt_mask = read_masks("tgt", B, (int)H, T, T);
        in.memory_mask = read_masks("memory", B, (int)H, T, S);
        if (meta_bool("need_weights")) in.cross_weights = alloc((size_t)B * T * S, sizeof(float));
    }
    const float *dout = input_f32("dout", 3, is_encoder ? src_shape : tgt_shape);

    float *out = alloc(is_encoder ? src_n : tgt_n, sizeof(float));
    float *dsrc = alloc(src_n, sizeof(float)), *dtgt = alloc(tgt_n, sizeof(float));
    if (is_encoder) {
        check(attn_transformer_encoder_layer_forward(encoder_layer, out, &in), "forward");
        check(attn_transformer_encoder_layer_backward(encoder_layer, dsrc, dout), "backward");
        add_output("out", out, 3, src_shape);
        add_output("grad.src", dsrc, 3, src_shape);
    } else if (is_decoder) {
        check(attn_transformer_decoder_layer_forward(decoder_layer, out, &in), "forward");
        check(attn_transformer_decoder_layer_backward(decoder_layer, dtgt, dsrc, dout), "backward");
        add_output("out", out, 3, tgt_shape);
        add_output("grad.tgt", dtgt, 3, tgt_shape);
        add_output("grad.memory", dsrc, 3, src_shape);
    } else {
        check(attn_transformer_forward(transformer, out, &in), "forward");
        check(attn_transformer_backward(transformer, dsrc, dtgt, dout), "backward");
        add_output("out", out, 3, tgt_shape);
        add_output("grad.src", dsrc, 3, src_shape);
        add_output("grad.tgt", dtgt, 3, tgt_shape);
    }
    if (in.cross_weights) add_output("cross_weights", in.cross_weights, 3, weights_shape);
    add_param_grads(p);
    write_outputs(dir);
    check(attn_params_save(p, join(dir, "saved_weights.safetensors"), NULL, 0), "attn_params_save");
}
