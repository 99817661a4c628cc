"""A PyTorch transcription of attn's decoder-only language model (include/attn/gpt.h),
written the way nanoGPT writes its model, for the conformance test and the benchmark.

GPT(config) takes a dict of the attn_gpt_config fields: vocab_size, block_size,
n_layer, n_head, n_kv_head (0 = n_head), n_embd, position ("learned",
"sinusoidal", "rope" or "alibi"), rope_theta, window (0 = full causal), bias,
tie_weights and dropout. Its state_dict keys are exactly gpt.h's; with tied
weights the head reads transformer.wte.weight and there is no lm_head key.
Attention is explicit matmuls and a masked softmax, so the model runs in float64
and with dropout. Constant tables (sinusoidal positions, RoPE angles, ALiBi slopes)
are plain float64 attributes rather than buffers, so .float() does not round them
and a float64 copy of a float32 model keeps them exact; forward casts them to the
activations' dtype.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LAYER_NORM_EPS = 1e-5
ADAMW_EPS = 1e-8


def alibi_slopes(H):
    """ALiBi's head slopes (Press et al., 2022): 2^(-8 (h + 1) / H) for H a power
    of two; otherwise those of the power of two n below H, then every other slope
    of 2n."""
    def power_of_two(n):
        return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]

    n = 1 << (H.bit_length() - 1)
    if n == H:
        return power_of_two(H)
    return power_of_two(n) + power_of_two(2 * n)[0::2][:H - n]


def sinusoidal_table(L, E):
    """pe: (L, E), pe[t, 2i] = sin(t / 10000^(2i/E)), pe[t, 2i+1] = cos(the same)."""
    t = torch.arange(L, dtype=torch.float64)[:, None]
    even = torch.arange(0, E, 2, dtype=torch.float64)
    angle = t / torch.pow(torch.tensor(10000.0, dtype=torch.float64), even / E)
    pe = torch.zeros(L, E, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)[:, :E // 2]
    return pe


def rope_tables(L, D, theta):
    """cos, sin: (L, D) of the angle t * theta^(-2i/D) for dimension i and i + D/2."""
    i = torch.arange(D // 2, dtype=torch.float64)
    inv_freq = torch.pow(torch.tensor(float(theta), dtype=torch.float64), -2.0 * i / D)
    angle = torch.arange(L, dtype=torch.float64)[:, None] * inv_freq[None, :]
    angle = torch.cat([angle, angle], dim=1)
    return torch.cos(angle), torch.sin(angle)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (nanoGPT's)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, LAYER_NORM_EPS)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, H = cfg["n_embd"], cfg["n_head"]
        self.n_head = H
        self.n_kv_head = cfg["n_kv_head"] or H
        self.head_dim = C // H
        self.c_attn = nn.Linear(C, (H + 2 * self.n_kv_head) * self.head_dim, bias=cfg["bias"])
        self.c_proj = nn.Linear(C, C, bias=cfg["bias"])
        self.attn_dropout = nn.Dropout(cfg["dropout"])
        self.resid_dropout = nn.Dropout(cfg["dropout"])
        self.position = cfg["position"]
        self.kept = None  # a dict to receive q, k (after RoPE) and the weights, or None
        # replace(weights, allowed) -> the weights that multiply v, or None (an intervention)
        self.replace = None
        T = cfg["block_size"]
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        allowed = j <= i
        if cfg["window"] > 0:
            allowed &= i - j < cfg["window"]
        self.allowed = allowed
        if self.position == "rope":
            self.rope_cos, self.rope_sin = rope_tables(T, self.head_dim, cfg["rope_theta"])
        if self.position == "alibi":
            slopes = torch.tensor(alibi_slopes(H), dtype=torch.float64)
            self.alibi = -slopes[:, None, None] * (i - j).to(torch.float64)[None]

    def forward(self, x):
        B, T, C = x.shape
        H, Hkv, hd = self.n_head, self.n_kv_head, self.head_dim
        q, k, v = self.c_attn(x).split([H * hd, Hkv * hd, Hkv * hd], dim=2)
        q = q.view(B, T, H, hd).transpose(1, 2)
        k = k.view(B, T, Hkv, hd).transpose(1, 2)
        v = v.view(B, T, Hkv, hd).transpose(1, 2)
        if self.position == "rope":
            cos, sin = self.rope_cos[:T].to(x.dtype), self.rope_sin[:T].to(x.dtype)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        if Hkv != H:
            k = k.repeat_interleave(H // Hkv, dim=1)
            v = v.repeat_interleave(H // Hkv, dim=1)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        if self.position == "alibi":
            scores = scores + self.alibi[:, :T, :T].to(x.dtype)
        scores = scores.masked_fill(~self.allowed[:T, :T], float("-inf"))
        probs = F.softmax(scores, dim=-1)
        if self.replace is not None:
            probs = self.replace(probs, self.allowed[:T, :T])
        if self.kept is not None:
            self.kept.update(q=q, k=k, weights=probs, allowed=self.allowed[:T, :T])
        weights = self.attn_dropout(probs)
        y = (weights @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg["n_embd"]
        self.c_fc = nn.Linear(C, 4 * C, bias=cfg["bias"])
        self.c_proj = nn.Linear(4 * C, C, bias=cfg["bias"])
        self.dropout = nn.Dropout(cfg["dropout"])

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = LayerNorm(cfg["n_embd"], cfg["bias"])
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = LayerNorm(cfg["n_embd"], cfg["bias"])
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        cfg = dict(config)
        cfg["n_kv_head"] = cfg.get("n_kv_head") or cfg["n_head"]
        self.config = cfg
        V, T, C = cfg["vocab_size"], cfg["block_size"], cfg["n_embd"]
        parts = dict(wte=nn.Embedding(V, C))
        if cfg["position"] == "learned":
            parts["wpe"] = nn.Embedding(T, C)
        parts["drop"] = nn.Dropout(cfg["dropout"])
        parts["h"] = nn.ModuleList([Block(cfg) for _ in range(cfg["n_layer"])])
        parts["ln_f"] = LayerNorm(C, cfg["bias"])
        self.transformer = nn.ModuleDict(parts)
        self.lm_head = None if cfg["tie_weights"] else nn.Linear(C, V, bias=False)
        if cfg["position"] == "sinusoidal":
            self.pe = sinusoidal_table(T, C)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg["n_layer"]))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None):
        """idx: (B, T) ids, T <= block_size; targets: (B, T) or None ->
        (logits: (B, T, V), the mean cross-entropy over all positions or None)."""
        B, T = idx.shape
        if T > self.config["block_size"]:
            raise ValueError(f"context of {T} tokens exceeds the block size "
                             f"{self.config['block_size']}")
        tr = self.transformer
        x = tr.wte(idx)
        if self.config["position"] == "learned":
            x = x + tr.wpe(torch.arange(T, device=idx.device))
        elif self.config["position"] == "sinusoidal":
            x = x + self.pe[:T].to(x.dtype)
        x = tr.drop(x)
        for block in tr.h:
            x = block(x)
        x = tr.ln_f(x)
        head = tr.wte.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(x, head)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss


def configure_optimizer(model, lr, weight_decay, betas):
    """AdamW (eps 1e-8) with weight decay on the 2-D parameters (weights and
    embeddings) only."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=ADAMW_EPS)


def lr_at(step, warmup, total, lr, min_lr):
    """attn_lr_warmup_cosine (include/attn/train.h): linear warm-up over `warmup`
    steps, then cosine decay from lr to min_lr at step `total`; computed in double
    from the float32 lr and min_lr and rounded to float32 as attn does."""
    lr, min_lr = float(np.float32(lr)), float(np.float32(min_lr))
    step = max(step, 0)
    if step < warmup:
        return float(np.float32(lr * (step + 1) / warmup))
    progress = min((step - warmup) / (total - warmup), 1.0) if total > warmup else 1.0
    return float(np.float32(min_lr + (lr - min_lr) * (1.0 + math.cos(math.pi * progress)) / 2.0))
