/* Cross-entropy of logits against class ids, as F.cross_entropy with
 * ignore_index, label_smoothing and reduction="mean" (PyTorch 1.13).
 *
 * With smoothing e over C classes, a row's loss is
 *   (1 - e) * (-log p[target]) + e * (mean over classes c of -log p[c]),
 * and the mean is over the rows whose target is not ignore_index: the
 * smoothing term of ignored rows is left out, as torch does. */
#include <math.h>

#include "attn/train.h"
#include "core/error.h"
#include "kernels/isa.h"

enum {
    /* Rows are summed in this many fixed slices, each slice's sum then added in
     * order: the loss is the same whatever the thread count. */
    ROW_SLICES = 64,
    PARALLEL_MIN_ELEMENTS = 1 << 15 /* below this a parallel region costs more than it saves */
};

/* Checks sizes, pointers and every target; *counted: the rows not ignored.
 * rows: the logits or the probabilities, named rows_name in messages. */
static attn_status check_args(const float *rows, const char *rows_name, const int32_t *targets,
                              int N, int C, int ignore_index, float label_smoothing, int *counted)
{
    attn_status s;
    if ((s = attn_check_at_least(N, 1, "cross-entropy N")) ||
        (s = attn_check_at_least(C, 1, "cross-entropy C")) ||
        (s = attn_check_not_null(rows, rows_name)) ||
        (s = attn_check_not_null(targets, "cross-entropy targets")))
        return s;
    if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "cross-entropy label_smoothing %g is not in [0, 1]",
                          (double)label_smoothing);
    int count = 0;
    for (int n = 0; n < N; n++) {
        if (targets[n] == ignore_index) continue;
        if (targets[n] < 0 || targets[n] >= C)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "cross-entropy target %d of row %d is outside [0, %d) and is not "
                              "ignore_index %d",
                              (int)targets[n], n, C, ignore_index);
        count++;
    }
    *counted = count;
    return ATTN_OK;
}

/* One row: p = softmax(x) and the row's loss (0 if ignored), in double.
 * The sum of exp(x - max) is kept in double so that log(sum) stays exact when
 * one class takes nearly all the mass: there -log p[target] = log(sum) is a
 * small number, and a float sum would round away most of it. The exponentials
 * and their sum are the instruction set's vector kernel. */
static double row_forward(const attn_vec_kernels *vec, float *p, const float *x, int C,
                          int target, bool ignored, double e)
{
    float max = -INFINITY;
    for (int c = 0; c < C; c++)
        if (x[c] > max || isnan(x[c])) max = x[c];
    const double sum = vec->exp_shifted_sum(p, x, (size_t)C, max);
    const float inv = (float)(1.0 / sum);
    for (int c = 0; c < C; c++) p[c] *= inv;
    if (ignored) return 0.0;
    const double log_sum = log(sum);
    double loss = (1.0 - e) * (((double)max - x[target]) + log_sum);
    if (e > 0.0) {
        double sum_x = 0.0;
        for (int c = 0; c < C; c++) sum_x += x[c];
        loss += e * (((double)max - sum_x / C) + log_sum);
    }
    return loss;
}

/* The message for a loss that is not finite: the first counted row whose loss is
 * not, and the logit to blame in it: a NaN or +inf one, else a -inf target, else
 * any -inf one (which only the smoothing term sees). */
static attn_status non_finite_error(const attn_vec_kernels *vec, float *probs,
                                    const float *logits, const int32_t *targets, int N, int C,
                                    int ignore_index, double e)
{
    for (int n = 0; n < N; n++) {
        if (targets[n] == ignore_index) continue;
        const float *x = logits + (size_t)n * C;
        const double l = row_forward(vec, probs + (size_t)n * C, x, C, targets[n], false, e);
        if (isfinite(l)) continue;
        int bad = -1;
        for (int c = 0; c < C && bad < 0; c++)
            if (isnan(x[c]) || x[c] == INFINITY) bad = c;
        if (bad < 0 && x[targets[n]] == -INFINITY) bad = targets[n];
        for (int c = 0; c < C && bad < 0; c++)
            if (x[c] == -INFINITY) bad = c;
        if (bad >= 0)
            return attn_error(ATTN_ERR_NUMERIC,
                              "cross-entropy loss of row %d is %g: its logit %d is %g", n, l,
                              bad, (double)x[bad]);
        return attn_error(ATTN_ERR_NUMERIC, "cross-entropy loss of row %d is %g", n, l);
    }
    return attn_error(ATTN_ERR_NUMERIC, "cross-entropy loss sums to a number that is not finite");
}

