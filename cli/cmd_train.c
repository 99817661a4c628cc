/* attn train: parses the options, and trains a sequence-to-sequence model with
 * attention on a built-in task in the training loop (train_loop.c), then reports
 * the test split's exact-match accuracy; with --task text it parses the options
 * of a language model and hands the run to train_text.c.
 *
 * Every step's batch, dropout and sampling are keyed by (seed, step), so that a
 * resumed run repeats them. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "train_loop.h"

typedef struct train_options {
    bool text; /* --task text, or --resume of a language model */
    attn_task_kind task;
    attn_seq2seq_config model; /* sizes; vocabularies and lengths come from the task */
    cli_train_options train;
    cli_text_run lm; /* --task text; its train.opt is `train` once parsed */
    long threads, stop_at, beam;
    const char *out, *resume;
    bool json;
    bool model_given; /* an option that shapes the model or its training was given */
    bool steps_given, eval_every_given;
} train_options;

static void print_help(void)
{
    printf("usage: attn train [options]\n"
           "       attn train --task text --data FILE [options]\n"
           "\n"
           "Trains an encoder-decoder model with attention on a built-in task (by default\n"
           "human-written dates -> ISO dates), or with --task text a decoder-only\n"
           "Transformer language model on a UTF-8 text file. It validates every\n"
           "--eval-every steps and saves a checkpoint each time, then prints the test\n"
           "split's exact-match accuracy (a language model: the validation loss). Ctrl-C\n"
           "(or SIGTERM, SIGHUP) stops after the current step and saves a checkpoint that\n"
           "--resume continues exactly; the status is then 128 + the signal (130, 143, 129).\n"
           "Under mpirun (`mpirun -np N attn train ...`, attn built with MPI: attn info)\n"
           "each rank trains on a part of every batch and the checkpoint equals that of\n"
           "--accumulate N in one process; rank 0 reports and saves.\n"
           "\n"
           "  --task NAME        dates, reverse, sort, copy, or text (default dates)\n"
           "  --steps N          training steps, the length of the schedule (default\n"
           "                     1000; 1500 for hard-gumbel, 3000 for hard-reinforce;\n"
           "                     2000 for text)\n"
           "  --batch N          examples per step (default 64; 12 for text)\n"
           "  --lr F             peak learning rate (AdamW; default 3e-3; 1e-3 for text)\n"
           "  --min-lr F         learning rate at the end of the cosine decay (1e-4)\n"
           "  --warmup N         steps of linear warm-up (100)\n"
           "  --weight-decay F   AdamW weight decay (0.01; 0.1 for text, on the weights\n"
           "                     and embeddings only)\n"
           "  --clip F           clip the gradient's global norm to F (0: no clipping; 1)\n"
           "  --eval-every N     validate and checkpoint every N steps (250; for text 0\n"
           "                     means only at the end)\n"
           "  --seed N           seed of the weights, data, dropout and sampling (1)\n"
           "  --threads N        threads (default: ATTN_NUM_THREADS or all cores)\n"
           "  --out FILE         checkpoint file (default TASK.safetensors, or the\n"
           "                     --resume file)\n"
           "  --resume FILE      continue a checkpoint's run (its model and options)\n"
           "  --stop-at N        stop after step N and save, as if interrupted\n"
           "  --accumulate K     gradient accumulation: each step's batch in K micro-batches,\n"
           "                     their gradients summed into one update (1)\n"
           "  --replicas R       (text) R copies of the model, each on a thread of its own,\n"
           "                     train R micro-batches at a time: the checkpoint of\n"
           "                     --accumulate R, faster on a small model (1)\n"
           "  --zero 1           under mpirun, shard AdamW's moments over the ranks\n"
           "                     (ZeRO stage 1; the same result in 1/N of their memory)\n"
           "  --precision P      float32, or bf16: mixed precision, the products of the\n"
           "                     Linears, the RNN cells, attention and the output layer\n"
           "                     on bfloat16 operands with float32 sums; weights,\n"
           "                     optimizer and checkpoint float32 (float32; kept by\n"
           "                     --resume)\n"
           "  --json             print the final report as JSON\n"
           "  -h, --help         this help\n"
           "\n"
           "sequence-to-sequence tasks:\n"
           "  --model ARCH       rnn-bahdanau, gru-bahdanau, lstm-bahdanau, lstm-luong-dot,\n"
           "                     lstm-luong-general or transformer (default gru-bahdanau)\n"
           "  --attention KIND   soft, hard-reinforce or hard-gumbel (default soft)\n"
           "  --embed N          token embedding size\n"
           "  --hidden N         RNN hidden size, or the transformer's d_model\n"
           "  --layers N         encoder and decoder layers\n"
           "  --heads N          transformer heads\n"
           "  --ff N             transformer feed-forward size\n"
           "  --dropout P        dropout probability\n"
           "  --label-smoothing F\n"
           "  --beam N           beam width of the final test decoding (default 1)\n"
           "\n"
           "language model (--task text):\n"
           "  --data FILE        the text: the first 90%% of its tokens train, the rest\n"
           "                     validate (with --resume: instead of the checkpoint's file,\n"
           "                     which must have the same vocabulary)\n"
           "  --unit U           chars (a token per distinct character) or bytes\n"
           "                     (default chars)\n"
           "  --layers N         Transformer blocks (4)\n"
           "  --heads N          attention heads (4)\n"
           "  --kv-heads N       key/value heads, dividing --heads: grouped-query\n"
           "                     attention, multi-query with 1 (0: as many as --heads)\n"
           "  --embd N           embedding width (128)\n"
           "  --block N          context length in tokens (64)\n"
           "  --positions KIND   learned, sinusoidal, rope or alibi (learned)\n"
           "  --window N         sliding-window attention over N tokens (0: all before)\n"
           "  --no-bias          no biases in the Linears and LayerNorms\n"
           "  --no-tie           an output layer of its own, not the token embedding\n"
           "  --dropout P        dropout probability (0)\n"
           "  --eval-windows N   validation windows of --block tokens (64)\n");
}

