/* attn train --task text: trains a decoder-only Transformer language model
 * (attn/gpt.h) on a UTF-8 text file in the training loop (train_loop.c),
 * nanoGPT's way: AdamW with betas (0.9, 0.99) and weight decay on the weights
 * and embeddings only, linear warm-up then cosine decay, the gradient clipped;
 * the validation loss is the mean cross-entropy over fixed windows spread across
 * the validation split. A step's batch (attn_text_train_batch) and dropout
 * depend only on (seed, step), so that a resumed run repeats them. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "train_loop.h"

/* Stores the absolute path of the text, so a resumed run finds it from anywhere. */
static int set_data_path(cli_text_train *t, const char *path)
{
    char *absolute = realpath(path, NULL);
    const char *stored = absolute ? absolute : path;
    int status = EXIT_OK;
    if (strlen(stored) >= sizeof t->data) {
        fprintf(stderr, "attn train: the path of %s is longer than %zu bytes\n", path,
                sizeof t->data - 1);
        status = EXIT_RUNTIME;
    } else {
        strcpy(t->data, stored);
    }
    free(absolute);
    return status;
}

static bool same_vocab(const attn_text_vocab *a, const attn_text_vocab *b)
{
    return a->unit == b->unit && a->size == b->size &&
           (a->unit == ATTN_TEXT_BYTES ||
            memcmp(a->chars, b->chars, (size_t)a->size * sizeof a->chars[0]) == 0);
}

/* A new run: the text, the model and a fresh optimizer. */
static int start_run(const cli_text_run *o, cli_gpt_model *run, attn_adamw *opt, attn_text *text)
{
    if (o->data == NULL) return cli_usage_error("train", "--task text needs --data FILE");
    if (attn_text_load(text, o->data, o->unit, o->model.block_size) != ATTN_OK)
        return cli_fail("train");
    attn_gpt_config cfg = o->model;
    cfg.vocab_size = text->vocab.size;
    if (attn_gpt_check_config(&cfg) != ATTN_OK)
        return cli_usage_error("train", "%s", attn_last_error());
    run->vocab = text->vocab;
    run->train = o->train;
    int status = set_data_path(&run->train, o->data);
    if (status != EXIT_OK) return status;
    if (attn_gpt_create(&run->model, &cfg, o->train.opt.seed) != ATTN_OK)
        return cli_fail("train: the model");
    attn_adamw_config adamw = cli_gpt_adamw_config(&o->train.opt);
    if (attn_adamw_init(opt, attn_gpt_params(run->model)->total, &adamw) != ATTN_OK)
        return cli_fail("train");
    return EXIT_OK;
}

/* A checkpoint's run, with the options that may change between its parts, and
 * its text, which must have the model's vocabulary. */
