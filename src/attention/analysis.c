/* What recorded attention says (attn/capture.h): the entropy of each row of a
 * map, attention rollout and attention flow across layers (Abnar and Zuidema,
 * "Quantifying Attention Flow in Transformers", ACL 2020), and gradient-weighted
 * attention and its relevance across layers (Chefer, Gur and Wolf, "Generic
 * Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder
 * Transformers", ICCV 2021). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/capture.h"
#include "attn/kernels.h"
#include "core/error.h"

static attn_status check_map(const attn_attention_map *m, const char *what)
{
    attn_status s;
    if ((s = attn_check_not_null(m, what)) || (s = attn_check_not_null(m->weights, "map weights")) ||
        (s = attn_check_at_least(m->heads, 1, "map heads")) ||
        (s = attn_check_at_least(m->rows, 1, "map rows")) ||
        (s = attn_check_at_least(m->cols, 1, "map cols")))
        return s;
    return ATTN_OK;
}

/* entropy: (heads, rows), -sum_j w_j log w_j over the positive weights, summed
 * in double. */
attn_status attn_map_entropy(const attn_attention_map *m, float *entropy)
{
    attn_status s;
    if ((s = check_map(m, "map")) || (s = attn_check_not_null(entropy, "entropy"))) return s;
    const size_t rows = (size_t)m->heads * m->rows;
    for (size_t i = 0; i < rows; i++) {
        const float *w = m->weights + i * m->cols;
        double sum = 0.0;
        for (int j = 0; j < m->cols; j++)
            if (w[j] > 0.0f) sum -= (double)w[j] * log((double)w[j]);
        entropy[i] = (float)sum;
    }
    return ATTN_OK;
}

/* a: (n, n) = the mean of m's heads, plus the identity, each row divided by its
 * sum: (A + I) / 2 renormalised is (A + I) renormalised. */
static void residual_average(float *a, const attn_attention_map *m, int n)
{
    const size_t plane = (size_t)n * n;
    for (size_t e = 0; e < plane; e++) {
        float sum = 0.0f;
        for (int h = 0; h < m->heads; h++) sum += m->weights[(size_t)h * plane + e];
        a[e] = sum / (float)m->heads;
    }
    for (int i = 0; i < n; i++) {
        float *row = a + (size_t)i * n;
        row[i] += 1.0f;
        double total = 0.0;
        for (int j = 0; j < n; j++) total += row[j];
        const float inv = (float)(1.0 / total);
        for (int j = 0; j < n; j++) row[j] *= inv;
    }
}

/* The layers of a rollout or a flow: square self-attention maps of one size. */
static attn_status check_layers(const attn_attention_map *const *layers, int n_layers,
                                const float *out)
{
    attn_status s;
    if ((s = attn_check_not_null(layers, "layers")) ||
        (s = attn_check_at_least(n_layers, 1, "n_layers")) ||
        (s = attn_check_not_null(out, "out")))
        return s;
    for (int l = 0; l < n_layers; l++) {
        const attn_attention_map *m = layers[l];
        if ((s = check_map(m, "layer map"))) return s;
        if (m->kind != ATTN_MAP_SELF || m->rows != m->cols)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "layer %d map '%s' is %s attention of %d x %d; rollout needs square "
                              "self-attention",
                              l, m->name, attn_map_kind_name(m->kind), m->rows, m->cols);
        if (m->rows != layers[0]->rows)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "layer %d map '%s' is %d x %d but layer 0 is %d x %d", l, m->name,
                              m->rows, m->cols, layers[0]->rows, layers[0]->cols);
    }
    return ATTN_OK;
}

/* One layer's factor of a product through the layers: a: (n, n) from map m. */
typedef attn_status (*layer_factor)(float *a, const attn_attention_map *m, int n);

/* out: (n, n) = M_L ... M_2 M_1, M_l = factor(layer l), layers checked; what
 * names the product in messages. */
