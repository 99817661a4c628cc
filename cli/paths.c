/* The files a command reads and writes, checked before it does any work: an
 * output must not be one of its inputs (attn train --data book.txt --out book.txt
 * would replace the text with a checkpoint) and its folder must take a new file. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* The folder a new file at `path` goes into, in buf. */
static void folder_of(const char *path, char *buf, size_t size)
{
    char copy[CLI_PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    snprintf(buf, size, "%s", dirname(copy));
}

/* Two paths name one file: the same device and inode when both exist (links and
 * other spellings included), else the same folder and name. */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char folder_a[CLI_PATH_MAX], folder_b[CLI_PATH_MAX], name_a[CLI_PATH_MAX],
        name_b[CLI_PATH_MAX];
    folder_of(a, folder_a, sizeof folder_a);
    folder_of(b, folder_b, sizeof folder_b);
    snprintf(name_a, sizeof name_a, "%s", a);
    snprintf(name_b, sizeof name_b, "%s", b);
    if (strcmp(basename(name_a), basename(name_b)) != 0) return false;
    char *real_a = realpath(folder_a, NULL), *real_b = realpath(folder_b, NULL);
    const bool same = real_a && real_b && strcmp(real_a, real_b) == 0;
    free(real_a);
    free(real_b);
    return same;
}

/* The output's folder exists, is a folder, and takes new files. */
static int check_folder(const char *command, const cli_path *out)
{
    char folder[CLI_PATH_MAX];
    folder_of(out->path, folder, sizeof folder);
    struct stat st;
    if (stat(folder, &st) != 0)
        return cli_usage_error(command, "%s %s: the folder %s %s", out->option, out->path,
                               folder, errno == ENOENT ? "does not exist" : strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cli_usage_error(command, "%s %s: %s is not a folder", out->option, out->path,
                               folder);
    if (access(folder, W_OK | X_OK) != 0)
        return cli_usage_error(command, "%s %s: the folder %s cannot be written to (%s)",
                               out->option, out->path, folder, strerror(errno));
    struct stat existing;
    if (stat(out->path, &existing) == 0 && S_ISDIR(existing.st_mode))
        return cli_usage_error(command, "%s %s is a folder, not a file", out->option, out->path);
    return EXIT_OK;
}

int cli_check_paths(const char *command, const cli_path *inputs, int n_inputs,
                    const cli_path *outputs, int n_outputs)
{
    for (int o = 0; o < n_outputs; o++) {
        const cli_path *out = &outputs[o];
        if (out->path == NULL) continue;
        int status = check_folder(command, out);
        if (status != EXIT_OK) return status;
        for (int i = 0; i < n_inputs; i++)
            if (inputs[i].path && same_file(out->path, inputs[i].path))
                return cli_usage_error(command,
                                       "%s %s is the file %s reads; writing it would destroy "
                                       "it: give another name",
                                       out->option, out->path, inputs[i].option);
        for (int other = 0; other < o; other++)
            if (outputs[other].path && same_file(out->path, outputs[other].path))
                return cli_usage_error(command, "%s and %s are the same file, %s", out->option,
                                       outputs[other].option, out->path);
    }
    return EXIT_OK;
}
