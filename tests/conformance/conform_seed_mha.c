/* Conformance kind "seed_mha": the seed's MultiHeadAttention class. */
#include <stdlib.h>

#include "conform.h"
#include "conform_kinds.h"

static attn_seed_mha *seed;

static void free_seed(void) { attn_seed_mha_free(seed); }

void conform_seed_mha(const char *dir)
{
    int E = meta_int("embed_size"), H = meta_int("heads");
    int N = meta_int("batch"), Lq = meta_int("len_q"), Lk = meta_int("len_k");
    bool self_attention = meta_bool("self_attention");
    bool alias_grads = meta_bool("alias_grads");
    bool need_weights = meta_bool("need_weights");
    if (N < 1 || Lq < 1 || Lk < 1) die("bad sizes in the config");

    atexit(free_seed);
    check(attn_seed_mha_create(&seed, E, H, 12345), "attn_seed_mha_create");
    attn_params *p = attn_seed_mha_params(seed);
    check(attn_params_load(p, join(dir, "weights.safetensors")), "attn_params_load");
    attn_params_zero_grad(p);

    const int64_t q_shape[3] = {N, Lq, E}, k_shape[3] = {N, Lk, E};
    const float *query = input_f32("query", 3, q_shape), *keys, *values;
    if (self_attention) {
        if (Lq != Lk) die("self-attention needs len_q == len_k");
        keys = values = query;
    } else {
        keys = input_f32("keys", 3, k_shape);
        values = input_f32("values", 3, k_shape);
    }
    const float *dout = input_f32("dout", 3, q_shape);

    attn_mask mask, *maskp = NULL;
    attn_mask_type type;
    if (mask_kind("mask", &type)) {
        if (type != ATTN_MASK_BOOL_KEEP) die("the seed's mask is bool_keep (mask == 0 excludes)");
        mask_input m = input_mask("mask", false);
        const int64_t target[4] = {N, H, Lq, Lk};
        check(attn_mask_init(&mask, type, m.data, m.ndim, m.shape, target), "attn_mask_init(mask)");
        maskp = &mask;
    }
    const int64_t w_shape[4] = {N, H, Lq, Lk};
    float *weights = need_weights ? alloc((size_t)N * H * Lq * Lk, sizeof(float)) : NULL;
    float *out = alloc((size_t)N * Lq * E, sizeof(float));
    check(attn_seed_mha_forward(seed, out, weights, values, keys, query, N, Lk, Lq, maskp),
          "attn_seed_mha_forward");

    float *dquery = alloc((size_t)N * Lq * E, sizeof(float));
    float *dkeys = dquery, *dvalues = dquery;
    if (!alias_grads) {
        dkeys = alloc((size_t)N * Lk * E, sizeof(float));
        dvalues = alloc((size_t)N * Lk * E, sizeof(float));
    }
    check(attn_seed_mha_backward(seed, dvalues, dkeys, dquery, dout), "attn_seed_mha_backward");

    add_output("out", out, 3, q_shape);
    if (weights) add_output("weights", weights, 4, w_shape);
    add_output("grad.query", dquery, 3, q_shape);
    if (!alias_grads) {
        add_output("grad.keys", dkeys, 3, k_shape);
        add_output("grad.values", dvalues, 3, k_shape);
    }
    add_param_grads(p);
    write_outputs(dir);
    check(attn_params_save(p, join(dir, "saved_weights.safetensors"), NULL, 0), "attn_params_save");
}
