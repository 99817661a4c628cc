/* The learning-rate schedule: linear warm-up, then cosine decay (Loshchilov and
 * Hutter, "SGDR", ICLR 2017, without restarts). */
#include <math.h>

#include "attn/train.h"

/* step: 0-based; a negative step counts as 0. total <= warmup leaves no decay
 * phase: lr_min from the end of the warm-up on. Computed in double. */
float attn_lr_warmup_cosine(int64_t step, int64_t warmup, int64_t total, float lr_max,
                            float lr_min)
{
    if (step < 0) step = 0;
    if (step < warmup) return (float)((double)lr_max * (double)(step + 1) / (double)warmup);
    double progress = total > warmup ? (double)(step - warmup) / (double)(total - warmup) : 1.0;
    if (progress > 1.0) progress = 1.0;
    const double pi = 3.14159265358979323846;
    return (float)(lr_min + ((double)lr_max - lr_min) * (1.0 + cos(pi * progress)) / 2.0);
}
