"""Conformance of the building blocks with PyTorch 1.13 in float64, one block per
case (attn_conform kind "layers", the block named by the config key "op"):

  linear         F.linear: out and the gradients of x, weight, bias (bias or not).
  layernorm      F.layer_norm over the last axis, with and without the affine
                 weight and bias, eps from 1e-12 to 1e-2, rows centred or offset by
                 up to ten times their spread: out, the kept mean and rstd, the
                 gradients of x, weight, bias.
  embedding      F.embedding with repeated ids, padding_idx none or a row: out and
                 the gradient of the weight (none for the padding row).
  activation     F.relu, F.gelu (erf), F.gelu(approximate="tanh"), torch.tanh on
                 inputs of spread 1 to 8: out and the gradient of x.
  cross_entropy  F.cross_entropy(reduction="mean") with ignore_index (-100 or a
                 class id, a fifth of the rows ignored, sometimes all of them) and
                 label_smoothing (0, up to 0.5, or 1), logits of spread 0.1 to 20:
                 the loss, each row's loss (reduction="none"), the softmax and the
                 gradient of the logits times a random dloss.

Every backward starts from zero gradients; dout is random. A case where every
row is ignored has loss 0 and no gradient in attn (torch's mean is 0/0 = NaN),
and is compared with that.
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F

import common

OPS = ["linear", "layernorm", "embedding", "activation", "cross_entropy"]
ACTIVATIONS = ["relu", "gelu", "gelu_tanh", "tanh"]


def dim(rng, low, high):
    return int(rng.integers(low, high + 1))


def make_config(case):
    rng = case.rng
    op = OPS[rng.integers(len(OPS))]
    cfg = {"op": op}
    if op == "linear":
        cfg.update(N=dim(rng, 1, 40), **{"in": dim(rng, 1, 80)}, out=dim(rng, 1, 80),
                   bias=bool(rng.random() < 0.7))
    elif op == "layernorm":
        cfg.update(N=dim(rng, 1, 30), D=dim(rng, 1, 300), affine=bool(rng.random() < 0.7),
                   eps=float(np.float32(rng.choice([1e-12, 1e-6, 1e-5, 1e-3, 1e-2]))),
                   scale=float(rng.choice([0.01, 1.0, 30.0])),
                   offset=float(rng.choice([0.0, 0.0, 3.0, -10.0])))
    elif op == "embedding":
        num = dim(rng, 1, 50)
        cfg.update(N=dim(rng, 1, 100), num=num, dim=dim(rng, 1, 64),
                   padding_idx=int(rng.integers(num)) if rng.random() < 0.5 else -1)
    elif op == "activation":
        cfg.update(activation=ACTIVATIONS[rng.integers(len(ACTIVATIONS))], n=dim(rng, 1, 5000),
                   scale=float(rng.choice([1.0, 3.0, 8.0])))
    else:
        C = dim(rng, 1, 120)
        cfg.update(N=dim(rng, 1, 64), C=C,
                   ignore_index=-100 if rng.random() < 0.5 else int(rng.integers(C)),
                   label_smoothing=float(np.float32(rng.choice(
                       [0.0, 0.0, rng.uniform(0.0, 0.5), 1.0]))),
                   ignored_fraction=float(rng.choice([0.0, 0.2, 0.2, 1.0])),
                   scale=float(rng.choice([0.1, 1.0, 5.0, 20.0])),
                   dloss=float(np.float32(rng.uniform(0.5, 2.0))))
    case.config = cfg


# ---- the inputs of each op ----

def make_inputs(case):
    cfg, rng = case.config, case.rng
    op = cfg["op"]
    if op == "linear":
        N, i, o = cfg["N"], cfg["in"], cfg["out"]
        t = {"x": common.normal32(rng, (N, i)), "weight": common.normal32(rng, (o, i), 0.3)}
        if cfg["bias"]:
            t["bias"] = common.normal32(rng, (o,))
        t["dout"] = common.normal32(rng, (N, o))
    elif op == "layernorm":
        N, D = cfg["N"], cfg["D"]
        t = {"x": (rng.standard_normal((N, D)) * cfg["scale"]
                   + cfg["offset"] * cfg["scale"]).astype(np.float32)}
        if cfg["affine"]:
            t["weight"] = (1 + common.normal32(rng, (D,), 0.5)).astype(np.float32)
            t["bias"] = common.normal32(rng, (D,))
        t["dout"] = common.normal32(rng, (N, D))
    elif op == "embedding":
        N, num, d = cfg["N"], cfg["num"], cfg["dim"]
        ids = rng.integers(0, num, size=N).astype(np.int32)
        if cfg["padding_idx"] >= 0 and N > 1:
            ids[rng.random(N) < 0.2] = cfg["padding_idx"]
        t = {"ids": ids, "weight": common.normal32(rng, (num, d)),
             "dout": common.normal32(rng, (N, d))}
    elif op == "activation":
        n = cfg["n"]
        t = {"x": common.normal32(rng, (n,), cfg["scale"]), "dout": common.normal32(rng, (n,))}
    else:
        N, C = cfg["N"], cfg["C"]
        targets = rng.integers(0, C, size=N).astype(np.int32)
        targets[rng.random(N) < cfg["ignored_fraction"]] = cfg["ignore_index"]
        t = {"logits": common.normal32(rng, (N, C), cfg["scale"]), "targets": targets}
    return t


# ---- the float64 (or float32) PyTorch reference of each op ----

def reference(cfg, tensors, dtype):
    op = cfg["op"]

    def leaf(name):
        return common.tensor(tensors[name], dtype, True)

    if op == "linear":
        x, w = leaf("x"), leaf("weight")
        b = leaf("bias") if cfg["bias"] else None
        out = F.linear(x, w, b)
        out.backward(common.tensor(tensors["dout"], dtype))
        result = {"out": out, "grad.x": x.grad, "grad.weight": w.grad}
        if b is not None:
            result["grad.bias"] = b.grad
    elif op == "layernorm":
        x = leaf("x")
        w, b = (leaf("weight"), leaf("bias")) if cfg["affine"] else (None, None)
        out = F.layer_norm(x, (cfg["D"],), w, b, cfg["eps"])
        out.backward(common.tensor(tensors["dout"], dtype))
        xd = x.detach()
        var = xd.var(dim=-1, unbiased=False)
        result = {"out": out, "mean": xd.mean(dim=-1), "rstd": 1 / torch.sqrt(var + cfg["eps"]),
                  "grad.x": x.grad}
        if cfg["affine"]:
            result.update({"grad.weight": w.grad, "grad.bias": b.grad})
    elif op == "embedding":
        w = leaf("weight")
        ids = torch.from_numpy(tensors["ids"].astype(np.int64))
        padding = cfg["padding_idx"] if cfg["padding_idx"] >= 0 else None
        out = F.embedding(ids, w, padding_idx=padding)
        out.backward(common.tensor(tensors["dout"], dtype))
        result = {"out": out, "grad.weight": w.grad}
    elif op == "activation":
        x = leaf("x")
        name = cfg["activation"]
        out = (F.relu(x) if name == "relu" else F.gelu(x) if name == "gelu" else
               F.gelu(x, approximate="tanh") if name == "gelu_tanh" else torch.tanh(x))
        out.backward(common.tensor(tensors["dout"], dtype))
        result = {"out": out, "grad.x": x.grad}
    else:
        logits = leaf("logits")
        targets = torch.from_numpy(tensors["targets"].astype(np.int64))
        kwargs = {"ignore_index": cfg["ignore_index"], "label_smoothing": cfg["label_smoothing"]}
        rows = F.cross_entropy(logits, targets, reduction="none", **kwargs)
        if (targets != cfg["ignore_index"]).any():
            loss = F.cross_entropy(logits, targets, **kwargs)
            (loss * cfg["dloss"]).backward()
            grad = logits.grad
        else:  # attn's rule: nothing counted, loss 0, no gradient
            loss = torch.zeros((), dtype=dtype)
            grad = torch.zeros_like(logits)
        result = {"loss": loss.reshape(1), "row_loss": rows,
                  "probs": torch.softmax(logits.detach(), dim=-1), "grad.logits": grad}
    return {f"{op}.{name}": value.detach().numpy() for name, value in result.items()}


def run_case(case, driver):
    cfg = case.config
    tensors = make_inputs(case)
    case.tags.add(cfg["op"])
    if cfg["op"] == "activation":
        case.tags.add(cfg["activation"])
    if cfg["op"] == "cross_entropy" and cfg["label_smoothing"] > 0:
        case.tags.add("label smoothing")
    if cfg["op"] == "embedding" and cfg["padding_idx"] >= 0:
        case.tags.add("padding_idx")
    want = case.measured_reference(lambda _, t, dtype: reference(cfg, t, dtype), None, tensors)
    case.write_inputs(tensors)
    outputs = case.run_driver(driver, "layers")
    prefix = cfg["op"] + "."
    extra = {prefix + name for name in outputs} - set(want)
    case.require(not extra, f"unexpected outputs: {sorted(extra)}")
    for name, value in want.items():
        got = case.output(outputs, name[len(prefix):])
        if got is not None:
            case.compare(name, got, value)


if __name__ == "__main__":
    sys.exit(common.main("layers", __doc__, make_config, run_case, default_cases=300))
