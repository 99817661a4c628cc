/* attn/attention.h: the attention mechanisms as functions over flat arrays.
 *
 * Conventions (all of them hold for every function here):
 *  - Arrays are row-major float32; the shape of each is given in the comment, e.g.
 *    q: (B, Lq, D) means q[(b * Lq + i) * D + d].
 *  - Every differentiable operation is a pair attn_<op>_forward / attn_<op>_backward.
 *    Backward ADDS into its gradient buffers (+=), as PyTorch does; the caller zeroes
 *    them. A gradient pointer may be NULL when that gradient is not wanted.
 *  - Inputs are not modified. Outputs must not overlap inputs unless stated.
 *  - A row whose keys are all masked out gets weights 0, context 0 and zero
 *    gradients; NaN never comes from masking. (A finite fill, see attn_mask, makes
 *    such a row uniform instead, exactly as PyTorch's masked_fill does.)
 *  - NaN or Inf in q, k, v or scores propagates to the outputs that depend on it,
 *    as in PyTorch; nothing is checked or replaced (a -inf score is a masked key).
 */
#ifndef ATTN_ATTENTION_H
#define ATTN_ATTENTION_H

#include <stdbool.h>
#include <stdint.h>

#include "attn/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- masks ---------------------------------------------------------------------
 * A mask is read as if it had the shape (B, H, Lq, Lk) of the scores it applies to;
 * it is stored with any shape that broadcasts to that one under PyTorch's rules
 * (shapes aligned on the right, each dimension equal or 1, missing leading
 * dimensions broadcast). Functions with fewer dimensions say which ones they use:
 * soft attention sees (B, 1, Lq, Lk), softmax (1, 1, rows, n). */
typedef enum attn_mask_type {
    ATTN_MASK_BOOL,      /* uint8_t; nonzero = excluded (nn.MultiheadAttention's
                          * attn_mask and key_padding_mask) */
    ATTN_MASK_BOOL_KEEP, /* uint8_t; nonzero = may be attended, zero = excluded
                          * (F.scaled_dot_product_attention; the seed's mask == 0) */
    ATTN_MASK_FLOAT      /* float; added to the scaled scores (-inf excludes) */
} attn_mask_type;

typedef struct attn_mask {
    attn_mask_type type;
    const void *data;
    int64_t stride[4]; /* elements per step of b, h, i, j; 0 where broadcast */
    /* For the bool types: false gives excluded scores -inf; true replaces them with
     * fill_value (PyTorch's masked_fill; the seed fills -1e20 before scaling). */
    bool fill;
    float fill_value;
} attn_mask;

/* Describes `data` of shape shape[0..ndim) (1 <= ndim <= 4) broadcast to
 * target = (B, H, Lq, Lk). Fails, naming both shapes, if they do not broadcast. */
ATTN_API attn_status attn_mask_init(attn_mask *mask, attn_mask_type type, const void *data,
                                    int ndim, const int64_t *shape, const int64_t target[4]);

/* The masked score at (b, h, i, j): score plus the float term, -inf where a bool
 * mask excludes, or fill_value there if mask->fill is set. */
ATTN_API float attn_mask_apply(const attn_mask *mask, float score, int64_t b, int64_t h, int64_t i,
                               int64_t j);

/* ---- softmax over the last axis -------------------------------------------------
 * x, y: (rows, n); mask: optional, seen as (1, 1, rows, n). y may be x.
 * y = softmax(x + mask) computed as exp(x - max) / sum, stable for any finite x. */
ATTN_API attn_status attn_softmax_forward(float *y, const float *x, const attn_mask *mask, int rows,
                                          int n);
/* dx += y * (dy - sum_j dy_j y_j); masked entries have y = 0 and get nothing. */
ATTN_API attn_status attn_softmax_backward(float *dx, const float *dy, const float *y, int rows,
                                           int n);

/* ---- score functions of soft attention -----------------------------------------
 * q: (B, Lq, Dq), k: (B, Lk, Dk), scores: (B, Lq, Lk). */

/* Dot (Luong; scale = 1) and scaled dot (Transformer; scale = 1/sqrt(D)):
 * scores[b,i,j] = scale * q[b,i,:] . k[b,j,:]; Dq = Dk = D. */
ATTN_API attn_status attn_score_dot_forward(float *scores, const float *q, const float *k, int B,
                                            int Lq, int Lk, int D, float scale);
