/* attn/nn.h: modules with parameters.
 *
 * A module keeps all its parameters in one contiguous block and all their
 * gradients in another of the same layout (attn_params), with one named view per
 * parameter. Names are PyTorch state_dict keys, so a module loads a state_dict
 * saved as safetensors and saves one that PyTorch's load_state_dict accepts.
 *
 * Backward adds into the parameter gradients and into the input gradients it is
 * given (+=); attn_params_zero_grad clears the former, the caller the latter.
 */
#ifndef ATTN_NN_H
#define ATTN_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/attention.h"
#include "attn/core.h"
#include "attn/io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- parameters ------------------------------------------------------------------ */
#define ATTN_PARAM_NAME_MAX 128
#define ATTN_PARAM_MAX_DIMS 4

typedef struct attn_param {
    char name[ATTN_PARAM_NAME_MAX]; /* state_dict key, e.g. "out_proj.weight" */
    int ndim;
    int64_t shape[ATTN_PARAM_MAX_DIMS];
    size_t numel;  /* filled by attn_params_init */
    size_t offset; /* into data and grad; filled by attn_params_init */
} attn_param;

typedef struct attn_params {
    float *data;  /* every parameter, one block of `total` floats; each starts 64-byte aligned */
    float *grad;  /* their gradients, the same layout, zeroed at first */
    size_t total;
    attn_param *items;
    int count;
} attn_params;

/* Lays out `count` parameters given by name, ndim and shape (numel and offset are
 * computed), allocates data (zeroed) and grad (zeroed). Names must be unique. */
ATTN_API attn_status attn_params_init(attn_params *p, const attn_param *specs, int count);
ATTN_API void attn_params_free(attn_params *p);

/* The parameter named `name`, or NULL. */
ATTN_API const attn_param *attn_params_find(const attn_params *p, const char *name);
/* Its values / its gradient, or NULL if there is no such parameter. */
ATTN_API float *attn_params_data(const attn_params *p, const char *name);
ATTN_API float *attn_params_grad(const attn_params *p, const char *name);

ATTN_API void attn_params_zero_grad(attn_params *p);

/* Loads a state_dict: the file must hold exactly the module's keys, each with the
 * module's shape (F32, or F64/F16/BF16 converted). A missing, unexpected or
 * mis-shaped key fails naming the key (and both shapes); on failure the
 * parameters are unchanged. */
ATTN_API attn_status attn_params_load(attn_params *p, const char *path);
ATTN_API attn_status attn_params_load_from(attn_params *p, const attn_safetensors *st);

/* Saves every parameter as F32 under its name, with optional metadata. */
ATTN_API attn_status attn_params_save(const attn_params *p, const char *path,
                                      const attn_metadata_pair *meta, int meta_count);

/* ---- initialisation, as PyTorch's defaults ----------------------------------------- */

/* w: (out, in), b: (out) or NULL; both uniform in +-1/sqrt(in), which is what
 * nn.Linear's kaiming_uniform_(a=sqrt(5)) and its bias init come to. */
ATTN_API void attn_init_linear(float *w, float *b, int out, int in, attn_rng *rng);

/* w: (fan_out, fan_in) uniform in +-sqrt(6 / (fan_in + fan_out)). */
ATTN_API void attn_init_xavier_uniform(float *w, int fan_out, int fan_in, attn_rng *rng);

/* ---- linear --------------------------------------------------------------------------
 * x: (N, in), w: (out, in), b: (out) or NULL -> y: (N, out) = x w^T + b. */
ATTN_API attn_status attn_linear_forward(float *y, const float *x, const float *w, const float *b,
                                         int N, int in, int out);
/* dx: (N, in) += dy w; dw: (out, in) += dy^T x; db: (out) += sum over N of dy.
 * Any of dx, dw, db may be NULL. */
ATTN_API attn_status attn_linear_backward(float *dx, float *dw, float *db, const float *dy,
                                          const float *x, const float *w, int N, int in, int out);
/* The same with the three products at a precision (attn_gemm of attn/kernels.h:
 * in bf16, x, w and dy are rounded to bfloat16 for each product, the sums and
 * the bias stay float32); attn_linear_forward and _backward are these at
 * ATTN_FLOAT32. A precision that is no attn_precision fails, naming it. */
ATTN_API attn_status attn_linear_forward_at(attn_precision precision, float *y, const float *x,
                                            const float *w, const float *b, int N, int in,
                                            int out);
ATTN_API attn_status attn_linear_backward_at(attn_precision precision, float *dx, float *dw,
                                             float *db, const float *dy, const float *x,
                                             const float *w, int N, int in, int out);

