/* Buffers kept between calls (kept_buffer.h). */
#include "kernels/kept_buffer.h"

#include <stdatomic.h>
#include <stdlib.h>

void *attn_kept_buffer_reserve(kept_buffer *b, size_t bytes)
{
    if (bytes > b->bytes || b->data == NULL) {
        free(b->data);
        b->bytes = 0;
        b->data = aligned_alloc(64, (bytes + 63) / 64 * 64 + (bytes == 0 ? 64 : 0));
        if (b->data == NULL) return NULL;
        b->bytes = bytes;
    }
    return b->data;
}

/* The kernels' kept scratch and whether a call holds it. */
static kept_buffer kernel_kept;
static atomic_flag kernel_kept_held = ATOMIC_FLAG_INIT;

static float *own_buffer(size_t floats)
{
    const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

kernel_scratch attn_kernel_scratch_take(size_t floats)
{
    if (atomic_flag_test_and_set_explicit(&kernel_kept_held, memory_order_acquire))
        return (kernel_scratch){own_buffer(floats), false};
    float *data = attn_kept_buffer_reserve(&kernel_kept, floats * sizeof(float));
    if (data == NULL) atomic_flag_clear_explicit(&kernel_kept_held, memory_order_release);
    return (kernel_scratch){data, data != NULL};
}

void attn_kernel_scratch_give(kernel_scratch s)
{
    if (s.kept)
        atomic_flag_clear_explicit(&kernel_kept_held, memory_order_release);
    else
        free(s.data);
}
