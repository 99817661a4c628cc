/* attn analyze: what recorded attention says. For every map and head the mean
 * entropy of its rows; for self-attention over several layers the rollout and the
 * attention flow (Abnar and Zuidema, 2020); for a record with gradients each
 * map's gradient-weighted attention and its relevance across layers (Chefer et
 * al., 2021); for the dates task the alignment of the cross-attention (and of its
 * gradient-weighted attention) with the source's day, month and year. Several
 * records of one model are aggregated: maps of the same name pool their rows, and
 * the alignment its digits. With --model, the faithfulness checks against the
 * model the records came from (faithfulness.c). */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "analyze.h"
#include "cli.h"

/* One map, by name, over every record that has it. */
typedef struct map_stats {
    char name[ATTN_RECORD_NAME_MAX];
    int layer, heads;
    attn_map_kind kind;
    bool hard;
    int records;
    int64_t rows, relative_rows; /* rows counted; those with more than one key to see */
    double *entropy, *relative;  /* (heads): sums over the rows, nats and / log(keys) */
    /* Output digits scored, and those whose strongest key lies in their field: by
     * field, [ATTN_DATE_NONE] holding all fields; by the weights, and by the
     * gradient-weighted attention (records with gradients only). */
    int64_t digits[ANALYZE_FIELDS], aligned[ANALYZE_FIELDS];
    int64_t gradient_digits[ANALYZE_FIELDS], gradient_aligned[ANALYZE_FIELDS];
} map_stats;

/* Text printed into memory, to come after the summary. */
typedef struct section {
    FILE *out;
    char *text;
    size_t size;
    int entries;
} section;

typedef struct analysis {
    bool json;
    bool gradient; /* --gradient: every record must have gradients */
    char model[64], task[32];
    int records;
    map_stats maps[ATTN_RECORD_MAPS_MAX];
    int n_maps;
    /* Dates: records scored, and those left out and why. */
    int scored, not_iso, not_a_date;
    float *scratch; /* (scratch_cap): entropies, rollouts */
    size_t scratch_cap;
    /* The sections printed after the summary: rollout (and flow, relevance), and
     * each map's gradient-weighted attention. */
    section rollout, weighted;
    /* --model: the faithfulness checks against it (faithfulness.c) */
    const char *model_path;
    long permutations;
    faithfulness *faith;
} analysis;

