/* Internal: the vector primitives the fused attention kernels are written on, for
 * one instruction set chosen by the macro the including file defines first:
 *   ATTN_SIMD_AVX512  16 floats per vector (compile with -mavx512f -mfma)
 *   ATTN_SIMD_AVX2     8 floats per vector (compile with -mavx2 -mfma)
 *   ATTN_SIMD_SCALAR   1 float per "vector", portable C
 * This is the only file with intrinsics. Every kernel loop walks whole vectors;
 * the kernels pad their own tiles so that no partial vector is ever needed.
 *
 *   vf                          one vector of VF_WIDTH floats
 *   vf_load(p), vf_store(p, x)  unaligned load / store of VF_WIDTH floats
 *   vf_set1(x), vf_zero()       broadcast / all zero
 *   vf_add, vf_sub, vf_mul, vf_max
 *   vf_fma(a, b, c)             a * b + c, rounded once
 *   vf_replace(x, match, with)  lanes of x equal to `match` become `with`
 *   vf_exp(x)                   e^x to about 1 ulp (see lane_math.h)
 *   vf_exp_bf16(x)              e^x for x <= 0 within 2^-17, the bf16 kernels'
 *                               (lane_exp_bf16 in lane_math.h)
 *   vf_sum(x)                   the sum of the lanes, as a tree of halves: lane
 *                               l + lane l + VF_WIDTH / 2, then l + l + VF_WIDTH / 4,
 *                               ..., so that a sum spread over vectors of any
 *                               width adds in one order (vec_dot_impl.h's)
 *   vfd                         VF_WIDTH doubles, lane for lane with a vf: sums
 *                               that float would round too coarsely
 *   vfd_load(p), vfd_store(p, x)
 *   vfd_fma(a, b, c)            (double) a * b + c: the product of two floats is
 *                               exact in double, so one rounding in every variant
 *   vfd_add(c, a)               c + (double) a
 *
 * Unsigned 32-bit lanes, for Philox's draws (kernels/dropout_draws_impl.h):
 *   vu                          VF_WIDTH uint32_t lanes
 *   vu_load(p), vu_set1(x), vu_xor(a, b)
 *   vu_mul_wide(a, m, &hi)      the 64-bit products a * m lane by lane: their low
 *                               halves returned, their high halves in hi
 *   vu_unit_below(x, p, below, above)
 *                               per lane, below if philox_unit(x) < p, else above
 *   vf_store_interleaved4(p, a, b, c, d)
 *                               p[4 i + 0..3] = a[i], b[i], c[i], d[i]
 *
 * Pairs of bfloat16 (core/bf16.h), the operands of the bf16 attention kernels:
 *   vp                          VF_WIDTH pairs, each the two bfloat16 values
 *                               p[2i] ("even") and p[2i+1] ("odd") of a lane
 *   vp_load(p)                  the pairs p[0, 2 VF_WIDTH)
 *   vp_set1(p)                  the one pair p[0], p[1] in every lane
 *   vp_dot(acc, a, b)           acc + a.odd b.odd, then + a.even b.even, each
 *                               addition rounded once
 *   vp_store_rounded(p, e, o)   p[2i] = bf16(e[i]), p[2i+1] = bf16(o[i])
 * With ATTN_SIMD_DPBF16 (AVX-512 and AVX512_BF16) vp_dot is one vdpbf16ps and
 * vp_store_rounded vcvtneps2bf16; every other variant widens the pairs (exactly)
 * and does the same arithmetic in float32, which is these instructions' own
 * definition (Intel SDM, VDPBF16PS: the odd product is added first, then the
 * even one, each product exact, each sum rounded to nearest even), so the bits
 * are the same once subnormals are flushed as the instructions flush them (they
 * read subnormal operands and write subnormal sums as zero, whatever MXCSR says):
 * the bf16 kernels run between subnormals_flush() and subnormals_restore(),
 * which set and restore MXCSR's DAZ and FTZ for the calling thread on x86, so
 * that the widening variants' float32 arithmetic flushes alike. vp_store_rounded
 * follows vcvtneps2bf16 in every variant (bf16_round_flushing below). (A product of two bfloat16 values has
 * at most 16 significant bits, so it is exact in float32 unless it underflows,
 * which is why the scalar variant's unfused a * b + c rounds once here too.)
 */
