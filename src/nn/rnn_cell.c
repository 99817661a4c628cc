/* One time step of the torch.nn.RNN, LSTM and GRU cells, forward and backward.
 *
 * The recurrent product gh = h W_hh^T + b_hh is one GEMM per step (onto the bias
 * copied in first), written straight into the rows of `saved`; a single
 * elementwise pass per row then applies every gate's nonlinearity and overwrites
 * gh with what backward needs. Row layouts of `saved` (H floats per block):
 *   RNN:  h'
 *   LSTM: i, f, g, o (after their nonlinearities), tanh(c')
 *   GRU:  r, z, gh_n (= h W_hn^T + b_hn, which the n gate's backward needs), n
 * In the LSTM and GRU layouts the gate blocks sit where gh's blocks were, so each
 * element is read and replaced in place; GRU's gh_n stays where the GEMM put it.
 *
 * At hidden sizes up to a few hundred, libm's expf and tanhf (some 5 and 18 ns a
 * call) would make the elementwise pass several times dearer than the GEMM, so
 * the gates use simd.h's branch-free exp and the tanh below, which the compiler
 * vectorises. The row functions are compiled for AVX-512, AVX2 and baseline
 * x86-64, picked when the library loads (target_clones); as the build does not
 * contract a * b + c into FMA (ISO C mode), every version gives the same bits.
 * Rows are split across threads and each is computed alone, so results do not
 * depend on the thread count either.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attn/core.h"
#include "attn/kernels.h"
#include "attn/rnn.h"
#include "core/error.h"
/* vf_exp, the scalar form of the attention kernels' exp, which vectorises. */
#define ATTN_SIMD_SCALAR
#include "kernels/simd.h"

enum {
    PARALLEL_MIN_ELEMENTS = 1 << 16 /* gate values per step below which one thread is faster */
};

#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define ROW_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#endif
#ifndef ROW_CLONES
#define ROW_CLONES
#endif

int attn_rnn_gates(attn_rnn_mode mode)
{
    switch (mode) {
    case ATTN_RNN_TANH:
    case ATTN_RNN_RELU:
        return 1;
    case ATTN_LSTM:
        return 4;
    case ATTN_GRU:
        return 3;
    }
    return 0;
}

size_t attn_rnn_cell_saved_size(attn_rnn_mode mode, int H)
{
    const size_t blocks = mode == ATTN_LSTM ? 5 : mode == ATTN_GRU ? 4 : attn_rnn_gates(mode);
    return H > 0 ? blocks * (size_t)H : 0;
}

/* ---- the gate nonlinearities -------------------------------------------------------- */

/* Within 2.5 ulp (the rounding of 1 + e^-x and the division added to exp's). */
static inline float gate_sigmoid(float x) { return 1.0f / (1.0f + vf_exp(-x)); }

/* tanh within 1.1 ulp (measured against float64 over [-30, 30]). On |x| <= 0.7,
 * x + x^3 g(x^2) with g of degree 5, fitted by least squares for relative error
 * on Chebyshev nodes (0.8 ulp); above, 1 - 2 / (e^{2|x|} + 1), whose cancellation
 * costs little there (1.3 ulp); then the sign of x. Both branches are computed
 * and one selected, so that the loops vectorise. */
static inline float gate_tanh(float x)
{
    float a = fabsf(x), t = a * a;
    float g = ((((1.901546959e-03f * t - 7.892258465e-03f) * t + 2.157619223e-02f) * t -
                5.392231420e-02f) * t + 1.333300024e-01f) * t - 3.333332539e-01f;
    float small = a + a * t * g;
    float large = 1.0f - 2.0f / (vf_exp(2.0f * a) + 1.0f);
    float y = a <= 0.7f ? small : large;
    return x < 0.0f ? -y : y;
}

static attn_status check_step(attn_rnn_mode mode, int B, int H)
{
    attn_status s;
    if (attn_rnn_gates(mode) == 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "rnn mode %d is not an attn_rnn_mode",
                          (int)mode);
    if ((s = attn_check_at_least(B, 1, "rnn cell B")) ||
        (s = attn_check_at_least(H, 1, "rnn cell H")))
        return s;
    /* The GEMMs take G*H and the saved row length (at most 5H) as an int. */
    if (H > INT32_MAX / 5)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "rnn cell H %d is too large", H);
    return ATTN_OK;
}

/* ---- forward ------------------------------------------------------------------------ */

/* The row functions take each gate block as its own restrict pointer: the
 * compiler honours restrict only on parameters, and without it the many blocks
 * would need more run-time overlap checks than it makes before vectorising.
 * Pointers that may legitimately be the same buffer (h_out and h, c_out and c)
 * are left without it. */

