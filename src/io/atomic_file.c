/* Writing a file so that readers see either the old one or the complete new one:
 * the contents go to "<path>.tmp.<pid>", are synced, and the temporary file is
 * renamed over the path; then the directory is synced so the rename lasts. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/io_internal.h"

static attn_status write_all(int fd, const void *bytes, size_t n, const char *path)
{
    const unsigned char *p = bytes;
    while (n > 0) {
        ssize_t written = write(fd, p, n);
        if (written < 0 && errno == EINTR) continue;
        if (written < 0)
            return attn_error(ATTN_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        p += written;
        n -= (size_t)written;
    }
    return ATTN_OK;
}

/* Makes the rename itself durable; a failure here loses nothing already
 * written, so it is not reported. */
static void sync_parent_directory(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (slash == NULL) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else return;
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

attn_status attn_write_file_atomically(const char *path, const attn_file_part *parts, int count)
{
    size_t tmp_size = strlen(path) + 32;
    char *tmp = malloc(tmp_size);
    if (tmp == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for a file name");
    snprintf(tmp, tmp_size, "%s.tmp.%ld", path, (long)getpid());
    attn_status s = ATTN_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        s = attn_error(ATTN_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    for (int i = 0; i < count && s == ATTN_OK; i++)
        if (parts[i].size > 0) s = write_all(fd, parts[i].bytes, parts[i].size, tmp);
    if (s == ATTN_OK && fsync(fd) != 0)
        s = attn_error(ATTN_ERR_IO, "cannot sync '%s': %s", tmp, strerror(errno));
    if (close(fd) != 0 && s == ATTN_OK)
        s = attn_error(ATTN_ERR_IO, "cannot close '%s': %s", tmp, strerror(errno));
    if (s == ATTN_OK && rename(tmp, path) != 0)
        s = attn_error(ATTN_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (s != ATTN_OK) unlink(tmp);
    else sync_parent_directory(path);
    free(tmp);
    return s;
}
