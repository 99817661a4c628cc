/* attn bench: how fast the attention kernels and modules run on this machine.
 *
 *   attn bench attention  the fused SDPA kernel, forward and forward+backward, against
 *                         the reference kernel and the SGEMM rate of the same run
 *                         (--precision bf16: the bf16 kernel beside the float32 one)
 *   attn bench mha        attn_mha (torch.nn.MultiheadAttention), self-attention
 *   attn bench memory     the memory read rate, and decoding's product at that size
 *   attn bench gemm       the matrix product's rate in float32 and in bf16
 *
 * Each time is the best of repeated runs lasting --min-time seconds in all (at least
 * two runs; the reference kernel once, it is slow). The machine may be shared, so
 * only ratios within one run mean much; bench/compare.py puts these numbers beside
 * PyTorch's measured in the same run. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, sysconf */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attn/attn.h"
#include "cli.h"

enum { MAX_LIST = 32, MAX_LENGTH = 1 << 20, MAX_DIM = 4096, MAX_COUNT = 4096 };

/* ---- shared helpers ------------------------------------------------------------------ */

/* "a,b,c" of integers in [1, max] into list; false on anything else. */
static bool parse_list(const char *text, int *list, int *count, long max)
{
    *count = 0;
    for (const char *p = text;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        long value;
        if (n == 0 || n >= sizeof item || *count == MAX_LIST) return false;
        memcpy(item, p, n);
        item[n] = '\0';
        if (!cli_parse_int(item, 1, max, &value)) return false;
        list[(*count)++] = (int)value;
        if (comma == NULL) return true;
        p = comma + 1;
    }
}

/* A number of seconds in [0, 3600]. */
static bool parse_seconds(const char *text, double *out)
{
    char *end = NULL;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || !(value >= 0.0 && value <= 3600.0)) return false;
    *out = value;
    return true;
}

/* The options both benchmarks take; returns EXIT_OK, EXIT_USAGE (message printed)
 * or -1 if c is not one of them. */
typedef struct common_options {
    long threads; /* 0: the library's default */
    double min_time;
    bool json;
} common_options;

enum { OPT_THREADS = 1000, OPT_MIN_TIME, OPT_JSON, OPT_LENGTHS, OPT_DIMS, OPT_HEADS, OPT_BATCH,
       OPT_CAUSAL, OPT_PASS, OPT_REFERENCE_MAX, OPT_GEMM_SIZE, OPT_EMBED, OPT_PRECISION };

static int parse_common(int c, const char *command, common_options *o)
{
    switch (c) {
    case OPT_THREADS:
        if (!cli_parse_int(optarg, 1, 1024, &o->threads))
            return cli_usage_error(command, "--threads takes 1 to 1024, not '%s'", optarg);
        return EXIT_OK;
    case OPT_MIN_TIME:
        if (!parse_seconds(optarg, &o->min_time))
            return cli_usage_error(command, "--min-time takes 0 to 3600 seconds, not '%s'",
                                   optarg);
        return EXIT_OK;
    case OPT_JSON: o->json = true; return EXIT_OK;
    default: return -1;
    }
}

static int parse_list_option(const char *command, const char *name, long max, int *list,
                             int *count)
{
    if (!parse_list(optarg, list, count, max))
        return cli_usage_error(command,
                               "--%s takes up to %d comma-separated integers from 1 to %ld, "
                               "not '%s'",
                               name, MAX_LIST, max, optarg);
    return EXIT_OK;
}

static int unknown_option(const char *command, int c, char **argv)
{
    if (c == ':') return cli_usage_error(command, "option '%s' needs a value", argv[optind - 1]);
    return cli_usage_error(command, "unknown option '%s'", argv[optind - 1]);
}

/* Fails, with a message, when `bytes` more than the machine's physical memory: a
 * larger allocation may succeed under overcommit and then kill the process. */
static bool fits_in_memory(const char *command, double bytes)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double total = pages > 0 && page > 0 ? (double)pages * (double)page : INFINITY;
    if (bytes <= total) return true;
    fprintf(stderr, "attn %s: out of memory: the arrays need %.1f GiB, the machine has %.1f GiB\n",
            command, bytes / 1073741824.0, total / 1073741824.0);
    return false;
}

/* n floats uniform in [-1, 1), or NULL after printing a message. */
static float *random_floats(const char *command, attn_rng *rng, size_t n)
{
    float *x = n <= SIZE_MAX / sizeof *x ? malloc(n * sizeof *x) : NULL;
    if (x == NULL) {
        fprintf(stderr, "attn %s: out of memory for %zu floats\n", command, n);
        return NULL;
    }
    attn_rng_fill_uniform(rng, x, n, -1.0f, 1.0f);
    return x;
}

static int set_threads(const char *command, long threads)
{
    if (threads > 0 && attn_set_num_threads((int)threads) != ATTN_OK) return cli_fail(command);
    return EXIT_OK;
}

/* Said after the thread count when the library cannot use it. */
static const char *no_openmp_note(void)
{
    return attn_built_with_openmp() ? "" : " (built without OpenMP: runs on 1)";
}

/* One run of whatever is timed; returns a status. */
typedef attn_status (*bench_fn)(void *ctx);

/* The best time of runs lasting min_time seconds in all, at least `min_runs`. */
static attn_status time_best(bench_fn fn, void *ctx, double min_time, int min_runs,
                             double *seconds)
{
    double best = INFINITY, spent = 0.0;
    for (int runs = 0; runs < min_runs || spent < min_time; runs++) {
        double start = cli_now();
        attn_status s = fn(ctx);
        double t = cli_now() - start;
        if (s != ATTN_OK) return s;
        if (t < best) best = t;
        spent += t;
    }
    *seconds = best;
    return ATTN_OK;
}

