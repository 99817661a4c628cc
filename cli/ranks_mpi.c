/* The ranks of a data-parallel run through MPI (ranks.h). Built with -DATTN_MPI
 * when CMake finds an MPI; ranks_single.c otherwise.
 *
 * The sums are made in rank order by attn itself rather than by MPI_Allreduce,
 * whose order of additions is MPI's to choose (a tree, a ring, by message size):
 * the shards of every rank go to the shard's owner (MPI_Alltoallv), which adds
 * them in rank order, and the sums go back to every rank (MPI_Allgatherv). That
 * moves what a ring all-reduce moves, 2 (N - 1) / N of the vector per rank, and
 * makes the sum of N ranks the sum a single process accumulating the same N
 * parts makes, bit for bit. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"
#include "ranks.h"

const char *cli_mpi_library(void)
{
    static char name[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    if (name[0] == '\0' && MPI_Get_library_version(name, &length) == MPI_SUCCESS) {
        name[strcspn(name, ",\n")] = '\0'; /* "Open MPI v4.1.4, package: ..." */
    }
    return name;
}

/* Whether a launcher (mpirun, mpiexec, srun) started this process as a rank. */
static bool launched_as_rank(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

int cli_ranks_join(cli_ranks *r)
{
    *r = (cli_ranks){.rank = 0, .size = 1, .local_size = 1};
    /* A plain `attn train` starts no MPI: a singleton would cost a runtime's start-up. */
    if (!launched_as_rank()) return EXIT_OK;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "attn train: MPI failed to start\n");
        return EXIT_RUNTIME;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &r->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &r->size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &r->local_size);
    MPI_Comm_free(&local);
    return EXIT_OK;
}

static bool joined(void)
{
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    return initialized && !finalized;
}

void cli_ranks_leave(const cli_ranks *r)
{
    if (!joined()) return;
    /* MPI_Finalize need not wait for the other ranks; the barrier does. */
    if (r->size > 1) MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
}

void cli_ranks_abort(const cli_ranks *r, int status)
{
    if (r->size > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
}

void cli_ranks_wait_all(const cli_ranks *r)
{
    if (r->size > 1) MPI_Barrier(MPI_COMM_WORLD);
}

void cli_ranks_gather_doubles(const cli_ranks *r, const double *mine, int n, double *all)
{
    if (r->size == 1) {
        memcpy(all, mine, (size_t)n * sizeof *all);
        return;
    }
    MPI_Allgather(mine, n, MPI_DOUBLE, all, n, MPI_DOUBLE, MPI_COMM_WORLD);
}

/* counts, displs: (size) of the shards, in elements of `unit` values each
 * (rounded up: the last block of the last shard may be partial). */
static void shard_counts(const cli_ranks *r, const size_t *first, size_t unit, int *counts,
                         int *displs)
{
    for (int k = 0; k < r->size; k++) {
        displs[k] = (int)(first[k] / unit);
        counts[k] = (int)((first[k + 1] - first[k] + unit - 1) / unit);
    }
}

/* The MPI counts of a collective: (2 size) ints, or the job ends. */
static int *count_arrays(const cli_ranks *r)
{
    int *a = malloc(2 * (size_t)r->size * sizeof *a);
    if (a == NULL) {
        fprintf(stderr, "attn train: out of memory\n");
        cli_ranks_abort(r, EXIT_RUNTIME);
    }
    return a;
}

void cli_ranks_sum_shards(const cli_ranks *r, float *x, const size_t *first, float *scratch)
{
    if (r->size == 1) return;
    const int P = r->size, me = r->rank;
    int *send = count_arrays(r), *recv = count_arrays(r);
    shard_counts(r, first, 1, send, send + P);
    const int mine = send[me];
    for (int k = 0; k < P; k++) {
        recv[k] = mine;
        recv[P + k] = k * mine;
    }
    MPI_Alltoallv(x, send, send + P, MPI_FLOAT, scratch, recv, recv + P, MPI_FLOAT,
                  MPI_COMM_WORLD);
    float *out = x + first[me];
    memcpy(out, scratch, (size_t)mine * sizeof *out);
    for (int k = 1; k < P; k++) {
        const float *part = scratch + (size_t)k * (size_t)mine;
        for (int i = 0; i < mine; i++) out[i] += part[i];
    }
    free(send);
    free(recv);
}

void cli_ranks_gather_shards(const cli_ranks *r, float *x, const size_t *first)
{
    if (r->size == 1) return;
    int *c = count_arrays(r);
    shard_counts(r, first, 1, c, c + r->size);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, c, c + r->size, MPI_FLOAT,
                   MPI_COMM_WORLD);
    free(c);
}

void cli_ranks_gather_shards_to_root(const cli_ranks *r, const float *shard, float *whole,
                                     const size_t *first)
{
    if (r->size == 1) {
        if (whole != shard) memcpy(whole, shard, first[1] * sizeof *whole);
        return;
    }
    int *c = count_arrays(r);
    shard_counts(r, first, 1, c, c + r->size);
    MPI_Gatherv(shard, c[r->rank], MPI_FLOAT, whole, c, c + r->size, MPI_FLOAT, 0,
                MPI_COMM_WORLD);
    free(c);
}

void cli_ranks_gather_block_sums(const cli_ranks *r, double *sums, const size_t *first)
{
    if (r->size == 1) return;
    int *c = count_arrays(r);
    shard_counts(r, first, ATTN_NORM_BLOCK, c, c + r->size);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, sums, c, c + r->size, MPI_DOUBLE,
                   MPI_COMM_WORLD);
    free(c);
}
