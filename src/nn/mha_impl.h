/* Internal: nn.MultiheadAttention as a part of a larger module. attn_mha_create
 * is these three calls with a block of the module's own. */
#ifndef ATTN_SRC_NN_MHA_IMPL_H
#define ATTN_SRC_NN_MHA_IMPL_H

#include "attn/nn.h"
#include "nn/param_specs.h"

/* The module without parameters yet; checks the config. */
attn_status attn_mha_new(attn_mha **out, const attn_mha_config *cfg);
/* Lists its parameters under prefix, in PyTorch's state_dict order. */
void attn_mha_specs(const attn_mha *m, attn_specs *specs, const char *prefix);
/* Points its views at its parameters under prefix in p and initialises them
 * from seed, as MultiheadAttention does; backward adds into p's gradients. */
attn_status attn_mha_bind(attn_mha *m, const attn_params *p, const char *prefix, uint64_t seed);

#endif