/* Steps that reach the accuracy targets on the dates task: REINFORCE's sampled
 * gradient needs about three times as many as soft attention. */
static int64_t default_steps(attn_attention_kind kind)
{
    switch (kind) {
    case ATTN_ATTEND_HARD_REINFORCE: return 3000;
    case ATTN_ATTEND_HARD_GUMBEL: return 1500;
    case ATTN_ATTEND_SOFT: break;
    }
    return 1000;
}

/* The defaults of a run: the sizes come from attn_seq2seq_defaults, or for
 * text from attn_gpt_defaults; the training options are nanoGPT's for text. */
static void set_defaults(train_options *o, bool text)
{
    *o = (train_options){0};
    o->text = text;
    o->task = ATTN_TASK_DATES;
    o->model = attn_seq2seq_defaults(ATTN_S2S_GRU_BAHDANAU, ATTN_ATTEND_SOFT);
    o->train = (cli_train_options){.steps = default_steps(o->model.attention),
                                   .batch = 64,
                                   .warmup = 100,
                                   .eval_every = 250,
                                   .lr = 3e-3f,
                                   .min_lr = 1e-4f,
                                   .weight_decay = 0.01f,
                                   .clip = 1.0f,
                                   .label_smoothing = 0.0f,
                                   .seed = 1};
    o->beam = 1;
    o->lm.accumulate = 1;
    o->lm.replicas = 1;
    o->lm.model = attn_gpt_defaults();
    o->lm.unit = ATTN_TEXT_CHARS;
    o->lm.train.eval_windows = 64;
    if (text) {
        o->train.steps = 2000;
        o->train.batch = 12;
        o->train.lr = 1e-3f;
        o->train.weight_decay = 0.1f;
    }
}

enum {
    OPT_TASK = 256, OPT_MODEL, OPT_ATTENTION, OPT_EMBED, OPT_HIDDEN, OPT_LAYERS, OPT_HEADS,
    OPT_FF, OPT_DROPOUT, OPT_STEPS, OPT_BATCH, OPT_LR, OPT_MIN_LR, OPT_WARMUP, OPT_WD, OPT_CLIP,
    OPT_SMOOTHING, OPT_EVAL_EVERY, OPT_SEED, OPT_THREADS, OPT_OUT, OPT_RESUME, OPT_STOP_AT,
    OPT_BEAM, OPT_JSON, OPT_DATA, OPT_UNIT, OPT_KV_HEADS, OPT_EMBD, OPT_BLOCK, OPT_POSITIONS,
    OPT_WINDOW, OPT_NO_BIAS, OPT_NO_TIE, OPT_EVAL_WINDOWS, OPT_ACCUMULATE, OPT_ZERO, OPT_PRECISION,
    OPT_REPLICAS,
};

