/* Vocabularies and the built-in tasks: UTF-8 round trips and errors, the dates
 * formats against an independent calendar, the splits, the padded batch layout and
 * determinism by (seed, index). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "testutil.h"

enum { TEXT_CAP = 256, EXAMPLE_CAP = 64 };

static const attn_task_kind all_kinds[] = {ATTN_TASK_DATES, ATTN_TASK_REVERSE, ATTN_TASK_SORT,
                                           ATTN_TASK_COPY};
enum { KIND_COUNT = sizeof all_kinds / sizeof all_kinds[0] };

static attn_task make_task(attn_task_kind kind)
{
    attn_task t;
    assert_int_equal(attn_task_init(&t, kind), ATTN_OK);
    return t;
}

/* ---- vocabularies -------------------------------------------------------------------- */

/* One to four bytes per character: ASCII, Latin-1, the euro sign, an emoji. */
static const char multibyte_chars[] = "zaé€b😀 a.";

static void test_vocab_sorted_and_distinct(void **state)
{
    (void)state;
    attn_vocab v;
    assert_int_equal(attn_vocab_from_chars(&v, multibyte_chars), ATTN_OK);
    const uint32_t want[] = {' ', '.', 'a', 'b', 'z', 0xe9, 0x20ac, 0x1f600};
    assert_int_equal(v.size, ATTN_TOKEN_FIRST_CHAR + 8);
    for (int i = 0; i < 8; i++) assert_int_equal(v.chars[ATTN_TOKEN_FIRST_CHAR + i], want[i]);
    char chars[64];
    assert_int_equal(attn_vocab_chars(&v, chars, sizeof chars), ATTN_OK);
    assert_string_equal(chars, " .abzé€😀");
    attn_vocab again;
    assert_int_equal(attn_vocab_from_chars(&again, chars), ATTN_OK);
    assert_memory_equal(&again, &v, sizeof v);
    test_expect_invalid(attn_vocab_chars(&v, chars, 5), "do not fit in 5 bytes");
    attn_vocab empty;
    assert_int_equal(attn_vocab_from_chars(&empty, ""), ATTN_OK);
    assert_int_equal(empty.size, ATTN_TOKEN_FIRST_CHAR);
}

static void test_vocab_round_trip(void **state)
{
    (void)state;
    attn_vocab v;
    assert_int_equal(attn_vocab_from_chars(&v, multibyte_chars), ATTN_OK);
    int chars = v.size - ATTN_TOKEN_FIRST_CHAR;
    attn_rng rng = test_rng(1);
    for (int trial = 0; trial < 200; trial++) {
        int n = (int)attn_rng_below(&rng, 40);
        int32_t ids[40], back[40];
        for (int i = 0; i < n; i++)
            ids[i] = ATTN_TOKEN_FIRST_CHAR + (int32_t)attn_rng_below(&rng, (uint32_t)chars);
        char text[TEXT_CAP];
        assert_int_equal(attn_vocab_decode(&v, ids, n, text, sizeof text), ATTN_OK);
        int len = -1;
        assert_int_equal(attn_vocab_encode(&v, text, back, 40, &len), ATTN_OK);
        assert_int_equal(len, n);
        if (n > 0) assert_memory_equal(back, ids, (size_t)n * sizeof ids[0]);
    }
}

static void test_vocab_decode_specials(void **state)
{
    (void)state;
    attn_vocab v;
    assert_int_equal(attn_vocab_from_chars(&v, "abc"), ATTN_OK);
    const int32_t a = ATTN_TOKEN_FIRST_CHAR, b = a + 1, c = a + 2;
    char text[16];
    const int32_t with_eos[] = {ATTN_TOKEN_BOS, a, b, ATTN_TOKEN_EOS, c, c};
    assert_int_equal(attn_vocab_decode(&v, with_eos, 6, text, sizeof text), ATTN_OK);
    assert_string_equal(text, "ab");
    const int32_t with_pad[] = {c, a, ATTN_TOKEN_PAD, b};
    assert_int_equal(attn_vocab_decode(&v, with_pad, 4, text, sizeof text), ATTN_OK);
    assert_string_equal(text, "ca");
    assert_int_equal(attn_vocab_decode(&v, with_pad, 0, text, sizeof text), ATTN_OK);
    assert_string_equal(text, "");
    const int32_t bad[] = {a, 99};
    test_expect_invalid(attn_vocab_decode(&v, bad, 2, text, sizeof text),
                        "id 99 at position 1 is outside the vocabulary of 6 ids");
    const int32_t long_text[] = {a, b, c, a, b};
    test_expect_invalid(attn_vocab_decode(&v, long_text, 5, text, 4), "does not fit in 4 bytes");
}

