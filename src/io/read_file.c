/* Reading a whole file with a bound: a regular file larger than the bound is
 * refused by its size before a byte is read, and a stream (a pipe, /dev/zero) is
 * read only until it passes the bound. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attn/io.h"
#include "core/error.h"

static attn_status too_large(const char *path, const char *what, size_t max)
{
    return attn_error(ATTN_ERR_UNSUPPORTED, "'%s' is larger than %zu bytes, the most %s may hold",
                      path, max, what);
}

attn_status attn_read_file(const char *path, size_t max, const char *what, char **bytes,
                           size_t *n)
{
    attn_status s;
    if ((s = attn_check_not_null(path, "path")) || (s = attn_check_not_null(bytes, "bytes")) ||
        (s = attn_check_not_null(n, "size")))
        return s;
    *bytes = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) return attn_error(ATTN_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    /* A regular file's size makes the buffer fit at once (one byte more lets the
     * last read see the end); a stream's buffer grows. */
    size_t cap = (size_t)1 << 16;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
        if ((uint64_t)st.st_size > max) {
            fclose(f);
            return too_large(path, what, max);
        }
        cap = (size_t)st.st_size + 1;
    }
    char *buf = malloc(cap);
    size_t used = 0;
    while (buf != NULL) {
        if (used == cap) {
            if (cap > max) {
                s = too_large(path, what, max);
                break;
            }
            cap = cap > max / 2 ? max + 1 : 2 * cap;
            char *grown = realloc(buf, cap);
            if (grown == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
        }
        const size_t want = cap - used, got = fread(buf + used, 1, want, f);
        used += got;
        if (got < want) break;
    }
    if (buf == NULL && s == ATTN_OK)
        s = attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the %zu bytes of '%s'", cap, path);
    else if (s == ATTN_OK && ferror(f))
        s = attn_error(ATTN_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    else if (s == ATTN_OK && used > max)
        s = too_large(path, what, max);
    fclose(f);
    if (s) {
        free(buf);
        return s;
    }
    /* Room for a final NUL, so that text can be read as a C string. */
    if (used == cap) {
        char *grown = realloc(buf, cap + 1);
        if (grown == NULL) {
            free(buf);
            return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the %zu bytes of '%s'",
                              used + 1, path);
        }
        buf = grown;
    }
    buf[used] = '\0';
    *bytes = buf;
    *n = used;
    return ATTN_OK;
}
