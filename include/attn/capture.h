/* attn/capture.h: what a model attended to, recorded as it ran, and its files.
 *
 * A record holds the tokens a model read (keys) and wrote (queries) and one map
 * per attention site of the model:
 *   name     where it is, by the model's state_dict prefix: "decoder.attention"
 *            (the RNN decoders), "transformer.encoder.layers.0.self_attn",
 *            "transformer.decoder.layers.1.multihead_attn", "transformer.h.2.attn"
 *   layer    the layer it belongs to, from 0 (0 for the RNN decoders)
 *   kind     self-attention (queries and keys are the same sequence) or cross
 *            (queries are output steps, keys the source)
 *   hard     the model attended to one position per query: each row is one-hot
 *            (hard-reinforce and hard-gumbel at inference)
 *   weights  (heads, rows, cols): row i holds the weights query i gave the keys;
 *            rows = the query tokens, cols = the key tokens (a self map's tokens
 *            both ways, see over_queries); each row sums to 1 over the keys it may
 *            see (0 elsewhere: causal, padding)
 * and, when asked for (attn_record_options), for the neuron view and for
 * gradient-weighted attention:
 *   q, k     (heads, rows, head_dim) and (heads, cols, head_dim): each head's
 *            query and key vectors after their projections (and after RoPE for
 *            a GPT with rope positions): the vectors whose dot product, times the
 *            scale 1 / sqrt(head_dim), is the score before the softmax (plus
 *            ALiBi's bias and the masks). Luong's decoders score q . k unscaled:
 *            q the top layer's new state, k the keys (W_a h_j for "general", the
 *            bridged encoder states for "dot"). Bahdanau's scores are no dot
 *            product (v . tanh(W q + U k)), so their maps have none.
 *   gradient (heads, rows, cols): d log p / d weights, the gradient of the
 *            explained output's log-probability (the record's gradient_step)
 *            with respect to each weight, the weights taken as the variables the
 *            model multiplied the values by (what PyTorch's retain_grad gives
 *            for the softmax's output): dO V^T per head, from the model's own
 *            backward through a teacher-forced pass over the recorded tokens. It
 *            is 0 on cells the masks exclude (causal, window, padding), where
 *            the weight is a constant 0 and not a variable. Every model with
 *            soft attention records it (the RNN decoders: dctx V^T at each
 *            step); hard maps have none: their one-hot rows are argmax choices
 *            the output has no gradient through.
 * The query tokens are `queries` (for cross attention the output tokens, EOS
 * included; for self-attention the same as `keys`), the key tokens `keys`.
 * A record of an encoder-decoder holds both sequences at once: its encoder's
 * self-attention runs over the keys (the source) and its decoder's over the
 * queries (the output), which such a map says with over_queries;
 * attn_map_row_tokens and attn_map_col_tokens give any map's labels.
 *
 * Recording never changes what a model computes: outputs are bit for bit the same
 * with and without a record, and a NULL record costs nothing.
 *
 * Files (attn_record_save picks the format by the extension, ".json" or else
 * safetensors; attn_record_load reads either, whatever the name, by its bytes):
 *   safetensors: one F32 tensor per map, named "attention.<name>", shaped
 *     (heads, rows, cols); metadata "attn.kind": "attention", and "record": the JSON
 *     below without the weights.
 *   JSON: {"format": "attn-attention", "attn.sealed": "crc32c", "attn.crc32c": "...",
 *     "version": 1, "model": "...", "task": "...",
 *     "queries": ["2", "0", ...], "keys": ["2", "4", "-", ...],
 *     "maps": [{"name": "...", "site": "...", "layer": 0, "kind": "cross"|"self",
 *               "hard": false,
 *               "tokens": "keys"|"queries",   (self maps only; "keys" if absent)
 *               "heads": H, "rows": R, "cols": C,
 *               "weights": [[[w, ...], ...], ...],   (weights only in JSON)
 *               "head_dim": D, "q": [...], "k": [...],   (optional, q and k in JSON)
 *               "gradient": [...]}],                     (optional, in JSON)
 *     "gradient_step": -1 | t}       (present when maps carry gradients)
 *   Weights are written with 9 significant digits, which read back to the same
 *   float. The optional tensors are "query.<name>", "key.<name>" and
 *   "gradient.<name>" in safetensors; a record without them (any written before
 *   they existed) loads as before.
 * Loaders check every size against the tensors and the token counts (a cross
 * map is n_queries x n_keys, a self map n x n over its tokens), every weight
 * (finite, in [0, 1]; a hard map's rows hold at most one 1 and zeros), and
 * unique map names, and that a map's name is what its site names in its layer
 * (a record without sites, from before they were written, reads as one site per
 * map), the optional q, k and gradient (their shapes, every value finite, no
 * gradient on a hard map, gradient_step -1 or a query token's index);
 * attn_record_save refuses a record that would not load.
 */
#ifndef ATTN_CAPTURE_H
#define ATTN_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_RECORD_NAME_MAX 96
#define ATTN_RECORD_MAPS_MAX 256

