/* attn demo: the seed's MultiHeadAttention on an example sentence. Each word gets
 * a random embedding (the same word, the same embedding), the module attends from
 * every word to every word, and one head's weights are drawn as a table. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"

enum { MAX_TOKENS = 32, LABEL_WIDTH = 8 };
/* With random weights and unit-variance embeddings the scores have a standard
 * deviation near 0.2 and every row is close to uniform; a spread of 3 gives
 * scores of order 1, so the table shows which words a head picks out. */
#define EMBED_STD 3.0f

static const char default_sentence[] = "the cat sat on the mat because it was tired";

typedef struct demo_options {
    const char *sentence;
    long embed, heads, head, seed;
    bool causal, json;
} demo_options;

static void print_help(void)
{
    printf("usage: attn demo [options]\n"
           "\n"
           "Runs the seed article's MultiHeadAttention (self-attention over one sentence\n"
           "with random weights), prints the output shape, checks that every row of\n"
           "attention weights sums to 1, and draws one head's weights.\n"
           "\n"
           "  --sentence TEXT  words to attend over, at most %d (default: \"%s\")\n"
           "  --embed N        embed_size (default 32)\n"
           "  --heads N        heads; must divide embed_size (default 4)\n"
           "  --head K         the head to draw, 0-based (default 0)\n"
           "  --seed N         seed of the weights and embeddings (default 1)\n"
           "  --causal         each word attends only to itself and earlier words\n"
           "  --json           print the weights of every head as JSON\n"
           "  -h, --help       this help\n",
           MAX_TOKENS, default_sentence);
}

/* Splits text on white space into at most MAX_TOKENS words (in place). */
static int split_words(char *text, char *words[MAX_TOKENS])
{
    int count = 0;
    for (char *word = strtok(text, " \t\n"); word != NULL; word = strtok(NULL, " \t\n")) {
        if (count == MAX_TOKENS) return -1;
        words[count++] = word;
    }
    return count;
}

/* FNV-1a: the same word always draws the same embedding. */
static uint64_t word_hash(const char *word)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)word; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return h;
}

static void embed_words(float *x, char *const *words, int count, int embed, uint64_t seed)
{
    for (int t = 0; t < count; t++) {
        attn_rng rng;
        attn_rng_init(&rng, word_hash(words[t]) ^ seed);
        attn_rng_fill_normal(&rng, x + (size_t)t * embed, (size_t)embed, 0.0f, EMBED_STD);
    }
}

/* The largest |row sum - 1| over all rows of weights (rows, n). */
static double worst_row_sum_error(const float *w, int rows, int n)
{
    double worst = 0.0;
    for (int r = 0; r < rows; r++) {
        double sum = 0.0;
        for (int j = 0; j < n; j++) sum += w[(size_t)r * n + j];
        double err = fabs(sum - 1.0);
        if (err > worst || isnan(err)) worst = isnan(err) ? INFINITY : err;
    }
    return worst;
}

static void print_table(const float *w, char *const *words, int n)
{
    printf("%*s", LABEL_WIDTH, "");
    for (int j = 0; j < n; j++) printf(" %4.4s", words[j]);
    printf("\n");
    for (int i = 0; i < n; i++) {
        printf("%-*.*s", LABEL_WIDTH, LABEL_WIDTH, words[i]);
        for (int j = 0; j < n; j++) cli_print_shade(stdout, w[(size_t)i * n + j]);
        printf("\n");
    }
}

static void print_json(const float *w, char *const *words, int n, const demo_options *o,
                       double worst)
{
    printf("{\"embed_size\": %ld, \"heads\": %ld, \"seed\": %ld, \"causal\": %s, \"tokens\": [",
           o->embed, o->heads, o->seed, o->causal ? "true" : "false");
    for (int t = 0; t < n; t++) {
        if (t) printf(", ");
        cli_json_string(stdout, words[t]);
    }
    printf("], \"output_shape\": [1, %d, %ld], \"max_row_sum_error\": %.3g, \"weights\": [", n,
           o->embed, worst);
    for (long h = 0; h < o->heads; h++) {
        printf("%s[", h ? ", " : "");
        for (int i = 0; i < n; i++) {
            printf("%s[", i ? ", " : "");
            for (int j = 0; j < n; j++)
                printf("%s%.6g", j ? ", " : "", w[((size_t)h * n + i) * n + j]);
            printf("]");
        }
        printf("]");
    }
    printf("]}\n");
}

