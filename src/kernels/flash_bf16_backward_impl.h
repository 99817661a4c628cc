/* Internal: the backward of the fused attention kernel on bfloat16 inputs
 * (flash.h's backward_bf16), compiled once per instruction set after
 * flash_bf16_impl.h, whose pair products and layouts it uses. Everything here is
 * static.
 *
 * The float32 backward's algorithm (flash_impl.h: FlashAttention-2's, with the
 * row terms and delta recomputed and summed as there, no atomics) with its tile
 * products on pairs of bf16:
 *   query pass, a task per (b, h, query block):
 *     S^T = scale K_j Q_i^T, masked: the row max and sum (the forward's bits:
 *         the same pair products, tiles and order), then P^T
 *     dP'^T = V_j dout_i^T (dropout's factor on it), delta_i from P and dP' in
 *         double (delta_sums)
 *     dS^T = P^T (dP'^T - delta), rounded to bf16; dQ_i += dS K_j
 *   key pass, a task per (b, h, key block):
 *     S = scale Q_i K_j^T and dP = dout_i V_j^T (the same bits as the query pass's:
 *         each element is the same pair products in the same order), P, dS
 *     dV_j += round(P')^T dout_i, dK_j += round(dS)^T Q_i
 * Scores, probabilities, delta and every sum stay float32 (delta double); what
 * is rounded to bf16 is what a product reads: the inputs, P' and dS (each by at
 * most 2^-8 of itself). The query pass keeps S^T and dP'^T of every key block
 * while they take at most FUSED_CACHE_BYTES per thread, as the float32 kernel's
 * fused pass does; past that it recomputes them in each of its three steps.
 * Each gradient element is written by one task in a fixed order: the bits do not
 * depend on the thread count. */

/* The operands the backward reads, laid out once per call: q and k as rows of
 * pairs and as pairs of rows (dK += dS^T Q, dQ += dS K), v as rows of pairs,
 * dout as rows of pairs and pairs of rows (dV += P'^T dout). */
typedef struct bf16_backward_operands {
    bf16_operand q, k, v, dout;
} bf16_backward_operands;

/* ---- the query pass --------------------------------------------------------------- */

typedef struct bf16_query_tiles {
    uint16_t *q_cols, *dout_cols; /* (D | Dv even / 2, QUERY_BLOCK, 2) */
    uint16_t *ds_pairs;           /* (KEY_BLOCK / 2, QUERY_BLOCK, 2): dS rounded */
    float *s_work, *dp_work;      /* (KEY_BLOCK, QUERY_BLOCK): S^T, dP'^T when not kept */
    float *dq_acc;                /* (QUERY_BLOCK, D padded) */
    float *shift, *inv_sum, *delta, *delta_lo, *row_max, *row_sum; /* (QUERY_BLOCK) */
    float *s_cache, *dp_cache; /* a tile per visible key block, or NULL: not kept */
} bf16_query_tiles;

/* S^T and dP'^T of every key block a query block sees, kept when they fit. */
static size_t bf16_cache_floats(const attn_sdpa_config *cfg) { return fused_cache_floats(cfg, 2); }

static size_t bf16_query_tiles_at(bf16_query_tiles *t, float *base, const attn_sdpa_config *cfg)
{
    const size_t tile = (size_t)KEY_BLOCK * QUERY_BLOCK, cache = bf16_cache_floats(cfg) / 2;
    size_t used = 0;
    t->q_cols = carve_pairs(base, &used, (size_t)even_dim(cfg->dim_qk) * QUERY_BLOCK);
    t->dout_cols = carve_pairs(base, &used, (size_t)even_dim(cfg->dim_v) * QUERY_BLOCK);
    t->ds_pairs = carve_pairs(base, &used, tile);
    t->s_work = carve(base, &used, cache > 0 ? 0 : tile);
    t->dp_work = carve(base, &used, cache > 0 ? 0 : tile);
    t->dq_acc = carve(base, &used, (size_t)QUERY_BLOCK * attn_flash_pair_width(cfg->dim_qk));
    float **rows[] = {&t->shift, &t->inv_sum, &t->delta, &t->delta_lo, &t->row_max, &t->row_sum};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        *rows[i] = carve(base, &used, QUERY_BLOCK);
    t->s_cache = carve(base, &used, cache);
    t->dp_cache = carve(base, &used, cache);
    if (cache == 0) t->s_cache = t->dp_cache = NULL;
    return used;
}

