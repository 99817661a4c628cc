/* Internal: the fused attention kernels on bfloat16 q, k, v and dout (flash.h's
 * forward_bf16, backward_bf16), compiled once per instruction set after
 * flash_impl.h, whose masks, softmax update and scratch they share. Everything
 * here is static.
 *
 * Forward: the float32 kernel's algorithm (FlashAttention-2, see flash_impl.h)
 * with both tile products on pairs of bfloat16 (simd.h's vp_dot: vdpbf16ps on
 * AVX512_BF16, the same arithmetic in float32 elsewhere):
 *   S^T = scale K_j Q^T     k and q as given (bf16), float32 sums over D
 *   softmax                 float32: scores, masks, running max and sum, exp
 *   O += round(P) V_j       P rounded to bf16 (relative error <= 2^-8 each), the
 *                           sum l_i from the unrounded P, float32 sums over keys
 * so the forward's error beside exact attention on the same bf16 inputs is at
 * most (2^-8 + float32 terms) times sum_j P_ij |v_j| (the bound is derived and
 * tested in tests/unit/test_flash_bf16.c).
 *
 * A tile product reduces over pairs: dimension (or key) 2t and 2t + 1 of an operand
 * sit side by side, and each lane of the result adds the odd product, then the
 * even one (vp_dot). So the order of additions is fixed by the layout alone and
 * every variant of the library adds in that same order: the widening variant of
 * the same CPU (ATTN_SIMD=avx512 beside avx512bf16) gives the same bits, unless
 * an input or a partial sum is subnormal (below 2^-126 in magnitude), which
 * vdpbf16ps reads and writes as zero. The other variants differ as the float32
 * kernels do, by the rounding of their exponential and sums.
 *
 * Layouts (pairs of uint16_t, zero padded):
 *   k_pairs  (B H Lk, D_even): k itself when D is even, else a copy
 *   v_pairs  (B H, ceil(Lk / 2), Dv padded, 2): keys 2t and 2t + 1 of each column
 *   q_pairs  (D_even / 2, lanes, 2): per task, dimensions 2t and 2t + 1 of a row
 *   p_pairs  (KEY_BLOCK / 2, QUERY_BLOCK, 2): per key tile, keys 2t and 2t + 1
 * Key tiles start at even keys, so the tiles' pairs are v_pairs' pairs.
 *
 * Backward: the float32 kernel (flash_backward) on q, k, v and dout widened to
 * float32, which is exact: the gradients of attention in float32 on the bf16
 * inputs, so within float32 rounding of the exact ones (no vdpbf16ps yet). */
#include "core/bf16.h"

/* ---- tile products on pairs --------------------------------------------------- */

/* C[r][0, nvec * VF_WIDTH) (+)= sum_t A(r, t) . B[t][0, nvec * VF_WIDTH) for r < rows,
 * t < pairs, where A(r, t) is the pair a[r * a_row + t * a_pair], [+1] and B[t]
 * the pairs from b + t * ldb (all strides in uint16_t). The register block is
 * micro_tile's; rows from `rows` to mrows repeat the last row of A. */
