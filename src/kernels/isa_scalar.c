/* Every vector kernel of the library in portable C, for any CPU (built with the
 * target's baseline flags, for which the compiler may still vectorise the
 * elementwise loops, e.g. SSE2 on x86-64). */
#include "kernels/isa.h"

#define ATTN_SIMD_SCALAR
#include "kernels/flash_impl.h"
#include "kernels/vec_impl.h"

static bool always(void) { return true; }

const attn_isa attn_isa_scalar = {
    .name = "scalar", .supported = always, .flash = &flash_kernels, .vec = &vec_kernels};
