"""Conformance of attn_rnn_* with torch.nn.RNN, LSTM and GRU (PyTorch 1.13).

The module is made by PyTorch in float32 with its own initialisation, its
state_dict written as weights.safetensors and loaded by attn_conform with
attn_params_load (strict); the reference is a float64 copy of the module with
float64 inputs holding the same values. The loss is sum(y dy) + sum(h_n dh_n)
(+ sum(c_n dc_n) for LSTM) with random upstream gradients. Compared: y, h_n,
c_n, and the gradients of x, h0, c0 and of every parameter.

Cases: mode RNN_TANH, RNN_RELU, LSTM or GRU; 1-3 layers; bidirectional or not;
bias on/off; batch_first both ways; with or without h0 (and c0); with or
without lengths, which go through pack_padded_sequence(enforce_sorted=False)
and pad_packed_sequence(total_length=T) in torch (the longest row may be
shorter than T); T 1-12, B 1-5, input and hidden sizes 1-40. Dropout is 0:
PyTorch's masks come from its own generator, so attn's dropout is tested by the
unit tests instead.

Every tensor is held to common.TOLERANCE, multi-layer stacks included; a tensor
that is ill-conditioned in float32 (measured per case, see common.py) is held to
its measured condition instead.
"""

import copy
import sys

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import common

MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]


def random_size(rng):
    """1-40, small sizes more often (they are the edge cases)."""
    return int(rng.choice([rng.integers(1, 5), rng.integers(1, 41)]))


def make_config(case):
    rng = case.rng
    mode = str(rng.choice(MODES))
    has_h0 = bool(rng.random() < 0.6)
    case.config = {
        "mode": mode,
        "input_size": random_size(rng),
        "hidden_size": random_size(rng),
        "num_layers": int(rng.integers(1, 4)),
        "bias": bool(rng.random() < 0.8),
        "batch_first": bool(rng.random() < 0.5),
        "bidirectional": bool(rng.random() < 0.5),
        "batch": int(rng.integers(1, 6)),
        "seq_len": int(rng.integers(1, 13)),
        "has_h0": has_h0,
        "has_c0": bool(mode == "LSTM" and has_h0 and rng.random() < 0.8),
        "has_lengths": bool(rng.random() < 0.5),
    }


def make_module(cfg):
    args = dict(input_size=cfg["input_size"], hidden_size=cfg["hidden_size"],
                num_layers=cfg["num_layers"], bias=cfg["bias"], batch_first=cfg["batch_first"],
                dropout=0.0, bidirectional=cfg["bidirectional"])
    if cfg["mode"] == "LSTM":
        return torch.nn.LSTM(**args)
    if cfg["mode"] == "GRU":
        return torch.nn.GRU(**args)
    nonlinearity = "tanh" if cfg["mode"] == "RNN_TANH" else "relu"
    return torch.nn.RNN(nonlinearity=nonlinearity, **args)


def run_reference(module32, cfg, tensors, dtype):
    """Forward and backward of a copy of the module in dtype (float64 or
    float32); returns the tensors to compare."""
    module = copy.deepcopy(module32).to(dtype)
    lstm = cfg["mode"] == "LSTM"
    x = common.tensor(tensors["x"], dtype, True)
    H = cfg["hidden_size"]
    state_shape = (cfg["num_layers"] * (2 if cfg["bidirectional"] else 1), cfg["batch"], H)
    h0 = common.tensor(tensors["h0"], dtype, True) if cfg["has_h0"] else None
    c0 = common.tensor(tensors["c0"], dtype, True) if cfg["has_c0"] else None
    if lstm and (h0 is not None or c0 is not None):
        # torch takes both or neither; a missing one is zeros, as attn takes it
        hx = (h0 if h0 is not None else torch.zeros(state_shape, dtype=dtype),
              c0 if c0 is not None else torch.zeros(state_shape, dtype=dtype))
    else:
        hx = h0
    if cfg["has_lengths"]:
        lengths = torch.from_numpy(tensors["lengths"].astype(np.int64))
        packed = pack_padded_sequence(x, lengths, batch_first=cfg["batch_first"],
                                      enforce_sorted=False)
        out, state = module(packed, hx)
        y, _ = pad_packed_sequence(out, batch_first=cfg["batch_first"],
                                   total_length=cfg["seq_len"])
    else:
        y, state = module(x, hx)
    h_n, c_n = state if lstm else (state, None)
    loss = (y * common.tensor(tensors["dy"], dtype)).sum()
    loss = loss + (h_n * common.tensor(tensors["dh_n"], dtype)).sum()
    if lstm:
        loss = loss + (c_n * common.tensor(tensors["dc_n"], dtype)).sum()
    loss.backward()
    result = {"y": y.detach(), "h_n": h_n.detach(), "grad.x": x.grad}
    if lstm:
        result["c_n"] = c_n.detach()
    if h0 is not None:
        result["grad.h0"] = h0.grad
    if c0 is not None:
        result["grad.c0"] = c0.grad
    for name, p in module.named_parameters():
        result["grad." + name] = p.grad.clone()
    return result


def run_case(case, driver):
    cfg, rng = case.config, case.rng
    B, T, H = cfg["batch"], cfg["seq_len"], cfg["hidden_size"]
    D = 2 if cfg["bidirectional"] else 1
    lstm = cfg["mode"] == "LSTM"

    torch.manual_seed(case.seed)
    module32 = make_module(cfg)
    state32 = {k: v.detach().numpy().copy() for k, v in module32.state_dict().items()}
    case.write_weights(state32)

    def shaped(width):
        return (B, T, width) if cfg["batch_first"] else (T, B, width)

    state_shape = (cfg["num_layers"] * D, B, H)
    tensors = {"x": common.normal32(rng, shaped(cfg["input_size"]))}
    if cfg["has_h0"]:
        tensors["h0"] = common.normal32(rng, state_shape, 0.5)
    if cfg["has_c0"]:
        tensors["c0"] = common.normal32(rng, state_shape, 0.5)
    if cfg["has_lengths"]:
        tensors["lengths"] = rng.integers(1, T + 1, size=B).astype(np.int64)
        case.tags.add("lengths" + (" (longest < T)" if tensors["lengths"].max() < T else ""))
    tensors["dy"] = common.normal32(rng, shaped(D * H))
    tensors["dh_n"] = common.normal32(rng, state_shape)
    if lstm:
        tensors["dc_n"] = common.normal32(rng, state_shape)
    case.tags.add(cfg["mode"])
    if cfg["num_layers"] > 1:
        case.tags.add(f"{cfg['num_layers']} layers")
    if cfg["bidirectional"]:
        case.tags.add("bidirectional")

    reference = case.measured_reference(
        lambda m, t, dtype: run_reference(m, cfg, t, dtype), module32, tensors)

    case.write_inputs(tensors)
    outputs = case.run_driver(driver, "rnn")

    case.compare_outputs(outputs, reference)
    case.check_saved_state(lambda: make_module(cfg), state32)


if __name__ == "__main__":
    sys.exit(common.main("rnn", __doc__, make_config, run_case, default_cases=120))
