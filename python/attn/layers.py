"""Attention layers over NumPy arrays, each the library's own (attn/attention.h,
attn/nn.h) with PyTorch's conventions:

  score_dot, score_general, score_additive, score_additive_projected
      the score functions of soft attention: queries (B, Lq, Dq) against keys
      (B, Lk, Dk) give scores (B, Lq, Lk);
  soft_attention, hard_attention
      the weights over the keys given the scores, and the context they pick
      from the values (B, Lk, Dv);
  MultiheadAttention
      torch.nn.MultiheadAttention, loading and giving PyTorch's state_dict;
  SeedMultiheadAttention
      the seed article's MultiHeadAttention class, its quirks included.

Each function has a *_backward that returns the gradients of the forward's
array arguments, in the forward's order, given the gradient of its output. A
module's backward returns the gradients of its last forward's inputs and adds
those of its parameters into `grads` (zero_grad() clears them), as PyTorch
accumulates .grad.

Arrays are C-contiguous float32 (masks bool or float32) and reach the library
without a copy; results are new arrays. Anything else is a TypeError or
ValueError raised before the library is called; what the library itself
refuses raises an attn.AttnError with its message."""
import ctypes
import os
import secrets
from collections.abc import Mapping

import numpy as np

from . import _arrays
from ._lib import check, check_sizes, declare
from .functional import MASK_BOOL, MASK_BOOL_KEEP, MASK_FLOAT, _Mask, _mask_init

__all__ = ["MultiheadAttention", "SeedMultiheadAttention", "hard_attention",
           "hard_attention_backward", "score_additive", "score_additive_backward",
           "score_additive_projected", "score_additive_projected_backward", "score_dot",
           "score_dot_backward", "score_general", "score_general_backward", "soft_attention",
           "soft_attention_backward"]

_INT_MAX = 2**31 - 1  # sizes are C ints, and ctypes would wrap a larger one silently
_p = _arrays.address
_f = ctypes.c_void_p  # arrays (float, int32, mask) are passed by address
_i = ctypes.c_int
_mask_p = ctypes.POINTER(_Mask)

# How a mask's dtype reads: soft and hard attention take F.scaled_dot_product_
# attention's masks, nn.MultiheadAttention its own, the seed class mask != 0.
_KEEP_OR_ADD = {np.dtype(np.bool_): MASK_BOOL_KEEP, np.dtype(np.float32): MASK_FLOAT}
_EXCLUDE_OR_ADD = {np.dtype(np.bool_): MASK_BOOL, np.dtype(np.float32): MASK_FLOAT}
_SEED_KEEP = {np.dtype(np.bool_): MASK_BOOL_KEEP, np.dtype(np.uint8): MASK_BOOL_KEEP}


# ---- checks shared by everything below ----

def _shape(sizes, name, a, dims):
    """Checks that a's shape has the named dimensions `dims` (e.g. "B Lk D"): one
    already in sizes must match, a new one is recorded there, so that the arrays
    of one call agree and sizes ends up holding what the library is told."""
    names = dims.split()
    if a.ndim != len(names):
        raise ValueError(f"{name} must have shape ({', '.join(names)}), not {a.shape}")
    for dim, n in zip(names, a.shape):
        if n > _INT_MAX:
            raise ValueError(f"{name} has {dim} = {n}, more than the library's int holds")
        if sizes.setdefault(dim, n) != n:
            raise ValueError(f"{name} must have shape ({', '.join(names)}) with {dim} = "
                             f"{sizes[dim]}, not {a.shape}")
    return a


def _dims(sizes, name, a, dims):
    """a, a C-contiguous float32 array of the shape `dims` (see _shape)."""
    return _shape(sizes, name, _arrays.float32(name, a), dims)


