"""Conformance of attn_mha_* with torch.nn.MultiheadAttention (PyTorch 1.13).

The module is made by PyTorch in float32 (random biases), its state_dict written
as weights.safetensors and loaded by attn_conform with attn_params_load; the
reference is a float64 copy of the module, with float64 inputs holding the same
values. Compared: out, the attention weights (averaged over heads or not), the
gradients of query, key and value (separate tensors; in self-attention cases one
tensor, whose gradient equals the sum of attn's three, or attn's one when the
driver passes the same gradient buffer three times) and of every parameter.

Cases: random embed_dim and num_heads (head dims 1-96), kdim/vdim equal to
embed_dim or not, bias on/off, batch_first both ways, key_padding_mask bool or
float, attn_mask bool or float, 2-D or 3-D, is_causal (given to torch as an
explicit mask: 1.13 has no is_causal), need_weights with average_attn_weights
both ways.

torch gives NaN for a fully masked row, where attn gives zeros, and 1.13 cannot
combine a float key_padding_mask with an attn_mask (an error, or for a bool
attn_mask a logical_or that treats the float mask as bool), where attn adds them
as later PyTorch does. Those cases are compared with a float64 transcription of
the module's forward (F.linear, softmax with the zero-row rule); on every other
case the transcription is checked against nn.MultiheadAttention itself, so it is
verified in the same run.
"""

import copy
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

import common

TRANSCRIPTION_TOLERANCE = 1e-10  # float64 against float64


def random_dim(rng, low, high):
    return int(rng.integers(low, high + 1))