/* ---- attn bench attention --------------------------------------------------------------- */

#define ATTENTION "bench attention"

typedef struct attention_options {
    common_options common;
    int lengths[MAX_LIST], length_count;
    int dims[MAX_LIST], dim_count;
    long heads, batch, reference_max, gemm_size;
    bool causal[2];  /* run non-causal [0], causal [1] */
    bool passes[2];  /* run forward [0], forward+backward [1] */
    bool bf16;       /* --precision bf16: the bf16 kernels beside float32's */
} attention_options;

static void attention_help(void)
{
    printf("usage: attn bench attention [options]\n"
           "\n"
           "Times the fused scaled dot-product attention kernel (attn_sdpa_forward and\n"
           "attn_sdpa_backward without weights) for every D and L, causal or not,\n"
           "forward and forward+backward, and prints per row: ms; GFLOP/s counting\n"
           "forward 4*B*H*L^2*D, backward 2.5x that, halved when causal; the speed-up\n"
           "over the reference kernel (x ref); the fraction of the SGEMM rate measured\n"
           "at the start of the same run (/ GEMM); and the memory needed beyond q, k, v,\n"
           "out and their gradients (attn_sdpa_workspace_bytes). The kernel's\n"
           "instruction set follows ATTN_SIMD, as in the library.\n"
           "With --precision bf16 each row times the float32 kernel and the bf16 one\n"
           "(attn_sdpa_bf16_forward / _backward) on the same values rounded to bf16, run\n"
           "by turns so that both see the same load of a shared machine, and\n"
           "prints both times, their ratio (x f32) and, apart, the time to round q, k, v\n"
           "(and dout) from float32 (conv ms), which the bf16 times exclude: a caller\n"
           "whose tensors are bf16 already does not pay it.\n"
           "\n"
           "  --lengths L,...      sequence lengths (default 128,256,...,16384)\n"
           "  --dims D,...         head dimensions (default 64,128)\n"
           "  --heads N            heads H (default 8)\n"
           "  --batch N            batch B (default 1)\n"
           "  --causal WHICH       both, yes or no (default both)\n"
           "  --pass WHICH         fwd, fwd+bwd or both (default both)\n"
           "  --reference-max L    time the reference kernel up to this length (default\n"
           "                       1024; 0 never)\n"
           "  --gemm-size N        the SGEMM rate is measured on N^3 (default 2048)\n"
           "  --precision P        float32 (default) or bf16 (bf16 beside float32)\n"
           "  --threads N          threads (default: ATTN_NUM_THREADS or OpenMP's)\n"
           "  --min-time S         seconds of runs per row, best one counts (default 0.5;\n"
           "                       0 runs each row twice)\n"
           "  --json               one JSON object per row, one per line\n"
           "  -h, --help           this help\n");
}

static int attention_parse(int argc, char **argv, attention_options *o)
{
    static const struct option options[] = {
        {"lengths", required_argument, NULL, OPT_LENGTHS},
        {"dims", required_argument, NULL, OPT_DIMS},
        {"heads", required_argument, NULL, OPT_HEADS},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"causal", required_argument, NULL, OPT_CAUSAL},
        {"pass", required_argument, NULL, OPT_PASS},
        {"reference-max", required_argument, NULL, OPT_REFERENCE_MAX},
        {"gemm-size", required_argument, NULL, OPT_GEMM_SIZE},
        {"precision", required_argument, NULL, OPT_PRECISION},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"min-time", required_argument, NULL, OPT_MIN_TIME},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const int default_lengths[] = {128, 256, 512, 1024, 2048, 4096, 8192, 16384};
    *o = (attention_options){.common = {.min_time = 0.5},
                             .length_count = sizeof default_lengths / sizeof default_lengths[0],
                             .dims = {64, 128},
                             .dim_count = 2,
                             .heads = 8,
                             .batch = 1,
                             .reference_max = 1024,
                             .gemm_size = 2048,
                             .causal = {true, true},
                             .passes = {true, true}};
    memcpy(o->lengths, default_lengths, sizeof default_lengths);
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        int status = parse_common(c, ATTENTION, &o->common);
        if (status >= 0) {
            if (status != EXIT_OK) return status;
            continue;
        }
        status = EXIT_OK;
        switch (c) {
        case OPT_LENGTHS:
            status = parse_list_option(ATTENTION, "lengths", MAX_LENGTH, o->lengths,
                                       &o->length_count);
            break;
        case OPT_DIMS:
            status = parse_list_option(ATTENTION, "dims", MAX_DIM, o->dims, &o->dim_count);
            break;
        case OPT_HEADS:
            if (!cli_parse_int(optarg, 1, MAX_COUNT, &o->heads))
                return cli_usage_error(ATTENTION, "--heads takes 1 to %d, not '%s'", MAX_COUNT,
                                       optarg);
            break;
        case OPT_BATCH:
            if (!cli_parse_int(optarg, 1, MAX_COUNT, &o->batch))
                return cli_usage_error(ATTENTION, "--batch takes 1 to %d, not '%s'", MAX_COUNT,
                                       optarg);
            break;
        case OPT_CAUSAL:
            if (strcmp(optarg, "both") == 0 || strcmp(optarg, "yes") == 0 ||
                strcmp(optarg, "no") == 0) {
                o->causal[0] = strcmp(optarg, "yes") != 0;
                o->causal[1] = strcmp(optarg, "no") != 0;
            } else {
                return cli_usage_error(ATTENTION, "--causal takes both, yes or no, not '%s'",
                                       optarg);
            }
            break;
        case OPT_PASS:
            if (strcmp(optarg, "both") == 0 || strcmp(optarg, "fwd") == 0 ||
                strcmp(optarg, "fwd+bwd") == 0) {
                o->passes[0] = strcmp(optarg, "fwd+bwd") != 0;
                o->passes[1] = strcmp(optarg, "fwd") != 0;
            } else {
                return cli_usage_error(ATTENTION, "--pass takes fwd, fwd+bwd or both, not '%s'",
                                       optarg);
            }
            break;
        case OPT_REFERENCE_MAX:
            if (!cli_parse_int(optarg, 0, MAX_LENGTH, &o->reference_max))
                return cli_usage_error(ATTENTION, "--reference-max takes 0 to %d, not '%s'",
                                       MAX_LENGTH, optarg);
            break;
        case OPT_GEMM_SIZE:
            if (!cli_parse_int(optarg, 1, 16384, &o->gemm_size))
                return cli_usage_error(ATTENTION, "--gemm-size takes 1 to 16384, not '%s'",
                                       optarg);
            break;
        case OPT_PRECISION:
            if (strcmp(optarg, "float32") != 0 && strcmp(optarg, "bf16") != 0)
                return cli_usage_error(ATTENTION, "--precision takes float32 or bf16, not '%s'",
                                       optarg);
            o->bf16 = strcmp(optarg, "bf16") == 0;
            break;
        case 'h': attention_help(); return -1;
        default: return unknown_option(ATTENTION, c, argv);
        }
        if (status != EXIT_OK) return status;
    }
    if (optind < argc)
        return cli_usage_error(ATTENTION, "unexpected argument '%s'", argv[optind]);
    return EXIT_OK;
}

