/* attn_conform: runs one conformance case through libattn.
 *
 *   attn_conform <kind> <dir>      kind: sdpa, mha or seed_mha
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

#include "attn/attn.h"
#include "core/error.h"

enum { MAX_TRACKED = 256, MAX_OUTPUTS = 64 };

/* Everything allocated is remembered and freed at exit, on the error paths too,
 * so a leak checker stays quiet whatever happens. */
static struct {
    void *blocks[MAX_TRACKED];
    int nblocks;
    attn_safetensors *inputs;
    attn_mha *mha;
    attn_seed_mha *seed;
    attn_tensor_out outputs[MAX_OUTPUTS];
    int64_t output_shapes[MAX_OUTPUTS][ATTN_MAX_DIMS];
    int noutputs;
} g;

static void cleanup(void)
{
    attn_safetensors_close(g.inputs);
    attn_mha_free(g.mha);
    attn_seed_mha_free(g.seed);
    g.inputs = NULL;
    g.mha = NULL;
    g.seed = NULL;
    for (int i = 0; i < g.nblocks; i++) free(g.blocks[i]);
    g.nblocks = 0;
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2), noreturn))
#endif
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("attn_conform: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void check(attn_status status, const char *what)
{
    if (status != ATTN_OK)
        die("%s failed (%s): %s", what, attn_status_string(status), attn_last_error());
}

static void *alloc(size_t count, size_t size)
{
    if (g.nblocks == MAX_TRACKED) die("too many allocations");
    void *p = calloc(count ? count : 1, size);
    if (p == NULL) die("out of memory (%zu x %zu bytes)", count, size);
    g.blocks[g.nblocks++] = p;
    return p;
}

static const char *join(const char *dir, const char *file)
{
    char *s = alloc(strlen(dir) + strlen(file) + 2, 1);
    sprintf(s, "%s/%s", dir, file);
    return s;
}

/* ---- the config: one JSON value per __metadata__ key ---- */

static cJSON *meta_value(const char *key)
{
    const char *text = attn_safetensors_metadata(g.inputs, key);
    if (text == NULL) die("inputs.safetensors: __metadata__ has no key '%s'", key);
    cJSON *value = cJSON_Parse(text);
    if (value == NULL) die("inputs.safetensors: __metadata__ '%s' is not JSON: %s", key, text);
    return value;
}

static double meta_double(const char *key)
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

static int meta_int(const char *key)
{
    double d = meta_double(key);
    if (d != (double)(int)d) die("__metadata__ '%s' = %g is not an int", key, d);
    return (int)d;
}

static bool meta_bool(const char *key)
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
static const char *meta_string(const char *key)
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

static const attn_tensor_view *input_view(const char *name)
{
    const attn_tensor_view *t = attn_safetensors_find(g.inputs, name);
    if (t == NULL) die("inputs.safetensors has no tensor '%s'", name);
    return t;
}

/* The tensor `name`, which must have exactly `shape`, as float32. */
static float *input_f32(const char *name, int ndim, const int64_t *shape)
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

typedef struct mask_input {
    const void *data; /* uint8_t for bool kinds, float for float */
    int ndim;
    int64_t shape[ATTN_MAX_DIMS];
} mask_input;

/* A mask tensor of any shape: BOOL or U8 for the bool kinds (copied as bytes 0/1),
 * F32 (or anything convertible) for float. */
static mask_input input_mask(const char *name, bool is_float)
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
static bool mask_kind(const char *key, attn_mask_type *type)
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

/* ---- outputs ---- */

static void add_output(const char *name, const float *data, int ndim, const int64_t *shape)
{
    if (g.noutputs == MAX_OUTPUTS) die("too many outputs");
    int i = g.noutputs++;
    for (int d = 0; d < ndim; d++) g.output_shapes[i][d] = shape[d];
    g.outputs[i] = (attn_tensor_out){name, ATTN_DTYPE_F32, ndim, g.output_shapes[i], data};
}

static void add_param_grads(const attn_params *p)
{
    for (int i = 0; i < p->count; i++) {
        const attn_param *it = &p->items[i];
        char *name = alloc(strlen(it->name) + 6, 1);
        sprintf(name, "grad.%s", it->name);
        add_output(name, p->grad + it->offset, it->ndim, it->shape);
    }
}

static void write_outputs(const char *dir)
{
    check(attn_safetensors_save(join(dir, "outputs.safetensors"), g.outputs, g.noutputs, NULL, 0),
          "writing outputs.safetensors");
}

/* ---- the three kinds ---- */

static void run_sdpa(const char *dir)
{
    attn_sdpa_config cfg = {0};
    cfg.batch = meta_int("batch");
    cfg.heads = meta_int("heads");
    cfg.len_q = meta_int("len_q");
    cfg.len_k = meta_int("len_k");
    cfg.dim_qk = meta_int("dim_qk");
    cfg.dim_v = meta_int("dim_v");
    cfg.scale = (float)meta_double("scale");
    cfg.causal = meta_bool("causal");
    cfg.window = meta_int("window");
    cfg.dropout_p = (float)meta_double("dropout_p");
    cfg.dropout_seed = (uint64_t)meta_int("dropout_seed");
    bool need_weights = meta_bool("need_weights");
    int64_t B = cfg.batch, H = cfg.heads, Lq = cfg.len_q, Lk = cfg.len_k;
    int64_t D = cfg.dim_qk, Dv = cfg.dim_v;
    if (B < 1 || H < 1 || Lq < 1 || Lk < 1 || D < 1 || Dv < 1) die("bad sizes in the config");

    const int64_t target[4] = {B, H, Lq, Lk};
    attn_mask attn_mask_, padding;
    attn_mask_type type;
    if (mask_kind("attn_mask", &type)) {
        mask_input m = input_mask("attn_mask", type == ATTN_MASK_FLOAT);
        check(attn_mask_init(&attn_mask_, type, m.data, m.ndim, m.shape, target),
              "attn_mask_init(attn_mask)");
        cfg.attn_mask = &attn_mask_;
    }
    if (mask_kind("key_padding_mask", &type)) {
        mask_input m = input_mask("key_padding_mask", type == ATTN_MASK_FLOAT);
        check(attn_mask_init(&padding, type, m.data, m.ndim, m.shape, target),
              "attn_mask_init(key_padding_mask)");
        cfg.key_padding_mask = &padding;
    }
    if (meta_bool("alibi")) {
        const int64_t slopes_shape[1] = {H};
        cfg.alibi_slopes = input_f32("alibi_slopes", 1, slopes_shape);
    }
    check(attn_sdpa_check(&cfg), "attn_sdpa_check");

    const int64_t q_shape[4] = {B, H, Lq, D}, k_shape[4] = {B, H, Lk, D};
    const int64_t v_shape[4] = {B, H, Lk, Dv}, out_shape[4] = {B, H, Lq, Dv};
    const int64_t lse_shape[3] = {B, H, Lq}, w_shape[4] = {B, H, Lq, Lk};
    const float *q = input_f32("q", 4, q_shape);
    const float *k = input_f32("k", 4, k_shape);
    const float *v = input_f32("v", 4, v_shape);
    const float *dout = input_f32("dout", 4, out_shape);

    float *out = alloc((size_t)(B * H * Lq * Dv), sizeof(float));
    float *lse = alloc((size_t)(B * H * Lq), sizeof(float));
    float *weights = need_weights ? alloc((size_t)(B * H * Lq * Lk), sizeof(float)) : NULL;
    float *dq = alloc((size_t)(B * H * Lq * D), sizeof(float));
    float *dk = alloc((size_t)(B * H * Lk * D), sizeof(float));
    float *dv = alloc((size_t)(B * H * Lk * Dv), sizeof(float));
    check(attn_sdpa_forward(out, lse, weights, q, k, v, &cfg), "attn_sdpa_forward");
    check(attn_sdpa_backward(dq, dk, dv, dout, q, k, v, lse, &cfg), "attn_sdpa_backward");

    add_output("out", out, 4, out_shape);
    add_output("lse", lse, 3, lse_shape);
    if (weights) add_output("weights", weights, 4, w_shape);
    add_output("grad.q", dq, 4, q_shape);
    add_output("grad.k", dk, 4, k_shape);
    add_output("grad.v", dv, 4, v_shape);
    write_outputs(dir);
}

/* An nn.MultiheadAttention mask, "bool" or "float" by the config, which must have
 * exactly `shape`: (B, Lk) for key_padding_mask, (Lq, Lk) or (B*H, Lq, Lk) for
 * attn_mask. NULL for "none". */
static const void *mha_mask(const char *key, int ndim, const int64_t *shape, attn_mask_type *type)
{
    if (!mask_kind(key, type)) return NULL;
    if (*type == ATTN_MASK_BOOL_KEEP) die("nn.MultiheadAttention has no bool_keep masks");
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

static void run_mha(const char *dir)
{
    attn_mha_config cfg = {0};
    cfg.embed_dim = meta_int("embed_dim");
    cfg.num_heads = meta_int("num_heads");
    cfg.kdim = meta_int("kdim");
    cfg.vdim = meta_int("vdim");
    cfg.bias = meta_bool("bias");
    cfg.batch_first = meta_bool("batch_first");
    cfg.dropout = 0.0f;
    int B = meta_int("batch"), Lq = meta_int("len_q"), Lk = meta_int("len_k");
    bool self_attention = meta_bool("self_attention");
    bool alias_grads = meta_bool("alias_grads");
    bool need_weights = meta_bool("need_weights");
    if (B < 1 || Lq < 1 || Lk < 1) die("bad sizes in the config");

    check(attn_mha_create(&g.mha, &cfg, 12345), "attn_mha_create");
    attn_params *p = attn_mha_params(g.mha);
    check(attn_params_load(p, join(dir, "weights.safetensors")), "attn_params_load");
    attn_params_zero_grad(p);

    int64_t E = cfg.embed_dim, H = cfg.num_heads;
    int64_t kdim = cfg.kdim ? cfg.kdim : E, vdim = cfg.vdim ? cfg.vdim : E;
    int64_t q_shape[3], k_shape[3], v_shape[3];
    int64_t first_q = cfg.batch_first ? B : Lq, second_q = cfg.batch_first ? Lq : B;
    int64_t first_k = cfg.batch_first ? B : Lk, second_k = cfg.batch_first ? Lk : B;
    q_shape[0] = first_q, q_shape[1] = second_q, q_shape[2] = E;
    k_shape[0] = first_k, k_shape[1] = second_k, k_shape[2] = kdim;
    v_shape[0] = first_k, v_shape[1] = second_k, v_shape[2] = vdim;

    attn_mha_input in = {0};
    in.batch = B;
    in.len_q = Lq;
    in.len_k = Lk;
    in.query = input_f32("query", 3, q_shape);
    if (self_attention) {
        if (Lq != Lk || kdim != E || vdim != E)
            die("self-attention needs len_q == len_k and kdim == vdim == embed_dim");
        in.key = in.value = in.query;
    } else {
        in.key = input_f32("key", 3, k_shape);
        in.value = input_f32("value", 3, v_shape);
    }
    const float *dout = input_f32("dout", 3, q_shape);

    const int64_t kpm_shape[2] = {B, Lk};
    in.key_padding_mask = mha_mask("key_padding_mask", 2, kpm_shape, &in.key_padding_mask_type);
    in.attn_mask_ndim = meta_int("attn_mask_ndim");
    if (in.attn_mask_ndim == 2) {
        const int64_t shape[2] = {Lq, Lk};
        in.attn_mask = mha_mask("attn_mask", 2, shape, &in.attn_mask_type);
    } else if (in.attn_mask_ndim == 3) {
        const int64_t shape[3] = {B * H, Lq, Lk};
        in.attn_mask = mha_mask("attn_mask", 3, shape, &in.attn_mask_type);
    } else {
        attn_mask_type unused;
        if (mask_kind("attn_mask", &unused))
            die("attn_mask_ndim must be 2 or 3 with an attn_mask");
    }
    in.is_causal = meta_bool("is_causal");
    in.training = meta_bool("training");
    in.dropout_seed = 0;
    in.average_attn_weights = meta_bool("average_attn_weights");
    int64_t w_shape[4] = {B, H, Lq, Lk}, w_avg_shape[3] = {B, Lq, Lk};
    if (need_weights) in.weights = alloc((size_t)(B * H * Lq * Lk), sizeof(float));

    float *out = alloc((size_t)(B * Lq * E), sizeof(float));
    check(attn_mha_forward(g.mha, out, &in), "attn_mha_forward");

    float *dquery = alloc((size_t)(B * Lq * E), sizeof(float));
    float *dkey = dquery, *dvalue = dquery;
    if (!alias_grads) {
        dkey = alloc((size_t)(B * Lk * kdim), sizeof(float));
        dvalue = alloc((size_t)(B * Lk * vdim), sizeof(float));
    }
    check(attn_mha_backward(g.mha, dquery, dkey, dvalue, dout), "attn_mha_backward");

    add_output("out", out, 3, q_shape);
    if (need_weights) {
        if (in.average_attn_weights)
            add_output("weights", in.weights, 3, w_avg_shape);
        else
            add_output("weights", in.weights, 4, w_shape);
    }
    add_output("grad.query", dquery, 3, q_shape);
    if (!alias_grads) {
        add_output("grad.key", dkey, 3, k_shape);
        add_output("grad.value", dvalue, 3, v_shape);
    }
    add_param_grads(p);
    write_outputs(dir);
    check(attn_params_save(p, join(dir, "saved_weights.safetensors"), NULL, 0), "attn_params_save");
}

static void run_seed_mha(const char *dir)
{
    int E = meta_int("embed_size"), H = meta_int("heads");
    int N = meta_int("batch"), Lq = meta_int("len_q"), Lk = meta_int("len_k");
    bool self_attention = meta_bool("self_attention");
    bool alias_grads = meta_bool("alias_grads");
    bool need_weights = meta_bool("need_weights");
    if (N < 1 || Lq < 1 || Lk < 1) die("bad sizes in the config");

    check(attn_seed_mha_create(&g.seed, E, H, 12345), "attn_seed_mha_create");
    attn_params *p = attn_seed_mha_params(g.seed);
    check(attn_params_load(p, join(dir, "weights.safetensors")), "attn_params_load");
    attn_params_zero_grad(p);

    const int64_t q_shape[3] = {N, Lq, E}, k_shape[3] = {N, Lk, E};
    const float *query = input_f32("query", 3, q_shape), *keys, *values;
    if (self_attention) {
        if (Lq != Lk) die("self-attention needs len_q == len_k");
        keys = values = query;
    } else {
        keys = input_f32("keys", 3, k_shape);
        values = input_f32("values", 3, k_shape);
    }
    const float *dout = input_f32("dout", 3, q_shape);

    attn_mask mask, *maskp = NULL;
    attn_mask_type type;
    if (mask_kind("mask", &type)) {
        if (type != ATTN_MASK_BOOL_KEEP) die("the seed's mask is bool_keep (mask == 0 excludes)");
        mask_input m = input_mask("mask", false);
        const int64_t target[4] = {N, H, Lq, Lk};
        check(attn_mask_init(&mask, type, m.data, m.ndim, m.shape, target), "attn_mask_init(mask)");
        maskp = &mask;
    }
    const int64_t w_shape[4] = {N, H, Lq, Lk};
    float *weights = need_weights ? alloc((size_t)N * H * Lq * Lk, sizeof(float)) : NULL;
    float *out = alloc((size_t)N * Lq * E, sizeof(float));
    check(attn_seed_mha_forward(g.seed, out, weights, values, keys, query, N, Lk, Lq, maskp),
          "attn_seed_mha_forward");

    float *dquery = alloc((size_t)N * Lq * E, sizeof(float));
    float *dkeys = dquery, *dvalues = dquery;
    if (!alias_grads) {
        dkeys = alloc((size_t)N * Lk * E, sizeof(float));
        dvalues = alloc((size_t)N * Lk * E, sizeof(float));
    }
    check(attn_seed_mha_backward(g.seed, dvalues, dkeys, dquery, dout), "attn_seed_mha_backward");

    add_output("out", out, 3, q_shape);
    if (weights) add_output("weights", weights, 4, w_shape);
    add_output("grad.query", dquery, 3, q_shape);
    if (!alias_grads) {
        add_output("grad.keys", dkeys, 3, k_shape);
        add_output("grad.values", dvalues, 3, k_shape);
    }
    add_param_grads(p);
    write_outputs(dir);
    check(attn_params_save(p, join(dir, "saved_weights.safetensors"), NULL, 0), "attn_params_save");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: attn_conform sdpa|mha|seed_mha DIR\n");
        return 2;
    }
    atexit(cleanup);
    const char *kind = argv[1], *dir = argv[2];
    check(attn_safetensors_open(&g.inputs, join(dir, "inputs.safetensors")),
          "reading inputs.safetensors");
    if (strcmp(kind, "sdpa") == 0)
        run_sdpa(dir);
    else if (strcmp(kind, "mha") == 0)
        run_mha(dir);
    else if (strcmp(kind, "seed_mha") == 0)
        run_seed_mha(dir);
    else
        die("unknown kind '%s' (sdpa, mha or seed_mha)", kind);
    return 0;
}
