/* torch.nn.RNN, LSTM and GRU over whole sequences: stacked layers, both
 * directions, packed lengths, dropout between layers.
 *
 * Each layer and direction projects all T steps with one GEMM (gx = x W_ih^T +
 * b_ih), runs the recurrence with one cell step (attn_rnn_cell_*) per time step,
 * and in backward takes dgx back through the projection, and dgh into dW_hh,
 * with one GEMM each over all steps.
 *
 * Rows. Internally every sequence tensor is time-major, (T, B, width), with the
 * batch rows sorted by length, longest first (stable), as pack_padded_sequence
 * sorts them. Then the rows still running at step t are the first active[t] rows,
 * so each step is one cell call on a contiguous block, as PyTorch's packed batches
 * are. Rows past their length hold zeros (and their gx gradient is zero), so the
 * whole-sequence GEMMs may run over them. Without lengths and with batch_first
 * off the caller's rows are already in this order and are used in place.
 *
 * States. One direction of one layer keeps T + 1 slots of (B, H): forward, slot 0
 * holds h0 and slot t + 1 the state after step t; reverse, slot t holds the state
 * after step t and a row joining at step t (its last valid step) finds h0 in slot
 * t + 1. So the previous state of step t is slot t (forward) or t + 1 (reverse),
 * and those T slots are one (T, B, H) matrix for the dW_hh GEMM.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/rnn.h"
#include "core/error.h"
#include "nn/activations.h"
#include "nn/rnn_impl.h"

typedef struct rnn_weights {
    float *w_ih, *w_hh; /* (G*H, in), (G*H, H) */
    float *b_ih, *b_hh; /* (G*H) each, NULL without bias */
} rnn_weights;

/* What one direction of one layer keeps from forward for backward. */
typedef struct rnn_track {
    float *h;     /* (T + 1, B, H) the state slots (see the top of the file) */
    float *c;     /* (T + 1, B, H) the cell state slots; LSTM only */
    float *saved; /* (T, B, S) the cell's saved rows per step */
} rnn_track;

struct attn_rnn {
    attn_rnn_config cfg;
    attn_precision precision; /* of the products (attn_rnn_set_precision) */
    int gates, dirs;
    size_t saved_size; /* S, floats per row of the cell's saved */
    attn_params own;          /* its block when used alone; empty inside a parent's */
    rnn_weights *data, *grad; /* (layers * dirs) views into the block it is bound to */

    attn_activations acts;
    attn_activation_view *views; /* room for layout_activations' list */
    int max_views;
    rnn_track *tracks; /* (layers * dirs) */
    float **outputs;   /* (layers - 1): (T, B, dirs*H) a layer's output, after dropout */
    float *x_rows;     /* (T, B, input_size) x in the sorted rows, unless direct */
    float *gx;         /* (T, B, G*H) the input projection; dgx in backward */
    float *dgh;        /* (T, B, G*H) the gradient of gh, GRU only */
    float *grad_rows[2]; /* (T, B, max(input_size, dirs*H)) gradients between layers */
    float *dh_step, *dh_carry, *dc_carry[2]; /* (B, H) */

    attn_int_block indices; /* order, length, active, counts; grown as batch or seq_len grow */
    int32_t *order;  /* (B) the caller's row of sorted row i */
    int32_t *length; /* (B) the length of sorted row i */
    int32_t *active; /* (T + 1) rows running at step t, the sorted rows below it; active[T] = 0 */

    /* The last forward. */
    bool has_forward;
    int batch, seq_len;
    bool direct;      /* time-major without lengths: the caller's rows are the sorted rows */
    const float *x0;  /* (T, B, input_size) layer 0's input: the caller's x or x_rows */
    bool dropout_on;
    uint64_t dropout_seed;
};

static const char *mode_name(attn_rnn_mode mode)
{
    switch (mode) {
    case ATTN_RNN_TANH: return "RNN_TANH";
    case ATTN_RNN_RELU: return "RNN_RELU";
    case ATTN_LSTM: return "LSTM";
    case ATTN_GRU: return "GRU";
    }
    return "unknown";
}

