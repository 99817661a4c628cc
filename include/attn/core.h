/* attn/core.h: status codes and error messages, the counter-based random
 * generator, thread count, CPU features and reading UTF-8.
 *
 * Every public function that can fail returns an attn_status (ATTN_OK == 0) and,
 * on failure, leaves a message for the calling thread in attn_last_error() that
 * names the problem and the offending value, e.g.
 * "embed_dim 10 is not divisible by num_heads 3". The library never exits or
 * prints; the caller decides what to do with the message.
 */
#ifndef ATTN_CORE_H
#define ATTN_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Marks a function of the public API (every header of include/attn/ includes
 * this one). The library is built with hidden visibility, so libattn.so exports
 * the functions so marked and nothing else: its internal functions cannot
 * collide with a program's own. */
#if defined(__GNUC__)
#define ATTN_API __attribute__((visibility("default")))
#else
#define ATTN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_VERSION_MAJOR 0
#define ATTN_VERSION_MINOR 1
#define ATTN_VERSION_PATCH 0
#define ATTN_VERSION_STRING "0.1.0"

/* The version of the library loaded at run time (ATTN_VERSION_STRING of its
 * build), for a program or binding that must match it. */
ATTN_API const char *attn_version(void);

/* sizeof the public struct named `name` ("attn_sdpa_config", "attn_record", and
 * the others a binding fills or reads: src/models/struct_sizes.c lists them), or
 * 0 for a name it does not know, so that a binding mirroring a struct can check
 * its copy against the library it loaded. */
ATTN_API size_t attn_struct_size(const char *name);

typedef enum attn_status {
    ATTN_OK = 0,
    ATTN_ERR_INVALID_ARGUMENT, /* null pointer, bad size, inconsistent shapes */
    ATTN_ERR_OUT_OF_MEMORY,
    ATTN_ERR_IO,               /* a file could not be opened, read, written or renamed */
    ATTN_ERR_FORMAT,           /* a file's contents are malformed */
    ATTN_ERR_NOT_FOUND,        /* a named tensor or key is missing */
    ATTN_ERR_NUMERIC,          /* NaN or Inf where a finite value is required */
    ATTN_ERR_UNSUPPORTED       /* valid, but not implemented (e.g. a dtype) */
} attn_status;

/* A short constant name for a status, e.g. "invalid argument". */
ATTN_API const char *attn_status_string(attn_status status);

/* The message of the last failure in the calling thread ("" if none). The
 * pointer stays valid until the next failing call in the same thread. */
ATTN_API const char *attn_last_error(void);

/* Forgets the calling thread's last message. */
ATTN_API void attn_clear_error(void);

/* ---- random numbers ---------------------------------------------------------
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC 2011): the value at (seed, index) is a pure function of the two, so any
 * parallel loop that draws by index gets the same numbers whatever the thread
 * count or order. A stream (attn_rng) is a seed and a position in it. */

/* One Philox block: four 32-bit words for the 64-bit key `seed` and the 128-bit
 * counter (counter_hi, counter_lo). */
ATTN_API void attn_philox4x32(uint32_t out[4], uint64_t seed, uint64_t counter_hi,
                              uint64_t counter_lo);

/* The index-th uniform number in [0, 1) of the stream `seed` (24 random bits). */
ATTN_API float attn_uniform_at(uint64_t seed, uint64_t index);

typedef struct attn_rng {
    uint64_t seed;
    uint64_t position; /* index of the next 32-bit word */
} attn_rng;

ATTN_API void attn_rng_init(attn_rng *rng, uint64_t seed);
ATTN_API uint32_t attn_rng_u32(attn_rng *rng);
/* Uniform in [0, 1), the same numbers as attn_uniform_at(seed, position++). */
ATTN_API float attn_rng_uniform(attn_rng *rng);
/* Standard normal (Box-Muller on two uniforms). */
ATTN_API float attn_rng_normal(attn_rng *rng);
/* x[i] = uniform in [lo, hi), i < n. */
ATTN_API void attn_rng_fill_uniform(attn_rng *rng, float *x, size_t n, float lo, float hi);
/* x[i] = mean + std * standard normal, i < n. */
ATTN_API void attn_rng_fill_normal(attn_rng *rng, float *x, size_t n, float mean, float std);
/* An integer in [0, n) without modulo bias; n > 0. */
ATTN_API uint32_t attn_rng_below(attn_rng *rng, uint32_t n);

