/* The library's thread count: ATTN_NUM_THREADS, else OpenMP's default. */
#include <stdlib.h>

#include "core/error.h"
#include "core/threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static _Atomic int configured_threads; /* 0 until set or read from the environment */

static int default_threads(void)
{
    const char *env = getenv("ATTN_NUM_THREADS");
    if (env != NULL && *env != '\0') {
        char *end = NULL;
        long n = strtol(env, &end, 10);
        if (*end == '\0' && n >= 1 && n <= 1024) return (int)n;
    }
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

attn_status attn_set_num_threads(int n)
{
    if (n < 1 || n > 1024)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "thread count %d is outside 1..1024", n);
    configured_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    return ATTN_OK;
}

int attn_get_num_threads(void)
{
    if (configured_threads == 0) attn_set_num_threads(default_threads());
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
