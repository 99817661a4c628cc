/* The transformer architecture of attn_seq2seq (being written). */
#include "core/error.h"
#include "models/seq2seq_impl.h"

attn_status attn_seq2seq_transformer_init(attn_seq2seq *m, uint64_t seed)
{
    (void)m;
    (void)seed;
    return attn_error(ATTN_ERR_UNSUPPORTED, "the transformer seq2seq model is not built yet");
}