static int resume_run(const cli_text_run *o, cli_gpt_model *run, attn_adamw *opt,
                      attn_text *text)
{
    int status = cli_gpt_load(o->resume, run, opt);
    if (status != EXIT_OK ||
        (status = cli_check_resumed_steps(o->steps_given, o->train.opt.steps, run->step)))
        return status;
    /* A longer schedule continues the run, but no longer as one run of that
     * length would have gone. */
    if (o->steps_given) run->train.opt.steps = o->train.opt.steps;
    if (o->eval_every_given) run->train.opt.eval_every = o->train.opt.eval_every;
    if (o->eval_windows_given) run->train.eval_windows = o->train.eval_windows;
    if (o->data && (status = set_data_path(&run->train, o->data)) != EXIT_OK) return status;
    const char *data = run->train.data;
    if (attn_text_load(text, data, run->vocab.unit,
                       attn_gpt_get_config(run->model)->block_size) != ATTN_OK)
        return cli_fail("train");
    if (!same_vocab(&text->vocab, &run->vocab)) {
        fprintf(stderr,
                "attn train: %s has a vocabulary of %d %s, not the %d of the model in %s; a run "
                "continues only on text with its model's vocabulary\n",
                data, text->vocab.size, attn_text_unit_name(text->vocab.unit), run->vocab.size,
                o->resume);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* Buffers of one batch. */
typedef struct batch {
    int32_t *x, *y; /* (B, T) */
    int B, T;
} batch;

/* The mean cross-entropy over `count` validation windows. */
static int validate(attn_gpt *model, const attn_text *text, int64_t count, batch *b,
                    double *loss)
{
    attn_gpt_pass pass = {.training = false};
    double sum = 0.0;
    for (int64_t first = 0; first < count; first += b->B) {
        int n = count - first < b->B ? (int)(count - first) : b->B;
        float l = 0.0f;
        if (attn_text_valid_batch(text, b->T, count, first, n, b->x, b->y) != ATTN_OK ||
            attn_gpt_forward(model, &l, b->x, b->y, n, b->T, &pass) != ATTN_OK)
            return cli_fail("train: validation");
        sum += (double)l * n;
    }
    *loss = sum / (double)count;
    return EXIT_OK;
}

/* Positions whose most likely next token (the first on ties) is the target. */
static int64_t correct_tokens(const float *logits, const int32_t *y, size_t n, int V)
{
    int64_t correct = 0;
    for (size_t i = 0; i < n; i++) {
        const float *row = logits + i * (size_t)V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        correct += best == y[i];
    }
    return correct;
}

/* A language model's run as the training loop sees it. */
typedef struct text_run {
    const cli_text_run *o;
    cli_gpt_model *model;
    const attn_text *text;
    batch b;
    double valid_loss;     /* the last validation's; NaN before the first */
    int64_t valid_windows; /* of the validation split */
    double wall_start;     /* the command's start */
} text_run;

static void print_number(double v)
{
    if (isfinite(v)) printf("%.6g", v);
    else printf("null");
}

static void print_report(const text_run *r, const cli_train_totals *s, const char *out)
{
    const cli_gpt_model *run = r->model;
    const attn_gpt_config *c = attn_gpt_get_config(run->model);
    const cli_train_options *t = &run->train.opt;
    size_t parameters = attn_gpt_params(run->model)->total;
    double tokens = (double)s->steps * (double)t->batch * c->block_size;
    double ms_per_step = cli_ms_per_step(s, s->step_seconds);
    double tokens_per_s = s->step_seconds > 0 ? tokens / s->step_seconds : 0.0;
    if (r->o->json) {
        printf("{\"task\": \"text\", \"data\": ");
        cli_json_string(stdout, run->train.data);
        printf(", \"unit\": \"%s\", \"vocab_size\": %d, \"layers\": %d, \"heads\": %d, "
               "\"kv_heads\": %d, \"embd\": %d, \"block\": %d, \"positions\": \"%s\", "
               "\"window\": %d, \"precision\": \"%s\", \"batch\": %lld, \"steps\": %lld, "
               "\"parameters\": %zu, \"train_loss\": ",
               attn_text_unit_name(run->vocab.unit), c->vocab_size, c->n_layer, c->n_head,
               c->n_kv_head ? c->n_kv_head : c->n_head, c->n_embd, c->block_size,
               attn_position_name(c->position), c->window, attn_precision_name(t->precision),
               (long long)t->batch, (long long)run->step, parameters);
        print_number(s->last_loss);
        printf(", \"valid_loss\": ");
        print_number(r->valid_loss);
        printf(", \"valid_windows\": %lld, \"ms_per_step\": %.3f, \"steady_ms_per_step\": %.3f, "
               "\"tokens_per_s\": %.1f, "
               "\"train_seconds\": %.3f, \"wall_seconds\": %.3f, \"ranks\": %d, "
               "\"accumulate\": %d, \"replicas\": %d, \"exchange_ms_per_step\": %.3f, "
               "\"wait_ms_per_step\": %.3f, \"checkpoint\": ",
               (long long)r->valid_windows, ms_per_step, cli_steady_ms_per_step(s), tokens_per_s,
               s->step_seconds,
               cli_now() - r->wall_start, s->ranks, s->accumulate, s->replicas,
               cli_ms_per_step(s, s->exchange_seconds), cli_ms_per_step(s, s->wait_seconds));
        cli_json_string(stdout, out);
        printf("}\n");
        return;
    }
    printf("GPT, %d layers, %d heads, %d wide, block %d, %s positions, %d %s: %lld steps, "
           "%.2fM parameters, %s\n",
           c->n_layer, c->n_head, c->n_embd, c->block_size, attn_position_name(c->position),
           c->vocab_size, attn_text_unit_name(run->vocab.unit), (long long)run->step,
           (double)parameters / 1e6, attn_precision_name(t->precision));
    printf("train loss %.4f, valid loss %.4f over %lld windows; %.1f ms/step, %.1fk tokens/s\n",
           s->last_loss, r->valid_loss, (long long)r->valid_windows, ms_per_step,
           tokens_per_s / 1000.0);
    cli_print_ranks(s);
    printf("saved %s\n", out);
}

static int text_step(void *run, int64_t step, const cli_micro_batch *mb, bool count_correct,
                     cli_step_stats *stats)
{
    text_run *r = run;
    const cli_train_options *t = &r->model->train.opt;
    batch *b = &r->b;
    attn_gpt_pass pass = {.training = true, .step = step, .seed = mb->seed};
    float loss = 0.0f;
    if (attn_text_train_batch(r->text, t->seed, step, mb->first, mb->rows, b->T, b->x, b->y) !=
            ATTN_OK ||
        attn_gpt_forward(r->model->model, &loss, b->x, b->y, mb->rows, b->T, &pass) != ATTN_OK ||
        attn_gpt_backward(r->model->model) != ATTN_OK)
        return cli_fail("train");
    size_t n = (size_t)mb->rows * (size_t)b->T;
    /* The loss is a mean over the micro-batch's tokens; the argmax over the
     * vocabulary costs a pass over the logits, made only for the progress line. */
    *stats = (cli_step_stats){.loss = loss, .loss_weight = (double)n, .predicted = (double)n,
                              .tokens = (double)n};
    if (count_correct)
        stats->correct = (double)correct_tokens(attn_gpt_logits(r->model->model), b->y, n,
                                                attn_gpt_get_config(r->model->model)->vocab_size);
    return EXIT_OK;
}

static int text_validate(void *run)
{
    text_run *r = run;
    return validate(r->model->model, r->text, r->valid_windows, &r->b, &r->valid_loss);
}

static void text_print_validation(const void *run, const cli_train_window *w)
{
    (void)w;
    const text_run *r = run;
    fprintf(stderr, "valid loss %.4f  ", r->valid_loss);
}

static int text_save(const void *run, const char *out, const attn_adamw *opt)
{
    const text_run *r = run;
    return cli_gpt_save(out, r->model, opt);
}

static int text_finish(void *run, const cli_train_totals *totals, const char *out)
{
    text_run *r = run;
    /* A run resumed at its end has taken no step here; it still reports its loss. */
    int status = isnan(r->valid_loss) ? text_validate(r) : EXIT_OK;
    if (status == EXIT_OK) print_report(r, totals, out);
    return status;
}

/* A replica of a run: its text and options, a batch of its own and a model
 * that reads the run's parameter values and has gradients of its own. */
typedef struct text_replica {
    text_run run;
    cli_gpt_model model;
} text_replica;

static void text_free_replica(void *replica)
{
    text_replica *c = replica;
    cli_gpt_free(&c->model);
    free(c->run.b.x);
    free(c->run.b.y);
    free(c);
}

static void *text_replicate(void *run, attn_params **params)
{
    const text_run *r = run;
    text_replica *c = calloc(1, sizeof *c);
    if (c == NULL) {
        fprintf(stderr, "attn train: out of memory for a replica\n");
        return NULL;
    }
    c->model = *r->model;
    c->model.model = NULL;
    c->run = *r;
    c->run.model = &c->model;
    const size_t n = (size_t)r->b.B * (size_t)r->b.T;
    c->run.b.x = malloc(n * sizeof *c->run.b.x);
    c->run.b.y = malloc(n * sizeof *c->run.b.y);
    if (c->run.b.x == NULL || c->run.b.y == NULL ||
        attn_gpt_replicate(&c->model.model, r->model->model) != ATTN_OK) {
        cli_fail("train: a replica");
        text_free_replica(c);
        return NULL;
    }
    *params = attn_gpt_params(c->model.model);
    return c;
}

/* AdamW decays only the weights and embeddings, as nanoGPT groups them. */
static const cli_train_ops text_ops = {
    .decay_matrices_only = true,
    .step = text_step,
    .validate = text_validate,
    .print_validation = text_print_validation,
    .save = text_save,
    .finish = text_finish,
    .replicate = text_replicate,
    .free_replica = text_free_replica,
};

static int train(const cli_text_run *o, cli_gpt_model *model, attn_adamw *opt,
                 const attn_text *text, const char *out, double wall_start)
{
    const cli_train_options *t = &model->train.opt;
    int T = attn_gpt_get_config(model->model)->block_size;
    text_run run = {.o = o,
                    .model = model,
                    .text = text,
                    .b = {.B = (int)t->batch, .T = T},
                    .valid_loss = NAN,
                    .valid_windows = attn_text_valid_windows(text, T, model->train.eval_windows),
                    .wall_start = wall_start};
    size_t n = (size_t)run.b.B * (size_t)T;
    run.b.x = malloc(n * sizeof *run.b.x);
    run.b.y = malloc(n * sizeof *run.b.y);
    int status = EXIT_RUNTIME;
    if (run.b.x == NULL || run.b.y == NULL) {
        fprintf(stderr, "attn train: out of memory\n");
    } else {
        cli_trainer trainer = {.ops = &text_ops,
                               .run = &run,
                               .params = attn_gpt_params(model->model),
                               .opt = opt,
                               .ranks = o->ranks,
                               .accumulate = o->accumulate,
                               .replicas = o->replicas,
                               .zero = o->zero,
                               .train = t,
                               .step = &model->step,
                               .stop_at = o->stop_at,
                               .start = wall_start,
                               .out = out,
                               .resumed_from = o->resume};
        status = cli_train(&trainer);
    }
    free(run.b.x);
    free(run.b.y);
    return status;
}

int cli_train_text(const cli_text_run *o)
{
    double wall_start = cli_now();
    cli_gpt_model run = {0};
    attn_adamw opt = {0};
    attn_text text = {0};
    /* The checkpoint may replace the one it resumes, never the text. */
    const char *out = o->out ? o->out : o->resume ? o->resume : "text.safetensors";
    const cli_path checkpoint = {"--out", out};
    int status = cli_check_paths("train", &(cli_path){"--data", o->data}, 1, &checkpoint, 1);
    if (status == EXIT_OK)
        status = o->resume ? resume_run(o, &run, &opt, &text) : start_run(o, &run, &opt, &text);
    /* A resumed run reads the text its checkpoint names. */
    if (status == EXIT_OK && o->resume && o->data == NULL)
        status = cli_check_paths("train", &(cli_path){"the checkpoint's data", run.train.data}, 1,
                                 &checkpoint, 1);
    /* The products' precision is how the run trains (a resumed run's, its file's). */
    if (status == EXIT_OK && attn_gpt_set_precision(run.model, run.train.opt.precision) != ATTN_OK)
        status = cli_fail("train");
    if (status == EXIT_OK) status = train(o, &run, &opt, &text, out, wall_start);
    attn_text_free(&text);
    cli_gpt_free(&run);
    attn_adamw_free(&opt);
    return status;
}
