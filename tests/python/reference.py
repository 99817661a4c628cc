"""Scaled dot-product attention in float64 PyTorch, written out as its formula:
the reference the package's results are compared with."""
import torch


def sdpa(q, k, v, attn_mask=None, is_causal=False, scale=None, window=0, alibi_slopes=None,
         keep=None, dropout_p=0.0, mask_excludes=False, key_padding_mask=None):
    """softmax(q k^T * scale + alibi + masks) (dropped with keep) v. attn_mask:
    bool (True takes part, or excluded if mask_excludes) or float (added).
    keep: the dropout's keep decisions, (..., Lq, Lk) bool."""
    Lq, Lk = q.shape[-2], k.shape[-2]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = (q @ k.transpose(-1, -2)) * scale
    i = torch.arange(Lq).unsqueeze(1)
    j = torch.arange(Lk).unsqueeze(0)
    if alibi_slopes is not None:
        s = s - alibi_slopes.to(s.dtype).reshape(-1, 1, 1) * (i - j).abs()
    hidden = torch.zeros(Lq, Lk, dtype=torch.bool)
    if is_causal:
        hidden |= j > i
    if window:
        hidden |= i - j >= window
    s = s.masked_fill(hidden, float("-inf"))
    for m in (attn_mask, key_padding_mask):
        if m is None:
            continue
        if m.dtype == torch.bool:
            excluded = m if (mask_excludes or m is key_padding_mask) else ~m
            s = s.masked_fill(excluded, float("-inf"))
        else:
            s = s + m.to(s.dtype)
    p = torch.softmax(s, dim=-1)
    if keep is not None:
        p = p * keep / (1.0 - dropout_p)
    return p @ v


U, U32 = 2.0 ** -8, 2.0 ** -24  # unit roundoffs of bfloat16 and float32


def _gamma(n):
    """The bound of a float32 sum of n terms, relative to the sum of their magnitudes."""
    return n * U32 / (1 - n * U32)


def bf16_sdpa_bounds(q, k, v, dout, is_causal=False, scale=None):
    """The bf16 kernels' results in float64 on their (bf16-valued) inputs, and each
    element's error bound: the formulas of tests/unit/test_flash_bf16.c (u = 2^-8 per
    bfloat16 rounding of P and dS before their products, float32 sums over D and L,
    every score off by at most E_i), here without masks other than causal and
    without dropout. q, k, v, dout: float64 tensors (..., L, D); returns
    ((out, dq, dk, dv), (their bounds)), each with u32 of its value added for the
    float32 result's own rounding."""
    Lq, Lk, D, Dv = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    scale = D ** -0.5 if scale is None else scale
    hidden = torch.zeros(Lq, Lk, dtype=torch.bool)
    if is_causal:
        hidden = torch.arange(Lk).unsqueeze(0) > torch.arange(Lq).unsqueeze(1)
    s = (q @ k.transpose(-1, -2) * scale).masked_fill(hidden, float("-inf"))
    p = torch.softmax(s, dim=-1)
    S = (q.abs() @ k.abs().transpose(-1, -2) * scale).masked_fill(hidden, 0).amax(-1, True)
    M = s.abs().masked_fill(hidden, 0).amax(-1, True)
    spread = torch.expm1(2 * (_gamma(D + 2) * S + 4 * U32 * M))
    n_l = Lk + 3 * -(-Lk // 64) + 8
    e_p = spread + 2 * _gamma(n_l)
    e_dp = _gamma(Dv)
    e_lq, e_lk = _gamma(Lq + 2) + U, _gamma(Lk + 2) + U
    w = dout @ v.transpose(-1, -2)
    t = dout.abs() @ v.abs().transpose(-1, -2)
    delta = (p * w).sum(-1, keepdim=True)
    e_delta = e_p * (p * w.abs()).sum(-1, True) + e_dp * (p * t).sum(-1, True)
    ds = p * (w - delta)
    ds_err = p * (e_p * (w.abs() + delta.abs()) + e_dp * t + e_delta)
    pt = p.transpose(-1, -2)
    want = (p @ v, scale * ds @ k, scale * ds.transpose(-1, -2) @ q, pt @ dout)
    bounds = (((1 + U) * spread + U + 2 * _gamma(n_l)) * (p @ v.abs()),
              scale * (ds_err + e_lk * ds.abs()) @ k.abs(),
              scale * (ds_err + e_lq * ds.abs()).transpose(-1, -2) @ q.abs(),
              pt @ ((e_p + e_lq) * dout.abs()))
    return want, tuple(b + U32 * a.abs() + 2.0 ** -100 for a, b in zip(want, bounds))