static attn_status check_config(const attn_rnn_config *cfg)
{
    attn_status s;
    if ((s = attn_check_not_null(cfg, "rnn config"))) return s;
    if (attn_rnn_gates(cfg->mode) == 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "rnn mode %d is not an attn_rnn_mode",
                          (int)cfg->mode);
    if ((s = attn_check_at_least(cfg->input_size, 1, "input_size")) ||
        (s = attn_check_at_least(cfg->hidden_size, 1, "hidden_size")) ||
        (s = attn_check_at_least(cfg->num_layers, 1, "num_layers")))
        return s;
    /* The GEMMs take G*H, dirs*H and the cell's saved row (5H) as ints, and the
     * activation list counts views in an int. */
    if (cfg->hidden_size > INT_MAX / 5)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "hidden_size %d is too large",
                          cfg->hidden_size);
    if (cfg->num_layers > INT_MAX / 16)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "num_layers %d is too large",
                          cfg->num_layers);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f)) /* also rejects NaN */
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "rnn dropout %g is outside [0, 1)",
                          (double)cfg->dropout);
    return ATTN_OK;
}

/* ---- parameters ------------------------------------------------------------------- */

static int layer_input_size(const attn_rnn *m, int l)
{
    return l == 0 ? m->cfg.input_size : m->dirs * m->cfg.hidden_size;
}

/* A track's (one layer's, one direction's) parameters, in PyTorch's order; the
 * biases only with cfg.bias. */
enum { RNN_WEIGHT_IH, RNN_WEIGHT_HH, RNN_BIAS_IH, RNN_BIAS_HH, RNN_KINDS };
static const char *const KIND_NAME[RNN_KINDS] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};

static int kinds(const attn_rnn *m) { return m->cfg.bias ? RNN_KINDS : RNN_BIAS_IH; }

/* The state_dict key of kind k in layer l, direction d: "weight_ih_l0_reverse". */
static void kind_name(char name[ATTN_PARAM_NAME_MAX], int k, int l, int d)
{
    snprintf(name, ATTN_PARAM_NAME_MAX, "%s_l%d%s", KIND_NAME[k], l, d ? "_reverse" : "");
}

/* The columns of kind k in layer l: its input's width, H, or 1 for a bias. */
static int kind_columns(const attn_rnn *m, int k, int l)
{
    if (k == RNN_WEIGHT_IH) return layer_input_size(m, l);
    return k == RNN_WEIGHT_HH ? m->cfg.hidden_size : 1;
}

/* The views of kind k in a track's weights (or gradients). */
static float **kind_view(rnn_weights *w, int k)
{
    float **views[RNN_KINDS] = {&w->w_ih, &w->w_hh, &w->b_ih, &w->b_hh};
    return views[k];
}

/* The state_dict keys and shapes in PyTorch's order: per layer, per direction,
 * weight_ih, weight_hh, bias_ih, bias_hh. */
void attn_rnn_specs(const attn_rnn *m, attn_specs *specs, const char *prefix)
{
    const int64_t GH = (int64_t)m->gates * m->cfg.hidden_size;
    char name[ATTN_PARAM_NAME_MAX];
    for (int l = 0; l < m->cfg.num_layers; l++)
        for (int d = 0; d < m->dirs; d++)
            for (int k = 0; k < kinds(m); k++) {
                kind_name(name, k, l, d);
                const bool matrix = k < RNN_BIAS_IH;
                attn_specs_add(specs, prefix, name, matrix ? 2 : 1, GH,
                               matrix ? kind_columns(m, k, l) : 0);
            }
}

/* As RNNBase.reset_parameters: every weight and bias uniform in +-1/sqrt(H),
 * drawn in the state_dict's order. */
