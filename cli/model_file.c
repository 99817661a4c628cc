/* The file of a trained sequence-to-sequence model: an attn checkpoint
 * (attn/checkpoint.h) whose metadata says what it is and how to rebuild it:
 *
 *   attn.kind    "seq2seq"
 *   task         the built-in task it was trained on ("dates")
 *   model        the attn_seq2seq_config as a JSON object
 *   src_vocab    the source characters, in id order from ATTN_TOKEN_FIRST_CHAR
 *   tgt_vocab    the target characters
 *   train        the training options as a JSON object (cli_train_options)
 *   step         training steps done
 *
 * Reading checks every field before anything is built from it. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "attn/attn.h"
#include "attn/checkpoint.h"
#include "cli.h"

static const char KIND[] = "seq2seq";

/* ---- writing ---- */

static void add_int(cJSON *o, const char *key, int64_t v) { cJSON_AddNumberToObject(o, key, (double)v); }

/* Floats go through "%.9g" so that they read back to the same float. */
static void add_float(cJSON *o, const char *key, float v)
{
    char text[32];
    snprintf(text, sizeof text, "%.9g", (double)v);
    cJSON_AddRawToObject(o, key, text);
}

static char *config_json(const attn_seq2seq_config *c)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    cJSON_AddStringToObject(o, "arch", attn_seq2seq_arch_name(c->arch));
    cJSON_AddStringToObject(o, "attention", attn_attention_kind_name(c->attention));
    add_int(o, "src_vocab", c->src_vocab);
    add_int(o, "tgt_vocab", c->tgt_vocab);
    add_int(o, "max_src_len", c->max_src_len);
    add_int(o, "max_tgt_len", c->max_tgt_len);
    add_int(o, "embed_dim", c->embed_dim);
    add_int(o, "hidden_dim", c->hidden_dim);
    add_int(o, "enc_layers", c->enc_layers);
    add_int(o, "dec_layers", c->dec_layers);
    add_int(o, "heads", c->heads);
    add_int(o, "ff_dim", c->ff_dim);
    add_float(o, "dropout", c->dropout);
    add_float(o, "entropy_weight", c->entropy_weight);
    add_float(o, "baseline_decay", c->baseline_decay);
    add_float(o, "gumbel_tau_start", c->gumbel_tau_start);
    add_float(o, "gumbel_tau_end", c->gumbel_tau_end);
    add_int(o, "gumbel_anneal_steps", c->gumbel_anneal_steps);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static char *train_json(const cli_train_options *t)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    add_int(o, "steps", t->steps);
    add_int(o, "batch", t->batch);
    add_float(o, "lr", t->lr);
    add_float(o, "min_lr", t->min_lr);
    add_int(o, "warmup", t->warmup);
    add_float(o, "weight_decay", t->weight_decay);
    add_float(o, "clip", t->clip);
    add_float(o, "label_smoothing", t->label_smoothing);
    add_int(o, "seed", (int64_t)t->seed);
    add_int(o, "eval_every", t->eval_every);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

attn_adamw_config cli_adamw_config(const cli_train_options *t)
{
    attn_adamw_config c = attn_adamw_defaults();
    c.weight_decay = t->weight_decay;
    return c;
}

int cli_model_save(const char *path, const cli_model *m, const attn_adamw *opt)
{
    char src_chars[4 * ATTN_VOCAB_MAX + 1], tgt_chars[4 * ATTN_VOCAB_MAX + 1], step[32];
    if (attn_vocab_chars(&m->task.src_vocab, src_chars, sizeof src_chars) != ATTN_OK ||
        attn_vocab_chars(&m->task.tgt_vocab, tgt_chars, sizeof tgt_chars) != ATTN_OK)
        return cli_fail("saving the model");
    snprintf(step, sizeof step, "%" PRId64, m->step);
    char *model = config_json(attn_seq2seq_get_config(m->model));
    char *train = train_json(&m->train);
    int status = EXIT_OK;
    if (model == NULL || train == NULL) {
        fprintf(stderr, "attn: out of memory writing %s\n", path);
        status = EXIT_RUNTIME;
    } else {
        const attn_metadata_pair meta[] = {
            {"attn.kind", KIND},
            {"task", attn_task_name(m->task.kind)},
            {"model", model},
            {"src_vocab", src_chars},
            {"tgt_vocab", tgt_chars},
            {"train", train},
            {"step", step},
        };
        if (attn_checkpoint_save(path, attn_seq2seq_params(m->model),
                                 attn_seq2seq_buffers(m->model), opt, meta,
                                 (int)(sizeof meta / sizeof meta[0])) != ATTN_OK)
            status = cli_fail(path);
    }
    cJSON_free(model);
    cJSON_free(train);
    return status;
}

