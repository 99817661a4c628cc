/* A run of one process (ranks.h), built when attn has no MPI. Every collective is
 * then the identity: the one rank's shard is the whole vector. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ranks.h"

const char *cli_mpi_library(void) { return NULL; }

int cli_ranks_join(cli_ranks *r)
{
    *r = (cli_ranks){.rank = 0, .size = 1, .local_size = 1};
    /* Under mpirun each copy would train the whole model and write the same file. */
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    if (size == NULL) size = getenv("PMI_SIZE");
    if (size && atoi(size) > 1) {
        fprintf(stderr,
                "attn train: started as one of %s MPI ranks, but this attn is built without "
                "MPI; rebuild it with Open MPI installed (scripts/setup.sh test installs "
                "libopenmpi-dev; `attn info` then names it)\n",
                size);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

void cli_ranks_leave(const cli_ranks *r) { (void)r; }

void cli_ranks_abort(const cli_ranks *r, int status)
{
    (void)r;
    (void)status;
}

void cli_ranks_wait_all(const cli_ranks *r) { (void)r; }

void cli_ranks_gather_doubles(const cli_ranks *r, const double *mine, int n, double *all)
{
    (void)r;
    memcpy(all, mine, (size_t)n * sizeof *all);
}

void cli_ranks_sum_shards(const cli_ranks *r, float *x, const size_t *first, float *scratch)
{
    (void)r, (void)x, (void)first, (void)scratch;
}

void cli_ranks_gather_shards(const cli_ranks *r, float *x, const size_t *first)
{
    (void)r, (void)x, (void)first;
}

void cli_ranks_gather_shards_to_root(const cli_ranks *r, const float *shard, float *whole,
                                     const size_t *first)
{
    (void)r;
    if (whole != shard) memcpy(whole, shard, first[1] * sizeof *whole);
}

void cli_ranks_gather_block_sums(const cli_ranks *r, double *sums, const size_t *first)
{
    (void)r, (void)sums, (void)first;
}
