/* attn/transformer.h: torch.nn.TransformerEncoderLayer, TransformerDecoderLayer and
 * Transformer, with PyTorch 1.13's semantics and state_dict keys.
 *
 * An encoder layer is two sublayers, self-attention then a feed-forward block;
 * a decoder layer three, self-attention, attention over the encoder's output
 * ("memory") and the feed-forward block. Each sublayer f wraps as
 *   norm_first = false:  x = norm(x + dropout(f(x)))
 *   norm_first = true:   x = x + dropout(f(norm(x)))
 * where the feed-forward block is f(x) = linear2(dropout(activation(linear1(x)))),
 * and the attentions are nn.MultiheadAttention (attn_mha) with the same dropout on
 * their weights. Dropout applies only in training.
 *
 * Parameters (state_dict keys) of a layer, E = d_model, F = dim_feedforward:
 *   self_attn.in_proj_weight (3E, E), self_attn.in_proj_bias (3E),
 *   self_attn.out_proj.weight (E, E), self_attn.out_proj.bias (E),
 *   multihead_attn.* (the decoder's, the same four),
 *   linear1.weight (F, E), linear1.bias (F), linear2.weight (E, F), linear2.bias (E),
 *   norm1.weight, norm1.bias, norm2.*, norm3.* (the decoder's): (E) each.
 * The Transformer prefixes them "encoder.layers.<i>." and "decoder.layers.<i>.",
 * and adds its final norms "encoder.norm.weight", "encoder.norm.bias",
 * "decoder.norm.weight", "decoder.norm.bias", so a PyTorch state_dict loads with
 * attn_params_load. Initialised as PyTorch does: a layer as its submodules do
 * (attn_mha's init, nn.Linear's, LayerNorm weight 1 and bias 0); the Transformer
 * then draws every matrix again with xavier_uniform_.
 *
 * Backward adds into the input gradients it is given and into the parameter
 * gradients (+=); attn_params_zero_grad clears the latter.
 */
#ifndef ATTN_TRANSFORMER_H
#define ATTN_TRANSFORMER_H

#include <stdbool.h>
#include <stdint.h>

#include "attn/attention.h"
#include "attn/core.h"
#include "attn/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_transformer_layer_config {
    int d_model; /* E, divisible by nhead */
    int nhead;
    int dim_feedforward; /* F */
    float dropout;       /* in [0, 1) */
    attn_activation activation;
    float layer_norm_eps; /* > 0 */
    bool batch_first;     /* tensors (B, L, E) rather than (L, B, E) */
    bool norm_first;
} attn_transformer_layer_config;

/* PyTorch's defaults for d_model and nhead: dim_feedforward 2048, dropout 0.1,
 * relu, layer_norm_eps 1e-5, batch_first and norm_first false. */
ATTN_API attn_transformer_layer_config attn_transformer_layer_defaults(int d_model, int nhead);

typedef struct attn_transformer_config {
    attn_transformer_layer_config layer;
    int num_encoder_layers, num_decoder_layers; /* >= 1 each */
} attn_transformer_config;

/* The masks of one attention, as nn.MultiheadAttention takes them: a bool mask
 * (ATTN_MASK_BOOL, uint8_t) is nonzero where attention is NOT allowed, a float
 * mask (ATTN_MASK_FLOAT) is added to the scores; is_causal also excludes key
 * j > query i. Several masks combine. A query whose every key is excluded gets
 * a zero attention output rather than PyTorch's NaN. */
typedef struct attn_transformer_mask {
    const void *attn_mask; /* optional, (Lq, Lk) if attn_mask_ndim is 2, (B*H, Lq, Lk) if 3 */
    attn_mask_type attn_mask_type;
    int attn_mask_ndim;
    bool is_causal;
    const void *key_padding_mask; /* optional, (B, Lk) */
    attn_mask_type key_padding_mask_type;
} attn_transformer_mask;

/* One forward call's inputs; each module reads the fields its comment names.
 * Shapes are (B, L, E) if batch_first, else (L, B, E). The tensors and masks must
 * stay unchanged until the backward of the call. */
typedef struct attn_transformer_input {
    const float *src;            /* (B, S, E): the encoder layer's and the Transformer's input */
    const float *tgt;            /* (B, T, E): the decoder layer's and the Transformer's input */
    const float *memory;         /* (B, S, E): the decoder layer's and attn_transformer_decode's */
    int batch, src_len, tgt_len; /* B, S, T */
    attn_transformer_mask src_mask;    /* encoder self-attention: src_mask, src_key_padding_mask */
    attn_transformer_mask tgt_mask;    /* decoder self-attention: tgt_mask, tgt_key_padding_mask */
    attn_transformer_mask memory_mask; /* decoder cross-attention: memory_mask,
                                          memory_key_padding_mask */
    bool training;
    uint64_t dropout_seed; /* every dropout mask of the call is drawn from it */
    /* optional, (B, T, S): receives the last decoder layer's cross-attention
     * weights averaged over heads (after dropout, as nn.MultiheadAttention's
     * need_weights gives them). Computing them takes the unfused attention path. */
    float *cross_weights;
} attn_transformer_input;

