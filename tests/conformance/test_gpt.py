"""Conformance of attn's decoder-only language model (attn/gpt.h) with its PyTorch
transcription gpt_model.GPT in float64.

Each case draws a model: every position kind (learned, sinusoidal, RoPE, ALiBi),
1, 2, 3, 4 or 6 heads (ALiBi's slopes differ for a count that is no power of two)
with as many key/value heads (n_kv_head 0 or n_head), one or a proper divisor of
n_head (grouped-query attention), a sliding window or none, biases and tied
weights on or off, 1 to 3 layers, widths 12 to 32, vocabularies of 5 to 40 and
contexts up to the block size. The transcription's own initialisation is
replaced by larger weights, random biases and LayerNorm weights, so that the
attention is far from uniform and every parameter matters. attn_conform loads the
state_dict (attn_params_load, strict) and runs a training forward and backward
on random ids and targets, through the fused attention kernel and through
attn_sdpa_reference_*; the dropout is 0, or the pass is not training (then a
dropout in the config must change nothing). It also feeds batch row 0 to a
key-value cache in chunks (a prompt then one token at a time, or random sizes).

Compared with float64 PyTorch: the loss, the logits and every parameter's
gradient of both passes, the cached logits (the reference's row 0), and the two
float32 paths of attn with each other (fused against reference, cached against
uncached). The state_dict attn saves must load back into the transcription with
strict=True.

Now and then a case also runs a bad variant, which attn_conform must refuse
(exit status 1, not a signal) with a message naming the problem: a weights file
with a key missing or mis-shaped, an id outside the vocabulary, or a context
longer than the block size.
"""

import copy
import json
import os
import subprocess
import sys

import numpy as np
import torch

import common
import st
from gpt_model import GPT

POSITIONS = ["learned", "sinusoidal", "rope", "alibi"]
WIDTHS = [12, 16, 24, 32]
BAD_KINDS = ["missing key", "wrong shape", "bad id", "long context"]


