/* The pass rule of the finite-difference checks of the attention tests. */
#ifndef ATTN_TEST_GRAD_TOLERANCE_H
#define ATTN_TEST_GRAD_TOLERANCE_H

#include <math.h>
#include <stddef.h>

/* test_gradcheck's error is relative to max |analytic|. A gradient that is zero
 * or nearly so (dq of a row with a single live key) leaves only the float32 noise
 * of the finite difference, about 1e-5 with h = 1e-2, so the absolute error is
 * measured against max(max |analytic|, 0.05); on gradients of order 1 this is
 * test_gradcheck's own measure. Checks hold it to 1e-3. */
static inline double gradcheck_error(double err, const float *analytic, size_t n)
{
    double scale = 1e-6; /* test_gradcheck's own floor */
    for (size_t e = 0; e < n; e++)
        if (fabs((double)analytic[e]) > scale) scale = fabs((double)analytic[e]);
    return err * scale / fmax(scale, 0.05);
}

#endif
