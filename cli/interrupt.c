/* Ctrl-C during a training run: the first SIGINT only sets a flag, so the run
 * stops after its current step and saves a checkpoint it can resume from. */
#define _POSIX_C_SOURCE 200809L /* sigaction */
#include <signal.h>

#include "cli.h"

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

void cli_catch_interrupt(void)
{
    struct sigaction action = {0};
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    /* A second Ctrl-C ends the process at once; the atomic write keeps the last
     * checkpoint whole even then. */
    action.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &action, NULL);
}

bool cli_interrupted(void) { return interrupted != 0; }
