/* Conformance kind "rnn": attn_rnn_* with a torch.nn.RNN, LSTM or GRU state_dict.
 *
 * Config: mode ("RNN_TANH", "RNN_RELU", "LSTM", "GRU"), input_size, hidden_size,
 * num_layers, bias, batch_first, bidirectional, batch, seq_len, and whether h0,
 * c0 and lengths are given. Inputs: x, the optional h0, c0 and lengths (any
 * integer dtype), and the upstream gradients dy, dh_n and dc_n (LSTM).
 * Outputs: y, h_n, c_n (LSTM), grad.x, grad.h0 and grad.c0 (when given) and the
 * parameter gradients. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conform.h"
#include "conform_kinds.h"

static attn_rnn *rnn;

static void free_rnn(void) { attn_rnn_free(rnn); }

static attn_rnn_mode parse_mode(const char *name)
{
    static const struct {
        const char *name;
        attn_rnn_mode mode;
    } modes[] = {{"RNN_TANH", ATTN_RNN_TANH}, {"RNN_RELU", ATTN_RNN_RELU},
                 {"LSTM", ATTN_LSTM}, {"GRU", ATTN_GRU}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(name, modes[i].name) == 0) return modes[i].mode;
    die("__metadata__ 'mode' = '%s' is not RNN_TANH, RNN_RELU, LSTM or GRU", name);
}

/* The tensor "lengths" of shape (B) as int32; attn_rnn_forward checks the range. */
static const int32_t *input_lengths(int B)
{
    const int64_t shape[1] = {B};
    const float *f = input_f32("lengths", 1, shape);
    int32_t *lengths = alloc((size_t)B, sizeof *lengths);
    for (int b = 0; b < B; b++) {
        if (!(fabsf(f[b]) < 1e9f) || f[b] != floorf(f[b]))
            die("lengths[%d] = %g is not an integer", b, (double)f[b]);
        lengths[b] = (int32_t)f[b];
    }
    return lengths;
}

void conform_rnn(const char *dir)
{
    attn_rnn_config cfg = {0};
    cfg.mode = parse_mode(meta_string("mode"));
    cfg.input_size = meta_int("input_size");
    cfg.hidden_size = meta_int("hidden_size");
    cfg.num_layers = meta_int("num_layers");
    cfg.bias = meta_bool("bias");
    cfg.batch_first = meta_bool("batch_first");
    cfg.bidirectional = meta_bool("bidirectional");
    const int B = meta_int("batch"), T = meta_int("seq_len");
    const bool lstm = cfg.mode == ATTN_LSTM;
    if (B < 1 || T < 1) die("bad sizes in the config");

    atexit(free_rnn);
    check(attn_rnn_create(&rnn, &cfg, 12345), "attn_rnn_create");
    attn_params *p = attn_rnn_params(rnn);
    check(attn_params_load(p, join(dir, "weights.safetensors")), "attn_params_load");
    attn_params_zero_grad(p);

    const int64_t D = cfg.bidirectional ? 2 : 1, H = cfg.hidden_size;
    const int64_t first = cfg.batch_first ? B : T, second = cfg.batch_first ? T : B;
    const int64_t x_shape[3] = {first, second, cfg.input_size};
    const int64_t y_shape[3] = {first, second, D * H};
    const int64_t state_shape[3] = {cfg.num_layers * D, B, H};
    const size_t x_count = (size_t)(first * second * cfg.input_size);
    const size_t y_count = (size_t)(first * second * D * H);
    const size_t state_count = (size_t)(cfg.num_layers * D * B * H);

    attn_rnn_input in = {0};
    in.batch = B;
    in.seq_len = T;
    in.x = input_f32("x", 3, x_shape);
    if (meta_bool("has_h0")) in.h0 = input_f32("h0", 3, state_shape);
    if (meta_bool("has_c0")) in.c0 = input_f32("c0", 3, state_shape);
    if (meta_bool("has_lengths")) in.lengths = input_lengths(B);
    const float *dy = input_f32("dy", 3, y_shape);
    const float *dh_n = input_f32("dh_n", 3, state_shape);
    const float *dc_n = lstm ? input_f32("dc_n", 3, state_shape) : NULL;

    float *y = alloc(y_count, sizeof *y);
    float *h_n = alloc(state_count, sizeof *h_n);
    float *c_n = lstm ? alloc(state_count, sizeof *c_n) : NULL;
    check(attn_rnn_forward(rnn, y, h_n, c_n, &in), "attn_rnn_forward");

    float *dx = alloc(x_count, sizeof *dx);
    float *dh0 = alloc(state_count, sizeof *dh0);
    float *dc0 = lstm ? alloc(state_count, sizeof *dc0) : NULL;
    check(attn_rnn_backward(rnn, dx, dh0, dc0, dy, dh_n, dc_n), "attn_rnn_backward");

    add_output("y", y, 3, y_shape);
    add_output("h_n", h_n, 3, state_shape);
    if (lstm) add_output("c_n", c_n, 3, state_shape);
    add_output("grad.x", dx, 3, x_shape);
    if (in.h0) add_output("grad.h0", dh0, 3, state_shape);
    if (in.c0) add_output("grad.c0", dc0, 3, state_shape);
    add_param_grads(p);
    write_outputs(dir);
    check(attn_params_save(p, join(dir, "saved_weights.safetensors"), NULL, 0), "attn_params_save");
}
