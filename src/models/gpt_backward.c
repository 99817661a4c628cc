/* The language model's backward pass: the gradient of the last forward's mean
 * cross-entropy with respect to every parameter, block by block from the top. */
#include <string.h>

#include "attn/kernels.h"
#include "attn/train.h"
#include "core/error.h"
#include "kernels/bf16_rows.h"
#include "models/gpt_impl.h"

/* Of y = x w^T + b with dy: (N, out): dx: (N, in) = dy w (overwritten, when dx is
 * not NULL), dw += dy^T x, db += the column sums of dy. */
static void linear_backward(const attn_gpt *m, float *dx, const gpt_affine *a, const float *dy,
                            const float *x, int N, int in, int out)
{
    if (dx) attn_gemm(m->precision, false, false, N, in, out, 1.0f, dy, out, a->w, in, 0.0f, dx, in);
    attn_linear_backward_at(m->precision, NULL, a->dw, a->db, dy, x, a->w, N, in, out);
}

/* The gradient reaching a residual branch's linear output: dy, or dy through the
 * branch's dropout (into scratch). */
static const float *through_dropout(const attn_gpt *m, float *scratch, const float *dy, size_t n,
                                    uint64_t site)
{
    const float p = attn_gpt_dropout(m);
    if (p == 0.0f) return dy;
    memset(scratch, 0, n * sizeof *scratch);
    attn_dropout_backward(scratch, dy, n, p, attn_gpt_dropout_seed(m, site));
    return scratch;
}

/* dhead: (B, H, T, hd) -> rows of dqkv: (B, T, W) at column offset `column` (one
 * head of hd columns per head of dhead when group is 1). With group > 1 the
 * repeated key/value heads of a group add into their shared head. */
static void gather_heads(const attn_gpt *m, float *dqkv, const float *dhead, int column,
                         int heads_out, int group)
{
    const int B = m->B, T = m->T, H = m->cfg.n_head, hd = m->head_dim, W = m->qkv_width;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < heads_out; g++)
            for (int t = 0; t < T; t++) {
                float *dst = dqkv + ((size_t)b * T + t) * W + column + (size_t)g * hd;
                for (int r = 0; r < group; r++) {
                    const float *src = dhead + (((size_t)b * H + g * group + r) * T + t) * hd;
                    if (r == 0)
                        memcpy(dst, src, (size_t)hd * sizeof *dst);
                    else
                        for (int d = 0; d < hd; d++) dst[d] += src[d];
                }
            }
}

/* dmerged: (B, T, H hd) -> datt: (B, H, T, hd). */
static void split_merged(const attn_gpt *m, float *datt, const float *dmerged)
{
    const int B = m->B, T = m->T, H = m->cfg.n_head, hd = m->head_dim;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++)
                memcpy(datt + (((size_t)b * H + h) * T + t) * hd,
                       dmerged + ((size_t)b * T + t) * H * hd + (size_t)h * hd,
                       (size_t)hd * sizeof *datt);
}

/* dq or dk: (B, H, T, hd), rotated back by RoPE's transpose in place (via drot). */
static attn_status unrotate(attn_gpt *m, float *d)
{
    const size_t n = (size_t)m->B * m->T * m->cfg.n_embd;
    memset(m->drot, 0, n * sizeof *m->drot);
    attn_status s = attn_rope_backward(m->drot, d, m->B, m->cfg.n_head, m->T, m->head_dim, 0,
                                       m->cfg.rope_theta);
    if (!s) memcpy(d, m->drot, n * sizeof *d);
    return s;
}

