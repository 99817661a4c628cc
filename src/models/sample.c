/* Drawing the next token from a language model's logits: greedy, or sampled with
 * a temperature, top-k and nucleus (top-p, Holtzman et al., 2020) filtering. */
#include <math.h>
#include <stdlib.h>

#include "attn/data.h"
#include "attn/gpt.h"
#include "core/error.h"

typedef struct candidate {
    double p; /* unnormalised probability */
    int32_t id;
} candidate;

/* More probable first, equal probabilities by id: a total order, so the token a
 * given u draws does not depend on the sort. */
static int by_probability(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static attn_status check_options(const attn_sampling *s, int V, float u)
{
    if (!isfinite(s->temperature) || s->temperature < 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "temperature %g must be finite and at least 0",
                          (double)s->temperature);
    if (s->top_k < 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "top_k %d is negative", s->top_k);
    if (!(s->top_p > 0 && s->top_p <= 1))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "top_p %g is outside (0, 1]",
                          (double)s->top_p);
    if (!(u >= 0 && u < 1))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "uniform number u %g is outside [0, 1)",
                          (double)u);
    return attn_check_at_least(V, 1, "vocab size");
}

/* c: (n) sorted by probability -> the index drawn by u from the kept prefix:
 * top_k, then the smallest part of that whose probability reaches top_p. */
static int draw(const candidate *c, int n, const attn_sampling *s, float u)
{
    if (s->top_k > 0 && s->top_k < n) n = s->top_k;
    double total = 0;
    for (int i = 0; i < n; i++) total += c[i].p;
    if (s->top_p < 1) {
        double reach = (double)s->top_p * total, sum = 0;
        int kept = 0;
        while (kept < n && sum < reach) sum += c[kept++].p;
        n = kept;
        total = sum;
    }
    /* target < total, and the running sum below ends at exactly total (the same
     * additions in the same order), so the loop stops on a token of nonzero
     * probability before running out. */
    double target = (double)u * total, sum = c[0].p;
    int i = 0;
    while (sum <= target && i + 1 < n) sum += c[++i].p;
    return i;
}

attn_status attn_sample(int32_t *token, const float *logits, int V, const attn_sampling *s, float u)
{
    attn_status st;
    if ((st = attn_check_not_null(token, "token")) ||
        (st = attn_check_not_null(logits, "logits")) ||
        (st = attn_check_not_null(s, "sampling options")) || (st = check_options(s, V, u)))
        return st;
    int best = 0; /* the first of the largest */
    for (int i = 0; i < V; i++) {
        if (isnan(logits[i])) return attn_error(ATTN_ERR_NUMERIC, "logit %d of %d is NaN", i, V);
        if (logits[i] > logits[best]) best = i;
    }
    if (logits[best] == -INFINITY)
        return attn_error(ATTN_ERR_NUMERIC, "all %d logits are -inf: no token is possible", V);
    if (s->temperature == 0) {
        *token = best;
        return ATTN_OK;
    }

    candidate stack[ATTN_TEXT_VOCAB_MAX];
    candidate *c = stack;
    if (V > ATTN_TEXT_VOCAB_MAX && (c = malloc((size_t)V * sizeof *c)) == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory to sample from %d logits", V);
    /* Shifted by the largest logit, so exp never overflows and the best token has
     * probability 1 before normalising. Infinite logits outweigh all finite ones:
     * then the draw is uniform over them. */
    double top = logits[best];
    for (int i = 0; i < V; i++) {
        c[i].id = i;
        c[i].p = isinf(top) ? (double)(logits[i] == INFINITY)
                            : exp(((double)logits[i] - top) / (double)s->temperature);
    }
    qsort(c, (size_t)V, sizeof *c, by_probability);
    *token = c[draw(c, V, s, u)].id;
    if (c != stack) free(c);
    return ATTN_OK;
}
