/* attn eval: the exact-match accuracy of a trained model on a split of its task. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"

static void print_help(void)
{
    printf("usage: attn eval --model FILE [options]\n"
           "\n"
           "Decodes every example of a fixed split of the model's task and prints the\n"
           "share whose output equals the target exactly.\n"
           "\n"
           "  --model FILE     a model written by attn train\n"
           "  --split NAME     test or valid (default test)\n"
           "  --beam N         beam width (default 1, greedy)\n"
           "  --threads N      threads (default: ATTN_NUM_THREADS or all cores)\n"
           "  --json           print the result as JSON\n"
           "  -h, --help       this help\n");
}

int cmd_eval(int argc, char **argv)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'}, {"split", required_argument, NULL, 's'},
        {"beam", required_argument, NULL, 'b'},  {"threads", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    attn_split split = ATTN_SPLIT_TEST;
    long beam = 1, threads = 0;
    bool json = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'm': path = optarg; break;
        case 's':
            if (strcmp(optarg, "test") == 0) split = ATTN_SPLIT_TEST;
            else if (strcmp(optarg, "valid") == 0) split = ATTN_SPLIT_VALID;
            else return cli_usage_error("eval", "--split takes test or valid, not '%s'", optarg);
            break;
        case 'b':
            if (!cli_parse_int(optarg, 1, 64, &beam))
                return cli_usage_error("eval", "--beam takes 1 to 64, not '%s'", optarg);
            break;
        case 't':
            if (!cli_parse_int(optarg, 1, 1024, &threads))
                return cli_usage_error("eval", "--threads takes 1 to 1024, not '%s'", optarg);
            break;
        case 'j': json = true; break;
        case 'h': print_help(); return EXIT_OK;
        case ':': return cli_usage_error("eval", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("eval", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("eval", "unexpected argument '%s'", argv[optind]);
    if (path == NULL) return cli_usage_error("eval", "--model FILE is required");
    if (threads && attn_set_num_threads((int)threads) != ATTN_OK) return cli_fail("eval");

    cli_model m;
    int status = cli_model_load(path, &m, NULL);
    if (status != EXIT_OK) return status;
    cli_eval_result r;
    status = cli_evaluate(m.model, &m.task, split, (int)beam, &r);
    if (status == EXIT_OK) {
        const char *split_name = split == ATTN_SPLIT_TEST ? "test" : "valid";
        double accuracy = 100.0 * (double)r.exact / (double)r.examples;
        if (json) {
            printf("{\"model\": ");
            cli_json_string(stdout, path);
            printf(", \"task\": \"%s\", \"split\": \"%s\", \"beam\": %ld, \"examples\": %lld, "
                   "\"exact\": %lld, \"accuracy\": %.4f, \"seconds\": %.3f}\n",
                   attn_task_name(m.task.kind), split_name, beam, (long long)r.examples,
                   (long long)r.exact, accuracy, r.seconds);
        } else {
            printf("%s exact match: %.2f%% (%lld of %lld), beam %ld, %.2f s\n", split_name,
                   accuracy, (long long)r.exact, (long long)r.examples, beam, r.seconds);
        }
    }
    cli_model_free(&m);
    return status;
}