/* ---- embedding, nn.Embedding ----------------------------------------------------------
 * weight: (num, dim), ids: (N) -> y: (N, dim) = weight[ids]. An id outside
 * [0, num) fails, naming the id and its position. */
ATTN_API attn_status attn_embedding_forward(float *y, const int32_t *ids, const float *weight,
                                            int N, int num, int dim);
/* dweight: (num, dim) += dy rows scattered to their ids; dy: (N, dim). The row
 * padding_idx (or none if -1) gets no gradient, as nn.Embedding(padding_idx=...). */
ATTN_API attn_status attn_embedding_backward(float *dweight, const float *dy, const int32_t *ids,
                                             int N, int num, int dim, int padding_idx);

/* ---- layer normalisation, nn.LayerNorm over the last axis --------------------------------
 * x: (N, D), weight, bias: (D) or NULL (elementwise_affine=False) -> y: (N, D);
 * mean, rstd: (N) kept for backward (rstd = 1 / sqrt(biased variance + eps)).
 * eps must be finite and > 0 (PyTorch's default is 1e-5); y may be x. */
ATTN_API attn_status attn_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                            const float *weight, const float *bias, int N, int D,
                                            float eps);
/* dx: (N, D) +=, dweight, dbias: (D) += (each may be NULL); dy: (N, D); x, mean,
 * rstd, weight as given to and kept by the forward. */
ATTN_API attn_status attn_layernorm_backward(float *dx, float *dweight, float *dbias,
                                             const float *dy, const float *x, const float *mean,
                                             const float *rstd, const float *weight, int N, int D);

/* ---- dropout, inverted as nn.Dropout -------------------------------------------------------
 * x, y: (n) -> y[i] = x[i] * (1 / (1 - p)) if attn_uniform_at(seed, i) >= p, else 0.
 * Nothing is stored: backward draws the same numbers from the same seed. p = 0
 * copies; p must be in [0, 1), and y may be x. */
ATTN_API attn_status attn_dropout_forward(float *y, const float *x, size_t n, float p,
                                          uint64_t seed);
/* dx: (n) += dy kept and scaled the same way. */
ATTN_API attn_status attn_dropout_backward(float *dx, const float *dy, size_t n, float p,
                                           uint64_t seed);

/* ---- pointwise activations ----------------------------------------------------------------
 * ATTN_ACT_GELU is the exact erf form (nn.GELU()), ATTN_ACT_GELU_TANH the tanh
 * approximation (nn.GELU(approximate="tanh")). x, y: (n); y may be x. */
typedef enum attn_activation {
    ATTN_ACT_RELU,
    ATTN_ACT_GELU,
    ATTN_ACT_GELU_TANH,
    ATTN_ACT_TANH,
} attn_activation;

ATTN_API attn_status attn_activation_forward(attn_activation f, float *y, const float *x, size_t n);
/* dx: (n) += f'(x) dy, where x is the forward's input. */
ATTN_API attn_status attn_activation_backward(attn_activation f, float *dx, const float *dy,
                                              const float *x, size_t n);
/* The name PyTorch gives it ("relu", "gelu", "gelu_tanh", "tanh"; "unknown" for a
 * value that is no attn_activation), and back; the latter fails naming the
 * unknown word. */
ATTN_API const char *attn_activation_name(attn_activation f);
ATTN_API attn_status attn_activation_parse(attn_activation *f, const char *name);

/* ---- multi-head attention, torch.nn.MultiheadAttention --------------------------------
 * Parameters (state_dict keys), E = embed_dim:
 *   kdim == vdim == E:  in_proj_weight (3E, E)
 *   otherwise:          q_proj_weight (E, E), k_proj_weight (E, kdim),
 *                       v_proj_weight (E, vdim)
 *   bias:               in_proj_bias (3E), out_proj.bias (E)
 *   always:             out_proj.weight (E, E)
 * Initialised as PyTorch does: the input projections xavier_uniform, biases 0,
 * out_proj.weight as nn.Linear. */
typedef struct attn_mha_config {
    int embed_dim;
    int num_heads;
    int kdim, vdim; /* 0 means embed_dim */
    bool bias;
    bool batch_first;
    float dropout; /* on the attention weights, in training only */
} attn_mha_config;

/* One forward call's inputs. Masks follow nn.MultiheadAttention: a bool mask is
 * true where attention is NOT allowed; a float mask is added to the scores. When
 * several masks are given they combine (bool as -inf, float added), which is what
 * PyTorch does. */
