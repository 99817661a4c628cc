/* Recurrent layers, torch.nn.RNN / LSTM / GRU: one cell step against float64
 * formulas and finite differences; whole layers against a float64 step-by-step
 * loop written here (outputs, and gradients by central differences of that
 * loop); packed lengths against each row run alone; dropout, threads, reuse,
 * parameters and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grad_tolerance.h"
#include "testutil.h"

static const attn_rnn_mode MODES[] = {ATTN_RNN_TANH, ATTN_RNN_RELU, ATTN_LSTM, ATTN_GRU};
static const char *const MODE_NAMES[] = {"RNN_TANH", "RNN_RELU", "LSTM", "GRU"};
enum { MODE_COUNT = 4 };

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* max |got - want| / max(max |want|, 0.05): test_rel_error_f64 with a floor under
 * its scale. The outputs and gradients here are sums of terms of order 1 (gates,
 * states, weights and probes all are), whose float32 rounding leaves an absolute
 * error near 1e-7 whatever the sum; where the terms cancel (hidden size 1, one
 * element) that is large next to the result itself, up to 1.2e-4 of it in the
 * runs seen. The floor, the one grad_tolerance.h puts under its finite
 * differences, measures such errors against the terms' scale instead. */
static double floored_error(const float *got, const double *want, size_t n)
{
    double diff = 0.0, scale = 0.05;
    for (size_t e = 0; e < n; e++) {
        double d = fabs((double)got[e] - want[e]);
        if (!(d <= diff)) diff = d; /* NaN sticks */
        scale = fmax(scale, fabs(want[e]));
    }
    return diff / scale;
}

/* One step in float64, from PyTorch's equations (attn/rnn.h): gx, gh: (G*H) with
 * both biases in them; h, c: (H) -> h_new, c_new: (H) (c for LSTM). */
static void ref_step(attn_rnn_mode mode, int H, const double *gx, const double *gh,
                     const double *h, const double *c, double *h_new, double *c_new)
{
    for (int j = 0; j < H; j++) {
        switch (mode) {
        case ATTN_RNN_TANH:
            h_new[j] = tanh(gx[j] + gh[j]);
            break;
        case ATTN_RNN_RELU:
            h_new[j] = fmax(0.0, gx[j] + gh[j]);
            break;
        case ATTN_LSTM: {
            double i = sigmoid(gx[j] + gh[j]), f = sigmoid(gx[H + j] + gh[H + j]);
            double g = tanh(gx[2 * H + j] + gh[2 * H + j]);
            double o = sigmoid(gx[3 * H + j] + gh[3 * H + j]);
            c_new[j] = f * c[j] + i * g;
            h_new[j] = o * tanh(c_new[j]);
            break;
        }
        case ATTN_GRU: {
            double r = sigmoid(gx[j] + gh[j]), z = sigmoid(gx[H + j] + gh[H + j]);
            double n = tanh(gx[2 * H + j] + r * gh[2 * H + j]);
            h_new[j] = (1.0 - z) * n + z * h[j];
            break;
        }
        }
    }
}

/* ---- one cell step ------------------------------------------------------------------ */

typedef struct cell_case {
    attn_rnn_mode mode;
    int B, H, G;
    float *gx, *h, *c, *w_hh, *b_hh; /* c only for LSTM, b_hh NULL without bias */
    float *h_out, *c_out, *saved, *probe_h, *probe_c;
    char desc[128];
} cell_case;

static size_t cell_states(const cell_case *c) { return (size_t)c->B * c->H; }
static size_t cell_gates(const cell_case *c) { return (size_t)c->B * c->G * c->H; }

/* gh = h W_hh^T + b_hh of row b, in float64. */
static void cell_gh(const cell_case *c, int b, double *gh)
{
    const int H = c->H;
    for (int q = 0; q < c->G * H; q++) {
        double sum = c->b_hh ? c->b_hh[q] : 0.0;
        for (int j = 0; j < H; j++)
            sum += (double)c->w_hh[(size_t)q * H + j] * c->h[(size_t)b * H + j];
        gh[q] = sum;
    }
}

/* ReLU's kink: finite differences across it are wrong, so every pre-activation
 * is moved at least 0.1 away from 0 (steps of 2e-2 move it by less). */
static void keep_away_from_kink(cell_case *c)
{
    double gh[64];
    for (int b = 0; b < c->B; b++) {
        cell_gh(c, b, gh);
        for (int j = 0; j < c->H; j++) {
            float *gx = &c->gx[(size_t)b * c->H + j];
            double a = *gx + gh[j];
            if (fabs(a) < 0.1) *gx += a < 0 ? -0.2f : 0.2f;
        }
    }
}

static void make_cell(cell_case *c, attn_rng *rng, int mode_index)
{
    memset(c, 0, sizeof *c);
    c->mode = MODES[mode_index];
    c->B = 1 + (int)attn_rng_below(rng, 4);
    c->H = 1 + (int)attn_rng_below(rng, 6);
    c->G = attn_rnn_gates(c->mode);
    bool bias = attn_rng_below(rng, 4) != 0;
    c->gx = test_random(rng, cell_gates(c), -1, 1);
    c->h = test_random(rng, cell_states(c), -1, 1);
    if (c->mode == ATTN_LSTM) c->c = test_random(rng, cell_states(c), -1, 1);
    c->w_hh = test_random(rng, (size_t)c->G * c->H * c->H, -0.6f, 0.6f);
    if (bias) c->b_hh = test_random(rng, (size_t)c->G * c->H, -0.5f, 0.5f);
    c->h_out = test_zeros(cell_states(c));
    c->c_out = test_zeros(cell_states(c));
    c->saved = test_zeros((size_t)c->B * attn_rnn_cell_saved_size(c->mode, c->H));
    c->probe_h = test_random(rng, cell_states(c), -1, 1);
    c->probe_c = test_random(rng, cell_states(c), -1, 1);
    if (c->mode == ATTN_RNN_RELU) keep_away_from_kink(c);
    snprintf(c->desc, sizeof c->desc, "%s B=%d H=%d bias=%d", MODE_NAMES[mode_index], c->B, c->H,
             bias);
}

static void free_cell(cell_case *c)
{
    free(c->gx), free(c->h), free(c->c), free(c->w_hh), free(c->b_hh);
    free(c->h_out), free(c->c_out), free(c->saved), free(c->probe_h), free(c->probe_c);
}

