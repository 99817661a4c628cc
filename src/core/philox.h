/* Internal: Philox4x32-10 (Salmon et al., SC 2011), the counter-based generator
 * of every random draw in attn: its constants and a word's uniform float. rng.c
 * builds the library's generators on it; the kernels, compiled once per
 * instruction set, draw dropout's stream a vector of blocks at a time
 * (kernels/dropout_draws_impl.h). */
#ifndef ATTN_SRC_CORE_PHILOX_H
#define ATTN_SRC_CORE_PHILOX_H

#include <stdint.h>

enum {
    PHILOX_M0 = 0xD2511F53u,
    PHILOX_M1 = 0xCD9E8D57u,
    PHILOX_W0 = 0x9E3779B9u, /* golden ratio */
    PHILOX_W1 = 0xBB67AE85u, /* sqrt(3) - 1 */
    PHILOX_ROUNDS = 10
};

/* A word as a uniform float in [0, 1): the top 24 bits make every value exact
 * and strictly below 1 (attn_uniform_at). */
static inline float philox_unit(uint32_t word) { return (float)(word >> 8) * (1.0f / 16777216.0f); }

#endif
