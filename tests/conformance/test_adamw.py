"""Conformance of the optimiser side of training with PyTorch 1.13 (attn_conform
kind "adamw", the part named by the config key "op"):

  adamw     torch.optim.AdamW(foreach=False), one to six steps from the same state:
            a fresh one, or one after up to a thousand steps with random moments.
            The flat parameter vector is cut into one to five tensors; with the
            decay mask, each tensor goes to a parameter group with the case's
            weight_decay or to one with weight_decay 0, as the mask says. Random
            betas, eps, weight_decay and a learning rate per step from 1e-4 to 0.3.
            Compared: the parameters and both moments after the last step, with
            float64 PyTorch to TOLERANCE and with float32 PyTorch, which attn
            follows operation by operation, to FLOAT32_AGREEMENT; the cases where
            all three are equal to float32 PyTorch's bit for bit are counted.
  clip      torch.nn.utils.clip_grad_norm_ over one to five gradient tensors, with
            max_norm from a tenth to ten times their norm: the norm and the grads.
  schedule  linear warm-up then cosine decay, against the formula in float64, at
            every step from a few before 0 to past the end (with warmup 0, or
            total <= warmup, among the cases).

Config values that attn keeps as float32 (betas, eps, weight_decay, learning
rates, max_norm) are drawn as float32 numbers, so both sides use the same ones.
"""

import math
import sys

import numpy as np
import torch

import common

OPS = ["adamw", "clip", "schedule"]
# attn against PyTorch's own float32 AdamW: a few roundings of float32 apart.
FLOAT32_AGREEMENT = 1e-6


def f32(x):
    return float(np.float32(x))


def cut(rng, n):
    """Random sizes of one to five tensors that add up to n."""
    parts = int(rng.integers(1, min(5, n) + 1))
    edges = np.sort(rng.choice(np.arange(1, n), size=parts - 1, replace=False)) if parts > 1 else []
    bounds = [0, *[int(e) for e in edges], n]
    return [bounds[i + 1] - bounds[i] for i in range(parts)]


def make_config(case):
    rng = case.rng
    op = OPS[rng.integers(len(OPS))]
    cfg = {"op": op}
    if op == "adamw":
        n = int(rng.integers(2, 3000))
        default = rng.random() < 0.4
        cfg.update(
            n=n, sizes=cut(rng, n), steps=int(rng.integers(1, 7)),
            step0=0 if rng.random() < 0.5 else int(rng.integers(1, 1000)),
            beta1=f32(0.9) if default else f32(rng.uniform(0.5, 0.99)),
            beta2=f32(0.999) if default else f32(rng.uniform(0.9, 0.9999)),
            eps=f32(rng.choice([1e-8, 1e-6, 1e-3])),
            weight_decay=f32(rng.choice([0.0, 0.01, 0.1, 0.5])),
            decay_mask=bool(rng.random() < 0.5))
        cfg["decay_parts"] = [bool(rng.random() < 0.5) for _ in cfg["sizes"]]
    elif op == "clip":
        n = int(rng.integers(1, 5000))
        cfg.update(n=n, sizes=cut(rng, n) if n > 1 else [1],
                   scale=float(rng.choice([1e-3, 1.0, 100.0])),
                   ratio=float(rng.choice([0.1, 0.5, 0.9, 1.5, 10.0])))
    else:
        warmup = int(rng.choice([0, int(rng.integers(1, 50))]))
        total = warmup + int(rng.integers(1, 400)) if rng.random() < 0.8 else \
            int(rng.integers(0, warmup + 1))
        lr_max = f32(10 ** rng.uniform(-4, -1))
        cfg.update(warmup=warmup, total=total, lr_max=lr_max,
                   lr_min=f32(rng.choice([0.0, lr_max * rng.uniform(0, 0.2)])),
                   first_step=-3, steps=max(total, warmup) + 30)
    case.config = cfg


def make_inputs(case):
    cfg, rng = case.config, case.rng
    if cfg["op"] == "adamw":
        n, steps = cfg["n"], cfg["steps"]
        fresh = cfg["step0"] == 0
        t = {"params": common.normal32(rng, (n,)),
             "exp_avg": np.zeros(n, np.float32) if fresh else common.normal32(rng, (n,), 0.1),
             "exp_avg_sq": np.zeros(n, np.float32) if fresh else
             np.abs(common.normal32(rng, (n,), 0.1)) ** 2,
             "grads": common.normal32(rng, (steps, n)),
             "lrs": (10 ** rng.uniform(-4, math.log10(0.3), size=steps)).astype(np.float32)}
        if cfg["decay_mask"]:
            t["decay"] = np.repeat(np.array(cfg["decay_parts"], np.uint8), cfg["sizes"])
        return t
    if cfg["op"] == "clip":
        grads = common.normal32(rng, (cfg["n"],), cfg["scale"])
        norm = float(np.sqrt(np.sum(grads.astype(np.float64) ** 2)))
        cfg["max_norm"] = f32(norm * cfg["ratio"])
        return {"grads": grads}
    return {"unused": np.zeros(1, np.float32)}  # the schedule has only its config


