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
