/* AdamW (Loshchilov and Hutter, "Decoupled weight decay regularization", ICLR
 * 2019), step for step as torch.optim.AdamW of PyTorch 1.13 with foreach=False:
 * the scalars are formed in double as Python does, then rounded to float where
 * torch hands them to a float32 kernel, and the elementwise operations run in
 * float32 in torch's order, so that a step from the same state agrees with
 * torch's to float32 rounding. The elementwise update is a vector kernel
 * (kernels/vec_adamw_impl.h) of the instruction set the library chose
 * (kernels/isa.h); every variant gives the same bits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/train.h"
#include "core/error.h"
#include "core/large_alloc.h"
#include "kernels/isa.h"

enum { PARALLEL_MIN_ELEMENTS = 1 << 16 }; /* below this a parallel region costs more */

attn_adamw_config attn_adamw_defaults(void)
{
    return (attn_adamw_config){.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
}

/* torch.optim.AdamW's own checks, with the value named. */
static attn_status check_config(const attn_adamw_config *cfg)
{
    if (!(cfg->beta1 >= 0.0f && cfg->beta1 < 1.0f))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "AdamW beta1 %g is not in [0, 1)",
                          (double)cfg->beta1);
    if (!(cfg->beta2 >= 0.0f && cfg->beta2 < 1.0f))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "AdamW beta2 %g is not in [0, 1)",
                          (double)cfg->beta2);
    if (!(cfg->eps >= 0.0f) || isinf(cfg->eps))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "AdamW eps %g is not finite and >= 0",
                          (double)cfg->eps);
    if (!(cfg->weight_decay >= 0.0f) || isinf(cfg->weight_decay))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "AdamW weight_decay %g is not finite and >= 0",
                          (double)cfg->weight_decay);
    return ATTN_OK;
}

attn_status attn_adamw_init(attn_adamw *opt, size_t n, const attn_adamw_config *cfg)
{
    attn_status s;
    if ((s = attn_check_not_null(opt, "AdamW optimiser")) ||
        (s = attn_check_not_null(cfg, "AdamW config")) ||
        (s = attn_check_at_least((long long)n, 1, "AdamW parameter count")) ||
        (s = check_config(cfg)))
        return s;
    memset(opt, 0, sizeof *opt);
    opt->m = attn_alloc_large(n * sizeof *opt->m);
    opt->v = attn_alloc_large(n * sizeof *opt->v);
    if (opt->m == NULL || opt->v == NULL) {
        attn_adamw_free(opt);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for AdamW moments of %zu parameters",
                          n);
    }
    memset(opt->m, 0, n * sizeof *opt->m);
    memset(opt->v, 0, n * sizeof *opt->v);
    opt->cfg = *cfg;
    opt->n = n;
    return ATTN_OK;
}

void attn_adamw_free(attn_adamw *opt)
{
    if (opt == NULL) return;
    free(opt->m);
    free(opt->v);
    memset(opt, 0, sizeof *opt);
}

enum { ADAMW_CHUNK = 1 << 14 };

/* params, grads, decay: (n), with t = step after increment:
 *   p *= 1 - lr wd                                   (where decay applies)
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g
 *   p += -(lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * Each element is independent, so threads do not change the result. */
attn_status attn_adamw_step(attn_adamw *opt, float *params, const float *grads,
                            const uint8_t *decay, float lr)
{
    attn_status s;
    if ((s = attn_check_not_null(opt, "AdamW optimiser")) ||
        (s = attn_check_not_null(opt->m, "AdamW moments (call attn_adamw_init)")) ||
        (s = attn_check_not_null(params, "AdamW params")) ||
        (s = attn_check_not_null(grads, "AdamW grads")))
        return s;
    if (!(lr >= 0.0f) || isinf(lr))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "AdamW learning rate %g is not finite and >= 0", (double)lr);
    const attn_isa *isa;
    if ((s = attn_isa_current(&isa))) return s;
    const attn_adamw_config c = opt->cfg;
    const int64_t t = ++opt->step;
    const double bias_correction1 = 1.0 - pow(c.beta1, (double)t);
    const double bias_correction2 = 1.0 - pow(c.beta2, (double)t);
    const attn_adamw_scalars sc = {
        .decay_factor = (float)(1.0 - (double)lr * c.weight_decay),
        .b1 = c.beta1,
        .b2 = c.beta2,
        .one_minus_b1 = (float)(1.0 - (double)c.beta1),
        .one_minus_b2 = (float)(1.0 - (double)c.beta2),
        .neg_step_size = (float)(-((double)lr / bias_correction1)),
        .bias_correction2_sqrt = (float)sqrt(bias_correction2),
        .eps = c.eps,
    };
    const size_t n = opt->n;
    const long chunks = (long)((n + ADAMW_CHUNK - 1) / ADAMW_CHUNK);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS) \
    num_threads(attn_get_num_threads())
    for (long k = 0; k < chunks; k++) {
        const size_t first = (size_t)k * ADAMW_CHUNK;
        const size_t count = n - first < ADAMW_CHUNK ? n - first : ADAMW_CHUNK;
        isa->vec->adamw_update(params + first, opt->m + first, opt->v + first, grads + first,
                               decay ? decay + first : NULL, count, &sc);
    }
    return ATTN_OK;
}