typedef struct gemm_problem {
    attn_precision precision;
    int n;
    float *a, *b, *c;
} gemm_problem;

static attn_status gemm_once(void *ctx)
{
    gemm_problem *g = ctx;
    attn_gemm(g->precision, false, false, g->n, g->n, g->n, 1.0f, g->a, g->n, g->b, g->n, 0.0f,
              g->c, g->n);
    return ATTN_OK;
}

/* GFLOP/s of attn_gemm at `precision` on n^3 (bf16: its rounding of the operands
 * included): the best of three runs lasting min_time in all, after one to warm up. */
static int gemm_rate(const char *command, attn_precision precision, int n, double min_time,
                     double *gflops)
{
    const size_t nn = (size_t)n * n;
    attn_rng rng;
    attn_rng_init(&rng, 1);
    gemm_problem g = {precision, n, random_floats(command, &rng, nn),
                      random_floats(command, &rng, nn), random_floats(command, &rng, nn)};
    int status = EXIT_RUNTIME;
    double seconds;
    if (g.a != NULL && g.b != NULL && g.c != NULL) {
        gemm_once(&g);
        time_best(gemm_once, &g, min_time, 3, &seconds);
        *gflops = 2.0 * (double)n * n * n / seconds * 1e-9;
        status = EXIT_OK;
    }
    free(g.a);
    free(g.b);
    free(g.c);
    return status;
}

typedef struct sdpa_problem {
    attn_sdpa_config cfg;
    bool backward, reference, bf16;
    float *q, *k, *v, *dout, *out, *lse, *dq, *dk, *dv;
    uint16_t *q16, *k16, *v16, *dout16; /* q, k, v, dout rounded to bf16 (--precision bf16) */
} sdpa_problem;

static attn_status sdpa_once(void *ctx)
{
    sdpa_problem *p = ctx;
    attn_status s;
    if (p->reference) {
        if ((s = attn_sdpa_reference_forward(p->out, p->lse, NULL, p->q, p->k, p->v, &p->cfg)) ||
            !p->backward)
            return s;
        return attn_sdpa_reference_backward(p->dq, p->dk, p->dv, p->dout, p->q, p->k, p->v, p->lse, &p->cfg);
    }
    if (p->bf16) {
        if ((s = attn_sdpa_bf16_forward(p->out, p->lse, p->q16, p->k16, p->v16, &p->cfg)) ||
            !p->backward)
            return s;
        return attn_sdpa_bf16_backward(p->dq, p->dk, p->dv, p->dout16, p->q16, p->k16, p->v16,
                                       p->lse, &p->cfg);
    }
    if ((s = attn_sdpa_forward(p->out, p->lse, NULL, p->q, p->k, p->v, &p->cfg)) || !p->backward)
        return s;
    return attn_sdpa_backward(p->dq, p->dk, p->dv, p->dout, p->q, p->k, p->v, p->lse,
                              &p->cfg);
}

/* What a caller with float32 tensors pays before the bf16 kernels: rounding q,
 * k, v and, for backward, dout. */
static attn_status round_inputs_once(void *ctx)
{
    sdpa_problem *p = ctx;
    const size_t n = (size_t)p->cfg.batch * p->cfg.heads * p->cfg.len_q * p->cfg.dim_qk;
    attn_bf16_from_float(p->q16, p->q, n);
    attn_bf16_from_float(p->k16, p->k, n);
    attn_bf16_from_float(p->v16, p->v, n);
    if (p->backward) attn_bf16_from_float(p->dout16, p->dout, n);
    return ATTN_OK;
}

static void sdpa_free(sdpa_problem *p)
{
    void *arrays[] = {p->q,  p->k,  p->v,  p->dout, p->out, p->lse,   p->dq,
                      p->dk, p->dv, p->q16, p->k16, p->v16, p->dout16};
    for (size_t a = 0; a < sizeof arrays / sizeof arrays[0]; a++) free(arrays[a]);
}

