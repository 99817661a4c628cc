"""Conformance of torch.nn.TransformerEncoderLayer, TransformerDecoderLayer and
Transformer (attn_transformer_*) with PyTorch 1.13 in float64.

Each case builds one of the three modules in float32 with random sizes, norm_first
both ways, relu or gelu, batch_first both ways, a random layer_norm_eps and
dropout (the module is in eval mode, so dropout must have no effect), random
biases and LayerNorm weights (PyTorch starts them at 0 and 1), and random masks
for each attention: attn_mask bool or float, 2-D or 3-D, is_causal, and a bool or
float key padding mask. attn_conform loads the state_dict with attn_params_load;
the reference is a float64 copy of the module. Compared: the output, the
gradients of src, tgt and memory and of every parameter, and the last decoder
layer's cross-attention weights averaged over heads (need_weights, which the
modules themselves never return). The state_dict attn saves must load back into
the torch module with strict=True.

The reference is the module itself where PyTorch 1.13 can run the case, and a
float64 transcription of the layers (test_mha's transcription of
nn.MultiheadAttention for the attentions, the module's own linears and norms)
where it cannot: a query with every key masked out (PyTorch gives NaN, attn
zeros), a float key padding mask with an attn_mask or is_causal (1.13 cannot
combine them), and the weights. On the cases PyTorch runs, the transcription is
checked against it in the same run. is_causal goes to PyTorch as an explicit
mask (1.13's layers take none).

Module "seq2seq" is attn's seq2seq model "transformer" (attn/seq2seq.h): its
training loss on a random batch (dropout 0, label smoothing 0 or 0.1) and the
gradient of every parameter, against Seq2SeqTransformer below, a transcription
of src/models/seq2seq_transformer.c with nn.Transformer inside. The
transcription also passes the target key padding mask, which the model leaves
out because it cannot change the loss.

The driver writes at most 64 outputs (conform.c), so a Transformer has at most
three layers in all (a 2+2 one has 64 parameters alone).
"""

import copy
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

import common
import test_mha

TRANSCRIPTION_TOLERANCE = 1e-10  # float64 against float64
ATTENTIONS = {"encoder_layer": ["src"], "decoder_layer": ["tgt", "memory"],
              "transformer": ["src", "tgt", "memory"]}


PAD, BOS, EOS, FIRST_CHAR = 0, 1, 2, 3  # attn/data.h


def make_config(case):
    rng = case.rng
    module = str(rng.choice(["encoder_layer", "decoder_layer", "transformer", "seq2seq"],
                            p=[0.3, 0.3, 0.25, 0.15]))
    if module == "seq2seq":
        make_seq2seq_config(case)
        return
    H = int(rng.integers(1, 5))
    head_dim = int(rng.integers(min_head_dim(H), 17 if module != "transformer" else 9))
    cfg = {
        "module": module,
        "d_model": H * head_dim, "nhead": H,
        "dim_feedforward": int(rng.integers(1, 65)),
        "dropout": float(rng.choice([0.0, 0.1, 0.3])),
        "activation": str(rng.choice(["relu", "gelu"])),
        "layer_norm_eps": float(rng.choice([1e-5, 1e-6, 1e-3])),
        "batch_first": bool(rng.random() < 0.5),
        "norm_first": bool(rng.random() < 0.5),
        "batch": int(rng.integers(1, 4)),
        "src_len": int(rng.integers(1, 11)),
        "tgt_len": int(rng.integers(1, 11)),
        "training": False,
        "need_weights": bool(module != "encoder_layer" and rng.random() < 0.4),
        "mask_density": float(rng.choice([0.1, 0.3])),
    }
    layers = [(1, 1), (1, 2), (2, 1)][int(rng.integers(3))]
    cfg["num_encoder_layers"], cfg["num_decoder_layers"] = layers
    for which in ["src", "tgt", "memory"]:
        kind = str(rng.choice(["none", "bool", "float"], p=[0.5, 0.25, 0.25]))
        cfg[which + "_mask"] = kind
        cfg[which + "_mask_ndim"] = int(rng.integers(2, 4)) if kind != "none" else 0
        cfg[which + "_is_causal"] = bool(rng.random() < (0.5 if which == "tgt" else 0.15))
        cfg[which + "_key_padding_mask"] = str(rng.choice(["none", "bool", "float"],
                                                          p=[0.4, 0.35, 0.25]))
    case.config = cfg


