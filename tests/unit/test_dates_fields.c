/* attn_dates_fields: the fields it finds in a dates source, read back, give the
 * example's target date, over the task's examples (training stream, valid and test
 * sets) and over every format, letter case and spacing; a few sources spelt out;
 * and what is not a date fails naming why. */
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

enum { SRC_CAP = 64, TGT_CAP = 16, TRAIN_EXAMPLES = 3000, DAYS_PER_STYLE = 25 };

static bool digit(char ch) { return ch >= '0' && ch <= '9'; }
static char lower(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch; }
static bool letter(char ch) { return lower(ch) >= 'a' && lower(ch) <= 'z'; }

/* The characters of one field: their digits as a number, *n_digits of them, and
 * the month their letters name (1-12, 0 for none; ordinal suffixes ignored). Fails
 * the test if the field's characters are not one run of letters and digits. */
static int field_value(const char *src, const int *fields, attn_date_field f, int *n_digits,
                       int *named_month)
{
    static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    int value = 0, first = -1, last = -1;
    char letters[16] = {0};
    int n_letters = 0;
    *n_digits = 0;
    for (int i = 0; src[i]; i++) {
        if (fields[i] != (int)f) continue;
        if (first < 0) first = i;
        last = i;
        assert_true(digit(src[i]) || letter(src[i]));
        if (digit(src[i])) {
            value = value * 10 + (src[i] - '0');
            ++*n_digits;
        } else if (n_letters < 15) {
            letters[n_letters++] = lower(src[i]);
        }
    }
    if (first < 0) fail_msg("\"%s\": no characters of field %d", src, (int)f);
    if (last - first + 1 != *n_digits + n_letters)
        fail_msg("\"%s\": field %d is not one run of characters", src, (int)f);
    *named_month = 0;
    if (*n_digits == 0 && n_letters >= 3)
        for (int m = 0; m < 12; m++)
            if (strncmp(letters, months + 3 * m, 3) == 0) *named_month = m + 1;
    return value;
}

/* Reads the date back from the fields attn_dates_fields found: "YYYY-MM-DD". */
static void read_back(const char *src, char *iso)
{
    int fields[SRC_CAP];
    attn_status status = attn_dates_fields(src, fields, SRC_CAP);
    if (status != ATTN_OK) fail_msg("\"%s\": %s", src, attn_last_error());
    for (int i = 0; src[i]; i++)
        if (digit(src[i]) && fields[i] == ATTN_DATE_NONE)
            fail_msg("\"%s\": digit %d belongs to no field", src, i);
    int n_digits, named;
    int day = field_value(src, fields, ATTN_DATE_DAY, &n_digits, &named);
    assert_true(n_digits >= 1 && n_digits <= 2);
    int month = field_value(src, fields, ATTN_DATE_MONTH, &n_digits, &named);
    if (n_digits == 0) month = named;
    int year = field_value(src, fields, ATTN_DATE_YEAR, &n_digits, &named);
    assert_true(n_digits == 2 || n_digits == 4);
    if (n_digits == 2) year += year >= 50 ? 1900 : 2000;
    snprintf(iso, TGT_CAP, "%04d-%02d-%02d", year, month, day);
}

static void expect_read_back(const char *src, const char *tgt)
{
    char iso[TGT_CAP];
    read_back(src, iso);
    if (strcmp(iso, tgt) != 0) fail_msg("\"%s\": read back %s, the target is %s", src, iso, tgt);
}

static void test_task_examples(void **state)
{
    (void)state;
    attn_task t;
    assert_int_equal(attn_task_init(&t, ATTN_TASK_DATES), ATTN_OK);
    attn_rng rng = test_rng(1);
    uint64_t seed = attn_rng_u32(&rng);
    char src[SRC_CAP], tgt[TGT_CAP];
    for (uint64_t i = 0; i < TRAIN_EXAMPLES; i++) {
        assert_int_equal(attn_task_example(&t, ATTN_SPLIT_TRAIN, seed, i, src, sizeof src, tgt,
                                           sizeof tgt),
                         ATTN_OK);
        expect_read_back(src, tgt);
    }
    const attn_split fixed[2] = {ATTN_SPLIT_VALID, ATTN_SPLIT_TEST};
    const int sizes[2] = {t.valid_size, t.test_size};
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < sizes[s]; i++) {
            assert_int_equal(attn_task_example(&t, fixed[s], 0, (uint64_t)i, src, sizeof src, tgt,
                                               sizeof tgt),
                             ATTN_OK);
            expect_read_back(src, tgt);
        }
}

