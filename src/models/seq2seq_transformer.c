/* The "transformer" architecture of attn_seq2seq: nn.Transformer between token
 * embeddings and a linear generator, as PyTorch's translation tutorial builds it.
 *
 * Parameters (state_dict keys), E = hidden_dim (d_model), V = tgt_vocab:
 *   src_embed.weight (src_vocab, E), tgt_embed.weight (V, E)   nn.Embedding(padding_idx=PAD)
 *   transformer.*     nn.Transformer(E, heads, enc_layers, dec_layers, ff_dim, dropout,
 *                     relu, batch_first=True, norm_first=True), attn/transformer.h
 *   generator.weight (V, E), generator.bias (V)
 * A sequence enters as dropout(embed(ids) * sqrt(E) + PE), PE the sinusoidal table
 * PE[pos, 2i] = sin(pos / 10000^(2i/E)), PE[pos, 2i+1] = cos(pos / 10000^(2i/E)).
 * The encoder masks the padded source positions (src_key_padding_mask, and the
 * same as memory_key_padding_mask); the decoder is causal. A target key padding
 * mask would change nothing: under the causal mask a padded target position is
 * seen only by later positions, which are padded too and carry no loss.
 * logits = generator(decoder output); the loss is the mean cross-entropy over the
 * target tokens that are not PAD.
 *
 * The layers are pre-norm (norm_first), which keeps the gradients of every layer
 * of the same scale at initialisation, so that training needs little or no
 * learning-rate warm-up (Xiong et al., "On Layer Normalization in the Transformer
 * Architecture", 2020); the stacks' final norms normalise their outputs.
 *
 * Initialised as the tutorial does: every matrix xavier_uniform_, the other
 * parameters as their modules do; the embeddings' PAD rows are then zero.
 *
 * Decoding encodes the sources once and projects the memory into each decoder
 * layer's cross-attention keys and values; each step then runs the decoder on
 * the one new position, whose self-attention appends its key and value to a
 * cache and attends over the cache through the fused kernel with the query
 * offset at its position (nn/transformer_impl.h, attn_tf_stack_step). The
 * weights a caller asks for come from a second run of the attention, so the
 * tokens are the same bits whether or not anyone looks. Recording runs the
 * decoder once more over the whole output, for every layer's maps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/train.h"
#include "attn/transformer.h"
#include "core/error.h"
#include "models/explain.h"
#include "models/seq2seq_impl.h"
#include "nn/transformer_impl.h"

typedef struct s2s_transformer {
    attn_tf_transformer tf;
    int E, src_vocab, tgt_vocab, positions;
    float *pe;                      /* (positions, E) */
    float *src_embed, *tgt_embed;   /* (src_vocab, E), (V, E) */
    float *dsrc_embed, *dtgt_embed; /* their gradients */
    float *gen_w, *gen_b, *dgen_w, *dgen_b;
    attn_precision precision; /* of the products (set_precision) */

    /* The last training forward, kept for backward. */
    bool has_forward;
    int B, S, T; /* S, T: the longest source and target of the batch */
    float p, label_smoothing;
    uint64_t seed_src, seed_tgt;
    int32_t *src_ids, *tgt_ids, *targets; /* (B, S), (B, T), (B, T) in ints */
    float *src_pad;                       /* (B, S): 0, or -inf where padded */
    float *src_x, *tgt_x;                 /* (B, S, E), (B, T, E): the transformer's inputs */
    float *dec_out, *ddec_out;            /* (B, T, E) */
    float *logits, *probs, *dlogits;      /* (B*T, V) */
    float *dsrc_x, *dtgt_x;               /* (B, S, E), (B, T, E) */
    float *scratch;                       /* (B * max(S, T), E) */
    attn_activations acts;
    attn_int_block ints;

    /* Decoding: B sources of S tokens (the longest), rows = B * beam. */
    int rows, beam, dec_S, caller_S;
    int32_t *enc_ids;          /* (B, S) */
    float *enc_pad;            /* (B, S) */
    float *enc_x, *enc_out;    /* (B, S, E) */
    float *memory;             /* (rows, S, E): each source's encoding, repeated per beam row */
    float *memory_pad;         /* (rows, S) */
    attn_tf_decoder_cache cache; /* the decoder's keys and values so far */
    float *step_x, *step_out;    /* (rows, positions, E): one position, or recording's all */
    float *step_weights;         /* (rows, S) the last cross-attention's, head-averaged */
    float *att_out;              /* (rows, positions, E): an attention run again for its weights */
    int decoded_len;             /* the positions decoded so far */
    float *last, *step_logits;   /* (rows, E), (rows, V) */
    int32_t *history, *history_spare; /* (rows, positions) each */
    attn_activations decode_acts;
    attn_int_block decode_ints;
} s2s_transformer;

