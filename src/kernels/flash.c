/* The fused attention kernels' entry points: argument checks, then the kernels
 * of the instruction-set variant the library chose (isa.h). */
#include "core/error.h"
#include "kernels/flash.h"
#include "kernels/isa.h"

size_t attn_flash_workspace_bytes(const attn_sdpa_config *cfg, int threads, bool backward)
{
    const attn_isa *isa;
    if (attn_isa_current(&isa) != ATTN_OK || attn_sdpa_check(cfg) != ATTN_OK || threads < 1)
        return 0;
    return isa->flash->workspace_bytes(cfg, threads, backward);
}

static attn_status check_mask(const attn_mask *mask, const char *name)
{
    if (mask == NULL) return ATTN_OK;
    if (mask->data == NULL) return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s data is NULL", name);
    if (mask->type != ATTN_MASK_BOOL && mask->type != ATTN_MASK_BOOL_KEEP &&
        mask->type != ATTN_MASK_FLOAT)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s type %d is not an attn_mask_type", name,
                          (int)mask->type);
    return ATTN_OK;
}

static attn_status check_config(const attn_sdpa_config *cfg)
{
    attn_status s;
    if ((s = attn_sdpa_check(cfg)) || (s = check_mask(cfg->attn_mask, "attn_mask")) ||
        (s = check_mask(cfg->key_padding_mask, "key_padding_mask")))
        return s;
    return ATTN_OK;
}

attn_status attn_flash_forward(float *out, float *lse, const float *q, const float *k,
                               const float *v, const attn_sdpa_config *cfg)
{
    attn_status s;
    if ((s = check_config(cfg)) || (s = attn_check_not_null(out, "out")) ||
        (s = attn_check_not_null(lse, "lse")) || (s = attn_check_not_null(q, "q")) ||
        (s = attn_check_not_null(k, "k")) || (s = attn_check_not_null(v, "v")))
        return s;
    const attn_isa *isa;
    if ((s = attn_isa_current(&isa))) return s;
    return isa->flash->forward(out, lse, q, k, v, cfg);
}

attn_status attn_flash_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                const float *k, const float *v, const float *lse,
                                const attn_sdpa_config *cfg)
{
    attn_status s;
    if ((s = check_config(cfg)) || (s = attn_check_not_null(dout, "dout")) ||
        (s = attn_check_not_null(q, "q")) || (s = attn_check_not_null(k, "k")) ||
        (s = attn_check_not_null(v, "v")) ||
        (s = attn_check_not_null(lse, "lse")))
        return s;
    const attn_isa *isa;
    if ((s = attn_isa_current(&isa))) return s;
    return isa->flash->backward(dq, dk, dv, dout, q, k, v, lse, cfg);
}
