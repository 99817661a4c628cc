"""What nm says about the build's files: the global symbols each one defines and
the ones it uses without defining, for the checks of tests/tree/."""
import subprocess
import sys

# nm's letters for a symbol a file uses but does not define (w and v: weak).
UNDEFINED = {"U", "w", "v"}


def global_symbols(paths, dynamic=False):
    """{file: (defined, used)}, two sets of names for each object file, shared
    library (dynamic: its exported table, nm -D) or archive member, the latter
    named "lib.a[member.o]" as nm names it. Files without globals are absent."""
    command = ["nm", "-A", "-P", "-g"] + (["-D"] if dynamic else []) + list(paths)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:4])}: {done.stderr.strip()}")
    table = {}
    for line in done.stdout.splitlines():
        where, rest = line.split(": ", 1)
        name, kind = rest.split()[:2]
        defined, used = table.setdefault(where, (set(), set()))
        (used if kind in UNDEFINED else defined).add(name)
    return table
