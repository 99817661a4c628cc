/* The matrix product at a precision (attn_gemm of attn/kernels.h): float32 is
 * attn_sgemm; bf16 rounds A and B to bfloat16 and multiplies them with float32
 * products and sums. Beside it (gemm_bf16.h), the same product on operands the
 * caller rounded once for several products, and a Linear's product with its bias
 * and residual added in the product's epilogue, at either precision.
 *
 * With oneDNN the bf16 product is its matmul primitive (brgemm kernels on
 * vdpbf16ps where the CPU has AVX512_BF16): a primitive is specialised to its
 * shape and costs far more to create than to run, so each shape's is created
 * once and kept (a language model's step has a few dozen shapes, the same every
 * step). Its operands are the rounded copies, laid out compactly as the caller
 * stores them (a transposed operand keeps its transposition in the memory
 * descriptor's strides), in buffers that grow and are reused. Without oneDNN,
 * or where oneDNN has only its reference loops for bf16 (CPUs without AVX-512),
 * the rounded values, widened back to float32 exactly, go through attn_sgemm:
 * the same bound, other bits.
 *
 * A Linear's product (attn_affine_product) runs on the same primitive in float32
 * too, its bias the primitive's bias and its residual a binary-add post-op (a sum
 * post-op when the output is the residual): the bias and the residual are added
 * while each output tile is in registers, not by passes over the output before
 * the product, and the primitive, made once per shape, does not repack its
 * operands' descriptors each call as dnnl_sgemm does (on a small model's
 * products it ran at 1.3 to 1.9 times dnnl_sgemm's rate here).
 *
 * Each thread that calls these products has its own state (gemm_state: the
 * buffers, the primitives and a stream), so that threads running a model each
 * (data-parallel replicas) multiply at the same time: oneDNN's primitives, as
 * Debian builds it, share a scratchpad per thread and must run on the thread
 * that created them. The engine is shared. */
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "attn/kernels.h"
#include "kernels/bf16_rows.h"
#include "kernels/gemm_bf16.h"
#include "kernels/isa.h"
#include "kernels/kept_buffer.h"

#if defined(ATTN_GEMM_DNNL)
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_version.h>
#include <stdio.h>
#include <string.h>
#endif

/* Below this many elements a conversion is not worth waking the threads. */
#define CONVERT_PARALLEL_MIN (1 << 15)

void attn_bf16_round_tile(uint16_t *dst, int ld_dst, const float *src, int ld_src, int rows,
                          int cols)
{
    const attn_isa *isa = NULL;
    if (attn_isa_current(&isa) == ATTN_OK) {
        isa->vec->bf16_round_tile(dst, (size_t)ld_dst, src, (size_t)ld_src, (size_t)rows,
                                  (size_t)cols);
        return;
    }
    for (int r = 0; r < rows; r++) /* a bad ATTN_SIMD: the same rounding, one value at a time */
        attn_bf16_from_float(dst + (size_t)r * ld_dst, src + (size_t)r * ld_src, (size_t)cols);
}

void attn_bf16_round_rows(uint16_t *dst, const float *src, int rows, int cols, int ld)
{
    enum { ROWS_PER_TASK = 16 };
    const int tasks = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
#pragma omp parallel for schedule(static) \
    if ((size_t)rows * cols >= CONVERT_PARALLEL_MIN) num_threads(attn_get_num_threads())
    for (int t = 0; t < tasks; t++) {
        const int first = t * ROWS_PER_TASK;
        const int count = rows - first < ROWS_PER_TASK ? rows - first : ROWS_PER_TASK;
        attn_bf16_round_tile(dst + (size_t)first * cols, cols, src + (size_t)first * ld, ld,
                             count, cols);
    }
}

/* One row of attn_bf16_round_rows_sum_columns on the calling thread: the
 * instruction set's kernel, or with a bad ATTN_SIMD the same values plainly. */
static void round_scaled_sum_row(const attn_isa *isa, uint16_t *dst, float *sums,
                                 const float *src, const float *scale, int n)
{
    if (isa != NULL) {
        isa->vec->bf16_round_scaled_sum(dst, sums, src, scale, (size_t)n);
        return;
    }
    for (int c = 0; c < n; c++) {
        const float v = scale ? src[c] * scale[c] : src[c];
        if (dst) attn_bf16_from_float(dst + c, &v, 1);
        if (sums) sums[c] += v;
    }
}