/* One row, s holding gh (with b_hh): h' = tanh(a) or relu(a), a = gx + gh;
 * saved = h'. */
ROW_CLONES static void rnn_row(bool relu, float *ho, float *restrict s, const float *restrict x,
                               int H)
{
    for (int j = 0; j < H; j++) {
        float a = x[j] + s[j];
        /* relu written so that NaN passes through, as torch.relu does */
        float v = relu ? (a < 0.0f ? 0.0f : a) : gate_tanh(a);
        s[j] = v;
        ho[j] = v;
    }
}

/* One row, s_* holding the blocks of gh (with b_hh): i, f, g, o = sigmoid,
 * sigmoid, tanh, sigmoid of gx + gh, each replacing its block of gh;
 * c' = f c + i g;  s_c = tanh(c');  h' = o tanh(c'). */
ROW_CLONES static void lstm_row(float *restrict ho, float *co, float *restrict s_i,
                                float *restrict s_f, float *restrict s_g, float *restrict s_o,
                                float *restrict s_c, const float *restrict x_i,
                                const float *restrict x_f, const float *restrict x_g,
                                const float *restrict x_o, const float *cr, int H)
{
    for (int j = 0; j < H; j++) {
        float i = gate_sigmoid(x_i[j] + s_i[j]), f = gate_sigmoid(x_f[j] + s_f[j]);
        float g = gate_tanh(x_g[j] + s_g[j]), o = gate_sigmoid(x_o[j] + s_o[j]);
        float cn = f * cr[j] + i * g, tc = gate_tanh(cn);
        s_i[j] = i, s_f[j] = f, s_g[j] = g, s_o[j] = o, s_c[j] = tc;
        co[j] = cn; /* cr[j] is read before co[j] is written, so c_out may be c */
        ho[j] = o * tc;
    }
}

/* One row, s_* holding the blocks of gh (with b_hh): r, z = sigmoid of gx + gh,
 * replacing their blocks; n = tanh(gx_n + r gh_n) into s_n, while gh_n stays
 * for backward;  h' = (1 - z) n + z h = n + z (h - n). */
ROW_CLONES static void gru_row(float *ho, float *restrict s_r, float *restrict s_z,
                               const float *restrict s_ghn, float *restrict s_n,
                               const float *restrict x_r, const float *restrict x_z,
                               const float *restrict x_n, const float *hr, int H)
{
    for (int j = 0; j < H; j++) {
        float r = gate_sigmoid(x_r[j] + s_r[j]), z = gate_sigmoid(x_z[j] + s_z[j]);
        float n = gate_tanh(x_n[j] + r * s_ghn[j]);
        s_r[j] = r, s_z[j] = z, s_n[j] = n;
        ho[j] = n + z * (hr[j] - n); /* hr[j] is read before ho[j] is written */
    }
}

/* The rows of one step, split across threads when there are enough of them. */
static void forward_rows(attn_rnn_mode mode, float *h_out, float *c_out, float *saved,
                         const float *gx, const float *h, const float *c, int B, int H)
{
    const size_t GH = (size_t)attn_rnn_gates(mode) * H, S = attn_rnn_cell_saved_size(mode, H);
#pragma omp parallel for schedule(static) if ((size_t)B * GH >= PARALLEL_MIN_ELEMENTS) \
    num_threads(attn_get_num_threads())
    for (int b = 0; b < B; b++) {
        const size_t at = (size_t)b * H;
        float *s = saved + (size_t)b * S;
        const float *x = gx + (size_t)b * GH;
        switch (mode) {
        case ATTN_RNN_TANH:
        case ATTN_RNN_RELU:
            rnn_row(mode == ATTN_RNN_RELU, h_out + at, s, x, H);
            break;
        case ATTN_LSTM:
            lstm_row(h_out + at, c_out + at, s, s + H, s + 2 * H, s + 3 * H, s + 4 * H, x, x + H,
                     x + 2 * H, x + 3 * H, c + at, H);
            break;
        case ATTN_GRU:
            gru_row(h_out + at, s, s + H, s + 2 * H, s + 3 * H, x, x + H, x + 2 * H, h + at, H);
            break;
        }
    }
}

