/* Conformance kind "record": what a model records beside its attention weights
 * (attn/capture.h), q, k and d log p / d weights, for the GPT (module "gpt"), the
 * seq2seq transformer (module "seq2seq") and the RNN decoders (module "rnn").
 *
 * gpt: the config of kind "gpt" (conform_gpt.c) without batch and training, ids
 * (T) I32, and "step", the explained token (-1: all). attn_gpt_record runs with
 * q, k and gradients; its logits must be the bits of a plain cache run, and its
 * weights those of a record without extras.
 * seq2seq: the config of the transformer's module "seq2seq"
 * (conform_transformer.c); rnn: the config of kind "seq2seq" (soft attention,
 * conform_seq2seq.c), q and k for Luong's decoders only. Both read src (src_len)
 * I32 and "step", the explained output step (-1: all; past the output's steps,
 * its last step, which the driver writes as the output "step").
 * attn_seq2seq_decode_record decodes greedily (max_len max_tgt_len); its output
 * must be that of attn_seq2seq_decode, and its weights those of a record without
 * extras.
 *
 * Outputs: per map i of the record, weights.<i>, q.<i>, k.<i> (when recorded),
 * gradient.<i>; for seq2seq and rnn also out (steps) as floats, the decoded
 * tokens then EOS if it ended the output (the targets the gradient explains),
 * and step (1), the step explained.
 * Interventions over the same tokens (attn_gpt_intervene, attn_seq2seq_intervene):
 * probs.none, the output distributions (steps, V) of the teacher-forced pass;
 * probs.uniform, with map "edit_map"'s weights uniform (head "edit_head", -1 for
 * all); probs.erase, with input token "erase" deleted (none when it is -1);
 * probs.permute, with its weights permuted (seed "edit_seed"), and permutation
 * (heads x rows, cols): for each row of the map, the key whose weight the
 * permutation puts at each key (attn_weights_edit_row on the row's key indices,
 * over the keys the row sees: a causal map's up to the row, within a GPT's
 * window; identity in the heads not edited). The GPT's steps are its n - 1 rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conform.h"
#include "conform_kinds.h"

static attn_gpt *gpt;
static attn_seq2seq *seq2seq;
static attn_gpt_cache *cache;
static attn_record record, plain_record;

static void free_all(void)
{
    attn_record_free(&record);
    attn_record_free(&plain_record);
    attn_gpt_cache_free(cache);
    attn_gpt_free(gpt);
    attn_seq2seq_free(seq2seq);
}

static const char *numbered(const char *what, int i)
{
    char *name = alloc(strlen(what) + 16, 1);
    sprintf(name, "%s.%d", what, i);
    return name;
}

/* Every map's parts as outputs (q and k if asked for); the weights must be
 * plain's bit for bit. */
static void add_maps(bool qk)
{
    if (record.n_maps != plain_record.n_maps)
        die("%d maps with extras, %d without", record.n_maps, plain_record.n_maps);
    for (int i = 0; i < record.n_maps; i++) {
        const attn_attention_map *m = &record.maps[i];
        const size_t count = (size_t)m->heads * m->rows * m->cols;
        if (memcmp(m->weights, plain_record.maps[i].weights, count * sizeof(float)) != 0)
            die("map '%s': the weights differ with q, k and gradients recorded", m->name);
        if (m->gradient == NULL || (m->q == NULL) != !qk)
            die("map '%s' lacks its gradient, or has q and k %s", m->name,
                qk ? "not" : "where none were asked for");
        const int64_t w[3] = {m->heads, m->rows, m->cols}, q[3] = {m->heads, m->rows, m->head_dim},
                      k[3] = {m->heads, m->cols, m->head_dim};
        add_output(numbered("weights", i), m->weights, 3, w);
        if (qk) add_output(numbered("q", i), m->q, 3, q);
        if (qk) add_output(numbered("k", i), m->k, 3, k);
        add_output(numbered("gradient", i), m->gradient, 3, w);
    }
}