void attn_bf16_round_rows_sum_columns(uint16_t *dst, float *sums, float *block_sums,
                                      const float *src, const float *scale, int rows, int cols)
{
    const attn_isa *isa = NULL;
    if (attn_isa_current(&isa) != ATTN_OK) isa = NULL;
    /* The threads share blocks of whole rows: sharing the columns of every row
     * instead (each column's sum then in one thread, in row order) had each
     * thread write parts of the other's cache lines, and ran 3 to 7 times slower
     * on two threads than on one here. A block's column sums go to block_sums,
     * and the blocks' sums are added in block order, so the bits do not depend
     * on the thread count. */
    const int blocks = attn_bf16_sum_blocks(rows);
#pragma omp parallel for schedule(static) if ((size_t)rows * cols >= CONVERT_PARALLEL_MIN) \
    num_threads(attn_get_num_threads())
    for (int b = 0; b < blocks; b++) {
        float *block = sums ? block_sums + (size_t)b * cols : NULL;
        if (block) memset(block, 0, (size_t)cols * sizeof *block);
        const int first = b * ATTN_BF16_SUM_BLOCK_ROWS;
        const int last =
            first + ATTN_BF16_SUM_BLOCK_ROWS < rows ? first + ATTN_BF16_SUM_BLOCK_ROWS : rows;
        for (int r = first; r < last; r++) {
            const size_t at = (size_t)r * cols;
            round_scaled_sum_row(isa, dst ? dst + at : NULL, block, src + at,
                                 scale ? scale + at : NULL, cols);
        }
    }
    /* A few thousand additions: cheaper here than in a second parallel loop. */
    if (sums)
        for (int c = 0; c < cols; c++) {
            float total = block_sums[c];
            for (int b = 1; b < blocks; b++) total += block_sums[(size_t)b * cols + c];
            sums[c] += total;
        }
}

/* The operands of an (m, k) x (k, n) product as the caller stores them: A as m
 * rows of k (k rows of m when transposed), B as k rows of n (n rows of k). */
typedef struct operand_shape {
    int rows, cols;
} operand_shape;

static operand_shape shape_a(bool trans, int m, int k)
{
    return trans ? (operand_shape){k, m} : (operand_shape){m, k};
}

#if defined(ATTN_GEMM_DNNL)
/* One shape's primitive: A (m, k) and B (k, n) of `type` at row strides lda and
 * ldb as stored (the transposes in the strides), C (m, n) float32 at ldc; alpha
 * the output scale, beta C a sum post-op; with `bias` a (1, n) float32 bias, with
 * `residual` an (m, n) float32 tensor at row stride ldc added by a binary post-op.
 * `reference` marks a shape for which oneDNN offered only its reference
 * implementation, which the portable path beats. */
typedef struct matmul_plan {
    dnnl_data_type_t type;
    bool trans_a, trans_b, bias, residual;
    int m, n, k, lda, ldb, ldc;
    float alpha, beta;
    bool reference;
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t a_md, b_md, c_md, bias_md;
} matmul_plan;

/* Enough for the shapes of a few models' training and validation passes (a
 * language model's step has a few dozen). A shape past the last is created, run
 * and destroyed each call; oneDNN keeps primitives of its own (1024 by default),
 * so that creation finds the one made before. A recurrent model in bf16 meets
 * 400 to 700 shapes, as many rows as sequences are running at a time step: a
 * dates run of lstm-luong-general with beam 4 took the same time within noise
 * with the shapes past 192 on primitives taking m at run time instead. */
enum { MAX_PLANS = 256 };

/* The engine every thread's primitives run on, made once; NULL if oneDNN failed. */
static dnnl_engine_t engine;
static once_flag engine_once = ONCE_FLAG_INIT;
static void make_engine(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}
#endif

/* A calling thread's state: its kept buffers and (oneDNN) its stream and
 * primitives, made on its first product and freed when the thread ends. */
