/* attn/gpt.h: a decoder-only Transformer language model (GPT), trained on text
 * and sampled with a key-value cache.
 *
 * The model, for ids x: (B, T) with T <= block_size, C = n_embd, H = n_head,
 * Hkv = n_kv_head (H divisible by it), hd = C / H:
 *   h = drop(wte[x] + pos)       pos: wpe[t] (learned), the sinusoidal table of
 *                                "Attention Is All You Need" (sinusoidal), or 0
 *   for each block:              (RoPE and ALiBi act inside attention)
 *     h = h + drop(attn(ln_1(h)))
 *     h = h + drop(mlp(ln_2(h)))
 *   logits = lm_head(ln_f(h))    lm_head.weight is wte's when weights are tied
 * attn: qkv = c_attn(x) split into q (H heads), k and v (Hkv heads each); RoPE,
 *   if chosen, rotates q and k; causal scaled dot-product attention through the
 *   fused kernel (query head h reads key/value head h / (H / Hkv): grouped-query
 *   attention, multi-query when Hkv = 1), with ALiBi slopes and the sliding
 *   window if chosen, dropout on the weights; heads concatenated, then c_proj.
 * mlp: c_proj(gelu(c_fc(x))), c_fc C -> 4C, exact (erf) GELU.
 * RoPE (Su et al., 2021) in the "rotate half" layout of GPT-NeoX and LLaMA: for
 *   each head, dimension i < hd/2 pairs with i + hd/2, rotated by the angle
 *   t * rope_theta^(-2i / hd) at position t.
 * ALiBi (Press et al., 2022): head h (0-based) adds -m_h (i - j) to the score of
 *   query i and key j, m_h = 2^(-8 (h + 1) / H) for H a power of two; otherwise
 *   the slopes of the nearest lower power of two n, followed by every other slope
 *   of 2n (the paper's code).
 * Sliding window (window > 0): a query sees itself and the window - 1 tokens
 *   before it.
 *
 * Parameters (state_dict keys of the PyTorch transcription in the conformance
 * test, named as nanoGPT names them; biases only with cfg.bias):
 *   transformer.wte.weight (V, C)
 *   transformer.wpe.weight (block_size, C)          learned positions only
 *   transformer.h.<i>.ln_1.weight, .bias (C)
 *   transformer.h.<i>.attn.c_attn.weight ((H + 2 Hkv) hd, C), .bias
 *                                   rows: the q heads, then k heads, then v heads
 *   transformer.h.<i>.attn.c_proj.weight (C, C), .bias
 *   transformer.h.<i>.ln_2.weight, .bias (C)
 *   transformer.h.<i>.mlp.c_fc.weight (4C, C), .bias
 *   transformer.h.<i>.mlp.c_proj.weight (C, 4C), .bias
 *   transformer.ln_f.weight, .bias (C)
 *   lm_head.weight (V, C)                           untied weights only
 * Initialised as nanoGPT: weights normal(0, 0.02), the two c_proj weights
 * normal(0, 0.02 / sqrt(2 n_layer)), biases 0, LayerNorms 1 and 0.
 */
#ifndef ATTN_GPT_H
#define ATTN_GPT_H

#include <stdbool.h>
#include <stdint.h>

#include "attn/capture.h"
#include "attn/core.h"
#include "attn/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_position_kind {
    ATTN_POS_LEARNED,
    ATTN_POS_SINUSOIDAL,
    ATTN_POS_ROPE,
    ATTN_POS_ALIBI,
} attn_position_kind;

/* "learned", "sinusoidal", "rope", "alibi"; parsing an unknown name fails listing
 * the known ones; a value that is no kind is named "unknown". */
ATTN_API const char *attn_position_name(attn_position_kind kind);
ATTN_API attn_status attn_position_parse(attn_position_kind *kind, const char *name);

#define ATTN_GPT_MAX_LAYERS 64

