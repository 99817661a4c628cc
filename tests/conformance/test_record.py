"""Conformance of what a record holds beside the weights (attn/capture.h) with
PyTorch autograd in float64: every map's q and k, its weights, and d log p /
d weights, the gradient of the explained output's log-probability with respect
to the softmax's output, as retain_grad() gives it.

Module "gpt": gpt_model.GPT (every position kind, grouped-query attention,
windows), random weights as test_gpt draws them, a random context; log p is the
log-probability of one token of it given those before (a random step), or the
sum over tokens 1 .. T - 1 (step -1). q and k are after RoPE.

Module "rnn": test_seq2seq's transcription of the RNN decoders (soft attention,
Bahdanau, Luong dot and general; PyTorch initialises it), the weights each step
returns retained; q and k for Luong's, whose score is q . k unscaled: q the top
layer's new state, k the keys. The output explained as for "seq2seq".

Module "seq2seq": the seq2seq transformer of test_transformer (Seq2SeqTransformer,
its weights randomised the same way); attn decodes a random source greedily and
the reference runs the decoded output teacher-forced through a transcription of
nn.Transformer's pre-norm layers written with the module's own parameters (its
loss checked against the module's to 1e-12 in every case), log p one output step
(random) or the sum over the output, EOS included.

Interventions (attn_gpt_intervene, attn_seq2seq_intervene) over the same
tokens: the output distributions of the teacher-forced pass as it is, with the
weights of a random map (a random head, or all) replaced by 1 / (keys the row
sees) after the softmax, or permuted among them (the driver gives the
permutation of each row, which the reference applies), and with a random input
token deleted (a GPT's rows after it move up by one; row 0 without token 0 is
zeros), against the same passes in PyTorch (the reference's attention given a
replace hook).

PyTorch's A.grad on a masked cell (causal, window) is dO V^T like any other;
there the weight is the constant 0, and attn records 0: the reference is masked
the same way. The driver itself holds the outputs (logits, decoded tokens) and
the weights to be the same bits with and without the extras. Tolerances are
common.py's, with its condition measure for ill-conditioned tensors.
"""

import copy
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

import common
import test_gpt
import test_seq2seq
import test_transformer
from gpt_model import GPT

PAD, BOS, EOS, FIRST_CHAR = 0, 1, 2, 3  # attn/data.h


def make_config(case):
    kind = case.rng.random()
    if kind < 0.3:
        test_seq2seq.make_config(case)
        cfg = case.config
        cfg.pop("batch")
        cfg["module"] = "rnn"
        cfg["src_len"] = int(case.rng.integers(1, cfg["src_cap"] + 1))
        cfg["step"] = int(case.rng.integers(0, cfg["tgt_cap"])) if case.rng.random() < 0.6 else -1
    elif kind < 0.65:
        test_gpt.make_config(case)
        cfg = case.config
        for key in ["dropout", "training", "batch", "cache_capacity", "chunks", "n_chunks", "bad"]:
            cfg.pop(key)
        cfg["dropout"] = 0.0
        cfg["T"] = max(cfg["T"], 2)
        cfg["block_size"] = max(cfg["block_size"], cfg["T"])
        cfg["module"] = "gpt"
        cfg["step"] = int(case.rng.integers(1, cfg["T"])) if case.rng.random() < 0.6 else -1
    else:
        test_transformer.make_seq2seq_config(case)
        cfg = case.config
        cfg.pop("label_smoothing")
        cfg.pop("batch")
        cfg["src_len"] = int(case.rng.integers(1, cfg["max_src_len"] + 1))
        cfg["step"] = int(case.rng.integers(0, cfg["max_tgt_len"])) if case.rng.random() < 0.6 \
            else -1
    module = cfg["module"]
    maps = {"rnn": 1, "gpt": cfg.get("n_layer"),
            "seq2seq": cfg.get("enc_layers", 0) + 2 * cfg.get("dec_layers", 0)}[module]
    heads = {"rnn": 1, "gpt": cfg.get("n_head"), "seq2seq": cfg.get("heads")}[module]
    inputs = cfg["T"] if module == "gpt" else cfg["src_len"]
    cfg["edit_map"] = int(case.rng.integers(0, maps))
    cfg["edit_head"] = int(case.rng.integers(-1, heads))
    cfg["erase"] = int(case.rng.integers(0, inputs)) if inputs >= 2 else -1
    cfg["edit_seed"] = int(case.rng.integers(0, 1 << 30))


