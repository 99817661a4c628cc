/* Scaled dot-product attention, the reference version: one query row at a time,
 * every score materialised, written to be read rather than to be fast. The fused
 * kernel is tested against it.
 *
 * Backward follows FlashAttention-2 (Dao, 2023, algorithm 2) in recomputing the
 * probabilities instead of storing them, but sums the softmax's D_i from the
 * recomputed P and dP (see attention.h for why). It recomputes P as the forward
 * does, from the row's max and sum, not as exp(S - lse): lse = max + log(sum)
 * loses log(sum) when |max| is huge, as in a row the seed's -1e20 fill masks
 * completely (max about -1e19, so exp(S - lse) would give 1 for every key instead
 * of 1/Lk). lse is used only to skip fully masked rows. */
#include <math.h>
#include <stdlib.h>

#include "attention/checks.h"
#include "attn/attention.h"
#include "attn/core.h"
#include "core/error.h"
#include "core/threads.h"
#include "kernels/flash.h"

static float dot(const float *a, const float *b, int n)
{
    float sum = 0.0f;
    for (int d = 0; d < n; d++) sum += a[d] * b[d];
    return sum;
}

/* True where a filling bool mask put its fill_value in place of the score. Such a
 * score no longer depends on q or k (PyTorch's masked_fill). attn_mask_apply
 * returns a kept score unchanged, so a NaN probe comes back NaN exactly where the
 * mask keeps the key. */
static bool replaced_by_fill(const attn_mask *mask, int64_t b, int64_t h, int64_t i, int64_t j)
{
    if (mask == NULL || !mask->fill || mask->type == ATTN_MASK_FLOAT) return false;
    return !isnan(attn_mask_apply(mask, NAN, b, h, i, j));
}

/* Query row i's position among the keys, which causal masking, the window and
 * ALiBi compare with the key's index j. */
static int64_t position(const attn_sdpa_config *cfg, int64_t i) { return cfg->q_offset + i; }

/* ALiBi adds -m_h |p - j| to the scores of the row at position p. A query past
 * the last key (p >= Lk) has every bias at least m_h d, d = p - (Lk - 1), which
 * float32 cannot add to a score without losing its low bits (a score of -500
 * rounds by 3e-5). Rows are therefore scored shifted by the constant m_h d: the
 * bias becomes -m_h (|p - j| - d), exact in its integer part, the softmax is
 * unchanged and lse adds the shift back. This returns m_h d (0 without ALiBi). */
static float alibi_row_shift(const attn_sdpa_config *cfg, int64_t h, int64_t i)
{
    const int64_t p = position(cfg, i);
    if (cfg->alibi_slopes == NULL || p < cfg->len_k) return 0.0f;
    return cfg->alibi_slopes[h] * (float)(p - (cfg->len_k - 1));
}

/* One mask on a score of row i shifted by `shift`: a fill stands for the unshifted
 * score fill_value. */
static float apply_mask(const attn_mask *mask, float s, float shift, int64_t b, int64_t h,
                        int64_t i, int64_t j)
{
    if (mask == NULL) return s;
    if (replaced_by_fill(mask, b, h, i, j)) return mask->fill_value + shift;
    return attn_mask_apply(mask, s, b, h, i, j);
}

/* The score of query row i against key j: scaled, plus the ALiBi bias (shifted
 * as alibi_row_shift says), then causal masking, the sliding window (these three
 * at the row's position p) and both masks (at row i), in that order; *from_fill
 * tells whether a fill replaced it. */