static void cell_forward(cell_case *c)
{
    bool lstm = c->mode == ATTN_LSTM;
    attn_status s = attn_rnn_cell_forward(c->mode, c->h_out, lstm ? c->c_out : NULL, c->saved,
                                          c->gx, c->h, c->c, c->w_hh, c->b_hh, c->B, c->H);
    if (s != ATTN_OK) print_error("%s: cell forward failed: %s\n", c->desc, attn_last_error());
    assert_int_equal(s, ATTN_OK);
}

static double cell_loss(void *ctx)
{
    cell_case *c = ctx;
    cell_forward(c);
    double loss = test_dot(c->h_out, c->probe_h, cell_states(c));
    if (c->mode == ATTN_LSTM) loss += test_dot(c->c_out, c->probe_c, cell_states(c));
    return loss;
}

static void test_cell_matches_float64(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int n = 0; n < 80; n++) {
        attn_rng rng = test_rng((uint64_t)n);
        cell_case c;
        make_cell(&c, &rng, n % MODE_COUNT);
        cell_forward(&c);
        const int H = c.H, GH = c.G * H;
        double *h_ref = malloc(cell_states(&c) * sizeof *h_ref);
        double *c_ref = malloc(cell_states(&c) * sizeof *c_ref);
        double gx[64], gh[64], hb[16], cb[16];
        for (int b = 0; b < c.B; b++) {
            cell_gh(&c, b, gh);
            for (int q = 0; q < GH; q++) gx[q] = c.gx[(size_t)b * GH + q];
            for (int j = 0; j < H; j++) {
                hb[j] = c.h[(size_t)b * H + j];
                cb[j] = c.c ? c.c[(size_t)b * H + j] : 0.0;
            }
            ref_step(c.mode, H, gx, gh, hb, cb, h_ref + (size_t)b * H, c_ref + (size_t)b * H);
        }
        double err = floored_error(c.h_out, h_ref, cell_states(&c));
        if (c.mode == ATTN_LSTM) err = fmax(err, floored_error(c.c_out, c_ref, cell_states(&c)));
        worst = fmax(worst, err);
        if (!(err <= 1e-5)) print_error("case %d (%s): error %g\n", n, c.desc, err);
        assert_true(err <= 1e-5);

        /* In place: h_out = h and c_out = c give the same numbers. */
        float *h_in_place = malloc(cell_states(&c) * sizeof(float));
        float *c_in_place = malloc(cell_states(&c) * sizeof(float));
        memcpy(h_in_place, c.h, cell_states(&c) * sizeof(float));
        if (c.c) memcpy(c_in_place, c.c, cell_states(&c) * sizeof(float));
        assert_int_equal(attn_rnn_cell_forward(c.mode, h_in_place, c.c ? c_in_place : NULL,
                                               c.saved, c.gx, h_in_place,
                                               c.c ? c_in_place : NULL, c.w_hh, c.b_hh, c.B, H),
                         ATTN_OK);
        assert_memory_equal(h_in_place, c.h_out, cell_states(&c) * sizeof(float));
        if (c.c) assert_memory_equal(c_in_place, c.c_out, cell_states(&c) * sizeof(float));
        free(h_in_place), free(c_in_place), free(h_ref), free(c_ref);
        free_cell(&c);
    }
    printf("cell: largest error against float64: %g\n", worst);
}

static double worst_cell_fd;

static void check_cell_gradient(cell_case *c, int n, const char *name, float *x,
                                const float *grad, size_t count, double magnitude)
{
    double err = gradcheck_error(test_gradcheck(x, count, grad, cell_loss, c, 1e-2f), grad,
                                 count, magnitude);
    worst_cell_fd = fmax(worst_cell_fd, err);
    if (!(err <= 1e-3))
        print_error("case %d (%s): %s finite-difference error %g\n", n, c->desc, name, err);
    assert_true(err <= 1e-3);
}

static void test_cell_gradients_match_finite_differences(void **state)
{
    (void)state;
    for (int n = 0; n < 48; n++) {
        attn_rng rng = test_rng(1000 + (uint64_t)n);
        cell_case c;
        make_cell(&c, &rng, n % MODE_COUNT);
        const bool lstm = c.mode == ATTN_LSTM;
        cell_forward(&c);
        double magnitude = loss_magnitude(c.h_out, c.probe_h, cell_states(&c));
        if (lstm) magnitude += loss_magnitude(c.c_out, c.probe_c, cell_states(&c));
        const size_t GHH = (size_t)c.G * c.H * c.H, GH = (size_t)c.G * c.H;
        float *dgx = test_random(&rng, cell_gates(&c), -9, 9); /* overwritten, not added */
        float *dh = test_zeros(cell_states(&c)), *dc = test_zeros(cell_states(&c));
        float *dw = test_zeros(GHH), *db = test_zeros(GH), *scratch = test_zeros(cell_gates(&c));
        assert_int_equal(attn_rnn_cell_backward(c.mode, dgx, dh, lstm ? dc : NULL, dw,
                                                c.b_hh ? db : NULL, scratch, c.probe_h,
                                                lstm ? c.probe_c : NULL, c.saved, c.h, c.c,
                                                c.w_hh, c.B, c.H),
                         ATTN_OK);
        check_cell_gradient(&c, n, "dgx", c.gx, dgx, cell_gates(&c), magnitude);
        check_cell_gradient(&c, n, "dh", c.h, dh, cell_states(&c), magnitude);
        if (lstm) check_cell_gradient(&c, n, "dc", c.c, dc, cell_states(&c), magnitude);
        check_cell_gradient(&c, n, "dw_hh", c.w_hh, dw, GHH, magnitude);
        if (c.b_hh) check_cell_gradient(&c, n, "db_hh", c.b_hh, db, GH, magnitude);

        /* Backward adds into dh, dc, dw_hh, db_hh: a second call doubles them. */
        cell_forward(&c); /* the finite differences left a perturbed forward */
        float *twice = malloc(GHH * sizeof *twice);
        memcpy(twice, dw, GHH * sizeof *twice);
        assert_int_equal(attn_rnn_cell_backward(c.mode, dgx, NULL, NULL, twice, NULL, scratch,
                                                c.probe_h, lstm ? c.probe_c : NULL, c.saved,
                                                c.h, c.c, c.w_hh, c.B, c.H),
                         ATTN_OK);
        for (size_t e = 0; e < GHH; e++) assert_true(fabsf(twice[e] - 2.0f * dw[e]) <= 1e-5f);
        free(twice), free(dgx), free(dh), free(dc), free(dw), free(db), free(scratch);
        free_cell(&c);
    }
    printf("cell: largest finite-difference error: %g\n", worst_cell_fd);
}

