#define _POSIX_C_SOURCE 200809L /* strdup */
/* attn export: a trained model's state_dict (its parameters and buffers under
 * PyTorch's names) as a plain safetensors file, in float32 or rounded to bf16,
 * for PyTorch or any other reader; the training state (optimizer, steps,
 * options) stays in the model file. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "cli.h"

typedef struct export_options {
    const char *model, *out;
    attn_dtype dtype;
} export_options;

static void print_help(void)
{
    printf("usage: attn export MODEL --out FILE [--dtype float32|bf16]\n"
           "\n"
           "Writes the state_dict of a model written by attn train (a language model or a\n"
           "sequence model) to FILE as safetensors: one tensor per parameter and buffer,\n"
           "named and shaped as in PyTorch's transcription of the model, without the\n"
           "optimizer state. The metadata names the model kind (\"attn.kind\") and holds\n"
           "its configuration (\"model\", JSON), plus \"format\": \"pt\".\n"
           "\n"
           "  --out FILE      the file to write (atomically; not the model itself)\n"
           "  --dtype D       float32 (default: the weights as they are) or bf16 (each\n"
           "                  rounded to the nearest bfloat16, ties to even, as PyTorch's\n"
           "                  .to(torch.bfloat16): half the bytes)\n"
           "  -h, --help      this help\n");
}

static int parse_options(int argc, char **argv, export_options *o)
{
    static const struct option options[] = {
        {"out", required_argument, NULL, 'o'},
        {"dtype", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (export_options){.dtype = ATTN_DTYPE_F32};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'o': o->out = optarg; break;
        case 'd': {
            /* The dtypes offered are the precisions, by the same names. */
            attn_precision precision;
            if (attn_precision_parse(&precision, optarg) != ATTN_OK)
                return cli_usage_error("export", "--dtype takes float32 or bf16, not '%s'",
                                       optarg);
            o->dtype = precision == ATTN_BF16 ? ATTN_DTYPE_BF16 : ATTN_DTYPE_F32;
            break;
        }
        case 'h': print_help(); return -1;
        case ':': return cli_usage_error("export", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("export", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) o->model = argv[optind++];
    if (optind < argc) return cli_usage_error("export", "unexpected argument '%s'", argv[optind]);
    if (o->model == NULL) return cli_usage_error("export", "give the model file to export");
    if (o->out == NULL) return cli_usage_error("export", "--out FILE is required");
    return EXIT_OK;
}

/* The model's tensors: params, then buffers (may be NULL). */
typedef struct exported {
    const attn_params *blocks[2];
    attn_tensor_out *tensors;
    uint16_t *rounded; /* every value rounded to bf16 (--dtype bf16), in block order */
    int count;
} exported;

/* Lays out e's tensors over the blocks' values (float32) or their rounded copy. */
static int lay_out(exported *e, attn_dtype dtype)
{
    size_t values = 0;
    for (int b = 0; b < 2; b++)
        if (e->blocks[b]) {
            e->count += e->blocks[b]->count;
            values += e->blocks[b]->total;
        }
    e->tensors = calloc((size_t)e->count, sizeof *e->tensors);
    if (dtype == ATTN_DTYPE_BF16) e->rounded = malloc(values * sizeof *e->rounded);
    if (e->tensors == NULL || (dtype == ATTN_DTYPE_BF16 && e->rounded == NULL)) {
        cli_message(stderr, "attn export: out of memory\n");
        return EXIT_RUNTIME;
    }
    int t = 0;
    size_t done = 0;
    for (int b = 0; b < 2; b++) {
        const attn_params *p = e->blocks[b];
        if (p == NULL) continue;
        if (e->rounded) attn_bf16_from_float(e->rounded + done, p->data, p->total);
        for (int i = 0; i < p->count; i++, t++) {
            const attn_param *q = &p->items[i];
            e->tensors[t] = (attn_tensor_out){
                .name = q->name,
                .dtype = dtype,
                .ndim = q->ndim,
                .shape = q->shape,
                .data = e->rounded ? (const void *)(e->rounded + done + q->offset)
                                   : (const void *)(p->data + q->offset)};
        }
        done += p->total;
    }
    return EXIT_OK;
}

/* Writes the blocks of a model of `kind` whose configuration is `config` (JSON). */
static int write_export(const export_options *o, const char *kind, const char *config,
                        const attn_params *params, const attn_params *buffers)
{
    exported e = {.blocks = {params, buffers}};
    int status = lay_out(&e, o->dtype);
    const attn_metadata_pair meta[] = {{"format", "pt"}, {"attn.kind", kind}, {"model", config}};
    if (status == EXIT_OK &&
        attn_safetensors_save(o->out, e.tensors, e.count, meta, config ? 3 : 2) != ATTN_OK)
        status = cli_fail("export");
    free(e.tensors);
    free(e.rounded);
    return status;
}

int cmd_export(int argc, char **argv)
{
    export_options o;
    int status = parse_options(argc, argv, &o);
    if (status != EXIT_OK) return status < 0 ? EXIT_OK : status;
    const cli_path inputs[] = {{"MODEL", o.model}};
    const cli_path outputs[] = {{"--out", o.out}};
    if ((status = cli_check_paths("export", inputs, 1, outputs, 1))) return status;

    attn_safetensors *st;
    if (attn_safetensors_open(&st, o.model) != ATTN_OK) return cli_fail("export");
    const char *kind = attn_safetensors_metadata(st, "attn.kind");
    char *config = NULL;
    const char *model_json = attn_safetensors_metadata(st, "model");
    if (model_json) config = strdup(model_json);
    const bool gpt = kind && strcmp(kind, ATTN_GPT_KIND) == 0;
    const bool seq2seq = kind && strcmp(kind, ATTN_SEQ2SEQ_KIND) == 0;
    attn_safetensors_close(st);
    if (!gpt && !seq2seq) {
        cli_message(stderr, "attn export: %s is not a model file of attn train (no \"attn.kind\" "
                            "of %s or %s)\n", o.model, ATTN_GPT_KIND, ATTN_SEQ2SEQ_KIND);
        free(config);
        return EXIT_RUNTIME;
    }
    if (gpt) {
        cli_gpt_model m;
        if ((status = cli_gpt_load(o.model, &m, NULL)) == EXIT_OK) {
            status = write_export(&o, ATTN_GPT_KIND, config, attn_gpt_params(m.model), NULL);
            cli_gpt_free(&m);
        }
    } else {
        cli_model m;
        if ((status = cli_model_load(o.model, &m, NULL)) == EXIT_OK) {
            status = write_export(&o, ATTN_SEQ2SEQ_KIND, config, attn_seq2seq_params(m.model),
                                  attn_seq2seq_buffers(m.model));
            cli_model_free(&m);
        }
    }
    free(config);
    return status;
}
