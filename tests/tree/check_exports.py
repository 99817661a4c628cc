"""libattn exports its public API, nothing else, and no name outside attn_.

  check_exports.py INCLUDE_DIR LIBATTN_SO LIBATTN_A

The public API is every function that a header of INCLUDE_DIR/attn declares; each
declaration must be marked ATTN_API (include/attn/core.h), which is what exports
it from the library built with hidden visibility. Fails, naming the symbols, if
  - a public function is not marked ATTN_API or is not named attn_*,
  - libattn.so (nm -D) exports a function that is not public, or misses one,
  - libattn.a defines a global symbol not named attn_* (internal functions are
    linked into the user's program with it, where a bare name can collide).
"""
import glob
import os
import re
import sys

from nm_symbols import global_symbols

PREFIX = "attn_"


def declarations(header):
    """{name: marked} for the functions the header declares at file scope."""
    text = open(header).read()
    text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)
    text = re.sub(r"\\\n", " ", text)
    # The extern "C" braces for C++ would read as a scope; drop them with the #if.
    text = re.sub(r"#ifdef __cplusplus.*?#endif", " ", text, flags=re.S)
    text = re.sub(r"^\s*#[^\n]*", " ", text, flags=re.M)
    found, statement, depth = {}, "", 0
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if depth > 0 or ch == "}":
            continue  # struct and enum bodies: only their file-scope text counts
        if ch != ";":
            statement += ch
            continue
        words = statement.split()
        call = re.search(r"(\w+)\s*\(", statement)
        if words and words[0] != "typedef" and call:
            found[call.group(1)] = "ATTN_API" in words
        statement = ""
    return found


def main(include_dir, shared, static):
    public, unmarked = set(), []
    headers = sorted(glob.glob(os.path.join(include_dir, "attn", "*.h")))
    for header in headers:
        for name, marked in declarations(header).items():
            public.add(name)
            if not marked:
                unmarked.append(f"{name} ({os.path.basename(header)})")
    exported = set().union(*(d for d, _ in global_symbols([shared], dynamic=True).values()))
    bare = sorted(f"{name} ({member})" for member, (defined, _) in global_symbols([static]).items()
                  for name in defined if not name.startswith(PREFIX))
    problems = [
        ("public functions not marked ATTN_API", unmarked),
        ("public functions not named attn_*", sorted(n for n in public if not n.startswith(PREFIX))),
        ("exported by libattn.so but not public", sorted(exported - public)),
        ("public but not exported by libattn.so", sorted(public - exported)),
        ("global symbols of libattn.a not named attn_*", bare),
    ]
    failed = False
    for title, names in problems:
        if names:
            failed = True
            print(f"check_exports: {title} ({len(names)}):\n  " + "\n  ".join(names))
    if failed:
        return 1
    print(f"libattn.so exports {len(exported)} functions: exactly the ATTN_API declarations "
          f"of {len(headers)} headers in include/attn/; every global symbol of libattn.a "
          f"is named attn_*")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
