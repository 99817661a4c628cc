/* Conformance kind "gpt": the decoder-only language model (attn/gpt.h) with a
 * PyTorch state_dict of tests/conformance/gpt_model.py.
 *
 * Config: the attn_gpt_config fields (vocab_size, block_size, n_layer, n_head,
 * n_kv_head, n_embd, position by name, rope_theta, window, bias, tie_weights,
 * dropout), batch, T, training, cache_capacity, n_chunks. Inputs: ids, targets
 * (batch, T) I32; chunks (n_chunks) I32, the sizes in which batch row 0 is fed to
 * a key-value cache, summing to T.
 *
 * Outputs: loss, logits (batch, T, V) and grad.<key> of the fused attention path;
 * reference.loss, reference.logits and reference.grad of the pass through
 * attn_sdpa_reference_* (reference.grad packs every parameter's gradient, the keys
 * in strcmp order, since per-key outputs of both passes would exceed the driver's
 * 64); cached.logits (T, V) of the cache; and saved_weights.safetensors.
 *
 * Before row 0, the cache takes the first tokens of the last batch row and is
 * reset, so a reset that left anything behind shows in cached.logits. When the
 * row fills the cache, one more token must fail and leave the length as it was.
 */
#include <stdlib.h>
#include <string.h>

#include "attn/gpt.h"
#include "conform.h"
#include "conform_kinds.h"

static attn_gpt *model;
static attn_gpt_cache *cache;

static void free_model(void)
{
    attn_gpt_cache_free(cache);
    attn_gpt_free(model);
}

/* A copy of the last forward's logits, (B, T, V). */
static float *copy_logits(size_t count)
{
    float *out = alloc(count, sizeof(float));
    memcpy(out, attn_gpt_logits(model), count * sizeof(float));
    return out;
}

/* One forward and backward from zeroed gradients -> the loss. */
static float *run_pass(const int32_t *ids, const int32_t *targets, int B, int T,
                       const attn_gpt_pass *pass)
{
    attn_params_zero_grad(attn_gpt_params(model));
    float *loss = alloc(1, sizeof(float));
    check(attn_gpt_forward(model, loss, ids, targets, B, T, pass), "attn_gpt_forward");
    check(attn_gpt_backward(model), "attn_gpt_backward");
    return loss;
}

