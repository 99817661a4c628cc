/* Generation: sample a token from the last position's logits, append it, run the
 * model on it, repeat; with the key-value cache or by rerunning the context.
 * Both run the inference pass of the cache (gpt_cache.c): no work kept for a
 * backward, and ln_f and lm_head on the last row alone. Rerunning empties the
 * cache before each pass, so that nothing of one token's pass is reused by the
 * next: the cache is then only the pass's buffers. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/gpt_impl.h"

typedef struct generator {
    attn_gpt *m;
    attn_gpt_cache *cache;
    bool rerun;       /* without the cache: every token's pass runs the context again */
    int capacity;     /* the cache's tokens */
    int32_t *context; /* every token so far, prompt included */
    int length;
    float *logits; /* (V) of the last position */
} generator;

/* Uncached: the logits after the last block_size tokens of the context, from a
 * pass over all of them through the emptied cache. */
static attn_status rerun(generator *g)
{
    const int block = g->m->cfg.block_size;
    const int T = g->length < block ? g->length : block;
    attn_gpt_cache_reset(g->cache);
    return attn_gpt_cache_forward_last(g->m, g->cache, g->logits, g->context + g->length - T, T);
}

/* Cached: runs the tokens from `first` on; when they do not fit, starts the
 * cache again from the last block_size / 2 tokens (at least the new ones). */
static attn_status advance(generator *g, int first)
{
    const int block = g->m->cfg.block_size;
    int n = g->length - first;
    if (attn_gpt_cache_length(g->cache) + n > g->capacity) {
        attn_gpt_cache_reset(g->cache);
        const int keep = block / 2 > n ? block / 2 : n;
        n = keep < block ? keep : block;
        n = n < g->length ? n : g->length;
    }
    return attn_gpt_cache_forward_last(g->m, g->cache, g->logits, g->context + g->length - n, n);
}

static attn_status step(generator *g, int first)
{
    return g->rerun ? rerun(g) : advance(g, first);
}

static attn_status check_options(const attn_gpt *m, const int32_t *out, const int32_t *prompt,
                                 int n_prompt, const attn_generate_options *opt)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "gpt")) || (s = attn_check_not_null(opt, "options")) ||
        (s = attn_check_not_null(prompt, "prompt")) ||
        (s = attn_check_at_least(n_prompt, 1, "prompt tokens")) ||
        (s = attn_check_at_least(opt->n_new, 0, "new tokens")) ||
        (opt->n_new > 0 && (s = attn_check_not_null(out, "output tokens"))) ||
        (s = attn_check_precision(opt->precision)))
        return s;
    if (!opt->use_cache && opt->precision != ATTN_FLOAT32)
        return attn_error(ATTN_ERR_UNSUPPORTED,
                          "generation without the cache runs in float32 only, not %s",
                          attn_precision_name(opt->precision));
    return attn_gpt_check_ids(m, prompt, n_prompt, "prompt");
}

attn_status attn_gpt_generate(attn_gpt *m, int32_t *out, int *produced, const int32_t *prompt,
                              int n_prompt, const attn_generate_options *opt)
{
    attn_status s;
    if ((s = check_options(m, out, prompt, n_prompt, opt))) return s;
    if (produced) *produced = 0;
    if (opt->n_new == 0) return ATTN_OK;

    generator g = {.m = m, .rerun = !opt->use_cache};
    g.context = malloc(((size_t)n_prompt + opt->n_new) * sizeof *g.context);
    g.logits = malloc((size_t)m->cfg.vocab_size * sizeof *g.logits);
    if (g.context == NULL || g.logits == NULL)
        s = attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d tokens", n_prompt + opt->n_new);
    if (!s) {
        /* As many tokens as the generation holds, up to the block size: a cache
         * for the whole block would have its memory cleared (huge pages) for a
         * short generation that touches a fraction of it. */
        const int block = m->cfg.block_size;
        g.capacity = n_prompt < block - opt->n_new ? n_prompt + opt->n_new : block;
        s = attn_gpt_cache_create_at(&g.cache, m, g.capacity, opt->precision);
    }
    if (!s) {
        memcpy(g.context, prompt, (size_t)n_prompt * sizeof *g.context);
        g.length = n_prompt;
        s = step(&g, 0);
    }
    for (int i = 0; !s && i < opt->n_new; i++) {
        int32_t token;
        if ((s = attn_sample(&token, g.logits, m->cfg.vocab_size, &opt->sampling,
                             attn_uniform_at(opt->seed, (uint64_t)i))))
            break;
        out[i] = token;
        if (produced) *produced = i + 1;
        g.context[g.length++] = token;
        if (opt->on_token && !opt->on_token(token, opt->user)) break;
        if (i + 1 < opt->n_new) s = step(&g, g.length - 1);
    }
    attn_gpt_cache_free(g.cache);
    free(g.context);
    free(g.logits);
    return s;
}
