/* attn/train.h: what training needs besides the modules: the loss, the optimiser,
 * gradient clipping and the learning-rate schedule, each as PyTorch defines it. */
#ifndef ATTN_TRAIN_H
#define ATTN_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "attn/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- cross-entropy, F.cross_entropy(logits, targets, ignore_index=...,
 *      label_smoothing=..., reduction="mean") ----------------------------------------------
 * logits: (N, C), targets: (N) class ids in [0, C) or ignore_index.
 * -> *loss: the mean over the rows whose target is not ignore_index (0 if there
 *    are none); probs: (N, C) the softmax of each row, kept for backward;
 *    row_loss: optional (N), each row's own loss (0 for an ignored row), whose
 *    label-smoothing-free part -log p[target] is what REINFORCE rewards use.
 * With smoothing e in [0, 1] the target of a row is (1 - e) one-hot + e / C uniform.
 * A target outside [0, C) that is not ignore_index fails naming it and its row.
 * A loss that is not finite (a NaN or infinite logit) fails with
 * ATTN_ERR_NUMERIC naming the first such logit; the outputs are still written. */
ATTN_API attn_status attn_cross_entropy_forward(float *loss, float *probs, float *row_loss,
                                                const float *logits, const int32_t *targets, int N,
                                                int C, int ignore_index, float label_smoothing);
/* dlogits: (N, C) += dloss * d(mean loss)/d(logits). */
ATTN_API attn_status attn_cross_entropy_backward(float *dlogits, const float *probs,
                                                 const int32_t *targets, int N, int C,
                                                 int ignore_index, float label_smoothing,
                                                 float dloss);

/* ---- AdamW, torch.optim.AdamW ---------------------------------------------------------------
 * For each parameter, with g its gradient and t the step after increment:
 *   p -= lr * weight_decay * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
 * PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2. */
typedef struct attn_adamw_config {
    float beta1, beta2, eps, weight_decay;
} attn_adamw_config;

/* beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0.01. */
ATTN_API attn_adamw_config attn_adamw_defaults(void);

typedef struct attn_adamw {
    attn_adamw_config cfg;
    float *m, *v; /* (n) first and second moments, zero at first */
    size_t n;
    int64_t step; /* steps taken */
} attn_adamw;

/* Allocates the zeroed moments of n parameters. A config value outside what
 * torch.optim.AdamW accepts (betas in [0, 1), eps and weight_decay >= 0) fails
 * naming it. */
ATTN_API attn_status attn_adamw_init(attn_adamw *opt, size_t n, const attn_adamw_config *cfg);
ATTN_API void attn_adamw_free(attn_adamw *opt);
/* One step over the n parameters at learning rate lr (finite, >= 0). decay:
 * optional (n) mask, nonzero where weight decay applies (all of them if NULL),
 * as parameter groups with weight_decay 0 do in PyTorch. The float operations
 * are torch's, in its order: from the same state the result agrees with
 * torch.optim.AdamW(foreach=False) on float32 tensors to float32 rounding (bit
 * for bit in the conformance runs). step counts the steps that succeeded. */
ATTN_API attn_status attn_adamw_step(attn_adamw *opt, float *params, const float *grads,
                                     const uint8_t *decay, float lr);

/* ---- gradient clipping, torch.nn.utils.clip_grad_norm_ -----------------------------------
 * grads: (n). Returns the global L2 norm before clipping (computed in double) and,
 * where clip_coef = max_norm / (norm + 1e-6) is below 1, scales grads by it, as
 * torch does. A norm that is not finite leaves grads unchanged and is returned
 * as it is, so the caller can refuse the step. max_norm = INFINITY measures the
 * norm without clipping (torch's coefficient is then inf, clamped to 1). Bad
 * arguments (grads NULL with n > 0, max_norm negative or NaN) return NaN, grads
 * unchanged, with the reason in attn_last_error(). */
ATTN_API double attn_clip_grad_norm(float *grads, size_t n, double max_norm);

/* The norm in parts, for a gradient held in shards (data-parallel training).
 * attn_clip_grad_norm sums the squares in double per block of ATTN_NORM_BLOCK
 * elements, then adds the block sums in block order; a shard that starts at a
 * multiple of ATTN_NORM_BLOCK yields its blocks' sums, and the sums of all
 * shards in order give the norm of the whole, bit for bit.
 *   attn_square_sums   x: (n) -> sums: (attn_norm_blocks(n)), each block's sum of squares
 *   attn_norm_of_sums  the square root of the sums added in order
 *   attn_clip_to_norm  scales grads: (n) as attn_clip_grad_norm does for that norm
 *                      (nothing for a norm that is not finite) */
#define ATTN_NORM_BLOCK 4096
ATTN_API size_t attn_norm_blocks(size_t n);
ATTN_API void attn_square_sums(const float *x, size_t n, double *sums);
ATTN_API double attn_norm_of_sums(const double *sums, size_t blocks);
ATTN_API void attn_clip_to_norm(float *grads, size_t n, double norm, double max_norm);

/* ---- learning-rate schedule: linear warm-up, then cosine decay --------------------------------
 * step 0-based. lr_max * (step + 1) / warmup while step < warmup; then
 * lr_min + (lr_max - lr_min) * (1 + cos(pi * progress)) / 2 with progress =
 * (step - warmup) / (total - warmup) clamped to [0, 1]. A negative step counts
 * as 0; warmup <= 0 means no warm-up; total <= warmup gives lr_min after the
 * warm-up. */
ATTN_API float attn_lr_warmup_cosine(int64_t step, int64_t warmup, int64_t total, float lr_max,
                                     float lr_min);

#ifdef __cplusplus
}
#endif
#endif