typedef struct attn_gpt_config {
    int vocab_size;  /* V */
    int block_size;  /* the longest context, in tokens */
    int n_layer, n_head, n_kv_head, n_embd; /* n_kv_head 0 means n_head */
    attn_position_kind position;
    float rope_theta; /* RoPE's base, > 0 (10000) */
    int window;       /* sliding-window attention; 0 = full causal */
    bool bias;        /* biases in the Linears and LayerNorms */
    bool tie_weights; /* lm_head shares wte's weight */
    float dropout;    /* in [0, 1), training only */
} attn_gpt_config;

/* 4 layers, 4 heads (n_kv_head 0), 128 wide, block 64, learned positions,
 * rope_theta 10000, no window, biases, tied weights, dropout 0; the caller sets
 * vocab_size. */
ATTN_API attn_gpt_config attn_gpt_defaults(void);

/* Fails naming the bad field and value, e.g. "n_embd 100 is not divisible by
 * n_head 3" or "n_head 6 is not divisible by n_kv_head 4". */
ATTN_API attn_status attn_gpt_check_config(const attn_gpt_config *cfg);
/* The number of parameters (floats) a model of cfg has, without creating it:
 * PyTorch's sum(p.numel() for p in model.parameters()). Fails as check_config. */
ATTN_API attn_status attn_gpt_param_count(const attn_gpt_config *cfg, int64_t *count);

typedef struct attn_gpt attn_gpt;

ATTN_API attn_status attn_gpt_create(attn_gpt **out, const attn_gpt_config *cfg, uint64_t seed);
/* A replica of m for data-parallel threads: a model of m's config and precision
 * that reads m's parameter values (the same memory, not a copy) and has
 * gradients, activations and buffers of its own. Threads may run forward and
 * backward passes on m and its replicas at the same time, each into its own
 * gradients (attn train --replicas sums them); m's values must not change
 * during those passes, and m must outlive its replicas. */
ATTN_API attn_status attn_gpt_replicate(attn_gpt **out, const attn_gpt *m);
ATTN_API void attn_gpt_free(attn_gpt *m);
ATTN_API const attn_gpt_config *attn_gpt_get_config(const attn_gpt *m);
ATTN_API attn_params *attn_gpt_params(attn_gpt *m);

/* The precision of the matrix products of attn_gpt_forward and _backward (the
 * training pass): ATTN_FLOAT32 (the default) or ATTN_BF16, mixed precision:
 * the Linears' and lm_head's products (forward and backward) on
 * bf16-rounded operands with float32 sums (attn_gemm), and attention through
 * attn_sdpa_bf16_forward / _backward (q, k, v and dout rounded; scores, softmax
 * and sums float32). The parameters, their gradients, the embeddings, LayerNorms,
 * GELU, the softmax and the loss stay float32, so an optimizer and a checkpoint
 * see float32 state as ever. reference_attention passes stay float32 in
 * attention. The key-value cache runs the same blocks, so its Linears follow
 * this setting too, its attention and lm_head stay float32. Fails on a value
 * that is no attn_precision. */
ATTN_API attn_status attn_gpt_set_precision(attn_gpt *m, attn_precision precision);
ATTN_API attn_precision attn_gpt_get_precision(const attn_gpt *m);

/* One pass; dropout is drawn from (seed, step) so a step repeats exactly.
 * reference_attention runs attention through attn_sdpa_reference_* (the oracle
 * the fused kernel is tested against) instead of the fused kernel. */
typedef struct attn_gpt_pass {
    bool training;
    int64_t step;
    uint64_t seed;
    bool reference_attention;
} attn_gpt_pass;

/* ids: (B, T) in [0, V), 1 <= T <= block_size; targets: (B, T) in [0, V), or NULL.
 * -> *loss (if targets; may be NULL otherwise): the mean cross-entropy over all
 * B T positions. The logits of every position are kept: attn_gpt_logits. A bad id
 * or T fails naming it ("context of 80 tokens exceeds the block size 64"). */
ATTN_API attn_status attn_gpt_forward(attn_gpt *m, float *loss, const int32_t *ids,
                                      const int32_t *targets, int B, int T,
                                      const attn_gpt_pass *pass);