static s2s_transformer *impl(attn_seq2seq *m) { return m->impl; }

/* ---- construction ---- */

static void destroy(attn_seq2seq *m)
{
    s2s_transformer *t = impl(m);
    if (t != NULL) {
        attn_tf_transformer_free(&t->tf);
        attn_tf_decoder_cache_free(&t->cache);
        free(t->pe);
        attn_activations_free(&t->acts);
        attn_activations_free(&t->decode_acts);
        attn_int_block_free(&t->ints);
        attn_int_block_free(&t->decode_ints);
        free(t);
    }
    m->impl = NULL;
}

/* The parameter specs of the whole model, in the order of the keys above. */
static void model_specs(attn_specs *specs, const s2s_transformer *t)
{
    attn_specs_add(specs, "", "src_embed.weight", 2, t->src_vocab, t->E);
    attn_specs_add(specs, "", "tgt_embed.weight", 2, t->tgt_vocab, t->E);
    attn_tf_transformer_specs(&t->tf, specs, "transformer.");
    attn_specs_add(specs, "", "generator.weight", 2, t->tgt_vocab, t->E);
    attn_specs_add(specs, "", "generator.bias", 1, t->tgt_vocab, 0);
}

static attn_status bind_and_init(s2s_transformer *t, const attn_params *p, uint64_t seed)
{
    attn_rng rng;
    attn_rng_init(&rng, attn_tf_seed(seed, 3, 3));
    attn_status s = attn_tf_transformer_bind(&t->tf, p, "transformer.", &rng);
    if (s) return s;
    t->src_embed = attn_params_data(p, "src_embed.weight");
    t->dsrc_embed = attn_params_grad(p, "src_embed.weight");
    t->tgt_embed = attn_params_data(p, "tgt_embed.weight");
    t->dtgt_embed = attn_params_grad(p, "tgt_embed.weight");
    t->gen_w = attn_params_data(p, "generator.weight");
    t->dgen_w = attn_params_grad(p, "generator.weight");
    t->gen_b = attn_params_data(p, "generator.bias");
    t->dgen_b = attn_params_grad(p, "generator.bias");
    attn_init_xavier_uniform(t->src_embed, t->src_vocab, t->E, &rng);
    attn_init_xavier_uniform(t->tgt_embed, t->tgt_vocab, t->E, &rng);
    attn_init_xavier_uniform(t->gen_w, t->tgt_vocab, t->E, &rng);
    const float bound = 1.0f / sqrtf((float)t->E); /* nn.Linear's bias */
    attn_rng_fill_uniform(&rng, t->gen_b, (size_t)t->tgt_vocab, -bound, bound);
    memset(t->src_embed + (size_t)ATTN_TOKEN_PAD * t->E, 0, (size_t)t->E * sizeof(float));
    memset(t->tgt_embed + (size_t)ATTN_TOKEN_PAD * t->E, 0, (size_t)t->E * sizeof(float));
    return ATTN_OK;
}

static const attn_seq2seq_ops transformer_ops;

/* The sizes of the model of c, and its transformer without parameters yet. */
static attn_status create_structure(s2s_transformer *t, const attn_seq2seq_config *c,
                                    uint64_t seed)
{
    t->E = c->hidden_dim;
    t->src_vocab = c->src_vocab;
    t->tgt_vocab = c->tgt_vocab;
    t->positions = c->max_src_len > c->max_tgt_len ? c->max_src_len : c->max_tgt_len;
    const attn_transformer_config tc = {
        .layer = {.d_model = c->hidden_dim,
                  .nhead = c->heads,
                  .dim_feedforward = c->ff_dim,
                  .dropout = c->dropout,
                  .activation = ATTN_ACT_RELU,
                  .layer_norm_eps = 1e-5f,
                  .batch_first = true,
                  .norm_first = true},
        .num_encoder_layers = c->enc_layers,
        .num_decoder_layers = c->dec_layers,
    };
    return attn_tf_transformer_init(&t->tf, &tc, seed);
}