static attn_status layer_product(const attn_attention_map *const *layers, int n_layers,
                                 float *out, layer_factor factor, const char *what)
{
    attn_status s;
    if ((s = check_layers(layers, n_layers, out))) return s;
    const int n = layers[0]->rows;
    const size_t plane = (size_t)n * n;
    float *a = malloc(2 * plane * sizeof *a);
    if (a == NULL)
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for a %s of %d tokens", what, n);
    float *product = a + plane;
    s = factor(out, layers[0], n);
    for (int l = 1; l < n_layers && s == ATTN_OK; l++) {
        if ((s = factor(a, layers[l], n))) break;
        /* product_l = M_l product_{l-1} */
        attn_sgemm(false, false, n, n, n, 1.0f, a, n, out, n, 0.0f, product, n);
        memcpy(out, product, plane * sizeof *out);
    }
    free(a);
    return s;
}

static attn_status residual_factor(float *a, const attn_attention_map *m, int n)
{
    residual_average(a, m, n);
    return ATTN_OK;
}

attn_status attn_rollout(const attn_attention_map *const *layers, int n_layers, float *out)
{
    return layer_product(layers, n_layers, out, residual_factor, "rollout");
}

/* ---- gradient-weighted attention (Chefer, Gur and Wolf, ICCV 2021) ---- */

attn_status attn_map_gradient_weighted(const attn_attention_map *m, float *out)
{
    attn_status s;
    if ((s = check_map(m, "map")) || (s = attn_check_not_null(out, "out"))) return s;
    if (m->gradient == NULL)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "map '%s' has no gradient (record it with its gradients)", m->name);
    const size_t plane = (size_t)m->rows * m->cols;
    for (size_t e = 0; e < plane; e++) {
        double sum = 0.0;
        for (int h = 0; h < m->heads; h++) {
            const double product =
                (double)m->gradient[(size_t)h * plane + e] * m->weights[(size_t)h * plane + e];
            if (product > 0.0) sum += product;
        }
        out[e] = (float)(sum / m->heads);
    }
    return ATTN_OK;
}

/* I + G, G the gradient-weighted attention of m: R <- R + G R is R <- (I + G) R. */
static attn_status relevance_factor(float *a, const attn_attention_map *m, int n)
{
    attn_status s = attn_map_gradient_weighted(m, a);
    for (int i = 0; i < n && s == ATTN_OK; i++) a[(size_t)i * n + i] += 1.0f;
    return s;
}

attn_status attn_gradient_rollout(const attn_attention_map *const *layers, int n_layers,
                                  float *out)
{
    return layer_product(layers, n_layers, out, relevance_factor, "relevance");
}

/* ---- attention flow: Dinic's maximum flow on the layered network ---- */

/* The network of attn_attention_flow, its flow, and the search's state. A node
 * is v = level * n + token. Its 2n arcs: arc b < n goes down to token b of the
 * level below (capacity cap - flow), arc n + c goes up to token c of the level
 * above (the residual of that token's arc down to this one: its flow). */
typedef struct flow_net {
    int n, levels;             /* tokens per level; n_layers + 1 */
    const double *cap;         /* (n_layers, n, n): A'_l at [(l - 1) n n] */
    double *flow;              /* like cap */
    int *depth, *next, *queue; /* (levels n) each: BFS depth, current arc, BFS queue */
} flow_net;

/* Residuals below this (relative to capacities of at most 1) are taken as 0, so
 * that rounding cannot leave paths of nothing to augment forever. */
#define FLOW_EPS 1e-12

/* The residual capacity of arc `arc` of node v, and its other end in *to (0 and
 * -1 for an arc that would leave the network). */
static double residual(const flow_net *g, int v, int arc, int *to)
{
    const int n = g->n, level = v / n, a = v % n;
    *to = -1;
    if (arc < n) {
        if (level == 0) return 0.0;
        *to = (level - 1) * n + arc;
        const size_t e = ((size_t)(level - 1) * n + a) * n + arc;
        return g->cap[e] - g->flow[e];
    }
    if (level + 1 == g->levels) return 0.0;
    *to = (level + 1) * n + (arc - n);
    return g->flow[((size_t)level * n + (arc - n)) * n + a];
}