typedef struct gemm_state {
    kept_buffer rounded_a, rounded_b; /* the operands rounded to bf16 */
    kept_buffer widened_a, widened_b; /* the portable path's, widened back to float32 */
#if defined(ATTN_GEMM_DNNL)
    dnnl_stream_t stream; /* NULL if oneDNN failed */
    int plan_count;
    matmul_plan plans[MAX_PLANS];
#endif
} gemm_state;

/* Each thread's gemm_state is its value of state_key. */
static tss_t state_key;
static once_flag state_once = ONCE_FLAG_INIT;

static void state_free(void *data)
{
    gemm_state *g = data;
    free(g->rounded_a.data);
    free(g->rounded_b.data);
    free(g->widened_a.data);
    free(g->widened_b.data);
#if defined(ATTN_GEMM_DNNL)
    for (int i = 0; i < g->plan_count; i++) dnnl_primitive_destroy(g->plans[i].primitive);
    if (g->stream) dnnl_stream_destroy(g->stream);
#endif
    free(g);
}

static void make_state_key(void) { (void)tss_create(&state_key, state_free); }

/* This thread's state, or NULL when out of memory. */
static gemm_state *this_thread(void)
{
    call_once(&state_once, make_state_key);
    gemm_state *g = tss_get(state_key);
    if (g) return g;
    if ((g = calloc(1, sizeof *g)) == NULL) return NULL;
    if (tss_set(state_key, g) != thrd_success) {
        free(g);
        return NULL;
    }
#if defined(ATTN_GEMM_DNNL)
    call_once(&engine_once, make_engine);
    if (engine == NULL ||
        dnnl_stream_create(&g->stream, engine, dnnl_stream_default_flags) != dnnl_success)
        g->stream = NULL;
#endif
    return g;
}

/* An operand in bf16: `given` when the caller rounded it, else x (stored as s,
 * row stride ld) rounded into kept; NULL when out of memory. */
static const uint16_t *rounded(const uint16_t *given, kept_buffer *kept, const float *x,
                               operand_shape s, int ld)
{
    if (given) return given;
    uint16_t *r = attn_kept_buffer_reserve(kept, (size_t)s.rows * s.cols * sizeof *r);
    if (r) attn_bf16_round_rows(r, x, s.rows, s.cols, ld);
    return r;
}

/* The bf16 product through attn_sgemm on the rounded values; false when out of
 * memory for them. */
static bool gemm_rounded_sgemm(gemm_state *g, bool trans_a, bool trans_b, int m, int n, int k,
                               float alpha, const float *a, const uint16_t *a16, int lda,
                               const float *b, const uint16_t *b16, int ldb, float beta, float *c,
                               int ldc)
{
    const operand_shape sa = shape_a(trans_a, m, k), sb = shape_a(!trans_b, n, k);
    const size_t na = (size_t)sa.rows * sa.cols, nb = (size_t)sb.rows * sb.cols;
    a16 = rounded(a16, &g->rounded_a, a, sa, lda);
    b16 = rounded(b16, &g->rounded_b, b, sb, ldb);
    float *a32 = attn_kept_buffer_reserve(&g->widened_a, na * sizeof *a32);
    float *b32 = attn_kept_buffer_reserve(&g->widened_b, nb * sizeof *b32);
    if (a16 == NULL || b16 == NULL || a32 == NULL || b32 == NULL) return false;
    attn_float_from_bf16(a32, a16, na);
    attn_float_from_bf16(b32, b16, nb);
    attn_sgemm(trans_a, trans_b, m, n, k, alpha, a32, sa.cols, b32, sb.cols, beta, c, ldc);
    return true;
}

#if defined(ATTN_GEMM_DNNL)

static bool same_shape(const matmul_plan *p, const matmul_plan *q)
{
    return p->type == q->type && p->trans_a == q->trans_a && p->trans_b == q->trans_b &&
           p->bias == q->bias && p->residual == q->residual && p->m == q->m && p->n == q->n &&
           p->k == q->k && p->lda == q->lda && p->ldb == q->ldb && p->ldc == q->ldc &&
           p->alpha == q->alpha && p->beta == q->beta;
}

/* The strides of a (rows, cols) matrix as the caller lays it out: row-major, or
 * (transposed) as cols rows of rows, at row stride ld. */
