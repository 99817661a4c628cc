/* One growing block of activations with named views into it. */
#include "nn/activations.h"

#include <stdlib.h>

#include "core/error.h"

enum { VIEW_ALIGN_FLOATS = 16 }; /* 64 bytes */

static size_t padded(size_t count)
{
    return (count + VIEW_ALIGN_FLOATS - 1) / VIEW_ALIGN_FLOATS * VIEW_ALIGN_FLOATS;
}

attn_status attn_activations_layout(attn_activations *acts, const attn_activation_view *views,
                                    int count)
{
    size_t total = 0;
    for (int v = 0; v < count; v++) total += padded(views[v].count);
    if (total > acts->capacity) {
        float *grown = aligned_alloc(64, total * sizeof *grown);
        if (grown == NULL)
            return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %zu activation floats",
                              total);
        free(acts->block);
        acts->block = grown;
        acts->capacity = total;
    }
    size_t offset = 0;
    for (int v = 0; v < count; v++) {
        *views[v].view = acts->block + offset;
        offset += padded(views[v].count);
    }
    return ATTN_OK;
}

void attn_activations_free(attn_activations *acts)
{
    free(acts->block);
    acts->block = NULL;
    acts->capacity = 0;
}

attn_status attn_int_block_reserve(attn_int_block *b, size_t count, const char *what)
{
    if (count <= b->capacity) return ATTN_OK;
    int32_t *grown = malloc(count * sizeof *grown);
    if (grown == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %zu %s", count, what);
    free(b->data);
    b->data = grown;
    b->capacity = count;
    return ATTN_OK;
}

void attn_int_block_free(attn_int_block *b)
{
    free(b->data);
    b->data = NULL;
    b->capacity = 0;
}
