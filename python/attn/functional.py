"""Attention as functions over NumPy arrays, each the library's own (attn/
attention.h) with PyTorch's conventions: scaled dot-product attention, fused,
with its backward, in float32 or on bfloat16 inputs (precision="bf16").

Arrays are C-contiguous float32 and are passed to the library without a copy;
results are new arrays. With precision="bf16", q, k, v (and dout) are bfloat16:
float32 arrays are rounded to it (to nearest even, to_bf16), and uint16 arrays
are taken as bfloat16 bits as they are; results stay float32. Shapes follow torch.nn.functional.scaled_dot_product_
attention: q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv) with the same leading
dimensions, out (..., Lq, Dv)."""
import ctypes
import math
import secrets

import numpy as np

from . import _arrays
from ._lib import check, check_sizes, declare

# attn_mask_type (attn/attention.h)
MASK_BOOL, MASK_BOOL_KEEP, MASK_FLOAT = 0, 1, 2
PRECISIONS = ("float32", "bf16")


class _Mask(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("data", ctypes.c_void_p),
                ("stride", ctypes.c_int64 * 4), ("fill", ctypes.c_bool),
                ("fill_value", ctypes.c_float)]


class _SdpaConfig(ctypes.Structure):
    _fields_ = [("batch", ctypes.c_int), ("heads", ctypes.c_int), ("len_q", ctypes.c_int),
                ("len_k", ctypes.c_int), ("dim_qk", ctypes.c_int), ("dim_v", ctypes.c_int),
                ("scale", ctypes.c_float), ("causal", ctypes.c_bool), ("window", ctypes.c_int),
                ("q_offset", ctypes.c_int), ("alibi_slopes", ctypes.c_void_p),
                ("attn_mask", ctypes.POINTER(_Mask)),
                ("key_padding_mask", ctypes.POINTER(_Mask)), ("dropout_p", ctypes.c_float),
                ("dropout_seed", ctypes.c_uint64), ("row_stride", ctypes.c_int64 * 4)]


check_sizes((_Mask, "attn_mask"), (_SdpaConfig, "attn_sdpa_config"))

_f = ctypes.c_void_p  # float arrays, passed by address (_arrays.address)
_mask_init = declare("attn_mask_init", ctypes.POINTER(_Mask), ctypes.c_int, ctypes.c_void_p,
                     ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64))
_sdpa_forward = declare("attn_sdpa_forward", _f, _f, _f, _f, _f, _f,
                        ctypes.POINTER(_SdpaConfig))
_sdpa_backward = declare("attn_sdpa_backward", _f, _f, _f, _f, _f, _f, _f, _f,
                         ctypes.POINTER(_SdpaConfig))
_sdpa_bf16_forward = declare("attn_sdpa_bf16_forward", _f, _f, _f, _f, _f,
                             ctypes.POINTER(_SdpaConfig))
_sdpa_bf16_backward = declare("attn_sdpa_bf16_backward", _f, _f, _f, _f, _f, _f, _f, _f,
                              ctypes.POINTER(_SdpaConfig))
_bf16_from_float = declare("attn_bf16_from_float", _f, _f, ctypes.c_size_t, restype=None)


def to_bf16(a):
    """The bfloat16 bits (uint16) of the float32 array a, each value rounded to
    nearest even (attn_bf16_from_float; the bits PyTorch's .to(torch.bfloat16)
    gives)."""
    _arrays.float32("a", a)
    bits = np.empty(a.shape, np.uint16)
    _bf16_from_float(_arrays.address(bits), _arrays.address(a), a.size)
    return bits


def _operand(name, a, precision):
    """a as the kernel of precision reads it: float32, or bfloat16 bits."""
    if precision == "float32":
        return _arrays.float32(name, a)
    if isinstance(a, np.ndarray) and a.dtype == np.float32:
        return to_bf16(_arrays.float32(name, a))
    return _arrays.bf16_bits(name, a)


