/* Status names and the per-thread last error message. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_message[512];

const char *attn_status_string(attn_status status)
{
    switch (status) {
    case ATTN_OK: return "ok";
    case ATTN_ERR_INVALID_ARGUMENT: return "invalid argument";
    case ATTN_ERR_OUT_OF_MEMORY: return "out of memory";
    case ATTN_ERR_IO: return "I/O error";
    case ATTN_ERR_FORMAT: return "malformed file";
    case ATTN_ERR_NOT_FOUND: return "not found";
    case ATTN_ERR_NUMERIC: return "non-finite value";
    case ATTN_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}

const char *attn_last_error(void) { return last_message; }

void attn_clear_error(void) { last_message[0] = '\0'; }

attn_status attn_error(attn_status status, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, args);
    va_end(args);
    return status;
}

attn_status attn_error_about(attn_status status, const char *what)
{
    char message[sizeof last_message];
    snprintf(message, sizeof message, "%s", last_message);
    return attn_error(status, "%s: %s", what, message);
}

attn_status attn_check_not_null(const void *p, const char *what)
{
    if (p == NULL) return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s is NULL", what);
    return ATTN_OK;
}

attn_status attn_check_at_least(long long value, long long min, const char *what)
{
    if (value < min)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s is %lld; it must be at least %lld", what,
                          value, min);
    return ATTN_OK;
}

attn_status attn_check_range(long long value, long long min, long long max, const char *what)
{
    if (value < min || value > max)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s is %lld; it must be in [%lld, %lld]", what,
                          value, min, max);
    return ATTN_OK;
}

void attn_format_shape(char *buf, size_t size, const int64_t *shape, int ndim)
{
    if (size == 0) return;
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", d ? ", " : "",
                                 (long long)shape[d]);
    if (used < size) snprintf(buf + used, size - used, ")");
}
