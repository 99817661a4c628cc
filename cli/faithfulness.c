/* attn analyze --model: is the attention the records show an explanation of the
 * outputs (Jain and Wallace, "Attention is not Explanation", NAACL 2019;
 * Wiegreffe and Pinter, "Attention is not not Explanation", EMNLP 2019)?
 *
 * For each record the model runs teacher-forced over the record's tokens
 * (attn_seq2seq_intervene, attn_gpt_intervene):
 *  - once as it is, the output distributions p_t at every output step t;
 *  - with one site's weights made uniform, and permuted within each row (seeds
 *    1 .. permutations), every head at once: the total-variation distance
 *    (1/2) sum_v |p_t(v) - p'_t(v)| and whether the argmax changes, per step;
 *  - with each input token i deleted (leave-one-out erasure): its importance to
 *    step t, log p_t(y_t) - log p_t(y_t | i erased), y_t the recorded output.
 * Then Kendall's tau-b, per output step, between the erasure's importance and
 * each explanation the record gives of that step over the same inputs:
 *  - encoder-decoders: each cross-attention map averaged over its heads, its
 *    gradient-weighted attention (records with gradients) and, for the
 *    transformer, its rollout through the encoder (the heads' mean times the
 *    encoder's self-attention rollout, attn_rollout: what each source character
 *    contributes to the encoder states the step reads);
 *  - language models: the last layer's map averaged over its heads, the rollout
 *    and the flow over all layers (attn_rollout, attn_attention_flow) and the
 *    gradient-weighted relevance (attn_gradient_rollout), output step t being
 *    the map's row t (which predicts token t + 1) over tokens 0 .. t; step 0,
 *    with one token to rank, has no tau.
 * For dates, beside the attention's alignment, that of each explanation and of
 * the erasure: the share of output digits whose most important source character
 * lies in the right field. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
#include "cli.h"

/* The change an intervention makes at a site, over the output steps of the
 * records (and the permutations). */
typedef struct change {
    int64_t steps, changed; /* steps counted; those whose argmax changed */
    double tvd;             /* the sum of their total-variation distances */
} change;

typedef struct site_stats {
    char name[ATTN_RECORD_NAME_MAX];
    change uniform, permuted;
} site_stats;

/* How an explanation ranks the inputs against erasure: the sum of its taus over
 * the steps that have one, and for dates its alignment. */
typedef struct agreement {
    char what[24]; /* "attention", "rollout", "flow", "gradient-weighted" */
    char map[ATTN_RECORD_NAME_MAX];
    double tau;
    int64_t tau_steps;
    int64_t digits[ANALYZE_FIELDS], aligned[ANALYZE_FIELDS];
} agreement;

enum { AGREEMENTS_MAX = 3 * ATTN_RECORD_MAPS_MAX + 4 };

struct faithfulness {
    const char *path;
    bool gpt, json;
    cli_model seq;
    cli_gpt_model lm;
    int permutations, records;
    site_stats sites[ATTN_RECORD_MAPS_MAX];
    int n_sites;
    agreement agree[AGREEMENTS_MAX];
    int n_agree;
    int64_t erasure_digits[ANALYZE_FIELDS], erasure_aligned[ANALYZE_FIELDS];
    /* the report of each record, printed before (text) or inside (JSON) the pool */
    FILE *each;
    char *each_text;
    size_t each_size;
};

/* One record's run: the ids, the distributions and the erasure's importance. */
typedef struct work {
    int n_in;       /* input tokens: source characters, or the context's tokens */
    int steps, V;   /* output steps (n_queries, or n_in - 1 for a GPT) */
    int32_t *in;    /* (n_in) */
    int32_t *out;   /* (steps): the recorded output of each step */
    float *base;    /* (steps, V) the distributions without intervention */
    float *probs;   /* (steps, V) under one */
    float *importance; /* (steps, n_in), 0 where undefined */
    float *scratch;    /* (n_in, n_in): an explanation */
    float *rollout;    /* (n_in, n_in) or an encoder's (S, S) */
    double *x, *y;     /* (n_in): one step's two rankings */
} work;

static int out_of_memory(void)
{
    cli_message(stderr, "attn analyze: out of memory\n");
    return EXIT_RUNTIME;
}

