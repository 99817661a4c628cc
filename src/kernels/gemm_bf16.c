/* The matrix product at a precision (attn_gemm of attn/kernels.h): float32 is
 * attn_sgemm; bf16 rounds A and B to bfloat16 and multiplies them with float32
 * products and sums.
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
 * One lock serialises the bf16 products (their buffers and the cache): attn
 * calls its GEMMs from one thread at a time, each product using every thread. */
#include <stdlib.h>
#include <threads.h>

#include "attn/kernels.h"
#include "kernels/bf16_rows.h"
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

void attn_bf16_round_rows(uint16_t *dst, const float *src, int rows, int cols, int ld)
{
    const attn_isa *isa = NULL;
    const bool vector = attn_isa_current(&isa) == ATTN_OK;
#pragma omp parallel for schedule(static) \
    if ((size_t)rows * cols >= CONVERT_PARALLEL_MIN) num_threads(attn_get_num_threads())
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * ld;
        uint16_t *d = dst + (size_t)r * cols;
        if (vector)
            isa->vec->bf16_round(d, s, (size_t)cols);
        else /* a bad ATTN_SIMD: the same rounding, one value at a time */
            attn_bf16_from_float(d, s, (size_t)cols);
    }
}

static mtx_t lock;
static once_flag lock_once = ONCE_FLAG_INIT;
static void make_lock(void) { (void)mtx_init(&lock, mtx_plain); }

/* The rounded operands, and (portable path) their values widened to float32. */
static kept_buffer rounded_a, rounded_b, widened_a, widened_b;

/* The operands of an (m, k) x (k, n) product as the caller stores them: A as m
 * rows of k (k rows of m when transposed), B as k rows of n (n rows of k). */
typedef struct operand_shape {
    int rows, cols;
} operand_shape;

static operand_shape shape_a(bool trans, int m, int k)
{
    return trans ? (operand_shape){k, m} : (operand_shape){m, k};
}

/* The bf16 product through attn_sgemm on the rounded values; false when out of
 * memory for them. Called with the lock held. */
static bool gemm_rounded_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                               const float *a, int lda, const float *b, int ldb, float beta,
                               float *c, int ldc)
{
    const operand_shape sa = shape_a(trans_a, m, k), sb = shape_a(!trans_b, n, k);
    const size_t na = (size_t)sa.rows * sa.cols, nb = (size_t)sb.rows * sb.cols;
    uint16_t *a16 = attn_kept_buffer_reserve(&rounded_a, na * sizeof *a16);
    uint16_t *b16 = attn_kept_buffer_reserve(&rounded_b, nb * sizeof *b16);
    float *a32 = attn_kept_buffer_reserve(&widened_a, na * sizeof *a32);
    float *b32 = attn_kept_buffer_reserve(&widened_b, nb * sizeof *b32);
    if (a16 == NULL || b16 == NULL || a32 == NULL || b32 == NULL) return false;
    attn_bf16_round_rows(a16, a, sa.rows, sa.cols, lda);
    attn_bf16_round_rows(b16, b, sb.rows, sb.cols, ldb);
    attn_float_from_bf16(a32, a16, na);
    attn_float_from_bf16(b32, b16, nb);
    attn_sgemm(trans_a, trans_b, m, n, k, alpha, a32, sa.cols, b32, sb.cols, beta, c, ldc);
    return true;
}

#if defined(ATTN_GEMM_DNNL)
/* One shape's primitive. `reference` marks a shape for which oneDNN offered only
 * its reference implementation, which the portable path beats. */
typedef struct matmul_plan {
    bool trans_a, trans_b;
    int m, n, k, ldc;
    float alpha, beta;
    bool reference;
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t a_md, b_md, c_md;
} matmul_plan;

/* Enough for the shapes of a few models' training and validation passes; a
 * shape past the last is created, run and destroyed each call (correct, slow). */
enum { MAX_PLANS = 256 };
static matmul_plan plans[MAX_PLANS];
static int plan_count;
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static bool engine_failed;
static char implementation[96];

static bool same_shape(const matmul_plan *p, const matmul_plan *q)
{
    return p->trans_a == q->trans_a && p->trans_b == q->trans_b && p->m == q->m &&
           p->n == q->n && p->k == q->k && p->ldc == q->ldc && p->alpha == q->alpha &&
           p->beta == q->beta;
}

/* The strides of a (rows, cols) matrix stored compactly as the caller lays it
 * out: row-major, or (transposed) as cols rows of rows. */
static dnnl_status_t matrix_md(dnnl_memory_desc_t *md, int rows, int cols, bool transposed,
                               dnnl_dim_t ld, dnnl_data_type_t type)
{
    const dnnl_dims_t dims = {rows, cols};
    const dnnl_dims_t strides = {transposed ? 1 : ld, transposed ? ld : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides);
}

/* Creates p's primitive: A (m, k) and B (k, n) in bf16, C (m, n) float32 with
 * row stride ldc; alpha as the output scale, beta C as a sum post-op. */