/* Allocates and fills every array of p->cfg's problem; false after a message. */
static bool sdpa_alloc(sdpa_problem *p)
{
    const attn_sdpa_config *cfg = &p->cfg;
    const size_t qn = (size_t)cfg->batch * cfg->heads * cfg->len_q * cfg->dim_qk;
    const size_t rows = (size_t)cfg->batch * cfg->heads * cfg->len_q;
    if (!fits_in_memory(ATTENTION, (8.0 * (double)qn + (double)rows) * sizeof(float)))
        return false;
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)cfg->len_q * 1000 + (uint64_t)cfg->dim_qk);
    float **arrays[] = {&p->q, &p->k, &p->v, &p->dout, &p->out, &p->dq, &p->dk, &p->dv};
    for (size_t a = 0; a < sizeof arrays / sizeof arrays[0]; a++)
        if ((*arrays[a] = random_floats(ATTENTION, &rng, qn)) == NULL) return false;
    if ((p->lse = random_floats(ATTENTION, &rng, rows)) == NULL) return false;
    if (!p->bf16) return true;
    uint16_t **halves[] = {&p->q16, &p->k16, &p->v16, &p->dout16};
    for (size_t a = 0; a < sizeof halves / sizeof halves[0]; a++)
        if ((*halves[a] = malloc(qn * sizeof **halves[a])) == NULL) {
            fprintf(stderr, "attn %s: out of memory for %zu bf16 values\n", ATTENTION, qn);
            return false;
        }
    p->backward = true;
    round_inputs_once(p);
    p->bf16 = false;
    return true;
}

typedef struct attention_row {
    int dim, length;
    bool causal, backward;
    double ms, gflops, vs_reference, vs_gemm, extra_bytes; /* vs_reference < 0: not run */
    double bf16_ms, convert_ms, bf16_extra_bytes;            /* --precision bf16 */
} attention_row;

/* A row of --precision bf16: float32 and bf16 side by side. */
static void attention_print_bf16(const attention_row *r, const attention_options *o, double gemm,
                                 int threads)
{
    const double speedup = r->ms / r->bf16_ms, bf16_gflops = r->gflops * speedup;
    if (o->common.json) {
        printf("{\"bench\": \"attention\", \"batch\": %ld, \"heads\": %ld, \"dim\": %d, "
               "\"length\": %d, \"causal\": %s, \"pass\": \"%s\", \"float32_ms\": %.4f, "
               "\"bf16_ms\": %.4f, \"bf16_vs_float32\": %.3f, \"bf16_gflops\": %.2f, "
               "\"bf16_vs_gemm\": %.4f, \"convert_ms\": %.4f, \"bf16_extra_bytes\": %.0f, "
               "\"gemm_gflops\": %.1f, \"threads\": %d, \"kernel_bf16\": ",
               o->batch, o->heads, r->dim, r->length, r->causal ? "true" : "false",
               r->backward ? "fwd+bwd" : "fwd", r->ms, r->bf16_ms, speedup, bf16_gflops,
               bf16_gflops / gemm, r->convert_ms, r->bf16_extra_bytes, gemm, threads);
        cli_json_string(stdout, attn_sdpa_bf16_kernel());
        printf("}\n");
    } else {
        printf("%4d %6d %-6s %-8s %10.2f %10.2f %6.2f %9.1f %7.2f %8.2f %9.2f\n", r->dim,
               r->length, r->causal ? "yes" : "no", r->backward ? "fwd+bwd" : "fwd", r->ms,
               r->bf16_ms, speedup, bf16_gflops, bf16_gflops / gemm, r->convert_ms,
               r->bf16_extra_bytes / 1048576.0);
    }
    fflush(stdout);
}

static void attention_print(const attention_row *r, const attention_options *o, double gemm,
                            int threads)
{
    if (o->common.json) {
        printf("{\"bench\": \"attention\", \"batch\": %ld, \"heads\": %ld, \"dim\": %d, "
               "\"length\": %d, \"causal\": %s, \"pass\": \"%s\", \"ms\": %.4f, "
               "\"gflops\": %.2f, ",
               o->batch, o->heads, r->dim, r->length, r->causal ? "true" : "false",
               r->backward ? "fwd+bwd" : "fwd", r->ms, r->gflops);
        if (r->vs_reference >= 0.0) printf("\"vs_reference\": %.2f, ", r->vs_reference);
        else printf("\"vs_reference\": null, ");
        printf("\"vs_gemm\": %.4f, \"gemm_gflops\": %.1f, \"extra_bytes\": %.0f, "
               "\"threads\": %d, \"kernel\": ",
               r->vs_gemm, gemm, r->extra_bytes, threads);
        cli_json_string(stdout, attn_sdpa_kernel());
        printf("}\n");
    } else {
        char reference[16] = "-";
        if (r->vs_reference >= 0.0)
            snprintf(reference, sizeof reference, "%.0f", r->vs_reference);
        printf("%4d %6d %-6s %-8s %10.2f %9.1f %8s %7.2f %9.2f\n", r->dim, r->length,
               r->causal ? "yes" : "no", r->backward ? "fwd+bwd" : "fwd", r->ms, r->gflops,
               reference, r->vs_gemm, r->extra_bytes / 1048576.0);
    }
    fflush(stdout);
}

/* The best times of the float32 and the bf16 kernel, run alternately for
 * min_time seconds in all (at least two runs each), so that both see the same
 * moments of a shared machine. */
static attn_status time_both_precisions(sdpa_problem *p, double min_time, double *float32,
                                        double *bf16)
{
    double best[2] = {INFINITY, INFINITY}, spent = 0.0;
    for (int runs = 0; runs < 2 || spent < min_time; runs++)
        for (int precision = 0; precision < 2; precision++) {
            p->bf16 = precision == 1;
            double start = cli_now();
            attn_status s = sdpa_once(p);
            double t = cli_now() - start;
            p->bf16 = false;
            if (s != ATTN_OK) return s;
            if (t < best[precision]) best[precision] = t;
            spent += t;
        }
    *float32 = best[0];
    *bf16 = best[1];
    return ATTN_OK;
}

