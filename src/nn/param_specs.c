/* Declaring parameters under a prefix and binding views to them by name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "nn/param_specs.h"

void attn_specs_add(attn_specs *s, const char *prefix, const char *name, int ndim, int64_t d0,
                    int64_t d1)
{
    if (s->status) return;
    if (s->count == s->capacity) {
        int capacity = s->capacity ? 2 * s->capacity : 32;
        attn_param *grown = realloc(s->items, (size_t)capacity * sizeof *grown);
        if (grown == NULL) {
            s->status = attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d parameter specs",
                                   capacity);
            return;
        }
        s->items = grown;
        s->capacity = capacity;
    }
    attn_param *it = &s->items[s->count];
    memset(it, 0, sizeof *it);
    int n = snprintf(it->name, sizeof it->name, "%s%s", prefix, name);
    if (n < 0 || n >= (int)sizeof it->name) {
        s->status = attn_error(ATTN_ERR_INVALID_ARGUMENT,
                               "parameter name '%s%s' exceeds %d characters", prefix, name,
                               ATTN_PARAM_NAME_MAX - 1);
        return;
    }
    it->ndim = ndim;
    it->shape[0] = d0;
    it->shape[1] = ndim > 1 ? d1 : 0;
    s->count++;
}

attn_status attn_specs_layout(attn_specs *s, attn_params *p)
{
    attn_status st = s->status ? s->status : attn_params_init(p, s->items, s->count);
    attn_specs_free(s);
    return st;
}

attn_status attn_specs_count(attn_specs *s, int64_t *count)
{
    attn_status st = s->status;
    *count = 0;
    /* Each dimension is a checked config value (at most ATTN_MAX_VOCAB or
     * ATTN_MAX_LAYERS times ATTN_MAX_WIDTH), so no product or sum nears 2^63. */
    for (int i = 0; !st && i < s->count; i++)
        *count += s->items[i].shape[0] * (s->items[i].ndim > 1 ? s->items[i].shape[1] : 1);
    attn_specs_free(s);
    return st;
}

void attn_specs_free(attn_specs *s)
{
    free(s->items);
    memset(s, 0, sizeof *s);
}

attn_status attn_param_bind(float **data, float **grad, const attn_params *p, const char *prefix,
                            const char *name)
{
    char full[ATTN_PARAM_NAME_MAX];
    int n = snprintf(full, sizeof full, "%s%s", prefix, name);
    const attn_param *it = n > 0 && n < (int)sizeof full ? attn_params_find(p, full) : NULL;
    if (it == NULL)
        return attn_error(ATTN_ERR_NOT_FOUND, "the parameter block has no '%s%s'", prefix, name);
    *data = p->data + it->offset;
    *grad = p->grad + it->offset;
    return ATTN_OK;
}
