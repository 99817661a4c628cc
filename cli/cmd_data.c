/* attn data: prints examples of a built-in task, as text or as JSON, or the
 * windows a language model trains on. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"

enum { DEFAULT_COUNT = 10, MAX_COUNT = 100000000, TEXT_CAP = 256 };

typedef struct data_options {
    attn_task_kind task;
    attn_split split;
    long count, seed;
    bool json;
    /* --task text */
    bool text;
    const char *data;
    attn_text_unit unit;
    long block, batch, steps, first_step;
} data_options;

static void print_help(void)
{
    printf("usage: attn data [options]\n"
           "\n"
           "Prints examples of a built-in task: the source text and the target the model\n"
           "is trained to write. Each example belongs to one split by a hash of its\n"
           "source, so no source is in two splits. The valid and test sets are fixed (the\n"
           "same for every seed); training examples come from a stream keyed by the seed.\n"
           "\n"
           "tasks:\n"
           "  dates    a date between 1900 and 2099 written in one of 18 human formats\n"
           "           (\"Tue, 24 Nov 2026\", \"the 24th of November 2026\", \"24/11/2026\",\n"
           "           ...) -> ISO \"2026-11-24\"; numbers separated by '/' are always day\n"
           "           first; a two-digit year (\"24-NOV-26\") means 1950-2049\n"
           "  reverse  1 to 20 digits -> the same digits reversed\n"
           "  sort     1 to 20 digits -> the same digits in ascending order\n"
           "  copy     1 to 20 digits -> the same digits\n"
           "\n"
           "  --task NAME    dates, reverse, sort or copy (default dates)\n"
           "  --split NAME   train, valid or test (default train)\n"
           "  --count N      examples to print, from the first (default %d; at most the\n"
           "                 size of a fixed set)\n"
           "  --seed N       seed of the training stream (default 1)\n"
           "  --json         a JSON array of {\"source\": ..., \"target\": ...}\n"
           "  -h, --help     this help\n"
           "\n"
           "usage: attn data --task text --data FILE [options]\n"
           "\n"
           "Prints where the training windows of attn train --task text start: a line per\n"
           "step, the --batch window starts of that step (token offsets into the whole\n"
           "text) separated by spaces. Each window holds --block + 1 tokens: the model\n"
           "reads the first --block and predicts the last --block.\n"
           "\n"
           "  --data FILE       the text\n"
           "  --unit U          chars or bytes (default chars)\n"
           "  --block N         tokens a window trains on (default 64)\n"
           "  --batch N         windows a step (default 12)\n"
           "  --steps N         steps to print (default 1)\n"
           "  --first-step K    the first step printed (default 0)\n"
           "  --seed N          the training run's seed (default 1)\n",
           DEFAULT_COUNT);
}

static bool parse_split(const char *name, attn_split *split)
{
    static const struct {
        const char *name;
        attn_split split;
    } splits[] = {
        {"train", ATTN_SPLIT_TRAIN},
        {"valid", ATTN_SPLIT_VALID},
        {"test", ATTN_SPLIT_TEST},
    };
    for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++) {
        if (strcmp(name, splits[i].name) == 0) {
            *split = splits[i].split;
            return true;
        }
    }
    return false;
}

enum { OPT_DATA = 256, OPT_UNIT, OPT_BLOCK, OPT_BATCH, OPT_STEPS, OPT_FIRST_STEP };

static const struct option options[] = {
    {"task", required_argument, NULL, 't'},
    {"split", required_argument, NULL, 's'},
    {"count", required_argument, NULL, 'n'},
    {"seed", required_argument, NULL, 'S'},
    {"json", no_argument, NULL, 'j'},
    {"data", required_argument, NULL, OPT_DATA},
    {"unit", required_argument, NULL, OPT_UNIT},
    {"block", required_argument, NULL, OPT_BLOCK},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"first-step", required_argument, NULL, OPT_FIRST_STEP},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static bool is_text_option(int c) { return c >= OPT_DATA; }
static bool is_task_option(int c) { return c == 's' || c == 'n' || c == 'j'; }

#define BAD_VALUE(opt, range) \
    cli_usage_error("data", "--%s takes %s, not '%s'", opt, range, optarg)