/* ---- whole layers -------------------------------------------------------------------- */

typedef struct layer_case {
    attn_rnn_config cfg;
    attn_rnn *m;
    attn_rnn_input in;
    int D, G;
    float *x, *h0, *c0, *y, *h_n, *c_n, *probe_y, *probe_h, *probe_c;
    int32_t *lengths;
    char desc[256];
} layer_case;

static size_t x_size(const layer_case *c)
{
    return (size_t)c->in.batch * c->in.seq_len * c->cfg.input_size;
}
static size_t y_size(const layer_case *c)
{
    return (size_t)c->in.batch * c->in.seq_len * c->D * c->cfg.hidden_size;
}
static size_t state_size(const layer_case *c)
{
    return (size_t)c->cfg.num_layers * c->D * c->in.batch * c->cfg.hidden_size;
}
static bool is_lstm(const layer_case *c) { return c->cfg.mode == ATTN_LSTM; }

/* A random layer: sizes up to max_size, batch up to max_batch, seq_len up to
 * max_len; h0, c0 and lengths each present or not. */
static void make_layer(layer_case *c, attn_rng *rng, int mode_index, int max_size,
                       int max_batch, int max_len)
{
    memset(c, 0, sizeof *c);
    attn_rnn_config *g = &c->cfg;
    g->mode = MODES[mode_index];
    g->input_size = 1 + (int)attn_rng_below(rng, (uint32_t)max_size);
    g->hidden_size = 1 + (int)attn_rng_below(rng, (uint32_t)max_size);
    g->num_layers = 1 + (int)attn_rng_below(rng, 3);
    g->bias = attn_rng_below(rng, 4) != 0;
    g->batch_first = attn_rng_below(rng, 2);
    g->bidirectional = attn_rng_below(rng, 2);
    c->D = g->bidirectional ? 2 : 1;
    c->G = attn_rnn_gates(g->mode);
    assert_int_equal(attn_rnn_create(&c->m, g, attn_rng_u32(rng)), ATTN_OK);
    attn_params *p = attn_rnn_params(c->m);
    attn_rng_fill_uniform(rng, p->data, p->total, -0.6f, 0.6f);

    attn_rnn_input *in = &c->in;
    in->batch = 1 + (int)attn_rng_below(rng, (uint32_t)max_batch);
    in->seq_len = 1 + (int)attn_rng_below(rng, (uint32_t)max_len);
    c->x = test_random(rng, x_size(c), -1, 1);
    in->x = c->x;
    if (attn_rng_below(rng, 3)) {
        c->h0 = test_random(rng, state_size(c), -1, 1);
        in->h0 = c->h0;
        if (is_lstm(c) && attn_rng_below(rng, 4)) {
            c->c0 = test_random(rng, state_size(c), -1, 1);
            in->c0 = c->c0;
        }
    }
    if (attn_rng_below(rng, 2)) {
        c->lengths = malloc((size_t)in->batch * sizeof *c->lengths);
        for (int b = 0; b < in->batch; b++)
            c->lengths[b] = 1 + (int32_t)attn_rng_below(rng, (uint32_t)in->seq_len);
        in->lengths = c->lengths;
    }
    c->y = test_zeros(y_size(c));
    c->h_n = test_zeros(state_size(c));
    c->c_n = test_zeros(state_size(c));
    c->probe_y = test_random(rng, y_size(c), -1, 1);
    c->probe_h = test_random(rng, state_size(c), -1, 1);
    c->probe_c = test_random(rng, state_size(c), -1, 1);
    int used = snprintf(c->desc, sizeof c->desc,
                        "%s in=%d H=%d layers=%d bias=%d batch_first=%d bidirectional=%d B=%d "
                        "T=%d h0=%d c0=%d lengths",
                        MODE_NAMES[mode_index], g->input_size, g->hidden_size, g->num_layers,
                        g->bias, g->batch_first, g->bidirectional, in->batch, in->seq_len,
                        c->h0 != NULL, c->c0 != NULL);
    for (int b = 0; b < in->batch && used < (int)sizeof c->desc; b++)
        used += snprintf(c->desc + used, sizeof c->desc - (size_t)used, " %d",
                         c->lengths ? (int)c->lengths[b] : in->seq_len);
}

static void free_layer(layer_case *c)
{
    attn_rnn_free(c->m);
    free(c->x), free(c->h0), free(c->c0), free(c->y), free(c->h_n), free(c->c_n);
    free(c->probe_y), free(c->probe_h), free(c->probe_c), free(c->lengths);
}

static void layer_forward(layer_case *c)
{
    attn_status s = attn_rnn_forward(c->m, c->y, c->h_n, is_lstm(c) ? c->c_n : NULL, &c->in);
    if (s != ATTN_OK) print_error("%s: forward failed: %s\n", c->desc, attn_last_error());
    assert_int_equal(s, ATTN_OK);
}

/* The layer's gradients for the probes as upstream gradients. */
typedef struct layer_grads {
    float *dx, *dh0, *dc0, *params;
} layer_grads;

static layer_grads layer_backward(layer_case *c)
{
    attn_params *p = attn_rnn_params(c->m);
    attn_params_zero_grad(p);
    layer_grads g = {test_zeros(x_size(c)), test_zeros(state_size(c)), test_zeros(state_size(c)),
                     NULL};
    const bool lstm = is_lstm(c);
    attn_status s = attn_rnn_backward(c->m, g.dx, g.dh0, lstm ? g.dc0 : NULL, c->probe_y,
                                      c->probe_h, lstm ? c->probe_c : NULL);
    if (s != ATTN_OK) print_error("%s: backward failed: %s\n", c->desc, attn_last_error());
    assert_int_equal(s, ATTN_OK);
    g.params = malloc(p->total * sizeof *g.params);
    memcpy(g.params, p->grad, p->total * sizeof *g.params);
    return g;
}

static void free_grads(layer_grads *g) { free(g->dx), free(g->dh0), free(g->dc0), free(g->params); }

