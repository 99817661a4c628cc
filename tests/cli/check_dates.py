#!/usr/bin/python3
"""attn data: every dates example is checked by parsers written here, independently of
the generator (one per format, Python's datetime for the calendar and the weekdays);
the splits share no source; the fixed sets do not depend on the seed while the
training stream does; every format, letter case and spacing occurs. The digit tasks'
targets are checked too.

    check_dates.py PATH_TO_ATTN
"""
import collections
import datetime
import json
import re
import subprocess
import sys

MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december"]
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MAX_SOURCE = 40  # characters


def alternatives(words):
    return "|".join(words)


# Building blocks; a space in a format may be doubled, and a separator may have a
# space on each side.
PIECES = {
    "MONTH": r"(?P<month_name>%s)" % alternatives(MONTHS),
    "MON": r"(?P<month_abbr>%s)" % alternatives(m[:3] for m in MONTHS),
    "WEEKDAY": r"(?P<weekday_name>%s)" % alternatives(WEEKDAYS),
    "WKD": r"(?P<weekday_abbr>%s)" % alternatives(w[:3] for w in WEEKDAYS),
    "D": r"(?P<day>[1-9]|[12][0-9]|3[01])",  # no leading zero
    "DD": r"(?P<day>0[1-9]|[12][0-9]|3[01])",
    "ORD": r"(?P<day>[1-9]|[12][0-9]|3[01])(?P<suffix>st|nd|rd|th)",
    "MM": r"(?P<month>0[1-9]|1[0-2])",
    "YYYY": r"(?P<year>[0-9]{4})",
    "YY": r"(?P<year2>[0-9]{2})",
}

# The formats as a reader knows them: slashes and dots before a four-digit year are
# day first; a two-digit year means 1950-2049.
FORMATS = {
    "D Month YYYY": "D _ MONTH _ YYYY",
    "Month D, YYYY": "MONTH _ D , _ YYYY",
    "Mon D, YYYY": "MON _ D , _ YYYY",
    "Weekday, Month D, YYYY": "WEEKDAY , _ MONTH _ D , _ YYYY",
    "Wkd, D Mon YYYY": "WKD , _ D _ MON _ YYYY",
    "DD/MM/YYYY": "DD / MM / YYYY",
    "YYYY.MM.DD": "YYYY . MM . DD",
    "DD.MM.YYYY": "DD . MM . YYYY",
    "DD-MON-YY": "DD - MON - YY",
    "YYYY-MM-DD": "YYYY - MM - DD",
    "YYYYMMDD": "YYYY MM DD",
    "Month Dth, YYYY": "MONTH _ ORD , _ YYYY",
    "the Dth of Month YYYY": "the _ ORD _ of _ MONTH _ YYYY",
    "D Mon YYYY": "D _ MON _ YYYY",
    "Weekday D Month YYYY": "WEEKDAY _ D _ MONTH _ YYYY",
    "DD-MM-YYYY": "DD - MM - YYYY",
    "Dth Month YYYY": "ORD _ MONTH _ YYYY",
    "Wkd, Mon D, YYYY": "WKD , _ MON _ D , _ YYYY",
}


def compile_format(spec):
    parts = []
    for token in spec.split(" "):
        if token in PIECES:
            parts.append(PIECES[token])
        elif token == "_":
            parts.append(" {1,2}")
        elif token in ",/.-":
            parts.append(" ?" + re.escape(token) + (" ?" if token != "," else ""))
        else:
            parts.append(token)
    return re.compile("".join(parts), re.IGNORECASE)


PARSERS = {name: compile_format(spec) for name, spec in FORMATS.items()}


