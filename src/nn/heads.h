/* Internal: moving projected rows into per-head blocks and back. */
#ifndef ATTN_SRC_NN_HEADS_H
#define ATTN_SRC_NN_HEADS_H

#include <stdbool.h>

/* rows: (L, B, H * hd), or (B, L, H * hd) if batch_first <-> heads: (B, H, L, hd).
 * Both copy (no accumulation); the buffers must not overlap. */
void attn_heads_split(float *heads, const float *rows, int B, int L, int H, int hd,
                      bool batch_first);
void attn_heads_merge(float *rows, const float *heads, int B, int L, int H, int hd,
                      bool batch_first);

#endif