static const struct option options[] = {
    {"task", required_argument, NULL, OPT_TASK},
    {"model", required_argument, NULL, OPT_MODEL},
    {"attention", required_argument, NULL, OPT_ATTENTION},
    {"embed", required_argument, NULL, OPT_EMBED},
    {"hidden", required_argument, NULL, OPT_HIDDEN},
    {"layers", required_argument, NULL, OPT_LAYERS},
    {"heads", required_argument, NULL, OPT_HEADS},
    {"ff", required_argument, NULL, OPT_FF},
    {"dropout", required_argument, NULL, OPT_DROPOUT},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"lr", required_argument, NULL, OPT_LR},
    {"min-lr", required_argument, NULL, OPT_MIN_LR},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"weight-decay", required_argument, NULL, OPT_WD},
    {"clip", required_argument, NULL, OPT_CLIP},
    {"label-smoothing", required_argument, NULL, OPT_SMOOTHING},
    {"eval-every", required_argument, NULL, OPT_EVAL_EVERY},
    {"seed", required_argument, NULL, OPT_SEED},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"out", required_argument, NULL, OPT_OUT},
    {"resume", required_argument, NULL, OPT_RESUME},
    {"stop-at", required_argument, NULL, OPT_STOP_AT},
    {"beam", required_argument, NULL, OPT_BEAM},
    {"json", no_argument, NULL, OPT_JSON},
    {"data", required_argument, NULL, OPT_DATA},
    {"unit", required_argument, NULL, OPT_UNIT},
    {"kv-heads", required_argument, NULL, OPT_KV_HEADS},
    {"embd", required_argument, NULL, OPT_EMBD},
    {"block", required_argument, NULL, OPT_BLOCK},
    {"positions", required_argument, NULL, OPT_POSITIONS},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"no-bias", no_argument, NULL, OPT_NO_BIAS},
    {"no-tie", no_argument, NULL, OPT_NO_TIE},
    {"eval-windows", required_argument, NULL, OPT_EVAL_WINDOWS},
    {"accumulate", required_argument, NULL, OPT_ACCUMULATE},
    {"replicas", required_argument, NULL, OPT_REPLICAS},
    {"zero", required_argument, NULL, OPT_ZERO},
    {"precision", required_argument, NULL, OPT_PRECISION},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Which runs an option belongs to. */
enum { FOR_SEQ2SEQ = 1, FOR_TEXT = 2, FOR_BOTH = 3 };

static int option_runs(int c)
{
    switch (c) {
    case OPT_MODEL:
    case OPT_ATTENTION:
    case OPT_EMBED:
    case OPT_HIDDEN:
    case OPT_FF:
    case OPT_SMOOTHING:
    case OPT_BEAM: return FOR_SEQ2SEQ;
    case OPT_DATA:
    case OPT_UNIT:
    case OPT_KV_HEADS:
    case OPT_EMBD:
    case OPT_BLOCK:
    case OPT_POSITIONS:
    case OPT_WINDOW:
    case OPT_NO_BIAS:
    case OPT_NO_TIE:
    case OPT_EVAL_WINDOWS:
    case OPT_REPLICAS: return FOR_TEXT;
    default: return FOR_BOTH;
    }
}

#define BAD_VALUE(opt, range) \
    cli_usage_error("train", "--%s takes %s, not '%s'", opt, range, optarg)

/* Whether an option shapes the model or its training, which a resumed run
 * takes from its file instead; --task text only names the kind of run. */
static bool shapes_run(const train_options *o, int c)
{
    switch (c) {
    case OPT_STEPS:
    case OPT_EVAL_EVERY:
    case OPT_EVAL_WINDOWS:
    case OPT_DATA:
    case OPT_THREADS:
    case OPT_OUT:
    case OPT_RESUME:
    case OPT_STOP_AT:
    case OPT_BEAM:
    case OPT_ACCUMULATE:
    case OPT_REPLICAS:
    case OPT_ZERO:
    case OPT_JSON: return false;
    case OPT_TASK: return !o->text;
    default: return true;
    }
}

/* The options every run has, and those of a language model's run that do not
 * shape the model. */
