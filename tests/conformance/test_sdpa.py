"""Conformance of attn_sdpa_forward / attn_sdpa_backward with a float64 PyTorch
reference: out = softmax(scale * q k^T + masks) v, with autograd for dq, dk, dv.

Cases: batch 1-4, heads 1-8, head dims 1-96 (dim_v equal to dim_qk or not),
Lq != Lk and odd lengths, the default or an explicit scale, causal or not, an
attn_mask (none, bool with True excluded, bool_keep with False excluded, float
added) of a random broadcast shape, and a key_padding_mask (B, 1, 1, Lk) of any
kind, alone or together with the attn_mask; a sliding window (key j excluded
from query i when i - j >= window) and ALiBi slopes (the score of head h gets
-slope_h |i - j|; slopes geometric 2^(-8 (h + 1) / H) as in the paper, or random
in (0, 1]), each in about a third of the cases; a query offset (row i at
position q_offset + i for the causal mask, the window and ALiBi: Lk - Lq for
PyTorch's bottom-right alignment, or anything up to past the last key) in about
a third. Fully masked rows (forced in about a
third of the masks) must give out, weights, lse = -inf and gradients exactly as
attn documents: zeros, which the reference implements (torch itself gives NaN).
"""

import sys

import numpy as np
import torch

import common

MASK_KINDS = ["none", "bool", "bool_keep", "float"]


def random_dim(rng):
    """A head dim in 1-96, small ones more often."""
    band = rng.integers(3)
    return int(rng.integers(1, 9) if band == 0 else
               rng.integers(9, 33) if band == 1 else rng.integers(33, 97))


def random_mask_shape(rng, target):
    """A shape that broadcasts to target = (B, H, Lq, Lk): each dimension full or
    1, leading dimensions of 1 sometimes left out."""
    shape = [n if rng.random() < 0.5 else 1 for n in target]
    leading_ones = 0
    while leading_ones < 3 and shape[leading_ones] == 1:
        leading_ones += 1
    drop = int(rng.integers(0, leading_ones + 1))
    return shape[drop:]


