/* Internal: memory for the large arrays of training (parameters, gradients,
 * optimizer state, a model's activations). */
#ifndef ATTN_SRC_CORE_LARGE_ALLOC_H
#define ATTN_SRC_CORE_LARGE_ALLOC_H

#include <stddef.h>

/* bytes of uninitialised memory, aligned to 64 bytes at least, released with
 * free(); NULL when out of memory. From 256 KB on it is rounded up to whole
 * 2 MB pages, aligned to 2 MB, and asks Linux for transparent huge pages
 * (madvise MADV_HUGEPAGE, which the common "madvise" setting requires): the
 * first touch of each 4 KB page otherwise costs a fault and a page clear, which
 * in a short training run (the arrays are first written by its first step) was
 * a sixth of the step time, and in a 32-token prompt's cached pass a third. */
void *attn_alloc_large(size_t bytes);

/* Views carved from one such allocation by a layout that runs twice: first with
 * base NULL, only adding up the bytes, then over an allocation of that many.
 * Returns the next `bytes` of base at *used (NULL when base is NULL or bytes is
 * 0) and moves *used past them, each view starting on a 64-byte cache line. */
void *attn_carve(void *base, size_t *used, size_t bytes);

#endif
