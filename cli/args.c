/* What every command's option parsing shares: whole-number and decimal
 * arguments checked against their range, the two kinds of error message (a
 * usage error, exit 2; a runtime error, exit 1), and the options of commands that
 * take nothing but --json and --help. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"

int cli_fail(const char *what)
{
    cli_message(stderr, "attn: %s: %s", what, attn_last_error());
    fputc('\n', stderr);
    return EXIT_RUNTIME;
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list args;
    fprintf(stderr, "attn %s: ", command);
    va_start(args, fmt);
    cli_vmessage(stderr, fmt, args);
    va_end(args);
    fprintf(stderr, "\nTry 'attn %s --help'.\n", command);
    return EXIT_USAGE;
}

bool cli_parse_int(const char *text, long min, long max, long *out)
{
    if (text == NULL || *text == '\0') return false;
    char *end = NULL;
    long value = strtol(text, &end, 10);
    if (*end != '\0' || value < min || value > max) return false;
    *out = value;
    return true;
}

bool cli_parse_float(const char *text, float lo, float hi, float *out)
{
    if (text == NULL || *text == '\0') return false;
    char *end = NULL;
    double value = strtod(text, &end);
    if (*end != '\0' || !(value >= lo && value <= hi)) return false;
    *out = (float)value;
    return true;
}

int cli_parse_gradient_step(const char *command, const char *text, cli_record_extras *x)
{
    long step;
    if (strcmp(text, "all") == 0)
        step = ATTN_EXPLAIN_ALL;
    else if (!cli_parse_int(text, 0, 1L << 20, &step))
        return cli_usage_error(command, "--gradient-step takes 'all' or 0 to %ld, not '%s'",
                               1L << 20, text);
    x->options.gradient = true;
    x->options.gradient_step = (int)step;
    x->step_given = true;
    return EXIT_OK;
}

int cli_check_record_extras(const char *command, const cli_record_extras *x,
                            const char *attention)
{
    if ((x->options.qk || x->options.gradient) && attention == NULL)
        return cli_usage_error(command, "--%s adds to the record; it needs --attention FILE",
                               x->options.gradient ? "gradient" : "qk");
    return EXIT_OK;
}

int cli_parse_json_and_help(int argc, char **argv, const char *command, void (*print_help)(void),
                            bool *json)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *json = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'j': *json = true; break;
        case 'h': print_help(); return EXIT_OK;
        default: return cli_usage_error(command, "unknown option '%s'", argv[optind - 1]);
        }
    }
    return CLI_CONTINUE;
}

/* Shared by the training options' field tables of both model kinds (cli.h). */
static const char *precision_name(int value) { return attn_precision_name((attn_precision)value); }

static attn_status precision_parse(int *value, const char *name)
{
    attn_precision p;
    attn_status s = attn_precision_parse(&p, name);
    if (s == ATTN_OK) *value = (int)p;
    return s;
}

const attn_enum_names cli_precision_names = {precision_name, precision_parse};