/* ---- the float64 loop ---- */

/* Everything the loop reads, in float64, so that it can be perturbed: the
 * parameters in attn_params' layout, x, h0, c0 (zeros when not given). */
typedef struct ref_inputs {
    double *params, *x, *h0, *c0;
} ref_inputs;

static double *to_double(const float *x, size_t n)
{
    double *d = calloc(n ? n : 1, sizeof *d);
    for (size_t i = 0; x && i < n; i++) d[i] = x[i];
    return d;
}

static ref_inputs ref_inputs_of(const layer_case *c)
{
    attn_params *p = attn_rnn_params(c->m);
    return (ref_inputs){to_double(p->data, p->total), to_double(c->x, x_size(c)),
                        to_double(c->h0, state_size(c)), to_double(c->c0, state_size(c))};
}

static void free_ref_inputs(ref_inputs *r)
{
    free(r->params), free(r->x), free(r->h0), free(r->c0);
}

/* The parameter `name` of layer l, direction d, in r's copy; NULL if absent. */
static const double *ref_param(const layer_case *c, const ref_inputs *r, const char *kind, int l,
                               int d)
{
    char name[64];
    snprintf(name, sizeof name, "%s_l%d%s", kind, l, d ? "_reverse" : "");
    const attn_param *it = attn_params_find(attn_rnn_params(c->m), name);
    return it ? r->params + it->offset : NULL;
}

/* Every row alone, step by step over its own length (reverse: from its last
 * step down), layer by layer -> y in the caller's layout (zero past each row's
 * length), h_n, c_n. */
static void ref_forward(const layer_case *c, const ref_inputs *r, double *y, double *h_n,
                        double *c_n)
{
    const attn_rnn_config *g = &c->cfg;
    const int B = c->in.batch, T = c->in.seq_len, H = g->hidden_size, D = c->D;
    const int GH = c->G * H, DH = D * H;
    int width = g->input_size;
    double *cur = malloc((size_t)T * B * width * sizeof *cur); /* (T, B, width) */
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            size_t row = g->batch_first ? (size_t)b * T + t : (size_t)t * B + b;
            memcpy(cur + ((size_t)t * B + b) * width, r->x + row * width, width * sizeof *cur);
        }
    double *gx = malloc((size_t)GH * sizeof *gx), *gh = malloc((size_t)GH * sizeof *gh);
    double *h = malloc((size_t)H * sizeof *h), *cs = malloc((size_t)H * sizeof *cs);
    for (int l = 0; l < g->num_layers; l++) {
        double *out = calloc((size_t)T * B * DH, sizeof *out);
        for (int d = 0; d < D; d++) {
            const int k = l * D + d;
            const double *w_ih = ref_param(c, r, "weight_ih", l, d);
            const double *w_hh = ref_param(c, r, "weight_hh", l, d);
            const double *b_ih = ref_param(c, r, "bias_ih", l, d);
            const double *b_hh = ref_param(c, r, "bias_hh", l, d);
            for (int b = 0; b < B; b++) {
                const int len = c->lengths ? c->lengths[b] : T;
                for (int j = 0; j < H; j++) {
                    h[j] = r->h0[((size_t)k * B + b) * H + j];
                    cs[j] = r->c0[((size_t)k * B + b) * H + j];
                }
                for (int s = 0; s < len; s++) {
                    const int t = d ? len - 1 - s : s;
                    const double *xr = cur + ((size_t)t * B + b) * width;
                    for (int q = 0; q < GH; q++) {
                        double a = b_ih ? b_ih[q] : 0.0, e = b_hh ? b_hh[q] : 0.0;
                        for (int i = 0; i < width; i++) a += w_ih[(size_t)q * width + i] * xr[i];
                        for (int j = 0; j < H; j++) e += w_hh[(size_t)q * H + j] * h[j];
                        gx[q] = a, gh[q] = e;
                    }
                    ref_step(g->mode, H, gx, gh, h, cs, h, cs);
                    memcpy(out + ((size_t)t * B + b) * DH + (size_t)d * H, h, H * sizeof *h);
                }
                memcpy(h_n + ((size_t)k * B + b) * H, h, H * sizeof *h);
                memcpy(c_n + ((size_t)k * B + b) * H, cs, H * sizeof *cs);
            }
        }
        free(cur);
        cur = out;
        width = DH;
    }
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            size_t row = g->batch_first ? (size_t)b * T + t : (size_t)t * B + b;
            memcpy(y + row * DH, cur + ((size_t)t * B + b) * DH, DH * sizeof *y);
        }
    free(cur), free(gx), free(gh), free(h), free(cs);
}

/* sum(y probe_y) + sum(h_n probe_h) (+ sum(c_n probe_c) for LSTM) of the loop. */
static double ref_loss(const layer_case *c, const ref_inputs *r)
{
    const size_t ny = y_size(c), ns = state_size(c);
    double *y = malloc(ny * sizeof *y), *hn = malloc(ns * sizeof *hn);
    double *cn = malloc(ns * sizeof *cn);
    ref_forward(c, r, y, hn, cn);
    double loss = 0.0;
    for (size_t e = 0; e < ny; e++) loss += y[e] * c->probe_y[e];
    for (size_t e = 0; e < ns; e++) loss += hn[e] * c->probe_h[e];
    if (is_lstm(c))
        for (size_t e = 0; e < ns; e++) loss += cn[e] * c->probe_c[e];
    free(y), free(hn), free(cn);
    return loss;
}

/* The gradient of ref_loss with respect to x[from .. from + n) by central
 * differences in float64 (step 1e-6: truncation and rounding both near 1e-10). */
static double *ref_gradient(const layer_case *c, ref_inputs *r, double *x, size_t from, size_t n)
{
    const double step = 1e-6;
    double *grad = malloc((n ? n : 1) * sizeof *grad);
    for (size_t e = 0; e < n; e++) {
        double saved = x[from + e];
        x[from + e] = saved + step;
        double up = ref_loss(c, r);
        x[from + e] = saved - step;
        double down = ref_loss(c, r);
        x[from + e] = saved;
        grad[e] = (up - down) / (2.0 * step);
    }
    return grad;
}

static double worst_layer_forward, worst_layer_grad;

/* Gradients are held to 5e-5: the backward runs through every step and layer,
 * and over many runs the floored error stayed below 5e-6. */
