/* attn translate: runs a trained model on texts and shows, for each output
 * character, which input characters it attended to; --attention FILE records
 * every attention map of the model for one text (attn/capture.h). */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/attn.h"
#include "cli.h"

enum { LINE_MAX_BYTES = 4096, CHAR_MAX_BYTES = 8 };
/* A line of standard input is read whole up to this; a longer one is not a text
 * for these models (a source holds at most a few hundred characters). */
enum { INPUT_LINE_MAX_BYTES = 1 << 20 };

typedef struct translate_options {
    const char *path, *attention; /* attention: the record's file, or NULL */
    long beam, seed, threads;
    bool sample, json;
    int grid; /* 1 draw, 0 don't, -1 when stdout is a terminal */
    cli_record_extras extras;
} translate_options;

static void print_help(void)
{
    printf("usage: attn translate --model FILE [options] [TEXT...]\n"
           "\n"
           "Translates each TEXT (or each line of standard input) with a model written by\n"
           "attn train, e.g. 'attn translate --model dates.safetensors \"Nov 24, 2026\"'.\n"
           "On a terminal it also draws the attention: a row per output character, a\n"
           "column per input character, darker where the model looked.\n"
           "\n"
           "  --model FILE     the model\n"
           "  --beam N         beam width (default 1, greedy)\n"
           "  --sample         hard attention: sample the attended position instead of\n"
           "                   taking the most likely one\n"
           "  --seed N         seed of the sampling (default 1)\n"
           "  --grid           draw the attention even when not on a terminal\n"
           "  --no-grid        never draw it\n"
           "  --json           print each translation with its attention as JSON\n"
           "  --attention FILE record what the model attended to (every layer and head)\n"
           "                   in FILE, safetensors or, for a name ending in .json, JSON\n"
           "                   (for attn show and attn analyze); one TEXT only, greedy\n"
           "  --qk             also record every head's q and k vectors (transformer,\n"
           "                   Luong's decoders)\n"
           "  --gradient       also record d log p / d weights of every map (soft attention):\n"
           "                   log p of the whole output (the sum over its steps, EOS\n"
           "                   included), for attn analyze's gradient-weighted attention\n"
           "  --gradient-step N|all  the output step whose log p the gradient explains\n"
           "                   (from 0; implies --gradient; default all)\n"
           "  --threads N      threads (default: ATTN_NUM_THREADS or all cores)\n"
           "  -h, --help       this help\n");
}

