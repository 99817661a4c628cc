/* Internal: the elementwise vector kernels, compiled once per instruction set by
 * isa_avx512.c, isa_avx2.c and isa_scalar.c, each with its -m flags; each file
 * includes this one and puts vec_kernels in its variant's table. Everything here
 * is static. */
#include "kernels/vec.h"
#include "kernels/vec_activations_impl.h"
#include "kernels/vec_adamw_impl.h"
#include "kernels/vec_additive_impl.h"
#include "kernels/vec_bf16_impl.h"
#include "kernels/vec_crc32c_impl.h"
#include "kernels/vec_dot_impl.h"
#include "kernels/vec_dropout_impl.h"
#include "kernels/vec_layernorm_impl.h"
#include "kernels/vec_rnn_impl.h"
#include "kernels/vec_softmax_impl.h"

static const attn_vec_kernels vec_kernels = {
    .activation_forward = activation_forward,
    .activation_backward = activation_backward,
    .gelu_forward_slope = gelu_forward_slope,
    .gelu_backward_slope = gelu_backward_slope,
    .layernorm_row_forward = layernorm_row_forward,
    .layernorm_row_backward = layernorm_row_backward,
    .layernorm_columns_backward = layernorm_columns_backward,
    .rnn_rows_forward = rnn_rows_forward,
    .rnn_rows_backward = rnn_rows_backward,
    .adamw_update = adamw_update,
    .additive_forward = additive_forward,
    .additive_backward = additive_backward,
    .additive_v_gradient = additive_v_gradient,
    .dot_rows = dot_rows,
    .dot_rows_bf16 = dot_rows_bf16,
    .dropout_run = dropout_run,
    .crc32c = crc32c_update,
    .bf16_round_tile = bf16_round_tile,
    .bf16_round_scaled_sum = bf16_round_scaled_sum,
    .exp_shifted_sum = exp_shifted_sum,
};
