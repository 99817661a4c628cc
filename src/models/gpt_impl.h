/* Internal: the language model's state, shared by its construction (gpt.c), the
 * training passes (gpt_forward.c, gpt_backward.c), inference with the key-value
 * cache (gpt_cache.c, gpt_generate.c) and the block both passes run (gpt_block.c). */
#ifndef ATTN_SRC_MODELS_GPT_IMPL_H
#define ATTN_SRC_MODELS_GPT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/gpt.h"

/* A Linear's or LayerNorm's weight and bias (b and db NULL without biases). */
typedef struct gpt_affine {
    float *w, *b, *dw, *db;
} gpt_affine;

typedef struct gpt_layer {
    gpt_affine ln_1, c_attn, attn_proj, ln_2, c_fc, mlp_proj;
} gpt_layer;

/* What a training forward keeps of one block, for N = B T rows. */
typedef struct gpt_layer_acts {
    float *mid;               /* (N, C) the stream after the attention sublayer */
    float *ln1, *ln1_mean, *ln1_rstd; /* (N, C), (N), (N) */
    float *q, *k, *v;         /* (B, H, T, hd) after RoPE; k and v repeated per group */
    uint16_t *q16, *k16, *v16; /* in bf16 precision: q, k, v rounded, which attention reads */
    float *lse;               /* (B, H, T) attention's log-sum-exp */
    float *merged;            /* (N, C) the heads side by side */
    float *ln2, *ln2_mean, *ln2_rstd;
    /* (N, 4C): c_fc's output, replaced by the forward with GELU's slope there
     * (what backward needs of it), and GELU's output (float32 precision only;
     * bf16 keeps it only rounded, in gelu16) */
    float *fc_slope, *gelu;
    /* in bf16 precision: the Linears' inputs rounded, as the forward's products
     * read them and the weights' gradients read them again; else NULL */
    uint16_t *ln1_16, *merged16, *ln2_16; /* (N, C) */
    uint16_t *gelu16;                     /* (N, 4C) */
} gpt_layer_acts;

struct attn_gpt {
    attn_gpt_config cfg; /* n_kv_head resolved */
    /* Of the products of every pass: the Linears, attention and lm_head
     * (attn_gpt_set_precision); everything else is float32. */
    attn_precision precision;
    int head_dim, qkv_width; /* hd, (H + 2 Hkv) hd */
    attn_params params;
    bool shares_values; /* params.data is another model's (attn_gpt_replicate) */
    float *wte, *dwte, *wpe, *dwpe; /* wpe: learned positions, else NULL */
    float *head, *dhead;            /* lm_head: wte's when tied */
    gpt_affine ln_f;
    gpt_layer layers[ATTN_GPT_MAX_LAYERS];
    float *sinusoids; /* (block_size, C) for sinusoidal positions, else NULL */
    float *slopes;    /* (H) for ALiBi, else NULL */

