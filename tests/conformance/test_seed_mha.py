"""Conformance of attn_seed_mha_* with the seed article's MultiHeadAttention class.

The class below is the seed's text, verbatim; the reference is a float64 copy of
a float32 instance whose state_dict (values.weight, keys.weight, queries.weight,
fc_out.weight, fc_out.bias) attn_conform loads with attn_params_load. Compared:
out, the attention weights (the class does not return them; they are recorded
from its torch.softmax call), the gradients of values, keys and query (or of the
one tensor in self-attention cases, where values is keys is query) and of every
parameter, and the state_dict attn saves.

Masks: None, padding (N, 1, 1, Lk) and causal (N, 1, Lq, Lk), bool or uint8,
1 = attend, 0 = masked (the seed's mask == 0), including fully masked rows,
which the seed's finite -1e20 fill makes uniform: attn must match that, not give
zeros.
"""

import copy
import sys

import numpy as np

import common

# ---- the seed's class, verbatim, with its imports ------------------------------
import torch
import torch.nn as nn

class MultiHeadAttention(nn.Module):
    def __init__(self, embed_size, heads):
        super(MultiHeadAttention, self).__init__()
        self.embed_size = embed_size
        self.heads = heads
        self.head_dim = embed_size // heads

        assert self.head_dim * heads == embed_size, "Embed size needs to be divisible by heads"

        self.values = nn.Linear(self.head_dim, self.head_dim, bias=False)
        self.keys = nn.Linear(self.head_dim, self.head_dim, bias=False)
        self.queries = nn.Linear(self.head_dim, self.head_dim, bias=False)
        self.fc_out = nn.Linear(heads * self.head_dim, embed_size)

    def forward(self, values, keys, query, mask):
        N = query.shape[0]
        value_len, key_len, query_len = values.shape[1], keys.shape[1], query.shape[1]

        # Split the embedding into self.heads different pieces
        values = values.reshape(N, value_len, self.heads, self.head_dim)
        keys = keys.reshape(N, key_len, self.heads, self.head_dim)
        queries = query.reshape(N, query_len, self.heads, self.head_dim)

        values = self.values(values)
        keys = self.keys(keys)
        queries = self.queries(queries)

        energy = torch.einsum("nqhd,nkhd->nhqk", [queries, keys])
        if mask is not None:
            energy = energy.masked_fill(mask == 0, float("-1e20"))

        attention = torch.softmax(energy / (self.embed_size ** (1 / 2)), dim=3)
        out = torch.einsum("nhql,nlhd->nqhd", [attention, values]).reshape(N, query_len, self.heads * self.head_dim)
        out = self.fc_out(out)
        return out
# ---- end of the seed's class -------------------------------------------------------


class RecordSoftmax:
    """While active, remembers what torch.softmax last returned (the seed's
    attention weights), leaving the class untouched."""

    def __enter__(self):
        self.original = torch.softmax
        self.result = None

        def recording(*args, **kwargs):
            self.result = self.original(*args, **kwargs)
            return self.result

        torch.softmax = recording
        return self

    def __exit__(self, *exc):
        torch.softmax = self.original
        return False


