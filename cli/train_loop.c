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

/* Says that a run stopped (at --stop-at, or interrupted: signal is the status
 * of the signal that stopped it, 0 for none) and how to resume it. */
static int stopped(int64_t step, int64_t steps, const char *out, int signal)
{
    if (signal == 0) {
        fprintf(stderr, "stopped after step %lld of %lld; continue with: attn train --resume %s\n",
                (long long)step, (long long)steps, out);
        return EXIT_OK;
    }
    fprintf(stderr,
            "interrupted (%s) after step %lld of %lld; continue with: attn train --resume %s\n",
            cli_interrupt_name(signal), (long long)step, (long long)steps, out);
    return signal;
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

double cli_ms_per_step(const cli_train_totals *totals, double seconds)
{
    return totals->steps ? 1000.0 * seconds / (double)totals->steps : 0.0;
}

double cli_steady_ms_per_step(const cli_train_totals *totals)
{
    if (totals->steps < 2) return 0.0;
    return 1000.0 * (totals->step_seconds - totals->first_step_seconds) /
           (double)(totals->steps - 1);
}

void cli_print_ranks(const cli_train_totals *totals)
{
    if (totals->ranks == 1) return;
    printf("%d ranks, %d micro-batch%s each per step; per step %.2f ms exchanging gradients, "
           "%.2f ms waiting for other ranks\n",
           totals->ranks, totals->accumulate, totals->accumulate == 1 ? "" : "es",
           cli_ms_per_step(totals, totals->exchange_seconds),
           cli_ms_per_step(totals, totals->wait_seconds));
}

int cli_check_resumed_steps(bool steps_given, int64_t steps, int64_t done)
{
    if (!steps_given || steps >= done) return EXIT_OK;
    return cli_usage_error("train", "--steps %lld is below the %lld steps the checkpoint has done",
                           (long long)steps, (long long)done);
}

/* A checksum of n floats, as a double that holds it exactly. */
static double checksum(const float *x, size_t n)
{
    return n ? (double)attn_crc32c(0, x, n * sizeof *x) : 0.0;
}

static double checksum_string(const char *s) { return (double)attn_crc32c(0, s, strlen(s)); }

/* Every rank must run the same build on the same model with the same options:
 * otherwise the sums would add unlike things, or a rank would wait forever for
 * one that stopped. The ranks compare what decides the run, and all return
 * EXIT_USAGE if any differs, rank 0 saying where. */
static int check_ranks_agree(const cli_trainer *t)
{
    if (t->ranks->size == 1) return EXIT_OK;
    const cli_train_options *o = t->train;
    const struct {
        const char *what;
        double value;
        const char *text; /* what the value stands for on rank 0, if it is a checksum */
    } items[] = {
        {"attn version", checksum_string(ATTN_VERSION_STRING), ATTN_VERSION_STRING},
        {"instruction set (attn info: simd; ATTN_SIMD sets it)",
         checksum_string(attn_simd_variant()), attn_simd_variant()},
        {"GEMM backend", checksum_string(attn_gemm_backend()), attn_gemm_backend()},
        {"bf16 GEMM backend", checksum_string(attn_gemm_bf16_backend()),
         attn_gemm_bf16_backend()},
        {"parameter count", (double)t->params->total, NULL},
        {"parameters (their checksums differ)", checksum(t->params->data, t->params->total), ""},
        {"buffers (their checksums differ)",
         t->buffers ? checksum(t->buffers->data, t->buffers->total) : 0.0, ""},
        {"step to start from", (double)*t->step, NULL},
        {"--steps", (double)o->steps, NULL},
        {"--batch", (double)o->batch, NULL},
        {"--warmup", (double)o->warmup, NULL},
        {"--eval-every", (double)o->eval_every, NULL},
        {"--lr", o->lr, NULL},
        {"--min-lr", o->min_lr, NULL},
        {"--weight-decay", o->weight_decay, NULL},
        {"--clip", o->clip, NULL},
        {"--label-smoothing", o->label_smoothing, NULL},
        {"--seed", (double)o->seed, NULL},
        {"--precision", checksum_string(attn_precision_name(o->precision)),
         attn_precision_name(o->precision)},
        {"--stop-at", (double)t->stop_at, NULL},
        {"--accumulate", t->accumulate, NULL},
        {"--replicas", t->replicas, NULL},
        {"--zero", t->zero, NULL},
        {"checkpoint path", checksum_string(t->out), t->out},
    };
    enum { ITEMS = sizeof items / sizeof items[0] };
    const int P = t->ranks->size;
    double mine[ITEMS], *all = malloc((size_t)P * ITEMS * sizeof *all);
    if (all == NULL) {
        fprintf(stderr, "attn train: out of memory\n");
        cli_ranks_abort(t->ranks, EXIT_RUNTIME);
        return EXIT_RUNTIME;
    }
    for (int i = 0; i < ITEMS; i++) mine[i] = items[i].value;
    cli_ranks_gather_doubles(t->ranks, mine, ITEMS, all);
    int status = EXIT_OK;
    for (int k = 1; k < P && status == EXIT_OK; k++)
        for (int i = 0; i < ITEMS; i++) {
            const double first = all[i], other = all[(size_t)k * ITEMS + i];
            if (memcmp(&first, &other, sizeof first) == 0) continue;
            if (t->ranks->rank == 0) {
                fprintf(stderr, "attn train: rank %d differs from rank 0 in its %s ", k,
                        items[i].what);
                if (items[i].text == NULL)
                    fprintf(stderr, "(%.9g, not %.9g)", other, first);
                else if (items[i].text[0])
                    fprintf(stderr, "(rank 0's: %s)", items[i].text);
                fprintf(stderr, "; every rank must run the same attn build with the same "
                                "options and files\n");
            }
            status = EXIT_USAGE;
            break;
        }
    free(all);
    return status;
}

/* Rank 0 saves; with sharded moments every rank first sends it its shard. */
static int save(const cli_trainer *t, const cli_parallel *par)
{
    attn_adamw whole;
    const attn_adamw *opt = cli_parallel_whole_optimizer(par, t->opt, &whole);
    int status = t->ranks->rank == 0 ? t->ops->save(t->run, t->out, opt) : EXIT_OK;
    cli_parallel_release_whole(par, &whole);
    return status;
}

/* The run and its replicas: replica 0 is the run itself. */
typedef struct replica_set {
    int count;
    void *runs[CLI_MAX_REPLICAS];
    attn_params *params[CLI_MAX_REPLICAS];
} replica_set;

static void free_replicas(const cli_trainer *t, replica_set *set)
{
    for (int r = 1; r < set->count; r++) t->ops->free_replica(set->runs[r]);
    set->count = 0;
}

/* The run and t->replicas - 1 replicas of it; prints why not and returns an
 * exit status. */
static int make_replicas(const cli_trainer *t, replica_set *set)
{
    *set = (replica_set){.count = 1, .runs = {t->run}, .params = {t->params}};
    if (t->replicas > 1 && (t->ops->replicate == NULL || t->buffers)) {
        fprintf(stderr, "attn train: --replicas is for a language model (--task text)\n");
        return EXIT_USAGE;
    }
    for (; set->count < t->replicas; set->count++) {
        void *replica = t->ops->replicate(t->run, &set->params[set->count]);
        if (replica == NULL) {
            free_replicas(t, set);
            return EXIT_RUNTIME;
        }
        set->runs[set->count] = replica;
    }
    return EXIT_OK;
}

/* Micro-batch k + r of the step on replica r. */
static int run_micro_batch(const cli_trainer *t, const replica_set *set, cli_parallel *par,
                           int k, int r, bool count_correct, cli_step_stats *stats)
{
    const cli_train_options *o = t->train;
    const cli_micro_batch mb = cli_parallel_micro_batch(par, k + r, o->batch, o->seed);
    cli_parallel_begin(par, k + r, set->params[r]);
    return t->ops->step(set->runs[r], *t->step, &mb, count_correct, stats);
}

/* Micro-batches k .. k + count - 1 of the step, micro-batch k + r run by
 * replica r, each on a thread of its own, and their sums. */
static int run_wave(const cli_trainer *t, const replica_set *set, cli_parallel *par, int k,
                    int count, bool count_correct)
{
    cli_step_stats stats[CLI_MAX_REPLICAS] = {0};
    int status[CLI_MAX_REPLICAS] = {0};
    /* One model runs on the calling thread: its parallel regions, nested in
     * even an inactive region of one thread, would not find the threads that
     * wait for the outermost regions and cost several times as much. */
    if (count == 1) {
        status[0] = run_micro_batch(t, set, par, k, 0, count_correct, &stats[0]);
    } else {
        /* A replica's own parallel regions are nested in this one, so they run
         * on its thread alone. */
#pragma omp parallel for schedule(static, 1) num_threads(count)
        for (int r = 0; r < count; r++)
            status[r] = run_micro_batch(t, set, par, k, r, count_correct, &stats[r]);
    }
    for (int r = 0; r < count; r++)
        if (status[r] != EXIT_OK) return status[r];
    cli_parallel_add(par, k, count, set->params, stats);
    return EXIT_OK;
}

/* One step: this rank's micro-batches, the sums over the ranks, the update. A
 * failure of this rank alone ends every rank (cli_ranks_abort); the others
 * cannot leave the collective they wait in. */
static int take_step(const cli_trainer *t, const replica_set *set, cli_parallel *par,
                     const uint8_t *decay, bool count, cli_step_stats *s, int *stop,
                     double *norm)
{
    const cli_train_options *o = t->train;
    const int64_t step = *t->step;
    for (int k = 0; k < par->accumulate; k += set->count) {
        int status = run_wave(t, set, par, k, set->count, count);
        if (status != EXIT_OK) {
            cli_ranks_abort(t->ranks, status);
            return status;
        }
    }
    *stop = cli_interrupt_status();
    cli_parallel_reduce(par, s, stop);
    /* Every rank has the same loss and norm, so all refuse a diverged step: the
     * caller sees a loss or norm that is not finite, and the step not taken. */
    *norm = NAN;
    if (!isfinite(s->loss)) return EXIT_OK;
    float lr = attn_lr_warmup_cosine(step, o->warmup, o->steps, o->lr, o->min_lr);
    int status =
        cli_parallel_update(par, o->clip > 0 ? o->clip : INFINITY, t->opt, decay, lr, norm);
    if (status != EXIT_OK) {
        cli_ranks_abort(t->ranks, status);
        return status;
    }
    if (isfinite(*norm)) *t->step = step + 1;
    return EXIT_OK;
}

int cli_train(const cli_trainer *t)
{
    const cli_train_ops *ops = t->ops;
    const cli_train_options *o = t->train;
    const bool root = t->ranks->rank == 0;
    t->ranks->in_loop = true;
    int status = check_ranks_agree(t);
    if (status != EXIT_OK) return status;
    cli_parallel par;
    status = cli_parallel_init(&par, t->ranks, t->accumulate, t->replicas, t->zero, o->batch,
                               t->params, t->buffers, t->opt);
    if (status != EXIT_OK) return status;
    replica_set replicas;
    if ((status = make_replicas(t, &replicas)) != EXIT_OK) {
        cli_parallel_free(&par);
        return status;
    }
    uint8_t *decay = NULL;
    if (ops->decay_matrices_only && (decay = matrices_mask(t->params)) == NULL) {
        fprintf(stderr, "attn train: out of memory\n");
        free_replicas(t, &replicas);
        cli_parallel_free(&par);
        return EXIT_RUNTIME;
    }
    int64_t last = t->stop_at && t->stop_at < o->steps ? t->stop_at : o->steps;
    cli_progress progress;
    cli_progress_init(&progress, *t->step, o->steps);
    if (!root) progress.active = false;
    cli_train_window w = {0};
    cli_train_totals totals = {.last_loss = NAN,
                               .ranks = t->ranks->size,
                               .accumulate = t->accumulate,
                               .replicas = t->replicas};
    double loop_start = cli_now();
    bool saved = false; /* the checkpoint holds the current step */
    int stop = 0;       /* a rank's signal: all stop after this step, with its status */
    const char *last_good = t->resumed_from;
    while (*t->step < last && !stop) {
        double start = cli_now();
        cli_step_stats s;
        double norm;
        status = take_step(t, &replicas, &par, decay, progress.active, &s, &stop, &norm);
        if (status == EXIT_OK && (!isfinite(s.loss) || !isfinite(norm))) {
            cli_progress_clear(&progress);
            status = root ? diverged(*t->step, s.loss, norm, last_good) : EXIT_RUNTIME;
        }
        if (status != EXIT_OK) break;
        const int64_t step = *t->step;
        saved = false;
        double seconds = cli_now() - start;
        add_step(&w, &s, seconds);
        if (totals.steps++ == 0) totals.first_step_seconds = seconds;
        totals.step_seconds += seconds;
        totals.tokens += s.tokens;
        totals.last_loss = s.loss;
        if (progress.active)
            cli_progress_update(&progress, step, (float)(w.loss / w.loss_weight),
                                (float)(w.correct / w.predicted), w.tokens / w.seconds);
        /* eval_every 0 (a language model's timing runs): only at the end. */
        if ((o->eval_every > 0 && step % o->eval_every == 0) || step == o->steps) {
            if (root) {
                if ((status = ops->validate(t->run))) cli_ranks_abort(t->ranks, status);
                cli_progress_clear(&progress);
                print_validation(t, &w);
            }
            if (status == EXIT_OK && (status = save(t, &par))) cli_ranks_abort(t->ranks, status);
            if (status) break;
            saved = true;
            last_good = t->out;
            w = (cli_train_window){0};
        }
    }
    cli_progress_clear(&progress);
    totals.loop_seconds = cli_now() - loop_start;
    totals.wait_seconds = par.wait_seconds;
    totals.exchange_seconds = par.exchange_seconds;
    free(decay);
    free_replicas(t, &replicas);
    if (status == EXIT_OK && !saved && (status = save(t, &par)))
        cli_ranks_abort(t->ranks, status);
    cli_parallel_free(&par);
    if (status != EXIT_OK) return status;
    if (stop || *t->step < o->steps) {
        if (root) return stopped(*t->step, o->steps, t->out, stop);
        return stop;
    }
    return root ? ops->finish(t->run, &totals, t->out) : EXIT_OK;
}
