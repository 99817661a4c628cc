/* Shared by the tests of softmax and of soft and hard attention: random masks of
 * every type in random broadcast shapes, read back in float64 by the test's own
 * indexing (not attn_mask_apply), and a float64 masked softmax as the reference. */
#ifndef ATTN_TEST_ATTENTION_REF_H
#define ATTN_TEST_ATTENTION_REF_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "testutil.h"

/* A mask for scores seen as (B, 1, Lq, Lk). */
typedef struct mask_case {
    attn_mask mask;
    attn_mask_type type;
    int64_t dims[4]; /* stored shape as 4-D: (B or 1, 1, Lq or 1, Lk or 1) */
    int ndim;        /* as passed to attn_mask_init: some leading 1s dropped */
    void *data;
} mask_case;

static inline const char *mask_type_name(attn_mask_type type)
{
    return type == ATTN_MASK_BOOL ? "bool" : type == ATTN_MASK_BOOL_KEEP ? "bool-keep" : "float";
}

/* About 30% of entries excluded and, half the time, one slice of keys excluded
 * entirely, so that fully masked rows turn up often. Float masks exclude with -inf
 * and add values in [-1, 1) elsewhere. Returns the status of attn_mask_init. */
static inline attn_status mask_case_make(mask_case *mc, attn_rng *rng, attn_mask_type type, int B,
                                         int Lq, int Lk)
{
    mc->type = type;
    mc->dims[0] = attn_rng_below(rng, 2) ? B : 1;
    mc->dims[1] = 1;
    mc->dims[2] = attn_rng_below(rng, 2) ? Lq : 1;
    mc->dims[3] = attn_rng_below(rng, 3) ? Lk : 1;
    int first = 0;
    while (first < 3 && mc->dims[first] == 1 && attn_rng_below(rng, 2)) first++;
    mc->ndim = 4 - first;
    size_t count = (size_t)(mc->dims[0] * mc->dims[2] * mc->dims[3]);
    bool *excluded = calloc(count, sizeof *excluded);
    if (excluded == NULL) abort();
    for (size_t e = 0; e < count; e++) excluded[e] = attn_rng_uniform(rng) < 0.3f;
    if (attn_rng_below(rng, 2)) {
        size_t row = attn_rng_below(rng, (uint32_t)(mc->dims[0] * mc->dims[2]));
        for (int64_t j = 0; j < mc->dims[3]; j++) excluded[row * (size_t)mc->dims[3] + j] = true;
    }
    if (type == ATTN_MASK_FLOAT) {
        float *add = malloc(count * sizeof *add);
        if (add == NULL) abort();
        for (size_t e = 0; e < count; e++)
            add[e] = excluded[e] ? -INFINITY : 2.0f * attn_rng_uniform(rng) - 1.0f;
        mc->data = add;
    } else {
        uint8_t *flags = malloc(count);
        if (flags == NULL) abort();
        for (size_t e = 0; e < count; e++)
            flags[e] = (uint8_t)(type == ATTN_MASK_BOOL ? excluded[e] : !excluded[e]);
        mc->data = flags;
    }
    free(excluded);
    const int64_t target[4] = {B, 1, Lq, Lk};
    return attn_mask_init(&mc->mask, type, mc->data, mc->ndim, mc->dims + first, target);
}

static inline void mask_case_free(mask_case *mc) { free(mc->data); }

/* The masked score at (b, i, j) in float64; mc may be NULL (no mask). */
static inline double mask_case_apply(const mask_case *mc, double score, int b, int i, int j)
{
    if (mc == NULL) return score;
    int64_t at = ((mc->dims[0] == 1 ? 0 : b) * mc->dims[2] + (mc->dims[2] == 1 ? 0 : i)) *
                     mc->dims[3] +
                 (mc->dims[3] == 1 ? 0 : j);
    if (mc->type == ATTN_MASK_FLOAT) return score + ((const float *)mc->data)[at];
    bool flag = ((const uint8_t *)mc->data)[at] != 0;
    bool excluded = mc->type == ATTN_MASK_BOOL ? flag : !flag;
    return excluded ? -INFINITY : score;
}

/* y = softmax over n of the masked row x of (b, i), in float64; a row with every
 * key excluded gives zeros. Returns whether the row had an unmasked key. */
static inline bool ref_softmax_row(double *y, const float *x, const mask_case *mc, int b, int i,
                                   int n)
{
    double max = -INFINITY;
    for (int j = 0; j < n; j++) {
        y[j] = mask_case_apply(mc, x[j], b, i, j);
        if (y[j] > max) max = y[j];
    }
    if (max == -INFINITY) {
        for (int j = 0; j < n; j++) y[j] = 0.0;
        return false;
    }
    double sum = 0.0;
    for (int j = 0; j < n; j++) sum += (y[j] = exp(y[j] - max));
    for (int j = 0; j < n; j++) y[j] /= sum;
    return true;
}

static inline bool has_nan(const float *x, size_t n)
{
    for (size_t e = 0; e < n; e++)
        if (isnan(x[e])) return true;
    return false;
}

#endif
