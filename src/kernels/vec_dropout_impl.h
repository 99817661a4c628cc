/* Internal, included by vec_impl.h once per instruction set: inverted dropout
 * over one contiguous run of a tensor, its keep mask drawn as
 * attn_uniform_at(seed, index) >= p a vector of Philox blocks at a time
 * (dropout_draws_impl.h). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/dropout_draws_impl.h"
#include "kernels/vec.h"

/* The factors drawn before they are applied. */
enum { DROPOUT_RUN = 256 };

static void dropout_run(float *out, const float *in, size_t n, uint64_t seed, uint64_t first,
                        float p, float scale, bool accumulate)
{
    float factor[DROPOUT_RUN];
    for (size_t done = 0; done < n; done += DROPOUT_RUN) {
        const size_t count = n - done < DROPOUT_RUN ? n - done : DROPOUT_RUN;
        dropout_factors(factor, count, seed, first + done, p, scale);
        /* A dropped element is 0 whatever it held, as a select gives it. */
        for (size_t i = 0; i < count; i++) {
            const float kept = factor[i] != 0.0f ? in[done + i] * factor[i] : 0.0f;
            out[done + i] = accumulate ? out[done + i] + kept : kept;
        }
    }
}