attn_status attn_seq2seq_transformer_param_count(const attn_seq2seq_config *c, int64_t *count)
{
    s2s_transformer *t = calloc(1, sizeof *t);
    if (t == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the model");
    attn_status s = create_structure(t, c, 0);
    if (!s) {
        attn_specs specs = {0};
        model_specs(&specs, t);
        s = attn_specs_count(&specs, count);
    }
    attn_tf_transformer_free(&t->tf);
    free(t);
    return s;
}

attn_status attn_seq2seq_transformer_init(attn_seq2seq *m, uint64_t seed)
{
    const attn_seq2seq_config *c = &m->cfg; /* checked by seq2seq.c */
    s2s_transformer *t = calloc(1, sizeof *t);
    if (t == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for the model");
    m->impl = t;
    attn_status s = create_structure(t, c, seed);
    attn_specs specs = {0};
    if (!s) {
        t->pe = malloc((size_t)t->positions * (size_t)t->E * sizeof *t->pe);
        if (t->pe == NULL)
            s = attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d positions", t->positions);
    }
    if (!s) {
        model_specs(&specs, t);
        s = attn_specs_layout(&specs, &m->params);
    }
    if (!s) s = bind_and_init(t, &m->params, seed);
    if (!s) s = attn_sinusoidal_positions(t->pe, t->positions, t->E);
    if (s) { /* seq2seq.c frees m->params */
        destroy(m);
        return s;
    }
    m->ops = &transformer_ops;
    return ATTN_OK;
}

/* ---- embedding: x = dropout(embed(ids) * sqrt(E) + PE) ---- */

/* ids: (N, L) at positions first .. first + L - 1 -> x: (N, L, E). */
static attn_status embed_forward(const s2s_transformer *t, float *x, const int32_t *ids,
                                 const float *table, int vocab, int N, int L, int first, float p,
                                 uint64_t seed)
{
    const int E = t->E;
    const size_t n = (size_t)N * L * E;
    attn_status s = attn_embedding_forward(x, ids, table, N * L, vocab, E);
    if (s) return s;
    const float scale = sqrtf((float)E);
    for (int r = 0; r < N; r++)
        for (int l = 0; l < L; l++) {
            float *row = x + ((size_t)r * L + l) * E;
            const float *pe = t->pe + (size_t)(first + l) * E;
            for (int e = 0; e < E; e++) row[e] = row[e] * scale + pe[e];
        }
    return p > 0.0f ? attn_dropout_forward(x, x, n, p, seed) : ATTN_OK;
}

/* dx: (N, L, E), the gradient of x -> dtable (+=); scratch: (N, L, E). */
static attn_status embed_backward(const s2s_transformer *t, float *dtable, const float *dx,
                                  const int32_t *ids, int vocab, int N, int L, float p,
                                  uint64_t seed, float *scratch)
{
    const size_t n = (size_t)N * L * t->E;
    memset(scratch, 0, n * sizeof *scratch);
    attn_status s = attn_dropout_backward(scratch, dx, n, p, seed);
    if (s) return s;
    const float scale = sqrtf((float)t->E);
    for (size_t i = 0; i < n; i++) scratch[i] *= scale;
    return attn_embedding_backward(dtable, scratch, ids, N * L, vocab, t->E, ATTN_TOKEN_PAD);
}

/* ---- teacher-forced training ---- */

static attn_status layout_forward(s2s_transformer *t)
{
    const size_t B = (size_t)t->B, S = (size_t)t->S, T = (size_t)t->T, E = (size_t)t->E;
    const size_t V = (size_t)t->tgt_vocab, longest = S > T ? S : T;
    const attn_activation_view views[] = {
        {&t->src_pad, B * S},     {&t->src_x, B * S * E},         {&t->tgt_x, B * T * E},
        {&t->dec_out, B * T * E}, {&t->ddec_out, B * T * E},      {&t->logits, B * T * V},
        {&t->probs, B * T * V},   {&t->dlogits, B * T * V},       {&t->dsrc_x, B * S * E},
        {&t->dtgt_x, B * T * E},  {&t->scratch, B * longest * E},
    };
    attn_status s = attn_activations_layout(&t->acts, views, (int)(sizeof views / sizeof *views));
    if (s || (s = attn_int_block_reserve(&t->ints, B * S + 2 * B * T, "token ids"))) return s;
    t->src_ids = t->ints.data;
    t->tgt_ids = t->src_ids + B * S;
    t->targets = t->tgt_ids + B * T;
    return ATTN_OK;
}

/* The batch's first S source and T target columns, and the source padding mask. */
static attn_status gather_batch(s2s_transformer *t, const attn_batch *b)
{
    const int B = t->B, S = t->S, T = t->T;
    for (int r = 0; r < B; r++) {
        for (int j = 0; j < S; j++) {
            const int32_t id = b->src[(size_t)r * b->src_cap + j];
            if (id < 0 || id >= t->src_vocab)
                return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                                  "source id %d at row %d, position %d is outside [0, %d)", (int)id,
                                  r, j, t->src_vocab);
            t->src_ids[(size_t)r * S + j] = id;
            t->src_pad[(size_t)r * S + j] = j < b->src_len[r] ? 0.0f : -INFINITY;
        }
        for (int j = 0; j < T; j++) {
            const int32_t id = b->tgt_in[(size_t)r * b->tgt_cap + j];
            if (id < 0 || id >= t->tgt_vocab)
                return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                                  "target input id %d at row %d, position %d is outside [0, %d)",
                                  (int)id, r, j, t->tgt_vocab);
            const int32_t target = b->tgt_out[(size_t)r * b->tgt_cap + j];
            if (target < 0 || target >= t->tgt_vocab)
                return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                                  "target id %d at row %d, position %d is outside [0, %d)",
                                  (int)target, r, j, t->tgt_vocab);
            t->tgt_ids[(size_t)r * T + j] = id;
            t->targets[(size_t)r * T + j] = target;
        }
    }
    return ATTN_OK;
}

