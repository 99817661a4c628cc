"""attn from Python: the attention mechanisms of libattn (fused, CPU, checked
against PyTorch) over NumPy arrays, and through attn.torch as PyTorch functions
and modules.

    import numpy as np, attn
    q = np.random.randn(2, 8, 1024, 64).astype(np.float32)
    out = attn.scaled_dot_product_attention(q, q, q, is_causal=True)

The modules: attn.functional (fused attention, forward and backward; its two
functions are also attn's own), attn.layers (score functions, soft and hard
attention, MultiheadAttention and the seed's class over NumPy), attn.models
(models trained by `attn train`: translate, generate, stream, record),
attn.records (attention records as NumPy arrays), attn.torch (PyTorch).

Every failure of the library raises an attn.AttnError (also a ValueError,
MemoryError, OSError, KeyError or NotImplementedError, by its kind) with the
library's message."""
import ctypes

from ._lib import (AttnError, AttnKeyError, AttnMemoryError, AttnNotImplementedError,
                   AttnOSError, AttnValueError, check, declare, version)
from . import functional, layers, models, records
from .functional import scaled_dot_product_attention, scaled_dot_product_attention_backward

__version__ = version

__all__ = ["AttnError", "AttnKeyError", "AttnMemoryError", "AttnNotImplementedError",
           "AttnOSError", "AttnValueError", "get_num_threads", "scaled_dot_product_attention",
           "scaled_dot_product_attention_backward", "set_num_threads", "simd_variant"]

_set_num_threads = declare("attn_set_num_threads", ctypes.c_int)
_get_num_threads = declare("attn_get_num_threads")
_simd_variant = declare("attn_simd_variant", restype=ctypes.c_char_p)


def set_num_threads(n):
    """The threads every later call uses (the library's attn_set_num_threads)."""
    check(_set_num_threads(int(n)))


def get_num_threads():
    return _get_num_threads()


def simd_variant():
    """The instruction set the kernels run: "avx512bf16", "avx512", "avx2" or
    "scalar", chosen when the library loads, from the environment variable
    ATTN_SIMD if set (set it before importing attn to force one), else the best
    this CPU runs."""
    return _simd_variant().decode()
