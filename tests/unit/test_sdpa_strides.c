/* Attention on tensors at row strides (attn_sdpa_config's row_stride): every
 * implementation (the reference, the float32 and the bf16 fused kernels of each
 * instruction set) gives, on q, k, v and dout laid out as (B, L, H, D) rows at a
 * stride, the very bits it gives on the same values as (B, H, L, D), writes out,
 * dq, dk and dv at their strides, and touches nothing between the rows (the gaps
 * hold NaN: a read would spread it, a write would replace it). Fresh random
 * cases every run; the seed is printed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/flash.h"
#include "kernels/isa.h"
#include "testutil.h"

static const attn_isa *const all_variants[] = {&attn_isa_avx512bf16, &attn_isa_avx512,
                                              &attn_isa_avx2, &attn_isa_scalar};
enum { VARIANTS = sizeof all_variants / sizeof all_variants[0] };

static const uint16_t BF16_NAN = 0x7fc0;

/* One tensor of the case: (B, H, L, width) contiguous, and the same values at the
 * case's row stride in a buffer of `strided` elements whose gaps are NaN. */
typedef struct tensor {
    int64_t length, stride;
    int width;
    size_t contiguous, strided;
} tensor;

typedef struct stride_case {
    char label[160];
    int B, H;
    attn_sdpa_config cfg;
    float slopes[3];
    tensor q, k, v, out; /* dq, dk, dv and dout lie as q, k, v and out */
} stride_case;

static tensor make_tensor(const stride_case *c, int64_t length, int width, int64_t stride)
{
    const int64_t heads_width = (int64_t)c->H * width;
    const size_t contiguous = (size_t)(c->B * heads_width * length);
    const size_t strided = (size_t)((c->B * length - 1) * stride + heads_width);
    return (tensor){length, stride, width, contiguous, stride == 0 ? contiguous : strided};
}

/* Where element (bh, i, d) of t lies in its strided buffer. */
static size_t strided_at(const stride_case *c, const tensor *t, int64_t bh, int64_t i, int d)
{
    const attn_rows rows = attn_rows_of(t->stride, c->H, t->length, t->width);
    return (size_t)(attn_rows_at(&rows, bh, i) + d);
}

/* The contiguous values x of t (elements of `size` bytes) at its strides, the
 * bytes of `nan` between the rows. */
static void *spread_elements(const stride_case *c, const tensor *t, const void *x, size_t size,
                             const void *nan)
{
    char *y = malloc(t->strided * size);
    assert_non_null(y);
    for (size_t e = 0; e < t->strided; e++) memcpy(y + e * size, nan, size);
    for (int64_t bh = 0; bh < (int64_t)c->B * c->H; bh++)
        for (int64_t i = 0; i < t->length; i++)
            memcpy(y + strided_at(c, t, bh, i, 0) * size,
                   (const char *)x + (size_t)(bh * t->length + i) * t->width * size,
                   (size_t)t->width * size);
    return y;
}

static float *spread(const stride_case *c, const tensor *t, const float *x)
{
    const float nan = NAN;
    return spread_elements(c, t, x, sizeof *x, &nan);
}

static uint16_t *spread_bf16(const stride_case *c, const tensor *t, const uint16_t *x)
{
    return spread_elements(c, t, x, sizeof *x, &BF16_NAN);
}

/* y, written at t's strides, holds the bits of the contiguous `want`, and NaN in
 * every gap still. */
static void check_strided(const stride_case *c, const tensor *t, const float *y,
                          const float *want, const char *name, const char *what)
{
    bool *in_row = calloc(t->strided, sizeof *in_row);
    assert_non_null(in_row);
    for (int64_t bh = 0; bh < (int64_t)c->B * c->H; bh++)
        for (int64_t i = 0; i < t->length; i++)
            for (int d = 0; d < t->width; d++) {
                const size_t at = strided_at(c, t, bh, i, d);
                in_row[at] = true;
                const float w = want[(bh * t->length + i) * t->width + d];
                if (memcmp(&y[at], &w, sizeof w) != 0) {
                    print_error("%s [%s]: %s(%lld, %lld, %d) is %.9g at its stride, %.9g "
                                "contiguous\n",
                                c->label, what, name, (long long)bh, (long long)i, d,
                                (double)y[at], (double)w);
                    fail();
                }
            }
    for (size_t e = 0; e < t->strided; e++)
        if (!in_row[e] && !isnan(y[e])) {
            print_error("%s [%s]: %s's gap at %zu was written\n", c->label, what, name, e);
            fail();
        }
    free(in_row);
}