static void print_help(void)
{
    printf("usage: attn analyze [--json] [--gradient] [--model MODEL [--permutations N]]\n"
           "                    FILE...\n"
           "\n"
           "Analyses attention records written by 'attn translate --attention FILE' or\n"
           "'attn generate --attention FILE' (JSON or safetensors). Several records of\n"
           "one model are pooled: each map's rows over all of them.\n"
           "\n"
           "For every map and head: the mean entropy of its rows in nats, and relative\n"
           "to the most a row can have, log of the keys it could see (all keys; for a\n"
           "causal map, one with nothing above its diagonal, the keys up to the query).\n"
           "Rows with a single key to see count towards the entropy only.\n"
           "\n"
           "For self-attention at the same place of several layers: the attention\n"
           "rollout (Abnar and Zuidema, 2020) of each record, as the key each query\n"
           "draws most on through all the layers, and the most of the other keys (the\n"
           "residual connections keep much of each token on itself); and the same by\n"
           "attention flow (the same paper): the most the layers' attention, taken as\n"
           "a flow network, can carry from each query to each key (up to 64 tokens).\n"
           "\n"
           "For the dates task, every cross-attention map's alignment: the share of\n"
           "output digits (of outputs of the form YYYY-MM-DD) whose strongest key is a\n"
           "character of the right field of the source: the year's digits in the year,\n"
           "the month's in the month (digits or name), the day's in the day. A\n"
           "multi-head map is averaged over its heads before taking the strongest key.\n"
           "\n"
           "For a record with gradients ('--attention FILE --gradient'), every map's\n"
           "gradient-weighted attention (Chefer et al., 2021): the heads' mean of the\n"
           "positive part of each weight times d log p / d weight, as each query's top\n"
           "key (and top other key, for self-attention); for self-attention over several\n"
           "layers their relevance, R = I then R <- R + G R layer by layer from the first\n"
           "(G a layer's gradient-weighted attention; Chefer et al.'s rule for\n"
           "self-attention), beside rollout and flow; and for the dates task the\n"
           "alignment of the gradient-weighted cross-attention too.\n"
           "\n"
           "With --model MODEL, the model the records came from (it must record them\n"
           "again: the same maps and weights, and for an encoder-decoder the same output),\n"
           "whether the attention is faithful to what the model computes (Jain and\n"
           "Wallace, 2019; Wiegreffe and Pinter, 2019). The model runs teacher-forced over\n"
           "each record's tokens: as it is; with each soft site's weights (every head)\n"
           "made uniform over the keys each row sees, and permuted among them (N seeded\n"
           "permutations, seeds 1 .. N, default 5), reporting the mean total-variation\n"
           "distance between the output distributions per output step and the share of\n"
           "steps whose most likely token changes; and with each input token deleted\n"
           "(leave-one-out erasure), its importance to each output step, log p(y_t) -\n"
           "log p(y_t | token erased), y_t the recorded output. Kendall's tau-b (ties\n"
           "handled) between that importance and each explanation of the same step, per\n"
           "record and pooled (mean over steps and records): for an encoder-decoder each\n"
           "cross-attention map averaged over its heads, its rollout through the\n"
           "encoder (the transformer: the map times the encoder's rollout) and its\n"
           "gradient-weighted attention; for a language model the last layer's map, the\n"
           "rollout and flow over all layers and the gradient-weighted relevance (output\n"
           "step t: row t over tokens 0 .. t; step 0 has no tau). For dates, each\n"
           "explanation's alignment and the erasure's (the most important source\n"
           "character of each output digit in the right field).\n"
           "\n"
           "JSON: {\"records\", \"model\", \"task\", \"maps\": [{name, layer, kind, hard,\n"
           "heads, records, rows, entropy, relative_entropy, mean_entropy,\n"
           "mean_relative_entropy, alignment}], \"alignment\", \"rollout\",\n"
           "\"gradient_weighted\", \"faithfulness\": null, or {\"model\", \"records\",\n"
           "\"permutations\", \"sites\": [{\"map\", \"steps\", \"uniform_tvd\",\n"
           "\"uniform_changed\", \"permuted_tvd\", \"permuted_changed\"}], \"kendall\":\n"
           "[{\"explanation\": attention|rollout|flow|gradient-weighted, \"map\", \"tau\",\n"
           "\"steps\", \"alignment\"}], \"erasure_alignment\", \"per_record\": [{\"file\",\n"
           "\"sites\", \"kendall\", \"erasure\": (output steps x inputs) the importance,\n"
           "null where an erasure cannot change the step}]}}; an alignment is {all, day,\n"
           "month, year: {digits, aligned, score}}, null where it does not apply. TVD and\n"
           "changed are means over output steps (and permutations), tau over steps.\n"
           "\n"
           "  --json              print one JSON object\n"
           "  --gradient          require gradients: fail on a record without them\n"
           "  --model MODEL       the faithfulness checks against MODEL\n"
           "  --permutations N    permutations per site, 1 .. 100 (default 5)\n"
           "  -h, --help          this help\n");
}

static float *scratch(analysis *a, size_t n)
{
    if (n > a->scratch_cap) {
        float *grown = realloc(a->scratch, n * sizeof *grown);
        if (grown == NULL) return NULL;
        a->scratch = grown;
        a->scratch_cap = n;
    }
    return a->scratch;
}

static int out_of_memory(void)
{
    cli_message(stderr, "attn analyze: out of memory\n");
    return EXIT_RUNTIME;
}

/* The stats of map m, set up on its first sight; NULL (after a message) when m
 * disagrees with the map of that name in an earlier record, or on no memory. */
