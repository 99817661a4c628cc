/* The fused attention kernels' entry points: argument checks, and the choice of
 * the instruction-set variant (flash_avx512.c, flash_avx2.c, flash_scalar.c). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kernels/flash.h"

/* In order of preference. */
static const attn_flash_kernels *const variants[] = {&attn_flash_avx512, &attn_flash_avx2,
                                                     &attn_flash_scalar};
enum { VARIANT_COUNT = sizeof variants / sizeof variants[0] };

/* The variant ATTN_SIMD names, else the best one this CPU runs. Fails, with a
 * message, when ATTN_SIMD names none that can run. */
static attn_status select_kernels(const attn_flash_kernels **kernels)
{
    const char *forced = getenv("ATTN_SIMD");
    if (forced != NULL && *forced != '\0') {
        for (int i = 0; i < VARIANT_COUNT; i++) {
            if (strcmp(forced, variants[i]->name) != 0) continue;
            if (!variants[i]->supported())
                return attn_error(ATTN_ERR_UNSUPPORTED,
                                  "ATTN_SIMD=%s, but this CPU or this build has no %s kernels",
                                  forced, forced);
            *kernels = variants[i];
            return ATTN_OK;
        }
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "ATTN_SIMD=%s is not one of avx512, avx2, scalar", forced);
    }
    *kernels = &attn_flash_scalar;
    for (int i = VARIANT_COUNT - 1; i >= 0; i--)
        if (variants[i]->supported()) *kernels = variants[i];
    return ATTN_OK;
}

const char *attn_flash_variant(void)
{
    const attn_flash_kernels *kernels;
    if (select_kernels(&kernels) != ATTN_OK)
        return "none (ATTN_SIMD names no variant this CPU runs)";
    return kernels->name;
}

size_t attn_flash_workspace_bytes(const attn_sdpa_config *cfg, int threads, bool backward)
{
    const attn_flash_kernels *kernels;
    if (select_kernels(&kernels) != ATTN_OK || attn_sdpa_check(cfg) != ATTN_OK || threads < 1)
        return 0;
    return kernels->workspace_bytes(cfg, threads, backward);
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
    const attn_flash_kernels *kernels;
    if ((s = select_kernels(&kernels))) return s;
    return kernels->forward(out, lse, q, k, v, cfg);
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
    const attn_flash_kernels *kernels;
    if ((s = select_kernels(&kernels))) return s;
    return kernels->backward(dq, dk, dv, dout, q, k, v, lse, cfg);
}
