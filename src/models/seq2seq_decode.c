/* Greedy decoding and beam search for every architecture, through the
 * architecture's encode / step / reorder (seq2seq_impl.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/seq2seq_impl.h"

/* The most likely token of a row of logprobs: (V), never PAD or BOS; the first
 * on ties, so that greedy and beam search agree. */
static int best_token(const float *logprobs, int V)
{
    int best = ATTN_TOKEN_EOS;
    for (int v = ATTN_TOKEN_EOS + 1; v < V; v++)
        if (logprobs[v] > logprobs[best]) best = v;
    return best;
}

/* logprobs: (rows, V) must be finite: a NaN would otherwise lose every
 * comparison and decode as EOS without a word. */
static attn_status check_logprobs(const float *logprobs, int rows, int V, int t)
{
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < V; v++)
            if (!isfinite(logprobs[(size_t)r * V + v]))
                return attn_error(ATTN_ERR_NUMERIC,
                                  "decoding step %d: the log-probability of token %d in row %d "
                                  "is %g",
                                  t, v, r, (double)logprobs[(size_t)r * V + v]);
    return ATTN_OK;
}

/* out: (B, T) and attention: (B, T, S) of sources whose outputs have out_len
 * tokens (then EOS if out_len < T): PAD and zero weights past the end. */
static void clear_past_end(int32_t *out, float *attention, const int32_t *out_len, int B, int T,
                           int S)
{
    for (int b = 0; b < B; b++) {
        const int end = out_len[b] < T ? out_len[b] + 1 : T; /* EOS included */
        for (int t = end; t < T; t++) out[(size_t)b * T + t] = ATTN_TOKEN_PAD;
        if (attention && end < T)
            memset(attention + ((size_t)b * T + end) * S, 0,
                   (size_t)(T - end) * S * sizeof *attention);
    }
}

attn_status attn_seq2seq_greedy(attn_seq2seq *m, int32_t *out, int32_t *out_len, float *attention,
                                float *scores, const int32_t *src, const int32_t *src_len, int B,
                                int S, const attn_decode_options *opt)
{
    const int V = m->cfg.tgt_vocab, T = opt->max_len;
    float *logprobs = malloc((size_t)B * V * sizeof *logprobs);
    float *step_att = attention ? malloc((size_t)B * S * sizeof *step_att) : NULL;
    int32_t *tokens = malloc((size_t)B * sizeof *tokens);
    float *score = malloc((size_t)B * sizeof *score);
    attn_status s = ATTN_OK;
    if (logprobs == NULL || tokens == NULL || score == NULL || (attention && step_att == NULL)) {
        s = attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory to decode %d sources", B);
        goto done;
    }
    if ((s = m->ops->encode(m, src, src_len, B, S, 1))) goto done;
    int open = B;
    for (int b = 0; b < B; b++) {
        tokens[b] = ATTN_TOKEN_BOS;
        out_len[b] = -1; /* open */
        score[b] = 0.0f;
    }
    for (int t = 0; t < T && open > 0; t++) {
        if ((s = m->ops->step(m, logprobs, step_att, tokens, opt, t)) ||
            (s = check_logprobs(logprobs, B, V, t)))
            goto done;
        for (int b = 0; b < B; b++) {
            if (out_len[b] >= 0) continue;
            const int token = best_token(logprobs + (size_t)b * V, V);
            out[(size_t)b * T + t] = tokens[b] = token;
            score[b] += logprobs[(size_t)b * V + token];
            if (attention)
                memcpy(attention + ((size_t)b * T + t) * S, step_att + (size_t)b * S,
                       (size_t)S * sizeof *attention);
            if (token == ATTN_TOKEN_EOS) {
                out_len[b] = t;
                open--;
            }
        }
    }
    for (int b = 0; b < B; b++)
        if (out_len[b] < 0) out_len[b] = T;
    clear_past_end(out, attention, out_len, B, T, S);
    if (scores) memcpy(scores, score, (size_t)B * sizeof *scores);
done:
    free(logprobs);
    free(step_att);
    free(tokens);
    free(score);
    return s;
}

/* ---- beam search ------------------------------------------------------------------ */

/* A continuation's score is the exact sum of its parent's score and the token's
 * log-probability (two floats sum exactly in a double), so that the ranking of
 * one parent's tokens is the ranking of their log-probabilities, as greedy
 * decoding ranks them: summed in float, two log-probabilities closer than half
 * a unit of the score's last place would tie, and beam 1 could pick another
 * token than greedy decoding. Kept, a score is rounded to float as greedy
 * decoding's running sum is. */
typedef struct candidate {
    double score;
    int index; /* k * V + token: the parent slot and the token */
} candidate;