/* ---- reading ---- */

typedef struct reader {
    const char *path;
    const attn_safetensors *st;
} reader;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int bad(const reader *r, const char *fmt, ...)
{
    va_list args;
    fprintf(stderr, "attn: %s: ", r->path);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    return EXIT_RUNTIME;
}

static const char *meta(const reader *r, const char *key)
{
    return attn_safetensors_metadata(r->st, key);
}

static cJSON *parse_object(const reader *r, const char *key)
{
    const char *text = meta(r, key);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    if (o != NULL && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    if (o == NULL) bad(r, "metadata '%s' is missing or not a JSON object", key);
    return o;
}

static bool get_int(const reader *r, const cJSON *o, const char *object, const char *key,
                    int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble ||
        v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
        bad(r, "'%s' in metadata '%s' is missing or not a whole number in [%" PRId64 ", %" PRId64
               "]",
            key, object, lo, hi);
        return false;
    }
    *out = (int64_t)v->valuedouble;
    return true;
}

static bool get_int32(const reader *r, const cJSON *o, const char *object, const char *key,
                      int *out)
{
    int64_t v;
    if (!get_int(r, o, object, key, 0, INT32_MAX, &v)) return false;
    *out = (int)v;
    return true;
}

static bool get_float(const reader *r, const cJSON *o, const char *object, const char *key,
                      float *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) {
        bad(r, "'%s' in metadata '%s' is missing or not a number", key, object);
        return false;
    }
    *out = (float)v->valuedouble;
    return true;
}

static const char *get_string(const reader *r, const cJSON *o, const char *object,
                              const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) {
        bad(r, "'%s' in metadata '%s' is missing or not a string", key, object);
        return NULL;
    }
    return v->valuestring;
}

static bool read_config(const reader *r, attn_seq2seq_config *c)
{
    cJSON *o = parse_object(r, "model");
    if (o == NULL) return false;
    const char *arch = get_string(r, o, "model", "arch");
    const char *attention = get_string(r, o, "model", "attention");
    bool ok = arch && attention;
    if (ok && (attn_seq2seq_arch_parse(&c->arch, arch) != ATTN_OK ||
               attn_attention_kind_parse(&c->attention, attention) != ATTN_OK)) {
        bad(r, "%s", attn_last_error());
        ok = false;
    }
    ok = ok && get_int32(r, o, "model", "src_vocab", &c->src_vocab) &&
         get_int32(r, o, "model", "tgt_vocab", &c->tgt_vocab) &&
         get_int32(r, o, "model", "max_src_len", &c->max_src_len) &&
         get_int32(r, o, "model", "max_tgt_len", &c->max_tgt_len) &&
         get_int32(r, o, "model", "embed_dim", &c->embed_dim) &&
         get_int32(r, o, "model", "hidden_dim", &c->hidden_dim) &&
         get_int32(r, o, "model", "enc_layers", &c->enc_layers) &&
         get_int32(r, o, "model", "dec_layers", &c->dec_layers) &&
         get_int32(r, o, "model", "heads", &c->heads) &&
         get_int32(r, o, "model", "ff_dim", &c->ff_dim) &&
         get_float(r, o, "model", "dropout", &c->dropout) &&
         get_float(r, o, "model", "entropy_weight", &c->entropy_weight) &&
         get_float(r, o, "model", "baseline_decay", &c->baseline_decay) &&
         get_float(r, o, "model", "gumbel_tau_start", &c->gumbel_tau_start) &&
         get_float(r, o, "model", "gumbel_tau_end", &c->gumbel_tau_end) &&
         get_int(r, o, "model", "gumbel_anneal_steps", 0, INT64_MAX, &c->gumbel_anneal_steps);
    cJSON_Delete(o);
    return ok;
}

