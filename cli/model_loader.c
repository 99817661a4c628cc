/* Reading a model file of any kind, in the same steps for every kind: open it
 * (which checks its checksum), check its "attn.kind", let the kind read its
 * metadata and create the model, then the step count, the optimizer and the
 * checkpoint's tensors. The library reads and checks the model's metadata
 * (attn/model_file.h); the tool adds its training options ("train"). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/checkpoint.h"
#include "cli.h"

int cli_bad(const cli_reader *r, const char *fmt, ...)
{
    va_list args;
    cli_message(stderr, "attn: %s: ", r->path);
    va_start(args, fmt);
    cli_vmessage(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    return EXIT_RUNTIME;
}

bool cli_read_train(const cli_reader *r, const attn_field *fields, int count, void *base)
{
    if (attn_metadata_fields(r->st, "train", fields, count, base) == ATTN_OK) return true;
    cli_bad(r, "%s", attn_last_error());
    return false;
}

/* After the model is created: the steps done (*step), which must not pass the
 * schedule's, then the optimizer (with opt non-NULL) and the tensors. */
static int restore(const cli_reader *r, const cli_model_kind *kind, void *model, int64_t *step,
                   attn_adamw *opt)
{
    if (attn_model_file_step(r->st, step) != ATTN_OK) return cli_bad(r, "%s", attn_last_error());
    const int64_t steps = kind->train(model)->steps;
    if (*step > steps)
        return cli_bad(r, "metadata 'step' is %lld, past the %lld steps of its schedule ('steps' "
                          "in metadata 'train')",
                       (long long)*step, (long long)steps);
    attn_params *params = kind->params(model);
    attn_params *buffers = kind->buffers ? kind->buffers(model) : NULL;
    attn_adamw_config adamw = kind->adamw_config(model);
    if (opt && attn_adamw_init(opt, params->total, &adamw) != ATTN_OK) return cli_fail(r->path);
    if (attn_checkpoint_load(r->st, params, buffers, opt) != ATTN_OK)
        return cli_bad(r, "%s", attn_last_error());
    return EXIT_OK;
}

int cli_load_model_file(const char *path, const cli_model_kind *kind, void *model, int64_t *step,
                        attn_adamw *opt)
{
    if (opt) memset(opt, 0, sizeof *opt);
    attn_safetensors *st = NULL;
    if (attn_safetensors_open(&st, path) != ATTN_OK) return cli_fail("reading the model");
    cli_reader r = {path, st};
    int status = EXIT_RUNTIME;
    /* Another kind is named here, with the command to use; the library's reader
     * (the kind's create) refuses a file that names none. */
    const char *name = attn_safetensors_metadata(st, "attn.kind");
    if (name != NULL && strcmp(name, kind->name) != 0)
        kind->wrong_kind(&r, name);
    else if (kind->create(&r, model))
        status = restore(&r, kind, model, step, opt);
    attn_safetensors_close(st);
    if (status != EXIT_OK) {
        kind->free(model);
        if (opt) attn_adamw_free(opt);
    }
    return status;
}