/* Best score first; on ties the lower index, so the order is total. */
static int by_score(const void *pa, const void *pb)
{
    const candidate *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* The search's state. Rows r = b * K + k are the K hypotheses of source b. */
typedef struct beam_state {
    int B, K, R, V, T, S;
    float *logprobs;           /* (R, V) */
    float *step_att;           /* (R, S) or NULL */
    float *score, *next_score; /* (R): -inf for an empty slot */
    int32_t *tokens, *parent;  /* (R) */
    int32_t *hist, *next_hist; /* (R, T) */
    float *hatt, *next_hatt;   /* (R, T, S) or NULL */
    float *best_score;         /* (B) of the best ended hypothesis */
    int32_t *best_len;         /* (B): its tokens before EOS, -1 if none yet */
    int32_t *best;             /* (B, T) */
    float *best_att;           /* (B, T, S) or NULL */
    unsigned char *done;       /* (B) */
    candidate *cands;          /* (K * V) */
} beam_state;

static void beam_free(beam_state *st)
{
    free(st->logprobs), free(st->step_att), free(st->score), free(st->next_score);
    free(st->tokens), free(st->parent), free(st->hist), free(st->next_hist);
    free(st->hatt), free(st->next_hatt), free(st->best_score), free(st->best_len);
    free(st->best), free(st->best_att), free(st->done), free(st->cands);
}

static attn_status beam_alloc(beam_state *st, bool attention)
{
    const size_t R = (size_t)st->R, T = (size_t)st->T, S = (size_t)st->S, B = (size_t)st->B;
    st->logprobs = malloc(R * st->V * sizeof(float));
    st->score = malloc(R * sizeof(float));
    st->next_score = malloc(R * sizeof(float));
    st->tokens = malloc(R * sizeof(int32_t));
    st->parent = malloc(R * sizeof(int32_t));
    st->hist = calloc(R * T, sizeof(int32_t));
    st->next_hist = calloc(R * T, sizeof(int32_t));
    st->best_score = malloc(B * sizeof(float));
    st->best_len = malloc(B * sizeof(int32_t));
    st->best = calloc(B * T, sizeof(int32_t));
    st->done = calloc(B, 1);
    st->cands = malloc((size_t)st->K * st->V * sizeof(candidate));
    bool ok = st->logprobs && st->score && st->next_score && st->tokens && st->parent && st->hist &&
              st->next_hist && st->best_score && st->best_len && st->best && st->done && st->cands;
    if (attention) {
        st->step_att = malloc(R * S * sizeof(float));
        st->hatt = calloc(R * T * S, sizeof(float));
        st->next_hatt = calloc(R * T * S, sizeof(float));
        st->best_att = calloc(B * T * S, sizeof(float));
        ok = ok && st->step_att && st->hatt && st->next_hatt && st->best_att;
    }
    if (!ok)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for a beam of %d over %d sources",
                          st->K, st->B);
    return ATTN_OK;
}

/* Row r's hypothesis ended by EOS at step t becomes source b's best. */
static void keep_ended(beam_state *st, int b, int r, int t, float score)
{
    const size_t T = (size_t)st->T, S = (size_t)st->S;
    st->best_score[b] = score;
    st->best_len[b] = t;
    memcpy(st->best + b * T, st->hist + r * T, (size_t)t * sizeof(int32_t));
    st->best[b * T + t] = ATTN_TOKEN_EOS;
    if (st->best_att) {
        memcpy(st->best_att + b * T * S, st->hatt + r * T * S, (size_t)t * S * sizeof(float));
        memcpy(st->best_att + (b * T + t) * S, st->step_att + r * S, S * sizeof(float));
    }
}

/* Step t of source b: ranks every continuation of its open hypotheses; an EOS
 * among the first K ends its hypothesis, the first K others fill the slots. */
static void beam_expand(beam_state *st, int b, int t)
{
    const int K = st->K, V = st->V;
    int n = 0;
    for (int k = 0; k < K; k++) {
        const int r = b * K + k;
        if (st->score[r] == -INFINITY) continue;
        const float *lp = st->logprobs + (size_t)r * V;
        for (int v = ATTN_TOKEN_EOS; v < V; v++)
            st->cands[n++] = (candidate){(double)st->score[r] + lp[v], k * V + v};
    }
    qsort(st->cands, (size_t)n, sizeof *st->cands, by_score);
    int filled = 0;
    for (int i = 0; i < n && (filled < K || i < K); i++) {
        const int k = st->cands[i].index / V, v = st->cands[i].index % V, r = b * K + k;
        if (v == ATTN_TOKEN_EOS) {
            if (i < K && (st->best_len[b] < 0 || st->cands[i].score > st->best_score[b]))
                keep_ended(st, b, r, t, (float)st->cands[i].score);
        } else if (filled < K) {
            const int slot = b * K + filled++;
            st->parent[slot] = r;
            st->tokens[slot] = v;
            st->next_score[slot] = (float)st->cands[i].score;
        }
    }
    for (; filled < K; filled++) { /* fewer continuations than slots */
        const int slot = b * K + filled;
        st->parent[slot] = b * K;
        st->tokens[slot] = ATTN_TOKEN_EOS;
        st->next_score[slot] = -INFINITY;
    }
    /* Open scores only fall (log-probabilities are <= 0), so an ended hypothesis
     * at least as good as the best open one cannot be beaten. */
    if (st->best_len[b] >= 0 && !(st->next_score[b * K] > st->best_score[b])) st->done[b] = 1;
}