#ifndef ATTN_SRC_KERNELS_SIMD_H
#define ATTN_SRC_KERNELS_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(ATTN_SIMD_AVX512) + defined(ATTN_SIMD_AVX2) + defined(ATTN_SIMD_SCALAR) != 1
#error "define exactly one of ATTN_SIMD_AVX512, ATTN_SIMD_AVX2, ATTN_SIMD_SCALAR"
#endif

#define VF_INLINE static inline __attribute__((always_inline))

/* vf_exp's method and constants, and its scalar form: lane_math.h. */
#include "kernels/lane_math.h"
#include "core/bf16.h"

#if defined(__SSE2__)
#include <xmmintrin.h>
/* MXCSR's flush-to-zero and denormals-are-zero bits. */
enum { MXCSR_FTZ_DAZ = 0x8040 };
VF_INLINE unsigned subnormals_flush(void)
{
    const unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | MXCSR_FTZ_DAZ);
    return saved;
}
VF_INLINE void subnormals_restore(unsigned saved) { _mm_setcsr(saved); }
#else
/* No MXCSR: subnormals stay (and no variant here has vdpbf16ps to match). */
VF_INLINE unsigned subnormals_flush(void) { return 0; }
VF_INLINE void subnormals_restore(unsigned saved) { (void)saved; }
#endif

/* vcvtneps2bf16's rounding of one float: attn_bf16_round, except that a
 * subnormal rounds to a zero of its sign (the instruction reads it as zero). */
VF_INLINE uint16_t bf16_round_flushing(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    if ((bits & 0x7f800000u) == 0) return (uint16_t)((bits >> 16) & 0x8000u);
    return attn_bf16_round(x);
}

#if defined(ATTN_SIMD_AVX512)

#include <immintrin.h>

#define VF_WIDTH 16
typedef __m512 vf;

VF_INLINE vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
VF_INLINE void vf_store(float *p, vf x) { _mm512_storeu_ps(p, x); }
VF_INLINE vf vf_set1(float x) { return _mm512_set1_ps(x); }
VF_INLINE vf vf_zero(void) { return _mm512_setzero_ps(); }
VF_INLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
VF_INLINE vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
VF_INLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
VF_INLINE vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
VF_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }

VF_INLINE vf vf_replace(vf x, float match, float with)
{
    __mmask16 hit = _mm512_cmp_ps_mask(x, _mm512_set1_ps(match), _CMP_EQ_OQ);
    return _mm512_mask_blend_ps(hit, x, _mm512_set1_ps(with));
}
VF_INLINE float vf_sum(vf x) { return _mm512_reduce_add_ps(x); }

typedef struct vfd {
    __m512d lo, hi;
} vfd;
VF_INLINE vfd vfd_load(const double *p)
{
    return (vfd){_mm512_loadu_pd(p), _mm512_loadu_pd(p + 8)};
}
VF_INLINE void vfd_store(double *p, vfd x)
{
    _mm512_storeu_pd(p, x.lo);
    _mm512_storeu_pd(p + 8, x.hi);
}
VF_INLINE __m512d vfd_widen_low(vf x) { return _mm512_cvtps_pd(_mm512_castps512_ps256(x)); }
VF_INLINE __m512d vfd_widen_high(vf x)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
}
VF_INLINE vfd vfd_fma(vf a, vf b, vfd c)
{
    return (vfd){_mm512_fmadd_pd(vfd_widen_low(a), vfd_widen_low(b), c.lo),
                 _mm512_fmadd_pd(vfd_widen_high(a), vfd_widen_high(b), c.hi)};
}
VF_INLINE vfd vfd_add(vfd c, vf a)
{
    return (vfd){_mm512_add_pd(c.lo, vfd_widen_low(a)), _mm512_add_pd(c.hi, vfd_widen_high(a))};
}

/* n rounded in float (vrndscaleps) and 2^n applied by vscalefps: the same bits
 * as building 2^n in the exponent and multiplying (checked for every float, with
 * and without subnormals flushed), in 2 instructions instead of 5, a third less
 * time per exponential; the attention kernels' softmax is made of them. */
