/* Internal: the body of the fused attention kernels, compiled once per instruction
 * set by isa_avx512.c, isa_avx2.c and isa_scalar.c, each of which defines its
 * ATTN_SIMD_* macro (see simd.h), includes this file and puts flash_kernels in
 * its variant's table (isa.h). Everything here is static.
 *
 * The algorithm is FlashAttention-2 (T. Dao, "FlashAttention-2: Faster Attention
 * with Better Parallelism and Work Partitioning", 2023), itself built on
 * FlashAttention (T. Dao, D. Y. Fu, S. Ermon, A. Rudra, C. Ré, NeurIPS 2022) and the
 * online softmax (M. Milakov, N. Gimelshein, "Online normalizer calculation for
 * softmax", 2018), laid out for a CPU's caches and vector registers:
 *
 *  - Forward, one task per (b, h, block of QUERY_BLOCK query rows): the scores of
 *    the block against one block of KEY_BLOCK keys at a time, an online softmax
 *    that keeps a running max and sum per row and rescales the output accumulator,
 *    and the row's log-sum-exp at the end (algorithm 1 of FlashAttention-2).
 *  - Backward, recomputing the probabilities from q, k and the log-sum-exp
 *    (algorithm 2; see row_terms for the rows where lse is not precise enough):
 *    one pass with a task per (b, h, query block) that computes the block's row
 *    terms and gathers dq over every key block, keeping the block's score and dP
 *    tiles meanwhile (query_block_fused), then one with a task per (b, h, key
 *    block) that gathers dk and dv over every query block. Each output element is
 *    written by one task, whose order of additions is fixed, so there are no
 *    atomics and the bits do not depend on the thread count. (The dk, dv pass
 *    recomputes the scores and dP: 7 tile products instead of 5 per pair of
 *    blocks, the price of determinism without O(L^2) memory. Past a per-thread
 *    cache limit the row terms, delta and dq are recomputed in three passes
 *    instead, 10 products.)
 *
 * Tiles are laid out so that every product is "C += A B" with B read as whole
 * vectors along its rows and A read one element at a time (broadcast), the
 * outer-product form that keeps a MICRO_ROWS x MICRO_VECS block of C in registers
 * (micro_tile). The forward and the dq pass hold scores transposed, keys x
 * queries, so the softmax statistics of QUERY_BLOCK rows are vectors; the dk/dv
 * pass holds them queries x keys. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attention.h"
#include "core/error.h"
#include "core/threads.h"
#include "kernels/dropout_draws_impl.h"
#include "kernels/flash.h"
#include "kernels/kept_buffer.h"
#include "kernels/simd.h"

enum {
    QUERY_BLOCK = 64, /* query rows per tile: a multiple of every VF_WIDTH */
    KEY_BLOCK = 64,   /* keys per tile: a multiple of every VF_WIDTH */
    TILE_ALIGN = 16   /* floats: every tile starts on a 64-byte line */
};

/* The register block of micro_tile: MICRO_ROWS x MICRO_VECS accumulators plus
 * MICRO_VECS vectors of B and one broadcast must fit in the register file
 * (32 zmm for AVX-512: 16 + 4 + 1; 16 ymm for AVX2: 8 + 2 + 1). */
#define MICRO_ROWS 4
#if defined(ATTN_SIMD_AVX2)
#define MICRO_VECS 2
#else
#define MICRO_VECS 4
#endif

static int min_int(int64_t a, int64_t b) { return (int)(a < b ? a : b); }

static int round_up(int n, int multiple) { return (n + multiple - 1) / multiple * multiple; }

/* The tasks of a pass, one per (b, h, block) of `blocks` blocks, are handed out
 * head by head, so that the threads work on one head at a time and its k and v
 * (or q and dout: 256 KB in bf16, 512 KB in float32 at L 1024, D 64) stay in
 * each core's L2 cache over its blocks. Handed out across the heads (every next
 * task another head) they came from L3 for every task: at two threads on a busy
 * machine that cost 5-8 % of the CPU time of both kernels, bf16 and float32.
 * Task `task` is block *block of head *bh, a head's blocks counted down when
 * `last_first` (later query blocks see more keys under a causal mask: run first,
 * they leave the short ones to even out the end). */
static void task_block(int64_t task, int64_t blocks, bool last_first, int64_t *bh, int64_t *block)
{
    *bh = task / blocks;
    *block = last_first ? blocks - 1 - task % blocks : task % blocks;
}

/* ---- tile products ------------------------------------------------------------ */

/* C[r][0, nvec * VF_WIDTH) (+)= sum_k A(r, k) B[k][0, nvec * VF_WIDTH) for r < rows.
 * A(r, k) = a[r * a_row + k * a_k], so A may be read as stored (a_row = lda,
 * a_k = 1) or transposed (a_row = 1, a_k = lda). The register block has mrows
 * rows (MICRO_ROWS, or 1 for a single row, as in a decoding step's P V); rows
 * from `rows` to mrows repeat the last row of A, which keeps every read in
 * bounds and the register block full; they are not stored. nvec and mrows are
 * constants at every call, so the accumulators unroll into registers; each
 * element's chain of multiply-adds is the same whatever mrows is. */