static map_stats *stats_of(analysis *a, const attn_attention_map *m, const char *path)
{
    for (int k = 0; k < a->n_maps; k++) {
        map_stats *s = &a->maps[k];
        if (strcmp(s->name, m->name) != 0) continue;
        if (s->heads != m->heads || s->kind != m->kind || s->layer != m->layer ||
            s->hard != m->hard) {
            cli_message(stderr,
                        "attn analyze: %s: map %s is %s%s, layer %d, with %d heads; in an earlier "
                        "record %s%s, layer %d, with %d\n",
                        path, m->name, m->hard ? "hard " : "", attn_map_kind_name(m->kind),
                        m->layer, m->heads, s->hard ? "hard " : "", attn_map_kind_name(s->kind),
                        s->layer, s->heads);
            return NULL;
        }
        return s;
    }
    if (a->n_maps == ATTN_RECORD_MAPS_MAX) {
        cli_message(stderr, "attn analyze: %s: the records hold more than %d maps in all\n", path,
                    ATTN_RECORD_MAPS_MAX);
        return NULL;
    }
    map_stats *s = &a->maps[a->n_maps];
    *s = (map_stats){.layer = m->layer, .heads = m->heads, .kind = m->kind, .hard = m->hard};
    snprintf(s->name, sizeof s->name, "%s", m->name);
    s->entropy = calloc((size_t)m->heads, sizeof *s->entropy);
    s->relative = calloc((size_t)m->heads, sizeof *s->relative);
    if (s->entropy == NULL || s->relative == NULL) {
        free(s->entropy);
        free(s->relative);
        out_of_memory();
        return NULL;
    }
    a->n_maps++;
    return s;
}

/* A self-attention map with nothing above its diagonal in any head is causal. */
static bool is_causal(const attn_attention_map *m)
{
    if (m->kind != ATTN_MAP_SELF || m->rows != m->cols) return false;
    for (int h = 0; h < m->heads; h++)
        for (int i = 0; i < m->rows; i++)
            for (int j = i + 1; j < m->cols; j++)
                if (m->weights[((size_t)h * m->rows + i) * m->cols + j] != 0.0f) return false;
    return true;
}

static int add_entropy(analysis *a, map_stats *s, const attn_attention_map *m)
{
    float *entropy = scratch(a, (size_t)m->heads * m->rows);
    if (entropy == NULL) return out_of_memory();
    if (attn_map_entropy(m, entropy) != ATTN_OK) return cli_fail("analyze");
    bool causal = is_causal(m);
    for (int i = 0; i < m->rows; i++) {
        int keys = causal ? i + 1 : m->cols;
        for (int h = 0; h < m->heads; h++) {
            double e = entropy[(size_t)h * m->rows + i];
            s->entropy[h] += e;
            if (keys > 1) s->relative[h] += e / log(keys);
        }
        s->relative_rows += keys > 1;
    }
    s->rows += m->rows;
    s->records++;
    return EXIT_OK;
}

/* The key of row (n) with the most weight, leaving out `skip`; -1 if none has any. */
static int top_key(const float *row, int n, int skip)
{
    int best = -1;
    for (int j = 0; j < n; j++)
        if (j != skip && row[j] > 0.0f && (best < 0 || row[j] > row[best])) best = j;
    return best;
}

static void print_top_json(FILE *out, const float *row, int key, bool first)
{
    if (key < 0) fprintf(out, "%snull", first ? "" : ", ");
    else fprintf(out, "%s[%d, %.6g]", first ? "" : ", ", key, (double)row[key]);
}

/* "i 'token'" in a column of fixed width, so spaces show. */
static void print_token(FILE *out, char *const *tokens, int i)
{
    char quoted[40];
    snprintf(quoted, sizeof quoted, "'%s'", tokens[i]);
    fprintf(out, "  %4d %-7s", i, quoted);
}