attn_status attn_rnn_bind(attn_rnn *m, const attn_params *p, const char *prefix, uint64_t seed)
{
    const size_t GH = (size_t)m->gates * (size_t)m->cfg.hidden_size;
    const float bound = 1.0f / sqrtf((float)m->cfg.hidden_size);
    attn_rng rng;
    attn_rng_init(&rng, seed);
    char name[ATTN_PARAM_NAME_MAX];
    for (int l = 0; l < m->cfg.num_layers; l++)
        for (int d = 0; d < m->dirs; d++)
            for (int k = 0; k < kinds(m); k++) {
                float **data = kind_view(&m->data[l * m->dirs + d], k);
                float **grad = kind_view(&m->grad[l * m->dirs + d], k);
                kind_name(name, k, l, d);
                attn_status s = attn_param_bind(data, grad, p, prefix, name);
                if (s) return s;
                attn_rng_fill_uniform(&rng, *data, GH * (size_t)kind_columns(m, k, l), -bound,
                                      bound);
            }
    return ATTN_OK;
}

attn_status attn_rnn_new(attn_rnn **out, const attn_rnn_config *cfg)
{
    attn_status s;
    if ((s = attn_check_not_null(out, "out")) || (s = check_config(cfg))) return s;
    *out = NULL;
    attn_rnn *m = calloc(1, sizeof *m);
    if (m == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the rnn module");
    m->cfg = *cfg;
    m->gates = attn_rnn_gates(cfg->mode);
    m->dirs = cfg->bidirectional ? 2 : 1;
    m->saved_size = attn_rnn_cell_saved_size(cfg->mode, cfg->hidden_size);
    const int tracks = cfg->num_layers * m->dirs;
    /* Per track: h, c, saved; per layer: its output; then nine shared buffers. */
    m->max_views = 3 * tracks + cfg->num_layers + 9;
    m->data = calloc((size_t)tracks, sizeof *m->data);
    m->grad = calloc((size_t)tracks, sizeof *m->grad);
    m->tracks = calloc((size_t)tracks, sizeof *m->tracks);
    m->outputs = calloc((size_t)cfg->num_layers, sizeof *m->outputs);
    m->views = calloc((size_t)m->max_views, sizeof *m->views);
    if (!m->data || !m->grad || !m->tracks || !m->outputs || !m->views) {
        attn_rnn_free(m);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for an rnn of %d layers",
                          cfg->num_layers);
    }
    *out = m;
    return ATTN_OK;
}

/* The module alone: bound into a block of its own. */
attn_status attn_rnn_create(attn_rnn **out, const attn_rnn_config *cfg, uint64_t seed)
{
    attn_status s;
    if ((s = attn_rnn_new(out, cfg))) return s;
    attn_rnn *m = *out;
    attn_specs specs = {0};
    attn_rnn_specs(m, &specs, "");
    if ((s = attn_specs_layout(&specs, &m->own)) || (s = attn_rnn_bind(m, &m->own, "", seed))) {
        attn_rnn_free(m);
        *out = NULL;
        return s;
    }
    return ATTN_OK;
}

void attn_rnn_free(attn_rnn *m)
{
    if (m == NULL) return;
    attn_params_free(&m->own);
    attn_activations_free(&m->acts);
    attn_int_block_free(&m->indices);
    free(m->data), free(m->grad), free(m->tracks), free(m->outputs), free(m->views);
    free(m);
}

/* A module bound into a parent's block has no block of its own. */
attn_params *attn_rnn_params(attn_rnn *m) { return m && m->own.items ? &m->own : NULL; }

const attn_rnn_config *attn_rnn_get_config(const attn_rnn *m) { return m ? &m->cfg : NULL; }

void attn_rnn_set_precision(attn_rnn *m, attn_precision precision) { m->precision = precision; }

/* ---- rows and buffers ------------------------------------------------------------- */

