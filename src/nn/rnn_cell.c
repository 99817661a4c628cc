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
 * The elementwise pass is a vector kernel (kernels/vec_rnn_impl.h) of the
 * instruction set the library chose (kernels/isa.h); every variant gives the
 * same bits, for any thread count.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attn/kernels.h"
#include "attn/rnn.h"
#include "core/error.h"
#include "kernels/isa.h"

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

attn_status attn_rnn_cell_forward_at(attn_precision precision, attn_rnn_mode mode, float *h_out,
                                     float *c_out, float *saved, const float *gx, const float *h,
                                     const float *c, const float *w_hh, const float *b_hh, int B,
                                     int H)
{
    attn_status s;
    if ((s = attn_check_precision(precision)) || (s = check_step(mode, B, H)) ||
        (s = attn_check_not_null(h_out, "rnn cell h_out")) ||
        (s = attn_check_not_null(saved, "rnn cell saved")) ||
        (s = attn_check_not_null(gx, "rnn cell gx")) ||
        (s = attn_check_not_null(h, "rnn cell h")) ||
        (s = attn_check_not_null(w_hh, "rnn cell w_hh")))
        return s;
    if (mode == ATTN_LSTM && ((s = attn_check_not_null(c, "rnn cell c (LSTM)")) ||
                              (s = attn_check_not_null(c_out, "rnn cell c_out (LSTM)"))))
        return s;
    const attn_isa *isa;
    if ((s = attn_isa_current(&isa))) return s;
    /* gh = h W_hh^T + b_hh into the first G*H floats of each saved row: the bias
     * first, the product added to it. h is read whole before anything is
     * written, so h_out may be h. */
    const int GH = attn_rnn_gates(mode) * H, S = (int)attn_rnn_cell_saved_size(mode, H);
    if (b_hh)
        for (int b = 0; b < B; b++) memcpy(saved + (size_t)b * S, b_hh, (size_t)GH * sizeof *b_hh);
    attn_gemm(precision, false, true, B, GH, H, 1.0f, h, H, w_hh, H, b_hh ? 1.0f : 0.0f, saved, S);
    isa->vec->rnn_rows_forward(mode, h_out, c_out, saved, gx, h, c, B, H, (size_t)GH, (size_t)S);
    return ATTN_OK;
}

attn_status attn_rnn_cell_forward(attn_rnn_mode mode, float *h_out, float *c_out, float *saved,
                                  const float *gx, const float *h, const float *c,
                                  const float *w_hh, const float *b_hh, int B, int H)
{
    return attn_rnn_cell_forward_at(ATTN_FLOAT32, mode, h_out, c_out, saved, gx, h, c, w_hh, b_hh,
                                    B, H);
}

/* ---- backward ----------------------------------------------------------------------- */

attn_status attn_rnn_cell_backward_at(attn_precision precision, attn_rnn_mode mode, float *dgx,
                                      float *dh, float *dc, float *dw_hh, float *db_hh,
                                      float *scratch, const float *dh_out, const float *dc_out,
                                      const float *saved, const float *h, const float *c,
                                      const float *w_hh, int B, int H)
{
    attn_status s;
    if ((s = attn_check_precision(precision)) || (s = check_step(mode, B, H)) ||
        (s = attn_check_not_null(dgx, "rnn cell dgx")) ||
        (s = attn_check_not_null(dh_out, "rnn cell dh_out")) ||
        (s = attn_check_not_null(saved, "rnn cell saved")) ||
        (s = attn_check_not_null(h, "rnn cell h")) ||
        (s = attn_check_not_null(w_hh, "rnn cell w_hh")))
        return s;
    if (mode == ATTN_LSTM && (s = attn_check_not_null(c, "rnn cell c (LSTM)"))) return s;
    if (mode == ATTN_GRU && (s = attn_check_not_null(scratch, "rnn cell scratch (GRU)")))
        return s;
    const attn_isa *isa;
    if ((s = attn_isa_current(&isa))) return s;
    const int GH = attn_rnn_gates(mode) * H;
    float *dgh = mode == ATTN_GRU ? scratch : dgx;
    isa->vec->rnn_rows_backward(mode, dgx, dgh, dh, dc, dh_out, dc_out, saved, h, c, B, H,
                                (size_t)GH, attn_rnn_cell_saved_size(mode, H));
    /* gh = h W_hh^T + b_hh: dh += dgh W_hh, dw_hh += dgh^T h, db_hh += column sums. */
    if (dh) attn_gemm(precision, false, false, B, H, GH, 1.0f, dgh, GH, w_hh, H, 1.0f, dh, H);
    if (dw_hh) attn_gemm(precision, true, false, GH, H, B, 1.0f, dgh, GH, h, H, 1.0f, dw_hh, H);
    if (db_hh)
        for (int b = 0; b < B; b++)
            for (int j = 0; j < GH; j++) db_hh[j] += dgh[(size_t)b * GH + j];
    return ATTN_OK;
}

attn_status attn_rnn_cell_backward(attn_rnn_mode mode, float *dgx, float *dh, float *dc,
                                   float *dw_hh, float *db_hh, float *scratch, const float *dh_out,
                                   const float *dc_out, const float *saved, const float *h,
                                   const float *c, const float *w_hh, int B, int H)
{
    return attn_rnn_cell_backward_at(ATTN_FLOAT32, mode, dgx, dh, dc, dw_hh, db_hh, scratch, dh_out,
                                     dc_out, saved, h, c, w_hh, B, H);
}