faithfulness *faithfulness_open(const char *path, int permutations, bool json)
{
    faithfulness *f = calloc(1, sizeof *f);
    if (f == NULL) {
        out_of_memory();
        return NULL;
    }
    f->path = path;
    f->permutations = permutations;
    f->json = json;
    f->gpt = cli_is_gpt_file(path);
    f->each = open_memstream(&f->each_text, &f->each_size);
    int status = f->each == NULL ? out_of_memory()
                 : f->gpt        ? cli_gpt_load(path, &f->lm, NULL)
                                 : cli_model_load(path, &f->seq, NULL);
    if (status != EXIT_OK) {
        if (f->each) fclose(f->each);
        free(f->each_text);
        free(f);
        return NULL;
    }
    return f;
}

void faithfulness_free(faithfulness *f)
{
    if (f == NULL) return;
    if (f->gpt) cli_gpt_free(&f->lm);
    else cli_model_free(&f->seq);
    if (f->each) fclose(f->each);
    free(f->each_text);
    free(f);
}

/* ---- the record's tokens as the model's ids ---- */

/* The model's name and task, as a record of it says them. */
static void model_names(const faithfulness *f, const char **model, const char **task)
{
    if (f->gpt) {
        *model = "gpt";
        *task = "text";
        return;
    }
    *model = attn_seq2seq_arch_name(attn_seq2seq_get_config(f->seq.model)->arch);
    *task = attn_task_name(f->seq.task.kind);
}

/* A character label of a sequence model's vocabulary -> *id; false if none. */
static bool char_id(const attn_vocab *v, const char *label, int32_t *id)
{
    int len = 0;
    return attn_vocab_encode(v, label, id, 1, &len) == ATTN_OK && len == 1;
}

/* A GPT record's label (cmd_generate.c's token_label) -> *id; false if none. */
static bool text_id(const attn_text_vocab *v, const char *label, int32_t *id)
{
    unsigned byte;
    char end;
    if (v->unit == ATTN_TEXT_BYTES && sscanf(label, "<0x%2X>%c", &byte, &end) == 1 &&
        strlen(label) == 6) {
        *id = (int32_t)byte;
        return true;
    }
    if (v->unit == ATTN_TEXT_CHARS && strcmp(label, "<U+0000>") == 0) {
        for (int i = 0; i < v->size; i++)
            if (v->chars[i] == 0) return (*id = i), true;
        return false;
    }
    size_t count = 0;
    int32_t ids[2];
    return attn_text_encode(v, label, strlen(label), ids, 2, &count) == ATTN_OK && count == 1 &&
           ((*id = ids[0]), true);
}

static int not_in_vocab(const char *path, const char *what, int i, const char *label,
                        const faithfulness *f)
{
    cli_message(stderr,
                "attn analyze: %s: %s %d '%s' is not in the vocabulary of %s: give the model the "
                "record came from\n",
                path, what, i, label, f->path);
    return EXIT_RUNTIME;
}

/* w->in and w->out from the record's keys and queries. */
static int record_ids(const faithfulness *f, const attn_record *r, const char *path, work *w)
{
    if (f->gpt) {
        for (int i = 0; i < w->n_in; i++)
            if (!text_id(&f->lm.vocab, r->keys[i], &w->in[i]))
                return not_in_vocab(path, "token", i, r->keys[i], f);
        for (int t = 0; t < w->steps; t++) w->out[t] = w->in[t + 1];
        return EXIT_OK;
    }
    for (int i = 0; i < w->n_in; i++)
        if (!char_id(&f->seq.task.src_vocab, r->keys[i], &w->in[i]))
            return not_in_vocab(path, "source character", i, r->keys[i], f);
    for (int t = 0; t < w->steps; t++) {
        if (t == w->steps - 1 && strcmp(r->queries[t], "</s>") == 0) w->out[t] = ATTN_TOKEN_EOS;
        else if (!char_id(&f->seq.task.tgt_vocab, r->queries[t], &w->out[t]))
            return not_in_vocab(path, "output character", t, r->queries[t], f);
    }
    return EXIT_OK;
}