ATTN_API attn_status attn_score_dot_backward(float *dq, float *dk, const float *dscores,
                                             const float *q, const float *k, int B, int Lq, int Lk,
                                             int D, float scale);

/* General / bilinear (Luong): scores[b,i,j] = q[b,i,:] W k[b,j,:]^T, W: (Dq, Dk). */
ATTN_API attn_status attn_score_general_forward(float *scores, const float *q, const float *w,
                                                const float *k, int B, int Lq, int Lk, int Dq,
                                                int Dk);
ATTN_API attn_status attn_score_general_backward(float *dq, float *dw, float *dk,
                                                 const float *dscores, const float *q,
                                                 const float *w, const float *k, int B, int Lq,
                                                 int Lk, int Dq, int Dk);

/* Additive / concat (Bahdanau), A hidden units:
 * scores[b,i,j] = v . tanh(Wq q[b,i,:] + Wk k[b,j,:] + bias)
 * wq: (A, Dq), wk: (A, Dk), bias: (A) or NULL, v: (A). */
typedef struct attn_additive_weights {
    const float *wq, *wk, *bias, *v;
    int hidden; /* A */
} attn_additive_weights;
typedef struct attn_additive_grads {
    float *wq, *wk, *bias, *v; /* each NULL or shaped as its weight */
} attn_additive_grads;

ATTN_API attn_status attn_score_additive_forward(float *scores, const float *q, const float *k,
                                                 const attn_additive_weights *w, int B, int Lq,
                                                 int Lk, int Dq, int Dk);
ATTN_API attn_status attn_score_additive_backward(float *dq, float *dk,
                                                  const attn_additive_grads *dw,
                                                  const float *dscores, const float *q,
                                                  const float *k, const attn_additive_weights *w,
                                                  int B, int Lq, int Lk, int Dq, int Dk);

/* Additive scores over queries and keys already projected, for a caller that
 * projects each source's keys once and scores a few queries against them at a time
 * (Bahdanau's decoder: kp = Wk h_j + bias at encoding, qp = Wq s_{t-1} at step t,
 * Lq = 1, or the beam width when decoding). The tanh terms are kept for the
 * backward. qp: (B, Lq, A), kp: (B, Lk, A), v: (A) ->
 * u: (B, Lq, Lk, A) = tanh(qp[b,i,:] + kp[b,j,:]), scores: (B, Lq, Lk) = u v. */
ATTN_API attn_status attn_score_additive_projected_forward(float *scores, float *u,
                                                           const float *qp, const float *kp,
                                                           const float *v, int B, int Lq, int Lk,
                                                           int A);
/* dqp: (B, Lq, A), dkp: (B, Lk, A), dv: (A) +=, each optional; dscores: (B, Lq, Lk);
 * u and v as the forward had them. */
ATTN_API attn_status attn_score_additive_projected_backward(float *dqp, float *dkp, float *dv,
                                                            const float *dscores, const float *u,
                                                            const float *v, int B, int Lq,
                                                            int Lk, int A);

/* ---- soft attention --------------------------------------------------------------
 * scores: (B, Lq, Lk), mask: optional, seen as (B, 1, Lq, Lk), values: (B, Lk, Dv)
 * weights: (B, Lq, Lk) = softmax(scores + mask) over Lk; each row sums to 1 over
 * the keys not masked out (or is all 0 when every key is).
 * context: (B, Lq, Dv) = weights @ values.
 * weights is required: backward needs it. */
ATTN_API attn_status attn_soft_attention_forward(float *context, float *weights,
                                                 const float *scores, const attn_mask *mask,
                                                 const float *values, int B, int Lq, int Lk,
                                                 int Dv);
ATTN_API attn_status attn_soft_attention_backward(float *dscores, float *dvalues,
                                                  const float *dcontext, const float *weights,
                                                  const float *values, int B, int Lq, int Lk,
                                                  int Dv);

/* ---- hard attention ----------------------------------------------------------------
 * One key per query. scores: (B, Lq, Lk), mask as in soft attention, values:
 * (B, Lk, Dv) -> index: (B, Lq), context: (B, Lq, Dv) = values[b, index[b,i], :].
 * A row with every key masked gets index -1, context 0 and weights 0.
 *   ARGMAX: the argmax of the masked scores (the first on ties).
 *   SAMPLE: one key drawn from softmax(scores + mask) with the uniform number
 *           attn_uniform_at(seed, b * Lq + i) (inverse CDF).
 *   GUMBEL: the argmax of z = (scores + mask + g) / tau, with the Gumbel noise
 *           g_j = -log(-log(u_j)), u_j = attn_uniform_at(seed, (b * Lq + i) * Lk + j)
 *           + 2^-25 in double (centred in its 2^-24 step, so never 0 or 1),
 *           g_j rounded to float: a draw from softmax(scores + mask) too, whose
 *           relaxation softmax(z) the backward follows (Jang et al., 2017,
 *           straight-through).
 * This is the one keying of hard attention's draws: a caller that draws at many
 * steps derives one seed per step. */
