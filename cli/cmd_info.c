/* attn info: what this build and this machine offer. */
#include <getopt.h>
#include <stdio.h>

#include "attn/attn.h"
#include "cli.h"

static void print_help(void)
{
    printf("usage: attn info [--json]\n"
           "\n"
           "Prints the version, the CPU features found, the thread count, the GEMM\n"
           "backends (float32 and bf16), the instruction set that all vector code runs (ATTN_SIMD) and the\n"
           "MPI that attn train runs data-parallel on under mpirun, if built with one.\n"
           "\n"
           "  --json      machine-readable output\n"
           "  -h, --help  this help\n");
}

int cmd_info(int argc, char **argv)
{
    bool json;
    int status = cli_parse_json_and_help(argc, argv, "info", print_help, &json);
    if (status != CLI_CONTINUE) return status;
    if (optind < argc) return cli_usage_error("info", "unexpected argument '%s'", argv[optind]);

    attn_cpu_features cpu = attn_cpu_detect();
    char features[256];
    attn_cpu_describe(&cpu, features, sizeof features);
    int threads = attn_get_num_threads();
    const char *openmp = attn_built_with_openmp() ? "yes" : "no";
    const char *mpi = cli_mpi_library();
    if (json) {
        printf("{\"version\": ");
        cli_json_string(stdout, ATTN_VERSION_STRING);
        printf(", \"cpu_features\": ");
        cli_json_string(stdout, features);
        printf(", \"threads\": %d, \"openmp\": %s, \"gemm\": ", threads,
               attn_built_with_openmp() ? "true" : "false");
        cli_json_string(stdout, attn_gemm_backend());
        printf(", \"gemm_bf16\": ");
        cli_json_string(stdout, attn_gemm_bf16_backend());
        printf(", \"simd\": ");
        cli_json_string(stdout, attn_simd_variant());
        printf(", \"attention_kernel\": ");
        cli_json_string(stdout, attn_sdpa_kernel());
        printf(", \"attention_kernel_bf16\": ");
        cli_json_string(stdout, attn_sdpa_bf16_kernel());
        printf(", \"mpi\": ");
        if (mpi)
            cli_json_string(stdout, mpi);
        else
            printf("null");
        printf("}\n");
        return EXIT_OK;
    }
    printf("attn %s\n", ATTN_VERSION_STRING);
    printf("cpu features  %s\n", features[0] ? features : "(none detected)");
    printf("threads       %d (OpenMP: %s; set with ATTN_NUM_THREADS)\n", threads, openmp);
    printf("gemm          %s\n", attn_gemm_backend());
    printf("gemm bf16     %s (attn_gemm, attn train --precision bf16)\n",
           attn_gemm_bf16_backend());
    /* One choice covers every vector loop, the attention kernel's included. */
    printf("simd          %s: all vector code (attention kernel, activations, RNN cells,\n"
           "              AdamW, additive scores); set with ATTN_SIMD=avx512bf16|avx512|avx2|scalar\n",
           attn_simd_variant());
    printf("bf16 attention %s\n", attn_sdpa_bf16_kernel());
    if (mpi)
        printf("mpi           %s: `mpirun -np N attn train ...` trains data-parallel\n", mpi);
    else
        printf("mpi           no: built without MPI, attn train runs in one process\n");
    return EXIT_OK;
}
