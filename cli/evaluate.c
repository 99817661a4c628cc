/* Exact-match accuracy of a model's decoding over a fixed split of its task: an
 * example counts when the decoded tokens equal the target's, EOS included. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { EVAL_BATCH = 256 };

static bool matches(const int32_t *out, int out_len, const int32_t *tgt_out, int tgt_len)
{
    /* tgt_out is y EOS and tgt_len = |y| + 1; out_len counts tokens before EOS. */
    return out_len == tgt_len - 1 && memcmp(out, tgt_out, (size_t)out_len * sizeof *out) == 0;
}

int cli_evaluate(attn_seq2seq *model, const attn_task *task, attn_split split, int beam,
                 cli_eval_result *result)
{
    int size = split == ATTN_SPLIT_VALID ? task->valid_size : task->test_size;
    const attn_seq2seq_config *cfg = attn_seq2seq_get_config(model);
    int max_len = cfg->max_tgt_len;
    attn_batch batch = {0};
    int32_t *out = malloc((size_t)EVAL_BATCH * max_len * sizeof *out);
    int32_t *out_len = malloc((size_t)EVAL_BATCH * sizeof *out_len);
    int status = EXIT_OK;
    *result = (cli_eval_result){0};
    double start = cli_now();
    if (out == NULL || out_len == NULL) {
        fprintf(stderr, "attn: evaluation: no memory for %d outputs of %d tokens\n", EVAL_BATCH,
                max_len);
        status = EXIT_RUNTIME;
        goto done;
    }
    if (attn_batch_alloc(&batch, task, EVAL_BATCH) != ATTN_OK) {
        status = cli_fail("evaluation");
        goto done;
    }
    attn_decode_options opt = {.beam = beam, .max_len = max_len};
    for (int first = 0; first < size; first += EVAL_BATCH) {
        batch.batch = size - first < EVAL_BATCH ? size - first : EVAL_BATCH;
        if (attn_task_batch(task, split, 0, (uint64_t)first, &batch) != ATTN_OK ||
            attn_seq2seq_decode(model, out, out_len, NULL, batch.src, batch.src_len, batch.batch,
                                batch.src_cap, &opt) != ATTN_OK) {
            status = cli_fail("evaluation");
            goto done;
        }
        for (int b = 0; b < batch.batch; b++)
            result->exact += matches(out + (size_t)b * max_len, out_len[b],
                                     batch.tgt_out + (size_t)b * batch.tgt_cap, batch.tgt_len[b]);
        result->examples += batch.batch;
    }
    result->seconds = cli_now() - start;
done:
    attn_batch_free(&batch);
    free(out);
    free(out_len);
    return status;
}