typedef enum attn_hard_mode { ATTN_HARD_ARGMAX, ATTN_HARD_SAMPLE, ATTN_HARD_GUMBEL } attn_hard_mode;

typedef struct attn_hard_pick {
    attn_hard_mode mode;
    uint64_t seed; /* keys SAMPLE's and GUMBEL's uniform numbers */
    float tau;     /* GUMBEL's temperature, finite and > 0; unused otherwise */
} attn_hard_pick;

/* weights: (B, Lq, Lk), optional for ARGMAX and SAMPLE, where it gets
 * softmax(scores + mask), the distribution a key is drawn from; required for
 * GUMBEL, where it gets the relaxed sample softmax(z). */
ATTN_API attn_status attn_hard_attention_forward(int32_t *index, float *context, float *weights,
                                                 const float *scores, const attn_mask *mask,
                                                 const float *values, int B, int Lq, int Lk, int Dv,
                                                 const attn_hard_pick *pick);

/* dvalues: (B, Lk, Dv) += dcontext at the chosen keys; dscores: (B, Lq, Lk) +=,
 * for GUMBEL only, the straight-through gradient: that of context = y @ values
 * with y = softmax(z) the forward's weights, through z = (scores + g) / tau.
 * ARGMAX and SAMPLE pass no gradient to the scores (a choice has no slope; a
 * score-function estimator such as REINFORCE is the caller's, from the weights
 * and its reward). Each of dscores and dvalues is optional; index and weights are
 * the forward's (weights only read for GUMBEL); an index that is neither a key
 * nor -1 fails, naming it. */
ATTN_API attn_status attn_hard_attention_backward(float *dscores, float *dvalues,
                                                  const float *dcontext, const int32_t *index,
                                                  const float *weights, const float *values, int B,
                                                  int Lq, int Lk, int Dv,
                                                  const attn_hard_pick *pick);

/* ---- scaled dot-product attention ---------------------------------------------------
 * q: (B, H, Lq, D), k: (B, H, Lk, D), v: (B, H, Lk, Dv), out: (B, H, Lq, Dv),
 * lse: (B, H, Lq) the log-sum-exp of each row of masked, scaled scores (-inf for a
 * fully masked row), kept for backward.
 * weights (optional): (B, H, Lq, Lk) the attention actually applied to v, i.e.
 * after dropout, as nn.MultiheadAttention returns it.
 *   S = scale * q k^T, plus the ALiBi bias -alibi_slopes[h] * |p_i - j| if slopes
 *   are given, masked by `causal` (key j is excluded when j > p_i), then by
 *   `window` (key j is excluded when p_i - j >= window), then by attn_mask and
 *   key_padding_mask, where p_i = q_offset + i is query row i's position among
 *   the keys (q_offset 0: aligned at the top left as in PyTorch's is_causal;
 *   q_offset = Lk - Lq: at the bottom right, PyTorch's causal_lower_right);
 *   P = softmax(S); P' = dropout(P) with keep probability 1 - dropout_p, kept
 *   entries scaled by 1 / (1 - dropout_p), the keep decision for (b, h, i, j) drawn
 *   as attn_uniform_at(dropout_seed, ((b * H + h) * Lq + i) * Lk + j) >= dropout_p;
 *   out = P' v.
 * Where the rows lie (row_stride): each of q, k, v and out is (B, H, L, D)
 * contiguous when its stride is 0, the default. A stride s > 0 makes it
 * (B, L, H, D) with a position's heads side by side and consecutive positions s
 * elements apart: element (b, h, i, d) at (b L + i) s + h D + d, what PyTorch's
 * x.view(B, L, H, D).transpose(1, 2) reads of a (B, L, s) tensor. So q, k and v
 * can be the column slices of one (B, L, 3 H D) projection (stride 3 H D, k
 * starting H D in) and out the (B, L, H Dv) input of the output projection
 * (stride H Dv), with no copy to or from heads. dq, dk, dv and dout lie as q, k,
 * v and out do; lse is always (B, H, Lq). */
