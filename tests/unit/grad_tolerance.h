/* The pass rule of the finite-difference checks of the attention tests. */
#ifndef ATTN_TEST_GRAD_TOLERANCE_H
#define ATTN_TEST_GRAD_TOLERANCE_H

#include <math.h>
#include <stddef.h>

/* sum |out * probe|: the scale of the rounding noise in a float32 forward's loss. */
static inline double loss_magnitude(const float *out, const float *probe, size_t n)
{
    double sum = 0.0;
    for (size_t e = 0; e < n; e++) sum += fabs((double)out[e] * (double)probe[e]);
    return sum;
}

/* test_gradcheck's error is relative to max |analytic|. The finite difference
 * also carries the float32 noise of the loss, measured at about 8e-6 of
 * loss_magnitude with h = 1e-2, whatever the gradient's size: a gradient that is
 * zero or small next to the loss (dq of a row with one live key, dkey when the
 * output is mostly bias) would fail on noise alone. So the error is measured
 * against max(max |analytic|, 0.05, 0.05 * loss magnitude), which leaves a margin
 * of about 6 over that noise at the limit 1e-3; on gradients of order 1 it is
 * test_gradcheck's own measure. */
static inline double gradcheck_error(double err, const float *analytic, size_t n,
                                     double magnitude)
{
    double scale = 1e-6; /* test_gradcheck's own floor */
    for (size_t e = 0; e < n; e++)
        if (fabs((double)analytic[e]) > scale) scale = fabs((double)analytic[e]);
    return err * scale / fmax(scale, fmax(0.05, 0.05 * magnitude));
}

#endif
