/* Internal: buffers kept from one call of a kernel to the next. A buffer past
 * malloc's mmap threshold goes back to the system when it is freed, so a kernel
 * that allocates its scratch in every call has its pages mapped and faulted in
 * again each time: for attention over a key-value cache, one call per layer and
 * token, that costs as much as the arithmetic. */
#ifndef ATTN_SRC_KERNELS_KEPT_BUFFER_H
#define ATTN_SRC_KERNELS_KEPT_BUFFER_H

#include <stdbool.h>
#include <stddef.h>

/* A buffer that grows as needed and is never shrunk. */
typedef struct kept_buffer {
    void *data;
    size_t bytes;
} kept_buffer;

/* b's data, grown to at least `bytes` (aligned to 64), or NULL when out of
 * memory (b is then empty). The caller serialises the uses of b. */
void *attn_kept_buffer_reserve(kept_buffer *b, size_t bytes);

/* The attention kernels' scratch for one call: the calling thread's kept buffer
 * (each thread has one, so calls from several threads run concurrently, each
 * on its own), or a buffer of the call's own when a call of the same thread
 * holds it. data is NULL when out of memory. */
typedef struct kernel_scratch {
    float *data;
    bool kept;
} kernel_scratch;

kernel_scratch attn_kernel_scratch_take(size_t floats);
void attn_kernel_scratch_give(kernel_scratch s);

#endif
