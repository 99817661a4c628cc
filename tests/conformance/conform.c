/* attn_conform: runs one conformance case through libattn.
 *
 *   attn_conform <kind> <dir>
 *
 * Each kind is a file conform_<kind>.c defining conform_<kind>(dir); the build
 * lists them in conform_kinds.h.
 *
 * <dir>/inputs.safetensors holds the inputs (float32), the masks (BOOL/U8 or F32),
 * the upstream gradient "dout" and the case config in __metadata__, one JSON value
 * per key. For the modules <dir>/weights.safetensors holds the PyTorch state_dict,
 * loaded with attn_params_load (strict names and shapes).
 *
 * Writes <dir>/outputs.safetensors (outputs, attention weights when asked for,
 * gradients of the inputs "grad.<input>" and of every parameter
 * "grad.<state_dict key>") and, for the modules, <dir>/saved_weights.safetensors
 * (attn_params_save). Any failure prints a message and exits with status 1.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "conform.h"
#include "conform_kinds.h"

enum { MAX_TRACKED = 256, MAX_OUTPUTS = 64 };

/* Everything allocated is remembered and freed at exit, on the error paths too,
 * so a leak checker stays quiet whatever happens. */
static struct {
    void *blocks[MAX_TRACKED];
    int nblocks;
    attn_safetensors *inputs;
    attn_tensor_out outputs[MAX_OUTPUTS];
    int64_t output_shapes[MAX_OUTPUTS][ATTN_MAX_DIMS];
    int noutputs;
} g;

static void cleanup(void)
{
    attn_safetensors_close(g.inputs);
    g.inputs = NULL;
    for (int i = 0; i < g.nblocks; i++) free(g.blocks[i]);
    g.nblocks = 0;
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("attn_conform: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void check(attn_status status, const char *what)
{
    if (status != ATTN_OK)
        die("%s failed (%s): %s", what, attn_status_string(status), attn_last_error());
}

void *alloc(size_t count, size_t size)
{
    if (g.nblocks == MAX_TRACKED) die("too many allocations");
    void *p = calloc(count ? count : 1, size);
    if (p == NULL) die("out of memory (%zu x %zu bytes)", count, size);
    g.blocks[g.nblocks++] = p;
    return p;
}

const char *join(const char *dir, const char *file)
{
    char *s = alloc(strlen(dir) + strlen(file) + 2, 1);
    sprintf(s, "%s/%s", dir, file);
    return s;
}

/* ---- the config: one JSON value per __metadata__ key ---- */

cJSON *meta_value(const char *key)
{
    const char *text = attn_safetensors_metadata(g.inputs, key);
    if (text == NULL) die("inputs.safetensors: __metadata__ has no key '%s'", key);
    cJSON *value = cJSON_Parse(text);
    if (value == NULL) die("inputs.safetensors: __metadata__ '%s' is not JSON: %s", key, text);
    return value;
}

double meta_double(const char *key)
{
    cJSON *v = meta_value(key);
    if (!cJSON_IsNumber(v)) {
        cJSON_Delete(v);
        die("__metadata__ '%s' is not a number", key);
    }
    double d = v->valuedouble;
    cJSON_Delete(v);
    return d;
}

int meta_int(const char *key)
{
    double d = meta_double(key);
    if (d != (double)(int)d) die("__metadata__ '%s' = %g is not an int", key, d);
    return (int)d;
}

bool meta_bool(const char *key)
{
    cJSON *v = meta_value(key);
    if (!cJSON_IsBool(v)) {
        cJSON_Delete(v);
        die("__metadata__ '%s' is not true or false", key);
    }
    bool b = cJSON_IsTrue(v);
    cJSON_Delete(v);
    return b;
}

/* Copies a string value into tracked memory. */
const char *meta_string(const char *key)
{
    cJSON *v = meta_value(key);
    if (!cJSON_IsString(v)) {
        cJSON_Delete(v);
        die("__metadata__ '%s' is not a string", key);
    }
    char *s = alloc(strlen(v->valuestring) + 1, 1);
    strcpy(s, v->valuestring);
    cJSON_Delete(v);
    return s;
}

/* ---- inputs ---- */

const attn_tensor_view *input_view(const char *name)
{
    const attn_tensor_view *t = attn_safetensors_find(g.inputs, name);
    if (t == NULL) die("inputs.safetensors has no tensor '%s'", name);
    return t;
}

/* The tensor `name`, which must have exactly `shape`, as float32. */
float *input_f32(const char *name, int ndim, const int64_t *shape)
{
    const attn_tensor_view *t = input_view(name);
    bool same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same) {
        char have[128], want[128];
        attn_format_shape(have, sizeof have, t->shape, t->ndim);
        attn_format_shape(want, sizeof want, shape, ndim);
        die("input '%s' has shape %s, but the config implies %s", name, have, want);
    }
    float *x = alloc(t->numel, sizeof(float));
    check(attn_tensor_read_f32(t, x, t->numel), name);
    return x;
}

/* An int32 tensor `name` of exactly `shape`. */
int32_t *input_i32(const char *name, int ndim, const int64_t *shape)
{
    const attn_tensor_view *t = input_view(name);
    if (t->dtype != ATTN_DTYPE_I32)
        die("input '%s' has dtype %s, not I32", name, attn_dtype_name(t->dtype));
    bool same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same) die("input '%s' does not have the shape the config implies", name);
    int32_t *x = alloc(t->numel, sizeof(int32_t));
    memcpy(x, t->data, t->numel * sizeof(int32_t));
    return x;
}

