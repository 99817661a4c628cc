/* attn_bench_attention: speed of the fused attention kernels (src/kernels/flash*.c)
 * against the reference SDPA and against the machine's SGEMM rate, measured in the
 * same run.
 *
 *   attn_bench_attention [--lengths=128,256,...] [--dims=64,128] [--reference-max=1024]
 *                        [--threads=N] [--min-time=SECONDS]
 *
 * For B = 1, H = 8, every D and L, causal or not, it times the forward pass and
 * forward + backward (best of repeated runs lasting at least --min-time) and prints
 * ms, GFLOP/s (forward 4 B H L^2 D, backward 2.5 times that, both halved when
 * causal), the speed-up over the reference kernel (run only up to
 * --reference-max, it is slow), the fraction of the SGEMM rate (attn_sgemm on
 * 2048^3), and the scratch memory the fused kernel allocates beyond its inputs
 * and outputs. The instruction set follows ATTN_SIMD as in the library. */
#define _POSIX_C_SOURCE 200112L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn.h"
#include "kernels/flash.h"

enum { MAX_LIST = 32, BATCH = 1, HEADS = 8, GEMM_SIZE = 2048 };

typedef struct options {
    int lengths[MAX_LIST], length_count;
    int dims[MAX_LIST], dim_count;
    int reference_max;
    int threads;
    double min_time;
} options;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "a,b,c" into list; false on a malformed or too long list. */
static bool parse_list(const char *text, int *list, int *count)
{
    *count = 0;
    while (*text != '\0') {
        char *end;
        long value = strtol(text, &end, 10);
        if (end == text || value < 1 || value > 1 << 20 || *count == MAX_LIST) return false;
        list[(*count)++] = (int)value;
        text = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0') return false;
    }
    return *count > 0;
}

static int usage(const char *program)
{
    fprintf(stderr,
            "usage: %s [--lengths=128,256,...] [--dims=64,128] [--reference-max=N]\n"
            "          [--threads=N] [--min-time=SECONDS]\n",
            program);
    return 2;
}

static bool parse_options(int argc, char **argv, options *opt)
{
    static const int default_lengths[] = {128, 256, 512, 1024, 2048, 4096, 8192, 16384};
    memcpy(opt->lengths, default_lengths, sizeof default_lengths);
    opt->length_count = sizeof default_lengths / sizeof default_lengths[0];
    opt->dims[0] = 64;
    opt->dims[1] = 128;
    opt->dim_count = 2;
    opt->reference_max = 1024;
    opt->threads = 0;
    opt->min_time = 0.5;
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--lengths=", 10) == 0) {
            if (!parse_list(arg + 10, opt->lengths, &opt->length_count)) return false;
        } else if (strncmp(arg, "--dims=", 7) == 0) {
            if (!parse_list(arg + 7, opt->dims, &opt->dim_count)) return false;
        } else if (strncmp(arg, "--reference-max=", 16) == 0) {
            opt->reference_max = atoi(arg + 16);
        } else if (strncmp(arg, "--threads=", 10) == 0) {
            opt->threads = atoi(arg + 10);
            if (opt->threads < 1) return false;
        } else if (strncmp(arg, "--min-time=", 11) == 0) {
            opt->min_time = atof(arg + 11);
        } else {
            return false;
        }
    }
    return true;
}

static float *random_array(attn_rng *rng, size_t n)
{
    float *x = malloc(n * sizeof *x);
    if (x == NULL) {
        fprintf(stderr, "out of memory for %zu floats\n", n);
        exit(1);
    }
    attn_rng_fill_uniform(rng, x, n, -1.0f, 1.0f);
    return x;
}

static void check(attn_status status)
{
    if (status == ATTN_OK) return;
    fprintf(stderr, "attention failed: %s\n", attn_last_error());
    exit(1);
}

