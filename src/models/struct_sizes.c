/* The sizes of the public structs a binding fills or reads by name
 * (attn_struct_size), for a binding that mirrors them field for field: python/attn checks each of its ctypes
 * copies against these when it loads, so a struct whose layout changed fails
 * there, with a message, instead of corrupting memory. In the top layer, as it
 * names structs of every layer. */
#include <string.h>

#include "attn/attn.h"

#define ROW(type) {#type, sizeof(type)}

static const struct {
    const char *name;
    size_t size;
} SIZES[] = {
    ROW(attn_mask),           ROW(attn_sdpa_config),    ROW(attn_additive_weights),
    ROW(attn_additive_grads), ROW(attn_hard_pick),      ROW(attn_param),
    ROW(attn_params),         ROW(attn_mha_config),     ROW(attn_mha_input),
    ROW(attn_seq2seq_config), ROW(attn_gpt_config),     ROW(attn_vocab),
    ROW(attn_task),           ROW(attn_text_vocab),     ROW(attn_tensor_view),
    ROW(attn_decode_options), ROW(attn_sampling),       ROW(attn_generate_options),
    ROW(attn_attention_map),  ROW(attn_record),         ROW(attn_record_options),
};

size_t attn_struct_size(const char *name)
{
    for (size_t i = 0; name && i < sizeof SIZES / sizeof SIZES[0]; i++)
        if (strcmp(SIZES[i].name, name) == 0) return SIZES[i].size;
    return 0;
}