/* The slots take their parents' histories, plus this step's token and weights. */
static void beam_advance(beam_state *st, int t)
{
    const size_t T = (size_t)st->T, S = (size_t)st->S;
    for (int r = 0; r < st->R; r++) {
        const size_t p = (size_t)st->parent[r];
        memcpy(st->next_hist + r * T, st->hist + p * T, (size_t)t * sizeof(int32_t));
        st->next_hist[r * T + t] = st->tokens[r];
        if (st->hatt) {
            memcpy(st->next_hatt + r * T * S, st->hatt + p * T * S, (size_t)t * S * sizeof(float));
            memcpy(st->next_hatt + (r * T + t) * S, st->step_att + p * S, S * sizeof(float));
        }
    }
    int32_t *h = st->hist;
    st->hist = st->next_hist, st->next_hist = h;
    float *a = st->hatt;
    st->hatt = st->next_hatt, st->next_hatt = a;
    float *sc = st->score;
    st->score = st->next_score, st->next_score = sc;
}

/* A source still open at max_len takes its best open hypothesis if that beats
 * its best ended one; the outputs are written. */
static void beam_finish(beam_state *st, int32_t *out, int32_t *out_len, float *attention,
                        float *scores)
{
    const size_t T = (size_t)st->T, S = (size_t)st->S;
    for (int b = 0; b < st->B; b++) {
        const int r = b * st->K; /* slot 0 holds the best open hypothesis */
        if (!st->done[b] && st->score[r] > -INFINITY &&
            (st->best_len[b] < 0 || st->score[r] > st->best_score[b])) {
            st->best_score[b] = st->score[r];
            st->best_len[b] = (int32_t)T;
            memcpy(st->best + b * T, st->hist + r * T, T * sizeof(int32_t));
            if (st->best_att)
                memcpy(st->best_att + b * T * S, st->hatt + r * T * S, T * S * sizeof(float));
        }
        memcpy(out + b * T, st->best + b * T, T * sizeof(int32_t));
        out_len[b] = st->best_len[b];
        if (attention)
            memcpy(attention + b * T * S, st->best_att + b * T * S, T * S * sizeof(float));
        if (scores) scores[b] = st->best_score[b];
    }
    clear_past_end(out, attention, out_len, st->B, st->T, st->S);
}

attn_status attn_seq2seq_beam_search(attn_seq2seq *m, int32_t *out, int32_t *out_len,
                                     float *attention, float *scores, const int32_t *src,
                                     const int32_t *src_len, int B, int S,
                                     const attn_decode_options *opt)
{
    beam_state st = {.B = B,
                     .K = opt->beam,
                     .R = B * opt->beam,
                     .V = m->cfg.tgt_vocab,
                     .T = opt->max_len,
                     .S = S};
    attn_status s;
    if ((s = beam_alloc(&st, attention != NULL)) ||
        (s = m->ops->encode(m, src, src_len, B, S, st.K)))
        goto done;
    for (int r = 0; r < st.R; r++) {
        st.tokens[r] = ATTN_TOKEN_BOS;
        st.score[r] = r % st.K == 0 ? 0.0f : -INFINITY; /* one hypothesis to start */
    }
    for (int b = 0; b < B; b++) st.best_len[b] = -1;
    int open = B;
    for (int t = 0; t < st.T && open > 0; t++) {
        if ((s = m->ops->step(m, st.logprobs, st.step_att, st.tokens, opt, t)) ||
            (s = check_logprobs(st.logprobs, st.R, st.V, t)))
            goto done;
        for (int r = 0; r < st.R; r++) st.parent[r] = r; /* done sources stay as they are */
        memcpy(st.next_score, st.score, (size_t)st.R * sizeof(float));
        for (int b = 0; b < B; b++)
            if (!st.done[b]) {
                beam_expand(&st, b, t);
                open -= st.done[b];
            }
        beam_advance(&st, t);
        if ((s = m->ops->reorder(m, st.parent))) goto done;
    }
    beam_finish(&st, out, out_len, attention, scores);
done:
    beam_free(&st);
    return s;
}
