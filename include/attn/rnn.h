/* attn/rnn.h: recurrent networks, torch.nn.RNN, LSTM and GRU: one time step of a
 * cell, for decoders that feed each step's attention into the next, and whole
 * multi-layer, bidirectional layers over sequences.
 *
 * PyTorch's equations and gate order. With gx = x W_ih^T + b_ih and
 * gh = h W_hh^T + b_hh, each split into gates of H:
 *   RNN:  h' = tanh(gx + gh)  (or relu)
 *   LSTM: i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (gx + gh);
 *         c' = f c + i g;  h' = o tanh(c')
 *   GRU:  r, z = sigmoid of (gx + gh) over the r and z gates;
 *         n = tanh(gx_n + r * gh_n);  h' = (1 - z) n + z h
 */
#ifndef ATTN_RNN_H
#define ATTN_RNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/core.h"
#include "attn/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_rnn_mode {
    ATTN_RNN_TANH,
    ATTN_RNN_RELU,
    ATTN_LSTM,
    ATTN_GRU,
} attn_rnn_mode;

/* G, the number of gates: 1 (RNN), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n); 0 for a
 * value that is no attn_rnn_mode. */
ATTN_API int attn_rnn_gates(attn_rnn_mode mode);

/* ---- one time step --------------------------------------------------------------------
 * The input projection is the caller's, so that a layer projects every time step
 * with one GEMM: gx: (B, G*H) = x W_ih^T + b_ih. The cell adds h W_hh^T + b_hh.
 * h: (B, H) the previous state; c: (B, H) the previous cell state (LSTM; else NULL);
 * w_hh: (G*H, H), b_hh: (G*H) or NULL.
 * -> h_out: (B, H), c_out: (B, H) (LSTM; else NULL),
 *    saved: (B, attn_rnn_cell_saved_size(mode, H)) what backward needs.
 * h_out may be h and c_out may be c (an update in place); saved aliases nothing.
 * Fails, naming the argument, on a NULL pointer, B or H below 1, or a bad mode. */
ATTN_API size_t attn_rnn_cell_saved_size(attn_rnn_mode mode, int H);
ATTN_API attn_status attn_rnn_cell_forward(attn_rnn_mode mode, float *h_out, float *c_out,
                                           float *saved, const float *gx, const float *h,
                                           const float *c, const float *w_hh, const float *b_hh,
                                           int B, int H);
/* dh_out: (B, H) the gradient of h_out; dc_out: (B, H) of c_out (LSTM; may be NULL).
 * saved, h, c, w_hh as the forward had them.
 * -> dgx: (B, G*H) the gradient of gx (overwritten, not added: the caller takes it
 *    back through its input projection); dh: (B, H) += of h; dc: (B, H) += of c
 *    (LSTM); dw_hh, db_hh +=. dh, dc, dw_hh, db_hh may be NULL. dh and dc are
 *    added to, so they must not be dh_out or dc_out.
 * scratch: (B, G*H) floats, used by GRU only (RNN and LSTM accept NULL). On return
 *    it holds dgh, the gradient of gh = h W_hh^T + b_hh, which differs from dgx in
 *    the n gate (for RNN and LSTM dgh is dgx). A caller that sums dw_hh over many
 *    steps in one GEMM passes dw_hh = db_hh = NULL and keeps dgh (or dgx) per step. */
ATTN_API attn_status attn_rnn_cell_backward(attn_rnn_mode mode, float *dgx, float *dh, float *dc,
                                            float *dw_hh, float *db_hh, float *scratch,
                                            const float *dh_out, const float *dc_out,
                                            const float *saved, const float *h, const float *c,
                                            const float *w_hh, int B, int H);
/* The same with the recurrent products (h W_hh^T, and in backward dgh W_hh and
 * dgh^T h) at a precision (attn_gemm of attn/kernels.h: bf16 operands, float32
 * sums); the gates, the states and the bias stay float32. The two above are these
 * at ATTN_FLOAT32. A precision that is no attn_precision fails, naming it. */
