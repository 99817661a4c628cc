/* Character vocabularies: UTF-8 text <-> token ids. */
#include <stdio.h>
#include <string.h>

#include "attn/data.h"
#include "core/error.h"
#include "core/utf8.h"
#include "data/data_internal.h"

static attn_status check_vocab(const attn_vocab *v)
{
    attn_status s = attn_check_not_null(v, "vocab");
    if (s) return s;
    if (v->size < ATTN_TOKEN_FIRST_CHAR || v->size > ATTN_VOCAB_MAX)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "vocab size %d is outside [%d, %d]",
                          v->size, ATTN_TOKEN_FIRST_CHAR, ATTN_VOCAB_MAX);
    return ATTN_OK;
}

/* The first id >= ATTN_TOKEN_FIRST_CHAR whose character is >= cp (v->size if none):
 * the characters are in code-point order. */
static int lower_bound(const attn_vocab *v, uint32_t cp)
{
    /* Without a data-dependent branch (the step compiles to a conditional move):
     * encoding spends its time here, and mispredicted branches dominated it. */
    int base = ATTN_TOKEN_FIRST_CHAR, n = v->size - ATTN_TOKEN_FIRST_CHAR;
    if (n == 0) return base;
    while (n > 1) {
        int half = n / 2;
        base = v->chars[base + half - 1] < cp ? base + half : base;
        n -= half;
    }
    return base + (v->chars[base] < cp);
}

attn_status attn_vocab_from_chars(attn_vocab *v, const char *chars)
{
    attn_status s;
    if ((s = attn_check_not_null(v, "vocab")) || (s = attn_check_not_null(chars, "chars")))
        return s;
    memset(v, 0, sizeof *v);
    v->size = ATTN_TOKEN_FIRST_CHAR;
    for (const char *p = chars, *end = chars + strlen(chars); p < end;) {
        uint32_t cp;
        int n = attn_utf8_char(p, (size_t)(end - p), &cp);
        if (n == 0) return attn_utf8_error(chars, (size_t)(p - chars));
        p += n;
        int at = lower_bound(v, cp);
        if (at < v->size && v->chars[at] == cp) continue;
        if (v->size == ATTN_VOCAB_MAX)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "more than %d distinct characters for one vocabulary",
                              ATTN_VOCAB_MAX - ATTN_TOKEN_FIRST_CHAR);
        memmove(&v->chars[at + 1], &v->chars[at], (size_t)(v->size - at) * sizeof v->chars[0]);
        v->chars[at] = cp;
        v->size++;
    }
    return ATTN_OK;
}

attn_status attn_vocab_chars(const attn_vocab *v, char *out, size_t cap)
{
    attn_status s;
    if ((s = check_vocab(v)) || (s = attn_check_not_null(out, "chars out"))) return s;
    if (cap == 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "chars out has a capacity of 0 bytes");
    size_t used = 0;
    for (int id = ATTN_TOKEN_FIRST_CHAR; id < v->size; id++) {
        char bytes[4];
        int n = attn_utf8_encode(v->chars[id], bytes);
        if (n == 0)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "vocab id %d holds U+%04X, which is not a Unicode character", id,
                              (unsigned)v->chars[id]);
        if (used + (size_t)n >= cap)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "the characters of a vocabulary of %d ids do not fit in %zu bytes",
                              v->size, cap);
        memcpy(out + used, bytes, (size_t)n);
        used += (size_t)n;
    }
    out[used] = '\0';
    return ATTN_OK;
}

void attn_describe_char(char *buf, size_t size, const char *at, int n, uint32_t cp)
{
    if (cp < 0x20 || cp == 0x7f) snprintf(buf, size, "U+%04X", (unsigned)cp);
    else snprintf(buf, size, "'%.*s' (U+%04X)", n, at, (unsigned)cp);
}

attn_status attn_vocab_encode(const attn_vocab *v, const char *text, int32_t *ids, int max,
                              int *len)
{
    attn_status s;
    if ((s = check_vocab(v)) || (s = attn_check_not_null(text, "text")) ||
        (s = attn_check_not_null(ids, "ids")) || (s = attn_check_not_null(len, "len")) ||
        (s = attn_check_at_least(max, 0, "max")))
        return s;
    int count = 0;
    for (const char *p = text, *end = text + strlen(text); p < end; count++) {
        uint32_t cp;
        int n = attn_utf8_char(p, (size_t)(end - p), &cp);
        if (n == 0) return attn_utf8_error(text, (size_t)(p - text));
        if (count < max) {
            int id = lower_bound(v, cp);
            if (id == v->size || v->chars[id] != cp) {
                char what[48];
                attn_describe_char(what, sizeof what, p, n, cp);
                return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                                  "character %s at position %d is not in the vocabulary", what,
                                  count);
            }
            ids[count] = id;
        }
        p += n;
    }
    if (count > max)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                          "text of %d characters is longer than the maximum %d", count, max);
    *len = count;
    return ATTN_OK;
}

attn_status attn_vocab_decode(const attn_vocab *v, const int32_t *ids, int n, char *out,
                              size_t cap)
{
    attn_status s;
    if ((s = check_vocab(v)) || (s = attn_check_not_null(out, "text out")) ||
        (s = attn_check_at_least(n, 0, "ids count")) ||
        (n > 0 && (s = attn_check_not_null(ids, "ids"))))
        return s;
    if (cap == 0)
        return attn_error(ATTN_ERR_INVALID_ARGUMENT, "text out has a capacity of 0 bytes");
    size_t used = 0;
    for (int i = 0; i < n && ids[i] != ATTN_TOKEN_EOS && ids[i] != ATTN_TOKEN_PAD; i++) {
        if (ids[i] == ATTN_TOKEN_BOS) continue;
        if (ids[i] < ATTN_TOKEN_FIRST_CHAR || ids[i] >= v->size)
            return attn_error(ATTN_ERR_INVALID_ARGUMENT,
                              "id %d at position %d is outside the vocabulary of %d ids",
                              (int)ids[i], i, v->size);
        if ((s = attn_utf8_append_char(out, cap, &used, v->chars[ids[i]], ids[i], (size_t)n)))
            return s;
    }
    out[used] = '\0';
    return ATTN_OK;
}
