"""What the package accepts as an array, and how it hands one to C: float32 (or
a bool mask, or bfloat16 bits as uint16) and C-contiguous, passed by address
without a copy. Anything else
is a TypeError or ValueError naming the argument, raised before C sees it."""
import operator

import numpy as np


def float32(name, a, ndim=None):
    """a, checked to be a C-contiguous float32 NumPy array (of ndim dimensions
    when given)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, not {type(a).__name__}")
    if a.dtype != np.float32:
        raise TypeError(f"{name} must be float32, not {a.dtype} (attn computes in float32; "
                        f"convert with {name}.astype(np.float32))")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (np.ascontiguousarray({name}))")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, not shape {a.shape}")
    return a


def bf16_bits(name, a):
    """a, checked to be a C-contiguous uint16 NumPy array: bfloat16 values as their
    bits, the top half of each float32 (NumPy has no bfloat16 type)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, not {type(a).__name__}")
    if a.dtype != np.uint16:
        raise TypeError(f"{name} must hold bfloat16 bits as uint16, not {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (np.ascontiguousarray({name}))")
    return a


def address(a):
    """The address of a's data as an int (None for None), for an argument or field
    declared c_void_p: a quarter of the cost of ctypes' data_as, which counts at
    small sizes."""
    return None if a is None else a.ctypes.data


def integer(name, value, low, high):
    """value as an int in [low, high]: ctypes would wrap one outside its C type
    silently. A bool or a float is a TypeError."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], not {value}")
    return value
