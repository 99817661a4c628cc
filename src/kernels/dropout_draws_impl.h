/* Internal, included once per instruction set (by flash_impl.h and
 * vec_dropout_impl.h): dropout's keep factors, drawn from Philox4x32-10
 * (core/philox.h) in vector registers. The draw of index i is
 * attn_uniform_at(seed, i), word i & 3 of block i >> 2, so VF_WIDTH blocks, one
 * per lane, give 4 VF_WIDTH consecutive draws; the four words are interleaved
 * into that order as they are stored. */
#ifndef ATTN_SRC_KERNELS_DROPOUT_DRAWS_IMPL_H
#define ATTN_SRC_KERNELS_DROPOUT_DRAWS_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/philox.h"
#include "kernels/simd.h"

enum { DRAW_GROUP = 4 * VF_WIDTH }; /* the draws of one vector of blocks */

/* factor[4 l + w] = 0 where word w of block first + l (of seed's stream) gives a
 * uniform below p, else scale, for every lane l < VF_WIDTH. */
VF_INLINE void dropout_group(float factor[DRAW_GROUP], uint64_t seed, uint64_t first, float p,
                             float scale)
{
    uint32_t low[VF_WIDTH], high[VF_WIDTH];
    for (int l = 0; l < VF_WIDTH; l++) {
        low[l] = (uint32_t)(first + (uint64_t)l);
        high[l] = (uint32_t)((first + (uint64_t)l) >> 32);
    }
    vu c0 = vu_load(low), c1 = vu_load(high), c2 = vu_set1(0), c3 = vu_set1(0);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < PHILOX_ROUNDS; round++) {
        vu high0, high1;
        const vu low0 = vu_mul_wide(c0, PHILOX_M0, &high0);
        const vu low1 = vu_mul_wide(c2, PHILOX_M1, &high1);
        c0 = vu_xor(vu_xor(high1, c1), vu_set1(k0));
        c2 = vu_xor(vu_xor(high0, c3), vu_set1(k1));
        c1 = low1;
        c3 = low0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    const vf dropped = vf_zero(), kept = vf_set1(scale);
    vf_store_interleaved4(factor, vu_unit_below(c0, p, dropped, kept),
                          vu_unit_below(c1, p, dropped, kept), vu_unit_below(c2, p, dropped, kept),
                          vu_unit_below(c3, p, dropped, kept));
}

/* Dropout's factors for the indices first .. first + n - 1 of stream seed:
 * factor[i] = 0 where attn_uniform_at(seed, first + i) < p, else scale. A
 * group that starts before first or ends after the run is drawn whole aside. */
static inline void dropout_factors(float *factor, size_t n, uint64_t seed, uint64_t first,
                                   float p, float scale)
{
    float group[DRAW_GROUP];
    for (size_t i = 0; i < n;) {
        const uint64_t at = first + i;
        const size_t skip = (size_t)(at & 3), left = n - i;
        if (skip == 0 && left >= DRAW_GROUP) {
            dropout_group(factor + i, seed, at >> 2, p, scale);
            i += DRAW_GROUP;
            continue;
        }
        const size_t count = DRAW_GROUP - skip < left ? DRAW_GROUP - skip : left;
        dropout_group(group, seed, at >> 2, p, scale);
        memcpy(factor + i, group + skip, count * sizeof *factor);
        i += count;
    }
}

#endif