/* Case n: B, H, lengths and widths drawn (odd widths among them: the bf16 kernel's
 * copies), a mask kind by n, and each stride 0 or the heads' width plus 0 to 5;
 * at n % 4 == 0 q, k and v are column slices of one projection's rows. */
static void make_case(stride_case *c, uint64_t n)
{
    memset(c, 0, sizeof *c);
    attn_rng rng = test_rng(n);
    static const int widths[] = {7, 8, 16, 33, 64};
    c->B = 1 + (int)attn_rng_below(&rng, 2);
    c->H = 1 + (int)attn_rng_below(&rng, 3);
    const int D = widths[attn_rng_below(&rng, 5)];
    const int Dv = attn_rng_below(&rng, 2) ? D : widths[attn_rng_below(&rng, 5)];
    const int Lq = 1 + (int)attn_rng_below(&rng, 150);
    const int Lk = attn_rng_below(&rng, 2) ? Lq : 1 + (int)attn_rng_below(&rng, 150);
    c->cfg = (attn_sdpa_config){.batch = c->B, .heads = c->H, .len_q = Lq, .len_k = Lk,
                                .dim_qk = D, .dim_v = Dv};
    switch (n % 4) {
    case 1: c->cfg.causal = true; break;
    case 2:
        c->cfg.causal = true;
        c->cfg.window = 1 + (int)attn_rng_below(&rng, 80);
        for (int h = 0; h < c->H; h++) c->slopes[h] = exp2f(-(float)(h + 1));
        c->cfg.alibi_slopes = c->slopes;
        c->cfg.q_offset = Lk > Lq ? Lk - Lq : 0;
        break;
    case 3:
        c->cfg.dropout_p = 0.25f;
        c->cfg.dropout_seed = attn_rng_u32(&rng);
        break;
    default: break;
    }
    int64_t stride[4];
    const int widths_of[4] = {D, D, Dv, Dv};
    for (int t = 0; t < 4; t++)
        stride[t] = attn_rng_below(&rng, 3) == 0
                        ? 0
                        : (int64_t)c->H * widths_of[t] + attn_rng_below(&rng, 6);
    const bool packed = n % 4 == 0 && Lq == Lk;
    if (packed) /* one (B, L, 2 H D + H Dv) projection, q first, then k, then v */
        stride[0] = stride[1] = stride[2] = (int64_t)c->H * (2 * D + Dv);
    c->cfg.row_stride = (attn_sdpa_strides){stride[0], stride[1], stride[2], stride[3]};
    c->q = make_tensor(c, Lq, D, stride[0]);
    c->k = make_tensor(c, Lk, D, stride[1]);
    c->v = make_tensor(c, Lk, Dv, stride[2]);
    c->out = make_tensor(c, Lq, Dv, stride[3]);
    snprintf(c->label, sizeof c->label,
             "case %llu: B=%d H=%d Lq=%d Lk=%d D=%d Dv=%d strides q %lld k %lld v %lld out %lld%s",
             (unsigned long long)n, c->B, c->H, Lq, Lk, D, Dv, (long long)stride[0],
             (long long)stride[1], (long long)stride[2], (long long)stride[3],
             packed ? " (one projection)" : "");
}

/* A forward and a backward, given by the implementation under test. */
typedef struct implementation {
    const char *name;
    bool bf16;
    const attn_isa *isa; /* the fused kernels of this instruction set, or NULL: reference */
} implementation;

static void forward(const implementation *im, float *out, float *lse, const void *q,
                    const void *k, const void *v, const attn_sdpa_config *cfg)
{
    attn_status s;
    if (im->isa == NULL)
        s = attn_sdpa_reference_forward(out, lse, NULL, q, k, v, cfg);
    else if (im->bf16)
        s = im->isa->flash->forward_bf16(out, lse, q, k, v, NULL, cfg);
    else
        s = im->isa->flash->forward(out, lse, q, k, v, cfg);
    assert_int_equal(s, ATTN_OK);
}

static void backward(const implementation *im, float *dq, float *dk, float *dv, const void *dout,
                     const void *q, const void *k, const void *v, const float *lse,
                     const attn_sdpa_config *cfg)
{
    attn_status s;
    if (im->isa == NULL)
        s = attn_sdpa_reference_backward(dq, dk, dv, dout, q, k, v, lse, cfg);
    else if (im->bf16)
        s = im->isa->flash->backward_bf16(dq, dk, dv, dout, q, k, v, lse, cfg);
    else
        s = im->isa->flash->backward(dq, dk, dv, dout, q, k, v, lse, cfg);
    assert_int_equal(s, ATTN_OK);
}

