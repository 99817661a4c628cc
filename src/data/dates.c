/* The dates task: a day between 1900-01-01 and 2099-12-31 written in one of
 * DATES_FORMAT_COUNT human formats, in one of four letter cases and three spacings,
 * to be normalised to ISO 8601 "YYYY-MM-DD".
 *
 * Every format reads one way only: numeric formats with slashes or a trailing year are
 * day first (24/11/2026, 24.11.2026, 24-11-2026), those that start with the four-digit
 * year are year-month-day (2026.11.24, 2026-11-24, 20261124), and the one two-digit
 * year (24-NOV-26) names the month and is written only for 1950-2049. */
#include <string.h>

#include "data/data_internal.h"

typedef struct date_format {
    /* Literal text and fields: %d day, %D two-digit day, %o ordinal day ("24th"),
     * %m two-digit month, %M month name, %b its first three letters, %W weekday
     * name, %a its first three letters, %Y year, %y two-digit year. */
    const char *pattern;
    bool upper; /* written in capitals when the case is as written */
} date_format;

static const date_format formats[DATES_FORMAT_COUNT] = {
    {"%d %M %Y", false},        /* 24 November 2026 */
    {"%M %d, %Y", false},       /* November 24, 2026 */
    {"%b %d, %Y", false},       /* Nov 24, 2026 */
    {"%W, %M %d, %Y", false},   /* Tuesday, November 24, 2026 */
    {"%a, %d %b %Y", false},    /* Tue, 24 Nov 2026 (RFC 5322) */
    {"%D/%m/%Y", false},        /* 24/11/2026 */
    {"%Y.%m.%D", false},        /* 2026.11.24 */
    {"%D.%m.%Y", false},        /* 24.11.2026 */
    {"%D-%b-%y", true},         /* 24-NOV-26 */
    {"%Y-%m-%D", false},        /* 2026-11-24 */
    {"%Y%m%D", false},          /* 20261124 */
    {"%M %o, %Y", false},       /* November 24th, 2026 */
    {"the %o of %M %Y", false}, /* the 24th of November 2026 */
    {"%d %b %Y", false},        /* 24 Nov 2026 */
    {"%W %d %M %Y", false},     /* Tuesday 24 November 2026 */
    {"%D-%m-%Y", false},        /* 24-11-2026 */
    {"%o %M %Y", false},        /* 24th November 2026 */
    {"%a, %b %d, %Y", false},   /* Tue, Nov 24, 2026 */
};

static const char *const month_names[12] = {
    "January", "February", "March",     "April",   "May",      "June",
    "July",    "August",   "September", "October", "November", "December",
};
/* Day 0, 1900-01-01, was a Monday. */
static const char *const weekday_names[7] = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
};
/* The other words of the formats: literal ones and the ordinal suffixes. */
static const char *const other_words[] = {"the", "of", "st", "nd", "rd", "th"};

enum { FIRST_YEAR = 1900, PIVOT_FIRST_YEAR = 1950, PIVOT_LAST_YEAR = 2049 };

typedef struct civil_date {
    int year, month, day, weekday; /* month 1-12, day 1-31, weekday 0 = Monday */
} civil_date;

