/* Text for language models: any UTF-8 text as token ids (one per distinct
 * character, or one per byte), its train / validation split, and the windows that
 * training and validation batches are cut from. */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/data.h"
#include "attn/io.h"
#include "core/error.h"
#include "core/names.h"
#include "core/utf8.h"
#include "data/data_internal.h"

/* Larger texts are refused: their ids alone would take 4 GiB. */
#define TEXT_BYTES_MAX ((size_t)1 << 30)

enum { BYTE_VOCAB_SIZE = 256 };

static const attn_name UNIT_TABLE[] = {{ATTN_TEXT_CHARS, "chars"}, {ATTN_TEXT_BYTES, "bytes"}};
static const attn_names UNIT_NAMES = ATTN_NAMES("text unit", "units", UNIT_TABLE);
ATTN_NAMES_FUNCTIONS(attn_text_unit, UNIT_NAMES, attn_text_unit_name, attn_text_unit_parse)

/* What one token is, in messages about sizes. */
static const char *token_noun(attn_text_unit unit)
{
    return unit == ATTN_TEXT_BYTES ? "bytes" : "characters";
}

/* ---- vocabularies ------------------------------------------------------------------------- */

/* The id of cp in a chars vocabulary, or where it would go to keep the order. */
static int find_char(const attn_text_vocab *v, uint32_t cp)
{
    int lo = 0, hi = v->size;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (v->chars[mid] < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static attn_status check_vocab(const attn_text_vocab *v)
{
    attn_status s = attn_check_not_null(v, "text vocab");
    if (s) return s;
    if (v->unit == ATTN_TEXT_BYTES) {
        if (v->size != BYTE_VOCAB_SIZE)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT, "a bytes vocabulary has %d ids, not %d",
                              BYTE_VOCAB_SIZE, v->size);
        return ATTN_OK;
    }
    if (v->unit != ATTN_TEXT_CHARS)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "text unit %d is neither chars nor bytes",
                          (int)v->unit);
    if (v->size < 1 || v->size > ATTN_TEXT_VOCAB_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "text vocab size %d is outside [1, %d]",
                          v->size, ATTN_TEXT_VOCAB_MAX);
    return ATTN_OK;
}

attn_status attn_text_vocab_build(attn_text_vocab *v, attn_text_unit unit, const char *text,
                                  size_t n)
{
    attn_status s;
    if ((s = attn_check_not_null(v, "text vocab")) ||
        (n > 0 && (s = attn_check_not_null(text, "text"))))
        return s;
    if (!attn_names_has(&UNIT_NAMES, (int)unit))
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "text unit %d is neither chars nor bytes",
                          (int)unit);
    memset(v, 0, sizeof *v);
    v->unit = unit;
    if (unit == ATTN_TEXT_BYTES) {
        v->size = BYTE_VOCAB_SIZE;
        return ATTN_OK;
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = attn_utf8_char(text + i, n - i, &cp);
        if (len == 0) return attn_utf8_error(text, i);
        i += (size_t)len;
        int at = find_char(v, cp);
        if (at < v->size && v->chars[at] == cp) continue;
        if (v->size == ATTN_TEXT_VOCAB_MAX)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "the text has more than %d distinct characters; the bytes unit "
                              "takes any text",
                              ATTN_TEXT_VOCAB_MAX);
        memmove(&v->chars[at + 1], &v->chars[at], (size_t)(v->size - at) * sizeof v->chars[0]);
        v->chars[at] = cp;
        v->size++;
    }
    if (v->size == 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "an empty text has no characters");
    return ATTN_OK;
}

attn_status attn_text_vocab_from_chars(attn_text_vocab *v, const uint32_t *chars, int count)
{
    attn_status s;
    if ((s = attn_check_not_null(v, "text vocab")) ||
        (s = attn_check_not_null(chars, "vocab chars")))
        return s;
    if (count < 1 || count > ATTN_TEXT_VOCAB_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "vocab of %d characters is outside [1, %d]",
                          count, ATTN_TEXT_VOCAB_MAX);
    for (int i = 0; i < count; i++) {
        char bytes[4];
        if (attn_utf8_encode(chars[i], bytes) == 0)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "vocab character %d is U+%04X, which is not a Unicode character", i,
                              (unsigned)chars[i]);
        if (i > 0 && chars[i] <= chars[i - 1])
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "vocab characters %d and %d (U+%04X, U+%04X) do not ascend", i - 1, i,
                              (unsigned)chars[i - 1], (unsigned)chars[i]);
    }
    memset(v, 0, sizeof *v);
    v->unit = ATTN_TEXT_CHARS;
    v->size = count;
    memcpy(v->chars, chars, (size_t)count * sizeof chars[0]);
    return ATTN_OK;
}

/* ---- encoding and decoding ---------------------------------------------------------------- */

