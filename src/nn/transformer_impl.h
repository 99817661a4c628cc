/* Internal: the pieces the Transformer modules are built from.
 *
 * Each piece lists its parameters under a name prefix and binds its views into
 * the outermost module's block (nn/param_specs.h), the attentions included
 * (nn/mha_impl.h). So a layer inside nn.Transformer, or the Transformer inside
 * the seq2seq model, is the same code as a layer alone.
 */
#ifndef ATTN_SRC_NN_TRANSFORMER_IMPL_H
#define ATTN_SRC_NN_TRANSFORMER_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "attn/transformer.h"
#include "nn/activations.h"
#include "nn/mha_impl.h"
#include "nn/param_specs.h"

/* ---- naming and initialising ---------------------------------------------------------- */
/* The views of a Linear's or a LayerNorm's weight and bias, and of their gradients. */
typedef struct attn_tf_affine {
    float *w, *b, *dw, *db;
} attn_tf_affine;

/* Points a at prefix + "weight" and prefix + "bias" in p; fails naming a missing one. */
attn_status attn_tf_affine_bind(attn_tf_affine *a, const attn_params *p, const char *prefix);

/* An independent dropout stream for (seed, a, b): one Philox block. */
uint64_t attn_tf_seed(uint64_t seed, uint64_t a, uint64_t b);

/* Draws every matrix (ndim 2) whose name starts with prefix again with
 * xavier_uniform_, as nn.Transformer._reset_parameters does. */
void attn_tf_init_xavier(const attn_params *p, const char *prefix, attn_rng *rng);

/* Checks a layer config, naming the bad field. */
attn_status attn_tf_check_layer_config(const attn_transformer_layer_config *cfg);

/* ---- one sublayer: x -> norm(x + dropout(f(x))) or x + dropout(f(norm(x))) --------------- */
typedef enum attn_tf_role {
    ATTN_TF_SELF_ATTENTION,
    ATTN_TF_CROSS_ATTENTION,
    ATTN_TF_FEEDFORWARD
} attn_tf_role;

typedef struct attn_tf_sublayer {
    attn_transformer_layer_config cfg;
    attn_tf_role role;
    int norm_index;                  /* its LayerNorm is "norm<norm_index>" */
    attn_mha *mha;                   /* the attention roles, bound into the parent's block */
    uint64_t mha_seed;               /* its initialisation's */
    attn_tf_affine linear1, linear2; /* the feed-forward role */
    attn_tf_affine norm;
    attn_precision precision; /* of the linears' products (attn_tf_transformer_set_precision) */

    /* The last forward, kept for backward. */
    const float *x;     /* input (rows, E) */
    float *y;           /* output (rows, E) */
    float *z;           /* norm_first: norm(x), f's input; else x + dropout(f(x)), the norm's */
    float *mean, *rstd; /* (rows) */
    float *f1, *a;      /* feed-forward: linear1's output, the activation after dropout (rows, F) */
    int rows;
    float p; /* the dropout in effect: cfg.dropout in training, else 0 */
    uint64_t seed_residual, seed_inner;
    attn_activations acts;
} attn_tf_sublayer;

/* What one sublayer forward reads besides its input. */
typedef struct attn_tf_call {
    int batch, len, memory_len;
    const float *memory;               /* (B, S, E) or (S, B, E): cross-attention's keys */
    const attn_transformer_mask *mask; /* the attention's */
    bool training;
    uint64_t seed;  /* the sublayer's own stream */
    float *weights; /* optional (B, len, memory_len), head-averaged */
    /* Incremental decoding (len 1): the attention's keys and values so far; a
     * self-attention appends its input's first. NULL: attend over the call's rows. */
    attn_mha_cache *cache;
} attn_tf_call;

/* Gradient scratch a stack shares among its sublayers: (rows, E) and (rows, F). */
typedef struct attn_tf_scratch {
    float *ds, *dz;
    float *dff[2];
} attn_tf_scratch;

attn_status attn_tf_sublayer_init(attn_tf_sublayer *s, const attn_transformer_layer_config *cfg,
                                  attn_tf_role role, int norm_index, uint64_t seed);
void attn_tf_sublayer_free(attn_tf_sublayer *s);
/* The attention's or the linears' parameters; the norm's. */
void attn_tf_sublayer_specs_main(const attn_tf_sublayer *s, attn_specs *specs,
                                 const char *prefix);
void attn_tf_sublayer_specs_norm(const attn_tf_sublayer *s, attn_specs *specs,
                                 const char *prefix);
/* Points the views into p under prefix and writes the initial values. */
attn_status attn_tf_sublayer_bind(attn_tf_sublayer *s, const attn_params *p, const char *prefix,
                                  attn_rng *rng);
/* The multi-head attention input of an attention sublayer for its attention's
 * input u (rows, E) and the call (weights, if asked for, averaged over heads). */
attn_mha_input attn_tf_attention_input(const attn_tf_sublayer *s, const float *u,
                                       const attn_tf_call *c);
/* x: (rows, E), unchanged until backward -> s->y. */
attn_status attn_tf_sublayer_forward(attn_tf_sublayer *s, const float *x, const attn_tf_call *c);
/* dy: (rows, E) -> dx: (rows, E) overwritten; dmemory (+=, or NULL). */
attn_status attn_tf_sublayer_backward(attn_tf_sublayer *s, float *dx, float *dmemory,
                                      const float *dy, const attn_tf_scratch *scratch);