typedef struct attn_sdpa_strides {
    int64_t q, k, v, out; /* 0, or at least H D (H Dv for v and out) */
} attn_sdpa_strides;

typedef struct attn_sdpa_config {
    int batch, heads, len_q, len_k, dim_qk, dim_v; /* B, H, Lq, Lk, D, Dv */
    float scale;                  /* 0 means 1 / sqrt(D) */
    bool causal;
    /* Sliding window (Mistral, Longformer): 0 = none; when > 0 a query sees itself
     * and the window - 1 keys before it (keys after it are governed by `causal`),
     * so with `causal` at most `window` keys ending at itself. Computed, not read. */
    int window;
    /* The position of query row 0 among the keys (>= 0): row i stands at
     * q_offset + i for `causal`, `window` and ALiBi. Incremental decoding sets it
     * to the number of keys already cached, so that n new rows attend over the
     * cache and themselves (Lk = q_offset + n) with the masks of a full pass.
     * Masks and dropout still index rows by i. */
    int q_offset;
    /* ALiBi (Press et al., 2022): NULL = none, else (H) finite slopes m_h, and the
     * score of (b, h, i, j) gets -m_h * |p_i - j| after scaling, before the masks
     * (|i - j| as FlashAttention-2 defines it for non-causal attention; under
     * `causal` it is the paper's -m_h (p_i - j)). Computed, not read; not owned. */
    const float *alibi_slopes;
    const attn_mask *attn_mask;        /* optional */
    const attn_mask *key_padding_mask; /* optional; a second mask, usually (B, 1, 1, Lk) */
    float dropout_p;                   /* in [0, 1) */
    uint64_t dropout_seed;
    attn_sdpa_strides row_stride; /* {0}: every tensor (B, H, L, D); see above */
} attn_sdpa_config;

/* Checks sizes, scale, dropout_p, window (>= 0), q_offset (>= 0, with the last
 * row's position q_offset + Lq - 1 an int), alibi_slopes (finite), the two
 * masks (a known type, with data) and the row strides (0 or wide enough for the
 * heads); names the offending field (and head). */
ATTN_API attn_status attn_sdpa_check(const attn_sdpa_config *cfg);

/* The scale in use: cfg->scale, or 1 / sqrt(D) when it is 0. */
ATTN_API float attn_sdpa_scale(const attn_sdpa_config *cfg);

/* attn_sdpa_forward and attn_sdpa_backward run the fused kernel (tiled, online
 * softmax, O(B·H·Lq) extra memory, SIMD chosen at run time) whenever weights is
 * NULL, and the reference otherwise. The reference functions below are the plain
 * row-at-a-time version the fused kernel is tested against; their results agree
 * up to rounding. */

ATTN_API attn_status attn_sdpa_forward(float *out, float *lse, float *weights, const float *q,
                                       const float *k, const float *v, const attn_sdpa_config *cfg);

/* dq: (B, H, Lq, D), dk: (B, H, Lk, D), dv: (B, H, Lk, Dv), dout like out; lse is
 * what the forward produced for the same inputs and config (it marks the fully
 * masked rows). Backward recomputes P from q and k, each row's max and sum as the
 * forward finds them, rather than storing it (FlashAttention-2), and sums
 * D_i = sum_j P'_ij dP'_ij from the same recomputed values rather than from
 * dout . out, as PyTorch's softmax backward does: each row of the score gradient
 * then sums to zero up to one rounding, which keeps a gradient that is a small
 * difference of large terms (a nearly one-hot row) as accurate as PyTorch's. */
ATTN_API attn_status attn_sdpa_backward(float *dq, float *dk, float *dv, const float *dout,
                                        const float *q, const float *k, const float *v,
                                        const float *lse, const attn_sdpa_config *cfg);

ATTN_API attn_status attn_sdpa_reference_forward(float *out, float *lse, float *weights,
                                                 const float *q, const float *k, const float *v,
                                                 const attn_sdpa_config *cfg);
ATTN_API attn_status attn_sdpa_reference_backward(float *dq, float *dk, float *dv,
                                                  const float *dout, const float *q, const float *k,
                                                  const float *v, const float *lse,
                                                  const attn_sdpa_config *cfg);

