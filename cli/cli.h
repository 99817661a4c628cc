/* The attn tool's commands and the helpers they share. */
#ifndef ATTN_CLI_H
#define ATTN_CLI_H

#include <stdbool.h>
#include <stdio.h>

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command's name */
} cli_command;

int cmd_info(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Prints "attn: <what>: <attn_last_error()>" to stderr and returns EXIT_RUNTIME. */
int cli_fail(const char *what);

/* Prints "attn <command>: <message>" and a pointer to --help to stderr; returns
 * EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...);

/* Parses a whole decimal integer in [min, max] from text; false if it is not one. */
bool cli_parse_int(const char *text, long min, long max, long *out);

/* Writes s as a JSON string literal (quotes and escapes included). */
void cli_json_string(FILE *out, const char *s);

#endif
