/* Internal: nn.MultiheadAttention as a part of a larger module. attn_mha_create
 * is these three calls with a block of the module's own. */
#ifndef ATTN_SRC_NN_MHA_IMPL_H
#define ATTN_SRC_NN_MHA_IMPL_H

#include "attn/nn.h"
#include "nn/param_specs.h"

/* The module without parameters yet; checks the config. */
attn_status attn_mha_new(attn_mha **out, const attn_mha_config *cfg);
/* Lists its parameters under prefix, in PyTorch's state_dict order. */
void attn_mha_specs(const attn_mha *m, attn_specs *specs, const char *prefix);
/* Points its views at its parameters under prefix in p and initialises them
 * from seed, as MultiheadAttention does; backward adds into p's gradients. */
attn_status attn_mha_bind(attn_mha *m, const attn_params *p, const char *prefix, uint64_t seed);

/* ---- what recording reads after a pass ---- */
/* The last forward's heads after their projections: q (B, H, Lq, hd) and k
 * (B, H, Lk, hd), valid until the next forward. */
void attn_mha_last_qk(const attn_mha *m, const float **q, const float **k);
/* After attn_mha_backward: dweights (B, H, Lq, Lk) += the gradient of what the
 * backward was given with respect to the last forward's attention weights
 * (attn_sdpa_weights_backward: 0 on masked cells). The forward ran without
 * dropout. */
attn_status attn_mha_weights_backward(const attn_mha *m, float *dweights);

/* From now on, until it is called again with NULL, the forward's attention edits
 * its weights before they multiply v (attn_sdpa_edited_forward; edit checked, not
 * copied: it must outlive the forwards). The cached forward does not edit. */
void attn_mha_set_edit(attn_mha *m, const attn_weights_edit *edit);

/* The precision of its products from now on (checked by the caller; ATTN_FLOAT32
 * at creation). In bf16 the four projections, forward and backward, run through
 * attn_linear_*_at, and the attention of attn_mha_forward and _backward through
 * attn_sdpa_bf16_forward / _backward on the heads rounded to bf16, unless the
 * call asks for the weights or an edit is set (then SDPA runs in float32). The
 * cached forward's attention stays float32, its projections follow. */
void attn_mha_set_precision(attn_mha *m, attn_precision precision);

/* ---- incremental decoding -------------------------------------------------------------- */
/* The keys and values an attention has projected, split into heads, for `batch`
 * sequences of up to `capacity` positions: (batch, H, capacity, hd) each, filled
 * at positions 0 .. length - 1. The rest stay 0 (a masked score's weight is 0,
 * and 0 times a value that was never written could be NaN). */
typedef struct attn_mha_cache {
    int batch, heads, head_dim, capacity, length;
    float *k_heads, *v_heads;
    float *spare; /* (batch, H, capacity, hd): where reordering gathers */
} attn_mha_cache;

attn_status attn_mha_cache_init(attn_mha_cache *c, const attn_mha *m, int batch, int capacity);
void attn_mha_cache_free(attn_mha_cache *c);
/* key: (batch, n, kdim), value: (batch, n, vdim) ((n, batch, .) unless
 * batch_first) -> their projections at positions length .. length + n - 1. */
attn_status attn_mha_cache_append(attn_mha *m, attn_mha_cache *c, const float *key,
                                  const float *value, int n);
/* Beam search: row r takes row parent[r]'s keys and values. */
void attn_mha_cache_reorder(attn_mha_cache *c, const int32_t *parent);
/* One new position per sequence, after every cached one: in->query (batch, 1, E)
 * -> out (batch, 1, E), the attention over the cache's positions through SDPA
 * with len_k = capacity, causal at q_offset = length - 1 (so the unfilled
 * positions are masked and their blocks skipped). Reads in's key padding mask
 * (batch, capacity), weights and average_attn_weights; the weights come from a
 * second run, so out has the same bits whether they are asked for or not. */
attn_status attn_mha_cached_forward(attn_mha *m, float *out, const attn_mha_cache *c,
                                    const attn_mha_input *in);

#endif
