/* The fused attention kernels' entry points: the kernels of the instruction-set
 * variant the library chose (isa.h), on a config the attention layer checked. */
#include "kernels/flash.h"
#include "kernels/isa.h"
#include "core/bf16.h"

size_t attn_flash_workspace_bytes(const attn_sdpa_config *cfg, int threads, bool backward)
{
    const attn_isa *isa;
    if (attn_isa_current(&isa) != ATTN_OK || threads < 1) return 0;
    return isa->flash->workspace_bytes(cfg, threads, backward);
}

attn_status attn_flash_forward(float *out, float *lse, const float *q, const float *k,
                               const float *v, const attn_sdpa_config *cfg)
{
    const attn_isa *isa;
    attn_status s = attn_isa_current(&isa);
    return s ? s : isa->flash->forward(out, lse, q, k, v, cfg);
}

attn_status attn_flash_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                const float *k, const float *v, const float *lse,
                                const attn_sdpa_config *cfg)
{
    const attn_isa *isa;
    attn_status s = attn_isa_current(&isa);
    return s ? s : isa->flash->backward(dq, dk, dv, dout, q, k, v, lse, cfg);
}

size_t attn_flash_bf16_workspace_bytes(const attn_sdpa_config *cfg, int threads, bool backward)
{
    const attn_isa *isa;
    if (attn_isa_current(&isa) != ATTN_OK || threads < 1) return 0;
    return isa->flash->workspace_bytes_bf16(cfg, threads, backward);
}

attn_status attn_flash_bf16_forward(float *out, float *lse, const uint16_t *q, const uint16_t *k,
                                    const uint16_t *v, const attn_sdpa_config *cfg)
{
    const attn_isa *isa;
    attn_status s = attn_isa_current(&isa);
    return s ? s : isa->flash->forward_bf16(out, lse, q, k, v, NULL, cfg);
}

attn_status attn_flash_bf16_forward_pairs(float *out, float *lse, const uint16_t *q,
                                          const uint16_t *k, const uint16_t *v_pairs,
                                          const attn_sdpa_config *cfg)
{
    const attn_isa *isa;
    attn_status s = attn_isa_current(&isa);
    return s ? s : isa->flash->forward_bf16(out, lse, q, k, NULL, v_pairs, cfg);
}

void attn_flash_bf16_pair_rows(uint16_t *pairs, const float *src, int64_t first, int rows,
                               int width)
{
    const int64_t padded = attn_flash_pair_width(width);
    for (int r = 0; r < rows; r++) {
        const int64_t row = first + r;
        uint16_t *dst = pairs + row / 2 * padded * 2 + (row & 1);
        for (int c = 0; c < width; c++) dst[2 * c] = attn_bf16_round(src[(size_t)r * width + c]);
    }
}

attn_status attn_flash_bf16_backward(float *dq, float *dk, float *dv, const uint16_t *dout,
                                     const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                     const float *lse, const attn_sdpa_config *cfg)
{
    const attn_isa *isa;
    attn_status s = attn_isa_current(&isa);
    return s ? s : isa->flash->backward_bf16(dq, dk, dv, dout, q, k, v, lse, cfg);
}

const char *attn_flash_bf16_products(void)
{
    const attn_isa *isa;
    if (attn_isa_current(&isa) != ATTN_OK) return "none";
    return isa->flash->bf16_products;
}