/* Every row of one (D, L); EXIT_OK or EXIT_RUNTIME after a message. */
static int attention_rows(const attention_options *o, int D, int L, double gemm, int threads)
{
    sdpa_problem p = {.cfg = {.batch = (int)o->batch,
                              .heads = (int)o->heads,
                              .len_q = L,
                              .len_k = L,
                              .dim_qk = D,
                              .dim_v = D},
                      .bf16 = o->bf16};
    if (!sdpa_alloc(&p)) {
        sdpa_free(&p);
        return EXIT_RUNTIME;
    }
    for (int causal = 0; causal <= 1; causal++) {
        for (int backward = 0; backward <= 1; backward++) {
            if (!o->causal[causal] || !o->passes[backward]) continue;
            p.cfg.causal = causal;
            p.backward = backward;
            attention_row r = {.dim = D, .length = L, .causal = causal, .backward = backward,
                               .vs_reference = -1.0};
            double flop = 4.0 * o->batch * o->heads * (double)L * L * D;
            if (backward) flop *= 3.5;
            if (causal) flop /= 2;
            double fused, reference, bf16 = 0.0;
            p.reference = false;
            attn_status timed = o->bf16 ? time_both_precisions(&p, o->common.min_time, &fused, &bf16)
                                        : time_best(sdpa_once, &p, o->common.min_time, 2, &fused);
            if (timed != ATTN_OK) {
                sdpa_free(&p);
                return cli_fail(ATTENTION);
            }
            if (L <= o->reference_max) {
                p.reference = true;
                if (time_best(sdpa_once, &p, 0.0, 1, &reference) != ATTN_OK) {
                    sdpa_free(&p);
                    return cli_fail(ATTENTION);
                }
                r.vs_reference = reference / fused;
            }
            r.ms = fused * 1e3;
            r.gflops = flop / fused * 1e-9;
            r.vs_gemm = r.gflops / gemm;
            r.extra_bytes = (double)attn_sdpa_workspace_bytes(&p.cfg, backward);
            if (!o->bf16) {
                attention_print(&r, o, gemm, threads);
                continue;
            }
            double convert;
            if (time_best(round_inputs_once, &p, 0.0, 3, &convert) != ATTN_OK) {
                sdpa_free(&p);
                return cli_fail(ATTENTION);
            }
            r.bf16_ms = bf16 * 1e3;
            r.convert_ms = convert * 1e3;
            r.bf16_extra_bytes = (double)attn_sdpa_bf16_workspace_bytes(&p.cfg, backward);
            attention_print_bf16(&r, o, gemm, threads);
        }
    }
    sdpa_free(&p);
    return EXIT_OK;
}

static int bench_attention(int argc, char **argv)
{
    attention_options o;
    int status = attention_parse(argc, argv, &o);
    if (status != EXIT_OK) return status < 0 ? EXIT_OK : status;
    if ((status = set_threads(ATTENTION, o.common.threads)) != EXIT_OK) return status;
    const int threads = attn_get_num_threads();
    double gemm;
    if ((status = gemm_rate(ATTENTION, ATTN_FLOAT32, (int)o.gemm_size, 0.0, &gemm)) != EXIT_OK)
        return status;
    if (!o.common.json) {
        printf("fused attention: %s kernels, %d threads%s; GEMM %s: %.0f GFLOP/s on %ld^3\n",
               attn_sdpa_kernel(), threads, no_openmp_note(), attn_gemm_backend(), gemm,
               o.gemm_size);
        printf("B=%ld H=%ld; GFLOP/s counts forward 4 B H L^2 D, backward 2.5x that, "
               "halved when causal;\nextra MiB: memory beyond q, k, v, out and their gradients"
               "\n\n",
               o.batch, o.heads);
        if (o.bf16)
            printf("bf16 attention: %s\nx f32 = float32 ms / bf16 ms; GFLOP/s and / GEMM are "
                   "bf16's; conv ms (rounding q, k, v, dout\nfrom float32) is not in bf16 ms\n\n"
                   "%4s %6s %-6s %-8s %10s %10s %6s %9s %7s %8s %9s\n",
                   attn_sdpa_bf16_kernel(), "D", "L", "causal", "pass", "f32 ms", "bf16 ms",
                   "x f32", "GFLOP/s", "/ GEMM", "conv ms", "extra MiB");
        else
            printf("%4s %6s %-6s %-8s %10s %9s %8s %7s %9s\n", "D", "L", "causal", "pass", "ms",
                   "GFLOP/s", "x ref", "/ GEMM", "extra MiB");
    }
    for (int di = 0; di < o.dim_count; di++)
        for (int li = 0; li < o.length_count; li++)
            if ((status = attention_rows(&o, o.dims[di], o.lengths[li], gemm, threads)) !=
                EXIT_OK)
                return status;
    return EXIT_OK;
}

/* ---- attn bench mha ------------------------------------------------------------------ */

#define MHA "bench mha"

typedef struct mha_options {
    common_options common;
    int lengths[MAX_LIST], length_count;
    long embed, heads, batch;
} mha_options;

static void mha_help(void)
{
    printf("usage: attn bench mha [options]\n"
           "\n"
           "Times attn_mha, the module equivalent to torch.nn.MultiheadAttention(E, H,\n"
           "batch_first=True), on self-attention (query = key = value, no masks, weights\n"
           "not requested, so the fused kernel runs): forward, and forward+backward with\n"
           "every input and parameter gradient. GFLOP/s counts the projections\n"
           "(8*B*L*E^2 forward, twice that backward) and the attention (4*B*L^2*E forward,\n"
           "2.5x that backward).\n"
           "\n"
           "  --lengths L,...  sequence lengths (default 512,1024,2048,4096)\n"
           "  --embed N        embed_dim E (default 512)\n"
           "  --heads N        num_heads H; must divide E (default 8)\n"
           "  --batch N        batch B (default 1)\n"
           "  --threads N      threads (default: ATTN_NUM_THREADS or OpenMP's)\n"
           "  --min-time S     seconds of runs per row, best one counts (default 0.5)\n"
           "  --json           one JSON object per row, one per line\n"
           "  -h, --help       this help\n");
}