static int parse_run(train_options *o, int c)
{
    cli_train_options *t = &o->train;
    long v;
    switch (c) {
    case OPT_STEPS:
        if (!cli_parse_int(optarg, 1, 100000000, &v)) return BAD_VALUE("steps", "1 to 1e8");
        t->steps = v;
        o->steps_given = true;
        break;
    case OPT_BATCH:
        if (!cli_parse_int(optarg, 1, 65536, &v)) return BAD_VALUE("batch", "1 to 65536");
        t->batch = v;
        break;
    case OPT_LR:
        if (!cli_parse_float(optarg, 1e-8f, 10.0f, &t->lr)) return BAD_VALUE("lr", "1e-8 to 10");
        break;
    case OPT_MIN_LR:
        if (!cli_parse_float(optarg, 0.0f, 10.0f, &t->min_lr))
            return BAD_VALUE("min-lr", "0 to 10");
        break;
    case OPT_WARMUP:
        if (!cli_parse_int(optarg, 0, 100000000, &v)) return BAD_VALUE("warmup", "0 to 1e8");
        t->warmup = v;
        break;
    case OPT_WD:
        if (!cli_parse_float(optarg, 0.0f, 10.0f, &t->weight_decay))
            return BAD_VALUE("weight-decay", "0 to 10");
        break;
    case OPT_CLIP:
        if (!cli_parse_float(optarg, 0.0f, 1e6f, &t->clip)) return BAD_VALUE("clip", "0 to 1e6");
        break;
    case OPT_EVAL_EVERY:
        /* A language model can skip validation until the end (timing runs do). */
        if (!cli_parse_int(optarg, o->text ? 0 : 1, 100000000, &v))
            return BAD_VALUE("eval-every", o->text ? "0 to 1e8" : "1 to 1e8");
        t->eval_every = v;
        o->eval_every_given = true;
        break;
    case OPT_SEED:
        if (!cli_parse_int(optarg, 0, 2147483647L, &v))
            return BAD_VALUE("seed", "0 to 2147483647");
        t->seed = (uint64_t)v;
        break;
    case OPT_THREADS:
        if (!cli_parse_int(optarg, 1, 1024, &o->threads)) return BAD_VALUE("threads", "1 to 1024");
        break;
    case OPT_OUT: o->out = optarg; break;
    case OPT_RESUME: o->resume = optarg; break;
    case OPT_STOP_AT:
        if (!cli_parse_int(optarg, 1, 100000000, &o->stop_at))
            return BAD_VALUE("stop-at", "1 to 1e8");
        break;
    case OPT_BEAM:
        if (!cli_parse_int(optarg, 1, 64, &o->beam)) return BAD_VALUE("beam", "1 to 64");
        break;
    case OPT_JSON: o->json = true; break;
    case OPT_ACCUMULATE:
        if (!cli_parse_int(optarg, 1, 65536, &v)) return BAD_VALUE("accumulate", "1 to 65536");
        o->lm.accumulate = (int)v;
        break;
    case OPT_REPLICAS:
        if (!cli_parse_int(optarg, 1, CLI_MAX_REPLICAS, &v))
            return BAD_VALUE("replicas", "1 to 64");
        o->lm.replicas = (int)v;
        break;
    case OPT_ZERO:
        if (!cli_parse_int(optarg, 0, 1, &v)) return BAD_VALUE("zero", "0 or 1");
        o->lm.zero = v == 1;
        break;
    case OPT_DATA: o->lm.data = optarg; break;
    case OPT_PRECISION:
        if (attn_precision_parse(&t->precision, optarg) != ATTN_OK)
            return BAD_VALUE("precision", "float32 or bf16");
        break;
    case OPT_EVAL_WINDOWS:
        if (!cli_parse_int(optarg, 1, 1000000, &v)) return BAD_VALUE("eval-windows", "1 to 1e6");
        o->lm.train.eval_windows = v;
        o->lm.eval_windows_given = true;
        break;
    }
    return EXIT_OK;
}