static void test_vocab_out_of_vocabulary(void **state)
{
    (void)state;
    attn_vocab v;
    assert_int_equal(attn_vocab_from_chars(&v, "0123456789-"), ATTN_OK);
    int32_t ids[16];
    int len;
    test_expect_invalid(attn_vocab_encode(&v, "2026-11#24", ids, 16, &len),
                        "character '#' (U+0023) at position 7 is not in the vocabulary");
    test_expect_invalid(attn_vocab_encode(&v, "12é", ids, 16, &len),
                        "character 'é' (U+00E9) at position 2");
    test_expect_invalid(attn_vocab_encode(&v, "1\t2", ids, 16, &len),
                        "character U+0009 at position 1");
    test_expect_invalid(attn_vocab_encode(&v, "0123456789", ids, 4, &len),
                        "text of 10 characters is longer than the maximum 4");
    assert_int_equal(attn_vocab_encode(&v, "0123", ids, 4, &len), ATTN_OK);
    assert_int_equal(len, 4);
}

static void test_vocab_invalid_utf8(void **state)
{
    (void)state;
    attn_vocab v;
    assert_int_equal(attn_vocab_from_chars(&v, "abc"), ATTN_OK);
    int32_t ids[16];
    int len;
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"ab\xff", "invalid UTF-8 at byte 2 (0xff)"},           /* never a UTF-8 byte */
        {"a\x80", "invalid UTF-8 at byte 1 (0x80)"},            /* a stray continuation */
        {"abc\xc3", "invalid UTF-8 at byte 3 (0xc3)"},          /* cut short */
        {"\xc0\xaf", "invalid UTF-8 at byte 0 (0xc0)"},         /* overlong '/' */
        {"a\xed\xa0\x80", "invalid UTF-8 at byte 1 (0xed)"},    /* a surrogate */
        {"\xf4\x90\x80\x80", "invalid UTF-8 at byte 0 (0xf4)"}, /* past U+10FFFF */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        test_expect_invalid(attn_vocab_encode(&v, cases[i].text, ids, 16, &len),
                            cases[i].message);
        attn_vocab other;
        test_expect_invalid(attn_vocab_from_chars(&other, cases[i].text), cases[i].message);
    }
}

static void test_vocab_bad_arguments(void **state)
{
    (void)state;
    attn_vocab v;
    int32_t ids[4];
    int len;
    test_expect_invalid(attn_vocab_from_chars(&v, NULL), "chars is NULL");
    assert_int_equal(attn_vocab_from_chars(&v, "ab"), ATTN_OK);
    test_expect_invalid(attn_vocab_encode(&v, NULL, ids, 4, &len), "text is NULL");
    v.size = 1000;
    test_expect_invalid(attn_vocab_encode(&v, "a", ids, 4, &len), "vocab size 1000");
    /* More distinct characters than ids: U+0100 .. U+02FF as two-byte UTF-8. */
    char many[2 * 512 + 1];
    for (int i = 0; i < 512; i++) {
        uint32_t cp = 0x100 + (uint32_t)i;
        many[2 * i] = (char)(0xc0 | (cp >> 6));
        many[2 * i + 1] = (char)(0x80 | (cp & 0x3f));
    }
    many[2 * 512] = '\0';
    test_expect_invalid(attn_vocab_from_chars(&v, many), "more than 509 distinct characters");
}

/* ---- the dates formats ----------------------------------------------------------------- */

/* Every day of the range against a calendar counted one day at a time. */
static void test_dates_iso_calendar(void **state)
{
    (void)state;
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year = 1900, month = 1, day = 1;
    for (int32_t d = 0; d < DATES_DAY_COUNT; d++) {
        char want[48], got[DATES_MAX_TGT + 1];
        snprintf(want, sizeof want, "%04d-%02d-%02d", year, month, day);
        attn_dates_iso(got, d);
        assert_string_equal(got, want);
        bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        if (++day > month_days[month - 1] + (month == 2 && leap)) {
            day = 1;
            if (++month > 12) {
                month = 1;
                year++;
            }
        }
    }
    assert_int_equal(year, 2100);
}