static float masked_score(const attn_sdpa_config *cfg, float scale, const float *q_i,
                          const float *k_j, int64_t b, int64_t h, int64_t i, int64_t j,
                          bool *from_fill)
{
    const float shift = alibi_row_shift(cfg, h, i);
    const int64_t p = position(cfg, i);
    float s = scale * dot(q_i, k_j, cfg->dim_qk);
    if (cfg->alibi_slopes != NULL) {
        const int64_t nearest = p < cfg->len_k ? 0 : p - (cfg->len_k - 1);
        s -= cfg->alibi_slopes[h] * (float)((p > j ? p - j : j - p) - nearest);
    }
    if (cfg->causal && j > p) s = -INFINITY;
    if (cfg->window > 0 && p - j >= cfg->window) s = -INFINITY;
    s = apply_mask(cfg->attn_mask, s, shift, b, h, i, j);
    s = apply_mask(cfg->key_padding_mask, s, shift, b, h, i, j);
    *from_fill = replaced_by_fill(cfg->attn_mask, b, h, i, j) ||
                 replaced_by_fill(cfg->key_padding_mask, b, h, i, j);
    return s;
}

/* The factor dropout applies to P[b,h,i,j]: 0 if dropped, 1/(1-p) if kept. */
static float dropout_factor(const attn_sdpa_config *cfg, uint64_t flat_index)
{
    if (cfg->dropout_p == 0.0f) return 1.0f;
    if (attn_uniform_at(cfg->dropout_seed, flat_index) < cfg->dropout_p) return 0.0f;
    return 1.0f / (1.0f - cfg->dropout_p);
}

/* P of row i of one (b, h): row[j] = softmax_j of the masked scores, from_fill[j]
 * as in masked_score; *lse = max + log(sum) of the unshifted scores. False (with *lse = -inf and row
 * undefined) when every key is masked out. k_bh: (Lk, D), its rows ldk apart. With seen not NULL,
 * seen: (*n_seen) the keys whose masked score is not -inf, ascending. */
static bool row_softmax(float *row, bool *from_fill, float *lse, const attn_sdpa_config *cfg,
                        float scale, const float *q_i, const float *k_bh, int64_t ldk, int64_t b,
                        int64_t h, int64_t i, int *seen, int *n_seen)
{
    const int64_t Lk = cfg->len_k;
    bool any_key = false;
    float max = -INFINITY;
    for (int64_t j = 0; j < Lk; j++) {
        row[j] = masked_score(cfg, scale, q_i, k_bh + j * ldk, b, h, i, j, &from_fill[j]);
        if (row[j] != -INFINITY) any_key = true; /* NaN counts: it must propagate */
        if (row[j] > max) max = row[j];
    }
    if (!any_key) { /* every key masked out: zeros, not 0/0 */
        *lse = -INFINITY;
        return false;
    }
    if (seen != NULL) {
        *n_seen = 0;
        for (int64_t j = 0; j < Lk; j++)
            if (row[j] != -INFINITY) seen[(*n_seen)++] = (int)j;
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < Lk; j++) {
        row[j] = expf(row[j] - max);
        sum += row[j];
    }
    for (int64_t j = 0; j < Lk; j++) row[j] /= sum;
    *lse = (max - alibi_row_shift(cfg, h, i)) + logf(sum);
    return true;
}

/* Per-thread rows of probabilities and fill flags, allocated once per call. */
typedef struct row_scratch {
    float *p;
    float *dp; /* backward only: dP'_ij scaled by dropout's factor */
    bool *from_fill;
    int *seen; /* an edited forward only: the keys a row sees */
} row_scratch;

static attn_status row_scratch_alloc(row_scratch *s, int threads, int64_t len)
{
    s->p = malloc((size_t)threads * (size_t)len * sizeof *s->p);
    s->dp = malloc((size_t)threads * (size_t)len * sizeof *s->dp);
    s->from_fill = malloc((size_t)threads * (size_t)len * sizeof *s->from_fill);
    s->seen = malloc((size_t)threads * (size_t)len * sizeof *s->seen);
    if (s->p == NULL || s->dp == NULL || s->from_fill == NULL || s->seen == NULL) {
        free(s->p);
        free(s->dp);
        free(s->from_fill);
        free(s->seen);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d rows of %lld scores",
                          threads, (long long)len);
    }
    return ATTN_OK;
}