def uniform(head):
    """The replace hook of a uniform intervention: each row 1 / (keys it sees),
    in head `head` of weights (B, H, Lq, Lk) or every head (-1); weights (B, S)
    of an RNN decoder (one head) with its mask (B, S)."""
    def replace(weights, allowed):
        flat = allowed.to(weights.dtype)
        flat = (flat / flat.sum(-1, keepdim=True)).expand_as(weights)
        if head < 0 or weights.dim() == 2:
            return flat.clone()
        out = weights.clone()
        out[:, head] = flat[:, head]
        return out
    return replace


def permuted(permutation):
    """The replace hook of a permutation: permutation (heads x rows, cols), row h
    rows + i giving the key whose weight goes to each key; weights (B, H, Lq, Lk),
    or an RNN decoder's (B, S), one call per step (row = the call's count)."""
    perm = torch.from_numpy(np.asarray(permutation).astype(np.int64))
    calls = [0]

    def replace(weights, allowed):
        if weights.dim() == 2:
            row = perm[calls[0]]
            calls[0] += 1
            return weights[:, row]
        B, H, Lq, Lk = weights.shape
        index = perm.view(H, Lq, Lk)[None].expand(B, H, Lq, Lk)
        return torch.gather(weights, -1, index)
    return replace


def erased(ids, token):
    return np.concatenate([ids[:token], ids[token + 1:]])


# ---- the GPT ----

def gpt_probs(model, ids):
    """softmax of the logits of rows 0 .. len(ids) - 1, no gradient."""
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(ids.astype(np.int64))[None])
    return torch.softmax(logits[0], dim=-1)


def gpt_interventions(model, ids, cfg, permutation):
    for block in model.transformer.h:  # what the explained pass kept stays
        block.attn.kept = None
    n = len(ids)
    result = {"probs.none": gpt_probs(model, ids)[:n - 1]}
    block = model.transformer.h[cfg["edit_map"]].attn
    block.replace = uniform(cfg["edit_head"])
    result["probs.uniform"] = gpt_probs(model, ids)[:n - 1]
    block.replace = permuted(permutation)
    result["probs.permute"] = gpt_probs(model, ids)[:n - 1]
    block.replace = None
    token = cfg["erase"]
    if token >= 0:
        kept = gpt_probs(model, erased(ids, token))
        rows = [kept[t] if t < token else kept[t - 1] if t >= 1 else torch.zeros_like(kept[0])
                for t in range(n - 1)]
        result["probs.erase"] = torch.stack(rows)
    return result


def run_gpt_reference(model32, ids, step, dtype, cfg, permutation):
    model = copy.deepcopy(model32).to(dtype).eval()
    kept = [{} for _ in model.transformer.h]
    for block, d in zip(model.transformer.h, kept):
        block.attn.kept = d
    x = torch.from_numpy(ids.astype(np.int64))[None]
    logits, _ = model(x)
    for d in kept:
        d["weights"].retain_grad()
    logp = F.log_softmax(logits[0], dim=-1)
    tokens = range(1, len(ids)) if step == -1 else [step]
    sum(logp[t - 1, int(ids[t])] for t in tokens).backward()
    result = gpt_interventions(model, ids, cfg, permutation)
    for i, d in enumerate(kept):
        allowed = d["allowed"].to(dtype)
        result[f"weights.{i}"] = d["weights"].detach()[0]
        result[f"q.{i}"] = d["q"].detach()[0]
        result[f"k.{i}"] = d["k"].detach()[0]
        result[f"gradient.{i}"] = (d["weights"].grad * allowed)[0]
    return result


def run_gpt_case(case, driver):
    cfg, rng = case.config, case.rng
    torch.manual_seed(case.seed % 2**63)
    model32 = GPT(cfg)
    test_gpt.randomize(model32, rng)
    state32 = {k: v.detach().numpy().copy() for k, v in model32.state_dict().items()}
    case.write_weights(state32)
    ids = rng.integers(0, cfg["vocab_size"], size=cfg["T"]).astype(np.int32)
    step = cfg["step"]
    case.tags.add("gpt " + cfg["position"])
    case.write_inputs({"ids": ids})
    outputs = case.run_driver(driver, "record")
    permutation = case.output(outputs, "permutation")
    reference = case.measured_reference(
        lambda m, _, dtype: run_gpt_reference(m, ids, step, dtype, cfg, permutation), model32, {})
    case.compare_outputs({k: v for k, v in outputs.items() if k != "permutation"}, reference)


# ---- the seq2seq transformer ----