attn_status attn_text_encode(const attn_text_vocab *v, const char *text, size_t n, int32_t *ids,
                             size_t cap, size_t *count)
{
    attn_status s;
    if ((s = check_vocab(v)) || (n > 0 && (s = attn_check_not_null(text, "text"))) ||
        (s = attn_check_not_null(ids, "ids")) || (s = attn_check_not_null(count, "id count")))
        return s;
    if (v->unit == ATTN_TEXT_BYTES) {
        if (n > cap)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "the text of %zu bytes does not fit in %zu ids", n, cap);
        for (size_t i = 0; i < n; i++) ids[i] = (unsigned char)text[i];
        *count = n;
        return ATTN_OK;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; k++) {
        uint32_t cp;
        int len = attn_utf8_char(text + i, n - i, &cp);
        if (len == 0) return attn_utf8_error(text, i);
        /* Past cap, only counting goes on, for the message. */
        if (k < cap) {
            int id = find_char(v, cp);
            if (id == v->size || v->chars[id] != cp) {
                char what[48];
                attn_describe_char(what, sizeof what, text + i, len, cp);
                return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                                  "character %s at character %zu is not in the vocabulary", what,
                                  k);
            }
            ids[k] = id;
        }
        i += (size_t)len;
    }
    if (k > cap)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "the text of %zu characters does not fit in %zu ids", k, cap);
    *count = k;
    return ATTN_OK;
}

attn_status attn_text_decode(const attn_text_vocab *v, const int32_t *ids, size_t n, char *out,
                             size_t cap, size_t *len)
{
    attn_status s;
    if ((s = check_vocab(v)) || (n > 0 && (s = attn_check_not_null(ids, "ids"))) ||
        (s = attn_check_not_null(out, "text out")) || (s = attn_check_not_null(len, "text length")))
        return s;
    if (cap == 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "text out has a capacity of 0 bytes");
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= v->size)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "id %d at position %zu is outside the vocabulary of %d tokens",
                              (int)id, i, v->size);
        const char byte = (char)(unsigned char)id;
        if ((s = v->unit == ATTN_TEXT_BYTES
                     ? attn_utf8_append(out, cap, &used, &byte, 1, n)
                     : attn_utf8_append_char(out, cap, &used, v->chars[id], id, n)))
            return s;
    }
    out[used] = '\0';
    *len = used;
    return ATTN_OK;
}

/* ---- a whole text ------------------------------------------------------------------------- */

static attn_status too_large(const char *name)
{
    return attn_error(ATTN_ERR_UNSUPPORTED, "%s is larger than 1 GiB, the most a text may hold",
                      name);
}

/* Frees ids and leaves *t empty, passing the status of a failure on. */
static attn_status fail_text(attn_text *t, int32_t *ids, attn_status s)
{
    free(ids);
    memset(t, 0, sizeof *t);
    return s;
}

attn_status attn_text_from_memory(attn_text *t, const char *name, const char *text, size_t n,
                                  attn_text_unit unit, int block_size)
{
    attn_status s;
    if ((s = attn_check_not_null(t, "text")) || (s = attn_check_not_null(name, "text name")) ||
        (n > 0 && (s = attn_check_not_null(text, "text bytes"))) ||
        (s = attn_check_at_least(block_size, 1, "block size")))
        return s;
    memset(t, 0, sizeof *t);
    if (n == 0) return attn_error(ATTN_ERR_INVALID_ARGUMENT, "%s is empty", name);
    if (n > TEXT_BYTES_MAX) return too_large(name);
    if ((s = attn_text_vocab_build(&t->vocab, unit, text, n)))
        return fail_text(t, NULL, attn_error_about(s, name));
    /* A byte or more per token: n ids always suffice. */
    int32_t *ids = malloc(n * sizeof *ids);
    if (ids == NULL)
        return fail_text(t, NULL, attn_error(ATTN_ERR_OUT_OF_MEMORY,
                                             "no memory for the %zu ids of %s", n, name));
    size_t count;
    if ((s = attn_text_encode(&t->vocab, text, n, ids, n, &count)))
        return fail_text(t, ids, attn_error_about(s, name));
    /* The validation split holds count - floor(9 count / 10) = ceil(count / 10)
     * tokens, block_size + 1 from count = 10 block_size + 1 on; the training split
     * then holds 9 block_size >= block_size + 1. */
    int64_t need = 10 * (int64_t)block_size + 1;
    if ((int64_t)count < need)
        return fail_text(t, ids,
                         attn_error(ATTN_ERR_INVALID_ARGUMENT,
                                    "%s has %zu %s: a block size of %d needs at least %lld", name,
                                    count, token_noun(unit), block_size, (long long)need));
    int32_t *fitted = realloc(ids, count * sizeof *ids);
    t->ids = fitted != NULL ? fitted : ids; /* a failed shrink keeps the larger block */
    t->count = (int64_t)count;
    t->train_count = t->count * 9 / 10;
    return ATTN_OK;
}

