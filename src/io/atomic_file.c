/* Writing a file so that readers see either the old one or the complete new one:
 * the contents go to "<path>.tmp.<pid>", are synced, and the temporary file is
 * renamed over the path; then the directory is synced so the rename lasts.
 * A writer killed before its rename (kill -9, a crash, power) leaves its
 * temporary file behind; the next write of the same path removes those. */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

/* The folder and the name of path, in dir and *name (a pointer into path);
 * false if the folder's name does not fit. */
static bool split_path(const char *path, char *dir, size_t size, const char **name)
{
    const char *slash = strrchr(path, '/');
    *name = slash ? slash + 1 : path;
    if (slash == NULL) return snprintf(dir, size, ".") > 0;
    if (slash == path) return snprintf(dir, size, "/") > 0;
    if ((size_t)(slash - path) >= size) return false;
    snprintf(dir, size, "%.*s", (int)(slash - path), path);
    return true;
}

/* The pid of "<name>.tmp.<pid>", or 0 if entry is not named so. */
static long temporary_pid(const char *entry, const char *name)
{
    const size_t n = strlen(name);
    if (strncmp(entry, name, n) != 0 || strncmp(entry + n, ".tmp.", 5) != 0) return 0;
    const char *digits = entry + n + 5;
    if (*digits < '1' || *digits > '9' || strlen(digits) > 10) return 0;
    long pid = 0;
    for (const char *c = digits; *c; c++) {
        if (*c < '0' || *c > '9') return 0;
        pid = pid * 10 + (*c - '0');
    }
    return pid;
}

/* Removes the temporary files of earlier writes of path whose writer is gone: a
 * regular file of this user named "<name>.tmp.<pid>" where no process <pid> runs
 * any more. Anything else is left alone; failing to look costs nothing. */
static void remove_stale_temporaries(const char *path)
{
    char dir[4096];
    const char *name;
    if (!split_path(path, dir, sizeof dir, &name)) return;
    DIR *d = opendir(dir);
    if (d == NULL) return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const long pid = temporary_pid(e->d_name, name);
        if (pid == 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* running, or not ours to ask */
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode) || st.st_uid != geteuid())
            continue;
        (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/* Makes the rename itself durable; a failure here loses nothing already
 * written, so it is not reported. */
static void sync_parent_directory(const char *path)
{
    char dir[4096];
    const char *name;
    if (!split_path(path, dir, sizeof dir, &name)) return;
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
    if (s != ATTN_OK) {
        unlink(tmp);
    } else {
        sync_parent_directory(path);
        remove_stale_temporaries(path);
    }
    free(tmp);
    return s;
}