def make_config(case):
    rng = case.rng
    H = int(rng.choice([1, 2, 3, 4, 6], p=[0.15, 0.25, 0.15, 0.25, 0.2]))
    C = int(rng.choice([c for c in WIDTHS if c % H == 0 and (c // H) % 2 == 0]))
    # Full, multi-query and grouped-query attention equally often where H allows.
    kv_kinds = [[0, H]] + ([[1]] if H > 1 else [])
    kv_kinds += [[d for d in range(2, H) if H % d == 0]] if H in (4, 6) else []
    kv_heads = kv_kinds[int(rng.integers(len(kv_kinds)))]
    T = int(rng.integers(1, 13))
    dropout = float(rng.choice([0.0, 0.1]))
    cfg = {
        "vocab_size": int(rng.integers(5, 41)),
        "block_size": T + int(rng.integers(0, 5)),
        "n_layer": int(rng.integers(1, 4)),
        "n_head": H,
        "n_kv_head": int(rng.choice(kv_heads)),
        "n_embd": C,
        "position": str(rng.choice(POSITIONS)),
        "rope_theta": float(rng.choice([10000.0, 100.0])),
        "window": int(rng.integers(1, T)) if T > 1 and rng.random() < 0.4 else 0,
        "bias": bool(rng.random() < 0.5),
        "tie_weights": bool(rng.random() < 0.5),
        "dropout": dropout,
        "training": bool(dropout == 0.0 and rng.random() < 0.7),
        "batch": int(rng.integers(1, 4)),
        "T": T,
    }
    cfg["cache_capacity"] = T if rng.random() < 0.5 else int(rng.integers(T, cfg["block_size"] + 1))
    if rng.random() < 0.5:
        prompt = int(rng.integers(1, T + 1))
        chunks = [prompt] + [1] * (T - prompt)
    else:
        cuts = sorted(rng.choice(np.arange(1, T), size=int(rng.integers(0, T)), replace=False)) \
            if T > 1 else []
        chunks = list(np.diff([0] + [int(c) for c in cuts] + [T]))
    cfg["chunks"] = [int(c) for c in chunks]
    cfg["n_chunks"] = len(chunks)
    cfg["bad"] = str(rng.choice(BAD_KINDS)) if rng.random() < 0.25 else "none"
    case.config = cfg


def randomize(model, rng):
    """Weights that make the attention far from uniform; biases and LayerNorm
    weights away from PyTorch's 0 and 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                value = rng.uniform(-0.5, 0.5, p.shape)
            elif ".ln_" in name:
                value = rng.uniform(0.5, 1.5, p.shape)
            elif name == "transformer.wte.weight":  # the head too when tied: logits ~ sqrt(C) / 2
                value = rng.standard_normal(p.shape) * 0.5
            elif name == "transformer.wpe.weight":
                value = rng.standard_normal(p.shape) * 0.25
            else:
                value = rng.standard_normal(p.shape) / np.sqrt(p.shape[1])
            p.copy_(torch.from_numpy(value.astype(np.float32)))


def run_reference(model32, tensors, dtype):
    """The loss, logits, row 0's logits (what the cache must give) and every
    parameter's gradient of a dtype copy of model32 in eval mode."""
    model = copy.deepcopy(model32).to(dtype).eval()
    ids = torch.from_numpy(tensors["ids"].astype(np.int64))
    targets = torch.from_numpy(tensors["targets"].astype(np.int64))
    logits, loss = model(ids, targets)
    loss.backward()
    result = {"loss": loss.detach().reshape(1), "logits": logits.detach(),
              "cached.logits": logits.detach()[0]}
    for name, p in model.named_parameters():
        result["grad." + name] = p.grad.clone()
    return result


def share_condition(case, name, base):
    """name is held to base's condition bound, if base has one."""
    if base in case.condition:
        case.condition[name] = case.condition[base]
        case.tolerance[name] = case.tolerance[base]


def unpack(flat, shapes):
    """reference.grad: the gradients packed in the sorted order of their keys."""
    out, at = {}, 0
    for name in sorted(shapes):
        n = int(np.prod(shapes[name], dtype=np.int64))
        out[name] = flat[at:at + n].reshape(shapes[name])
        at += n
    return out


def run_case(case, driver):
    cfg, rng = case.config, case.rng
    B, T, V = cfg["batch"], cfg["T"], cfg["vocab_size"]
    model32 = GPT(cfg)
    randomize(model32, rng)
    state32 = {k: v.detach().numpy().copy() for k, v in model32.state_dict().items()}
    case.write_weights(state32)
    tensors = {"ids": rng.integers(0, V, size=(B, T)).astype(np.int32),
               "targets": rng.integers(0, V, size=(B, T)).astype(np.int32),
               "chunks": np.array(cfg["chunks"], np.int32)}

    case.tags.add("positions " + cfg["position"])
    H, Hkv = cfg["n_head"], cfg["n_kv_head"] or cfg["n_head"]
    for flag, tag in [(Hkv == 1 and H > 1, "multi-query"), (1 < Hkv < H, "grouped-query"),
                      (cfg["window"] > 0, "window"), (cfg["tie_weights"], "tied"),
                      (not cfg["bias"], "no bias"), (not cfg["training"], "eval pass"),
                      (cfg["dropout"] > 0, "dropout off in eval"),
                      (cfg["cache_capacity"] == T, "full cache")]:
        if flag:
            case.tags.add(tag)

    reference = case.measured_reference(run_reference, model32, tensors)
    for name in list(reference):
        share_condition(case, "reference." + name, name)
        share_condition(case, "fused_vs_reference." + name, name)
    share_condition(case, "cached_vs_uncached.logits", "cached.logits")

    case.write_inputs(tensors)
    outputs = case.run_driver(driver, "gpt")
    grad_names = [n for n in reference if n.startswith("grad.")]
    expected = ["loss", "logits", "reference.loss", "reference.logits", "reference.grad",
                "cached.logits"] + grad_names
    got = {name: case.output(outputs, name) for name in expected}
    extra = set(outputs) - set(expected)
    case.require(not extra, f"unexpected outputs: {sorted(extra)}")
    if any(v is None for v in got.values()):
        return

    shapes = {n: tuple(reference[n].shape) for n in grad_names}
    count = sum(int(np.prod(shape, dtype=np.int64)) for shape in shapes.values())
    if got["reference.grad"].shape != (count,):
        case.problems.append(f"reference.grad has shape {got['reference.grad'].shape}, "
                             f"not ({count},)")
        return
    ref_grads = unpack(got["reference.grad"], shapes)
    ref_paths = {"loss": got["reference.loss"], "logits": got["reference.logits"], **ref_grads}
    for name, want in reference.items():
        case.compare(name, got[name], want)
        if name in ref_paths:
            case.compare("reference." + name, ref_paths[name], want)
            case.compare("fused_vs_reference." + name, got[name], ref_paths[name])
    case.compare("cached_vs_uncached.logits", got["cached.logits"], got["logits"][0])
    case.check_saved_state(lambda: GPT(cfg), state32)

    if cfg["bad"] != "none":
        run_bad_variant(case, driver, state32, tensors)


def run_bad_variant(case, driver, state32, tensors):
    """attn_conform on a broken copy of the case must exit with status 1 and a
    message holding each of the words given."""
    cfg, rng = dict(case.config), case.rng
    weights, inputs = dict(state32), dict(tensors)
    B, T, V = cfg["batch"], cfg["T"], cfg["vocab_size"]
    kind = cfg["bad"]
    key = str(rng.choice(sorted(state32)))
    if kind == "missing key":
        del weights[key]
        words = [key]
    elif kind == "wrong shape":
        shape = list(weights[key].shape)
        shape[-1] += 1
        weights[key] = np.zeros(shape, np.float32)
        words = [key, "shape"]
    elif kind == "bad id":
        bad = int(rng.choice([V, V + 7, -1]))
        ids = inputs["ids"].copy()
        ids[int(rng.integers(B)), int(rng.integers(T))] = bad
        inputs["ids"] = ids
        words = [str(bad)]
    else:
        T = cfg["T"] = cfg["block_size"] + 1
        cfg["chunks"], cfg["n_chunks"] = [T], 1
        inputs = {"ids": rng.integers(0, V, size=(B, T)).astype(np.int32),
                  "targets": rng.integers(0, V, size=(B, T)).astype(np.int32),
                  "chunks": np.array([T], np.int32)}
        words = [str(T), str(cfg["block_size"])]
    directory = os.path.join(case.dir, "bad")
    os.mkdir(directory)
    st.save(os.path.join(directory, "weights.safetensors"), weights)
    st.save(os.path.join(directory, "inputs.safetensors"), inputs,
            {k: json.dumps(v) for k, v in cfg.items()})
    proc = subprocess.run([driver, "gpt", directory], capture_output=True, text=True,
                          timeout=120)
    message = proc.stderr.strip()
    case.tags.add("bad input: " + kind)
    case.require(proc.returncode == 1,
                 f"bad input ({kind}): attn_conform exited with {proc.returncode}, not 1: "
                 f"{message}")
    missing = [w for w in words if w.lower() not in message.lower()]
    case.require(not missing, f"bad input ({kind}): the message lacks {missing}: {message}")


if __name__ == "__main__":
    sys.exit(common.main("gpt", __doc__, make_config, run_case, default_cases=80))