static attn_status check_input(const attn_rnn *m, const float *y, const float *c_n,
                               const attn_rnn_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(in, "rnn input")) || (s = attn_check_not_null(in->x, "x")) ||
        (s = attn_check_not_null(y, "y")) || (s = attn_check_at_least(in->batch, 1, "batch")) ||
        (s = attn_check_at_least(in->seq_len, 1, "seq_len")))
        return s;
    /* The projections are GEMMs over seq_len * batch rows, counted in int. */
    if ((int64_t)in->batch * in->seq_len > INT_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "batch %d times seq_len %d exceeds %d rows",
                          in->batch, in->seq_len, INT_MAX);
    if (m->cfg.mode != ATTN_LSTM && (in->c0 || c_n))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s is given, but mode %s has no cell state",
                          in->c0 ? "c0" : "c_n", mode_name(m->cfg.mode));
    if (in->lengths)
        for (int b = 0; b < in->batch; b++)
            if (in->lengths[b] < 1 || in->lengths[b] > in->seq_len)
                return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                                  "lengths[%d] = %d is outside [1, seq_len %d]", b,
                                  (int)in->lengths[b], in->seq_len);
    return ATTN_OK;
}

/* Sorts the rows by length, longest first, keeping the caller's order among equal
 * lengths (a counting sort), and counts the rows running at each step. */
static attn_status arrange_rows(attn_rnn *m, const attn_rnn_input *in)
{
    const int B = in->batch, T = in->seq_len;
    attn_status s =
        attn_int_block_reserve(&m->indices, 2 * (size_t)B + 2 * ((size_t)T + 1), "row indices");
    if (s) return s;
    m->order = m->indices.data;
    m->length = m->order + B;
    m->active = m->length + B;
    int32_t *first = m->active + T + 1; /* (T + 1): the first sorted row of each length */
    if (in->lengths == NULL) {
        for (int b = 0; b < B; b++) m->order[b] = b, m->length[b] = T;
        for (int t = 0; t < T; t++) m->active[t] = B;
        m->active[T] = 0;
        return ATTN_OK;
    }
    for (int len = 0; len <= T; len++) first[len] = 0;
    for (int b = 0; b < B; b++) first[in->lengths[b]]++;
    int rows = 0; /* rows longer than the current len */
    for (int len = T; len >= 1; len--) {
        int count = first[len];
        first[len] = rows;
        rows += count;
        m->active[len - 1] = rows;
    }
    m->active[T] = 0;
    for (int b = 0; b < B; b++) {
        int i = first[in->lengths[b]]++;
        m->order[i] = b;
        m->length[i] = in->lengths[b];
    }
    return ATTN_OK;
}

/* The row of the caller's (T, B, width) or (B, T, width) tensor that holds sorted
 * row i at step t. */
static size_t caller_row(const attn_rnn *m, int t, int i)
{
    return m->cfg.batch_first ? (size_t)m->order[i] * (size_t)m->seq_len + (size_t)t
                              : (size_t)t * (size_t)m->batch + (size_t)m->order[i];
}

static attn_status layout_activations(attn_rnn *m)
{
    const attn_rnn_config *cfg = &m->cfg;
    const size_t B = (size_t)m->batch, T = (size_t)m->seq_len, H = (size_t)cfg->hidden_size;
    const size_t BH = B * H, GH = (size_t)m->gates * H, DH = (size_t)m->dirs * H;
    const size_t in0 = (size_t)cfg->input_size, widest = in0 > DH ? in0 : DH;
    const bool lstm = cfg->mode == ATTN_LSTM, gru = cfg->mode == ATTN_GRU;
    const bool stacked = cfg->num_layers > 1;
    int n = 0;
    attn_activation_view *v = m->views;
    for (int k = 0; k < cfg->num_layers * m->dirs; k++) {
        rnn_track *tr = &m->tracks[k];
        v[n++] = (attn_activation_view){&tr->h, (T + 1) * BH};
        v[n++] = (attn_activation_view){&tr->c, lstm ? (T + 1) * BH : 0};
        v[n++] = (attn_activation_view){&tr->saved, T * B * m->saved_size};
    }
    for (int l = 0; l + 1 < cfg->num_layers; l++)
        v[n++] = (attn_activation_view){&m->outputs[l], T * B * DH};
    v[n++] = (attn_activation_view){&m->x_rows, m->direct ? 0 : T * B * in0};
    v[n++] = (attn_activation_view){&m->gx, T * B * GH};
    v[n++] = (attn_activation_view){&m->dgh, gru ? T * B * GH : 0};
    v[n++] = (attn_activation_view){&m->grad_rows[0], stacked || !m->direct ? T * B * widest : 0};
    v[n++] = (attn_activation_view){&m->grad_rows[1], stacked ? T * B * widest : 0};
    v[n++] = (attn_activation_view){&m->dh_step, BH};
    v[n++] = (attn_activation_view){&m->dh_carry, BH};
    v[n++] = (attn_activation_view){&m->dc_carry[0], lstm ? BH : 0};
    v[n++] = (attn_activation_view){&m->dc_carry[1], lstm ? BH : 0};
    return attn_activations_layout(&m->acts, v, n);
}

