/* Internal, included by vec_impl.h once per instruction set: the recurrent
 * cells' elementwise pass over the rows of one step (the layouts of `saved` are
 * described in rnn_cell.c), forward and backward.
 *
 * At hidden sizes up to a few hundred, libm's expf and tanhf (some 5 and 18 ns a
 * call) would make this pass several times dearer than the step's GEMM, so the
 * gates use lane_math.h's exp, sigmoid and tanh, which vectorise. Rows are split
 * across threads and each is computed alone, so results do not depend on the
 * thread count. */
#include <stdbool.h>
#include <stddef.h>

#include "attn/core.h"
#include "attn/rnn.h"
#include "kernels/lane_math.h"

enum {
    RNN_PARALLEL_MIN_ELEMENTS = 1 << 16 /* gate values per step below which one thread is faster */
};

/* The row functions take each gate block as its own restrict pointer: the
 * compiler honours restrict only on parameters, and without it the many blocks
 * would need more run-time overlap checks than it makes before vectorising.
 * Pointers that may legitimately be the same buffer (h_out and h, c_out and c)
 * are left without it. */

/* One row, s holding gh (with b_hh): h' = tanh(a) or relu(a), a = gx + gh;
 * saved = h'. A loop for each, so that neither carries the other's select. */
static void rnn_row(bool relu, float *ho, float *restrict s, const float *restrict x, int H)
{
    if (relu)
        for (int j = 0; j < H; j++) {
            float a = x[j] + s[j];
            /* written so that NaN passes through, as torch.relu does */
            s[j] = ho[j] = a < 0.0f ? 0.0f : a;
        }
    else
        for (int j = 0; j < H; j++) s[j] = ho[j] = lane_tanh(x[j] + s[j]);
}

/* One row, s_* holding the blocks of gh (with b_hh): i, f, g, o = sigmoid,
 * sigmoid, tanh, sigmoid of gx + gh, each replacing its block of gh;
 * c' = f c + i g;  s_c = tanh(c');  h' = o tanh(c'). */
static void lstm_row(float *restrict ho, float *co, float *restrict s_i,
                                float *restrict s_f, float *restrict s_g, float *restrict s_o,
                                float *restrict s_c, const float *restrict x_i,
                                const float *restrict x_f, const float *restrict x_g,
                                const float *restrict x_o, const float *cr, int H)
{
    for (int j = 0; j < H; j++) {
        float i = lane_sigmoid(x_i[j] + s_i[j]), f = lane_sigmoid(x_f[j] + s_f[j]);
        float g = lane_tanh(x_g[j] + s_g[j]), o = lane_sigmoid(x_o[j] + s_o[j]);
        float cn = f * cr[j] + i * g, tc = lane_tanh(cn);
        s_i[j] = i, s_f[j] = f, s_g[j] = g, s_o[j] = o, s_c[j] = tc;
        co[j] = cn; /* cr[j] is read before co[j] is written, so c_out may be c */
        ho[j] = o * tc;
    }
}

/* One row, s_* holding the blocks of gh (with b_hh): r, z = sigmoid of gx + gh,
 * replacing their blocks; n = tanh(gx_n + r gh_n) into s_n, while gh_n stays
 * for backward;  h' = (1 - z) n + z h = n + z (h - n). */
static void gru_row(float *ho, float *restrict s_r, float *restrict s_z,
                               const float *restrict s_ghn, float *restrict s_n,
                               const float *restrict x_r, const float *restrict x_z,
                               const float *restrict x_n, const float *hr, int H)
{
    for (int j = 0; j < H; j++) {
        float r = lane_sigmoid(x_r[j] + s_r[j]), z = lane_sigmoid(x_z[j] + s_z[j]);
        float n = lane_tanh(x_n[j] + r * s_ghn[j]);
        s_r[j] = r, s_z[j] = z, s_n[j] = n;
        ho[j] = n + z * (hr[j] - n); /* hr[j] is read before ho[j] is written */
    }
}

/* The rows of one step, split across threads when there are enough of them. GH
 * and S are the row lengths of gx and saved (the cell's, passed down so that the
 * kernels depend on nothing above them). */
static void rnn_rows_forward(attn_rnn_mode mode, float *h_out, float *c_out, float *saved,
                             const float *gx, const float *h, const float *c, int B, int H,
                             size_t GH, size_t S)
{
#pragma omp parallel for schedule(static) if ((size_t)B * GH >= RNN_PARALLEL_MIN_ELEMENTS) \
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

/* One row. Of h' = tanh(a): da = dh' (1 - h'^2); of relu: da = dh' [h' > 0].
 * dgx = dgh = da. */
static void rnn_row_backward(bool relu, float *restrict d, const float *restrict dho,
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
static void lstm_row_backward(float *d, float *dcr, const float *dho, const float *dco,
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
static void gru_row_backward(float *dx, float *dhh, float *dhr, const float *dho,
                                        const float *s, const float *hr, int H)
{
    if (dhr)
        gru_backward_loop(dx, dx + H, dx + 2 * H, dhh, dhh + H, dhh + 2 * H, dhr, dho, s, hr, H,
                          true);
    else
        gru_backward_loop(dx, dx + H, dx + 2 * H, dhh, dhh + H, dhh + 2 * H, dhr, dho, s, hr, H,
                          false);
}

/* dgx, dgh: (B, GH) (the same buffer but for GRU); GH and S as above. */
static void rnn_rows_backward(attn_rnn_mode mode, float *dgx, float *dgh, float *dh, float *dc,
                              const float *dh_out, const float *dc_out, const float *saved,
                              const float *h, const float *c, int B, int H, size_t GH,
                              size_t S)
{
#pragma omp parallel for schedule(static) if ((size_t)B * GH >= RNN_PARALLEL_MIN_ELEMENTS) \
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
