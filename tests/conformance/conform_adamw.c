/* Conformance kind "adamw": the optimiser side of training, chosen by the
 * config key "op":
 *   adamw     "n", "steps", "step0", "beta1", "beta2", "eps", "weight_decay",
 *             "decay_mask"; params, exp_avg, exp_avg_sq (n) the state after
 *             step0 steps, grads (steps, n), lrs (steps), decay (n) if
 *             "decay_mask" -> params, exp_avg, exp_avg_sq after the last step
 *   clip      "n", "max_norm"; grads (n) -> norm (1), grads clipped
 *   schedule  "steps", "first_step", "warmup", "total", "lr_max", "lr_min"
 *             -> lrs (steps), the rate at first_step, first_step + 1, ... */
#include <stdlib.h>
#include <string.h>

#include "conform.h"
#include "conform_kinds.h"

static attn_adamw opt;

static void free_opt(void) { attn_adamw_free(&opt); }

static void run_adamw(void)
{
    const int n = meta_int("n"), steps = meta_int("steps");
    attn_adamw_config cfg;
    cfg.beta1 = (float)meta_double("beta1");
    cfg.beta2 = (float)meta_double("beta2");
    cfg.eps = (float)meta_double("eps");
    cfg.weight_decay = (float)meta_double("weight_decay");
    const int64_t ns[1] = {n}, gs[2] = {steps, n}, ls[1] = {steps};
    float *params = input_f32("params", 1, ns);
    const float *grads = input_f32("grads", 2, gs), *lrs = input_f32("lrs", 1, ls);
    const uint8_t *decay = NULL;
    if (meta_bool("decay_mask")) {
        const float *mask = input_f32("decay", 1, ns);
        uint8_t *bytes = alloc((size_t)n, 1);
        for (int i = 0; i < n; i++) bytes[i] = mask[i] != 0.0f;
        decay = bytes;
    }
    atexit(free_opt);
    check(attn_adamw_init(&opt, (size_t)n, &cfg), "attn_adamw_init");
    memcpy(opt.m, input_f32("exp_avg", 1, ns), (size_t)n * sizeof(float));
    memcpy(opt.v, input_f32("exp_avg_sq", 1, ns), (size_t)n * sizeof(float));
    opt.step = meta_int("step0");
    for (int s = 0; s < steps; s++)
        check(attn_adamw_step(&opt, params, grads + (size_t)s * n, decay, lrs[s]),
              "attn_adamw_step");
    add_output("params", params, 1, ns);
    add_output("exp_avg", opt.m, 1, ns);
    add_output("exp_avg_sq", opt.v, 1, ns);
}

static void run_clip(void)
{
    const int n = meta_int("n");
    const int64_t ns[1] = {n}, one[1] = {1};
    float *grads = input_f32("grads", 1, ns);
    float *norm = alloc(1, sizeof *norm);
    *norm = (float)attn_clip_grad_norm(grads, (size_t)n, meta_double("max_norm"));
    add_output("norm", norm, 1, one);
    add_output("grads", grads, 1, ns);
}

static void run_schedule(void)
{
    const int steps = meta_int("steps"), first = meta_int("first_step");
    const int warmup = meta_int("warmup"), total = meta_int("total");
    const float lr_max = (float)meta_double("lr_max"), lr_min = (float)meta_double("lr_min");
    const int64_t ls[1] = {steps};
    float *lrs = alloc((size_t)steps, sizeof *lrs);
    for (int s = 0; s < steps; s++)
        lrs[s] = attn_lr_warmup_cosine(first + s, warmup, total, lr_max, lr_min);
    add_output("lrs", lrs, 1, ls);
}

void conform_adamw(const char *dir)
{
    static const struct {
        const char *name;
        void (*run)(void);
    } ops[] = {{"adamw", run_adamw}, {"clip", run_clip}, {"schedule", run_schedule}};
    const char *op = meta_string("op");
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(op, ops[i].name) == 0) {
            ops[i].run();
            write_outputs(dir);
            return;
        }
    die("__metadata__ 'op' = '%s' is not adamw, clip or schedule", op);
}