/* dst: (T, B, width) in the sorted rows = src: the caller's rows, zero past each
 * row's length. */
static void gather_rows(const attn_rnn *m, float *dst, const float *src, int width)
{
    const size_t w = (size_t)width;
    for (int t = 0; t < m->seq_len; t++)
        for (int i = 0; i < m->batch; i++) {
            float *row = dst + ((size_t)t * m->batch + i) * w;
            if (i < m->active[t])
                memcpy(row, src + caller_row(m, t, i) * w, w * sizeof *row);
            else
                memset(row, 0, w * sizeof *row);
        }
}

/* dst: the caller's rows += src: (T, B, width) in the sorted rows. */
static void scatter_add_rows(const attn_rnn *m, float *dst, const float *src, int width)
{
    const size_t w = (size_t)width;
    for (int t = 0; t < m->seq_len; t++)
        for (int i = 0; i < m->active[t]; i++) {
            float *to = dst + caller_row(m, t, i) * w;
            const float *from = src + ((size_t)t * m->batch + i) * w;
            for (size_t j = 0; j < w; j++) to[j] += from[j];
        }
}

/* Sorted rows [from, to) of dst: (B, H) = the rows of slice k of src: (k, B, H) in
 * the caller's order (h0, c0, dh_n, dc_n), or zeros if src is NULL. */
static void load_rows(const attn_rnn *m, float *dst, const float *src, int k, int from, int to)
{
    const size_t H = (size_t)m->cfg.hidden_size;
    for (int i = from; i < to; i++) {
        float *row = dst + (size_t)i * H;
        if (src)
            memcpy(row, src + ((size_t)k * m->batch + m->order[i]) * H, H * sizeof *row);
        else
            memset(row, 0, H * sizeof *row);
    }
}

/* Slice k of dst: (k, B, H) in the caller's order += sorted rows [from, to) of
 * src: (B, H). Nothing if dst is NULL. */
static void add_rows(const attn_rnn *m, float *dst, const float *src, int k, int from, int to)
{
    if (dst == NULL) return;
    const size_t H = (size_t)m->cfg.hidden_size;
    for (int i = from; i < to; i++) {
        float *row = dst + ((size_t)k * m->batch + m->order[i]) * H;
        for (size_t j = 0; j < H; j++) row[j] += src[(size_t)i * H + j];
    }
}

/* The seed of the dropout on layer l's output. */
static uint64_t layer_seed(uint64_t seed, int l)
{
    return seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(l + 1));
}

/* ---- forward ------------------------------------------------------------------------ */

/* Direction d's states into columns [d H, (d + 1) H) of dst: the caller's y (the
 * top layer) or the layer's (T, B, dirs*H) output; zero past each row's length. */
static void emit_states(const attn_rnn *m, float *dst, bool to_caller, int d, const float *h)
{
    const size_t B = (size_t)m->batch, H = (size_t)m->cfg.hidden_size;
    const size_t DH = (size_t)m->dirs * H;
    for (int t = 0; t < m->seq_len; t++) {
        const float *slot = h + (size_t)(d ? t : t + 1) * B * H;
        for (int i = 0; i < m->batch; i++) {
            size_t row = to_caller ? caller_row(m, t, i) : (size_t)t * B + (size_t)i;
            float *o = dst + row * DH + (size_t)d * H;
            if (i < m->active[t])
                memcpy(o, slot + (size_t)i * H, H * sizeof *o);
            else
                memset(o, 0, H * sizeof *o);
        }
    }
}

