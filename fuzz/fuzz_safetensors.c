/* libFuzzer target: any bytes given to the safetensors parser either fail with
 * a message or yield views that can all be read. The sanitizers catch out of
 * bounds reads, leaks and undefined behaviour on the way. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attn/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches every byte of every tensor through the float32 conversion. */
static void read_every_tensor(const attn_safetensors *st)
{
    for (int i = 0; i < attn_safetensors_count(st); i++) {
        const attn_tensor_view *t = attn_safetensors_at(st, i);
        if (attn_safetensors_find(st, t->name) != t) abort(); /* names are unique */
        float *values = malloc((t->numel ? t->numel : 1) * sizeof *values);
        if (values == NULL) continue; /* an absurd shape of empty tensors */
        if (attn_tensor_read_f32(t, values, t->numel) != ATTN_OK) abort();
        free(values);
    }
}

static void read_every_metadata_pair(const attn_safetensors *st)
{
    for (int i = 0; i < attn_safetensors_metadata_count(st); i++) {
        const char *value = NULL;
        const char *key = attn_safetensors_metadata_at(st, i, &value);
        if (key == NULL || value == NULL) abort();
        if (attn_safetensors_metadata(st, key) != value) abort(); /* keys are unique */
        (void)strlen(value);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    attn_safetensors *st = NULL;
    if (attn_safetensors_parse(&st, data, size) != ATTN_OK) {
        if (st != NULL) abort();
        return 0;
    }
    read_every_tensor(st);
    read_every_metadata_pair(st);
    attn_safetensors_close(st);
    return 0;
}
