/* Internal: the matrix products of one batch entry that the attention functions
 * form, for any size. A decoder step's entry is one query (or one per beam)
 * against a few dozen keys: a GEMM call there costs more than its arithmetic,
 * so below a size these are loops, written so that they vectorise (each inner
 * loop runs along a contiguous row). Every matrix is dense, row-major. */
#ifndef ATTN_SRC_ATTENTION_PRODUCTS_H
#define ATTN_SRC_ATTENTION_PRODUCTS_H

#include <stdbool.h>

/* c: (m, n) = alpha a b^T, plus c if accumulate; a: (m, k), b: (n, k). */
void attn_product_nt(float *c, const float *a, const float *b, int m, int n, int k, float alpha,
                     bool accumulate);

/* c: (m, n) = alpha a b, plus c if accumulate; a: (m, k), b: (k, n). */
void attn_product_nn(float *c, const float *a, const float *b, int m, int n, int k, float alpha,
                     bool accumulate);

/* c: (m, n) += alpha a^T b; a: (k, m), b: (k, n). */
void attn_product_tn_add(float *c, const float *a, const float *b, int m, int n, int k,
                         float alpha);

#endif