    /* The last forward's buffers, carved from arena (capacity bytes). */
    void *arena;
    size_t capacity;
    int B, T;
    bool has_targets, has_backward_input;
    attn_gpt_pass pass;
    const int32_t *ids, *targets; /* the caller's, valid until backward */
    float *stream;  /* (L + 1, N, C): the input of each block, then the last output */
    gpt_layer_acts acts[ATTN_GPT_MAX_LAYERS];
    float *lnf, *lnf_mean, *lnf_rstd;
    uint16_t *lnf16;       /* (N, C) lnf rounded, in bf16 precision */
    float *logits, *probs; /* (N, V) */
    float *qkv;             /* (N, qkv_width) scratch */
    float *att;             /* (B, H, T, hd) scratch: attention's output before merge_heads */
    /* backward scratch */
    float *dstream, *dln;   /* (N, C) */
    float *dwide, *dwide2;  /* (N, 4C); dwide2 float32 precision only (else NULL) */
    float *dqkv;            /* (N, qkv_width) */
    float *dq, *dk, *dv, *drot; /* (B, H, T, hd) */
    uint16_t *datt16;       /* (B, H, T, hd) in bf16 precision: attention's dout rounded */
    uint16_t *dy16;         /* in bf16 precision: a Linear's output gradient rounded, which
                             * both of its products read: (N, max(qkv_width, 4C, V)) */
    float *bias_block_sums; /* a Linear's bias gradient by blocks of rows:
                             * (attn_bf16_sum_blocks(N), max(qkv_width, 4C, V)) */
    /* In bf16 precision, every parameter rounded to bf16 (params.total values,
     * laid out as params.data) by each training-pass forward, once for all the
     * products of its step; NULL until the first. */
    uint16_t *params16;
    float *dlogits;         /* (N, V) */
    /* When not NULL (recording, B = 1): per block, (H, T, T), where backward adds
     * the gradient with respect to the block's attention weights. */
    float *const *weights_grad;
    /* When not NULL (an intervention, attn_gpt_intervene): block edit_layer's
     * attention edits its weights before they multiply v. */
    const attn_weights_edit *edit;
    int edit_layer;
};

/* The model with its parameters laid out and zero, for a caller that writes
 * them: attn_gpt_create draws them, attn_gpt_from_file's caller reads them. */
attn_status attn_gpt_allocate(attn_gpt **out, const attn_gpt_config *cfg);

/* ---- shared by the passes ---- */

#define GPT_LN_EPS 1e-5f
enum { GPT_IGNORE_NONE = -100 }; /* no target is ignored */

/* In bf16 inference, a Linear over this many rows or more (a long prompt's pass)
 * runs as a matrix product (attn_affine_product: oneDNN's bf16 matmul), fewer
 * rows (decoding, short prompts) as dot products on the bf16 weights
 * (attn_bf16_weights_product, each weight read once, the same bits for any row
 * count). A new row count first creates the matmul's primitives, about 5 ms for
 * a prompt's four shapes in a fresh process; the faster product repays that from
 * about 96 rows (a 224-token prompt's pass 36 -> 26 ms). */
enum { GPT_BF16_PRODUCT_ROWS = 96 };

/* Dropout sites: each draws from its own stream of the pass's (seed, step). */
#define GPT_SITE_EMBEDDING 0u
#define GPT_SITE_ATTENTION(l) (3u * (uint64_t)(l) + 1u)
#define GPT_SITE_ATTENTION_OUT(l) (3u * (uint64_t)(l) + 2u)
#define GPT_SITE_MLP_OUT(l) (3u * (uint64_t)(l) + 3u)

uint64_t attn_gpt_dropout_seed(const attn_gpt *m, uint64_t site);
/* The dropout probability of the last pass: the config's in training, else 0. */
float attn_gpt_dropout(const attn_gpt *m);
/* Block l's attention over the last pass's B x T batch. */
attn_sdpa_config attn_gpt_sdpa_config(const attn_gpt *m, int l);

/* Checks ids (N) are in [0, V), naming the first bad one and its position. */
attn_status attn_gpt_check_ids(const attn_gpt *m, const int32_t *ids, int64_t n, const char *what);

/* src: rows of cols floats at stride ld_src -> dst: the same rows at stride
 * ld_dst: the float32 twin of attn_bf16_round_tile (kernels/bf16_rows.h), for the
 * head layouts of the training pass (each (b, h) plane one tile). */
void attn_gpt_copy_tile(float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols);

/* x: (T, C) rows of one sequence at positions pos0 .. pos0 + T - 1:
 * x = wte[ids] + the position term (learned or sinusoidal; none for RoPE and ALiBi). */
void attn_gpt_embed(const attn_gpt *m, float *x, const int32_t *ids, int T, int pos0);

/* Parameter w of m in params16 (m->params16 or a pass's copy of it); NULL when
 * params16 is NULL. */
const uint16_t *attn_gpt_rounded(const attn_gpt *m, const uint16_t *params16, const float *w);

