/* Stopping a training run: the first SIGINT (Ctrl-C), SIGTERM (kill, a service
 * manager) or SIGHUP (a closed terminal) only records the signal, so the run stops
 * after its current step and saves a checkpoint it can resume from. */
#define _POSIX_C_SOURCE 200809L /* sigaction */
#include <signal.h>

#include "cli.h"

static volatile sig_atomic_t caught; /* the signal, or 0 */

static void on_signal(int sig) { caught = sig; }

void cli_catch_interrupt(void)
{
    static const int signals[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction action = {0};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    /* A second signal of the same kind ends the process at once; the atomic write
     * keeps the last checkpoint whole even then. A system call the signal
     * interrupts starts again (MPI's waits among them) instead of failing. */
    action.sa_flags = SA_RESETHAND | SA_RESTART;
    for (size_t i = 0; i < sizeof signals / sizeof *signals; i++)
        sigaction(signals[i], &action, NULL);
}

int cli_interrupt_status(void) { return caught ? 128 + caught : 0; }

const char *cli_interrupt_name(int status)
{
    switch (status - 128) {
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "SIGINT";
    }
}
