/* Attention weights as block characters, for the tables that demo and translate
 * print on a terminal. */
#include <stdio.h>

#include "cli.h"

const char *cli_shade(float w)
{
    static const char *const shades[] = {" ", "\u2591", "\u2592", "\u2593", "\u2588"};
    int level = (int)(w * 4.0f + 0.5f);
    if (level < 0) level = 0;
    if (level > 4) level = 4;
    if (w >= 0.05f && level == 0) level = 1;
    return shades[level];
}

void cli_print_shade(FILE *out, float w)
{
    fprintf(out, " %s%3d", cli_shade(w), (int)(w * 100.0f + 0.5f));
}
