/* Data-parallel training steps (data_parallel.h): micro-batches, their weighted
 * sums in a fixed order over the ranks, and ZeRO-1's sharded update. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_parallel.h"
#include "cli.h"

/* The step's sums each rank sends, then its buffers' weighted values. */
enum { SUM_LOSS, SUM_WEIGHT, SUM_CORRECT, SUM_PREDICTED, SUM_TOKENS, SUM_STOP, SUMS };

static size_t shared_values(const cli_parallel *p)
{
    return SUMS + (p->buffers ? p->buffers->total : 0);
}

/* Shards of whole ATTN_NORM_BLOCK blocks, as even as they go: the first
 * blocks mod ranks shards one block more. */
static void cut_shards(size_t *first, int ranks, size_t n)
{
    const size_t blocks = attn_norm_blocks(n);
    for (int k = 0; k <= ranks; k++) {
        size_t b = blocks / (size_t)ranks * (size_t)k +
                   ((size_t)k < blocks % (size_t)ranks ? (size_t)k : blocks % (size_t)ranks);
        first[k] = b * ATTN_NORM_BLOCK < n ? b * ATTN_NORM_BLOCK : n;
    }
}

/* Replaces the whole optimizer by this rank's shard of it. */
static int shard_optimizer(const cli_parallel *p, attn_adamw *opt)
{
    const size_t lo = p->shard[p->ranks.rank], count = p->shard[p->ranks.rank + 1] - lo;
    attn_adamw shard;
    if (attn_adamw_init(&shard, count, &opt->cfg) != ATTN_OK) return cli_fail("train");
    memcpy(shard.m, opt->m + lo, count * sizeof *shard.m);
    memcpy(shard.v, opt->v + lo, count * sizeof *shard.v);
    shard.step = opt->step;
    attn_adamw_free(opt);
    *opt = shard;
    return EXIT_OK;
}

int cli_parallel_init(cli_parallel *p, const cli_ranks *ranks, int accumulate, int replicas,
                      bool zero, int64_t batch, attn_params *params, attn_params *buffers,
                      attn_adamw *opt)
{
    *p = (cli_parallel){.ranks = *ranks,
                        .accumulate = accumulate * replicas,
                        .replicas = replicas,
                        .micro_batches = ranks->size * accumulate * replicas,
                        .sharded = zero && ranks->size > 1,
                        .params = params,
                        .buffers = buffers && buffers->total > 0 ? buffers : NULL};
    if (batch < p->micro_batches) {
        char by_replicas[32] = "";
        if (replicas > 1) snprintf(by_replicas, sizeof by_replicas, " x --replicas %d", replicas);
        if (ranks->rank == 0)
            fprintf(stderr,
                    "attn train: --batch %lld cannot be cut into %d micro-batches (%d ranks x "
                    "--accumulate %d%s): each needs a row at least\n",
                    (long long)batch, p->micro_batches, ranks->size, accumulate, by_replicas);
        return EXIT_USAGE;
    }
    const int P = ranks->size;
    const size_t n = params->total;
    if (p->sharded && attn_norm_blocks(n) < (size_t)P) {
        if (ranks->rank == 0)
            fprintf(stderr,
                    "attn train: --zero 1 gives each rank a shard of whole blocks of %d "
                    "parameters, and this model's %zu make %zu, fewer than the %d ranks; run "
                    "it without --zero\n",
                    ATTN_NORM_BLOCK, n, attn_norm_blocks(n), P);
        return EXIT_USAGE;
    }
    p->shard = malloc(((size_t)P + 1) * sizeof *p->shard);
    if (p->shard == NULL) goto out_of_memory;
    cut_shards(p->shard, P, n);
    size_t largest = 0;
    for (int k = 0; k < P; k++)
        if (p->shard[k + 1] - p->shard[k] > largest) largest = p->shard[k + 1] - p->shard[k];
    if (p->micro_batches > 1 && (p->sum = malloc(n * sizeof *p->sum)) == NULL) goto out_of_memory;
    if (P > 1 && (p->scratch = malloc((size_t)P * largest * sizeof *p->scratch)) == NULL)
        goto out_of_memory;
    if (p->sharded &&
        (p->block_sums = malloc(attn_norm_blocks(n) * sizeof *p->block_sums)) == NULL)
        goto out_of_memory;
    if (p->buffers &&
        (p->buffers_step = malloc(p->buffers->total * sizeof *p->buffers_step)) == NULL)
        goto out_of_memory;
    if ((p->local = malloc(shared_values(p) * sizeof *p->local)) == NULL ||
        (p->gathered = malloc((size_t)P * shared_values(p) * sizeof *p->gathered)) == NULL)
        goto out_of_memory;
    if (p->sharded) return shard_optimizer(p, opt);
    return EXIT_OK;
out_of_memory:
    cli_parallel_free(p);
    fprintf(stderr, "attn train: out of memory for the gradients' sums\n");
    return EXIT_RUNTIME;
}

