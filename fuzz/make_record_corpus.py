#!/usr/bin/python3
"""Writes a few small, valid attention records (attn/capture.h) into a directory,
as JSON and as safetensors, to seed fuzz_record. Standard library only.

    /usr/bin/python3 fuzz/make_record_corpus.py corpus/
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_seed_corpus import safetensors_bytes, sealed  # noqa: E402


def one_hot_rows(rows, cols):
    return [[1.0 if j == i % cols else 0.0 for j in range(cols)] for i in range(rows)]


def uniform_rows(rows, cols, causal=False):
    out = []
    for i in range(rows):
        seen = i + 1 if causal else cols
        out.append([1.0 / seen if j < seen else 0.0 for j in range(cols)])
    return out


RECORDS = {
    "cross": {
        "model": "gru-bahdanau", "task": "dates",
        "queries": ["2", "0", "</s>"], "keys": ["2", "4", "-", "N"],
        "maps": [{"name": "decoder.attention", "layer": 0, "kind": "cross", "hard": False,
                  "heads": 1, "rows": 3, "cols": 4, "weights": [uniform_rows(3, 4)]}],
    },
    "hard": {
        "model": "gru-bahdanau", "task": "dates",
        "queries": ["1", "</s>"], "keys": ["a", "b", "c"],
        "maps": [{"name": "decoder.attention", "layer": 0, "kind": "cross", "hard": True,
                  "heads": 1, "rows": 2, "cols": 3, "weights": [one_hot_rows(2, 3)]}],
    },
    "extras": {
        "model": "transformer", "task": "dates",
        "queries": ["2", "</s>"], "keys": ["a", "b", "c"], "gradient_step": -1,
        "maps": [{"name": "transformer.decoder.layers.0.multihead_attn",
                  "site": "transformer.decoder.layers.*.multihead_attn", "layer": 0,
                  "kind": "cross", "hard": False, "heads": 2, "rows": 2, "cols": 3,
                  "head_dim": 2, "weights": [uniform_rows(2, 3)] * 2,
                  "q": [[[0.5, -1.0], [2.0, 0.25]]] * 2,
                  "k": [[[1.0, 0.0], [0.0, 1.0], [-0.5, 0.5]]] * 2,
                  "gradient": [[[0.1, -0.2, 0.3], [-1e-3, 0.0, 2.5]]] * 2}],
    },
    "self": {
        "model": "gpt", "task": "text",
        "queries": ["t", "h", "e"], "keys": ["t", "h", "e"],
        "maps": [{"name": "transformer.h.%d.attn" % layer, "layer": layer, "kind": "self",
                  "hard": False, "heads": 2, "rows": 3, "cols": 3,
                  "weights": [uniform_rows(3, 3, causal=True)] * 2} for layer in range(2)],
    },
}


# A map's tensors: its weights, and the optional q, k and gradient.
PARTS = [("weights", "attention."), ("q", "query."), ("k", "key."), ("gradient", "gradient.")]


def record_json(record):
    return dict({"format": "attn-attention", "version": 1}, **record)


def record_safetensors(record):
    header = record_json(record)
    tensors = []
    for m in header["maps"]:
        for key, prefix in PARTS:
            if key not in m:
                continue
            values = m.pop(key)
            shape = [len(values), len(values[0]), len(values[0][0])]
            flat = [w for head in values for row in head for w in row]
            tensors.append((prefix + m["name"], "F32", shape,
                            struct.pack("<%df" % len(flat), *flat)))
    metadata = {"attn.kind": "attention", "record": json.dumps(header),
                "attn.sealed": "crc32c", "attn.crc32c": "00000000"}
    return sealed(safetensors_bytes(tensors, metadata))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_record_corpus.py DIR")
    os.makedirs(sys.argv[1], exist_ok=True)
    for name, record in RECORDS.items():
        with open(os.path.join(sys.argv[1], name + ".json"), "w") as f:
            json.dump(record_json(json.loads(json.dumps(record))), f)
        with open(os.path.join(sys.argv[1], name + ".safetensors"), "wb") as f:
            f.write(record_safetensors(json.loads(json.dumps(record))))


if __name__ == "__main__":
    main()
