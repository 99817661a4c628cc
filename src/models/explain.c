/* What the models' recordings of gradients and their interventions share
 * (models/explain.h). */
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

attn_status attn_intervention_check(const attn_intervention *iv, int n_maps, const int *heads,
                                    const bool *editable, int n_inputs, int min_left)
{
    if (iv == NULL || iv->kind == ATTN_INTERVENE_NONE) return ATTN_OK;
    if (iv->kind == ATTN_INTERVENE_ERASE) {
        if (iv->token < 0 || iv->token >= n_inputs)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "erased token %d is not an input token 0 .. %d", iv->token,
                              n_inputs - 1);
        if (n_inputs - 1 < min_left)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "erasing a token of %d leaves fewer than %d", n_inputs, min_left);
        return ATTN_OK;
    }
    if (iv->kind != ATTN_INTERVENE_PERMUTE && iv->kind != ATTN_INTERVENE_UNIFORM)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "intervention kind %d is not one of none, "
                          "permute, uniform, erase", (int)iv->kind);
    if (iv->map < 0 || iv->map >= n_maps)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "intervention map %d is not a map of the model's record, 0 .. %d",
                          iv->map, n_maps - 1);
    if (!editable[iv->map])
        return attn_error(ATTN_ERR_UNSUPPORTED,
                          "map %d is hard attention, one position chosen per row: no weights to "
                          "permute or make uniform",
                          iv->map);
    const attn_weights_edit edit = attn_intervention_edit(iv);
    return attn_weights_edit_check(&edit, heads[iv->map]);
}

bool attn_intervention_edits(const attn_intervention *iv)
{
    return iv != NULL && (iv->kind == ATTN_INTERVENE_PERMUTE || iv->kind == ATTN_INTERVENE_UNIFORM);
}

attn_weights_edit attn_intervention_edit(const attn_intervention *iv)
{
    return (attn_weights_edit){
        .kind = iv->kind == ATTN_INTERVENE_PERMUTE ? ATTN_EDIT_PERMUTE : ATTN_EDIT_UNIFORM,
        .head = iv->head,
        .seed = iv->seed,
    };
}

void attn_erase_token(int32_t *kept, const int32_t *ids, int n, int token)
{
    memcpy(kept, ids, (size_t)token * sizeof *kept);
    memcpy(kept + token, ids + token + 1, (size_t)(n - token - 1) * sizeof *kept);
}