void cli_parallel_free(cli_parallel *p)
{
    free(p->shard);
    free(p->sum);
    free(p->scratch);
    free(p->block_sums);
    free(p->buffers_step);
    free(p->local);
    free(p->gathered);
    memset(p, 0, sizeof *p);
}

cli_micro_batch cli_parallel_micro_batch(const cli_parallel *p, int k, int64_t batch,
                                         uint64_t seed)
{
    const int m = p->ranks.rank * p->accumulate + k, M = p->micro_batches;
    const int64_t rows = batch / M, longer = batch % M;
    const int64_t first = rows * m + (m < longer ? m : longer);
    return (cli_micro_batch){.index = m,
                             .first = (int)first,
                             .rows = (int)(rows + (m < longer)),
                             .seed = seed + ((uint64_t)m << 32)};
}

void cli_parallel_begin(cli_parallel *p, int k, attn_params *model)
{
    attn_params_zero_grad(model);
    if (k == 0) memset(p->local, 0, shared_values(p) * sizeof *p->local);
    if (p->buffers == NULL || p->micro_batches == 1) return;
    float *value = p->buffers->data;
    const size_t count = p->buffers->total * sizeof *value;
    if (k == 0)
        memcpy(p->buffers_step, value, count);
    else
        memcpy(value, p->buffers_step, count);
}

void cli_parallel_add(cli_parallel *p, int k, int count, attn_params *const *models,
                      const cli_step_stats *s)
{
    double *local = p->local;
    for (int i = 0; i < count; i++) {
        local[SUM_LOSS] += s[i].loss * s[i].loss_weight;
        local[SUM_WEIGHT] += s[i].loss_weight;
        local[SUM_CORRECT] += s[i].correct;
        local[SUM_PREDICTED] += s[i].predicted;
        local[SUM_TOKENS] += s[i].tokens;
    }
    if (p->micro_batches == 1) {
        p->only = s[0];
        return;
    }
    /* Each sum gets the micro-batches' terms in their order, whichever thread
     * adds its element: every loop below splits the elements alike, so a thread
     * goes on with its own without waiting. The weights are counts of tokens:
     * exact as floats. */
    const ptrdiff_t n = (ptrdiff_t)p->params->total;
    float *sum = p->sum;
#pragma omp parallel num_threads(attn_get_num_threads()) if (n >= 1 << 15)
    for (int i = 0; i < count; i++) {
        const float w = (float)s[i].loss_weight, *g = models[i]->grad;
        if (k + i == 0) {
#pragma omp for schedule(static) nowait
            for (ptrdiff_t e = 0; e < n; e++) sum[e] = w * g[e];
        } else {
#pragma omp for schedule(static) nowait
            for (ptrdiff_t e = 0; e < n; e++) sum[e] += w * g[e];
        }
    }
    if (p->buffers)
        for (int i = 0; i < count; i++)
            for (size_t j = 0; j < p->buffers->total; j++)
                local[SUMS + j] += s[i].loss_weight * p->buffers->data[j];
}

