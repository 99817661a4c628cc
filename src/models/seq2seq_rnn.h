/* Internal: the RNN encoder-decoder models of attn_seq2seq (see attn/seq2seq.h for
 * the architecture). The files depend downward only:
 *   seq2seq_rnn.c          the model: its family chosen, created, the operations table
 *   seq2seq_rnn_train.c    the teacher-forced forward and backward
 *   seq2seq_rnn_decode.c   encode / step / reorder for decoding
 *   seq2seq_bahdanau.c, seq2seq_luong.c   each family's s2s_family: its decoder
 *                          step, parameters and activations
 * and the pieces both families and both passes share:
 *   seq2seq_rnn_params.c   the parameters: declared, viewed, initialised
 *   seq2seq_rnn_run.c      one forward's activation layout and random streams
 *   seq2seq_rnn_encoder.c  the bidirectional encoder, the keys, the initial states
 *   seq2seq_rnn_cells.c    the decoder's layers of cells at one step
 *   seq2seq_rnn_embed.c    the embedding of the decoder's input tokens
 *   seq2seq_rnn_output.c   the output layer
 *   seq2seq_rnn_attend.c   the padding mask, and attention weights (soft, sampled,
 *                          Gumbel) and context through the attention layer.
 *
 * Decoder arrays are time-major, (T, R, X), so that every step's rows are one
 * block and a whole sequence's projections are one GEMM. Training has R = B rows
 * of B sources; decoding has R = B * beam rows, row r reading source r / beam,
 * and runs the same step code with T = 1. */
#ifndef ATTN_SRC_MODELS_SEQ2SEQ_RNN_H
#define ATTN_SRC_MODELS_SEQ2SEQ_RNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/attention.h"
#include "attn/rnn.h"
#include "models/seq2seq_impl.h"
#include "nn/activations.h"
#include "nn/param_specs.h"

enum { S2S_MAX_LAYERS = ATTN_SEQ2SEQ_MAX_LAYERS };

typedef struct s2s_dims {
    attn_rnn_mode mode;
    int G, GH;       /* gates, G * H */
    int E, H, L, Le; /* embedding, hidden, decoder and encoder layers */
    int Vs, V;       /* source and target vocabularies */
    attn_attention_kind kind;
    int Ka;       /* key width: H (Bahdanau's A, and Luong's) */
    int Dv;       /* value and context width: 2H, or H for luong-dot */
    int in0;      /* decoder layer 0's input: E + Dv (Bahdanau) or E + H (Luong) */
    int F;        /* the output layer's input: H + Dv (Bahdanau) or H (Luong) */
    int Wf;       /* what a step feeds the next besides the cells: H (Luong's h~) or 0 */
    size_t saved; /* attn_rnn_cell_saved_size per row */
} s2s_dims;

/* Views of the parameters (or of their gradients) by role; NULL where the
 * architecture has no such parameter. */
typedef struct s2s_weights {
    float *src_embed, *tgt_embed;                       /* (Vs, E), (V, E) */
    float *init_w, *init_b;                             /* (L*H, 2H), (L*H) */
    float *w_ih[S2S_MAX_LAYERS];                        /* (GH, in0) for layer 0, else (GH, H) */
    float *w_hh[S2S_MAX_LAYERS];                        /* (GH, H) */
    float *b_ih[S2S_MAX_LAYERS], *b_hh[S2S_MAX_LAYERS]; /* (GH) */
    float *query;                                       /* (A, H) Bahdanau */
    /* The encoder states' projection to keys, (Ka, 2H) and (Ka) or NULL:
     * Bahdanau's W_k + b, luong-general's W_a, luong-dot's bridge. */
    float *key, *key_b;
    float *v;                                           /* (A) Bahdanau */
    float *combine;                                     /* (H, Dv + H) Luong */
    float *out_w, *out_b;                               /* (V, F), (V) */
} s2s_weights;

/* How attention picks its weights at a step. */
typedef enum s2s_pick {
    S2S_PICK_SOFT,   /* the softmax */
    S2S_PICK_SAMPLE, /* one position drawn from the softmax */
    S2S_PICK_GUMBEL, /* the argmax of the Gumbel-perturbed softmax at temperature tau */
    S2S_PICK_ARGMAX, /* the most likely position */
} s2s_pick;

/* Sites of random draws: each (seed, step, site, t) keys its own stream. */
enum {
    S2S_SITE_SRC_EMBED,
    S2S_SITE_TGT_EMBED,
    S2S_SITE_ENCODER,
    S2S_SITE_OUTPUT,
    S2S_SITE_ATTENTION,
    S2S_SITE_DEC_LAYER, /* + layer */
};