static bool read_train(const reader *r, cli_train_options *t)
{
    cJSON *o = parse_object(r, "train");
    if (o == NULL) return false;
    int64_t seed = 0;
    bool ok = get_int(r, o, "train", "steps", 1, INT32_MAX, &t->steps) &&
              get_int(r, o, "train", "batch", 1, 65536, &t->batch) &&
              get_float(r, o, "train", "lr", &t->lr) &&
              get_float(r, o, "train", "min_lr", &t->min_lr) &&
              get_int(r, o, "train", "warmup", 0, INT32_MAX, &t->warmup) &&
              get_float(r, o, "train", "weight_decay", &t->weight_decay) &&
              get_float(r, o, "train", "clip", &t->clip) &&
              get_float(r, o, "train", "label_smoothing", &t->label_smoothing) &&
              get_int(r, o, "train", "seed", 0, INT64_MAX, &seed) &&
              get_int(r, o, "train", "eval_every", 1, INT32_MAX, &t->eval_every);
    t->seed = (uint64_t)seed;
    cJSON_Delete(o);
    return ok;
}

/* The file's vocabulary must be the task's: the task's generator makes the
 * characters, so a file whose vocabulary differs was trained on another version
 * of the task. */
static bool check_vocab(const reader *r, const char *key, const attn_vocab *task)
{
    attn_vocab stored, *v = &stored;
    const char *chars = meta(r, key);
    if (chars == NULL) {
        bad(r, "metadata '%s' is missing", key);
        return false;
    }
    if (attn_vocab_from_chars(v, chars) != ATTN_OK) {
        bad(r, "metadata '%s': %s", key, attn_last_error());
        return false;
    }
    if (v->size != task->size || memcmp(v->chars, task->chars, sizeof v->chars) != 0) {
        bad(r, "metadata '%s' differs from the '%s' task's vocabulary", key,
            meta(r, "task"));
        return false;
    }
    return true;
}

int cli_model_load(const char *path, cli_model *m, attn_adamw *opt)
{
    memset(m, 0, sizeof *m);
    if (opt) memset(opt, 0, sizeof *opt);
    attn_safetensors *st = NULL;
    if (attn_safetensors_open(&st, path) != ATTN_OK) return cli_fail("reading the model");
    reader r = {path, st};
    int status = EXIT_RUNTIME;
    const char *kind = meta(&r, "attn.kind");
    const char *task = meta(&r, "task");
    const char *step = meta(&r, "step");
    attn_task_kind task_kind;
    attn_seq2seq_config cfg = {0};
    attn_adamw_config adamw = {0};
    char *end = NULL;
    if (kind == NULL) {
        bad(&r, "not an attn model file (no 'attn.kind' in its metadata)");
    } else if (strcmp(kind, KIND) != 0) {
        bad(&r, "holds a '%s' model, not a sequence-to-sequence one", kind);
    } else if (task == NULL || attn_task_parse(&task_kind, task) != ATTN_OK) {
        bad(&r, "metadata 'task' is %s", task ? attn_last_error() : "missing");
    } else if (step == NULL || (m->step = strtoll(step, &end, 10), *end != '\0' || m->step < 0)) {
        bad(&r, "metadata 'step' is missing or not a step count");
    } else if (attn_task_init(&m->task, task_kind) != ATTN_OK) {
        cli_fail(path);
    } else if (read_config(&r, &cfg) && read_train(&r, &m->train) &&
               check_vocab(&r, "src_vocab", &m->task.src_vocab) &&
               check_vocab(&r, "tgt_vocab", &m->task.tgt_vocab)) {
        adamw = cli_adamw_config(&m->train);
        if (cfg.src_vocab != m->task.src_vocab.size || cfg.tgt_vocab != m->task.tgt_vocab.size) {
            bad(&r, "the model's vocabulary sizes (%d, %d) differ from the task's (%d, %d)",
                cfg.src_vocab, cfg.tgt_vocab, m->task.src_vocab.size, m->task.tgt_vocab.size);
        } else if (attn_seq2seq_create(&m->model, &cfg, m->train.seed) != ATTN_OK) {
            bad(&r, "metadata 'model': %s", attn_last_error());
        } else if (opt && attn_adamw_init(opt, attn_seq2seq_params(m->model)->total,
                                          &adamw) != ATTN_OK) {
            cli_fail(path);
        } else if (attn_checkpoint_load(st, attn_seq2seq_params(m->model),
                                        attn_seq2seq_buffers(m->model), opt) != ATTN_OK) {
            bad(&r, "%s", attn_last_error());
        } else {
            status = EXIT_OK;
        }
    }
    attn_safetensors_close(st);
    if (status != EXIT_OK) {
        cli_model_free(m);
        if (opt) attn_adamw_free(opt);
    }
    return status;
}

void cli_model_free(cli_model *m)
{
    attn_seq2seq_free(m->model);
    m->model = NULL;
}
