/* The Bahdanau decoder step: the previous top state attends with additive scores
 * v . tanh(W_q s + W_k h_j + b) over keys W_k h_j + b projected once per batch
 * (attn_s2s_encode); the context joins the embedding at layer 0's input, and
 * [s_t; c_t] feeds the output layer.
 *
 * The scores do not go through attn_score_additive_*: that function projects
 * its keys on every call and calls tanhf, while here the keys are projected once
 * for all steps and the R * S * A tanh terms of each step, kept for the
 * backward, are the step's largest cost. */
#include <stdint.h>
#include <string.h>

#include "attn/kernels.h"
#include "core/error.h"
#include "models/seq2seq_rnn.h"

/* Below this many tanh terms a step runs on one thread. */
enum { PARALLEL_MIN_TERMS = 1 << 15 };

/* The loops over attention units below run R * S * A times per step. They are
 * plain C, compiled also for AVX-512 and AVX2 and picked at load time where the
 * compiler can (the results are the same bits: floating-point contraction is
 * off in C11 mode, and every sum has its order written out). */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
#define WIDE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDE_CLONES
#endif

/* Conditions as all-ones masks, from unsigned differences of float magnitudes
 * (< 2^31): comparisons of floats would keep the compiler from vectorizing
 * under the default -ftrapping-math. */
static inline uint32_t below(uint32_t a, uint32_t b) { return 0u - ((a - b) >> 31); }

/* tanh(x) to about 1 ulp (1.4e-7 relative, 8e-8 absolute), branch-free.
 * |x| < 0.625: x + x^3 P(x^2), P of degree 4 fitted to (tanh x - x) / x^3 by
 * least squares on Chebyshev nodes (its own error 5e-9).
 * Above: 1 - 2 / (e^{2|x|} + 1), exact to a rounding or two with no
 * cancellation there; e^y = 2^n e^r with n the nearest integer to y / ln 2 and
 * r = y - n ln 2 (ln 2 split in two, Cody and Waite), e^r = 1 + r + r^2 G(r) with
 * G of degree 4 fitted likewise; |x| is capped at 9, where tanh is 1 in float.
 * The sign is put back last; NaN passes through. */
static inline float accurate_tanh(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const uint32_t sign = bits & 0x80000000u, mag = bits & 0x7fffffffu;
    const uint32_t small = below(mag, 0x3f200000u); /* 0.625f */
    const uint32_t nan = below(0x7f800000u, mag);
    const uint32_t capped = mag - ((mag - 0x41100000u) & below(0x41100000u, mag)); /* 9.0f */
    float a;
    memcpy(&a, &capped, sizeof a);
    const float a2 = a * a;
    float p = -5.7189627550542355e-3f;
    p = p * a2 + 2.0653124898672104e-2f;
    p = p * a2 - 5.374465882778168e-2f;
    p = p * a2 + 1.3331513106822968e-1f;
    p = p * a2 - 3.333328664302826e-1f;
    const float near_zero = a + a * a2 * p;
    /* n by rounding: adding 1.5 * 2^23 leaves n in the low mantissa bits. */
    const float y = 2.0f * a;
    const float shifted = y * 1.44269504088896341f + 12582912.0f;
    uint32_t n;
    memcpy(&n, &shifted, sizeof n);
    n = (n & 0x7fffffu) - 0x400000u;
    const float nf = shifted - 12582912.0f;
    const float r = (y - nf * 0.693359375f) + nf * 2.12194440e-4f;
    float g = 1.3751407386735082e-3f;
    g = g * r + 8.368915878236294e-3f;
    g = g * r + 4.166953265666962e-2f;
    g = g * r + 1.66665181517601e-1f;
    g = g * r + 4.9999988079071045e-1f;
    const uint32_t two_n_bits = (n + 127u) << 23;
    float two_n;
    memcpy(&two_n, &two_n_bits, sizeof two_n);
    const float away = 1.0f - 2.0f / ((1.0f + r + r * r * g) * two_n + 1.0f);
    uint32_t near_bits, away_bits;
    memcpy(&near_bits, &near_zero, sizeof near_bits);
    memcpy(&away_bits, &away, sizeof away_bits);
    uint32_t t = ((near_bits & small) | (away_bits & ~small)) | sign;
    t = (t & ~nan) | (bits & nan);
    float out;
    memcpy(&out, &t, sizeof out);
    return out;
}

/* One row: u: (S, A) = tanh(q + keys[j]) for every j, keys: (S, A);
 * scores: (S) = u v. */
WIDE_CLONES static void tanh_terms(float *u, float *scores, const float *q, const float *keys,
                                   const float *v, int S, int A)
{
    for (int j = 0; j < S; j++) {
        float *uj = u + (size_t)j * A;
        for (int a = 0; a < A; a++) uj[a] = accurate_tanh(q[a] + keys[(size_t)j * A + a]);
        scores[j] = attn_s2s_dot(uj, v, A);
    }
}

/* u[t]: (R, S, A) = tanh(qp[t] + keys), scores: (R, S) = u v. Every position is
 * computed (the padded ones' keys are the bias alone); the scores' mask comes
 * later. */
static void additive_scores(s2s_rnn *r, int t)
{
    s2s_run *run = &r->run;
    const int R = run->R, S = run->S, A = r->d.Ka, beam = run->beam;
    const float *qp = run->qp + (size_t)t * R * A;
    float *u = run->u + (size_t)t * R * S * A;
#pragma omp parallel for schedule(static) if ((size_t)R * S * A >= PARALLEL_MIN_TERMS)             \
    num_threads(attn_get_num_threads())
    for (int row = 0; row < R; row++)
        tanh_terms(u + (size_t)row * S * A, run->scores + (size_t)row * S, qp + (size_t)row * A,
                   run->keys + (size_t)(row / beam) * S * A, r->w.v, S, A);
}