/* One forward's sizes, settings and activations. */
typedef struct s2s_run {
    int R, Bs, beam, S, T; /* rows, sources, rows per source, source positions, steps */
    bool training;         /* keeps what backward needs; dropout and sampling on */
    float p;               /* dropout in effect */
    uint64_t seed;         /* with step, keys dropout and sampling */
    int64_t step;
    s2s_pick pick;
    float tau; /* Gumbel temperature */
    float label_smoothing;

    int32_t *src;              /* (Bs, S) ids */
    int32_t *src_len;          /* (Bs) */
    int32_t *tgt_in, *tgt_out; /* (T, R) */
    int32_t *choice;           /* (T, R) hard attention's positions */

    float *src_emb;   /* (Bs, S, E) after dropout */
    float *enc;       /* (Bs, S, 2H) */
    float *h_n;       /* (2 Le, Bs, H) */
    float *final;     /* (Bs, 2H) */
    float *init;      /* (Bs, L*H) the initial states, after tanh */
    float *keys;      /* (Bs, S, Ka) */
    float *pad;       /* (Bs, S) 0 at a source's positions, -inf past its length */
    attn_mask pad_mask; /* pad read as (Bs, 1, beam, S) */
    float *values;    /* (Bs, S, Dv): enc, or the bridge's output (= keys) */
    float *emb;       /* (T, R, E) after dropout */
    float *gx0;       /* (T, R, GH) layer 0's input projection */
    float *gx;        /* (R, GH) the other layers' */
    float *x;         /* (L, T, R, H) inputs of layers 1.. after dropout */
    float *hs, *cs;   /* (L, T + 1, R, H) states, index 0 the initial one; cs LSTM */
    float *saved;     /* (L, T, R, saved) */
    float *qp;        /* (T, R, A) Bahdanau's projected queries */
    float *u;         /* (T, R, S, A) Bahdanau's tanh terms */
    float *scores;    /* (R, S), before the padding mask */
    float *weights;   /* (T, R, S) softmax, or the Gumbel soft sample */
    float *ctx;       /* (T, R, Dv) */
    float *z;         /* (T, R, Dv + H) Luong's [c; h] */
    float *feed;      /* (T + 1, R, Wf) what step t - 1 feeds step t (Luong's h~), index 0 zeros */
    float *in0_rest;  /* (T, R, in0 - E) layer 0's input after the embedding: ctx or feed */
    float *feat;      /* (T, R, F) the output layer's input */
    float *feat_drop; /* (T, R, F) after dropout (= feat without) */
    float *logits;    /* (T * R, V) */
    float *probs;     /* (T * R, V) */
    float *row_loss;  /* (T * R) */
    float *tmp;       /* (R, H) scratch */

    /* backward */
    float *dlogits;                  /* (T * R, V) */
    float *dfeat_drop;               /* (T, R, F) */
    float *dfeat;                    /* (T, R, F); Luong: dfeed + R * Wf */
    float *dfeed;                    /* (T + 1, R, Wf) */
    float *dgx;                      /* (L, T, R, GH) */
    float *dgh;                      /* (L, T, R, GH) GRU's gradient of h W_hh^T + b_hh */
    float *dh, *dh_prev;             /* (L, R, H) of the states at t and t - 1 */
    float *dc, *dc_prev;             /* (L, R, H) LSTM */
    float *dctx;                     /* (T, R, Dv) */
    float *dscores;                  /* (R, S) */
    float *dqp;                      /* (T, R, A) Bahdanau */
    float *dpre;                     /* (T, R, H) Luong: of combine's output before tanh */
    float *dz;                       /* (R, Dv + H) Luong */
    float *dkeys;                    /* (Bs, S, Ka) */
    float *dvalues;                  /* (Bs, S, Dv): denc, or the bridge's output gradient */
    float *denc;                     /* (Bs, S, 2H) */
    float *dh_n;                     /* (2 Le, Bs, H) */
    float *dinit;                    /* (Bs, L*H) */
    float *dfinal;                   /* (Bs, 2H) */
    float *demb, *demb_drop;         /* (T, R, E) */
    float *dsrc_emb, *dsrc_emb_drop; /* (Bs, S, E) */
    float *advantage;                /* (R) REINFORCE's reward minus the baseline */
    float *pg, *ent;                 /* (R) REINFORCE's coefficients at a step */
    /* Recording only, else NULL: (T, R, S), where soft attention's backward adds
     * the gradient with respect to the weights. */
    float *weights_grad;
    /* An intervention only, else NULL: soft attention edits its weights at every
     * step (attn_soft_attention_edited_forward, step t's row keyed as row t R). */
    const attn_weights_edit *edit;
} s2s_run;

