/* Where a token is: the sinusoidal table, rotary embeddings (RoPE) and ALiBi's
 * head slopes. Angles and slopes are computed in double and rounded once. */
#include <math.h>
#include <stdlib.h>

#include "attn/attention.h"
#include "core/error.h"

attn_status attn_sinusoidal_positions(float *pe, int L, int E)
{
    attn_status s;
    if ((s = attn_check_not_null(pe, "sinusoidal positions")) ||
        (s = attn_check_at_least(L, 1, "sinusoidal positions L")) ||
        (s = attn_check_at_least(E, 1, "sinusoidal positions E")))
        return s;
    for (int pos = 0; pos < L; pos++)
        for (int i = 0; i < E; i += 2) {
            double angle = pos * exp(-(double)i * log(10000.0) / E);
            pe[(size_t)pos * E + i] = (float)sin(angle);
            if (i + 1 < E) pe[(size_t)pos * E + i + 1] = (float)cos(angle);
        }
    return ATTN_OK;
}

static attn_status check_rope(const void *out, const void *in, int B, int H, int L, int D,
                              int pos0, float theta)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "rope output")) ||
        (s = attn_check_not_null(in, "rope input")) ||
        (s = attn_check_at_least(B, 1, "rope B")) || (s = attn_check_at_least(H, 1, "rope H")) ||
        (s = attn_check_at_least(L, 1, "rope L")) || (s = attn_check_at_least(D, 2, "rope D")) ||
        (s = attn_check_at_least(pos0, 0, "rope pos0")))
        return s;
    if (D % 2 != 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "rope needs an even head dimension, not %d",
                          D);
    if (!(theta > 0.0f) || !isfinite(theta))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "rope theta %g is not finite and > 0",
                          (double)theta);
    return ATTN_OK;
}

/* cos and sin of every (row t, pair i): cs: (L, D/2, 2). */
static float *rope_table(int L, int D, int pos0, float theta)
{
    const int half = D / 2;
    float *cs = malloc((size_t)L * (size_t)half * 2 * sizeof *cs);
    if (cs == NULL) return NULL;
    for (int i = 0; i < half; i++) {
        const double frequency = pow((double)theta, -2.0 * i / D);
        for (int t = 0; t < L; t++) {
            const double angle = (double)(pos0 + t) * frequency;
            cs[((size_t)t * half + i) * 2] = (float)cos(angle);
            cs[((size_t)t * half + i) * 2 + 1] = (float)sin(angle);
        }
    }
    return cs;
}

/* y = R x (direction 1) or y += R^T x (direction -1, backward) for every row. */
static attn_status rope_apply(float *y, const float *x, int B, int H, int L, int D, int pos0,
                              float theta, int direction)
{
    attn_status s;
    if ((s = check_rope(y, x, B, H, L, D, pos0, theta))) return s;
    float *cs = rope_table(L, D, pos0, theta);
    if (cs == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "rope: no memory for %d angles", L);
    const int half = D / 2;
    const size_t rows = (size_t)B * H * L;
    for (size_t r = 0; r < rows; r++) {
        const float *table = cs + (r % (size_t)L) * half * 2;
        const float *xr = x + r * D;
        float *yr = y + r * D;
        for (int i = 0; i < half; i++) {
            const float c = table[2 * i], sn = direction * table[2 * i + 1];
            const float a = xr[i], b = xr[i + half];
            if (direction > 0) {
                yr[i] = a * c - b * sn;
                yr[i + half] = b * c + a * sn;
            } else {
                yr[i] += a * c - b * sn;
                yr[i + half] += b * c + a * sn;
            }
        }
    }
    free(cs);
    return ATTN_OK;
}

attn_status attn_rope_forward(float *y, const float *x, int B, int H, int L, int D, int pos0,
                              float theta)
{
    return rope_apply(y, x, B, H, L, D, pos0, theta, 1);
}

attn_status attn_rope_backward(float *dx, const float *dy, int B, int H, int L, int D, int pos0,
                               float theta)
{
    return rope_apply(dx, dy, B, H, L, D, pos0, theta, -1);
}

attn_status attn_alibi_slopes(float *slopes, int H)
{
    attn_status s;
    if ((s = attn_check_not_null(slopes, "alibi slopes")) ||
        (s = attn_check_at_least(H, 1, "alibi heads")))
        return s;
    int power = 1;
    while (power * 2 <= H) power *= 2;
    for (int h = 0; h < power; h++) slopes[h] = (float)pow(2.0, -8.0 * (h + 1) / power);
    /* The rest: the odd-numbered slopes (1st, 3rd, ...) of twice as many heads. */
    for (int h = power; h < H; h++) {
        const int k = 2 * (h - power); /* 0-based index into the 2n list */
        slopes[h] = (float)pow(2.0, -8.0 * (k + 1) / (2 * power));
    }
    return ATTN_OK;
}