static void compare_gradient(const layer_case *c, int n, const char *name, const float *got,
                             const double *want, size_t count)
{
    double err = floored_error(got, want, count);
    worst_layer_grad = fmax(worst_layer_grad, err);
    if (!(err <= 5e-5)) print_error("case %d (%s): %s error %g\n", n, c->desc, name, err);
    assert_true(err <= 5e-5);
}

static void test_layer_matches_float64_loop(void **state)
{
    (void)state;
    for (int n = 0; n < 64; n++) {
        attn_rng rng = test_rng(2000 + (uint64_t)n);
        layer_case c;
        make_layer(&c, &rng, n % MODE_COUNT, 5, 4, 5);
        layer_forward(&c);
        ref_inputs r = ref_inputs_of(&c);
        const size_t ny = y_size(&c), ns = state_size(&c);
        double *y = malloc(ny * sizeof *y), *hn = malloc(ns * sizeof *hn);
        double *cn = malloc(ns * sizeof *cn);
        ref_forward(&c, &r, y, hn, cn);
        double err = fmax(floored_error(c.y, y, ny), floored_error(c.h_n, hn, ns));
        if (is_lstm(&c)) err = fmax(err, floored_error(c.c_n, cn, ns));
        worst_layer_forward = fmax(worst_layer_forward, err);
        if (!(err <= 1e-5)) print_error("case %d (%s): forward error %g\n", n, c.desc, err);
        assert_true(err <= 1e-5);
        /* Past each row's length y is exactly zero. */
        const int B = c.in.batch, T = c.in.seq_len, DH = c.D * c.cfg.hidden_size;
        for (int b = 0; c.lengths && b < B; b++)
            for (int t = c.lengths[b]; t < T; t++) {
                size_t row = c.cfg.batch_first ? (size_t)b * T + t : (size_t)t * B + b;
                for (int j = 0; j < DH; j++) assert_true(c.y[row * DH + j] == 0.0f);
            }

        layer_grads g = layer_backward(&c);
        double *want = ref_gradient(&c, &r, r.x, 0, x_size(&c));
        compare_gradient(&c, n, "dx", g.dx, want, x_size(&c));
        free(want);
        if (c.h0) {
            want = ref_gradient(&c, &r, r.h0, 0, ns);
            compare_gradient(&c, n, "dh0", g.dh0, want, ns);
            free(want);
        }
        if (c.c0) {
            want = ref_gradient(&c, &r, r.c0, 0, ns);
            compare_gradient(&c, n, "dc0", g.dc0, want, ns);
            free(want);
        }
        attn_params *p = attn_rnn_params(c.m);
        for (int t = 0; t < p->count; t++) {
            const attn_param *it = &p->items[t];
            want = ref_gradient(&c, &r, r.params, it->offset, it->numel);
            compare_gradient(&c, n, it->name, g.params + it->offset, want, it->numel);
            free(want);
        }
        free_grads(&g);
        free(y), free(hn), free(cn);
        free_ref_inputs(&r);
        free_layer(&c);
    }
    printf("layer: largest forward error against float64: %g, largest gradient error: %g\n",
           worst_layer_forward, worst_layer_grad);
}

/* ---- packed lengths ---- */

/* A batch with lengths gives each row what that row gives alone (batch 1,
 * seq_len = its length, no lengths), and its parameter gradients are the sum of
 * the rows'. */
static void test_lengths_match_rows_run_alone(void **state)
{
    (void)state;
    for (int n = 0; n < 24; n++) {
        attn_rng rng = test_rng(3000 + (uint64_t)n);
        layer_case c;
        make_layer(&c, &rng, n % MODE_COUNT, 6, 5, 7);
        while (c.lengths == NULL) {
            free_layer(&c);
            make_layer(&c, &rng, n % MODE_COUNT, 6, 5, 7);
        }
        layer_forward(&c);
        layer_grads g = layer_backward(&c);
        const attn_rnn_config *cfg = &c.cfg;
        const int B = c.in.batch, T = c.in.seq_len, H = cfg->hidden_size, DH = c.D * H;
        const int in = cfg->input_size, K = cfg->num_layers * c.D;
        attn_params *p = attn_rnn_params(c.m);
        double *param_sum = calloc(p->total, sizeof *param_sum);
        double worst = 0.0;

        attn_rnn *alone;
        assert_int_equal(attn_rnn_create(&alone, cfg, 1), ATTN_OK);
        attn_params *q = attn_rnn_params(alone);
        memcpy(q->data, p->data, p->total * sizeof(float));
        for (int b = 0; b < B; b++) {
            const int len = c.lengths[b];
            float *x = test_zeros((size_t)len * in), *y = test_zeros((size_t)len * DH);
            float *h0 = test_zeros((size_t)K * H), *c0 = test_zeros((size_t)K * H);
            float *hn = test_zeros((size_t)K * H), *cn = test_zeros((size_t)K * H);
            float *dy = test_zeros((size_t)len * DH), *dx = test_zeros((size_t)len * in);
            float *dhn = test_zeros((size_t)K * H), *dcn = test_zeros((size_t)K * H);
            float *dh0 = test_zeros((size_t)K * H), *dc0 = test_zeros((size_t)K * H);
            for (int t = 0; t < len; t++) { /* batch 1: both layouts are (T, 1, width) */
                size_t row = cfg->batch_first ? (size_t)b * T + t : (size_t)t * B + b;
                memcpy(x + (size_t)t * in, c.x + row * in, (size_t)in * sizeof *x);
                memcpy(dy + (size_t)t * DH, c.probe_y + row * DH, (size_t)DH * sizeof *dy);
            }
            for (int k = 0; k < K; k++) {
                size_t at = ((size_t)k * B + b) * H;
                if (c.h0) memcpy(h0 + (size_t)k * H, c.h0 + at, (size_t)H * sizeof *h0);
                if (c.c0) memcpy(c0 + (size_t)k * H, c.c0 + at, (size_t)H * sizeof *c0);
                memcpy(dhn + (size_t)k * H, c.probe_h + at, (size_t)H * sizeof *dhn);
                memcpy(dcn + (size_t)k * H, c.probe_c + at, (size_t)H * sizeof *dcn);
            }
            attn_rnn_input one = {.x = x, .batch = 1, .seq_len = len, .h0 = h0,
                                  .c0 = is_lstm(&c) ? c0 : NULL};
            const bool lstm = is_lstm(&c);
            assert_int_equal(attn_rnn_forward(alone, y, hn, lstm ? cn : NULL, &one), ATTN_OK);
            attn_params_zero_grad(q);
            assert_int_equal(attn_rnn_backward(alone, dx, dh0, lstm ? dc0 : NULL, dy, dhn,
                                               lstm ? dcn : NULL),
                             ATTN_OK);
            for (size_t e = 0; e < q->total; e++) param_sum[e] += q->grad[e];
            for (int t = 0; t < len; t++) {
                size_t row = cfg->batch_first ? (size_t)b * T + t : (size_t)t * B + b;
                for (int j = 0; j < DH; j++)
                    worst = fmax(worst, fabs(c.y[row * DH + j] - y[(size_t)t * DH + j]));
                for (int j = 0; j < in; j++)
                    worst = fmax(worst, fabs(g.dx[row * in + j] - dx[(size_t)t * in + j]));
            }
            for (int t = len; t < T; t++) { /* padded steps get no gradient */
                size_t row = cfg->batch_first ? (size_t)b * T + t : (size_t)t * B + b;
                for (int j = 0; j < in; j++) assert_true(g.dx[row * in + j] == 0.0f);
            }
            for (int k = 0; k < K; k++)
                for (int j = 0; j < H; j++) {
                    size_t at = ((size_t)k * B + b) * H + j, mine = (size_t)k * H + j;
                    worst = fmax(worst, fabs(c.h_n[at] - hn[mine]));
                    worst = fmax(worst, fabs(g.dh0[at] - dh0[mine]));
                    if (lstm) {
                        worst = fmax(worst, fabs(c.c_n[at] - cn[mine]));
                        worst = fmax(worst, fabs(g.dc0[at] - dc0[mine]));
                    }
                }
            free(x), free(y), free(h0), free(c0), free(hn), free(cn), free(dy), free(dx);
            free(dhn), free(dcn), free(dh0), free(dc0);
        }
        double err = floored_error(g.params, param_sum, p->total);
        if (!(worst <= 1e-5 && err <= 1e-5))
            print_error("case %d (%s): rows differ by %g, parameter gradients by %g\n", n,
                        c.desc, worst, err);
        assert_true(worst <= 1e-5 && err <= 1e-5);
        attn_rnn_free(alone);
        free(param_sum);
        free_grads(&g);
        free_layer(&c);
    }
}