attn_status attn_s2s_bahdanau_step(s2s_rnn *r, int t)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int R = run->R, H = d->H, A = d->Ka, Dv = d->Dv, F = d->F;
    attn_status s;
    const float *query = attn_s2s_state(run, run->hs, d->L - 1, t, H);
    attn_sgemm(false, true, R, A, H, 1.0f, query, H, r->w.query, H, 0.0f,
               run->qp + (size_t)t * R * A, A);
    additive_scores(r, t);
    if ((s = attn_s2s_attend(r, t))) return s;
    const float *ctx = run->ctx + (size_t)t * R * Dv;
    attn_sgemm(false, true, R, d->GH, Dv, 1.0f, ctx, Dv, r->w.w_ih[0] + d->E, d->in0, 1.0f,
               attn_s2s_at(run, run->gx0, 0, t, (size_t)d->GH), d->GH);
    if ((s = attn_s2s_cells_forward(r, t))) return s;
    const float *top = attn_s2s_state(run, run->hs, d->L - 1, t + 1, H);
    float *feat = run->feat + (size_t)t * R * F;
    for (int row = 0; row < R; row++) {
        memcpy(feat + (size_t)row * F, top + (size_t)row * H, (size_t)H * sizeof(float));
        memcpy(feat + (size_t)row * F + H, ctx + (size_t)row * Dv, (size_t)Dv * sizeof(float));
    }
    return ATTN_OK;
}

/* One row of additive_scores' backward: with g = ds[j] v_a (1 - u[j,a]^2),
 * dq: (A) = sum over j of g, dkeys: (S, A) += g. */
WIDE_CLONES static void tanh_terms_backward(float *dq, float *dkeys, const float *ds,
                                            const float *u, const float *v, int S, int A)
{
    memset(dq, 0, (size_t)A * sizeof *dq);
    for (int j = 0; j < S; j++) {
        if (ds[j] == 0.0f) continue; /* masked, or no gradient at this step */
        const float *uj = u + (size_t)j * A;
        float *dk = dkeys + (size_t)j * A;
        for (int a = 0; a < A; a++) {
            const float g = ds[j] * v[a] * (1.0f - uj[a] * uj[a]);
            dq[a] += g;
            dk[a] += g;
        }
    }
}

/* dv: (A) += sum over rows and positions of ds u, in a fixed order (a GEMM
 * would split this long sum by the thread count, and round differently). */
WIDE_CLONES static void add_v_gradient(float *dv, const float *ds, const float *u, size_t rows,
                                       int A)
{
    for (size_t i = 0; i < rows; i++) {
        if (ds[i] == 0.0f) continue;
        const float *ui = u + i * A;
        for (int a = 0; a < A; a++) dv[a] += ds[i] * ui[a];
    }
}

/* Of additive_scores given dscores: dqp[t] (overwritten), dkeys +=, dv +=.
 * Rows are sources here (training), so threads never share a key row. */
static void additive_scores_backward(s2s_rnn *r, int t)
{
    s2s_run *run = &r->run;
    const int R = run->R, S = run->S, A = r->d.Ka;
    const float *u = run->u + (size_t)t * R * S * A;
    float *dqp = run->dqp + (size_t)t * R * A;
#pragma omp parallel for schedule(static) if ((size_t)R * S * A >= PARALLEL_MIN_TERMS)             \
    num_threads(attn_get_num_threads())
    for (int row = 0; row < R; row++)
        tanh_terms_backward(dqp + (size_t)row * A, run->dkeys + (size_t)row * S * A,
                            run->dscores + (size_t)row * S, u + (size_t)row * S * A, r->w.v, S, A);
    add_v_gradient(r->g.v, run->dscores, u, (size_t)R * S, A);
}

attn_status attn_s2s_bahdanau_step_backward(s2s_rnn *r, int t)
{
    const s2s_dims *d = &r->d;
    s2s_run *run = &r->run;
    const int R = run->R, H = d->H, A = d->Ka, Dv = d->Dv, F = d->F;
    const size_t RH = (size_t)R * H;
    attn_status s;
    /* feat = [s_t; c_t] */
    const float *dfeat = run->dfeat + (size_t)t * R * F;
    float *dctx = run->dctx + (size_t)t * R * Dv;
    float *dtop = run->dh + (size_t)(d->L - 1) * RH;
    for (int row = 0; row < R; row++) {
        const float *df = dfeat + (size_t)row * F;
        for (int k = 0; k < H; k++) dtop[(size_t)row * H + k] += df[k];
        memcpy(dctx + (size_t)row * Dv, df + H, (size_t)Dv * sizeof(float));
    }
    if ((s = attn_s2s_cells_backward(r, t))) return s;
    /* The context's share of layer 0's input. */
    attn_sgemm(false, false, R, Dv, d->GH, 1.0f, attn_s2s_at(run, run->dgx, 0, t, (size_t)d->GH),
               d->GH, r->w.w_ih[0] + d->E, d->in0, 1.0f, dctx, Dv);
    if ((s = attn_s2s_attend_backward(r, t))) return s;
    additive_scores_backward(r, t);
    /* The query was the top state at t - 1. */
    attn_sgemm(false, false, R, H, A, 1.0f, run->dqp + (size_t)t * R * A, A, r->w.query, H, 1.0f,
               run->dh_prev + (size_t)(d->L - 1) * RH, H);
    return ATTN_OK;
}
