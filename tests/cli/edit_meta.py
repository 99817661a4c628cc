#!/usr/bin/python3
"""Copies a safetensors file with metadata values changed, for the checks of bad
model files: edit_meta.py IN OUT KEY=VALUE ..., where KEY is a metadata key
("step") or a key's JSON object and one of its fields ("model.hidden_dim"), and
VALUE is JSON for a field, the string itself for a key."""
import json
import struct
import sys

source, target, *changes = sys.argv[1:]
data = open(source, "rb").read()
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8:8 + n])
meta = header["__metadata__"]
for change in changes:
    key, value = change.split("=", 1)
    if "." in key and key.split(".", 1)[0] in meta and meta[key.split(".", 1)[0]].startswith("{"):
        outer, field = key.split(".", 1)
        obj = json.loads(meta[outer])
        obj[field] = json.loads(value)
        meta[outer] = json.dumps(obj)
    else:
        meta[key] = value
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
open(target, "wb").write(struct.pack("<Q", len(text)) + text + data[8 + n:])