/* ---- is it the model's record? ---- */

/* The model records the record's input again: its maps must be the record's
 * (names, shapes and weights up to 1e-4, which allows a record made on another
 * instruction set), and an encoder-decoder must decode the same output. */
static int check_recorded(faithfulness *f, const attn_record *r, const char *path, work *w)
{
    attn_record again;
    attn_record_init(&again, "", "");
    attn_status s;
    int32_t *decoded = NULL, decoded_len = 0;
    const char *mismatch = NULL;
    if (f->gpt) {
        s = attn_gpt_record(f->lm.model, w->in, w->n_in, NULL, &again, NULL);
    } else {
        const attn_seq2seq_config *c = attn_seq2seq_get_config(f->seq.model);
        const attn_decode_options opt = {.beam = 1, .max_len = c->max_tgt_len};
        int32_t *src = calloc((size_t)c->max_src_len, sizeof *src);
        decoded = malloc((size_t)c->max_tgt_len * sizeof *decoded);
        if (src == NULL || decoded == NULL) {
            free(src);
            free(decoded);
            return out_of_memory();
        }
        if (w->n_in > c->max_src_len) {
            mismatch = "its source is longer than the model takes";
            s = ATTN_OK;
        } else {
            memcpy(src, w->in, (size_t)w->n_in * sizeof *src);
            s = attn_seq2seq_decode_record(f->seq.model, decoded, &decoded_len, src,
                                           c->max_src_len, w->n_in, &opt, &again, NULL);
        }
        free(src);
        const int steps = decoded_len < opt.max_len ? decoded_len + 1 : opt.max_len;
        if (mismatch == NULL && s == ATTN_OK &&
            (steps != w->steps ||
             memcmp(decoded, w->out, (size_t)decoded_len * sizeof *decoded) != 0))
            mismatch = "the model decodes its source to another output";
    }
    free(decoded);
    if (s != ATTN_OK) {
        attn_record_free(&again);
        return cli_fail("analyze");
    }
    float worst = 0.0f;
    const char *worst_map = "";
    if (mismatch == NULL && again.n_maps != r->n_maps) mismatch = "its maps are not the model's";
    for (int k = 0; mismatch == NULL && k < r->n_maps; k++) {
        const attn_attention_map *a = &r->maps[k], *b = &again.maps[k];
        if (strcmp(a->name, b->name) != 0 || a->heads != b->heads || a->rows != b->rows ||
            a->cols != b->cols) {
            mismatch = "its maps are not the model's";
            break;
        }
        for (size_t i = 0; i < (size_t)a->heads * a->rows * a->cols; i++)
            if (fabsf(a->weights[i] - b->weights[i]) > worst) {
                worst = fabsf(a->weights[i] - b->weights[i]);
                worst_map = a->name;
            }
    }
    attn_record_free(&again);
    if (mismatch == NULL && worst > 1e-4f)
        cli_message(stderr,
                    "attn analyze: %s was not recorded by %s: the weights of %s differ from the "
                    "model's by %.3g\n",
                    path, f->path, worst_map, (double)worst);
    else if (mismatch != NULL)
        cli_message(stderr, "attn analyze: %s was not recorded by %s: %s\n", path, f->path,
                    mismatch);
    return mismatch == NULL && worst <= 1e-4f ? EXIT_OK : EXIT_RUNTIME;
}

/* ---- the passes ---- */

static int probe(faithfulness *f, work *w, const attn_intervention *iv, float *probs)
{
    attn_status s = f->gpt ? attn_gpt_intervene(f->lm.model, probs, w->in, w->n_in, iv)
                           : attn_seq2seq_intervene(f->seq.model, probs, w->in, w->n_in, w->out,
                                                    w->steps, iv);
    return s == ATTN_OK ? EXIT_OK : cli_fail("analyze");
}

static int argmax(const float *p, int V)
{
    int best = 0;
    for (int v = 1; v < V; v++)
        if (p[v] > p[best]) best = v;
    return best;
}

