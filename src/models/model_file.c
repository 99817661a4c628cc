/* What the two kinds of model file share (attn/model_file.h): the kind, the
 * steps, the size check and the writing. */
#include "models/model_file.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/checkpoint.h"
#include "core/error.h"

attn_status attn_model_file_check_kind(const attn_safetensors *st, const char *kind,
                                       const char *what)
{
    const char *name = attn_safetensors_metadata(st, "attn.kind");
    if (name == NULL)
        return attn_error(ATTN_ERR_FORMAT,
                          "not an attn model file (no 'attn.kind' in its metadata)");
    if (strcmp(name, kind) != 0)
        return attn_error(ATTN_ERR_FORMAT, "holds a '%.40s' model, not %s", name, what);
    return ATTN_OK;
}

/* A step count in [0, INT32_MAX] (the most steps a schedule has) from the
 * metadata value `key`. */
static attn_status step_count(const attn_safetensors *st, const char *key, int64_t *step)
{
    const char *text = attn_safetensors_metadata(st, key);
    if (text == NULL) return attn_error(ATTN_ERR_FORMAT, "metadata '%s' is missing", key);
    char *end = NULL;
    errno = 0;
    const long long value = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || value < 0 || value > INT32_MAX)
        return attn_error(ATTN_ERR_FORMAT, "metadata '%s' is '%.40s', not a step count in [0, %d]",
                          key, text, INT32_MAX);
    *step = value;
    return ATTN_OK;
}

attn_status attn_model_file_step(const attn_safetensors *st, int64_t *step)
{
    attn_status s;
    if ((s = attn_check_not_null(st, "file")) || (s = attn_check_not_null(step, "step")) ||
        (s = step_count(st, "step", step)))
        return s;
    /* A checkpoint's optimizer has taken exactly its steps. */
    int64_t taken;
    if (attn_safetensors_metadata(st, "optimizer.step") == NULL) return ATTN_OK;
    if ((s = step_count(st, "optimizer.step", &taken))) return s;
    if (taken != *step)
        return attn_error(ATTN_ERR_FORMAT,
                          "metadata 'optimizer.step' is %lld but 'step' is %lld: the optimizer's "
                          "state is not the model's",
                          (long long)taken, (long long)*step);
    return ATTN_OK;
}

attn_status attn_model_file_fits(const attn_safetensors *st, attn_status counted,
                                 const int64_t *params)
{
    if (counted != ATTN_OK) return attn_error_about(ATTN_ERR_FORMAT, "metadata 'model'");
    uint64_t held = 0; /* at most the file's bytes */
    for (int i = 0; i < attn_safetensors_count(st); i++) held += attn_safetensors_at(st, i)->numel;
    if ((uint64_t)*params > held)
        return attn_error(ATTN_ERR_FORMAT,
                          "metadata 'model' describes a model of %" PRId64 " parameters, but the "
                          "file holds only %" PRIu64 " numbers",
                          *params, held);
    return ATTN_OK;
}

attn_status attn_model_file_save(const char *path, const attn_params *params,
                                 const attn_params *buffers, const attn_adamw *opt,
                                 const char *kind, int64_t step, const attn_metadata_pair *own,
                                 int own_count, const attn_metadata_pair *extra, int extra_count)
{
    attn_status s;
    if ((s = attn_check_range(step, 0, INT32_MAX, "step")) ||
        (s = attn_check_range(extra_count, 0, 64, "extra metadata count")) ||
        (extra_count > 0 && (s = attn_check_not_null(extra, "extra metadata"))))
        return s;
    char steps[32];
    snprintf(steps, sizeof steps, "%" PRId64, step);
    attn_metadata_pair meta[2 + 8 + 64];
    int n = 0;
    meta[n++] = (attn_metadata_pair){"attn.kind", kind};
    for (int i = 0; i < own_count; i++) meta[n++] = own[i];
    meta[n++] = (attn_metadata_pair){"step", steps};
    for (int i = 0; i < extra_count; i++) meta[n++] = extra[i];
    return attn_checkpoint_save(path, params, buffers, opt, meta, n);
}