static dnnl_status_t matrix_md(dnnl_memory_desc_t *md, int rows, int cols, bool transposed,
                               dnnl_dim_t ld, dnnl_data_type_t type)
{
    const dnnl_dims_t dims = {rows, cols};
    const dnnl_dims_t strides = {transposed ? 1 : ld, transposed ? ld : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides);
}

/* Creates p's primitive (see matmul_plan). */
static bool plan_create(matmul_plan *p)
{
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t post_ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    bool ok = matrix_md(&p->a_md, p->m, p->k, p->trans_a, p->lda, p->type) == dnnl_success &&
              matrix_md(&p->b_md, p->k, p->n, p->trans_b, p->ldb, p->type) == dnnl_success &&
              matrix_md(&p->c_md, p->m, p->n, false, p->ldc, dnnl_f32) == dnnl_success &&
              (!p->bias ||
               matrix_md(&p->bias_md, 1, p->n, false, p->n, dnnl_f32) == dnnl_success) &&
              dnnl_matmul_desc_init(&desc, &p->a_md, &p->b_md, p->bias ? &p->bias_md : NULL,
                                    &p->c_md) == dnnl_success &&
              dnnl_primitive_attr_create(&attr) == dnnl_success;
    if (ok && p->alpha != 1.0f)
        ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &p->alpha) == dnnl_success;
    if (ok && (p->beta != 0.0f || p->residual)) {
        ok = dnnl_post_ops_create(&post_ops) == dnnl_success &&
             (p->beta == 0.0f || dnnl_post_ops_append_sum(post_ops, p->beta) == dnnl_success) &&
             (!p->residual ||
              dnnl_post_ops_append_binary(post_ops, dnnl_binary_add, &p->c_md) == dnnl_success) &&
             dnnl_primitive_attr_set_post_ops(attr, post_ops) == dnnl_success;
    }
    ok = ok && dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL) == dnnl_success;
    const char *impl = NULL;
    if (ok) ok = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success;
    p->reference = ok && (impl == NULL || strncmp(impl, "ref", 3) == 0);
    if (ok && !p->reference) {
        ok = dnnl_primitive_create(&p->primitive, pd) == dnnl_success;
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (post_ops) dnnl_post_ops_destroy(post_ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return ok;
}

/* g's cached plan of this shape, or a new one: in the cache while there is
 * room, else in *spare (whose primitive the caller destroys). NULL if oneDNN
 * refused. */
static matmul_plan *plan_find(gemm_state *g, const matmul_plan *key, matmul_plan *spare)
{
    for (int i = 0; i < g->plan_count; i++)
        if (same_shape(&g->plans[i], key)) return &g->plans[i];
    if (g->stream == NULL) return NULL;
    matmul_plan *p = g->plan_count < MAX_PLANS ? &g->plans[g->plan_count] : spare;
    *p = *key;
    p->primitive = NULL;
    if (!plan_create(p)) return NULL;
    if (p != spare) g->plan_count++;
    return p;
}

/* Appends to args a memory object over data for the argument `which`. */
static bool add_arg(dnnl_exec_arg_t *args, int *count, int which, const dnnl_memory_desc_t *md,
                    const void *data)
{
    dnnl_memory_t memory = NULL;
    if (dnnl_memory_create(&memory, md, engine, (void *)data) != dnnl_success) return false;
    args[(*count)++] = (dnnl_exec_arg_t){which, memory};
    return true;
}

/* Runs the plan of `key` on a, b (float or bf16 as key->type), bias and residual
 * (as the key asks) into c; false when oneDNN cannot run it (the caller then
 * takes the portable path). */
static bool matmul_run(gemm_state *g, const matmul_plan *key, const void *a, const void *b,
                       const float *bias, const float *residual, float *c)
{
    matmul_plan spare;
    matmul_plan *p = plan_find(g, key, &spare);
    if (p == NULL || p->reference) return false;
    dnnl_exec_arg_t args[5];
    int count = 0;
    bool ok = add_arg(args, &count, DNNL_ARG_SRC, &p->a_md, a) &&
              add_arg(args, &count, DNNL_ARG_WEIGHTS, &p->b_md, b) &&
              add_arg(args, &count, DNNL_ARG_DST, &p->c_md, c) &&
              (!p->bias || add_arg(args, &count, DNNL_ARG_BIAS, &p->bias_md, bias)) &&
              (!p->residual || add_arg(args, &count, DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) |
                                                         DNNL_ARG_SRC_1,
                                       &p->c_md, residual));
    ok = ok && dnnl_primitive_execute(p->primitive, g->stream, count, args) == dnnl_success &&
         dnnl_stream_wait(g->stream) == dnnl_success;
    for (int i = 0; i < count; i++) dnnl_memory_destroy(args[i].memory);
    if (p == &spare) dnnl_primitive_destroy(spare.primitive);
    return ok;
}