/* The gradient with respect to the weights P themselves, as PyTorch's retain_grad
 * on the softmax's output gives it (what gradient-weighted attention multiplies
 * the weights by): dweights: (B, H, Lq, Lk) += dout v^T per (b, h), except where
 * the masks exclude key j from row i (causal, window, either mask), where P is a
 * constant 0 and the gradient stays 0. dout: (B, H, Lq, Dv), where row_stride.out
 * puts out; q, k, v as for the forward (q and k only decide the masked cells).
 * Needs dropout_p 0. */
ATTN_API attn_status attn_sdpa_weights_backward(float *dweights, const float *dout,
                                                const float *q, const float *k, const float *v,
                                                const attn_sdpa_config *cfg);

/* ---- interventions on the weights ----------------------------------------------------
 * Faithfulness tests (Jain and Wallace, 2019; Wiegreffe and Pinter, 2019) replace
 * an attention's weights after the softmax, before they multiply the values, and
 * see whether the output changes:
 *   ATTN_EDIT_PERMUTE  each row's weights shuffled among the keys the row sees
 *                      (a uniformly random permutation, Fisher-Yates with Philox
 *                      numbers keyed by (seed, the row's index)); a key the masks
 *                      exclude keeps its 0;
 *   ATTN_EDIT_UNIFORM  1 / (the keys the row sees) on each of them, 0 elsewhere.
 * The keys a row sees are those whose masked score is not -inf (causal, window,
 * either mask), not those with a weight above 0: a seen key whose weight
 * underflowed is still a key. A row that sees no key stays 0. Only head `head`
 * is edited, or every head with -1. A row's index is its place (b, h, i) in the
 * call's weights, flattened, plus first_row: a caller that attends one map in
 * several calls (an RNN decoder, step by step) gives each call the index of its
 * first row, so that a map's row r is shuffled the same way however it is cut. */
typedef enum attn_edit_kind { ATTN_EDIT_PERMUTE, ATTN_EDIT_UNIFORM } attn_edit_kind;

typedef struct attn_weights_edit {
    attn_edit_kind kind;
    int head;          /* the head edited, or -1 for every head */
    uint64_t seed;     /* PERMUTE's key */
    int64_t first_row; /* the index of the call's first row, >= 0 */
} attn_weights_edit;

/* Checks the kind, head (-1 or below heads) and first_row. */
ATTN_API attn_status attn_weights_edit_check(const attn_weights_edit *edit, int heads);

/* One row: w: its weights, seen: (n_seen) the indices of the keys it sees, in
 * ascending order -> those weights edited in place (the others, 0 after a
 * softmax, are not touched); row: the row's index, its shuffle's key. */
ATTN_API void attn_weights_edit_row(float *w, const int *seen, int n_seen,
                                    const attn_weights_edit *edit, int64_t row);

/* attn_sdpa_reference_forward with the weights edited before they multiply v:
 * out: (B, H, Lq, Dv) = edited P v; lse: (B, H, Lq) is the softmax's, as without
 * the edit; weights (optional): the edited weights. Needs dropout_p 0. With the
 * rows of heads other than edit->head, the same bits as the reference. */
ATTN_API attn_status attn_sdpa_edited_forward(float *out, float *lse, float *weights,
                                              const float *q, const float *k, const float *v,
                                              const attn_sdpa_config *cfg,
                                              const attn_weights_edit *edit);

/* attn_soft_attention_forward with the weights edited (one head: edit->head is
 * -1 or 0) before they multiply the values; weights gets the edited weights. */
ATTN_API attn_status attn_soft_attention_edited_forward(float *context, float *weights,
                                                        const float *scores,
                                                        const attn_mask *mask,
                                                        const float *values, int B, int Lq,
                                                        int Lk, int Dv,
                                                        const attn_weights_edit *edit);

/* The fused kernel's instruction set in use: the library's one choice,
 * attn_simd_variant() of attn/core.h. */
ATTN_API const char *attn_sdpa_kernel(void);

/* The memory, in bytes, that a fused attn_sdpa_forward (backward false) or
 * attn_sdpa_forward then attn_sdpa_backward (backward true) needs beyond q, k, v,
 * out and their gradients: the lse buffer (B·H·Lq floats) the caller allocates,
 * plus the scratch the kernel uses inside each call at the current thread count
 * (attn_get_num_threads). That scratch is kept for the next call (the largest
 * one yet stays allocated, so that calls in a loop do not map fresh pages each
 * time); a call made while another holds it allocates and frees its own. It grows as B·H·Lq, never as Lq·Lk.
 * Returns 0 if cfg fails attn_sdpa_check or no kernel can run (a bad ATTN_SIMD). */
