/* One block of parameters and one of gradients, with a named view per parameter. */
#include <stdlib.h>
#include <string.h>

#include "attn/nn.h"
#include "core/error.h"

enum { PARAM_ALIGN_FLOATS = 16 }; /* each parameter starts on a 64-byte boundary */

attn_status attn_params_init(attn_params *p, const attn_param *specs, int count)
{
    attn_status s;
    if ((s = attn_check_not_null(p, "params")) || (s = attn_check_not_null(specs, "specs")) ||
        (s = attn_check_at_least(count, 1, "parameter count")))
        return s;
    memset(p, 0, sizeof *p);
    attn_param *items = calloc((size_t)count, sizeof *items);
    if (items == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d parameters", count);
    size_t total = 0;
    for (int i = 0; i < count; i++) {
        items[i] = specs[i];
        attn_param *it = &items[i];
        if (memchr(it->name, '\0', sizeof it->name) == NULL || it->name[0] == '\0') {
            free(items);
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "parameter %d has no valid name", i);
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(items[j].name, it->name) == 0) {
                free(items);
                return attn_error(ATTN_ERR_INVALID_ARGUMENT, "parameter name '%s' appears twice",
                                  it->name);
            }
        }
        if (it->ndim < 1 || it->ndim > ATTN_PARAM_MAX_DIMS) {
            free(items);
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "parameter '%s' has %d dimensions",
                              it->name, it->ndim);
        }
        size_t numel = 1;
        for (int d = 0; d < it->ndim; d++) {
            if (it->shape[d] < 1) {
                free(items);
                return attn_error(ATTN_ERR_INVALID_ARGUMENT, "parameter '%s' dimension %d is %lld",
                                  it->name, d, (long long)it->shape[d]);
            }
            numel *= (size_t)it->shape[d];
        }
        it->numel = numel;
        it->offset = total;
        total += (numel + PARAM_ALIGN_FLOATS - 1) / PARAM_ALIGN_FLOATS * PARAM_ALIGN_FLOATS;
    }
    size_t bytes = total * sizeof(float);
    p->data = aligned_alloc(64, bytes);
    p->grad = aligned_alloc(64, bytes);
    if (p->data == NULL || p->grad == NULL) {
        free(p->data);
        free(p->grad);
        free(items);
        memset(p, 0, sizeof *p);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %zu parameter floats", total);
    }
    memset(p->data, 0, bytes);
    memset(p->grad, 0, bytes);
    p->total = total;
    p->items = items;
    p->count = count;
    return ATTN_OK;
}

void attn_params_free(attn_params *p)
{
    if (p == NULL) return;
    free(p->data);
    free(p->grad);
    free(p->items);
    memset(p, 0, sizeof *p);
}

const attn_param *attn_params_find(const attn_params *p, const char *name)
{
    if (p == NULL || name == NULL) return NULL;
    for (int i = 0; i < p->count; i++)
        if (strcmp(p->items[i].name, name) == 0) return &p->items[i];
    return NULL;
}

float *attn_params_data(const attn_params *p, const char *name)
{
    const attn_param *it = attn_params_find(p, name);
    return it ? p->data + it->offset : NULL;
}

float *attn_params_grad(const attn_params *p, const char *name)
{
    const attn_param *it = attn_params_find(p, name);
    return it ? p->grad + it->offset : NULL;
}

void attn_params_zero_grad(attn_params *p)
{
    if (p != NULL && p->grad != NULL) memset(p->grad, 0, p->total * sizeof(float));
}