static void print_top_text(FILE *out, char *const *tokens, const float *row, int key)
{
    if (key < 0) {
        fprintf(out, "  %4s -", "");
        return;
    }
    print_token(out, tokens, key);
    /* three significant digits: gradient-weighted values of a confident model
     * are far below 0.001 */
    fprintf(out, " %9.3g", (double)row[key]);
}

/* The JSON arrays "<name>top_key" and, for a square matrix (other), "<name>
 * top_other_key" of a relevance matrix: (rows, cols), a row per query. */
static void print_tops_json(FILE *out, const char *name, const float *relevance, int rows,
                            int cols, bool other)
{
    for (int pass = 0; pass < 1 + other; pass++) {
        fprintf(out, "], \"%stop_%skey\": [", name, pass ? "other_" : "");
        for (int i = 0; i < rows; i++) {
            const float *row = relevance + (size_t)i * cols;
            print_top_json(out, row, top_key(row, cols, pass ? i : -1), i == 0);
        }
    }
}

/* The table of a relevance matrix (rows, cols): each query's top key and, for a
 * square one (other), top other key. */
static void print_tops_text(FILE *out, char *const *row_tokens, char *const *col_tokens,
                            const float *relevance, int rows, int cols, bool other)
{
    if (other) fprintf(out, "  %-12s  %-22s%s\n", "query", "top key", "  top other key");
    else fprintf(out, "  %-12s  %s\n", "query", "top key");
    for (int i = 0; i < rows; i++) {
        const float *row = relevance + (size_t)i * cols;
        print_token(out, row_tokens, i);
        print_top_text(out, col_tokens, row, top_key(row, cols, -1));
        if (other) print_top_text(out, col_tokens, row, top_key(row, cols, i));
        fprintf(out, "\n");
    }
}

static void print_tokens_json(FILE *out, char *const *tokens, int n)
{
    for (int i = 0; i < n; i++) {
        fprintf(out, "%s", i ? ", " : "");
        cli_json_string(out, tokens[i]);
    }
}

/* "the whole output" or "output token t". */
static void print_explained(FILE *out, const attn_record *r)
{
    if (r->gradient_step == ATTN_EXPLAIN_ALL) fprintf(out, "log p of the whole output");
    else fprintf(out, "log p of token %d '%s'", r->gradient_step, r->queries[r->gradient_step]);
}

/* Map m's gradient-weighted attention, relevance: (rows, cols), as each query's
 * top key (and top other key for self-attention). */
static void print_gradient_weighted(analysis *a, const char *path, const attn_record *r,
                                    const attn_attention_map *m, const float *relevance)
{
    FILE *out = a->weighted.out;
    char *const *rows = attn_map_row_tokens(r, m), *const *cols = attn_map_col_tokens(r, m);
    const bool self = m->kind == ATTN_MAP_SELF;
    if (a->json) {
        fprintf(out, "%s{\"file\": ", a->weighted.entries ? ", " : "");
        cli_json_string(out, path);
        fprintf(out, ", \"map\": ");
        cli_json_string(out, m->name);
        fprintf(out, ", \"gradient_step\": %d, \"row_tokens\": [", r->gradient_step);
        print_tokens_json(out, rows, m->rows);
        fprintf(out, "], \"col_tokens\": [");
        print_tokens_json(out, cols, m->cols);
        print_tops_json(out, "", relevance, m->rows, m->cols, self);
        fprintf(out, "]}");
    } else {
        fprintf(out, "\ngradient-weighted attention of %s (", m->name);
        print_explained(out, r);
        fprintf(out, "), %s:\n", path);
        print_tops_text(out, rows, cols, relevance, m->rows, m->cols, self);
    }
    a->weighted.entries++;
}

/* For every query the key it draws on most through all the layers, and the most of
 * the others, by rollout, by attention flow (NULL: too many tokens for it) and by
 * the gradient-weighted relevance (NULL: no gradients). tokens: (n). */
