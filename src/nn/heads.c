/* Per-head layout of attention inputs: the (b, h) blocks SDPA works on. */
#include "nn/heads.h"

#include <stddef.h>
#include <string.h>

#include "kernels/bf16_rows.h"

/* The first float of row (b, l) of a (L, B, E) or (B, L, E) array, in units of E. */
static size_t row_index(int b, int l, int B, int L, bool batch_first)
{
    return batch_first ? (size_t)b * (size_t)L + (size_t)l : (size_t)l * (size_t)B + (size_t)b;
}

void attn_heads_split(float *heads, const float *rows, int B, int L, int H, int hd,
                      bool batch_first)
{
    const size_t E = (size_t)H * (size_t)hd;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int l = 0; l < L; l++)
                memcpy(heads + (((size_t)b * H + h) * L + l) * hd,
                       rows + row_index(b, l, B, L, batch_first) * E + (size_t)h * hd,
                       (size_t)hd * sizeof *heads);
}

void attn_heads_merge(float *rows, const float *heads, int B, int L, int H, int hd,
                      bool batch_first)
{
    const size_t E = (size_t)H * (size_t)hd;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int l = 0; l < L; l++)
                memcpy(rows + row_index(b, l, B, L, batch_first) * E + (size_t)h * hd,
                       heads + (((size_t)b * H + h) * L + l) * hd, (size_t)hd * sizeof *rows);
}

/* dout_rows split into g->dout; g->dq, g->dk, g->dv zeroed for SDPA to add into. */
static void prepare_backward(const attn_heads_grads *g, const float *dout_rows,
                             const attn_sdpa_config *cfg, bool batch_first)
{
    const int B = cfg->batch, H = cfg->heads, hd = cfg->dim_qk;
    const size_t n_q = (size_t)B * H * cfg->len_q * hd, n_k = (size_t)B * H * cfg->len_k * hd;
    attn_heads_split(g->dout, dout_rows, B, cfg->len_q, H, hd, batch_first);
    memset(g->dq, 0, n_q * sizeof *g->dq);
    memset(g->dk, 0, n_k * sizeof *g->dk);
    memset(g->dv, 0, n_k * sizeof *g->dv);
}

attn_status attn_heads_sdpa_backward(const attn_heads_grads *g, const float *dout_rows,
                                     const float *q, const float *k, const float *v,
                                     const float *lse, const attn_sdpa_config *cfg,
                                     bool batch_first)
{
    prepare_backward(g, dout_rows, cfg, batch_first);
    return attn_sdpa_backward(g->dq, g->dk, g->dv, g->dout, q, k, v, lse, cfg);
}

void attn_heads_round(uint16_t *dst, const float *heads, int B, int H, int L, int hd)
{
    attn_bf16_round_rows(dst, heads, B * H, L * hd, L * hd);
}

attn_status attn_heads_sdpa_bf16_backward(const attn_heads_grads *g, uint16_t *dout16,
                                          const float *dout_rows, const uint16_t *q,
                                          const uint16_t *k, const uint16_t *v, const float *lse,
                                          const attn_sdpa_config *cfg, bool batch_first)
{
    prepare_backward(g, dout_rows, cfg, batch_first);
    attn_heads_round(dout16, g->dout, cfg->batch, cfg->heads, cfg->len_q, cfg->dim_qk);
    return attn_sdpa_bf16_backward(g->dq, g->dk, g->dv, dout16, q, k, v, lse, cfg);
}