/* The gradient buffers at t's strides: zero in the rows (the kernels add into
 * them), NaN between them. */
static float *strided_zeros(const stride_case *c, const tensor *t)
{
    float *zeros = test_zeros(t->contiguous), *y = spread(c, t, zeros);
    free(zeros);
    return y;
}

/* One implementation on case c: contiguous, then at the strides (for the bf16
 * kernels on the values rounded to bf16; q, k and v in one buffer when packed). */
static void check_implementation(const implementation *im, const stride_case *c, const float *q,
                                 const float *k, const float *v, const float *dout)
{
    const bool packed = c->cfg.row_stride.q > 0 && c->cfg.row_stride.q == c->cfg.row_stride.k &&
                        c->cfg.row_stride.k == c->cfg.row_stride.v &&
                        c->cfg.row_stride.q == (int64_t)c->H * (2 * c->cfg.dim_qk + c->cfg.dim_v);
    attn_sdpa_config flat = c->cfg;
    flat.row_stride = (attn_sdpa_strides){0};
    const size_t lse_n = (size_t)c->B * c->H * c->cfg.len_q;
    float *out = test_zeros(c->out.contiguous), *lse = test_zeros(lse_n);
    float *dq = test_zeros(c->q.contiguous), *dk = test_zeros(c->k.contiguous);
    float *dv = test_zeros(c->v.contiguous);

    /* The strided inputs: float32, or bf16 (both sides then read the same bits). */
    const float *inputs[4] = {q, k, v, dout};
    const tensor *shapes[4] = {&c->q, &c->k, &c->v, &c->out};
    void *flat_in[4], *strided_in[4];
    for (int t = 0; t < 4; t++) {
        if (im->bf16) {
            uint16_t *h = malloc(shapes[t]->contiguous * sizeof *h);
            assert_non_null(h);
            attn_bf16_from_float(h, inputs[t], shapes[t]->contiguous);
            flat_in[t] = h;
            strided_in[t] = spread_bf16(c, shapes[t], h);
        } else {
            flat_in[t] = (void *)inputs[t];
            strided_in[t] = spread(c, shapes[t], inputs[t]);
        }
    }
    /* Packed: q, k and v as the column slices of one buffer, each one's gaps the
     * other two's columns. */
    void *projection = NULL;
    const void *sq = strided_in[0], *sk = strided_in[1], *sv = strided_in[2];
    if (packed) {
        const size_t elem = im->bf16 ? sizeof(uint16_t) : sizeof(float);
        const size_t stride = (size_t)c->cfg.row_stride.q, rows = (size_t)c->B * c->cfg.len_q;
        const size_t widths[3] = {(size_t)c->H * c->cfg.dim_qk, (size_t)c->H * c->cfg.dim_qk,
                                  (size_t)c->H * c->cfg.dim_v};
        projection = malloc(rows * stride * elem);
        assert_non_null(projection);
        for (size_t r = 0; r < rows; r++) {
            char *row = (char *)projection + r * stride * elem;
            for (size_t t = 0, column = 0; t < 3; column += widths[t], t++)
                memcpy(row + column * elem, (char *)strided_in[t] + r * stride * elem,
                       widths[t] * elem);
        }
        sq = projection;
        sk = (const char *)projection + widths[0] * elem;
        sv = (const char *)projection + (widths[0] + widths[1]) * elem;
    }

    forward(im, out, lse, flat_in[0], flat_in[1], flat_in[2], &flat);
    backward(im, dq, dk, dv, flat_in[3], flat_in[0], flat_in[1], flat_in[2], lse, &flat);

    float *s_out = malloc(c->out.strided * sizeof *s_out), *s_lse = test_zeros(lse_n);
    assert_non_null(s_out);
    for (size_t e = 0; e < c->out.strided; e++) s_out[e] = NAN; /* the rows too: overwritten */
    float *s_dq = strided_zeros(c, &c->q), *s_dk = strided_zeros(c, &c->k);
    float *s_dv = strided_zeros(c, &c->v);
    forward(im, s_out, s_lse, sq, sk, sv, &c->cfg);
    check_strided(c, &c->out, s_out, out, "out", im->name);
    if (memcmp(s_lse, lse, lse_n * sizeof *lse) != 0) {
        print_error("%s [%s]: lse differs at strides\n", c->label, im->name);
        fail();
    }
    backward(im, s_dq, s_dk, s_dv, strided_in[3], sq, sk, sv, s_lse, &c->cfg);
    check_strided(c, &c->q, s_dq, dq, "dq", im->name);
    check_strided(c, &c->k, s_dk, dk, "dk", im->name);
    check_strided(c, &c->v, s_dv, dv, "dv", im->name);

    void *arrays[] = {out, lse, dq, dk, dv, s_out, s_lse, s_dq, s_dk, s_dv, projection};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
    for (int t = 0; t < 4; t++) {
        if (im->bf16) free(flat_in[t]);
        free(strided_in[t]);
    }
}

