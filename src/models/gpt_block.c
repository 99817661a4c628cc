/* The language model's block, written once for training (gpt_forward.c) and for
 * inference with the key-value cache (gpt_cache.c):
 *   mid = x + dropout(attn_proj(attention(ln_1(x))))
 *   y = mid + dropout(mlp_proj(gelu(c_fc(ln_2(mid)))))
 * The two passes differ only in the attention between c_attn and attn_proj
 * (training attends within its batch and keeps q, k and v for backward,
 * inference attends over the cache), which each gives as a function, and in
 * their buffers (training keeps every block's for backward, inference reuses one
 * set). */
#include "attn/nn.h"
#include "kernels/bf16_rows.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemv_bf16.h"
#include "models/gpt_impl.h"
#include "nn/layernorm.h"
#include "nn/nonlinearity.h"

/* y: (N, out) = [residual +] x w^T + b with the weight in bf16 (w16) and x
 * rounded to bf16 in x16 (N, in); y may be residual. A long prompt's rows run as
 * a matrix product (see GPT_BF16_PRODUCT_ROWS), fewer rows as dot products. */
static attn_status linear_bf16(float *y, const float *residual, const float *x, uint16_t *x16,
                               const uint16_t *w16, const float *bias, int N, int in, int out)
{
    attn_bf16_from_float(x16, x, (size_t)N * in);
    if (N >= GPT_BF16_PRODUCT_ROWS) {
        attn_affine_product(ATTN_BF16, y, residual, NULL, x16, NULL, w16, bias, N, in, out);
        return ATTN_OK;
    }
    if (residual)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out; o++)
                y[(size_t)n * out + o] = residual[(size_t)n * out + o] + (bias ? bias[o] : 0.0f);
    attn_status s = attn_bf16_weights_product(y, x16, w16, N, out, in, residual != NULL);
    if (!s && !residual && bias)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out; o++) y[(size_t)n * out + o] += bias[o];
    return s;
}

/* The bf16 copy of a Linear's input that a training pass in bf16 keeps: x16
 * when it is not NULL and the model's precision is bf16, else NULL (the product
 * rounds its input itself). */
static uint16_t *kept16(const attn_gpt *m, uint16_t *x16)
{
    return x16 != NULL && m->precision == ATTN_BF16 ? x16 : NULL;
}

/* kept16, with x: (N, in) rounded into it unless it is given already. */
static const uint16_t *kept_rounded(const attn_gpt *m, uint16_t *x16, const float *x, int N,
                                    int in, bool given)
{
    uint16_t *kept = kept16(m, x16);
    if (kept != NULL && !given) attn_bf16_round_rows(kept, x, N, in, in);
    return kept;
}

/* y: (N, out) = [residual +] x w^T + b at the model's precision, x16 NULL or x
 * rounded (see kept_rounded); y may be residual. */
static void float_weights_linear(const attn_gpt *m, const gpt_block_buffers *b, float *y,
                                 const float *residual, const float *x, const uint16_t *x16,
                                 const gpt_affine *a, int N, int in, int out)
{
    attn_affine_product(m->precision, y, residual, x, x16, a->w,
                        attn_gpt_rounded(m, b->params16, a->w), a->b, N, in, out);
}

/* y: (N, out) = x w^T + b, through the pass's weights: the cache's bf16 copy,
 * or the float32 weights at the model's precision, x16 (kept16) holding x
 * rounded already (the LayerNorm before it rounds its rows). */
static attn_status block_linear(const attn_gpt *m, const gpt_block_attention *att,
                                const gpt_block_buffers *b, const uint16_t *w16, float *y,
                                const float *x, uint16_t *x16, const gpt_affine *a, int N, int in,
                                int out)
{
    if (att->bf16) return linear_bf16(y, NULL, x, b->x16, w16, a->b, N, in, out);
    float_weights_linear(m, b, y, NULL, x, kept16(m, x16), a, N, in, out);
    return ATTN_OK;
}

/* y = residual + dropout(x w^T + b), N rows, through the pass's weights (float32,
 * or bf16 without dropout); y may be residual when p is 0. x16_given: x16 holds x
 * rounded already (and x may be NULL). */