static void count_correct(const s2s_transformer *t, attn_seq2seq_stats *stats)
{
    const int N = t->B * t->T, V = t->tgt_vocab;
    int64_t tokens = 0, correct = 0;
    for (int n = 0; n < N; n++) {
        if (t->targets[n] == ATTN_TOKEN_PAD) continue;
        const float *row = t->logits + (size_t)n * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        tokens++;
        correct += best == t->targets[n];
    }
    stats->tokens = tokens;
    stats->correct = correct;
}

static attn_status forward(attn_seq2seq *m, attn_seq2seq_stats *stats, const attn_batch *batch,
                           const attn_seq2seq_pass *pass)
{
    s2s_transformer *t = impl(m);
    attn_status s;
    t->has_forward = false;
    t->B = batch->batch;
    t->S = t->T = 1;
    for (int r = 0; r < t->B; r++) {
        if (batch->src_len[r] > t->S) t->S = batch->src_len[r];
        if (batch->tgt_len[r] > t->T) t->T = batch->tgt_len[r];
    }
    if ((s = layout_forward(t)) || (s = gather_batch(t, batch))) return s;
    const int B = t->B, S = t->S, T = t->T, E = t->E, V = t->tgt_vocab;
    const uint64_t base = attn_tf_seed(pass->seed, (uint64_t)pass->step, 4);
    t->p = pass->training ? m->cfg.dropout : 0.0f;
    t->label_smoothing = pass->label_smoothing;
    t->seed_src = attn_tf_seed(base, 0, 0);
    t->seed_tgt = attn_tf_seed(base, 1, 0);
    if ((s = embed_forward(t, t->src_x, t->src_ids, t->src_embed, t->src_vocab, B, S, 0, t->p,
                           t->seed_src)) ||
        (s = embed_forward(t, t->tgt_x, t->tgt_ids, t->tgt_embed, V, B, T, 0, t->p,
                           t->seed_tgt)))
        return s;
    const attn_transformer_input in = {
        .src = t->src_x,
        .tgt = t->tgt_x,
        .batch = B,
        .src_len = S,
        .tgt_len = T,
        .src_mask = {.key_padding_mask = t->src_pad, .key_padding_mask_type = ATTN_MASK_FLOAT},
        .tgt_mask = {.is_causal = true},
        .memory_mask = {.key_padding_mask = t->src_pad, .key_padding_mask_type = ATTN_MASK_FLOAT},
        .training = pass->training,
        .dropout_seed = attn_tf_seed(base, 2, 0),
    };
    float loss;
    if ((s = attn_tf_transformer_forward(&t->tf, t->dec_out, &in)) ||
        (s = attn_linear_forward_at(t->precision, t->logits, t->dec_out, t->gen_w, t->gen_b, B * T,
                                    E, V)) ||
        (s = attn_cross_entropy_forward(&loss, t->probs, NULL, t->logits, t->targets, B * T, V,
                                        ATTN_TOKEN_PAD, t->label_smoothing)))
        return s;
    if (stats != NULL) {
        stats->loss = loss;
        count_correct(t, stats);
    }
    t->has_forward = pass->training;
    return ATTN_OK;
}

