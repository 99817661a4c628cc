/* Conformance kind "sdpa": attn_sdpa_forward and attn_sdpa_backward on one case. */
#include "conform.h"
#include "conform_kinds.h"

void conform_sdpa(const char *dir)
{
    attn_sdpa_config cfg = {0};
    cfg.batch = meta_int("batch");
    cfg.heads = meta_int("heads");
    cfg.len_q = meta_int("len_q");
    cfg.len_k = meta_int("len_k");
    cfg.dim_qk = meta_int("dim_qk");
    cfg.dim_v = meta_int("dim_v");
    cfg.scale = (float)meta_double("scale");
    cfg.causal = meta_bool("causal");
    cfg.window = meta_int("window");
    cfg.q_offset = meta_int("q_offset");
    cfg.dropout_p = (float)meta_double("dropout_p");
    cfg.dropout_seed = (uint64_t)meta_int("dropout_seed");
    bool need_weights = meta_bool("need_weights");
    int64_t B = cfg.batch, H = cfg.heads, Lq = cfg.len_q, Lk = cfg.len_k;
    int64_t D = cfg.dim_qk, Dv = cfg.dim_v;
    if (B < 1 || H < 1 || Lq < 1 || Lk < 1 || D < 1 || Dv < 1) die("bad sizes in the config");

    const int64_t target[4] = {B, H, Lq, Lk};
    attn_mask attn_mask_, padding;
    attn_mask_type type;
    if (mask_kind("attn_mask", &type)) {
        mask_input m = input_mask("attn_mask", type == ATTN_MASK_FLOAT);
        check(attn_mask_init(&attn_mask_, type, m.data, m.ndim, m.shape, target),
              "attn_mask_init(attn_mask)");
        cfg.attn_mask = &attn_mask_;
    }
    if (mask_kind("key_padding_mask", &type)) {
        mask_input m = input_mask("key_padding_mask", type == ATTN_MASK_FLOAT);
        check(attn_mask_init(&padding, type, m.data, m.ndim, m.shape, target),
              "attn_mask_init(key_padding_mask)");
        cfg.key_padding_mask = &padding;
    }
    if (meta_bool("alibi")) {
        const int64_t slopes_shape[1] = {H};
        cfg.alibi_slopes = input_f32("alibi_slopes", 1, slopes_shape);
    }
    check(attn_sdpa_check(&cfg), "attn_sdpa_check");

    const int64_t q_shape[4] = {B, H, Lq, D}, k_shape[4] = {B, H, Lk, D};
    const int64_t v_shape[4] = {B, H, Lk, Dv}, out_shape[4] = {B, H, Lq, Dv};
    const int64_t lse_shape[3] = {B, H, Lq}, w_shape[4] = {B, H, Lq, Lk};
    const float *q = input_f32("q", 4, q_shape);
    const float *k = input_f32("k", 4, k_shape);
    const float *v = input_f32("v", 4, v_shape);
    const float *dout = input_f32("dout", 4, out_shape);

    float *out = alloc((size_t)(B * H * Lq * Dv), sizeof(float));
    float *lse = alloc((size_t)(B * H * Lq), sizeof(float));
    float *weights = need_weights ? alloc((size_t)(B * H * Lq * Lk), sizeof(float)) : NULL;
    float *dq = alloc((size_t)(B * H * Lq * D), sizeof(float));
    float *dk = alloc((size_t)(B * H * Lk * D), sizeof(float));
    float *dv = alloc((size_t)(B * H * Lk * Dv), sizeof(float));
    check(attn_sdpa_forward(out, lse, weights, q, k, v, &cfg), "attn_sdpa_forward");
    check(attn_sdpa_backward(dq, dk, dv, dout, q, k, v, lse, &cfg), "attn_sdpa_backward");

    add_output("out", out, 4, out_shape);
    add_output("lse", lse, 3, lse_shape);
    if (weights) add_output("weights", weights, 4, w_shape);
    add_output("grad.q", dq, 4, q_shape);
    add_output("grad.k", dk, 4, k_shape);
    add_output("grad.v", dv, 4, v_shape);
    write_outputs(dir);
}
