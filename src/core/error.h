/* Internal: setting the thread's error message. */
#ifndef ATTN_SRC_CORE_ERROR_H
#define ATTN_SRC_CORE_ERROR_H

#include <stddef.h>
#include <stdint.h>

#include "attn/core.h"

#if defined(__GNUC__)
#define ATTN_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define ATTN_PRINTF(fmt_index, first_arg)
#endif

/* Records a printf-style message for attn_last_error() and returns status, so that
 * a failure reads: return attn_error(ATTN_ERR_INVALID_ARGUMENT, "heads %d < 1", h); */
attn_status attn_error(attn_status status, const char *fmt, ...) ATTN_PRINTF(2, 3);

/* Prefixes the last message with "<what>: " and returns status, so that a
 * failure from below says what it was about: return attn_error_about(s, path); */
attn_status attn_error_about(attn_status status, const char *what);

/* ATTN_ERR_INVALID_ARGUMENT naming `what` when p is NULL, else ATTN_OK. */
attn_status attn_check_not_null(const void *p, const char *what);

/* ATTN_ERR_INVALID_ARGUMENT naming `what` and its value unless value >= min. */
attn_status attn_check_at_least(long long value, long long min, const char *what);

/* ATTN_ERR_INVALID_ARGUMENT naming `what` and its value unless min <= value <= max. */
attn_status attn_check_range(long long value, long long min, long long max, const char *what);

/* ATTN_ERR_INVALID_ARGUMENT naming the value unless it is an attn_precision
 * (core/bf16.c, beside the precisions' names). */
attn_status attn_check_precision(attn_precision precision);

/* Writes a shape as "(2, 3)" into buf (always terminated), for messages. */
void attn_format_shape(char *buf, size_t size, const int64_t *shape, int ndim);

#endif
