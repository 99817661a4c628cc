/* attn: the command-line tool. Dispatches to one command per file. */
#define _POSIX_C_SOURCE 200809L /* setenv, execv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "attn/attn.h"
#include "cli.h"

static const cli_command commands[] = {
    {"analyze", "entropy, rollout and alignment of recorded attention", cmd_analyze},
    {"bench", "time the attention kernel and the MultiheadAttention module", cmd_bench},
    {"data", "print a built-in task's examples or a text's training windows", cmd_data},
    {"demo", "run the seed's multi-head attention on an example sentence", cmd_demo},
    {"eval", "exact-match accuracy of a trained model on its task", cmd_eval},
    {"export", "write a trained model's state_dict as safetensors, float32 or bf16",
     cmd_export},
    {"generate", "continue a text with a trained language model", cmd_generate},
    {"info", "version, CPU features, threads, GEMM backend, attention kernel", cmd_info},
    {"show", "draw recorded attention as a heatmap: PNG, SVG or PDF", cmd_show},
    {"train", "train a sequence model on a built-in task, or a language model on text",
     cmd_train},
    {"translate", "run a trained model on texts and show what it attends to", cmd_translate},
};
enum { COMMAND_COUNT = sizeof commands / sizeof commands[0] };

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: attn <command> [options]\n"
            "\n"
            "Attention mechanisms of deep learning, fast on a CPU.\n"
            "\n"
            "commands:\n");
    for (int i = 0; i < COMMAND_COUNT; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "options:\n"
            "  -h, --help     this help; 'attn <command> --help' for a command's\n"
            "  -V, --version  the version\n"
            "\n"
            "Exit status: 0 ok, 1 runtime error, 2 usage error.\n");
}

/* OpenMP's threads spin while they wait for work by default. When another
 * process holds a core, a training step's many short parallel regions then wait
 * on threads that are not running, and a step takes tens of times longer (a
 * 6-second run took 150). Waiting passively costs a few microseconds a region.
 * A decoding step is the exception: its 50-odd regions come microseconds apart,
 * and waking a sleeping thread for each cost more than their work (bf16 decoding
 * at context 1024 ran at 690 tokens/s passive, 1,155 with threads that spin
 * about ten microseconds, libgomp's GOMP_SPINCOUNT of 1000, before they sleep;
 * with another process holding a core it drops from 540 to 342, where a longer
 * spin drops by far more). So `attn generate` spins that briefly.
 * libgomp reads these once, as the process starts, so unless the user set
 * either (OMP_WAIT_POLICY or GOMP_SPINCOUNT) the tool sets them and starts itself
 * again; if that fails it goes on. */
static void set_wait_policy(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") != NULL || getenv("GOMP_SPINCOUNT") != NULL ||
        setenv("OMP_WAIT_POLICY", "passive", 1) != 0)
        return;
    if (argv[1] != NULL && strcmp(argv[1], "generate") == 0 &&
        setenv("GOMP_SPINCOUNT", "1000", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
}

/* glibc gives a block past its mmap threshold a mapping of its own and hands the
 * free top of the heap back to the system past its trim threshold, so memory
 * freed and asked for again comes back as fresh pages, each faulted in and
 * cleared. Uncached generation meets this at every step: the pass has one row
 * more than the last, so oneDNN makes primitives for the new shapes and
 * allocates buffers of new sizes (at context 64, 4 brk calls and about 300 page
 * faults a step, decoding 98 to 104 tokens/s; with both thresholds at 1 GiB, 14
 * brk calls in all, and 129 to 134 tokens/s; either threshold alone left the
 * faults as they were). Training and cached decoding, whose shapes repeat, ran
 * the same. So the tool keeps freed memory for reuse. bench/torch_setup.py gives
 * PyTorch the same settings (GLIBC_TUNABLES), whose uncached generation they
 * left at 105 to 110 tokens/s. The user's own GLIBC_TUNABLES comes first. */
static void keep_freed_memory(void)
{
#ifdef __GLIBC__
    if (getenv("GLIBC_TUNABLES") != NULL) return;
    (void)mallopt(M_MMAP_THRESHOLD, 1 << 30);
    (void)mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

int main(int argc, char **argv)
{
    set_wait_policy(argv);
    keep_freed_memory();
    if (argc < 2) {
        print_help(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        print_help(stdout);
        return EXIT_OK;
    }
    if (strcmp(name, "-V") == 0 || strcmp(name, "--version") == 0) {
        printf("attn %s\n", ATTN_VERSION_STRING);
        return EXIT_OK;
    }
    if (attn_check_environment() != ATTN_OK) {
        fprintf(stderr, "attn: %s\n", attn_last_error());
        return EXIT_USAGE;
    }
    for (int i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(name, commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "attn: unknown command '%s'\nTry 'attn --help'.\n", name);
    return EXIT_USAGE;
}
