/* Internal: torch.nn.RNN, LSTM and GRU as a part of a larger module.
 * attn_rnn_create is these three calls with a block of the module's own. */
#ifndef ATTN_SRC_NN_RNN_IMPL_H
#define ATTN_SRC_NN_RNN_IMPL_H

#include "attn/rnn.h"
#include "nn/param_specs.h"

/* The module without parameters yet; checks the config. */
attn_status attn_rnn_new(attn_rnn **out, const attn_rnn_config *cfg);
/* Lists its parameters under prefix, in PyTorch's state_dict order. */
void attn_rnn_specs(const attn_rnn *m, attn_specs *specs, const char *prefix);
/* Points its views at its parameters under prefix in p and initialises them
 * from seed, as RNNBase.reset_parameters does; backward adds into p's gradients. */
attn_status attn_rnn_bind(attn_rnn *m, const attn_params *p, const char *prefix, uint64_t seed);
/* The precision of the layer's products from now on (checked by the caller):
 * the input projections and the cells' recurrent products, forward and backward
 * (attn_linear_forward_at, attn_rnn_cell_forward_at); ATTN_FLOAT32 at creation. */
void attn_rnn_set_precision(attn_rnn *m, attn_precision precision);

#endif
