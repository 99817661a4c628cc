/* The language model's backward pass: the gradient of the last forward's mean
 * cross-entropy with respect to every parameter, block by block from the top. */
#include <string.h>

#include "attn/kernels.h"
#include "attn/train.h"
#include "core/error.h"
#include "kernels/bf16_rows.h"
#include "kernels/gemm_bf16.h"
#include "models/gpt_impl.h"
#include "nn/nonlinearity.h"

/* Of y = x w^T + b with the output gradient dy: (N, out), times dy_scale: (N,
 * out) elementwise when that is not NULL (bf16 precision only: GELU's slope,
 * whose product is then never stored in float32): dx: (N, in) = dy w
 * (overwritten, when dx is not NULL), dw += dy^T x, db += the column sums of dy.
 * In bf16 precision dy is rounded once (m->dy16) for both products, in the pass
 * that sums it for db, and the products read the weight and x as the forward
 * rounded them (params16, x16). */
static void linear_backward(const attn_gpt *m, float *dx, const gpt_affine *a, const float *dy,
                            const float *dy_scale, const float *x, const uint16_t *x16, int N,
                            int in, int out)
{
    uint16_t *dy16 = m->precision == ATTN_BF16 ? m->dy16 : NULL;
    const uint16_t *w16 = dy16 ? attn_gpt_rounded(m, m->params16, a->w) : NULL;
    if (dy16 || a->db)
        attn_bf16_round_rows_sum_columns(dy16, a->db, m->bias_block_sums, dy, dy_scale, N, out);
    if (dy16) dy = NULL; /* the products read dy16 */
    if (dx)
        attn_gemm_rounded(m->precision, false, false, N, in, out, 1.0f, dy, dy16, out, a->w, w16,
                          in, 0.0f, dx, in);
    attn_gemm_rounded(m->precision, true, false, out, in, N, 1.0f, dy, dy16, out, x, x16, in,
                      1.0f, a->dw, in);
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

/* dq, dk, dv: (B, H, T, hd) -> dqkv: (B, T, W), the query heads' columns first,
 * then the key and the value heads'. A key/value head repeated for the query
 * heads of its group (group = H / Hkv) sums their gradients, in the order of
 * the group's heads. One pass, the threads sharing the rows. */
static void gather_heads(const attn_gpt *m, float *dqkv, const float *dq, const float *dk,
                         const float *dv)
{
    const int B = m->B, T = m->T, H = m->cfg.n_head, Hkv = m->cfg.n_kv_head, hd = m->head_dim;
    const int W = m->qkv_width;
    /* the three parts: gradients, heads out, heads summed into each */
    const float *const part[3] = {dq, dk, dv};
    const int heads_out[3] = {H, Hkv, Hkv}, group[3] = {1, H / Hkv, H / Hkv};
#pragma omp parallel for schedule(static) num_threads(attn_get_num_threads())
    for (int bt = 0; bt < B * T; bt++) {
        const int b = bt / T, t = bt % T;
        float *dst = dqkv + (size_t)bt * W;
        for (int p = 0; p < 3; p++)
            for (int g = 0; g < heads_out[p]; g++, dst += hd)
                for (int r = 0; r < group[p]; r++) {
                    const int h = g * group[p] + r;
                    const float *src = part[p] + (((size_t)b * H + h) * T + t) * hd;
                    if (r == 0)
                        memcpy(dst, src, (size_t)hd * sizeof *dst);
                    else
                        for (int d = 0; d < hd; d++) dst[d] += src[d];
                }
    }
}

/* dmerged: (B, T, H hd) -> datt: (B, H, T, hd) as float32, or with datt16 not
 * NULL only rounded to bf16 there (the bf16 kernel's dout, in the same pass);
 * and zeroes dq, dk, dv: (B, H, T, hd), into which attention's backward adds.
 * The threads share the (b, h) planes. */
static void split_merged(const attn_gpt *m, float *datt, uint16_t *datt16, const float *dmerged)
{
    const int B = m->B, T = m->T, H = m->cfg.n_head, hd = m->head_dim;
#pragma omp parallel for schedule(static) num_threads(attn_get_num_threads())
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        const float *rows = dmerged + (size_t)b * T * H * hd + (size_t)h * hd;
        const size_t plane = (size_t)bh * T * hd, bytes = (size_t)T * hd * sizeof(float);
        memset(m->dq + plane, 0, bytes);
        memset(m->dk + plane, 0, bytes);
        memset(m->dv + plane, 0, bytes);
        if (datt16 != NULL) {
            attn_bf16_round_tile(datt16 + plane, hd, rows, H * hd, T, hd);
            continue;
        }
        attn_gpt_copy_tile(datt + plane, hd, rows, H * hd, T, hd);
    }
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
    const int N = m->B * m->T, C = m->cfg.n_embd;
    const size_t NC = (size_t)N * C;
    const gpt_layer *L = &m->layers[l];
    const gpt_layer_acts *a = &m->acts[l];
    const float *x = m->stream + (size_t)l * NC;
    attn_status s;

    /* y = mid + dropout(mlp_proj(gelu(c_fc(ln_2(mid))))) */
    const float *dy = through_dropout(m, m->dln, m->dstream, NC, GPT_SITE_MLP_OUT(l));
    linear_backward(m, m->dwide, &L->mlp_proj, dy, NULL, a->gelu, a->gelu16, N, 4 * C, C);
    /* Through GELU: dwide times its slope, in float32 into dwide2; in bf16 only
     * as c_fc's rounded output gradient, multiplied in the pass that rounds it. */
    const float *dfc = m->dwide, *slope = a->fc_slope;
    if (m->precision != ATTN_BF16) {
        if ((s = attn_gelu_backward_slope(m->dwide2, m->dwide, slope, 4 * NC))) return s;
        dfc = m->dwide2;
        slope = NULL;
    }
    linear_backward(m, m->dln, &L->c_fc, dfc, slope, a->ln2, a->ln2_16, N, C, 4 * C);
    if ((s = attn_layernorm_backward(m->dstream, L->ln_2.dw, L->ln_2.db, m->dln, a->mid,
                                     a->ln2_mean, a->ln2_rstd, L->ln_2.w, N, C)))
        return s;

    /* mid = x + dropout(c_proj(attention(ln_1(x)))) */
    dy = through_dropout(m, m->dln, m->dstream, NC, GPT_SITE_ATTENTION_OUT(l));
    linear_backward(m, m->dwide, &L->attn_proj, dy, NULL, a->merged, a->merged16, N, C, C);
    float *datt = m->dwide + NC; /* dwide holds 4 NC floats: dmerged, then datt */
    /* The bf16 kernel reads dout only rounded; the float32 copy serves the other
     * kernels and the attention weights' gradient. */
    const bool bf16 = m->precision == ATTN_BF16 && !m->pass.reference_attention;
    const bool datt_only_bf16 = bf16 && m->weights_grad == NULL;
    split_merged(m, datt_only_bf16 ? NULL : datt, datt_only_bf16 ? m->datt16 : NULL, m->dwide);
    if (bf16 && !datt_only_bf16) attn_bf16_round_rows(m->datt16, datt, N, C, C);
    const attn_sdpa_config sc = attn_gpt_sdpa_config(m, l);
    if (m->pass.reference_attention)
        s = attn_sdpa_reference_backward(m->dq, m->dk, m->dv, datt, a->q, a->k, a->v, a->lse,
                                         &sc);
    else if (bf16)
        s = attn_sdpa_bf16_backward(m->dq, m->dk, m->dv, m->datt16, a->q16, a->k16, a->v16,
                                    a->lse, &sc);
    else
        s = attn_sdpa_backward(m->dq, m->dk, m->dv, datt, a->q, a->k, a->v, a->lse, &sc);
    if (s) return s;
    if (m->weights_grad &&
        (s = attn_sdpa_weights_backward(m->weights_grad[l], datt, a->q, a->k, a->v, &sc)))
        return s;
    if (m->cfg.position == ATTN_POS_ROPE && ((s = unrotate(m, m->dq)) || (s = unrotate(m, m->dk))))
        return s;
    gather_heads(m, m->dqkv, m->dq, m->dk, m->dv);
    linear_backward(m, m->dln, &L->c_attn, m->dqkv, NULL, a->ln1, a->ln1_16, N, C,
                    m->qkv_width);
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
    const gpt_affine head = {.w = m->head, .dw = m->dhead};
    linear_backward(m, m->dln, &head, m->dlogits, NULL, m->lnf, m->lnf16, N, C, V);
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
