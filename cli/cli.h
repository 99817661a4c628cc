/* The attn tool's commands and the helpers they share. */
#ifndef ATTN_CLI_H
#define ATTN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>

#include <cjson/cJSON.h>

/* 130: stopped by SIGINT, as a shell reports a process that a signal ended. */
/* A run stopped by a signal exits with 128 + its number (cli_interrupt_status). */
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
int cmd_generate(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_analyze(int argc, char **argv);

/* ---- sequence-to-sequence models: training options and model files ---- */
#include "attn/model_file.h"
#include "attn/seq2seq.h"
#include "attn/train.h"

typedef struct cli_train_options {
    int64_t steps, batch, warmup, eval_every;
    float lr, min_lr, weight_decay, clip, label_smoothing;
    uint64_t seed;
    attn_precision precision; /* of the model's products (--precision) */
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

/* ---- Ctrl-C, SIGTERM, SIGHUP during a training run (interrupt.c; the loop: train_loop.h) -- */

/* From now on SIGINT, SIGTERM and SIGHUP set a flag that cli_interrupt_status
 * reports, so a run stops after its current step and saves; a second one of the
 * same kind ends the process at once. */
void cli_catch_interrupt(void);
/* 0 before a signal; after one, 128 + its number, the status a shell reports
 * for it. */
int cli_interrupt_status(void);
/* The name of the signal of such a status. */
const char *cli_interrupt_name(int status);

/* ---- sequence-to-sequence model files (model_file.c) ---- */

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

/* ---- the clock and the progress line (progress.c) ---- */

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

/* ---- attention weights as block characters (shade.c) ---- */

/* A block character whose density shows w in [0, 1] in quarters: blank below
 * 5 %, then the lightest shade up to 37.5 %, ..., full from 87.5 %. */
const char *cli_shade(float w);
/* One cell of a shaded table: a block whose density shows w in [0, 1], then w
 * in percent (5 columns). */
void cli_print_shade(FILE *out, float w);

/* ---- text for a terminal (terminal.c) ---- */

/* Writes s[0..n) with its control characters escaped (C0 and DEL as \xNN, C1 as
 * \u00NN), newlines and tabs kept when keep_lines. */
void cli_write_text(FILE *f, const char *s, size_t n, bool keep_lines);
/* A printf-style message, escaped as cli_write_text does with its newlines and
 * tabs kept. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void cli_message(FILE *f, const char *fmt, ...);
void cli_vmessage(FILE *f, const char *fmt, va_list args);

/* ---- option parsing and messages (args.c) ---- */

/* Prints "attn: <what>: <attn_last_error()>" to stderr and returns EXIT_RUNTIME. */
int cli_fail(const char *what);

/* Prints "attn <command>: <message>" and a pointer to --help to stderr; returns
 * EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...);

/* ---- the files a command reads and writes (paths.c) ---- */

/* A path with the option that names it in messages ("--out", "FILE"). */
typedef struct cli_path {
    const char *option;
    const char *path; /* NULL: not given */
} cli_path;

/* Before any work: refuses an output that is one of the inputs (the same file by
 * device and inode, so also through a link or another spelling) or another
 * output, and an output whose folder does not exist or cannot be written to.
 * Returns EXIT_OK, or EXIT_USAGE after saying why. */
int cli_check_paths(const char *command, const cli_path *inputs, int n_inputs,
                    const cli_path *outputs, int n_outputs);

/* Parses a whole decimal integer in [min, max] from text; false if it is not one. */
bool cli_parse_int(const char *text, long min, long max, long *out);
/* Parses a whole decimal number in [lo, hi] from text; false if it is not one. */
bool cli_parse_float(const char *text, float lo, float hi, float *out);

/* What --qk, --gradient and --gradient-step ask a record for (translate,
 * generate). step_given: --gradient-step was given (else each command's
 * default: the whole output for translate, the last token for generate). */
typedef struct cli_record_extras {
    attn_record_options options;
    bool step_given;
} cli_record_extras;
/* --gradient-step's value, "all" or a step 0 .. 2^20 (it implies --gradient);
 * EXIT_OK or EXIT_USAGE after saying why. */
int cli_parse_gradient_step(const char *command, const char *text, cli_record_extras *x);
/* --qk and --gradient need --attention FILE: EXIT_OK or EXIT_USAGE. */
int cli_check_record_extras(const char *command, const cli_record_extras *x,
                            const char *attention);

/* The options of a command that takes only --json and --help: sets *json, or
 * prints the help (EXIT_OK) or a usage error (EXIT_USAGE). CLI_CONTINUE when the
 * command goes on, with optind at its first operand. */
enum { CLI_CONTINUE = -1 };
int cli_parse_json_and_help(int argc, char **argv, const char *command, void (*print_help)(void),
                            bool *json);

/* ---- JSON reports (json_string.c) ---- */

/* Writes s as a JSON string literal (quotes and escapes included); a byte that
 * does not belong to a valid UTF-8 character becomes U+FFFD, so the output is
 * valid JSON whatever s holds. */
void cli_json_string(FILE *out, const char *s);

/* ---- model files: the training options in their metadata ---- */
#include "io/metadata_fields.h"

/* The rows of the options every run has (not eval_every, whose range differs
 * between model kinds, nor label_smoothing), for a table of the struct `config`
 * that holds a cli_train_options at `member` (e.g. opt.; nothing for a
 * cli_train_options itself). The library's model files (attn/model_file.h) keep
 * the model; the tool adds how it is trained as the metadata "train". */
#define CLI_TRAIN_FIELDS(config, member)                                                        \
    ATTN_FIELD_INT64(config, steps, member steps, 1, INT32_MAX),                                \
    ATTN_FIELD_INT64(config, batch, member batch, 1, 65536),                                    \
    ATTN_FIELD_FLOAT(config, lr, member lr, 1e-8, 10),                                          \
    ATTN_FIELD_FLOAT(config, min_lr, member min_lr, 0, 10),                                     \
    ATTN_FIELD_INT64(config, warmup, member warmup, 0, INT32_MAX),                              \
    ATTN_FIELD_FLOAT(config, weight_decay, member weight_decay, 0, 10),                         \
    ATTN_FIELD_FLOAT(config, clip, member clip, 0, 1e6),                                        \
    ATTN_FIELD_UINT64(config, seed, member seed, 0, INT64_MAX),                                 \
    ATTN_FIELD_NAME_OPTIONAL(config, precision, member precision, &cli_precision_names)

/* The precisions by name, for CLI_TRAIN_FIELDS (args.c). */
extern const attn_enum_names cli_precision_names;

/* A model file being read. */
typedef struct cli_reader {
    const char *path;
    const attn_safetensors *st;
} cli_reader;

/* Prints "attn: <path>: <message>" to stderr; returns EXIT_RUNTIME. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int cli_bad(const cli_reader *r, const char *fmt, ...);
/* Reads the training options (the metadata "train") into the struct at base by
 * the table `fields`; false after saying what is wrong. */
bool cli_read_train(const cli_reader *r, const attn_field *fields, int count, void *base);

/* ---- reading a model file of any kind (model_loader.c) ---- */

/* What differs between the kinds of model file; `model` is the kind's struct
 * (cli_model, cli_gpt_model). */
typedef struct cli_model_kind {
    const char *name; /* its "attn.kind" */
    /* Says that the file holds a model of the kind `name` instead. */
    void (*wrong_kind)(const cli_reader *r, const char *name);
    /* Reads and checks the metadata (the model's through the library,
     * attn/model_file.h; the training options), and creates the model; false
     * after saying what is wrong. */
    bool (*create)(const cli_reader *r, void *model);
    attn_params *(*params)(void *model);
    attn_params *(*buffers)(void *model); /* NULL for a kind without buffers */
    attn_adamw_config (*adamw_config)(const void *model);
    const cli_train_options *(*train)(const void *model); /* how it is trained */
    void (*free)(void *model);
} cli_model_kind;

/* Reads the model file at path, of the given kind, checking everything: the
 * model, the training steps done (*step) and, with opt non-NULL, the optimizer
 * state (initialised here). Prints what is wrong and returns EXIT_RUNTIME on
 * failure, with nothing left allocated. */
int cli_load_model_file(const char *path, const cli_model_kind *kind, void *model, int64_t *step,
                        attn_adamw *opt);

/* ---- language models: model files (gpt_file.c), training (train_text.c) ---- */
#include "attn/data.h"
#include "attn/gpt.h"
#include "ranks.h"

enum { CLI_PATH_MAX = 4096 };

/* How a language model is trained; saved in its file. */
typedef struct cli_text_train {
    cli_train_options opt; /* label_smoothing is not used */
    int64_t eval_windows;  /* validation windows, attn_text_valid_windows's max_windows */
    char data[CLI_PATH_MAX]; /* the text file, as an absolute path */
} cli_text_train;

/* A language model with its vocabulary and how it was trained. */
typedef struct cli_gpt_model {
    attn_gpt *model;
    attn_text_vocab vocab;
    cli_text_train train;
    int64_t step; /* training steps done */
} cli_gpt_model;

/* AdamW's settings for a language model: betas (0.9, 0.99), eps 1e-8 and the
 * run's weight decay, as nanoGPT trains its character models. */
attn_adamw_config cli_gpt_adamw_config(const cli_train_options *t);
/* Writes the model (and opt's state if given) atomically; prints the error and
 * returns EXIT_RUNTIME on failure. */
int cli_gpt_save(const char *path, const cli_gpt_model *m, const attn_adamw *opt);
/* Reads a file written by cli_gpt_save, checking everything; with opt non-NULL,
 * the optimizer state too (initialised here). Prints what is wrong and returns
 * EXIT_RUNTIME on failure, with nothing left allocated. */
int cli_gpt_load(const char *path, cli_gpt_model *m, attn_adamw *opt);
void cli_gpt_free(cli_gpt_model *m);
/* Whether path is a readable attn file whose "attn.kind" is ATTN_GPT_KIND. */
bool cli_is_gpt_file(const char *path);

/* What attn train was asked for a language model (cmd_train.c parses it). */
typedef struct cli_text_run {
    attn_gpt_config model; /* vocab_size comes from the text */
    cli_text_train train;  /* train.data unused: see data */
    attn_text_unit unit;
    const char *data, *out, *resume; /* each may be NULL */
    int64_t stop_at;                 /* 0: run to the end */
    bool json;
    bool steps_given, eval_every_given, eval_windows_given;
    cli_ranks *ranks;       /* the run's processes */
    int accumulate;         /* micro-batches per rank, step and replica */
    int replicas;           /* models training micro-batches at a time, a thread each */
    bool zero;              /* AdamW's moments sharded over the ranks */
} cli_text_run;

/* attn train --task text; returns the exit status. */
int cli_train_text(const cli_text_run *o);

#endif