static attn_status backward_from_logits(s2s_transformer *t);

static attn_status backward(attn_seq2seq *m)
{
    s2s_transformer *t = impl(m);
    if (!t->has_forward)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "backward needs a training forward since the last backward or decode");
    t->has_forward = false;
    const int N = t->B * t->T, V = t->tgt_vocab;
    memset(t->dlogits, 0, (size_t)N * V * sizeof *t->dlogits);
    attn_status s = attn_cross_entropy_backward(t->dlogits, t->probs, t->targets, N, V,
                                                ATTN_TOKEN_PAD, t->label_smoothing, 1.0f);
    return s ? s : backward_from_logits(t);
}

/* Backward of the last forward from the gradient in t->dlogits (B T, V) with
 * respect to the logits, into the parameters' gradients (+=). */
static attn_status backward_from_logits(s2s_transformer *t)
{
    const int B = t->B, S = t->S, T = t->T, E = t->E, V = t->tgt_vocab;
    const size_t tgt = (size_t)B * T * E, src = (size_t)B * S * E;
    memset(t->ddec_out, 0, tgt * sizeof *t->ddec_out);
    memset(t->dsrc_x, 0, src * sizeof *t->dsrc_x);
    memset(t->dtgt_x, 0, tgt * sizeof *t->dtgt_x);
    attn_status s;
    if ((s = attn_linear_backward_at(t->precision, t->ddec_out, t->dgen_w, t->dgen_b, t->dlogits,
                                     t->dec_out, t->gen_w, B * T, E, V)) ||
        (s = attn_tf_transformer_backward(&t->tf, t->dsrc_x, t->dtgt_x, t->ddec_out)) ||
        (s = embed_backward(t, t->dsrc_embed, t->dsrc_x, t->src_ids, t->src_vocab, B, S, t->p,
                            t->seed_src, t->scratch)) ||
        (s = embed_backward(t, t->dtgt_embed, t->dtgt_x, t->tgt_ids, V, B, T, t->p, t->seed_tgt,
                            t->scratch)))
        return s;
    return ATTN_OK;
}

/* ---- decoding ---- */

static attn_status layout_decode(s2s_transformer *t, int B, int S)
{
    const size_t rows = (size_t)t->rows, P = (size_t)t->positions, E = (size_t)t->E;
    const size_t V = (size_t)t->tgt_vocab, Sz = (size_t)S;
    const attn_activation_view views[] = {
        {&t->enc_x, (size_t)B * Sz * E},
        {&t->enc_pad, (size_t)B * Sz},
        {&t->enc_out, (size_t)B * Sz * E},
        {&t->memory, rows * Sz * E},
        {&t->memory_pad, rows * Sz},
        {&t->step_x, rows * P * E},
        {&t->step_out, rows * P * E},
        {&t->step_weights, rows * Sz},
        {&t->att_out, rows * P * E},
        {&t->last, rows * E},
        {&t->step_logits, rows * V},
    };
    attn_status s =
        attn_activations_layout(&t->decode_acts, views, (int)(sizeof views / sizeof *views));
    if (s || (s = attn_int_block_reserve(&t->decode_ints, 2 * rows * P + (size_t)B * Sz,
                                                "token ids"))) return s;
    t->history = t->decode_ints.data;
    t->history_spare = t->history + rows * P;
    t->enc_ids = t->history_spare + rows * P;
    return ATTN_OK;
}

