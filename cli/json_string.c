/* Strings in the JSON reports the commands print: escaped, and valid JSON
 * whatever bytes they hold. */
#include <stdio.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"

void cli_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    const unsigned char *end = (const unsigned char *)s + strlen(s);
    for (const unsigned char *p = (const unsigned char *)s; p < end;) {
        int n = attn_utf8_char((const char *)p, (size_t)(end - p), NULL);
        if (n == 0) {
            fputs("\\ufffd", out);
            p++;
        } else if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p++);
        } else if (*p < 0x20) {
            fprintf(out, "\\u%04x", *p++);
        } else {
            fwrite(p, 1, (size_t)n, out);
            p += n;
        }
    }
    fputc('"', out);
}
