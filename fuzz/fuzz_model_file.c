/* libFuzzer target: any bytes read as a model file of either kind by the tool's
 * own loader (cli/model_loader.c), so that the metadata is validated as a whole:
 * every field's range, the consistency of the config with the task, the
 * vocabulary and the step count, and the model's size against what the file
 * holds, all before the model is allocated. The bytes either fail with a message
 * or give a model (with its optimizer state) that saves and loads back the same.
 * The sanitizers catch out of bounds reads, leaks and undefined behaviour; the
 * fuzzer's malloc limit catches a config that allocates past its file.
 *
 * An input is a safetensors file without its first eight bytes: the JSON header,
 * a NUL, then the tensor bytes. The header's length is prefixed here, so that a
 * value the fuzzer lengthens or shortens in the metadata still gives a file
 * whose header parses. The seed corpus (make_model_corpus.py) holds models
 * without a checksum, which load as files from before checksums do, so that a
 * changed metadata byte reaches the validation instead of the checksum. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char input[96], again[96];

static void remove_files(void)
{
    unlink(input);
    unlink(again);
    rmdir(dir);
}

static void make_paths(void)
{
    if (dir[0]) return;
    strcpy(dir, "/tmp/fuzz_model_file.XXXXXX");
    if (mkdtemp(dir) == NULL) abort();
    atexit(remove_files);
    snprintf(input, sizeof input, "%s/input.safetensors", dir);
    snprintf(again, sizeof again, "%s/again.safetensors", dir);
}

static bool same_floats(const float *a, const float *b, size_t n)
{
    return n == 0 || memcmp(a, b, n * sizeof *a) == 0;
}

static bool same_params(const attn_params *a, const attn_params *b)
{
    return a->total == b->total && same_floats(a->data, b->data, a->total);
}

static bool same_optimizer(const attn_adamw *a, const attn_adamw *b)
{
    return a->step == b->step && a->n == b->n && same_floats(a->m, b->m, a->n) &&
           same_floats(a->v, b->v, a->n);
}

static void check_sequence_model(void)
{
    cli_model m = {0}, back = {0};
    attn_adamw opt, opt_back;
    if (cli_model_load(input, &m, &opt) != EXIT_OK) return;
    if (cli_model_save(again, &m, &opt) != EXIT_OK || cli_model_load(again, &back, &opt_back))
        abort();
    if (back.step != m.step || !same_params(attn_seq2seq_params(m.model),
                                            attn_seq2seq_params(back.model)) ||
        !same_params(attn_seq2seq_buffers(m.model), attn_seq2seq_buffers(back.model)) ||
        !same_optimizer(&opt, &opt_back))
        abort();
    cli_model_free(&m);
    cli_model_free(&back);
    attn_adamw_free(&opt);
    attn_adamw_free(&opt_back);
}

static void check_language_model(void)
{
    cli_gpt_model m = {0}, back = {0};
    attn_adamw opt, opt_back;
    if (cli_gpt_load(input, &m, &opt) != EXIT_OK) return;
    if (cli_gpt_save(again, &m, &opt) != EXIT_OK || cli_gpt_load(again, &back, &opt_back))
        abort();
    if (back.step != m.step || back.vocab.size != m.vocab.size ||
        !same_params(attn_gpt_params(m.model), attn_gpt_params(back.model)) ||
        !same_optimizer(&opt, &opt_back))
        abort();
    cli_gpt_free(&m);
    cli_gpt_free(&back);
    attn_adamw_free(&opt);
    attn_adamw_free(&opt_back);
}

/* The input as a safetensors file: the header's length (padded with spaces to a
 * multiple of 8, as writers align the tensors), the header, the tensors. */
static void write_input(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    const size_t header = nul ? (size_t)(nul - data) : size;
    const size_t padding = (8 - header % 8) % 8;
    uint8_t prefix[8];
    for (int i = 0; i < 8; i++) prefix[i] = (uint8_t)((uint64_t)(header + padding) >> (8 * i));
    FILE *f = fopen(input, "wb");
    if (f == NULL) abort();
    bool ok = fwrite(prefix, 1, 8, f) == 8 && fwrite(data, 1, header, f) == header &&
              fwrite("        ", 1, padding, f) == padding;
    if (nul) ok = ok && fwrite(nul + 1, 1, size - header - 1, f) == size - header - 1;
    if (fclose(f) != 0 || !ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    make_paths();
    write_input(data, size);
    check_sequence_model();
    check_language_model();
    return 0;
}