VF_INLINE void micro_tile(const int nvec, const int mrows, int rows, int kdim, const float *a,
                          ptrdiff_t a_row, ptrdiff_t a_k, const float *b, ptrdiff_t ldb, float *c,
                          ptrdiff_t ldc, bool accumulate)
{
    const float *a_rows[MICRO_ROWS];
    vf acc[MICRO_ROWS][MICRO_VECS];
    for (int r = 0; r < mrows; r++) {
        a_rows[r] = a + (r < rows ? r : rows - 1) * a_row;
        for (int v = 0; v < nvec; v++)
            acc[r][v] = accumulate && r < rows ? vf_load(c + r * ldc + v * VF_WIDTH) : vf_zero();
    }
    for (int k = 0; k < kdim; k++) {
        vf b_k[MICRO_VECS];
        for (int v = 0; v < nvec; v++) b_k[v] = vf_load(b + k * ldb + v * VF_WIDTH);
        for (int r = 0; r < mrows; r++) {
            vf a_rk = vf_set1(a_rows[r][k * a_k]);
            for (int v = 0; v < nvec; v++) acc[r][v] = vf_fma(a_rk, b_k[v], acc[r][v]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nvec; v++) vf_store(c + r * ldc + v * VF_WIDTH, acc[r][v]);
}

/* C (rows x cols) (+)= A (rows x kdim) B (kdim x cols), A strided as in micro_tile,
 * B and C row-major with leading dimensions ldb and ldc; cols is a multiple of
 * VF_WIDTH. Overwrites C unless `accumulate`. */
static void tile_product(int rows, int cols, int kdim, const float *a, ptrdiff_t a_row,
                         ptrdiff_t a_k, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                         bool accumulate)
{
    const int vectors = cols / VF_WIDTH;
    for (int v0 = 0; v0 < vectors;) {
        const int left = vectors - v0;
        const int nvec = left >= MICRO_VECS ? MICRO_VECS : left >= 2 ? 2 : 1;
        for (int r0 = 0; r0 < rows; r0 += MICRO_ROWS) {
            const int nrows = min_int(MICRO_ROWS, rows - r0);
            const float *a_r = a + r0 * a_row;
            const float *b_v = b + v0 * VF_WIDTH;
            float *c_rv = c + r0 * ldc + v0 * VF_WIDTH;
#define MICRO(nv, mr)                                                                      \
    micro_tile(nv, mr, nrows, kdim, a_r, a_row, a_k, b_v, ldb, c_rv, ldc, accumulate)
            /* A single row gets a register block of one row, not MICRO_ROWS copies. */
            const int mrows = nrows == 1 ? 1 : MICRO_ROWS;
            if (nvec == MICRO_VECS && mrows == 1)
                MICRO(MICRO_VECS, 1);
            else if (nvec == MICRO_VECS)
                MICRO(MICRO_VECS, MICRO_ROWS);
            else if (nvec == 2 && mrows == 1)
                MICRO(2, 1);
            else if (nvec == 2)
                MICRO(2, MICRO_ROWS);
            else if (mrows == 1)
                MICRO(1, 1);
            else
                MICRO(1, MICRO_ROWS);
#undef MICRO
        }
        v0 += nvec;
    }
}

/* dst (cols x rows_pad) = factor * src^T for a row-major src (rows x cols, leading
 * dimension lds); the lanes from rows to rows_pad are zero. */
static void pack_transposed(float *dst, int rows_pad, const float *src, int rows, int cols,
                            ptrdiff_t lds, float factor)
{
    for (int c = 0; c < cols; c++) {
        float *dst_c = dst + (ptrdiff_t)c * rows_pad;
        for (int r = 0; r < rows; r++) dst_c[r] = factor * src[r * lds + c];
        for (int r = rows; r < rows_pad; r++) dst_c[r] = 0.0f;
    }
}

/* dst (rows x cols_pad) = src (rows x cols, leading dimension lds), zero padded. */
static void pack_padded(float *dst, int cols_pad, const float *src, int rows, int cols,
                        ptrdiff_t lds)
{
    for (int r = 0; r < rows; r++) {
        memcpy(dst + (ptrdiff_t)r * cols_pad, src + r * lds, (size_t)cols * sizeof *dst);
        for (int c = cols; c < cols_pad; c++) dst[(ptrdiff_t)r * cols_pad + c] = 0.0f;
    }
}

/* A row-major operand (leading dimension lds) read as whole vectors: in place
 * when its rows already are a multiple of VF_WIDTH long, else a zero-padded copy
 * in `spare`. */
static const float *vector_rows(float *spare, int cols_pad, const float *src, ptrdiff_t lds,
                                int rows, int cols, ptrdiff_t *ld)
{
    if (cols == cols_pad) {
        *ld = lds;
        return src;
    }
    pack_padded(spare, cols_pad, src, rows, cols, lds);
    *ld = cols_pad;
    return spare;
}

/* ---- masks and dropout on a tile of scores ---------------------------------------- */

/* Scores (or their gradients) of queries i0 .. i0 + rows against keys j0 .. j0 + keys
 * of head (b, h); entry (r, c) is data[r * row_step + c * key_step]. */
typedef struct score_tile {
    float *data;
    ptrdiff_t row_step, key_step;
    int64_t b, h, i0, j0;
    int rows, keys;
} score_tile;

/* Query row i's position among the keys (cfg->q_offset + i), which the causal
 * mask, the window, ALiBi and the blocks skipped for them compare with key
 * indices; masks and dropout index rows by i itself. */
static int64_t position(const attn_sdpa_config *cfg, int64_t i) { return cfg->q_offset + i; }

/* Key j is excluded from the query at position p when j > p. */
static void mask_causal(const score_tile *t, const attn_sdpa_config *cfg)
{
    for (int r = 0; r < t->rows; r++) {
        int64_t first_future = position(cfg, t->i0 + r) + 1 - t->j0;
        for (int64_t c = first_future < 0 ? 0 : first_future; c < t->keys; c++)
            t->data[r * t->row_step + c * t->key_step] = -INFINITY;
    }
}

/* ALiBi's bias -m_h |p - j| (p the row's position), shifted per row as the
 * reference shifts it: a query past the last key (p >= Lk) has every bias at
 * least m_h d, d = p - (Lk - 1), more than a float32 score can absorb without
 * losing its low bits, so its row is scored plus the constant m_h d, which the
 * softmax does not see and lse takes back off. Row i's shift m_h d, 0 without
 * ALiBi: */
static float alibi_row_shift(const attn_sdpa_config *cfg, int64_t h, int64_t i)
{
    const int64_t p = position(cfg, i);
    if (cfg->alibi_slopes == NULL || p < cfg->len_k) return 0.0f;
    return cfg->alibi_slopes[h] * (float)(p - (cfg->len_k - 1));
}

/* Adds -m_h (|p - j| - d) to every score of the tile (Press et al., 2022, in
 * FlashAttention-2's symmetric form), computed from the positions alone and
 * rounded as the reference rounds it. */
static void add_alibi(const score_tile *t, const attn_sdpa_config *cfg)
{
    const float slope = cfg->alibi_slopes[t->h];
    for (int r = 0; r < t->rows; r++) {
        const int64_t p = position(cfg, t->i0 + r);
        const int64_t nearest = p < cfg->len_k ? 0 : p - (cfg->len_k - 1);
        for (int c = 0; c < t->keys; c++) {
            const int64_t j = t->j0 + c, distance = p > j ? p - j : j - p;
            t->data[r * t->row_step + c * t->key_step] -= slope * (float)(distance - nearest);
        }
    }
}

/* Key j is excluded from the query at position p when p - j >= window (the
 * sliding window): row r loses the keys up to its position minus window. */
static void mask_window(const score_tile *t, const attn_sdpa_config *cfg)
{
    for (int r = 0; r < t->rows; r++) {
        const int64_t past_last_excluded = position(cfg, t->i0 + r) - cfg->window + 1 - t->j0;
        const int64_t end = past_last_excluded < t->keys ? past_last_excluded : t->keys;
        for (int64_t c = 0; c < end; c++) t->data[r * t->row_step + c * t->key_step] = -INFINITY;
    }
}

static bool mask_excludes(const attn_mask *m, int64_t at)
{
    bool flag = ((const uint8_t *)m->data)[at] != 0;
    return m->type == ATTN_MASK_BOOL ? flag : !flag;
}

/* The scores through attn_mask_apply's rule: plus the float term; -inf, or
 * fill_value (plus the row's ALiBi shift), where a bool mask excludes. A mask
 * constant along the queries (stride[2] == 0, e.g. key padding of shape
 * (B, 1, 1, Lk)) is read once per key. */
static void mask_scores(const score_tile *t, const attn_mask *m, const attn_sdpa_config *cfg)
{
    const int64_t *stride = m->stride;
    const int64_t base =
        t->b * stride[0] + t->h * stride[1] + t->i0 * stride[2] + t->j0 * stride[3];
    float excluded_score[QUERY_BLOCK];
    for (int r = 0; r < t->rows; r++)
        excluded_score[r] = m->fill ? m->fill_value + alibi_row_shift(cfg, t->h, t->i0 + r)
                                    : -INFINITY;
    for (int c = 0; c < t->keys; c++) {
        float *col = t->data + c * t->key_step;
        const int64_t at = base + c * stride[3];
        if (m->type == ATTN_MASK_FLOAT) {
            const float *add = (const float *)m->data + at;
            if (stride[2] == 0)
                for (int r = 0; r < t->rows; r++) col[r * t->row_step] += add[0];
            else
                for (int r = 0; r < t->rows; r++) col[r * t->row_step] += add[r * stride[2]];
        } else if (stride[2] == 0) {
            if (mask_excludes(m, at))
                for (int r = 0; r < t->rows; r++) col[r * t->row_step] = excluded_score[r];
        } else {
            for (int r = 0; r < t->rows; r++)
                if (mask_excludes(m, at + r * stride[2])) col[r * t->row_step] = excluded_score[r];
        }
    }
}

/* Zeroes the score gradients where a filling bool mask replaced the score: such a
 * score is a constant (PyTorch's masked_fill) and passes nothing to q and k. */
static void zero_filled(const score_tile *t, const attn_mask *m)
{
    if (m == NULL || m->type == ATTN_MASK_FLOAT || !m->fill) return;
    const int64_t *stride = m->stride;
    const int64_t base =
        t->b * stride[0] + t->h * stride[1] + t->i0 * stride[2] + t->j0 * stride[3];
    for (int c = 0; c < t->keys; c++)
        for (int r = 0; r < t->rows; r++)
            if (mask_excludes(m, base + c * stride[3] + r * stride[2]))
                t->data[r * t->row_step + c * t->key_step] = 0.0f;
}

static bool fills(const attn_mask *m) { return m != NULL && m->type != ATTN_MASK_FLOAT && m->fill; }

/* The ALiBi bias, then causal masking, the sliding window, attn_mask and
 * key_padding_mask: the reference's order. The causal and window masks are only
 * applied to tiles they reach: a tile with a key after its first query's
 * position, or with a key `window` or more before its last query's. */
static void mask_tile(const score_tile *t, const attn_sdpa_config *cfg)
{
    if (cfg->alibi_slopes != NULL) add_alibi(t, cfg);
    if (cfg->causal && t->j0 + t->keys - 1 > position(cfg, t->i0)) mask_causal(t, cfg);
    if (cfg->window > 0 && t->j0 <= position(cfg, t->i0 + t->rows - 1) - cfg->window)
        mask_window(t, cfg);
    if (cfg->attn_mask != NULL) mask_scores(t, cfg->attn_mask, cfg);
    if (cfg->key_padding_mask != NULL) mask_scores(t, cfg->key_padding_mask, cfg);
}

/* ---- which blocks can see which: skipping what the causal mask and the window
 * exclude. Skipping is exact only when an excluded score stays -inf; a filling
 * mask may put a finite score back in place of an excluded one (masked_fill
 * replaces it whatever it was), so with one the kernels visit every block. */
static bool may_skip_excluded(const attn_sdpa_config *cfg)
{
    return !fills(cfg->attn_mask) && !fills(cfg->key_padding_mask);
}

static bool skips_future_keys(const attn_sdpa_config *cfg)
{
    return cfg->causal && may_skip_excluded(cfg);
}

static bool skips_past_keys(const attn_sdpa_config *cfg)
{
    return cfg->window > 0 && may_skip_excluded(cfg);
}

/* The first key any query of rows i0 .. i0 + rows can attend: the window of the
 * first row starts at its position minus window - 1. */
static int64_t key_begin(const attn_sdpa_config *cfg, int64_t i0)
{
    int64_t begin = skips_past_keys(cfg) ? position(cfg, i0) - cfg->window + 1 : 0;
    return begin > 0 ? begin : 0;
}

/* The last key (exclusive) any query of rows i0 .. i0 + rows can attend: causal
 * masking ends the last row at the key of its position. */
static int64_t key_end(const attn_sdpa_config *cfg, int64_t i0, int rows)
{
    int64_t end = skips_future_keys(cfg) ? position(cfg, i0 + rows) : cfg->len_k;
    return end < cfg->len_k ? end : cfg->len_k;
}

/* The query rows [*begin, *end) of blocks that can see a key of j0 .. j0 + keys,
 * *begin at a QUERY_BLOCK boundary: causally, no row whose position is before j0
 * sees one; in the window, no row from position j0 + keys - 1 + window on does.
 * (Row i is at position q_offset + i.) */
static void query_range(const attn_sdpa_config *cfg, int64_t j0, int keys, int64_t *begin,
                        int64_t *end)
{
    const int64_t first_seeing = j0 - cfg->q_offset;
    *begin = skips_future_keys(cfg) && first_seeing > 0
                 ? first_seeing / QUERY_BLOCK * QUERY_BLOCK
                 : 0;
    *end = cfg->len_q;
    const int64_t past_window = j0 + keys - 1 + cfg->window - cfg->q_offset;
    if (skips_past_keys(cfg) && past_window < *end) *end = past_window;
}

/* Dropout's factors for row r of a tile, keys j0 .. j0 + keys - 1: 0 when
 * dropped, 1 / (1 - p) when kept, from the same counter-based draws as the
 * reference (attn_uniform_at at the flat index of (b, h, i, j)). */
static void dropout_row(float *factor, const score_tile *t, int r, const attn_sdpa_config *cfg)
{
    const uint64_t first =
        (uint64_t)(((t->b * cfg->heads + t->h) * cfg->len_q + t->i0 + r) * cfg->len_k + t->j0);
    dropout_factors(factor, (size_t)t->keys, cfg->dropout_seed, first, cfg->dropout_p,
                           1.0f / (1.0f - cfg->dropout_p));
}

static void apply_dropout(const score_tile *t, const attn_sdpa_config *cfg)
{
    float factor[KEY_BLOCK > QUERY_BLOCK ? KEY_BLOCK : QUERY_BLOCK];
    for (int r = 0; r < t->rows; r++) {
        dropout_row(factor, t, r, cfg);
        for (int c = 0; c < t->keys; c++) t->data[r * t->row_step + c * t->key_step] *= factor[c];
    }
}

/* With dropout (Z the keep mask), from P and dP' = dout . v_j in the same layout:
 *   dS = P (Z dP' / (1 - p) - delta_i)  into dp,   P' = Z P / (1 - p)  into p,
 * delta_i given as delta + delta_lo (see row_terms). */
static void dropout_softmax_gradient(const score_tile *p, float *dp, const float *delta,
                                     const float *delta_lo, const attn_sdpa_config *cfg)
{
    float factor[KEY_BLOCK > QUERY_BLOCK ? KEY_BLOCK : QUERY_BLOCK];
    for (int r = 0; r < p->rows; r++) {
        dropout_row(factor, p, r, cfg);
        for (int c = 0; c < p->keys; c++) {
            ptrdiff_t e = r * p->row_step + c * p->key_step;
            dp[e] = p->data[e] * ((factor[c] * dp[e] - delta[r]) - delta_lo[r]);
            p->data[e] *= factor[c];
        }
    }
}

/* ---- scratch: per-thread tiles carved from one allocation ------------------------ */

/* Hands out n floats at *used, aligned; with base NULL only counts. */
static float *carve(float *base, size_t *used, size_t n)
{
    float *p = base != NULL ? base + *used : NULL;
    *used += (n + TILE_ALIGN - 1) / TILE_ALIGN * TILE_ALIGN;
    return p;
}

typedef struct forward_tiles {
    float *q_t;      /* (D, lanes <= QUERY_BLOCK): q of the block, transposed */
    float *s_t;      /* (KEY_BLOCK, QUERY_BLOCK): scores, then probabilities */
    float *o_acc;    /* (QUERY_BLOCK, Dv padded): unnormalised output */
    float *v_padded; /* (KEY_BLOCK, Dv padded): v when Dv is not a whole vector */
    float *row_max, *row_sum, *rescale; /* (QUERY_BLOCK) */
} forward_tiles;

static size_t forward_tiles_at(forward_tiles *t, float *base, const attn_sdpa_config *cfg)
{
    const size_t D = (size_t)cfg->dim_qk, dv_pad = (size_t)round_up(cfg->dim_v, VF_WIDTH);
    size_t used = 0;
    t->q_t = carve(base, &used, D * QUERY_BLOCK);
    t->s_t = carve(base, &used, (size_t)KEY_BLOCK * QUERY_BLOCK);
    t->o_acc = carve(base, &used, QUERY_BLOCK * dv_pad);
    t->v_padded = carve(base, &used, cfg->dim_v % VF_WIDTH ? KEY_BLOCK * dv_pad : 0);
    t->row_max = carve(base, &used, QUERY_BLOCK);
    t->row_sum = carve(base, &used, QUERY_BLOCK);
    t->rescale = carve(base, &used, QUERY_BLOCK);
    return used;
}

typedef struct key_pass_tiles { /* the dk, dv pass */
    float *k_t, *v_t;           /* (D | Dv, KEY_BLOCK): scale * k and v of the block, transposed */
    float *p, *ds;              /* (QUERY_BLOCK, KEY_BLOCK): P (then P'), dP (then dS) */
    float *dk_acc, *dv_acc;     /* (KEY_BLOCK, D | Dv padded) */
    float *q_padded, *dout_padded; /* (QUERY_BLOCK, D | Dv padded) when not whole vectors */
} key_pass_tiles;

static size_t key_pass_tiles_at(key_pass_tiles *t, float *base, const attn_sdpa_config *cfg)
{
    const size_t D = (size_t)cfg->dim_qk, Dv = (size_t)cfg->dim_v;
    const size_t d_pad = (size_t)round_up(cfg->dim_qk, VF_WIDTH);
    const size_t dv_pad = (size_t)round_up(cfg->dim_v, VF_WIDTH);
    size_t used = 0;
    t->k_t = carve(base, &used, D * KEY_BLOCK);
    t->v_t = carve(base, &used, Dv * KEY_BLOCK);
    t->p = carve(base, &used, (size_t)QUERY_BLOCK * KEY_BLOCK);
    t->ds = carve(base, &used, (size_t)QUERY_BLOCK * KEY_BLOCK);
    t->dk_acc = carve(base, &used, KEY_BLOCK * d_pad);
    t->dv_acc = carve(base, &used, KEY_BLOCK * dv_pad);
    t->q_padded = carve(base, &used, D != d_pad ? QUERY_BLOCK * d_pad : 0);
    t->dout_padded = carve(base, &used, Dv != dv_pad ? QUERY_BLOCK * dv_pad : 0);
    return used;
}

typedef struct query_pass_tiles {   /* the dq pass */
    float *q_t, *dout_t;            /* (D | Dv, QUERY_BLOCK): scale * q and dout, transposed */
    float *p_t, *ds_t;              /* (KEY_BLOCK, QUERY_BLOCK): P, dP (then dS), transposed */
    float *dq_acc;                  /* (QUERY_BLOCK, D padded) */
    float *k_padded;                /* (KEY_BLOCK, D padded) when D is not whole vectors */
    float *shift, *inv_sum, *delta, *delta_lo; /* (QUERY_BLOCK): the row_terms of the block */
} query_pass_tiles;

static size_t query_pass_tiles_at(query_pass_tiles *t, float *base, const attn_sdpa_config *cfg)
{
    const size_t D = (size_t)cfg->dim_qk, Dv = (size_t)cfg->dim_v;
    const size_t d_pad = (size_t)round_up(cfg->dim_qk, VF_WIDTH);
    size_t used = 0;
    t->q_t = carve(base, &used, D * QUERY_BLOCK);
    t->dout_t = carve(base, &used, Dv * QUERY_BLOCK);
    t->p_t = carve(base, &used, (size_t)KEY_BLOCK * QUERY_BLOCK);
    t->ds_t = carve(base, &used, (size_t)KEY_BLOCK * QUERY_BLOCK);
    t->dq_acc = carve(base, &used, QUERY_BLOCK * d_pad);
    t->k_padded = carve(base, &used, D != d_pad ? KEY_BLOCK * d_pad : 0);
    t->shift = carve(base, &used, QUERY_BLOCK);
    t->inv_sum = carve(base, &used, QUERY_BLOCK);
    t->delta = carve(base, &used, QUERY_BLOCK);
    t->delta_lo = carve(base, &used, QUERY_BLOCK);
    return used;
}

/* The most key blocks one query block visits (see key_begin, key_end) when its
 * first block starts at key_begin rounded down to a multiple of `align`. */
static int64_t visible_key_blocks(const attn_sdpa_config *cfg, int64_t align)
{
    int64_t most = 0;
    for (int64_t i0 = 0; i0 < cfg->len_q; i0 += QUERY_BLOCK) {
        const int rows = min_int(QUERY_BLOCK, cfg->len_q - i0);
        const int64_t begin = key_begin(cfg, i0) / align * align, end = key_end(cfg, i0, rows);
        const int64_t blocks = end > begin ? (end - begin + KEY_BLOCK - 1) / KEY_BLOCK : 0;
        if (blocks > most) most = blocks;
    }
    return most;
}

/* The fused query pass (see query_block_fused) keeps two tiles, S^T then P^T and
 * dP'^T then dS^T, for every key block a query block sees, as long as they take
 * at most FUSED_CACHE_BYTES per thread; past that the backward recomputes them
 * in three passes instead. */
enum { FUSED_CACHE_BYTES = 8 << 20 };

/* Floats of one fused query pass cache, 0 when the backward recomputes instead;
 * key blocks start at key_begin rounded down to a multiple of `align`. */
static size_t fused_cache_floats(const attn_sdpa_config *cfg, int64_t align)
{
    const size_t floats = 2 * (size_t)visible_key_blocks(cfg, align) * KEY_BLOCK * QUERY_BLOCK;
    return floats * sizeof(float) <= FUSED_CACHE_BYTES ? floats : 0;
}

/* The fused query pass: the dq pass's tiles and, for each of up to `blocks` key
 * blocks, a tile of scores (then probabilities) and one of dP' (then dS), each
 * (KEY_BLOCK, QUERY_BLOCK), transposed. */
typedef struct fused_tiles {
    query_pass_tiles pass;
    float *s_cache, *dp_cache;
} fused_tiles;

static size_t fused_tiles_at(fused_tiles *t, float *base, const attn_sdpa_config *cfg)
{
    const size_t tiles = fused_cache_floats(cfg, 1) / 2;
    size_t used = query_pass_tiles_at(&t->pass, base, cfg);
    t->s_cache = carve(base, &used, tiles);
    t->dp_cache = carve(base, &used, tiles);
    return used;
}

/* Floats of one thread's tiles. The backward either runs the fused query pass
 * then the dk, dv pass, or (when the fused pass's cache would be too large)
 * uses the forward's tiles to recompute the softmax statistics of the rows (see
 * row_terms), then the dq pass's tiles for delta and dq, and the dk, dv pass. */
static size_t tiles_per_thread(const attn_sdpa_config *cfg, bool backward)
{
    forward_tiles f;
    key_pass_tiles kp;
    query_pass_tiles qp;
    fused_tiles ft;
    size_t most = forward_tiles_at(&f, NULL, cfg);
    if (!backward) return most;
    size_t key_pass = key_pass_tiles_at(&kp, NULL, cfg);
    if (fused_cache_floats(cfg, 1) > 0) {
        size_t fused = fused_tiles_at(&ft, NULL, cfg);
        return fused > key_pass ? fused : key_pass;
    }
    size_t query_pass = query_pass_tiles_at(&qp, NULL, cfg);
    if (key_pass > most) most = key_pass;
    return query_pass > most ? query_pass : most;
}

/* Backward's per-row terms: four floats for each of the B H Lq rows. */
enum { ROW_TERMS = 4 };

static size_t flash_workspace_bytes(const attn_sdpa_config *cfg, int threads, bool backward)
{
    size_t floats = (size_t)threads * tiles_per_thread(cfg, backward);
    if (backward) floats += ROW_TERMS * (size_t)cfg->batch * cfg->heads * cfg->len_q;
    return floats * sizeof(float);
}

/* ---- forward ----------------------------------------------------------------------- */

/* S = scale (q . k): the scale multiplies the finished dot product, never one
 * operand, in the forward and in both gradient passes. Their tile products run in
 * either orientation, but each element is the same fused multiply-add chain over
 * d, so all three get the same bits for every score (but a forward of a single
 * query row, which sums along d as vectors: single_row_scores): the backward's P
 * is then the forward's exactly (a row with one live key has P = 1, and passes no gradient to
 * q and k, bit for bit). */
static void scale_tile(float *data, int rows, int cols_padded, ptrdiff_t ld, float scale)
{
    const vf scale_v = vf_set1(scale);
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t c = 0; c < cols_padded; c += VF_WIDTH)
            vf_store(data + r * ld + c, vf_mul(vf_load(data + r * ld + c), scale_v));
}

/* The exponential of a kernel's softmax: vf_exp (1 ulp) in the float32 kernels,
 * vf_exp_bf16 (2^-17) in the bf16 ones, which round every probability to bf16
 * (see lane_exp_bf16). A kernel passes its own to every softmax step, forward and
 * backward, so that the backward's recomputation gets the forward's bits. */
typedef enum softmax_exp { SOFTMAX_EXP_FLOAT32, SOFTMAX_EXP_BF16 } softmax_exp;

VF_INLINE vf softmax_exp_of(softmax_exp kind, vf x)
{
    return kind == SOFTMAX_EXP_BF16 ? vf_exp_bf16(x) : vf_exp(x);
}

/* The online softmax update of a transposed tile of scores s_t (keys x lanes,
 * leading dimension QUERY_BLOCK), every lane a query row:
 *   m_new = max(m_old, max_j s_ij)
 *   p_ij = exp(s_ij - m_new)                    (every p <= 1: no overflow)
 *   l_new = exp(m_old - m_new) l_old + sum_j p_ij
 *   O_new = exp(m_old - m_new) O_old + P V_j     (the caller's, by rescale_rows)
 * p_t gets the p (p_t may be s_t; NULL: not kept, as the backward's recomputed
 * statistics need only m and l), p_pairs the p rounded to bf16 as round_row_pairs
 * lays them out, keys 2t and 2t + 1 of a lane side by side (the bf16 forward's P
 * for its P V product, never stored as floats; NULL: not made), row_max and
 * row_sum the new m and l, rescale exp(m_old - m_new) (NULL: not kept). Every
 * caller runs these operations in this order (the keys taken two at a time, a
 * missing last one adding exactly 0 to the sum), so the forward and the
 * backward's recomputation get the same bits.
 * A row with no finite score yet has m_new = -inf; exponents are then taken
 * relative to 0 instead, so that exp(-inf - (-inf)) never makes a NaN: its p are
 * exp(-inf) = 0 and the rescale factor exp(-inf - 0) is 0. Inlined, so that a
 * NULL p_t or rescale costs no branch. The exponential is `kind`'s. */
VF_INLINE void softmax_tile_update(softmax_exp kind, const float *s_t, float *p_t,
                                   uint16_t *p_pairs, int keys, int lanes, float *row_max,
                                   float *row_sum, float *rescale)
{
    for (int lane = 0; lane < lanes; lane += VF_WIDTH) {
        const vf m_old = vf_load(row_max + lane);
        vf m_new = m_old;
        for (int j = 0; j < keys; j++) m_new = vf_max(vf_load(s_t + j * QUERY_BLOCK + lane), m_new);
        const vf m_ref = vf_replace(m_new, -INFINITY, 0.0f);
        const vf factor = softmax_exp_of(kind, vf_sub(m_old, m_ref));
        vf sum = vf_zero();
        for (int j = 0; j < keys; j += 2) {
            const bool odd = j + 1 < keys;
            const float *s_j = s_t + j * QUERY_BLOCK + lane;
            const vf p_even = softmax_exp_of(kind, vf_sub(vf_load(s_j), m_ref));
            const vf p_odd =
                odd ? softmax_exp_of(kind, vf_sub(vf_load(s_j + QUERY_BLOCK), m_ref)) : vf_zero();
            if (p_t != NULL) vf_store(p_t + j * QUERY_BLOCK + lane, p_even);
            if (p_t != NULL && odd) vf_store(p_t + (j + 1) * QUERY_BLOCK + lane, p_odd);
            if (p_pairs != NULL)
                vp_store_rounded(p_pairs + j * QUERY_BLOCK + 2 * lane, p_even, p_odd);
            sum = vf_add(vf_add(sum, p_even), p_odd);
        }
        vf_store(row_sum + lane, vf_fma(vf_load(row_sum + lane), factor, sum));
        vf_store(row_max + lane, m_new);
        if (rescale != NULL) vf_store(rescale + lane, factor);
    }
}

/* O = diag(rescale) O for the first `rows` rows of o (leading dimension cols_pad). */
static void rescale_rows(float *o, int rows, int cols_pad, const float *rescale)
{
    for (int r = 0; r < rows; r++) {
        const vf factor = vf_set1(rescale[r]);
        float *o_r = o + r * cols_pad;
        for (int c = 0; c < cols_pad; c += VF_WIDTH) vf_store(o_r + c, vf_mul(vf_load(o_r + c), factor));
    }
}

/* out_i = O_i / l_i and lse_i = m_i + log l_i (less the row's ALiBi shift) of query
 * rows i0 .. i0 + QUERY_BLOCK of head bh from the online softmax's o_acc (leading
 * dimension dv_pad), row_max and row_sum; a row that saw no finite score has
 * l_i = 0 and gets zeros and -inf. */
static void finish_rows(float *out, float *lse, const attn_sdpa_config *cfg, int64_t bh,
                        int64_t i0, const float *o_acc, int dv_pad, const float *row_max,
                        const float *row_sum)
{
    const int64_t Lq = cfg->len_q;
    const int Dv = cfg->dim_v;
    const attn_rows out_rows = attn_out_rows(cfg);
    float *out_i = out + attn_rows_at(&out_rows, bh, i0);
    for (int r = 0; r < min_int(QUERY_BLOCK, Lq - i0); r++) {
        const float l = row_sum[r];
        float *out_r = out_i + r * out_rows.step;
        const float *o_r = o_acc + r * dv_pad;
        const float shift = alibi_row_shift(cfg, bh % cfg->heads, i0 + r);
        lse[bh * Lq + i0 + r] = l == 0.0f ? -INFINITY : (row_max[r] - shift) + logf(l);
        /* Two loops rather than a choice per element, so that the division runs
         * on vectors. */
        if (l == 0.0f)
            memset(out_r, 0, (size_t)Dv * sizeof *out_r);
        else
            for (int c = 0; c < Dv; c++) out_r[c] = o_r[c] / l;
    }
}

/* The online softmax of query rows i0 .. i0 + rows of head bh = b * H + h over all
 * the keys they see, leaving each row's max and sum in t->row_max and t->row_sum
 * and, `with_values`, the unnormalised output sum_j exp(s_ij - m_i) P'_ij v_j in
 * t->o_acc. */
static void online_softmax(const float *q, const float *k, const float *v,
                           const attn_sdpa_config *cfg, int64_t bh, int64_t i0,
                           const forward_tiles *t, bool with_values)
{
    const int64_t H = cfg->heads, Lq = cfg->len_q;
    const int D = cfg->dim_qk, Dv = cfg->dim_v, dv_pad = round_up(Dv, VF_WIDTH);
    const int rows = min_int(QUERY_BLOCK, Lq - i0);
    /* The lanes that hold a row: a block of one query row (a decoding step) works
     * on one vector of lanes rather than QUERY_BLOCK. Each lane is computed alone,
     * so its bits do not depend on how many are. */
    const int lanes = round_up(rows, VF_WIDTH);
    const attn_rows q_rows = attn_q_rows(cfg), k_rows = attn_k_rows(cfg), v_rows = attn_v_rows(cfg);
    const float *k_head = k + attn_rows_at(&k_rows, bh, 0);
    const float *v_head = v + attn_rows_at(&v_rows, bh, 0);

    /* Q of the block, transposed so that a query row is a vector lane: (D, lanes). */
    pack_transposed(t->q_t, lanes, q + attn_rows_at(&q_rows, bh, i0), rows, D, q_rows.step, 1.0f);
    /* Running statistics of the online softmax: m_i = -inf (nothing seen yet),
     * l_i = 0, and the accumulator of sum_j exp(s_ij - m_i) v_j is 0. */
    for (int r = 0; r < QUERY_BLOCK; r++) {
        t->row_max[r] = -INFINITY;
        t->row_sum[r] = 0.0f;
    }
    if (with_values) memset(t->o_acc, 0, (size_t)rows * dv_pad * sizeof *t->o_acc);

    /* Only the keys some row of the block can see (see key_begin, key_end): with a
     * causal window, O(window) keys instead of O(Lk). */
    const int64_t end = key_end(cfg, i0, rows);
    for (int64_t j0 = key_begin(cfg, i0); j0 < end; j0 += KEY_BLOCK) {
        const int keys = min_int(KEY_BLOCK, end - j0);
        /* S^T (keys x lanes) = scale K_j Q^T, then the bias and masks. */
        tile_product(keys, lanes, D, k_head + j0 * k_rows.step, k_rows.step, 1, t->q_t, lanes,
                     t->s_t, QUERY_BLOCK, false);
        scale_tile(t->s_t, keys, lanes, QUERY_BLOCK, attn_flash_scale(cfg));
        score_tile tile = {t->s_t, 1, QUERY_BLOCK, bh / H, bh % H, i0, j0, rows, keys};
        mask_tile(&tile, cfg);

        softmax_tile_update(SOFTMAX_EXP_FLOAT32, t->s_t, t->s_t, NULL, keys, lanes, t->row_max,
                            t->row_sum, t->rescale);
        if (!with_values) continue;
        /* Dropout acts on the probabilities that multiply v, not on the sum l,
         * which normalises the undropped softmax. */
        if (cfg->dropout_p > 0.0f) apply_dropout(&tile, cfg);

        /* O = diag(rescale) O + P V_j. */
        rescale_rows(t->o_acc, rows, dv_pad, t->rescale);
        ptrdiff_t ldv;
        const float *v_j = vector_rows(t->v_padded, dv_pad, v_head + j0 * v_rows.step,
                                       v_rows.step, keys, Dv, &ldv);
        tile_product(rows, dv_pad, keys, t->s_t, 1, QUERY_BLOCK, v_j, ldv, t->o_acc, dv_pad, true);
    }
}

/* ---- one query row: a decoding step ---------------------------------------------- */

/* A block of one query row (a decoding step, or a last block of one row)
 * holds its scores as a row, the keys as the lanes: the transposed tile would
 * spend a vector of which one lane lives on every score, its exponential and its
 * reloads. The same online softmax, summed in another order (so the bits differ
 * from a block of many rows by rounding; the backward recomputes its statistics
 * with the tile products, as for every block). */

/* s[c] = scale (q . k_c) for keys c < keys of k: (keys, D) at leading dimension
 * ldk, each a vector dot product along d, one load of k per VF_WIDTH of its
 * values. */
static void single_row_scores(float *s, const float *k, ptrdiff_t ldk, const float *q, int keys,
                              int D, float scale)
{
    for (int c = 0; c < keys; c++) {
        const float *kc = k + (ptrdiff_t)c * ldk;
        vf acc = vf_zero();
        int d = 0;
        for (; d + VF_WIDTH <= D; d += VF_WIDTH) acc = vf_fma(vf_load(kc + d), vf_load(q + d), acc);
        float score = vf_sum(acc);
        for (; d < D; d++) score += kc[d] * q[d];
        s[c] = scale * score;
    }
}

/* The largest lane of x. */
static float lanes_max(vf x)
{
    float lanes[VF_WIDTH];
    vf_store(lanes, x);
    float most = lanes[0];
    for (int i = 1; i < VF_WIDTH; i++) most = lanes[i] > most ? lanes[i] : most;
    return most;
}

/* softmax_tile_update's step for one row of scores s[0, keys), which has room for
 * keys rounded up to whole vectors (the padding is set to -inf, so p = 0): s gets
 * the p, *row_max and *row_sum the new m and l; returns exp(m_old - m_new), the
 * exponential `kind`'s. */
static float softmax_row_update(softmax_exp kind, float *s, int keys, float *row_max,
                                float *row_sum)
{
    const int padded = round_up(keys, VF_WIDTH);
    for (int c = keys; c < padded; c++) s[c] = -INFINITY;
    vf most = vf_set1(*row_max);
    for (int c = 0; c < padded; c += VF_WIDTH) most = vf_max(vf_load(s + c), most);
    const float m_new = lanes_max(most);
    const vf m_ref = vf_set1(m_new == -INFINITY ? 0.0f : m_new);
    float factor[VF_WIDTH];
    vf_store(factor, softmax_exp_of(kind, vf_sub(vf_set1(*row_max), m_ref)));
    vf sum = vf_zero();
    for (int c = 0; c < padded; c += VF_WIDTH) {
        const vf p = softmax_exp_of(kind, vf_sub(vf_load(s + c), m_ref));
        vf_store(s + c, p);
        sum = vf_add(sum, p);
    }
    *row_sum = *row_sum * factor[0] + vf_sum(sum);
    *row_max = m_new;
    return factor[0];
}

/* out and lse of the one query row i0 of head bh: online_softmax's steps on a row. */
static void single_row_forward(float *out, float *lse, const float *q, const float *k,
                               const float *v, const attn_sdpa_config *cfg, int64_t bh,
                               int64_t i0, const forward_tiles *t)
{
    const int64_t H = cfg->heads;
    const int D = cfg->dim_qk, Dv = cfg->dim_v, dv_pad = round_up(Dv, VF_WIDTH);
    const attn_rows q_rows = attn_q_rows(cfg), k_rows = attn_k_rows(cfg), v_rows = attn_v_rows(cfg);
    const float *q_row = q + attn_rows_at(&q_rows, bh, i0);
    const float *k_head = k + attn_rows_at(&k_rows, bh, 0);
    const float *v_head = v + attn_rows_at(&v_rows, bh, 0);
    t->row_max[0] = -INFINITY;
    t->row_sum[0] = 0.0f;
    memset(t->o_acc, 0, (size_t)dv_pad * sizeof *t->o_acc);
    const int64_t end = key_end(cfg, i0, 1);
    for (int64_t j0 = key_begin(cfg, i0); j0 < end; j0 += KEY_BLOCK) {
        const int keys = min_int(KEY_BLOCK, end - j0);
        single_row_scores(t->s_t, k_head + j0 * k_rows.step, k_rows.step, q_row, keys, D,
                          attn_flash_scale(cfg));
        score_tile tile = {t->s_t, 0, 1, bh / H, bh % H, i0, j0, 1, keys};
        mask_tile(&tile, cfg);
        t->rescale[0] =
            softmax_row_update(SOFTMAX_EXP_FLOAT32, t->s_t, keys, t->row_max, t->row_sum);
        if (cfg->dropout_p > 0.0f) apply_dropout(&tile, cfg);
        /* o = rescale o + p V_j */
        rescale_rows(t->o_acc, 1, dv_pad, t->rescale);
        ptrdiff_t ldv;
        const float *v_j = vector_rows(t->v_padded, dv_pad, v_head + j0 * v_rows.step,
                                       v_rows.step, keys, Dv, &ldv);
        tile_product(1, dv_pad, keys, t->s_t, 0, 1, v_j, ldv, t->o_acc, dv_pad, true);
    }
    finish_rows(out, lse, cfg, bh, i0, t->o_acc, round_up(cfg->dim_v, VF_WIDTH), t->row_max,
                t->row_sum);
}

/* out and lse of query rows i0 .. i0 + QUERY_BLOCK of head bh. */
static void forward_block(float *out, float *lse, const float *q, const float *k, const float *v,
                          const attn_sdpa_config *cfg, int64_t bh, int64_t i0,
                          const forward_tiles *t)
{
    if (cfg->len_q - i0 == 1) {
        single_row_forward(out, lse, q, k, v, cfg, bh, i0, t);
        return;
    }
    online_softmax(q, k, v, cfg, bh, i0, t, true);
    finish_rows(out, lse, cfg, bh, i0, t->o_acc, round_up(cfg->dim_v, VF_WIDTH), t->row_max,
                t->row_sum);
}

/* Query block `task` of the forward (task_block's order). */
static void forward_task(float *out, float *lse, const float *q, const float *k, const float *v,
                         const attn_sdpa_config *cfg, int64_t task, int64_t query_blocks,
                         const forward_tiles *t)
{
    int64_t bh, block;
    task_block(task, query_blocks, true, &bh, &block);
    forward_block(out, lse, q, k, v, cfg, bh, block * QUERY_BLOCK, t);
}

static attn_status flash_forward(float *out, float *lse, const float *q, const float *k,
                                 const float *v, const attn_sdpa_config *cfg)
{
    const int64_t heads = (int64_t)cfg->batch * cfg->heads;
    const int64_t query_blocks = (cfg->len_q + QUERY_BLOCK - 1) / QUERY_BLOCK;
    /* No more threads than tasks: a decoding step of one head is one task, and
     * waking idle threads (and their scratch) would cost more than it computes.
     * The bits do not depend on the thread count. */
    const int threads = min_int(attn_get_num_threads(), heads * query_blocks);
    forward_tiles layout;
    const size_t per_thread = forward_tiles_at(&layout, NULL, cfg);
    const kernel_scratch held = attn_kernel_scratch_take((size_t)threads * per_thread);
    float *scratch = held.data;
    if (scratch == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d threads' attention tiles",
                          threads);
    const int64_t tasks = heads * query_blocks;

    /* One thread runs the tasks with no parallel region: a region's barriers make
     * a system call each even in a team of one (libgomp wakes any waiters with
     * futex), about 1.5 us apiece in this virtual machine, more than the
     * attention of one head of a decoding step computes (a step runs its heads
     * side by side, each call on a thread of the caller's region). */
    if (threads == 1) {
        forward_tiles tiles;
        forward_tiles_at(&tiles, scratch, cfg);
        for (int64_t task = 0; task < tasks; task++)
            forward_task(out, lse, q, k, v, cfg, task, query_blocks, &tiles);
    } else {
#pragma omp parallel num_threads(threads)
        {
            forward_tiles tiles;
            forward_tiles_at(&tiles, scratch + (size_t)attn_thread_index() * per_thread, cfg);
            /* Later query blocks see more keys under a causal mask: hand them out first. */
#pragma omp for schedule(dynamic)
            for (int64_t task = 0; task < tasks; task++)
                forward_task(out, lse, q, k, v, cfg, task, query_blocks, &tiles);
        }
    }
    attn_kernel_scratch_give(held);
    return ATTN_OK;
}

/* ---- backward ---------------------------------------------------------------------- */

/* For every query row of every head (B H Lq each), what both gradient passes need:
 *   P_ij = exp(s_ij - shift_i) * inv_sum_i,  delta_i = sum_j P'_ij dP'_ij
 * with shift = m_i and inv_sum = 1 / l_i, the row's max and sum recomputed as the
 * forward computes them (so P is the forward's P bit for bit; exp(s - lse) would
 * carry the rounding of lse, and lose log l entirely when |m| is huge, as in a row
 * the seed's -1e20 fill masks completely), and shift = +inf (P = 0: no gradient)
 * for a fully masked row. delta_i is the D_i of FlashAttention-2, there computed
 * as dout_i . out_i; here it is summed from the very P and dP the gradient passes
 * use (see block_delta), as PyTorch's softmax backward does, and carried to more
 * than float's precision, as the float pair delta + delta_lo (see delta_sums). */
typedef struct row_terms {
    float *shift, *inv_sum, *delta, *delta_lo;
} row_terms;

static void block_row_terms(const row_terms *terms, const float *q, const float *k,
                            const float *v, const float *lse, const attn_sdpa_config *cfg,
                            int64_t bh, int64_t i0, const forward_tiles *t)
{
    const int rows = min_int(QUERY_BLOCK, cfg->len_q - i0);
    const int64_t first = bh * cfg->len_q + i0;
    online_softmax(q, k, v, cfg, bh, i0, t, false);
    for (int r = 0; r < rows; r++) {
        bool masked = lse[first + r] == -INFINITY || t->row_sum[r] == 0.0f;
        terms->shift[first + r] = masked ? INFINITY : t->row_max[r];
        terms->inv_sum[first + r] = masked ? 1.0f : 1.0f / t->row_sum[r];
    }
}

/* shift and inv_sum of QUERY_BLOCK lanes from the running max and sum (see
 * row_terms; lanes past `rows` and fully masked rows get P = 0), also stored
 * into terms for rows first .. first + rows. Each lane reads its max and sum
 * before writing, so shift may be row_max and inv_sum row_sum. */
static void set_row_terms(const row_terms *terms, float *shift, float *inv_sum,
                          const float *row_max, const float *row_sum, const float *lse,
                          int64_t first, int rows)
{
    for (int r = 0; r < QUERY_BLOCK; r++) {
        const bool masked = r >= rows || lse[first + r] == -INFINITY || row_sum[r] == 0.0f;
        shift[r] = masked ? INFINITY : row_max[r];
        inv_sum[r] = masked ? 1.0f : 1.0f / row_sum[r];
        if (r < rows) {
            terms->shift[first + r] = shift[r];
            terms->inv_sum[first + r] = inv_sum[r];
        }
    }
}

/* P^T = exp(S^T - shift) inv_sum in place, a transposed tile of `keys` rows of
 * QUERY_BLOCK lanes, exp `kind`'s. */
static void probabilities_transposed(softmax_exp kind, float *s_t, int keys, const float *shift,
                                     const float *inv_sum)
{
    for (int j = 0; j < keys; j++) {
        float *p_j = s_t + j * QUERY_BLOCK;
        for (int lane = 0; lane < QUERY_BLOCK; lane += VF_WIDTH)
            vf_store(p_j + lane,
                     vf_mul(softmax_exp_of(kind, vf_sub(vf_load(p_j + lane), vf_load(shift + lane))),
                            vf_load(inv_sum + lane)));
    }
}

/* dS^T = P^T ((dP'^T - delta) - delta_lo) into dp_t, transposed tiles of `keys`
 * rows of QUERY_BLOCK lanes. */
static void score_gradient_transposed(float *dp_t, const float *p_t, int keys,
                                      const float *delta, const float *delta_lo)
{
    for (int j = 0; j < keys; j++) {
        const float *p_j = p_t + j * QUERY_BLOCK;
        float *ds_j = dp_t + j * QUERY_BLOCK;
        for (int lane = 0; lane < QUERY_BLOCK; lane += VF_WIDTH)
            vf_store(ds_j + lane,
                     vf_mul(vf_load(p_j + lane),
                            vf_sub(vf_sub(vf_load(ds_j + lane), vf_load(delta + lane)),
                                   vf_load(delta_lo + lane))));
    }
}

/* P = exp(S - shift_r) inv_sum_r in place, `rows` rows of KEY_BLOCK keys, exp
 * `kind`'s. */
static void probabilities_by_rows(softmax_exp kind, float *p, int rows, const float *shift,
                                  const float *inv_sum)
{
    for (int r = 0; r < rows; r++) {
        const vf shift_r = vf_set1(shift[r]), inv_sum_r = vf_set1(inv_sum[r]);
        float *p_r = p + r * KEY_BLOCK;
        for (int c = 0; c < KEY_BLOCK; c += VF_WIDTH)
            vf_store(p_r + c,
                     vf_mul(softmax_exp_of(kind, vf_sub(vf_load(p_r + c), shift_r)), inv_sum_r));
    }
}

/* dS = P ((dP - delta_r) - delta_lo_r) into ds, `rows` rows of KEY_BLOCK keys. */
static void score_gradient_by_rows(float *ds, const float *p, int rows, const float *delta,
                                   const float *delta_lo)
{
    for (int r = 0; r < rows; r++) {
        const vf delta_r = vf_set1(delta[r]), delta_lo_r = vf_set1(delta_lo[r]);
        const float *p_r = p + r * KEY_BLOCK;
        float *ds_r = ds + r * KEY_BLOCK;
        for (int c = 0; c < KEY_BLOCK; c += VF_WIDTH)
            vf_store(ds_r + c,
                     vf_mul(vf_load(p_r + c), vf_sub(vf_sub(vf_load(ds_r + c), delta_r), delta_lo_r)));
    }
}

/* dk += scale dk_acc and dv += dv_acc for keys j0 .. j0 + keys of head bh (either
 * may be NULL); the accumulators are (KEY_BLOCK, d_pad | dv_pad). */
static void add_key_gradients(float *dk, float *dv, const float *dk_acc, int d_pad,
                              const float *dv_acc, int dv_pad, const attn_sdpa_config *cfg,
                              int64_t bh, int64_t j0, int keys)
{
    const int D = cfg->dim_qk, Dv = cfg->dim_v;
    const attn_rows k_rows = attn_k_rows(cfg), v_rows = attn_v_rows(cfg);
    const float scale = attn_flash_scale(cfg);
    const int64_t dk_j = attn_rows_at(&k_rows, bh, j0), dv_j = attn_rows_at(&v_rows, bh, j0);
    for (int c = 0; c < keys; c++) {
        if (dk != NULL) {
            float *dk_c = dk + dk_j + c * k_rows.step;
            for (int d = 0; d < D; d++) dk_c[d] += scale * dk_acc[c * d_pad + d];
        }
        if (dv != NULL) {
            float *dv_c = dv + dv_j + c * v_rows.step;
            for (int d = 0; d < Dv; d++) dv_c[d] += dv_acc[c * dv_pad + d];
        }
    }
}

/* dq += scale dq_acc for query rows i0 .. i0 + rows of head bh; the accumulator
 * is (QUERY_BLOCK, d_pad). */
static void add_query_gradient(float *dq, const float *dq_acc, int d_pad,
                               const attn_sdpa_config *cfg, int64_t bh, int64_t i0, int rows)
{
    const int D = cfg->dim_qk;
    const attn_rows q_rows = attn_q_rows(cfg);
    const float scale = attn_flash_scale(cfg);
    float *dq_i = dq + attn_rows_at(&q_rows, bh, i0);
    for (int r = 0; r < rows; r++) {
        float *dq_r = dq_i + r * q_rows.step;
        for (int d = 0; d < D; d++) dq_r[d] += scale * dq_acc[r * d_pad + d];
    }
}

/* dk, dv of keys j0 .. j0 + keys of head bh, over every query block that sees them. */
static void key_block_gradients(float *dk, float *dv, const float *dout, const float *q,
                                const float *k, const float *v, const row_terms *terms,
                                const attn_sdpa_config *cfg, int64_t bh, int64_t j0,
                                const key_pass_tiles *t)
{
    const int64_t H = cfg->heads, Lq = cfg->len_q, Lk = cfg->len_k;
    const int D = cfg->dim_qk, Dv = cfg->dim_v;
    const int d_pad = round_up(D, VF_WIDTH), dv_pad = round_up(Dv, VF_WIDTH);
    const int keys = min_int(KEY_BLOCK, Lk - j0);
    const float scale = attn_flash_scale(cfg);
    const attn_rows q_rows = attn_q_rows(cfg), k_rows = attn_k_rows(cfg), v_rows = attn_v_rows(cfg);
    const attn_rows out_rows = attn_out_rows(cfg);

    pack_transposed(t->k_t, KEY_BLOCK, k + attn_rows_at(&k_rows, bh, j0), keys, D, k_rows.step,
                    1.0f);
    pack_transposed(t->v_t, KEY_BLOCK, v + attn_rows_at(&v_rows, bh, j0), keys, Dv, v_rows.step,
                    1.0f);
    memset(t->dk_acc, 0, (size_t)KEY_BLOCK * d_pad * sizeof *t->dk_acc);
    memset(t->dv_acc, 0, (size_t)KEY_BLOCK * dv_pad * sizeof *t->dv_acc);

    /* Only the query blocks that see a key of this block: under a causal mask not
     * those that end before key j0, in a window not those that start past it. */
    int64_t first, last;
    query_range(cfg, j0, keys, &first, &last);
    for (int64_t i0 = first; i0 < last; i0 += QUERY_BLOCK) {
        const int rows = min_int(QUERY_BLOCK, Lq - i0);
        const float *q_i = q + attn_rows_at(&q_rows, bh, i0);
        const float *dout_i = dout + attn_rows_at(&out_rows, bh, i0);
        const float *shift = terms->shift + bh * Lq + i0, *inv_sum = terms->inv_sum + bh * Lq + i0;
        const float *delta = terms->delta + bh * Lq + i0;
        const float *delta_lo = terms->delta_lo + bh * Lq + i0;

        /* S (rows x KEY_BLOCK) = scale Q_i K_j^T, masked as in the forward;
         * P = exp(S - shift_i) inv_sum_i, the forward's probabilities. */
        tile_product(rows, KEY_BLOCK, D, q_i, q_rows.step, 1, t->k_t, KEY_BLOCK, t->p, KEY_BLOCK,
                     false);
        scale_tile(t->p, rows, KEY_BLOCK, KEY_BLOCK, scale);
        score_tile tile = {t->p, KEY_BLOCK, 1, bh / H, bh % H, i0, j0, rows, keys};
        mask_tile(&tile, cfg);
        probabilities_by_rows(SOFTMAX_EXP_FLOAT32, t->p, rows, shift, inv_sum);
        /* dP' (rows x KEY_BLOCK) = dout_i V_j^T. */
        tile_product(rows, KEY_BLOCK, Dv, dout_i, out_rows.step, 1, t->v_t, KEY_BLOCK, t->ds,
                     KEY_BLOCK, false);
        /* dS = P (dP - delta_i), P' = P, or their dropout forms. */
        if (cfg->dropout_p > 0.0f) {
            dropout_softmax_gradient(&tile, t->ds, delta, delta_lo, cfg);
        } else {
            score_gradient_by_rows(t->ds, t->p, rows, delta, delta_lo);
        }
        score_tile ds_tile = tile;
        ds_tile.data = t->ds;
        zero_filled(&ds_tile, cfg->attn_mask);
        zero_filled(&ds_tile, cfg->key_padding_mask);

        /* dV_j += P'^T dout_i and dK_j += dS^T Q_i (scale applied at the end). */
        ptrdiff_t ld;
        if (dv != NULL) {
            const float *dout_rows =
                vector_rows(t->dout_padded, dv_pad, dout_i, out_rows.step, rows, Dv, &ld);
            tile_product(keys, dv_pad, rows, t->p, 1, KEY_BLOCK, dout_rows, ld, t->dv_acc, dv_pad,
                         true);
        }
        if (dk != NULL) {
            const float *q_vectors =
                vector_rows(t->q_padded, d_pad, q_i, q_rows.step, rows, D, &ld);
            tile_product(keys, d_pad, rows, t->ds, 1, KEY_BLOCK, q_vectors, ld, t->dk_acc, d_pad,
                         true);
        }
    }
    add_key_gradients(dk, dv, t->dk_acc, d_pad, t->dv_acc, dv_pad, cfg, bh, j0, keys);
}

/* Loads query rows i0 .. i0 + rows of head bh into the dq pass's tiles: q and
 * dout transposed, and the row terms as lanes (lanes past the last row get P = 0). */
static void load_query_block(const query_pass_tiles *t, const float *dout, const float *q,
                             const row_terms *terms, const attn_sdpa_config *cfg, int64_t bh,
                             int64_t i0, int rows)
{
    const int64_t Lq = cfg->len_q;
    const attn_rows q_rows = attn_q_rows(cfg), out_rows = attn_out_rows(cfg);
    pack_transposed(t->q_t, QUERY_BLOCK, q + attn_rows_at(&q_rows, bh, i0), rows, cfg->dim_qk,
                    q_rows.step, 1.0f);
    pack_transposed(t->dout_t, QUERY_BLOCK, dout + attn_rows_at(&out_rows, bh, i0), rows,
                    cfg->dim_v, out_rows.step, 1.0f);
    for (int r = 0; r < QUERY_BLOCK; r++) {
        t->shift[r] = r < rows ? terms->shift[bh * Lq + i0 + r] : INFINITY;
        t->inv_sum[r] = r < rows ? terms->inv_sum[bh * Lq + i0 + r] : 1.0f;
        t->delta[r] = r < rows ? terms->delta[bh * Lq + i0 + r] : 0.0f;
        t->delta_lo[r] = r < rows ? terms->delta_lo[bh * Lq + i0 + r] : 0.0f;
    }
}

/* For the loaded query block and keys j0 .. j0 + keys of k_head and v_head (the
 * head's rows), transposed:
 *   P^T = exp(S^T - shift) inv_sum with S^T = scale K_j Q_i^T, masked,
 *   dP'^T = V_j dout_i^T.
 * Returns the tile of P^T (its data is t->p_t; dP'^T is in t->ds_t). */
static score_tile query_block_probabilities(const query_pass_tiles *t, const float *k_head,
                                            const float *v_head, const attn_sdpa_config *cfg,
                                            int64_t bh, int64_t i0, int rows, int64_t j0,
                                            int keys)
{
    const int D = cfg->dim_qk, Dv = cfg->dim_v;
    const int64_t ldk = attn_k_rows(cfg).step, ldv = attn_v_rows(cfg).step;
    tile_product(keys, QUERY_BLOCK, D, k_head + j0 * ldk, ldk, 1, t->q_t, QUERY_BLOCK, t->p_t,
                 QUERY_BLOCK, false);
    scale_tile(t->p_t, keys, QUERY_BLOCK, QUERY_BLOCK, attn_flash_scale(cfg));
    score_tile tile = {t->p_t, 1, QUERY_BLOCK, bh / cfg->heads, bh % cfg->heads,
                       i0, j0, rows, keys};
    mask_tile(&tile, cfg);
    probabilities_transposed(SOFTMAX_EXP_FLOAT32, t->p_t, keys, t->shift, t->inv_sum);
    tile_product(keys, QUERY_BLOCK, Dv, v_head + j0 * ldv, ldv, 1, t->dout_t, QUERY_BLOCK, t->ds_t,
                 QUERY_BLOCK, false);
    return tile;
}

/* delta_i of the lanes of one query block, in two steps: delta_sums adds up, over
 * a tile of keys, sum_j P'_ij dP'_ij and sum_j P_ij (P' and dP' with dropout's
 * factor Z / (1 - p) on one of them, P without it) from the same P and dP' as the
 * gradient passes, in double, where the product of two floats is exact; then
 * delta_from_sums divides the first by the second (1 in exact arithmetic). So
 * each row of dS = P (dP' - delta) sums to zero in exact arithmetic on the P and
 * dP' the passes hold. Summed in float it did not: delta was off by a rounding
 * of itself and sum_j P_ij by a few, which put an error of about 2^-24 |delta_i|
 * P_ij into every dS_ij of the row, all in the same direction; in
 * dq_i = scale sum_j dS_ij k_j it does not cancel but comes out times the row's
 * mean key sum_j P_ij k_j, whatever the size of dq_i. Where the dP'_ij nearly
 * equal delta_i (keys whose values dout sees alike), dq is a small difference of
 * large terms and was off by far more than its own rounding (7.6e-6 relative in
 * the cross-attention of a conformance case, 1.1e-5 in a gradient behind it).
 * delta_i reaches the passes as a pair of floats, delta + delta_lo, and they form
 * dS = P ((dP' - delta) - delta_lo): the first difference is exact where the two
 * nearly cancel (Sterbenz's lemma), the second rounds once, relative to the
 * result. (delta as dout . out, FlashAttention-2's D_i, would carry the forward's
 * roundings too.) */
static void delta_sums(double *num, double *den, const float *p_t, const float *dp_t, int keys)
{
    for (int lane = 0; lane < QUERY_BLOCK; lane += VF_WIDTH) {
        vfd n = vfd_load(num + lane), d = vfd_load(den + lane);
        for (int j = 0; j < keys; j++) {
            const vf p = vf_load(p_t + j * QUERY_BLOCK + lane);
            n = vfd_fma(p, vf_load(dp_t + j * QUERY_BLOCK + lane), n);
            d = vfd_add(d, p);
        }
        vfd_store(num + lane, n);
        vfd_store(den + lane, d);
    }
}

/* delta and delta_lo of each lane from delta_sums' sums; 0 for a lane with no
 * probability (a fully masked row, a lane past the last row). */
static void delta_from_sums(float *delta, float *delta_lo, const double *num, const double *den)
{
    for (int lane = 0; lane < QUERY_BLOCK; lane++) {
        const double exact = den[lane] > 0.0 ? num[lane] / den[lane] : 0.0;
        delta[lane] = (float)exact;
        delta_lo[lane] = (float)(exact - (double)delta[lane]);
    }
}

/* delta_from_sums into the lanes and into terms for rows first .. first + rows. */
static void finish_delta(const row_terms *terms, float *delta, float *delta_lo, const double *num,
                         const double *den, int64_t first, int rows)
{
    delta_from_sums(delta, delta_lo, num, den);
    for (int r = 0; r < rows; r++) {
        terms->delta[first + r] = delta[r];
        terms->delta_lo[first + r] = delta_lo[r];
    }
}

/* delta and delta_lo of query rows i0 .. i0 + rows of head bh (see delta_sums). */
static void block_delta(const row_terms *terms, const float *dout, const float *q,
                        const float *k, const float *v, const attn_sdpa_config *cfg, int64_t bh,
                        int64_t i0, const query_pass_tiles *t)
{
    const int64_t Lq = cfg->len_q;
    const int rows = min_int(QUERY_BLOCK, Lq - i0);
    const attn_rows k_rows = attn_k_rows(cfg), v_rows = attn_v_rows(cfg);
    const float *k_head = k + attn_rows_at(&k_rows, bh, 0);
    const float *v_head = v + attn_rows_at(&v_rows, bh, 0);
    load_query_block(t, dout, q, terms, cfg, bh, i0, rows);
    double num[QUERY_BLOCK] = {0}, den[QUERY_BLOCK] = {0};

    const int64_t end = key_end(cfg, i0, rows);
    for (int64_t j0 = key_begin(cfg, i0); j0 < end; j0 += KEY_BLOCK) {
        const int keys = min_int(KEY_BLOCK, end - j0);
        score_tile tile = query_block_probabilities(t, k_head, v_head, cfg, bh, i0, rows, j0, keys);
        if (cfg->dropout_p > 0.0f) {
            score_tile dp_tile = tile;
            dp_tile.data = t->ds_t;
            apply_dropout(&dp_tile, cfg);
        }
        delta_sums(num, den, t->p_t, t->ds_t, keys);
    }
    finish_delta(terms, t->delta, t->delta_lo, num, den, bh * Lq + i0, rows);
}

/* dq of query rows i0 .. i0 + rows of head bh, over every key block they see. */
static void query_block_gradient(float *dq, const float *dout, const float *q, const float *k,
                                 const float *v, const row_terms *terms,
                                 const attn_sdpa_config *cfg, int64_t bh, int64_t i0,
                                 const query_pass_tiles *t)
{
    const int64_t Lq = cfg->len_q;
    const int D = cfg->dim_qk, d_pad = round_up(D, VF_WIDTH);
    const int rows = min_int(QUERY_BLOCK, Lq - i0);
    const attn_rows k_rows = attn_k_rows(cfg), v_rows = attn_v_rows(cfg);
    const float *k_head = k + attn_rows_at(&k_rows, bh, 0);
    const float *v_head = v + attn_rows_at(&v_rows, bh, 0);

    load_query_block(t, dout, q, terms, cfg, bh, i0, rows);
    memset(t->dq_acc, 0, (size_t)QUERY_BLOCK * d_pad * sizeof *t->dq_acc);

    const int64_t end = key_end(cfg, i0, rows);
    for (int64_t j0 = key_begin(cfg, i0); j0 < end; j0 += KEY_BLOCK) {
        const int keys = min_int(KEY_BLOCK, end - j0);
        score_tile tile = query_block_probabilities(t, k_head, v_head, cfg, bh, i0, rows, j0, keys);
        /* dS^T = P^T (dP^T - delta), or its dropout form. */
        if (cfg->dropout_p > 0.0f) {
            dropout_softmax_gradient(&tile, t->ds_t, t->delta, t->delta_lo, cfg);
        } else {
            score_gradient_transposed(t->ds_t, t->p_t, keys, t->delta, t->delta_lo);
        }
        score_tile ds_tile = tile;
        ds_tile.data = t->ds_t;
        zero_filled(&ds_tile, cfg->attn_mask);
        zero_filled(&ds_tile, cfg->key_padding_mask);

        /* dQ_i += dS K_j (scale applied at the end). */
        ptrdiff_t ldk;
        const float *k_vectors = vector_rows(t->k_padded, d_pad, k_head + j0 * k_rows.step,
                                             k_rows.step, keys, D, &ldk);
        tile_product(rows, d_pad, keys, t->ds_t, 1, QUERY_BLOCK, k_vectors, ldk, t->dq_acc, d_pad,
                     true);
    }
    add_query_gradient(dq, t->dq_acc, d_pad, cfg, bh, i0, rows);
}

/* Row terms and dq of query rows i0 .. i0 + rows of head bh in one task, with each
 * of the score tiles computed once and kept (t->s_cache, t->dp_cache) instead of
 * recomputed by block_row_terms, block_delta and query_block_gradient: 2 tile
 * products per key block instead of 6, every value the same bits as theirs.
 *   A: S^T = scale K_j Q_i^T, masked, into the cache, and the online softmax's
 *      running max and sum, by online_softmax's operations in its order;
 *   B: P^T = exp(S^T - shift) inv_sum in place, dP'^T = V_j dout_i^T (with
 *      dropout's factor), and delta_i = sum_j P'_ij dP'_ij / sum_j P_ij, as
 *      block_delta sums it;
 *   C: dS^T = P^T (dP'^T - delta) and dQ_i += dS K_j, as query_block_gradient. */
static void query_block_fused(const row_terms *terms, float *dq, const float *dout,
                              const float *q, const float *k, const float *v, const float *lse,
                              const attn_sdpa_config *cfg, int64_t bh, int64_t i0,
                              const fused_tiles *ft)
{
    const query_pass_tiles *t = &ft->pass;
    const int64_t H = cfg->heads, Lq = cfg->len_q;
    const int D = cfg->dim_qk, Dv = cfg->dim_v, d_pad = round_up(D, VF_WIDTH);
    const int rows = min_int(QUERY_BLOCK, Lq - i0);
    const float scale = attn_flash_scale(cfg);
    const attn_rows q_rows = attn_q_rows(cfg), k_rows = attn_k_rows(cfg), v_rows = attn_v_rows(cfg);
    const attn_rows out_rows = attn_out_rows(cfg);
    const float *k_head = k + attn_rows_at(&k_rows, bh, 0);
    const float *v_head = v + attn_rows_at(&v_rows, bh, 0);
    const int64_t first = bh * Lq + i0; /* of the row terms and lse: (B H, Lq) */
    const ptrdiff_t tile_floats = (ptrdiff_t)KEY_BLOCK * QUERY_BLOCK;
    const int64_t begin = key_begin(cfg, i0), end = key_end(cfg, i0, rows);

    pack_transposed(t->q_t, QUERY_BLOCK, q + attn_rows_at(&q_rows, bh, i0), rows, D, q_rows.step,
                    1.0f);
    pack_transposed(t->dout_t, QUERY_BLOCK, dout + attn_rows_at(&out_rows, bh, i0), rows, Dv,
                    out_rows.step, 1.0f);

    /* A: t->shift and t->inv_sum hold the running max and sum meanwhile. */
    float *row_max = t->shift, *row_sum = t->inv_sum;
    for (int r = 0; r < QUERY_BLOCK; r++) {
        row_max[r] = -INFINITY;
        row_sum[r] = 0.0f;
    }
    float *s_t = ft->s_cache;
    for (int64_t j0 = begin; j0 < end; j0 += KEY_BLOCK, s_t += tile_floats) {
        const int keys = min_int(KEY_BLOCK, end - j0);
        tile_product(keys, QUERY_BLOCK, D, k_head + j0 * k_rows.step, k_rows.step, 1, t->q_t,
                     QUERY_BLOCK, s_t, QUERY_BLOCK, false);
        scale_tile(s_t, keys, QUERY_BLOCK, QUERY_BLOCK, scale);
        score_tile tile = {s_t, 1, QUERY_BLOCK, bh / H, bh % H, i0, j0, rows, keys};
        mask_tile(&tile, cfg);
        softmax_tile_update(SOFTMAX_EXP_FLOAT32, s_t, NULL, NULL, keys, QUERY_BLOCK, row_max,
                            row_sum, NULL);
    }
    /* The row terms, as block_row_terms and load_query_block set them, in place. */
    set_row_terms(terms, t->shift, t->inv_sum, row_max, row_sum, lse, first, rows);

    /* B. */
    double num[QUERY_BLOCK] = {0}, den[QUERY_BLOCK] = {0};
    s_t = ft->s_cache;
    float *dp_t = ft->dp_cache;
    for (int64_t j0 = begin; j0 < end; j0 += KEY_BLOCK, s_t += tile_floats, dp_t += tile_floats) {
        const int keys = min_int(KEY_BLOCK, end - j0);
        probabilities_transposed(SOFTMAX_EXP_FLOAT32, s_t, keys, t->shift, t->inv_sum);
        tile_product(keys, QUERY_BLOCK, Dv, v_head + j0 * v_rows.step, v_rows.step, 1, t->dout_t,
                     QUERY_BLOCK, dp_t, QUERY_BLOCK, false);
        if (cfg->dropout_p > 0.0f) {
            score_tile dp_tile = {dp_t, 1, QUERY_BLOCK, bh / H, bh % H, i0, j0, rows, keys};
            apply_dropout(&dp_tile, cfg);
        }
        delta_sums(num, den, s_t, dp_t, keys);
    }
    finish_delta(terms, t->delta, t->delta_lo, num, den, first, rows);
    if (dq == NULL) return;

    /* C: with dropout the cached dP' already carries the factor Z / (1 - p), so
     * P (dP' - delta) is dropout_softmax_gradient's P (Z dP / (1 - p) - delta). */
    memset(t->dq_acc, 0, (size_t)QUERY_BLOCK * d_pad * sizeof *t->dq_acc);
    s_t = ft->s_cache;
    dp_t = ft->dp_cache;
    for (int64_t j0 = begin; j0 < end; j0 += KEY_BLOCK, s_t += tile_floats, dp_t += tile_floats) {
        const int keys = min_int(KEY_BLOCK, end - j0);
        score_gradient_transposed(dp_t, s_t, keys, t->delta, t->delta_lo);
        score_tile ds_tile = {dp_t, 1, QUERY_BLOCK, bh / H, bh % H, i0, j0, rows, keys};
        zero_filled(&ds_tile, cfg->attn_mask);
        zero_filled(&ds_tile, cfg->key_padding_mask);
        ptrdiff_t ldk;
        const float *k_vectors = vector_rows(t->k_padded, d_pad, k_head + j0 * k_rows.step,
                                             k_rows.step, keys, D, &ldk);
        tile_product(rows, d_pad, keys, dp_t, 1, QUERY_BLOCK, k_vectors, ldk, t->dq_acc, d_pad,
                     true);
    }
    add_query_gradient(dq, t->dq_acc, d_pad, cfg, bh, i0, rows);
}

static attn_status flash_backward(float *dq, float *dk, float *dv, const float *dout,
                                  const float *q, const float *k, const float *v, const float *lse,
                                  const attn_sdpa_config *cfg)
{
    const int64_t heads = (int64_t)cfg->batch * cfg->heads;
    const int64_t query_blocks = (cfg->len_q + QUERY_BLOCK - 1) / QUERY_BLOCK;
    const int64_t key_blocks = (cfg->len_k + KEY_BLOCK - 1) / KEY_BLOCK;
    const int threads = attn_get_num_threads();
    const size_t per_thread = tiles_per_thread(cfg, true);
    const size_t rows = (size_t)heads * cfg->len_q;
    const kernel_scratch held =
        attn_kernel_scratch_take((size_t)threads * per_thread + ROW_TERMS * rows);
    float *scratch = held.data;
    if (scratch == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY,
                          "no memory for %d threads' attention tiles and %zu rows", threads, rows);
    float *row_area = scratch + (size_t)threads * per_thread;
    const row_terms terms = {row_area, row_area + rows, row_area + 2 * rows, row_area + 3 * rows};

    const bool fused = fused_cache_floats(cfg, 1) > 0;

#pragma omp parallel num_threads(threads)
    {
        float *mine = scratch + (size_t)attn_thread_index() * per_thread;
        if (fused) {
            fused_tiles tiles;
            fused_tiles_at(&tiles, mine, cfg);
            /* Later query blocks see more keys under a causal mask: hand them out first. */
#pragma omp for schedule(dynamic)
            for (int64_t task = 0; task < heads * query_blocks; task++) {
                int64_t bh, block;
                task_block(task, query_blocks, true, &bh, &block);
                query_block_fused(&terms, dq, dout, q, k, v, lse, cfg, bh, block * QUERY_BLOCK,
                                  &tiles);
            }
        } else {
            forward_tiles softmax_tiles;
            forward_tiles_at(&softmax_tiles, mine, cfg);
#pragma omp for schedule(dynamic)
            for (int64_t task = 0; task < heads * query_blocks; task++) {
                int64_t bh, block;
                task_block(task, query_blocks, false, &bh, &block);
                block_row_terms(&terms, q, k, v, lse, cfg, bh, block * QUERY_BLOCK, &softmax_tiles);
            }
            /* (the implicit barrier of `omp for`: every row's shift and sum are ready) */
            query_pass_tiles delta_tiles;
            query_pass_tiles_at(&delta_tiles, mine, cfg);
#pragma omp for schedule(dynamic)
            for (int64_t task = 0; task < heads * query_blocks; task++) {
                int64_t bh, block;
                task_block(task, query_blocks, false, &bh, &block);
                block_delta(&terms, dout, q, k, v, cfg, bh, block * QUERY_BLOCK, &delta_tiles);
            }
        }
        /* (the implicit barrier: every row's terms are ready for the dk, dv pass) */
        if (dk != NULL || dv != NULL) {
            key_pass_tiles tiles;
            key_pass_tiles_at(&tiles, mine, cfg);
            /* Earlier key blocks are seen by more queries under a causal mask. */
#pragma omp for schedule(dynamic)
            for (int64_t task = 0; task < heads * key_blocks; task++) {
                int64_t bh, block;
                task_block(task, key_blocks, false, &bh, &block);
                key_block_gradients(dk, dv, dout, q, k, v, &terms, cfg, bh, block * KEY_BLOCK,
                                    &tiles);
            }
        }
        if (!fused && dq != NULL) {
            query_pass_tiles tiles;
            query_pass_tiles_at(&tiles, mine, cfg);
#pragma omp for schedule(dynamic)
            for (int64_t task = 0; task < heads * query_blocks; task++) {
                int64_t bh, block;
                task_block(task, query_blocks, true, &bh, &block);
                query_block_gradient(dq, dout, q, k, v, &terms, cfg, bh, block * QUERY_BLOCK,
                                     &tiles);
            }
        }
    }
    attn_kernel_scratch_give(held);
    return ATTN_OK;
}

/* y = e^x with this variant's vector exponential of `kind` and a scalar tail. */
static void exp_of(softmax_exp kind, float *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + VF_WIDTH <= n; i += VF_WIDTH) vf_store(y + i, softmax_exp_of(kind, vf_load(x + i)));
    for (; i < n; i++) {
        float lanes[VF_WIDTH] = {0};
        lanes[0] = x[i];
        vf_store(lanes, softmax_exp_of(kind, vf_load(lanes)));
        y[i] = lanes[0];
    }
}

static void flash_exp(float *y, const float *x, size_t n) { exp_of(SOFTMAX_EXP_FLOAT32, y, x, n); }

static void flash_exp_bf16(float *y, const float *x, size_t n)
{
    exp_of(SOFTMAX_EXP_BF16, y, x, n);
}

/* The kernels on bfloat16 inputs, built on the ones above. */
#include "kernels/flash_bf16_impl.h"
#include "kernels/flash_bf16_backward_impl.h"

#if defined(ATTN_SIMD_DPBF16)
#define BF16_PRODUCTS "vdpbf16ps"
#else
#define BF16_PRODUCTS "widened to float32"
#endif

static const attn_flash_kernels flash_kernels = {
    .forward = flash_forward,
    .backward = flash_backward,
    .workspace_bytes = flash_workspace_bytes,
    .forward_bf16 = flash_forward_bf16,
    .backward_bf16 = flash_backward_bf16,
    .workspace_bytes_bf16 = flash_workspace_bytes_bf16,
    .bf16_products = BF16_PRODUCTS,
    .exp = flash_exp,
    .exp_bf16 = flash_exp_bf16};