static void print_rollout(analysis *a, const char *path, const attn_record *r,
                          char *const *tokens, const char *site, int n_layers,
                          const float *rollout, const float *flow, const float *relevance, int n)
{
    FILE *out = a->rollout.out;
    if (a->json) {
        fprintf(out, "%s{\"file\": ", a->rollout.entries ? ", " : "");
        cli_json_string(out, path);
        fprintf(out, ", \"site\": ");
        cli_json_string(out, site);
        fprintf(out, ", \"layers\": %d, \"tokens\": [", n_layers);
        print_tokens_json(out, tokens, n);
        print_tops_json(out, "", rollout, n, n, true);
        if (flow != NULL) print_tops_json(out, "flow_", flow, n, n, true);
        if (relevance != NULL) print_tops_json(out, "gradient_", relevance, n, n, true);
        fprintf(out, "], \"flow\": %s, \"gradient\": %s}", flow != NULL ? "true" : "false",
                relevance != NULL ? "true" : "false");
    } else {
        fprintf(out, "\nrollout of %s over %d layers, %s:\n", site, n_layers, path);
        print_tops_text(out, tokens, tokens, rollout, n, n, true);
        if (flow != NULL) {
            fprintf(out, "attention flow of %s over %d layers, %s:\n", site, n_layers, path);
            print_tops_text(out, tokens, tokens, flow, n, n, true);
        } else {
            fprintf(out, "attention flow of %s: not computed for %d tokens (at most %d)\n", site,
                    n, ATTN_FLOW_TOKENS_MAX);
        }
        if (relevance != NULL) {
            fprintf(out, "gradient-weighted relevance of %s over %d layers (", site, n_layers);
            print_explained(out, r);
            fprintf(out, "), %s:\n", path);
            print_tops_text(out, tokens, tokens, relevance, n, n, true);
        }
    }
    a->rollout.entries++;
}

static bool has_gradients(const attn_record *r)
{
    for (int k = 0; k < r->n_maps; k++)
        if (r->maps[k].gradient != NULL) return true;
    return false;
}

/* The rollout of every place that holds self-attention in two layers or more. */
static int add_rollouts(analysis *a, const attn_record *r, const char *path)
{
    bool done[ATTN_RECORD_MAPS_MAX] = {false};
    const attn_attention_map *layers[ATTN_RECORD_MAPS_MAX];
    for (int k = 0; k < r->n_maps; k++) {
        const attn_attention_map *m = &r->maps[k];
        if (done[k] || m->kind != ATTN_MAP_SELF) continue;
        int n_layers = 0;
        for (int q = k; q < r->n_maps; q++) {
            const attn_attention_map *o = &r->maps[q];
            if (done[q] || o->kind != ATTN_MAP_SELF || strcmp(m->site, o->site) != 0) continue;
            done[q] = true;
            /* In layer order, for attn_rollout. */
            int at = n_layers++;
            for (; at > 0 && layers[at - 1]->layer > o->layer; at--) layers[at] = layers[at - 1];
            layers[at] = o;
        }
        if (n_layers < 2) continue;
        const int n = m->rows;
        float *rollout = scratch(a, 3 * (size_t)n * n);
        if (rollout == NULL) return out_of_memory();
        float *flow = n <= ATTN_FLOW_TOKENS_MAX ? rollout + (size_t)n * n : NULL;
        bool gradients = true; /* a record may give some maps a gradient and not others */
        for (int l = 0; l < n_layers; l++) gradients &= layers[l]->gradient != NULL;
        float *relevance = gradients ? rollout + 2 * (size_t)n * n : NULL;
        if (attn_rollout(layers, n_layers, rollout) != ATTN_OK ||
            (flow != NULL && attn_attention_flow(layers, n_layers, flow) != ATTN_OK) ||
            (relevance != NULL && attn_gradient_rollout(layers, n_layers, relevance) != ATTN_OK))
            return cli_fail("analyze");
        print_rollout(a, path, r, attn_map_row_tokens(r, m), m->site, n_layers, rollout, flow,
                      relevance, n);
    }
    return EXIT_OK;
}

/* Every map's gradient-weighted attention, printed, and for a scored dates record
 * (fields not NULL) its cross maps' alignment by it. */