VF_INLINE vf vf_exp(vf x)
{
    __m512 nf = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(VF_EXP_LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(VF_EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(VF_EXP_LN2_LO), r);
    __m512 g = _mm512_set1_ps(VF_EXP_C4);
    g = _mm512_fmadd_ps(g, r, _mm512_set1_ps(VF_EXP_C3));
    g = _mm512_fmadd_ps(g, r, _mm512_set1_ps(VF_EXP_C2));
    g = _mm512_fmadd_ps(g, r, _mm512_set1_ps(VF_EXP_C1));
    g = _mm512_fmadd_ps(g, r, _mm512_set1_ps(VF_EXP_C0));
    __m512 er = _mm512_add_ps(_mm512_fmadd_ps(g, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    __m512 y = _mm512_scalef_ps(er, nf);
    __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(VF_EXP_MIN_ARG), _CMP_LT_OQ);
    __mmask16 huge = _mm512_cmp_ps_mask(x, _mm512_set1_ps(VF_EXP_MAX_ARG), _CMP_GT_OQ);
    y = _mm512_mask_blend_ps(tiny, y, _mm512_setzero_ps());
    return _mm512_mask_blend_ps(huge, y, _mm512_set1_ps(INFINITY));
}
/* The lanes below ln(FLT_MIN) (-inf's among them, whose reduction makes a NaN)
 * are zeroed by vscalefps's mask; NaN compares unordered and stays. vscalefps
 * takes any n, so no clamp. */
VF_INLINE vf vf_exp_bf16(vf x)
{
    const __mmask16 kept = _mm512_cmp_ps_mask(x, _mm512_set1_ps(VF_EXP_MIN_ARG), _CMP_NLT_UQ);
    __m512 nf = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(VF_EXP_LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(VF_EXP_BF16_LN2), x);
    __m512 h = _mm512_set1_ps(VF_EXP_BF16_C2);
    h = _mm512_fmadd_ps(h, r, _mm512_set1_ps(VF_EXP_BF16_C1));
    h = _mm512_fmadd_ps(h, r, _mm512_set1_ps(VF_EXP_BF16_C0));
    h = _mm512_fmadd_ps(h, r, _mm512_set1_ps(1.0f));
    h = _mm512_fmadd_ps(h, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(kept, h, nf);
}


typedef __m512i vu;
VF_INLINE vu vu_load(const uint32_t *p) { return _mm512_loadu_si512(p); }
VF_INLINE vu vu_set1(uint32_t x) { return _mm512_set1_epi32((int)x); }
VF_INLINE vu vu_xor(vu a, vu b) { return _mm512_xor_si512(a, b); }
/* vpmuludq multiplies the even lanes into 64-bit products; the odd lanes are
 * shifted down to be multiplied the same way. */
VF_INLINE vu vu_mul_wide(vu a, uint32_t m, vu *hi)
{
    const __m512i factor = _mm512_set1_epi32((int)m);
    const __m512i even = _mm512_mul_epu32(a, factor);
    const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), factor);
    *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
    return _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}
VF_INLINE vf vu_unit_below(vu x, float p, vf below, vf above)
{
    const vf unit = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(x, 8)),
                                  _mm512_set1_ps(0x1p-24f));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(unit, _mm512_set1_ps(p), _CMP_LT_OQ), above,
                                below);
}
/* Pairs (a_i, b_i) and (c_i, d_i) first, then the pairs of pairs as doubles. */
VF_INLINE void vf_store_interleaved4(float *p, vf a, vf b, vf c, vf d)
{
    const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i high =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512d ab_low = _mm512_castps_pd(_mm512_permutex2var_ps(a, low, b));
    const __m512d ab_high = _mm512_castps_pd(_mm512_permutex2var_ps(a, high, b));
    const __m512d cd_low = _mm512_castps_pd(_mm512_permutex2var_ps(c, low, d));
    const __m512d cd_high = _mm512_castps_pd(_mm512_permutex2var_ps(c, high, d));
    const __m512i first = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    const __m512i second = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    _mm512_storeu_ps(p, _mm512_castpd_ps(_mm512_permutex2var_pd(ab_low, first, cd_low)));
    _mm512_storeu_ps(p + 16, _mm512_castpd_ps(_mm512_permutex2var_pd(ab_low, second, cd_low)));
    _mm512_storeu_ps(p + 32, _mm512_castpd_ps(_mm512_permutex2var_pd(ab_high, first, cd_high)));
    _mm512_storeu_ps(p + 48, _mm512_castpd_ps(_mm512_permutex2var_pd(ab_high, second, cd_high)));
}

