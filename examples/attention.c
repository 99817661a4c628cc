/* A first program with libattn: scaled dot-product attention of two queries over
 * three keys, with the weights printed.
 *
 *   cc attention.c $(pkg-config --cflags --libs attn) -o attention && ./attention
 */
#include <stdio.h>

#include <attn/attn.h>

int main(void)
{
    enum { B = 1, H = 1, LQ = 2, LK = 3, D = 2 };
    const float q[LQ * D] = {1, 0, 0, 1};
    const float k[LK * D] = {1, 0, 0, 1, 1, 1};
    const float v[LK * D] = {10, 0, 0, 10, 5, 5};
    float out[LQ * D], lse[LQ], weights[LQ * LK];

    attn_sdpa_config cfg = {.batch = B, .heads = H, .len_q = LQ, .len_k = LK, .dim_qk = D,
                            .dim_v = D};
    if (attn_sdpa_forward(out, lse, weights, q, k, v, &cfg) != ATTN_OK) {
        fprintf(stderr, "attention failed: %s\n", attn_last_error());
        return 1;
    }
    for (int i = 0; i < LQ; i++) {
        printf("query %d: weights", i);
        for (int j = 0; j < LK; j++) printf(" %.3f", weights[i * LK + j]);
        printf("  output (%.3f, %.3f)\n", out[i * D], out[i * D + 1]);
    }
    return 0;
}