typedef enum attn_map_kind { ATTN_MAP_SELF, ATTN_MAP_CROSS } attn_map_kind;

typedef struct attn_attention_map {
    char name[ATTN_RECORD_NAME_MAX];
    /* Its place in every layer: the name with the layer number as "*"
     * ("transformer.h.*.attn"), shared by the maps of that place in each layer. */
    char site[ATTN_RECORD_NAME_MAX];
    int layer;
    attn_map_kind kind;
    bool hard;
    bool over_queries; /* self-attention over the query tokens (a decoder's); else
                          over the keys. Cross maps: false. */
    int heads, rows, cols;
    float *weights; /* (heads, rows, cols), owned by the record */
    /* Optional, NULL when not recorded (attn_record_add_qk, attn_record_add_gradient). */
    int head_dim;    /* of q and k; 0 without them */
    float *q;        /* (heads, rows, head_dim), owned */
    float *k;        /* (heads, cols, head_dim), owned */
    float *gradient; /* (heads, rows, cols) d log p / d weights, owned */
} attn_attention_map;

typedef struct attn_record {
    char model[64]; /* e.g. "gru-bahdanau", "transformer", "gpt" */
    char task[32];  /* e.g. "dates", "text" */
    char **queries; /* n_queries UTF-8 strings, owned */
    char **keys;    /* n_keys UTF-8 strings, owned */
    int n_queries, n_keys;
    attn_attention_map maps[ATTN_RECORD_MAPS_MAX];
    int n_maps;
    /* The output the maps' gradients explain: ATTN_EXPLAIN_ALL, the sum of the
     * log-probabilities of every output token (a translation's output, EOS
     * included; a GPT's tokens 1 .. n - 1 each given those before it), or t >= 0,
     * the query token t alone (for a GPT t >= 1: the token predicted from row
     * t - 1). Read only when a map has a gradient. */
    int gradient_step;
} attn_record;

enum { ATTN_EXPLAIN_ALL = -1 };

/* What a model records beside the weights (attn_gpt_record,
 * attn_seq2seq_decode_record); all off by default ({0} records the weights alone,
 * as a NULL options pointer does). gradient_step is the record's. */
typedef struct attn_record_options {
    bool qk;
    bool gradient;
    int gradient_step;
} attn_record_options;

/* ---- interventions ------------------------------------------------------------------
 * What a faithfulness test changes in a teacher-forced pass over a record's tokens
 * (attn_seq2seq_intervene, attn_gpt_intervene), to compare the output
 * distributions with and without the change (Jain and Wallace, 2019; Wiegreffe
 * and Pinter, 2019):
 *   ATTN_INTERVENE_NONE     nothing: the pass as the model runs it;
 *   ATTN_INTERVENE_PERMUTE  the weights of one site, the attention whose map is
 *                           `map` in the model's record (the order
 *                           attn_seq2seq_decode_record and attn_gpt_record add
 *                           them in), permuted within each row among the keys it
 *                           sees (attn_weights_edit of attn/attention.h, keyed by
 *                           seed and the row's index in the map), for head `head`
 *                           or every head (-1), after the softmax and before they
 *                           multiply the values;
 *   ATTN_INTERVENE_UNIFORM  the same site's weights 1 / (keys seen) instead;
 *   ATTN_INTERVENE_ERASE    input token `token` deleted: a source character of
 *                           an encoder-decoder, a context token of a GPT (leave
 *                           one out). The outputs stay teacher-forced to the
 *                           recorded ones.
 * Only soft attention can be edited (a hard map's rows are argmax choices). */
typedef enum attn_intervention_kind {
    ATTN_INTERVENE_NONE,
    ATTN_INTERVENE_PERMUTE,
    ATTN_INTERVENE_UNIFORM,
    ATTN_INTERVENE_ERASE,
} attn_intervention_kind;

typedef struct attn_intervention {
    attn_intervention_kind kind;
    int map;       /* PERMUTE, UNIFORM: the site, by its map's index in the record */
    int head;      /* PERMUTE, UNIFORM: the head, or -1 for every head */
    uint64_t seed; /* PERMUTE */
    int token;     /* ERASE: the index of the input token deleted */
} attn_intervention;

/* An empty record (no tokens, no maps). */
ATTN_API void attn_record_init(attn_record *r, const char *model, const char *task);
ATTN_API void attn_record_free(attn_record *r);

/* Sets the query or key tokens (copies them); n >= 0. */
ATTN_API attn_status attn_record_set_queries(attn_record *r, const char *const *tokens, int n);
ATTN_API attn_status attn_record_set_keys(attn_record *r, const char *const *tokens, int n);

/* Adds a map (over_queries false) at `site` in layer `layer` and returns its
 * zeroed weights (heads, rows, cols) in *weights, for the caller to fill. Its name
 * is the site with the first "*" replaced by the layer number (a site without
 * "*" is its own name). Fails on a full record, a duplicate name or bad sizes. */
