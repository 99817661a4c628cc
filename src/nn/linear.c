/* The affine layer y = x w^T + b, as nn.Linear, on the GEMM backend. */
#include "attn/kernels.h"
#include "attn/nn.h"
#include "core/error.h"
#include "kernels/gemm_bf16.h"

static attn_status check_sizes(attn_precision precision, int N, int in, int out)
{
    attn_status s;
    if ((s = attn_check_precision(precision)) || (s = attn_check_at_least(N, 1, "linear N")) ||
        (s = attn_check_at_least(in, 1, "linear in")) ||
        (s = attn_check_at_least(out, 1, "linear out")))
        return s;
    return ATTN_OK;
}

/* x: (N, in), w: (out, in), b: (out) or NULL -> y: (N, out) = x w^T + b. */
attn_status attn_linear_forward_at(attn_precision precision, float *y, const float *x,
                                   const float *w, const float *b, int N, int in, int out)
{
    attn_status s;
    if ((s = check_sizes(precision, N, in, out)) || (s = attn_check_not_null(y, "linear y")) ||
        (s = attn_check_not_null(x, "linear x")) || (s = attn_check_not_null(w, "linear w")))
        return s;
    /* The bias in the product's epilogue (attn_affine_product). */
    attn_affine_product(precision, y, NULL, x, NULL, w, NULL, b, N, in, out);
    return ATTN_OK;
}

/* Of y = x w^T + b, with dy: (N, out):
 * dx: (N, in) += dy w;  dw: (out, in) += dy^T x;  db: (out) += sum over n of dy. */
attn_status attn_linear_backward_at(attn_precision precision, float *dx, float *dw, float *db,
                                    const float *dy, const float *x, const float *w, int N, int in,
                                    int out)
{
    attn_status s;
    if ((s = check_sizes(precision, N, in, out)) || (s = attn_check_not_null(dy, "linear dy")) ||
        (dw && (s = attn_check_not_null(x, "linear x"))) ||
        (dx && (s = attn_check_not_null(w, "linear w"))))
        return s;
    if (dx) attn_gemm(precision, false, false, N, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
    if (dw) attn_gemm(precision, true, false, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (db)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)n * out + o];
    return ATTN_OK;
}

attn_status attn_linear_forward(float *y, const float *x, const float *w, const float *b, int N,
                                int in, int out)
{
    return attn_linear_forward_at(ATTN_FLOAT32, y, x, w, b, N, in, out);
}

attn_status attn_linear_backward(float *dx, float *dw, float *db, const float *dy,
                                 const float *x, const float *w, int N, int in, int out)
{
    return attn_linear_backward_at(ATTN_FLOAT32, dx, dw, db, dy, x, w, N, in, out);
}