/* logits: (N, C), targets: (N) -> *loss, probs: (N, C), row_loss: (N) or NULL. */
attn_status attn_cross_entropy_forward(float *loss, float *probs, float *row_loss,
                                       const float *logits, const int32_t *targets, int N,
                                       int C, int ignore_index, float label_smoothing)
{
    attn_status s;
    int counted = 0;
    const attn_isa *isa;
    if ((s = attn_check_not_null(loss, "cross-entropy loss")) ||
        (s = attn_check_not_null(probs, "cross-entropy probs")) ||
        (s = check_args(logits, "cross-entropy logits", targets, N, C, ignore_index,
                        label_smoothing, &counted)) ||
        (s = attn_isa_current(&isa)))
        return s;
    const double e = label_smoothing;
    double slice_sum[ROW_SLICES];
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PARALLEL_MIN_ELEMENTS) \
    num_threads(attn_get_num_threads())
    for (int slice = 0; slice < ROW_SLICES; slice++) {
        const int first = (int)((int64_t)N * slice / ROW_SLICES);
        const int last = (int)((int64_t)N * (slice + 1) / ROW_SLICES);
        double sum = 0.0;
        for (int n = first; n < last; n++) {
            const bool ignored = targets[n] == ignore_index;
            double l = row_forward(isa->vec, probs + (size_t)n * C, logits + (size_t)n * C, C,
                                   ignored ? 0 : targets[n], ignored, e);
            if (row_loss) row_loss[n] = (float)l;
            sum += l;
        }
        slice_sum[slice] = sum;
    }
    double total = 0.0;
    for (int slice = 0; slice < ROW_SLICES; slice++) total += slice_sum[slice];
    *loss = counted ? (float)(total / counted) : 0.0f;
    if (!isfinite(total))
        return non_finite_error(isa->vec, probs, logits, targets, N, C, ignore_index, e);
    return ATTN_OK;
}

/* Of the mean loss over the counted rows, per counted row (q: the smoothed target):
 *   dlogits[c] += dloss / counted * (p[c] - q[c]),  q[c] = (1 - e) [c == t] + e / C.
 * For the target, p[t] - q[t] = (p[t] - 1) + e (1 - 1/C), with p[t] - 1 taken as
 * minus the sum of the other classes' probabilities when p[t] > 1/2: the rounding
 * of the floats p then costs an error of about 1e-7 min(p[t], 1 - p[t]), which
 * keeps the gradient of a confident row (p[t] near 1, the gradient near 0)
 * accurate, and that of a smoothed row with p[t] near e / C as well. */
attn_status attn_cross_entropy_backward(float *dlogits, const float *probs,
                                        const int32_t *targets, int N, int C, int ignore_index,
                                        float label_smoothing, float dloss)
{
    attn_status s;
    int counted = 0;
    if ((s = attn_check_not_null(dlogits, "cross-entropy dlogits")) ||
        (s = check_args(probs, "cross-entropy probs", targets, N, C, ignore_index,
                        label_smoothing, &counted)))
        return s;
    if (counted == 0) return ATTN_OK;
    const double e = label_smoothing, scale = (double)dloss / counted;
    const float uniform = (float)(e / C), fscale = (float)scale;
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PARALLEL_MIN_ELEMENTS) \
    num_threads(attn_get_num_threads())
    for (int n = 0; n < N; n++) {
        const int t = targets[n];
        if (t == ignore_index) continue;
        const float *p = probs + (size_t)n * C;
        float *d = dlogits + (size_t)n * C;
        double others = 0.0; /* the probabilities of every class but t */
        for (int c = 0; c < t; c++) {
            others += p[c];
            d[c] += fscale * (p[c] - uniform);
        }
        for (int c = t + 1; c < C; c++) {
            others += p[c];
            d[c] += fscale * (p[c] - uniform);
        }
        const double p_t_minus_1 = p[t] > 0.5f ? -others : (double)p[t] - 1.0;
        d[t] += (float)(scale * (p_t_minus_1 + e * (1.0 - 1.0 / C)));
    }
    return ATTN_OK;
}