/* The options that shape a sequence-to-sequence model, then the others. */
static int parse_seq2seq(train_options *o, int c)
{
    attn_seq2seq_config *m = &o->model;
    long v;
    switch (c) {
    case OPT_TASK:
        if (attn_task_parse(&o->task, optarg) != ATTN_OK)
            return cli_usage_error("train", "--task: %s, or text for a language model",
                                   attn_last_error());
        break;
    case OPT_MODEL:
    case OPT_ATTENTION: break;
    case OPT_EMBED:
        if (!cli_parse_int(optarg, 1, 4096, &v)) return BAD_VALUE("embed", "1 to 4096");
        m->embed_dim = (int)v;
        break;
    case OPT_HIDDEN:
        if (!cli_parse_int(optarg, 1, 4096, &v)) return BAD_VALUE("hidden", "1 to 4096");
        m->hidden_dim = (int)v;
        break;
    case OPT_LAYERS:
        if (!cli_parse_int(optarg, 1, 16, &v)) return BAD_VALUE("layers", "1 to 16");
        m->enc_layers = m->dec_layers = (int)v;
        break;
    case OPT_HEADS:
        if (!cli_parse_int(optarg, 1, 64, &v)) return BAD_VALUE("heads", "1 to 64");
        m->heads = (int)v;
        break;
    case OPT_FF:
        if (!cli_parse_int(optarg, 1, 16384, &v)) return BAD_VALUE("ff", "1 to 16384");
        m->ff_dim = (int)v;
        break;
    case OPT_DROPOUT:
        if (!cli_parse_float(optarg, 0.0f, 0.95f, &m->dropout))
            return BAD_VALUE("dropout", "0 to 0.95");
        break;
    case OPT_SMOOTHING:
        if (!cli_parse_float(optarg, 0.0f, 0.5f, &o->train.label_smoothing))
            return BAD_VALUE("label-smoothing", "0 to 0.5");
        break;
    default: return parse_run(o, c);
    }
    return EXIT_OK;
}

/* The options that shape a language model, then the others. */
static int parse_text(train_options *o, int c)
{
    attn_gpt_config *m = &o->lm.model;
    long v;
    switch (c) {
    case OPT_TASK: break; /* text, as scan_kind found */
    case OPT_UNIT:
        if (attn_text_unit_parse(&o->lm.unit, optarg) != ATTN_OK)
            return cli_usage_error("train", "--unit: %s", attn_last_error());
        break;
    case OPT_LAYERS:
        if (!cli_parse_int(optarg, 1, ATTN_GPT_MAX_LAYERS, &v))
            return cli_usage_error("train", "--layers takes 1 to %d, not '%s'",
                                   ATTN_GPT_MAX_LAYERS, optarg);
        m->n_layer = (int)v;
        break;
    case OPT_HEADS:
        if (!cli_parse_int(optarg, 1, 1024, &v)) return BAD_VALUE("heads", "1 to 1024");
        m->n_head = (int)v;
        break;
    case OPT_KV_HEADS:
        if (!cli_parse_int(optarg, 0, 1024, &v)) return BAD_VALUE("kv-heads", "0 to 1024");
        m->n_kv_head = (int)v;
        break;
    case OPT_EMBD:
        if (!cli_parse_int(optarg, 1, 65536, &v)) return BAD_VALUE("embd", "1 to 65536");
        m->n_embd = (int)v;
        break;
    case OPT_BLOCK:
        if (!cli_parse_int(optarg, 1, 1 << 20, &v)) return BAD_VALUE("block", "1 to 1048576");
        m->block_size = (int)v;
        break;
    case OPT_POSITIONS:
        if (attn_position_parse(&m->position, optarg) != ATTN_OK)
            return cli_usage_error("train", "--positions: %s", attn_last_error());
        break;
    case OPT_WINDOW:
        if (!cli_parse_int(optarg, 0, 1 << 20, &v)) return BAD_VALUE("window", "0 to 1048576");
        m->window = (int)v;
        break;
    case OPT_NO_BIAS: m->bias = false; break;
    case OPT_NO_TIE: m->tie_weights = false; break;
    case OPT_DROPOUT:
        if (!cli_parse_float(optarg, 0.0f, 0.95f, &m->dropout))
            return BAD_VALUE("dropout", "0 to 0.95");
        break;
    default: return parse_run(o, c);
    }
    return EXIT_OK;
}

/* A first pass finds what kind of run this is, since that sets the defaults the
 * other options change: the task (text, or the kind of the --resume file when no
 * task is given), the architecture and the attention. */
static int scan_kind(int argc, char **argv, train_options *o)
{
    const char *task = NULL, *resume = NULL;
    attn_seq2seq_arch arch = ATTN_S2S_GRU_BAHDANAU;
    attn_attention_kind kind = ATTN_ATTEND_SOFT;
    int c;
    opterr = 0;
    for (optind = 1; (c = getopt_long(argc, argv, ":h", options, NULL)) != -1;) {
        if (c == OPT_TASK) task = optarg;
        if (c == OPT_RESUME) resume = optarg;
        if (c == OPT_MODEL && attn_seq2seq_arch_parse(&arch, optarg) != ATTN_OK)
            return cli_usage_error("train", "--model: %s", attn_last_error());
        if (c == OPT_ATTENTION && attn_attention_kind_parse(&kind, optarg) != ATTN_OK)
            return cli_usage_error("train", "--attention: %s", attn_last_error());
    }
    bool text = task ? strcmp(task, "text") == 0 : resume != NULL && cli_is_gpt_file(resume);
    set_defaults(o, text);
    o->model = attn_seq2seq_defaults(arch, kind);
    if (!text) o->train.steps = default_steps(kind);
    return EXIT_OK;
}