def _mask_kind(name, m, kinds):
    """The attn_mask_type of the C-contiguous mask m by its dtype (kinds)."""
    if not isinstance(m, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, not {type(m).__name__}")
    if m.dtype not in kinds:
        raise TypeError(f"{name} must be {' or '.join(str(d) for d in kinds)}, not {m.dtype}")
    if not m.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (np.ascontiguousarray({name}))")
    return kinds[m.dtype]


def _attn_mask(m, kind, target):
    """The attn_mask reading m broadcast to target (B, H, Lq, Lk); the library
    checks that it broadcasts. m must outlive every use of the mask."""
    mask = _Mask()
    check(_mask_init(ctypes.byref(mask), kind, _p(m), m.ndim, (ctypes.c_int64 * m.ndim)(*m.shape),
                     (ctypes.c_int64 * 4)(*target)))
    return mask


def _ref(struct):
    """A pointer argument to struct, or NULL for None."""
    return None if struct is None else ctypes.byref(struct)


def _seed(name, seed):
    """seed as the library's uint64, a fresh random one for None."""
    return secrets.randbits(64) if seed is None else _arrays.integer(name, seed, 0, 2**64 - 1)


# ---- score functions ----

_dot_forward = declare("attn_score_dot_forward", _f, _f, _f, _i, _i, _i, _i, ctypes.c_float)
_dot_backward = declare("attn_score_dot_backward", _f, _f, _f, _f, _f, _i, _i, _i, _i,
                        ctypes.c_float)
_general_forward = declare("attn_score_general_forward", _f, _f, _f, _f, _i, _i, _i, _i, _i)
_general_backward = declare("attn_score_general_backward", _f, _f, _f, _f, _f, _f, _f, _i, _i,
                            _i, _i, _i)


class _AdditiveWeights(ctypes.Structure):
    _fields_ = [("wq", ctypes.c_void_p), ("wk", ctypes.c_void_p), ("bias", ctypes.c_void_p),
                ("v", ctypes.c_void_p), ("hidden", ctypes.c_int)]


class _AdditiveGrads(ctypes.Structure):
    _fields_ = [("wq", ctypes.c_void_p), ("wk", ctypes.c_void_p), ("bias", ctypes.c_void_p),
                ("v", ctypes.c_void_p)]


_additive_forward = declare("attn_score_additive_forward", _f, _f, _f,
                            ctypes.POINTER(_AdditiveWeights), _i, _i, _i, _i, _i)
_additive_backward = declare("attn_score_additive_backward", _f, _f,
                             ctypes.POINTER(_AdditiveGrads), _f, _f, _f,
                             ctypes.POINTER(_AdditiveWeights), _i, _i, _i, _i, _i)
_projected_forward = declare("attn_score_additive_projected_forward", _f, _f, _f, _f, _f, _i,
                             _i, _i, _i)
_projected_backward = declare("attn_score_additive_projected_backward", _f, _f, _f, _f, _f, _f,
                              _i, _i, _i, _i)


def _qk(q, k, q_dims, k_dims):
    sizes = {}
    _dims(sizes, "q", q, q_dims)
    _dims(sizes, "k", k, k_dims)
    return sizes


def score_dot(q, k, scale=1.0):
    """scores (B, Lq, Lk) = scale * q k^T, q (B, Lq, D), k (B, Lk, D): Luong's dot
    with scale 1, the Transformer's scaled dot with scale 1 / sqrt(D)."""
    s = _qk(q, k, "B Lq D", "B Lk D")
    scores = np.empty((s["B"], s["Lq"], s["Lk"]), np.float32)
    check(_dot_forward(_p(scores), _p(q), _p(k), s["B"], s["Lq"], s["Lk"], s["D"], float(scale)))
    return scores


def score_dot_backward(dscores, q, k, scale=1.0):
    """(dq, dk) of score_dot's scores, given dscores (B, Lq, Lk)."""
    s = _qk(q, k, "B Lq D", "B Lk D")
    _dims(s, "dscores", dscores, "B Lq Lk")
    dq, dk = np.zeros_like(q), np.zeros_like(k)
    check(_dot_backward(_p(dq), _p(dk), _p(dscores), _p(q), _p(k), s["B"], s["Lq"], s["Lk"],
                        s["D"], float(scale)))
    return dq, dk


def score_general(q, k, w):
    """Luong's general (bilinear) scores (B, Lq, Lk) = q w k^T, q (B, Lq, Dq),
    k (B, Lk, Dk), w (Dq, Dk)."""
    s = _qk(q, k, "B Lq Dq", "B Lk Dk")
    _dims(s, "w", w, "Dq Dk")
    scores = np.empty((s["B"], s["Lq"], s["Lk"]), np.float32)
    check(_general_forward(_p(scores), _p(q), _p(w), _p(k), s["B"], s["Lq"], s["Lk"], s["Dq"],
                           s["Dk"]))
    return scores


def score_general_backward(dscores, q, k, w):
    """(dq, dk, dw) of score_general's scores, given dscores (B, Lq, Lk)."""
    s = _qk(q, k, "B Lq Dq", "B Lk Dk")
    _dims(s, "w", w, "Dq Dk")
    _dims(s, "dscores", dscores, "B Lq Lk")
    dq, dk, dw = np.zeros_like(q), np.zeros_like(k), np.zeros_like(w)
    check(_general_backward(_p(dq), _p(dw), _p(dk), _p(dscores), _p(q), _p(w), _p(k), s["B"],
                            s["Lq"], s["Lk"], s["Dq"], s["Dk"]))
    return dq, dk, dw


def _additive(q, k, wq, wk, v, bias):
    """The sizes and the attn_additive_weights of an additive call, checked."""
    s = _qk(q, k, "B Lq Dq", "B Lk Dk")
    _dims(s, "wq", wq, "A Dq")
    _dims(s, "wk", wk, "A Dk")
    _dims(s, "v", v, "A")
    if bias is not None:
        _dims(s, "bias", bias, "A")
    return s, _AdditiveWeights(_p(wq), _p(wk), _p(bias), _p(v), s["A"])


def score_additive(q, k, wq, wk, v, bias=None):
    """Bahdanau's additive (concat) scores (B, Lq, Lk) =
    v . tanh(wq q[b, i] + wk k[b, j] + bias), q (B, Lq, Dq), k (B, Lk, Dk),
    wq (A, Dq), wk (A, Dk), v (A), bias (A) or None; A hidden units."""
    s, w = _additive(q, k, wq, wk, v, bias)
    scores = np.empty((s["B"], s["Lq"], s["Lk"]), np.float32)
    check(_additive_forward(_p(scores), _p(q), _p(k), ctypes.byref(w), s["B"], s["Lq"], s["Lk"],
                            s["Dq"], s["Dk"]))
    return scores


def score_additive_backward(dscores, q, k, wq, wk, v, bias=None):
    """(dq, dk, dwq, dwk, dv, dbias) of score_additive's scores, given dscores
    (B, Lq, Lk); dbias is None without a bias. The tanh terms are recomputed,
    not kept from the forward."""
    s, w = _additive(q, k, wq, wk, v, bias)
    _dims(s, "dscores", dscores, "B Lq Lk")
    dq, dk, dwq, dwk, dv = (np.zeros_like(a) for a in (q, k, wq, wk, v))
    dbias = None if bias is None else np.zeros_like(bias)
    grads = _AdditiveGrads(_p(dwq), _p(dwk), _p(dbias), _p(dv))
    check(_additive_backward(_p(dq), _p(dk), ctypes.byref(grads), _p(dscores), _p(q), _p(k),
                             ctypes.byref(w), s["B"], s["Lq"], s["Lk"], s["Dq"], s["Dk"]))
    return dq, dk, dwq, dwk, dv, dbias


def score_additive_projected(qp, kp, v):
    """Additive scores of queries and keys already projected (Bahdanau's decoder
    projects each source's keys once, then scores a few queries at a time):
    qp (B, Lq, A), kp (B, Lk, A), v (A) -> (scores, u), u (B, Lq, Lk, A) =
    tanh(qp[b, i] + kp[b, j]) the terms the backward needs, scores (B, Lq, Lk)
    = u v."""
    s = {}
    _dims(s, "qp", qp, "B Lq A")
    _dims(s, "kp", kp, "B Lk A")
    _dims(s, "v", v, "A")
    scores = np.empty((s["B"], s["Lq"], s["Lk"]), np.float32)
    u = np.empty((s["B"], s["Lq"], s["Lk"], s["A"]), np.float32)
    check(_projected_forward(_p(scores), _p(u), _p(qp), _p(kp), _p(v), s["B"], s["Lq"], s["Lk"],
                             s["A"]))
    return scores, u


def score_additive_projected_backward(dscores, u, v):
    """(dqp, dkp, dv) of score_additive_projected's scores, given dscores
    (B, Lq, Lk) and the forward's u and v."""
    s = {}
    _dims(s, "u", u, "B Lq Lk A")
    _dims(s, "v", v, "A")
    _dims(s, "dscores", dscores, "B Lq Lk")
    dqp = np.zeros((s["B"], s["Lq"], s["A"]), np.float32)
    dkp = np.zeros((s["B"], s["Lk"], s["A"]), np.float32)
    dv = np.zeros_like(v)
    check(_projected_backward(_p(dqp), _p(dkp), _p(dv), _p(dscores), _p(u), _p(v), s["B"],
                              s["Lq"], s["Lk"], s["A"]))
    return dqp, dkp, dv


# ---- soft and hard attention ----

_soft_forward = declare("attn_soft_attention_forward", _f, _f, _f, _mask_p, _f, _i, _i, _i, _i)
_soft_backward = declare("attn_soft_attention_backward", _f, _f, _f, _f, _f, _i, _i, _i, _i)

# attn_hard_mode (attn/attention.h)
_HARD_MODES = {"argmax": 0, "sample": 1, "gumbel": 2}


class _HardPick(ctypes.Structure):
    _fields_ = [("mode", ctypes.c_int), ("seed", ctypes.c_uint64), ("tau", ctypes.c_float)]


_hard_forward = declare("attn_hard_attention_forward", _f, _f, _f, _f, _mask_p, _f, _i, _i, _i,
                        _i, ctypes.POINTER(_HardPick))
_hard_backward = declare("attn_hard_attention_backward", _f, _f, _f, _f, _f, _f, _i, _i, _i, _i,
                         ctypes.POINTER(_HardPick))


def _scores_values(scores, values):
    sizes = {}
    _dims(sizes, "scores", scores, "B Lq Lk")
    _dims(sizes, "values", values, "B Lk Dv")
    return sizes


def _scores_mask(mask, s):
    """The attn_mask of a mask over the scores (B, Lq, Lk), or None. It
    broadcasts as in PyTorch; the library sees it as (B, 1, Lq, Lk), so its
    shape gets a head axis (a view: the data is shared)."""
    if mask is None:
        return None
    kind = _mask_kind("mask", mask, _KEEP_OR_ADD)
    if not 1 <= mask.ndim <= 3:
        raise ValueError(f"mask must have 1 to 3 dimensions, broadcast to the scores (B, Lq, "
                         f"Lk), not shape {mask.shape}")
    full = (1,) * (3 - mask.ndim) + mask.shape
    m = mask.reshape(full[0], 1, full[1], full[2])
    return _attn_mask(m, kind, (s["B"], 1, s["Lq"], s["Lk"]))


def _pick(mode, seed, tau):
    if mode not in _HARD_MODES:
        raise ValueError(f"mode must be one of {', '.join(_HARD_MODES)}, not {mode!r}")
    return _HardPick(_HARD_MODES[mode], 0 if mode == "argmax" else _seed("seed", seed),
                     float(tau))


def soft_attention(scores, values, mask=None):
    """(context, weights): weights (B, Lq, Lk) = softmax over the keys of the
    scores (B, Lq, Lk) plus the mask, context (B, Lq, Dv) = weights @ values
    (B, Lk, Dv). mask: broadcast to (B, Lq, Lk), bool (True: the key takes part,
    as F.scaled_dot_product_attention) or float32 (added). A row whose every key
    is masked gets weights and context 0 (PyTorch gives NaN)."""
    s = _scores_values(scores, values)
    attn_mask = _scores_mask(mask, s)  # reads mask, which stays referenced here
    context = np.empty((s["B"], s["Lq"], s["Dv"]), np.float32)
    weights = np.empty_like(scores)
    check(_soft_forward(_p(context), _p(weights), _p(scores), _ref(attn_mask),
                        _p(values), s["B"], s["Lq"], s["Lk"], s["Dv"]))
    return context, weights


def soft_attention_backward(dcontext, weights, values):
    """(dscores, dvalues) of soft_attention's context, given dcontext (B, Lq, Dv)
    and the forward's weights (which carry its mask: masked keys get nothing)."""
    s = {}
    _dims(s, "weights", weights, "B Lq Lk")
    _dims(s, "values", values, "B Lk Dv")
    _dims(s, "dcontext", dcontext, "B Lq Dv")
    dscores, dvalues = np.zeros_like(weights), np.zeros_like(values)
    check(_soft_backward(_p(dscores), _p(dvalues), _p(dcontext), _p(weights), _p(values), s["B"],
                         s["Lq"], s["Lk"], s["Dv"]))
    return dscores, dvalues


def hard_attention(scores, values, mask=None, mode="argmax", seed=None, tau=1.0):
    """(context, index, weights): one key per query. index (B, Lq) int32 is the
    key chosen from the scores (B, Lq, Lk) plus the mask (as in soft_attention),
    context (B, Lq, Dv) its row of values (B, Lk, Dv); a row whose every key is
    masked gets index -1 and context 0. mode:
      "argmax": the first largest masked score; weights (B, Lq, Lk) =
                softmax(scores + mask);
      "sample": a draw from weights = softmax(scores + mask), by inverse CDF from
                attn_uniform_at(seed, b * Lq + i);
      "gumbel": the Gumbel-max draw at temperature tau, the noise keyed by seed
                (see attn/attention.h); weights = its relaxation softmax(z), which
                the backward follows (straight-through).
    seed: for "sample" and "gumbel", a fresh one when None. For REINFORCE after
    "argmax" or "sample", the gradient of log p(index) over the scores is
    onehot(index) - weights."""
    s = _scores_values(scores, values)
    pick = _pick(mode, seed, tau)
    attn_mask = _scores_mask(mask, s)  # reads mask, which stays referenced here
    context = np.empty((s["B"], s["Lq"], s["Dv"]), np.float32)
    index = np.empty((s["B"], s["Lq"]), np.int32)
    weights = np.empty_like(scores)
    check(_hard_forward(_p(index), _p(context), _p(weights), _p(scores),
                        _ref(attn_mask), _p(values), s["B"], s["Lq"], s["Lk"],
                        s["Dv"], ctypes.byref(pick)))
    return context, index, weights


def hard_attention_backward(dcontext, index, values, weights=None, mode="argmax", tau=1.0):
    """(dscores, dvalues) of hard_attention's context, given dcontext (B, Lq, Dv)
    and the forward's index, values, mode and tau (and weights, for "gumbel").
    dvalues gets dcontext at the chosen keys. dscores is zero for "argmax" and
    "sample" (a choice has no slope; see hard_attention for REINFORCE) and the
    straight-through gradient of softmax(z) for "gumbel"."""
    s = {}
    _dims(s, "values", values, "B Lk Dv")
    _dims(s, "dcontext", dcontext, "B Lq Dv")
    if not isinstance(index, np.ndarray) or index.dtype != np.int32:
        raise TypeError(f"index must be hard_attention's int32 NumPy array, not "
                        f"{getattr(index, 'dtype', type(index).__name__)}")
    if not index.flags.c_contiguous:
        raise ValueError("index must be C-contiguous (np.ascontiguousarray(index))")
    _shape(s, "index", index, "B Lq")
    pick = _pick(mode, 0, tau)
    if weights is not None:
        _dims(s, "weights", weights, "B Lq Lk")
    elif mode == "gumbel":
        raise ValueError("the backward of mode 'gumbel' needs the forward's weights")
    dscores = np.zeros((s["B"], s["Lq"], s["Lk"]), np.float32)
    dvalues = np.zeros_like(values)
    check(_hard_backward(_p(dscores), _p(dvalues), _p(dcontext), _p(index), _p(weights),
                         _p(values), s["B"], s["Lq"], s["Lk"], s["Dv"], ctypes.byref(pick)))
    return dscores, dvalues


# ---- modules ----

class _Param(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 128), ("ndim", ctypes.c_int),
                ("shape", ctypes.c_int64 * 4), ("numel", ctypes.c_size_t),
                ("offset", ctypes.c_size_t)]


