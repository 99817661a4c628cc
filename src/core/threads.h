/* Internal: which thread of a parallel region this is. */
#ifndef ATTN_SRC_CORE_THREADS_H
#define ATTN_SRC_CORE_THREADS_H

#include "attn/core.h"

/* 0 .. attn_get_num_threads() - 1 inside an OpenMP parallel region, 0 outside
 * (and in a build without OpenMP); indexes per-thread scratch. */
int attn_thread_index(void);

/* The thread count ATTN_NUM_THREADS gives in *n (0 when it is unset or empty);
 * fails naming its value when it is not an integer in [1, 1024]. */
attn_status attn_threads_env(int *n);

#endif