/* The last forward's logits, (B, T, V); valid until the next forward or free. */
ATTN_API const float *attn_gpt_logits(const attn_gpt *m);
/* The gradient of the last forward's loss into attn_gpt_params(m)->grad (+=).
 * Fails if the last forward had no targets or was followed by a backward. */
ATTN_API attn_status attn_gpt_backward(attn_gpt *m);

/* ---- inference with a key-value cache ----------------------------------------------------
 * One sequence's keys and values of every layer for positions 0 .. length - 1, so
 * a new token costs O(length), not a pass over the whole context. Dropout is off. */
typedef struct attn_gpt_cache attn_gpt_cache;

/* Room for `capacity` tokens, 1 <= capacity <= block_size, float32. The keys and
 * values of a cache of 256 KB or more are on huge pages where Linux offers them
 * (no page fault per step), whose first pass clears all of them: make a cache
 * as large as the tokens it will hold, not larger. */
ATTN_API attn_status attn_gpt_cache_create(attn_gpt_cache **out, const attn_gpt *m, int capacity);
/* The same at a precision. ATTN_BF16 is bf16 inference: the cache keeps its keys
 * and values in bfloat16 (half the memory) and rounds m's Linear weights and
 * lm_head.weight to bfloat16 once, here (the weights as they are now; a cache
 * made before they change keeps the old ones). Its passes multiply those by
 * their inputs rounded to bfloat16, with float32 products and sums, and attend
 * through attn_sdpa_bf16_forward's kernel (q rounded too; scores, softmax and sums
 * float32); the embeddings, LayerNorms, GELU, the residual stream and the logits
 * stay float32. Its logits differ from float32's by the roundings (the bound:
 * tests/unit/test_gpt_bf16.c). Fails on a value that is no attn_precision. */
ATTN_API attn_status attn_gpt_cache_create_at(attn_gpt_cache **out, const attn_gpt *m,
                                              int capacity, attn_precision precision);
ATTN_API void attn_gpt_cache_free(attn_gpt_cache *c);
ATTN_API int attn_gpt_cache_length(const attn_gpt_cache *c);
/* The bytes of the keys and values of m's cache of `capacity` tokens at
 * `precision`: 2 x layers x Hkv x capacity x hd values of 4 bytes (float32) or
 * 2 (bf16; its values are stored in pairs of rows, each row padded to a multiple
 * of 16 values, which this count leaves out); 0 for NULL m. */
ATTN_API size_t attn_gpt_cache_bytes(const attn_gpt *m, int capacity, attn_precision precision);
/* Empties it (length 0). */
ATTN_API void attn_gpt_cache_reset(attn_gpt_cache *c);

/* Runs n tokens at positions length .. length + n - 1, appending their keys and
 * values -> logits: (n, V) (may be NULL). Fails, changing nothing, if the cache
 * lacks room ("context of 65 tokens exceeds the cache's 64") or an id is bad. The
 * logits equal attn_gpt_forward's over the whole context up to rounding. */
ATTN_API attn_status attn_gpt_cache_forward(attn_gpt *m, attn_gpt_cache *c, float *logits,
                                            const int32_t *ids, int n);

/* ---- sampling ------------------------------------------------------------------------------ */
typedef struct attn_sampling {
    float temperature; /* 0 = greedy (argmax, the first on ties); else > 0 */
    int top_k;         /* keep the k most likely tokens; 0 = all */
    float top_p;       /* keep the smallest set whose probability reaches top_p
                        * (nucleus); in (0, 1], 1 = all */
} attn_sampling;

/* logits: (V) -> *token, drawn with the uniform number u in [0, 1) from
 * softmax(logits / temperature) restricted by top_k, then top_p (renormalised).
 * The tokens are ranked by probability, ties by id; the token drawn is the first
 * in that order at which the running sum of the kept probabilities passes u times
 * their total (so a small u draws the most likely token). Infinite logits make a
 * uniform draw among the +inf ones. Fails on a bad option (naming it), or with
 * ATTN_ERR_NUMERIC on a NaN logit (naming its id) or when every logit is -inf. */
