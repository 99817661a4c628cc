#!/usr/bin/python3
"""Writes a handful of small, valid safetensors files into a directory, to seed
fuzz_safetensors. Uses only the standard library: the layout is simple enough
to write by hand, and the fuzzer needs no PyTorch.

    /usr/bin/python3 fuzz/make_seed_corpus.py corpus/
"""
import json
import os
import struct
import sys

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
         "I8": 1, "U8": 1, "BOOL": 1}


def safetensors_bytes(tensors, metadata=None, align=8):
    """tensors: list of (name, dtype, shape, raw bytes), in data order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, raw in tensors:
        numel = 1
        for d in shape:
            numel *= d
        assert len(raw) == numel * SIZES[dtype], name
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((-(8 + len(text))) % align)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def crc32c(data):
    """CRC-32C (Castagnoli), as attn_crc32c computes it."""
    c = 0xFFFFFFFF
    for b in data:
        c = CRC32C_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


CRC32C_TABLE = []
for _byte in range(256):
    _c = _byte
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    CRC32C_TABLE.append(_c)


def sealed(data):
    """A file whose metadata ends with "attn.sealed":"crc32c" and
    "attn.crc32c":"00000000", with the checksum attn writes there (attn/io.h):
    the CRC-32C of the file with those digits as they are."""
    marker = b'"attn.crc32c":"00000000"'
    at = data.index(marker) + len(marker) - 9
    return data[:at] + b"%08x" % crc32c(data) + data[at + 8:]


def seeds():
    yield "empty", safetensors_bytes([])
    yield "metadata_only", safetensors_bytes([], {"format": "pt", "note": "caf\u00e9"})
    yield "sealed", sealed(safetensors_bytes(
        [("w", "F32", [2], struct.pack("<2f", 1, -2))],
        {"step": "3", "attn.sealed": "crc32c", "attn.crc32c": "00000000"}))
    yield "f32_matrix", safetensors_bytes(
        [("weight", "F32", [2, 3], struct.pack("<6f", 1, -2, 0.5, 0, 3.25, -1e-3))],
        {"format": "pt"})
    yield "every_dtype", safetensors_bytes([
        ("f64", "F64", [2], struct.pack("<2d", 1.5, -1e300)),
        ("f32", "F32", [], struct.pack("<f", 7.0)),
        ("f16", "F16", [4], struct.pack("<4H", 0x3C00, 0x0001, 0x7C00, 0x7E00)),
        ("bf16", "BF16", [2], struct.pack("<2H", 0x3F80, 0xFF80)),
        ("i64", "I64", [1], struct.pack("<q", -(1 << 40))),
        ("i32", "I32", [2], struct.pack("<2i", 5, -5)),
        ("i16", "I16", [1, 1], struct.pack("<h", -300)),
        ("i8", "I8", [3], struct.pack("<3b", -128, 0, 127)),
        ("u8", "U8", [2], bytes([0, 255])),
        ("bool", "BOOL", [2], bytes([0, 1])),
    ])
    yield "mha_state_dict", safetensors_bytes([
        ("in_proj_weight", "F32", [6, 2], struct.pack("<12f", *range(12))),
        ("in_proj_bias", "F32", [6], struct.pack("<6f", *range(6))),
        ("out_proj.weight", "F32", [2, 2], struct.pack("<4f", *range(4))),
        ("out_proj.bias", "F32", [2], struct.pack("<2f", 0, 1)),
    ])
    yield "zero_sized", safetensors_bytes([
        ("none", "F32", [0, 4], b""),
        ("one", "U8", [1], b"\x01"),
        ("also_none", "I64", [3, 0], b""),
    ])
    yield "unpadded", safetensors_bytes(
        [("x", "F16", [3], struct.pack("<3H", 1, 2, 3))], align=1)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_seed_corpus.py DIRECTORY")
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(directory, name + ".safetensors"), "wb") as f:
            f.write(data)
    print(f"wrote {len(list(seeds()))} seeds to {directory}")


if __name__ == "__main__":
    main()