/* GFLOP/s of attn_sgemm on GEMM_SIZE^3, best of three. */
static double gemm_rate(void)
{
    const size_t n = GEMM_SIZE;
    attn_rng rng;
    attn_rng_init(&rng, 1);
    float *a = random_array(&rng, n * n), *b = random_array(&rng, n * n),
          *c = random_array(&rng, n * n);
    double best = 1e30;
    for (int rep = 0; rep < 4; rep++) {
        double start = now();
        attn_sgemm(false, false, GEMM_SIZE, GEMM_SIZE, GEMM_SIZE, 1.0f, a, GEMM_SIZE, b, GEMM_SIZE,
                   0.0f, c, GEMM_SIZE);
        double t = now() - start;
        if (rep > 0 && t < best) best = t; /* the first run warms up */
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * (double)n * n * n / best * 1e-9;
}

typedef struct problem {
    attn_sdpa_config cfg;
    float *q, *k, *v, *dout, *out, *lse, *dq, *dk, *dv;
} problem;

typedef enum pass { FORWARD, FORWARD_BACKWARD } pass;
typedef enum kernel { FUSED, REFERENCE } kernel;

static void run_once(problem *p, pass which, kernel with)
{
    if (with == FUSED)
        check(attn_flash_forward(p->out, p->lse, p->q, p->k, p->v, &p->cfg));
    else
        check(attn_sdpa_reference_forward(p->out, p->lse, NULL, p->q, p->k, p->v, &p->cfg));
    if (which == FORWARD) return;
    if (with == FUSED)
        check(attn_flash_backward(p->dq, p->dk, p->dv, p->dout, p->q, p->k, p->v, p->out, p->lse,
                                  &p->cfg));
    else
        check(attn_sdpa_reference_backward(p->dq, p->dk, p->dv, p->dout, p->q, p->k, p->v, p->out, p->lse,
                                 &p->cfg));
}

/* Seconds per run: the best of runs lasting min_time in all (at least one; the
 * reference once). */
static double time_runs(problem *p, pass which, kernel with, double min_time)
{
    double best = 1e30, spent = 0.0;
    int runs = 0;
    do {
        double start = now();
        run_once(p, which, with);
        double t = now() - start;
        if (t < best) best = t;
        spent += t;
        runs++;
    } while (with == FUSED && (spent < min_time || runs < 2));
    return best;
}

int main(int argc, char **argv)
{
    options opt;
    if (!parse_options(argc, argv, &opt)) return usage(argv[0]);
    if (opt.threads > 0) check(attn_set_num_threads(opt.threads));
    const int threads = attn_get_num_threads();
    const double gemm = gemm_rate();
    printf("fused attention: %s kernels, %d threads; GEMM %s: %.0f GFLOP/s on %d^3\n",
           attn_flash_variant(), threads, attn_gemm_backend(), gemm, GEMM_SIZE);
    printf("B=%d H=%d; GFLOP/s counts forward 4 B H L^2 D, backward 2.5x that, "
           "halved when causal\n\n",
           BATCH, HEADS);
    printf("%4s %6s %-6s %-8s %10s %9s %8s %7s %9s\n", "D", "L", "causal", "pass", "ms", "GFLOP/s",
           "x ref", "/ GEMM", "extra MiB");

    for (int di = 0; di < opt.dim_count; di++) {
        for (int li = 0; li < opt.length_count; li++) {
            const int D = opt.dims[di], L = opt.lengths[li];
            const size_t qn = (size_t)BATCH * HEADS * L * D, rows = (size_t)BATCH * HEADS * L;
            problem p = {.cfg = {.batch = BATCH,
                                 .heads = HEADS,
                                 .len_q = L,
                                 .len_k = L,
                                 .dim_qk = D,
                                 .dim_v = D}};
            attn_rng rng;
            attn_rng_init(&rng, (uint64_t)L * 1000 + (uint64_t)D);
            p.q = random_array(&rng, qn);
            p.k = random_array(&rng, qn);
            p.v = random_array(&rng, qn);
            p.dout = random_array(&rng, qn);
            p.out = random_array(&rng, qn);
            p.dq = random_array(&rng, qn);
            p.dk = random_array(&rng, qn);
            p.dv = random_array(&rng, qn);
            p.lse = random_array(&rng, rows);
            for (int causal = 0; causal <= 1; causal++) {
                p.cfg.causal = causal;
                for (int which = FORWARD; which <= FORWARD_BACKWARD; which++) {
                    double flop = 4.0 * BATCH * HEADS * (double)L * L * D;
                    if (which == FORWARD_BACKWARD) flop *= 3.5;
                    if (causal) flop /= 2;
                    double fused = time_runs(&p, (pass)which, FUSED, opt.min_time);
                    char vs_reference[16] = "-";
                    if (L <= opt.reference_max)
                        snprintf(vs_reference, sizeof vs_reference, "%.0f",
                                 time_runs(&p, (pass)which, REFERENCE, 0.0) / fused);
                    double rate = flop / fused * 1e-9;
                    double extra = (double)attn_flash_workspace_bytes(&p.cfg, threads,
                                                                      which == FORWARD_BACKWARD) /
                                   (1024.0 * 1024.0);
                    printf("%4d %6d %-6s %-8s %10.2f %9.1f %8s %7.2f %9.2f\n", D, L,
                           causal ? "yes" : "no", which == FORWARD ? "fwd" : "fwd+bwd", fused * 1e3,
                           rate, vs_reference, rate / gemm, extra);
                    fflush(stdout);
                }
            }
            float *arrays[] = {p.q, p.k, p.v, p.dout, p.out, p.dq, p.dk, p.dv, p.lse};
            for (size_t a = 0; a < sizeof arrays / sizeof arrays[0]; a++) free(arrays[a]);
        }
    }
    return 0;
}
