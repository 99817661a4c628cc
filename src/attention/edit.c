/* Interventions on attention weights (attn/attention.h): a row's weights
 * permuted among the keys it sees, or made uniform over them. The permutation is
 * Fisher-Yates (Knuth's algorithm P) on the seen keys' weights, each draw a
 * 64-bit Philox number keyed by (seed, row) at counter k, scaled to [0, k]
 * by a multiply-shift (a bias below (k + 1) / 2^64, far under what a test sees). */
#include "attn/attention.h"
#include "core/error.h"

attn_status attn_weights_edit_check(const attn_weights_edit *edit, int heads)
{
    attn_status s;
    if ((s = attn_check_not_null(edit, "edit"))) return s;
    if (edit->kind != ATTN_EDIT_PERMUTE && edit->kind != ATTN_EDIT_UNIFORM)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "edit kind %d is not permute or uniform",
                          (int)edit->kind);
    if (edit->head < -1 || edit->head >= heads)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "edited head %d is not a head 0 .. %d (or -1 for every head)",
                          edit->head, heads - 1);
    if (edit->first_row < 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "edit's first row %lld is negative",
                          (long long)edit->first_row);
    return ATTN_OK;
}

/* A draw in [0, k], k < 2^31: floor(bits * (k + 1) / 2^64) for 64 Philox bits,
 * the product taken in two 32-bit halves. */
static uint64_t draw_at_most(uint64_t seed, int64_t row, uint64_t k)
{
    uint32_t block[4];
    attn_philox4x32(block, seed, (uint64_t)row, k);
    const uint64_t m = k + 1, low = ((uint64_t)block[1] * m) >> 32;
    return ((uint64_t)block[0] * m + low) >> 32;
}

void attn_weights_edit_row(float *w, const int *seen, int n_seen, const attn_weights_edit *edit,
                           int64_t row)
{
    if (edit->kind == ATTN_EDIT_UNIFORM) {
        for (int c = 0; c < n_seen; c++) w[seen[c]] = 1.0f / (float)n_seen;
        return;
    }
    /* Fisher-Yates over the seen keys: the k-th swaps with one of the first k + 1. */
    for (int k = n_seen - 1; k > 0; k--) {
        const int pick = (int)draw_at_most(edit->seed, row, (uint64_t)k);
        const float t = w[seen[k]];
        w[seen[k]] = w[seen[pick]];
        w[seen[pick]] = t;
    }
}
