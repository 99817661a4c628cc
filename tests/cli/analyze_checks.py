"""What the checks of `attn analyze` (check_analyze.py, check_faithfulness.py)
share: the attn under test (the first argument), failures kept and printed as
they come, attn run, `attn analyze --json` parsed, and a refusal expected."""

import json
import subprocess
import sys

ATTN = sys.argv[1]
FAILURES = []


def check(condition, what):
    if not condition:
        FAILURES.append(what)
        print(f"FAIL: {what}")


def run(*arguments):
    """attn's output; a failing command ends the check (nothing after it can run)."""
    done = subprocess.run([ATTN, *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"attn {' '.join(arguments)}: status {done.returncode}: {done.stderr}")
    return done.stdout


def analyze(*arguments):
    done = subprocess.run([ATTN, "analyze", "--json", *arguments], capture_output=True, text=True)
    check(done.returncode == 0, f"analyze {arguments}: status {done.returncode}: {done.stderr}")
    return json.loads(done.stdout) if done.returncode == 0 else None


def expect(status, fragment, *arguments):
    done = subprocess.run([ATTN, "analyze", *arguments], capture_output=True, text=True)
    output = done.stdout + done.stderr
    check(done.returncode == status and fragment in output,
          f"analyze {arguments}: status {done.returncode} (want {status}), output {output!r} "
          f"(want {fragment!r})")


def finish(what, repeat=""):
    """Exit 1 with the count of failures (and how to repeat the run), else say so."""
    if FAILURES:
        print(f"{len(FAILURES)} failures{repeat}")
        sys.exit(1)
    print(f"all {what} checks passed")