static int add_gradient_weighted(analysis *a, const attn_record *r, const char *path,
                                 const int *fields)
{
    for (int k = 0; k < r->n_maps; k++) {
        const attn_attention_map *m = &r->maps[k];
        if (m->gradient == NULL) continue;
        float *relevance = scratch(a, (size_t)m->rows * m->cols);
        if (relevance == NULL) return out_of_memory();
        if (attn_map_gradient_weighted(m, relevance) != ATTN_OK) return cli_fail("analyze");
        print_gradient_weighted(a, path, r, m, relevance);
        map_stats *s = stats_of(a, m, path);
        if (s == NULL) return EXIT_RUNTIME;
        if (fields != NULL && m->kind == ATTN_MAP_CROSS)
            analyze_add_alignment(s->gradient_digits, s->gradient_aligned, relevance, 1, m->rows, m->cols,
                          fields);
    }
    return EXIT_OK;
}

static int analyze_record(analysis *a, const attn_record *r, const char *path)
{
    if (a->gradient && !has_gradients(r)) {
        cli_message(stderr,
                    "attn analyze: %s has no gradients; record them with 'attn translate' or "
                    "'attn generate' --attention FILE --gradient\n",
                    path);
        return EXIT_RUNTIME;
    }
    if (a->records == 0) {
        snprintf(a->model, sizeof a->model, "%s", r->model);
        snprintf(a->task, sizeof a->task, "%s", r->task);
    } else if (strcmp(a->model, r->model) != 0 || strcmp(a->task, r->task) != 0) {
        cli_message(stderr,
                    "attn analyze: %s is a record of %s on %s, but the first was of %s on %s: "
                    "analyse one model's records at a time\n",
                    path, r->model, r->task, a->model, a->task);
        return EXIT_RUNTIME;
    }
    a->records++;
    bool dates = strcmp(r->task, "dates") == 0, scored = false;
    char *text = NULL;
    int *fields = NULL;
    if (dates && !analyze_iso_output(r)) {
        a->not_iso++;
    } else if (dates) {
        text = malloc((size_t)r->n_keys + 1);
        fields = malloc((size_t)(r->n_keys > 0 ? r->n_keys : 1) * sizeof *fields);
        if (text == NULL || fields == NULL) {
            free(text);
            free(fields);
            return out_of_memory();
        }
        scored = analyze_source_fields(r, text, fields);
        a->scored += scored;
        a->not_a_date += !scored;
    }
    int status = EXIT_OK;
    for (int k = 0; k < r->n_maps && status == EXIT_OK; k++) {
        const attn_attention_map *m = &r->maps[k];
        map_stats *s = stats_of(a, m, path);
        if (s == NULL) status = EXIT_RUNTIME;
        else status = add_entropy(a, s, m);
        if (status == EXIT_OK && scored && m->kind == ATTN_MAP_CROSS)
            analyze_add_alignment(s->digits, s->aligned, m->weights, m->heads, m->rows, m->cols, fields);
    }
    if (status == EXIT_OK) status = add_gradient_weighted(a, r, path, scored ? fields : NULL);
    if (status == EXIT_OK && a->faith != NULL)
        status = faithfulness_add(a->faith, r, path, scored ? fields : NULL);
    free(text);
    free(fields);
    return status ? status : add_rollouts(a, r, path);
}

/* Head h's mean, or with h = -1 the mean over the heads, of the row sums v: (heads). */
static double head_mean(const map_stats *s, const double *v, int64_t rows, int h)
{
    double sum = 0.0;
    for (int k = h < 0 ? 0 : h; k < (h < 0 ? s->heads : h + 1); k++) sum += v[k];
    return analyze_ratio(sum, (double)rows * (h < 0 ? s->heads : 1));
}

static double entropy_of(const map_stats *s, int h)
{
    return head_mean(s, s->entropy, s->rows, h);
}

static double relative_of(const map_stats *s, int h)
{
    return head_mean(s, s->relative, s->relative_rows, h);
}