static void push(flow_net *g, int v, int arc, double amount)
{
    const int n = g->n, level = v / n, a = v % n;
    if (arc < n)
        g->flow[((size_t)(level - 1) * n + a) * n + arc] += amount;
    else
        g->flow[((size_t)level * n + (arc - n)) * n + a] -= amount;
}

/* Breadth-first depths from s over arcs with residual capacity; whether t is reached. */
static bool level_graph(flow_net *g, int s, int t)
{
    const int nodes = g->levels * g->n;
    for (int v = 0; v < nodes; v++) g->depth[v] = -1;
    int head = 0, tail = 0;
    g->depth[s] = 0;
    g->queue[tail++] = s;
    while (head < tail) {
        const int v = g->queue[head++];
        for (int arc = 0; arc < 2 * g->n; arc++) {
            int to;
            if (residual(g, v, arc, &to) > FLOW_EPS && g->depth[to] < 0) {
                g->depth[to] = g->depth[v] + 1;
                g->queue[tail++] = to;
            }
        }
    }
    return g->depth[t] >= 0;
}

/* Pushes up to `limit` from v to t along arcs one level deeper each; returns the
 * amount pushed. Each node resumes at its current arc (next). */
static double augment(flow_net *g, int v, int t, double limit)
{
    if (v == t) return limit;
    for (; g->next[v] < 2 * g->n; g->next[v]++) {
        int to;
        const double room = residual(g, v, g->next[v], &to);
        if (room <= FLOW_EPS || g->depth[to] != g->depth[v] + 1) continue;
        const double pushed = augment(g, to, t, limit < room ? limit : room);
        if (pushed > 0.0) {
            push(g, v, g->next[v], pushed);
            return pushed;
        }
    }
    return 0.0;
}

/* The maximum flow from s to t, the network's flow starting at zero. */
static double max_flow(flow_net *g, int s, int t)
{
    const size_t arcs = (size_t)(g->levels - 1) * g->n * g->n;
    memset(g->flow, 0, arcs * sizeof *g->flow);
    double total = 0.0;
    while (level_graph(g, s, t)) {
        memset(g->next, 0, (size_t)g->levels * g->n * sizeof *g->next);
        double pushed;
        while ((pushed = augment(g, s, t, INFINITY)) > 0.0) total += pushed;
    }
    return total;
}

attn_status attn_attention_flow(const attn_attention_map *const *layers, int n_layers, float *out)
{
    attn_status s;
    if ((s = check_layers(layers, n_layers, out))) return s;
    const int n = layers[0]->rows;
    if (n > ATTN_FLOW_TOKENS_MAX)
        return attn_error(ATTN_ERR_UNSUPPORTED,
                          "attention flow over %d tokens: it costs n^2 maximum flows, and it is "
                          "computed for at most %d",
                          n, ATTN_FLOW_TOKENS_MAX);
    const size_t plane = (size_t)n * n, arcs = (size_t)n_layers * plane;
    const int nodes = (n_layers + 1) * n;
    double *cap = malloc(2 * arcs * sizeof *cap);
    float *a = malloc(plane * sizeof *a);
    int *ints = malloc(3 * (size_t)nodes * sizeof *ints);
    if (cap == NULL || a == NULL || ints == NULL) {
        free(cap), free(a), free(ints);
        return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the attention flow of %d tokens",
                          n);
    }
    for (int l = 0; l < n_layers; l++) {
        residual_average(a, layers[l], n);
        for (size_t e = 0; e < plane; e++) cap[l * plane + e] = a[e];
    }
    flow_net g = {n, n_layers + 1, cap, cap + arcs, ints, ints + nodes, ints + 2 * nodes};
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            out[(size_t)i * n + j] = (float)max_flow(&g, n_layers * n + i, j);
    free(cap), free(a), free(ints);
    return ATTN_OK;
}