/* ---- threads ------------------------------------------------------------------
 * The count starts from the environment variable ATTN_NUM_THREADS if it is set
 * (a positive integer), else from OpenMP's default. Results do not depend on it.
 * attn_get_num_threads is the count the library's calls use: 1 when called
 * inside a parallel region of the caller's whose nested regions get one thread
 * (OpenMP's default), as when threads each run a model (attn_gpt_replicate). */
ATTN_API attn_status attn_set_num_threads(int n);
ATTN_API int attn_get_num_threads(void);
/* Whether the library was built with OpenMP (else everything runs on one thread). */
ATTN_API bool attn_built_with_openmp(void);

/* ---- CPU features -------------------------------------------------------------- */
typedef struct attn_cpu_features {
    bool sse42, avx, avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512bf16;
} attn_cpu_features;

/* The features of the CPU this process runs on, with OS support for the wide
 * registers checked (XGETBV). All false on non-x86 machines. */
ATTN_API attn_cpu_features attn_cpu_detect(void);

/* A space-separated list of the features that are present, e.g.
 * "sse4.2 avx avx2 fma avx512f". Written into buf (always terminated). */
ATTN_API void attn_cpu_describe(const attn_cpu_features *features, char *buf, size_t size);

/* ---- bfloat16 ------------------------------------------------------------------
 * bfloat16 (the bf16 attention kernels' storage, attn_sdpa_bf16_forward of
 * attn/attention.h) is a uint16_t holding the top half of a float32: the same
 * 8 exponent bits, 8 significant bits (unit roundoff 2^-8). */

/* dst[i] = src[i] rounded to the nearest bfloat16, ties to even, as PyTorch's
 * .to(torch.bfloat16); subnormals kept, values past the largest bfloat16 become
 * infinite, a NaN stays a quiet NaN of its sign. dst and src must not overlap. */
ATTN_API void attn_bf16_from_float(uint16_t *dst, const float *src, size_t n);
/* dst[i] = src[i] exactly (every bfloat16 is a float32). */
ATTN_API void attn_float_from_bf16(float *dst, const uint16_t *src, size_t n);

/* The precision of a computation's matrix products: float32 throughout, or bf16
 * operands (float32 values rounded as attn_bf16_from_float) with products and
 * sums in float32 (attn_gemm of attn/kernels.h; mixed-precision training, where
 * everything else stays float32). Named "float32" and "bf16"; parsing an unknown
 * name fails listing the known ones. */
typedef enum attn_precision {
    ATTN_FLOAT32,
    ATTN_BF16,
} attn_precision;

ATTN_API const char *attn_precision_name(attn_precision precision);
ATTN_API attn_status attn_precision_parse(attn_precision *precision, const char *name);

/* ---- UTF-8 ---- */

/* The length (1 to 4) of the well-formed UTF-8 character that starts at s, of
 * which at most n bytes are read, and its code point in *cp (unless cp is NULL);
 * 0 if none starts there: a stray continuation byte, an overlong form, a
 * surrogate, a code point past U+10FFFF or a character cut short by n. A NUL
 * byte is the character U+0000. */
ATTN_API int attn_utf8_char(const char *s, size_t n, uint32_t *cp);

/* The instruction set that all of the library's vector code runs (the fused
 * attention kernels, activations, recurrent cells, AdamW, additive attention):
 * "avx512", "avx2" or "scalar", chosen once per process, the one the environment
 * variable ATTN_SIMD names, else the best this CPU runs; or a sentence saying why
 * none can (a bad ATTN_SIMD, which makes those calls fail with a message). */
ATTN_API const char *attn_simd_variant(void);

/* Checks the environment variables the library reads: ATTN_NUM_THREADS (when set,
 * an integer in [1, 1024]) and ATTN_SIMD (when set, a variant this CPU runs).
 * The library itself goes on without a bad one (OpenMP's thread count; vector
 * code failing with a message); a program can refuse it at start instead, as
 * the attn tool does. */
ATTN_API attn_status attn_check_environment(void);

/* The largest sizes a model config may give (a model file's metadata included),
 * so that no size product overflows: a vocabulary (every Unicode code point
 * fits), a sequence length or block, a width (embedding, hidden, feed-forward). */
#define ATTN_MAX_VOCAB (1 << 21)
#define ATTN_MAX_LENGTH (1 << 16)
#define ATTN_MAX_WIDTH (1 << 16)

#ifdef __cplusplus
}
#endif
#endif
