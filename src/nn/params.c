/* One block of parameters and one of gradients, with a named view per parameter. */
#include <stdlib.h>
#include <string.h>

#include "attn/nn.h"
#include "core/error.h"
#include "core/large_alloc.h"
#include "nn/params_read.h"

enum { PARAM_ALIGN_FLOATS = 16 }; /* each parameter starts on a 64-byte boundary */

static size_t param_numel(const attn_param *it)
{
    size_t numel = 1;
    for (int d = 0; d < it->ndim; d++) numel *= (size_t)it->shape[d];
    return numel;
}

/* Rounds a parameter's size up so that the next one starts on a cache line. */
static size_t padded(size_t numel)
{
    return (numel + PARAM_ALIGN_FLOATS - 1) / PARAM_ALIGN_FLOATS * PARAM_ALIGN_FLOATS;
}

/* Checks one parameter's name (set, terminated, not used by an earlier one) and
 * shape. */
static attn_status check_spec(const attn_param *specs, int i)
{
    const attn_param *it = &specs[i];
    if (memchr(it->name, '\0', sizeof it->name) == NULL || it->name[0] == '\0')
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "parameter %d has no valid name", i);
    for (int j = 0; j < i; j++)
        if (strcmp(specs[j].name, it->name) == 0)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "parameter name '%s' appears twice",
                              it->name);
    if (it->ndim < 1 || it->ndim > ATTN_PARAM_MAX_DIMS)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "parameter '%s' has %d dimensions", it->name,
                          it->ndim);
    for (int d = 0; d < it->ndim; d++)
        if (it->shape[d] < 1)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "parameter '%s' dimension %d is %lld",
                              it->name, d, (long long)it->shape[d]);
    return ATTN_OK;
}

attn_status attn_params_plan(attn_params *p, const attn_param *specs, int count)
{
    attn_status s;
    if ((s = attn_check_not_null(p, "params")) || (s = attn_check_not_null(specs, "specs")) ||
        (s = attn_check_at_least(count, 1, "parameter count")))
        return s;
    memset(p, 0, sizeof *p);
    for (int i = 0; i < count; i++)
        if ((s = check_spec(specs, i))) return s;
    attn_param *items = calloc((unsigned)count, sizeof *items);
    if (items == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d parameter views", count);
    size_t offset = 0;
    for (int i = 0; i < count; i++) {
        items[i] = specs[i];
        items[i].numel = param_numel(&specs[i]);
        items[i].offset = offset;
        offset += padded(items[i].numel);
    }
    *p = (attn_params){.total = offset, .items = items, .count = count};
    return ATTN_OK;
}

attn_status attn_params_init(attn_params *p, const attn_param *specs, int count)
{
    attn_status s = attn_params_plan(p, specs, count);
    if (s) return s;
    const size_t bytes = p->total * sizeof(float);
    float *data = attn_alloc_large(bytes), *grad = attn_alloc_large(bytes);
    if (data == NULL || grad == NULL) {
        free(data);
        free(grad);
        const size_t total = p->total;
        attn_params_free(p);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %zu parameter floats", total);
    }
    memset(data, 0, bytes);
    memset(grad, 0, bytes);
    p->data = data;
    p->grad = grad;
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