def ordinal_suffix(day):
    if 11 <= day <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def read_date(match):
    """The date a match denotes, or a string saying what is wrong."""
    g = {k: v.lower() for k, v in match.groupdict().items() if v is not None}
    if "month_name" in g:
        month = MONTHS.index(g["month_name"]) + 1
    elif "month_abbr" in g:
        month = [m[:3] for m in MONTHS].index(g["month_abbr"]) + 1
    else:
        month = int(g["month"])
    if "year" in g:
        year = int(g["year"])
    else:
        yy = int(g["year2"])
        year = 1900 + yy if yy >= 50 else 2000 + yy
    day = int(g["day"])
    try:
        date = datetime.date(year, month, day)
    except ValueError as e:
        return "not a date: %s" % e
    if "suffix" in g and g["suffix"] != ordinal_suffix(day):
        return "wrong ordinal suffix %r for day %d" % (g["suffix"], day)
    weekday = g.get("weekday_name") or g.get("weekday_abbr")
    if weekday is not None:
        real = WEEKDAYS[date.weekday()]
        if weekday not in (real, real[:3]):
            return "weekday %s, but %s was a %s" % (weekday, date.isoformat(), real)
    if not datetime.date(1900, 1, 1) <= date <= datetime.date(2099, 12, 31):
        return "%s is outside 1900-2099" % date.isoformat()
    return date


def title(s):
    out, start = [], True
    for ch in s:
        out.append(ch.upper() if start else ch.lower())
        start = not ch.isalnum()
    return "".join(out)


def letter_case(source, formats):
    """Which of the four cases the source is in: several when they coincide."""
    cases = set()
    if source == source.lower():
        cases.add("lower")
    if source == source.upper():
        cases.add("upper")
    if source == title(source):
        cases.add("title")
    for name in formats:
        written = source.upper() if name == "DD-MON-YY" else re.sub(
            r"\b(The|Of)\b", lambda m: m.group(1).lower(), title(source))
        if source == written:
            cases.add("as written")
    return cases