static int mha_parse(int argc, char **argv, mha_options *o)
{
    static const struct option options[] = {
        {"lengths", required_argument, NULL, OPT_LENGTHS},
        {"embed", required_argument, NULL, OPT_EMBED},
        {"heads", required_argument, NULL, OPT_HEADS},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"min-time", required_argument, NULL, OPT_MIN_TIME},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (mha_options){.common = {.min_time = 0.5},
                       .lengths = {512, 1024, 2048, 4096},
                       .length_count = 4,
                       .embed = 512,
                       .heads = 8,
                       .batch = 1};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        int status = parse_common(c, MHA, &o->common);
        if (status >= 0) {
            if (status != EXIT_OK) return status;
            continue;
        }
        switch (c) {
        case OPT_LENGTHS:
            status =
                parse_list_option(MHA, "lengths", MAX_LENGTH, o->lengths, &o->length_count);
            if (status != EXIT_OK) return status;
            break;
        case OPT_EMBED:
            if (!cli_parse_int(optarg, 1, 65536, &o->embed))
                return cli_usage_error(MHA, "--embed takes 1 to 65536, not '%s'", optarg);
            break;
        case OPT_HEADS:
            if (!cli_parse_int(optarg, 1, MAX_COUNT, &o->heads))
                return cli_usage_error(MHA, "--heads takes 1 to %d, not '%s'", MAX_COUNT,
                                       optarg);
            break;
        case OPT_BATCH:
            if (!cli_parse_int(optarg, 1, MAX_COUNT, &o->batch))
                return cli_usage_error(MHA, "--batch takes 1 to %d, not '%s'", MAX_COUNT,
                                       optarg);
            break;
        case 'h': mha_help(); return -1;
        default: return unknown_option(MHA, c, argv);
        }
    }
    if (optind < argc) return cli_usage_error(MHA, "unexpected argument '%s'", argv[optind]);
    if (o->embed % o->heads != 0)
        return cli_usage_error(MHA, "--embed %ld is not divisible by --heads %ld", o->embed,
                               o->heads);
    return EXIT_OK;
}

typedef struct mha_problem {
    attn_mha *module;
    attn_mha_input in;
    bool backward;
    float *x, *out, *dout, *dx;
} mha_problem;

static attn_status mha_once(void *ctx)
{
    mha_problem *p = ctx;
    attn_status s = attn_mha_forward(p->module, p->out, &p->in);
    if (s != ATTN_OK || !p->backward) return s;
    return attn_mha_backward(p->module, p->dx, p->dx, p->dx, p->dout);
}

/* Both rows of one L; EXIT_OK or EXIT_RUNTIME after a message. */
static int mha_rows(const mha_options *o, attn_mha *module, int L, int threads)
{
    const size_t n = (size_t)o->batch * L * o->embed;
    const double E = (double)o->embed, BL = (double)o->batch * L;
    mha_problem p = {.module = module,
                     .in = {.batch = (int)o->batch, .len_q = L, .len_k = L}};
    int status = EXIT_RUNTIME;
    /* the module keeps q, k, v, heads and outputs: about 12 activations of x's size */
    if (!fits_in_memory(MHA, 16.0 * (double)n * sizeof(float))) return EXIT_RUNTIME;
    attn_rng rng;
    attn_rng_init(&rng, (uint64_t)L);
    if ((p.x = random_floats(MHA, &rng, n)) == NULL ||
        (p.out = random_floats(MHA, &rng, n)) == NULL ||
        (p.dout = random_floats(MHA, &rng, n)) == NULL ||
        (p.dx = random_floats(MHA, &rng, n)) == NULL)
        goto done;
    p.in.query = p.in.key = p.in.value = p.x;
    for (int backward = 0; backward <= 1; backward++) {
        p.backward = backward;
        double seconds;
        if (time_best(mha_once, &p, o->common.min_time, 2, &seconds) != ATTN_OK) {
            status = cli_fail(MHA);
            goto done;
        }
        const double linear = 8.0 * BL * E * E, attention = 4.0 * BL * L * E;
        const double flop = backward ? 3.0 * linear + 3.5 * attention : linear + attention;
        const double ms = seconds * 1e3, gflops = flop / seconds * 1e-9;
        if (o->common.json) {
            printf("{\"bench\": \"mha\", \"batch\": %ld, \"embed\": %ld, \"heads\": %ld, "
                   "\"length\": %d, \"pass\": \"%s\", \"ms\": %.4f, \"gflops\": %.2f, "
                   "\"threads\": %d, \"kernel\": ",
                   o->batch, o->embed, o->heads, L, backward ? "fwd+bwd" : "fwd", ms, gflops,
                   threads);
            cli_json_string(stdout, attn_sdpa_kernel());
            printf("}\n");
        } else {
            printf("%6d %-8s %10.2f %9.1f\n", L, backward ? "fwd+bwd" : "fwd", ms, gflops);
        }
        fflush(stdout);
    }
    status = EXIT_OK;
done:
    free(p.x);
    free(p.out);
    free(p.dout);
    free(p.dx);
    return status;
}