ATTN_API attn_status attn_record_add_map(attn_record *r, const char *site, int layer,
                                         attn_map_kind kind, bool hard, int heads, int rows,
                                         int cols, float **weights);

/* Gives map i (of r->n_maps) room for its q and k with head_dim values per head,
 * zeroed, in *q and *k (either may be NULL). Fails on a bad index or size, or
 * a map that has them already. */
ATTN_API attn_status attn_record_add_qk(attn_record *r, int i, int head_dim, float **q, float **k);
/* Gives map i room for its gradient, zeroed, in *gradient. Fails on a hard map. */
ATTN_API attn_status attn_record_add_gradient(attn_record *r, int i, float **gradient);

/* The map named `name`, or NULL. */
ATTN_API const attn_attention_map *attn_record_find(const attn_record *r, const char *name);

/* "self" / "cross". */
ATTN_API const char *attn_map_kind_name(attn_map_kind kind);

/* The tokens labelling a map's rows (m->rows of them) and columns (m->cols):
 * a cross map's rows are the queries and its columns the keys; a self map's are
 * the keys both ways, or the queries if over_queries. The counts match in any
 * record that attn_record_save accepts or attn_record_load returns. */
ATTN_API char *const *attn_map_row_tokens(const attn_record *r, const attn_attention_map *m);
ATTN_API char *const *attn_map_col_tokens(const attn_record *r, const attn_attention_map *m);

/* Writes path atomically (a temporary file renamed over it). Fails, writing
 * nothing, on a record that would not load (naming the map and the value). */
ATTN_API attn_status attn_record_save(const attn_record *r, const char *path);
/* Fills *r (not freed first: pass a fresh or freed record). Fails naming the file
 * and the problem (a missing tensor, a size that disagrees, a bad JSON field); on
 * failure *r is empty. */
ATTN_API attn_status attn_record_load(attn_record *r, const char *path);

/* ---- analysis ------------------------------------------------------------------------
 * entropy: (heads, rows) the Shannon entropy (nats) of each row of a map. */
ATTN_API attn_status attn_map_entropy(const attn_attention_map *m, float *entropy);

/* Attention rollout (Abnar and Zuidema, 2020) over self-attention maps of equal
 * size, layer by layer from the first: each layer's heads averaged, A' = (A + I)
 * / 2 with rows renormalised, and rollout = A'_L ... A'_2 A'_1 -> out: (n, n). */
ATTN_API attn_status attn_rollout(const attn_attention_map *const *layers, int n_layers,
                                  float *out);

/* Gradient-weighted attention (Chefer, Gur and Wolf, 2021) of a map recorded
 * with its gradient: out: (rows, cols) = E_h[(dlogp/dA . A)+], the mean over the
 * heads of the positive part of each weight times its gradient: where a head's
 * attention raised the explained output's log-probability. Fails on a map
 * without a gradient. */
ATTN_API attn_status attn_map_gradient_weighted(const attn_attention_map *m, float *out);

/* The relevance of Chefer et al. (2021) through self-attention layers of one size,
 * their rule for self-attention: R = I, then for each layer from the first
 * R <- R + G_l R, G_l the layer's gradient-weighted attention -> out: (n, n),
 * row i the relevance of each input token to token i's output at the top. The
 * identity stands for the residual connections, as rollout's (A + I) / 2 does,
 * but nothing is renormalised: relevance adds up. Every layer needs a gradient. */
ATTN_API attn_status attn_gradient_rollout(const attn_attention_map *const *layers, int n_layers,
                                           float *out);

/* Attention flow (Abnar and Zuidema, 2020) over the same layers and the same A'_l
 * as attn_rollout: the layers make a flow network whose nodes are the n tokens
 * at each of the n_layers + 1 levels (the inputs at level 0) and whose edge from
 * token a at level l to token b at level l - 1 has the capacity A'_l[a][b].
 * out: (n, n), out[i][j] the maximum flow from token i at the top level to input
 * token j, in [0, 1] (what leaves a token sums to 1). Rollout multiplies the
 * paths' weights; flow takes the most the whole network can carry, so it ranks
 * inputs by how much of the output could come from them. It costs n^2 maximum
 * flows (Dinic's algorithm; about 1 s for 6 layers of 64 tokens on one core), so
 * n is at most ATTN_FLOW_TOKENS_MAX. */
enum { ATTN_FLOW_TOKENS_MAX = 64 };
ATTN_API attn_status attn_attention_flow(const attn_attention_map *const *layers, int n_layers,
                                         float *out);

/* Kendall's tau-b of two rankings x, y: (n), ties handled: (C - D) / sqrt((P -
 * T_x)(P - T_y)) with C and D the concordant and discordant pairs, P all n (n -
 * 1) / 2 pairs and T_x, T_y those tied in x, in y (scipy.stats.kendalltau's
 * default). *tau is NaN where it is undefined: fewer than two values, or all of
 * x or of y tied. Fails on a value that is not finite. */
ATTN_API attn_status attn_kendall_tau_b(const double *x, const double *y, int n, double *tau);

#ifdef __cplusplus
}
#endif
#endif
