"""Attention records (attn/capture.h): what a model attended to, as `attn
translate --attention FILE` and `attn generate --attention FILE` write it (JSON
or safetensors), or as attn.models records it.

    record = attn.records.load_record("dates.json")
    cross = record.map("decoder.attention")
    cross.weights            # (heads, rows, cols) float32, each row sums to 1
    cross.row_tokens         # the query tokens labelling the rows

The library reads and checks the file; every value is copied out of its record,
which is then freed, so a Record is plain Python and NumPy."""
import contextlib
import ctypes
import os

import numpy as np

from ._lib import check, check_sizes, declare

# ATTN_RECORD_NAME_MAX and ATTN_RECORD_MAPS_MAX of attn/capture.h.
_NAME_MAX, _MAPS_MAX = 96, 256


class _Map(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * _NAME_MAX), ("site", ctypes.c_char * _NAME_MAX),
                ("layer", ctypes.c_int), ("kind", ctypes.c_int), ("hard", ctypes.c_bool),
                ("over_queries", ctypes.c_bool), ("heads", ctypes.c_int), ("rows", ctypes.c_int),
                ("cols", ctypes.c_int), ("weights", ctypes.POINTER(ctypes.c_float)),
                ("head_dim", ctypes.c_int), ("q", ctypes.POINTER(ctypes.c_float)),
                ("k", ctypes.POINTER(ctypes.c_float)), ("gradient", ctypes.POINTER(ctypes.c_float))]


class _Record(ctypes.Structure):
    _fields_ = [("model", ctypes.c_char * 64), ("task", ctypes.c_char * 32),
                ("queries", ctypes.POINTER(ctypes.c_char_p)),
                ("keys", ctypes.POINTER(ctypes.c_char_p)), ("n_queries", ctypes.c_int),
                ("n_keys", ctypes.c_int), ("maps", _Map * _MAPS_MAX), ("n_maps", ctypes.c_int),
                ("gradient_step", ctypes.c_int)]


class _Options(ctypes.Structure):
    _fields_ = [("qk", ctypes.c_bool), ("gradient", ctypes.c_bool),
                ("gradient_step", ctypes.c_int)]


check_sizes((_Map, "attn_attention_map"), (_Record, "attn_record"),
            (_Options, "attn_record_options"))

# ATTN_EXPLAIN_ALL: a gradient of every output token's log-probability, summed.
EXPLAIN_ALL = -1


def _options(qk, gradient, gradient_step):
    """What a model records beside the weights (attn_record_options), or None for
    nothing; gradient_step (an int, or EXPLAIN_ALL) implies gradient."""
    gradient = gradient or gradient_step is not None
    if not (qk or gradient):
        return None
    step = EXPLAIN_ALL if gradient_step is None else gradient_step
    if not isinstance(step, int) or isinstance(step, bool):
        raise TypeError(f"gradient_step must be an int, not {type(step).__name__}")
    if not -1 <= step < 2**31:
        raise ValueError(f"gradient_step {step} is outside [-1, 2**31)")
    return ctypes.byref(_Options(bool(qk), gradient, step))

_record_p, _map_p, _tokens_p = (ctypes.POINTER(_Record), ctypes.POINTER(_Map),
                                ctypes.POINTER(ctypes.c_char_p))
_init = declare("attn_record_init", _record_p, ctypes.c_char_p, ctypes.c_char_p, restype=None)
_free = declare("attn_record_free", _record_p, restype=None)
_load = declare("attn_record_load", _record_p, ctypes.c_char_p)
_set_queries = declare("attn_record_set_queries", _record_p, _tokens_p, ctypes.c_int)
_set_keys = declare("attn_record_set_keys", _record_p, _tokens_p, ctypes.c_int)
_kind_name = declare("attn_map_kind_name", ctypes.c_int, restype=ctypes.c_char_p)
_row_tokens = declare("attn_map_row_tokens", _record_p, _map_p, restype=_tokens_p)
_col_tokens = declare("attn_map_col_tokens", _record_p, _map_p, restype=_tokens_p)


