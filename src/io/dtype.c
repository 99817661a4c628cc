/* safetensors dtypes: names, sizes and conversion of stored elements to float32.
 * Elements are decoded byte by byte as little-endian, so the tensor data needs no
 * alignment and the result does not depend on the host's byte order. */
#include <math.h>
#include <string.h>

#include "core/bf16.h"
#include "core/error.h"
#include "io/io_internal.h"

typedef struct dtype_info {
    attn_dtype dtype;
    const char *name;
    size_t size;
} dtype_info;

static const dtype_info DTYPES[] = {
    {ATTN_DTYPE_F64, "F64", 8},  {ATTN_DTYPE_F32, "F32", 4}, {ATTN_DTYPE_F16, "F16", 2},
    {ATTN_DTYPE_BF16, "BF16", 2}, {ATTN_DTYPE_I64, "I64", 8}, {ATTN_DTYPE_I32, "I32", 4},
    {ATTN_DTYPE_I16, "I16", 2},  {ATTN_DTYPE_I8, "I8", 1},   {ATTN_DTYPE_U8, "U8", 1},
    {ATTN_DTYPE_BOOL, "BOOL", 1},
};
enum { DTYPE_COUNT = sizeof DTYPES / sizeof DTYPES[0] };

bool attn_dtype_is_valid(attn_dtype dtype)
{
    return (int)dtype >= 0 && (int)dtype < DTYPE_COUNT;
}

const char *attn_dtype_name(attn_dtype dtype)
{
    return attn_dtype_is_valid(dtype) ? DTYPES[dtype].name : "unknown";
}

size_t attn_dtype_size(attn_dtype dtype)
{
    return attn_dtype_is_valid(dtype) ? DTYPES[dtype].size : 0;
}

bool attn_dtype_from_name(const char *name, attn_dtype *dtype)
{
    for (int i = 0; i < DTYPE_COUNT; i++) {
        if (strcmp(DTYPES[i].name, name) == 0) {
            *dtype = DTYPES[i].dtype;
            return true;
        }
    }
    return false;
}

static float f32_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float attn_f16_to_f32(uint16_t bits)
{
    uint32_t sign = (uint32_t)(bits & 0x8000u) << 16;
    uint32_t exponent = (bits >> 10) & 0x1fu;
    uint32_t mantissa = bits & 0x3ffu;
    if (exponent == 0x1f) /* inf or NaN: keep the payload, so a quiet NaN stays quiet */
        return f32_from_bits(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
        if (mantissa == 0) return f32_from_bits(sign);
        /* A half subnormal is a float32 normal: shift the leading one up to the
         * implicit bit, lowering the exponent once per shift. 113 is the float32
         * biased exponent of 2^-14, the scale of the half subnormals. */
        uint32_t biased = 113;
        while ((mantissa & 0x400u) == 0) {
            mantissa <<= 1;
            biased--;
        }
        return f32_from_bits(sign | (biased << 23) | ((mantissa & 0x3ffu) << 13));
    }
    return f32_from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

static uint64_t load_le(const unsigned char *p, size_t size)
{
    uint64_t v = 0;
    for (size_t i = size; i-- > 0;) v = (v << 8) | p[i];
    return v;
}

/* One element at p of the given dtype, as float32 (rounded to nearest). */
static float element_to_f32(attn_dtype dtype, const unsigned char *p)
{
    switch (dtype) {
    case ATTN_DTYPE_F64: {
        uint64_t bits = load_le(p, 8);
        double d;
        memcpy(&d, &bits, sizeof d);
        return (float)d;
    }
    case ATTN_DTYPE_F32: return f32_from_bits((uint32_t)load_le(p, 4));
    case ATTN_DTYPE_F16: return attn_f16_to_f32((uint16_t)load_le(p, 2));
    case ATTN_DTYPE_BF16: return attn_bf16_widen((uint16_t)load_le(p, 2));
    case ATTN_DTYPE_I64: return (float)(int64_t)load_le(p, 8);
    case ATTN_DTYPE_I32: return (float)(int32_t)(uint32_t)load_le(p, 4);
    case ATTN_DTYPE_I16: return (float)(int16_t)(uint16_t)load_le(p, 2);
    case ATTN_DTYPE_I8: return (float)(int8_t)p[0];
    case ATTN_DTYPE_U8: return (float)p[0];
    case ATTN_DTYPE_BOOL: return p[0] != 0 ? 1.0f : 0.0f;
    }
    return NAN;
}

attn_status attn_tensor_read_f32(const attn_tensor_view *t, float *dst, size_t count)
{
    attn_status s;
    if ((s = attn_check_not_null(t, "tensor")) || (s = attn_check_not_null(dst, "dst")))
        return s;
    if (count != t->numel)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "tensor '%s' has %zu elements but the destination holds %zu",
                          t->name ? t->name : "", t->numel, count);
    if (!attn_dtype_is_valid(t->dtype))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "tensor '%s' has invalid dtype %d",
                          t->name ? t->name : "", (int)t->dtype);
    size_t size = attn_dtype_size(t->dtype);
    if (count > 0 && (t->data == NULL || t->nbytes / size < count))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "tensor '%s' has %zu bytes of data, too few for %zu %s elements",
                          t->name ? t->name : "", t->nbytes, count, attn_dtype_name(t->dtype));
    const unsigned char *src = t->data;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* The common case, loading float32 weights, is a plain copy on this host. */
    if (t->dtype == ATTN_DTYPE_F32) {
        if (count > 0) memcpy(dst, src, count * sizeof(float));
        return ATTN_OK;
    }
#endif
    for (size_t i = 0; i < count; i++) dst[i] = element_to_f32(t->dtype, src + size * i);
    return ATTN_OK;
}
