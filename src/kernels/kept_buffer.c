/* Buffers kept between calls (kept_buffer.h). */
#include "kernels/kept_buffer.h"

#include <stdlib.h>
#include <threads.h>

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

/* The kernels' kept scratch, one per calling thread (threads that each run a
 * model call the kernels at the same time), and whether a call holds it; freed
 * when the thread ends. */
static _Thread_local kept_buffer kernel_kept;
static _Thread_local bool kernel_kept_held;
static tss_t kept_key;
static once_flag kept_key_once = ONCE_FLAG_INIT;

static void make_kept_key(void) { (void)tss_create(&kept_key, free); }

static float *own_buffer(size_t floats)
{
    const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

kernel_scratch attn_kernel_scratch_take(size_t floats)
{
    if (kernel_kept_held) return (kernel_scratch){own_buffer(floats), false};
    call_once(&kept_key_once, make_kept_key);
    float *data = attn_kept_buffer_reserve(&kernel_kept, floats * sizeof(float));
    (void)tss_set(kept_key, data); /* the thread's end frees the buffer it has then */
    kernel_kept_held = data != NULL;
    return (kernel_scratch){data, data != NULL};
}

void attn_kernel_scratch_give(kernel_scratch s)
{
    if (s.kept)
        kernel_kept_held = false;
    else
        free(s.data);
}
