/* Internal: which thread of a parallel region this is. */
#ifndef ATTN_SRC_CORE_THREADS_H
#define ATTN_SRC_CORE_THREADS_H

/* 0 .. attn_get_num_threads() - 1 inside an OpenMP parallel region, 0 outside
 * (and in a build without OpenMP); indexes per-thread scratch. */
int attn_thread_index(void);

#endif