#if defined(ATTN_SIMD_DPBF16)
typedef __m512bh vp;
VF_INLINE vp vp_load(const uint16_t *p) { return (vp)_mm512_loadu_si512(p); }
VF_INLINE vp vp_set1(const uint16_t *p)
{
    uint32_t pair;
    memcpy(&pair, p, sizeof pair);
    return (vp)_mm512_set1_epi32((int)pair);
}
VF_INLINE vf vp_dot(vf acc, vp a, vp b) { return _mm512_dpbf16_ps(acc, a, b); }
VF_INLINE void vp_store_rounded(uint16_t *p, vf even, vf odd)
{
    /* Both rounded by one instruction (odd's above even's), then interleaved. */
    static const uint16_t interleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,
                                            21, 6, 22, 7, 23, 8,  24, 9,  25, 10, 26,
                                            11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(odd, even);
    _mm512_storeu_si512(p, _mm512_permutexvar_epi16(_mm512_loadu_si512(interleave), both));
}
#else
typedef struct vp {
    vf odd, even;
} vp;
VF_INLINE vp vp_load(const uint16_t *p)
{
    __m512i pairs = _mm512_loadu_si512(p);
    return (vp){_mm512_castsi512_ps(_mm512_and_si512(pairs, _mm512_set1_epi32((int)0xffff0000u))),
                _mm512_castsi512_ps(_mm512_slli_epi32(pairs, 16))};
}
#endif

#elif defined(ATTN_SIMD_AVX2)

#include <immintrin.h>

#define VF_WIDTH 8
typedef __m256 vf;

VF_INLINE vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
VF_INLINE void vf_store(float *p, vf x) { _mm256_storeu_ps(p, x); }
VF_INLINE vf vf_set1(float x) { return _mm256_set1_ps(x); }
VF_INLINE vf vf_zero(void) { return _mm256_setzero_ps(); }
VF_INLINE vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
VF_INLINE vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
VF_INLINE vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
VF_INLINE vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
VF_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }

VF_INLINE vf vf_replace(vf x, float match, float with)
{
    __m256 hit = _mm256_cmp_ps(x, _mm256_set1_ps(match), _CMP_EQ_OQ);
    return _mm256_blendv_ps(x, _mm256_set1_ps(with), hit);
}
VF_INLINE float vf_sum(vf x)
{
    __m128 half = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    half = _mm_add_ps(half, _mm_movehl_ps(half, half));
    half = _mm_add_ss(half, _mm_movehdup_ps(half));
    return _mm_cvtss_f32(half);
}

typedef struct vfd {
    __m256d lo, hi;
} vfd;
VF_INLINE vfd vfd_load(const double *p)
{
    return (vfd){_mm256_loadu_pd(p), _mm256_loadu_pd(p + 4)};
}
VF_INLINE void vfd_store(double *p, vfd x)
{
    _mm256_storeu_pd(p, x.lo);
    _mm256_storeu_pd(p + 4, x.hi);
}
VF_INLINE __m256d vfd_widen_low(vf x) { return _mm256_cvtps_pd(_mm256_castps256_ps128(x)); }
VF_INLINE __m256d vfd_widen_high(vf x) { return _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)); }
VF_INLINE vfd vfd_fma(vf a, vf b, vfd c)
{
    return (vfd){_mm256_fmadd_pd(vfd_widen_low(a), vfd_widen_low(b), c.lo),
                 _mm256_fmadd_pd(vfd_widen_high(a), vfd_widen_high(b), c.hi)};
}
VF_INLINE vfd vfd_add(vfd c, vf a)
{
    return (vfd){_mm256_add_pd(c.lo, vfd_widen_low(a)), _mm256_add_pd(c.hi, vfd_widen_high(a))};
}

/* e^x from er = e^r and n: er 2^n, 0 below ln(FLT_MIN), +inf above ln(FLT_MAX). */
VF_INLINE vf vf_exp_scale(vf x, __m256i n, vf er)
{
    __m256 two_n =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
    __m256 y = _mm256_mul_ps(er, two_n);
    __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(VF_EXP_MIN_ARG), _CMP_LT_OQ);
    __m256 huge = _mm256_cmp_ps(x, _mm256_set1_ps(VF_EXP_MAX_ARG), _CMP_GT_OQ);
    y = _mm256_andnot_ps(tiny, y);
    return _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), huge);
}