static void row_scratch_free(row_scratch *s)
{
    free(s->p);
    free(s->dp);
    free(s->from_fill);
    free(s->seen);
}

/* Below this many multiply-adds, waking threads costs more than it saves. */
static bool worth_threads(const attn_sdpa_config *cfg)
{
    enum { MIN_PARALLEL_WORK = 1 << 16 };
    double work = (double)cfg->batch * cfg->heads * cfg->len_q * cfg->len_k *
                  (double)(cfg->dim_qk + cfg->dim_v);
    return work >= MIN_PARALLEL_WORK;
}

/* q: (B, H, Lq, D), k: (B, H, Lk, D), v: (B, H, Lk, Dv)
 * -> out: (B, H, Lq, Dv), lse: (B, H, Lq), weights: (B, H, Lq, Lk) or NULL
 * (q, k, v and out where cfg's row strides put their rows);
 * with edit not NULL (checked, dropout off), the rows of the heads it names
 * edited (attn_weights_edit_row) before they multiply v. */
static attn_status forward(float *out, float *lse, float *weights, const float *q, const float *k,
                           const float *v, const attn_sdpa_config *cfg,
                           const attn_weights_edit *edit)
{
    attn_status s;
    if ((s = attn_sdpa_check_forward(cfg, out, lse, q, k, v))) return s;
    const int64_t B = cfg->batch, H = cfg->heads, Lq = cfg->len_q, Lk = cfg->len_k;
    const int64_t Dv = cfg->dim_v;
    const attn_rows q_rows = attn_q_rows(cfg), k_rows = attn_k_rows(cfg), v_rows = attn_v_rows(cfg);
    const attn_rows out_rows = attn_out_rows(cfg);
    const float scale = attn_sdpa_scale(cfg);
    const int threads = worth_threads(cfg) ? attn_get_num_threads() : 1;
    row_scratch scratch;
    if ((s = row_scratch_alloc(&scratch, threads, Lk))) return s;

    /* Each (b, h) is independent and computed by one thread in the same order,
     * so the result does not depend on the thread count. */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t bh = 0; bh < B * H; bh++) {
        float *p = scratch.p + (size_t)attn_thread_index() * (size_t)Lk;
        bool *from_fill = scratch.from_fill + (size_t)attn_thread_index() * (size_t)Lk;
        const bool edited = edit != NULL && (edit->head < 0 || edit->head == bh % H);
        int *seen = edited ? scratch.seen + (size_t)attn_thread_index() * (size_t)Lk : NULL;
        int n_seen = 0;
        const float *q_h = q + attn_rows_at(&q_rows, bh, 0);
        const float *k_h = k + attn_rows_at(&k_rows, bh, 0);
        const float *v_h = v + attn_rows_at(&v_rows, bh, 0);
        float *out_h = out + attn_rows_at(&out_rows, bh, 0);
        for (int64_t i = 0; i < Lq; i++) {
            float *out_i = out_h + i * out_rows.step;
            float *w_i = weights ? weights + (bh * Lq + i) * Lk : NULL;
            for (int64_t c = 0; c < Dv; c++) out_i[c] = 0.0f;
            if (!row_softmax(p, from_fill, &lse[bh * Lq + i], cfg, scale, q_h + i * q_rows.step,
                             k_h, k_rows.step, bh / H, bh % H, i, seen, &n_seen)) {
                if (w_i)
                    for (int64_t j = 0; j < Lk; j++) w_i[j] = 0.0f;
                continue;
            }
            if (edited) attn_weights_edit_row(p, seen, n_seen, edit, edit->first_row + bh * Lq + i);
            for (int64_t j = 0; j < Lk; j++) {
                float p_dropped = p[j] * dropout_factor(cfg, (uint64_t)((bh * Lq + i) * Lk + j));
                if (w_i) w_i[j] = p_dropped;
                const float *v_j = v_h + j * v_rows.step;
                for (int64_t c = 0; c < Dv; c++) out_i[c] += p_dropped * v_j[c];
            }
        }
    }
    row_scratch_free(&scratch);
    return ATTN_OK;
}