static int parse_options(int argc, char **argv, train_options *o)
{
    int status = scan_kind(argc, argv, o);
    if (status != EXIT_OK) return status;
    int c, index = -1;
    for (optind = 1; (c = getopt_long(argc, argv, ":h", options, &index)) != -1; index = -1) {
        if (c == 'h') {
            print_help();
            return -1;
        }
        if (c == ':')
            return cli_usage_error("train", "option '%s' needs a value", argv[optind - 1]);
        if (c == '?') return cli_usage_error("train", "unknown option '%s'", argv[optind - 1]);
        int runs = option_runs(c);
        if (o->text && !(runs & FOR_TEXT))
            return cli_usage_error("train", "--%s is for the sequence-to-sequence tasks, not a "
                                   "language model", options[index].name);
        if (!o->text && !(runs & FOR_SEQ2SEQ))
            return cli_usage_error("train", "--%s is for a language model: add --task text",
                                   options[index].name);
        status = o->text ? parse_text(o, c) : parse_seq2seq(o, c);
        if (status != EXIT_OK) return status;
        if (shapes_run(o, c)) o->model_given = true;
    }
    if (optind < argc) return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (o->resume && o->model_given)
        return cli_usage_error(
            "train", "--resume continues a run with its own model and options; only %s may be "
                     "given with it",
            o->text ? "--data, --steps, --eval-every, --eval-windows, --out, --threads, "
                      "--stop-at, --accumulate, --replicas, --zero and --json"
                    : "--steps, --eval-every, --out, --threads, --stop-at, --accumulate, --zero, "
                      "--beam and --json");
    o->lm.train.opt = o->train;
    o->lm.out = o->out;
    o->lm.resume = o->resume;
    o->lm.stop_at = o->stop_at;
    o->lm.json = o->json;
    o->lm.steps_given = o->steps_given;
    o->lm.eval_every_given = o->eval_every_given;
    return EXIT_OK;
}

/* A new run: the task, the model and a fresh optimizer. */
static int start_run(const train_options *o, cli_model *run, attn_adamw *opt)
{
    memset(run, 0, sizeof *run);
    memset(opt, 0, sizeof *opt);
    if (attn_task_init(&run->task, o->task) != ATTN_OK) return cli_fail("train");
    attn_seq2seq_config cfg = o->model;
    cfg.src_vocab = run->task.src_vocab.size;
    cfg.tgt_vocab = run->task.tgt_vocab.size;
    cfg.max_src_len = run->task.max_src_len;
    cfg.max_tgt_len = run->task.max_tgt_len + 1; /* and EOS */
    run->train = o->train;
    if (attn_seq2seq_create(&run->model, &cfg, o->train.seed) != ATTN_OK)
        return cli_fail("train: the model");
    attn_adamw_config adamw = cli_adamw_config(&o->train);
    if (attn_adamw_init(opt, attn_seq2seq_params(run->model)->total, &adamw) != ATTN_OK) {
        cli_model_free(run);
        return cli_fail("train");
    }
    return EXIT_OK;
}

/* A sequence-to-sequence run as the training loop sees it. */
typedef struct seq2seq_run {
    const train_options *o;
    cli_model *model;
    attn_batch batch;
    cli_eval_result valid; /* the last validation */
} seq2seq_run;

