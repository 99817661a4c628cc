/* A training run's state as one safetensors file: parameters, buffers and
 * AdamW's moments under their own keys.
 *
 * Loading lays out one combined block of every key the file must have, checks
 * the file against it strictly (names, shapes, dtypes) and reads the keys it
 * keeps into one scratch array; only then are the values copied into the
 * caller's blocks, so a failed load changes nothing. Without an optimizer the
 * file's moments are checked but never read: they are two thirds of a training
 * checkpoint, and a model loaded to generate or evaluate has no use for them. */
#include "attn/checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "nn/params_read.h"

static const char *const MOMENT_PREFIX[2] = {"optimizer.exp_avg.", "optimizer.exp_avg_sq."};
static const char STEP_KEY[] = "optimizer.step";

static int count_of(const attn_params *p) { return p ? p->count : 0; }

/* The name of moment `which` of parameter `key`. */
static attn_status moment_name(char *out, int which, const char *key)
{
    int n = snprintf(out, ATTN_PARAM_NAME_MAX, "%s%s", MOMENT_PREFIX[which], key);
    if (n < 0 || n >= ATTN_PARAM_NAME_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "parameter name '%s' is too long for its optimizer key", key);
    return ATTN_OK;
}

static attn_status check_moments(const attn_params *params, const attn_adamw *opt)
{
    if (opt->n != params->total)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "the optimizer holds %zu values but the parameters %zu", opt->n,
                          params->total);
    return ATTN_OK;
}

attn_status attn_checkpoint_save(const char *path, const attn_params *params,
                                 const attn_params *buffers, const attn_adamw *opt,
                                 const attn_metadata_pair *meta, int meta_count)
{
    attn_status s;
    if ((s = attn_check_not_null(path, "path")) || (s = attn_check_not_null(params, "params")) ||
        (opt && (s = check_moments(params, opt))) ||
        (s = attn_check_at_least(meta_count, 0, "metadata count")) ||
        (meta_count > 0 && (s = attn_check_not_null(meta, "metadata"))))
        return s;
    int moments = opt ? 2 * params->count : 0;
    int count = params->count + count_of(buffers) + moments;
    attn_tensor_out *tensors = calloc((size_t)count, sizeof *tensors);
    char(*names)[ATTN_PARAM_NAME_MAX] = calloc((size_t)(moments ? moments : 1), sizeof *names);
    attn_metadata_pair *pairs = calloc((size_t)meta_count + 1, sizeof *pairs);
    if (tensors == NULL || names == NULL || pairs == NULL) {
        s = attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for a checkpoint of %d tensors", count);
        goto done;
    }
    int t = 0;
    const attn_params *blocks[2] = {params, buffers};
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < count_of(blocks[b]); i++) {
            const attn_param *it = &blocks[b]->items[i];
            tensors[t++] = (attn_tensor_out){it->name, ATTN_DTYPE_F32, it->ndim, it->shape,
                                             blocks[b]->data + it->offset};
        }
    for (int which = 0; which < (opt ? 2 : 0); which++)
        for (int i = 0; i < params->count; i++) {
            const attn_param *it = &params->items[i];
            char *name = names[which * params->count + i];
            if ((s = moment_name(name, which, it->name))) goto done;
            const float *moment = which == 0 ? opt->m : opt->v;
            tensors[t++] = (attn_tensor_out){name, ATTN_DTYPE_F32, it->ndim, it->shape,
                                             moment + it->offset};
        }
    char step[32];
    snprintf(step, sizeof step, "%" PRId64, opt ? opt->step : (int64_t)0);
    for (int i = 0; i < meta_count; i++) pairs[i] = meta[i];
    int pair_count = meta_count;
    if (opt) pairs[pair_count++] = (attn_metadata_pair){STEP_KEY, step};
    s = attn_safetensors_save(path, tensors, count, pairs, pair_count);
done:
    free(tensors);
    free(names);
    free(pairs);
    return s;
}

/* "optimizer.step" as a whole number >= 0. */
static attn_status read_step(const attn_safetensors *st, int64_t *step)
{
    const char *text = attn_safetensors_metadata(st, STEP_KEY);
    if (text == NULL) return attn_error(ATTN_ERR_NOT_FOUND, "missing metadata '%s'", STEP_KEY);
    char *end;
    long long value = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || value < 0)
        return attn_error(ATTN_ERR_FORMAT, "metadata '%s' is '%s', not a step count", STEP_KEY,
                          text);
    *step = value;
    return ATTN_OK;
}

/* Specs of every key the file must hold; with opt NULL, the optimizer keys the
 * file has are listed too, so that they are accepted and then ignored. */
static attn_status expected_keys(attn_param *specs, int *count, const attn_safetensors *st,
                                 const attn_params *params, const attn_params *buffers,
                                 bool moments)
{
    attn_status s;
    int n = 0;
    const attn_params *blocks[2] = {params, buffers};
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < count_of(blocks[b]); i++) specs[n++] = blocks[b]->items[i];
    for (int which = 0; which < 2; which++)
        for (int i = 0; i < params->count; i++) {
            attn_param spec = params->items[i];
            if ((s = moment_name(spec.name, which, params->items[i].name))) return s;
            if (moments || attn_safetensors_find(st, spec.name) != NULL) specs[n++] = spec;
        }
    *count = n;
    return ATTN_OK;
}

static void copy_block(attn_params *dst, float *dst_data, const attn_params *all,
                       const float *read, int first)
{
    for (int i = 0; i < count_of(dst); i++) {
        const attn_param *from = &all->items[first + i];
        memcpy(dst_data + dst->items[i].offset, read + from->offset,
               from->numel * sizeof(float));
    }
}

attn_status attn_checkpoint_load(const attn_safetensors *st, attn_params *params,
                                 attn_params *buffers, attn_adamw *opt)
{
    attn_status s;
    if ((s = attn_check_not_null(st, "checkpoint")) ||
        (s = attn_check_not_null(params, "params")) || (opt && (s = check_moments(params, opt))))
        return s;
    int64_t step = 0;
    if (opt && (s = read_step(st, &step))) return s;
    attn_param *specs = calloc((size_t)(3 * params->count + count_of(buffers)), sizeof *specs);
    if (specs == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for a checkpoint");
    int count = 0;
    attn_params all = {0};
    float *read = NULL;
    if ((s = expected_keys(specs, &count, st, params, buffers, opt != NULL)) ||
        (s = attn_params_plan(&all, specs, count)))
        goto done;
    /* The keys come in order: parameters, buffers, then the moments. */
    const int read_count = opt ? count : params->count + count_of(buffers);
    const size_t read_floats = read_count < count ? all.items[read_count].offset : all.total;
    if ((read = malloc((read_floats + 1) * sizeof *read)) == NULL) {
        s = attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory to load %zu floats", read_floats);
        goto done;
    }
    if ((s = attn_params_read_strict(&all, read_count, st, read))) goto done;
    copy_block(params, params->data, &all, read, 0);
    if (buffers) copy_block(buffers, buffers->data, &all, read, params->count);
    if (opt) {
        int first = params->count + count_of(buffers);
        copy_block(params, opt->m, &all, read, first);
        copy_block(params, opt->v, &all, read, first + params->count);
        opt->step = step;
    }
done:
    free(read);
    attn_params_free(&all);
    free(specs);
    return s;
}