/* The permutation the edit makes of each row of the record's map m (a GPT's
 * window: window, 0 for none) -> (heads x rows, cols) as floats. */
static void add_permutation(const attn_attention_map *m, const attn_intervention *iv, int window)
{
    const bool causal = m->kind == ATTN_MAP_SELF && (gpt != NULL || m->over_queries);
    const attn_weights_edit edit = {ATTN_EDIT_PERMUTE, iv->head, iv->seed, 0};
    float *perm = alloc((size_t)m->heads * m->rows * m->cols, sizeof *perm);
    int *seen = alloc((size_t)m->cols, sizeof *seen);
    for (int h = 0; h < m->heads; h++)
        for (int i = 0; i < m->rows; i++) {
            float *row = perm + ((size_t)h * m->rows + i) * m->cols;
            int n_seen = 0;
            for (int j = 0; j < m->cols; j++) {
                row[j] = (float)j;
                if (!causal || (j <= i && (window == 0 || i - j < window))) seen[n_seen++] = j;
            }
            if (iv->head < 0 || iv->head == h)
                attn_weights_edit_row(row, seen, n_seen, &edit, (int64_t)h * m->rows + i);
        }
    const int64_t shape[2] = {(int64_t)m->heads * m->rows, m->cols};
    add_output("permutation", perm, 2, shape);
}

/* probs.none, probs.uniform, probs.permute and probs.erase (attn_gpt_intervene
 * when gpt is set, else attn_seq2seq_intervene over src and outputs); steps x V
 * each; and the permutation. */
static void add_interventions(const int32_t *src, int n_in, const int32_t *outputs, int steps,
                              int V, int window)
{
    const attn_intervention none = {.kind = ATTN_INTERVENE_NONE},
                            uniform = {.kind = ATTN_INTERVENE_UNIFORM,
                                       .map = meta_int("edit_map"),
                                       .head = meta_int("edit_head")},
                            permute = {.kind = ATTN_INTERVENE_PERMUTE,
                                       .map = meta_int("edit_map"),
                                       .head = meta_int("edit_head"),
                                       .seed = (uint64_t)meta_int("edit_seed")},
                            erase = {.kind = ATTN_INTERVENE_ERASE, .token = meta_int("erase")};
    const attn_intervention *ivs[4] = {&none, &uniform, &permute, &erase};
    const char *names[4] = {"probs.none", "probs.uniform", "probs.permute", "probs.erase"};
    const int64_t shape[2] = {steps, V};
    add_permutation(&record.maps[permute.map], &permute, window);
    for (int k = 0; k < 4; k++) {
        if (ivs[k] == &erase && erase.token < 0) continue;
        float *probs = alloc((size_t)steps * V, sizeof *probs);
        if (gpt) check(attn_gpt_intervene(gpt, probs, src, n_in, ivs[k]), names[k]);
        else check(attn_seq2seq_intervene(seq2seq, probs, src, n_in, outputs, steps, ivs[k]),
                   names[k]);
        add_output(names[k], probs, 2, shape);
    }
}

static void run_gpt(const char *dir, const attn_record_options *opt)
{
    attn_gpt_config cfg = conform_gpt_config();
    const int T = meta_int("T"), V = cfg.vocab_size;
    check(attn_gpt_create(&gpt, &cfg, 12345), "attn_gpt_create");
    check(attn_params_load(attn_gpt_params(gpt), join(dir, "weights.safetensors")),
          "attn_params_load");
    const int64_t shape[1] = {T};
    const int32_t *ids = input_i32("ids", 1, shape);
    float *plain = alloc((size_t)T * V, sizeof *plain), *with = alloc((size_t)T * V, sizeof *with);
    check(attn_gpt_cache_create(&cache, gpt, T), "attn_gpt_cache_create");
    check(attn_gpt_cache_forward(gpt, cache, plain, ids, T), "attn_gpt_cache_forward");
    check(attn_gpt_record(gpt, ids, T, NULL, &plain_record, NULL), "attn_gpt_record");
    check(attn_gpt_record(gpt, ids, T, with, &record, opt), "attn_gpt_record with extras");
    if (memcmp(plain, with, (size_t)T * V * sizeof *plain) != 0)
        die("the logits differ with q, k and gradients recorded");
    add_maps(opt->qk);
    add_interventions(ids, T, NULL, T - 1, V, cfg.window);
}