static int parse_options(int argc, char **argv, translate_options *o)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},  {"beam", required_argument, NULL, 'b'},
        {"sample", no_argument, NULL, 's'},       {"seed", required_argument, NULL, 'S'},
        {"grid", no_argument, NULL, 'g'},         {"no-grid", no_argument, NULL, 'G'},
        {"json", no_argument, NULL, 'j'},         {"threads", required_argument, NULL, 't'},
        {"attention", required_argument, NULL, 'a'}, {"help", no_argument, NULL, 'h'},
        {"qk", no_argument, NULL, 'q'},           {"gradient", no_argument, NULL, 'd'},
        {"gradient-step", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    *o = (translate_options){.beam = 1, .seed = 1, .grid = -1,
                             .extras.options.gradient_step = ATTN_EXPLAIN_ALL};
    int status;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'm': o->path = optarg; break;
        case 'b':
            if (!cli_parse_int(optarg, 1, 64, &o->beam))
                return cli_usage_error("translate", "--beam takes 1 to 64, not '%s'", optarg);
            break;
        case 's': o->sample = true; break;
        case 'S':
            if (!cli_parse_int(optarg, 0, 2147483647L, &o->seed))
                return cli_usage_error("translate", "--seed takes 0 to 2147483647, not '%s'",
                                       optarg);
            break;
        case 'g': o->grid = 1; break;
        case 'G': o->grid = 0; break;
        case 'j': o->json = true; break;
        case 'a': o->attention = optarg; break;
        case 'q': o->extras.options.qk = true; break;
        case 'd': o->extras.options.gradient = true; break;
        case 'D':
            if ((status = cli_parse_gradient_step("translate", optarg, &o->extras))) return status;
            break;
        case 't':
            if (!cli_parse_int(optarg, 1, 1024, &o->threads))
                return cli_usage_error("translate", "--threads takes 1 to 1024, not '%s'",
                                       optarg);
            break;
        case 'h': print_help(); return -1;
        case ':':
            return cli_usage_error("translate", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("translate", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (o->path == NULL) return cli_usage_error("translate", "--model FILE is required");
    /* A record holds one text's attention, so it takes exactly one. */
    if (o->attention && argc - optind != 1)
        return cli_usage_error("translate", "--attention FILE records one TEXT; %d given",
                               argc - optind);
    if (o->attention && o->beam != 1)
        return cli_usage_error("translate", "--attention records greedy decoding; --beam %ld "
                                            "must be 1", o->beam);
    if ((status = cli_check_record_extras("translate", &o->extras, o->attention))) return status;
    if (o->grid < 0) o->grid = isatty(fileno(stdout)) == 1;
    return EXIT_OK;
}

/* The text of one token id. */
static void token_text(const attn_vocab *v, int32_t id, char *out)
{
    if (attn_vocab_decode(v, &id, 1, out, CHAR_MAX_BYTES) != ATTN_OK) strcpy(out, "?");
}

/* attention: (out_len + 1, S) rows for each output character (and EOS);
 * columns for the src_len input characters. */
static void print_grid(const cli_model *m, const int32_t *src, int src_len, const int32_t *out,
                       int out_len, const float *attention, int S)
{
    char text[CHAR_MAX_BYTES];
    printf("   ");
    for (int j = 0; j < src_len; j++) {
        token_text(&m->task.src_vocab, src[j], text);
        printf("%s ", text);
    }
    printf("\n");
    for (int i = 0; i < out_len; i++) {
        token_text(&m->task.tgt_vocab, out[i], text);
        printf(" %s ", text);
        for (int j = 0; j < src_len; j++) {
            const char *shade = cli_shade(attention[(size_t)i * S + j]);
            printf("%s%s", shade, shade);
        }
        printf("\n");
    }
}

static void print_json(const cli_model *m, const char *source, const char *output,
                       const int32_t *src, int src_len, const int32_t *out, int out_len,
                       const float *attention, int S)
{
    char text[CHAR_MAX_BYTES];
    printf("{\"source\": ");
    cli_json_string(stdout, source);
    printf(", \"output\": ");
    cli_json_string(stdout, output);
    printf(", \"source_tokens\": [");
    for (int j = 0; j < src_len; j++) {
        token_text(&m->task.src_vocab, src[j], text);
        printf("%s", j ? ", " : "");
        cli_json_string(stdout, text);
    }
    printf("], \"output_tokens\": [");
    for (int i = 0; i < out_len; i++) {
        token_text(&m->task.tgt_vocab, out[i], text);
        printf("%s", i ? ", " : "");
        cli_json_string(stdout, text);
    }
    printf("], \"attention\": [");
    for (int i = 0; i < out_len; i++) {
        printf("%s[", i ? ", " : "");
        for (int j = 0; j < src_len; j++)
            printf("%s%.4g", j ? ", " : "", (double)attention[(size_t)i * S + j]);
        printf("]");
    }
    printf("]}\n");
}

/* Buffers for one text. */
typedef struct work {
    int32_t *src, *out;
    float *attention;
    char *line; /* a line of standard input */
    int S, max_len;
} work;

/* Records the model's attention on src: (src_len ids) into o->attention:
 * queries the output characters and "</s>" for EOS, keys the source characters. */
static int record_attention(const cli_model *m, const translate_options *o, const work *w,
                            const attn_decode_options *opt, int src_len)
{
    attn_record r;
    attn_record_init(&r, attn_seq2seq_arch_name(attn_seq2seq_get_config(m->model)->arch),
                     attn_task_name(m->task.kind));
    int32_t out_len = 0;
    const int most = w->max_len > w->S ? w->max_len : w->S; /* labels at a time */
    char *text = malloc((size_t)most * CHAR_MAX_BYTES);
    const char **labels = malloc((size_t)most * sizeof *labels);
    int status = EXIT_OK;
    if (text == NULL || labels == NULL) {
        cli_message(stderr, "attn translate: out of memory\n");
        status = EXIT_RUNTIME;
        goto done;
    }
    if (attn_seq2seq_decode_record(m->model, w->out, &out_len, w->src, w->S, src_len, opt, &r,
                                   &o->extras.options) != ATTN_OK) {
        status = cli_fail("translate");
        goto done;
    }
    /* EOS is a step of its own unless max_len ended the output first */
    const int rows = out_len < w->max_len ? out_len + 1 : w->max_len;
    for (int i = 0; i < rows; i++) {
        char *label = text + (size_t)i * CHAR_MAX_BYTES;
        if (i < out_len) token_text(&m->task.tgt_vocab, w->out[i], label);
        labels[i] = i < out_len ? label : "</s>";
    }
    if (attn_record_set_queries(&r, labels, rows) != ATTN_OK) {
        status = cli_fail("translate");
        goto done;
    }
    for (int j = 0; j < src_len; j++) {
        labels[j] = text + (size_t)j * CHAR_MAX_BYTES;
        token_text(&m->task.src_vocab, w->src[j], text + (size_t)j * CHAR_MAX_BYTES);
    }
    if (attn_record_set_keys(&r, labels, src_len) != ATTN_OK ||
        attn_record_save(&r, o->attention) != ATTN_OK)
        status = cli_fail("translate");
done:
    free(text);
    free(labels);
    attn_record_free(&r);
    return status;
}

static int translate_one(const cli_model *m, const translate_options *o, work *w,
                         const char *source)
{
    int src_len = 0;
    if (attn_vocab_encode(&m->task.src_vocab, source, w->src, w->S, &src_len) != ATTN_OK) {
        cli_message(stderr, "attn translate: \"%s\": %s\n", source, attn_last_error());
        return EXIT_RUNTIME;
    }
    if (src_len == 0) {
        cli_message(stderr, "attn translate: the text is empty\n");
        return EXIT_RUNTIME;
    }
    for (int j = src_len; j < w->S; j++) w->src[j] = ATTN_TOKEN_PAD;
    int32_t length = src_len, out_len = 0;
    attn_decode_options opt = {.beam = (int)o->beam,
                               .sample_hard = o->sample,
                               .seed = (uint64_t)o->seed,
                               .max_len = w->max_len};
    if (attn_seq2seq_decode(m->model, w->out, &out_len, w->attention, w->src, &length, 1, w->S,
                            &opt) != ATTN_OK)
        return cli_fail("translate");
    char output[LINE_MAX_BYTES];
    if (attn_vocab_decode(&m->task.tgt_vocab, w->out, out_len, output, sizeof output) != ATTN_OK)
        return cli_fail("translate");
    if (o->json) {
        print_json(m, source, output, w->src, src_len, w->out, out_len, w->attention, w->S);
        return o->attention ? record_attention(m, o, w, &opt, src_len) : EXIT_OK;
    }
    cli_write_text(stdout, source, strlen(source), false);
    printf(" \u2192 ");
    cli_write_text(stdout, output, strlen(output), false);
    printf("\n");
    if (o->grid) {
        print_grid(m, w->src, src_len, w->out, out_len, w->attention, w->S);
        printf("\n");
    }
    return o->attention ? record_attention(m, o, w, &opt, src_len) : EXIT_OK;
}

/* Reads line `number` of f, without its "\n" (or "\r\n"), into line (INPUT_LINE_MAX_
 * BYTES + 1 bytes). Returns 1 for a line, 0 at the end, -1 after saying why the
 * input cannot be text: a NUL byte, or a line past the bound (then reading stops,
 * so /dev/zero ends at once). */
static int read_line(FILE *f, char *line, long number)
{
    size_t n = 0;
    int c;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (c == '\0') {
            cli_message(stderr,
                        "attn translate: input line %ld has a NUL byte at byte %zu; the input "
                        "must be text\n",
                        number, n + 1);
            return -1;
        }
        if (n == INPUT_LINE_MAX_BYTES) {
            cli_message(stderr, "attn translate: input line %ld is longer than %d bytes\n", number,
                        INPUT_LINE_MAX_BYTES);
            return -1;
        }
        line[n++] = (char)c;
    }
    if (ferror(f)) {
        cli_message(stderr, "attn translate: cannot read the input\n");
        return -1;
    }
    if (c == EOF && n == 0) return 0;
    if (n > 0 && line[n - 1] == '\r') n--;
    line[n] = '\0';
    return 1;
}

int cmd_translate(int argc, char **argv)
{
    translate_options o;
    int status = parse_options(argc, argv, &o);
    if (status != EXIT_OK) return status < 0 ? EXIT_OK : status;
    if (o.threads && attn_set_num_threads((int)o.threads) != ATTN_OK)
        return cli_fail("translate");
    const cli_path model = {"--model", o.path}, record = {"--attention", o.attention};
    if ((status = cli_check_paths("translate", &model, 1, &record, 1))) return status;
    cli_model m;
    if ((status = cli_model_load(o.path, &m, NULL))) return status;
    const attn_seq2seq_config *cfg = attn_seq2seq_get_config(m.model);
    work w = {.S = cfg->max_src_len, .max_len = cfg->max_tgt_len};
    w.src = malloc((size_t)w.S * sizeof *w.src);
    w.out = malloc((size_t)w.max_len * sizeof *w.out);
    w.attention = malloc((size_t)w.max_len * w.S * sizeof *w.attention);
    if (w.src == NULL || w.out == NULL || w.attention == NULL) {
        cli_message(stderr, "attn translate: out of memory\n");
        status = EXIT_RUNTIME;
    } else if (optind < argc) {
        for (int i = optind; i < argc; i++) status |= translate_one(&m, &o, &w, argv[i]);
    } else if ((w.line = malloc(INPUT_LINE_MAX_BYTES + 1)) == NULL) {
        cli_message(stderr, "attn translate: out of memory\n");
        status = EXIT_RUNTIME;
    } else {
        int got;
        for (long number = 1; (got = read_line(stdin, w.line, number)) == 1; number++)
            if (w.line[0] != '\0') status |= translate_one(&m, &o, &w, w.line);
        if (got < 0) status = EXIT_RUNTIME;
    }
    free(w.src);
    free(w.out);
    free(w.attention);
    free(w.line);
    cli_model_free(&m);
    return status ? EXIT_RUNTIME : EXIT_OK;
}