static void print_map_json(const map_stats *s, bool dates)
{
    printf("{\"name\": ");
    cli_json_string(stdout, s->name);
    printf(", \"layer\": %d, \"kind\": \"%s\", \"hard\": %s, \"heads\": %d, \"records\": %d, "
           "\"rows\": %lld, \"entropy\": [",
           s->layer, attn_map_kind_name(s->kind), s->hard ? "true" : "false", s->heads,
           s->records, (long long)s->rows);
    for (int h = 0; h < s->heads; h++) {
        printf("%s", h ? ", " : "");
        analyze_print_json_number(stdout, entropy_of(s, h));
    }
    printf("], \"relative_entropy\": [");
    for (int h = 0; h < s->heads; h++) {
        printf("%s", h ? ", " : "");
        analyze_print_json_number(stdout, relative_of(s, h));
    }
    printf("], \"mean_entropy\": ");
    analyze_print_json_number(stdout, entropy_of(s, -1));
    printf(", \"mean_relative_entropy\": ");
    analyze_print_json_number(stdout, relative_of(s, -1));
    printf(", \"alignment\": ");
    if (!dates || s->kind != ATTN_MAP_CROSS) {
        printf("null}");
        return;
    }
    for (int f = 0; f < ANALYZE_FIELDS; f++) {
        printf("%s\"%s\": {\"digits\": %lld, \"aligned\": %lld, \"score\": ", f ? ", " : "{",
               f == ATTN_DATE_NONE ? "all" : analyze_field_names[f], (long long)s->digits[f],
               (long long)s->aligned[f]);
        analyze_print_json_number(stdout, analyze_alignment_of(s->aligned, s->digits, (attn_date_field)f));
        printf(", \"gradient_digits\": %lld, \"gradient_aligned\": %lld, \"gradient_score\": ",
               (long long)s->gradient_digits[f], (long long)s->gradient_aligned[f]);
        analyze_print_json_number(stdout, analyze_alignment_of(s->gradient_aligned, s->gradient_digits, (attn_date_field)f));
        printf("}");
    }
    printf("}}");
}

static void print_map_text(const map_stats *s, bool dates)
{
    printf("\n%s: %s%s, layer %d, %d head%s, %lld rows in %d record%s\n", s->name,
           s->hard ? "hard " : "", attn_map_kind_name(s->kind), s->layer, s->heads,
           s->heads == 1 ? "" : "s", (long long)s->rows, s->records, s->records == 1 ? "" : "s");
    printf("  head  entropy  relative\n");
    for (int h = s->heads > 1 ? -1 : 0; h < s->heads; h++) {
        if (h < 0) printf("  mean");
        else printf("  %4d", h);
        analyze_print_text_number(stdout, entropy_of(s, h), 9, 3);
        analyze_print_text_number(stdout, relative_of(s, h), 10, 3);
        printf("\n");
    }
    if (!dates || s->kind != ATTN_MAP_CROSS) return;
    analyze_print_alignment(stdout, "alignment", s->aligned, s->digits);
    if (s->gradient_digits[ATTN_DATE_NONE] > 0)
        analyze_print_alignment(stdout, "gradient-weighted alignment", s->gradient_aligned,
                             s->gradient_digits);
}