/* Where key block n's S^T (then P^T) and dP'^T (then dS^T) live. */
static float *s_tile(const bf16_query_tiles *t, int64_t n)
{
    return t->s_cache != NULL ? t->s_cache + n * KEY_BLOCK * QUERY_BLOCK : t->s_work;
}

static float *dp_tile(const bf16_query_tiles *t, int64_t n)
{
    return t->dp_cache != NULL ? t->dp_cache + n * KEY_BLOCK * QUERY_BLOCK : t->dp_work;
}

/* S^T (keys x QUERY_BLOCK) = scale K_j Q_i^T of the loaded query block, masked. */
static void query_scores(float *s_t, const bf16_backward_operands *op, const bf16_query_tiles *t,
                         const attn_sdpa_config *cfg, int64_t bh, int64_t i0, int rows,
                         int64_t j0, int keys)
{
    const int d_even = op->q.width_even;
    tile_product_pairs(keys, QUERY_BLOCK, d_even / 2, operand_rows(&op->k, bh, j0),
                       op->k.rows_step, 2, t->q_cols, QUERY_BLOCK * 2, s_t, QUERY_BLOCK,
                       (c_update){false, attn_flash_scale(cfg), NULL});
    score_tile tile = {s_t, 1, QUERY_BLOCK, bh / cfg->heads, bh % cfg->heads, i0, j0, rows, keys};
    mask_tile(&tile, cfg);
}

/* P^T in place of S^T, and dP'^T = V_j dout_i^T with dropout's factor. */
static void query_probabilities(float *s_t, float *dp_t, const bf16_backward_operands *op,
                                const bf16_query_tiles *t, const attn_sdpa_config *cfg,
                                int64_t bh, int64_t i0, int rows, int64_t j0, int keys)
{
    const int dv_even = op->v.width_even;
    probabilities_transposed(SOFTMAX_EXP_BF16, s_t, keys, t->shift, t->inv_sum);
    tile_product_pairs(keys, QUERY_BLOCK, dv_even / 2, operand_rows(&op->v, bh, j0),
                       op->v.rows_step, 2, t->dout_cols, QUERY_BLOCK * 2, dp_t, QUERY_BLOCK, FRESH);
    if (cfg->dropout_p > 0.0f) {
        score_tile dp_tile = {dp_t, 1, QUERY_BLOCK, bh / cfg->heads, bh % cfg->heads,
                              i0, j0, rows, keys};
        apply_dropout(&dp_tile, cfg);
    }
}

/* Row terms, delta and dq of query rows i0 .. i0 + rows of head bh (see the opening
 * comment), in three steps over the key blocks the rows see. */