/* The bf16 product on oneDNN's matmul; false when it cannot run it. */
static bool gemm_dnnl(gemm_state *g, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                      const float *a, const uint16_t *a16, int lda, const float *b,
                      const uint16_t *b16, int ldb, float beta, float *c, int ldc)
{
    const operand_shape sa = shape_a(trans_a, m, k), sb = shape_a(!trans_b, n, k);
    const matmul_plan key = {.type = dnnl_bf16, .trans_a = trans_a, .trans_b = trans_b,
                             .m = m, .n = n, .k = k, .lda = sa.cols, .ldb = sb.cols,
                             .ldc = ldc, .alpha = alpha, .beta = beta};
    a16 = rounded(a16, &g->rounded_a, a, sa, lda);
    b16 = rounded(b16, &g->rounded_b, b, sb, ldb);
    return a16 != NULL && b16 != NULL && matmul_run(g, &key, a16, b16, NULL, NULL, c);
}

/* attn_affine_product on oneDNN's matmul; false when it cannot run it. */
static bool affine_dnnl(attn_precision precision, float *y, const float *residual,
                        const float *x, const uint16_t *x16, const float *w,
                        const uint16_t *w16, const float *bias, int N, int in, int out)
{
    const bool bf16 = precision == ATTN_BF16;
    const matmul_plan key = {.type = bf16 ? dnnl_bf16 : dnnl_f32, .trans_b = true,
                             .bias = bias != NULL, .residual = residual && residual != y,
                             .m = N, .n = out, .k = in, .lda = in, .ldb = in, .ldc = out,
                             .alpha = 1.0f, .beta = residual == y ? 1.0f : 0.0f};
    gemm_state *g = this_thread();
    if (g == NULL) return false;
    const void *a = x, *b = w;
    if (bf16) {
        a = rounded(x16, &g->rounded_a, x, (operand_shape){N, in}, in);
        b = rounded(w16, &g->rounded_b, w, (operand_shape){out, in}, in);
    }
    return a != NULL && b != NULL && matmul_run(g, &key, a, b, bias, residual, y);
}
#endif

/* Element (r, c) of an operand stored as `s` rows: its rounded copy x16 (compact)
 * widened, or else x at row stride ld. */
static float stored_value(const float *x, const uint16_t *x16, operand_shape s, int ld, int r,
                          int c)
{
    float v;
    if (x16)
        attn_float_from_bf16(&v, x16 + (size_t)r * s.cols + c, 1);
    else
        v = x[(size_t)r * ld + c];
    return v;
}

/* The product by plain loops on operands some of which the caller gave only
 * rounded: the last resort when out of memory for widening them. */
static void gemm_loop_given(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                            const float *a, const uint16_t *a16, int lda, const float *b,
                            const uint16_t *b16, int ldb, float beta, float *c, int ldc)
{
    const operand_shape sa = shape_a(trans_a, m, k), sb = shape_a(!trans_b, n, k);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float sum = 0.0f;
            for (int p = 0; p < k; p++)
                sum += (trans_a ? stored_value(a, a16, sa, lda, p, i)
                                : stored_value(a, a16, sa, lda, i, p)) *
                       (trans_b ? stored_value(b, b16, sb, ldb, j, p)
                                : stored_value(b, b16, sb, ldb, p, j));
            float *cij = c + (size_t)i * ldc + j;
            *cij = alpha * sum + (beta == 0.0f ? 0.0f : beta * *cij);
        }
}