static int bench_mha(int argc, char **argv)
{
    mha_options o;
    int status = mha_parse(argc, argv, &o);
    if (status != EXIT_OK) return status < 0 ? EXIT_OK : status;
    if ((status = set_threads(MHA, o.common.threads)) != EXIT_OK) return status;
    const int threads = attn_get_num_threads();
    const attn_mha_config cfg = {.embed_dim = (int)o.embed,
                                 .num_heads = (int)o.heads,
                                 .bias = true,
                                 .batch_first = true};
    attn_mha *module = NULL;
    if (attn_mha_create(&module, &cfg, 1) != ATTN_OK) return cli_fail(MHA);
    if (!o.common.json) {
        printf("attn_mha = nn.MultiheadAttention(%ld, %ld, batch_first=True), self-attention, "
               "B=%ld;\n%s kernels, %d threads%s, GEMM %s\n\n",
               o.embed, o.heads, o.batch, attn_sdpa_kernel(), threads, no_openmp_note(),
               attn_gemm_backend());
        printf("%6s %-8s %10s %9s\n", "L", "pass", "ms", "GFLOP/s");
    }
    for (int li = 0; li < o.length_count && status == EXIT_OK; li++)
        status = mha_rows(&o, module, o.lengths[li], threads);
    attn_mha_free(module);
    return status;
}

/* ---- attn bench memory ------------------------------------------------------------------ */

#define MEMORY "bench memory"

/* Partial sums per thread's run: enough independent adds to keep up with memory. */
enum { READ_LANES = 32, READ_CHUNK = 1 << 16 };

typedef struct memory_problem {
    const float *x, *one; /* (n) the buffer read; (k) ones, the decoding product's vector */
    float *y;             /* (n / k) */
    size_t n;
    int k;
    double sink; /* what the reads added up to, so that they are not optimised away */
} memory_problem;

/* Every float of x read once, the threads splitting it into chunks. */
static attn_status read_once(void *ctx)
{
    memory_problem *p = ctx;
    const long chunks = (long)((p->n + READ_CHUNK - 1) / READ_CHUNK);
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) num_threads(attn_get_num_threads())
    for (long c = 0; c < chunks; c++) {
        const size_t first = (size_t)c * READ_CHUNK;
        const size_t count = p->n - first < READ_CHUNK ? p->n - first : READ_CHUNK;
        const float *v = p->x + first;
        float lane[READ_LANES] = {0};
        size_t i = 0;
        for (; i + READ_LANES <= count; i += READ_LANES)
            for (int l = 0; l < READ_LANES; l++) lane[l] += v[i + l];
        for (; i < count; i++) lane[0] += v[i];
        for (int l = 0; l < READ_LANES; l++) total += lane[l];
    }
    p->sink += total;
    return ATTN_OK;
}

/* The buffer as a layer's weights (n / k, k) applied to one token: the product
 * of cached decoding, which reads each weight once. */
static attn_status decode_product(void *ctx)
{
    memory_problem *p = ctx;
    attn_sgemm(false, true, 1, (int)(p->n / (size_t)p->k), p->k, 1.0f, p->one, p->k, p->x, p->k,
               0.0f, p->y, (int)(p->n / (size_t)p->k));
    p->sink += p->y[0];
    return ATTN_OK;
}

static void memory_help(void)
{
    printf("usage: attn bench memory [--mb N] [--threads N] [--min-time S] [--json]\n"
           "\n"
           "How fast this machine reads memory: a buffer of --mb MiB (default 512, far\n"
           "beyond the caches) read once per run, summed by the threads, and the same\n"
           "buffer as a layer's weights (rows of 1024 floats) applied to one token, the\n"
           "product of cached decoding. Decoding one token reads every weight once, so\n"
           "(weight bytes + cache bytes) / the read rate is its floor (bench/gpt.py).\n"
           "\n"
           "  --mb N        the buffer's size in MiB (8 to 65536)\n"
           "  --threads N   threads (default: ATTN_NUM_THREADS or all cores)\n"
           "  --min-time S  seconds of runs for each measurement, the best taken (1)\n"
           "  --json        one JSON object\n"
           "  -h, --help    this help\n");
}