typedef struct s2s_rnn s2s_rnn;

/* The model's parameter list (nn/param_specs.h): the families add theirs to it. */
typedef attn_specs s2s_specs;

/* Declares a parameter of shape (d0) (ndim 1) or (d0, d1), with no prefix: the
 * families' shorthand for attn_specs_add. */
void attn_s2s_add_spec(s2s_specs *l, const char *name, int ndim, int64_t d0, int64_t d1);

/* A family's parameters come in two groups because the state_dict orders them
 * around the decoder's layers: its attention's before, the rest after. */
typedef enum s2s_param_group {
    S2S_PARAMS_ATTENTION,
    S2S_PARAMS_AFTER_LAYERS,
} s2s_param_group;

/* The most views a family adds to a run's layout (Bahdanau's). */
enum { S2S_FAMILY_VIEWS_MAX = 5 };

/* What differs between the decoder families, chosen once when the model is
 * created: everything else (encoder, cells, embedding, output layer, attend,
 * the loops of training and decoding) is shared and never tests the family.
 * seq2seq_bahdanau.c and seq2seq_luong.c define the tables. */
typedef struct s2s_family {
    /* Sets d->Dv, in0, F and Wf from d->E and d->H. */
    void (*dims)(s2s_dims *d);
    /* The names of the key projection's weight and bias (NULL if none): see
     * s2s_weights.key. */
    const char *key_weight, *key_bias;
    /* Declares group's parameters in state_dict order; init draws their initial
     * values from rng in the same order. */
    void (*params)(s2s_specs *specs, const s2s_dims *d, s2s_param_group group);
    void (*init)(const s2s_weights *w, const s2s_dims *d, attn_rng *rng, s2s_param_group group);
    /* Writes the views of the family's own arrays for run's sizes (R, S, T set)
     * to out and returns their count (at most S2S_FAMILY_VIEWS_MAX); after the
     * layout, bind points the arrays that alias others (values, in0_rest, ...). */
    int (*views)(attn_activation_view *out, s2s_run *run, const s2s_dims *d, bool backward);
    void (*bind)(s2s_run *run, const s2s_dims *d);
    /* Decoder step t: attention, cells, feat[t] (and feed[t + 1]); its backward,
     * given dfeat[t] and the states' gradients at t + 1. */
    attn_status (*step)(s2s_rnn *r, int t);
    attn_status (*step_backward)(s2s_rnn *r, int t);
    /* After the backward's walk over the steps: the family's weight gradients
     * that are one GEMM over all steps. */
    void (*weight_grads)(s2s_rnn *r);
} s2s_family;

extern const s2s_family attn_s2s_bahdanau, attn_s2s_luong_dot, attn_s2s_luong_general;

struct s2s_rnn {
    const s2s_family *family;
    s2s_dims d;
    attn_precision precision; /* of every product but attention's (attn_seq2seq_set_precision) */
    attn_rnn *encoder; /* bound into the model's block as "encoder.rnn." */
    s2s_weights w, g;  /* parameters, gradients */
    float *baseline;   /* hard-reinforce's buffer, else NULL */
    attn_activations acts;
    attn_int_block ints;
    s2s_run run;
    int decode_S;     /* the source width decoding reports attention over */
    bool has_forward; /* a training forward that backward may use */
};

static inline s2s_rnn *attn_s2s_rnn(attn_seq2seq *m) { return (s2s_rnn *)m->impl; }

/* Array views at (layer, t) of (L, T + 1, R, H) states and (L, T, R, X) arrays. */
static inline float *attn_s2s_state(const s2s_run *run, float *states, int l, int t, int H)
{
    return states + (((size_t)l * (run->T + 1) + t) * run->R) * H;
}
static inline float *attn_s2s_at(const s2s_run *run, float *a, int l, int t, size_t width)
{
    return a + (((size_t)l * run->T + t) * run->R) * width;
}

/* Creates the encoder and the model's parameters (m->params, and m->buffers for
 * hard-reinforce's baseline) for r->d and r->family, initialised from seed. */
attn_status attn_s2s_params_create(attn_seq2seq *m, s2s_rnn *r, uint64_t seed);
/* The number of parameters attn_s2s_params_create would lay out for r->d and
 * r->family, laying out none. */
attn_status attn_s2s_params_count(s2s_rnn *r, float dropout, int64_t *count);

/* A key for the stream of draws at (seed, step, site, t). */
uint64_t attn_s2s_key(uint64_t seed, int64_t step, unsigned site, int t);