attn_status attn_sdpa_reference_forward(float *out, float *lse, float *weights, const float *q,
                                        const float *k, const float *v,
                                        const attn_sdpa_config *cfg)
{
    return forward(out, lse, weights, q, k, v, cfg, NULL);
}

attn_status attn_sdpa_edited_forward(float *out, float *lse, float *weights, const float *q,
                                     const float *k, const float *v, const attn_sdpa_config *cfg,
                                     const attn_weights_edit *edit)
{
    attn_status s;
    if ((s = attn_sdpa_check(cfg)) || (s = attn_weights_edit_check(edit, cfg->heads))) return s;
    if (cfg->dropout_p != 0.0f)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "editing the weights needs dropout off, not %g", (double)cfg->dropout_p);
    return forward(out, lse, weights, q, k, v, cfg, edit);
}

/* Differentiates, per row i of one (b, h):
 *   P = softmax(S), P' = Z P / (1 - p), out_i = sum_j P'_ij v_j
 * with Z the keep mask of dropout:
 *   dP'_ij = dout_i . v_j          dv_j += P'_ij dout_i
 *   dS_ij = P_ij (Z_ij dP'_ij / (1 - p) - D_i),   D_i = sum_j P_ij Z_ij dP'_ij / (1 - p)
 *   dq_i += scale sum_j dS_ij k_j  dk_j += scale dS_ij q_i
 * Scores replaced by a fill do not depend on q or k and pass no gradient to them. */
attn_status attn_sdpa_reference_backward(float *dq, float *dk, float *dv, const float *dout,
                                         const float *q, const float *k, const float *v,
                                         const float *lse, const attn_sdpa_config *cfg)
{
    attn_status s;
    if ((s = attn_sdpa_check_backward(cfg, dout, q, k, v, lse))) return s;
    const int64_t B = cfg->batch, H = cfg->heads, Lq = cfg->len_q, Lk = cfg->len_k;
    const int64_t D = cfg->dim_qk, Dv = cfg->dim_v;
    const attn_rows q_rows = attn_q_rows(cfg), k_rows = attn_k_rows(cfg), v_rows = attn_v_rows(cfg);
    const attn_rows out_rows = attn_out_rows(cfg);
    const float scale = attn_sdpa_scale(cfg);
    const int threads = worth_threads(cfg) ? attn_get_num_threads() : 1;
    row_scratch scratch;
    if ((s = row_scratch_alloc(&scratch, threads, Lk))) return s;

    /* dk and dv of one (b, h) gather over its own rows only: one thread each. */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t bh = 0; bh < B * H; bh++) {
        float *p = scratch.p + (size_t)attn_thread_index() * (size_t)Lk;
        float *dp = scratch.dp + (size_t)attn_thread_index() * (size_t)Lk;
        bool *from_fill = scratch.from_fill + (size_t)attn_thread_index() * (size_t)Lk;
        const float *q_h = q + attn_rows_at(&q_rows, bh, 0);
        const float *k_h = k + attn_rows_at(&k_rows, bh, 0);
        const float *v_h = v + attn_rows_at(&v_rows, bh, 0);
        const float *dout_h = dout + attn_rows_at(&out_rows, bh, 0);
        float *dq_h = dq ? dq + attn_rows_at(&q_rows, bh, 0) : NULL;
        float *dk_h = dk ? dk + attn_rows_at(&k_rows, bh, 0) : NULL;
        float *dv_h = dv ? dv + attn_rows_at(&v_rows, bh, 0) : NULL;
        for (int64_t i = 0; i < Lq; i++) {
            const float *q_i = q_h + i * q_rows.step;
            float lse_again;
            if (lse[bh * Lq + i] == -INFINITY || /* fully masked row: no gradient */
                !row_softmax(p, from_fill, &lse_again, cfg, scale, q_i, k_h, k_rows.step, bh / H,
                             bh % H, i, NULL, NULL))
                continue;
            const float *dout_i = dout_h + i * out_rows.step;
            float delta_i = 0.0f;
            for (int64_t j = 0; j < Lk; j++) {
                float keep = dropout_factor(cfg, (uint64_t)((bh * Lq + i) * Lk + j));
                dp[j] = keep * dot(dout_i, v_h + j * v_rows.step, (int)Dv);
                delta_i += p[j] * dp[j];
            }
            for (int64_t j = 0; j < Lk; j++) {
                const float *k_j = k_h + j * k_rows.step;
                float keep = dropout_factor(cfg, (uint64_t)((bh * Lq + i) * Lk + j));
                if (dv) {
                    float *dv_j = dv_h + j * v_rows.step;
                    for (int64_t c = 0; c < Dv; c++) dv_j[c] += p[j] * keep * dout_i[c];
                }
                if (from_fill[j]) continue;
                float ds = p[j] * (dp[j] - delta_i);
                if (dq) {
                    float *dq_i = dq_h + i * q_rows.step;
                    for (int64_t d = 0; d < D; d++) dq_i[d] += scale * ds * k_j[d];
                }
                if (dk) {
                    float *dk_j = dk_h + j * k_rows.step;
                    for (int64_t d = 0; d < D; d++) dk_j[d] += scale * ds * q_i[d];
                }
            }
        }
    }
    row_scratch_free(&scratch);
    return ATTN_OK;
}