def make_config(case):
    rng = case.rng
    H = random_dim(rng, 1, 8)
    band = rng.integers(3)
    head_dim = (random_dim(rng, 1, 8) if band == 0 else
                random_dim(rng, 9, 32) if band == 1 else random_dim(rng, 33, 96))
    head_dim = max(1, min(head_dim, 256 // H))  # embed_dim at most 256
    E = H * head_dim
    self_attention = bool(rng.random() < 0.2)
    B = random_dim(rng, 1, 4)
    Lq = random_dim(rng, 1, 21)
    Lk = Lq if self_attention or rng.random() < 0.2 else random_dim(rng, 1, 21)

    def other_dim():
        if self_attention or rng.random() < 0.5:
            return E if rng.random() < 0.5 else 0  # 0 means embed_dim
        return random_dim(rng, 1, 64)

    kdim, vdim = other_dim(), other_dim()
    attn_mask = str(rng.choice(["none", "bool", "float"], p=[0.35, 0.35, 0.3]))
    case.config = {
        "embed_dim": E, "num_heads": H, "kdim": kdim, "vdim": vdim,
        "bias": bool(rng.random() < 0.7), "batch_first": bool(rng.random() < 0.5),
        "batch": B, "len_q": Lq, "len_k": Lk,
        "self_attention": self_attention,
        "alias_grads": bool(self_attention and rng.random() < 0.5),
        "key_padding_mask": str(rng.choice(["none", "bool", "float"], p=[0.4, 0.35, 0.25])),
        "attn_mask": attn_mask,
        "attn_mask_ndim": int(rng.integers(2, 4)) if attn_mask != "none" else 0,
        "is_causal": bool(rng.random() < 0.25),
        "training": False,
        "need_weights": bool(rng.random() < 0.7),
        "average_attn_weights": bool(rng.random() < 0.5),
        "mask_density": float(rng.choice([0.1, 0.3, 0.6])),
    }


def make_module(cfg):
    return torch.nn.MultiheadAttention(
        cfg["embed_dim"], cfg["num_heads"], dropout=0.0, bias=cfg["bias"],
        kdim=cfg["kdim"] or None, vdim=cfg["vdim"] or None, batch_first=cfg["batch_first"])


def random_mask(rng, kind, shape, density):
    """A bool (True = excluded) or float (-inf = excluded) mask; in a fifth of
    the masks one whole row (the last axis) is excluded."""
    excluded = rng.random(shape) < density
    if rng.random() < 0.2:
        row = tuple(int(rng.integers(n)) for n in shape[:-1])
        excluded[row] = True
    if kind == "bool":
        return excluded
    values = rng.standard_normal(shape).astype(np.float32)
    values[excluded] = -np.inf
    return values


def as_torch_mask(kind, data, dtype=torch.float64):
    return torch.from_numpy(data) if kind == "bool" else common.tensor(data, dtype)


def additive(mask, dtype=torch.float64):
    """A bool mask as 0 / -inf, a float one as it is."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def transcription(module, query, key, value, key_padding_mask, attn_mask, is_causal,
                  need_weights, average_attn_weights):
    """nn.MultiheadAttention's forward written out with F.linear and a softmax
    that gives a fully masked row zeros; bool masks exclude, float masks add."""
    if not module.batch_first:
        query, key, value = (x.transpose(0, 1) for x in (query, key, value))
    B, Lq, E = query.shape
    Lk = key.shape[1]
    H = module.num_heads
    hd = E // H
    if module._qkv_same_embed_dim:
        wq, wk, wv = module.in_proj_weight.chunk(3)
    else:
        wq, wk, wv = module.q_proj_weight, module.k_proj_weight, module.v_proj_weight
    bq = bk = bv = None
    if module.in_proj_bias is not None:
        bq, bk, bv = module.in_proj_bias.chunk(3)
    q = F.linear(query, wq, bq).view(B, Lq, H, hd).transpose(1, 2)
    k = F.linear(key, wk, bk).view(B, Lk, H, hd).transpose(1, 2)
    v = F.linear(value, wv, bv).view(B, Lk, H, hd).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if attn_mask is not None:
        shape = (1, 1, Lq, Lk) if attn_mask.dim() == 2 else (B, H, Lq, Lk)
        scores = scores + additive(attn_mask, scores.dtype).view(shape)
    if key_padding_mask is not None:
        scores = scores + additive(key_padding_mask, scores.dtype).view(B, 1, 1, Lk)
    if is_causal:
        above = torch.ones(Lq, Lk, dtype=torch.bool).triu(diagonal=1)
        scores = scores.masked_fill(above, float("-inf"))
    weights = common.masked_softmax(scores)
    out = (weights @ v).transpose(1, 2).reshape(B, Lq, E)
    out = F.linear(out, module.out_proj.weight, module.out_proj.bias)
    if not module.batch_first:
        out = out.transpose(0, 1)
    if not need_weights:
        return out, None
    return out, weights.mean(dim=1) if average_attn_weights else weights


def torch_forward(module, query, key, value, key_padding_mask, attn_mask, is_causal,
                  need_weights, average_attn_weights):
    """nn.MultiheadAttention itself, is_causal given as an explicit mask."""
    if is_causal:
        Lq, Lk = sequence_lengths(module, query, key)
        above = torch.ones(Lq, Lk, dtype=torch.bool).triu(diagonal=1)
        if attn_mask is None:
            attn_mask = above
        elif attn_mask.dtype == torch.bool:
            attn_mask = attn_mask | above
        else:
            attn_mask = attn_mask.masked_fill(above, float("-inf"))
    return module(query, key, value, key_padding_mask=key_padding_mask,
                  need_weights=need_weights, attn_mask=attn_mask,
                  average_attn_weights=average_attn_weights)


def sequence_lengths(module, query, key):
    axis = 1 if module.batch_first else 0
    return query.shape[axis], key.shape[axis]


def run_reference(forward, module32, cfg, tensors, dtype):
    """Runs forward and backward on a copy of the module in dtype (float64 or
    float32); returns the tensors to compare."""
    module = copy.deepcopy(module32).to(dtype)
    q = common.tensor(tensors["query"], dtype, True)
    if cfg["self_attention"]:
        k = v = q
    else:
        k, v = (common.tensor(tensors[n], dtype, True) for n in ["key", "value"])
    masks = {name: as_torch_mask(cfg[name], tensors[name], dtype) if name in tensors else None
             for name in ["key_padding_mask", "attn_mask"]}
    out, weights = forward(module, q, k, v, masks["key_padding_mask"], masks["attn_mask"],
                           cfg["is_causal"], cfg["need_weights"],
                           cfg["average_attn_weights"])
    out.backward(common.tensor(tensors["dout"], dtype))
    result = {"out": out.detach()}
    if cfg["need_weights"]:
        result["weights"] = weights.detach()
    if cfg["self_attention"]:
        result["grad.self"] = q.grad
    else:
        result.update({"grad.query": q.grad, "grad.key": k.grad, "grad.value": v.grad})
    for name, p in module.named_parameters():
        result["grad." + name] = p.grad.clone()
    return result


def run_case(case, driver):
    cfg, rng = case.config, case.rng
    E, H, B, Lq, Lk = (cfg[n] for n in ["embed_dim", "num_heads", "batch", "len_q", "len_k"])
    kdim, vdim = cfg["kdim"] or E, cfg["vdim"] or E

    torch.manual_seed(case.seed)
    module32 = make_module(cfg)
    with torch.no_grad():
        for name, p in module32.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.5, 0.5)  # PyTorch starts them at 0
    state32 = {k: v.detach().numpy().copy() for k, v in module32.state_dict().items()}
    case.write_weights(state32)

    def shaped(L, dim):
        return (B, L, dim) if cfg["batch_first"] else (L, B, dim)

    tensors = {"query": common.normal32(rng, shaped(Lq, E))}
    if not cfg["self_attention"]:
        tensors["key"] = common.normal32(rng, shaped(Lk, kdim))
        tensors["value"] = common.normal32(rng, shaped(Lk, vdim))
    tensors["dout"] = common.normal32(rng, shaped(Lq, E))

    combined = torch.zeros(B, H, Lq, Lk, dtype=torch.float64)
    if cfg["key_padding_mask"] != "none":
        data = random_mask(rng, cfg["key_padding_mask"], (B, Lk), cfg["mask_density"] / 2)
        tensors["key_padding_mask"] = data
        mask = as_torch_mask(cfg["key_padding_mask"], data)
        combined = combined + additive(mask).view(B, 1, 1, Lk)
    if cfg["attn_mask"] != "none":
        shape = (Lq, Lk) if cfg["attn_mask_ndim"] == 2 else (B * H, Lq, Lk)
        data = random_mask(rng, cfg["attn_mask"], shape, cfg["mask_density"])
        tensors["attn_mask"] = data
        mask = as_torch_mask(cfg["attn_mask"], data)
        view = (1, 1, Lq, Lk) if cfg["attn_mask_ndim"] == 2 else (B, H, Lq, Lk)
        combined = combined + additive(mask).view(view)
    if cfg["is_causal"]:
        combined = combined.masked_fill(torch.ones(Lq, Lk, dtype=torch.bool).triu(1),
                                        float("-inf"))
    fully_masked = bool(torch.isneginf(combined).all(dim=-1).any())
    float_padding_with_mask = cfg["key_padding_mask"] == "float" and (
        cfg["attn_mask"] != "none" or cfg["is_causal"])
    use_torch = not fully_masked and not float_padding_with_mask
    cfg["reference"] = "nn.MultiheadAttention" if use_torch else "transcription"
    cfg["fully_masked_rows"] = fully_masked

    case.tags.add("reference " + cfg["reference"])
    if fully_masked:
        case.tags.add("fully masked rows")
    if float_padding_with_mask:
        case.tags.add("float key_padding_mask + attn_mask")
    if cfg["self_attention"]:
        case.tags.add("self-attention" + (" (one gradient buffer)" if cfg["alias_grads"] else ""))
    if kdim != E or vdim != E:
        case.tags.add("kdim/vdim != embed_dim")
    if cfg["is_causal"]:
        case.tags.add("is_causal")

    forward = torch_forward if use_torch else transcription
    reference = case.measured_reference(
        lambda m, t, dtype: run_reference(forward, m, cfg, t, dtype), module32, tensors)
    if use_torch:
        written = run_reference(transcription, module32, cfg, tensors, torch.float64)
        for name, want in reference.items():
            case.compare("transcription." + name, written[name].numpy(), want,
                         TRANSCRIPTION_TOLERANCE)

    case.write_inputs(tensors)
    outputs = case.run_driver(driver, "mha")

    got = {}
    for name in ["out", "grad.query"] + (["weights"] if cfg["need_weights"] else []):
        got[name] = case.output(outputs, name)
    if cfg["self_attention"]:
        if cfg["alias_grads"]:
            got["grad.self"] = got.pop("grad.query")
        else:
            parts = [case.output(outputs, n) for n in ["grad.query", "grad.key", "grad.value"]]
            got.pop("grad.query")
            if all(p is not None for p in parts):
                got["grad.self"] = parts[0].astype(np.float64) + parts[1] + parts[2]
    else:
        got["grad.key"] = case.output(outputs, "grad.key")
        got["grad.value"] = case.output(outputs, "grad.value")
    for name, _ in module32.named_parameters():
        got["grad." + name] = case.output(outputs, "grad." + name)
    extra = set(outputs) - set(got) - {"grad.query", "grad.key", "grad.value"}
    case.require(not extra, f"unexpected outputs: {sorted(extra)}")
    for name, want in reference.items():
        if got.get(name) is not None:
            case.compare(name, got[name], want)

    case.check_saved_state(lambda: make_module(cfg), state32)


if __name__ == "__main__":
    sys.exit(common.main("mha", __doc__, make_config, run_case, default_cases=150))
