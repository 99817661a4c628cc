/* The fused attention kernels' entry points: the kernels of the instruction-set
 * variant the library chose (isa.h), on a config the attention layer checked. */
#include "kernels/flash.h"
#include "kernels/isa.h"

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