ATTN_API attn_status attn_sample(int32_t *token, const float *logits, int V, const attn_sampling *s,
                                 float u);

/* ---- generation ----------------------------------------------------------------------------
 * Continues prompt: (n_prompt >= 1) by n_new tokens -> out: (n_new). Token i is
 * drawn with attn_uniform_at(seed, i). With use_cache the prompt runs once and
 * each new token once; without, every new token reruns the whole context (an
 * inference pass over all of it, nothing kept from one token's pass to the
 * next). When the context would exceed
 * block_size, the oldest tokens are dropped: uncached, the context is always the
 * last block_size tokens (nanoGPT's crop); cached, the last block_size / 2 are kept
 * and run again, so the cache refills without a pass per token.
 * on_token, if not NULL, is called with each new token as it is drawn; returning
 * false stops generation early (*produced tells how many were made). */
typedef bool (*attn_token_callback)(int32_t token, void *user);

typedef struct attn_generate_options {
    int n_new;
    attn_sampling sampling;
    uint64_t seed;
    bool use_cache;
    attn_token_callback on_token;
    void *user;
    /* With use_cache, the cache's precision (attn_gpt_cache_create_at): ATTN_FLOAT32
     * (0, the default) or ATTN_BF16; without the cache only ATTN_FLOAT32. */
    attn_precision precision;
} attn_generate_options;

ATTN_API attn_status attn_gpt_generate(attn_gpt *m, int32_t *out, int *produced,
                                       const int32_t *prompt, int n_prompt,
                                       const attn_generate_options *opt);

/* ---- recording attention ---------------------------------------------------------------
 * Runs ids: (n), 1 <= n <= block_size, through the model from position 0 and adds
 * to `record` one self-attention map per block, "transformer.h.<l>.attn", (H, n, n):
 * the causal weights every query head gave every earlier token (0 above the
 * diagonal and outside the window). logits: (n, V) or NULL, bit for bit what
 * attn_gpt_cache_forward gives for the same ids on an empty cache. The caller
 * sets the record's tokens.
 * options (NULL records the weights alone) may ask for every map's q and k
 * (H, n, hd) after RoPE, and its gradient d log p / d weights (attn/capture.h),
 * log p the log-probability of token options->gradient_step (1 .. n - 1) given
 * the tokens before it, or with ATTN_EXPLAIN_ALL the sum over tokens 1 .. n - 1
 * (the context's log-likelihood); n must then be at least 2. These come from a
 * teacher-forced training pass with dropout off, after the recording run, and
 * leave the logits and the parameters' gradients as they were; that pass is the
 * model's last forward, so a forward still waiting for its attn_gpt_backward
 * must not be pending (its backward then fails, saying so). */
ATTN_API attn_status attn_gpt_record(attn_gpt *m, const int32_t *ids, int n, float *logits,
                                     attn_record *record, const attn_record_options *options);

/* The output distributions of a teacher-forced pass over ids: (n), 2 <= n <=
 * block_size, dropout off, under the intervention iv (attn/capture.h; NULL or
 * ATTN_INTERVENE_NONE: none) -> probs: (n - 1, V), row t the distribution of
 * token t + 1 given tokens 0 .. t. iv->map is the block l of the map
 * "transformer.h.<l>.attn". ATTN_INTERVENE_ERASE deletes token iv->token and
 * runs the n - 1 others: row t is then the distribution of token t + 1 given
 * tokens 0 .. t without it (the same as without the erasure where t < token,
 * up to rounding), except that row 0 with token 0 erased has no context left
 * and is all zeros. Like attn_gpt_record's extras, the pass is the model's last
 * forward. */
ATTN_API attn_status attn_gpt_intervene(attn_gpt *m, float *probs, const int32_t *ids, int n,
                                        const attn_intervention *iv);

#ifdef __cplusplus
}
#endif
#endif