static int parse_options(int argc, char **argv, demo_options *o)
{
    static const struct option options[] = {
        {"sentence", required_argument, NULL, 's'}, {"embed", required_argument, NULL, 'e'},
        {"heads", required_argument, NULL, 'H'},    {"head", required_argument, NULL, 'k'},
        {"seed", required_argument, NULL, 'S'},     {"causal", no_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (demo_options){default_sentence, 32, 4, 0, 1, false, false};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 's': o->sentence = optarg; break;
        case 'e':
            if (!cli_parse_int(optarg, 1, 4096, &o->embed))
                return cli_usage_error("demo", "--embed takes 1 to 4096, not '%s'", optarg);
            break;
        case 'H':
            if (!cli_parse_int(optarg, 1, 4096, &o->heads))
                return cli_usage_error("demo", "--heads takes 1 to 4096, not '%s'", optarg);
            break;
        case 'k':
            if (!cli_parse_int(optarg, 0, 4095, &o->head))
                return cli_usage_error("demo", "--head takes 0 to 4095, not '%s'", optarg);
            break;
        case 'S':
            if (!cli_parse_int(optarg, 0, 2147483647L, &o->seed))
                return cli_usage_error("demo", "--seed takes 0 to 2147483647, not '%s'", optarg);
            break;
        case 'c': o->causal = true; break;
        case 'j': o->json = true; break;
        case 'h': print_help(); return -1;
        case ':':
            return cli_usage_error("demo", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("demo", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("demo", "unexpected argument '%s'", argv[optind]);
    if (o->embed % o->heads != 0)
        return cli_usage_error("demo", "--embed %ld is not divisible by --heads %ld", o->embed,
                               o->heads);
    if (o->head >= o->heads)
        return cli_usage_error("demo", "--head %ld does not exist: there are %ld heads", o->head,
                               o->heads);
    return EXIT_OK;
}

static int run(const demo_options *o, char *const *words, int n)
{
    int status = EXIT_RUNTIME;
    int E = (int)o->embed, H = (int)o->heads;
    attn_seed_mha *mha = NULL;
    float *x = malloc((size_t)n * E * sizeof *x);
    float *out = malloc((size_t)n * E * sizeof *out);
    float *weights = malloc((size_t)H * n * n * sizeof *weights);
    uint8_t *keep = malloc((size_t)n * n);
    if (x == NULL || out == NULL || weights == NULL || keep == NULL) {
        fprintf(stderr, "attn demo: out of memory\n");
        goto done;
    }
    if (attn_seed_mha_create(&mha, E, H, (uint64_t)o->seed) != ATTN_OK) {
        status = cli_fail("demo");
        goto done;
    }
    embed_words(x, words, n, E, (uint64_t)o->seed);

    attn_mask mask;
    if (o->causal) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) keep[i * n + j] = j <= i;
        const int64_t shape[4] = {1, 1, n, n}, target[4] = {1, H, n, n};
        if (attn_mask_init(&mask, ATTN_MASK_BOOL_KEEP, keep, 4, shape, target) != ATTN_OK) {
            status = cli_fail("demo");
            goto done;
        }
    }
    /* forward(values, keys, query, mask), as the seed's class is called */
    if (attn_seed_mha_forward(mha, out, weights, x, x, x, 1, n, n, o->causal ? &mask : NULL) !=
        ATTN_OK) {
        status = cli_fail("demo");
        goto done;
    }
    double worst = worst_row_sum_error(weights, H * n, n);
    bool finite = true;
    for (size_t i = 0; i < (size_t)n * E; i++) finite = finite && isfinite(out[i]);

    if (o->json) {
        print_json(weights, words, n, o, worst);
    } else {
        printf("the seed's MultiHeadAttention: embed_size %d, heads %d, head_dim %d, seed %ld%s\n",
               E, H, E / H, o->seed, o->causal ? ", causal mask" : "");
        printf("sentence      %d words: %s\n", n, o->sentence);
        printf("output shape  (1, %d, %d)%s\n", n, E, finite ? "" : " with non-finite values!");
        printf("weight rows   %d rows of %d weights, each sums to 1 (largest error %.2g)\n",
               H * n, n, worst);
        printf("\nhead %ld: how much each word (row) attends to each word (column), in %%\n\n",
               o->head);
        print_table(weights + (size_t)o->head * n * n, words, n);
    }
    if (worst > 1e-5 || !finite) {
        fprintf(stderr, "attn demo: the attention weights are wrong: a row sums to 1 +- %g\n",
                worst);
        goto done;
    }
    status = EXIT_OK;
done:
    attn_seed_mha_free(mha);
    free(x);
    free(out);
    free(weights);
    free(keep);
    return status;
}

int cmd_demo(int argc, char **argv)
{
    demo_options o;
    int parsed = parse_options(argc, argv, &o);
    if (parsed != EXIT_OK) return parsed < 0 ? EXIT_OK : parsed;
    char text[1024];
    if (strlen(o.sentence) >= sizeof text)
        return cli_usage_error("demo", "--sentence is longer than %zu bytes", sizeof text - 1);
    strcpy(text, o.sentence);
    char *words[MAX_TOKENS];
    int n = split_words(text, words);
    if (n < 0) return cli_usage_error("demo", "--sentence has more than %d words", MAX_TOKENS);
    if (n == 0) return cli_usage_error("demo", "--sentence has no words");
    return run(&o, words, n);
}