attn_status attn_rnn_cell_forward(attn_rnn_mode mode, float *h_out, float *c_out, float *saved,
                                  const float *gx, const float *h, const float *c,
                                  const float *w_hh, const float *b_hh, int B, int H)
{
    attn_status s;
    if ((s = check_step(mode, B, H)) || (s = attn_check_not_null(h_out, "rnn cell h_out")) ||
        (s = attn_check_not_null(saved, "rnn cell saved")) ||
        (s = attn_check_not_null(gx, "rnn cell gx")) ||
        (s = attn_check_not_null(h, "rnn cell h")) ||
        (s = attn_check_not_null(w_hh, "rnn cell w_hh")))
        return s;
    if (mode == ATTN_LSTM && ((s = attn_check_not_null(c, "rnn cell c (LSTM)")) ||
                              (s = attn_check_not_null(c_out, "rnn cell c_out (LSTM)"))))
        return s;
    /* gh = h W_hh^T + b_hh into the first G*H floats of each saved row: the bias
     * first, the product added to it. h is read whole before anything is
     * written, so h_out may be h. */
    const int GH = attn_rnn_gates(mode) * H, S = (int)attn_rnn_cell_saved_size(mode, H);
    if (b_hh)
        for (int b = 0; b < B; b++) memcpy(saved + (size_t)b * S, b_hh, (size_t)GH * sizeof *b_hh);
    attn_sgemm(false, true, B, GH, H, 1.0f, h, H, w_hh, H, b_hh ? 1.0f : 0.0f, saved, S);
    forward_rows(mode, h_out, c_out, saved, gx, h, c, B, H);
    return ATTN_OK;
}

/* ---- backward ----------------------------------------------------------------------- */

/* One row. Of h' = tanh(a): da = dh' (1 - h'^2); of relu: da = dh' [h' > 0].
 * dgx = dgh = da. */
ROW_CLONES static void rnn_row_backward(bool relu, float *restrict d, const float *restrict dho,
                                        const float *restrict s, int H)
{
    for (int j = 0; j < H; j++)
        d[j] = relu ? (s[j] > 0.0f ? dho[j] : 0.0f) : dho[j] * (1.0f - s[j] * s[j]);
}

/* One row. Of c' = f c + i g, h' = o tanh(c'):
 *   dc' = dc_out + dh' o (1 - tanh(c')^2);  dc += dc' f
 *   di = dc' g, df = dc' c, dg = dc' i, do = dh' tanh(c'),
 * each through its nonlinearity (sigmoid' = s (1 - s), tanh' = 1 - t^2) into
 * dgx = dgh. with_dco and with_dcr say whether dco and dcr are given: constants
 * at each call below, so that every copy of the loop is free of branches. */
static inline void lstm_backward_loop(float *restrict d_i, float *restrict d_f,
                                      float *restrict d_g, float *restrict d_o,
                                      float *restrict dcr, const float *restrict dho,
                                      const float *restrict dco, const float *restrict s, int H,
                                      const float *restrict cr, bool with_dco, bool with_dcr)
{
    const float *s_i = s, *s_f = s + H, *s_g = s + 2 * H, *s_o = s + 3 * H, *s_c = s + 4 * H;
    for (int j = 0; j < H; j++) {
        float i = s_i[j], f = s_f[j], g = s_g[j], o = s_o[j], tc = s_c[j];
        float dcn = dho[j] * o * (1.0f - tc * tc);
        if (with_dco) dcn += dco[j];
        if (with_dcr) dcr[j] += dcn * f;
        d_i[j] = dcn * g * i * (1.0f - i);
        d_f[j] = dcn * cr[j] * f * (1.0f - f);
        d_g[j] = dcn * i * (1.0f - g * g);
        d_o[j] = dho[j] * tc * o * (1.0f - o);
    }
}

/* dco and dcr may be NULL. */
ROW_CLONES static void lstm_row_backward(float *d, float *dcr, const float *dho, const float *dco,
                                         const float *s, const float *cr, int H)
{
    float *d_i = d, *d_f = d + H, *d_g = d + 2 * H, *d_o = d + 3 * H;
    if (dco && dcr)
        lstm_backward_loop(d_i, d_f, d_g, d_o, dcr, dho, dco, s, H, cr, true, true);
    else if (dco)
        lstm_backward_loop(d_i, d_f, d_g, d_o, dcr, dho, dco, s, H, cr, true, false);
    else if (dcr)
        lstm_backward_loop(d_i, d_f, d_g, d_o, dcr, dho, dco, s, H, cr, false, true);
    else
        lstm_backward_loop(d_i, d_f, d_g, d_o, dcr, dho, dco, s, H, cr, false, false);
}

/* One row. Of h' = n + z (h - n), n = tanh(gx_n + r gh_n):
 *   dh += dh' z;  dz = dh' (h - n);  dn = dh' (1 - z);  da_n = dn (1 - n^2)
 *   dgx_n = da_n, dgh_n = da_n r;  dr = da_n gh_n
 *   dgx_r = dgh_r = dr r (1 - r);  dgx_z = dgh_z = dz z (1 - z).
 * with_dhr, a constant at each call, says whether dhr is given. */