def min_head_dim(heads):
    """d_model >= 3: a LayerNorm over one feature outputs its bias whatever its
    input, over two a sign function of their difference; the gradient through it
    is then float32 rounding noise (PyTorch's own float32 is off by orders of
    magnitude), which no condition bound can hold."""
    return -(-3 // heads)


def make_seq2seq_config(case):
    rng = case.rng
    heads = int(rng.integers(1, 4))
    layers = [(1, 1), (1, 2), (2, 1)][int(rng.integers(3))]
    case.config = {
        "module": "seq2seq",
        "src_vocab": int(rng.integers(5, 13)), "tgt_vocab": int(rng.integers(5, 13)),
        "max_src_len": int(rng.integers(2, 9)), "max_tgt_len": int(rng.integers(2, 8)),
        "hidden_dim": heads * int(rng.integers(min_head_dim(heads), 9)), "heads": heads,
        "ff_dim": int(rng.integers(1, 33)),
        "enc_layers": layers[0], "dec_layers": layers[1],
        "label_smoothing": float(rng.choice([0.0, 0.1])),
        "batch": int(rng.integers(1, 5)),
    }


class Seq2SeqTransformer(torch.nn.Module):
    """src/models/seq2seq_transformer.c: dropout(embed * sqrt(E) + PE) into
    nn.Transformer(batch_first=True, norm_first=True), a linear generator, the
    mean cross-entropy over the targets that are not PAD."""

    def __init__(self, cfg):
        super().__init__()
        E = cfg["hidden_dim"]
        self.src_embed = torch.nn.Embedding(cfg["src_vocab"], E, padding_idx=PAD)
        self.tgt_embed = torch.nn.Embedding(cfg["tgt_vocab"], E, padding_idx=PAD)
        self.transformer = torch.nn.Transformer(
            E, cfg["heads"], cfg["enc_layers"], cfg["dec_layers"], cfg["ff_dim"], dropout=0.0,
            batch_first=True, norm_first=True)
        self.generator = torch.nn.Linear(E, cfg["tgt_vocab"])
        positions = max(cfg["max_src_len"], cfg["max_tgt_len"])
        angle = (torch.arange(positions, dtype=torch.float64)[:, None]
                 * torch.exp(-torch.arange(0, E, 2, dtype=torch.float64) * math.log(10000.0) / E))
        pe = torch.zeros(positions, E, dtype=torch.float64)
        pe[:, 0::2] = torch.sin(angle)
        pe[:, 1::2] = torch.cos(angle)[:, :E // 2]
        self.register_buffer("pe", pe, persistent=False)
        self.label_smoothing = cfg["label_smoothing"]

    def forward(self, src, src_len, tgt_in, tgt_out, tgt_len):
        S, T = int(src_len.max()), int(tgt_len.max())
        src, tgt_in, tgt_out = src[:, :S], tgt_in[:, :T], tgt_out[:, :T]
        scale = math.sqrt(self.pe.shape[1])
        x = self.src_embed(src) * scale + self.pe[:S]
        y = self.tgt_embed(tgt_in) * scale + self.pe[:T]
        src_padding = torch.arange(S)[None, :] >= src_len[:, None]
        tgt_padding = torch.arange(T)[None, :] >= tgt_len[:, None]
        causal = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
        out = self.transformer(x, y, tgt_mask=causal, src_key_padding_mask=src_padding,
                               tgt_key_padding_mask=tgt_padding,
                               memory_key_padding_mask=src_padding)
        logits = self.generator(out)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                               ignore_index=PAD, label_smoothing=self.label_smoothing)


def random_batch(rng, cfg):
    """Sources of 1 to max_src_len tokens and targets of 1 to max_tgt_len (EOS
    included), padded with PAD to the maximum lengths, as attn_batch holds them."""
    B, S, T = cfg["batch"], cfg["max_src_len"], cfg["max_tgt_len"]
    src = np.full((B, S), PAD, np.int32)
    tgt_in = np.full((B, T), PAD, np.int32)
    tgt_out = np.full((B, T), PAD, np.int32)
    src_len = rng.integers(1, S + 1, size=B).astype(np.int32)
    tgt_len = rng.integers(1, T + 1, size=B).astype(np.int32)
    for b in range(B):
        src[b, :src_len[b]] = rng.integers(FIRST_CHAR, cfg["src_vocab"], size=src_len[b])
        y = rng.integers(FIRST_CHAR, cfg["tgt_vocab"], size=tgt_len[b] - 1)
        tgt_in[b, :tgt_len[b]] = np.concatenate([[BOS], y])
        tgt_out[b, :tgt_len[b]] = np.concatenate([y, [EOS]])
    return {"src": src, "src_len": src_len, "tgt_in": tgt_in, "tgt_out": tgt_out,
            "tgt_len": tgt_len}


def run_seq2seq_reference(module32, tensors, dtype):
    module = copy.deepcopy(module32).to(dtype)
    ids = {name: torch.from_numpy(np.asarray(tensors[name], np.int64))
           for name in ["src", "src_len", "tgt_in", "tgt_out", "tgt_len"]}
    loss = module(ids["src"], ids["src_len"], ids["tgt_in"], ids["tgt_out"], ids["tgt_len"])
    loss.backward()
    result = {"loss": loss.detach().reshape(1)}
    for name, p in module.named_parameters():
        result["grad." + name] = p.grad.clone()
    return result


def randomize_seq2seq(module):
    """Biases, LayerNorm weights and embeddings away from PyTorch's 0, 1 and
    N(0, 1), so that every parameter matters."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.5, 0.5)
            elif "norm" in name:
                p.uniform_(0.5, 1.5)
            elif "embed" in name:
                p.uniform_(-0.5, 0.5)


def run_seq2seq_case(case, driver):
    cfg, rng = case.config, case.rng
    cfg["src_cap"], cfg["tgt_cap"] = cfg["max_src_len"], cfg["max_tgt_len"]
    torch.manual_seed(case.seed % 2**63)
    module32 = Seq2SeqTransformer(cfg)
    randomize_seq2seq(module32)
    state32 = {k: v.detach().numpy().copy() for k, v in module32.state_dict().items()}
    case.write_weights(state32)
    tensors = random_batch(rng, cfg)
    case.tags.add("seq2seq model")
    reference = case.measured_reference(run_seq2seq_reference, module32, tensors)
    case.write_inputs(tensors)
    case.compare_outputs(case.run_driver(driver, "transformer"), reference)
    case.check_saved_state(lambda: Seq2SeqTransformer(cfg), state32)


def make_module(cfg):
    common_args = dict(dim_feedforward=cfg["dim_feedforward"], dropout=cfg["dropout"],
                       activation=cfg["activation"], layer_norm_eps=cfg["layer_norm_eps"],
                       batch_first=cfg["batch_first"], norm_first=cfg["norm_first"])
    if cfg["module"] == "encoder_layer":
        return torch.nn.TransformerEncoderLayer(cfg["d_model"], cfg["nhead"], **common_args)
    if cfg["module"] == "decoder_layer":
        return torch.nn.TransformerDecoderLayer(cfg["d_model"], cfg["nhead"], **common_args)
    return torch.nn.Transformer(cfg["d_model"], cfg["nhead"], cfg["num_encoder_layers"],
                                cfg["num_decoder_layers"], **common_args)


# ---- the transcription ----

def attention(mha, query, kv, masks, need_weights=False):
    return test_mha.transcription(mha, query, kv, kv, masks["key_padding_mask"],
                                  masks["attn_mask"], masks["is_causal"], need_weights, True)


def sublayer(x, f, norm, norm_first):
    return x + f(norm(x)) if norm_first else norm(x + f(x))


def encoder_layer(layer, x, masks):
    x = sublayer(x, lambda u: attention(layer.self_attn, u, u, masks["src"])[0], layer.norm1,
                 layer.norm_first)
    return sublayer(x, lambda u: layer.linear2(layer.activation(layer.linear1(u))), layer.norm2,
                    layer.norm_first)


def decoder_layer(layer, x, memory, masks):
    """The layer's output and its cross-attention weights averaged over heads."""
    weights = []

    def cross(u):
        out, w = attention(layer.multihead_attn, u, memory, masks["memory"], True)
        weights.append(w)
        return out

    x = sublayer(x, lambda u: attention(layer.self_attn, u, u, masks["tgt"])[0], layer.norm1,
                 layer.norm_first)
    x = sublayer(x, cross, layer.norm2, layer.norm_first)
    x = sublayer(x, lambda u: layer.linear2(layer.activation(layer.linear1(u))), layer.norm3,
                 layer.norm_first)
    return x, weights[0]


def transcription(module, cfg, inputs, masks):
    """The module's output and the last decoder layer's cross-attention weights."""
    if cfg["module"] == "encoder_layer":
        return encoder_layer(module, inputs["src"], masks), None
    if cfg["module"] == "decoder_layer":
        return decoder_layer(module, inputs["tgt"], inputs["memory"], masks)
    memory = inputs["src"]
    for layer in module.encoder.layers:
        memory = encoder_layer(layer, memory, masks)
    memory = module.encoder.norm(memory)
    out = inputs["tgt"]
    for layer in module.decoder.layers:
        out, weights = decoder_layer(layer, out, memory, masks)
    return module.decoder.norm(out), weights


def explicit_mask(masks, Lq, Lk):
    """is_causal folded into attn_mask, for PyTorch 1.13."""
    mask = masks["attn_mask"]
    if not masks["is_causal"]:
        return mask
    above = torch.ones(Lq, Lk, dtype=torch.bool).triu(diagonal=1)
    if mask is None:
        return above
    if mask.dtype == torch.bool:
        return mask | above
    return mask.masked_fill(above, float("-inf"))


def torch_forward(module, cfg, inputs, masks):
    S, T = cfg["src_len"], cfg["tgt_len"]
    if cfg["module"] == "encoder_layer":
        return module(inputs["src"], src_mask=explicit_mask(masks["src"], S, S),
                      src_key_padding_mask=masks["src"]["key_padding_mask"]), None
    tgt_args = dict(tgt_mask=explicit_mask(masks["tgt"], T, T),
                    memory_mask=explicit_mask(masks["memory"], T, S),
                    tgt_key_padding_mask=masks["tgt"]["key_padding_mask"],
                    memory_key_padding_mask=masks["memory"]["key_padding_mask"])
    if cfg["module"] == "decoder_layer":
        return module(inputs["tgt"], inputs["memory"], **tgt_args), None
    return module(inputs["src"], inputs["tgt"], src_mask=explicit_mask(masks["src"], S, S),
                  src_key_padding_mask=masks["src"]["key_padding_mask"], **tgt_args), None


def torch_masks(cfg, tensors, dtype):
    masks = {}
    for which in ["src", "tgt", "memory"]:
        m = {"is_causal": cfg[which + "_is_causal"]}
        for part in ["mask", "key_padding_mask"]:
            name = f"{which}_{part}"
            key = "attn_mask" if part == "mask" else part
            m[key] = (test_mha.as_torch_mask(cfg[name], tensors[name], dtype)
                      if name in tensors else None)
        masks[which] = m
    return masks


def run_reference(forward, module32, cfg, tensors, dtype):
    """forward and backward on a dtype copy of the module in eval mode; the
    tensors to compare."""
    module = copy.deepcopy(module32).to(dtype).eval()
    inputs = {name: common.tensor(tensors[name], dtype, True)
              for name in ["src", "tgt", "memory"] if name in tensors}
    out, weights = forward(module, cfg, inputs, torch_masks(cfg, tensors, dtype))
    out.backward(common.tensor(tensors["dout"], dtype))
    result = {"out": out.detach()}
    if cfg["need_weights"]:
        result["cross_weights"] = weights.detach()
    for name, x in inputs.items():
        result["grad." + name] = x.grad
    for name, p in module.named_parameters():
        result["grad." + name] = p.grad.clone()
    return result


def random_masks(case, tensors):
    """Adds the masks to tensors; returns whether some query has every key masked
    and whether a float key padding mask meets an attn_mask or is_causal."""
    cfg, rng = case.config, case.rng
    B, H, S, T = cfg["batch"], cfg["nhead"], cfg["src_len"], cfg["tgt_len"]
    sizes = {"src": (S, S), "tgt": (T, T), "memory": (T, S)}
    fully_masked = float_padding_with_mask = False
    for which in ATTENTIONS[cfg["module"]]:
        Lq, Lk = sizes[which]
        combined = torch.zeros(B, H, Lq, Lk, dtype=torch.float64)
        kind = cfg[which + "_key_padding_mask"]
        if kind != "none":
            data = test_mha.random_mask(rng, kind, (B, Lk), cfg["mask_density"] / 2)
            tensors[which + "_key_padding_mask"] = data
            mask = test_mha.as_torch_mask(kind, data)
            combined = combined + test_mha.additive(mask).view(B, 1, 1, Lk)
        kind = cfg[which + "_mask"]
        if kind != "none":
            ndim = cfg[which + "_mask_ndim"]
            shape = (Lq, Lk) if ndim == 2 else (B * H, Lq, Lk)
            data = test_mha.random_mask(rng, kind, shape, cfg["mask_density"])
            tensors[which + "_mask"] = data
            mask = test_mha.as_torch_mask(kind, data)
            view = (1, 1, Lq, Lk) if ndim == 2 else (B, H, Lq, Lk)
            combined = combined + test_mha.additive(mask).view(view)
        if cfg[which + "_is_causal"]:
            combined = combined.masked_fill(torch.ones(Lq, Lk, dtype=torch.bool).triu(1),
                                            float("-inf"))
        fully_masked |= bool(torch.isneginf(combined).all(dim=-1).any())
        float_padding_with_mask |= cfg[which + "_key_padding_mask"] == "float" and (
            cfg[which + "_mask"] != "none" or cfg[which + "_is_causal"])
    return fully_masked, float_padding_with_mask


def run_case(case, driver):
    if case.config["module"] == "seq2seq":
        run_seq2seq_case(case, driver)
        return
    cfg, rng = case.config, case.rng
    B, E, S, T = cfg["batch"], cfg["d_model"], cfg["src_len"], cfg["tgt_len"]

    torch.manual_seed(case.seed % 2**63)
    module32 = make_module(cfg)
    with torch.no_grad():
        for name, p in module32.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.5, 0.5)
            elif "norm" in name:
                p.uniform_(0.5, 1.5)
    state32 = {k: v.detach().numpy().copy() for k, v in module32.state_dict().items()}
    case.write_weights(state32)

    def shaped(L):
        return (B, L, E) if cfg["batch_first"] else (L, B, E)

    tensors = {}
    if cfg["module"] != "decoder_layer":
        tensors["src"] = common.normal32(rng, shaped(S))
    if cfg["module"] == "decoder_layer":
        tensors["memory"] = common.normal32(rng, shaped(S))
    if cfg["module"] != "encoder_layer":
        tensors["tgt"] = common.normal32(rng, shaped(T))
    tensors["dout"] = common.normal32(rng, shaped(S if cfg["module"] == "encoder_layer" else T))
    fully_masked, float_padding_with_mask = random_masks(case, tensors)

    use_torch = not fully_masked and not float_padding_with_mask
    cfg["reference"] = "torch" if use_torch else "transcription"
    case.tags.add(cfg["module"] + " against " + cfg["reference"])
    for flag, tag in [(fully_masked, "fully masked rows"), (cfg["norm_first"], "norm_first"),
                      (float_padding_with_mask, "float key padding + attn_mask"),
                      (cfg["need_weights"], "cross weights"), (cfg["activation"] == "gelu", "gelu")]:
        if flag:
            case.tags.add(tag)

    forward = torch_forward if use_torch else transcription
    if cfg["need_weights"]:
        # The weights come from the transcription, the rest from the module.
        def forward(module, cfg_, inputs, masks, base=forward):
            out, _ = base(module, cfg_, inputs, masks)
            _, weights = transcription(module, cfg_, inputs, masks)
            return out, weights
    reference = case.measured_reference(
        lambda m, t, dtype: run_reference(forward, m, cfg, t, dtype), module32, tensors)
    if use_torch:
        written = run_reference(transcription, module32, cfg, tensors, torch.float64)
        for name, want in reference.items():
            case.compare("transcription." + name, written[name].numpy(), want,
                         TRANSCRIPTION_TOLERANCE)

    case.write_inputs(tensors)
    case.compare_outputs(case.run_driver(driver, "transformer"), reference)

    case.check_saved_state(lambda: make_module(cfg), state32)


if __name__ == "__main__":
    sys.exit(common.main("transformer", __doc__, make_config, run_case, default_cases=120))
