/* attn generate: continues a prompt with a language model written by
 * attn train --task text, streaming each token as it is drawn; --attention FILE
 * records what the model attends to over the final context (attn/capture.h). */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/attn.h"
#include "cli.h"

enum { MAX_TOKENS = 1000000, TOKEN_MAX_BYTES = 8, TOKEN_LABEL_BYTES = 16 };
/* A prompt longer than the block size is cut to its last block anyway. */
#define PROMPT_BYTES_MAX ((size_t)16 << 20)

typedef struct generate_options {
    const char *path, *prompt, *prompt_file, *attention;
    long tokens, seed, threads;
    attn_sampling sampling;
    attn_precision precision;
    bool no_cache, json;
    cli_record_extras extras;
} generate_options;

static void print_help(void)
{
    printf("usage: attn generate --model FILE (--prompt TEXT | --prompt-file FILE)\n"
           "                     --tokens N [options]\n"
           "\n"
           "Continues the prompt with a language model written by attn train --task text,\n"
           "printing the prompt and then each new token as it is drawn. A prompt longer\n"
           "than the model's block size is cut to its last block-size tokens.\n"
           "\n"
           "  --model FILE        the model\n"
           "  --prompt TEXT       the text to continue\n"
           "  --prompt-file FILE  read it from a file, as it is (newlines included; at\n"
           "                      most 16 MiB)\n"
           "  --tokens N          tokens to generate, 1 to %d\n"
           "  --temperature T     divide the logits by T; 0 takes the most likely token\n"
           "                      (default 0.8)\n"
           "  --top-k K           draw from the K most likely tokens only (default 0: all)\n"
           "  --top-p P           draw from the fewest most likely tokens whose\n"
           "                      probability reaches P (default 1: all)\n"
           "  --seed N            seed of the sampling (default 1)\n"
           "  --no-cache          recompute the whole context for every token instead of\n"
           "                      keeping its keys and values (slower; the same tokens\n"
           "                      while the context fits the block size)\n"
           "  --precision P       float32 (default) or bf16: the weights rounded to bf16\n"
           "                      once at load and the cache's keys and values kept in\n"
           "                      bf16 (half the memory), products and sums float32;\n"
           "                      with the cache only\n"
           "  --threads N         threads (default: ATTN_NUM_THREADS or all cores)\n"
           "  --attention FILE    record what every head of every layer attends to over\n"
           "                      the final context (the last block-size tokens of the\n"
           "                      prompt and the text) in FILE: safetensors or, for a\n"
           "                      name ending in .json, JSON (for attn show, attn analyze)\n"
           "  --qk                also record every head's q and k vectors (after RoPE)\n"
           "  --gradient          also record d log p / d weights of every map, log p the\n"
           "                      last token's given those before it (attn analyze's\n"
           "                      gradient-weighted attention)\n"
           "  --gradient-step N|all  the token of the recorded context (from 1) whose\n"
           "                      log p the gradient explains, or all of them (the\n"
           "                      context's log-likelihood); implies --gradient\n"
           "  --json              print one JSON object: the prompt, the generated text,\n"
           "                      the token counts (prompt_tokens: those the model read),\n"
           "                      the precision, the cache's bytes at the block size\n"
           "                      and the speed: prefill (the prompt's pass to the first\n"
           "                      new token), decode (each later token: one step and one\n"
           "                      draw) and the whole generation\n"
           "  -h, --help          this help\n",
           MAX_TOKENS);
}