static void bf16_query_block(const row_terms *terms, float *dq, const bf16_backward_operands *op,
                             const float *lse, const attn_sdpa_config *cfg, int64_t bh,
                             int64_t i0, const bf16_query_tiles *t)
{
    const int64_t Lq = cfg->len_q, first = bh * Lq + i0;
    const int rows = min_int(QUERY_BLOCK, Lq - i0), d_pad = op->k.width_pad;
    const bool kept = t->s_cache != NULL;
    const int64_t begin = key_begin(cfg, i0) & ~(int64_t)1, end = key_end(cfg, i0, rows);

    pack_column_pairs(t->q_cols, QUERY_BLOCK, operand_rows(&op->q, bh, i0), op->q.rows_step,
                      rows, op->q.width_even);
    pack_column_pairs(t->dout_cols, QUERY_BLOCK, operand_rows(&op->dout, bh, i0),
                      op->dout.rows_step, rows, op->dout.width_even);

    /* The rows' max and sum, as the forward's online softmax finds them. */
    for (int r = 0; r < QUERY_BLOCK; r++) {
        t->row_max[r] = -INFINITY;
        t->row_sum[r] = 0.0f;
    }
    int64_t n = 0;
    for (int64_t j0 = begin; j0 < end; j0 += KEY_BLOCK, n++) {
        const int keys = min_int(KEY_BLOCK, end - j0);
        query_scores(s_tile(t, n), op, t, cfg, bh, i0, rows, j0, keys);
        softmax_tile_update(SOFTMAX_EXP_BF16, s_tile(t, n), NULL, NULL, keys, QUERY_BLOCK,
                            t->row_max, t->row_sum,
                            NULL);
    }
    set_row_terms(terms, t->shift, t->inv_sum, t->row_max, t->row_sum, lse, first, rows);

    /* delta from P and dP'. */
    double num[QUERY_BLOCK] = {0}, den[QUERY_BLOCK] = {0};
    n = 0;
    for (int64_t j0 = begin; j0 < end; j0 += KEY_BLOCK, n++) {
        const int keys = min_int(KEY_BLOCK, end - j0);
        if (!kept) query_scores(s_tile(t, n), op, t, cfg, bh, i0, rows, j0, keys);
        query_probabilities(s_tile(t, n), dp_tile(t, n), op, t, cfg, bh, i0, rows, j0, keys);
        delta_sums(num, den, s_tile(t, n), dp_tile(t, n), keys);
    }
    finish_delta(terms, t->delta, t->delta_lo, num, den, first, rows);
    if (dq == NULL) return;

    /* dS^T = P^T (dP'^T - delta), rounded; dQ_i += dS K_j. */
    memset(t->dq_acc, 0, (size_t)QUERY_BLOCK * d_pad * sizeof *t->dq_acc);
    n = 0;
    for (int64_t j0 = begin; j0 < end; j0 += KEY_BLOCK, n++) {
        const int keys = min_int(KEY_BLOCK, end - j0);
        float *s_t = s_tile(t, n), *dp_t = dp_tile(t, n);
        if (!kept) {
            query_scores(s_t, op, t, cfg, bh, i0, rows, j0, keys);
            query_probabilities(s_t, dp_t, op, t, cfg, bh, i0, rows, j0, keys);
        }
        score_gradient_transposed(dp_t, s_t, keys, t->delta, t->delta_lo);
        score_tile ds_tile = {dp_t, 1, QUERY_BLOCK, bh / cfg->heads, bh % cfg->heads,
                              i0, j0, rows, keys};
        zero_filled(&ds_tile, cfg->attn_mask);
        zero_filled(&ds_tile, cfg->key_padding_mask);
        round_row_pairs(t->ds_pairs, dp_t, keys, QUERY_BLOCK, QUERY_BLOCK);
        tile_product_pairs(rows, d_pad, (keys + 1) / 2, t->ds_pairs, 2, QUERY_BLOCK * 2,
                           operand_pairs(&op->k, bh, j0), (ptrdiff_t)d_pad * 2, t->dq_acc, d_pad,
                           ADD);
    }
    add_query_gradient(dq, t->dq_acc, d_pad, cfg, bh, i0, rows);
}

/* ---- the key pass ------------------------------------------------------------------ */

typedef struct bf16_key_tiles {
    uint16_t *k_cols, *v_cols; /* (D | Dv even / 2, KEY_BLOCK, 2) */
    uint16_t *pairs;           /* (QUERY_BLOCK / 2, KEY_BLOCK, 2): P' or dS rounded */
    float *p, *ds;             /* (QUERY_BLOCK, KEY_BLOCK): P (then P'), dP (then dS) */
    float *dk_acc, *dv_acc;    /* (KEY_BLOCK, D | Dv padded) */
} bf16_key_tiles;