class _Params(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("grad", ctypes.c_void_p), ("total", ctypes.c_size_t),
                ("items", ctypes.POINTER(_Param)), ("count", ctypes.c_int)]


_params_p = ctypes.POINTER(_Params)
_params_load = declare("attn_params_load", _params_p, ctypes.c_char_p)
_params_data = declare("attn_params_data", _params_p, ctypes.c_char_p, restype=ctypes.c_void_p)
_params_grad = declare("attn_params_grad", _params_p, ctypes.c_char_p, restype=ctypes.c_void_p)
_params_zero_grad = declare("attn_params_zero_grad", _params_p, restype=None)


class _Owned:
    """A module's C object, freed when the last reference to this goes: the
    module's own, which close() drops, or that of a parameter view it handed
    out, so that no view outlives the memory it shows."""

    def __init__(self, handle, free):
        self.handle, self._free = handle, free

    def __del__(self):
        self._free(self.handle)


class _Module:
    """What both modules share: the C object, made by create(&handle, *args);
    parameters and gradients by PyTorch's state_dict names; load_state_dict;
    close() and the context manager. A module keeps its last forward for
    backward, so it takes one call at a time (from one thread at a time)."""

    def __init__(self, create, free, params_of, *args):
        handle = ctypes.c_void_p()
        check(create(ctypes.byref(handle), *args))
        self._owned = _Owned(handle, free)
        self._params_of = params_of
        self._last = None  # the last forward's arrays, which the C object points at

    def _handle(self):
        if self._owned is None:
            raise ValueError(f"this {type(self).__name__} is closed")
        return self._owned.handle

    def _params(self):
        return self._params_of(self._handle())

    def _views(self, address_of):
        """{name: a view of the memory address_of gives} in state_dict order."""
        params = self._params()
        views = {}
        for item in params.contents.items[:params.contents.count]:
            buf = (ctypes.c_float * item.numel).from_address(address_of(params, item.name))
            buf.owner = self._owned  # the view keeps the memory it shows
            shape = tuple(item.shape[:item.ndim])
            views[item.name.decode()] = np.frombuffer(buf, np.float32).reshape(shape)
        return views

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _backward(self, c_backward, dout, out_like):
        """The gradients of the last forward's three input arrays, through
        c_backward(handle, d0, d1, d2, dout), given dout shaped as out: as the
        input at index out_like. The parameters' gradients add into grads."""
        handle = self._handle()
        if self._last is None:
            raise ValueError("backward needs a successful forward first")
        inputs = self._last[:3]
        _arrays.float32("dout", dout)
        shape = inputs[out_like].shape
        if dout.shape != shape:
            raise ValueError(f"dout must have out's shape {shape}, not {dout.shape}")
        grads = tuple(np.zeros_like(a) for a in inputs)
        check(c_backward(handle, *(_p(g) for g in grads), _p(dout)))
        return grads

    def named_parameters(self):
        """{state_dict name: the parameter}: live, writable views of the module's
        memory (an optimizer updates them in place)."""
        return self._views(_params_data)

    def parameters(self):
        """The parameters (live views, see named_parameters) in state_dict order."""
        return list(self.named_parameters().values())

    @property
    def grads(self):
        """{state_dict name: the parameter's gradient}: live views, which every
        backward adds into."""
        return self._views(_params_grad)

    def zero_grad(self):
        _params_zero_grad(self._params())

    def state_dict(self):
        """{PyTorch's state_dict name: a copy of the parameter} (copies, so that the
        dict stays as it is when the module trains on or is closed)."""
        return {name: view.copy() for name, view in self.named_parameters().items()}

    def load_state_dict(self, state):
        """Loads every parameter, strictly as PyTorch's load_state_dict: from a
        dict {name: float NumPy array} or a safetensors file path (the library's
        attn_params_load; F32, F64, F16 or BF16). It must hold exactly the
        module's names, each with its shape; else nothing is loaded."""
        if isinstance(state, (str, bytes, os.PathLike)):
            check(_params_load(self._params(), os.fsencode(state)))
            return
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict takes a dict of arrays or a safetensors file "
                            f"path, not {type(state).__name__}")
        params = self.named_parameters()
        missing = [name for name in params if name not in state]
        if missing:
            raise KeyError(f"missing key {missing[0]!r} (of {len(missing)} missing)")
        unexpected = [name for name in state if name not in params]
        if unexpected:
            raise ValueError(f"unexpected key {unexpected[0]!r} (of {len(unexpected)} unexpected)")
        for name, param in params.items():
            a = state[name]
            if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
                raise TypeError(f"key {name!r} must be a float NumPy array, not "
                                f"{getattr(a, 'dtype', type(a).__name__)}")
            if a.shape != param.shape:
                raise ValueError(f"key {name!r} has shape {a.shape} in the dict but "
                                 f"{param.shape} in the module")
        for name, param in params.items():
            np.copyto(param, state[name], casting="same_kind")

    def close(self):
        """Frees the module (once no parameter view is left); it is unusable then."""
        self._owned = None
        self._last = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class _MhaConfig(ctypes.Structure):
    _fields_ = [("embed_dim", ctypes.c_int), ("num_heads", ctypes.c_int),
                ("kdim", ctypes.c_int), ("vdim", ctypes.c_int), ("bias", ctypes.c_bool),
                ("batch_first", ctypes.c_bool), ("dropout", ctypes.c_float)]