/* Slice k of dst (h_n or c_n): each row's state after its last step, which is
 * slot length (forward) or slot 0 (reverse). */
static void final_states(const attn_rnn *m, float *dst, int k, int d, const float *slots)
{
    const size_t B = (size_t)m->batch, H = (size_t)m->cfg.hidden_size;
    for (int i = 0; i < m->batch; i++) {
        const size_t slot = d ? 0 : (size_t)m->length[i];
        memcpy(dst + ((size_t)k * B + (size_t)m->order[i]) * H, slots + (slot * B + i) * H,
               H * sizeof *dst);
    }
}

/* One direction of layer l over xin: (T, B, in_size) sorted rows. */
static attn_status run_direction(attn_rnn *m, int l, int d, const float *xin,
                                 const attn_rnn_input *in, float *y, float *h_n, float *c_n)
{
    const attn_rnn_config *cfg = &m->cfg;
    const int B = m->batch, T = m->seq_len, H = cfg->hidden_size, GH = m->gates * H;
    const int k = l * m->dirs + d;
    const size_t BH = (size_t)B * H, S = m->saved_size;
    const bool lstm = cfg->mode == ATTN_LSTM;
    const rnn_weights *w = &m->data[k];
    rnn_track *tr = &m->tracks[k];
    attn_status s;
    if ((s = attn_linear_forward_at(m->precision, m->gx, xin, w->w_ih, w->b_ih, T * B,
                                    layer_input_size(m, l), GH)))
        return s;
    memset(tr->h, 0, (size_t)(T + 1) * BH * sizeof *tr->h);
    if (lstm) memset(tr->c, 0, (size_t)(T + 1) * BH * sizeof *tr->c);
    if (d == 0) {
        load_rows(m, tr->h, in->h0, k, 0, B);
        if (lstm) load_rows(m, tr->c, in->c0, k, 0, B);
    }
    for (int step = 0; step < T; step++) {
        const int t = d ? T - 1 - step : step, n = m->active[t];
        if (n == 0) continue;
        const size_t prev = (size_t)(d ? t + 1 : t) * BH, next = (size_t)(d ? t : t + 1) * BH;
        if (d) { /* rows whose last step is t start here, from h0 */
            load_rows(m, tr->h + prev, in->h0, k, m->active[t + 1], n);
            if (lstm) load_rows(m, tr->c + prev, in->c0, k, m->active[t + 1], n);
        }
        if ((s = attn_rnn_cell_forward_at(m->precision, cfg->mode, tr->h + next,
                                          lstm ? tr->c + next : NULL, tr->saved + (size_t)t * B * S,
                                          m->gx + (size_t)t * B * GH, tr->h + prev,
                                          lstm ? tr->c + prev : NULL, w->w_hh, w->b_hh, n, H)))
            return s;
    }
    const bool top = l == cfg->num_layers - 1;
    emit_states(m, top ? y : m->outputs[l], top, d, tr->h);
    if (h_n) final_states(m, h_n, k, d, tr->h);
    if (c_n) final_states(m, c_n, k, d, tr->c);
    return ATTN_OK;
}

/* Layer by layer, each layer's output (after dropout in training) the next one's
 * input; the top layer writes y. */