static void run_seq2seq(const char *dir, const attn_seq2seq_config *config,
                        attn_record_options *opt)
{
    const attn_seq2seq_config cfg = *config;
    check(attn_seq2seq_create(&seq2seq, &cfg, 12345), "attn_seq2seq_create");
    check(attn_params_load(attn_seq2seq_params(seq2seq), join(dir, "weights.safetensors")),
          "attn_params_load");
    const int S = meta_int("src_len"), max_len = cfg.max_tgt_len;
    const int64_t shape[1] = {S};
    const int32_t *src = input_i32("src", 1, shape);
    const attn_decode_options decode = {.beam = 1, .max_len = max_len};
    int32_t *plain = alloc((size_t)max_len, sizeof *plain), *with = alloc((size_t)max_len, 4);
    int32_t plain_len, with_len;
    const int32_t length = S;
    check(attn_seq2seq_decode(seq2seq, plain, &plain_len, NULL, src, &length, 1, S, &decode),
          "attn_seq2seq_decode");
    const int steps = plain_len < max_len ? plain_len + 1 : max_len;
    if (opt->gradient_step >= steps) opt->gradient_step = steps - 1;
    check(attn_seq2seq_decode_record(seq2seq, with, &with_len, src, S, S, &decode, &plain_record,
                                     NULL),
          "attn_seq2seq_decode_record");
    check(attn_seq2seq_decode_record(seq2seq, with, &with_len, src, S, S, &decode, &record, opt),
          "attn_seq2seq_decode_record with extras");
    if (with_len != plain_len || memcmp(plain, with, (size_t)plain_len * sizeof *plain) != 0)
        die("the decoded output differs with q, k and gradients recorded");
    float *out = alloc((size_t)steps, sizeof *out);
    for (int t = 0; t < steps; t++) out[t] = t < with_len ? (float)with[t] : ATTN_TOKEN_EOS;
    const int64_t out_shape[1] = {steps};
    add_output("out", out, 1, out_shape);
    float *step = alloc(1, sizeof *step);
    *step = (float)opt->gradient_step;
    const int64_t one[1] = {1};
    add_output("step", step, 1, one);
    add_maps(opt->qk);
    int32_t *outputs = alloc((size_t)steps, sizeof *outputs);
    for (int t = 0; t < steps; t++) outputs[t] = (int32_t)out[t];
    add_interventions(src, S, outputs, steps, cfg.tgt_vocab, 0);
}

void conform_record(const char *dir)
{
    atexit(free_all);
    attn_record_init(&record, "", "");
    attn_record_init(&plain_record, "", "");
    attn_record_options opt = {.qk = true, .gradient = true, .gradient_step = meta_int("step")};
    const char *module = meta_string("module");
    if (strcmp(module, "gpt") == 0)
        run_gpt(dir, &opt);
    else if (strcmp(module, "seq2seq") == 0) {
        const attn_seq2seq_config cfg = conform_seq2seq_transformer_config();
        run_seq2seq(dir, &cfg, &opt);
    } else if (strcmp(module, "rnn") == 0) {
        const attn_seq2seq_config cfg = conform_seq2seq_rnn_config();
        opt.qk = strstr(meta_string("arch"), "luong") != NULL;
        run_seq2seq(dir, &cfg, &opt);
    } else {
        die("module '%s' is not gpt, seq2seq or rnn", module);
    }
    if (record.gradient_step != opt.gradient_step)
        die("the record's gradient_step is %d, not %d", record.gradient_step, opt.gradient_step);
    write_outputs(dir);
}
