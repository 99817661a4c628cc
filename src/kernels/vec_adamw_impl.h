/* Internal, included by vec_impl.h once per instruction set: AdamW's elementwise
 * update over one contiguous run of parameters, in float32 in the order of
 * torch.optim.AdamW's kernels (the scalars come from adamw.c). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/vec.h"

/* Parameter i after its weight decay (p, the decayed value). */
static inline void adamw_element(float *restrict params, float *restrict m, float *restrict v,
                                 const float *restrict grads, size_t i, float p,
                                 const attn_adamw_scalars *c)
{
    const float g = grads[i];
    /* torch's kernels fuse the last multiply and add of each moment into one
     * rounding (an FMA). In double the product of two floats is exact, so the
     * double sum rounded to float is the FMA's result but for rare double-rounding
     * ties; measured, the moments and parameters come out bit for bit as torch's
     * float32 AdamW. */
    m[i] = (float)((double)(m[i] * c->b1) + (double)c->one_minus_b1 * g);
    v[i] = (float)((double)(v[i] * c->b2) + (double)(c->one_minus_b2 * g) * g);
    const float denom = sqrtf(v[i]) / c->bias_correction2_sqrt + c->eps;
    params[i] = p + c->neg_step_size * m[i] / denom;
}

/* The pointers are restrict and the mask is read as a select, so that the loops
 * vectorise. */
static void adamw_update(float *restrict params, float *restrict m, float *restrict v,
                         const float *restrict grads, const uint8_t *restrict decay, size_t n,
                         const attn_adamw_scalars *sc)
{
    const attn_adamw_scalars c = *sc;
    if (decay == NULL)
        for (size_t i = 0; i < n; i++)
            adamw_element(params, m, v, grads, i, params[i] * c.decay_factor, &c);
    else
        for (size_t i = 0; i < n; i++) {
            const float p = params[i];
            adamw_element(params, m, v, grads, i, decay[i] ? p * c.decay_factor : p, &c);
        }
}
