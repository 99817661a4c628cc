/* One training loop for every model kind (train_loop.c). A kind gives a small
 * table of what differs between kinds (cli_train_ops); the loop does the rest:
 * the steps (AdamW on a warm-up and cosine schedule, the gradient clipped), the
 * progress line, a validation and an atomic checkpoint every eval_every steps
 * and at the end, --stop-at and Ctrl-C, then the kind's final report. */
#ifndef ATTN_CLI_TRAIN_LOOP_H
#define ATTN_CLI_TRAIN_LOOP_H

#include "cli.h"
#include "data_parallel.h"

/* The most models a step runs at a time (--replicas). */
enum { CLI_MAX_REPLICAS = 64 }; /* --replicas says "1 to 64" */

/* The sums since the last validation. */
typedef struct cli_train_window {
    double loss, loss_weight, correct, predicted, tokens;
    double seconds; /* of the steps alone */
} cli_train_window;

/* What this invocation's steps did, for the final report. */
typedef struct cli_train_totals {
    int64_t steps;
    double step_seconds;       /* the steps alone */
    double first_step_seconds; /* of them the first, which also faults in every buffer */
    double loop_seconds; /* the loop, validations and checkpoints included */
    double tokens;
    double last_loss; /* NaN when no step was taken */
    int ranks, accumulate, replicas;
    double wait_seconds;     /* of the steps, rank 0's waiting for the other ranks */
    double exchange_seconds; /* and in the ranks' exchanges once all are there */
} cli_train_totals;

/* ms per step without the first (0 when only one was taken): the steady rate
 * of a long run, which a short timing run's first step would hide. */
double cli_steady_ms_per_step(const cli_train_totals *totals);

/* What differs between the model kinds. Every function gets the kind's run
 * (cli_trainer.run); those returning int return an exit status and print what
 * went wrong. */
typedef struct cli_train_ops {
    /* Which parameters AdamW decays: all of them, as torch.optim.AdamW does,
     * or only those of 2 dimensions (weights and embeddings), as nanoGPT
     * groups them. */
    bool decay_matrices_only;
    /* Builds micro-batch mb of step `step` (its rows depend only on the seed,
     * the step and the row, so a resumed run repeats them, and so do runs of any
     * number of micro-batches) and runs the forward and backward passes into the
     * zeroed gradients, dropout and samples drawn from mb->seed. stats->correct
     * is needed only with count_correct (the progress line is shown). */
    int (*step)(void *run, int64_t step, const cli_micro_batch *mb, bool count_correct,
                cli_step_stats *stats);
    /* Validates the model, keeping the result for print_validation (rank 0 only). */
    int (*validate)(void *run);
    /* The middle of the validation line: the result, then two spaces. */
    void (*print_validation)(const void *run, const cli_train_window *w);
    /* Writes the model and the optimizer's state atomically to out. */
    int (*save)(const void *run, const char *out, const attn_adamw *opt);
    /* After the schedule's last step: the final evaluation and report (rank 0). */
    int (*finish)(void *run, const cli_train_totals *totals, const char *out);
    /* For --replicas (NULL: the kind has none; it must then have no buffers): a
     * replica of the run for a thread of its own, with the run's data and
     * options and a model of its own whose parameters *params read the run's
     * values in place (the same data, their own gradients). NULL after saying
     * why. step may run on the run and its replicas at the same time. */
    void *(*replicate)(void *run, attn_params **params);
    void (*free_replica)(void *replica);
} cli_train_ops;

/* A run for the loop: a kind's table and state, and what every run has. */
typedef struct cli_trainer {
    const cli_train_ops *ops;
    void *run;
    attn_params *params;
    attn_params *buffers; /* saved but not trained (may be NULL) */
    attn_adamw *opt;
    cli_ranks *ranks;       /* the run's processes: rank 0 reports and saves */
    int accumulate;         /* micro-batches per rank, step and replica */
    int replicas;           /* models running micro-batches at a time (--replicas) */
    bool zero;              /* shard AdamW's moments over the ranks (ZeRO-1) */
    const cli_train_options *train;
    int64_t *step;   /* the run's count of steps done, advanced by the loop */
    int64_t stop_at; /* stop after this step, as if interrupted (0: never) */
    double start;    /* the validation lines give the time since this */
    const char *out;          /* the checkpoint */
    const char *resumed_from; /* the checkpoint the run continues, or NULL */
} cli_trainer;

/* A resumed run's --steps (when given) must not be below the steps it has done;
 * EXIT_USAGE after saying so, else EXIT_OK. */
int cli_check_resumed_steps(bool steps_given, int64_t steps, int64_t done);

/* seconds of the run's steps, per step, in ms (0 without a step). */
double cli_ms_per_step(const cli_train_totals *totals, double seconds);

/* The report's line on the ranks (nothing for one process): their count and
 * the time per step spent exchanging gradients. */
void cli_print_ranks(const cli_train_totals *totals);

/* Trains from *t->step to the schedule's end or --stop-at; returns the exit
 * status (128 + the signal after SIGINT, SIGTERM or SIGHUP). */
int cli_train(const cli_trainer *t);

#endif