/* Every format in every case and spacing, on random days it may write. */
static void test_every_style(void **state)
{
    (void)state;
    attn_rng rng = test_rng(2);
    const date_case cases[] = {DATE_CASE_AS_WRITTEN, DATE_CASE_LOWER, DATE_CASE_UPPER,
                               DATE_CASE_TITLE};
    const date_spacing spacings[] = {DATE_SPACING_PLAIN, DATE_SPACING_DOUBLED,
                                     DATE_SPACING_SPACED};
    char src[DATES_MAX_SRC + 1], tgt[DATES_MAX_TGT + 1];
    for (int format = 0; format < DATES_FORMAT_COUNT; format++)
        for (int c = 0; c < 4; c++)
            for (int s = 0; s < 3; s++)
                for (int k = 0; k < DAYS_PER_STYLE; k++) {
                    int32_t day;
                    do day = (int32_t)attn_rng_below(&rng, DATES_DAY_COUNT);
                    while (!attn_dates_format_allows(format, day));
                    date_style style = {format, cases[c], spacings[s], attn_rng_u32(&rng)};
                    attn_dates_render(src, day, &style);
                    attn_dates_iso(tgt, day);
                    expect_read_back(src, tgt);
                }
}

/* Sources with their fields spelt out: '.' none, 'd' day, 'm' month, 'y' year. */
static void test_spelt_out(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"the 24th of November 2026", "....dddd....mmmmmmmm.yyyy"},
        {"Tue, 24 Nov 2026", ".....dd.mmm.yyyy"},
        {"TUESDAY, NOVEMBER 24, 2026", ".........mmmmmmmm.dd..yyyy"},
        {"24-NOV-26", "dd.mmm.yy"},
        {"24 - nov - 26", "dd...mmm...yy"},
        {"20261124", "yyyymmdd"},
        {"2026.11.24", "yyyy.mm.dd"},
        {"24/11/2026", "dd.mm.yyyy"},
        {"1st  May 1999", "ddd..mmm.yyyy"},
        {"May 2Nd, 2000", "mmm.ddd..yyyy"},
    };
    const char field_char[] = ".dmy";
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *src = cases[k][0];
        int fields[SRC_CAP];
        assert_int_equal(attn_dates_fields(src, fields, SRC_CAP), ATTN_OK);
        char got[SRC_CAP];
        size_t n = strlen(src);
        for (size_t i = 0; i < n; i++) got[i] = field_char[fields[i]];
        got[n] = '\0';
        if (strcmp(got, cases[k][1]) != 0)
            fail_msg("\"%s\": fields %s, want %s", src, got, cases[k][1]);
    }
}

static void test_not_dates(void **state)
{
    (void)state;
    int fields[SRC_CAP];
    static const char *const cases[][2] = {
        {"", "without a month name it takes a four-digit year and two shorter numbers, not 0 "
             "and 0"},
        {"hello", "the word 'hello' is no month, weekday or ordinal"},
        {"24/11", "not 0 and 2"},
        {"Nov Dec 24, 2026", "2 month names"},
        {"32/11/2026", "day 32 is not in 1-31"},
        {"24/13/2026", "month 13 is not in 1-12"},
        {"11/2026/24", "the year comes between the day and the month"},
        {"24 Nov 2026 2027", "2 four-digit years"},
        {"24 Nov 20266", "a number of 5 digits"},
        {"24 Nov 2026!", "byte 0x21 at 11"},
        {"24 Nov 2026 1", "take one shorter number, the day, not 2"},
        {"Nov 2026", "take one shorter number, the day, not 0"},
        {"Nov 24", "the day and the year, not 1"},
        {"24-NOV-5", "the year 5 has neither two digits nor four"},
        {"2026-11th-24", "an ordinal that is not the day"},
        {"20261124 Nov", "an eight-digit date with more fields"},
        {"24 Nov 20 26 1", "more than two numbers of one or two digits"},
        {"Nov 24 th, 2026", "the word 'th'"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        test_expect_invalid(attn_dates_fields(cases[k][0], fields, SRC_CAP), cases[k][1]);
        assert_non_null(strstr(attn_last_error(), "is not a date of the dates task"));
    }
    test_expect_invalid(attn_dates_fields(NULL, fields, SRC_CAP), "src");
    test_expect_invalid(attn_dates_fields("24/11/2026", NULL, SRC_CAP), "field_of_char");
    test_expect_invalid(attn_dates_fields("24/11/2026", fields, 9),
                        "holds 9 entries, fewer than the 10 characters");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_examples),
        cmocka_unit_test(test_every_style),
        cmocka_unit_test(test_spelt_out),
        cmocka_unit_test(test_not_dates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