/* ---- a stack of layers: nn.TransformerEncoder / Decoder, or one layer alone --------------- */
typedef struct attn_tf_stack {
    attn_transformer_layer_config cfg;
    bool decoder;      /* three sublayers per layer, else two */
    bool stacked;      /* names "layers.<i>." and a final "norm."; else one layer, unprefixed */
    int layers, count; /* count = layers * sublayers per layer */
    attn_tf_sublayer *sub;
    attn_tf_affine norm;

    /* The last forward, kept for backward. */
    bool has_forward;
    int rows;
    const float *last;  /* the final norm's input */
    float *mean, *rstd; /* (rows) */
    float *grad[2];     /* (rows, E): the gradient between sublayers, alternating */
    attn_tf_scratch scratch;
    attn_activations acts;
} attn_tf_stack;

attn_status attn_tf_stack_init(attn_tf_stack *st, const attn_transformer_layer_config *cfg,
                               bool decoder, bool stacked, int layers, uint64_t seed);
void attn_tf_stack_free(attn_tf_stack *st);
void attn_tf_stack_specs(const attn_tf_stack *st, attn_specs *specs, const char *prefix);
attn_status attn_tf_stack_bind(attn_tf_stack *st, const attn_params *p, const char *prefix,
                               attn_rng *rng);
/* x: the encoder's src (B, S, E) or the decoder's tgt (B, T, E); memory: the
 * decoder's (B, S, E). Sizes, masks, training and cross_weights come from in.
 * -> out shaped as x. */
attn_status attn_tf_stack_forward(attn_tf_stack *st, float *out, const float *x,
                                  const float *memory, const attn_transformer_input *in,
                                  uint64_t seed);
/* dout shaped as out -> dx (+=, or NULL), dmemory (+=, or NULL; the decoder's). */
attn_status attn_tf_stack_backward(attn_tf_stack *st, float *dx, float *dmemory, const float *dout);
/* The precision of every sublayer's products from now on (checked by the caller;
 * ATTN_FLOAT32 at creation): the feed-forward linears (attn_linear_*_at) and the
 * attentions (attn_mha_set_precision); LayerNorm, activations and dropout stay
 * float32. */
void attn_tf_stack_set_precision(attn_tf_stack *st, attn_precision precision);

/* ---- incremental decoding: a decoder stack one position at a time --------------------- */
/* Layer l's attentions' caches: self[l] grows by a position each step; cross[l]
 * holds the memory's keys and values, projected once. */
typedef struct attn_tf_decoder_cache {
    int layers;
    attn_mha_cache *self, *cross;
} attn_tf_decoder_cache;

/* For a decoder stack: memory (batch, memory_len, E) (or (memory_len, batch, E))
 * projected into the cross caches; self caches of `capacity` positions, empty. */
attn_status attn_tf_decoder_cache_init(attn_tf_decoder_cache *c, attn_tf_stack *st,
                                       const float *memory, int batch, int memory_len,
                                       int capacity);
void attn_tf_decoder_cache_free(attn_tf_decoder_cache *c);
/* Beam search: row r takes row parent[r]'s positions; the memory is the same
 * within a source, so the cross caches stay. */
void attn_tf_decoder_cache_reorder(attn_tf_decoder_cache *c, const int32_t *parent);
/* x: (batch, 1, E), the decoder's input at the position after the cached ones
 * -> out: (batch, 1, E), the decoder's output there, as attn_tf_stack_forward
 * gives it at that position of the whole prefix (in eval mode). Reads in's
 * batch, memory_mask and cross_weights ((batch, 1, memory_len), optional). */
attn_status attn_tf_stack_step(attn_tf_stack *st, float *out, const float *x,
                               attn_tf_decoder_cache *cache, const attn_transformer_input *in);

/* ---- nn.Transformer without its parameter block ---------------------------------------- */
typedef struct attn_tf_transformer {
    attn_transformer_config cfg;
    attn_tf_stack encoder, decoder;
    float *memory, *dmemory; /* (B*S, E): the encoder's output and its gradient */
    attn_activations acts;
    bool has_forward;
} attn_tf_transformer;

attn_status attn_tf_transformer_init(attn_tf_transformer *t, const attn_transformer_config *cfg,
                                     uint64_t seed);
void attn_tf_transformer_free(attn_tf_transformer *t);
/* attn_tf_stack_set_precision of both stacks. */
void attn_tf_transformer_set_precision(attn_tf_transformer *t, attn_precision precision);
void attn_tf_transformer_specs(const attn_tf_transformer *t, attn_specs *specs,
                               const char *prefix);
/* Binds and initialises as nn.Transformer: the layers' own init, then every
 * matrix under prefix with xavier_uniform_. */
attn_status attn_tf_transformer_bind(attn_tf_transformer *t, const attn_params *p,
                                     const char *prefix, attn_rng *rng);
attn_status attn_tf_transformer_forward(attn_tf_transformer *t, float *out,
                                        const attn_transformer_input *in);
attn_status attn_tf_transformer_backward(attn_tf_transformer *t, float *dsrc, float *dtgt,
                                         const float *dout);
attn_status attn_tf_transformer_encode(attn_tf_transformer *t, float *memory,
                                       const attn_transformer_input *in);
attn_status attn_tf_transformer_decode(attn_tf_transformer *t, float *out,
                                       const attn_transformer_input *in);

#endif