VF_INLINE vf vf_exp(vf x)
{
    __m256i n = _mm256_cvtps_epi32(_mm256_mul_ps(x, _mm256_set1_ps(VF_EXP_LOG2E)));
    __m256 nf = _mm256_cvtepi32_ps(n);
    __m256 r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(VF_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(VF_EXP_LN2_LO), r);
    __m256 g = _mm256_set1_ps(VF_EXP_C4);
    g = _mm256_fmadd_ps(g, r, _mm256_set1_ps(VF_EXP_C3));
    g = _mm256_fmadd_ps(g, r, _mm256_set1_ps(VF_EXP_C2));
    g = _mm256_fmadd_ps(g, r, _mm256_set1_ps(VF_EXP_C1));
    g = _mm256_fmadd_ps(g, r, _mm256_set1_ps(VF_EXP_C0));
    __m256 er = _mm256_add_ps(_mm256_fmadd_ps(g, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    return vf_exp_scale(x, n, er);
}
VF_INLINE vf vf_exp_bf16(vf x)
{
    __m256i n = _mm256_cvtps_epi32(_mm256_mul_ps(x, _mm256_set1_ps(VF_EXP_LOG2E)));
    __m256 nf = _mm256_cvtepi32_ps(n);
    __m256 r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(VF_EXP_BF16_LN2), x);
    __m256 h = _mm256_set1_ps(VF_EXP_BF16_C2);
    h = _mm256_fmadd_ps(h, r, _mm256_set1_ps(VF_EXP_BF16_C1));
    h = _mm256_fmadd_ps(h, r, _mm256_set1_ps(VF_EXP_BF16_C0));
    h = _mm256_fmadd_ps(h, r, _mm256_set1_ps(1.0f));
    h = _mm256_fmadd_ps(h, r, _mm256_set1_ps(1.0f));
    return vf_exp_scale(x, n, h);
}


typedef __m256i vu;
VF_INLINE vu vu_load(const uint32_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
VF_INLINE vu vu_set1(uint32_t x) { return _mm256_set1_epi32((int)x); }
VF_INLINE vu vu_xor(vu a, vu b) { return _mm256_xor_si256(a, b); }
VF_INLINE vu vu_mul_wide(vu a, uint32_t m, vu *hi)
{
    const __m256i factor = _mm256_set1_epi32((int)m);
    const __m256i even = _mm256_mul_epu32(a, factor);
    const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), factor);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
    return _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}
VF_INLINE vf vu_unit_below(vu x, float p, vf below, vf above)
{
    const vf unit = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(x, 8)),
                                  _mm256_set1_ps(0x1p-24f));
    return _mm256_blendv_ps(above, below, _mm256_cmp_ps(unit, _mm256_set1_ps(p), _CMP_LT_OQ));
}
/* Within each 128-bit half: pairs, then quads; then the halves in order. */
VF_INLINE void vf_store_interleaved4(float *p, vf a, vf b, vf c, vf d)
{
    const __m256d ab_low = _mm256_castps_pd(_mm256_unpacklo_ps(a, b));  /* a0 b0 a1 b1 | a4 .. */
    const __m256d ab_high = _mm256_castps_pd(_mm256_unpackhi_ps(a, b)); /* a2 b2 a3 b3 | a6 .. */
    const __m256d cd_low = _mm256_castps_pd(_mm256_unpacklo_ps(c, d));
    const __m256d cd_high = _mm256_castps_pd(_mm256_unpackhi_ps(c, d));
    const __m256 q0 = _mm256_castpd_ps(_mm256_unpacklo_pd(ab_low, cd_low));   /* quads 0 | 4 */
    const __m256 q1 = _mm256_castpd_ps(_mm256_unpackhi_pd(ab_low, cd_low));   /* quads 1 | 5 */
    const __m256 q2 = _mm256_castpd_ps(_mm256_unpacklo_pd(ab_high, cd_high)); /* quads 2 | 6 */
    const __m256 q3 = _mm256_castpd_ps(_mm256_unpackhi_pd(ab_high, cd_high)); /* quads 3 | 7 */
    _mm256_storeu_ps(p, _mm256_permute2f128_ps(q0, q1, 0x20));
    _mm256_storeu_ps(p + 8, _mm256_permute2f128_ps(q2, q3, 0x20));
    _mm256_storeu_ps(p + 16, _mm256_permute2f128_ps(q0, q1, 0x31));
    _mm256_storeu_ps(p + 24, _mm256_permute2f128_ps(q2, q3, 0x31));
}

