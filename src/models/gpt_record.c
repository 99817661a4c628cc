/* Recording what the language model attended to (attn_gpt_record): the context
 * runs through the cached inference path on a fresh cache, which asks the
 * reference attention for every head's weights beside the fused kernel's output
 * (so the logits are those of a run without a record, bit for bit). */
#include <stdio.h>

#include "core/error.h"
#include "io/record_internal.h"
#include "models/gpt_impl.h"

attn_status attn_gpt_record(attn_gpt *m, const int32_t *ids, int n, float *logits,
                            attn_record *record)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "gpt")) || (s = attn_check_not_null(ids, "ids")) ||
        (s = attn_check_not_null(record, "record")) ||
        (s = attn_check_at_least(n, 1, "context tokens")))
        return s;
    if (n > m->cfg.block_size)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "context of %d tokens exceeds the block size %d",
                          n, m->cfg.block_size);
    const int before = record->n_maps, H = m->cfg.n_head;
    float *weights[ATTN_GPT_MAX_LAYERS];
    for (int l = 0; l < m->cfg.n_layer && s == ATTN_OK; l++)
        s = attn_record_add_map(record, "transformer.h.*.attn", l, ATTN_MAP_SELF, false, H, n, n,
                                &weights[l]);
    attn_gpt_cache *cache = NULL;
    if (s == ATTN_OK && (s = attn_gpt_cache_create(&cache, m, n)) == ATTN_OK)
        s = attn_gpt_cache_forward_weights(m, cache, logits, ids, n, weights);
    attn_gpt_cache_free(cache);
    if (s) attn_record_drop_maps(record, before);
    return s;
}