static size_t bf16_key_tiles_at(bf16_key_tiles *t, float *base, const attn_sdpa_config *cfg)
{
    const size_t tile = (size_t)QUERY_BLOCK * KEY_BLOCK;
    size_t used = 0;
    t->k_cols = carve_pairs(base, &used, (size_t)even_dim(cfg->dim_qk) * KEY_BLOCK);
    t->v_cols = carve_pairs(base, &used, (size_t)even_dim(cfg->dim_v) * KEY_BLOCK);
    t->pairs = carve_pairs(base, &used, tile);
    t->p = carve(base, &used, tile);
    t->ds = carve(base, &used, tile);
    t->dk_acc = carve(base, &used, (size_t)KEY_BLOCK * attn_flash_pair_width(cfg->dim_qk));
    t->dv_acc = carve(base, &used, (size_t)KEY_BLOCK * attn_flash_pair_width(cfg->dim_v));
    return used;
}

/* dk, dv of keys j0 .. j0 + keys of head bh, over every query block that sees them
 * (key_block_gradients' steps on pairs). */
static void bf16_key_block(float *dk, float *dv, const bf16_backward_operands *op,
                           const row_terms *terms, const attn_sdpa_config *cfg, int64_t bh,
                           int64_t j0, const bf16_key_tiles *t)
{
    const int64_t H = cfg->heads, Lq = cfg->len_q, Lk = cfg->len_k;
    const int d_even = op->q.width_even, dv_even = op->v.width_even;
    const int d_pad = op->q.width_pad, dv_pad = op->dout.width_pad;
    const int keys = min_int(KEY_BLOCK, Lk - j0);
    const float scale = attn_flash_scale(cfg);

    pack_column_pairs(t->k_cols, KEY_BLOCK, operand_rows(&op->k, bh, j0), op->k.rows_step, keys,
                      d_even);
    pack_column_pairs(t->v_cols, KEY_BLOCK, operand_rows(&op->v, bh, j0), op->v.rows_step, keys,
                      dv_even);
    memset(t->dk_acc, 0, (size_t)KEY_BLOCK * d_pad * sizeof *t->dk_acc);
    memset(t->dv_acc, 0, (size_t)KEY_BLOCK * dv_pad * sizeof *t->dv_acc);

    int64_t first, last;
    query_range(cfg, j0, keys, &first, &last);
    for (int64_t i0 = first; i0 < last; i0 += QUERY_BLOCK) {
        const int rows = min_int(QUERY_BLOCK, Lq - i0);
        const int64_t at = bh * Lq + i0;

        /* S = scale Q_i K_j^T, masked; P; dP' = dout_i V_j^T; dS and P'. */
        tile_product_pairs(rows, KEY_BLOCK, d_even / 2, operand_rows(&op->q, bh, i0),
                           op->q.rows_step, 2, t->k_cols, KEY_BLOCK * 2, t->p, KEY_BLOCK,
                           (c_update){false, scale, NULL});
        score_tile tile = {t->p, KEY_BLOCK, 1, bh / H, bh % H, i0, j0, rows, keys};
        mask_tile(&tile, cfg);
        probabilities_by_rows(SOFTMAX_EXP_BF16, t->p, rows, terms->shift + at,
                              terms->inv_sum + at);
        tile_product_pairs(rows, KEY_BLOCK, dv_even / 2, operand_rows(&op->dout, bh, i0),
                           op->dout.rows_step, 2, t->v_cols, KEY_BLOCK * 2, t->ds, KEY_BLOCK,
                           FRESH);
        if (cfg->dropout_p > 0.0f)
            dropout_softmax_gradient(&tile, t->ds, terms->delta + at, terms->delta_lo + at, cfg);
        else
            score_gradient_by_rows(t->ds, t->p, rows, terms->delta + at, terms->delta_lo + at);
        score_tile ds_tile = tile;
        ds_tile.data = t->ds;
        zero_filled(&ds_tile, cfg->attn_mask);
        zero_filled(&ds_tile, cfg->key_padding_mask);

        /* dV_j += round(P')^T dout_i and dK_j += round(dS)^T Q_i (scale at the end). */
        if (dv != NULL) {
            round_row_pairs(t->pairs, t->p, rows, KEY_BLOCK, KEY_BLOCK);
            tile_product_pairs(keys, dv_pad, (rows + 1) / 2, t->pairs, 2, KEY_BLOCK * 2,
                               operand_pairs(&op->dout, bh, i0), (ptrdiff_t)dv_pad * 2,
                               t->dv_acc, dv_pad, ADD);
        }
        if (dk != NULL) {
            round_row_pairs(t->pairs, t->ds, rows, KEY_BLOCK, KEY_BLOCK);
            tile_product_pairs(keys, d_pad, (rows + 1) / 2, t->pairs, 2, KEY_BLOCK * 2,
                               operand_pairs(&op->q, bh, i0), (ptrdiff_t)d_pad * 2, t->dk_acc,
                               d_pad, ADD);
        }
    }
    add_key_gradients(dk, dv, t->dk_acc, d_pad, t->dv_acc, dv_pad, cfg, bh, j0, keys);
}

