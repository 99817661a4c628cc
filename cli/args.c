/* What every command's option parsing shares: whole-number and decimal
 * arguments checked against their range, and the two kinds of error message
 * (a usage error, exit 2; a runtime error, exit 1). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "attn/attn.h"
#include "cli.h"

int cli_fail(const char *what)
{
    fprintf(stderr, "attn: %s: %s\n", what, attn_last_error());
    return EXIT_RUNTIME;
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list args;
    fprintf(stderr, "attn %s: ", command);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
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