static void test_strided_tensors_give_the_same_bits(void **state)
{
    (void)state;
    for (uint64_t n = 0; n < 24; n++) {
        stride_case c;
        make_case(&c, n);
        attn_rng rng = test_rng(1000 + n);
        float *q = test_random(&rng, c.q.contiguous, -2.0f, 2.0f);
        float *k = test_random(&rng, c.k.contiguous, -2.0f, 2.0f);
        float *v = test_random(&rng, c.v.contiguous, -1.0f, 1.0f);
        float *dout = test_random(&rng, c.out.contiguous, -1.0f, 1.0f);
        const implementation reference = {"reference", false, NULL};
        check_implementation(&reference, &c, q, k, v, dout);
        for (int i = 0; i < VARIANTS; i++) {
            if (!all_variants[i]->supported()) continue;
            char name[2][64];
            snprintf(name[0], sizeof name[0], "%s float32", all_variants[i]->name);
            snprintf(name[1], sizeof name[1], "%s bf16", all_variants[i]->name);
            for (int bf16 = 0; bf16 < 2; bf16++) {
                const implementation im = {name[bf16], bf16, all_variants[i]};
                check_implementation(&im, &c, q, k, v, dout);
            }
        }
        free(q);
        free(k);
        free(v);
        free(dout);
    }
}

/* The weights' gradient reads dout, q, k and v at their strides too. */
static void test_strided_weights_gradient(void **state)
{
    (void)state;
    for (uint64_t n = 100; n < 106; n++) {
        stride_case c;
        make_case(&c, n);
        c.cfg.dropout_p = 0.0f;
        attn_rng rng = test_rng(2000 + n);
        float *q = test_random(&rng, c.q.contiguous, -2.0f, 2.0f);
        float *k = test_random(&rng, c.k.contiguous, -2.0f, 2.0f);
        float *v = test_random(&rng, c.v.contiguous, -1.0f, 1.0f);
        float *dout = test_random(&rng, c.out.contiguous, -1.0f, 1.0f);
        float *sq = spread(&c, &c.q, q), *sk = spread(&c, &c.k, k), *sv = spread(&c, &c.v, v);
        float *sdout = spread(&c, &c.out, dout);
        const size_t n_w = (size_t)c.B * c.H * c.cfg.len_q * c.cfg.len_k;
        float *want = test_zeros(n_w), *got = test_zeros(n_w);
        attn_sdpa_config flat = c.cfg;
        flat.row_stride = (attn_sdpa_strides){0};
        assert_int_equal(attn_sdpa_weights_backward(want, dout, q, k, v, &flat), ATTN_OK);
        assert_int_equal(attn_sdpa_weights_backward(got, sdout, sq, sk, sv, &c.cfg), ATTN_OK);
        if (memcmp(want, got, n_w * sizeof *got) != 0) {
            print_error("%s: the weights' gradient differs at strides\n", c.label);
            fail();
        }
        void *arrays[] = {q, k, v, dout, sq, sk, sv, sdout, want, got};
        for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
    }
}

/* A stride narrower than the heads' row is refused, naming the tensor. */
static void test_narrow_stride_is_reported(void **state)
{
    (void)state;
    attn_sdpa_config cfg = {.batch = 1, .heads = 2, .len_q = 2, .len_k = 2, .dim_qk = 4,
                            .dim_v = 3};
    float x[64] = {0}, out[64], lse[4];
    cfg.row_stride.k = 7;
    test_expect_invalid(attn_sdpa_forward(out, lse, NULL, x, x, x, &cfg), "row_stride.k");
    cfg.row_stride.k = 8;
    cfg.row_stride.out = 5;
    test_expect_invalid(attn_sdpa_forward(out, lse, NULL, x, x, x, &cfg), "row_stride.out");
    cfg.row_stride.out = -6;
    test_expect_invalid(attn_sdpa_reference_forward(out, lse, NULL, x, x, x, &cfg),
                        "row_stride.out");
}

int main(void)
{
    test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strided_tensors_give_the_same_bits),
        cmocka_unit_test(test_strided_weights_gradient),
        cmocka_unit_test(test_narrow_stride_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