static int parse_options(int argc, char **argv, generate_options *o)
{
    enum {
        OPT_PROMPT_FILE = 256,
        OPT_TEMPERATURE,
        OPT_TOP_K,
        OPT_TOP_P,
        OPT_NO_CACHE,
        OPT_ATTENTION,
        OPT_QK,
        OPT_GRADIENT,
        OPT_GRADIENT_STEP,
        OPT_PRECISION
    };
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"prompt-file", required_argument, NULL, OPT_PROMPT_FILE},
        {"tokens", required_argument, NULL, 'n'},
        {"temperature", required_argument, NULL, OPT_TEMPERATURE},
        {"top-k", required_argument, NULL, OPT_TOP_K},
        {"top-p", required_argument, NULL, OPT_TOP_P},
        {"seed", required_argument, NULL, 'S'},
        {"no-cache", no_argument, NULL, OPT_NO_CACHE},
        {"attention", required_argument, NULL, OPT_ATTENTION},
        {"qk", no_argument, NULL, OPT_QK},
        {"gradient", no_argument, NULL, OPT_GRADIENT},
        {"gradient-step", required_argument, NULL, OPT_GRADIENT_STEP},
        {"precision", required_argument, NULL, OPT_PRECISION},
        {"threads", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (generate_options){.seed = 1,
                            .sampling = {.temperature = 0.8f, .top_k = 0, .top_p = 1.0f}};
    long v;
    int c, status;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'm': o->path = optarg; break;
        case 'p': o->prompt = optarg; break;
        case OPT_PROMPT_FILE: o->prompt_file = optarg; break;
        case 'n':
            if (!cli_parse_int(optarg, 1, MAX_TOKENS, &o->tokens))
                return cli_usage_error("generate", "--tokens takes 1 to %d, not '%s'", MAX_TOKENS,
                                       optarg);
            break;
        case OPT_TEMPERATURE:
            if (!cli_parse_float(optarg, 0.0f, 1e6f, &o->sampling.temperature))
                return cli_usage_error("generate", "--temperature takes 0 to 1e6, not '%s'",
                                       optarg);
            break;
        case OPT_TOP_K:
            if (!cli_parse_int(optarg, 0, 2147483647L, &v))
                return cli_usage_error("generate", "--top-k takes 0 to 2147483647, not '%s'",
                                       optarg);
            o->sampling.top_k = (int)v;
            break;
        case OPT_TOP_P:
            if (!cli_parse_float(optarg, 0.0f, 1.0f, &o->sampling.top_p) ||
                !(o->sampling.top_p > 0.0f))
                return cli_usage_error("generate", "--top-p takes a number in (0, 1], not '%s'",
                                       optarg);
            break;
        case 'S':
            if (!cli_parse_int(optarg, 0, 2147483647L, &o->seed))
                return cli_usage_error("generate", "--seed takes 0 to 2147483647, not '%s'",
                                       optarg);
            break;
        case OPT_NO_CACHE: o->no_cache = true; break;
        case OPT_PRECISION:
            if (attn_precision_parse(&o->precision, optarg) != ATTN_OK)
                return cli_usage_error("generate", "--precision takes float32 or bf16, not '%s'",
                                       optarg);
            break;
        case OPT_ATTENTION: o->attention = optarg; break;
        case OPT_QK: o->extras.options.qk = true; break;
        case OPT_GRADIENT: o->extras.options.gradient = true; break;
        case OPT_GRADIENT_STEP:
            if ((status = cli_parse_gradient_step("generate", optarg, &o->extras))) return status;
            break;
        case 't':
            if (!cli_parse_int(optarg, 1, 1024, &o->threads))
                return cli_usage_error("generate", "--threads takes 1 to 1024, not '%s'", optarg);
            break;
        case 'j': o->json = true; break;
        case 'h': print_help(); return -1;
        case ':':
            return cli_usage_error("generate", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("generate", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("generate", "unexpected argument '%s'", argv[optind]);
    if (o->path == NULL) return cli_usage_error("generate", "--model FILE is required");
    if ((status = cli_check_record_extras("generate", &o->extras, o->attention))) return status;
    if ((o->prompt == NULL) == (o->prompt_file == NULL))
        return cli_usage_error("generate", "give the prompt as --prompt TEXT or --prompt-file "
                                           "FILE (one of them)");
    if (o->tokens == 0) return cli_usage_error("generate", "--tokens N is required");
    if (o->no_cache && o->precision != ATTN_FLOAT32)
        return cli_usage_error("generate", "--precision bf16 runs with the cache only, not with "
                                           "--no-cache");
    return EXIT_OK;
}

/* Notes when each new token is drawn and, unless quiet (--json), writes its text
 * (its raw bytes: with a bytes vocabulary one character may come in several
 * tokens) and flushes, so it shows at once. The times split generation into the
 * prompt's pass (to the first token: prefill and one draw) and decoding (each
 * later token: one token through the model and one draw). */
typedef struct stream {
    const attn_text_vocab *vocab;
    attn_status status;
    bool terminal; /* stdout is one: control characters are escaped */
    bool quiet;
    int seen;
    double first, last; /* cli_now() at the first and the last token */
} stream;

static bool on_token(int32_t token, void *user)
{
    stream *s = user;
    s->last = cli_now();
    if (s->seen++ == 0) s->first = s->last;
    if (s->quiet) return true;
    char text[TOKEN_MAX_BYTES];
    size_t len = 0;
    s->status = attn_text_decode(s->vocab, &token, 1, text, sizeof text, &len);
    if (s->status != ATTN_OK) return false;
    if (s->terminal)
        cli_write_text(stdout, text, len, true);
    else
        fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

/* The JSON report; start: cli_now() when generation began. */
static void print_json(const generate_options *o, const cli_gpt_model *m, const char *prompt,
                       const char *text, int prompt_tokens, int produced, double seconds,
                       const stream *s, double start)
{
    const int block = attn_gpt_get_config(m->model)->block_size;
    const size_t cache_bytes =
        o->no_cache ? 0 : attn_gpt_cache_bytes(m->model, block, o->precision);
    const double prefill = s->first - start, decode = s->last - s->first;
    printf("{\"model\": ");
    cli_json_string(stdout, o->path);
    printf(", \"prompt\": ");
    cli_json_string(stdout, prompt);
    printf(", \"text\": ");
    cli_json_string(stdout, text);
    printf(", \"prompt_tokens\": %d, \"tokens\": %d, \"cache\": %s, \"precision\": \"%s\", "
           "\"cache_bytes\": %zu, \"temperature\": %g, "
           "\"top_k\": %d, \"top_p\": %g, \"seed\": %ld, \"prefill_seconds\": %.6f, "
           "\"prefill_tokens_per_s\": %.2f, \"decode_tokens\": %d, \"decode_seconds\": %.6f, "
           "\"decode_tokens_per_s\": %.2f, \"seconds\": %.6f, \"tokens_per_s\": %.2f}\n",
           prompt_tokens, produced, o->no_cache ? "false" : "true",
           attn_precision_name(o->precision), cache_bytes, (double)o->sampling.temperature, o->sampling.top_k, (double)o->sampling.top_p, o->seed,
           prefill, prefill > 0 ? prompt_tokens / prefill : 0.0, produced - 1, decode,
           decode > 0 ? (produced - 1) / decode : 0.0, seconds,
           seconds > 0 ? produced / seconds : 0.0);
}

/* Decodes the generated tokens: out (produced) and prints the JSON report. */
static int report_json(const generate_options *o, const cli_gpt_model *m, const char *prompt,
                       const int32_t *out, int produced, int prompt_tokens, double seconds,
                       const stream *s, double start)
{
    size_t cap = (size_t)produced * TOKEN_MAX_BYTES + 1, len = 0;
    char *text = malloc(cap);
    if (text == NULL) {
        cli_message(stderr, "attn generate: out of memory\n");
        return EXIT_RUNTIME;
    }
    int status = EXIT_OK;
    if (attn_text_decode(&m->vocab, out, (size_t)produced, text, cap, &len) != ATTN_OK)
        status = cli_fail("generate");
    else
        print_json(o, m, prompt, text, prompt_tokens, produced, seconds, s, start);
    free(text);
    return status;
}

/* A token's text as a record's label: a character, or for a byte that is no
 * character by itself (bytes vocabularies) and for NUL, "<0xNN>" / "<U+0000>". */
static void token_label(const attn_text_vocab *v, int32_t id, char *label, size_t size)
{
    size_t len = 0;
    if (v->unit == ATTN_TEXT_BYTES && (id == 0 || id >= 0x80))
        snprintf(label, size, "<0x%02X>", (unsigned)id);
    else if (v->unit == ATTN_TEXT_CHARS && v->chars[id] == 0)
        snprintf(label, size, "<U+0000>");
    else if (attn_text_decode(v, &id, 1, label, size, &len) != ATTN_OK)
        snprintf(label, size, "?");
}

/* Records the attention over the last block_size tokens of context: (count) and
 * out: (produced) into o->attention, the tokens as labels. */
static int record_attention(const generate_options *o, const cli_gpt_model *m,
                            const int32_t *context, int count, const int32_t *out, int produced)
{
    const int block = attn_gpt_get_config(m->model)->block_size;
    const int n = count + produced < block ? count + produced : block;
    const int skip = count + produced - n; /* the oldest tokens, dropped */
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    char *text = malloc((size_t)n * TOKEN_LABEL_BYTES);
    const char **labels = malloc((size_t)n * sizeof *labels);
    attn_record r;
    attn_record_init(&r, "gpt", "text");
    int status = EXIT_OK;
    if (ids == NULL || text == NULL || labels == NULL) {
        cli_message(stderr, "attn generate: out of memory\n");
        status = EXIT_RUNTIME;
    } else {
        for (int i = 0; i < n; i++) {
            const int k = skip + i;
            ids[i] = k < count ? context[k] : out[k - count];
            labels[i] = text + (size_t)i * TOKEN_LABEL_BYTES;
            token_label(&m->vocab, ids[i], text + (size_t)i * TOKEN_LABEL_BYTES, TOKEN_LABEL_BYTES);
        }
        attn_record_options extras = o->extras.options;
        if (!o->extras.step_given) extras.gradient_step = n - 1; /* the last token */
        if (attn_gpt_record(m->model, ids, n, NULL, &r, &extras) != ATTN_OK ||
            attn_record_set_queries(&r, labels, n) != ATTN_OK ||
            attn_record_set_keys(&r, labels, n) != ATTN_OK ||
            attn_record_save(&r, o->attention) != ATTN_OK)
            status = cli_fail("generate");
    }
    attn_record_free(&r);
    free(ids);
    free(text);
    free(labels);
    return status;
}

/* Encodes the prompt: (size bytes) into ids: (size + 1) and generates into out:
 * (o->tokens). */
static int run(const generate_options *o, cli_gpt_model *m, const char *prompt, size_t size,
               int32_t *ids, int32_t *out)
{
    const attn_gpt_config *cfg = attn_gpt_get_config(m->model);
    size_t count = 0;
    if (attn_text_encode(&m->vocab, prompt, size, ids, size + 1, &count) != ATTN_OK) {
        cli_message(stderr, "attn generate: the prompt: %s\n", attn_last_error());
        return EXIT_RUNTIME;
    }
    if (count == 0) {
        cli_message(stderr, "attn generate: the prompt is empty\n");
        return EXIT_RUNTIME;
    }
    const int32_t *context = ids;
    if (count > (size_t)cfg->block_size) {
        cli_message(stderr,
                    "attn generate: the prompt's %zu tokens exceed the model's block size %d; it "
                    "continues the last %d\n",
                    count, cfg->block_size, cfg->block_size);
        context = ids + (count - (size_t)cfg->block_size);
        count = (size_t)cfg->block_size;
    }
    stream s = {.vocab = &m->vocab,
                .status = ATTN_OK,
                .terminal = isatty(fileno(stdout)) == 1,
                .quiet = o->json};
    attn_generate_options gen = {.n_new = (int)o->tokens,
                                 .sampling = o->sampling,
                                 .seed = (uint64_t)o->seed,
                                 .use_cache = !o->no_cache,
                                 .precision = o->precision,
                                 .on_token = on_token,
                                 .user = &s};
    if (!o->json) {
        if (s.terminal)
            cli_write_text(stdout, prompt, size, true);
        else
            fwrite(prompt, 1, size, stdout);
        fflush(stdout);
    }
    int produced = 0;
    double start = cli_now();
    attn_status generated = attn_gpt_generate(m->model, out, &produced, context, (int)count, &gen);
    double seconds = cli_now() - start;
    if (!o->json) printf("\n");
    if (generated != ATTN_OK || s.status != ATTN_OK) return cli_fail("generate");
    int status =
        o->json ? report_json(o, m, prompt, out, produced, (int)count, seconds, &s, start) : EXIT_OK;
    if (status == EXIT_OK && o->attention)
        status = record_attention(o, m, context, (int)count, out, produced);
    return status;
}

int cmd_generate(int argc, char **argv)
{
    generate_options o;
    int status = parse_options(argc, argv, &o);
    if (status != EXIT_OK) return status < 0 ? EXIT_OK : status;
    if (o.threads && attn_set_num_threads((int)o.threads) != ATTN_OK) return cli_fail("generate");
    const cli_path inputs[] = {{"--model", o.path}, {"--prompt-file", o.prompt_file}};
    const cli_path record = {"--attention", o.attention};
    if ((status = cli_check_paths("generate", inputs, 2, &record, 1))) return status;
    size_t size = 0;
    char *from_file = NULL;
    if (o.prompt_file &&
        attn_read_file(o.prompt_file, PROMPT_BYTES_MAX, "a prompt", &from_file, &size) != ATTN_OK)
        return cli_fail("generate");
    const char *prompt = from_file ? from_file : o.prompt;
    if (from_file == NULL) size = strlen(prompt);
    cli_gpt_model m;
    int32_t *ids = malloc((size + 1) * sizeof *ids);
    int32_t *out = malloc((size_t)o.tokens * sizeof *out);
    if (ids == NULL || out == NULL) {
        cli_message(stderr, "attn generate: out of memory\n");
        status = EXIT_RUNTIME;
    } else if ((status = cli_gpt_load(o.path, &m, NULL)) == EXIT_OK) {
        status = run(&o, &m, prompt, size, ids, out);
        cli_gpt_free(&m);
    }
    free(ids);
    free(out);
    free(from_file);
    if (status == EXIT_OK && (fflush(stdout) != 0 || ferror(stdout))) {
        cli_message(stderr, "attn generate: could not write the text\n");
        status = EXIT_RUNTIME;
    }
    return status;
}
