/* Scaled dot-product attention on bfloat16 inputs: the checks of the float32
 * entry points (sdpa_check.c), then the fused bf16 kernels (kernels/flash.h). */
#include "attention/checks.h"
#include "attn/attention.h"
#include "kernels/flash.h"

#include <string.h>

attn_status attn_sdpa_bf16_forward(float *out, float *lse, const uint16_t *q, const uint16_t *k,
                                   const uint16_t *v, const attn_sdpa_config *cfg)
{
    attn_status s = attn_sdpa_check_forward(cfg, out, lse, q, k, v);
    return s ? s : attn_flash_bf16_forward(out, lse, q, k, v, cfg);
}

attn_status attn_sdpa_bf16_backward(float *dq, float *dk, float *dv, const uint16_t *dout,
                                    const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                    const float *lse, const attn_sdpa_config *cfg)
{
    attn_status s = attn_sdpa_check_backward(cfg, dout, q, k, v, lse);
    return s ? s : attn_flash_bf16_backward(dq, dk, dv, dout, q, k, v, lse, cfg);
}

size_t attn_sdpa_bf16_workspace_bytes(const attn_sdpa_config *cfg, bool backward)
{
    if (attn_sdpa_check(cfg) != ATTN_OK) return 0;
    size_t scratch = attn_flash_bf16_workspace_bytes(cfg, attn_get_num_threads(), backward);
    if (scratch == 0) return 0; /* no kernel can run */
    return scratch + (size_t)cfg->batch * cfg->heads * cfg->len_q * sizeof(float);
}

const char *attn_sdpa_bf16_kernel(void)
{
    /* One string per (variant, products) pair, built once: the names are constant. */
    static const char *const described[][3] = {
        {"avx512bf16", "vdpbf16ps", "avx512bf16: bf16 pairs multiplied by vdpbf16ps"},
        {"avx512", "widened to float32", "avx512: bf16 widened to float32"},
        {"avx2", "widened to float32", "avx2: bf16 widened to float32"},
        {"scalar", "widened to float32", "scalar: bf16 widened to float32"},
    };
    const char *variant = attn_sdpa_kernel(), *products = attn_flash_bf16_products();
    for (size_t i = 0; i < sizeof described / sizeof described[0]; i++)
        if (strcmp(described[i][0], variant) == 0 && strcmp(described[i][1], products) == 0)
            return described[i][2];
    return variant;
}