/* Lays out run's arrays for R rows of Bs sources (beam rows each), S positions
 * and T steps; the backward's only if `backward`. */
attn_status attn_s2s_layout(s2s_rnn *r, int Bs, int beam, int S, int T, bool backward);

/* Encodes run->src (Bs, S) with run->src_len: the encoder states, keys and values
 * and the initial decoder state of every row. */
attn_status attn_s2s_encode(s2s_rnn *r);
/* Of the encoder given run->dkeys, run->dvalues / denc and dinit: into the
 * parameter gradients. */
attn_status attn_s2s_encode_backward(s2s_rnn *r);

/* The decoder's input tokens (T, R) -> emb (after dropout) and gx0, layer 0's
 * projection of the embeddings with its bias; the attention or input-feeding
 * part of layer 0's input is added by the family's step. */
attn_status attn_s2s_embed_targets(s2s_rnn *r, const int32_t *tokens);
/* Of the embeddings given dgx of layer 0 at every step: into the target
 * embedding's gradient. */
attn_status attn_s2s_embed_targets_backward(s2s_rnn *r);

/* feat: (T * R, F) -> feat_drop (dropout) -> logits: (T * R, V). */
attn_status attn_s2s_output(s2s_rnn *r);
/* Of the output layer and the cross-entropy against tgt_out: dfeat (zeroed
 * first), the output layer's gradients +=. */
attn_status attn_s2s_output_backward(s2s_rnn *r);
/* The same from the gradient the caller put in run->dlogits (T * R, V). */
attn_status attn_s2s_output_backward_logits(s2s_rnn *r);

/* Decoder layers at step t: layer 0 from gx0[t] (complete), the others from the
 * layer below (with dropout); states hs/cs [l][t] -> [l][t + 1]. */
attn_status attn_s2s_cells_forward(s2s_rnn *r, int t);
/* Of the cells at step t given dh (and dc) of the states at t + 1: dgx[l][t]
 * (and dgh), dh_prev / dc_prev += of the states at t. */
attn_status attn_s2s_cells_backward(s2s_rnn *r, int t);

/* run->pad and pad_mask from run->src_len, for R = Bs * beam rows. */
attn_status attn_s2s_attend_mask(s2s_run *run);
/* Attention weights and context from run->scores (R, S) at step t (positions past
 * a source's length excluded): weights[t], choice[t] (hard picks), ctx[t]. */
attn_status attn_s2s_attend(s2s_rnn *r, int t);
/* Of attn_s2s_attend given dctx[t]: dvalues +=, run->dscores (overwritten);
 * for hard-reinforce the surrogate's terms with run->pg and run->ent; with
 * run->weights_grad, weights_grad[t] += dctx[t] values^T on the positions each
 * row's source has (soft attention). */
attn_status attn_s2s_attend_backward(s2s_rnn *r, int t);

/* Operations (seq2seq_impl.h). */
attn_status attn_s2s_rnn_forward(attn_seq2seq *m, attn_seq2seq_stats *stats,
                                 const attn_batch *batch, const attn_seq2seq_pass *pass);
attn_status attn_s2s_rnn_backward(attn_seq2seq *m);
attn_status attn_s2s_rnn_encode(attn_seq2seq *m, const int32_t *src, const int32_t *src_len, int B,
                                int S, int beam);
attn_status attn_s2s_rnn_step(attn_seq2seq *m, float *logprobs, float *attention,
                              const int32_t *tokens, const attn_decode_options *opt, int position);
attn_status attn_s2s_rnn_reorder(attn_seq2seq *m, const int32_t *parent);

/* For recording: the teacher-forced forward of a batch with dropout off and
 * attention picked as in inference, keeping what the backward needs (no
 * backward may follow through attn_s2s_rnn_backward); then, from the gradient
 * the caller put in run->dlogits, the backward through the output layer and the
 * decoder's steps only, adding d/d weights to weights_grad: (T, R, S). The
 * parameters' gradients of the output layer, the cells and the attention are
 * added to as well. */
attn_status attn_s2s_rnn_forward_kept(attn_seq2seq *m, const attn_batch *batch);
attn_status attn_s2s_rnn_weights_backward(attn_seq2seq *m, float *weights_grad);

/* The ops' probe (seq2seq_impl.h): a teacher-forced pass, attention edited by edit
 * (NULL: none) -> probs. */
attn_status attn_s2s_rnn_probe(attn_seq2seq *m, float *probs, const attn_batch *batch, int map,
                               const attn_weights_edit *edit);

#endif
