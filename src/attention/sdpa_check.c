/* Scaled dot-product attention's checks and scale, shared by the fused path
 * (sdpa.c) and the reference (sdpa_reference.c), which both check here before
 * they compute; the kernels below them take the config as checked. */
#include <limits.h>
#include <math.h>

#include "attention/checks.h"
#include "core/error.h"
#include "kernels/flash.h"

attn_status attn_sdpa_check(const attn_sdpa_config *cfg)
{
    attn_status s;
    if ((s = attn_check_not_null(cfg, "sdpa config")) ||
        (s = attn_check_at_least(cfg->batch, 1, "batch")) ||
        (s = attn_check_at_least(cfg->heads, 1, "heads")) ||
        (s = attn_check_at_least(cfg->len_q, 1, "len_q")) ||
        (s = attn_check_at_least(cfg->len_k, 1, "len_k")) ||
        (s = attn_check_at_least(cfg->dim_qk, 1, "dim_qk")) ||
        (s = attn_check_at_least(cfg->dim_v, 1, "dim_v")))
        return s;
    if (!(cfg->dropout_p >= 0.0f && cfg->dropout_p < 1.0f))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "dropout_p %g is outside [0, 1)",
                          (double)cfg->dropout_p);
    if (!isfinite(cfg->scale))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "scale %g is not finite", (double)cfg->scale);
    if (cfg->window < 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "window %d is negative (0 means none)",
                          cfg->window);
    if (cfg->q_offset < 0 || cfg->q_offset > INT_MAX - cfg->len_q)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "q_offset %d is negative or puts the last of %d rows past INT_MAX",
                          cfg->q_offset, cfg->len_q);
    for (int h = 0; cfg->alibi_slopes != NULL && h < cfg->heads; h++)
        if (!isfinite(cfg->alibi_slopes[h]))
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "alibi_slopes[%d] %g is not finite", h,
                              (double)cfg->alibi_slopes[h]);
    if ((s = attn_mask_check(cfg->attn_mask, "attn_mask")) ||
        (s = attn_mask_check(cfg->key_padding_mask, "key_padding_mask")))
        return s;
    const struct {
        int64_t stride;
        int dim;
        const char *name;
    } tensors[] = {{cfg->row_stride.q, cfg->dim_qk, "q"},
                   {cfg->row_stride.k, cfg->dim_qk, "k"},
                   {cfg->row_stride.v, cfg->dim_v, "v"},
                   {cfg->row_stride.out, cfg->dim_v, "out"}};
    for (size_t t = 0; t < sizeof tensors / sizeof tensors[0]; t++) {
        const int64_t stride = tensors[t].stride, row = (int64_t)cfg->heads * tensors[t].dim;
        if (stride != 0 && stride < row)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "row_stride.%s %lld is neither 0 nor at least heads * dim %lld",
                              tensors[t].name, (long long)stride, (long long)row);
    }
    return ATTN_OK;
}

float attn_sdpa_scale(const attn_sdpa_config *cfg) { return attn_flash_scale(cfg); }

attn_status attn_sdpa_check_forward(const attn_sdpa_config *cfg, const float *out,
                                    const float *lse, const void *q, const void *k,
                                    const void *v)
{
    attn_status s;
    if ((s = attn_sdpa_check(cfg)) || (s = attn_check_not_null(out, "out")) ||
        (s = attn_check_not_null(lse, "lse")) || (s = attn_check_not_null(q, "q")) ||
        (s = attn_check_not_null(k, "k")) || (s = attn_check_not_null(v, "v")))
        return s;
    return ATTN_OK;
}

attn_status attn_sdpa_check_backward(const attn_sdpa_config *cfg, const void *dout,
                                     const void *q, const void *k, const void *v,
                                     const float *lse)
{
    attn_status s;
    if ((s = attn_sdpa_check(cfg)) || (s = attn_check_not_null(dout, "dout")) ||
        (s = attn_check_not_null(q, "q")) || (s = attn_check_not_null(k, "k")) ||
        (s = attn_check_not_null(v, "v")) || (s = attn_check_not_null(lse, "lse")))
        return s;
    return ATTN_OK;
}
