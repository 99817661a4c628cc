/* Parameter initialisation with PyTorch's default bounds. */
#include <math.h>

#include "attn/nn.h"

/* kaiming_uniform_(a = sqrt(5)) has bound gain * sqrt(3 / fan_in) with
 * gain = sqrt(2 / (1 + 5)), which is 1 / sqrt(fan_in); nn.Linear's bias uses the
 * same bound. */
void attn_init_linear(float *w, float *b, int out, int in, attn_rng *rng)
{
    float bound = 1.0f / sqrtf((float)in);
    attn_rng_fill_uniform(rng, w, (size_t)out * (size_t)in, -bound, bound);
    if (b) attn_rng_fill_uniform(rng, b, (size_t)out, -bound, bound);
}

void attn_init_xavier_uniform(float *w, int fan_out, int fan_in, attn_rng *rng)
{
    float bound = sqrtf(6.0f / (float)(fan_in + fan_out));
    attn_rng_fill_uniform(rng, w, (size_t)fan_out * (size_t)fan_in, -bound, bound);
}