typedef struct attn_mha_input {
    const float *query; /* (B, Lq, E) if batch_first, else (Lq, B, E) */
    const float *key;   /* (B, Lk, kdim) or (Lk, B, kdim) */
    const float *value; /* (B, Lk, vdim) or (Lk, B, vdim) */
    int batch, len_q, len_k;

    const void *key_padding_mask; /* optional, (B, Lk) */
    attn_mask_type key_padding_mask_type; /* ATTN_MASK_BOOL or ATTN_MASK_FLOAT */
    const void *attn_mask;        /* optional, (Lq, Lk) if ndim is 2, (B*H, Lq, Lk) if 3 */
    attn_mask_type attn_mask_type;        /* ATTN_MASK_BOOL or ATTN_MASK_FLOAT */
    int attn_mask_ndim;
    bool is_causal; /* also exclude key j > query i */

    bool training;  /* dropout applies only in training */
    uint64_t dropout_seed;

    /* need_weights: if non-NULL, receives the attention weights (after dropout),
     * (B, Lq, Lk) averaged over heads if average_attn_weights, else (B, H, Lq, Lk). */
    float *weights;
    bool average_attn_weights;
} attn_mha_input;

typedef struct attn_mha attn_mha;

/* Creates the module with parameters initialised from `seed`. Fails on a bad
 * config, e.g. "embed_dim 10 is not divisible by num_heads 3". */
ATTN_API attn_status attn_mha_create(attn_mha **out, const attn_mha_config *cfg, uint64_t seed);
ATTN_API void attn_mha_free(attn_mha *m);
ATTN_API attn_params *attn_mha_params(attn_mha *m);
ATTN_API const attn_mha_config *attn_mha_get_config(const attn_mha *m);

/* out: (B, Lq, E) if batch_first, else (Lq, B, E). The module keeps what backward
 * needs; query, key, value and the masks must stay unchanged until backward. */
ATTN_API attn_status attn_mha_forward(attn_mha *m, float *out, const attn_mha_input *in);

/* Backward of the last forward: dout shaped as out; dquery, dkey, dvalue shaped as
 * query, key, value (each may be NULL, and they may be the same buffer for
 * self-attention); parameter gradients go to attn_mha_params(m)->grad. */
ATTN_API attn_status attn_mha_backward(attn_mha *m, float *dquery, float *dkey, float *dvalue,
                                       const float *dout);

/* ---- the seed's MultiHeadAttention, exactly -------------------------------------------
 * class MultiHeadAttention(nn.Module) of the seed article, quirks included:
 *  - one Linear(head_dim, head_dim, bias=False) each for values, keys, queries,
 *    shared by all heads (applied to each head's slice of the embedding);
 *  - energy = einsum(queries, keys), masked_fill(mask == 0, -1e20), then divided
 *    by sqrt(embed_size) (not sqrt(head_dim)) before the softmax; a fully masked
 *    row is therefore uniform, not zero;
 *  - fc_out = Linear(embed_size, embed_size) with bias.
 * Keys: values.weight (hd, hd), keys.weight (hd, hd), queries.weight (hd, hd),
 * fc_out.weight (E, E), fc_out.bias (E); initialised as nn.Linear. */
typedef struct attn_seed_mha attn_seed_mha;

ATTN_API attn_status attn_seed_mha_create(attn_seed_mha **out, int embed_size, int heads,
                                          uint64_t seed);
ATTN_API void attn_seed_mha_free(attn_seed_mha *m);
ATTN_API attn_params *attn_seed_mha_params(attn_seed_mha *m);

/* forward(values, keys, query, mask):
 * values: (N, Lk, E), keys: (N, Lk, E), query: (N, Lq, E) -> out: (N, Lq, E).
 * mask: NULL, or an ATTN_MASK_BOOL_KEEP mask over (N, heads, Lq, Lk) (zero =
 * masked), e.g. shaped (N, 1, 1, Lk) for padding or (N, 1, Lq, Lk) for causal;
 * the module applies it with the seed's -1e20 fill. weights: optional
 * (N, heads, Lq, Lk). Inputs and mask data must stay unchanged until backward. */
ATTN_API attn_status attn_seed_mha_forward(attn_seed_mha *m, float *out, float *weights,
                                           const float *values, const float *keys,
                                           const float *query, int N, int len_k, int len_q,
                                           const attn_mask *mask);

/* dvalues, dkeys, dquery shaped as the inputs (each may be NULL; they may alias). */
ATTN_API attn_status attn_seed_mha_backward(attn_seed_mha *m, float *dvalues, float *dkeys,
                                            float *dquery, const float *dout);

#ifdef __cplusplus
}
#endif
#endif