static void print_summary(const analysis *a)
{
    bool dates = strcmp(a->task, "dates") == 0;
    if (a->json) {
        printf("{\"records\": %d, \"model\": ", a->records);
        cli_json_string(stdout, a->model);
        printf(", \"task\": ");
        cli_json_string(stdout, a->task);
        printf(", \"maps\": [");
        for (int k = 0; k < a->n_maps; k++) {
            printf("%s", k ? ", " : "");
            print_map_json(&a->maps[k], dates);
        }
        printf("], \"alignment\": ");
        if (dates)
            printf("{\"scored\": %d, \"not_iso\": %d, \"not_a_date\": %d}", a->scored, a->not_iso,
                   a->not_a_date);
        else
            printf("null");
        printf(", \"rollout\": [");
        fwrite(a->rollout.text, 1, a->rollout.size, stdout);
        printf("], \"gradient_weighted\": [");
        fwrite(a->weighted.text, 1, a->weighted.size, stdout);
        printf("], \"faithfulness\": ");
        if (a->faith != NULL) faithfulness_print(a->faith, stdout);
        else printf("null");
        printf("}\n");
        return;
    }
    printf("%d record%s of %s on %s\n", a->records, a->records == 1 ? "" : "s", a->model, a->task);
    for (int k = 0; k < a->n_maps; k++) print_map_text(&a->maps[k], dates);
    if (dates)
        printf("\nalignment scored on %d of %d records (%d outputs not of the form YYYY-MM-DD, "
               "%d sources not a date)\n",
               a->scored, a->records, a->not_iso, a->not_a_date);
    fwrite(a->rollout.text, 1, a->rollout.size, stdout);
    fwrite(a->weighted.text, 1, a->weighted.size, stdout);
    if (a->faith != NULL) faithfulness_print(a->faith, stdout);
}

static void section_free(section *c)
{
    if (c->out) fclose(c->out);
    free(c->text);
}

/* Closing the stream settles text and size; false on no memory. */
static bool section_close(section *c)
{
    bool ok = c->out == NULL || fclose(c->out) == 0;
    c->out = NULL;
    return ok;
}

static int parse_options(int argc, char **argv, analysis *a)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"gradient", no_argument, NULL, 'g'},
        {"model", required_argument, NULL, 'm'},
        {"permutations", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'j': a->json = true; break;
        case 'g': a->gradient = true; break;
        case 'm': a->model_path = optarg; break;
        case 'p':
            if (!cli_parse_int(optarg, 1, 100, &a->permutations))
                return cli_usage_error("analyze", "--permutations '%s' is not a count 1 .. 100",
                                       optarg);
            break;
        case 'h': print_help(); return -1;
        default: return cli_usage_error("analyze", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind == argc) return cli_usage_error("analyze", "give one or more record FILEs");
    if (a->permutations > 0 && a->model_path == NULL)
        return cli_usage_error("analyze", "--permutations needs --model MODEL");
    if (a->permutations == 0) a->permutations = 5;
    return EXIT_OK;
}

static void analysis_free(analysis *a)
{
    for (int k = 0; k < a->n_maps; k++) {
        free(a->maps[k].entropy);
        free(a->maps[k].relative);
    }
    section_free(&a->rollout);
    section_free(&a->weighted);
    faithfulness_free(a->faith);
    free(a->scratch);
    free(a);
}

int cmd_analyze(int argc, char **argv)
{
    analysis *a = calloc(1, sizeof *a);
    attn_record *r = malloc(sizeof *r);
    if (a == NULL || r == NULL) {
        free(a);
        free(r);
        return out_of_memory();
    }
    int status = parse_options(argc, argv, a);
    if (status != EXIT_OK) {
        free(r);
        analysis_free(a);
        return status < 0 ? EXIT_OK : status;
    }
    a->rollout.out = open_memstream(&a->rollout.text, &a->rollout.size);
    a->weighted.out = open_memstream(&a->weighted.text, &a->weighted.size);
    status = a->rollout.out && a->weighted.out ? EXIT_OK : out_of_memory();
    if (status == EXIT_OK && a->model_path != NULL &&
        (a->faith = faithfulness_open(a->model_path, (int)a->permutations, a->json)) == NULL)
        status = EXIT_RUNTIME;
    for (int i = optind; i < argc && status == EXIT_OK; i++) {
        if (attn_record_load(r, argv[i]) != ATTN_OK) {
            status = cli_fail("analyze");
            break;
        }
        status = analyze_record(a, r, argv[i]);
        attn_record_free(r);
    }
    const bool closed = section_close(&a->rollout);
    if (!(section_close(&a->weighted) && closed) && status == EXIT_OK) status = out_of_memory();
    if (status == EXIT_OK) print_summary(a);
    free(r);
    analysis_free(a);
    return status;
}
