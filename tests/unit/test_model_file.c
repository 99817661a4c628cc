/* Model files (attn/model_file.h): a sequence-to-sequence model and a language
 * model save and load back with the same parameters, buffers, task or
 * vocabulary, steps and config; the writer's own pairs are kept; the metadata
 * is checked before anything is built (a wrong kind, a damaged config, a config
 * larger than the file, steps that disagree) with messages that name the key. */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/checkpoint.h"
#include "testutil.h"

typedef struct fixture {
    char *dir, path[128], other[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL) return -1;
    f->dir = test_temp_dir("model_file");
    snprintf(f->path, sizeof f->path, "%s/model.safetensors", f->dir);
    snprintf(f->other, sizeof f->other, "%s/other.safetensors", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    test_temp_dir_remove(f->dir);
    free(f);
    return 0;
}

static void randomize(attn_params *p, uint64_t case_number)
{
    attn_rng rng = test_rng(case_number);
    attn_rng_fill_uniform(&rng, p->data, p->total, -1, 1);
}

static void assert_same_params(const attn_params *a, const attn_params *b)
{
    assert_int_equal(a->count, b->count);
    for (int i = 0; i < a->count; i++) {
        assert_string_equal(a->items[i].name, b->items[i].name);
        assert_memory_equal(a->data + a->items[i].offset, b->data + b->items[i].offset,
                            a->items[i].numel * sizeof(float));
    }
}

/* A small Transformer for the dates task, its parameters random. */
static attn_seq2seq *dates_model(attn_task *task)
{
    assert_int_equal(attn_task_init(task, ATTN_TASK_DATES), ATTN_OK);
    attn_seq2seq_config cfg = attn_seq2seq_defaults(ATTN_S2S_TRANSFORMER, ATTN_ATTEND_SOFT);
    cfg.src_vocab = task->src_vocab.size;
    cfg.tgt_vocab = task->tgt_vocab.size;
    cfg.max_src_len = task->max_src_len;
    cfg.max_tgt_len = task->max_tgt_len + 1;
    cfg.hidden_dim = cfg.embed_dim = 16;
    cfg.heads = 2;
    cfg.ff_dim = 32;
    cfg.enc_layers = cfg.dec_layers = 1;
    attn_seq2seq *m = NULL;
    assert_int_equal(attn_seq2seq_create(&m, &cfg, 7), ATTN_OK);
    randomize(attn_seq2seq_params(m), 1);
    return m;
}

static void test_seq2seq_round_trip(void **state)
{
    fixture *f = *state;
    attn_task task, loaded_task;
    attn_seq2seq *m = dates_model(&task), *loaded = NULL;
    const attn_metadata_pair extra[] = {{"note", "kept"}};
    assert_int_equal(attn_seq2seq_save(f->path, m, &task, 42, NULL, extra, 1), ATTN_OK);
    int64_t step = 0;
    assert_int_equal(attn_seq2seq_load(&loaded, &loaded_task, &step, f->path), ATTN_OK);
    assert_int_equal(step, 42);
    assert_memory_equal(&task, &loaded_task, sizeof task);
    assert_memory_equal(attn_seq2seq_get_config(m), attn_seq2seq_get_config(loaded),
                        sizeof(attn_seq2seq_config));
    assert_same_params(attn_seq2seq_params(m), attn_seq2seq_params(loaded));
    assert_same_params(attn_seq2seq_buffers(m), attn_seq2seq_buffers(loaded));
    attn_safetensors *st = NULL;
    assert_int_equal(attn_safetensors_open(&st, f->path), ATTN_OK);
    assert_string_equal(attn_safetensors_metadata(st, "note"), "kept");
    assert_string_equal(attn_safetensors_metadata(st, "attn.kind"), ATTN_SEQ2SEQ_KIND);
    attn_safetensors_close(st);
    attn_seq2seq_free(loaded);
    attn_seq2seq_free(m);
}

static attn_gpt *text_model(attn_text_vocab *vocab)
{
    const char text[] = "the cat sat on the mat";
    assert_int_equal(attn_text_vocab_build(vocab, ATTN_TEXT_CHARS, text, sizeof text - 1),
                     ATTN_OK);
    attn_gpt_config cfg = attn_gpt_defaults();
    cfg.vocab_size = vocab->size;
    cfg.block_size = 16;
    cfg.n_layer = 2;
    cfg.n_head = 2;
    cfg.n_embd = 16;
    cfg.position = ATTN_POS_ROPE;
    cfg.tie_weights = false;
    attn_gpt *m = NULL;
    assert_int_equal(attn_gpt_create(&m, &cfg, 3), ATTN_OK);
    randomize(attn_gpt_params(m), 2);
    return m;
}

/* With the optimizer: a trainer's checkpoint, the steps on both keys. */
static void test_gpt_round_trip(void **state)
{
    fixture *f = *state;
    attn_text_vocab vocab, loaded_vocab;
    attn_gpt *m = text_model(&vocab), *loaded = NULL;
    attn_adamw opt;
    const attn_adamw_config adamw = attn_adamw_defaults();
    attn_params *p = attn_gpt_params(m);
    assert_int_equal(attn_adamw_init(&opt, p->total, &adamw), ATTN_OK);
    for (int step = 0; step < 3; step++) {
        randomize(p, 10 + (uint64_t)step);
        memcpy(p->grad, p->data, p->total * sizeof(float));
        assert_int_equal(attn_adamw_step(&opt, p->data, p->grad, NULL, 1e-2f), ATTN_OK);
    }
    assert_int_equal(attn_gpt_save(f->path, m, &vocab, 3, &opt, NULL, 0), ATTN_OK);
    int64_t step = 0;
    assert_int_equal(attn_gpt_load(&loaded, &loaded_vocab, &step, f->path), ATTN_OK);
    assert_int_equal(step, 3);
    assert_memory_equal(&vocab, &loaded_vocab, sizeof vocab);
    assert_memory_equal(attn_gpt_get_config(m), attn_gpt_get_config(loaded),
                        sizeof(attn_gpt_config));
    assert_same_params(p, attn_gpt_params(loaded));
    /* A step that is not the optimizer's is refused. */
    assert_int_equal(attn_gpt_save(f->other, m, &vocab, 4, &opt, NULL, 0), ATTN_OK);
    attn_gpt_free(loaded);
    assert_int_equal(attn_gpt_load(&loaded, &loaded_vocab, &step, f->other), ATTN_ERR_FORMAT);
    assert_null(loaded);
    assert_non_null(strstr(attn_last_error(), "metadata 'optimizer.step' is 3 but 'step' is 4"));
    assert_non_null(strstr(attn_last_error(), f->other));
    attn_adamw_free(&opt);
    attn_gpt_free(m);
}

/* Rewrites the model file at from to `to` with the metadata `key` set to value
 * (NULL: removed). */
static void rewrite(const char *from, const char *to, const char *key, const char *value)
{
    attn_safetensors *st = NULL;
    assert_int_equal(attn_safetensors_open(&st, from), ATTN_OK);
    attn_metadata_pair meta[16];
    int n = 0;
    bool replaced = false;
    for (int i = 0; i < attn_safetensors_metadata_count(st); i++) {
        attn_metadata_pair pair;
        pair.key = attn_safetensors_metadata_at(st, i, &pair.value);
        if (strncmp(pair.key, "attn.", 5) == 0 && strcmp(pair.key, "attn.kind") != 0) continue;
        if (strcmp(pair.key, "optimizer.step") == 0) continue;
        if (strcmp(pair.key, key) == 0) {
            replaced = true;
            if (value == NULL) continue;
            pair.value = value;
        }
        meta[n++] = pair;
    }
    if (!replaced && value) meta[n++] = (attn_metadata_pair){key, value};
    attn_tensor_out tensors[64];
    const int count = attn_safetensors_count(st);
    assert_true(count <= 64);
    for (int i = 0; i < count; i++) {
        const attn_tensor_view *t = attn_safetensors_at(st, i);
        tensors[i] = (attn_tensor_out){t->name, t->dtype, t->ndim, t->shape, t->data};
    }
    assert_int_equal(attn_safetensors_save(to, tensors, count, meta, n), ATTN_OK);
    attn_safetensors_close(st);
}

static void expect_refused(const fixture *f, const char *key, const char *value,
                           const char *fragment)
{
    rewrite(f->path, f->other, key, value);
    attn_task task;
    attn_seq2seq *m = NULL;
    const attn_status s = attn_seq2seq_load(&m, &task, NULL, f->other);
    if (s != ATTN_ERR_FORMAT || strstr(attn_last_error(), fragment) == NULL)
        print_error("%s = %s: status %d, message '%s', expected '%s'\n", key,
                    value ? value : "(none)", (int)s, attn_last_error(), fragment);
    assert_int_equal(s, ATTN_ERR_FORMAT);
    assert_non_null(strstr(attn_last_error(), fragment));
    assert_null(m);
    assert_non_null(strstr(attn_last_error(), f->other)); /* the message names the file */
}

static void test_bad_metadata(void **state)
{
    fixture *f = *state;
    attn_task task;
    attn_seq2seq *m = dates_model(&task);
    assert_int_equal(attn_seq2seq_save(f->path, m, &task, 5, NULL, NULL, 0), ATTN_OK);
    attn_seq2seq_free(m);
    expect_refused(f, "attn.kind", NULL, "not an attn model file");
    expect_refused(f, "attn.kind", "gpt", "holds a 'gpt' model, not a sequence-to-sequence one");
    expect_refused(f, "step", "-1", "metadata 'step' is '-1', not a step count");
    expect_refused(f, "task", "poems", "metadata 'task': ");
    expect_refused(f, "model", "[1]", "metadata 'model' is missing or not a JSON object");
    expect_refused(f, "src_vocab", "abc", "metadata 'src_vocab' differs from the 'dates' task's");
    /* A config inside every field's range, of far more parameters than the file. */
    char *text = NULL;
    {
        attn_safetensors *st = NULL;
        assert_int_equal(attn_safetensors_open(&st, f->path), ATTN_OK);
        text = strdup(attn_safetensors_metadata(st, "model"));
        attn_safetensors_close(st);
    }
    char *hidden = strstr(text, "\"hidden_dim\":16");
    assert_non_null(hidden);
    char huge[1024];
    snprintf(huge, sizeof huge, "%.*s\"hidden_dim\":65536%s", (int)(hidden - text), text,
             hidden + strlen("\"hidden_dim\":16"));
    expect_refused(f, "model", huge, "describes a model of");
    char *heads = strstr(text, "\"heads\":2");
    assert_non_null(heads);
    char bad[1024];
    snprintf(bad, sizeof bad, "%.*s\"heads\":2.5%s", (int)(heads - text), text,
             heads + strlen("\"heads\":2"));
    expect_refused(f, "model", bad,
                   "'heads' in metadata 'model' is missing or not a whole number in [0, ");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seq2seq_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gpt_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_metadata, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