def make_config(case):
    rng = case.rng
    H = int(rng.integers(1, 9))
    band = rng.integers(3)
    head_dim = int(rng.integers(1, 9) if band == 0 else
                   rng.integers(9, 33) if band == 1 else rng.integers(33, 97))
    head_dim = max(1, min(head_dim, 256 // H))  # embed_size at most 256
    self_attention = bool(rng.random() < 0.2)
    Lq = int(rng.integers(1, 22))
    Lk = Lq if self_attention or rng.random() < 0.2 else int(rng.integers(1, 22))
    case.config = {
        "embed_size": H * head_dim, "heads": H,
        "batch": int(rng.integers(1, 5)), "len_q": Lq, "len_k": Lk,
        "self_attention": self_attention,
        "alias_grads": bool(self_attention and rng.random() < 0.5),
        "mask": "bool_keep" if rng.random() < 0.75 else "none",
        "mask_shape": ["padding", "causal"][rng.integers(2)],
        "mask_dtype": ["bool", "uint8"][rng.integers(2)],
        "mask_density": float(rng.choice([0.1, 0.3, 0.6])),
        "need_weights": bool(rng.random() < 0.7),
    }


def random_keep_mask(rng, cfg):
    """1 = attend, 0 = masked: padding (N, 1, 1, Lk) masks random keys, in a
    quarter of the cases all of one sequence's; causal (N, 1, Lq, Lk) keeps
    j <= i, minus random keys, sometimes all the keys of one row."""
    N, Lq, Lk = cfg["batch"], cfg["len_q"], cfg["len_k"]
    density = cfg["mask_density"]
    if cfg["mask_shape"] == "padding":
        keep = rng.random((N, 1, 1, Lk)) >= density / 2
        if rng.random() < 0.25:
            keep[int(rng.integers(N))] = False
    else:
        keep = np.tril(np.ones((Lq, Lk), dtype=bool))[None, None].repeat(N, axis=0)
        keep &= rng.random((N, 1, 1, Lk)) >= density / 2  # padded keys
        if rng.random() < 0.3:
            keep[int(rng.integers(N)), 0, int(rng.integers(Lq))] = False
    return keep.astype(np.uint8) if cfg["mask_dtype"] == "uint8" else keep


def run_reference(module32, cfg, tensors, dtype):
    """The seed's class on a copy of the module in dtype (float64, or float32 for
    the condition measure): out, the attention it computes, the gradients."""
    module = copy.deepcopy(module32).to(dtype)
    query = common.tensor(tensors["query"], dtype, True)
    if cfg["self_attention"]:
        keys = values = query
    else:
        keys, values = (common.tensor(tensors[n], dtype, True) for n in ["keys", "values"])
    mask = torch.from_numpy(tensors["mask"]) if "mask" in tensors else None
    with RecordSoftmax() as record:
        out = module(values, keys, query, mask)
    out.backward(common.tensor(tensors["dout"], dtype))
    result = {"out": out.detach()}
    if cfg["need_weights"]:
        result["weights"] = record.result.detach()
    if cfg["self_attention"]:
        result["grad.self"] = query.grad
    else:
        result.update({"grad.query": query.grad, "grad.keys": keys.grad,
                       "grad.values": values.grad})
    for name, p in module.named_parameters():
        result["grad." + name] = p.grad
    return result


def run_case(case, driver):
    cfg, rng = case.config, case.rng
    E, H, N, Lq, Lk = (cfg[n] for n in ["embed_size", "heads", "batch", "len_q", "len_k"])

    torch.manual_seed(case.seed)
    module32 = MultiHeadAttention(E, H)
    state32 = {k: v.detach().numpy().copy() for k, v in module32.state_dict().items()}
    case.write_weights(state32)

    tensors = {"query": common.normal32(rng, (N, Lq, E))}
    if not cfg["self_attention"]:
        tensors["keys"] = common.normal32(rng, (N, Lk, E))
        tensors["values"] = common.normal32(rng, (N, Lk, E))
    tensors["dout"] = common.normal32(rng, (N, Lq, E))
    if cfg["mask"] != "none":
        mask = random_keep_mask(rng, cfg)
        tensors["mask"] = mask
        empty = ~np.broadcast_to(mask != 0, (N, H, Lq, Lk)).any(axis=-1)
        cfg["fully_masked_rows"] = int(empty.sum())
        case.tags.add(f"mask {cfg['mask_shape']}")
        if empty.any():
            case.tags.add("fully masked rows")
    if cfg["self_attention"]:
        case.tags.add("self-attention" + (" (one gradient buffer)" if cfg["alias_grads"] else ""))
    reference = case.measured_reference(
        lambda m, t, dtype: run_reference(m, cfg, t, dtype), module32, tensors)
    case.write_inputs(tensors)
    outputs = case.run_driver(driver, "seed_mha")

    got = {name: case.output(outputs, name) for name in reference
           if name != "grad.self"}
    if cfg["self_attention"]:
        if cfg["alias_grads"]:
            got["grad.self"] = case.output(outputs, "grad.query")
        else:
            parts = [case.output(outputs, n) for n in ["grad.query", "grad.keys", "grad.values"]]
            if all(p is not None for p in parts):
                got["grad.self"] = parts[0].astype(np.float64) + parts[1] + parts[2]
    extra = set(outputs) - set(got) - {"grad.query", "grad.keys", "grad.values"}
    case.require(not extra, f"unexpected outputs: {sorted(extra)}")
    for name, want in reference.items():
        if got.get(name) is not None:
            case.compare(name, got[name], want)

    case.check_saved_state(lambda: MultiHeadAttention(E, H), state32)


if __name__ == "__main__":
    sys.exit(common.main("seed_mha", __doc__, make_config, run_case, default_cases=150))
