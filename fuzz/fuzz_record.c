/* libFuzzer target: any bytes read as an attention record (attn/capture.h), as
 * JSON or as safetensors, either fail with a message and leave the record empty,
 * or give a record that saves in both formats and loads back the same (its q, k
 * and gradients too). The
 * sanitizers catch out of bounds reads, leaks and undefined behaviour. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char input[96], as_json[96], as_safetensors[96];

static void remove_files(void)
{
    unlink(input);
    unlink(as_json);
    unlink(as_safetensors);
    rmdir(dir);
}

static void make_paths(void)
{
    if (dir[0]) return;
    strcpy(dir, "/tmp/fuzz_record.XXXXXX");
    if (mkdtemp(dir) == NULL) abort();
    atexit(remove_files);
    snprintf(input, sizeof input, "%s/input", dir);
    snprintf(as_json, sizeof as_json, "%s/record.json", dir);
    snprintf(as_safetensors, sizeof as_safetensors, "%s/record.safetensors", dir);
}

static bool same_tokens(char *const *a, char *const *b, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(a[i], b[i]) != 0) return false;
    return true;
}

/* An optional part of a map (q, k, gradient): both absent or the same n floats. */
static bool same_part(const float *a, const float *b, size_t n)
{
    if ((a == NULL) != (b == NULL)) return false;
    return a == NULL || memcmp(a, b, n * sizeof *a) == 0;
}

static bool same_record(const attn_record *a, const attn_record *b)
{
    if (strcmp(a->model, b->model) || strcmp(a->task, b->task) ||
        a->n_queries != b->n_queries || a->n_keys != b->n_keys || a->n_maps != b->n_maps ||
        !same_tokens(a->queries, b->queries, a->n_queries) ||
        !same_tokens(a->keys, b->keys, a->n_keys))
        return false;
    for (int i = 0; i < a->n_maps; i++) {
        const attn_attention_map *x = &a->maps[i], *y = &b->maps[i];
        if (strcmp(x->name, y->name) || x->layer != y->layer || x->kind != y->kind ||
            x->hard != y->hard || x->heads != y->heads || x->rows != y->rows ||
            x->cols != y->cols)
            return false;
        const size_t n = (size_t)x->heads * x->rows * x->cols;
        if (memcmp(x->weights, y->weights, n * sizeof *x->weights) != 0) return false;
        if (x->head_dim != y->head_dim ||
            !same_part(x->q, y->q, (size_t)x->heads * x->rows * x->head_dim) ||
            !same_part(x->k, y->k, (size_t)x->heads * x->cols * x->head_dim) ||
            !same_part(x->gradient, y->gradient, n) ||
            (x->gradient && a->gradient_step != b->gradient_step))
            return false;
    }
    return true;
}

/* Saves r to path and loads it back: it must come back whole. */
static void round_trip(const attn_record *r, const char *path)
{
    attn_record back;
    if (attn_record_save(r, path) != ATTN_OK) abort(); /* a loaded record always saves */
    if (attn_record_load(&back, path) != ATTN_OK || !same_record(r, &back)) abort();
    attn_record_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    make_paths();
    FILE *f = fopen(input, "wb");
    if (f == NULL) abort();
    if (size > 0 && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    attn_record r;
    if (attn_record_load(&r, input) != ATTN_OK) {
        if (r.n_maps != 0 || r.n_queries != 0 || r.n_keys != 0) abort(); /* left empty */
        return 0;
    }
    round_trip(&r, as_json);
    round_trip(&r, as_safetensors);
    attn_record_free(&r);
    return 0;
}
