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
ATTN_API attn_status attn_vocab_from_chars(attn_vocab *v, const char *chars);
/* Its characters as one UTF-8 string (for checkpoint metadata), cap bytes at most. */
ATTN_API attn_status attn_vocab_chars(const attn_vocab *v, char *out, size_t cap);

/* text (UTF-8) -> ids: (max); *len the count. A character outside the vocabulary
 * fails naming it and its position; a text longer than max fails naming both. */
ATTN_API attn_status attn_vocab_encode(const attn_vocab *v, const char *text, int32_t *ids, int max,
                                       int *len);
/* ids: (n) -> UTF-8 text, stopping at EOS or PAD, skipping BOS. */
ATTN_API attn_status attn_vocab_decode(const attn_vocab *v, const int32_t *ids, int n, char *out,
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
ATTN_API attn_status attn_task_parse(attn_task_kind *kind, const char *name);
ATTN_API const char *attn_task_name(attn_task_kind kind);
ATTN_API attn_status attn_task_init(attn_task *t, attn_task_kind kind);

/* One example as UTF-8 strings: of the training stream at (seed, index), or the
 * index-th of the fixed valid or test set (seed ignored; index < its size). */
ATTN_API attn_status attn_task_example(const attn_task *t, attn_split split, uint64_t seed,
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

ATTN_API attn_status attn_batch_alloc(attn_batch *b, const attn_task *t, int batch);
ATTN_API void attn_batch_free(attn_batch *b);
/* Fills b->batch examples; the caller may lower b->batch below the count it was
 * allocated for (a last, partial batch of a fixed split). */
ATTN_API attn_status attn_task_batch(const attn_task *t, attn_split split, uint64_t seed,
                                     uint64_t first_index, attn_batch *b);

/* ---- the fields of a dates source ------------------------------------------------------------
 * Which characters of a source written in one of the dates task's formats hold the day,
 * the month and the year: the characters the field wrote, so "24th" is all day, "Nov"
 * and "November" are month, a weekday and the words "the" and "of" are none, as are
 * spaces and separators. The source is read by its structure, in any letter case and
 * spacing: words are runs of letters or of digits; a month name or its first three
 * letters is the month; "st", "nd", "rd" or "th" right after digits make them an
 * ordinal day; eight digits are year, month, day; four digits are the year; of the
 * one- and two-digit numbers, the one with a named month is the day (two of them: day,
 * then a two-digit year), and the two with a four-digit year are month and day after
 * the year or day and month before it. */
typedef enum attn_date_field {
    ATTN_DATE_NONE,
    ATTN_DATE_DAY,
    ATTN_DATE_MONTH,
    ATTN_DATE_YEAR,
} attn_date_field;

/* src: a dates source (ASCII); field_of_char: (n), n >= strlen(src), gets an
 * attn_date_field for each of src's characters (entries past them are untouched).
 * Fails naming src and what does not fit (a character or word no format writes, a
 * missing or second day, month or year, a day outside 1-31 or a month outside 1-12). */
ATTN_API attn_status attn_dates_fields(const char *src, int *field_of_char, int n);

/* ---- text for language models ------------------------------------------------------------
 * Any UTF-8 text as token ids, either one id per distinct character (in code-point
 * order, ids 0 .. V-1, no special ids) or one per byte (V = 256, id = byte). The
 * first 90 % of the tokens (n * 9 / 10, rounded down) train, the rest validate. */
typedef enum attn_text_unit { ATTN_TEXT_CHARS, ATTN_TEXT_BYTES } attn_text_unit;

enum { ATTN_TEXT_VOCAB_MAX = 4096 };

typedef struct attn_text_vocab {
    attn_text_unit unit;
    int size;                           /* V */
    uint32_t chars[ATTN_TEXT_VOCAB_MAX]; /* ATTN_TEXT_CHARS: the code point of each id,
                                           ascending */
} attn_text_vocab;

/* "chars" or "bytes"; an unknown name fails listing both. */
ATTN_API attn_status attn_text_unit_parse(attn_text_unit *unit, const char *name);
ATTN_API const char *attn_text_unit_name(attn_text_unit unit);

/* The vocabulary of text: (n bytes): its distinct characters, or all 256 bytes.
 * Fails on invalid UTF-8 in chars mode (naming the byte offset), or more than
 * ATTN_TEXT_VOCAB_MAX distinct characters (suggesting bytes). */
ATTN_API attn_status attn_text_vocab_build(attn_text_vocab *v, attn_text_unit unit,
                                           const char *text, size_t n);
/* A chars vocabulary from its code points: (count), which must ascend strictly and
 * be valid Unicode scalar values (what a checkpoint stores). */
ATTN_API attn_status attn_text_vocab_from_chars(attn_text_vocab *v, const uint32_t *chars,
                                                int count);

/* text: (n bytes) -> ids: (cap); *count the ids written. Fails on invalid UTF-8
 * (naming the byte offset), a character outside the vocabulary (naming it, e.g.
 * "character 'é' (U+00E9) at character 4 is not in the vocabulary"), or more
 * than cap ids. */
ATTN_API attn_status attn_text_encode(const attn_text_vocab *v, const char *text, size_t n,
                                      int32_t *ids, size_t cap, size_t *count);
/* ids: (n) -> out: the text (UTF-8 for chars; the raw bytes for bytes), NUL-
 * terminated (a text may hold NULs of its own), *len bytes without the NUL. Fails
 * on an id outside [0, V) or when cap is too small. */
ATTN_API attn_status attn_text_decode(const attn_text_vocab *v, const int32_t *ids, size_t n,
                                      char *out, size_t cap, size_t *len);

typedef struct attn_text {
    attn_text_vocab vocab;
    int32_t *ids;        /* (count) */
    int64_t count;       /* tokens */
    int64_t train_count; /* the first train_count tokens train, the rest validate */
} attn_text;

/* Reads a file whole (or, _from_memory, a buffer of n bytes that `name` names in
 * messages) and encodes it with the vocabulary of its own characters (or bytes).
 * Both splits must hold at least block_size + 1 tokens, which takes 10 block_size
 * + 1 tokens in all. A missing file fails naming it and the system's reason; an
 * empty one, invalid UTF-8 (naming the byte offset), or one too short fails with
 * a message naming the file and the sizes, e.g. "tiny.txt has 40 characters: a
 * block size of 64 needs at least 641"; texts over 1 GiB are refused. On failure
 * *t is left empty (attn_text_free is safe on it). */
ATTN_API attn_status attn_text_load(attn_text *t, const char *path, attn_text_unit unit,
                                    int block_size);
ATTN_API attn_status attn_text_from_memory(attn_text *t, const char *name, const char *text,
                                           size_t n, attn_text_unit unit, int block_size);
ATTN_API void attn_text_free(attn_text *t);

/* Rows first .. first + B - 1 of a step's training batch: windows of T + 1 tokens
 * from the training split, row b starting at attn_text_train_start(t, seed, step,
 * b, T); x: (B, T) the windows' first T tokens, y: (B, T) their last T (the next
 * token of each). A row depends only on (seed, step, b), so a batch split into
 * parts (gradient accumulation, data-parallel ranks) holds the same windows as
 * the whole. T in [1, train_count - 1], step >= 0, first >= 0.
 * The start is, with w = attn_philox4x32(seed, step, b) (the key is the seed, the
 * counter's high word the step and its low word b):
 *   start = (((uint64_t)w[0] << 32) | w[1]) % (train_count - T)
 * (-1 for a NULL text, step < 0, b < 0 or T outside that range). */
ATTN_API int64_t attn_text_train_start(const attn_text *t, uint64_t seed, int64_t step, int b,
                                       int T);
ATTN_API attn_status attn_text_train_batch(const attn_text *t, uint64_t seed, int64_t step,
                                           int first, int B, int T, int32_t *x, int32_t *y);

/* Validation windows: count = min(max_windows, (n_valid - 1) / T) of them (n_valid
 * the validation tokens; 0 if T < 1 or max_windows < 1), window k starting at
 * k * (n_valid - 1 - T) / (count - 1) tokens into the split (int64 arithmetic,
 * integer division; 0 if count is 1), so they spread over the whole split, from
 * its first token to its last, and their inputs never overlap. */
ATTN_API int64_t attn_text_valid_windows(const attn_text *t, int T, int64_t max_windows);
/* Windows first .. first + B - 1 of those count: x, y: (B, T) as for training.
 * count must be in [1, (n_valid - 1) / T]. */
ATTN_API attn_status attn_text_valid_batch(const attn_text *t, int T, int64_t count, int64_t first,
                                           int B, int32_t *x, int32_t *y);

#ifdef __cplusplus
}
#endif
#endif
