/* Masks read through PyTorch's broadcasting rules. */
#include <math.h>
#include <stdio.h>

#include "attention/checks.h"
#include "attn/attention.h"
#include "core/error.h"

static bool known_type(attn_mask_type type)
{
    return type == ATTN_MASK_BOOL || type == ATTN_MASK_BOOL_KEEP || type == ATTN_MASK_FLOAT;
}

attn_status attn_mask_check(const attn_mask *mask, const char *name)
{
    if (mask == NULL) return ATTN_OK;
    if (!known_type(mask->type))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s type %d is not an attn_mask_type", name,
                          (int)mask->type);
    if (mask->data == NULL) return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s data is NULL", name);
    return ATTN_OK;
}

attn_status attn_mask_init(attn_mask *mask, attn_mask_type type, const void *data, int ndim,
                           const int64_t *shape, const int64_t target[4])
{
    attn_status s;
    if ((s = attn_check_not_null(mask, "mask")) || (s = attn_check_not_null(data, "mask data")) ||
        (s = attn_check_not_null(shape, "mask shape")) ||
        (s = attn_check_not_null(target, "mask target shape")))
        return s;
    if (!known_type(type))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "mask type %d is not an attn_mask_type",
                          (int)type);
    if (ndim < 1 || ndim > 4)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "mask has %d dimensions; it needs 1 to 4",
                          ndim);
    int64_t stride[4] = {0, 0, 0, 0};
    int64_t step = 1;
    for (int d = 3, m = ndim - 1; d >= 0; d--, m--) {
        if (m < 0) continue; /* a missing leading dimension broadcasts */
        if (shape[m] < 1)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "mask dimension %d is %lld", m,
                              (long long)shape[m]);
        if (shape[m] == target[d]) {
            stride[d] = target[d] == 1 ? 0 : step;
        } else if (shape[m] != 1) {
            char have[96], want[96];
            attn_format_shape(have, sizeof have, shape, ndim);
            attn_format_shape(want, sizeof want, target, 4);
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "mask of shape %s does not broadcast to the scores' shape %s", have,
                              want);
        }
        step *= shape[m];
    }
    mask->type = type;
    mask->data = data;
    for (int d = 0; d < 4; d++) mask->stride[d] = stride[d];
    mask->fill = false;
    mask->fill_value = 0.0f;
    return ATTN_OK;
}

float attn_mask_apply(const attn_mask *mask, float score, int64_t b, int64_t h, int64_t i,
                      int64_t j)
{
    return attn_mask_score(mask, score, b, h, i, j);
}

attn_mask attn_mask_of_batch(const attn_mask *mask, int b)
{
    attn_mask slice = *mask;
    size_t element = mask->type == ATTN_MASK_FLOAT ? sizeof(float) : sizeof(uint8_t);
    slice.data = (const char *)mask->data + (size_t)(b * mask->stride[0]) * element;
    return slice;
}