class _MhaInput(ctypes.Structure):
    _fields_ = [("query", ctypes.c_void_p), ("key", ctypes.c_void_p), ("value", ctypes.c_void_p),
                ("batch", ctypes.c_int), ("len_q", ctypes.c_int), ("len_k", ctypes.c_int),
                ("key_padding_mask", ctypes.c_void_p), ("key_padding_mask_type", ctypes.c_int),
                ("attn_mask", ctypes.c_void_p), ("attn_mask_type", ctypes.c_int),
                ("attn_mask_ndim", ctypes.c_int), ("is_causal", ctypes.c_bool),
                ("training", ctypes.c_bool), ("dropout_seed", ctypes.c_uint64),
                ("weights", ctypes.c_void_p), ("average_attn_weights", ctypes.c_bool)]


_handle_p = ctypes.POINTER(ctypes.c_void_p)
_mha_create = declare("attn_mha_create", _handle_p, ctypes.POINTER(_MhaConfig), ctypes.c_uint64)
_mha_free = declare("attn_mha_free", ctypes.c_void_p, restype=None)
_mha_params = declare("attn_mha_params", ctypes.c_void_p, restype=_params_p)
_mha_get_config = declare("attn_mha_get_config", ctypes.c_void_p,
                          restype=ctypes.POINTER(_MhaConfig))