def attention(mha, x, kv, mask, kept, edit=None):
    """nn.MultiheadAttention (batch_first, B = 1) written out, keeping q, k and
    the weights (their gradient retained) in kept; mask: (Lq, Lk) bool, True
    where the key is seen; edit: (map, replace), replace(weights, mask) the
    weights of the map-th attention (in kept's order) multiply the values."""
    L, Lk, E = x.shape[1], kv.shape[1], x.shape[2]
    H = mha.num_heads
    hd = E // H
    wq, wk, wv = mha.in_proj_weight.chunk(3)
    bq, bk, bv = mha.in_proj_bias.chunk(3)
    q = F.linear(x, wq, bq).view(1, L, H, hd).transpose(1, 2)
    k = F.linear(kv, wk, bk).view(1, Lk, H, hd).transpose(1, 2)
    v = F.linear(kv, wv, bv).view(1, Lk, H, hd).transpose(1, 2)
    scores = (q @ k.transpose(-1, -2) / math.sqrt(hd)).masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if weights.requires_grad:
        weights.retain_grad()
    kept.append({"q": q, "k": k, "weights": weights, "allowed": mask})
    if edit is not None and edit[0] == len(kept) - 1:
        weights = edit[1](weights, mask)
    out = (weights @ v).transpose(1, 2).reshape(1, L, E)
    return F.linear(out, mha.out_proj.weight, mha.out_proj.bias)


def feed_forward(layer, x):
    return layer.linear2(F.relu(layer.linear1(x)))


def transcription(module, src, tgt_in, kept, edit=None):
    """The logits (T, V) of Seq2SeqTransformer over one source and a target,
    every attention through attention() in the record's map order (edit as
    attention() takes it)."""
    S, T = len(src), len(tgt_in)
    scale = math.sqrt(module.pe.shape[1])
    x = module.src_embed(src)[None] * scale + module.pe[:S]
    y = module.tgt_embed(tgt_in)[None] * scale + module.pe[:T]
    everything = torch.ones(S, S, dtype=torch.bool)
    for layer in module.transformer.encoder.layers:
        u = layer.norm1(x)
        x = x + attention(layer.self_attn, u, u, everything, kept, edit)
        x = x + feed_forward(layer, layer.norm2(x))
    memory = module.transformer.encoder.norm(x)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for layer in module.transformer.decoder.layers:
        u = layer.norm1(y)
        y = y + attention(layer.self_attn, u, u, causal, kept, edit)
        y = y + attention(layer.multihead_attn, layer.norm2(y), memory,
                          torch.ones(T, S, dtype=torch.bool), kept, edit)
        y = y + feed_forward(layer, layer.norm3(y))
    return module.generator(module.transformer.decoder.norm(y))[0]


def seq2seq_interventions(module, src, out, cfg, permutation):
    targets = torch.from_numpy(out.astype(np.int64))
    tgt_in = torch.cat([torch.tensor([BOS]), targets[:-1]])

    def probs(source, edit=None):
        with torch.no_grad():
            logits = transcription(module, torch.from_numpy(source.astype(np.int64)), tgt_in,
                                   [], edit)
        return torch.softmax(logits, dim=-1)

    result = {"probs.none": probs(src),
              "probs.uniform": probs(src, (cfg["edit_map"], uniform(cfg["edit_head"]))),
              "probs.permute": probs(src, (cfg["edit_map"], permuted(permutation)))}
    if cfg["erase"] >= 0:
        result["probs.erase"] = probs(erased(src, cfg["erase"]))
    return result


def run_seq2seq_reference(module32, src, out, step, dtype, cfg, permutation):
    module = copy.deepcopy(module32).to(dtype)
    src_t = torch.from_numpy(src.astype(np.int64))
    targets = torch.from_numpy(out.astype(np.int64))
    tgt_in = torch.cat([torch.tensor([BOS]), targets[:-1]])
    kept = []
    logits = transcription(module, src_t, tgt_in, kept)
    if dtype == torch.float64:  # the transcription is the module
        want = module(src_t[None], torch.tensor([len(src)]), tgt_in[None], targets[None],
                      torch.tensor([len(out)]))
        got = F.cross_entropy(logits, targets)
        assert abs(float(got - want)) <= 1e-12 * max(1.0, abs(float(want))), (got, want)
    logp = F.log_softmax(logits, dim=-1)
    rows = range(len(out)) if step == -1 else [step]
    sum(logp[t, targets[t]] for t in rows).backward()
    result = seq2seq_interventions(module, src, out, cfg, permutation)
    for i, d in enumerate(kept):
        result[f"weights.{i}"] = d["weights"].detach()[0]
        result[f"q.{i}"] = d["q"].detach()[0]
        result[f"k.{i}"] = d["k"].detach()[0]
        result[f"gradient.{i}"] = (d["weights"].grad * d["allowed"].to(dtype))[0]
    return result