class Call:
    """One attention call's config, and the arrays it points at (kept alive for
    as long as the config is used). mask_type: how a bool attn_mask reads
    (MASK_BOOL_KEEP, the default, as F.scaled_dot_product_attention; MASK_BOOL,
    True excluded, as nn.MultiheadAttention); a bool key_padding_mask reads
    as MASK_BOOL. precision: "float32", or "bf16" for the bf16 kernels (q, k, v
    rounded to bfloat16 unless they are its bits already)."""

    def __init__(self, q, k, v, attn_mask, is_causal, scale, dropout_p, window, alibi_slopes,
                 dropout_seed, key_padding_mask=None, mask_type=None, precision="float32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not "
                             f"{precision!r}")
        self.precision = precision
        q, k, v = (_operand(name, a, precision) for name, a in (("q", q), ("k", k), ("v", v)))
        if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
            raise ValueError(f"q, k and v must have the same number (>= 2) of dimensions, not "
                             f"shapes {q.shape}, {k.shape}, {v.shape}")
        lead = q.shape[:-2]
        if k.shape[:-2] != lead or v.shape[:-2] != lead:
            raise ValueError(f"q, k and v must have the same leading dimensions, not shapes "
                             f"{q.shape}, {k.shape}, {v.shape}")
        if k.shape[-1] != q.shape[-1] or v.shape[-2] != k.shape[-2]:
            raise ValueError(f"q and k must have the same last dimension, and k and v the same "
                             f"length, not shapes {q.shape}, {k.shape}, {v.shape}")
        if attn_mask is not None and is_causal:
            raise ValueError("attn_mask and is_causal cannot both be set (as in PyTorch): put "
                             "the causal mask into attn_mask")
        # Leading dimensions (..., B, H) -> the library's (B, H), the others folded into B.
        self.lead = lead
        heads = lead[-1] if lead else 1
        batch = math.prod(lead[:-1]) if len(lead) > 1 else 1
        self.target = (ctypes.c_int64 * 4)(batch, heads, q.shape[-2], k.shape[-2])
        self.keep = [q, k, v]
        self.masks = []
        mask = self._mask("attn_mask", attn_mask, mask_type)
        padding = self._mask("key_padding_mask", key_padding_mask, MASK_BOOL)
        slopes = None
        if alibi_slopes is not None:
            slopes = _arrays.float32("alibi_slopes", alibi_slopes, ndim=1)
            if slopes.shape[0] != heads:
                raise ValueError(f"alibi_slopes must have one slope per head ({heads}), not "
                                 f"shape {slopes.shape}")
            self.keep.append(slopes)
        if dropout_p and dropout_seed is None:
            dropout_seed = secrets.randbits(64)
        self.dropout_seed = dropout_seed or 0
        if scale is not None and not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scale must be finite and > 0, not {scale}")
        self.config = _SdpaConfig(
            batch=batch, heads=heads, len_q=q.shape[-2], len_k=k.shape[-2], dim_qk=q.shape[-1],
            dim_v=v.shape[-1], scale=0.0 if scale is None else scale, causal=bool(is_causal),
            window=int(window), q_offset=0, alibi_slopes=_arrays.address(slopes),
            attn_mask=mask, key_padding_mask=padding, dropout_p=float(dropout_p),
            dropout_seed=self.dropout_seed)

    def _mask(self, name, m, mask_type):
        """A pointer to the attn_mask of m (None: NULL), broadcast like PyTorch."""
        if m is None:
            return None
        if not isinstance(m, np.ndarray):
            raise TypeError(f"{name} must be a NumPy array, not {type(m).__name__}")
        if m.dtype == np.bool_:
            kind = MASK_BOOL_KEEP if mask_type is None else mask_type
        elif m.dtype == np.float32:
            kind = MASK_FLOAT
        else:
            raise TypeError(f"{name} must be bool or float32, not {m.dtype}")
        full = self.lead + tuple(self.target[2:])
        if m.ndim > len(full):
            raise ValueError(f"{name} of shape {m.shape} has more dimensions than the scores "
                             f"{full}")
        if m.ndim > 4:  # the library's masks have four dimensions: fold the rest into B
            m = np.ascontiguousarray(np.broadcast_to(m, full)).reshape(tuple(self.target))
        elif not m.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous (np.ascontiguousarray({name}))")
        self.keep.append(m)
        mask = _Mask()
        shape = (ctypes.c_int64 * max(m.ndim, 1))(*(m.shape or (1,)))
        check(_mask_init(ctypes.byref(mask), kind, _arrays.address(m), max(m.ndim, 1),
                         shape, self.target))
        self.masks.append(mask)
        return ctypes.pointer(mask)


