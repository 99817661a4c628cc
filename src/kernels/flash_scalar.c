/* The fused attention kernels in portable C, for any CPU. */
#include "kernels/flash.h"

#define ATTN_SIMD_SCALAR
#include "kernels/flash_impl.h"

static bool always(void) { return true; }

const attn_flash_kernels attn_flash_scalar = {
    "scalar", always, flash_forward, flash_backward, flash_workspace_bytes, flash_exp};