def run_seq2seq_case(case, driver):
    cfg, rng = case.config, case.rng
    cfg["src_cap"], cfg["tgt_cap"] = cfg["max_src_len"], cfg["max_tgt_len"]
    torch.manual_seed(case.seed % 2**63)
    module32 = test_transformer.Seq2SeqTransformer(dict(cfg, label_smoothing=0.0))
    test_transformer.randomize_seq2seq(module32)
    case.write_weights({k: v.detach().numpy().copy() for k, v in module32.state_dict().items()})
    src = rng.integers(FIRST_CHAR, cfg["src_vocab"], size=cfg["src_len"]).astype(np.int32)
    case.write_inputs({"src": src})
    outputs = case.run_driver(driver, "record")
    out = np.asarray(case.output(outputs, "out"), np.int64)
    step = int(case.output(outputs, "step")[0])
    case.require(step == cfg["step"] or (cfg["step"] >= len(out) and step == len(out) - 1),
                 f"the driver explained step {step}, not {cfg['step']} of {len(out)}")
    case.tags.add("seq2seq")
    permutation = case.output(outputs, "permutation")
    reference = case.measured_reference(
        lambda m, _, dtype: run_seq2seq_reference(m, src, out, step, dtype, cfg, permutation),
        module32, {})
    case.compare_outputs({k: v for k, v in outputs.items()
                          if k not in ("out", "step", "permutation")}, reference)


# ---- the RNN decoders ----

def rnn_probs(model, src, out, replace=None):
    """The teacher-forced output distributions (T, V), attention given replace."""
    targets = torch.from_numpy(out.astype(np.int64))
    tgt_in = torch.cat([torch.tensor([BOS]), targets[:-1]])
    with torch.no_grad():
        st = model.start(torch.from_numpy(src.astype(np.int64))[None], torch.tensor([len(src)]))
        if replace is not None:
            st["replace"] = replace
        logits = [model.step(st, tgt_in[t:t + 1])[0][0] for t in range(len(out))]
    return torch.softmax(torch.stack(logits), dim=-1)


def rnn_interventions(model, src, out, cfg, permutation):
    result = {"probs.none": rnn_probs(model, src, out),
              "probs.uniform": rnn_probs(model, src, out, uniform(cfg["edit_head"])),
              "probs.permute": rnn_probs(model, src, out, permuted(permutation))}
    if cfg["erase"] >= 0:
        result["probs.erase"] = rnn_probs(model, erased(src, cfg["erase"]), out)
    return result


def run_rnn_reference(model32, src, out, step, dtype, cfg, permutation):
    model = copy.deepcopy(model32).to(dtype)
    targets = torch.from_numpy(out.astype(np.int64))
    tgt_in = torch.cat([torch.tensor([BOS]), targets[:-1]])
    st = model.start(torch.from_numpy(src.astype(np.int64))[None], torch.tensor([len(src)]))
    logits, weights = [], []
    for t in range(len(out)):
        logit, w = model.step(st, tgt_in[t:t + 1])
        w.retain_grad()
        state = st["state"]
        top = (state[0] if isinstance(state, tuple) else state)[-1]  # Luong's query
        weights.append((w, top))
        logits.append(logit[0])
    logp = F.log_softmax(torch.stack(logits), dim=-1)
    rows = range(len(out)) if step == -1 else [step]
    sum(logp[t, targets[t]] for t in rows).backward()
    result = rnn_interventions(model, src, out, cfg, permutation)
    result["weights.0"] = torch.stack([w.detach()[0] for w, _ in weights])[None]
    result["gradient.0"] = torch.stack([w.grad[0] for w, _ in weights])[None]
    if model.luong:
        result["q.0"] = torch.stack([h.detach()[0] for _, h in weights])[None]
        result["k.0"] = st["keys"].detach()
    return result


def run_rnn_case(case, driver):
    cfg = case.config
    torch.manual_seed(case.seed % 2**63)
    model32 = test_seq2seq.Seq2Seq(cfg)
    case.write_weights({k: v.detach().numpy().copy() for k, v in model32.state_dict().items()})
    src = case.rng.integers(FIRST_CHAR, cfg["src_vocab"], size=cfg["src_len"]).astype(np.int32)
    case.write_inputs({"src": src})
    outputs = case.run_driver(driver, "record")
    out = np.asarray(case.output(outputs, "out"), np.int64)
    step = int(case.output(outputs, "step")[0])
    case.tags.add(cfg["arch"])
    permutation = case.output(outputs, "permutation")
    reference = case.measured_reference(
        lambda m, _, dtype: run_rnn_reference(m, src, out, step, dtype, cfg, permutation),
        model32, {})
    case.compare_outputs({k: v for k, v in outputs.items()
                          if k not in ("out", "step", "permutation")}, reference)


def run_case(case, driver):
    run = {"gpt": run_gpt_case, "seq2seq": run_seq2seq_case, "rnn": run_rnn_case}
    run[case.config["module"]](case, driver)


if __name__ == "__main__":
    sys.exit(common.main("record", __doc__, make_config, run_case, default_cases=60))