attn_status attn_rnn_forward(attn_rnn *m, float *y, float *h_n, float *c_n,
                             const attn_rnn_input *in)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "rnn"))) return s;
    m->has_forward = false;
    if ((s = check_input(m, y, c_n, in))) return s;
    const attn_rnn_config *cfg = &m->cfg;
    m->batch = in->batch;
    m->seq_len = in->seq_len;
    m->direct = !cfg->batch_first && in->lengths == NULL;
    m->dropout_on = in->training && cfg->dropout > 0.0f && cfg->num_layers > 1;
    m->dropout_seed = in->dropout_seed;
    if ((s = arrange_rows(m, in)) || (s = layout_activations(m))) return s;
    if (m->direct) {
        m->x0 = in->x;
    } else {
        gather_rows(m, m->x_rows, in->x, cfg->input_size);
        m->x0 = m->x_rows;
    }
    const size_t out_size = (size_t)m->seq_len * m->batch * m->dirs * cfg->hidden_size;
    for (int l = 0; l < cfg->num_layers; l++) {
        const float *xin = l == 0 ? m->x0 : m->outputs[l - 1];
        for (int d = 0; d < m->dirs; d++)
            if ((s = run_direction(m, l, d, xin, in, y, h_n, c_n))) return s;
        if (m->dropout_on && l + 1 < cfg->num_layers &&
            (s = attn_dropout_forward(m->outputs[l], m->outputs[l], out_size, cfg->dropout,
                                      layer_seed(m->dropout_seed, l))))
            return s;
    }
    m->has_forward = true;
    return ATTN_OK;
}

/* ---- backward ----------------------------------------------------------------------- */

/* Back through the steps of layer l, direction d, in the reverse order of the
 * forward's: dgx (and GRU's dgh) for every step into m->gx (m->dgh), zero in the
 * rows not running; dh0, dc0 += the gradient of the initial states.
 * dout: the gradient of the layer's output, the caller's dy for the top layer
 * (to_caller) or (T, B, dirs*H) sorted rows below it; NULL for none. At each step
 * the gradient of h_out is dout's row plus what the later step sent back
 * (dh_carry), or dh_n for a row at its last step. */
static attn_status backward_direction(attn_rnn *m, int l, int d, const float *dout,
                                      bool to_caller, const float *dh_n, const float *dc_n,
                                      float *dh0, float *dc0)
{
    const attn_rnn_config *cfg = &m->cfg;
    const int B = m->batch, T = m->seq_len, H = cfg->hidden_size, GH = m->gates * H;
    const int k = l * m->dirs + d;
    const size_t BH = (size_t)B * H, S = m->saved_size, DH = (size_t)m->dirs * H;
    const bool lstm = cfg->mode == ATTN_LSTM, gru = cfg->mode == ATTN_GRU;
    const rnn_track *tr = &m->tracks[k];
    const float *w_hh = m->data[k].w_hh;
    float *carry = m->dh_carry, *dh_out = m->dh_step;
    float *dc_out = m->dc_carry[0], *dc_prev = m->dc_carry[1];
    if (d) { /* every row's last step is its first in reverse */
        load_rows(m, carry, dh_n, k, 0, B);
        if (lstm) load_rows(m, dc_out, dc_n, k, 0, B);
    }
    for (int step = 0; step < T; step++) {
        const int t = d ? step : T - 1 - step, n = m->active[t];
        float *dgx = m->gx + (size_t)t * B * GH, *dgh = gru ? m->dgh + (size_t)t * B * GH : NULL;
        memset(dgx + (size_t)n * GH, 0, (size_t)(B - n) * GH * sizeof *dgx);
        if (gru) memset(dgh + (size_t)n * GH, 0, (size_t)(B - n) * GH * sizeof *dgh);
        if (n == 0) continue;
        if (!d) { /* rows whose last step is t */
            load_rows(m, carry, dh_n, k, m->active[t + 1], n);
            if (lstm) load_rows(m, dc_out, dc_n, k, m->active[t + 1], n);
        }
        for (int i = 0; i < n; i++) {
            const float *c = carry + (size_t)i * H;
            float *o = dh_out + (size_t)i * H;
            if (dout == NULL) {
                memcpy(o, c, (size_t)H * sizeof *o);
                continue;
            }
            const float *g = dout + (size_t)d * H +
                             (to_caller ? caller_row(m, t, i) : (size_t)t * B + (size_t)i) * DH;
            for (int j = 0; j < H; j++) o[j] = c[j] + g[j];
        }
        memset(carry, 0, (size_t)n * H * sizeof *carry);
        if (lstm) memset(dc_prev, 0, (size_t)n * H * sizeof *dc_prev);
        const size_t prev = (size_t)(d ? t + 1 : t) * BH;
        attn_status s = attn_rnn_cell_backward_at(
            m->precision, cfg->mode, dgx, carry, lstm ? dc_prev : NULL, NULL, NULL, dgh, dh_out,
            lstm ? dc_out : NULL, tr->saved + (size_t)t * B * S, tr->h + prev,
            lstm ? tr->c + prev : NULL, w_hh, n, H);
        if (s) return s;
        float *swap = dc_out;
        dc_out = dc_prev, dc_prev = swap;
        if (d) { /* rows whose last step is t began here, from h0 and c0 */
            add_rows(m, dh0, carry, k, m->active[t + 1], n);
            if (lstm) add_rows(m, dc0, dc_out, k, m->active[t + 1], n);
        }
    }
    if (!d) { /* every row began at step 0 */
        add_rows(m, dh0, carry, k, 0, B);
        if (lstm) add_rows(m, dc0, dc_out, k, 0, B);
    }
    return ATTN_OK;
}

