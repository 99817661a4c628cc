/* Scaled dot-product attention: the choice between the two implementations. The
 * fused kernel serves every call it can; the reference (sdpa_reference.c) serves
 * calls that want the full weight matrix, which the fused kernel never forms.
 * Both check their arguments in sdpa_check.c first. */
#include "attention/checks.h"
#include "attn/attention.h"
#include "kernels/flash.h"

attn_status attn_sdpa_forward(float *out, float *lse, float *weights, const float *q,
                              const float *k, const float *v, const attn_sdpa_config *cfg)
{
    if (weights != NULL) return attn_sdpa_reference_forward(out, lse, weights, q, k, v, cfg);
    attn_status s = attn_sdpa_check_forward(cfg, out, lse, q, k, v);
    return s ? s : attn_flash_forward(out, lse, q, k, v, cfg);
}

attn_status attn_sdpa_backward(float *dq, float *dk, float *dv, const float *dout,
                               const float *q, const float *k, const float *v, const float *lse,
                               const attn_sdpa_config *cfg)
{
    attn_status s = attn_sdpa_check_backward(cfg, dout, q, k, v, lse);
    return s ? s : attn_flash_backward(dq, dk, dv, dout, q, k, v, lse, cfg);
}

const char *attn_sdpa_kernel(void) { return attn_simd_variant(); }

size_t attn_sdpa_workspace_bytes(const attn_sdpa_config *cfg, bool backward)
{
    if (attn_sdpa_check(cfg) != ATTN_OK) return 0;
    size_t scratch = attn_flash_workspace_bytes(cfg, attn_get_num_threads(), backward);
    if (scratch == 0) return 0; /* no kernel can run */
    size_t lse = (size_t)cfg->batch * cfg->heads * cfg->len_q * sizeof(float);
    return scratch + lse;
}