/* ---- the whole backward ------------------------------------------------------------ */

/* The backward's scratch: `threads` per-thread areas (the query pass's tiles,
 * then the key pass's in the same place), the row terms, then the operands; its
 * size in floats (base NULL: only counted). */
static size_t bf16_backward_scratch(float *base, const attn_sdpa_config *cfg, int threads,
                                    const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                    const uint16_t *dout, bf16_backward_operands *op,
                                    row_terms *terms, size_t *per_thread)
{
    bf16_query_tiles qt;
    bf16_key_tiles kt;
    const size_t query = bf16_query_tiles_at(&qt, NULL, cfg), key = bf16_key_tiles_at(&kt, NULL, cfg);
    *per_thread = query > key ? query : key;
    size_t used = (size_t)threads * *per_thread;
    const size_t rows = (size_t)cfg->batch * cfg->heads * cfg->len_q;
    float *row_area = carve(base, &used, ROW_TERMS * rows);
    if (row_area != NULL)
        *terms = (row_terms){row_area, row_area + rows, row_area + 2 * rows, row_area + 3 * rows};
    op->q = carve_operand(base, &used, q, attn_q_rows(cfg), cfg, cfg->len_q, cfg->dim_qk, true);
    op->k = carve_operand(base, &used, k, attn_k_rows(cfg), cfg, cfg->len_k, cfg->dim_qk, true);
    op->v = carve_operand(base, &used, v, attn_v_rows(cfg), cfg, cfg->len_k, cfg->dim_v, false);
    op->dout =
        carve_operand(base, &used, dout, attn_out_rows(cfg), cfg, cfg->len_q, cfg->dim_v, true);
    return used;
}

/* Before head bh's query pass: what it reads, k as pairs of rows and the copies
 * of odd widths. q and dout as pairs of rows are read by the key pass only: each
 * query task lays out its own rows (bf16_query_task), which it reads first. */
static void bf16_head_layouts(const bf16_backward_operands *op, int64_t bh)
{
    lay_out_operand(&op->k, bh);
    const bf16_operand *rows_only[] = {&op->q, &op->v, &op->dout};
    for (int o = 0; o < 3; o++) lay_out_rows(rows_only[o], bh);
}

/* Query block `block` of head bh: its q and dout laid out as pairs of rows, then
 * its dq and row terms. */
static void bf16_query_task(const row_terms *terms, float *dq, const bf16_backward_operands *op,
                            const float *lse, const attn_sdpa_config *cfg, int64_t bh,
                            int64_t block, const bf16_query_tiles *tiles)
{
    const int rows = min_int(QUERY_BLOCK, cfg->len_q - block * QUERY_BLOCK);
    lay_out_pairs(&op->q, bh, block * QUERY_BLOCK, rows);
    lay_out_pairs(&op->dout, bh, block * QUERY_BLOCK, rows);
    bf16_query_block(terms, dq, op, lse, cfg, bh, block * QUERY_BLOCK, tiles);
}

