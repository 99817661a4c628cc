/* Data-parallel training steps (data_parallel.c), for the training loop.
 *
 * A step's batch of B rows, drawn from (seed, step) as always, is cut into
 * M = ranks x accumulate micro-batches of consecutive rows (B / M each, the
 * first B mod M one row more): rank r runs micro-batches r accumulate .. (r + 1)
 * accumulate - 1, one after the other, each a forward and backward pass from
 * zeroed gradients. Micro-batch m's loss is a mean over its n_m counted tokens,
 * so its gradient g_m weighs n_m / N in the batch's, N = sum n_m:
 *   grad = ((n_0 g_0 + n_1 g_1) + n_2 g_2 + ...) / N      (the sums in order m)
 * The ranks add their parts in rank order (ranks.h), so `mpirun -np N` and
 * `--accumulate N` in one process make the same sums, bit for bit, and the same
 * checkpoints. (With several micro-batches per rank each rank sums its own
 * first, so -np 2 --accumulate 2 matches --accumulate 4 only to rounding.)
 * Buffers (the REINFORCE baseline) start every micro-batch from the step's
 * value and end as the n_m-weighted mean of the micro-batches' new values.
 * Micro-batch m draws its dropout and samples from the seed + m 2^32, so
 * micro-batch 0 draws as an undivided batch does.
 *
 * With replicas (--replicas R) a rank runs its micro-batches R at a time, each
 * on a replica of the model on a thread of its own (the first replica is the
 * model itself; the others read its parameters' values), and adds them in the
 * same order: the sums, and so the checkpoints, are those of --accumulate R,
 * bit for bit.
 *
 * With zero (ZeRO stage 1), AdamW's moments are sharded: rank r keeps the
 * moments of its shard of the parameters, clips and updates only that shard
 * (the gradient norm from every shard's block sums is the norm of the whole,
 * attn/train.h), and the parameters are then gathered: the result is the
 * unsharded one, bit for bit, at 1 / ranks of the optimizer's memory. */
#ifndef ATTN_CLI_DATA_PARALLEL_H
#define ATTN_CLI_DATA_PARALLEL_H

#include "attn/attn.h"
#include "ranks.h"

/* One micro-batch of a step. */
typedef struct cli_micro_batch {
    int index;       /* m, from 0 */
    int first, rows; /* the rows of the step's batch it holds */
    uint64_t seed;   /* of its dropout and samples */
} cli_micro_batch;

/* What a micro-batch adds to the step's sums. */
typedef struct cli_step_stats {
    double loss;               /* the micro-batch's mean loss */
    double loss_weight;        /* its counted tokens: its weight in the step's mean */
    double correct, predicted; /* tokens predicted right, of those predicted */
    double tokens;             /* tokens processed, for the throughput */
} cli_step_stats;

typedef struct cli_parallel {
    cli_ranks ranks;
    int accumulate;    /* micro-batches per rank: --accumulate x --replicas */
    int replicas;      /* of them run at a time */
    int micro_batches; /* of a step, over every rank */
    bool sharded;      /* ZeRO-1 with more than one rank: opt holds this rank's shard */
    attn_params *params, *buffers;
    size_t *shard;       /* (ranks + 1): rank k's parameters are [shard[k], shard[k + 1]) */
    float *sum;          /* (parameters) the weighted gradients (several micro-batches) */
    float *scratch;      /* (ranks x the largest shard) the reduce-scatter's */
    double *block_sums;  /* (attn_norm_blocks(parameters)) the gradient's, sharded */
    float *buffers_step; /* (buffers) their value at the step's start */
    double *gathered;    /* (ranks x shared values) the sums every rank sends */
    double *local;       /* (shared values) this rank's sums of the step */
    cli_step_stats only; /* a step of one micro-batch: its stats, as they are */
    double wait_seconds;     /* waiting for the other ranks to finish their passes */
    double exchange_seconds; /* in the ranks' collectives once all are there */
} cli_parallel;

/* Prepares the steps of a run of `batch` rows over the ranks, each running
 * accumulate x replicas micro-batches a step; with zero, opt (whole, as a
 * checkpoint holds it) becomes this rank's shard. Prints what is wrong (too few
 * rows) and returns an exit status. */
int cli_parallel_init(cli_parallel *p, const cli_ranks *ranks, int accumulate, int replicas,
                      bool zero, int64_t batch, attn_params *params, attn_params *buffers,
                      attn_adamw *opt);
void cli_parallel_free(cli_parallel *p);

/* This rank's k-th micro-batch of a step. */
cli_micro_batch cli_parallel_micro_batch(const cli_parallel *p, int k, int64_t batch,
                                         uint64_t seed);

/* Before this rank's k-th micro-batch, run by the model whose parameters are
 * `model` (p->params, or a replica's, whose values are p->params'): its
 * gradients zeroed, the buffers at the step's value. Replicas call it at the
 * same time for the micro-batches of a wave (each with its own model). */
void cli_parallel_begin(cli_parallel *p, int k, attn_params *model);
/* After micro-batches k .. k + count - 1 (a wave: micro-batch k + i run by the
 * model of parameters models[i], its stats s[i]): their weighted gradients and
 * buffers added to the step's, in micro-batch order. */
void cli_parallel_add(cli_parallel *p, int k, int count, attn_params *const *models,
                      const cli_step_stats *s);

/* After this rank's last micro-batch: the sums over every rank, so that every
 * rank holds the step's gradient (with sharded moments, only its shard's) and
 * buffers, and *s the step's mean loss and its sums. *stop is the status of a
 * signal this rank caught (0 for none) and becomes the highest of any rank's,
 * so that all stop after the same step. */
void cli_parallel_reduce(cli_parallel *p, cli_step_stats *s, int *stop);

/* Clips the step's gradient to max_norm, returning its norm (of the whole,
 * from every shard), then takes AdamW's step at lr; every rank ends with the
 * same parameters. An update that fails prints why and returns EXIT_RUNTIME. */
int cli_parallel_update(cli_parallel *p, double max_norm, attn_adamw *opt, const uint8_t *decay,
                        float lr, double *norm);

/* The optimizer's state as a checkpoint holds it: opt itself, or with sharded
 * moments a copy whole on rank 0 (gathered from every rank; NULL elsewhere),
 * freed by cli_parallel_release_whole. Every rank calls it. */
const attn_adamw *cli_parallel_whole_optimizer(const cli_parallel *p, const attn_adamw *opt,
                                               attn_adamw *whole);
void cli_parallel_release_whole(const cli_parallel *p, attn_adamw *whole);

#endif