static bool plan_create(matmul_plan *p)
{
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t post_ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    bool ok = matrix_md(&p->a_md, p->m, p->k, p->trans_a, p->trans_a ? p->m : p->k,
                        dnnl_bf16) == dnnl_success &&
              matrix_md(&p->b_md, p->k, p->n, p->trans_b, p->trans_b ? p->k : p->n,
                        dnnl_bf16) == dnnl_success &&
              matrix_md(&p->c_md, p->m, p->n, false, p->ldc, dnnl_f32) == dnnl_success &&
              dnnl_matmul_desc_init(&desc, &p->a_md, &p->b_md, NULL, &p->c_md) == dnnl_success &&
              dnnl_primitive_attr_create(&attr) == dnnl_success;
    if (ok && p->alpha != 1.0f)
        ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &p->alpha) == dnnl_success;
    if (ok && p->beta != 0.0f)
        ok = dnnl_post_ops_create(&post_ops) == dnnl_success &&
             dnnl_post_ops_append_sum(post_ops, p->beta) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, post_ops) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL) == dnnl_success;
    const char *impl = NULL;
    if (ok) ok = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success;
    p->reference = ok && (impl == NULL || strncmp(impl, "ref", 3) == 0);
    if (ok && !p->reference) {
        ok = dnnl_primitive_create(&p->primitive, pd) == dnnl_success;
        if (ok && implementation[0] == '\0')
            snprintf(implementation, sizeof implementation, "oneDNN %d.%d.%d matmul (%s)",
                     DNNL_VERSION_MAJOR, DNNL_VERSION_MINOR, DNNL_VERSION_PATCH, impl);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (post_ops) dnnl_post_ops_destroy(post_ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return ok;
}

/* The cached plan of this shape, or a new one: in the cache while there is room,
 * else in *spare (whose primitive the caller destroys). NULL if oneDNN refused. */
static matmul_plan *plan_find(const matmul_plan *key, matmul_plan *spare)
{
    for (int i = 0; i < plan_count; i++)
        if (same_shape(&plans[i], key)) return &plans[i];
    if (engine == NULL && !engine_failed) {
        engine_failed = dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success ||
                        dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) !=
                            dnnl_success;
    }
    if (engine_failed) return NULL;
    matmul_plan *p = plan_count < MAX_PLANS ? &plans[plan_count] : spare;
    *p = *key;
    p->primitive = NULL;
    if (!plan_create(p)) return NULL;
    if (p != spare) plan_count++;
    return p;
}

/* The bf16 product on oneDNN's matmul; false when it cannot run it (the caller
 * then takes the portable path). Called with the lock held. */
static bool gemm_dnnl(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                      const float *a, int lda, const float *b, int ldb, float beta, float *c,
                      int ldc)
{
    const matmul_plan key = {.trans_a = trans_a, .trans_b = trans_b, .m = m, .n = n, .k = k,
                             .ldc = ldc, .alpha = alpha, .beta = beta};
    matmul_plan spare;
    matmul_plan *p = plan_find(&key, &spare);
    if (p == NULL || p->reference) return false;
    const operand_shape sa = shape_a(trans_a, m, k), sb = shape_a(!trans_b, n, k);
    uint16_t *a16 =
        attn_kept_buffer_reserve(&rounded_a, (size_t)sa.rows * sa.cols * sizeof(uint16_t));
    uint16_t *b16 =
        attn_kept_buffer_reserve(&rounded_b, (size_t)sb.rows * sb.cols * sizeof(uint16_t));
    dnnl_memory_t am = NULL, bm = NULL, cm = NULL;
    bool ok = a16 != NULL && b16 != NULL;
    if (ok) {
        attn_bf16_round_rows(a16, a, sa.rows, sa.cols, lda);
        attn_bf16_round_rows(b16, b, sb.rows, sb.cols, ldb);
        ok = dnnl_memory_create(&am, &p->a_md, engine, a16) == dnnl_success &&
             dnnl_memory_create(&bm, &p->b_md, engine, b16) == dnnl_success &&
             dnnl_memory_create(&cm, &p->c_md, engine, c) == dnnl_success;
    }
    if (ok) {
        const dnnl_exec_arg_t args[] = {
            {DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
        ok = dnnl_primitive_execute(p->primitive, stream, 3, args) == dnnl_success &&
             dnnl_stream_wait(stream) == dnnl_success;
    }
    if (am) dnnl_memory_destroy(am);
    if (bm) dnnl_memory_destroy(bm);
    if (cm) dnnl_memory_destroy(cm);
    if (p == &spare) dnnl_primitive_destroy(spare.primitive);
    return ok;
}
#endif

static void gemm_bf16(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                      const float *a, int lda, const float *b, int ldb, float beta, float *c,
                      int ldc)
{
    call_once(&lock_once, make_lock);
    mtx_lock(&lock);
    bool done = false;
#if defined(ATTN_GEMM_DNNL)
    done = gemm_dnnl(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
    if (!done)
        done = gemm_rounded_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    mtx_unlock(&lock);
    /* Out of memory for the rounded copies: the float32 product, the one left
     * (within the bound against the unrounded operands). */
    if (!done) attn_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void attn_gemm(attn_precision precision, bool trans_a, bool trans_b, int m, int n, int k,
               float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c,
               int ldc)
{
    if (precision == ATTN_BF16 && m > 0 && n > 0 && k > 0)
        gemm_bf16(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        attn_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

const char *attn_gemm_bf16_backend(void)
{
    const char *name = "bf16-rounded operands through the float32 GEMM";
#if defined(ATTN_GEMM_DNNL)
    call_once(&lock_once, make_lock);
    mtx_lock(&lock);
    /* Before any product, a small one's primitive (kept) says what oneDNN offers. */
    const matmul_plan probe = {.m = 64, .n = 64, .k = 64, .ldc = 64, .alpha = 1.0f};
    matmul_plan spare;
    const matmul_plan *p = implementation[0] == '\0' ? plan_find(&probe, &spare) : NULL;
    if (p == &spare) dnnl_primitive_destroy(spare.primitive);
    if (implementation[0] != '\0') name = implementation; /* set once, then constant */
    mtx_unlock(&lock);
#endif
    return name;
}
