/* Text for language models: UTF-8 and byte round trips on random text, vocabularies,
 * the train / validation split and its minimum size, files and their messages, and
 * the training and validation windows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* cp as UTF-8 into out; returns its length. The test's own encoder, so that round
 * trips do not check the library against itself. */
static int put_utf8(uint32_t cp, char *out)
{
    unsigned char *p = (unsigned char *)out;
    if (cp < 0x80) {
        p[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (unsigned char)(0xc0 | (cp >> 6));
        p[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        p[0] = (unsigned char)(0xe0 | (cp >> 12));
        p[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        p[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    p[0] = (unsigned char)(0xf0 | (cp >> 18));
    p[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    p[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    p[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Mostly ASCII, then one- to four-byte characters, and now and then U+0000. */
static uint32_t random_char(attn_rng *rng)
{
    uint32_t r = attn_rng_below(rng, 100);
    if (r == 0) return 0;
    if (r < 50) return 0x20 + attn_rng_below(rng, 0x5f);
    if (r < 55) return '\n';
    if (r < 70) return 0xa0 + attn_rng_below(rng, 0x60);    /* Latin-1 */
    if (r < 80) return 0x391 + attn_rng_below(rng, 0x39);   /* Greek */
    if (r < 90) return 0x4e00 + attn_rng_below(rng, 0x100); /* CJK */
    return 0x1f600 + attn_rng_below(rng, 0x50);             /* emoji */
}

/* n random characters -> chars: (n) and their UTF-8 in out (4 n bytes); returns
 * the byte count. */
static size_t random_text(attn_rng *rng, size_t n, uint32_t *chars, char *out)
{
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        chars[i] = random_char(rng);
        used += (size_t)put_utf8(chars[i], out + used);
    }
    return used;
}

typedef struct random_case {
    size_t n, bytes; /* characters, UTF-8 bytes */
    uint32_t *chars;
    char *text;
} random_case;

static random_case make_random(attn_rng *rng, size_t n)
{
    random_case c = {n, 0, malloc(n * sizeof(uint32_t)), malloc(4 * n + 1)};
    assert_non_null(c.chars);
    assert_non_null(c.text);
    c.bytes = random_text(rng, n, c.chars, c.text);
    return c;
}

static void free_random(random_case *c)
{
    free(c->chars);
    free(c->text);
}

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* ---- vocabularies, encoding, decoding ------------------------------------------------ */

static void test_unit_names(void **state)
{
    (void)state;
    attn_text_unit unit;
    assert_int_equal(attn_text_unit_parse(&unit, "chars"), ATTN_OK);
    assert_int_equal(unit, ATTN_TEXT_CHARS);
    assert_string_equal(attn_text_unit_name(unit), "chars");
    assert_int_equal(attn_text_unit_parse(&unit, "bytes"), ATTN_OK);
    assert_int_equal(unit, ATTN_TEXT_BYTES);
    assert_string_equal(attn_text_unit_name(unit), "bytes");
    assert_string_equal(attn_text_unit_name((attn_text_unit)7), "unknown");
    test_expect_invalid(attn_text_unit_parse(&unit, "words"),
                        "unknown text unit 'words'; the units are chars and bytes");
    test_expect_invalid(attn_text_unit_parse(&unit, NULL), "text unit name is NULL");
}

static void test_chars_round_trip(void **state)
{
    (void)state;
    attn_rng rng = test_rng(1);
    for (int trial = 0; trial < 20; trial++) {
        random_case c = make_random(&rng, 1 + attn_rng_below(&rng, 3000));
        attn_text_vocab v;
        assert_int_equal(attn_text_vocab_build(&v, ATTN_TEXT_CHARS, c.text, c.bytes), ATTN_OK);
        assert_int_equal(v.unit, ATTN_TEXT_CHARS);

        /* The vocabulary is the sorted distinct characters. */
        uint32_t *distinct = malloc(c.n * sizeof *distinct);
        assert_non_null(distinct);
        memcpy(distinct, c.chars, c.n * sizeof *distinct);
        qsort(distinct, c.n, sizeof *distinct, compare_u32);
        size_t unique = 0;
        for (size_t i = 0; i < c.n; i++)
            if (i == 0 || distinct[i] != distinct[i - 1]) distinct[unique++] = distinct[i];
        assert_int_equal(v.size, (int)unique);
        assert_memory_equal(v.chars, distinct, unique * sizeof *distinct);
        free(distinct);

        /* What a checkpoint stores gives the same vocabulary back. */
        attn_text_vocab again;
        assert_int_equal(attn_text_vocab_from_chars(&again, v.chars, v.size), ATTN_OK);
        assert_memory_equal(&again, &v, sizeof v);

        int32_t *ids = malloc(c.n * sizeof *ids);
        assert_non_null(ids);
        size_t count = 0;
        assert_int_equal(attn_text_encode(&v, c.text, c.bytes, ids, c.n, &count), ATTN_OK);
        assert_int_equal(count, c.n);
        for (size_t i = 0; i < c.n; i++) {
            assert_in_range(ids[i], 0, v.size - 1);
            assert_int_equal(v.chars[ids[i]], c.chars[i]);
        }
        test_expect_invalid(attn_text_encode(&v, c.text, c.bytes, ids, c.n - 1, &count),
                            "does not fit in");

        char *back = malloc(c.bytes + 1);
        assert_non_null(back);
        size_t len = 0;
        assert_int_equal(attn_text_decode(&v, ids, c.n, back, c.bytes + 1, &len), ATTN_OK);
        assert_int_equal(len, c.bytes);
        assert_memory_equal(back, c.text, c.bytes);
        assert_int_equal(back[len], '\0');
        test_expect_invalid(attn_text_decode(&v, ids, c.n, back, c.bytes, &len), "does not fit in");
        free(back);
        free(ids);
        free_random(&c);
    }
}

static void test_bytes_round_trip(void **state)
{
    (void)state;
    attn_rng rng = test_rng(2);
    for (int trial = 0; trial < 20; trial++) {
        size_t n = 1 + attn_rng_below(&rng, 2000);
        /* Any bytes at all: NULs, and sequences that are no UTF-8. */
        char *text = malloc(n);
        int32_t *ids = malloc(n * sizeof *ids);
        char *back = malloc(n + 1);
        assert_non_null(text);
        assert_non_null(ids);
        assert_non_null(back);
        for (size_t i = 0; i < n; i++) text[i] = (char)attn_rng_below(&rng, 256);
        attn_text_vocab v;
        assert_int_equal(attn_text_vocab_build(&v, ATTN_TEXT_BYTES, text, n), ATTN_OK);
        assert_int_equal(v.size, 256);
        size_t count = 0, len = 0;
        assert_int_equal(attn_text_encode(&v, text, n, ids, n, &count), ATTN_OK);
        assert_int_equal(count, n);
        for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], (unsigned char)text[i]);
        assert_int_equal(attn_text_decode(&v, ids, n, back, n + 1, &len), ATTN_OK);
        assert_int_equal(len, n);
        assert_memory_equal(back, text, n);
        test_expect_invalid(attn_text_encode(&v, text, n, ids, n - 1, &count), "does not fit in");
        free(text);
        free(ids);
        free(back);
    }
}

static void test_vocab_from_chars_checks(void **state)
{
    (void)state;
    attn_text_vocab v;
    const uint32_t repeated[] = {'a', 'b', 'b'};
    test_expect_invalid(attn_text_vocab_from_chars(&v, repeated, 3),
                        "vocab characters 1 and 2 (U+0062, U+0062) do not ascend");
    const uint32_t descending[] = {'b', 'a'};
    test_expect_invalid(attn_text_vocab_from_chars(&v, descending, 2), "do not ascend");
    const uint32_t surrogate[] = {'a', 0xd800};
    test_expect_invalid(attn_text_vocab_from_chars(&v, surrogate, 2),
                        "vocab character 1 is U+D800, which is not a Unicode character");
    const uint32_t too_large[] = {0x110000};
    test_expect_invalid(attn_text_vocab_from_chars(&v, too_large, 1), "U+110000");
    test_expect_invalid(attn_text_vocab_from_chars(&v, repeated, 0),
                        "vocab of 0 characters is outside [1, 4096]");
    test_expect_invalid(attn_text_vocab_from_chars(&v, repeated, ATTN_TEXT_VOCAB_MAX + 1),
                        "vocab of 4097 characters");
    test_expect_invalid(attn_text_vocab_from_chars(&v, NULL, 1), "vocab chars is NULL");
    const uint32_t good[] = {0, '\n', 'a', 0xe9, 0x10ffff};
    assert_int_equal(attn_text_vocab_from_chars(&v, good, 5), ATTN_OK);
    assert_int_equal(v.unit, ATTN_TEXT_CHARS);
    assert_int_equal(v.size, 5);
    assert_memory_equal(v.chars, good, sizeof good);
}

static void test_too_many_characters(void **state)
{
    (void)state;
    /* ATTN_TEXT_VOCAB_MAX + 1 distinct CJK characters, three bytes each. */
    enum { N = ATTN_TEXT_VOCAB_MAX + 1 };
    char *text = malloc(3 * N);
    assert_non_null(text);
    size_t n = 0;
    for (uint32_t i = 0; i < N; i++) n += (size_t)put_utf8(0x4e00 + i, text + n);
    attn_text_vocab v;
    test_expect_invalid(attn_text_vocab_build(&v, ATTN_TEXT_CHARS, text, n),
                        "more than 4096 distinct characters; the bytes unit takes any text");
    assert_int_equal(attn_text_vocab_build(&v, ATTN_TEXT_CHARS, text, n - 3), ATTN_OK);
    assert_int_equal(v.size, ATTN_TEXT_VOCAB_MAX);
    assert_int_equal(attn_text_vocab_build(&v, ATTN_TEXT_BYTES, text, n), ATTN_OK);
    free(text);
}

static void test_encode_errors(void **state)
{
    (void)state;
    attn_text_vocab v;
    const char chars[] = "abcd \n";
    assert_int_equal(attn_text_vocab_build(&v, ATTN_TEXT_CHARS, chars, strlen(chars)), ATTN_OK);
    int32_t ids[16];
    size_t count;
    test_expect_invalid(attn_text_encode(&v, "abcdé", strlen("abcdé"), ids, 16, &count),
                        "character 'é' (U+00E9) at character 4 is not in the vocabulary");
    test_expect_invalid(attn_text_encode(&v, "a€b\t", strlen("a€b\t"), ids, 16, &count),
                        "character '€' (U+20AC) at character 1");
    test_expect_invalid(attn_text_encode(&v, "ab\tc", 4, ids, 16, &count),
                        "character U+0009 at character 2 is not");
    test_expect_invalid(attn_text_encode(&v, "abcdabcd", 8, ids, 4, &count),
                        "the text of 8 characters does not fit in 4 ids");

    static const struct {
        const char *text;
        size_t n;
        const char *message;
    } cases[] = {
        {"ab\xff", 3, "invalid UTF-8 at byte 2 (0xff)"},           /* never a UTF-8 byte */
        {"a\x80", 2, "invalid UTF-8 at byte 1 (0x80)"},            /* a stray continuation */
        {"abc\xc3", 4, "invalid UTF-8 at byte 3 (0xc3)"},          /* cut short */
        {"a\xc3\xa9", 2, "invalid UTF-8 at byte 1 (0xc3)"},        /* cut short by n */
        {"\xe2\x82\xac", 2, "invalid UTF-8 at byte 0 (0xe2)"},     /* cut short by n */
        {"\xc3\0", 2, "invalid UTF-8 at byte 0 (0xc3)"},           /* a NUL inside */
        {"\xc0\xaf", 2, "invalid UTF-8 at byte 0 (0xc0)"},         /* overlong '/' */
        {"a\xed\xa0\x80", 4, "invalid UTF-8 at byte 1 (0xed)"},    /* a surrogate */
        {"\xf4\x90\x80\x80", 4, "invalid UTF-8 at byte 0 (0xf4)"}, /* past U+10FFFF */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        test_expect_invalid(attn_text_encode(&v, cases[i].text, cases[i].n, ids, 16, &count),
                            cases[i].message);
        attn_text_vocab other;
        test_expect_invalid(
            attn_text_vocab_build(&other, ATTN_TEXT_CHARS, cases[i].text, cases[i].n),
            cases[i].message);
    }
    /* U+0000 is a character like any other. */
    attn_text_vocab with_nul;
    assert_int_equal(attn_text_vocab_build(&with_nul, ATTN_TEXT_CHARS, "b\0a", 3), ATTN_OK);
    assert_int_equal(with_nul.size, 3);
    assert_int_equal(with_nul.chars[0], 0);

    test_expect_invalid(attn_text_vocab_build(&v, ATTN_TEXT_CHARS, "", 0),
                        "an empty text has no characters");
    test_expect_invalid(attn_text_vocab_build(&v, (attn_text_unit)3, "a", 1),
                        "text unit 3 is neither chars nor bytes");
    test_expect_invalid(attn_text_encode(NULL, "a", 1, ids, 16, &count), "text vocab is NULL");
    assert_int_equal(attn_text_vocab_build(&v, ATTN_TEXT_CHARS, chars, strlen(chars)), ATTN_OK);
    test_expect_invalid(attn_text_encode(&v, NULL, 1, ids, 16, &count), "text is NULL");
    v.size = 0;
    test_expect_invalid(attn_text_encode(&v, "a", 1, ids, 16, &count),
                        "text vocab size 0 is outside [1, 4096]");
    attn_text_vocab bytes;
    assert_int_equal(attn_text_vocab_build(&bytes, ATTN_TEXT_BYTES, "", 0), ATTN_OK);
    bytes.size = 100;
    test_expect_invalid(attn_text_encode(&bytes, "a", 1, ids, 16, &count),
                        "a bytes vocabulary has 256 ids, not 100");
}

static void test_decode_errors(void **state)
{
    (void)state;
    attn_text_vocab v;
    assert_int_equal(attn_text_vocab_build(&v, ATTN_TEXT_CHARS, "abcé€", strlen("abcé€")), ATTN_OK);
    char out[16];
    size_t len;
    const int32_t bad[] = {0, 5};
    test_expect_invalid(attn_text_decode(&v, bad, 2, out, sizeof out, &len),
                        "id 5 at position 1 is outside the vocabulary of 5 tokens");
    const int32_t negative[] = {-1};
    test_expect_invalid(attn_text_decode(&v, negative, 1, out, sizeof out, &len), "id -1");
    const int32_t wide[] = {4, 4}; /* 6 bytes and the NUL */
    test_expect_invalid(attn_text_decode(&v, wide, 2, out, 6, &len),
                        "the text of 2 ids does not fit in 6 bytes");
    assert_int_equal(attn_text_decode(&v, wide, 2, out, 7, &len), ATTN_OK);
    assert_string_equal(out, "€€");
    assert_int_equal(len, 6);
    test_expect_invalid(attn_text_decode(&v, wide, 2, out, 0, &len), "capacity of 0 bytes");
    assert_int_equal(attn_text_decode(&v, NULL, 0, out, 1, &len), ATTN_OK);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
}

/* ---- whole texts and files ------------------------------------------------------------- */

static void test_split_and_minimum(void **state)
{
    (void)state;
    attn_rng rng = test_rng(3);
    for (int trial = 0; trial < 20; trial++) {
        int T = 1 + (int)attn_rng_below(&rng, 100);
        size_t need = 10 * (size_t)T + 1;
        random_case c = make_random(&rng, need + attn_rng_below(&rng, 500));
        attn_text t;
        assert_int_equal(attn_text_from_memory(&t, "random", c.text, c.bytes, ATTN_TEXT_CHARS, T),
                         ATTN_OK);
        assert_int_equal(t.count, (int64_t)c.n);
        assert_int_equal(t.train_count, (int64_t)c.n * 9 / 10);
        assert_true(t.train_count >= T + 1);
        assert_true(t.count - t.train_count >= T + 1);
        for (size_t i = 0; i < c.n; i++) assert_int_equal(t.vocab.chars[t.ids[i]], c.chars[i]);
        attn_text_free(&t);
        assert_null(t.ids);
        attn_text_free(&t);

        /* One character fewer than the block size needs: the exact minimum. */
        size_t short_bytes = 0;
        char scratch[4];
        for (size_t i = 0; i + 1 < need; i++) short_bytes += (size_t)put_utf8(c.chars[i], scratch);
        char message[128];
        snprintf(message, sizeof message,
                 "short.txt has %zu characters: a block size of %d needs at least %zu", need - 1, T,
                 need);
        test_expect_invalid(
            attn_text_from_memory(&t, "short.txt", c.text, short_bytes, ATTN_TEXT_CHARS, T),
            message);
        assert_null(t.ids);
        assert_int_equal(t.count, 0);
        assert_int_equal(t.vocab.size, 0);

        /* Bytes count each byte of a multi-byte character. */
        assert_int_equal(
            attn_text_from_memory(&t, "bytes", c.text, short_bytes, ATTN_TEXT_BYTES, T), ATTN_OK);
        assert_int_equal(t.count, (int64_t)short_bytes);
        assert_int_equal(t.vocab.size, 256);
        attn_text_free(&t);
        free_random(&c);
    }
    attn_text t;
    test_expect_invalid(attn_text_from_memory(&t, "tiny.txt", "0123456789", 10, ATTN_TEXT_BYTES, 1),
                        "tiny.txt has 10 bytes: a block size of 1 needs at least 11");
    test_expect_invalid(attn_text_from_memory(&t, "none.txt", "", 0, ATTN_TEXT_CHARS, 4),
                        "none.txt is empty");
    test_expect_invalid(attn_text_from_memory(&t, "bad.txt", "abc\xff", 4, ATTN_TEXT_CHARS, 4),
                        "bad.txt: invalid UTF-8 at byte 3 (0xff)");
    test_expect_invalid(attn_text_from_memory(&t, "x", "abc", 3, ATTN_TEXT_CHARS, 0),
                        "block size is 0");
    test_expect_invalid(attn_text_from_memory(&t, NULL, "abc", 3, ATTN_TEXT_CHARS, 1),
                        "text name is NULL");
}

static void write_file(const char *path, const char *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void expect_io_error(attn_status status, const char *fragment)
{
    if (status != ATTN_ERR_IO || strstr(attn_last_error(), fragment) == NULL)
        print_error("expected an I/O error naming '%s', got status %d: '%s'\n", fragment,
                    (int)status, attn_last_error());
    assert_int_equal(status, ATTN_ERR_IO);
    assert_non_null(strstr(attn_last_error(), fragment));
}

static void test_load_files(void **state)
{
    (void)state;
    char *dir = test_temp_dir("text");
    char path[64], message[256];

    attn_rng rng = test_rng(4);
    random_case c = make_random(&rng, 5000);
    snprintf(path, sizeof path, "%s/random.txt", dir);
    write_file(path, c.text, c.bytes);
    attn_text loaded, direct;
    assert_int_equal(attn_text_load(&loaded, path, ATTN_TEXT_CHARS, 64), ATTN_OK);
    assert_int_equal(attn_text_from_memory(&direct, "x", c.text, c.bytes, ATTN_TEXT_CHARS, 64),
                     ATTN_OK);
    assert_memory_equal(&loaded.vocab, &direct.vocab, sizeof direct.vocab);
    assert_int_equal(loaded.count, direct.count);
    assert_int_equal(loaded.train_count, direct.train_count);
    assert_memory_equal(loaded.ids, direct.ids, (size_t)direct.count * sizeof direct.ids[0]);
    attn_text_free(&loaded);
    attn_text_free(&direct);
    free_random(&c);

    assert_int_equal(remove(path), 0); /* a file that is not there */
    expect_io_error(attn_text_load(&loaded, path, ATTN_TEXT_CHARS, 64), "cannot open '");
    assert_non_null(strstr(attn_last_error(), "random.txt': No such file or directory"));
    assert_null(loaded.ids);
    expect_io_error(attn_text_load(&loaded, dir, ATTN_TEXT_CHARS, 64), "cannot read '");

    snprintf(path, sizeof path, "%s/empty.txt", dir);
    write_file(path, "", 0);
    snprintf(message, sizeof message, "%s is empty", path);
    test_expect_invalid(attn_text_load(&loaded, path, ATTN_TEXT_BYTES, 64), message);

    snprintf(path, sizeof path, "%s/tiny.txt", dir);
    write_file(path, "Forty characters, of which é is one.....",
               strlen("Forty characters, of which é is one....."));
    snprintf(message, sizeof message, "%s has 40 characters: a block size of 64 needs at least 641",
             path);
    test_expect_invalid(attn_text_load(&loaded, path, ATTN_TEXT_CHARS, 64), message);
    snprintf(message, sizeof message, "%s has 41 bytes", path);
    test_expect_invalid(attn_text_load(&loaded, path, ATTN_TEXT_BYTES, 64), message);

    snprintf(path, sizeof path, "%s/latin1.txt", dir);
    write_file(path, "caf\xe9 au lait", 12);
    snprintf(message, sizeof message, "%s: invalid UTF-8 at byte 3 (0xe9)", path);
    test_expect_invalid(attn_text_load(&loaded, path, ATTN_TEXT_CHARS, 1), message);

    test_temp_dir_remove(dir);
    test_expect_invalid(attn_text_load(&loaded, NULL, ATTN_TEXT_CHARS, 1), "text path is NULL");
}

/* ---- windows ----------------------------------------------------------------------------- */

/* A loaded random text of n characters. */
static attn_text random_loaded(attn_rng *rng, size_t n, int block_size)
{
    random_case c = make_random(rng, n);
    attn_text t;
    assert_int_equal(
        attn_text_from_memory(&t, "random", c.text, c.bytes, ATTN_TEXT_CHARS, block_size), ATTN_OK);
    free_random(&c);
    return t;
}

/* x, y: (B, T) hold the windows starting at starts: (B), offsets into t->ids. */
static void expect_windows(const attn_text *t, const int64_t *starts, int B, int T,
                           const int32_t *x, const int32_t *y)
{
    for (int b = 0; b < B; b++) {
        assert_true(starts[b] >= 0 && starts[b] + T < t->count);
        assert_memory_equal(x + (size_t)b * T, t->ids + starts[b], (size_t)T * sizeof *x);
        assert_memory_equal(y + (size_t)b * T, t->ids + starts[b] + 1, (size_t)T * sizeof *y);
    }
}

static void test_train_batches(void **state)
{
    (void)state;
    attn_rng rng = test_rng(5);
    attn_text t = random_loaded(&rng, 4000 + attn_rng_below(&rng, 4000), 64);
    enum { BMAX = 16, TMAX = 64 };
    int32_t x[BMAX * TMAX], y[BMAX * TMAX], x2[BMAX * TMAX], y2[BMAX * TMAX];
    int64_t starts[BMAX], lowest = INT64_MAX, highest = -1;
    for (int trial = 0; trial < 200; trial++) {
        int B = 8 + (int)attn_rng_below(&rng, BMAX - 7), T = 1 + (int)attn_rng_below(&rng, TMAX);
        uint64_t seed = ((uint64_t)attn_rng_u32(&rng) << 32) | attn_rng_u32(&rng);
        int64_t step = attn_rng_below(&rng, 100000);
        assert_int_equal(attn_text_train_batch(&t, seed, step, 0, B, T, x, y), ATTN_OK);
        for (int b = 0; b < B; b++) {
            /* The documented formula, from the Philox block at (seed; step, b). */
            uint32_t w[4];
            attn_philox4x32(w, seed, (uint64_t)step, (uint64_t)b);
            uint64_t r = ((uint64_t)w[0] << 32) | w[1];
            starts[b] = (int64_t)(r % (uint64_t)(t.train_count - T));
            assert_int_equal(attn_text_train_start(&t, seed, step, b, T), starts[b]);
            /* The window stays inside the training split. */
            assert_true(starts[b] + T < t.train_count);
            if (starts[b] < lowest) lowest = starts[b];
            if (starts[b] > highest) highest = starts[b];
        }
        expect_windows(&t, starts, B, T, x, y);

        /* The same step again: the same batch; the next step or another seed: others. */
        assert_int_equal(attn_text_train_batch(&t, seed, step, 0, B, T, x2, y2), ATTN_OK);
        assert_memory_equal(x2, x, (size_t)B * T * sizeof *x);
        assert_memory_equal(y2, y, (size_t)B * T * sizeof *y);
        /* Cut in two at any row, the parts hold the whole batch's rows. */
        int cut = (int)attn_rng_below(&rng, (uint32_t)B + 1);
        assert_int_equal(attn_text_train_batch(&t, seed, step, 0, cut, T, x2, y2),
                         cut ? ATTN_OK : ATTN_ERR_INVALID_ARGUMENT);
        assert_int_equal(attn_text_train_batch(&t, seed, step, cut, B - cut, T,
                                               x2 + (size_t)cut * T, y2 + (size_t)cut * T),
                         cut < B ? ATTN_OK : ATTN_ERR_INVALID_ARGUMENT);
        assert_memory_equal(x2, x, (size_t)B * T * sizeof *x);
        assert_memory_equal(y2, y, (size_t)B * T * sizeof *y);
        int differ = 0;
        for (int b = 0; b < B; b++)
            differ += attn_text_train_start(&t, seed, step + 1, b, T) != starts[b];
        assert_true(differ > 0);
        differ = 0;
        for (int b = 0; b < B; b++)
            differ += attn_text_train_start(&t, seed + 1, step, b, T) != starts[b];
        assert_true(differ > 0);
    }
    /* Over 2000-odd windows, the starts reach both ends of the split. */
    assert_true(lowest < t.train_count / 20);
    assert_true(highest > t.train_count - TMAX - t.train_count / 20);

    char message[128];
    snprintf(message, sizeof message, "block size %lld is outside [1, %lld]",
             (long long)t.train_count, (long long)t.train_count - 1);
    /* Only the arguments are checked before the windows are cut: x and y may be small. */
    test_expect_invalid(attn_text_train_batch(&t, 1, 0, 0, 1, (int)t.train_count, x, y), message);
    test_expect_invalid(attn_text_train_batch(&t, 1, 0, 0, 1, 0, x, y), "block size 0 is outside");
    test_expect_invalid(attn_text_train_batch(&t, 1, 0, 0, 0, 4, x, y), "batch size is 0");
    test_expect_invalid(attn_text_train_batch(&t, 1, -1, 0, 1, 4, x, y), "step is -1");
    test_expect_invalid(attn_text_train_batch(&t, 1, 0, 0, 1, 4, NULL, y), "x is NULL");
    test_expect_invalid(attn_text_train_batch(&t, 1, 0, -1, 1, 4, x, y), "first row is -1");
    test_expect_invalid(attn_text_train_batch(&t, 1, 0, INT_MAX, 2, 4, x, y),
                        "2 rows from row 2147483647 pass the last row number");
    assert_int_equal(attn_text_train_start(&t, 1, 0, 0, (int)t.train_count), -1);
    assert_int_equal(attn_text_train_start(&t, 1, -1, 0, 4), -1);
    assert_int_equal(attn_text_train_start(NULL, 1, 0, 0, 4), -1);
    attn_text_free(&t);
    test_expect_invalid(attn_text_train_batch(&t, 1, 0, 0, 1, 4, x, y), "has no loaded split");
}

static void test_valid_windows(void **state)
{
    (void)state;
    attn_rng rng = test_rng(6);
    for (int trial = 0; trial < 40; trial++) {
        attn_text t = random_loaded(&rng, 1000 + attn_rng_below(&rng, 3000), 1);
        int64_t n_valid = t.count - t.train_count;
        int T = 1 + (int)attn_rng_below(&rng, 80);
        int64_t max_windows = 1 + attn_rng_below(&rng, 100);
        int64_t count = attn_text_valid_windows(&t, T, max_windows);
        int64_t fit = (n_valid - 1) / T;
        assert_int_equal(count, fit < max_windows ? fit : max_windows);

        int32_t *x = malloc((size_t)count * T * sizeof *x),
                *y = malloc((size_t)count * T * sizeof *y);
        int64_t *starts = malloc((size_t)count * sizeof *starts);
        assert_non_null(x);
        assert_non_null(y);
        assert_non_null(starts);
        assert_int_equal(attn_text_valid_batch(&t, T, count, 0, (int)count, x, y), ATTN_OK);
        for (int64_t k = 0; k < count; k++)
            starts[k] = t.train_count + (count == 1 ? 0 : k * (n_valid - 1 - T) / (count - 1));
        expect_windows(&t, starts, (int)count, T, x, y);
        /* Inside the validation split, from its first token to its last, the inputs
         * of different windows never overlap. */
        assert_int_equal(starts[0], t.train_count);
        if (count > 1) assert_int_equal(starts[count - 1] + T, t.count - 1);
        for (int64_t k = 1; k < count; k++) assert_true(starts[k] - starts[k - 1] >= T);

        /* A batch of some of them is the same windows. */
        int64_t first = attn_rng_below(&rng, (uint32_t)count);
        int B = 1 + (int)attn_rng_below(&rng, (uint32_t)(count - first));
        int32_t *xs = malloc((size_t)B * T * sizeof *xs), *ys = malloc((size_t)B * T * sizeof *ys);
        assert_non_null(xs);
        assert_non_null(ys);
        assert_int_equal(attn_text_valid_batch(&t, T, count, first, B, xs, ys), ATTN_OK);
        assert_memory_equal(xs, x + first * T, (size_t)B * T * sizeof *xs);
        assert_memory_equal(ys, y + first * T, (size_t)B * T * sizeof *ys);

        char message[128];
        snprintf(message, sizeof message,
                 "validation windows %lld to %lld are past the end of the %lld", (long long)first,
                 (long long)count, (long long)count);
        test_expect_invalid(
            attn_text_valid_batch(&t, T, count, first, (int)(count - first + 1), xs, ys), message);
        snprintf(message, sizeof message,
                 "validation window count %lld is outside [1, %lld] for a block size of %d",
                 (long long)(fit + 1), (long long)fit, T);
        test_expect_invalid(attn_text_valid_batch(&t, T, fit + 1, 0, 1, xs, ys), message);
        free(xs);
        free(ys);
        free(x);
        free(y);
        free(starts);

        /* A single window starts at the split. */
        int32_t one_x[80], one_y[80];
        assert_int_equal(attn_text_valid_windows(&t, T, 1), 1);
        assert_int_equal(attn_text_valid_batch(&t, T, 1, 0, 1, one_x, one_y), ATTN_OK);
        assert_memory_equal(one_x, t.ids + t.train_count, (size_t)T * sizeof *one_x);

        assert_int_equal(attn_text_valid_windows(&t, (int)n_valid, 10), 0);
        assert_int_equal(attn_text_valid_windows(&t, T, 0), 0);
        assert_int_equal(attn_text_valid_windows(&t, 0, 10), 0);
        test_expect_invalid(attn_text_valid_batch(&t, (int)n_valid, 1, 0, 1, one_x, one_y),
                            "of the validation split");
        test_expect_invalid(attn_text_valid_batch(&t, T, 1, -1, 1, one_x, one_y),
                            "first window is -1");
        attn_text_free(&t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unit_names),
        cmocka_unit_test(test_chars_round_trip),
        cmocka_unit_test(test_bytes_round_trip),
        cmocka_unit_test(test_vocab_from_chars_checks),
        cmocka_unit_test(test_too_many_characters),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_split_and_minimum),
        cmocka_unit_test(test_load_files),
        cmocka_unit_test(test_train_batches),
        cmocka_unit_test(test_valid_windows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
