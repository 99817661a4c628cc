/* The processes of one data-parallel training run (`mpirun -np N attn train`):
 * N ranks, each running the same attn with the same options. ranks_mpi.c joins
 * them through MPI when attn is built with it (-DATTN_MPI); ranks_single.c,
 * built otherwise, is the run of one process, and refuses to run under mpirun,
 * where N copies would each train the whole model into the same file.
 *
 * Every collective below is called by every rank, in the same order; a rank that
 * fails on its own calls cli_ranks_abort, which ends them all (the others may be
 * waiting in a collective, which they cannot leave). An error inside MPI ends
 * the job with MPI's message, so the collectives return nothing.
 * A vector of n elements is cut into shards, rank k's [first[k], first[k + 1])
 * with first: (size + 1) (data_parallel.h makes them of whole ATTN_NORM_BLOCK
 * blocks). */
#ifndef ATTN_CLI_RANKS_H
#define ATTN_CLI_RANKS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cli_ranks {
    int rank, size;  /* this process, of size (0 of 1 without MPI) */
    int local_size;  /* the ranks on this machine, which share its cores */
    /* Set when this rank enters the training loop (train_loop.h), where the ranks
     * end together: each either sees what ends the run or is ended by
     * cli_ranks_abort. Before, a rank's failure is its own. */
    bool in_loop;
} cli_ranks;

/* "Open MPI v4.1.4" (the library's own words, first line), or NULL when attn is
 * built without MPI. */
const char *cli_mpi_library(void);

/* Joins the run's ranks when mpirun started this process, else makes a run of
 * one. Prints why and returns EXIT_RUNTIME when it cannot (started by mpirun
 * without MPI built in, or MPI failing to start). */
int cli_ranks_join(cli_ranks *r);
/* Leaves the run; every rank waits here for the others, so none exits while
 * rank 0 still writes a checkpoint or its report. */
void cli_ranks_leave(const cli_ranks *r);
/* Ends every rank at once with status; returns only in a run of one. */
void cli_ranks_abort(const cli_ranks *r, int status);

/* Returns when every rank has called it. */
void cli_ranks_wait_all(const cli_ranks *r);

/* all: (size * n) every rank's mine: (n), rank by rank. */
void cli_ranks_gather_doubles(const cli_ranks *r, const double *mine, int n, double *all);

/* Reduce-scatter in rank order: x: (n) on every rank; afterwards this rank's
 * shard of x holds ((x_0 + x_1) + x_2) + ... of every rank's x there, the sum a
 * single process accumulating the same parts in the same order makes, bit for
 * bit; the rest of x is left as it was. scratch: (size * the largest shard). */
void cli_ranks_sum_shards(const cli_ranks *r, float *x, const size_t *first, float *scratch);
/* All-gather: every rank's shard of x: (n) to every rank. */
void cli_ranks_gather_shards(const cli_ranks *r, float *x, const size_t *first);
/* Gather to rank 0 alone: every rank's shard: (its size) into rank 0's whole: (n)
 * (NULL on the other ranks). */
void cli_ranks_gather_shards_to_root(const cli_ranks *r, const float *shard, float *whole,
                                     const size_t *first);
/* All-gather of each shard's block sums: sums: (attn_norm_blocks(n)), a shard's
 * first block at first[k] / ATTN_NORM_BLOCK. */
void cli_ranks_gather_block_sums(const cli_ranks *r, double *sums, const size_t *first);

#endif
