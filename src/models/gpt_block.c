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
#include "models/gpt_impl.h"

/* y = residual + dropout(x w^T + b), N rows; y may be residual when p is 0. */
static attn_status residual_branch(const attn_gpt *m, float *y, const float *residual,
                                   const float *x, const gpt_affine *a, int N, int in, int out,
                                   float p, uint64_t site)
{
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
    attn_status s;
    if ((s = attn_layernorm_forward(b->ln1, b->ln1_mean, b->ln1_rstd, x, L->ln_1.w, L->ln_1.b, N,
                                    C, GPT_LN_EPS)) ||
        (s = attn_linear_forward_at(m->precision, b->qkv, b->ln1, L->c_attn.w, L->c_attn.b, N,
                                    C, m->qkv_width)) ||
        (s = att->attend(att->ctx, l, b->merged, b->qkv)) ||
        (s = residual_branch(m, b->mid, x, b->merged, &L->attn_proj, N, C, C, att->dropout,
                             GPT_SITE_ATTENTION_OUT(l))) ||
        (s = attn_layernorm_forward(b->ln2, b->ln2_mean, b->ln2_rstd, b->mid, L->ln_2.w,
                                    L->ln_2.b, N, C, GPT_LN_EPS)) ||
        (s = attn_linear_forward_at(m->precision, b->fc, b->ln2, L->c_fc.w, L->c_fc.b, N, C,
                                    4 * C)))
        return s;
    attn_gpt_gelu(b->gelu, b->fc, (size_t)N * 4 * C);
    return residual_branch(m, y, b->mid, b->gelu, &L->mlp_proj, N, 4 * C, C, att->dropout,
                           GPT_SITE_MLP_OUT(l));
}