/* ---- dropout ---- */

static double dropout_loss(void *ctx)
{
    layer_case *c = ctx;
    layer_forward(c);
    double loss = test_dot(c->y, c->probe_y, y_size(c)) +
                  test_dot(c->h_n, c->probe_h, state_size(c));
    if (is_lstm(c)) loss += test_dot(c->c_n, c->probe_c, state_size(c));
    return loss;
}

static void test_dropout_between_layers(void **state)
{
    (void)state;
    const int smooth[] = {0, 2, 3}; /* tanh, LSTM, GRU: no kinks for finite differences */
    for (int n = 0; n < 6; n++) {
        attn_rng rng = test_rng(4000 + (uint64_t)n);
        layer_case c;
        make_layer(&c, &rng, smooth[n % 3], 4, 3, 4);
        attn_rnn_free(c.m);
        c.cfg.num_layers = 2 + n % 2;
        c.cfg.dropout = 0.3f + 0.1f * (float)(n % 3);
        free(c.h0), free(c.c0);
        c.h0 = c.c0 = NULL;
        c.in.h0 = c.in.c0 = NULL;
        free(c.h_n), free(c.c_n), free(c.probe_h), free(c.probe_c);
        c.h_n = test_zeros(state_size(&c)), c.c_n = test_zeros(state_size(&c));
        c.probe_h = test_random(&rng, state_size(&c), -1, 1);
        c.probe_c = test_random(&rng, state_size(&c), -1, 1);
        assert_int_equal(attn_rnn_create(&c.m, &c.cfg, 7), ATTN_OK);
        attn_params *p = attn_rnn_params(c.m);
        const size_t ny = y_size(&c);
        float *eval = test_zeros(ny), *train = test_zeros(ny);

        c.in.training = false;
        layer_forward(&c);
        memcpy(eval, c.y, ny * sizeof *eval);
        c.in.training = true;
        c.in.dropout_seed = 11;
        layer_forward(&c);
        memcpy(train, c.y, ny * sizeof *train);
        layer_forward(&c);
        assert_memory_equal(train, c.y, ny * sizeof *train); /* same seed, same masks */
        assert_true(memcmp(train, eval, ny * sizeof *train) != 0);

        /* The masks are a fixed function of the seed, so finite differences apply. */
        layer_grads g = layer_backward(&c);
        const double magnitude = loss_magnitude(c.y, c.probe_y, ny);
        double err = gradcheck_error(test_gradcheck(c.x, x_size(&c), g.dx, dropout_loss, &c, 1e-2f),
                                     g.dx, x_size(&c), magnitude);
        for (int t = 0; t < p->count; t++) {
            const attn_param *it = &p->items[t];
            err = fmax(err, gradcheck_error(test_gradcheck(p->data + it->offset, it->numel,
                                                           g.params + it->offset, dropout_loss,
                                                           &c, 1e-2f),
                                            g.params + it->offset, it->numel, magnitude));
        }
        if (!(err <= 1e-3))
            print_error("case %d (%s): finite-difference error %g\n", n, c.desc, err);
        assert_true(err <= 1e-3);
        free_grads(&g);
        free(eval), free(train);
        free_layer(&c);
    }
}

/* ---- parameters, threads, reuse -------------------------------------------------------- */