static attn_status flash_backward_bf16(float *dq, float *dk, float *dv, const uint16_t *dout,
                                      const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                      const float *lse, const attn_sdpa_config *cfg)
{
    const int64_t heads = (int64_t)cfg->batch * cfg->heads;
    const int64_t query_blocks = (cfg->len_q + QUERY_BLOCK - 1) / QUERY_BLOCK;
    const int64_t key_blocks = (cfg->len_k + KEY_BLOCK - 1) / KEY_BLOCK;
    const int threads = attn_get_num_threads();
    bf16_backward_operands op;
    row_terms terms;
    size_t per_thread;
    const kernel_scratch held = attn_kernel_scratch_take(
        bf16_backward_scratch(NULL, cfg, threads, q, k, v, dout, &op, &terms, &per_thread));
    float *scratch = held.data;
    if (scratch == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY,
                          "no memory for %d threads' bf16 attention tiles, row terms and packed "
                          "q, k, v, dout",
                          threads);
    bf16_backward_scratch(scratch, cfg, threads, q, k, v, dout, &op, &terms, &per_thread);

    const bool by_head =
        head_tasks(heads, query_blocks > key_blocks ? query_blocks : key_blocks, threads);

#pragma omp parallel num_threads(threads)
    {
        float *mine = scratch + (size_t)attn_thread_index() * per_thread;
        /* Subnormals flushed as vdpbf16ps flushes them, in every variant (simd.h). */
        const unsigned mxcsr = subnormals_flush();
        /* The query and key passes' tiles share the thread's scratch: a task
         * finishes the one pass before the other starts. */
        bf16_query_tiles query_tiles;
        bf16_query_tiles_at(&query_tiles, mine, cfg);
        bf16_key_tiles key_tiles;
        bf16_key_tiles_at(&key_tiles, mine, cfg);
        if (by_head) {
#pragma omp for schedule(static)
            for (int64_t bh = 0; bh < heads; bh++) {
                bf16_head_layouts(&op, bh);
                for (int64_t block = 0; block < query_blocks; block++)
                    bf16_query_task(&terms, dq, &op, lse, cfg, bh, block, &query_tiles);
                if (dk != NULL || dv != NULL)
                    for (int64_t block = 0; block < key_blocks; block++)
                        bf16_key_block(dk, dv, &op, &terms, cfg, bh, block * KEY_BLOCK,
                                       &key_tiles);
            }
        } else {
#pragma omp for schedule(static)
            for (int64_t bh = 0; bh < heads; bh++) bf16_head_layouts(&op, bh);
            /* (the implicit barrier: the query pass's operands are laid out) */
            /* Later query blocks see more keys under a causal mask: hand them out first. */
#pragma omp for schedule(dynamic)
            for (int64_t task = 0; task < heads * query_blocks; task++) {
                int64_t bh, block;
                task_block(task, query_blocks, true, &bh, &block);
                bf16_query_task(&terms, dq, &op, lse, cfg, bh, block, &query_tiles);
            }
            /* (the implicit barrier: every row's terms are ready for the key pass, and
             * q and dout are laid out) */
            if (dk != NULL || dv != NULL) {
#pragma omp for schedule(dynamic)
                for (int64_t task = 0; task < heads * key_blocks; task++) {
                    int64_t bh, block;
                    task_block(task, key_blocks, false, &bh, &block);
                    bf16_key_block(dk, dv, &op, &terms, cfg, bh, block * KEY_BLOCK, &key_tiles);
                }
            }
        }
        subnormals_restore(mxcsr);
    }
    attn_kernel_scratch_give(held);
    return ATTN_OK;
}

static size_t flash_workspace_bytes_bf16(const attn_sdpa_config *cfg, int threads, bool backward)
{
    bf16_operand forward_ops[3];
    const size_t forward =
        bf16_forward_scratch(NULL, cfg, threads, NULL, NULL, NULL, NULL, forward_ops) *
        sizeof(float);
    if (!backward) return forward;
    bf16_backward_operands op;
    row_terms terms;
    size_t per_thread;
    const size_t backward_bytes =
        bf16_backward_scratch(NULL, cfg, threads, NULL, NULL, NULL, NULL, &op, &terms,
                              &per_thread) *
        sizeof(float);
    return backward_bytes > forward ? backward_bytes : forward;
}