/* Adds what w->probs changed from w->base at every step to c. */
static void add_change(change *c, const work *w)
{
    for (int t = 0; t < w->steps; t++) {
        const float *p = w->base + (size_t)t * w->V, *q = w->probs + (size_t)t * w->V;
        double sum = 0.0;
        for (int v = 0; v < w->V; v++) sum += fabs((double)p[v] - q[v]);
        c->tvd += 0.5 * sum;
        c->changed += argmax(p, w->V) != argmax(q, w->V);
        c->steps++;
    }
}

static site_stats *site_of(faithfulness *f, const char *name)
{
    for (int k = 0; k < f->n_sites; k++)
        if (strcmp(f->sites[k].name, name) == 0) return &f->sites[k];
    site_stats *s = &f->sites[f->n_sites++];
    *s = (site_stats){0};
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static void print_change_json(FILE *out, const char *what, const change *c)
{
    fprintf(out, ", \"%s_tvd\": ", what);
    analyze_print_json_number(out, analyze_ratio(c->tvd, (double)c->steps));
    fprintf(out, ", \"%s_changed\": ", what);
    analyze_print_json_number(out, analyze_ratio((double)c->changed, (double)c->steps));
}

static void print_change_text(FILE *out, const change *c)
{
    analyze_print_text_number(out, analyze_ratio(c->tvd, (double)c->steps), 9, 4);
    analyze_print_text_number(out, 100.0 * analyze_ratio((double)c->changed, (double)c->steps), 8,
                              1);
    fprintf(out, "%%");
}

static void print_site(const faithfulness *f, FILE *out, const char *name, const change *uniform,
                       const change *permuted, bool first)
{
    if (f->json) {
        fprintf(out, "%s{\"map\": ", first ? "" : ", ");
        cli_json_string(out, name);
        fprintf(out, ", \"steps\": %lld", (long long)uniform->steps);
        print_change_json(out, "uniform", uniform);
        print_change_json(out, "permuted", permuted);
        fprintf(out, "}");
        return;
    }
    fprintf(out, "  %-44s %7lld", name, (long long)uniform->steps);
    print_change_text(out, uniform);
    print_change_text(out, permuted);
    fprintf(out, "\n");
}

static void print_sites_head(FILE *out)
{
    fprintf(out, "  %-44s %7s %9s %9s %9s %9s\n", "site (every head)", "steps", "uniform", "argmax",
            "permuted", "argmax");
    fprintf(out, "  %-44s %7s %9s %9s %9s %9s\n", "", "", "TVD", "changed", "TVD", "changed");
}

/* Every soft site made uniform, then permuted, against w->base. */
static int site_changes(faithfulness *f, const attn_record *r, work *w, FILE *out)
{
    if (!f->json) print_sites_head(out);
    bool first = true;
    for (int k = 0; k < r->n_maps; k++) {
        const attn_attention_map *m = &r->maps[k];
        if (m->hard) continue; /* one position chosen: nothing to permute */
        change uniform = {0}, permuted = {0};
        const attn_intervention flat = {.kind = ATTN_INTERVENE_UNIFORM, .map = k, .head = -1};
        int status = probe(f, w, &flat, w->probs);
        if (status) return status;
        add_change(&uniform, w);
        for (int p = 0; p < f->permutations; p++) {
            const attn_intervention shuffled = {.kind = ATTN_INTERVENE_PERMUTE, .map = k,
                                                .head = -1, .seed = (uint64_t)p + 1};
            if ((status = probe(f, w, &shuffled, w->probs))) return status;
            add_change(&permuted, w);
        }
        site_stats *s = site_of(f, m->name);
        s->uniform.steps += uniform.steps;
        s->uniform.changed += uniform.changed;
        s->uniform.tvd += uniform.tvd;
        s->permuted.steps += permuted.steps;
        s->permuted.changed += permuted.changed;
        s->permuted.tvd += permuted.tvd;
        /* per record, the permutations' mean per step */
        print_site(f, out, m->name, &uniform, &permuted, first);
        first = false;
    }
    return EXIT_OK;
}

/* The inputs output step t ranks: the whole source, or a GPT's tokens 0 .. t. */
static int inputs_of(const faithfulness *f, const work *w, int t)
{
    return f->gpt ? t + 1 : w->n_in;
}

/* Whether erasing input i can change output step t: always for an
 * encoder-decoder; for a GPT when i <= t (token t + 1 is predicted from tokens
 * 0 .. t) and some context is left (t >= 1). */
static bool erasable(const faithfulness *f, int t, int i) { return !f->gpt || (i <= t && t >= 1); }

static double log_prob(const float *p, int32_t y)
{
    return log((double)(p[y] > FLT_TRUE_MIN ? p[y] : FLT_TRUE_MIN));
}

/* w->importance from a pass with each input deleted, where erasable (0
 * elsewhere); a GPT's last token reaches no step. */
static int erasure(faithfulness *f, work *w)
{
    memset(w->importance, 0, (size_t)w->steps * w->n_in * sizeof *w->importance);
    const int erased = f->gpt ? w->n_in - 1 : w->n_in;
    for (int i = 0; i < erased; i++) {
        const attn_intervention iv = {.kind = ATTN_INTERVENE_ERASE, .token = i};
        int status = probe(f, w, &iv, w->probs);
        if (status) return status;
        for (int t = 0; t < w->steps; t++)
            if (erasable(f, t, i))
                w->importance[(size_t)t * w->n_in + i] =
                    (float)(log_prob(w->base + (size_t)t * w->V, w->out[t]) -
                            log_prob(w->probs + (size_t)t * w->V, w->out[t]));
    }
    return EXIT_OK;
}

/* ---- explanations against erasure ---- */

static agreement *agreement_of(faithfulness *f, const char *what, const char *map)
{
    for (int k = 0; k < f->n_agree; k++)
        if (strcmp(f->agree[k].what, what) == 0 && strcmp(f->agree[k].map, map) == 0)
            return &f->agree[k];
    if (f->n_agree == AGREEMENTS_MAX) return NULL;
    agreement *a = &f->agree[f->n_agree++];
    *a = (agreement){0};
    snprintf(a->what, sizeof a->what, "%s", what);
    snprintf(a->map, sizeof a->map, "%s", map);
    return a;
}

/* explanation: (rows, cols) with row t the explanation of output step t over its
 * inputs; ranks it against the erasure step by step, prints the record's mean
 * tau and pools it (and its dates alignment with fields). */
static int compare(faithfulness *f, work *w, const char *what, const char *map,
                   const float *explanation, int cols, const int *fields, FILE *out, bool *first)
{
    agreement *a = agreement_of(f, what, map);
    if (a == NULL) {
        cli_message(stderr, "attn analyze: more than %d explanations to compare\n",
                    AGREEMENTS_MAX);
        return EXIT_RUNTIME;
    }
    double sum = 0.0;
    int64_t steps = 0;
    for (int t = 0; t < w->steps; t++) {
        const int n = inputs_of(f, w, t);
        for (int j = 0; j < n; j++) {
            w->x[j] = explanation[(size_t)t * cols + j];
            w->y[j] = w->importance[(size_t)t * w->n_in + j];
        }
        double tau;
        if (attn_kendall_tau_b(w->x, w->y, n, &tau) != ATTN_OK) return cli_fail("analyze");
        if (isnan(tau)) continue;
        sum += tau;
        steps++;
    }
    a->tau += sum;
    a->tau_steps += steps;
    if (fields != NULL)
        analyze_add_alignment(a->digits, a->aligned, explanation, 1, w->steps, cols, fields);
    if (f->json) {
        fprintf(out, "%s{\"explanation\": \"%s\", \"map\": ", *first ? "" : ", ", what);
        cli_json_string(out, map);
        fprintf(out, ", \"tau\": ");
        analyze_print_json_number(out, analyze_ratio(sum, (double)steps));
        fprintf(out, ", \"steps\": %lld}", (long long)steps);
    } else {
        fprintf(out, "  %-18s %-44s", what, map);
        analyze_print_text_number(out, analyze_ratio(sum, (double)steps), 7, 3);
        fprintf(out, " %7lld\n", (long long)steps);
    }
    *first = false;
    return EXIT_OK;
}

/* out: (rows, cols) = the heads' mean of map m. */
static void head_mean(float *out, const attn_attention_map *m)
{
    const size_t plane = (size_t)m->rows * m->cols;
    for (size_t i = 0; i < plane; i++) {
        double sum = 0.0;
        for (int h = 0; h < m->heads; h++) sum += m->weights[h * plane + i];
        out[i] = (float)(sum / m->heads);
    }
}

/* The maps at `site` in layer order (at most ATTN_RECORD_MAPS_MAX); their count. */
static int layers_at(const attn_record *r, const char *site, const attn_attention_map **layers)
{
    int n = 0;
    for (int k = 0; k < r->n_maps; k++) {
        if (strcmp(r->maps[k].site, site) != 0) continue;
        int at = n++;
        for (; at > 0 && layers[at - 1]->layer > r->maps[k].layer; at--) layers[at] = layers[at - 1];
        layers[at] = &r->maps[k];
    }
    return n;
}

static bool all_have_gradients(const attn_attention_map *const *layers, int n)
{
    for (int l = 0; l < n; l++)
        if (layers[l]->gradient == NULL) return false;
    return true;
}

/* A language model's explanations: the last layer, rollout, flow, relevance. */
static int compare_self(faithfulness *f, const attn_record *r, work *w, FILE *out, bool *first)
{
    const attn_attention_map *layers[ATTN_RECORD_MAPS_MAX];
    const char *site = r->maps[0].site;
    const int L = layers_at(r, site, layers), n = w->n_in;
    head_mean(w->scratch, layers[L - 1]);
    int status = compare(f, w, "attention", layers[L - 1]->name, w->scratch, n, NULL, out, first);
    if (status == EXIT_OK) {
        if (attn_rollout(layers, L, w->scratch) != ATTN_OK) return cli_fail("analyze");
        status = compare(f, w, "rollout", site, w->scratch, n, NULL, out, first);
    }
    if (status == EXIT_OK && n <= ATTN_FLOW_TOKENS_MAX) {
        if (attn_attention_flow(layers, L, w->scratch) != ATTN_OK) return cli_fail("analyze");
        status = compare(f, w, "flow", site, w->scratch, n, NULL, out, first);
    }
    if (status == EXIT_OK && all_have_gradients(layers, L)) {
        if (attn_gradient_rollout(layers, L, w->scratch) != ATTN_OK) return cli_fail("analyze");
        status = compare(f, w, "gradient-weighted", site, w->scratch, n, NULL, out, first);
    }
    return status;
}

/* out: (rows, S) = cross (rows, S) times rollout (S, S). */
static void through(float *out, const float *cross, const float *rollout, int rows, int S)
{
    for (int t = 0; t < rows; t++)
        for (int j = 0; j < S; j++) {
            double sum = 0.0;
            for (int k = 0; k < S; k++)
                sum += (double)cross[(size_t)t * S + k] * rollout[(size_t)k * S + j];
            out[(size_t)t * S + j] = (float)sum;
        }
}

/* An encoder-decoder's explanations of each cross-attention map. */
static int compare_cross(faithfulness *f, const attn_record *r, work *w, const int *fields,
                         FILE *out, bool *first)
{
    const attn_attention_map *encoder[ATTN_RECORD_MAPS_MAX];
    const int E = layers_at(r, "transformer.encoder.layers.*.self_attn", encoder);
    if (E > 0 && attn_rollout(encoder, E, w->rollout) != ATTN_OK) return cli_fail("analyze");
    const int S = w->n_in;
    int status = EXIT_OK;
    for (int k = 0; k < r->n_maps && status == EXIT_OK; k++) {
        const attn_attention_map *m = &r->maps[k];
        if (m->kind != ATTN_MAP_CROSS) continue;
        head_mean(w->scratch, m);
        status = compare(f, w, "attention", m->name, w->scratch, S, fields, out, first);
        if (status == EXIT_OK && E > 0) {
            float *mean = w->scratch + (size_t)w->steps * S;
            memcpy(mean, w->scratch, (size_t)w->steps * S * sizeof *mean);
            through(w->scratch, mean, w->rollout, w->steps, S);
            status = compare(f, w, "rollout", m->name, w->scratch, S, fields, out, first);
        }
        if (status == EXIT_OK && m->gradient != NULL) {
            if (attn_map_gradient_weighted(m, w->scratch) != ATTN_OK) return cli_fail("analyze");
            status = compare(f, w, "gradient-weighted", m->name, w->scratch, S, fields, out, first);
        }
    }
    return status;
}

/* ---- a record ---- */

static void work_free(work *w)
{
    free(w->in);
    free(w->out);
    free(w->base);
    free(w->probs);
    free(w->importance);
    free(w->scratch);
    free(w->rollout);
    free(w->x);
    free(w->y);
}

static int work_alloc(work *w, const faithfulness *f, const attn_record *r)
{
    w->n_in = r->n_keys;
    w->steps = f->gpt ? r->n_keys - 1 : r->n_queries;
    w->V = f->gpt ? attn_gpt_get_config(f->lm.model)->vocab_size
                  : attn_seq2seq_get_config(f->seq.model)->tgt_vocab;
    const size_t n = (size_t)w->n_in, steps = (size_t)w->steps, V = (size_t)w->V;
    /* the scratch holds an explanation and, for cross maps, their mean beside it */
    const size_t square = n * n > 2 * steps * n ? n * n : 2 * steps * n;
    w->in = malloc(n * sizeof *w->in);
    w->out = malloc(steps * sizeof *w->out);
    w->base = malloc(steps * V * sizeof *w->base);
    w->probs = malloc(steps * V * sizeof *w->probs);
    w->importance = malloc(steps * n * sizeof *w->importance);
    w->scratch = malloc(square * sizeof *w->scratch);
    w->rollout = malloc(n * n * sizeof *w->rollout);
    w->x = malloc(n * sizeof *w->x);
    w->y = malloc(n * sizeof *w->y);
    if (w->in && w->out && w->base && w->probs && w->importance && w->scratch && w->rollout &&
        w->x && w->y)
        return EXIT_OK;
    work_free(w);
    return out_of_memory();
}

/* The record is one the model could have written: its name, task and tokens. */
static int check_record(const faithfulness *f, const attn_record *r, const char *path)
{
    const char *model, *task;
    model_names(f, &model, &task);
    if (strcmp(r->model, model) != 0 || strcmp(r->task, task) != 0) {
        cli_message(stderr,
                    "attn analyze: %s is a record of %s on %s, but %s is a %s on %s: give the "
                    "model the records came from\n",
                    path, r->model, r->task, f->path, model, task);
        return EXIT_RUNTIME;
    }
    if (r->n_keys < 2 || (!f->gpt && r->n_queries < 1) || r->n_maps < 1) {
        cli_message(stderr,
                    "attn analyze: %s has %d input and %d output tokens and %d maps: the checks "
                    "run the model on a record's tokens and need two inputs or more, an output "
                    "and the maps\n",
                    path, r->n_keys, r->n_queries, r->n_maps);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

int faithfulness_add(faithfulness *f, const attn_record *r, const char *path, const int *fields)
{
    int status = check_record(f, r, path);
    if (status) return status;
    work w = {0};
    if ((status = work_alloc(&w, f, r))) return status;
    FILE *out = f->each;
    if (f->json) {
        fprintf(out, "%s{\"file\": ", f->records ? ", " : "");
        cli_json_string(out, path);
        fprintf(out, ", \"sites\": [");
    } else {
        fprintf(out, "\nfaithfulness of %s (%d output steps, %d permutations a site):\n", path,
                w.steps, f->permutations);
    }
    bool first = true;
    if ((status = record_ids(f, r, path, &w)) || (status = check_recorded(f, r, path, &w)) ||
        (status = probe(f, &w, NULL, w.base)) || (status = site_changes(f, r, &w, out)) ||
        (status = erasure(f, &w))) {
        work_free(&w);
        return status;
    }
    if (f->json) fprintf(out, "], \"kendall\": [");
    else fprintf(out, "  Kendall tau with erasure    %-44s %7s %7s\n", "map", "mean", "steps");
    status = f->gpt ? compare_self(f, r, &w, out, &first)
                    : compare_cross(f, r, &w, fields, out, &first);
    if (status == EXIT_OK && fields != NULL)
        analyze_add_alignment(f->erasure_digits, f->erasure_aligned, w.importance, 1, w.steps,
                              w.n_in, fields);
    if (f->json) {
        fprintf(out, "], \"erasure\": [");
        for (int t = 0; t < w.steps; t++) {
            fprintf(out, "%s[", t ? ", " : "");
            for (int i = 0; i < w.n_in; i++) {
                if (!erasable(f, t, i)) fprintf(out, "%snull", i ? ", " : "");
                else fprintf(out, "%s%.9g", i ? ", " : "",
                             (double)w.importance[(size_t)t * w.n_in + i]);
            }
            fprintf(out, "]");
        }
        fprintf(out, "]}");
    }
    f->records++;
    work_free(&w);
    return status;
}

/* ---- the pooled report ---- */

static void print_agreement_text(const faithfulness *f, FILE *out)
{
    fprintf(out, "\nKendall tau between leave-one-out erasure and each explanation, mean over "
                 "output steps:\n");
    fprintf(out, "  %-18s %-44s %7s %7s\n", "explanation", "map", "tau", "steps");
    for (int k = 0; k < f->n_agree; k++) {
        const agreement *a = &f->agree[k];
        fprintf(out, "  %-18s %-44s", a->what, a->map);
        analyze_print_text_number(out, analyze_ratio(a->tau, (double)a->tau_steps), 7, 3);
        fprintf(out, " %7lld\n", (long long)a->tau_steps);
    }
    if (f->erasure_digits[ATTN_DATE_NONE] == 0) return;
    fprintf(out, "\nalignment with the dates' fields (the most important source character of "
                 "each output digit):\n");
    for (int k = 0; k < f->n_agree; k++) {
        const agreement *a = &f->agree[k];
        char what[ATTN_RECORD_NAME_MAX + 32];
        snprintf(what, sizeof what, "%s of %s", a->what, a->map);
        analyze_print_alignment(out, what, a->aligned, a->digits);
    }
    analyze_print_alignment(out, "leave-one-out erasure", f->erasure_aligned, f->erasure_digits);
}

void faithfulness_print(const faithfulness *f, FILE *out)
{
    if (f->json) {
        fprintf(out, "{\"model\": ");
        cli_json_string(out, f->path);
        fprintf(out, ", \"records\": %d, \"permutations\": %d, \"sites\": [", f->records,
                f->permutations);
        for (int k = 0; k < f->n_sites; k++)
            print_site(f, out, f->sites[k].name, &f->sites[k].uniform, &f->sites[k].permuted,
                       k == 0);
        fprintf(out, "], \"kendall\": [");
        for (int k = 0; k < f->n_agree; k++) {
            const agreement *a = &f->agree[k];
            fprintf(out, "%s{\"explanation\": \"%s\", \"map\": ", k ? ", " : "", a->what);
            cli_json_string(out, a->map);
            fprintf(out, ", \"tau\": ");
            analyze_print_json_number(out, analyze_ratio(a->tau, (double)a->tau_steps));
            fprintf(out, ", \"steps\": %lld, \"alignment\": ", (long long)a->tau_steps);
            if (a->digits[ATTN_DATE_NONE] > 0) analyze_print_alignment_json(out, a->aligned, a->digits);
            else fprintf(out, "null");
            fprintf(out, "}");
        }
        fprintf(out, "], \"erasure_alignment\": ");
        if (f->erasure_digits[ATTN_DATE_NONE] > 0)
            analyze_print_alignment_json(out, f->erasure_aligned, f->erasure_digits);
        else
            fprintf(out, "null");
        fprintf(out, ", \"per_record\": [");
        fflush(f->each);
        fwrite(f->each_text, 1, f->each_size, out);
        fprintf(out, "]}");
        return;
    }
    fflush(f->each);
    fwrite(f->each_text, 1, f->each_size, out);
    fprintf(out, "\nfaithfulness over %d record%s, against %s (%d permutations a site; TVD: the "
                 "mean total-variation distance of the output distributions per step):\n",
            f->records, f->records == 1 ? "" : "s", f->path, f->permutations);
    print_sites_head(out);
    for (int k = 0; k < f->n_sites; k++)
        print_site(f, out, f->sites[k].name, &f->sites[k].uniform, &f->sites[k].permuted, k == 0);
    print_agreement_text(f, out);
}