def pieces(x, sizes, dtype, grad=False):
    """The flat array x cut into tensors of the given sizes."""
    out, start = [], 0
    for size in sizes:
        out.append(common.tensor(x[start:start + size], dtype, grad))
        start += size
    return out


def reference_adamw(cfg, t, dtype):
    params = pieces(t["params"], cfg["sizes"], dtype, True)
    decays = cfg["decay_parts"] if cfg["decay_mask"] else [True] * len(params)
    groups = [{"params": [p for p, d in zip(params, decays) if d]},
              {"params": [p for p, d in zip(params, decays) if not d], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(cfg["beta1"], cfg["beta2"]),
                            eps=cfg["eps"], weight_decay=cfg["weight_decay"], foreach=False)
    if cfg["step0"]:
        for p, m, v in zip(params, pieces(t["exp_avg"], cfg["sizes"], dtype),
                           pieces(t["exp_avg_sq"], cfg["sizes"], dtype)):
            opt.state[p] = {"step": torch.tensor(float(cfg["step0"])), "exp_avg": m,
                            "exp_avg_sq": v}
    for s in range(cfg["steps"]):
        for p, g in zip(params, pieces(t["grads"][s], cfg["sizes"], dtype)):
            p.grad = g
        for group in opt.param_groups:
            group["lr"] = float(t["lrs"][s])
        opt.step()

    def flat(tensors):
        return torch.cat([x.detach().reshape(-1) for x in tensors]).numpy()

    return {"adamw.params": flat(params),
            "adamw.exp_avg": flat([opt.state[p]["exp_avg"] for p in params]),
            "adamw.exp_avg_sq": flat([opt.state[p]["exp_avg_sq"] for p in params])}


def reference_clip(cfg, t, dtype):
    params = [torch.zeros(size, dtype=dtype, requires_grad=True) for size in cfg["sizes"]]
    for p, g in zip(params, pieces(t["grads"], cfg["sizes"], dtype)):
        p.grad = g
    norm = torch.nn.utils.clip_grad_norm_(params, cfg["max_norm"])
    return {"clip.norm": norm.reshape(1).numpy(),
            "clip.grads": torch.cat([p.grad for p in params]).numpy()}


def reference_schedule(cfg, t, dtype):
    del t, dtype  # the formula, in float64
    lrs = []
    for s in range(cfg["first_step"], cfg["first_step"] + cfg["steps"]):
        step, warmup, total = max(s, 0), cfg["warmup"], cfg["total"]
        if step < warmup:
            lrs.append(cfg["lr_max"] * (step + 1) / warmup)
            continue
        progress = min(1.0, (step - warmup) / (total - warmup)) if total > warmup else 1.0
        lrs.append(cfg["lr_min"] + (cfg["lr_max"] - cfg["lr_min"])
                   * (1 + math.cos(math.pi * progress)) / 2)
    return {"schedule.lrs": np.array(lrs)}


REFERENCES = {"adamw": reference_adamw, "clip": reference_clip, "schedule": reference_schedule}


def run_case(case, driver):
    cfg = case.config
    op = cfg["op"]
    tensors = make_inputs(case)
    reference = REFERENCES[op]
    case.tags.add(op)
    if op == "adamw":
        case.tags.add("AdamW from a fresh state" if cfg["step0"] == 0 else
                      "AdamW from a later state")
        if cfg["decay_mask"]:
            case.tags.add("AdamW with the decay mask")
    if op == "clip":
        case.tags.add("clipped" if cfg["ratio"] < 1 else "not clipped")
    want = reference(cfg, tensors, torch.float64)
    want32 = reference(cfg, tensors, torch.float32)
    case.measure_condition(
        want, want32,
        lambda perturb: reference(cfg, common.perturbed_tensors(tensors, perturb), torch.float64))
    case.write_inputs(tensors)
    outputs = case.run_driver(driver, "adamw")
    prefix = op + "."
    extra = {prefix + name for name in outputs} - set(want)
    case.require(not extra, f"unexpected outputs: {sorted(extra)}")
    identical = True
    for name, value in want.items():
        got = case.output(outputs, name[len(prefix):])
        if got is None:
            continue
        case.compare(name, got, value)
        if op == "adamw":
            case.compare("float32 " + name, got, want32[name], FLOAT32_AGREEMENT)
            identical = identical and common.bits_equal(got, want32[name])
    if op == "adamw" and identical:
        case.tags.add("AdamW bit for bit as PyTorch float32")


if __name__ == "__main__":
    sys.exit(common.main("adamw", __doc__, make_config, run_case, default_cases=200))