static attn_status residual_branch(const attn_gpt *m, const gpt_block_attention *att,
                                   const gpt_block_buffers *b, const uint16_t *w16, float *y,
                                   const float *residual, const float *x, uint16_t *x16,
                                   bool x16_given, const gpt_affine *a, int N, int in, int out,
                                   float p, uint64_t site)
{
    if (att->bf16) return linear_bf16(y, residual, x, b->x16, w16, a->b, N, in, out);
    const uint16_t *rounded = kept_rounded(m, x16, x, N, in, x16_given);
    if (p == 0.0f) {
        float_weights_linear(m, b, y, residual, x, rounded, a, N, in, out);
        return ATTN_OK;
    }
    attn_status s;
    const size_t n = (size_t)N * out;
    float_weights_linear(m, b, y, NULL, x, rounded, a, N, in, out);
    if ((s = attn_dropout_forward(y, y, n, p, attn_gpt_dropout_seed(m, site)))) return s;
    for (size_t i = 0; i < n; i++) y[i] += residual[i];
    return ATTN_OK;
}

/* Whether the MLP's GELU writes its output only in bf16 (b->gelu16; b->gelu
 * unused): in a training pass in bf16, whose product reads nothing else. */
static bool gelu_in_bf16(const attn_gpt *m, const gpt_block_buffers *b)
{
    return b->gelu_slope && b->gelu16 && m->precision == ATTN_BF16;
}

/* The MLP's GELU of b->fc: into b->gelu (or b->gelu16, see gelu_in_bf16), and in
 * training its slope over b->fc. */
static attn_status block_gelu(const attn_gpt *m, const gpt_block_buffers *b, size_t n)
{
    if (b->gelu_slope)
        return attn_gelu_forward_slope(b->gelu, gelu_in_bf16(m, b) ? b->gelu16 : NULL,
                                       b->gelu_slope, b->fc, n);
    return attn_activation_forward(ATTN_ACT_GELU, b->gelu, b->fc, n);
}

/* x: (N, C) -> y: (N, C), through the buffers of b; see gpt_impl.h. */
attn_status attn_gpt_block_forward(const attn_gpt *m, int l, float *y, const float *x, int N,
                                   const gpt_block_buffers *b, const gpt_block_attention *att)
{
    const int C = m->cfg.n_embd;
    const gpt_layer *L = &m->layers[l];
    const gpt_layer_bf16 none = {0}, *L16 = att->bf16 ? &att->bf16[l] : &none;
    attn_status s;
    if ((s = attn_layernorm_forward_rounded(b->ln1, kept16(m, b->ln1_16), b->ln1_mean,
                                            b->ln1_rstd, x, L->ln_1.w, L->ln_1.b, N, C,
                                            GPT_LN_EPS)) ||
        (s = block_linear(m, att, b, L16->c_attn, b->qkv, b->ln1, b->ln1_16, &L->c_attn, N, C,
                          m->qkv_width)) ||
        (s = att->attend(att->ctx, l, b->merged, b->qkv)))
        return s;
    /* Past attention a row needs no other: the last block may continue with its
     * last rows alone (inference that wants only their output). */
    const int skip = l == m->cfg.n_layer - 1 && b->last_rows > 0 && b->last_rows < N
                         ? N - b->last_rows
                         : 0;
    const size_t at = (size_t)skip * C;
    x += at;
    y += at;
    N -= skip;
    float *mid = b->mid + at;
    if ((s = residual_branch(m, att, b, L16->attn_proj, mid, x, b->merged + at,
                             b->merged16 ? b->merged16 + at : NULL, b->merged_rounded,
                             &L->attn_proj, N, C, C, att->dropout, GPT_SITE_ATTENTION_OUT(l))) ||
        (s = attn_layernorm_forward_rounded(b->ln2, kept16(m, b->ln2_16), b->ln2_mean,
                                            b->ln2_rstd, mid, L->ln_2.w, L->ln_2.b, N, C,
                                            GPT_LN_EPS)) ||
        (s = block_linear(m, att, b, L16->c_fc, b->fc, b->ln2, b->ln2_16, &L->c_fc, N, C,
                          4 * C)) ||
        (s = block_gelu(m, b, (size_t)N * 4 * C)))
        return s;
    return residual_branch(m, att, b, L16->mlp_proj, y, mid, b->gelu, b->gelu16,
                           gelu_in_bf16(m, b), &L->mlp_proj, N, 4 * C, C, att->dropout,
                           GPT_SITE_MLP_OUT(l));
}
