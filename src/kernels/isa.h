/* Internal: the run-time instruction-set dispatch, the one place that decides
 * which compiled variant of the library's vector code runs.
 *
 * Each variant is one translation unit built with its own -m flags
 * (isa_avx512bf16.c, isa_avx512.c, isa_avx2.c, isa_scalar.c; see CMakeLists.txt)
 * holding every vector kernel: the fused attention kernels (flash.h) and the
 * elementwise loops (vec.h). The choice is made once per process: the variant
 * the environment variable ATTN_SIMD (avx512bf16, avx512, avx2 or scalar) names,
 * else the best this CPU runs (AVX-512 with AVX512_BF16, else AVX-512, else AVX2
 * with FMA, else portable C). The two AVX-512 variants differ only in the bf16
 * attention kernels' products (vdpbf16ps or widened to float32). An unknown name,
 * or one this CPU or build cannot
 * run, makes every call that needs vector code fail with a message. */
#ifndef ATTN_SRC_KERNELS_ISA_H
#define ATTN_SRC_KERNELS_ISA_H

#include <stdbool.h>

#include "attn/core.h"
#include "kernels/flash.h"
#include "kernels/vec.h"

typedef struct attn_isa {
    const char *name;        /* as ATTN_SIMD spells it */
    bool (*supported)(void); /* whether this CPU runs it (false if not built) */
    const attn_flash_kernels *flash;
    const attn_vec_kernels *vec;
} attn_isa;

/* Defined whatever the target; on a compiler or CPU family without the
 * instruction set, `supported` returns false and the kernels are NULL. */
extern const attn_isa attn_isa_avx512bf16;
extern const attn_isa attn_isa_avx512;
extern const attn_isa attn_isa_avx2;
extern const attn_isa attn_isa_scalar;

/* The variant `forced` names (NULL or "" for the best this CPU runs), or an
 * error naming why there is none. attn_isa_current applies it to ATTN_SIMD. */
attn_status attn_isa_select(const attn_isa **isa, const char *forced);

/* The variant chosen for this process, at the first call, from ATTN_SIMD. */
attn_status attn_isa_current(const attn_isa **isa);

#endif