static int seq2seq_step(void *run, int64_t step, const cli_micro_batch *mb, bool count_correct,
                        cli_step_stats *stats)
{
    (void)count_correct; /* the forward pass counts them anyway */
    seq2seq_run *r = run;
    const cli_train_options *t = &r->model->train;
    attn_batch *batch = &r->batch;
    batch->batch = mb->rows;
    if (attn_task_batch(&r->model->task, ATTN_SPLIT_TRAIN, t->seed,
                        (uint64_t)(step * t->batch + mb->first), batch) != ATTN_OK)
        return cli_fail("train: the batch");
    attn_seq2seq_stats s;
    attn_seq2seq_pass pass = {.training = true, .step = step, .seed = mb->seed};
    if (attn_seq2seq_forward(r->model->model, &s, batch, &pass) != ATTN_OK ||
        attn_seq2seq_backward(r->model->model) != ATTN_OK)
        return cli_fail("train");
    double tokens = 0.0;
    for (int b = 0; b < batch->batch; b++) tokens += batch->src_len[b] + batch->tgt_len[b];
    /* The loss is a mean over the target tokens, so steps weigh by their count. */
    *stats = (cli_step_stats){.loss = s.loss,
                              .loss_weight = (double)s.tokens,
                              .correct = (double)s.correct,
                              .predicted = (double)s.tokens,
                              .tokens = tokens};
    return EXIT_OK;
}

static int seq2seq_validate(void *run)
{
    seq2seq_run *r = run;
    return cli_evaluate(r->model->model, &r->model->task, ATTN_SPLIT_VALID, 1, &r->valid);
}

static void seq2seq_print_validation(const void *run, const cli_train_window *w)
{
    const seq2seq_run *r = run;
    fprintf(stderr, "token acc %6.2f%%  valid exact %6.2f%%  ", 100.0 * w->correct / w->predicted,
            100.0 * (double)r->valid.exact / (double)r->valid.examples);
}

static int seq2seq_save(const void *run, const char *out, const attn_adamw *opt)
{
    const seq2seq_run *r = run;
    return cli_model_save(out, r->model, opt);
}

static void print_report(const train_options *o, const cli_model *run, const cli_eval_result *test,
                         const cli_train_totals *totals, const char *out)
{
    const double seconds = totals->loop_seconds, tokens_per_second = totals->tokens / seconds;
    const attn_seq2seq_config *cfg = attn_seq2seq_get_config(run->model);
    double accuracy = 100.0 * (double)test->exact / (double)test->examples;
    if (o->json) {
        printf("{\"task\": \"%s\", \"model\": \"%s\", \"attention\": \"%s\", \"steps\": %lld, "
               "\"batch\": %lld, \"precision\": \"%s\", \"test_examples\": %lld, "
               "\"test_exact\": %lld, "
               "\"test_accuracy\": %.4f, \"train_seconds\": %.3f, \"tokens_per_second\": %.1f, "
               "\"parameters\": %zu, \"ms_per_step\": %.3f, \"steady_ms_per_step\": %.3f, "
               "\"ranks\": %d, \"accumulate\": %d, "
               "\"exchange_ms_per_step\": %.3f, \"wait_ms_per_step\": %.3f, \"checkpoint\": ",
               attn_task_name(run->task.kind), attn_seq2seq_arch_name(cfg->arch),
               attn_attention_kind_name(cfg->attention), (long long)run->step,
               (long long)run->train.batch, attn_precision_name(run->train.precision),
               (long long)test->examples, (long long)test->exact,
               accuracy, seconds, tokens_per_second, attn_seq2seq_params(run->model)->total,
               cli_ms_per_step(totals, totals->step_seconds), cli_steady_ms_per_step(totals),
               totals->ranks, totals->accumulate,
               cli_ms_per_step(totals, totals->exchange_seconds),
               cli_ms_per_step(totals, totals->wait_seconds));
        cli_json_string(stdout, out);
        printf("}\n");
        return;
    }
    printf("%s, %s attention, %s, %s: %lld steps in %.1f s (%.1fk tokens/s)\n",
           attn_seq2seq_arch_name(cfg->arch), attn_attention_kind_name(cfg->attention),
           attn_task_name(run->task.kind), attn_precision_name(run->train.precision),
           (long long)run->step, seconds, tokens_per_second / 1000.0);
    printf("test exact match: %.2f%% (%lld of %lld)\n", accuracy, (long long)test->exact,
           (long long)test->examples);
    cli_print_ranks(totals);
    printf("saved %s\n", out);
}

/* The test split's exact-match accuracy, decoded with --beam. */
static int seq2seq_finish(void *run, const cli_train_totals *totals, const char *out)
{
    seq2seq_run *r = run;
    cli_eval_result test;
    int status = cli_evaluate(r->model->model, &r->model->task, ATTN_SPLIT_TEST, (int)r->o->beam,
                              &test);
    if (status != EXIT_OK) return status;
    print_report(r->o, r->model, &test, totals, out);
    return EXIT_OK;
}