_mha_forward = declare("attn_mha_forward", ctypes.c_void_p, _f, ctypes.POINTER(_MhaInput))
_mha_backward = declare("attn_mha_backward", ctypes.c_void_p, _f, _f, _f, _f)


def _int(name, n):
    return _arrays.integer(name, n, -_INT_MAX - 1, _INT_MAX)


class MultiheadAttention(_Module):
    """torch.nn.MultiheadAttention (attn_mha_*): the same constructor arguments
    (but add_bias_kv and add_zero_attn, which attn does not have), the same
    forward and the same state_dict; plus backward.

    Parameters (state_dict names, E = embed_dim): in_proj_weight (3E, E) when
    kdim == vdim == E, else q_proj_weight (E, E), k_proj_weight (E, kdim),
    v_proj_weight (E, vdim); with bias in_proj_bias (3E), out_proj.bias (E);
    out_proj.weight (E, E). Initialised as PyTorch does (not with its random
    numbers) from seed, a fresh one when None.

    Like an nn.Module it starts in training mode, where dropout (on the
    attention weights) applies; eval() ends that."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, *, kdim=None, vdim=None,
                 batch_first=False, seed=None):
        config = _MhaConfig(embed_dim=_int("embed_dim", embed_dim),
                            num_heads=_int("num_heads", num_heads),
                            kdim=0 if kdim is None else _int("kdim", kdim),
                            vdim=0 if vdim is None else _int("vdim", vdim), bias=bool(bias),
                            batch_first=bool(batch_first), dropout=float(dropout))
        super().__init__(_mha_create, _mha_free, _mha_params, ctypes.byref(config),
                         _seed("seed", seed))
        resolved = _mha_get_config(self._handle()).contents  # kdim, vdim: 0 is embed_dim
        self.embed_dim, self.num_heads = resolved.embed_dim, resolved.num_heads
        self.kdim, self.vdim = resolved.kdim, resolved.vdim
        self.head_dim = self.embed_dim // self.num_heads
        self.batch_first, self.dropout = bool(batch_first), float(dropout)
        self.training = True

    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False, dropout_seed=None):
        """(out, weights) as nn.MultiheadAttention computes them.

        query (Lq, B, E), key (Lk, B, kdim), value (Lk, B, vdim), out (Lq, B, E);
        (B, L, .) each with batch_first; or unbatched (Lq, E), (Lk, kdim),
        (Lk, vdim) -> (Lq, E). key_padding_mask (B, Lk) (unbatched (Lk)) and
        attn_mask (Lq, Lk) or (B * num_heads, Lq, Lk): bool (True: the key is
        excluded) or float32 (added); when several are given they combine.
        is_causal: also exclude key j > query i (PyTorch takes it as a hint that
        attn_mask is the causal mask; here it is the mask, with attn_mask or
        without). weights (B, Lq, Lk) averaged over the heads, or
        (B, num_heads, Lq, Lk), after dropout; None unless need_weights. A row
        whose every key is masked gets weights 0 (PyTorch gives NaN).

        The module keeps the inputs and masks (no copy) for backward: change
        none of them before it. In training mode with dropout, dropout_seed keys
        the dropped weights (a fresh one when None)."""
        handle = self._handle()
        unbatched = getattr(query, "ndim", None) == 2
        sizes = {"E": self.embed_dim, "kdim": self.kdim, "vdim": self.vdim}
        if unbatched:  # a batch of one, in the same memory whatever batch_first says
            sizes["B"] = 1
            layout = "{} {}"
        else:
            layout = "B {} {}" if self.batch_first else "{} B {}"
        _dims(sizes, "query", query, layout.format("Lq", "E"))
        _dims(sizes, "key", key, layout.format("Lk", "kdim"))
        _dims(sizes, "value", value, layout.format("Lk", "vdim"))
        B, H, Lq, Lk = sizes["B"], self.num_heads, sizes["Lq"], sizes["Lk"]
        sizes["B*H"] = B * H
        inp = _MhaInput(query=_p(query), key=_p(key), value=_p(value), batch=B, len_q=Lq,
                        len_k=Lk, is_causal=bool(is_causal),
                        average_attn_weights=bool(average_attn_weights))
        if key_padding_mask is not None:
            inp.key_padding_mask_type = _mask_kind("key_padding_mask", key_padding_mask,
                                                   _EXCLUDE_OR_ADD)
            _shape(sizes, "key_padding_mask", key_padding_mask, "Lk" if unbatched else "B Lk")
            inp.key_padding_mask = _p(key_padding_mask)
        if attn_mask is not None:
            inp.attn_mask_type = _mask_kind("attn_mask", attn_mask, _EXCLUDE_OR_ADD)
            _shape(sizes, "attn_mask", attn_mask, "Lq Lk" if attn_mask.ndim == 2 else "B*H Lq Lk")
            inp.attn_mask, inp.attn_mask_ndim = _p(attn_mask), attn_mask.ndim
        if self.training and self.dropout > 0:
            inp.training, inp.dropout_seed = True, _seed("dropout_seed", dropout_seed)
        weights = None
        if need_weights:
            shape = (Lq, Lk) if average_attn_weights else (H, Lq, Lk)
            weights = np.empty(shape if unbatched else (B,) + shape, np.float32)
            inp.weights = _p(weights)
        out = np.empty_like(query)
        self._last = None
        check(_mha_forward(handle, _p(out), ctypes.byref(inp)))
        self._last = (query, key, value, key_padding_mask, attn_mask)
        return out, weights

    def backward(self, dout):
        """(dquery, dkey, dvalue) of the last forward's out, given dout shaped as
        out; adds the parameters' gradients into grads."""
        return self._backward(_mha_backward, dout, out_like=0)  # (query, key, value)


