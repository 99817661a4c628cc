/* Scaled dot-product attention: the checks both implementations share, and the
 * choice between them. The fused kernel serves every call it can; the reference
 * (sdpa_reference.c) serves calls that want the full weight matrix, which the
 * fused kernel never forms. */
#include <math.h>

#include "attn/attention.h"
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
    for (int h = 0; cfg->alibi_slopes != NULL && h < cfg->heads; h++)
        if (!isfinite(cfg->alibi_slopes[h]))
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "alibi_slopes[%d] %g is not finite", h,
                              (double)cfg->alibi_slopes[h]);
    return ATTN_OK;
}

float attn_sdpa_scale(const attn_sdpa_config *cfg)
{
    return cfg->scale != 0.0f ? cfg->scale : 1.0f / sqrtf((float)cfg->dim_qk);
}

attn_status attn_sdpa_forward(float *out, float *lse, float *weights, const float *q,
                              const float *k, const float *v, const attn_sdpa_config *cfg)
{
    if (weights != NULL) return attn_sdpa_reference_forward(out, lse, weights, q, k, v, cfg);
    return attn_flash_forward(out, lse, q, k, v, cfg);
}

attn_status attn_sdpa_backward(float *dq, float *dk, float *dv, const float *dout,
                               const float *q, const float *k, const float *v, const float *lse,
                               const attn_sdpa_config *cfg)
{
    return attn_flash_backward(dq, dk, dv, dout, q, k, v, lse, cfg);
}

const char *attn_sdpa_kernel(void) { return attn_simd_variant(); }

size_t attn_sdpa_workspace_bytes(const attn_sdpa_config *cfg, bool backward)
{
    if (cfg == NULL || attn_sdpa_check(cfg) != ATTN_OK) return 0;
    size_t scratch = attn_flash_workspace_bytes(cfg, attn_get_num_threads(), backward);
    if (scratch == 0) return 0; /* no kernel can run */
    size_t lse = (size_t)cfg->batch * cfg->heads * cfg->len_q * sizeof(float);
    return scratch + lse;
}
