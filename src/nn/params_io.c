/* Loading and saving a parameter block as a safetensors state_dict.
 *
 * Loading is strict, as PyTorch's load_state_dict(strict=True): the file holds
 * exactly the module's keys with the module's shapes. Everything is checked and
 * converted into a scratch block before the parameters are touched, so a failed
 * load leaves them as they were. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/nn.h"
#include "core/error.h"
#include "nn/params_read.h"

static bool same_shape(const attn_param *param, const attn_tensor_view *t)
{
    if (param->ndim != t->ndim) return false;
    for (int d = 0; d < param->ndim; d++)
        if (param->shape[d] != t->shape[d]) return false;
    return true;
}

static bool is_float_dtype(attn_dtype dtype)
{
    return dtype == ATTN_DTYPE_F32 || dtype == ATTN_DTYPE_F64 || dtype == ATTN_DTYPE_F16 ||
           dtype == ATTN_DTYPE_BF16;
}

/* Fails naming the first module key the file lacks, and how many others. */
static attn_status check_missing(const attn_params *p, const attn_safetensors *st)
{
    int missing = 0;
    const char *first = NULL;
    for (int i = 0; i < p->count; i++) {
        if (attn_safetensors_find(st, p->items[i].name) != NULL) continue;
        if (first == NULL) first = p->items[i].name;
        missing++;
    }
    if (missing == 0) return ATTN_OK;
    if (missing == 1) return attn_error(ATTN_ERR_NOT_FOUND, "missing key '%s'", first);
    return attn_error(ATTN_ERR_NOT_FOUND, "missing key '%s' (and %d more)", first, missing - 1);
}

/* Fails naming the first file key the module lacks, and how many others. */
static attn_status check_unexpected(const attn_params *p, const attn_safetensors *st)
{
    int unexpected = 0;
    const char *first = NULL;
    for (int i = 0; i < attn_safetensors_count(st); i++) {
        const attn_tensor_view *t = attn_safetensors_at(st, i);
        if (attn_params_find(p, t->name) != NULL) continue;
        if (first == NULL) first = t->name;
        unexpected++;
    }
    if (unexpected == 0) return ATTN_OK;
    if (unexpected == 1) return attn_error(ATTN_ERR_FORMAT, "unexpected key '%s'", first);
    return attn_error(ATTN_ERR_FORMAT, "unexpected key '%s' (and %d more)", first,
                      unexpected - 1);
}

static attn_status check_tensor_fits(const attn_param *param, const attn_tensor_view *t)
{
    if (!same_shape(param, t)) {
        char in_file[160], in_module[160];
        attn_format_shape(in_file, sizeof in_file, t->shape, t->ndim);
        attn_format_shape(in_module, sizeof in_module, param->shape, param->ndim);
        return attn_error(ATTN_ERR_FORMAT,
                          "key '%s' has shape %s in the file but %s in the module", param->name,
                          in_file, in_module);
    }
    if (!is_float_dtype(t->dtype))
        return attn_error(ATTN_ERR_UNSUPPORTED,
                          "key '%s' has dtype %s; parameters load from F32, F64, F16 or BF16",
                          param->name, attn_dtype_name(t->dtype));
    return ATTN_OK;
}

attn_status attn_params_read_strict(const attn_params *p, int read_count,
                                   const attn_safetensors *st, float *into)
{
    attn_status s;
    if ((s = check_missing(p, st)) || (s = check_unexpected(p, st))) return s;
    for (int i = 0; i < p->count; i++) {
        s = check_tensor_fits(&p->items[i], attn_safetensors_find(st, p->items[i].name));
        if (s != ATTN_OK) return s;
    }
    for (int i = 0; i < read_count && s == ATTN_OK; i++) {
        const attn_param *param = &p->items[i];
        s = attn_tensor_read_f32(attn_safetensors_find(st, param->name), into + param->offset,
                                 param->numel);
    }
    return s;
}

attn_status attn_params_load_from(attn_params *p, const attn_safetensors *st)
{
    attn_status s;
    if ((s = attn_check_not_null(p, "params")) || (s = attn_check_not_null(st, "safetensors")))
        return s;
    float *scratch = malloc((p->total + 1) * sizeof *scratch);
    if (scratch == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory to load %zu parameter floats",
                          p->total);
    if ((s = attn_params_read_strict(p, p->count, st, scratch)) == ATTN_OK) {
        for (int i = 0; i < p->count; i++) {
            const attn_param *param = &p->items[i];
            memcpy(p->data + param->offset, scratch + param->offset,
                   param->numel * sizeof *scratch);
        }
    }
    free(scratch);
    return s;
}

attn_status attn_params_load(attn_params *p, const char *path)
{
    attn_status s;
    if ((s = attn_check_not_null(p, "params")) || (s = attn_check_not_null(path, "path")))
        return s;
    attn_safetensors *st = NULL;
    if ((s = attn_safetensors_open(&st, path)) != ATTN_OK) return s;
    if ((s = attn_params_load_from(p, st)) != ATTN_OK) attn_error_about(s, path);
    attn_safetensors_close(st);
    return s;
}

attn_status attn_params_save(const attn_params *p, const char *path,
                             const attn_metadata_pair *meta, int meta_count)
{
    attn_status s;
    if ((s = attn_check_not_null(p, "params")) || (s = attn_check_not_null(path, "path")))
        return s;
    attn_tensor_out *tensors = calloc((size_t)p->count + 1, sizeof *tensors);
    if (tensors == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d tensors", p->count);
    for (int i = 0; i < p->count; i++) {
        const attn_param *param = &p->items[i];
        tensors[i] = (attn_tensor_out){.name = param->name,
                                       .dtype = ATTN_DTYPE_F32,
                                       .ndim = param->ndim,
                                       .shape = param->shape,
                                       .data = p->data + param->offset};
    }
    s = attn_safetensors_save(path, tensors, p->count, meta, meta_count);
    free(tensors);
    return s;
}
