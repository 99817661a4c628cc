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
 * every variant of the library adds in that same order. The kernels run with
 * subnormals flushed to zero (MXCSR's DAZ and FTZ, set and restored per thread),
 * as vdpbf16ps always treats them, so the widening variant of the same CPU
 * (ATTN_SIMD=avx512 beside avx512bf16) gives the same bits, subnormals or not.
 * The other variants differ as the float32 kernels do, by the rounding of their
 * exponential and sums.
 *
 * Layouts (uint16_t, zero padded), each input laid out once per call by
 * bf16_operand:
 *   rows of pairs   (B H L, D_even): dimensions 2t and 2t + 1 side by side, the
 *                   input itself when its width is even, else a copy
 *   pairs of rows   (B H, ceil(L / 2), width padded, 2): rows 2t and 2t + 1
 *                   interleaved, the operand B of a product that sums over rows
 *                   (v in the forward's P V)
 * (v may come laid out so: attn_flash_bf16_forward_pairs, which a key-value cache
 * uses) and per task pack_column_pairs (q of a query block as the lanes of B) and
 * round_row_pairs (P, dS rounded to bf16 as the pairs A reads). Key tiles start
 * at even keys, so a tile's pairs are the layout's pairs.
 *
 * Backward: flash_bf16_backward_impl.h. */
#include "core/bf16.h"

/* ---- tile products on pairs --------------------------------------------------- */

/* How a tile product on pairs writes C: fresh, C = scale (A B) (the finished
 * sums times the scale, as scale_tile multiplies them), or accumulating,
 * C = diag(rescale) C + A B (each row of C times its factor before the sums, as
 * rescale_rows multiplies it; rescale NULL: C as it is). Done in the registers
 * of the product, the same bits as those passes over the tile. */
typedef struct c_update {
    bool accumulate;
    float scale;
    const float *rescale;
} c_update;

static const c_update FRESH = {false, 1.0f, NULL}, ADD = {true, 1.0f, NULL};

/* C[r][0, nvec * VF_WIDTH) (+)= sum_t A(r, t) . B[t][0, nvec * VF_WIDTH) for r < rows,
 * t < pairs, where A(r, t) is the pair a[r * a_row + t * a_pair], [+1] and B[t]
 * the pairs from b + t * ldb (all strides in uint16_t), written as u says. The
 * register block is micro_tile's; rows from `rows` to mrows repeat the last row
 * of A. */
VF_INLINE void micro_tile_pairs(const int nvec, const int mrows, int rows, int pairs,
                                const uint16_t *a, ptrdiff_t a_row, ptrdiff_t a_pair,
                                const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                                c_update u)
{
    const uint16_t *a_rows[MICRO_ROWS];
    vf acc[MICRO_ROWS][MICRO_VECS];
    for (int r = 0; r < mrows; r++) {
        a_rows[r] = a + (r < rows ? r : rows - 1) * a_row;
        const vf factor = vf_set1(u.rescale != NULL && r < rows ? u.rescale[r] : 1.0f);
        for (int v = 0; v < nvec; v++) {
            acc[r][v] = vf_zero();
            if (u.accumulate && r < rows) acc[r][v] = vf_load(c + r * ldc + v * VF_WIDTH);
            if (u.accumulate && u.rescale != NULL) acc[r][v] = vf_mul(acc[r][v], factor);
        }
    }
    for (int t = 0; t < pairs; t++) {
        vp b_t[MICRO_VECS];
        for (int v = 0; v < nvec; v++) b_t[v] = vp_load(b + t * ldb + v * 2 * VF_WIDTH);
        for (int r = 0; r < mrows; r++) {
            const vp a_rt = vp_set1(a_rows[r] + t * a_pair);
            for (int v = 0; v < nvec; v++) acc[r][v] = vp_dot(acc[r][v], a_rt, b_t[v]);
        }
    }
    const vf scale = vf_set1(u.scale);
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nvec; v++)
            vf_store(c + r * ldc + v * VF_WIDTH,
                     u.accumulate ? acc[r][v] : vf_mul(acc[r][v], scale));
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
 * on floats, written as u says: cols a multiple of VF_WIDTH, register blocks of
 * MICRO_VECS vectors where they fit, else one, and of one row for a single row. */
PAIR_PRODUCT_ATTRIBUTES static void tile_product_pairs(int rows, int cols, int pairs,
                                                       const uint16_t *a, ptrdiff_t a_row,
                                                       ptrdiff_t a_pair, const uint16_t *b,
                                                       ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                                                       c_update u)
{
    const int vectors = cols / VF_WIDTH;
    for (int v0 = 0; v0 < vectors;) {
        const int nvec = vectors - v0 >= MICRO_VECS ? MICRO_VECS : 1;
        for (int r0 = 0; r0 < rows; r0 += MICRO_ROWS) {
            const int nrows = min_int(MICRO_ROWS, rows - r0);
            const uint16_t *a_r = a + r0 * a_row, *b_v = b + v0 * 2 * VF_WIDTH;
            float *c_rv = c + r0 * ldc + v0 * VF_WIDTH;
            c_update u_r = u;
            if (u.rescale != NULL) u_r.rescale = u.rescale + r0;
            if (nvec == MICRO_VECS && nrows == 1)
                micro_tile_pairs(MICRO_VECS, 1, nrows, pairs, a_r, a_row, a_pair, b_v, ldb, c_rv,
                                 ldc, u_r);
            else if (nvec == MICRO_VECS)
                micro_tile_pairs(MICRO_VECS, MICRO_ROWS, nrows, pairs, a_r, a_row, a_pair, b_v,
                                 ldb, c_rv, ldc, u_r);
            else if (nrows == 1)
                micro_tile_pairs(1, 1, nrows, pairs, a_r, a_row, a_pair, b_v, ldb, c_rv, ldc,
                                 u_r);
            else
                micro_tile_pairs(1, MICRO_ROWS, nrows, pairs, a_r, a_row, a_pair, b_v, ldb, c_rv,
                                 ldc, u_r);
        }
        v0 += nvec;
    }
}

/* Whether the bf16 kernels (this file's forward, flash_bf16_backward_impl.h) run one
 * task per head, a static share of the heads per thread: the head's operands laid
 * out, then all of its blocks, every phase of the pass, in one task. Otherwise a
 * task is a block, and the threads meet at a barrier between laying the operands
 * out and each pass that reads them, and read layouts that the other threads
 * wrote. With heads enough to share out evenly, and a head's blocks few (up to
 * 16 of a side, 1024 rows), per-head tasks keep a head's layouts in one core's
 * cache: at 48 heads, the bf16 forward and backward ran 10-25 % faster at 64 and
 * 256 rows (per-block tasks had run them only 1.25x and 1.33x faster on two
 * threads than on one at 64 rows), and the same at 1024. At 4096 rows the
 * forward ran 3-4 % slower so: there the threads do better working on one head
 * at a time (task_block's reason). (The float32 kernels lay nothing out, and
 * per-head tasks did not speed them up.) */
static bool head_tasks(int64_t heads, int64_t blocks, int threads)
{
    return heads >= 4 * (int64_t)threads && blocks <= 16;
}

/* ---- operands in pairs -------------------------------------------------------- */

static int even_dim(int d) { return d + (d & 1); }

/* dst (rows, cols_even) = src (rows, cols, leading dimension lds), each row zero
 * padded to even length. */
static void pack_even_rows(uint16_t *dst, const uint16_t *src, int64_t lds, int64_t rows, int cols)
{
    const int cols_even = even_dim(cols);
    for (int64_t r = 0; r < rows; r++) {
        memcpy(dst + r * cols_even, src + r * lds, (size_t)cols * sizeof *src);
        if (cols_even != cols) dst[r * cols_even + cols] = 0;
    }
}

/* Rows 2t and 2t + 1 of src (rows, cols, leading dimension lds) interleaved
 * column by column: dst (ceil(rows / 2), cols_pad, 2), zero padded (a missing
 * last row too). */
static void pack_row_pairs(uint16_t *dst, const uint16_t *src, int64_t lds, int64_t rows,
                           int cols, int cols_pad)
{
    for (int64_t t = 0; 2 * t < rows; t++) {
        uint16_t *pair_row = dst + t * cols_pad * 2;
        const uint16_t *even = src + 2 * t * lds, *odd = even + lds;
        /* Loops without a choice per element, which the compiler vectorizes. */
        if (2 * t + 1 < rows)
            for (int c = 0; c < cols; c++) {
                pair_row[2 * c] = even[c];
                pair_row[2 * c + 1] = odd[c];
            }
        else
            for (int c = 0; c < cols; c++) {
                pair_row[2 * c] = even[c];
                pair_row[2 * c + 1] = 0;
            }
        memset(pair_row + 2 * cols, 0, (size_t)(cols_pad - cols) * 2 * sizeof *pair_row);
    }
}

/* Columns 2t and 2t + 1 of each of `rows` rows of src (cols_even columns, an
 * even number, at leading dimension lds) as the pairs of one lane:
 * dst (cols_even / 2, lanes, 2), zero for lanes past `rows`. A pair is moved
 * as one 32-bit word, so this is the transpose of a (rows, cols_even / 2)
 * matrix of words. It runs once per query (or key) block: read a word down
 * the rows at a time (a load per word 2 cols_even bytes from the last), it cost
 * 3 % of a bf16 forward's block; four rows at a time, each of their words read
 * along the row and the four of a pair index written as one 16-byte store, it
 * takes a quarter of that. */
static void pack_column_pairs(uint16_t *dst, int lanes, const uint16_t *src, ptrdiff_t lds,
                              int rows, int cols_even)
{
    enum { ROWS = 4 };
    const int pairs = cols_even / 2;
    int r = 0;
    for (; r + ROWS <= rows; r += ROWS)
        for (int t = 0; t < pairs; t++) {
            uint32_t words[ROWS];
            for (int i = 0; i < ROWS; i++)
                memcpy(&words[i], src + (ptrdiff_t)(r + i) * lds + 2 * t, sizeof words[i]);
            memcpy(dst + ((ptrdiff_t)t * lanes + r) * 2, words, sizeof words);
        }
    for (; r < rows; r++)
        for (int t = 0; t < pairs; t++)
            memcpy(dst + ((ptrdiff_t)t * lanes + r) * 2, src + (ptrdiff_t)r * lds + 2 * t,
                   2 * sizeof *src);
    if (rows < lanes)
        for (int t = 0; t < pairs; t++)
            memset(dst + ((ptrdiff_t)t * lanes + rows) * 2, 0,
                   (size_t)(lanes - rows) * 2 * sizeof *src);
}

/* Rows 2t and 2t + 1 of a float tile src (`rows` rows, leading dimension ld)
 * rounded to bf16 and interleaved over `lanes` columns: dst (ceil(rows / 2), ld, 2),
 * a missing last row zero. */
static void round_row_pairs(uint16_t *dst, const float *src, int rows, int lanes, ptrdiff_t ld)
{
    for (int t = 0; 2 * t < rows; t++) {
        const float *even = src + 2 * t * ld, *odd = even + ld;
        uint16_t *dst_t = dst + t * ld * 2;
        for (int lane = 0; lane < lanes; lane += VF_WIDTH)
            vp_store_rounded(dst_t + 2 * lane, vf_load(even + lane),
                             2 * t + 1 < rows ? vf_load(odd + lane) : vf_zero());
    }
}

/* carve() for n uint16_t. */
static uint16_t *carve_pairs(float *base, size_t *used, size_t n)
{
    return (uint16_t *)carve(base, used, (n + 1) / 2);
}

/* One input, (B H, length, width) bf16 where `input_rows` puts its rows, in the
 * layouts the tile products read: `rows` as pairs along the width (the input
 * itself when its rows are contiguous and of even width, else `copy`, each row
 * padded to even width: the products read each row of a head many times, and
 * rows of a head far apart (a row stride, as a projection's q, k and v columns
 * have) ran the bf16 forward and backward 20-25 % slower, at B 8, H 6, T 256,
 * D 64, than on contiguous rows), and, when asked for, `pairs`, its rows 2t and 2t + 1
 * interleaved (pack_row_pairs into pairs_copy, width padded to
 * attn_flash_pair_width), or the caller's when it gave them so. Laid out once per
 * call, a head at a time (lay_out_operand), or its pairs a block of rows at a
 * time by the task that owns them (lay_out_pairs). */
typedef struct bf16_operand {
    const uint16_t *input, *pairs;
    uint16_t *copy, *pairs_copy; /* NULL when not needed */
    attn_rows input_rows;
    int64_t length, rows_step;
    int width, width_even, width_pad;
} bf16_operand;

static bf16_operand carve_operand(float *base, size_t *used, const uint16_t *input,
                                  attn_rows input_rows, const attn_sdpa_config *cfg,
                                  int64_t length, int width, bool with_pairs)
{
    const size_t heads = (size_t)cfg->batch * cfg->heads;
    bf16_operand o = {.input = input, .input_rows = input_rows, .length = length,
                      .width = width, .width_even = even_dim(width),
                      .width_pad = attn_flash_pair_width(width)};
    const bool copied = (width & 1) || input_rows.step != width;
    if (copied) o.copy = carve_pairs(base, used, heads * (size_t)length * o.width_even);
    o.rows_step = copied ? o.width_even : input_rows.step;
    if (with_pairs)
        o.pairs = o.pairs_copy =
            carve_pairs(base, used, heads * (size_t)((length + 1) / 2) * o.width_pad * 2);
    return o;
}

/* An input given only as pairs of rows (attn_flash_bf16_forward_pairs' v_pairs). */
static bf16_operand given_pairs(const uint16_t *pairs, int64_t length, int width)
{
    return (bf16_operand){.pairs = pairs, .length = length, .width = width,
                          .width_even = even_dim(width),
                          .width_pad = attn_flash_pair_width(width)};
}

/* Head bh's rows as pairs along the width, when that takes a copy (odd width, or
 * rows apart). */
static void lay_out_rows(const bf16_operand *o, int64_t bh)
{
    if (o->copy != NULL)
        pack_even_rows(o->copy + bh * o->length * o->width_even,
                       o->input + attn_rows_at(&o->input_rows, bh, 0), o->input_rows.step,
                       o->length, o->width);
}

/* Rows first .. first + rows of head bh (first even) as pairs of rows, when asked
 * for: a part of the layout, so that a task can lay out the rows it owns. */
static void lay_out_pairs(const bf16_operand *o, int64_t bh, int64_t first, int64_t rows)
{
    if (o->pairs_copy != NULL)
        pack_row_pairs(o->pairs_copy + (bh * ((o->length + 1) / 2) + first / 2) * o->width_pad * 2,
                       o->input + attn_rows_at(&o->input_rows, bh, first), o->input_rows.step,
                       rows, o->width, o->width_pad);
}

/* Head bh of an input in every layout it was carved for. */
static void lay_out_operand(const bf16_operand *o, int64_t bh)
{
    if (o->input == NULL) return; /* given laid out */
    lay_out_rows(o, bh);
    lay_out_pairs(o, bh, 0, o->length);
}

/* Head bh's rows from `first` as pairs along the width (o->rows_step apart), and
 * its pairs of rows from `first` (even). */
static const uint16_t *operand_rows(const bf16_operand *o, int64_t bh, int64_t first)
{
    if (o->copy != NULL) return o->copy + (bh * o->length + first) * o->width_even;
    return o->input + attn_rows_at(&o->input_rows, bh, first);
}

static const uint16_t *operand_pairs(const bf16_operand *o, int64_t bh, int64_t first)
{
    return o->pairs + (bh * ((o->length + 1) / 2) + first / 2) * o->width_pad * 2;
}

/* ---- forward ------------------------------------------------------------------ */

typedef struct bf16_forward_tiles {
    uint16_t *q_pairs; /* (d_even / 2, lanes <= QUERY_BLOCK, 2) */
    uint16_t *p_pairs; /* (KEY_BLOCK / 2, QUERY_BLOCK, 2) */
    float *s_t;        /* (KEY_BLOCK, QUERY_BLOCK): scores, then probabilities */
    float *o_acc;      /* (QUERY_BLOCK, Dv padded): unnormalised output */
    float *row_max, *row_sum, *rescale; /* (QUERY_BLOCK) */
} bf16_forward_tiles;

static size_t bf16_forward_tiles_at(bf16_forward_tiles *t, float *base,
                                    const attn_sdpa_config *cfg)
{
    size_t used = 0;
    t->q_pairs = carve_pairs(base, &used, (size_t)even_dim(cfg->dim_qk) * QUERY_BLOCK);
    t->p_pairs = carve_pairs(base, &used, (size_t)KEY_BLOCK * QUERY_BLOCK);
    t->s_t = carve(base, &used, (size_t)KEY_BLOCK * QUERY_BLOCK);
    t->o_acc = carve(base, &used, (size_t)QUERY_BLOCK * attn_flash_pair_width(cfg->dim_v));
    t->row_max = carve(base, &used, QUERY_BLOCK);
    t->row_sum = carve(base, &used, QUERY_BLOCK);
    t->rescale = carve(base, &used, QUERY_BLOCK);
    return used;
}

/* out and lse of query rows i0 .. i0 + QUERY_BLOCK of head bh: online_softmax's
 * steps on pairs. */
static void bf16_forward_block(float *out, float *lse, const bf16_operand *q,
                               const bf16_operand *k, const bf16_operand *v,
                               const attn_sdpa_config *cfg, int64_t bh, int64_t i0,
                               const bf16_forward_tiles *t)
{
    const int64_t H = cfg->heads;
    const int rows = min_int(QUERY_BLOCK, cfg->len_q - i0), lanes = round_up(rows, VF_WIDTH);
    const int d_even = q->width_even, dv_pad = v->width_pad;

    pack_column_pairs(t->q_pairs, lanes, operand_rows(q, bh, i0), q->rows_step, rows, d_even);
    for (int r = 0; r < QUERY_BLOCK; r++) {
        t->row_max[r] = -INFINITY;
        t->row_sum[r] = 0.0f;
    }
    memset(t->o_acc, 0, (size_t)rows * dv_pad * sizeof *t->o_acc);

    /* The first tile starts at an even key, so that its pairs are v's pairs; a key
     * before key_begin is outside every row's window, masked to -inf. */
    const int64_t end = key_end(cfg, i0, rows);
    for (int64_t j0 = key_begin(cfg, i0) & ~(int64_t)1; j0 < end; j0 += KEY_BLOCK) {
        const int keys = min_int(KEY_BLOCK, end - j0);
        /* S^T (keys x lanes) = scale K_j Q^T, then the bias and masks. */
        tile_product_pairs(keys, lanes, d_even / 2, operand_rows(k, bh, j0), k->rows_step, 2,
                           t->q_pairs, (ptrdiff_t)lanes * 2, t->s_t, QUERY_BLOCK,
                           (c_update){false, attn_flash_scale(cfg), NULL});
        score_tile tile = {t->s_t, 1, QUERY_BLOCK, bh / H, bh % H, i0, j0, rows, keys};
        mask_tile(&tile, cfg);
        /* P rounded to bf16 as the exponentials are taken, or, under dropout, which
         * acts on the probabilities in float32, after it. */
        if (cfg->dropout_p > 0.0f) {
            softmax_tile_update(SOFTMAX_EXP_BF16, t->s_t, t->s_t, NULL, keys, lanes, t->row_max,
                                t->row_sum, t->rescale);
            apply_dropout(&tile, cfg);
            round_row_pairs(t->p_pairs, t->s_t, keys, lanes, QUERY_BLOCK);
        } else {
            softmax_tile_update(SOFTMAX_EXP_BF16, t->s_t, NULL, t->p_pairs, keys, lanes,
                                t->row_max, t->row_sum, t->rescale);
        }

        /* O = diag(rescale) O + round(P) V_j. */
        tile_product_pairs(rows, dv_pad, (keys + 1) / 2, t->p_pairs, 2, QUERY_BLOCK * 2,
                           operand_pairs(v, bh, j0), (ptrdiff_t)dv_pad * 2, t->o_acc, dv_pad,
                           (c_update){true, 1.0f, t->rescale});
    }
    finish_rows(out, lse, cfg, bh, i0, t->o_acc, dv_pad, t->row_max, t->row_sum);
}

/* s[c] = scale (q . k_c) for keys c < keys of k, rows of pairs (leading dimension
 * ldk), and q one such row: per key a vector of pair products along d (vp_dot,
 * one load of k per VF_WIDTH pairs), then its lanes summed (single_row_scores'
 * form on pairs). A last part of fewer than VF_WIDTH pairs is read through a
 * zero-padded copy, never past the row. (Not loop-vectorized in the scalar
 * variant: GCC 12 turns this loop, too, into a wrong reduction.) */
PAIR_PRODUCT_ATTRIBUTES static void single_row_scores_pairs(float *s, const uint16_t *k,
                                                             ptrdiff_t ldk, const uint16_t *q,
                                                             int keys, int d_even, float scale)
{
    enum { STEP = 2 * VF_WIDTH };
    const int whole = d_even / STEP * STEP;
    uint16_t q_tail[STEP] = {0}, k_tail[STEP] = {0};
    memcpy(q_tail, q + whole, (size_t)(d_even - whole) * sizeof *q);
    for (int c = 0; c < keys; c++) {
        const uint16_t *kc = k + (ptrdiff_t)c * ldk;
        vf acc = vf_zero();
        for (int d = 0; d < whole; d += STEP) acc = vp_dot(acc, vp_load(q + d), vp_load(kc + d));
        if (whole < d_even) {
            memcpy(k_tail, kc + whole, (size_t)(d_even - whole) * sizeof *kc);
            acc = vp_dot(acc, vp_load(q_tail), vp_load(k_tail));
        }
        s[c] = scale * vf_sum(acc);
    }
}

/* out and lse of the one query row i0 of head bh (a decoding step):
 * single_row_forward's steps on pairs, P rounded to bf16 as in the tiles. */
static void bf16_single_row_forward(float *out, float *lse, const bf16_operand *q,
                                    const bf16_operand *k, const bf16_operand *v,
                                    const attn_sdpa_config *cfg, int64_t bh, int64_t i0,
                                    const bf16_forward_tiles *t)
{
    const int64_t H = cfg->heads;
    const int d_even = q->width_even, dv_pad = v->width_pad;
    const uint16_t *q_row = operand_rows(q, bh, i0);
    t->row_max[0] = -INFINITY;
    t->row_sum[0] = 0.0f;
    memset(t->o_acc, 0, (size_t)dv_pad * sizeof *t->o_acc);
    const int64_t end = key_end(cfg, i0, 1);
    for (int64_t j0 = key_begin(cfg, i0) & ~(int64_t)1; j0 < end; j0 += KEY_BLOCK) {
        const int keys = min_int(KEY_BLOCK, end - j0);
        single_row_scores_pairs(t->s_t, operand_rows(k, bh, j0), k->rows_step, q_row, keys,
                                d_even, attn_flash_scale(cfg));
        score_tile tile = {t->s_t, 0, 1, bh / H, bh % H, i0, j0, 1, keys};
        mask_tile(&tile, cfg);
        t->rescale[0] = softmax_row_update(SOFTMAX_EXP_BF16, t->s_t, keys, t->row_max, t->row_sum);
        if (cfg->dropout_p > 0.0f) apply_dropout(&tile, cfg);
        /* o = rescale o + round(p) V_j: p's keys 2t and 2t + 1 are a pair, as v's. */
        for (int c = 0; c < keys; c++) t->p_pairs[c] = bf16_round_flushing(t->s_t[c]);
        t->p_pairs[keys] = 0;
        tile_product_pairs(1, dv_pad, (keys + 1) / 2, t->p_pairs, 0, 2, operand_pairs(v, bh, j0),
                           (ptrdiff_t)dv_pad * 2, t->o_acc, dv_pad,
                           (c_update){true, 1.0f, t->rescale});
    }
    finish_rows(out, lse, cfg, bh, i0, t->o_acc, dv_pad, t->row_max, t->row_sum);
}

/* The forward's scratch: `threads` tiles, then q and k as rows of pairs (copies
 * for odd D) and v as pairs of keys (unless given so, v NULL); its size in floats
 * (base NULL: only counted). */
static size_t bf16_forward_scratch(float *base, const attn_sdpa_config *cfg, int threads,
                                   const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                   const uint16_t *v_pairs, bf16_operand operands[3])
{
    bf16_forward_tiles layout;
    size_t used = (size_t)threads * bf16_forward_tiles_at(&layout, NULL, cfg);
    operands[0] =
        carve_operand(base, &used, q, attn_q_rows(cfg), cfg, cfg->len_q, cfg->dim_qk, false);
    operands[1] =
        carve_operand(base, &used, k, attn_k_rows(cfg), cfg, cfg->len_k, cfg->dim_qk, false);
    operands[2] =
        v_pairs == NULL
            ? carve_operand(base, &used, v, attn_v_rows(cfg), cfg, cfg->len_k, cfg->dim_v, true)
            : given_pairs(v_pairs, cfg->len_k, cfg->dim_v);
    return used;
}

/* A block of one query row runs on a row of scores (single_row_forward's reason). */
static void bf16_forward_task(float *out, float *lse, const bf16_operand *q,
                              const bf16_operand *k, const bf16_operand *v,
                              const attn_sdpa_config *cfg, int64_t bh, int64_t i0,
                              const bf16_forward_tiles *t)
{
    if (cfg->len_q - i0 == 1)
        bf16_single_row_forward(out, lse, q, k, v, cfg, bh, i0, t);
    else
        bf16_forward_block(out, lse, q, k, v, cfg, bh, i0, t);
}

/* Head bh: its operands laid out, then each of its query blocks. */
static void bf16_forward_head(float *out, float *lse, const bf16_operand ops[3],
                              const attn_sdpa_config *cfg, int64_t bh, int64_t query_blocks,
                              const bf16_forward_tiles *t)
{
    for (int o = 0; o < 3; o++) lay_out_operand(&ops[o], bh);
    for (int64_t block = 0; block < query_blocks; block++)
        bf16_forward_task(out, lse, &ops[0], &ops[1], &ops[2], cfg, bh, block * QUERY_BLOCK, t);
}

static attn_status flash_forward_bf16(float *out, float *lse, const uint16_t *q, const uint16_t *k,
                                     const uint16_t *v, const uint16_t *v_pairs,
                                     const attn_sdpa_config *cfg)
{
    const int64_t heads = (int64_t)cfg->batch * cfg->heads;
    const int64_t query_blocks = (cfg->len_q + QUERY_BLOCK - 1) / QUERY_BLOCK;
    const int threads = min_int(attn_get_num_threads(), heads * query_blocks);
    bf16_operand ops[3];
    const kernel_scratch held =
        attn_kernel_scratch_take(bf16_forward_scratch(NULL, cfg, threads, q, k, v, v_pairs, ops));
    float *scratch = held.data;
    if (scratch == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY,
                          "no memory for %d threads' bf16 attention tiles and packed q, k, v",
                          threads);
    bf16_forward_scratch(scratch, cfg, threads, q, k, v, v_pairs, ops);
    bf16_forward_tiles layout;
    const size_t per_thread = bf16_forward_tiles_at(&layout, NULL, cfg);

    const bool by_head = head_tasks(heads, query_blocks, threads);

    if (threads == 1) { /* no parallel region: see flash_forward */
        const unsigned mxcsr = subnormals_flush();
        bf16_forward_tiles tiles;
        bf16_forward_tiles_at(&tiles, scratch, cfg);
        for (int64_t bh = 0; bh < heads; bh++)
            bf16_forward_head(out, lse, ops, cfg, bh, query_blocks, &tiles);
        subnormals_restore(mxcsr);
    } else {
#pragma omp parallel num_threads(threads)
        {
            /* Subnormals flushed as vdpbf16ps flushes them, in every variant (simd.h). */
            const unsigned mxcsr = subnormals_flush();
            bf16_forward_tiles tiles;
            bf16_forward_tiles_at(&tiles, scratch + (size_t)attn_thread_index() * per_thread, cfg);
            if (by_head) {
#pragma omp for schedule(static)
                for (int64_t bh = 0; bh < heads; bh++)
                    bf16_forward_head(out, lse, ops, cfg, bh, query_blocks, &tiles);
            } else {
#pragma omp for schedule(static)
                for (int64_t bh = 0; bh < heads; bh++)
                    for (int o = 0; o < 3; o++) lay_out_operand(&ops[o], bh);
                /* Later query blocks see more keys under a causal mask: hand them out first. */
#pragma omp for schedule(dynamic)
                for (int64_t task = 0; task < heads * query_blocks; task++) {
                    int64_t bh, block;
                    task_block(task, query_blocks, true, &bh, &block);
                    bf16_forward_task(out, lse, &ops[0], &ops[1], &ops[2], cfg, bh,
                                      block * QUERY_BLOCK, &tiles);
                }
            }
            subnormals_restore(mxcsr);
        }
    }
    attn_kernel_scratch_give(held);
    return ATTN_OK;
}