/* dstream: (N, C) holds the gradient of block l's output; on return, of its input. */
static attn_status block_backward(attn_gpt *m, int l)
{
    const int N = m->B * m->T, C = m->cfg.n_embd, H = m->cfg.n_head, Hkv = m->cfg.n_kv_head;
    const size_t NC = (size_t)N * C;
    const gpt_layer *L = &m->layers[l];
    const gpt_layer_acts *a = &m->acts[l];
    const float *x = m->stream + (size_t)l * NC;
    attn_status s;

    /* y = mid + dropout(mlp_proj(gelu(c_fc(ln_2(mid))))) */
    const float *dy = through_dropout(m, m->dln, m->dstream, NC, GPT_SITE_MLP_OUT(l));
    linear_backward(m, m->dwide, &L->mlp_proj, dy, a->gelu, N, 4 * C, C);
    memset(m->dwide2, 0, 4 * NC * sizeof *m->dwide2);
    if ((s = attn_activation_backward(ATTN_ACT_GELU, m->dwide2, m->dwide, a->fc, 4 * NC)))
        return s;
    linear_backward(m, m->dln, &L->c_fc, m->dwide2, a->ln2, N, C, 4 * C);
    if ((s = attn_layernorm_backward(m->dstream, L->ln_2.dw, L->ln_2.db, m->dln, a->mid,
                                     a->ln2_mean, a->ln2_rstd, L->ln_2.w, N, C)))
        return s;

    /* mid = x + dropout(c_proj(attention(ln_1(x)))) */
    dy = through_dropout(m, m->dln, m->dstream, NC, GPT_SITE_ATTENTION_OUT(l));
    linear_backward(m, m->dwide, &L->attn_proj, dy, a->merged, N, C, C);
    float *datt = m->dwide + NC; /* dwide holds 4 NC floats: dmerged, then datt */
    split_merged(m, datt, m->dwide);
    memset(m->dq, 0, NC * sizeof *m->dq);
    memset(m->dk, 0, NC * sizeof *m->dk);
    memset(m->dv, 0, NC * sizeof *m->dv);
    const attn_sdpa_config sc = attn_gpt_sdpa_config(m, l);
    if (m->pass.reference_attention) {
        s = attn_sdpa_reference_backward(m->dq, m->dk, m->dv, datt, a->q, a->k, a->v, a->lse,
                                         &sc);
    } else if (m->precision == ATTN_BF16) {
        attn_bf16_round_rows(m->datt16, datt, N, C, C);
        s = attn_sdpa_bf16_backward(m->dq, m->dk, m->dv, m->datt16, a->q16, a->k16, a->v16,
                                    a->lse, &sc);
    } else {
        s = attn_sdpa_backward(m->dq, m->dk, m->dv, datt, a->q, a->k, a->v, a->lse, &sc);
    }
    if (s) return s;
    if (m->weights_grad &&
        (s = attn_sdpa_weights_backward(m->weights_grad[l], datt, a->q, a->k, a->v, &sc)))
        return s;
    if (m->cfg.position == ATTN_POS_ROPE && ((s = unrotate(m, m->dq)) || (s = unrotate(m, m->dk))))
        return s;
    const int hd = m->head_dim;
    gather_heads(m, m->dqkv, m->dq, 0, H, 1);
    gather_heads(m, m->dqkv, m->dk, H * hd, Hkv, H / Hkv);
    gather_heads(m, m->dqkv, m->dv, (H + Hkv) * hd, Hkv, H / Hkv);
    linear_backward(m, m->dln, &L->c_attn, m->dqkv, a->ln1, N, C, m->qkv_width);
    return attn_layernorm_backward(m->dstream, L->ln_1.dw, L->ln_1.db, m->dln, x, a->ln1_mean,
                                   a->ln1_rstd, L->ln_1.w, N, C);
}

/* The position term's gradient: dwpe[t] += the sum over the batch of dx[b, t]. */
static void positions_backward(attn_gpt *m, const float *dx)
{
    const int B = m->B, T = m->T, C = m->cfg.n_embd;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *row = dx + ((size_t)b * T + t) * C;
            float *d = m->dwpe + (size_t)t * C;
            for (int c = 0; c < C; c++) d[c] += row[c];
        }
}

static attn_status check_backward_input(const attn_gpt *m)
{
    if (m->has_backward_input) return ATTN_OK;
    return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                      "gpt backward needs a forward with targets before it");
}

attn_status attn_gpt_backward(attn_gpt *m)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "gpt")) || (s = check_backward_input(m))) return s;
    const int N = m->B * m->T, V = m->cfg.vocab_size;
    memset(m->dlogits, 0, (size_t)N * V * sizeof *m->dlogits);
    if ((s = attn_cross_entropy_backward(m->dlogits, m->probs, m->targets, N, V, GPT_IGNORE_NONE,
                                         0.0f, 1.0f)))
        return s;
    return attn_gpt_backward_logits(m);
}

attn_status attn_gpt_backward_logits(attn_gpt *m)
{
    attn_status s;
    if ((s = check_backward_input(m))) return s;
    m->has_backward_input = false;
    const int N = m->B * m->T, C = m->cfg.n_embd, V = m->cfg.vocab_size;
    const size_t NC = (size_t)N * C;
    /* logits = lnf head^T */
    attn_gemm(m->precision, false, false, N, C, V, 1.0f, m->dlogits, V, m->head, C, 0.0f, m->dln,
              C);
    attn_gemm(m->precision, true, false, V, C, N, 1.0f, m->dlogits, V, m->lnf, C, 1.0f, m->dhead,
              C);
    memset(m->dstream, 0, NC * sizeof *m->dstream);
    const float *top = m->stream + (size_t)m->cfg.n_layer * NC;
    if ((s = attn_layernorm_backward(m->dstream, m->ln_f.dw, m->ln_f.db, m->dln, top, m->lnf_mean,
                                     m->lnf_rstd, m->ln_f.w, N, C)))
        return s;
    for (int l = m->cfg.n_layer - 1; l >= 0; l--)
        if ((s = block_backward(m, l))) return s;

    const float *dx = through_dropout(m, m->dln, m->dstream, NC, GPT_SITE_EMBEDDING);
    if ((s = attn_embedding_backward(m->dwte, dx, m->ids, N, V, C, -1))) return s;
    if (m->dwpe) positions_backward(m, dx);
    return ATTN_OK;
}