class Checker:
    def __init__(self, attn):
        self.attn = attn
        self.failures = 0

    def fail(self, message):
        self.failures += 1
        if self.failures <= 30:
            print("FAIL: " + message)

    def run(self, *args):
        result = subprocess.run([self.attn, "data", *args], capture_output=True, text=True,
                                timeout=60)
        return result.returncode, result.stdout, result.stderr

    def examples(self, task, split, count, seed):
        args = ["--task", task, "--split", split, "--count", str(count), "--seed", str(seed),
                "--json"]
        code, out, err = self.run(*args)
        if code != 0:
            self.fail("attn data %s -> status %d: %s" % (" ".join(args), code, err.strip()))
            return []
        examples = json.loads(out)
        if len(examples) != count:
            self.fail("attn data %s printed %d examples" % (" ".join(args), len(examples)))
        return [(e["source"], e["target"]) for e in examples]

    def expect_usage_error(self, fragment, *args):
        code, out, err = self.run(*args)
        if code != 2 or fragment not in err:
            self.fail("attn data %s -> status %d (want 2), stderr %r (want %r)"
                      % (" ".join(args), code, err.strip(), fragment))

    def check_splits(self, task, sets):
        """sets: name -> list of examples; fixed sets without duplicates, no source in
        two splits."""
        sources = {name: [s for s, _ in examples] for name, examples in sets.items()}
        for name in ("valid", "test"):
            if len(set(sources[name])) != len(sources[name]):
                self.fail("%s %s set has duplicate sources" % (task, name))
        train = set(sources["train seed 1"]) | set(sources["train seed 2"])
        for a, b in (("valid", "test"),):
            shared = set(sources[a]) & set(sources[b])
            if shared:
                self.fail("%s: %s and %s share %r" % (task, a, b, sorted(shared)[:3]))
        for name in ("valid", "test"):
            shared = train & set(sources[name])
            if shared:
                self.fail("%s: train and %s share %r" % (task, name, sorted(shared)[:3]))

    def check_dates(self, sets):
        format_counts = collections.Counter()
        case_counts = collections.Counter()
        doubled = spaced = 0
        checked = 0
        for name, examples in sets.items():
            for source, target in examples:
                checked += 1
                where = "%s example %r -> %r" % (name, source, target)
                if len(source) > MAX_SOURCE:
                    self.fail("%s: longer than %d characters" % (where, MAX_SOURCE))
                if source != source.strip() or "   " in source:
                    self.fail("%s: stray spaces" % where)
                readings = {}
                for fmt, parser in PARSERS.items():
                    m = parser.fullmatch(source)
                    if m:
                        readings[fmt] = read_date(m)
                if not readings:
                    self.fail("%s: no format reads it" % where)
                    continue
                for fmt, date in readings.items():
                    if isinstance(date, str):
                        self.fail("%s, read as %s: %s" % (where, fmt, date))
                    elif date.isoformat() != target:
                        self.fail("%s: read as %s it is %s" % (where, fmt, date.isoformat()))
                    format_counts[fmt] += 1
                cases = letter_case(source, readings)
                if not cases:
                    self.fail("%s: not lower, upper, title or as written" % where)
                case_counts.update(cases)
                doubled += "  " in source
                spaced += bool(re.search(r" [,/.-]", source))
        for fmt in FORMATS:
            if format_counts[fmt] == 0:
                self.fail("dates: no example in the format %s" % fmt)
        for case in ("lower", "upper", "title", "as written"):
            if case_counts[case] == 0:
                self.fail("dates: no example in %s case" % case)
        if doubled == 0 or spaced == 0:
            self.fail("dates: %d examples with doubled spaces, %d with spaced separators"
                      % (doubled, spaced))
        print("dates: %d examples read by %d parsers; formats %s; cases %s; "
              "%d doubled spaces, %d spaced separators"
              % (checked, len(PARSERS), dict(sorted(format_counts.items())),
                 dict(case_counts), doubled, spaced))

    def check_digits(self, task, sets):
        for name, examples in sets.items():
            for source, target in examples:
                want = {"reverse": source[::-1], "sort": "".join(sorted(source)),
                        "copy": source}[task]
                if not (source.isdigit() and source.isascii() and 1 <= len(source) <= 20):
                    self.fail("%s %s: source %r is not 1 to 20 digits" % (task, name, source))
                elif target != want:
                    self.fail("%s %s: %r -> %r, want %r" % (task, name, source, target, want))
        lengths = collections.Counter(len(s) for s, _ in sets["train seed 1"])
        if sorted(lengths) != list(range(1, 21)):
            self.fail("%s: training sources have lengths %s" % (task, sorted(lengths)))

    def check_task(self, task, train_count, valid_count, test_count):
        sets = {
            "train seed 1": self.examples(task, "train", train_count, 1),
            "train seed 2": self.examples(task, "train", train_count, 2),
            "valid": self.examples(task, "valid", valid_count, 1),
            "test": self.examples(task, "test", test_count, 1),
        }
        if self.examples(task, "train", 200, 1) != sets["train seed 1"][:200]:
            self.fail("%s: the training stream of seed 1 differs between two runs" % task)
        same = sum(a == b for a, b in zip(sets["train seed 1"], sets["train seed 2"]))
        if same > train_count // 100:
            self.fail("%s: seeds 1 and 2 give %d equal training examples of %d"
                      % (task, same, train_count))
        if self.examples(task, "valid", valid_count, 12345) != sets["valid"]:
            self.fail("%s: the valid set depends on the seed" % task)
        if self.examples(task, "test", test_count, 777) != sets["test"]:
            self.fail("%s: the test set depends on the seed" % task)
        self.check_splits(task, sets)
        if task == "dates":
            self.check_dates(sets)
        else:
            self.check_digits(task, sets)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    checker = Checker(sys.argv[1])
    checker.check_task("dates", 5000, 1000, 2000)
    for task in ("reverse", "sort", "copy"):
        checker.check_task(task, 2000, 1000, 1000)

    code, out, _ = checker.run("--help")
    if code != 0 or "usage: attn data" not in out:
        checker.fail("attn data --help -> status %d" % code)
    code, out, _ = checker.run("--task", "copy", "--count", "3")
    if code != 0 or len(out.splitlines()) != 3:
        checker.fail("attn data --task copy --count 3 -> status %d, %r" % (code, out))
    checker.expect_usage_error("unknown task 'days'; the tasks are dates, reverse, sort and copy",
                               "--task", "days")
    checker.expect_usage_error("--split takes train, valid or test, not 'dev'", "--split", "dev")
    checker.expect_usage_error("--count 1001 is more than the 1000 examples of the dates valid "
                               "set", "--split", "valid", "--count", "1001")
    checker.expect_usage_error("--count takes 1 to", "--count", "0")
    checker.expect_usage_error("unknown option '--bogus'", "--bogus")
    checker.expect_usage_error("unexpected argument 'x'", "x")

    if checker.failures:
        print("%d failures" % checker.failures)
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