static void test_parameters_are_pytorchs(void **state)
{
    (void)state;
    attn_rnn *m;
    attn_rnn_config cfg = {.mode = ATTN_LSTM, .input_size = 10, .hidden_size = 16,
                           .num_layers = 2, .bias = true, .bidirectional = true};
    assert_int_equal(attn_rnn_create(&m, &cfg, test_seed()), ATTN_OK);
    attn_params *p = attn_rnn_params(m);
    assert_int_equal(p->count, 16);
    const char *order[] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                           "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
                           "bias_hh_l0_reverse", "weight_ih_l1", "weight_hh_l1"};
    for (int i = 0; i < 10; i++) assert_string_equal(p->items[i].name, order[i]);
    test_expect_param(p, "weight_ih_l0", 64, 10);
    test_expect_param(p, "weight_hh_l0_reverse", 64, 16);
    test_expect_param(p, "weight_ih_l1", 64, 32);
    test_expect_param(p, "bias_hh_l1_reverse", 64, 0);
    const float bound = 0.25f;
    float lo = 0, hi = 0;
    for (int i = 0; i < p->count; i++)
        for (size_t e = 0; e < p->items[i].numel; e++) {
            float v = p->data[p->items[i].offset + e];
            assert_true(fabsf(v) <= bound);
            lo = fminf(lo, v), hi = fmaxf(hi, v);
        }
    assert_true(lo < -0.9f * bound && hi > 0.9f * bound);
    assert_int_equal(attn_rnn_get_config(m)->hidden_size, 16);
    attn_rnn_free(m);

    cfg = (attn_rnn_config){.mode = ATTN_GRU, .input_size = 3, .hidden_size = 5, .num_layers = 3};
    assert_int_equal(attn_rnn_create(&m, &cfg, test_seed()), ATTN_OK);
    p = attn_rnn_params(m);
    assert_int_equal(p->count, 6);
    test_expect_param(p, "weight_ih_l0", 15, 3);
    test_expect_param(p, "weight_ih_l2", 15, 5);
    assert_null(attn_params_find(p, "bias_ih_l0"));
    assert_null(attn_params_find(p, "weight_ih_l0_reverse"));
    attn_rnn_free(m);
    assert_int_equal(attn_rnn_gates(ATTN_RNN_RELU), 1);
    assert_int_equal(attn_rnn_gates((attn_rnn_mode)9), 0);
}

static void test_thread_count_does_not_change_results(void **state)
{
    (void)state;
    for (int n = 0; n < MODE_COUNT; n++) {
        attn_rng rng = test_rng(5000 + (uint64_t)n);
        /* Big enough for the cell's rows to be split across threads. */
        attn_rnn_config cfg = {.mode = MODES[n], .input_size = 24, .hidden_size = 96,
                               .num_layers = 2, .bias = true, .bidirectional = n % 2};
        const int B = 48, T = 5, D = cfg.bidirectional ? 2 : 1, K = 2 * D;
        attn_rnn *m;
        assert_int_equal(attn_rnn_create(&m, &cfg, 3), ATTN_OK);
        float *x = test_random(&rng, (size_t)T * B * 24, -1, 1);
        float *dy = test_random(&rng, (size_t)T * B * D * 96, -1, 1);
        /* Steps where a single row still runs (m = 1 products) included. */
        int32_t lengths[48] = {T};
        for (int b = 1; b < B; b++) lengths[b] = 1 + (int32_t)attn_rng_below(&rng, T - 1);
        attn_rnn_input in = {.x = x, .batch = B, .seq_len = T, .lengths = lengths};
        attn_params *p = attn_rnn_params(m);
        float *y[2], *grad[2], *dx[2], *dh0[2];
        for (int t = 0; t < 2; t++) {
            assert_int_equal(attn_set_num_threads(t + 1), ATTN_OK);
            y[t] = test_zeros((size_t)T * B * D * 96);
            dx[t] = test_zeros((size_t)T * B * 24);
            dh0[t] = test_zeros((size_t)K * B * 96);
            assert_int_equal(attn_rnn_forward(m, y[t], NULL, NULL, &in), ATTN_OK);
            attn_params_zero_grad(p);
            assert_int_equal(attn_rnn_backward(m, dx[t], dh0[t], NULL, dy, NULL, NULL), ATTN_OK);
            grad[t] = malloc(p->total * sizeof(float));
            memcpy(grad[t], p->grad, p->total * sizeof(float));
        }
        assert_memory_equal(y[0], y[1], (size_t)T * B * D * 96 * sizeof(float));
        assert_memory_equal(dx[0], dx[1], (size_t)T * B * 24 * sizeof(float));
        assert_memory_equal(dh0[0], dh0[1], (size_t)K * B * 96 * sizeof(float));
        assert_memory_equal(grad[0], grad[1], p->total * sizeof(float));
        for (int t = 0; t < 2; t++) free(y[t]), free(grad[t]), free(dx[t]), free(dh0[t]);
        free(x), free(dy);
        attn_rnn_free(m);
    }
}

/* The module keeps activations sized for the largest shape seen: a reused module
 * agrees with a fresh one on bigger and smaller shapes. */
static void test_reuse_across_shapes(void **state)
{
    (void)state;
    attn_rng rng = test_rng(6000);
    attn_rnn_config cfg = {.mode = ATTN_LSTM, .input_size = 4, .hidden_size = 6,
                           .num_layers = 2, .bias = true, .bidirectional = true,
                           .batch_first = true};
    attn_rnn *reused;
    assert_int_equal(attn_rnn_create(&reused, &cfg, 9), ATTN_OK);
    const int shapes[3][2] = {{2, 3}, {5, 8}, {1, 2}};
    for (int s = 0; s < 3; s++) {
        const int B = shapes[s][0], T = shapes[s][1];
        float *x = test_random(&rng, (size_t)B * T * 4, -1, 1);
        float *a = test_zeros((size_t)B * T * 12), *b = test_zeros((size_t)B * T * 12);
        attn_rnn_input in = {.x = x, .batch = B, .seq_len = T};
        assert_int_equal(attn_rnn_forward(reused, a, NULL, NULL, &in), ATTN_OK);
        attn_rnn *fresh;
        assert_int_equal(attn_rnn_create(&fresh, &cfg, 9), ATTN_OK);
        assert_int_equal(attn_rnn_forward(fresh, b, NULL, NULL, &in), ATTN_OK);
        assert_memory_equal(a, b, (size_t)B * T * 12 * sizeof(float));
        attn_rnn_free(fresh);
        free(x), free(a), free(b);
    }
    attn_rnn_free(reused);
}

/* ---- bad input ------------------------------------------------------------------------ */