class Map:
    """One attention map: `name` (e.g. "transformer.h.0.attn"), `site` (the name
    with the layer as "*"), `layer`, `kind` ("self" or "cross"), `hard` (each row
    one-hot), `weights` (heads, rows, cols) float32, and the tokens labelling its
    rows and columns, `row_tokens` (rows) and `col_tokens` (cols). When recorded
    (else None): `q` (heads, rows, head_dim) and `k` (heads, cols, head_dim),
    `gradient` (heads, rows, cols), d log p / d weights."""

    def __init__(self, name, site, layer, kind, hard, weights, row_tokens, col_tokens,
                 q=None, k=None, gradient=None):
        self.name, self.site, self.layer, self.kind, self.hard = name, site, layer, kind, hard
        self.weights, self.row_tokens, self.col_tokens = weights, row_tokens, col_tokens
        self.q, self.k, self.gradient = q, k, gradient

    def __repr__(self):
        return (f"Map({self.name!r}, {self.kind}, layer {self.layer}, "
                f"{'hard, ' if self.hard else ''}weights {self.weights.shape})")


class Record:
    """A record: the `model` and `task` it comes from, the tokens the model wrote
    (`queries`) and read (`keys`), its `maps` (a list of Map), and
    `gradient_step`, the output the maps' gradients explain (-1: every output
    token; None without gradients)."""

    def __init__(self, model, task, queries, keys, maps, gradient_step=None):
        self.model, self.task, self.queries, self.keys, self.maps = model, task, queries, keys, maps
        self.gradient_step = gradient_step

    def map(self, name):
        """The map called name."""
        for m in self.maps:
            if m.name == name:
                return m
        raise KeyError(f"no map {name!r} in the record; it has {[m.name for m in self.maps]}")

    def __repr__(self):
        return (f"Record({self.model!r}, {self.task!r}, {len(self.queries)} queries, "
                f"{len(self.keys)} keys, {len(self.maps)} maps)")


@contextlib.contextmanager
def _c_record(model="", task=""):
    """An empty C record, freed on leaving (whatever the library put into it)."""
    r = _Record()
    _init(ctypes.byref(r), model.encode(), task.encode())
    try:
        yield r
    finally:
        _free(ctypes.byref(r))


def _set_tokens(r, queries, keys):
    """Sets the C record's tokens (the library copies them)."""
    for setter, tokens in ((_set_queries, queries), (_set_keys, keys)):
        array = (ctypes.c_char_p * len(tokens))(*(t.encode() for t in tokens))
        check(setter(ctypes.byref(r), array, len(tokens)))


def _strings(array, n):
    return [array[i].decode() for i in range(n)]


def _copy(r):
    """A Record holding copies of everything in the C record r."""
    maps = []
    for m in r.maps[:r.n_maps]:
        shape = (m.heads, m.rows, m.cols)
        weights = np.ctypeslib.as_array(m.weights, shape).copy()
        extras = {
            "q": _array(m.q, (m.heads, m.rows, m.head_dim)),
            "k": _array(m.k, (m.heads, m.cols, m.head_dim)),
            "gradient": _array(m.gradient, shape),
        }
        maps.append(Map(m.name.decode(), m.site.decode(), m.layer, _kind_name(m.kind).decode(),
                        m.hard, weights, _strings(_row_tokens(ctypes.byref(r), m), m.rows),
                        _strings(_col_tokens(ctypes.byref(r), m), m.cols), **extras))
    has_gradients = any(m.gradient is not None for m in maps)
    return Record(r.model.decode(), r.task.decode(), _strings(r.queries, r.n_queries),
                  _strings(r.keys, r.n_keys), maps, r.gradient_step if has_gradients else None)


def _array(pointer, shape):
    """A copy of the C array at pointer, or None for NULL."""
    return np.ctypeslib.as_array(pointer, shape).copy() if pointer else None


def load_record(path):
    """The record in the file at path, JSON or safetensors (the library tells
    them by their bytes and checks every size, weight and name)."""
    path = os.fsencode(path)
    with _c_record() as r:
        check(_load(ctypes.byref(r), path))
        return _copy(r)