static bool is_leap(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

/* Days from 1900-01-01 to January 1 of year: 365 a year plus the leap days of the
 * years before it, less those before 1900 (1899/4 - 1899/100 + 1899/400 = 460). */
static int32_t days_before_year(int year)
{
    int p = year - 1;
    return 365 * (year - FIRST_YEAR) + (p / 4 - p / 100 + p / 400) - 460;
}

static civil_date civil_from_day(int32_t day)
{
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    civil_date c;
    /* No year has more than 366 days, so this year is not past the right one, and
     * the rounding of day / 366 leaves it less than one year short. */
    c.year = FIRST_YEAR + day / 366;
    while (days_before_year(c.year + 1) <= day) c.year++;
    int rest = day - days_before_year(c.year);
    c.month = 1;
    for (;;) {
        int length = month_days[c.month - 1] + (c.month == 2 && is_leap(c.year));
        if (rest < length) break;
        rest -= length;
        c.month++;
    }
    c.day = rest + 1;
    c.weekday = day % 7;
    return c;
}

/* value in exactly `width` decimal digits (zero-padded); returns width. */
static int put_digits(char *out, int value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
    return width;
}

static int put_text(char *out, const char *text, int max)
{
    int n = 0;
    while (n < max && text[n]) {
        out[n] = text[n];
        n++;
    }
    return n;
}

static const char *ordinal_suffix(int day)
{
    if (day >= 11 && day <= 13) return "th";
    switch (day % 10) {
    case 1: return "st";
    case 2: return "nd";
    case 3: return "rd";
    default: return "th";
    }
}

static int put_field(char *out, char field, const civil_date *c)
{
    switch (field) {
    case 'd': return put_digits(out, c->day, c->day < 10 ? 1 : 2);
    case 'D': return put_digits(out, c->day, 2);
    case 'o': {
        int n = put_digits(out, c->day, c->day < 10 ? 1 : 2);
        return n + put_text(out + n, ordinal_suffix(c->day), 2);
    }
    case 'm': return put_digits(out, c->month, 2);
    case 'M': return put_text(out, month_names[c->month - 1], 16);
    case 'b': return put_text(out, month_names[c->month - 1], 3);
    case 'W': return put_text(out, weekday_names[c->weekday], 16);
    case 'a': return put_text(out, weekday_names[c->weekday], 3);
    case 'Y': return put_digits(out, c->year, 4);
    default: /* 'y' */ return put_digits(out, c->year % 100, 2);
    }
}

/* ASCII case mapping: the output must not depend on the process's locale. */
static char ascii_lower(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch; }
static char ascii_upper(char ch) { return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch; }
static bool ascii_alnum(char ch)
{
    return (ch >= '0' && ch <= '9') || ascii_lower(ch) != ascii_upper(ch);
}

static bool is_separator(char ch) { return ch == ',' || ch == '/' || ch == '.' || ch == '-'; }

static void apply_case(char *s, date_case letter_case, bool upper)
{
    if (letter_case == DATE_CASE_AS_WRITTEN && upper) letter_case = DATE_CASE_UPPER;
    bool word_start = true;
    for (; *s; s++) {
        char ch = *s;
        if (letter_case == DATE_CASE_LOWER) *s = ascii_lower(ch);
        else if (letter_case == DATE_CASE_UPPER) *s = ascii_upper(ch);
        else if (letter_case == DATE_CASE_TITLE)
            *s = word_start ? ascii_upper(ch) : ascii_lower(ch);
        word_start = !ascii_alnum(ch);
    }
}

bool attn_dates_format_allows(int format, int32_t day)
{
    if (strstr(formats[format].pattern, "%y") == NULL) return true;
    int year = civil_from_day(day).year;
    return year >= PIVOT_FIRST_YEAR && year <= PIVOT_LAST_YEAR;
}

int attn_dates_render(char *out, int32_t day, const date_style *style)
{
    civil_date c = civil_from_day(day);
    const char *pattern = formats[style->format].pattern;
    int n = 0, spaces = 0;
    for (const char *p = pattern; *p; p++) {
        if (*p == '%') {
            n += put_field(out + n, *++p, &c);
        } else if (*p == ' ') {
            out[n++] = ' ';
            if (style->spacing == DATE_SPACING_DOUBLED && ((style->doubling >> spaces) & 1u))
                out[n++] = ' ';
            spaces++;
        } else if (style->spacing == DATE_SPACING_SPACED && is_separator(*p)) {
            if (n > 0 && out[n - 1] != ' ') out[n++] = ' ';
            out[n++] = *p;
            if (p[1] != ' ') out[n++] = ' ';
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    apply_case(out, style->letter_case, formats[style->format].upper);
    return n;
}

void attn_dates_iso(char *out, int32_t day)
{
    civil_date c = civil_from_day(day);
    put_digits(out, c.year, 4);
    out[4] = '-';
    put_digits(out + 5, c.month, 2);
    out[7] = '-';
    put_digits(out + 8, c.day, 2);
    out[10] = '\0';
}

void attn_dates_draw(attn_rng *rng, char *src, char *tgt)
{
    int32_t day = (int32_t)attn_rng_below(rng, DATES_DAY_COUNT);
    date_style style;
    do style.format = (int)attn_rng_below(rng, DATES_FORMAT_COUNT);
    while (!attn_dates_format_allows(style.format, day));
    /* As written 40 %, lower, upper and title 20 % each; plain spacing 70 %,
     * doubled and spaced 15 % each. */
    uint32_t letter_case = attn_rng_below(rng, 10);
    style.letter_case = letter_case < 4   ? DATE_CASE_AS_WRITTEN
                        : letter_case < 6 ? DATE_CASE_LOWER
                        : letter_case < 8 ? DATE_CASE_UPPER
                                          : DATE_CASE_TITLE;
    uint32_t spacing = attn_rng_below(rng, 20);
    style.spacing = spacing < 14   ? DATE_SPACING_PLAIN
                    : spacing < 17 ? DATE_SPACING_DOUBLED
                                   : DATE_SPACING_SPACED;
    style.doubling = attn_rng_u32(rng);
    attn_dates_render(src, day, &style);
    attn_dates_iso(tgt, day);
}

/* Appends every letter of word in both cases. */
static char *append_letters(char *out, const char *word)
{
    for (; *word; word++) {
        *out++ = ascii_lower(*word);
        *out++ = ascii_upper(*word);
    }
    return out;
}

void attn_dates_charset(char *out)
{
    /* Every letter can be written in both cases (the lower and upper styles apply to
     * every format), and these are all the letters, digits and separators. */
    out += put_text(out, "0123456789 ,./-", 16);
    for (int i = 0; i < 12; i++) out = append_letters(out, month_names[i]);
    for (int i = 0; i < 7; i++) out = append_letters(out, weekday_names[i]);
    for (size_t i = 0; i < sizeof other_words / sizeof other_words[0]; i++)
        out = append_letters(out, other_words[i]);
    *out = '\0';
}