/* The day number of a date: counts from 1900-01-01 through the ISO strings. */
static int32_t day_of(const char *iso)
{
    for (int32_t d = 0; d < DATES_DAY_COUNT; d++) {
        char got[DATES_MAX_TGT + 1];
        attn_dates_iso(got, d);
        if (strcmp(got, iso) == 0) return d;
    }
    fail_msg("no day %s", iso);
    return -1;
}

static void test_dates_known_renderings(void **state)
{
    (void)state;
    int32_t day = day_of("2026-11-24"); /* a Tuesday */
    static const char *const want[DATES_FORMAT_COUNT] = {
        "24 November 2026",  "November 24, 2026",         "Nov 24, 2026",
        "Tuesday, November 24, 2026", "Tue, 24 Nov 2026", "24/11/2026",
        "2026.11.24",        "24.11.2026",                "24-NOV-26",
        "2026-11-24",        "20261124",                  "November 24th, 2026",
        "the 24th of November 2026", "24 Nov 2026",       "Tuesday 24 November 2026",
        "24-11-2026",        "24th November 2026",        "Tue, Nov 24, 2026",
    };
    char out[DATES_MAX_SRC + 1];
    for (int f = 0; f < DATES_FORMAT_COUNT; f++) {
        date_style style = {f, DATE_CASE_AS_WRITTEN, DATE_SPACING_PLAIN, 0};
        assert_true(attn_dates_format_allows(f, day));
        assert_int_equal(attn_dates_render(out, day, &style), (int)strlen(want[f]));
        assert_string_equal(out, want[f]);
    }
    date_style style = {12, DATE_CASE_TITLE, DATE_SPACING_DOUBLED, 0x5};
    attn_dates_render(out, day_of("2000-01-01"), &style);
    assert_string_equal(out, "The  1st Of  January 2000");
    style = (date_style){8, DATE_CASE_TITLE, DATE_SPACING_SPACED, 0};
    attn_dates_render(out, day_of("1950-03-02"), &style);
    assert_string_equal(out, "02 - Mar - 50");
    style = (date_style){17, DATE_CASE_LOWER, DATE_SPACING_SPACED, 0};
    attn_dates_render(out, day_of("2099-12-31"), &style);
    assert_string_equal(out, "thu , dec 31 , 2099");
    style = (date_style){11, DATE_CASE_UPPER, DATE_SPACING_PLAIN, 0};
    attn_dates_render(out, day_of("1912-02-22"), &style);
    assert_string_equal(out, "FEBRUARY 22ND, 1912");
    style = (date_style){3, DATE_CASE_AS_WRITTEN, DATE_SPACING_PLAIN, 0};
    attn_dates_render(out, 0, &style);
    assert_string_equal(out, "Monday, January 1, 1900");
    /* The two-digit year only where the pivot reads it back. */
    assert_false(attn_dates_format_allows(8, day_of("1949-12-31")));
    assert_true(attn_dates_format_allows(8, day_of("1950-01-01")));
    assert_true(attn_dates_format_allows(8, day_of("2049-12-31")));
    assert_false(attn_dates_format_allows(8, day_of("2050-01-01")));
}

/* The longest rendering of every format and spacing over 28 years (every month,
 * day and weekday together) is within DATES_MAX_SRC, and some reaches it. */
static void test_dates_longest_source(void **state)
{
    (void)state;
    int32_t first = day_of("2000-01-01"), last = day_of("2027-12-31");
    int longest = 0;
    char out[DATES_MAX_SRC + 8];
    for (int f = 0; f < DATES_FORMAT_COUNT; f++)
        for (int spacing = 0; spacing < 3; spacing++)
            for (int32_t d = first; d <= last; d++) {
                date_style style = {f, DATE_CASE_AS_WRITTEN, (date_spacing)spacing, ~0u};
                int n = attn_dates_render(out, d, &style);
                assert_int_equal(n, (int)strlen(out));
                if (n > longest) longest = n;
            }
    assert_int_equal(longest, DATES_MAX_SRC);
}

/* ---- tasks --------------------------------------------------------------------------- */

static void test_task_names(void **state)
{
    (void)state;
    for (int k = 0; k < KIND_COUNT; k++) {
        attn_task_kind kind;
        assert_int_equal(attn_task_parse(&kind, attn_task_name(all_kinds[k])), ATTN_OK);
        assert_int_equal(kind, all_kinds[k]);
    }
    attn_task_kind kind;
    test_expect_invalid(attn_task_parse(&kind, "dats"),
                        "unknown task 'dats'; the tasks are dates, reverse, sort and copy");
    attn_task t;
    test_expect_invalid(attn_task_init(&t, (attn_task_kind)7), "task kind 7");
}

