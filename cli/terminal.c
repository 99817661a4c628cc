/* Text that reaches a terminal: the control characters of input (or of a model's
 * output) are written as escapes, so that an escape sequence in a text cannot
 * move the cursor, change colours or retitle the window. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

void cli_write_text(FILE *f, const char *s, size_t n, bool keep_lines)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = p[i];
        if (keep_lines && (c == '\n' || c == '\t')) {
            putc(c, f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\x%02x", c);
        } else if (c == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) {
            fprintf(f, "\\u%04x", p[++i]); /* C1 controls: U+0080 .. U+009F */
        } else {
            putc(c, f);
        }
    }
}

void cli_vmessage(FILE *f, const char *fmt, va_list args)
{
    char small[1024];
    va_list again;
    va_copy(again, args);
    const int n = vsnprintf(small, sizeof small, fmt, args);
    if (n < 0) {
        va_end(again);
        return;
    }
    char *text = (size_t)n < sizeof small ? small : malloc((size_t)n + 1);
    if (text != small && text != NULL) vsnprintf(text, (size_t)n + 1, fmt, again);
    va_end(again);
    if (text == NULL) /* no memory for a long message: its start */
        cli_write_text(f, small, sizeof small - 1, true);
    else
        cli_write_text(f, text, (size_t)n, true);
    if (text != small) free(text);
}

void cli_message(FILE *f, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    cli_vmessage(f, fmt, args);
    va_end(args);
}