ATTN_API size_t attn_sdpa_workspace_bytes(const attn_sdpa_config *cfg, bool backward);

/* ---- scaled dot-product attention on bfloat16 inputs -------------------------------
 * The fused kernel with q, k, v (and dout) stored as bfloat16 (uint16_t, the top
 * half of a float32; attn_bf16_from_float of attn/core.h rounds to it), same
 * shapes, config, masks, dropout and contract as attn_sdpa_forward / _backward:
 *   q: (B, H, Lq, D), k: (B, H, Lk, D), v: (B, H, Lk, Dv)   bfloat16
 *   out: (B, H, Lq, Dv), lse: (B, H, Lq)                    float32
 *   dout: (B, H, Lq, Dv)                                    bfloat16
 *   dq: (B, H, Lq, D), dk: (B, H, Lk, D), dv: (B, H, Lk, Dv) float32, added into
 * Scores, the softmax and every sum are float32. The forward's products run on
 * pairs of bfloat16 (vdpbf16ps when the CPU has AVX512_BF16, else the same
 * arithmetic on the values widened to float32, with the same bits on the same
 * CPU); the probabilities are rounded to bfloat16 before they multiply v, so
 * |out - exact attention on these inputs| <= (2^-8 + float32 terms) times
 * sum_j P_ij |v_jc|. The backward recomputes P as the forward does and rounds
 * P' and the score gradient dS to bfloat16 before the products that read them,
 * so each gradient is within (2^-8 + float32 terms) of the sum of the absolute
 * terms it adds up (the formulas: tests/unit/test_flash_bf16.c). Results do not
 * depend on the thread count. */
ATTN_API attn_status attn_sdpa_bf16_forward(float *out, float *lse, const uint16_t *q,
                                            const uint16_t *k, const uint16_t *v,
                                            const attn_sdpa_config *cfg);
ATTN_API attn_status attn_sdpa_bf16_backward(float *dq, float *dk, float *dv, const uint16_t *dout,
                                             const uint16_t *q, const uint16_t *k,
                                             const uint16_t *v, const float *lse,
                                             const attn_sdpa_config *cfg);

/* The bf16 kernels in use and how they multiply, e.g. "avx512bf16: bf16 pairs
 * multiplied by vdpbf16ps" or "avx2: bf16 widened to float32" (the library's one
 * instruction-set choice, ATTN_SIMD). */
ATTN_API const char *attn_sdpa_bf16_kernel(void);

/* The memory the bf16 kernels need beyond their arguments, as
 * attn_sdpa_workspace_bytes counts it (the lse buffer included); 0 if cfg fails
 * attn_sdpa_check or no kernel can run. */
ATTN_API size_t attn_sdpa_bf16_workspace_bytes(const attn_sdpa_config *cfg, bool backward);

/* ---- positions --------------------------------------------------------------------------
 * The sinusoidal table of "Attention Is All You Need": pe: (L, E),
 * pe[t, 2i] = sin(t / 10000^(2i/E)), pe[t, 2i+1] = cos(t / 10000^(2i/E)),
 * computed in double. */
ATTN_API attn_status attn_sinusoidal_positions(float *pe, int L, int E);

/* Rotary position embedding (RoPE, Su et al., 2021) in the "rotate half" layout of
 * GPT-NeoX and LLaMA: x, y: (B, H, L, D), D even; the row at index t is at position
 * pos0 + t, and its dimensions i and i + D/2 (i < D/2) rotate by the angle
 * (pos0 + t) * theta^(-2i/D) (computed in double):
 *   y_i = x_i cos - x_{i+D/2} sin,   y_{i+D/2} = x_{i+D/2} cos + x_i sin.
 * y may be x. theta must be finite and > 0, pos0 >= 0. */
ATTN_API attn_status attn_rope_forward(float *y, const float *x, int B, int H, int L, int D,
                                       int pos0, float theta);
/* dx: (B, H, L, D) += the inverse rotation of dy (a rotation's transpose). */
ATTN_API attn_status attn_rope_backward(float *dx, const float *dy, int B, int H, int L, int D,
                                        int pos0, float theta);

/* ALiBi's head slopes (Press et al., 2022), slopes: (H): for H a power of two
 * m_h = 2^(-8 (h + 1) / H); otherwise the slopes for the power of two n just
 * below H, then every other slope for 2n, as the paper's code does. */
ATTN_API attn_status attn_alibi_slopes(float *slopes, int H);

#ifdef __cplusplus
}
#endif
#endif
