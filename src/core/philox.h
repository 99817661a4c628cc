/* Internal: Philox4x32-10 (Salmon et al., SC 2011), the counter-based generator
 * of every random draw in attn: its constants, and a lane form for the loops
 * that draw the stream element by element. rng.c builds the library's
 * generators on it; the attention kernels, compiled once per instruction set,
 * draw dropout with the lane form, which the compiler then runs in vector
 * registers (32 lanes: with fewer, GCC leaves the 64-bit products scalar). */
#ifndef ATTN_SRC_CORE_PHILOX_H
#define ATTN_SRC_CORE_PHILOX_H

#include <stddef.h>
#include <stdint.h>

enum {
    PHILOX_M0 = 0xD2511F53u,
    PHILOX_M1 = 0xCD9E8D57u,
    PHILOX_W0 = 0x9E3779B9u, /* golden ratio */
    PHILOX_W1 = 0xBB67AE85u, /* sqrt(3) - 1 */
    PHILOX_ROUNDS = 10,
    PHILOX_LANES = 32
};

/* A word as a uniform float in [0, 1): the top 24 bits make every value exact
 * and strictly below 1 (attn_uniform_at). */
static inline float philox_unit(uint32_t word) { return (float)(word >> 8) * (1.0f / 16777216.0f); }

/* The blocks of the counters (0, first + l) for l < PHILOX_LANES, each what
 * attn_philox4x32(words, seed, 0, first + l) gives: word w of block l at
 * words[w][l]. */
static inline void philox_lanes(uint32_t words[4][PHILOX_LANES], uint64_t seed, uint64_t first)
{
    uint32_t c0[PHILOX_LANES], c1[PHILOX_LANES], c2[PHILOX_LANES], c3[PHILOX_LANES];
    for (int l = 0; l < PHILOX_LANES; l++) {
        const uint64_t counter = first + (uint64_t)l;
        c0[l] = (uint32_t)counter;
        c1[l] = (uint32_t)(counter >> 32);
        c2[l] = 0;
        c3[l] = 0;
    }
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < PHILOX_ROUNDS; round++) {
        for (int l = 0; l < PHILOX_LANES; l++) {
            const uint64_t p0 = (uint64_t)PHILOX_M0 * c0[l];
            const uint64_t p1 = (uint64_t)PHILOX_M1 * c2[l];
            const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0;
            const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
            c0[l] = n0;
            c1[l] = (uint32_t)p1;
            c2[l] = n2;
            c3[l] = (uint32_t)p0;
        }
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    for (int l = 0; l < PHILOX_LANES; l++) {
        words[0][l] = c0[l];
        words[1][l] = c1[l];
        words[2][l] = c2[l];
        words[3][l] = c3[l];
    }
}

/* Dropout's factors for the indices first .. first + n - 1 of stream seed:
 * factor[i] = 0 where attn_uniform_at(seed, first + i) < p, else scale; the
 * same draws, each Philox block computed once for the four indices it holds. */
static inline void philox_dropout_factors(float *factor, size_t n, uint64_t seed, uint64_t first,
                                          float p, float scale)
{
    uint32_t words[4][PHILOX_LANES];
    size_t i = 0;
    while (i < n) {
        const uint64_t block = (first + i) >> 2, end = (block + PHILOX_LANES) * 4;
        philox_lanes(words, seed, block);
        for (uint64_t at = first + i; at < end && i < n; at++, i++)
            factor[i] = philox_unit(words[at & 3][(at >> 2) - block]) < p ? 0.0f : scale;
    }
}

#endif