static void test_bad_input_is_rejected(void **state)
{
    (void)state;
    attn_rnn *m = NULL;
    const attn_rnn_config good = {.mode = ATTN_GRU, .input_size = 3, .hidden_size = 4,
                                  .num_layers = 1, .bias = true};
    attn_rnn_config cfg = good;
    cfg.hidden_size = 0;
    test_expect_invalid(attn_rnn_create(&m, &cfg, 1), "hidden_size is 0");
    assert_null(m);
    cfg = good, cfg.input_size = -2;
    test_expect_invalid(attn_rnn_create(&m, &cfg, 1), "input_size is -2");
    cfg = good, cfg.num_layers = 0;
    test_expect_invalid(attn_rnn_create(&m, &cfg, 1), "num_layers is 0");
    cfg = good, cfg.mode = (attn_rnn_mode)7;
    test_expect_invalid(attn_rnn_create(&m, &cfg, 1), "mode 7");
    cfg = good, cfg.dropout = 1.0f;
    test_expect_invalid(attn_rnn_create(&m, &cfg, 1), "dropout 1");
    cfg = good, cfg.dropout = NAN;
    test_expect_invalid(attn_rnn_create(&m, &cfg, 1), "dropout nan");
    test_expect_invalid(attn_rnn_create(&m, NULL, 1), "config is NULL");
    test_expect_invalid(attn_rnn_create(NULL, &good, 1), "out is NULL");

    assert_int_equal(attn_rnn_create(&m, &good, 1), ATTN_OK);
    float x[64] = {0}, y[64], h[64];
    test_expect_invalid(attn_rnn_backward(m, NULL, NULL, NULL, y, NULL, NULL),
                        "needs a successful attn_rnn_forward");
    int32_t lengths[2] = {4, 0};
    const attn_rnn_input ok = {.x = x, .batch = 2, .seq_len = 4};
    attn_rnn_input in = ok;
    in.lengths = lengths;
    test_expect_invalid(attn_rnn_forward(m, y, NULL, NULL, &in),
                        "lengths[1] = 0 is outside [1, seq_len 4]");
    lengths[1] = 5;
    test_expect_invalid(attn_rnn_forward(m, y, NULL, NULL, &in), "lengths[1] = 5");
    in = ok, in.x = NULL;
    test_expect_invalid(attn_rnn_forward(m, y, NULL, NULL, &in), "x is NULL");
    in = ok, in.batch = 0;
    test_expect_invalid(attn_rnn_forward(m, y, NULL, NULL, &in), "batch is 0");
    in = ok, in.seq_len = -1;
    test_expect_invalid(attn_rnn_forward(m, y, NULL, NULL, &in), "seq_len is -1");
    in = ok, in.c0 = h;
    test_expect_invalid(attn_rnn_forward(m, y, NULL, NULL, &in), "c0 is given, but mode GRU");
    test_expect_invalid(attn_rnn_forward(m, y, NULL, h, &ok), "c_n is given");
    test_expect_invalid(attn_rnn_forward(m, NULL, NULL, NULL, &ok), "y is NULL");
    test_expect_invalid(attn_rnn_forward(m, y, NULL, NULL, NULL), "input is NULL");
    in = ok, in.batch = 1 << 16, in.seq_len = 1 << 16;
    test_expect_invalid(attn_rnn_forward(m, y, NULL, NULL, &in), "exceeds");
    assert_int_equal(attn_rnn_forward(m, y, NULL, NULL, &ok), ATTN_OK);
    test_expect_invalid(attn_rnn_backward(m, NULL, NULL, h, y, NULL, NULL), "dc0 is given");
    /* A failed forward forgets the last one. */
    in = ok, in.batch = 0;
    test_expect_invalid(attn_rnn_forward(m, y, NULL, NULL, &in), "batch is 0");
    test_expect_invalid(attn_rnn_backward(m, NULL, NULL, NULL, y, NULL, NULL),
                        "needs a successful attn_rnn_forward");
    attn_rnn_free(m);

    /* The cell. */
    float s[256] = {0}, w[64] = {0};
    test_expect_invalid(attn_rnn_cell_forward(ATTN_GRU, h, NULL, s, x, h, NULL, w, NULL, 0, 2),
                        "B is 0");
    test_expect_invalid(attn_rnn_cell_forward(ATTN_GRU, h, NULL, s, x, h, NULL, w, NULL, 2, 0),
                        "H is 0");
    test_expect_invalid(attn_rnn_cell_forward((attn_rnn_mode)5, h, NULL, s, x, h, NULL, w, NULL,
                                              2, 2),
                        "mode 5");
    test_expect_invalid(attn_rnn_cell_forward(ATTN_LSTM, h, NULL, s, x, h, h, w, NULL, 2, 2),
                        "c_out");
    test_expect_invalid(attn_rnn_cell_forward(ATTN_RNN_TANH, h, NULL, s, NULL, h, NULL, w, NULL,
                                              2, 2),
                        "gx is NULL");
    test_expect_invalid(attn_rnn_cell_backward(ATTN_GRU, s, h, NULL, NULL, NULL, NULL, h, NULL,
                                               s, h, NULL, w, 2, 2),
                        "scratch");
    test_expect_invalid(attn_rnn_cell_backward(ATTN_LSTM, s, h, NULL, NULL, NULL, NULL, h, NULL,
                                               s, h, NULL, w, 2, 2),
                        "c (LSTM) is NULL");
    test_expect_invalid(attn_rnn_cell_forward_at((attn_precision)9, ATTN_GRU, h, NULL, s, x, h,
                                                 NULL, w, NULL, 2, 2),
                        "precision 9");
    test_expect_invalid(attn_rnn_cell_backward_at((attn_precision)9, ATTN_RNN_TANH, s, h, NULL,
                                                  NULL, NULL, NULL, h, NULL, s, h, NULL, w, 2, 2),
                        "precision 9");
    assert_int_equal(attn_rnn_cell_saved_size(ATTN_LSTM, 3), 15);
    assert_int_equal(attn_rnn_cell_saved_size(ATTN_GRU, 3), 12);
    assert_int_equal(attn_rnn_cell_saved_size(ATTN_RNN_RELU, 3), 3);
}

int main(void)
{
    test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cell_matches_float64),
        cmocka_unit_test(test_cell_gradients_match_finite_differences),
        cmocka_unit_test(test_layer_matches_float64_loop),
        cmocka_unit_test(test_lengths_match_rows_run_alone),
        cmocka_unit_test(test_dropout_between_layers),
        cmocka_unit_test(test_parameters_are_pytorchs),
        cmocka_unit_test(test_thread_count_does_not_change_results),
        cmocka_unit_test(test_reuse_across_shapes),
        cmocka_unit_test(test_bad_input_is_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