static void gemm_bf16(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                      const float *a, const uint16_t *a16, int lda, const float *b,
                      const uint16_t *b16, int ldb, float beta, float *c, int ldc)
{
    gemm_state *g = this_thread();
    bool done = false;
#if defined(ATTN_GEMM_DNNL)
    done = g && gemm_dnnl(g, trans_a, trans_b, m, n, k, alpha, a, a16, lda, b, b16, ldb, beta, c,
                          ldc);
#endif
    if (!done && g)
        done = gemm_rounded_sgemm(g, trans_a, trans_b, m, n, k, alpha, a, a16, lda, b, b16, ldb,
                                  beta, c, ldc);
    /* Out of memory for the rounded copies: the float32 product, the one left
     * (within the bound against the unrounded operands), or where the caller gave
     * an operand only rounded, a loop over its values. */
    if (!done && a && b) attn_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else if (!done)
        gemm_loop_given(trans_a, trans_b, m, n, k, alpha, a, a16, lda, b, b16, ldb, beta, c, ldc);
}

void attn_gemm_rounded(attn_precision precision, bool trans_a, bool trans_b, int m, int n, int k,
                       float alpha, const float *a, const uint16_t *a16, int lda, const float *b,
                       const uint16_t *b16, int ldb, float beta, float *c, int ldc)
{
    if (precision == ATTN_BF16 && m > 0 && n > 0 && k > 0)
        gemm_bf16(trans_a, trans_b, m, n, k, alpha, a, a16, lda, b, b16, ldb, beta, c, ldc);
    else
        attn_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void attn_gemm(attn_precision precision, bool trans_a, bool trans_b, int m, int n, int k,
               float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c,
               int ldc)
{
    attn_gemm_rounded(precision, trans_a, trans_b, m, n, k, alpha, a, NULL, lda, b, NULL, ldb,
                      beta, c, ldc);
}

/* At most this many rows (decoding one token or a few) keep attn_sgemm's
 * few-rows path, whose bits do not depend on the thread count. */
enum { AFFINE_FEW_ROWS = 4 };

void attn_affine_product(attn_precision precision, float *y, const float *residual,
                         const float *x, const uint16_t *x16, const float *w,
                         const uint16_t *w16, const float *bias, int N, int in, int out)
{
#if defined(ATTN_GEMM_DNNL)
    if (N > AFFINE_FEW_ROWS &&
        affine_dnnl(precision, y, residual, x, x16, w, w16, bias, N, in, out))
        return;
#endif
    for (int n = 0; n < N; n++) {
        float *row = y + (size_t)n * out;
        const float *r = residual ? residual + (size_t)n * out : NULL;
        for (int o = 0; o < out; o++) row[o] = (r ? r[o] : 0.0f) + (bias ? bias[o] : 0.0f);
    }
    attn_gemm_rounded(precision, false, true, N, out, in, 1.0f, x, x16, in, w, w16, in, 1.0f, y,
                      out);
}

#if defined(ATTN_GEMM_DNNL)
/* What oneDNN runs the bf16 products with, as a small product's primitive (kept)
 * says; empty when it offers only its reference loops or failed. */
static char implementation[96];
static once_flag implementation_once = ONCE_FLAG_INIT;

static void name_implementation(void)
{
    const matmul_plan probe = {.type = dnnl_bf16, .m = 64, .n = 64, .k = 64, .lda = 64,
                               .ldb = 64, .ldc = 64, .alpha = 1.0f};
    gemm_state *g = this_thread();
    matmul_plan spare;
    const matmul_plan *p = g ? plan_find(g, &probe, &spare) : NULL;
    const_dnnl_primitive_desc_t pd = NULL;
    const char *impl = NULL;
    if (p && !p->reference &&
        dnnl_primitive_get_primitive_desc(p->primitive, &pd) == dnnl_success &&
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success)
        snprintf(implementation, sizeof implementation, "oneDNN %d.%d.%d matmul (%s)",
                 DNNL_VERSION_MAJOR, DNNL_VERSION_MINOR, DNNL_VERSION_PATCH, impl);
    if (p == &spare) dnnl_primitive_destroy(spare.primitive);
}
#endif

const char *attn_gemm_bf16_backend(void)
{
#if defined(ATTN_GEMM_DNNL)
    call_once(&implementation_once, name_implementation);
    if (implementation[0] != '\0') return implementation;
#endif
    return "bf16-rounded operands through the float32 GEMM";
}