VF_INLINE void micro_tile_pairs(const int nvec, const int mrows, int rows, int pairs,
                                const uint16_t *a, ptrdiff_t a_row, ptrdiff_t a_pair,
                                const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                                bool accumulate)
{
    const uint16_t *a_rows[MICRO_ROWS];
    vf acc[MICRO_ROWS][MICRO_VECS];
    for (int r = 0; r < mrows; r++) {
        a_rows[r] = a + (r < rows ? r : rows - 1) * a_row;
        for (int v = 0; v < nvec; v++)
            acc[r][v] = accumulate && r < rows ? vf_load(c + r * ldc + v * VF_WIDTH) : vf_zero();
    }
    for (int t = 0; t < pairs; t++) {
        vp b_t[MICRO_VECS];
        for (int v = 0; v < nvec; v++) b_t[v] = vp_load(b + t * ldb + v * 2 * VF_WIDTH);
        for (int r = 0; r < mrows; r++) {
            const vp a_rt = vp_set1(a_rows[r] + t * a_pair);
            for (int v = 0; v < nvec; v++) acc[r][v] = vp_dot(acc[r][v], a_rt, b_t[v]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nvec; v++) vf_store(c + r * ldc + v * VF_WIDTH, acc[r][v]);
}

/* GCC 12 at -O3 vectorizes the scalar variant's loop over pairs (two dependent
 * additions per pair into one float) as an in-order reduction and adds in the
 * wrong order: acc = a[2t+1] b[2t+1] + acc; acc = a[2t] b[2t] + acc over t gives
 * other bits than the loop as written, which -std=c11 forbids. The scalar
 * variant's pair products are therefore not loop-vectorized; the vector
 * variants have nothing left to vectorize. */
#if defined(ATTN_SIMD_SCALAR) && defined(__GNUC__) && !defined(__clang__)
#define PAIR_PRODUCT_ATTRIBUTES __attribute__((optimize("no-tree-loop-vectorize")))
#else
#define PAIR_PRODUCT_ATTRIBUTES
#endif

/* C (rows x cols) (+)= A (rows x pairs) B (pairs x cols) on pairs, as tile_product
 * on floats: cols a multiple of VF_WIDTH, register blocks of MICRO_VECS vectors
 * where they fit, else one. */
PAIR_PRODUCT_ATTRIBUTES static void tile_product_pairs(int rows, int cols, int pairs, const uint16_t *a, ptrdiff_t a_row,
                               ptrdiff_t a_pair, const uint16_t *b, ptrdiff_t ldb, float *c,
                               ptrdiff_t ldc, bool accumulate)
{
    const int vectors = cols / VF_WIDTH;
    for (int v0 = 0; v0 < vectors;) {
        const int nvec = vectors - v0 >= MICRO_VECS ? MICRO_VECS : 1;
        for (int r0 = 0; r0 < rows; r0 += MICRO_ROWS) {
            const int nrows = min_int(MICRO_ROWS, rows - r0);
            const uint16_t *a_r = a + r0 * a_row, *b_v = b + v0 * 2 * VF_WIDTH;
            float *c_rv = c + r0 * ldc + v0 * VF_WIDTH;
            if (nvec == MICRO_VECS)
                micro_tile_pairs(MICRO_VECS, MICRO_ROWS, nrows, pairs, a_r, a_row, a_pair, b_v,
                                 ldb, c_rv, ldc, accumulate);
            else
                micro_tile_pairs(1, MICRO_ROWS, nrows, pairs, a_r, a_row, a_pair, b_v, ldb, c_rv,
                                 ldc, accumulate);
        }
        v0 += nvec;
    }
}

/* ---- operands in pairs -------------------------------------------------------- */

static int even_dim(int d) { return d + (d & 1); }

/* The padded widths of the operands in uint16_t, and pairs of keys per head. */
typedef struct pair_layout {
    int d_even, dv_pad;
    int64_t key_pairs;
} pair_layout;

static pair_layout pair_layout_of(const attn_sdpa_config *cfg)
{
    return (pair_layout){even_dim(cfg->dim_qk), round_up(cfg->dim_v, VF_WIDTH),
                         ((int64_t)cfg->len_k + 1) / 2};
}

/* uint16_t of the operands the forward lays out once per call: k_pairs when it
 * is a copy (odd D), and v_pairs. */
static size_t k_copy_count(const attn_sdpa_config *cfg)
{
    const size_t rows = (size_t)cfg->batch * cfg->heads * (size_t)cfg->len_k;
    return cfg->dim_qk & 1 ? rows * (size_t)even_dim(cfg->dim_qk) : 0;
}

static size_t v_pairs_count(const attn_sdpa_config *cfg)
{
    const pair_layout l = pair_layout_of(cfg);
    return (size_t)cfg->batch * cfg->heads * (size_t)l.key_pairs * (size_t)l.dv_pad * 2;
}

/* Head bh's k with each row zero padded to d_even (odd D only). */
static void pack_k_head(uint16_t *dst, const uint16_t *k, const attn_sdpa_config *cfg, int64_t bh)
{
    const int D = cfg->dim_qk, d_even = even_dim(D);
    for (int64_t j = 0; j < cfg->len_k; j++) {
        memcpy(dst + (bh * cfg->len_k + j) * d_even, k + (bh * cfg->len_k + j) * D,
               (size_t)D * sizeof *k);
        dst[(bh * cfg->len_k + j) * d_even + D] = 0;
    }
}

/* Head bh's v as pairs of keys per column: (key_pairs, dv_pad, 2). */
static void pack_v_head(uint16_t *dst, const uint16_t *v, const attn_sdpa_config *cfg, int64_t bh)
{
    const pair_layout l = pair_layout_of(cfg);
    const int Dv = cfg->dim_v;
    const int64_t Lk = cfg->len_k;
    const uint16_t *v_head = v + bh * Lk * Dv;
    uint16_t *head = dst + bh * l.key_pairs * l.dv_pad * 2;
    for (int64_t t = 0; t < l.key_pairs; t++) {
        uint16_t *row = head + t * l.dv_pad * 2;
        const bool second = 2 * t + 1 < Lk;
        for (int c = 0; c < l.dv_pad; c++) {
            row[2 * c] = c < Dv ? v_head[2 * t * Dv + c] : 0;
            row[2 * c + 1] = c < Dv && second ? v_head[(2 * t + 1) * Dv + c] : 0;
        }
    }
}

/* q_pairs (d_even / 2, lanes, 2) of query rows i0 .. i0 + rows of head bh. */
static void pack_q_pairs(uint16_t *dst, int lanes, const uint16_t *q, const attn_sdpa_config *cfg,
                         int64_t bh, int64_t i0, int rows)
{
    const int D = cfg->dim_qk, d_even = even_dim(D);
    const uint16_t *q_block = q + (bh * cfg->len_q + i0) * D;
    for (int d = 0; d < d_even; d++) {
        uint16_t *dst_d = dst + (ptrdiff_t)(d / 2) * lanes * 2 + (d & 1);
        for (int r = 0; r < lanes; r++) dst_d[2 * r] = r < rows && d < D ? q_block[r * D + d] : 0;
    }
}

/* p_pairs of a transposed tile of probabilities s_t (keys x lanes, leading
 * dimension QUERY_BLOCK): keys 2t and 2t + 1 of each lane, rounded to bf16, a
 * missing last key zero. */
static void round_p_pairs(uint16_t *dst, const float *s_t, int keys, int lanes)
{
    for (int t = 0; 2 * t < keys; t++) {
        const float *even = s_t + 2 * t * QUERY_BLOCK, *odd = even + QUERY_BLOCK;
        uint16_t *dst_t = dst + (ptrdiff_t)t * QUERY_BLOCK * 2;
        for (int lane = 0; lane < lanes; lane += VF_WIDTH)
            vp_store_rounded(dst_t + 2 * lane, vf_load(even + lane),
                             2 * t + 1 < keys ? vf_load(odd + lane) : vf_zero());
    }
}

/* ---- forward ------------------------------------------------------------------ */

typedef struct bf16_forward_tiles {
    uint16_t *q_pairs; /* (d_even / 2, lanes <= QUERY_BLOCK, 2) */
    uint16_t *p_pairs; /* (KEY_BLOCK / 2, QUERY_BLOCK, 2) */
    float *s_t;        /* (KEY_BLOCK, QUERY_BLOCK): scores, then probabilities */
    float *o_acc;      /* (QUERY_BLOCK, Dv padded): unnormalised output */
    float *row_max, *row_sum, *rescale; /* (QUERY_BLOCK) */
} bf16_forward_tiles;

/* carve() for n uint16_t. */
static uint16_t *carve_pairs(float *base, size_t *used, size_t n)
{
    return (uint16_t *)carve(base, used, (n + 1) / 2);
}

static size_t bf16_forward_tiles_at(bf16_forward_tiles *t, float *base,
                                    const attn_sdpa_config *cfg)
{
    const pair_layout l = pair_layout_of(cfg);
    size_t used = 0;
    t->q_pairs = carve_pairs(base, &used, (size_t)l.d_even * QUERY_BLOCK);
    t->p_pairs = carve_pairs(base, &used, (size_t)KEY_BLOCK * QUERY_BLOCK);
    t->s_t = carve(base, &used, (size_t)KEY_BLOCK * QUERY_BLOCK);
    t->o_acc = carve(base, &used, (size_t)QUERY_BLOCK * l.dv_pad);
    t->row_max = carve(base, &used, QUERY_BLOCK);
    t->row_sum = carve(base, &used, QUERY_BLOCK);
    t->rescale = carve(base, &used, QUERY_BLOCK);
    return used;
}

/* out and lse of query rows i0 .. i0 + QUERY_BLOCK of head bh, over k_pairs and
 * v_pairs (see the layouts above): online_softmax's steps on pairs. */
static void bf16_forward_block(float *out, float *lse, const uint16_t *q, const uint16_t *k_pairs,
                               const uint16_t *v_pairs, const attn_sdpa_config *cfg, int64_t bh,
                               int64_t i0, const bf16_forward_tiles *t)
{
    const pair_layout l = pair_layout_of(cfg);
    const int64_t H = cfg->heads, Lk = cfg->len_k;
    const int rows = min_int(QUERY_BLOCK, cfg->len_q - i0), lanes = round_up(rows, VF_WIDTH);
    const uint16_t *k_head = k_pairs + bh * Lk * l.d_even;
    const uint16_t *v_head = v_pairs + bh * l.key_pairs * l.dv_pad * 2;

    pack_q_pairs(t->q_pairs, lanes, q, cfg, bh, i0, rows);
    for (int r = 0; r < QUERY_BLOCK; r++) {
        t->row_max[r] = -INFINITY;
        t->row_sum[r] = 0.0f;
    }
    memset(t->o_acc, 0, (size_t)rows * l.dv_pad * sizeof *t->o_acc);

    /* The first tile starts at an even key, so that its pairs are v_pairs'; a key
     * before key_begin is outside every row's window, masked to -inf. */
    const int64_t end = key_end(cfg, i0, rows);
    for (int64_t j0 = key_begin(cfg, i0) & ~(int64_t)1; j0 < end; j0 += KEY_BLOCK) {
        const int keys = min_int(KEY_BLOCK, end - j0);
        /* S^T (keys x lanes) = scale K_j Q^T, then the bias and masks. */
        tile_product_pairs(keys, lanes, l.d_even / 2, k_head + j0 * l.d_even, l.d_even, 2,
                           t->q_pairs, (ptrdiff_t)lanes * 2, t->s_t, QUERY_BLOCK, false);
        scale_tile(t->s_t, keys, lanes, QUERY_BLOCK, attn_flash_scale(cfg));
        score_tile tile = {t->s_t, 1, QUERY_BLOCK, bh / H, bh % H, i0, j0, rows, keys};
        mask_tile(&tile, cfg);
        softmax_tile_update(t->s_t, keys, lanes, t->row_max, t->row_sum, t->rescale);
        if (cfg->dropout_p > 0.0f) apply_dropout(&tile, cfg);

        /* O = diag(rescale) O + round(P) V_j. */
        rescale_rows(t->o_acc, rows, l.dv_pad, t->rescale);
        round_p_pairs(t->p_pairs, t->s_t, keys, lanes);
        tile_product_pairs(rows, l.dv_pad, (keys + 1) / 2, t->p_pairs, 2, QUERY_BLOCK * 2,
                           v_head + j0 / 2 * l.dv_pad * 2, (ptrdiff_t)l.dv_pad * 2, t->o_acc,
                           l.dv_pad, true);
    }
    finish_rows(out, lse, cfg, bh, i0, t->o_acc, t->row_max, t->row_sum);
}

/* The forward's scratch: `threads` tiles, then the copy of k (odd D) and v_pairs;
 * its size in floats (with base NULL, only counted). */
static size_t bf16_forward_scratch(float *base, const attn_sdpa_config *cfg, int threads,
                                   uint16_t **k_copy, uint16_t **v_pairs)
{
    bf16_forward_tiles layout;
    size_t used = (size_t)threads * bf16_forward_tiles_at(&layout, NULL, cfg);
    *k_copy = carve_pairs(base, &used, k_copy_count(cfg));
    *v_pairs = carve_pairs(base, &used, v_pairs_count(cfg));
    return used;
}

static attn_status flash_forward_bf16(float *out, float *lse, const uint16_t *q, const uint16_t *k,
                                     const uint16_t *v, const attn_sdpa_config *cfg)
{
    const int64_t heads = (int64_t)cfg->batch * cfg->heads;
    const int64_t query_blocks = (cfg->len_q + QUERY_BLOCK - 1) / QUERY_BLOCK;
    const int threads = min_int(attn_get_num_threads(), heads * query_blocks);
    uint16_t *k_copy, *v_pairs;
    float *scratch = alloc_tiles(bf16_forward_scratch(NULL, cfg, threads, &k_copy, &v_pairs));
    if (scratch == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY,
                          "no memory for %d threads' bf16 attention tiles and packed k, v",
                          threads);
    bf16_forward_scratch(scratch, cfg, threads, &k_copy, &v_pairs);
    bf16_forward_tiles layout;
    const size_t per_thread = bf16_forward_tiles_at(&layout, NULL, cfg);
    const bool odd_d = cfg->dim_qk & 1;
    const uint16_t *k_pairs = odd_d ? k_copy : k;

#pragma omp parallel num_threads(threads)
    {
#pragma omp for schedule(static)
        for (int64_t bh = 0; bh < heads; bh++) {
            if (odd_d) pack_k_head(k_copy, k, cfg, bh);
            pack_v_head(v_pairs, v, cfg, bh);
        }
        bf16_forward_tiles tiles;
        bf16_forward_tiles_at(&tiles, scratch + (size_t)attn_thread_index() * per_thread, cfg);
        /* Later query blocks see more keys under a causal mask: hand them out first. */
#pragma omp for schedule(dynamic)
        for (int64_t task = 0; task < heads * query_blocks; task++) {
            int64_t bh = task % heads, block = query_blocks - 1 - task / heads;
            bf16_forward_block(out, lse, q, k_pairs, v_pairs, cfg, bh, block * QUERY_BLOCK,
                               &tiles);
        }
    }
    free(scratch);
    return ATTN_OK;
}

/* ---- backward ----------------------------------------------------------------- */

/* dst (n) = src widened, in parallel (the copy runs at memory speed). */
static void widen_all(float *dst, const uint16_t *src, size_t n, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = attn_bf16_widen(src[i]);
}

static attn_status flash_backward_bf16(float *dq, float *dk, float *dv, const uint16_t *dout,
                                      const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                      const float *lse, const attn_sdpa_config *cfg)
{
    const size_t heads = (size_t)cfg->batch * cfg->heads;
    const size_t nq = heads * cfg->len_q * cfg->dim_qk, nk = heads * cfg->len_k * cfg->dim_qk;
    const size_t nv = heads * cfg->len_k * cfg->dim_v, nout = heads * cfg->len_q * cfg->dim_v;
    float *wide = alloc_tiles(nq + nk + nv + nout);
    if (wide == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %zu widened bf16 values",
                          nq + nk + nv + nout);
    const int threads = attn_get_num_threads();
    widen_all(wide, q, nq, threads);
    widen_all(wide + nq, k, nk, threads);
    widen_all(wide + nq + nk, v, nv, threads);
    widen_all(wide + nq + nk + nv, dout, nout, threads);
    attn_status s = flash_backward(dq, dk, dv, wide + nq + nk + nv, wide, wide + nq,
                                   wide + nq + nk, lse, cfg);
    free(wide);
    return s;
}

static size_t flash_workspace_bytes_bf16(const attn_sdpa_config *cfg, int threads, bool backward)
{
    uint16_t *k_copy, *v_pairs;
    const size_t forward =
        bf16_forward_scratch(NULL, cfg, threads, &k_copy, &v_pairs) * sizeof(float);
    if (!backward) return forward;
    const size_t heads = (size_t)cfg->batch * cfg->heads;
    const size_t widened = heads * ((size_t)(cfg->len_q + cfg->len_k) * cfg->dim_qk +
                                    (size_t)(cfg->len_k + cfg->len_q) * cfg->dim_v);
    const size_t backward_bytes = widened * sizeof(float) + flash_workspace_bytes(cfg, threads, true);
    return backward_bytes > forward ? backward_bytes : forward;
}
