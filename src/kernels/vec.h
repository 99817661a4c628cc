/* Internal: the library's elementwise loops that are worth vectorising, as one
 * table per instruction set (see isa.h for how one is chosen). They are written
 * once, in plain C over lane_math.h (vec_*_impl.h), and compiled in each
 * variant's translation unit with its -m flags, where the compiler vectorises
 * them. Floating-point contraction is off, so every variant gives the same bits.
 *
 * The callers check the arguments and split the work across threads; each entry
 * computes one contiguous run, and each element alone, so neither the split nor
 * the variant changes a result. */
#ifndef ATTN_SRC_KERNELS_VEC_H
#define ATTN_SRC_KERNELS_VEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/nn.h"
#include "attn/rnn.h"

/* The scalars of one AdamW step, as torch.optim.AdamW forms them (adamw.c). */
typedef struct attn_adamw_scalars {
    float decay_factor, b1, b2, one_minus_b1, one_minus_b2, neg_step_size,
        bias_correction2_sqrt, eps;
} attn_adamw_scalars;

typedef struct attn_vec_kernels {
    /* y: (n) = f(x); y may be x. dx: (n) += f'(x) dy. (nonlinearity.c) */
    void (*activation_forward)(attn_activation f, float *y, const float *x, size_t n);
    void (*activation_backward)(attn_activation f, float *dx, const float *dy, const float *x,
                                size_t n);
    /* GELU (erf form) y: (n), or (y16 not NULL) only y rounded to bf16 in y16,
     * and its slope (n), which may be x; and the backward from that slope,
     * dx: (n) = dy slope (overwritten). (nonlinearity.c) */
    void (*gelu_forward_slope)(float *y, uint16_t *y16, float *slope, const float *x, size_t n);
    void (*gelu_backward_slope)(float *dx, const float *dy, const float *slope, size_t n);
    /* LayerNorm (nn/layernorm.c): one row's forward, y: (D), mean, rstd; one
     * row's refined mean (returned) and dx: (D) += (dx may be NULL); and
     * dweight, dbias: (D) += over N rows (either NULL). */
    void (*layernorm_row_forward)(float *y, float *mean, float *rstd, const float *x,
                                  const float *weight, const float *bias, int D, float eps);
    double (*layernorm_row_backward)(float *dx, const float *dy, const float *x,
                                     const float *weight, int D, float mean, float rstd);
    void (*layernorm_columns_backward)(float *dweight, float *dbias, const float *dy,
                                       const float *x, const double *mu, const float *rstd, int N,
                                       int D);
    /* The recurrent cell's pass over the B rows of one step after the GEMM, and
     * its backward before the GEMMs, with the layouts of rnn_cell.c; GH and S are
     * the row lengths of gx and saved. Rows are split across threads here. */
    void (*rnn_rows_forward)(attn_rnn_mode mode, float *h_out, float *c_out, float *saved,
                             const float *gx, const float *h, const float *c, int B, int H,
                             size_t GH, size_t S);
    void (*rnn_rows_backward)(attn_rnn_mode mode, float *dgx, float *dgh, float *dh, float *dc,
                              const float *dh_out, const float *dc_out, const float *saved,
                              const float *h, const float *c, int B, int H, size_t GH, size_t S);
    /* One AdamW step on n parameters; decay (n) may be NULL (decay all). */
    void (*adamw_update)(float *params, float *m, float *v, const float *grads,
                         const uint8_t *decay, size_t n, const attn_adamw_scalars *c);
    /* Additive attention's tanh terms for one query: u: (S, A) = tanh(q + keys[j])
     * for each of the S key rows (A units each) and scores: (S) = u[j] . v;
     * backward: with g = ds[j] v_a (1 - u[j,a]^2), dq: (A) += sum over j of g,
     * dkeys: (S, A) += g; and dv: (A) += sum over the rows of ds u, in order. */
    void (*additive_forward)(float *u, float *scores, const float *q, const float *keys,
                             const float *v, int S, int A);
    void (*additive_backward)(float *dq, float *dkeys, const float *ds, const float *u,
                              const float *v, int S, int A);
    void (*additive_v_gradient)(float *dv, const float *ds, const float *u, size_t rows, int A);
    /* y: (n) with y[j] = x . w[j] for x: (k) and w: n rows of k at stride ldw,
     * each sum in a fixed order of its own (gemm.c's products of few rows). */
    void (*dot_rows)(float *y, const float *x, const float *w, size_t ldw, int n, int k);
    /* The same on bfloat16 x and w (core/bf16.h): products and sums in
     * float32, the pairs (2t, 2t + 1) multiplied as vdpbf16ps multiplies them
     * (simd.h's vp_dot: vdpbf16ps in the avx512bf16 variant, the same arithmetic
     * on widened values in the others, subnormals flushed alike), 32 pairs per
     * sum: the same bits in every variant. (gemv_bf16.c) */
    void (*dot_rows_bf16)(float *y, const uint16_t *x, const uint16_t *w, size_t ldw, int n,
                          int k);
    /* Inverted dropout of the elements first .. first + n - 1 of a tensor:
     * out: (n) = in * scale where attn_uniform_at(seed, index) >= p, else 0
     * (accumulate: added to out instead). (nn/dropout.c) */
    void (*dropout_run)(float *out, const float *in, size_t n, uint64_t seed, uint64_t first,
                        float p, float scale, bool accumulate);
    /* CRC-32C of n bytes continuing from crc (0 to start): the checksum of the
     * files attn writes (io/checksum.c). */
    uint32_t (*crc32c)(uint32_t crc, const void *bytes, size_t n);
    /* dst: rows of cols at stride ld_dst = src: rows of cols at stride ld_src
     * rounded to bfloat16 as attn_bf16_from_float (subnormals kept): the
     * operands of the bf16 GEMM and attention (gemm_bf16.c). */
    void (*bf16_round_tile)(uint16_t *dst, size_t ld_dst, const float *src, size_t ld_src,
                            size_t rows, size_t cols);
    /* v = src, times scale (elementwise) when scale is not NULL (one float32
     * multiply); dst: (n) = v rounded as bf16_round_tile (dst may be NULL), sums: (n)
     * += v (sums may be NULL): one row's piece of a Linear's output gradient
     * (attn_bf16_round_rows_sum_columns, gemm_bf16.c). */
    void (*bf16_round_scaled_sum)(uint16_t *dst, float *sums, const float *src,
                                  const float *scale, size_t n);
    /* p: (n) = e^(x - shift) (lane_exp), returned: their sum in double, in a
     * fixed order: a softmax row's exponentials (train/cross_entropy.c). */
    double (*exp_shifted_sum)(float *p, const float *x, size_t n, float shift);
} attn_vec_kernels;

#endif