static int parse_options(int argc, char **argv, data_options *o)
{
    *o = (data_options){.task = ATTN_TASK_DATES,
                        .split = ATTN_SPLIT_TRAIN,
                        .count = DEFAULT_COUNT,
                        .seed = 1,
                        .unit = ATTN_TEXT_CHARS,
                        .block = 64,
                        .batch = 12,
                        .steps = 1};
    int c, index = -1;
    opterr = 0;
    /* --task text changes which options apply, so it is found first. */
    for (optind = 1; (c = getopt_long(argc, argv, ":h", options, NULL)) != -1;)
        if (c == 't') o->text = strcmp(optarg, "text") == 0;
    for (optind = 1; (c = getopt_long(argc, argv, ":h", options, &index)) != -1; index = -1) {
        if (o->text && is_task_option(c))
            return cli_usage_error("data", "--%s is for the built-in tasks, not --task text",
                                   options[index].name);
        if (!o->text && is_text_option(c))
            return cli_usage_error("data", "--%s is for --task text", options[index].name);
        switch (c) {
        case 't':
            if (!o->text && attn_task_parse(&o->task, optarg) != ATTN_OK)
                return cli_usage_error("data", "--task: %s, or text", attn_last_error());
            break;
        case 's':
            if (!parse_split(optarg, &o->split))
                return cli_usage_error("data", "--split takes train, valid or test, not '%s'",
                                       optarg);
            break;
        case 'n':
            if (!cli_parse_int(optarg, 1, MAX_COUNT, &o->count))
                return cli_usage_error("data", "--count takes 1 to %d, not '%s'", MAX_COUNT,
                                       optarg);
            break;
        case 'S':
            if (!cli_parse_int(optarg, 0, LONG_MAX, &o->seed))
                return cli_usage_error("data", "--seed takes 0 to %ld, not '%s'", LONG_MAX,
                                       optarg);
            break;
        case 'j': o->json = true; break;
        case OPT_DATA: o->data = optarg; break;
        case OPT_UNIT:
            if (attn_text_unit_parse(&o->unit, optarg) != ATTN_OK)
                return cli_usage_error("data", "--unit: %s", attn_last_error());
            break;
        case OPT_BLOCK:
            if (!cli_parse_int(optarg, 1, 1 << 20, &o->block))
                return BAD_VALUE("block", "1 to 1048576");
            break;
        case OPT_BATCH:
            if (!cli_parse_int(optarg, 1, 65536, &o->batch))
                return BAD_VALUE("batch", "1 to 65536");
            break;
        case OPT_STEPS:
            if (!cli_parse_int(optarg, 1, MAX_COUNT, &o->steps))
                return BAD_VALUE("steps", "1 to 1e8");
            break;
        case OPT_FIRST_STEP:
            if (!cli_parse_int(optarg, 0, MAX_COUNT, &o->first_step))
                return BAD_VALUE("first-step", "0 to 1e8");
            break;
        case 'h': print_help(); return -1;
        case ':':
            return cli_usage_error("data", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("data", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("data", "unexpected argument '%s'", argv[optind]);
    if (o->text && o->data == NULL)
        return cli_usage_error("data", "--task text needs --data FILE");
    return EXIT_OK;
}

/* The window starts of the steps asked for, as attn train --task text draws them. */
static int print_text_windows(const data_options *o)
{
    attn_text text;
    if (attn_text_load(&text, o->data, o->unit, (int)o->block) != ATTN_OK)
        return cli_fail("data");
    for (long s = 0; s < o->steps; s++) {
        for (long b = 0; b < o->batch; b++)
            printf("%s%lld", b ? " " : "",
                   (long long)attn_text_train_start(&text, (uint64_t)o->seed,
                                                    (int64_t)(o->first_step + s), (int)b,
                                                    (int)o->block));
        printf("\n");
    }
    attn_text_free(&text);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "attn data: could not write the windows\n");
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

int cmd_data(int argc, char **argv)
{
    data_options o;
    int parsed = parse_options(argc, argv, &o);
    if (parsed != EXIT_OK) return parsed < 0 ? EXIT_OK : parsed;
    if (o.text) return print_text_windows(&o);
    attn_task task;
    if (attn_task_init(&task, o.task) != ATTN_OK) return cli_fail("data");
    static const char *const split_names[] = {"train", "valid", "test"};
    if (o.split != ATTN_SPLIT_TRAIN) {
        long size = o.split == ATTN_SPLIT_VALID ? task.valid_size : task.test_size;
        if (o.count > size)
            return cli_usage_error("data",
                                   "--count %ld is more than the %ld examples of the %s %s set",
                                   o.count, size, attn_task_name(o.task), split_names[o.split]);
    }
    if (o.json) printf("[");
    for (long i = 0; i < o.count; i++) {
        char src[TEXT_CAP], tgt[TEXT_CAP];
        if (attn_task_example(&task, o.split, (uint64_t)o.seed, (uint64_t)i, src, sizeof src, tgt,
                              sizeof tgt) != ATTN_OK)
            return cli_fail("data");
        if (o.json) {
            printf("%s\n  {\"source\": ", i ? "," : "");
            cli_json_string(stdout, src);
            printf(", \"target\": ");
            cli_json_string(stdout, tgt);
            printf("}");
        } else {
            printf("%-*s  \u2192  %s\n", task.max_src_len, src, tgt);
        }
    }
    if (o.json) printf("\n]\n");
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "attn data: could not write the examples\n");
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}
