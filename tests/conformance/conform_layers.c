/* Conformance kind "layers": one building block per case, chosen by the config
 * key "op":
 *   linear         x (N, in), weight (out, in), bias (out) if "bias", dout (N, out)
 *   layernorm      x (N, D), weight, bias (D) if "affine", dout (N, D), "eps"
 *   embedding      ids (N) integers, weight (num, dim), dout (N, dim), "padding_idx"
 *   activation     x (n), dout (n), "activation" by name
 *   cross_entropy  logits (N, C), targets (N) integers, "ignore_index",
 *                  "label_smoothing", "dloss"
 * Outputs: "out" (and for layernorm "mean", "rstd"; for cross_entropy "loss",
 * "probs", "row_loss") and "grad.<input>" for every float input, each gradient
 * accumulated from zero. */
#include <string.h>

#include "conform.h"
#include "conform_kinds.h"

/* An integer tensor of shape (N), read through float32 (exact below 2^24). */
static int32_t *input_ids(const char *name, int64_t N)
{
    const int64_t shape[1] = {N};
    const float *f = input_f32(name, 1, shape);
    int32_t *ids = alloc((size_t)N, sizeof *ids);
    for (int64_t i = 0; i < N; i++) ids[i] = (int32_t)f[i];
    return ids;
}

static void run_linear(void)
{
    const int N = meta_int("N"), in = meta_int("in"), out = meta_int("out");
    const bool has_bias = meta_bool("bias");
    const int64_t xs[2] = {N, in}, ws[2] = {out, in}, bs[1] = {out}, ys[2] = {N, out};
    const float *x = input_f32("x", 2, xs), *w = input_f32("weight", 2, ws);
    const float *b = has_bias ? input_f32("bias", 1, bs) : NULL;
    const float *dy = input_f32("dout", 2, ys);
    float *y = alloc((size_t)N * out, sizeof *y), *dx = alloc((size_t)N * in, sizeof *dx);
    float *dw = alloc((size_t)out * in, sizeof *dw), *db = alloc((size_t)out, sizeof *db);
    check(attn_linear_forward(y, x, w, b, N, in, out), "attn_linear_forward");
    check(attn_linear_backward(dx, dw, has_bias ? db : NULL, dy, x, w, N, in, out),
          "attn_linear_backward");
    add_output("out", y, 2, ys);
    add_output("grad.x", dx, 2, xs);
    add_output("grad.weight", dw, 2, ws);
    if (has_bias) add_output("grad.bias", db, 1, bs);
}

static void run_layernorm(void)
{
    const int N = meta_int("N"), D = meta_int("D");
    const bool affine = meta_bool("affine");
    const float eps = (float)meta_double("eps");
    const int64_t xs[2] = {N, D}, ds[1] = {D}, ns[1] = {N};
    const float *x = input_f32("x", 2, xs), *dy = input_f32("dout", 2, xs);
    const float *w = affine ? input_f32("weight", 1, ds) : NULL;
    const float *b = affine ? input_f32("bias", 1, ds) : NULL;
    float *y = alloc((size_t)N * D, sizeof *y), *dx = alloc((size_t)N * D, sizeof *dx);
    float *mean = alloc((size_t)N, sizeof *mean), *rstd = alloc((size_t)N, sizeof *rstd);
    float *dw = alloc((size_t)D, sizeof *dw), *db = alloc((size_t)D, sizeof *db);
    check(attn_layernorm_forward(y, mean, rstd, x, w, b, N, D, eps), "attn_layernorm_forward");
    check(attn_layernorm_backward(dx, affine ? dw : NULL, affine ? db : NULL, dy, x, mean, rstd, w,
                                  N, D),
          "attn_layernorm_backward");
    add_output("out", y, 2, xs);
    add_output("mean", mean, 1, ns);
    add_output("rstd", rstd, 1, ns);
    add_output("grad.x", dx, 2, xs);
    if (affine) {
        add_output("grad.weight", dw, 1, ds);
        add_output("grad.bias", db, 1, ds);
    }
}

static void run_embedding(void)
{
    const int N = meta_int("N"), num = meta_int("num"), dim = meta_int("dim");
    const int padding_idx = meta_int("padding_idx");
    const int64_t ws[2] = {num, dim}, ys[2] = {N, dim};
    const int32_t *ids = input_ids("ids", N);
    const float *w = input_f32("weight", 2, ws), *dy = input_f32("dout", 2, ys);
    float *y = alloc((size_t)N * dim, sizeof *y), *dw = alloc((size_t)num * dim, sizeof *dw);
    check(attn_embedding_forward(y, ids, w, N, num, dim), "attn_embedding_forward");
    check(attn_embedding_backward(dw, dy, ids, N, num, dim, padding_idx),
          "attn_embedding_backward");
    add_output("out", y, 2, ys);
    add_output("grad.weight", dw, 2, ws);
}

static void run_activation(void)
{
    attn_activation f;
    check(attn_activation_parse(&f, meta_string("activation")), "attn_activation_parse");
    const int n = meta_int("n");
    const int64_t shape[1] = {n};
    const float *x = input_f32("x", 1, shape), *dy = input_f32("dout", 1, shape);
    float *y = alloc((size_t)n, sizeof *y), *dx = alloc((size_t)n, sizeof *dx);
    check(attn_activation_forward(f, y, x, (size_t)n), "attn_activation_forward");
    check(attn_activation_backward(f, dx, dy, x, (size_t)n), "attn_activation_backward");
    add_output("out", y, 1, shape);
    add_output("grad.x", dx, 1, shape);
}

static void run_cross_entropy(void)
{
    const int N = meta_int("N"), C = meta_int("C"), ignore_index = meta_int("ignore_index");
    const float smoothing = (float)meta_double("label_smoothing");
    const float dloss = (float)meta_double("dloss");
    const int64_t ls[2] = {N, C}, ns[1] = {N}, one[1] = {1};
    const float *logits = input_f32("logits", 2, ls);
    const int32_t *targets = input_ids("targets", N);
    float *loss = alloc(1, sizeof *loss), *probs = alloc((size_t)N * C, sizeof *probs);
    float *row_loss = alloc((size_t)N, sizeof *row_loss);
    float *dlogits = alloc((size_t)N * C, sizeof *dlogits);
    check(attn_cross_entropy_forward(loss, probs, row_loss, logits, targets, N, C, ignore_index,
                                     smoothing),
          "attn_cross_entropy_forward");
    check(attn_cross_entropy_backward(dlogits, probs, targets, N, C, ignore_index, smoothing,
                                      dloss),
          "attn_cross_entropy_backward");
    add_output("loss", loss, 1, one);
    add_output("probs", probs, 2, ls);
    add_output("row_loss", row_loss, 1, ns);
    add_output("grad.logits", dlogits, 2, ls);
}

void conform_layers(const char *dir)
{
    static const struct {
        const char *name;
        void (*run)(void);
    } ops[] = {{"linear", run_linear},         {"layernorm", run_layernorm},
               {"embedding", run_embedding},   {"activation", run_activation},
               {"cross_entropy", run_cross_entropy}};
    const char *op = meta_string("op");
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(op, ops[i].name) == 0) {
            ops[i].run();
            write_outputs(dir);
            return;
        }
    die("__metadata__ 'op' = '%s' is not linear, layernorm, embedding, activation or "
        "cross_entropy",
        op);
}
