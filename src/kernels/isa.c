/* The run-time instruction-set dispatch (isa.h): the variant is chosen once, at
 * the first call that needs vector code, and kept for the life of the process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "core/error.h"
#include "core/threads.h"
#include "kernels/isa.h"

/* In order of preference. */
static const attn_isa *const variants[] = {&attn_isa_avx512bf16, &attn_isa_avx512, &attn_isa_avx2,
                                           &attn_isa_scalar};
enum { VARIANT_COUNT = sizeof variants / sizeof variants[0] };

attn_status attn_isa_select(const attn_isa **isa, const char *forced)
{
    if (forced != NULL && *forced != '\0') {
        for (int i = 0; i < VARIANT_COUNT; i++) {
            if (strcmp(forced, variants[i]->name) != 0) continue;
            if (!variants[i]->supported())
                return attn_error(ATTN_ERR_UNSUPPORTED,
                                  "ATTN_SIMD=%s, but this CPU or this build has no %s kernels",
                                  forced, forced);
            *isa = variants[i];
            return ATTN_OK;
        }
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "ATTN_SIMD=%s is not one of avx512bf16, avx512, avx2, scalar", forced);
    }
    *isa = &attn_isa_scalar;
    for (int i = VARIANT_COUNT - 1; i >= 0; i--)
        if (variants[i]->supported()) *isa = variants[i];
    return ATTN_OK;
}

/* ATTN_SIMD as it was at the choice (a copy: the environment may change), and
 * the variant chosen, NULL when ATTN_SIMD names none that runs. */
static char forced[64];
static const attn_isa *chosen;
static once_flag choose_once = ONCE_FLAG_INIT;

static void choose(void)
{
    const char *name = getenv("ATTN_SIMD");
    /* A longer name is cut, which names no variant either. */
    if (name != NULL) snprintf(forced, sizeof forced, "%s", name);
    if (attn_isa_select(&chosen, forced) != ATTN_OK) chosen = NULL;
}

attn_status attn_isa_current(const attn_isa **isa)
{
    call_once(&choose_once, choose);
    /* On failure the selection is repeated for its message, which belongs to
     * the calling thread. */
    if (chosen == NULL) return attn_isa_select(isa, forced);
    *isa = chosen;
    return ATTN_OK;
}

attn_status attn_check_environment(void)
{
    int threads;
    const attn_isa *isa;
    attn_status s = attn_threads_env(&threads);
    return s ? s : attn_isa_current(&isa);
}

const char *attn_simd_variant(void)
{
    const attn_isa *isa;
    if (attn_isa_current(&isa) != ATTN_OK)
        return "none (ATTN_SIMD names no variant this CPU runs)";
    return isa->name;
}
