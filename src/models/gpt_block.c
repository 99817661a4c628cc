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
#include "kernels/gemv_bf16.h"
#include "models/gpt_impl.h"

/* y: (N, out) = [residual +] x w^T + b with the weight in bf16 (w16) and x
 * rounded to bf16 in x16 (N, in); y may be residual. */
static attn_status linear_bf16(float *y, const float *residual, const float *x, uint16_t *x16,
                               const uint16_t *w16, const float *bias, int N, int in, int out)
{
    attn_bf16_from_float(x16, x, (size_t)N * in);
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

/* y: (N, out) = x w^T + b, through the pass's weights: the cache's bf16 copy,
 * or the float32 weights at the model's precision. */
static attn_status block_linear(const attn_gpt *m, const gpt_block_attention *att,
                                const gpt_block_buffers *b, const uint16_t *w16, float *y,
                                const float *x, const gpt_affine *a, int N, int in, int out)
{
    if (att->bf16) return linear_bf16(y, NULL, x, b->x16, w16, a->b, N, in, out);
    return attn_linear_forward_at(m->precision, y, x, a->w, a->b, N, in, out);
}

/* y = residual + dropout(x w^T + b), N rows, through the pass's weights (float32,
 * or bf16 without dropout); y may be residual when p is 0. */
static attn_status residual_branch(const attn_gpt *m, const gpt_block_attention *att,
                                   const gpt_block_buffers *b, const uint16_t *w16, float *y,
                                   const float *residual, const float *x, const gpt_affine *a,
                                   int N, int in, int out, float p, uint64_t site)
{
    if (att->bf16) return linear_bf16(y, residual, x, b->x16, w16, a->b, N, in, out);
    if (p == 0.0f) {
        attn_gpt_residual_linear(m->precision, y, residual, x, a, N, in, out);
        return ATTN_OK;
    }
    attn_status s;
    const size_t n = (size_t)N * out;
    if ((s = attn_linear_forward_at(m->precision, y, x, a->w, a->b, N, in, out)) ||
        (s = attn_dropout_forward(y, y, n, p, attn_gpt_dropout_seed(m, site))))
        return s;
    for (size_t i = 0; i < n; i++) y[i] += residual[i];
    return ATTN_OK;
}

/* x: (N, C) -> y: (N, C), through the buffers of b; see gpt_impl.h. */
attn_status attn_gpt_block_forward(const attn_gpt *m, int l, float *y, const float *x, int N,
                                   const gpt_block_buffers *b, const gpt_block_attention *att)
{
    const int C = m->cfg.n_embd;
    const gpt_layer *L = &m->layers[l];
    const gpt_layer_bf16 none = {0}, *L16 = att->bf16 ? &att->bf16[l] : &none;
    attn_status s;
    if ((s = attn_layernorm_forward(b->ln1, b->ln1_mean, b->ln1_rstd, x, L->ln_1.w, L->ln_1.b, N,
                                    C, GPT_LN_EPS)) ||
        (s = block_linear(m, att, b, L16->c_attn, b->qkv, b->ln1, &L->c_attn, N, C,
                          m->qkv_width)) ||
        (s = att->attend(att->ctx, l, b->merged, b->qkv)) ||
        (s = residual_branch(m, att, b, L16->attn_proj, b->mid, x, b->merged, &L->attn_proj, N,
                             C, C, att->dropout, GPT_SITE_ATTENTION_OUT(l))) ||
        (s = attn_layernorm_forward(b->ln2, b->ln2_mean, b->ln2_rstd, b->mid, L->ln_2.w,
                                    L->ln_2.b, N, C, GPT_LN_EPS)) ||
        (s = block_linear(m, att, b, L16->c_fc, b->fc, b->ln2, &L->c_fc, N, C, 4 * C)))
        return s;
    attn_gpt_gelu(b->gelu, b->fc, (size_t)N * 4 * C);
    return residual_branch(m, att, b, L16->mlp_proj, y, b->mid, b->gelu, &L->mlp_proj, N, 4 * C,
                           C, att->dropout, GPT_SITE_MLP_OUT(l));
}
