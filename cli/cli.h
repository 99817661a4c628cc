/* The attn tool's commands and the helpers they share. */
#ifndef ATTN_CLI_H
#define ATTN_CLI_H

#include <stdbool.h>
#include <stdint.h>
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
int cmd_data(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_translate(int argc, char **argv);

/* ---- sequence-to-sequence models: training options and model files ---- */
#include "attn/seq2seq.h"
#include "attn/train.h"

typedef struct cli_train_options {
    int64_t steps, batch, warmup, eval_every;
    float lr, min_lr, weight_decay, clip, label_smoothing;
    uint64_t seed;
} cli_train_options;

/* A model with what it was trained on. */
typedef struct cli_model {
    attn_seq2seq *model;
    attn_task task;
    cli_train_options train;
    int64_t step; /* training steps done */
} cli_model;

/* AdamW's settings for a run: PyTorch's defaults with the run's weight decay. */
attn_adamw_config cli_adamw_config(const cli_train_options *t);

/* Writes the model (and opt's state if given) atomically as an attn checkpoint;
 * prints the error and returns EXIT_RUNTIME on failure. */
int cli_model_save(const char *path, const cli_model *m, const attn_adamw *opt);
/* Reads a model file written by cli_model_save, checking everything; with opt
 * non-NULL, the optimizer state too (initialised here). Prints what is wrong and
 * returns EXIT_RUNTIME on failure, with nothing left allocated. */
int cli_model_load(const char *path, cli_model *m, attn_adamw *opt);
void cli_model_free(cli_model *m);

/* Exact-match accuracy of greedy or beam decoding over a fixed split. */
typedef struct cli_eval_result {
    int64_t examples, exact;
    double seconds;
} cli_eval_result;
int cli_evaluate(attn_seq2seq *model, const attn_task *task, attn_split split, int beam,
                 cli_eval_result *result);

/* Seconds of a monotonic clock. */
double cli_now(void);

/* The progress line of a training run (stderr, on a terminal only). */
typedef struct cli_progress {
    bool active;
    int64_t first_step, total_steps;
    double start, last_draw;
} cli_progress;
void cli_progress_init(cli_progress *p, int64_t first_step, int64_t total_steps);
/* step: steps done; loss and accuracy of recent steps. */
void cli_progress_update(cli_progress *p, int64_t step, float loss, float accuracy,
                         double tokens_per_second);
/* Erases the line, before other output. */
void cli_progress_clear(cli_progress *p);

/* A block character whose density shows w in [0, 1] in quarters: blank below
 * 5 %, then the lightest shade up to 37.5 %, ..., full from 87.5 %. */
const char *cli_shade(float w);
/* One cell of a shaded table: a block whose density shows w in [0, 1], then w
 * in percent (5 columns). */
void cli_print_shade(FILE *out, float w);

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
