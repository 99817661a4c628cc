"""attn's fused attention inside PyTorch: scaled_dot_product_attention as an
autograd function with PyTorch 2.x's signature and mask conventions, and
MultiheadAttention, a drop-in for torch.nn.MultiheadAttention (the same
state_dict and arguments). Both run attn's fused forward and backward on CPU
float32 tensors, and attn's bf16 kernels on bfloat16 ones (float32 scores,
softmax and sums inside; results and gradients returned as bfloat16, as
PyTorch's own attention returns them), so gradients flow through them into
torch parameters in an ordinary training loop:

    import torch, attn.torch
    out = attn.torch.scaled_dot_product_attention(q, k, v, is_causal=True)
    mha = attn.torch.MultiheadAttention(512, 8, batch_first=True)
    y, _ = mha(x, x, x, need_weights=False)

Tensors of any layout are made contiguous; other dtypes and devices are a
TypeError or ValueError. Dropout's keep decisions come from attn's generator,
seeded from torch's (torch.manual_seed repeats them), not from torch's own
stream, so they differ from PyTorch's dropout draws."""
import numpy as np
import torch

from . import functional
from .functional import MASK_BOOL, MASK_BOOL_KEEP

__all__ = ["MultiheadAttention", "scaled_dot_product_attention"]


def _numpy(name, t):
    """t as a C-contiguous NumPy array sharing its memory: float32, bool for a
    bool mask, or uint16 holding a bfloat16 tensor's bits."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} is on {t.device}; attn runs on the CPU")
    if t.dtype not in (torch.float32, torch.bfloat16, torch.bool):
        raise TypeError(f"{name} must be float32 or bfloat16, not {t.dtype}")
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def _mask(name, m):
    """A mask for the kernels: bool, or float32 (a bfloat16 one widened exactly)."""
    if m is not None and m.dtype == torch.bfloat16:
        m = m.float()
    return None if m is None else _numpy(name, m)


def _precision(q, k, v):
    """"bf16" for bfloat16 q, k, v, "float32" for float32 ones; mixed is refused,
    as PyTorch refuses it."""
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"query, key and value must have one dtype, not {q.dtype}, {k.dtype}, "
                        f"{v.dtype}")
    return "bf16" if q.dtype == torch.bfloat16 else "float32"


def _tensor(a, precision):
    """A float32 result as a tensor of the inputs' dtype."""
    t = torch.from_numpy(a)
    return t.to(torch.bfloat16) if precision == "bf16" else t


def _seed(dropout_p):
    """A dropout seed drawn from torch's generator, or None without dropout."""
    return int(torch.randint(0, 2**62, (1,)).item()) if dropout_p > 0 else None


class _Attention(torch.autograd.Function):
    """out = attention(q, k, v) through attn; the weights too when asked (the
    reference kernel; not differentiable). Gradients reach q, k and v; masks get
    none."""

    @staticmethod
    def forward(ctx, q, k, v, attn_mask, key_padding_mask, mask_type, is_causal, scale,
                dropout_p, window, want_weights):
        arrays = _numpy("query", q), _numpy("key", k), _numpy("value", v)
        precision = _precision(q, k, v)
        call = functional.Call(*arrays, _mask("attn_mask", attn_mask), is_causal, scale, dropout_p,
                               window, None, _seed(dropout_p),
                               key_padding_mask=_mask("key_padding_mask", key_padding_mask),
                               mask_type=mask_type, precision=precision)
        out, lse, weights = functional.sdpa_forward(call, want_weights)
        ctx.call = call
        ctx.lse = lse
        weights = torch.from_numpy(weights) if want_weights else torch.empty(0)
        ctx.mark_non_differentiable(weights)
        return _tensor(out, precision), weights

    @staticmethod
    def backward(ctx, dout, _dweights):
        precision = ctx.call.precision
        dout = dout.to(torch.bfloat16 if precision == "bf16" else torch.float32)
        grads = functional.sdpa_backward(ctx.call, _numpy("grad", dout), ctx.lse)
        return (*(_tensor(g, precision) for g in grads), None, None, None, None, None, None, None,
                None)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, window=0):
    """torch.nn.functional.scaled_dot_product_attention (PyTorch 2.x), fused:
    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev).
    attn_mask: bool (True: takes part) or float (added), broadcast to
    (..., L, S); is_causal: the top-left causal mask; scale: default 1/sqrt(E);
    window: attn's sliding window (0: none). A row with every key masked gives
    zeros where PyTorch gives NaN. bfloat16 query, key and value run attn's
    bf16 kernels and give a bfloat16 result."""
    out, _ = _Attention.apply(query, key, value, attn_mask, None, MASK_BOOL_KEEP, is_causal,
                              scale, dropout_p, window, False)
    return out


class MultiheadAttention(torch.nn.MultiheadAttention):
    """torch.nn.MultiheadAttention with its attention run by attn: the same
    constructor, parameters, state_dict and forward arguments. The projections
    stay PyTorch's; the attention between them is attn's fused kernel when the
    weights are not requested (need_weights=False), and attn's reference kernel
    when they are (their gradient is not propagated). Configurations attn does
    not cover (add_bias_kv, add_zero_attn, kdim or vdim other than embed_dim)
    run PyTorch's own forward, as does a bfloat16 module asked for the weights
    (attn forms them in float32 only)."""

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        if (self.bias_k is not None or self.add_zero_attn or not self._qkv_same_embed_dim
                or query.dim() not in (2, 3)
                or (need_weights and query.dtype == torch.bfloat16)):
            return super().forward(query, key, value, key_padding_mask=key_padding_mask,
                                   need_weights=need_weights, attn_mask=attn_mask,
                                   average_attn_weights=average_attn_weights)
        unbatched = query.dim() == 2
        if unbatched:  # (L, E): a batch of one
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if self.batch_first and not unbatched:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        # (L, B, E) from here, as PyTorch's own multi_head_attention_forward.
        L, B, E = query.shape
        S = key.shape[0]
        H, hd = self.num_heads, self.head_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else b.chunk(3)
        wq, wk, wv = w.chunk(3)
        q = torch.nn.functional.linear(query, wq, bq)
        k = torch.nn.functional.linear(key, wk, bk)
        v = torch.nn.functional.linear(value, wv, bv)
        # (L, B, E) -> (B, H, L, hd)
        q = q.reshape(L, B, H, hd).permute(1, 2, 0, 3)
        k = k.reshape(S, B, H, hd).permute(1, 2, 0, 3)
        v = v.reshape(S, B, H, hd).permute(1, 2, 0, 3)
        if attn_mask is not None and attn_mask.dim() == 3:  # (B * H, L, S)
            attn_mask = attn_mask.reshape(B, H, L, S)
        if key_padding_mask is not None:  # (B, S) -> (B, 1, 1, S)
            key_padding_mask = key_padding_mask.reshape(B, 1, 1, S)
        causal = is_causal and attn_mask is None
        dropout_p = self.dropout if self.training else 0.0
        out, weights = _Attention.apply(q, k, v, attn_mask, key_padding_mask, MASK_BOOL, causal,
                                        None, dropout_p, 0, need_weights)
        out = out.permute(2, 0, 1, 3).reshape(L, B, E)
        out = torch.nn.functional.linear(out, self.out_proj.weight, self.out_proj.bias)
        if self.batch_first and not unbatched:
            out = out.transpose(0, 1)
        if unbatched:
            out = out.squeeze(1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(dim=1)
        if unbatched:
            weights = weights.squeeze(0)
        return out, weights
