/* Arrays to and from bfloat16 (attn/core.h), one value at a time by core/bf16.h,
 * and the names of the precisions. */
#include "attn/core.h"
#include "core/bf16.h"
#include "core/error.h"
#include "core/names.h"

void attn_bf16_from_float(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = attn_bf16_round(src[i]);
}

void attn_float_from_bf16(float *dst, const uint16_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = attn_bf16_widen(src[i]);
}

static const attn_name PRECISION_TABLE[] = {
    {ATTN_FLOAT32, "float32"},
    {ATTN_BF16, "bf16"},
};
static const attn_names PRECISION_NAMES = ATTN_NAMES("precision", "precisions", PRECISION_TABLE);
ATTN_NAMES_FUNCTIONS(attn_precision, PRECISION_NAMES, attn_precision_name, attn_precision_parse)

attn_status attn_check_precision(attn_precision precision)
{
    if (attn_names_has(&PRECISION_NAMES, (int)precision)) return ATTN_OK;
    return attn_error(ATTN_ERR_INVALID_ARGUMENT, "precision %d is not an attn_precision",
                      (int)precision);
}
