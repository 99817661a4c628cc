/* Philox4x32-10, the counter-based generator of Salmon et al. (SC 2011), and the
 * streams and distributions built on it. */
#include <math.h>

#include "attn/core.h"
#include "core/philox.h"

void attn_philox4x32(uint32_t out[4], uint64_t seed, uint64_t counter_hi, uint64_t counter_lo)
{
    uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
    uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < PHILOX_ROUNDS; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0;
        c1 = (uint32_t)p1;
        c2 = n2;
        c3 = (uint32_t)p0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static uint32_t word_at(uint64_t seed, uint64_t index)
{
    uint32_t block[4];
    attn_philox4x32(block, seed, 0, index >> 2);
    return block[index & 3];
}

float attn_uniform_at(uint64_t seed, uint64_t index) { return philox_unit(word_at(seed, index)); }

void attn_rng_init(attn_rng *rng, uint64_t seed)
{
    rng->seed = seed;
    rng->position = 0;
}

uint32_t attn_rng_u32(attn_rng *rng) { return word_at(rng->seed, rng->position++); }

float attn_rng_uniform(attn_rng *rng) { return philox_unit(attn_rng_u32(rng)); }

float attn_rng_normal(attn_rng *rng)
{
    /* 1 - u lies in (0, 1], so the logarithm is finite. */
    float u1 = 1.0f - attn_rng_uniform(rng);
    float u2 = attn_rng_uniform(rng);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

void attn_rng_fill_uniform(attn_rng *rng, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * attn_rng_uniform(rng);
}

void attn_rng_fill_normal(attn_rng *rng, float *x, size_t n, float mean, float std)
{
    for (size_t i = 0; i < n; i++) x[i] = mean + std * attn_rng_normal(rng);
}

uint32_t attn_rng_below(attn_rng *rng, uint32_t n)
{
    /* Lemire's multiply-shift with rejection of the biased low range. */
    uint64_t m = (uint64_t)attn_rng_u32(rng) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)attn_rng_u32(rng) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