/* dP_ij = dout_i . v_j, the first line of the backward above, kept where row i
 * sees key j: P is the variable a caller asks about (gradient-weighted attention),
 * and a masked P_ij is the constant 0. One thread per (b, h), as the forward. */
attn_status attn_sdpa_weights_backward(float *dweights, const float *dout, const float *q,
                                       const float *k, const float *v,
                                       const attn_sdpa_config *cfg)
{
    attn_status s;
    if ((s = attn_check_not_null(dweights, "dweights")) || (s = attn_sdpa_check(cfg)) ||
        (s = attn_check_not_null(dout, "dout")) || (s = attn_check_not_null(q, "q")) ||
        (s = attn_check_not_null(k, "k")) || (s = attn_check_not_null(v, "v")))
        return s;
    if (cfg->dropout_p != 0.0f)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "the gradient with respect to the weights needs dropout off, not %g",
                          (double)cfg->dropout_p);
    const int64_t B = cfg->batch, H = cfg->heads, Lq = cfg->len_q, Lk = cfg->len_k;
    const int64_t Dv = cfg->dim_v;
    const attn_rows q_rows = attn_q_rows(cfg), k_rows = attn_k_rows(cfg), v_rows = attn_v_rows(cfg);
    const attn_rows out_rows = attn_out_rows(cfg);
    const float scale = attn_sdpa_scale(cfg);
#pragma omp parallel for num_threads(worth_threads(cfg) ? attn_get_num_threads() : 1) \
    schedule(static)
    for (int64_t bh = 0; bh < B * H; bh++) {
        const float *q_h = q + attn_rows_at(&q_rows, bh, 0);
        const float *k_h = k + attn_rows_at(&k_rows, bh, 0);
        const float *v_h = v + attn_rows_at(&v_rows, bh, 0);
        const float *dout_h = dout + attn_rows_at(&out_rows, bh, 0);
        for (int64_t i = 0; i < Lq; i++) {
            const float *dout_i = dout_h + i * out_rows.step, *q_i = q_h + i * q_rows.step;
            float *dw_i = dweights + (bh * Lq + i) * Lk;
            for (int64_t j = 0; j < Lk; j++) {
                bool from_fill;
                const float score =
                    masked_score(cfg, scale, q_i, k_h + j * k_rows.step, bh / H, bh % H, i, j,
                                 &from_fill);
                if (score != -INFINITY) dw_i[j] += dot(dout_i, v_h + j * v_rows.step, (int)Dv);
            }
        }
    }
    return ATTN_OK;
}
