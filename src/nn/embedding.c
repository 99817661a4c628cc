/* Table look-up, as nn.Embedding: forward gathers rows, backward scatters the
 * gradient back to them (adding up repeated ids). */
#include <string.h>

#include "attn/nn.h"
#include "core/error.h"

/* Every id is checked before anything is written, so a bad id leaves the output
 * and the gradient untouched. */
static attn_status check_ids(const int32_t *ids, int N, int num)
{
    for (int n = 0; n < N; n++)
        if (ids[n] < 0 || ids[n] >= num)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "embedding id %d at position %d is outside [0, %d)", (int)ids[n],
                              n, num);
    return ATTN_OK;
}

static attn_status check_sizes(int N, int num, int dim)
{
    attn_status s;
    if ((s = attn_check_at_least(N, 1, "embedding N")) ||
        (s = attn_check_at_least(num, 1, "embedding num")) ||
        (s = attn_check_at_least(dim, 1, "embedding dim")))
        return s;
    return ATTN_OK;
}

/* weight: (num, dim), ids: (N) -> y: (N, dim) = weight[ids]. */
attn_status attn_embedding_forward(float *y, const int32_t *ids, const float *weight, int N,
                                   int num, int dim)
{
    attn_status s;
    if ((s = check_sizes(N, num, dim)) || (s = attn_check_not_null(y, "embedding y")) ||
        (s = attn_check_not_null(ids, "embedding ids")) ||
        (s = attn_check_not_null(weight, "embedding weight")) || (s = check_ids(ids, N, num)))
        return s;
    for (int n = 0; n < N; n++)
        memcpy(y + (size_t)n * dim, weight + (size_t)ids[n] * dim, (size_t)dim * sizeof *y);
    return ATTN_OK;
}

/* dweight: (num, dim) += dy[n] into row ids[n], for every n whose id is not
 * padding_idx; dy: (N, dim). Rows are added in order of n, so repeated ids sum
 * the same way every time. */
attn_status attn_embedding_backward(float *dweight, const float *dy, const int32_t *ids, int N,
                                    int num, int dim, int padding_idx)
{
    attn_status s;
    if ((s = check_sizes(N, num, dim)) || (s = attn_check_not_null(dweight, "embedding dweight")) ||
        (s = attn_check_not_null(dy, "embedding dy")) ||
        (s = attn_check_not_null(ids, "embedding ids")) || (s = check_ids(ids, N, num)))
        return s;
    if (padding_idx < -1 || padding_idx >= num)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "embedding padding_idx %d is neither -1 nor in [0, %d)", padding_idx,
                          num);
    for (int n = 0; n < N; n++) {
        if (ids[n] == padding_idx) continue;
        float *row = dweight + (size_t)ids[n] * dim;
        const float *g = dy + (size_t)n * dim;
        for (int i = 0; i < dim; i++) row[i] += g[i];
    }
    return ATTN_OK;
}