/* ---- torch.nn.TransformerEncoderLayer -------------------------------------------------- */
typedef struct attn_transformer_encoder_layer attn_transformer_encoder_layer;

/* Fails on a bad config naming the field, e.g. "d_model 10 is not divisible by
 * nhead 3". */
ATTN_API attn_status attn_transformer_encoder_layer_create(attn_transformer_encoder_layer **out,
                                                           const attn_transformer_layer_config *cfg,
                                                           uint64_t seed);
ATTN_API void attn_transformer_encoder_layer_free(attn_transformer_encoder_layer *l);
ATTN_API attn_params *attn_transformer_encoder_layer_params(attn_transformer_encoder_layer *l);

/* forward(src, src_mask, src_key_padding_mask): reads src, batch, src_len,
 * src_mask, training, dropout_seed -> out shaped as src. */
ATTN_API attn_status attn_transformer_encoder_layer_forward(attn_transformer_encoder_layer *l,
                                                            float *out,
                                                            const attn_transformer_input *in);
/* dout shaped as out -> dsrc (+=, or NULL). */
ATTN_API attn_status attn_transformer_encoder_layer_backward(attn_transformer_encoder_layer *l,
                                                             float *dsrc, const float *dout);

/* ---- torch.nn.TransformerDecoderLayer -------------------------------------------------- */
typedef struct attn_transformer_decoder_layer attn_transformer_decoder_layer;

ATTN_API attn_status attn_transformer_decoder_layer_create(attn_transformer_decoder_layer **out,
                                                           const attn_transformer_layer_config *cfg,
                                                           uint64_t seed);
ATTN_API void attn_transformer_decoder_layer_free(attn_transformer_decoder_layer *l);
ATTN_API attn_params *attn_transformer_decoder_layer_params(attn_transformer_decoder_layer *l);

/* forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
 * memory_key_padding_mask): reads tgt, memory, batch, tgt_len, src_len (the
 * memory's length), tgt_mask, memory_mask, training, dropout_seed, cross_weights
 * -> out shaped as tgt. */
ATTN_API attn_status attn_transformer_decoder_layer_forward(attn_transformer_decoder_layer *l,
                                                            float *out,
                                                            const attn_transformer_input *in);
/* dout shaped as out -> dtgt, dmemory (+=, each may be NULL). */
ATTN_API attn_status attn_transformer_decoder_layer_backward(attn_transformer_decoder_layer *l,
                                                             float *dtgt, float *dmemory,
                                                             const float *dout);

/* ---- torch.nn.Transformer ------------------------------------------------------------------ */
typedef struct attn_transformer attn_transformer;

ATTN_API attn_status attn_transformer_create(attn_transformer **out,
                                             const attn_transformer_config *cfg, uint64_t seed);
ATTN_API void attn_transformer_free(attn_transformer *t);
ATTN_API attn_params *attn_transformer_params(attn_transformer *t);
ATTN_API const attn_transformer_config *attn_transformer_get_config(const attn_transformer *t);

/* forward(src, tgt, src_mask, tgt_mask, memory_mask, src_key_padding_mask,
 * tgt_key_padding_mask, memory_key_padding_mask): reads every field but memory
 * -> out shaped as tgt. */
ATTN_API attn_status attn_transformer_forward(attn_transformer *t, float *out,
                                              const attn_transformer_input *in);
/* Backward of the last attn_transformer_forward: dout shaped as out -> dsrc, dtgt
 * (+=, each may be NULL). */
ATTN_API attn_status attn_transformer_backward(attn_transformer *t, float *dsrc, float *dtgt,
                                               const float *dout);

/* The two halves, for decoding: encode is transformer.encoder(src, ...) -> memory
 * shaped as src; decode is transformer.decoder(tgt, memory, ...) reading in->memory
 * -> out shaped as tgt. They reuse what forward keeps, so a backward must follow
 * a forward with neither in between. */
ATTN_API attn_status attn_transformer_encode(attn_transformer *t, float *memory,
                                             const attn_transformer_input *in);
ATTN_API attn_status attn_transformer_decode(attn_transformer *t, float *out,
                                             const attn_transformer_input *in);

#ifdef __cplusplus
}
#endif
#endif
