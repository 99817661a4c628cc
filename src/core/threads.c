/* The library's thread count: ATTN_NUM_THREADS, else OpenMP's default. */
#include <errno.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static _Atomic int configured_threads; /* 0 until set or read from the environment */

enum { MAX_THREADS = 1024 };

attn_status attn_threads_env(int *n)
{
    *n = 0;
    const char *env = getenv("ATTN_NUM_THREADS");
    if (env == NULL || *env == '\0') return ATTN_OK;
    char *end = NULL;
    errno = 0;
    const long value = strtol(env, &end, 10);
    if (end == env || *end != '\0' || errno == ERANGE || value < 1 || value > MAX_THREADS)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "ATTN_NUM_THREADS is '%.40s', not a thread count in [1, %d]", env,
                          MAX_THREADS);
    *n = (int)value;
    return ATTN_OK;
}

/* ATTN_NUM_THREADS when it is valid (a library caller can check it with
 * attn_check_environment), else OpenMP's default. */
static int default_threads(void)
{
    int n;
    if (attn_threads_env(&n) == ATTN_OK && n > 0) return n;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

attn_status attn_set_num_threads(int n)
{
    if (n < 1 || n > MAX_THREADS)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "thread count %d is outside 1..%d", n,
                          MAX_THREADS);
    configured_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    return ATTN_OK;
}

int attn_get_num_threads(void)
{
    if (configured_threads == 0) attn_set_num_threads(default_threads());
#ifdef _OPENMP
    /* A region opened here would run on this thread alone: the kernels then
     * size their scratch for one thread and take their paths without a region,
     * whose barriers cost a system call each even for a team of one. */
    if (omp_get_active_level() >= omp_get_max_active_levels()) return 1;
#endif
    return configured_threads;
}

bool attn_built_with_openmp(void)
{
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

int attn_thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}