/* A mask tensor of any shape: BOOL or U8 for the bool kinds (copied as bytes 0/1),
 * F32 (or anything convertible) for float. */
mask_input input_mask(const char *name, bool is_float)
{
    const attn_tensor_view *t = input_view(name);
    mask_input m;
    m.ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) m.shape[d] = t->shape[d];
    if (is_float) {
        float *x = alloc(t->numel, sizeof(float));
        check(attn_tensor_read_f32(t, x, t->numel), name);
        m.data = x;
    } else {
        if (t->dtype != ATTN_DTYPE_BOOL && t->dtype != ATTN_DTYPE_U8)
            die("bool mask '%s' has dtype %s, not BOOL or U8", name, attn_dtype_name(t->dtype));
        uint8_t *x = alloc(t->numel, 1);
        const uint8_t *src = t->data;
        for (size_t i = 0; i < t->numel; i++) x[i] = src[i] != 0;
        m.data = x;
    }
    return m;
}

/* "none", "bool", "bool_keep" or "float"; returns false for "none". */
bool mask_kind(const char *key, attn_mask_type *type)
{
    const char *kind = meta_string(key);
    if (strcmp(kind, "none") == 0) return false;
    if (strcmp(kind, "bool") == 0)
        *type = ATTN_MASK_BOOL;
    else if (strcmp(kind, "bool_keep") == 0)
        *type = ATTN_MASK_BOOL_KEEP;
    else if (strcmp(kind, "float") == 0)
        *type = ATTN_MASK_FLOAT;
    else
        die("__metadata__ '%s' = '%s' is not none, bool, bool_keep or float", key, kind);
    return true;
}

/* A mask input of nn.MultiheadAttention or nn.Transformer named `key`: "bool" or
 * "float" by the config, exactly `shape`; NULL for "none". `module` names the
 * module in the message when the config asks for bool_keep, which it lacks. */
const void *read_mask(const char *key, int ndim, const int64_t *shape, attn_mask_type *type,
                      const char *module)
{
    if (!mask_kind(key, type)) return NULL;
    if (*type == ATTN_MASK_BOOL_KEEP) die("'%s': %s has no bool_keep masks", key, module);
    mask_input m = input_mask(key, *type == ATTN_MASK_FLOAT);
    bool same = m.ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = m.shape[d] == shape[d];
    if (!same) {
        char have[128], want[128];
        attn_format_shape(have, sizeof have, m.shape, m.ndim);
        attn_format_shape(want, sizeof want, shape, ndim);
        die("mask '%s' has shape %s, but the config implies %s", key, have, want);
    }
    return m.data;
}

/* ---- outputs ---- */

void add_output(const char *name, const float *data, int ndim, const int64_t *shape)
{
    if (g.noutputs == MAX_OUTPUTS) die("too many outputs");
    int i = g.noutputs++;
    for (int d = 0; d < ndim; d++) g.output_shapes[i][d] = shape[d];
    g.outputs[i] = (attn_tensor_out){name, ATTN_DTYPE_F32, ndim, g.output_shapes[i], data};
}

void add_param_grads(const attn_params *p)
{
    for (int i = 0; i < p->count; i++) {
        const attn_param *it = &p->items[i];
        char *name = alloc(strlen(it->name) + 6, 1);
        sprintf(name, "grad.%s", it->name);
        add_output(name, p->grad + it->offset, it->ndim, it->shape);
    }
}

void write_outputs(const char *dir)
{
    check(attn_safetensors_save(join(dir, "outputs.safetensors"), g.outputs, g.noutputs, NULL, 0),
          "writing outputs.safetensors");
}

static const struct {
    const char *name;
    void (*run)(const char *dir);
} kinds[] = {
#define CONFORM_KIND(name) {#name, conform_##name},
    CONFORM_KINDS
#undef CONFORM_KIND
};

int main(int argc, char **argv)
{
    int count = (int)(sizeof kinds / sizeof kinds[0]);
    if (argc != 3) {
        fprintf(stderr, "usage: attn_conform KIND DIR\nkinds:");
        for (int k = 0; k < count; k++) fprintf(stderr, " %s", kinds[k].name);
        fputc('\n', stderr);
        return 2;
    }
    atexit(cleanup);
    const char *kind = argv[1], *dir = argv[2];
    for (int k = 0; k < count; k++)
        if (strcmp(kind, kinds[k].name) == 0) {
            check(attn_safetensors_open(&g.inputs, join(dir, "inputs.safetensors")),
                  "reading inputs.safetensors");
            kinds[k].run(dir);
            return 0;
        }
    die("unknown kind '%s' (run without arguments for the list)", kind);
}