/* Backward of the last forward from the gradient the caller put in m->dlogits
 * (N, V), with respect to the logits: parameters' gradients += and, if set,
 * m->weights_grad. attn_gpt_backward puts the mean cross-entropy's there. */
attn_status attn_gpt_backward_logits(attn_gpt *m);

/* ---- the block, written once for training and the key-value cache (gpt_block.c) ---- */

/* Where block l's pass over N rows leaves its intermediates. Training gives each
 * block its own, which backward reads; inference reuses one set and may alias
 * ln1 with ln2, the means and rstds, fc with gelu, and mid with x and y. */
typedef struct gpt_block_buffers {
    float *ln1, *ln1_mean, *ln1_rstd; /* (N, C), (N), (N) */
    float *qkv;                       /* (N, qkv_width) */
    float *merged;                    /* (N, C) attention's output, the heads side by side */
    float *mid;                       /* (N, C) the stream after the attention sublayer */
    float *ln2, *ln2_mean, *ln2_rstd; /* (N, C), (N), (N) */
    float *fc, *gelu;                 /* (N, 4C) */
    uint16_t *x16;                    /* (N, 4C) a Linear's input in bf16 (bf16 weights only) */
    /* Inference only (else 0): the rows the last block runs past attention, its
     * last last_rows; their output alone is written, the others' left as it was. */
    int last_rows;
    /* Training only (else NULL): GELU's slope at fc, written over fc; and in
     * bf16 precision the Linears' inputs rounded (kept for backward) and the
     * weights rounded (m->params16). */
    float *gelu_slope;
    uint16_t *ln1_16, *merged16, *ln2_16, *gelu16;
    const uint16_t *params16;
    /* Training in bf16: attention writes merged only rounded, into merged16 (the
     * products read nothing else of it) */
    bool merged_rounded;
} gpt_block_buffers;

/* One block's Linear weights rounded to bfloat16, each laid out as its float32
 * weight: the weights bf16 inference reads (gpt_cache.c). */
typedef struct gpt_layer_bf16 {
    uint16_t *c_attn, *attn_proj, *c_fc, *mlp_proj;
} gpt_layer_bf16;

/* A pass's attention, the one part of the block that differs between training
 * (within the batch) and inference (over the cache): block l's
 * qkv: (N, qkv_width) -> merged: (N, C). */
typedef struct gpt_block_attention {
    attn_status (*attend)(void *ctx, int l, float *merged, const float *qkv);
    void *ctx;
    float dropout; /* of the two residual branches (attn_gpt_dropout); 0 in inference */
    /* NULL, or the weights of every block in bf16: the Linears then multiply
     * them by their input rounded to bf16 (b->x16), with float32 sums
     * (kernels/gemv_bf16.h), dropout 0. */
    const gpt_layer_bf16 *bf16;
} gpt_block_attention;

/* Block l: x: (N, C) -> y: (N, C),
 *   mid = x + dropout(attn_proj(attention(ln_1(x)))),
 *   y = mid + dropout(mlp_proj(gelu(c_fc(ln_2(mid))))).
 * y and b->mid may be x when att->dropout is 0. */
attn_status attn_gpt_block_forward(const attn_gpt *m, int l, float *y, const float *x, int N,
                                   const gpt_block_buffers *b, const gpt_block_attention *att);

/* attn_gpt_cache_forward, also copying into weights[l] (if weights is not NULL)
 * the softmax every head of block l took: (H, n, length + n), length the
 * cache's before the call. */
attn_status attn_gpt_cache_forward_weights(attn_gpt *m, attn_gpt_cache *c, float *logits,
                                           const int32_t *ids, int n, float *const *weights);

/* attn_gpt_cache_forward with logits: (V) of the last new token only, what
 * generation draws from: ln_f and lm_head run on that row alone. */
attn_status attn_gpt_cache_forward_last(attn_gpt *m, attn_gpt_cache *c, float *logits,
                                        const int32_t *ids, int n);

#endif