static attn_status encode(attn_seq2seq *m, const int32_t *src, const int32_t *src_len, int B, int S,
                          int beam)
{
    s2s_transformer *t = impl(m);
    t->has_forward = false;
    int longest = 1;
    for (int b = 0; b < B; b++)
        if (src_len[b] > longest) longest = src_len[b];
    t->rows = B * beam;
    t->beam = beam;
    t->dec_S = longest;
    t->caller_S = S;
    t->decoded_len = 0;
    attn_status s = layout_decode(t, B, longest);
    if (s) return s;
    const int E = t->E;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < longest; j++) {
            const int32_t id = src[(size_t)b * S + j];
            if (id < 0 || id >= t->src_vocab)
                return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                                  "source id %d at row %d, position %d is outside [0, %d)", (int)id,
                                  b, j, t->src_vocab);
            t->enc_ids[(size_t)b * longest + j] = id;
            t->enc_pad[(size_t)b * longest + j] = j < src_len[b] ? 0.0f : -INFINITY;
        }
    if ((s = embed_forward(t, t->enc_x, t->enc_ids, t->src_embed, t->src_vocab, B, longest, 0,
                           0.0f, 0)))
        return s;
    const attn_transformer_input in = {
        .src = t->enc_x,
        .batch = B,
        .src_len = longest,
        .src_mask = {.key_padding_mask = t->enc_pad, .key_padding_mask_type = ATTN_MASK_FLOAT},
    };
    if ((s = attn_tf_transformer_encode(&t->tf, t->enc_out, &in))) return s;
    const size_t plane = (size_t)longest * E;
    for (int r = 0; r < t->rows; r++) {
        memcpy(t->memory + r * plane, t->enc_out + (size_t)(r / beam) * plane,
               plane * sizeof *t->memory);
        memcpy(t->memory_pad + (size_t)r * longest, t->enc_pad + (size_t)(r / beam) * longest,
               (size_t)longest * sizeof *t->memory_pad);
    }
    return attn_tf_decoder_cache_init(&t->cache, &t->tf.decoder, t->memory, t->rows, longest,
                                      t->positions);
}

/* logprobs: (rows, V) = log_softmax of logits (rows, V). */
static void log_softmax(float *logprobs, const float *logits, int rows, int V)
{
    for (int r = 0; r < rows; r++) {
        const float *x = logits + (size_t)r * V;
        float *y = logprobs + (size_t)r * V;
        float max = x[0];
        for (int v = 1; v < V; v++)
            if (x[v] > max) max = x[v];
        double sum = 0.0;
        for (int v = 0; v < V; v++) sum += exp((double)(x[v] - max));
        const float shift = max + (float)log(sum);
        for (int v = 0; v < V; v++) y[v] = x[v] - shift;
    }
}

/* The sublayer j of layer l of a stack: 0 its self-attention, 1 a decoder
 * layer's cross-attention. */
static attn_tf_sublayer *sublayer(attn_tf_stack *st, int l, int j)
{
    return &st->sub[l * (st->decoder ? 3 : 2) + j];
}

/* Sublayer s's attention run again on what its last forward read (its norm's
 * output when norm_first, else its input), over itself or the decoding memory,
 * with mask -> weights: (B, H, Lq, Lk), or (B, Lq, Lk) averaged over heads. The
 * attention still holds the parameters its sublayer gave it for that forward;
 * its output goes to att_out. */
static attn_status attention_weights(s2s_transformer *t, attn_tf_sublayer *s, float *weights,
                                     bool average, int batch, int len, int memory_len,
                                     const attn_transformer_mask *mask)
{
    const float *u = s->cfg.norm_first ? s->z : s->x;
    const attn_tf_call call = {.batch = batch,
                               .len = len,
                               .memory_len = memory_len,
                               .memory = t->memory,
                               .mask = mask,
                               .weights = weights};
    attn_mha_input in = attn_tf_attention_input(s, u, &call);
    in.average_attn_weights = average;
    return attn_mha_forward(s->mha, t->att_out, &in);
}

/* The decoder input at one step: the memory and its padding, rows sources. */
static attn_transformer_input decoder_input(const s2s_transformer *t, int rows, int tgt_len)
{
    return (attn_transformer_input){
        .tgt = t->step_x,
        .memory = t->memory,
        .batch = rows,
        .src_len = t->dec_S,
        .tgt_len = tgt_len,
        .tgt_mask = {.is_causal = true},
        .memory_mask = {.key_padding_mask = t->memory_pad,
                        .key_padding_mask_type = ATTN_MASK_FLOAT},
    };
}