void cli_parallel_reduce(cli_parallel *p, cli_step_stats *s, int *stop)
{
    /* One micro-batch in one process: nothing to add, and the loss stays as the
     * model computed it (not a mean of one made from a product and a quotient). */
    if (p->micro_batches == 1) {
        *s = p->only;
        return;
    }
    const int P = p->ranks.size, me = p->ranks.rank;
    const size_t values = shared_values(p);
    double *local = p->local, *total = p->gathered;
    local[SUM_STOP] = *stop;
    /* The time a rank waits for slower ones is not the exchange's: it is told
     * apart, at the cost of a barrier (microseconds). */
    double start = cli_now();
    cli_ranks_wait_all(&p->ranks);
    p->wait_seconds += cli_now() - start;
    start = cli_now();
    cli_ranks_gather_doubles(&p->ranks, local, (int)values, total);
    /* total[0 .. values) becomes the sums over the ranks, in rank order (the
     * signal: the highest). */
    for (int k = 1; k < P; k++) {
        const double *rank = total + (size_t)k * values;
        for (size_t j = 0; j < values; j++)
            total[j] = j == SUM_STOP ? fmax(total[j], rank[j]) : total[j] + rank[j];
    }
    const double weight = total[SUM_WEIGHT];
    *s = (cli_step_stats){.loss = total[SUM_LOSS] / weight,
                          .loss_weight = weight,
                          .correct = total[SUM_CORRECT],
                          .predicted = total[SUM_PREDICTED],
                          .tokens = total[SUM_TOKENS]};
    *stop = (int)total[SUM_STOP];
    if (p->buffers)
        for (size_t j = 0; j < p->buffers->total; j++)
            p->buffers->data[j] = (float)(total[SUMS + j] / weight);
    /* The gradient: the ranks' weighted sums added in rank order, over N. Only
     * this rank's shard is summed; the others are gathered unless sharded. */
    cli_ranks_sum_shards(&p->ranks, p->sum, p->shard, p->scratch);
    const float N = (float)weight;
    float *grad = p->params->grad;
    const float *sum = p->sum;
    const ptrdiff_t first = (ptrdiff_t)p->shard[me], end = (ptrdiff_t)p->shard[me + 1];
#pragma omp parallel for schedule(static) num_threads(attn_get_num_threads()) \
    if (end - first >= 1 << 15)
    for (ptrdiff_t i = first; i < end; i++) grad[i] = sum[i] / N;
    if (!p->sharded) cli_ranks_gather_shards(&p->ranks, grad, p->shard);
    p->exchange_seconds += cli_now() - start;
}

int cli_parallel_update(cli_parallel *p, double max_norm, attn_adamw *opt, const uint8_t *decay,
                        float lr, double *norm)
{
    float *data = p->params->data, *grad = p->params->grad;
    if (!p->sharded) {
        *norm = attn_clip_grad_norm(grad, p->params->total, max_norm);
        if (!isfinite(*norm)) return EXIT_OK; /* the caller refuses the step */
        if (attn_adamw_step(opt, data, grad, decay, lr) != ATTN_OK) return cli_fail("train");
        return EXIT_OK;
    }
    const size_t lo = p->shard[p->ranks.rank], count = p->shard[p->ranks.rank + 1] - lo;
    attn_square_sums(grad + lo, count, p->block_sums + lo / ATTN_NORM_BLOCK);
    double start = cli_now();
    cli_ranks_gather_block_sums(&p->ranks, p->block_sums, p->shard);
    p->exchange_seconds += cli_now() - start;
    *norm = attn_norm_of_sums(p->block_sums, attn_norm_blocks(p->params->total));
    if (!isfinite(*norm)) return EXIT_OK;
    attn_clip_to_norm(grad + lo, count, *norm, max_norm);
    if (attn_adamw_step(opt, data + lo, grad + lo, decay ? decay + lo : NULL, lr) != ATTN_OK)
        return cli_fail("train");
    start = cli_now();
    cli_ranks_gather_shards(&p->ranks, data, p->shard);
    p->exchange_seconds += cli_now() - start;
    return EXIT_OK;
}

const attn_adamw *cli_parallel_whole_optimizer(const cli_parallel *p, const attn_adamw *opt,
                                               attn_adamw *whole)
{
    if (!p->sharded) return opt;
    const bool root = p->ranks.rank == 0;
    memset(whole, 0, sizeof *whole);
    /* Every rank takes part in the gathers, whether rank 0 could allocate or not. */
    bool ready = root && attn_adamw_init(whole, p->params->total, &opt->cfg) == ATTN_OK;
    if (root && !ready) {
        fprintf(stderr, "attn train: out of memory for the optimizer's state\n");
        cli_ranks_abort(&p->ranks, EXIT_RUNTIME);
    }
    cli_ranks_gather_shards_to_root(&p->ranks, opt->m, root ? whole->m : NULL, p->shard);
    cli_ranks_gather_shards_to_root(&p->ranks, opt->v, root ? whole->v : NULL, p->shard);
    if (!root) return NULL;
    whole->step = opt->step;
    return whole;
}

void cli_parallel_release_whole(const cli_parallel *p, attn_adamw *whole)
{
    if (p->sharded) attn_adamw_free(whole);
}
