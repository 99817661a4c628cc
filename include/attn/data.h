/* attn/data.h: character vocabularies and the built-in sequence-to-sequence tasks,
 * generated in code from a seed (nothing is downloaded):
 *   dates    a day from 1900-01-01 to 2099-12-31 in one of 18 human formats ->
 *            ISO "2026-11-24": "24 November 2026", "Nov 24, 2026", "Tue, 24 Nov
 *            2026", "the 24th of November 2026", "24/11/2026", "2026.11.24",
 *            "20261124", "24-NOV-26", ... in lower, UPPER, Title case or as written,
 *            with occasional doubled spaces or spaces around separators. Every format
 *            reads one way: numbers before a four-digit year are day first (slashes
 *            always), weekdays are the real ones, and the one two-digit year is written
 *            only for 1950-2049 (50-99 -> 19xx, 00-49 -> 20xx). Sources of at most 32
 *            characters; valid 1000, test 2000 examples.
 *   reverse, sort, copy   1 to 20 random digits -> reversed, sorted ascending or
 *            copied; valid 1000, test 1000 examples.
 *
 * Every example belongs to one split by a hash of its source string (90 % train, 5 %
 * valid, 5 % test), so the train, valid and test splits never share a source string.
 * The valid and test sets are fixed (the same for every training seed, no source
 * twice); training examples are drawn from a stream keyed by (seed, index), so a
 * batch depends only on its step number. A task's fixed sets are built on their first
 * use, once per process (a few milliseconds; safe from any number of threads). */
#ifndef ATTN_DATA_H
#define ATTN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "attn/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- vocabularies -----------------------------------------------------------------------
 * Ids 0-2 are special; characters (Unicode code points) follow from id 3. */
enum {
    ATTN_TOKEN_PAD = 0,
    ATTN_TOKEN_BOS = 1,
    ATTN_TOKEN_EOS = 2,
    ATTN_TOKEN_FIRST_CHAR = 3,
    ATTN_VOCAB_MAX = 512,
};

typedef struct attn_vocab {
    int size;                          /* ids in use, special ones included */
    uint32_t chars[ATTN_VOCAB_MAX];    /* chars[id] for id >= ATTN_TOKEN_FIRST_CHAR, in
                                          ascending order (encoding relies on it) */
} attn_vocab;

/* The vocabulary of the characters of a UTF-8 string, in code-point order.
 * Fails on invalid UTF-8 (naming the byte offset) or too many distinct characters. */
attn_status attn_vocab_from_chars(attn_vocab *v, const char *chars);
/* Its characters as one UTF-8 string (for checkpoint metadata), cap bytes at most. */
attn_status attn_vocab_chars(const attn_vocab *v, char *out, size_t cap);

/* text (UTF-8) -> ids: (max); *len the count. A character outside the vocabulary
 * fails naming it and its position; a text longer than max fails naming both. */
attn_status attn_vocab_encode(const attn_vocab *v, const char *text, int32_t *ids, int max,
                              int *len);
/* ids: (n) -> UTF-8 text, stopping at EOS or PAD, skipping BOS. */
attn_status attn_vocab_decode(const attn_vocab *v, const int32_t *ids, int n, char *out,
                              size_t cap);

/* ---- tasks ---------------------------------------------------------------------------------- */
typedef enum attn_task_kind {
    ATTN_TASK_DATES,
    ATTN_TASK_REVERSE,
    ATTN_TASK_SORT,
    ATTN_TASK_COPY,
} attn_task_kind;

typedef enum attn_split { ATTN_SPLIT_TRAIN, ATTN_SPLIT_VALID, ATTN_SPLIT_TEST } attn_split;

typedef struct attn_task {
    attn_task_kind kind;
    attn_vocab src_vocab, tgt_vocab;
    int max_src_len, max_tgt_len; /* characters, without BOS/EOS */
    int valid_size, test_size;    /* examples in the fixed splits */
} attn_task;

/* "dates", "reverse", "sort", "copy"; an unknown name fails listing the known ones. */
attn_status attn_task_parse(attn_task_kind *kind, const char *name);
const char *attn_task_name(attn_task_kind kind);
attn_status attn_task_init(attn_task *t, attn_task_kind kind);

/* One example as UTF-8 strings: of the training stream at (seed, index), or the
 * index-th of the fixed valid or test set (seed ignored; index < its size). */
attn_status attn_task_example(const attn_task *t, attn_split split, uint64_t seed,
                              uint64_t index, char *src, size_t src_cap, char *tgt,
                              size_t tgt_cap);

/* A batch as padded ids, examples first_index .. first_index + B - 1:
 *   src: (B, S) source ids padded with PAD, src_len: (B) each in [1, S];
 *   tgt_in: (B, T) = BOS y padded with PAD, tgt_out: (B, T) = y EOS padded with
 *   PAD, tgt_len: (B) = |y| + 1; S = max_src_len, T = max_tgt_len + 1. */
typedef struct attn_batch {
    int batch, capacity, src_cap, tgt_cap; /* B (at most capacity), S, T */
    int32_t *src, *src_len, *tgt_in, *tgt_out, *tgt_len;
} attn_batch;

attn_status attn_batch_alloc(attn_batch *b, const attn_task *t, int batch);
void attn_batch_free(attn_batch *b);
/* Fills b->batch examples; the caller may lower b->batch below the count it was
 * allocated for (a last, partial batch of a fixed split). */
attn_status attn_task_batch(const attn_task *t, attn_split split, uint64_t seed,
                            uint64_t first_index, attn_batch *b);

#ifdef __cplusplus
}
#endif
#endif
