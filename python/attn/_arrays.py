"""What the package accepts as an array, and how it hands one to C: float32 (or
a bool mask) and C-contiguous, passed by pointer without a copy. Anything else
is a TypeError or ValueError naming the argument, raised before C sees it."""
import ctypes

import numpy as np

c_float_p = ctypes.POINTER(ctypes.c_float)


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


def pointer(a):
    """The float pointer to a's data, or NULL for None."""
    return None if a is None else a.ctypes.data_as(c_float_p)


def void_pointer(a):
    return None if a is None else ctypes.c_void_p(a.ctypes.data)