/* From the top layer down: each direction's steps, then its weight gradients and
 * the gradient of the layer's input with one GEMM each over all steps; the input
 * gradient, through the dropout below it, is the next layer's output gradient. */
attn_status attn_rnn_backward(attn_rnn *m, float *dx, float *dh0, float *dc0, const float *dy,
                              const float *dh_n, const float *dc_n)
{
    attn_status s;
    if ((s = attn_check_not_null(m, "rnn"))) return s;
    if (!m->has_forward)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "attn_rnn_backward needs a successful attn_rnn_forward first");
    const attn_rnn_config *cfg = &m->cfg;
    if (cfg->mode != ATTN_LSTM && (dc0 || dc_n))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s is given, but mode %s has no cell state",
                          dc0 ? "dc0" : "dc_n", mode_name(cfg->mode));
    const int B = m->batch, T = m->seq_len, H = cfg->hidden_size, GH = m->gates * H;
    const size_t rows = (size_t)T * B, BH = (size_t)B * H;
    const float *dout = dy;
    bool to_caller = true;
    int spare = 0; /* the grad_rows buffer free for the next input gradient */
    for (int l = cfg->num_layers - 1; l >= 0; l--) {
        const int in_size = layer_input_size(m, l);
        const float *xin = l == 0 ? m->x0 : m->outputs[l - 1];
        float *dxin = NULL;
        if (l > 0 || (dx && !m->direct)) {
            dxin = m->grad_rows[spare];
            memset(dxin, 0, rows * in_size * sizeof *dxin);
        } else if (dx) {
            dxin = dx; /* the caller's rows are the sorted rows: add straight into dx */
        }
        for (int d = 0; d < m->dirs; d++) {
            const int k = l * m->dirs + d;
            const rnn_weights *w = &m->data[k], *g = &m->grad[k];
            if ((s = backward_direction(m, l, d, dout, to_caller, dh_n, dc_n, dh0, dc0)) ||
                (s = attn_linear_backward_at(m->precision, NULL, g->w_hh, g->b_hh,
                                             cfg->mode == ATTN_GRU ? m->dgh : m->gx,
                                             m->tracks[k].h + (d ? BH : 0), NULL, T * B, H, GH)) ||
                (s = attn_linear_backward_at(m->precision, dxin, g->w_ih, g->b_ih, m->gx, xin,
                                             w->w_ih, T * B, in_size, GH)))
                return s;
        }
        if (l == 0) {
            if (dx && !m->direct) scatter_add_rows(m, dx, dxin, in_size);
            break;
        }
        to_caller = false;
        if (m->dropout_on) {
            float *below = m->grad_rows[1 - spare];
            memset(below, 0, rows * in_size * sizeof *below);
            if ((s = attn_dropout_backward(below, dxin, rows * in_size, cfg->dropout,
                                           layer_seed(m->dropout_seed, l - 1))))
                return s;
            dout = below;
        } else {
            dout = dxin;
            spare = 1 - spare;
        }
    }
    return ATTN_OK;
}