static attn_status step(attn_seq2seq *m, float *logprobs, float *attention, const int32_t *tokens,
                        const attn_decode_options *opt, int position)
{
    (void)opt;
    s2s_transformer *t = impl(m);
    const int rows = t->rows, P = t->positions, E = t->E, V = t->tgt_vocab, S = t->dec_S;
    if (position != t->decoded_len || position >= P)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "decoding position %d is not the next of %d decoded, below %d",
                          position, t->decoded_len, P);
    for (int r = 0; r < rows; r++) t->history[(size_t)r * P + position] = tokens[r];
    attn_status s =
        embed_forward(t, t->step_x, tokens, t->tgt_embed, V, rows, 1, position, 0.0f, 0);
    if (s) return s;
    attn_transformer_input in = decoder_input(t, rows, 1);
    in.cross_weights = attention ? t->step_weights : NULL;
    if ((s = attn_tf_stack_step(&t->tf.decoder, t->last, t->step_x, &t->cache, &in)) ||
        (s = attn_linear_forward_at(t->precision, t->step_logits, t->last, t->gen_w, t->gen_b, rows,
                                    E, V)))
        return s;
    t->decoded_len = position + 1;
    log_softmax(logprobs, t->step_logits, rows, V);
    if (attention == NULL) return ATTN_OK;
    for (int r = 0; r < rows; r++) {
        const float *w = t->step_weights + (size_t)r * S;
        float *a = attention + (size_t)r * t->caller_S;
        for (int j = 0; j < t->caller_S; j++) a[j] = j < S ? w[j] : 0.0f;
    }
    return ATTN_OK;
}

/* The attention of map i of a record's transformer maps (the order
 * attn_s2s_transformer_record adds them in: every encoder layer's, then each
 * decoder layer's self- and cross-attention). */
static attn_mha *map_attention(s2s_transformer *t, int i)
{
    attn_tf_stack *enc = &t->tf.encoder, *dec = &t->tf.decoder;
    if (i < enc->layers) return sublayer(enc, i, 0)->mha;
    i -= enc->layers;
    return sublayer(dec, i / 2, i % 2)->mha;
}

/* The options' extras of the maps from `first` on, from a teacher-forced pass
 * over the decoded output (targets: (T)) without dropout, and its backward from
 * d log p / d logits, which leaves dO in each attention (attn_mha_weights_backward).
 * The parameters' gradients are put back as they were. */
static attn_status record_extras(attn_seq2seq *m, attn_record *record, int first,
                                 const int32_t *targets, const attn_record_options *opt)
{
    s2s_transformer *t = impl(m);
    const int S = t->dec_S, T = t->decoded_len, n_maps = record->n_maps - first;
    int32_t *ints = malloc((size_t)(2 * T + 2) * sizeof *ints);
    if (ints == NULL) return attn_error(ATTN_ERR_OUT_OF_MEMORY, "no memory for %d steps", T);
    const attn_batch batch = attn_s2s_teacher_batch(ints, t->enc_ids, S, targets, T);
    const attn_seq2seq_pass pass = {.training = false};
    attn_status s = forward(m, NULL, &batch, &pass);
    for (int i = 0; i < n_maps && opt->qk && s == ATTN_OK; i++) {
        const attn_attention_map *map = &record->maps[first + i];
        const float *q_heads, *k_heads;
        float *q, *k;
        attn_mha_last_qk(map_attention(t, i), &q_heads, &k_heads);
        const int hd = t->E / m->cfg.heads;
        if ((s = attn_record_add_qk(record, first + i, hd, &q, &k))) break;
        memcpy(q, q_heads, (size_t)map->heads * map->rows * hd * sizeof *q);
        memcpy(k, k_heads, (size_t)map->heads * map->cols * hd * sizeof *k);
    }
    float *saved = s == ATTN_OK && opt->gradient ? attn_grads_save(&m->params) : NULL;
    if (saved != NULL) {
        attn_explained_logits(t->dlogits, t->probs, t->targets, T, t->tgt_vocab,
                              opt->gradient_step);
        s = backward_from_logits(t);
        for (int i = 0; i < n_maps && s == ATTN_OK; i++) {
            float *gradient;
            if ((s = attn_record_add_gradient(record, first + i, &gradient)) == ATTN_OK)
                s = attn_mha_weights_backward(map_attention(t, i), gradient);
        }
        attn_grads_restore(&m->params, saved);
        record->gradient_step = opt->gradient_step;
    } else if (s == ATTN_OK && opt->gradient) {
        s = ATTN_ERR_OUT_OF_MEMORY;
    }
    free(ints);
    return s;
}

/* Every layer's maps come from a run of the decoder over the whole output, as
 * training runs it, and then each attention run again on what its layer read. */
