/* The training loop of every model kind (train_loop.h). A step's batch and
 * dropout depend only on (seed, step) and the checkpoint holds the optimizer's
 * state, so a run stopped after N steps and resumed ends with the same weights,
 * bit for bit, as one that never stopped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "train_loop.h"

/* Nonzero for the parameters of 2 dimensions (weights and embeddings). */
static uint8_t *matrices_mask(const attn_params *p)
{
    uint8_t *mask = calloc(p->total, 1);
    if (mask == NULL) return NULL;
    for (int i = 0; i < p->count; i++)
        if (p->items[i].ndim == 2) memset(mask + p->items[i].offset, 1, p->items[i].numel);
    return mask;
}

/* Says that a run stopped (interrupted or at --stop-at) and how to resume it. */
static int stopped(int64_t step, int64_t steps, const char *out)
{
    if (!cli_interrupted()) {
        fprintf(stderr, "stopped after step %lld of %lld; continue with: attn train --resume %s\n",
                (long long)step, (long long)steps, out);
        return EXIT_OK;
    }
    fprintf(stderr,
            "interrupted (%s) after step %lld of %lld; continue with: attn train --resume %s\n",
            cli_interrupt_name(), (long long)step, (long long)steps, out);
    return cli_interrupt_status();
}

/* Names the last good checkpoint only if there is one: the last this run wrote,
 * else the one it resumed from. */
static int diverged(int64_t step, double loss, double norm, const char *last_good)
{
    fprintf(stderr, "attn train: diverged at step %lld (loss %g, gradient norm %g); ",
            (long long)step, loss, norm);
    if (last_good)
        fprintf(stderr, "the last good checkpoint is %s\n", last_good);
    else
        fprintf(stderr, "no checkpoint was written\n");
    return EXIT_RUNTIME;
}

static void add_step(cli_train_window *w, const cli_step_stats *s, double seconds)
{
    w->loss += s->loss * s->loss_weight;
    w->loss_weight += s->loss_weight;
    w->correct += s->correct;
    w->predicted += s->predicted;
    w->tokens += s->tokens;
    w->seconds += seconds;
}

static void print_validation(const cli_trainer *t, const cli_train_window *w)
{
    fprintf(stderr, "step %6lld/%lld  loss %.4f  ", (long long)*t->step,
            (long long)t->train->steps, w->loss / w->loss_weight);
    t->ops->print_validation(t->run, w);
    fprintf(stderr, "%6.1fk tok/s  %.1f s\n", w->tokens / w->seconds / 1000.0,
            cli_now() - t->start);
}

int cli_check_resumed_steps(bool steps_given, int64_t steps, int64_t done)
{
    if (!steps_given || steps >= done) return EXIT_OK;
    return cli_usage_error("train", "--steps %lld is below the %lld steps the checkpoint has done",
                           (long long)steps, (long long)done);
}

int cli_train(const cli_trainer *t)
{
    const cli_train_ops *ops = t->ops;
    const cli_train_options *o = t->train;
    attn_params *params = t->params;
    uint8_t *decay = NULL;
    if (ops->decay_matrices_only && (decay = matrices_mask(params)) == NULL) {
        fprintf(stderr, "attn train: out of memory\n");
        return EXIT_RUNTIME;
    }
    cli_catch_interrupt();
    int64_t last = t->stop_at && t->stop_at < o->steps ? t->stop_at : o->steps;
    cli_progress progress;
    cli_progress_init(&progress, *t->step, o->steps);
    cli_train_window w = {0};
    cli_train_totals totals = {.last_loss = NAN};
    double loop_start = cli_now();
    int status = EXIT_OK;
    bool saved = false; /* the checkpoint holds the current step */
    const char *last_good = t->resumed_from;
    while (*t->step < last && !cli_interrupted()) {
        int64_t step = *t->step;
        double start = cli_now();
        cli_step_stats s = {0};
        attn_params_zero_grad(params);
        if ((status = ops->step(t->run, step, progress.active, &s))) break;
        double norm = attn_clip_grad_norm(params->grad, params->total,
                                          o->clip > 0 ? o->clip : INFINITY);
        if (!isfinite(s.loss) || !isfinite(norm)) {
            cli_progress_clear(&progress);
            status = diverged(step, s.loss, norm, last_good);
            break;
        }
        float lr = attn_lr_warmup_cosine(step, o->warmup, o->steps, o->lr, o->min_lr);
        if (attn_adamw_step(t->opt, params->data, params->grad, decay, lr) != ATTN_OK) {
            status = cli_fail("train");
            break;
        }
        *t->step = ++step;
        saved = false;
        double seconds = cli_now() - start;
        add_step(&w, &s, seconds);
        totals.steps++;
        totals.step_seconds += seconds;
        totals.tokens += s.tokens;
        totals.last_loss = s.loss;
        if (progress.active)
            cli_progress_update(&progress, step, (float)(w.loss / w.loss_weight),
                                (float)(w.correct / w.predicted), w.tokens / w.seconds);
        /* eval_every 0 (a language model's timing runs): only at the end. */
        if ((o->eval_every > 0 && step % o->eval_every == 0) || step == o->steps) {
            if ((status = ops->validate(t->run))) break;
            cli_progress_clear(&progress);
            print_validation(t, &w);
            if ((status = ops->save(t->run, t->out, t->opt))) break;
            saved = true;
            last_good = t->out;
            w = (cli_train_window){0};
        }
    }
    cli_progress_clear(&progress);
    totals.loop_seconds = cli_now() - loop_start;
    free(decay);
    if (status == EXIT_OK && !saved) status = ops->save(t->run, t->out, t->opt);
    if (status != EXIT_OK) return status;
    if (cli_interrupted() || *t->step < o->steps) return stopped(*t->step, o->steps, t->out);
    return ops->finish(t->run, &totals, t->out);
}