ATTN_API attn_status attn_rnn_cell_forward_at(attn_precision precision, attn_rnn_mode mode,
                                              float *h_out, float *c_out, float *saved,
                                              const float *gx, const float *h, const float *c,
                                              const float *w_hh, const float *b_hh, int B, int H);
ATTN_API attn_status attn_rnn_cell_backward_at(attn_precision precision, attn_rnn_mode mode,
                                               float *dgx, float *dh, float *dc, float *dw_hh,
                                               float *db_hh, float *scratch, const float *dh_out,
                                               const float *dc_out, const float *saved,
                                               const float *h, const float *c, const float *w_hh,
                                               int B, int H);

/* ---- whole layers, torch.nn.RNN / LSTM / GRU ---------------------------------------------
 * Parameters (state_dict keys), k the layer, "_reverse" for the backward direction:
 *   weight_ih_l{k}[_reverse] (G*H, in_k), weight_hh_l{k}[_reverse] (G*H, H),
 *   bias_ih_l{k}[_reverse] (G*H), bias_hh_l{k}[_reverse] (G*H) if bias,
 * with in_0 = input_size and in_k = dirs * H above; initialised uniform in
 * +-1/sqrt(H) as PyTorch does. */
typedef struct attn_rnn_config {
    attn_rnn_mode mode;
    int input_size, hidden_size, num_layers;
    bool bias, batch_first, bidirectional;
    float dropout; /* on each layer's output but the last, in training only */
} attn_rnn_config;

typedef struct attn_rnn_input {
    const float *x; /* (B, T, input_size) if batch_first, else (T, B, input_size) */
    int batch, seq_len;
    /* optional (B), each in [1, T]: packed sequences, as pack_padded_sequence with
     * enforce_sorted=False: row b runs only over its first lengths[b] steps (the
     * reverse direction starts at step lengths[b] - 1), its outputs past that are
     * 0 and its final state is the one at its last step. x and dy past a row's
     * length are never read, and dx there is left unchanged. */
    const int32_t *lengths;
    const float *h0, *c0; /* optional (layers * dirs, B, H); c0 for LSTM only; zeros if NULL */
    bool training;
    uint64_t dropout_seed; /* the masks are a function of it: same seed, same masks */
} attn_rnn_input;

typedef struct attn_rnn attn_rnn;

/* Fails on a bad config naming the field and value, e.g. "hidden_size is 0". */
ATTN_API attn_status attn_rnn_create(attn_rnn **out, const attn_rnn_config *cfg, uint64_t seed);
ATTN_API void attn_rnn_free(attn_rnn *m);
ATTN_API attn_params *attn_rnn_params(attn_rnn *m);
ATTN_API const attn_rnn_config *attn_rnn_get_config(const attn_rnn *m);

/* -> y: (B, T, dirs*H) or (T, B, dirs*H); h_n, c_n: optional (layers * dirs, B, H)
 * (c_n for LSTM only). The module keeps what backward needs; the inputs must
 * stay unchanged until backward. Fails naming the value on bad input (a length
 * outside [1, T], c0 or c_n for a mode without cell state, ...). */
ATTN_API attn_status attn_rnn_forward(attn_rnn *m, float *y, float *h_n, float *c_n,
                                      const attn_rnn_input *in);
/* dy shaped as y (or NULL: no gradient from y); dh_n, dc_n shaped as h_n, c_n (or
 * NULL). -> dx shaped as x, dh0 and dc0 shaped as h0 and c0 (each optional, +=);
 * parameter gradients go to attn_rnn_params(m)->grad. */
ATTN_API attn_status attn_rnn_backward(attn_rnn *m, float *dx, float *dh0, float *dc0,
                                       const float *dy, const float *dh_n, const float *dc_n);

#ifdef __cplusplus
}
#endif
#endif
