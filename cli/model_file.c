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
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "attn/attn.h"
#include "attn/checkpoint.h"
#include "cli.h"

static const char KIND[] = "seq2seq";

/* ---- writing ---- */

static char *config_json(const attn_seq2seq_config *c)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    cJSON_AddStringToObject(o, "arch", attn_seq2seq_arch_name(c->arch));
    cJSON_AddStringToObject(o, "attention", attn_attention_kind_name(c->attention));
    cli_json_add_int(o, "src_vocab", c->src_vocab);
    cli_json_add_int(o, "tgt_vocab", c->tgt_vocab);
    cli_json_add_int(o, "max_src_len", c->max_src_len);
    cli_json_add_int(o, "max_tgt_len", c->max_tgt_len);
    cli_json_add_int(o, "embed_dim", c->embed_dim);
    cli_json_add_int(o, "hidden_dim", c->hidden_dim);
    cli_json_add_int(o, "enc_layers", c->enc_layers);
    cli_json_add_int(o, "dec_layers", c->dec_layers);
    cli_json_add_int(o, "heads", c->heads);
    cli_json_add_int(o, "ff_dim", c->ff_dim);
    cli_json_add_float(o, "dropout", c->dropout);
    cli_json_add_float(o, "entropy_weight", c->entropy_weight);
    cli_json_add_float(o, "baseline_decay", c->baseline_decay);
    cli_json_add_float(o, "gumbel_tau_start", c->gumbel_tau_start);
    cli_json_add_float(o, "gumbel_tau_end", c->gumbel_tau_end);
    cli_json_add_int(o, "gumbel_anneal_steps", c->gumbel_anneal_steps);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static char *train_json(const cli_train_options *t)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    cli_json_add_train(o, t);
    cli_json_add_float(o, "label_smoothing", t->label_smoothing);
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

static bool read_config(const cli_reader *r, attn_seq2seq_config *c)
{
    cJSON *o = cli_meta_object(r, "model");
    if (o == NULL) return false;
    const char *arch = cli_get_string(r, o, "model", "arch");
    const char *attention = cli_get_string(r, o, "model", "attention");
    bool ok = arch && attention;
    if (ok && (attn_seq2seq_arch_parse(&c->arch, arch) != ATTN_OK ||
               attn_attention_kind_parse(&c->attention, attention) != ATTN_OK)) {
        cli_bad(r, "%s", attn_last_error());
        ok = false;
    }
    ok = ok && cli_get_int32(r, o, "model", "src_vocab", &c->src_vocab) &&
         cli_get_int32(r, o, "model", "tgt_vocab", &c->tgt_vocab) &&
         cli_get_int32(r, o, "model", "max_src_len", &c->max_src_len) &&
         cli_get_int32(r, o, "model", "max_tgt_len", &c->max_tgt_len) &&
         cli_get_int32(r, o, "model", "embed_dim", &c->embed_dim) &&
         cli_get_int32(r, o, "model", "hidden_dim", &c->hidden_dim) &&
         cli_get_int32(r, o, "model", "enc_layers", &c->enc_layers) &&
         cli_get_int32(r, o, "model", "dec_layers", &c->dec_layers) &&
         cli_get_int32(r, o, "model", "heads", &c->heads) &&
         cli_get_int32(r, o, "model", "ff_dim", &c->ff_dim) &&
         cli_get_float(r, o, "model", "dropout", &c->dropout) &&
         cli_get_float(r, o, "model", "entropy_weight", &c->entropy_weight) &&
         cli_get_float(r, o, "model", "baseline_decay", &c->baseline_decay) &&
         cli_get_float(r, o, "model", "gumbel_tau_start", &c->gumbel_tau_start) &&
         cli_get_float(r, o, "model", "gumbel_tau_end", &c->gumbel_tau_end) &&
         cli_get_int(r, o, "model", "gumbel_anneal_steps", 0, INT64_MAX,
                     &c->gumbel_anneal_steps);
    cJSON_Delete(o);
    return ok;
}

static bool read_train(const cli_reader *r, cli_train_options *t)
{
    cJSON *o = cli_meta_object(r, "train");
    if (o == NULL) return false;
    bool ok = cli_get_train(r, o, "train", 1, t) &&
              cli_get_float(r, o, "train", "label_smoothing", &t->label_smoothing);
    cJSON_Delete(o);
    return ok;
}

/* The file's vocabulary must be the task's: the task's generator makes the
 * characters, so a file whose vocabulary differs was trained on another version
 * of the task. */
static bool check_vocab(const cli_reader *r, const char *key, const attn_vocab *task)
{
    attn_vocab stored, *v = &stored;
    const char *chars = cli_meta(r, key);
    if (chars == NULL) {
        cli_bad(r, "metadata '%s' is missing", key);
        return false;
    }
    if (attn_vocab_from_chars(v, chars) != ATTN_OK) {
        cli_bad(r, "metadata '%s': %s", key, attn_last_error());
        return false;
    }
    if (v->size != task->size || memcmp(v->chars, task->chars, sizeof v->chars) != 0) {
        cli_bad(r, "metadata '%s' differs from the '%s' task's vocabulary", key,
                cli_meta(r, "task"));
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
    cli_reader r = {path, st};
    int status = EXIT_RUNTIME;
    const char *kind = cli_meta(&r, "attn.kind");
    const char *task = cli_meta(&r, "task");
    attn_task_kind task_kind;
    attn_seq2seq_config cfg = {0};
    attn_adamw_config adamw = {0};
    if (kind == NULL) {
        cli_bad(&r, "not an attn model file (no 'attn.kind' in its metadata)");
    } else if (strcmp(kind, CLI_GPT_KIND) == 0) {
        cli_bad(&r, "a language model, not a sequence-to-sequence one; use attn generate");
    } else if (strcmp(kind, KIND) != 0) {
        cli_bad(&r, "holds a '%s' model, not a sequence-to-sequence one", kind);
    } else if (task == NULL || attn_task_parse(&task_kind, task) != ATTN_OK) {
        cli_bad(&r, "metadata 'task' is %s", task ? attn_last_error() : "missing");
    } else if (attn_task_init(&m->task, task_kind) != ATTN_OK) {
        cli_fail(path);
    } else if (cli_meta_step(&r, &m->step) && read_config(&r, &cfg) &&
               read_train(&r, &m->train) && check_vocab(&r, "src_vocab", &m->task.src_vocab) &&
               check_vocab(&r, "tgt_vocab", &m->task.tgt_vocab)) {
        adamw = cli_adamw_config(&m->train);
        if (cfg.src_vocab != m->task.src_vocab.size || cfg.tgt_vocab != m->task.tgt_vocab.size) {
            cli_bad(&r, "the model's vocabulary sizes (%d, %d) differ from the task's (%d, %d)",
                    cfg.src_vocab, cfg.tgt_vocab, m->task.src_vocab.size, m->task.tgt_vocab.size);
        } else if (attn_seq2seq_create(&m->model, &cfg, m->train.seed) != ATTN_OK) {
            cli_bad(&r, "metadata 'model': %s", attn_last_error());
        } else if (opt && attn_adamw_init(opt, attn_seq2seq_params(m->model)->total,
                                          &adamw) != ATTN_OK) {
            cli_fail(path);
        } else if (attn_checkpoint_load(st, attn_seq2seq_params(m->model),
                                        attn_seq2seq_buffers(m->model), opt) != ATTN_OK) {
            cli_bad(&r, "%s", attn_last_error());
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