static inline void gru_backward_loop(float *restrict dx_r, float *restrict dx_z,
                                     float *restrict dx_n, float *restrict dh_r,
                                     float *restrict dh_z, float *restrict dh_n,
                                     float *restrict dhr, const float *restrict dho,
                                     const float *restrict s, const float *restrict hr, int H,
                                     bool with_dhr)
{
    const float *s_r = s, *s_z = s + H, *s_ghn = s + 2 * H, *s_n = s + 3 * H;
    for (int j = 0; j < H; j++) {
        float r = s_r[j], z = s_z[j], ghn = s_ghn[j], n = s_n[j];
        float dn = dho[j] * (1.0f - z), dz = dho[j] * (hr[j] - n);
        float dan = dn * (1.0f - n * n);
        if (with_dhr) dhr[j] += dho[j] * z;
        float dar = dan * ghn * r * (1.0f - r), daz = dz * z * (1.0f - z);
        dx_r[j] = dh_r[j] = dar;
        dx_z[j] = dh_z[j] = daz;
        dx_n[j] = dan;
        dh_n[j] = dan * r;
    }
}

/* dx, dhh: the row's dgx and dgh; dhr may be NULL. */
ROW_CLONES static void gru_row_backward(float *dx, float *dhh, float *dhr, const float *dho,
                                        const float *s, const float *hr, int H)
{
    if (dhr)
        gru_backward_loop(dx, dx + H, dx + 2 * H, dhh, dhh + H, dhh + 2 * H, dhr, dho, s, hr, H,
                          true);
    else
        gru_backward_loop(dx, dx + H, dx + 2 * H, dhh, dhh + H, dhh + 2 * H, dhr, dho, s, hr, H,
                          false);
}

static void backward_rows(attn_rnn_mode mode, float *dgx, float *dgh, float *dh, float *dc,
                          const float *dh_out, const float *dc_out, const float *saved,
                          const float *h, const float *c, int B, int H)
{
    const size_t GH = (size_t)attn_rnn_gates(mode) * H, S = attn_rnn_cell_saved_size(mode, H);
#pragma omp parallel for schedule(static) if ((size_t)B * GH >= PARALLEL_MIN_ELEMENTS) \
    num_threads(attn_get_num_threads())
    for (int b = 0; b < B; b++) {
        const size_t at = (size_t)b * H;
        const float *s = saved + (size_t)b * S;
        float *d = dgx + (size_t)b * GH;
        switch (mode) {
        case ATTN_RNN_TANH:
        case ATTN_RNN_RELU:
            rnn_row_backward(mode == ATTN_RNN_RELU, d, dh_out + at, s, H);
            break;
        case ATTN_LSTM:
            lstm_row_backward(d, dc ? dc + at : NULL, dh_out + at, dc_out ? dc_out + at : NULL,
                              s, c + at, H);
            break;
        case ATTN_GRU:
            gru_row_backward(d, dgh + (size_t)b * GH, dh ? dh + at : NULL, dh_out + at, s,
                             h + at, H);
            break;
        }
    }
}

attn_status attn_rnn_cell_backward(attn_rnn_mode mode, float *dgx, float *dh, float *dc,
                                   float *dw_hh, float *db_hh, float *scratch,
                                   const float *dh_out, const float *dc_out, const float *saved,
                                   const float *h, const float *c, const float *w_hh, int B,
                                   int H)
{
    attn_status s;
    if ((s = check_step(mode, B, H)) || (s = attn_check_not_null(dgx, "rnn cell dgx")) ||
        (s = attn_check_not_null(dh_out, "rnn cell dh_out")) ||
        (s = attn_check_not_null(saved, "rnn cell saved")) ||
        (s = attn_check_not_null(h, "rnn cell h")) ||
        (s = attn_check_not_null(w_hh, "rnn cell w_hh")))
        return s;
    if (mode == ATTN_LSTM && (s = attn_check_not_null(c, "rnn cell c (LSTM)"))) return s;
    if (mode == ATTN_GRU && (s = attn_check_not_null(scratch, "rnn cell scratch (GRU)")))
        return s;
    const int GH = attn_rnn_gates(mode) * H;
    float *dgh = mode == ATTN_GRU ? scratch : dgx;
    backward_rows(mode, dgx, dgh, dh, dc, dh_out, dc_out, saved, h, c, B, H);
    /* gh = h W_hh^T + b_hh: dh += dgh W_hh, dw_hh += dgh^T h, db_hh += column sums. */
    if (dh) attn_sgemm(false, false, B, H, GH, 1.0f, dgh, GH, w_hh, H, 1.0f, dh, H);
    if (dw_hh) attn_sgemm(true, false, GH, H, B, 1.0f, dgh, GH, h, H, 1.0f, dw_hh, H);
    if (db_hh)
        for (int b = 0; b < B; b++)
            for (int j = 0; j < GH; j++) db_hh[j] += dgh[(size_t)b * GH + j];
    return ATTN_OK;
}
