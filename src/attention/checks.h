/* Internal: the argument checks the attention functions share, written once. */
#ifndef ATTN_SRC_ATTENTION_CHECKS_H
#define ATTN_SRC_ATTENTION_CHECKS_H

#include "attn/attention.h"

/* A mask argument: NULL (no mask), or a known attn_mask_type with data. The
 * messages start with `name` ("mask", "attn_mask", ...). */
attn_status attn_mask_check(const attn_mask *mask, const char *name);

/* Everything attn_sdpa_forward (and the reference's) needs before a kernel runs:
 * the config (attn_sdpa_check) and the pointers it reads or writes. The kernels
 * then take the config as checked. weights may be NULL. */
attn_status attn_sdpa_check_forward(const attn_sdpa_config *cfg, const float *out,
                                    const float *lse, const float *q, const float *k,
                                    const float *v);

/* The same for the backward: dq, dk and dv may each be NULL (not wanted). */
attn_status attn_sdpa_check_backward(const attn_sdpa_config *cfg, const float *dout,
                                     const float *q, const float *k, const float *v,
                                     const float *lse);

#endif
