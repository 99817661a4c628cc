/* The language model's outputs under an intervention (attn_gpt_intervene): the
 * training forward over the tokens with dropout off, as attn_gpt_record's extras
 * run it, with one block's attention weights edited (the block's attention goes
 * through attn_sdpa_edited_forward, gpt_forward.c) or with one token deleted. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/explain.h"
#include "models/gpt_impl.h"

/* Row t of the pass over `len` tokens that gives the distribution of token t + 1
 * of the original n: after an erased token the rows move up by one; -1 when the
 * erasure leaves token t + 1 no context (token 0 erased, t = 0). */
static int source_row(const attn_intervention *iv, int t)
{
    if (iv == NULL || iv->kind != ATTN_INTERVENE_ERASE || t < iv->token) return t;
    return t - 1;
}

attn_status attn_gpt_intervene(attn_gpt *m, float *probs, const int32_t *ids, int n,
                               const attn_intervention *iv)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "gpt")) || (s = attn_check_not_null(probs, "probs")) ||
        (s = attn_check_not_null(ids, "ids")) || (s = attn_check_at_least(n, 2, "context tokens")))
        return s;
    if (n > m->cfg.block_size)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "context of %d tokens exceeds the block size %d",
                          n, m->cfg.block_size);
    const int L = m->cfg.n_layer, V = m->cfg.vocab_size;
    int heads[ATTN_GPT_MAX_LAYERS];
    bool editable[ATTN_GPT_MAX_LAYERS];
    for (int l = 0; l < L; l++) {
        heads[l] = m->cfg.n_head;
        editable[l] = true;
    }
    if ((s = attn_intervention_check(iv, L, heads, editable, n, 1))) return s;
    const bool erase = iv != NULL && iv->kind == ATTN_INTERVENE_ERASE;
    const int len = erase ? n - 1 : n;
    int32_t *seq = malloc(2 * (size_t)len * sizeof *seq), *targets = seq + len;
    if (seq == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d tokens", n);
    if (erase) attn_erase_token(seq, ids, n, iv->token);
    else memcpy(seq, ids, (size_t)n * sizeof *seq);
    /* the targets only make the forward keep probs: row t predicts seq[t + 1] */
    for (int t = 0; t < len; t++) targets[t] = seq[t + 1 < len ? t + 1 : t];
    const attn_weights_edit edit = attn_intervention_edits(iv) ? attn_intervention_edit(iv)
                                                               : (attn_weights_edit){0};
    m->edit = attn_intervention_edits(iv) ? &edit : NULL;
    m->edit_layer = attn_intervention_edits(iv) ? iv->map : -1;
    const attn_gpt_pass pass = {.training = false};
    float loss;
    s = attn_gpt_forward(m, &loss, seq, targets, 1, len, &pass);
    m->edit = NULL;
    for (int t = 0; t < n - 1 && s == ATTN_OK; t++) {
        const int row = source_row(iv, t);
        if (row < 0) memset(probs + (size_t)t * V, 0, (size_t)V * sizeof *probs);
        else memcpy(probs + (size_t)t * V, m->probs + (size_t)row * V, (size_t)V * sizeof *probs);
    }
    free(seq);
    return s;
}
