/* Conformance kind "mha": attn_mha_* with a torch.nn.MultiheadAttention state_dict. */
#include <stdlib.h>

#include "conform.h"
#include "conform_kinds.h"

static attn_mha *mha;

static void free_mha(void) { attn_mha_free(mha); }

void conform_mha(const char *dir)
{
    attn_mha_config cfg = {0};
    cfg.embed_dim = meta_int("embed_dim");
    cfg.num_heads = meta_int("num_heads");
    cfg.kdim = meta_int("kdim");
    cfg.vdim = meta_int("vdim");
    cfg.bias = meta_bool("bias");
    cfg.batch_first = meta_bool("batch_first");
    cfg.dropout = 0.0f;
    int B = meta_int("batch"), Lq = meta_int("len_q"), Lk = meta_int("len_k");
    bool self_attention = meta_bool("self_attention");
    bool alias_grads = meta_bool("alias_grads");
    bool need_weights = meta_bool("need_weights");
    if (B < 1 || Lq < 1 || Lk < 1) die("bad sizes in the config");

    atexit(free_mha);
    check(attn_mha_create(&mha, &cfg, 12345), "attn_mha_create");
    attn_params *p = attn_mha_params(mha);
    check(attn_params_load(p, join(dir, "weights.safetensors")), "attn_params_load");
    attn_params_zero_grad(p);

    int64_t E = cfg.embed_dim, H = cfg.num_heads;
    int64_t kdim = cfg.kdim ? cfg.kdim : E, vdim = cfg.vdim ? cfg.vdim : E;
    int64_t q_shape[3], k_shape[3], v_shape[3];
    int64_t first_q = cfg.batch_first ? B : Lq, second_q = cfg.batch_first ? Lq : B;
    int64_t first_k = cfg.batch_first ? B : Lk, second_k = cfg.batch_first ? Lk : B;
    q_shape[0] = first_q, q_shape[1] = second_q, q_shape[2] = E;
    k_shape[0] = first_k, k_shape[1] = second_k, k_shape[2] = kdim;
    v_shape[0] = first_k, v_shape[1] = second_k, v_shape[2] = vdim;

    attn_mha_input in = {0};
    in.batch = B;
    in.len_q = Lq;
    in.len_k = Lk;
    in.query = input_f32("query", 3, q_shape);
    if (self_attention) {
        if (Lq != Lk || kdim != E || vdim != E)
            die("self-attention needs len_q == len_k and kdim == vdim == embed_dim");
        in.key = in.value = in.query;
    } else {
        in.key = input_f32("key", 3, k_shape);
        in.value = input_f32("value", 3, v_shape);
    }
    const float *dout = input_f32("dout", 3, q_shape);

    const int64_t kpm_shape[2] = {B, Lk};
    in.key_padding_mask = read_mask("key_padding_mask", 2, kpm_shape, &in.key_padding_mask_type,
                                    "nn.MultiheadAttention");
    in.attn_mask_ndim = meta_int("attn_mask_ndim");
    if (in.attn_mask_ndim == 2) {
        const int64_t shape[2] = {Lq, Lk};
        in.attn_mask = read_mask("attn_mask", 2, shape, &in.attn_mask_type,
                                 "nn.MultiheadAttention");
    } else if (in.attn_mask_ndim == 3) {
        const int64_t shape[3] = {B * H, Lq, Lk};
        in.attn_mask = read_mask("attn_mask", 3, shape, &in.attn_mask_type,
                                 "nn.MultiheadAttention");
    } else {
        attn_mask_type unused;
        if (mask_kind("attn_mask", &unused))
            die("attn_mask_ndim must be 2 or 3 with an attn_mask");
    }
    in.is_causal = meta_bool("is_causal");
    in.training = meta_bool("training");
    in.dropout_seed = 0;
    in.average_attn_weights = meta_bool("average_attn_weights");
    int64_t w_shape[4] = {B, H, Lq, Lk}, w_avg_shape[3] = {B, Lq, Lk};
    if (need_weights) in.weights = alloc((size_t)(B * H * Lq * Lk), sizeof(float));

    float *out = alloc((size_t)(B * Lq * E), sizeof(float));
    check(attn_mha_forward(mha, out, &in), "attn_mha_forward");

    float *dquery = alloc((size_t)(B * Lq * E), sizeof(float));
    float *dkey = dquery, *dvalue = dquery;
    if (!alias_grads) {
        dkey = alloc((size_t)(B * Lk * kdim), sizeof(float));
        dvalue = alloc((size_t)(B * Lk * vdim), sizeof(float));
    }
    check(attn_mha_backward(mha, dquery, dkey, dvalue, dout), "attn_mha_backward");

    add_output("out", out, 3, q_shape);
    if (need_weights) {
        if (in.average_attn_weights)
            add_output("weights", in.weights, 3, w_avg_shape);
        else
            add_output("weights", in.weights, 4, w_shape);
    }
    add_output("grad.query", dquery, 3, q_shape);
    if (!alias_grads) {
        add_output("grad.key", dkey, 3, k_shape);
        add_output("grad.value", dvalue, 3, v_shape);
    }
    add_param_grads(p);
    write_outputs(dir);
    check(attn_params_save(p, join(dir, "saved_weights.safetensors"), NULL, 0), "attn_params_save");
}