attn_status attn_text_load(attn_text *t, const char *path, attn_text_unit unit, int block_size)
{
    attn_status s;
    if ((s = attn_check_not_null(t, "text")) || (s = attn_check_not_null(path, "text path")))
        return s;
    memset(t, 0, sizeof *t);
    char *bytes = NULL;
    size_t n = 0;
    if ((s = attn_read_file(path, TEXT_BYTES_MAX, "a text", &bytes, &n))) return s;
    s = attn_text_from_memory(t, path, bytes, n, unit, block_size);
    free(bytes);
    return s;
}

void attn_text_free(attn_text *t)
{
    if (t == NULL) return;
    free(t->ids);
    memset(t, 0, sizeof *t);
}

/* ---- windows ------------------------------------------------------------------------------ */

static attn_status check_text(const attn_text *t)
{
    attn_status s = attn_check_not_null(t, "text");
    if (s) return s;
    if (t->ids == NULL || t->train_count < 1 || t->train_count >= t->count)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "text of %lld tokens (%lld training) has no loaded split",
                          (long long)t->count, (long long)t->train_count);
    return ATTN_OK;
}

/* Checks 1 <= T < tokens, so that a split of `tokens` holds a window of T + 1. */
static attn_status check_window(int T, int64_t tokens, const char *split)
{
    if (T < 1 || T >= tokens)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "block size %d is outside [1, %lld] for the %lld tokens of the %s split",
                          T, (long long)tokens - 1, (long long)tokens, split);
    return ATTN_OK;
}

static attn_status check_batch_out(int B, const int32_t *x, const int32_t *y)
{
    attn_status s;
    if ((s = attn_check_at_least(B, 1, "batch size")) || (s = attn_check_not_null(x, "x")) ||
        (s = attn_check_not_null(y, "y")))
        return s;
    return ATTN_OK;
}

/* x: (T) the window's first T tokens, y: (T) its last T. */
static void cut_window(const attn_text *t, int64_t start, int T, int32_t *x, int32_t *y)
{
    memcpy(x, t->ids + start, (size_t)T * sizeof *x);
    memcpy(y, t->ids + start + 1, (size_t)T * sizeof *y);
}

int64_t attn_text_train_start(const attn_text *t, uint64_t seed, int64_t step, int b, int T)
{
    if (t == NULL || step < 0 || b < 0 || T < 1 || T >= t->train_count) return -1;
    uint32_t w[4];
    attn_philox4x32(w, seed, (uint64_t)step, (uint64_t)b);
    uint64_t r = ((uint64_t)w[0] << 32) | w[1];
    return (int64_t)(r % (uint64_t)(t->train_count - T));
}

attn_status attn_text_train_batch(const attn_text *t, uint64_t seed, int64_t step, int first,
                                  int B, int T, int32_t *x, int32_t *y)
{
    attn_status s;
    if ((s = check_text(t)) || (s = check_window(T, t->train_count, "training")) ||
        (s = check_batch_out(B, x, y)) || (s = attn_check_at_least(step, 0, "step")) ||
        (s = attn_check_at_least(first, 0, "first row")))
        return s;
    if (B > INT_MAX - first)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "%d rows from row %d pass the last row number, %d", B, first, INT_MAX);
    for (int b = 0; b < B; b++) {
        int64_t start = attn_text_train_start(t, seed, step, first + b, T);
        cut_window(t, start, T, x + (size_t)b * (size_t)T, y + (size_t)b * (size_t)T);
    }
    return ATTN_OK;
}

int64_t attn_text_valid_windows(const attn_text *t, int T, int64_t max_windows)
{
    if (t == NULL || T < 1 || max_windows < 1) return 0;
    int64_t fit = (t->count - t->train_count - 1) / T;
    return fit < max_windows ? fit : max_windows;
}

attn_status attn_text_valid_batch(const attn_text *t, int T, int64_t count, int64_t first, int B,
                                  int32_t *x, int32_t *y)
{
    attn_status s;
    int64_t n_valid = t != NULL ? t->count - t->train_count : 0;
    if ((s = check_text(t)) || (s = check_window(T, n_valid, "validation")) ||
        (s = check_batch_out(B, x, y)) || (s = attn_check_at_least(first, 0, "first window")))
        return s;
    int64_t fit = (n_valid - 1) / T;
    if (count < 1 || count > fit)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "validation window count %lld is outside [1, %lld] for a block size "
                          "of %d",
                          (long long)count, (long long)fit, T);
    if (first + B > count)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "validation windows %lld to %lld are past the end of the %lld",
                          (long long)first, (long long)(first + B - 1), (long long)count);
    int64_t span = n_valid - 1 - T; /* the last window's start */
    for (int b = 0; b < B; b++) {
        int64_t k = first + b;
        int64_t start = count == 1 ? 0 : k * span / (count - 1);
        cut_window(t, t->train_count + start, T, x + (size_t)b * (size_t)T,
                   y + (size_t)b * (size_t)T);
    }
    return ATTN_OK;
}