static void test_task_vocabularies(void **state)
{
    (void)state;
    attn_task dates = make_task(ATTN_TASK_DATES);
    char chars[TEXT_CAP];
    assert_int_equal(attn_vocab_chars(&dates.tgt_vocab, chars, sizeof chars), ATTN_OK);
    assert_string_equal(chars, "-0123456789");
    assert_int_equal(attn_vocab_chars(&dates.src_vocab, chars, sizeof chars), ATTN_OK);
    assert_string_equal(chars, " ,-./0123456789ABCDEFGHIJLMNOPRSTUVWYabcdefghijlmnoprstuvwy");
    assert_int_equal(dates.max_src_len, DATES_MAX_SRC);
    assert_int_equal(dates.max_tgt_len, 10);
    assert_int_equal(dates.valid_size, 1000);
    assert_int_equal(dates.test_size, 2000);
    attn_task sort = make_task(ATTN_TASK_SORT);
    assert_int_equal(attn_vocab_chars(&sort.src_vocab, chars, sizeof chars), ATTN_OK);
    assert_string_equal(chars, "0123456789");
    assert_int_equal(sort.max_src_len, DIGITS_MAX_LEN);
}

static void check_target(attn_task_kind kind, const char *src, const char *tgt)
{
    size_t n = strlen(src);
    assert_int_equal(strlen(tgt), n);
    assert_true(n >= 1 && n <= DIGITS_MAX_LEN);
    for (size_t i = 0; i < n; i++) {
        assert_true(src[i] >= '0' && src[i] <= '9');
        if (kind == ATTN_TASK_REVERSE) assert_int_equal(tgt[i], src[n - 1 - i]);
        if (kind == ATTN_TASK_COPY) assert_int_equal(tgt[i], src[i]);
        if (kind == ATTN_TASK_SORT && i > 0) assert_true(tgt[i - 1] <= tgt[i]);
    }
    if (kind == ATTN_TASK_SORT) {
        int counts[10] = {0};
        for (size_t i = 0; i < n; i++) counts[src[i] - '0']++, counts[tgt[i] - '0']--;
        for (int d = 0; d < 10; d++) assert_int_equal(counts[d], 0);
    }
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* The fixed sets: the same for every seed, no duplicates, no source shared with
 * another split; training examples are never in a fixed set. */
static void test_task_splits(void **state)
{
    (void)state;
    attn_rng rng = test_rng(2);
    for (int k = 0; k < KIND_COUNT; k++) {
        attn_task t = make_task(all_kinds[k]);
        int fixed_count = t.valid_size + t.test_size;
        char(*fixed)[EXAMPLE_CAP] = malloc((size_t)fixed_count * EXAMPLE_CAP);
        assert_non_null(fixed);
        uint64_t seed = attn_rng_u32(&rng);
        for (int i = 0; i < fixed_count; i++) {
            attn_split split = i < t.valid_size ? ATTN_SPLIT_VALID : ATTN_SPLIT_TEST;
            uint64_t index = (uint64_t)(i < t.valid_size ? i : i - t.valid_size);
            char tgt[EXAMPLE_CAP], other_src[EXAMPLE_CAP], other_tgt[EXAMPLE_CAP];
            assert_int_equal(attn_task_example(&t, split, seed, index, fixed[i], EXAMPLE_CAP, tgt,
                                               EXAMPLE_CAP),
                             ATTN_OK);
            assert_int_equal(attn_task_example(&t, split, seed + 1, index, other_src,
                                               EXAMPLE_CAP, other_tgt, EXAMPLE_CAP),
                             ATTN_OK);
            assert_string_equal(other_src, fixed[i]);
            assert_string_equal(other_tgt, tgt);
            if (all_kinds[k] != ATTN_TASK_DATES) check_target(all_kinds[k], fixed[i], tgt);
        }
        qsort(fixed, (size_t)fixed_count, EXAMPLE_CAP, compare_strings);
        for (int i = 1; i < fixed_count; i++) assert_string_not_equal(fixed[i - 1], fixed[i]);
        for (uint64_t i = 0; i < 3000; i++) {
            char src[EXAMPLE_CAP], tgt[EXAMPLE_CAP];
            assert_int_equal(attn_task_example(&t, ATTN_SPLIT_TRAIN, seed, i, src, EXAMPLE_CAP,
                                               tgt, EXAMPLE_CAP),
                             ATTN_OK);
            assert_null(bsearch(src, fixed, (size_t)fixed_count, EXAMPLE_CAP, compare_strings));
            if (all_kinds[k] != ATTN_TASK_DATES) check_target(all_kinds[k], src, tgt);
        }
        free(fixed);
    }
}

/* A batch holds the examples of attn_task_example, laid out as data.h says. */
static void check_batch(const attn_task *t, attn_split split, uint64_t seed, uint64_t first,
                        const attn_batch *b)
{
    int S = b->src_cap, T = b->tgt_cap;
    for (int i = 0; i < b->batch; i++) {
        char src[EXAMPLE_CAP], tgt[EXAMPLE_CAP], text[EXAMPLE_CAP];
        assert_int_equal(attn_task_example(t, split, seed, first + (uint64_t)i, src, EXAMPLE_CAP,
                                           tgt, EXAMPLE_CAP),
                         ATTN_OK);
        const int32_t *x = b->src + (size_t)i * S;
        const int32_t *y_in = b->tgt_in + (size_t)i * T, *y_out = b->tgt_out + (size_t)i * T;
        int n = b->src_len[i], m = b->tgt_len[i] - 1;
        assert_int_equal(n, (int)strlen(src));
        assert_true(n >= 1 && n <= S);
        assert_int_equal(m, (int)strlen(tgt));
        for (int j = 0; j < n; j++) assert_true(x[j] >= ATTN_TOKEN_FIRST_CHAR);
        for (int j = n; j < S; j++) assert_int_equal(x[j], ATTN_TOKEN_PAD);
        assert_int_equal(attn_vocab_decode(&t->src_vocab, x, S, text, sizeof text), ATTN_OK);
        assert_string_equal(text, src);
        assert_int_equal(y_in[0], ATTN_TOKEN_BOS);
        for (int j = 0; j < m; j++) {
            assert_true(y_out[j] >= ATTN_TOKEN_FIRST_CHAR);
            assert_int_equal(y_in[j + 1], y_out[j]);
        }
        assert_int_equal(y_out[m], ATTN_TOKEN_EOS);
        for (int j = m + 1; j < T; j++) {
            assert_int_equal(y_in[j], ATTN_TOKEN_PAD);
            assert_int_equal(y_out[j], ATTN_TOKEN_PAD);
        }
        assert_int_equal(attn_vocab_decode(&t->tgt_vocab, y_in, T, text, sizeof text), ATTN_OK);
        assert_string_equal(text, tgt);
        assert_int_equal(attn_vocab_decode(&t->tgt_vocab, y_out, T, text, sizeof text), ATTN_OK);
        assert_string_equal(text, tgt);
    }
}

static void test_task_batches(void **state)
{
    (void)state;
    attn_rng rng = test_rng(3);
    for (int k = 0; k < KIND_COUNT; k++) {
        attn_task t = make_task(all_kinds[k]);
        attn_batch b;
        assert_int_equal(attn_batch_alloc(&b, &t, 64), ATTN_OK);
        assert_int_equal(b.src_cap, t.max_src_len);
        assert_int_equal(b.tgt_cap, t.max_tgt_len + 1);
        uint64_t seed = attn_rng_u32(&rng), first = attn_rng_u32(&rng);
        assert_int_equal(attn_task_batch(&t, ATTN_SPLIT_TRAIN, seed, first, &b), ATTN_OK);
        check_batch(&t, ATTN_SPLIT_TRAIN, seed, first, &b);
        /* A partial last batch of the test set. */
        b.batch = 24;
        assert_int_equal(
            attn_task_batch(&t, ATTN_SPLIT_TEST, seed, (uint64_t)t.test_size - 24, &b), ATTN_OK);
        check_batch(&t, ATTN_SPLIT_TEST, seed, (uint64_t)t.test_size - 24, &b);
        b.batch = 64;
        assert_int_equal(attn_task_batch(&t, ATTN_SPLIT_VALID, seed, 100, &b), ATTN_OK);
        check_batch(&t, ATTN_SPLIT_VALID, seed, 100, &b);
        attn_batch_free(&b);
        assert_null(b.src);
        attn_batch_free(&b);
    }
}

/* The training stream is a function of (seed, index): batches that overlap agree,
 * whatever their start, and another seed gives other examples. */
static void test_task_determinism(void **state)
{
    (void)state;
    attn_rng rng = test_rng(4);
    attn_task t = make_task(ATTN_TASK_DATES);
    attn_batch a, b;
    assert_int_equal(attn_batch_alloc(&a, &t, 32), ATTN_OK);
    assert_int_equal(attn_batch_alloc(&b, &t, 32), ATTN_OK);
    uint64_t seed = attn_rng_u32(&rng), first = attn_rng_u32(&rng);
    assert_int_equal(attn_task_batch(&t, ATTN_SPLIT_TRAIN, seed, first, &a), ATTN_OK);
    assert_int_equal(attn_task_batch(&t, ATTN_SPLIT_TRAIN, seed, first + 10, &b), ATTN_OK);
    int S = a.src_cap;
    assert_memory_equal(a.src + 10 * S, b.src, (size_t)22 * S * sizeof *a.src);
    assert_int_equal(attn_task_batch(&t, ATTN_SPLIT_TRAIN, seed, first, &b), ATTN_OK);
    assert_memory_equal(a.src, b.src, (size_t)32 * S * sizeof *a.src);
    assert_memory_equal(a.tgt_out, b.tgt_out, (size_t)32 * b.tgt_cap * sizeof *a.tgt_out);
    assert_int_equal(attn_task_batch(&t, ATTN_SPLIT_TRAIN, seed + 1, first, &b), ATTN_OK);
    int same = 0;
    for (int i = 0; i < 32; i++) {
        size_t row = (size_t)i * S;
        same += memcmp(a.src + row, b.src + row, (size_t)S * sizeof *a.src) == 0;
    }
    assert_true(same < 4);
    attn_batch_free(&a);
    attn_batch_free(&b);
}

static void test_task_bad_arguments(void **state)
{
    (void)state;
    attn_task dates = make_task(ATTN_TASK_DATES), copy = make_task(ATTN_TASK_COPY);
    char src[EXAMPLE_CAP], tgt[EXAMPLE_CAP];
    test_expect_invalid(
        attn_task_example(&dates, ATTN_SPLIT_VALID, 0, 1000, src, EXAMPLE_CAP, tgt, EXAMPLE_CAP),
        "example 1000 is past the end of the dates valid set of 1000");
    test_expect_invalid(
        attn_task_example(&dates, (attn_split)5, 0, 0, src, EXAMPLE_CAP, tgt, EXAMPLE_CAP),
        "split 5 is not train, valid or test");
    test_expect_invalid(attn_task_example(&dates, ATTN_SPLIT_TRAIN, 0, 0, src, 20, tgt, 11),
                        "src_cap 20 and tgt_cap 11: a dates example needs 33 and 11 bytes");
    test_expect_invalid(
        attn_task_example(&dates, ATTN_SPLIT_TRAIN, 0, 0, NULL, EXAMPLE_CAP, tgt, EXAMPLE_CAP),
        "src is NULL");
    attn_batch b;
    test_expect_invalid(attn_batch_alloc(&b, &dates, 0), "batch size is 0");
    assert_int_equal(attn_batch_alloc(&b, &dates, 8), ATTN_OK);
    test_expect_invalid(attn_task_batch(&copy, ATTN_SPLIT_TRAIN, 0, 0, &b),
                        "a batch of (S, T) = (32, 11) does not fit the copy task's (20, 21)");
    test_expect_invalid(attn_task_batch(&dates, ATTN_SPLIT_TEST, 0, 1995, &b),
                        "examples 1995 to 2002 are past the end of the dates test set of 2000");
    b.batch = 9;
    test_expect_invalid(attn_task_batch(&dates, ATTN_SPLIT_TRAIN, 0, 0, &b),
                        "batch size 9 is outside [1, 8]");
    attn_batch_free(&b);
    test_expect_invalid(attn_task_batch(&dates, ATTN_SPLIT_TRAIN, 0, 0, &b), "batch src is NULL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_sorted_and_distinct),
        cmocka_unit_test(test_vocab_round_trip),
        cmocka_unit_test(test_vocab_decode_specials),
        cmocka_unit_test(test_vocab_out_of_vocabulary),
        cmocka_unit_test(test_vocab_invalid_utf8),
        cmocka_unit_test(test_vocab_bad_arguments),
        cmocka_unit_test(test_dates_iso_calendar),
        cmocka_unit_test(test_dates_known_renderings),
        cmocka_unit_test(test_dates_longest_source),
        cmocka_unit_test(test_task_names),
        cmocka_unit_test(test_task_vocabularies),
        cmocka_unit_test(test_task_splits),
        cmocka_unit_test(test_task_batches),
        cmocka_unit_test(test_task_determinism),
        cmocka_unit_test(test_task_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