attn_status attn_s2s_transformer_record(attn_seq2seq *m, attn_record *record, int steps,
                                        const int32_t *targets, const attn_record_options *opt)
{
    s2s_transformer *t = impl(m);
    if (t->rows != 1 || steps != t->decoded_len)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "recording needs one source decoded for %d steps; %d rows were decoded "
                          "for %d",
                          steps, t->rows, t->decoded_len);
    const int S = t->dec_S, T = steps, H = m->cfg.heads;
    const int first = record->n_maps;
    attn_status s = embed_forward(t, t->step_x, t->history, t->tgt_embed, t->tgt_vocab, 1, T, 0,
                                  0.0f, 0);
    const attn_transformer_input in = decoder_input(t, 1, T);
    if (s || (s = attn_tf_transformer_decode(&t->tf, t->step_out, &in))) return s;
    const attn_transformer_mask source = {.key_padding_mask = t->enc_pad,
                                          .key_padding_mask_type = ATTN_MASK_FLOAT};
    attn_tf_stack *enc = &t->tf.encoder, *dec = &t->tf.decoder;
    float *w;
    for (int l = 0; l < enc->layers; l++) {
        if ((s = attn_record_add_map(record, "transformer.encoder.layers.*.self_attn", l,
                                     ATTN_MAP_SELF, false, H, S, S, &w)) ||
            (s = attention_weights(t, sublayer(enc, l, 0), w, false, 1, S, S, &source)))
            return s;
    }
    for (int l = 0; l < dec->layers; l++) {
        if ((s = attn_record_add_map(record, "transformer.decoder.layers.*.self_attn", l,
                                     ATTN_MAP_SELF, false, H, T, T, &w)))
            return s;
        record->maps[record->n_maps - 1].over_queries = true;
        if ((s = attention_weights(t, sublayer(dec, l, 0), w, false, 1, T, T, &in.tgt_mask)))
            return s;
        if ((s = attn_record_add_map(record, "transformer.decoder.layers.*.multihead_attn", l,
                                     ATTN_MAP_CROSS, false, H, T, S, &w)) ||
            (s = attention_weights(t, sublayer(dec, l, 1), w, false, 1, T, S, &in.memory_mask)))
            return s;
    }
    return opt->qk || opt->gradient ? record_extras(m, record, first, targets, opt) : ATTN_OK;
}

/* A teacher-forced pass over the batch of one source, dropout off, with map
 * `map`'s attention (as map_attention counts) edited by edit -> probs: (T, V). */
static attn_status probe(attn_seq2seq *m, float *probs, const attn_batch *batch, int map,
                         const attn_weights_edit *edit)
{
    s2s_transformer *t = impl(m);
    attn_mha *site = edit != NULL ? map_attention(t, map) : NULL;
    if (site != NULL) attn_mha_set_edit(site, edit);
    const attn_seq2seq_pass pass = {.training = false};
    attn_status s = forward(m, NULL, batch, &pass);
    if (site != NULL) attn_mha_set_edit(site, NULL);
    if (s == ATTN_OK)
        memcpy(probs, t->probs, (size_t)t->T * t->tgt_vocab * sizeof *probs);
    return s;
}

/* The prefixes and their cached keys and values move with their rows; the
 * memory is the same within a source. */
static attn_status reorder(attn_seq2seq *m, const int32_t *parent)
{
    s2s_transformer *t = impl(m);
    const size_t P = (size_t)t->positions;
    for (int r = 0; r < t->rows; r++) {
        if (parent[r] < 0 || parent[r] >= t->rows || parent[r] / t->beam != r / t->beam)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "parent %d of row %d is not a row of the same source", (int)parent[r],
                              r);
        memcpy(t->history_spare + r * P, t->history + (size_t)parent[r] * P,
               P * sizeof *t->history);
    }
    int32_t *swap = t->history;
    t->history = t->history_spare;
    t->history_spare = swap;
    attn_tf_decoder_cache_reorder(&t->cache, parent);
    return ATTN_OK;
}

static void set_precision(attn_seq2seq *m, attn_precision precision)
{
    s2s_transformer *t = impl(m);
    t->precision = precision;
    attn_tf_transformer_set_precision(&t->tf, precision);
}

static const attn_seq2seq_ops transformer_ops = {
    .forward = forward,
    .backward = backward,
    .encode = encode,
    .step = step,
    .reorder = reorder,
    .probe = probe,
    .set_precision = set_precision,
    .destroy = destroy,
};