def sdpa_forward(call, want_weights=False):
    """out, lse and (if want_weights, else None) the weights of the call: the
    fused kernel, or the reference one when the weights are wanted (float32
    only: the bf16 kernels never form the weights)."""
    q, k, v = call.keep[:3]
    out = np.empty(call.lead + (q.shape[-2], v.shape[-1]), np.float32)
    lse = np.empty(call.lead + (q.shape[-2],), np.float32)
    p = _arrays.address
    if call.precision == "bf16":
        if want_weights:
            raise ValueError("the weights come from the float32 reference kernel: ask for "
                             "them with precision float32")
        check(_sdpa_bf16_forward(p(out), p(lse), p(q), p(k), p(v), ctypes.byref(call.config)))
        return out, lse, None
    weights = (np.empty(call.lead + (q.shape[-2], k.shape[-2]), np.float32) if want_weights
               else None)
    check(_sdpa_forward(p(out), p(lse), p(weights), p(q), p(k), p(v),
                        ctypes.byref(call.config)))
    return out, lse, weights


def sdpa_backward(call, dout, lse):
    """dq, dk, dv (float32) of the call, given dout and the forward's lse (both
    checked; dout rounded to bfloat16 for the bf16 kernels unless it is its bits)."""
    q, k, v = call.keep[:3]
    dout = _operand("dout", dout, call.precision)
    _arrays.float32("lse", lse)
    if dout.shape != call.lead + (q.shape[-2], v.shape[-1]):
        raise ValueError(f"dout must have out's shape {call.lead + (q.shape[-2], v.shape[-1])}, "
                         f"not {dout.shape}")
    if lse.shape != call.lead + (q.shape[-2],):
        raise ValueError(f"lse must have shape {call.lead + (q.shape[-2],)}, not {lse.shape}")
    dq, dk, dv = (np.zeros(a.shape, np.float32) for a in (q, k, v))
    p = _arrays.address
    backward = _sdpa_bf16_backward if call.precision == "bf16" else _sdpa_backward
    check(backward(p(dq), p(dk), p(dv), p(dout), p(q), p(k), p(v), p(lse),
                   ctypes.byref(call.config)))
    return dq, dk, dv


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, scale=None,
                                 dropout_p=0.0, window=0, alibi_slopes=None, return_lse=False,
                                 dropout_seed=None, precision="float32"):
    """softmax(q k^T * scale + mask) v, fused (attn_sdpa_forward), as
    torch.nn.functional.scaled_dot_product_attention computes it.

    attn_mask: bool (True: the key takes part) or float32 (added to the scores),
    broadcast to (..., Lq, Lk). is_causal: key j is hidden from query i when
    j > i. scale: default 1 / sqrt(D). dropout_p: of the weights, drawn from
    dropout_seed (a fresh one when None). window: each query sees itself and
    the window - 1 keys before it (0: no window). alibi_slopes: (H,) float32,
    ALiBi's bias -slope * |i - j| per head, H the last leading dimension.

    Returns out (..., Lq, Dv), or (out, lse) with return_lse: lse (..., Lq) the
    log-sum-exp of each row of scores, which the backward needs. A row whose
    keys are all masked gives zeros (PyTorch gives NaN).

    precision="bf16": q, k, v in bfloat16 (float32 arrays rounded to it, uint16
    arrays read as its bits), scores, softmax and sums in float32, out float32
    (attn_sdpa_bf16_forward; its error bound in attn/attention.h)."""
    call = Call(q, k, v, attn_mask, is_causal, scale, dropout_p, window, alibi_slopes,
                dropout_seed, precision=precision)
    out, lse, _ = sdpa_forward(call)
    return (out, lse) if return_lse else out


def scaled_dot_product_attention_backward(dout, q, k, v, lse, attn_mask=None, is_causal=False,
                                          scale=None, dropout_p=0.0, window=0,
                                          alibi_slopes=None, dropout_seed=None,
                                          precision="float32"):
    """The gradients (dq, dk, dv) of scaled_dot_product_attention's out, given
    dout (..., Lq, Dv) and the forward's lse, with the forward's arguments (and,
    with dropout, its dropout_seed). With precision="bf16" dout is bfloat16 too
    (rounded, or bits) and the gradients float32 (attn_sdpa_bf16_backward)."""
    if dropout_p and dropout_seed is None:
        raise ValueError("the backward of dropout needs the forward's dropout_seed")
    call = Call(q, k, v, attn_mask, is_causal, scale, dropout_p, window, alibi_slopes,
                dropout_seed, precision=precision)
    return sdpa_backward(call, dout, lse)