def make_config(case):
    rng = case.rng
    B, H = int(rng.integers(1, 5)), int(rng.integers(1, 9))
    D = random_dim(rng)
    Dv = D if rng.random() < 0.5 else random_dim(rng)
    Lq = int(rng.integers(1, 34))
    Lk = Lq if rng.random() < 0.2 else int(rng.integers(1, 34))
    # Keep each case small: a few hundred thousand floats at most.
    while B * H * max(Lq, Lk) * max(D, Dv, Lk) > 100_000:
        if H > 1:
            H -= 1
        elif B > 1:
            B -= 1
        else:
            Lq, Lk = max(1, Lq // 2), max(1, Lk // 2)
    attn_mask = MASK_KINDS[rng.integers(4)]
    padding = MASK_KINDS[rng.integers(4)] if rng.random() < 0.4 else "none"
    case.config = {
        "batch": B, "heads": H, "len_q": Lq, "len_k": Lk, "dim_qk": D, "dim_v": Dv,
        # An explicit scale from a quarter to four times 1/sqrt(D); the larger ones
        # make peaked softmaxes, whose gradients are often ill-conditioned.
        "scale": 0.0 if rng.random() < 0.6 else
        float(np.float32(rng.uniform(0.25, 4.0) / np.sqrt(D))),
        "causal": bool(rng.random() < 0.3),
        # From 1 (a query sees only its own key) to past the longest row.
        "window": int(rng.integers(1, max(Lq, Lk) + 3)) if rng.random() < 0.35 else 0,
        "alibi": bool(rng.random() < 0.35),
        "alibi_geometric": bool(rng.random() < 0.5),
        "dropout_p": 0.0, "dropout_seed": 0,
        "attn_mask": attn_mask,
        "attn_mask_shape": random_mask_shape(rng, [B, H, Lq, Lk]) if attn_mask != "none" else [],
        "key_padding_mask": padding,
        "need_weights": bool(rng.random() < 0.7),
        "mask_density": float(rng.choice([0.1, 0.3, 0.6, 0.9])),
        "q_offset": random_offset(case, Lq, Lk),
    }


def random_offset(case, Lq, Lk):
    """0 in two thirds of the cases, else Lk - Lq (when >= 0) or up to Lk + 2;
    drawn from a generator of its own, so that case.rng's draws, and so every
    case's other settings and tensors, are what they were before offsets."""
    rng = np.random.default_rng([case.seed, 0x0FF5E7])
    if rng.random() < 2 / 3:
        return 0
    if Lk >= Lq and rng.random() < 0.5:
        return Lk - Lq
    return int(rng.integers(0, Lk + 3))


def random_mask(rng, kind, shape, density):
    """(array for attn, excluded as a bool array): a mask of `kind` whose entries
    are excluded with probability `density`; in a third of the masks one whole row
    (the last axis) is excluded as well."""
    excluded = rng.random(shape) < density
    if rng.random() < 0.35 and excluded.size:
        row = tuple(int(rng.integers(n)) for n in shape[:-1])
        excluded[row] = True
    if kind == "bool":
        return excluded.copy(), excluded
    if kind == "bool_keep":
        return ~excluded, excluded
    values = (rng.standard_normal(shape) * 1.5).astype(np.float32)
    values[excluded] = -np.inf
    return values, excluded


def apply_mask(scores, kind, data):
    if kind == "float":
        return scores + common.tensor(data, scores.dtype)
    excluded = torch.from_numpy(np.asarray(data, dtype=bool))
    if kind == "bool_keep":
        excluded = ~excluded
    return scores.masked_fill(excluded, float("-inf"))


def reference(cfg, tensors, masks, dtype):
    """softmax(scale * q k^T + masks) v and its gradients, computed by PyTorch in
    dtype, with attn's zero rule for fully masked rows; also the masked scores."""
    q, k, v = (common.tensor(tensors[n], dtype, True) for n in ["q", "k", "v"])
    Lq, Lk = cfg["len_q"], cfg["len_k"]
    scale = cfg["scale"] if cfg["scale"] != 0 else 1.0 / np.sqrt(cfg["dim_qk"])
    scores = (q @ k.transpose(-1, -2)) * scale
    i = (torch.arange(Lq) + cfg["q_offset"]).view(Lq, 1)  # the rows' positions
    j = torch.arange(Lk).view(1, Lk)
    if cfg["alibi"]:
        slopes = common.tensor(tensors["alibi_slopes"], dtype).view(-1, 1, 1)
        scores = scores - slopes * (i - j).abs().to(dtype)
    if cfg["causal"]:
        scores = scores.masked_fill(j > i, float("-inf"))
    if cfg["window"] > 0:
        scores = scores.masked_fill(i - j >= cfg["window"], float("-inf"))
    for kind, data in masks:
        scores = apply_mask(scores, kind, data)
    weights = common.masked_softmax(scores)
    out = weights @ v
    out.backward(common.tensor(tensors["dout"], dtype))
    result = {"out": out.detach(), "lse": torch.logsumexp(scores.detach(), dim=-1),
              "grad.q": q.grad, "grad.k": k.grad, "grad.v": v.grad}
    if cfg["need_weights"]:
        result["weights"] = weights.detach()
    return result, scores.detach()


def run_case(case, driver):
    cfg, rng = case.config, case.rng
    B, H, Lq, Lk = cfg["batch"], cfg["heads"], cfg["len_q"], cfg["len_k"]
    D, Dv = cfg["dim_qk"], cfg["dim_v"]
    tensors = {
        "q": common.normal32(rng, (B, H, Lq, D)),
        "k": common.normal32(rng, (B, H, Lk, D)),
        "v": common.normal32(rng, (B, H, Lk, Dv)),
        "dout": common.normal32(rng, (B, H, Lq, Dv)),
    }
    if cfg["alibi"]:
        if cfg["alibi_geometric"]:
            slopes = 2.0 ** (-8.0 * np.arange(1, H + 1) / H)
        else:
            slopes = 1.0 - rng.random(H)
        tensors["alibi_slopes"] = slopes.astype(np.float32)
    masks = []
    if cfg["attn_mask"] != "none":
        data, _ = random_mask(rng, cfg["attn_mask"], cfg["attn_mask_shape"],
                              cfg["mask_density"])
        tensors["attn_mask"] = data
        masks.append((cfg["attn_mask"], data))
    if cfg["key_padding_mask"] != "none":
        data, _ = random_mask(rng, cfg["key_padding_mask"], [B, 1, 1, Lk],
                              cfg["mask_density"] / 2)
        tensors["key_padding_mask"] = data
        masks.append((cfg["key_padding_mask"], data))
    case.tags.add(f"attn_mask {cfg['attn_mask']}")
    case.tags.add(f"key_padding_mask {cfg['key_padding_mask']}")
    if len(masks) == 2:
        case.tags.add("both masks")
    if cfg["causal"]:
        case.tags.add("causal")
    if cfg["window"] > 0:
        case.tags.add("window")
    if cfg["alibi"]:
        case.tags.add("alibi")
    if Lq != Lk:
        case.tags.add("Lq != Lk")
    if cfg["q_offset"] > 0:
        case.tags.add("q_offset")

    want, scores = reference(cfg, tensors, masks, torch.float64)
    case.measure_condition(
        want, reference(cfg, tensors, masks, torch.float32)[0],
        lambda perturb: reference(cfg, common.perturbed_tensors(tensors, perturb), masks,
                                  torch.float64)[0])
    case.write_inputs(tensors)
    outputs = case.run_driver(driver, "sdpa")

    got = {name: case.output(outputs, name) for name in want}
    if any(x is None for x in got.values()):
        return
    for name in want:
        case.compare(name, got[name], want[name])

    # Fully masked rows: exactly zero, not merely small.
    empty = torch.isneginf(scores).all(dim=-1).numpy()
    if empty.any():
        case.tags.add("fully masked rows")
        case.errors["fully_masked_rows"] = 0.0
        zero = (not got["out"][empty].any() and not got["grad.q"][empty].any()
                and np.all(got["lse"][empty] == -np.inf)
                and (not cfg["need_weights"] or not got["weights"][empty].any()))
        if not zero:
            case.errors["fully_masked_rows"] = float("inf")
            case.problems.append(f"fully masked rows ({int(empty.sum())}) are not exactly "
                                 "0 in out / weights / grad.q, or lse is not -inf")


if __name__ == "__main__":
    sys.exit(common.main("sdpa", __doc__, make_config, run_case, default_cases=300))
