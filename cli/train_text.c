/* attn train --task text: trains a decoder-only Transformer language model
 * (attn/gpt.h) on a UTF-8 text file, nanoGPT's way: AdamW with betas (0.9, 0.99)
 * and weight decay on the weights and embeddings only, linear warm-up then cosine
 * decay, the gradient clipped; the validation loss is the mean cross-entropy over
 * fixed windows spread across the validation split.
 *
 * A step's batch (attn_text_train_batch) and dropout depend only on (seed, step)
 * and the checkpoint holds the optimizer's state, so a run stopped after N steps
 * and resumed ends with the same bits as one that never stopped. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"

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
    if (status != EXIT_OK) return status;
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

/* Nonzero for the parameters with 2 dimensions (weights and embeddings): only
 * those decay, as nanoGPT groups them. */
static uint8_t *decay_mask(const attn_params *p)
{
    uint8_t *mask = calloc(p->total, 1);
    if (mask == NULL) return NULL;
    for (int i = 0; i < p->count; i++)
        if (p->items[i].ndim == 2) memset(mask + p->items[i].offset, 1, p->items[i].numel);
    return mask;
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

/* Sums between two validations, for the progress line and the validation line. */
typedef struct window {
    double loss, correct, steps, seconds;
} window;

/* What the final report says. */
typedef struct totals {
    double train_seconds; /* the training steps of this invocation only */
    int64_t steps;        /* taken by this invocation */
    float train_loss;     /* the last step's */
    double valid_loss;
    int64_t valid_windows;
} totals;

static void print_number(double v)
{
    if (isfinite(v)) printf("%.6g", v);
    else printf("null");
}

static void print_report(const cli_text_run *o, const cli_gpt_model *run, const totals *s,
                         double wall_seconds, const char *out)
{
    const attn_gpt_config *c = attn_gpt_get_config(run->model);
    const cli_train_options *t = &run->train.opt;
    size_t parameters = attn_gpt_params(run->model)->total;
    double tokens = (double)s->steps * (double)t->batch * c->block_size;
    double ms_per_step = s->steps ? 1000.0 * s->train_seconds / (double)s->steps : 0.0;
    double tokens_per_s = s->train_seconds > 0 ? tokens / s->train_seconds : 0.0;
    if (o->json) {
        printf("{\"task\": \"text\", \"data\": ");
        cli_json_string(stdout, run->train.data);
        printf(", \"unit\": \"%s\", \"vocab_size\": %d, \"layers\": %d, \"heads\": %d, "
               "\"kv_heads\": %d, \"embd\": %d, \"block\": %d, \"positions\": \"%s\", "
               "\"window\": %d, \"batch\": %lld, \"steps\": %lld, \"parameters\": %zu, "
               "\"train_loss\": ",
               attn_text_unit_name(run->vocab.unit), c->vocab_size, c->n_layer, c->n_head,
               c->n_kv_head ? c->n_kv_head : c->n_head, c->n_embd, c->block_size,
               attn_position_name(c->position), c->window, (long long)t->batch,
               (long long)run->step, parameters);
        print_number(s->train_loss);
        printf(", \"valid_loss\": ");
        print_number(s->valid_loss);
        printf(", \"valid_windows\": %lld, \"ms_per_step\": %.3f, \"tokens_per_s\": %.1f, "
               "\"train_seconds\": %.3f, \"wall_seconds\": %.3f, \"checkpoint\": ",
               (long long)s->valid_windows, ms_per_step, tokens_per_s, s->train_seconds,
               wall_seconds);
        cli_json_string(stdout, out);
        printf("}\n");
        return;
    }
    printf("GPT, %d layers, %d heads, %d wide, block %d, %s positions, %d %s: %lld steps, "
           "%.2fM parameters\n",
           c->n_layer, c->n_head, c->n_embd, c->block_size, attn_position_name(c->position),
           c->vocab_size, attn_text_unit_name(run->vocab.unit), (long long)run->step,
           (double)parameters / 1e6);
    printf("train loss %.4f, valid loss %.4f over %lld windows; %.1f ms/step, %.1fk tokens/s\n",
           (double)s->train_loss, s->valid_loss, (long long)s->valid_windows, ms_per_step,
           tokens_per_s / 1000.0);
    printf("saved %s\n", out);
}

static int train(const cli_text_run *o, cli_gpt_model *run, attn_adamw *opt,
                 const attn_text *text, const char *out, double wall_start)
{
    const cli_train_options *t = &run->train.opt;
    const attn_gpt_config *cfg = attn_gpt_get_config(run->model);
    attn_params *params = attn_gpt_params(run->model);
    batch b = {.B = (int)t->batch, .T = cfg->block_size};
    size_t n = (size_t)b.B * (size_t)b.T;
    b.x = malloc(n * sizeof *b.x);
    b.y = malloc(n * sizeof *b.y);
    uint8_t *decay = decay_mask(params);
    if (b.x == NULL || b.y == NULL || decay == NULL) {
        free(b.x);
        free(b.y);
        free(decay);
        fprintf(stderr, "attn train: out of memory\n");
        return EXIT_RUNTIME;
    }
    totals s = {.train_loss = NAN,
                .valid_loss = NAN,
                .valid_windows = attn_text_valid_windows(text, b.T, run->train.eval_windows)};
    int64_t last = o->stop_at && o->stop_at < t->steps ? o->stop_at : t->steps;
    cli_progress progress;
    cli_progress_init(&progress, run->step, t->steps);
    window w = {0};
    int status = EXIT_OK;
    bool saved = false; /* the checkpoint holds the current step */
    while (run->step < last && !cli_interrupted()) {
        double start = cli_now();
        attn_gpt_pass pass = {.training = true, .step = run->step, .seed = t->seed};
        float loss = 0.0f;
        attn_params_zero_grad(params);
        if (attn_text_train_batch(text, t->seed, run->step, b.B, b.T, b.x, b.y) != ATTN_OK ||
            attn_gpt_forward(run->model, &loss, b.x, b.y, b.B, b.T, &pass) != ATTN_OK ||
            attn_gpt_backward(run->model) != ATTN_OK) {
            status = cli_fail("train");
            break;
        }
        double norm = cli_clip_gradients(params, t->clip);
        if (!isfinite(loss) || !isfinite(norm)) {
            cli_progress_clear(&progress);
            status = cli_train_diverged(run->step, loss, norm, out);
            break;
        }
        float lr = attn_lr_warmup_cosine(run->step, t->warmup, t->steps, t->lr, t->min_lr);
        if (attn_adamw_step(opt, params->data, params->grad, decay, lr) != ATTN_OK) {
            status = cli_fail("train");
            break;
        }
        run->step++;
        saved = false;
        double seconds = cli_now() - start;
        s.train_seconds += seconds;
        s.steps++;
        s.train_loss = loss;
        w.loss += loss;
        w.steps++;
        w.seconds += seconds;
        if (progress.active) {
            w.correct += (double)correct_tokens(attn_gpt_logits(run->model), b.y, n,
                                                cfg->vocab_size);
            cli_progress_update(&progress, run->step, (float)(w.loss / w.steps),
                                (float)(w.correct / (w.steps * (double)n)),
                                w.steps * (double)n / w.seconds);
        }
        if ((t->eval_every > 0 && run->step % t->eval_every == 0) || run->step == t->steps) {
            if ((status = validate(run->model, text, s.valid_windows, &b, &s.valid_loss)))
                break;
            cli_progress_clear(&progress);
            fprintf(stderr,
                    "step %6lld/%lld  loss %.4f  valid loss %.4f  %6.1fk tok/s  %.1f s\n",
                    (long long)run->step, (long long)t->steps, w.loss / w.steps, s.valid_loss,
                    w.steps * (double)n / w.seconds / 1000.0, cli_now() - wall_start);
            if ((status = cli_gpt_save(out, run, opt))) break;
            saved = true;
            w = (window){0};
        }
    }
    cli_progress_clear(&progress);
    if (status == EXIT_OK && !saved) status = cli_gpt_save(out, run, opt);
    /* A run resumed at its end has taken no step here; it still reports its loss. */
    if (status == EXIT_OK && run->step == t->steps && isnan(s.valid_loss))
        status = validate(run->model, text, s.valid_windows, &b, &s.valid_loss);
    free(b.x);
    free(b.y);
    free(decay);
    if (status != EXIT_OK) return status;
    if (cli_interrupted() || run->step < t->steps)
        return cli_train_stopped(run->step, t->steps, out);
    print_report(o, run, &s, cli_now() - wall_start, out);
    return EXIT_OK;
}

int cli_train_text(const cli_text_run *o)
{
    double wall_start = cli_now();
    cli_gpt_model run = {0};
    attn_adamw opt = {0};
    attn_text text = {0};
    const char *out = o->out ? o->out : o->resume ? o->resume : "text.safetensors";
    int status = o->resume ? resume_run(o, &run, &opt, &text) : start_run(o, &run, &opt, &text);
    if (status == EXIT_OK) {
        cli_catch_interrupt();
        status = train(o, &run, &opt, &text, out, wall_start);
    }
    attn_text_free(&text);
    cli_gpt_free(&run);
    attn_adamw_free(&opt);
    return status;
}