static int bench_memory(int argc, char **argv)
{
    static const struct option opts[] = {
        {"mb", required_argument, NULL, 'm'},       {"threads", required_argument, NULL, OPT_THREADS},
        {"min-time", required_argument, NULL, OPT_MIN_TIME}, {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    common_options common = {.min_time = 1.0};
    long mb = 512;
    int c;
    opterr = 0;
    for (optind = 1; (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        if (c == 'h') {
            memory_help();
            return EXIT_OK;
        }
        if (c == 'm') {
            if (!cli_parse_int(optarg, 8, 65536, &mb))
                return cli_usage_error(MEMORY, "--mb takes 8 to 65536, not '%s'", optarg);
            continue;
        }
        int status = parse_common(c, MEMORY, &common);
        if (status == -1) return unknown_option(MEMORY, c, argv);
        if (status != EXIT_OK) return status;
    }
    if (optind < argc) return cli_usage_error(MEMORY, "unexpected argument '%s'", argv[optind]);
    int status = set_threads(MEMORY, common.threads);
    if (status != EXIT_OK) return status;
    const size_t bytes = (size_t)mb << 20;
    if (!fits_in_memory(MEMORY, (double)bytes)) return EXIT_RUNTIME;
    attn_rng rng;
    attn_rng_init(&rng, 1);
    memory_problem p = {.n = bytes / sizeof(float), .k = 1024};
    float *x = random_floats(MEMORY, &rng, p.n), *one = random_floats(MEMORY, &rng, (size_t)p.k);
    p.y = malloc(p.n / (size_t)p.k * sizeof *p.y);
    if (x == NULL || one == NULL || p.y == NULL) {
        if (p.y == NULL) fprintf(stderr, "attn %s: out of memory\n", MEMORY);
        free(x);
        free(one);
        free(p.y);
        return EXIT_RUNTIME;
    }
    p.x = x;
    p.one = one;
    double read = 0.0, decode = 0.0;
    if (time_best(read_once, &p, common.min_time, 3, &read) != ATTN_OK ||
        time_best(decode_product, &p, common.min_time, 3, &decode) != ATTN_OK)
        status = cli_fail(MEMORY);
    const int threads = attn_get_num_threads();
    if (status == EXIT_OK && common.json)
        printf("{\"mb\": %ld, \"threads\": %d, \"read_gb_per_s\": %.2f, "
               "\"decode_product_gb_per_s\": %.2f}\n",
               mb, threads, (double)bytes / read / 1e9, (double)bytes / decode / 1e9);
    else if (status == EXIT_OK)
        printf("%ld MiB, %d threads%s\nread             %8.2f GB/s\n"
               "decoding product %8.2f GB/s (one token through %zu x %d weights)\n",
               mb, threads, no_openmp_note(), (double)bytes / read / 1e9,
               (double)bytes / decode / 1e9, p.n / (size_t)p.k, p.k);
    free(x);
    free(one);
    free(p.y);
    return status;
}

/* ---- attn bench gemm ------------------------------------------------------------------ */

#define GEMM "bench gemm"

static void gemm_help(void)
{
    printf("usage: attn bench gemm [--sizes N,...] [--threads N] [--min-time S] [--json]\n"
           "\n"
           "The matrix product's rate in float32 (attn_sgemm) and in bf16 (attn_gemm at\n"
           "ATTN_BF16: operands rounded to bfloat16, float32 sums; the rounding included),\n"
           "side by side on N^3 products: GFLOP/s = 2 N^3 / the best time. The bf16 rate\n"
           "is the floor of mixed-precision training (bench/gpt.py).\n"
           "\n"
           "  --sizes N,...  the sizes N (default 512,2048; 1 to %d)\n"
           "  --threads N    threads (default: ATTN_NUM_THREADS or all cores)\n"
           "  --min-time S   seconds of runs for each measurement, the best taken (0.5)\n"
           "  --json         one JSON object per size\n"
           "  -h, --help     this help\n",
           MAX_DIM);
}

static int bench_gemm(int argc, char **argv)
{
    static const struct option opts[] = {
        {"sizes", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"min-time", required_argument, NULL, OPT_MIN_TIME},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    common_options common = {.min_time = 0.5};
    int sizes[MAX_LIST] = {512, 2048}, size_count = 2, c, status;
    opterr = 0;
    for (optind = 1; (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        if (c == 'h') {
            gemm_help();
            return EXIT_OK;
        }
        status = c == 's' ? parse_list_option(GEMM, "sizes", MAX_DIM, sizes, &size_count)
                          : parse_common(c, GEMM, &common);
        if (status == -1) return unknown_option(GEMM, c, argv);
        if (status != EXIT_OK) return status;
    }
    if (optind < argc) return cli_usage_error(GEMM, "unexpected argument '%s'", argv[optind]);
    if ((status = set_threads(GEMM, common.threads)) != EXIT_OK) return status;
    const int threads = attn_get_num_threads();
    for (int i = 0; i < size_count; i++) {
        const int n = sizes[i];
        if (!fits_in_memory(GEMM, 3.0 * n * n * sizeof(float))) return EXIT_RUNTIME;
        double f32, bf16;
        if ((status = gemm_rate(GEMM, ATTN_FLOAT32, n, common.min_time, &f32)) != EXIT_OK ||
            (status = gemm_rate(GEMM, ATTN_BF16, n, common.min_time, &bf16)) != EXIT_OK)
            return status;
        if (common.json) {
            printf("{\"bench\": \"gemm\", \"n\": %d, \"threads\": %d, "
                   "\"float32_gflops\": %.1f, \"bf16_gflops\": %.1f, \"float32_backend\": ",
                   n, threads, f32, bf16);
            cli_json_string(stdout, attn_gemm_backend());
            printf(", \"bf16_backend\": ");
            cli_json_string(stdout, attn_gemm_bf16_backend());
            printf("}\n");
        } else {
            if (i == 0)
                printf("%d threads%s\nfloat32: %s\nbf16:    %s\n\n%6s %14s %14s %8s\n",
                       threads, no_openmp_note(), attn_gemm_backend(), attn_gemm_bf16_backend(),
                       "N", "float32 GFLOP/s", "bf16 GFLOP/s", "x f32");
            printf("%6d %14.1f %14.1f %8.2f\n", n, f32, bf16, bf16 / f32);
        }
        fflush(stdout);
    }
    return EXIT_OK;
}

/* ---- attn bench ----------------------------------------------------------------------- */

static void bench_help(FILE *out)
{
    fprintf(out, "usage: attn bench <attention|mha|memory|gemm> [options]\n"
                 "\n"
                 "  attention   the fused attention kernel against the reference and the\n"
                 "              SGEMM rate of the same run\n"
                 "  mha         the nn.MultiheadAttention module, forward and backward\n"
                 "  memory      the memory read rate, and decoding's product over it\n"
                 "  gemm        the matrix product's rate in float32 and in bf16\n"
                 "\n"
                 "'attn bench <name> --help' lists each one's options; bench/compare.py\n"
                 "runs both beside PyTorch.\n");
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2) {
        bench_help(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
        bench_help(stdout);
        return EXIT_OK;
    }
    if (strcmp(name, "attention") == 0) return bench_attention(argc - 1, argv + 1);
    if (strcmp(name, "mha") == 0) return bench_mha(argc - 1, argv + 1);
    if (strcmp(name, "memory") == 0) return bench_memory(argc - 1, argv + 1);
    if (strcmp(name, "gemm") == 0) return bench_gemm(argc - 1, argv + 1);
    return cli_usage_error("bench", "unknown benchmark '%s' (attention, mha, memory or gemm)",
                           name);
}