/* AdamW decays every parameter, as torch.optim.AdamW does by default. */
static const cli_train_ops seq2seq_ops = {
    .decay_matrices_only = false,
    .step = seq2seq_step,
    .validate = seq2seq_validate,
    .print_validation = seq2seq_print_validation,
    .save = seq2seq_save,
    .finish = seq2seq_finish,
};

static int train(const train_options *o, cli_model *model, attn_adamw *opt, const char *out)
{
    seq2seq_run run = {.o = o, .model = model};
    if (attn_batch_alloc(&run.batch, &model->task, (int)model->train.batch) != ATTN_OK)
        return cli_fail("train");
    cli_trainer trainer = {.ops = &seq2seq_ops,
                           .run = &run,
                           .params = attn_seq2seq_params(model->model),
                           .buffers = attn_seq2seq_buffers(model->model),
                           .opt = opt,
                           .ranks = o->lm.ranks,
                           .accumulate = o->lm.accumulate,
                           .replicas = 1,
                           .zero = o->lm.zero,
                           .train = &model->train,
                           .step = &model->step,
                           .stop_at = o->stop_at,
                           .start = cli_now(),
                           .out = out,
                           .resumed_from = o->resume};
    int status = cli_train(&trainer);
    attn_batch_free(&run.batch);
    return status;
}

/* A sequence-to-sequence run, new or resumed. */
static int train_seq2seq(const train_options *o)
{
    /* The checkpoint: --out, else the file the run resumes, else TASK.safetensors. */
    char default_out[CLI_PATH_MAX];
    snprintf(default_out, sizeof default_out, "%s.safetensors", attn_task_name(o->task));
    const char *out = o->out ? o->out : o->resume ? o->resume : default_out;
    const cli_path checkpoint = {"--out", out};
    int status = cli_check_paths("train", NULL, 0, &checkpoint, 1);
    if (status != EXIT_OK) return status;
    cli_model run;
    attn_adamw opt;
    if (o->resume) {
        if ((status = cli_model_load(o->resume, &run, &opt))) return status;
        if ((status = cli_check_resumed_steps(o->steps_given, o->train.steps, run.step))) {
            cli_model_free(&run);
            attn_adamw_free(&opt);
            return status;
        }
        /* A longer schedule continues the run, but no longer as one run of that
         * length would have gone. */
        if (o->steps_given) run.train.steps = o->train.steps;
        if (o->eval_every_given) run.train.eval_every = o->train.eval_every;
    } else if ((status = start_run(o, &run, &opt))) {
        return status;
    }
    /* The products' precision is how the run trains (a resumed run's, its file's);
     * its validation and the test decoding run at it too. */
    if (attn_seq2seq_set_precision(run.model, run.train.precision) != ATTN_OK)
        status = cli_fail("train");
    else
        status = train(o, &run, &opt, out);
    cli_model_free(&run);
    attn_adamw_free(&opt);
    return status;
}

/* Ranks on one machine share its cores: by default each takes its part. */
static int set_threads(long threads, const cli_ranks *ranks)
{
    if (threads == 0 && ranks->local_size > 1 && getenv("ATTN_NUM_THREADS") == NULL) {
        threads = attn_get_num_threads() / ranks->local_size;
        if (threads < 1) threads = 1;
    }
    if (threads && attn_set_num_threads((int)threads) != ATTN_OK) return cli_fail("train");
    return EXIT_OK;
}

int cmd_train(int argc, char **argv)
{
    train_options o;
    int status = parse_options(argc, argv, &o);
    if (status != EXIT_OK) return status < 0 ? EXIT_OK : status;
    cli_ranks ranks;
    if ((status = cli_ranks_join(&ranks))) return status;
    /* From here a signal stops the run after its first step at the latest. */
    cli_catch_interrupt();
    o.lm.ranks = &ranks;
    status = set_threads(o.threads, &ranks);
    if (status == EXIT_OK) status = o.text ? cli_train_text(&o.lm) : train_seq2seq(&o);
    /* A rank that failed before the training loop (its files, its memory) ends
     * them all: the others wait for it in the loop's first exchange. */
    if (status != EXIT_OK && !ranks.in_loop) cli_ranks_abort(&ranks, status);
    cli_ranks_leave(&ranks);
    /* From the loop on the ranks end together and rank 0 speaks for them: its
     * status is the job's. The others end with 0, since mpirun ends a job at the
     * first status that is not, which could kill rank 0 before it exits. */
    return ranks.in_loop && ranks.rank != 0 ? EXIT_OK : status;
}
