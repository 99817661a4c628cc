/* What the models' recordings of gradients share (models/explain.h). */
#include <stdlib.h>
#include <string.h>

#include "attn/capture.h"
#include "core/error.h"
#include "models/explain.h"

void attn_explained_logits(float *dlogits, const float *probs, const int32_t *targets, int rows,
                           int V, int row)
{
    memset(dlogits, 0, (size_t)rows * V * sizeof *dlogits);
    for (int r = 0; r < rows; r++) {
        if (row != ATTN_EXPLAIN_ALL && r != row) continue;
        float *d = dlogits + (size_t)r * V;
        const float *p = probs + (size_t)r * V;
        for (int v = 0; v < V; v++) d[v] = -p[v];
        d[targets[r]] += 1.0f;
    }
}

float *attn_grads_save(const attn_params *p)
{
    float *saved = malloc((p->total ? p->total : 1) * sizeof *saved);
    if (saved == NULL) {
        attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory to keep %zu gradients aside", p->total);
        return NULL;
    }
    memcpy(saved, p->grad, p->total * sizeof *saved);
    return saved;
}

void attn_grads_restore(attn_params *p, float *saved)
{
    memcpy(p->grad, saved, p->total * sizeof *saved);
    free(saved);
}