static int compare_names(const void *a, const void *b)
{
    const attn_param *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Every parameter's gradient, one after another in the strcmp order of the keys
 * (which Python's sorted() reproduces), without the alignment gaps. */
static float *packed_grads(const attn_params *p, size_t *count)
{
    const attn_param **order = alloc((size_t)p->count, sizeof *order);
    size_t n = 0;
    for (int i = 0; i < p->count; i++) {
        order[i] = &p->items[i];
        n += p->items[i].numel;
    }
    qsort(order, (size_t)p->count, sizeof *order, compare_names);
    float *out = alloc(n, sizeof(float)), *at = out;
    for (int i = 0; i < p->count; i++) {
        memcpy(at, p->grad + order[i]->offset, order[i]->numel * sizeof(float));
        at += order[i]->numel;
    }
    *count = n;
    return out;
}

/* Row 0 of ids through a fresh cache, fed in the chunk sizes -> (T, V). */
static float *run_cache(const int32_t *ids, int B, int T, int V)
{
    const int capacity = meta_int("cache_capacity"), n_chunks = meta_int("n_chunks");
    const int64_t chunks_shape[1] = {n_chunks};
    const int32_t *chunks = input_i32("chunks", 1, chunks_shape);
    check(attn_gpt_cache_create(&cache, model, capacity), "attn_gpt_cache_create");

    const int junk = T < capacity ? T : capacity;
    check(attn_gpt_cache_forward(model, cache, NULL, ids + (size_t)(B - 1) * T, junk),
          "attn_gpt_cache_forward of the tokens before the reset");
    attn_gpt_cache_reset(cache);
    if (attn_gpt_cache_length(cache) != 0)
        die("attn_gpt_cache_reset left the length at %d", attn_gpt_cache_length(cache));

    float *logits = alloc((size_t)T * V, sizeof(float));
    int at = 0;
    for (int c = 0; c < n_chunks; c++) {
        if (chunks[c] < 1 || chunks[c] > T - at) die("chunk %d of %d tokens is bad", c, chunks[c]);
        check(attn_gpt_cache_forward(model, cache, logits + (size_t)at * V, ids + at, chunks[c]),
              "attn_gpt_cache_forward");
        at += chunks[c];
        if (attn_gpt_cache_length(cache) != at)
            die("cache length %d after %d tokens", attn_gpt_cache_length(cache), at);
    }
    if (at != T) die("the chunks hold %d tokens, not T = %d", at, T);

    if (T == capacity) {
        float *spare = alloc((size_t)V, sizeof(float));
        if (attn_gpt_cache_forward(model, cache, spare, ids, 1) == ATTN_OK)
            die("attn_gpt_cache_forward past the capacity %d succeeded", capacity);
        if (attn_gpt_cache_length(cache) != T)
            die("a failed attn_gpt_cache_forward changed the length from %d to %d", T,
                attn_gpt_cache_length(cache));
    }
    return logits;
}

attn_gpt_config conform_gpt_config(void)
{
    attn_gpt_config cfg = attn_gpt_defaults();
    cfg.vocab_size = meta_int("vocab_size");
    cfg.block_size = meta_int("block_size");
    cfg.n_layer = meta_int("n_layer");
    cfg.n_head = meta_int("n_head");
    cfg.n_kv_head = meta_int("n_kv_head");
    cfg.n_embd = meta_int("n_embd");
    check(attn_position_parse(&cfg.position, meta_string("position")), "position");
    cfg.rope_theta = (float)meta_double("rope_theta");
    cfg.window = meta_int("window");
    cfg.bias = meta_bool("bias");
    cfg.tie_weights = meta_bool("tie_weights");
    cfg.dropout = (float)meta_double("dropout");
    return cfg;
}

void conform_gpt(const char *dir)
{
    attn_gpt_config cfg = conform_gpt_config();
    const int B = meta_int("batch"), T = meta_int("T"), V = cfg.vocab_size;
    if (B < 1 || T < 1) die("batch %d and T %d must be >= 1", B, T);

    atexit(free_model);
    check(attn_gpt_create(&model, &cfg, 12345), "attn_gpt_create");
    attn_params *p = attn_gpt_params(model);
    check(attn_params_load(p, join(dir, "weights.safetensors")), "attn_params_load");

    const int64_t bt[2] = {B, T};
    const int32_t *ids = input_i32("ids", 2, bt), *targets = input_i32("targets", 2, bt);
    const size_t n_logits = (size_t)B * T * V;
    const int64_t one[1] = {1}, logits_shape[3] = {B, T, V}, row_shape[2] = {T, V};

    attn_gpt_pass pass = {.training = meta_bool("training"), .step = 3, .seed = 7,
                          .reference_attention = true};
    float *ref_loss = run_pass(ids, targets, B, T, &pass);
    float *ref_logits = copy_logits(n_logits);
    size_t n_grads;
    float *ref_grads = packed_grads(p, &n_grads);
    const int64_t grads_shape[1] = {(int64_t)n_grads};

    pass.reference_attention = false;
    float *loss = run_pass(ids, targets, B, T, &pass);
    float *logits = copy_logits(n_logits);

    add_output("loss", loss, 1, one);
    add_output("logits", logits, 3, logits_shape);
    add_param_grads(p);
    add_output("reference.loss", ref_loss, 1, one);
    add_output("reference.logits", ref_logits, 3, logits_shape);
    add_output("reference.grad", ref_grads, 1, grads_shape);
    add_output("cached.logits", run_cache(ids, B, T, V), 2, row_shape);
    write_outputs(dir);
    check(attn_params_save(p, join(dir, "saved_weights.safetensors"), NULL, 0), "attn_params_save");
}
