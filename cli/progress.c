#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty */
/* The training progress line on stderr: redrawn in place on a terminal, at most
 * ten times a second; nothing when stderr is not a terminal (the periodic
 * validation lines are printed either way). */
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

enum { BAR_WIDTH = 24 };

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_init(cli_progress *p, int64_t first_step, int64_t total_steps)
{
    *p = (cli_progress){.active = isatty(STDERR_FILENO) == 1,
                        .first_step = first_step,
                        .total_steps = total_steps,
                        .start = cli_now()};
}

static void format_seconds(char *out, size_t cap, double s)
{
    if (!isfinite(s) || s < 0) snprintf(out, cap, "?");
    else if (s < 100) snprintf(out, cap, "%.0fs", s);
    else snprintf(out, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

void cli_progress_update(cli_progress *p, int64_t step, float loss, float accuracy,
                         double tokens_per_second)
{
    if (!p->active) return;
    double t = cli_now();
    if (t - p->last_draw < 0.1 && step < p->total_steps) return;
    p->last_draw = t;
    double done = (double)(step - p->first_step);
    double rate = done / (t - p->start);
    char left[32];
    format_seconds(left, sizeof left, (double)(p->total_steps - step) / rate);
    int filled = (int)((double)BAR_WIDTH * (double)step / (double)p->total_steps);
    fprintf(stderr, "\r%7lld/%lld ", (long long)step, (long long)p->total_steps);
    for (int i = 0; i < BAR_WIDTH; i++) fputs(i < filled ? "\u2588" : "\u2591", stderr);
    fprintf(stderr, " loss %.4f  acc %5.1f%%  %5.1fk tok/s  %s left \033[K", (double)loss,
            100.0 * (double)accuracy, tokens_per_second / 1000.0, left);
    fflush(stderr);
}

void cli_progress_clear(cli_progress *p)
{
    if (!p->active) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->last_draw = 0;
}
