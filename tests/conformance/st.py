"""A small safetensors reader and writer for numpy arrays.

The layout: an 8-byte little-endian header length N, N bytes of JSON that map each
tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets counted
from the first byte after the header), an optional "__metadata__" object of
string values, then the tensor bytes, little-endian and row-major. BF16 tensors are
read as their bits (uint16 arrays; bf16_to_float32 gives their values), and uint16
arrays are written as BF16.
"""

import json
import struct

import numpy as np

DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
    "BF16": np.dtype("<u2"),  # NumPy has no bfloat16: its bits, widened by bf16_to_float32
}


def bf16_to_float32(bits):
    """The float32 values of bfloat16 bits (uint16): the top half of each float."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def dtype_name(array):
    """The safetensors name of a numpy array's dtype."""
    for name, dtype in DTYPES.items():
        if array.dtype == dtype or array.dtype == dtype.newbyteorder("="):
            return name
    raise ValueError(f"dtype {array.dtype} has no safetensors name")


def encode(tensors, metadata=None):
    """The bytes of a safetensors file holding `tensors` (a dict name -> array)
    and `metadata` (a dict of strings)."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for name, array in tensors.items():
        array = np.asarray(array)
        name_of_dtype = dtype_name(array)
        data = np.ascontiguousarray(array, dtype=DTYPES[name_of_dtype]).tobytes()
        header[name] = {
            "dtype": name_of_dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad so the data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def save(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(encode(tensors, metadata))


def decode(blob):
    """(tensors, metadata) from the bytes of a safetensors file; tensors keep the
    file's order."""
    if len(blob) < 8:
        raise ValueError(f"file of {len(blob)} bytes has no header length")
    (length,) = struct.unpack("<Q", blob[:8])
    if 8 + length > len(blob):
        raise ValueError(f"header length {length} runs past the end ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + length].decode("utf-8"))
    data = blob[8 + length:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        dtype = DTYPES[info["dtype"]]
        shape = tuple(info["shape"])
        begin, end = info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64))
        if not 0 <= begin <= end <= len(data) or end - begin != count * dtype.itemsize:
            raise ValueError(f"tensor {name!r}: bad data_offsets {begin}, {end}")
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(shape).copy()
    return tensors, metadata


def load(path):
    with open(path, "rb") as f:
        return decode(f.read())
