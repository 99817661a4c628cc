#!/usr/bin/python3
"""Copies a safetensors file with metadata values changed, for the checks of bad
model files: edit_meta.py IN OUT KEY=VALUE ..., where KEY is a metadata key
("step") or a key's JSON object and one of its fields ("model.hidden_dim"), and
VALUE is JSON for a field, the string itself for a key; a KEY (or field) without
"=VALUE" is removed. The copy gets its checksum ("attn.crc32c", attn/io.h) anew, as
attn would write it, unless one of its two keys is removed."""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz"))
from make_seed_corpus import sealed as seal  # noqa: E402

source, target, *changes = sys.argv[1:]
data = open(source, "rb").read()
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8:8 + n])
meta = header["__metadata__"]
for change in changes:
    key, value = change.split("=", 1) if "=" in change else (change, None)
    if "." in key and key.split(".", 1)[0] in meta and meta[key.split(".", 1)[0]].startswith("{"):
        outer, field = key.split(".", 1)
        obj = json.loads(meta[outer])
        if value is None:
            del obj[field]
        else:
            obj[field] = json.loads(value)
        meta[outer] = json.dumps(obj)
        continue
    if value is None:
        del meta[key]
    else:
        meta[key] = value

checksummed = "attn.crc32c" in meta and "attn.sealed" in meta
if checksummed:  # last, as attn writes them
    del meta["attn.sealed"], meta["attn.crc32c"]
    meta["attn.sealed"] = "crc32c"
    meta["attn.crc32c"] = "00000000"
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
out = struct.pack("<Q", len(text)) + text + data[8 + n:]
open(target, "wb").write(seal(out) if checksummed else out)