_seed_create = declare("attn_seed_mha_create", _handle_p, _i, _i, ctypes.c_uint64)
_seed_free = declare("attn_seed_mha_free", ctypes.c_void_p, restype=None)
_seed_params = declare("attn_seed_mha_params", ctypes.c_void_p, restype=_params_p)
_seed_forward = declare("attn_seed_mha_forward", ctypes.c_void_p, _f, _f, _f, _f, _f, _i, _i, _i,
                        _mask_p)
_seed_backward = declare("attn_seed_mha_backward", ctypes.c_void_p, _f, _f, _f, _f)


class SeedMultiheadAttention(_Module):
    """The seed article's MultiHeadAttention(embed_size, heads) (attn_seed_mha_*),
    quirks included: one Linear(head_dim, head_dim, bias=False) each for values,
    keys and queries, shared by the heads; masked scores filled with -1e20, then
    divided by sqrt(embed_size) (so a row with every key masked is uniform, as in
    the seed); fc_out with bias.

    Parameters (state_dict names): values.weight, keys.weight, queries.weight
    (head_dim, head_dim), fc_out.weight (E, E), fc_out.bias (E). Initialised as
    nn.Linear (not with its random numbers) from seed, a fresh one when None."""

    def __init__(self, embed_size, heads, seed=None):
        embed_size, heads = _int("embed_size", embed_size), _int("heads", heads)
        super().__init__(_seed_create, _seed_free, _seed_params, embed_size, heads,
                         _seed("seed", seed))
        self.embed_size, self.heads, self.head_dim = embed_size, heads, embed_size // heads

    def forward(self, values, keys, query, mask=None, need_weights=False):
        """out (N, Lq, E) of values (N, Lk, E), keys (N, Lk, E), query (N, Lq, E),
        or (out, weights) with need_weights, weights (N, heads, Lq, Lk) the
        attention. mask: None, or bool or uint8 broadcast to (N, heads, Lq, Lk),
        0 = masked (the seed's mask == 0), e.g. (N, 1, 1, Lk) for padding or
        (N, 1, Lq, Lk) for causal. The module keeps the inputs and the mask (no
        copy) for backward: change none of them before it."""
        handle = self._handle()
        sizes = {"E": self.embed_size}
        _dims(sizes, "values", values, "N Lk E")
        _dims(sizes, "keys", keys, "N Lk E")
        _dims(sizes, "query", query, "N Lq E")
        N, Lq, Lk = sizes["N"], sizes["Lq"], sizes["Lk"]
        attn_mask = None
        if mask is not None:
            kind = _mask_kind("mask", mask, _SEED_KEEP)
            attn_mask = _attn_mask(mask, kind, (N, self.heads, Lq, Lk))
        weights = np.empty((N, self.heads, Lq, Lk), np.float32) if need_weights else None
        out = np.empty_like(query)
        self._last = None
        check(_seed_forward(handle, _p(out), _p(weights), _p(values), _p(keys), _p(query), N, Lk,
                            Lq, _ref(attn_mask)))
        self._last = (values, keys, query, mask)
        return (out, weights) if need_weights else out

    def backward(self, dout):
        """(dvalues, dkeys, dquery) of the last forward's out, given dout
        (N, Lq, E); adds the parameters' gradients into grads."""
        return self._backward(_seed_backward, dout, out_like=2)  # (values, keys, query)


check_sizes((_AdditiveWeights, "attn_additive_weights"), (_AdditiveGrads, "attn_additive_grads"),
            (_HardPick, "attn_hard_pick"), (_Param, "attn_param"), (_Params, "attn_params"),
            (_MhaConfig, "attn_mha_config"), (_MhaInput, "attn_mha_input"))