typedef struct vp {
    vf odd, even;
} vp;
VF_INLINE vp vp_load(const uint16_t *p)
{
    __m256i pairs = _mm256_loadu_si256((const __m256i *)p);
    return (vp){_mm256_castsi256_ps(_mm256_and_si256(pairs, _mm256_set1_epi32((int)0xffff0000u))),
                _mm256_castsi256_ps(_mm256_slli_epi32(pairs, 16))};
}

#else /* ATTN_SIMD_SCALAR */

#define VF_WIDTH 1
typedef float vf;

VF_INLINE vf vf_load(const float *p) { return *p; }
VF_INLINE void vf_store(float *p, vf x) { *p = x; }
VF_INLINE vf vf_set1(float x) { return x; }
VF_INLINE vf vf_zero(void) { return 0.0f; }
VF_INLINE vf vf_add(vf a, vf b) { return a + b; }
VF_INLINE vf vf_sub(vf a, vf b) { return a - b; }
VF_INLINE vf vf_mul(vf a, vf b) { return a * b; }
/* Like the instructions: the second operand when either is NaN. */
VF_INLINE vf vf_max(vf a, vf b) { return a > b ? a : b; }
/* Two roundings: fmaf is a slow library call on CPUs without FMA. */
VF_INLINE vf vf_fma(vf a, vf b, vf c) { return a * b + c; }

VF_INLINE vf vf_replace(vf x, float match, float with) { return x == match ? with : x; }
VF_INLINE float vf_sum(vf x) { return x; }

typedef double vfd;
VF_INLINE vfd vfd_load(const double *p) { return *p; }
VF_INLINE void vfd_store(double *p, vfd x) { *p = x; }
/* The product is exact in double: the same bits as a fused multiply-add. */
VF_INLINE vfd vfd_fma(vf a, vf b, vfd c) { return (double)a * (double)b + c; }
VF_INLINE vfd vfd_add(vfd c, vf a) { return c + (double)a; }

VF_INLINE vf vf_exp(vf x) { return lane_exp(x); }
VF_INLINE vf vf_exp_bf16(vf x) { return lane_exp_bf16(x); }

typedef uint32_t vu;
VF_INLINE vu vu_load(const uint32_t *p) { return *p; }
VF_INLINE vu vu_set1(uint32_t x) { return x; }
VF_INLINE vu vu_xor(vu a, vu b) { return a ^ b; }
VF_INLINE vu vu_mul_wide(vu a, uint32_t m, vu *hi)
{
    const uint64_t product = (uint64_t)a * m;
    *hi = (uint32_t)(product >> 32);
    return (uint32_t)product;
}
VF_INLINE vf vu_unit_below(vu x, float p, vf below, vf above)
{
    return (float)(x >> 8) * 0x1p-24f < p ? below : above;
}
VF_INLINE void vf_store_interleaved4(float *p, vf a, vf b, vf c, vf d)
{
    p[0] = a;
    p[1] = b;
    p[2] = c;
    p[3] = d;
}

typedef struct vp {
    vf odd, even;
} vp;
VF_INLINE vp vp_load(const uint16_t *p) { return (vp){attn_bf16_widen(p[1]), attn_bf16_widen(p[0])}; }

#endif

/* The widening variants' vp_set1, vp_dot and vp_store_rounded (see above). */
#if !defined(ATTN_SIMD_DPBF16)
VF_INLINE vp vp_set1(const uint16_t *p)
{
    return (vp){vf_set1(attn_bf16_widen(p[1])), vf_set1(attn_bf16_widen(p[0]))};
}
VF_INLINE vf vp_dot(vf acc, vp a, vp b)
{
    return vf_fma(a.even, b.even, vf_fma(a.odd, b.odd, acc));
}
VF_INLINE void vp_store_rounded(uint16_t *p, vf even, vf odd)
{
    float e[VF_WIDTH], o[VF_WIDTH];
    vf_store(e, even);
    vf_store(o, odd);
    for (int i = 0; i < VF_WIDTH; i++) {
        p[2 * i] = bf16_round_flushing(e[i]);
        p[2 * i + 1] = bf16_round_flushing(o[i]);
    }
}
#endif

#endif
