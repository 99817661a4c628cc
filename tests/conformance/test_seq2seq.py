"""Conformance of the RNN encoder-decoder models (attn_seq2seq with soft
attention) with a PyTorch transcription of the same module.

The transcription below is the module attn/seq2seq.h describes, written with
torch.nn layers: an nn.Embedding and a bidirectional nn.RNN / GRU / LSTM over
packed sequences for the encoder; the initial decoder state tanh(init([h_fwd;
h_bwd])) of the top encoder layer; a decoder nn.RNN / GRU / LSTM stepped one
token at a time with Bahdanau's additive attention of the previous state (the
context joins the embedding at the cell's input; logits from [s; c]) or Luong's
dot / general attention of the new state (h~ = tanh(combine([c; h])) gives the
logits and is fed to the next step). PyTorch initialises it; attn loads the same
state_dict strictly, and saves one that loads back bit for bit.

Compared on a random batch (random lengths, padding), in float64: the mean
cross-entropy, the teacher-forced logits and the gradient of every parameter;
then the greedy decoding (PAD and BOS excluded, the first maximum on ties): the
tokens and lengths exactly and the attention weights within tolerance. A source
whose two best tokens were within NEAR_TIE in log-probability at a step before
the outputs part is not held to the same tokens: float32 and float64 may pick
either.
"""

import copy
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import common

PAD, BOS, EOS = 0, 1, 2
ARCHS = ["rnn-bahdanau", "gru-bahdanau", "lstm-bahdanau", "lstm-luong-dot", "lstm-luong-general"]
CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
NEAR_TIE = 1e-4


def make_config(case):
    rng = case.rng
    big = bool(rng.random() < 0.25)
    case.config = {
        "arch": ARCHS[int(rng.integers(len(ARCHS)))],
        "src_vocab": int(rng.integers(4, 13)),
        "tgt_vocab": int(rng.integers(4, 13)),
        "embed_dim": int(rng.integers(1, 17 if big else 7)),
        "hidden_dim": int(rng.integers(1, 33 if big else 7)),
        "enc_layers": int(rng.integers(1, 3)),
        "dec_layers": int(rng.integers(1, 3)),
        "batch": int(rng.integers(1, 5)),
        "src_cap": int(rng.integers(1, 9)),
        "tgt_cap": int(rng.integers(1, 8)),
    }


class Encoder(nn.Module):
    def __init__(self, cfg, cell):
        super().__init__()
        self.embed = nn.Embedding(cfg["src_vocab"], cfg["embed_dim"], padding_idx=PAD)
        self.rnn = CELLS[cell](cfg["embed_dim"], cfg["hidden_dim"], cfg["enc_layers"],
                               batch_first=True, bidirectional=True)

    def forward(self, src, src_len):
        """(B, S') states over the longest source, and [h_fwd; h_bwd] of the top layer."""
        packed = pack_padded_sequence(self.embed(src), src_len, batch_first=True,
                                      enforce_sorted=False)
        out, state = self.rnn(packed)
        h_n = state[0] if isinstance(state, tuple) else state
        out, _ = pad_packed_sequence(out, batch_first=True)
        return out, torch.cat([h_n[-2], h_n[-1]], dim=1)


class BahdanauAttention(nn.Module):
    def __init__(self, H):
        super().__init__()
        self.query = nn.Linear(H, H, bias=False)
        self.key = nn.Linear(2 * H, H)
        self.v = nn.Parameter(torch.empty(H).uniform_(-1 / math.sqrt(H), 1 / math.sqrt(H)))


class Seq2Seq(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        arch = cfg["arch"]
        self.cell = arch.split("-")[0]
        self.luong = "luong" in arch
        self.dot = arch.endswith("-dot")
        E, H, L, V = cfg["embed_dim"], cfg["hidden_dim"], cfg["dec_layers"], cfg["tgt_vocab"]
        self.H, self.L = H, L
        Dv = H if self.dot else 2 * H
        self.encoder = Encoder(cfg, self.cell)
        self.decoder = dec = nn.Module()
        dec.embed = nn.Embedding(V, E, padding_idx=PAD)
        dec.init = nn.Linear(2 * H, L * H)
        if not self.luong:
            dec.attention = BahdanauAttention(H)
        elif self.dot:
            dec.bridge = nn.Linear(2 * H, H)
        else:
            dec.attention = nn.Linear(2 * H, H, bias=False)
        dec.rnn = CELLS[self.cell](E + (H if self.luong else Dv), H, L)
        if self.luong:
            dec.combine = nn.Linear(Dv + H, H, bias=False)
        dec.out = nn.Linear(H if self.luong else H + Dv, V)

    def start(self, src, src_len):
        """The decoder's state after encoding; every row starts from BOS."""
        dec = self.decoder
        enc, final = self.encoder(src, src_len)
        B = enc.shape[0]
        h0 = torch.tanh(dec.init(final)).view(B, self.L, self.H).transpose(0, 1).contiguous()
        st = {"state": (h0, torch.zeros_like(h0)) if self.cell == "lstm" else h0,
              "mask": torch.arange(enc.shape[1])[None, :] < src_len[:, None]}
        if not self.luong:
            st["keys"], st["values"] = dec.attention.key(enc), enc
        elif self.dot:
            st["keys"] = st["values"] = dec.bridge(enc)
        else:
            st["keys"], st["values"] = dec.attention(enc), enc
        if self.luong:
            st["feed"] = torch.zeros(B, self.H, dtype=enc.dtype)
        return st

    @staticmethod
    def attend(scores, st):
        weights = torch.softmax(scores.masked_fill(~st["mask"], float("-inf")), dim=-1)
        if "replace" in st:  # an intervention: replace(weights, mask)
            weights = st["replace"](weights, st["mask"])
        return weights, torch.bmm(weights[:, None, :], st["values"])[:, 0]

    def step(self, st, tokens):
        """tokens (B) -> logits (B, V), attention weights (B, S')."""
        dec = self.decoder
        emb = dec.embed(tokens)
        if not self.luong:
            state = st["state"]
            s_prev = (state[0] if isinstance(state, tuple) else state)[-1]
            a = dec.attention
            scores = torch.tanh(a.query(s_prev)[:, None, :] + st["keys"]) @ a.v
            weights, ctx = self.attend(scores, st)
            out, st["state"] = dec.rnn(torch.cat([emb, ctx], dim=1)[None], st["state"])
            feat = torch.cat([out[0], ctx], dim=1)
        else:
            out, st["state"] = dec.rnn(torch.cat([emb, st["feed"]], dim=1)[None], st["state"])
            h = out[0]
            weights, ctx = self.attend(torch.bmm(st["keys"], h[:, :, None])[:, :, 0], st)
            feat = st["feed"] = torch.tanh(dec.combine(torch.cat([ctx, h], dim=1)))
        return dec.out(feat), weights

    def forward(self, src, src_len, tgt_in):
        st = self.start(src, src_len)
        return torch.stack([self.step(st, tgt_in[:, t])[0] for t in range(tgt_in.shape[1])], 1)


def make_batch(cfg, rng):
    B, S, T = cfg["batch"], cfg["src_cap"], cfg["tgt_cap"]
    src_len = rng.integers(1, S + 1, size=B).astype(np.int32)
    tgt_len = rng.integers(1, T + 1, size=B).astype(np.int32)
    src = np.zeros((B, S), np.int32)
    tgt_in = np.zeros((B, T), np.int32)
    tgt_out = np.zeros((B, T), np.int32)
    for b in range(B):
        src[b, :src_len[b]] = rng.integers(3, cfg["src_vocab"], size=src_len[b])
        y = rng.integers(3, cfg["tgt_vocab"], size=tgt_len[b] - 1)
        tgt_in[b, :tgt_len[b]] = np.concatenate([[BOS], y])
        tgt_out[b, :tgt_len[b]] = np.concatenate([y, [EOS]])
    return {"src": src, "src_len": src_len, "tgt_in": tgt_in, "tgt_out": tgt_out,
            "tgt_len": tgt_len}


def as_long(x):
    return torch.from_numpy(np.asarray(x, dtype=np.int64))


def run_reference(model32, batch, dtype):
    """Loss, logits and parameter gradients of a copy of the model in dtype."""
    model = copy.deepcopy(model32).to(dtype)
    T = int(batch["tgt_len"].max())
    S = int(batch["src_len"].max())
    logits = model(as_long(batch["src"][:, :S]), as_long(batch["src_len"]),
                   as_long(batch["tgt_in"][:, :T]))
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                           as_long(batch["tgt_out"][:, :T]).reshape(-1), ignore_index=PAD)
    loss.backward()
    result = {"loss": loss.detach().reshape(1), "logits": logits.detach()}
    for name, p in model.named_parameters():
        result["grad." + name] = p.grad.clone()
    return result


@torch.no_grad()
def greedy(model32, batch, cfg):
    """Greedy decoding in float64: tokens, lengths, attention and, per source,
    the smallest gap between its two best tokens before it ended."""
    model = copy.deepcopy(model32).double()
    B, S, T = cfg["batch"], cfg["src_cap"], cfg["tgt_cap"]
    S_used = int(batch["src_len"].max())
    st = model.start(as_long(batch["src"][:, :S_used]), as_long(batch["src_len"]))
    tokens = torch.full((B,), BOS, dtype=torch.int64)
    out = np.full((B, T), PAD, np.int64)
    out_len = np.full(B, T, np.int64)
    attention = np.zeros((B, T, S))
    gap = np.full(B, np.inf)
    done = np.zeros(B, bool)
    for t in range(T):
        logits, weights = model.step(st, tokens)
        logprobs = torch.log_softmax(logits, dim=-1)[:, EOS:]
        best = logprobs.topk(2, dim=-1).values
        chosen = torch.argmax(logprobs, dim=-1) + EOS
        for b in range(B):
            if done[b]:
                continue
            gap[b] = min(gap[b], float(best[b, 0] - best[b, 1]))
            out[b, t] = int(chosen[b])
            attention[b, t, :S_used] = weights[b].numpy()
            if out[b, t] == EOS:
                done[b] = True
                out_len[b] = t
        tokens = torch.where(torch.from_numpy(done), torch.tensor(EOS), chosen)
        if done.all():
            break
    return out, out_len, attention, gap


def run_case(case, driver):
    cfg = case.config
    torch.manual_seed(case.seed)
    model32 = Seq2Seq(cfg)
    state32 = {k: v.detach().numpy().copy() for k, v in model32.state_dict().items()}
    case.write_weights(state32)
    batch = make_batch(cfg, case.rng)
    case.tags.add(cfg["arch"])

    reference = case.measured_reference(run_reference, model32, batch)
    case.write_inputs(batch)
    outputs = case.run_driver(driver, "seq2seq")

    for name, want in reference.items():
        got = case.output(outputs, name)
        if got is not None:
            case.compare(name, got, want)

    counts = case.output(outputs, "counts")
    T = int(batch["tgt_len"].max())
    target = torch.from_numpy(batch["tgt_out"][:, :T].astype(np.int64))
    counted = target != PAD
    top2 = reference["logits"].topk(2, dim=-1).values
    near_tie = bool(((top2[..., 0] - top2[..., 1]).abs() < NEAR_TIE)[counted].any())
    correct = int(((reference["logits"].argmax(-1) == target) & counted).sum())
    if counts is not None:
        case.require(int(counts[0]) == int(counted.sum()),
                     f"tokens {int(counts[0])} != {int(counted.sum())}")
        case.require(int(counts[1]) == correct or near_tie,
                     f"correct {int(counts[1])} != {correct}")

    out, out_len, attention, gap = greedy(model32, batch, cfg)
    got_out, got_len = case.output(outputs, "decode.out"), case.output(outputs, "decode.out_len")
    got_att = case.output(outputs, "decode.attention")
    if got_out is None or got_len is None or got_att is None:
        return
    same = [b for b in range(cfg["batch"]) if int(got_len[b]) == out_len[b]
            and np.array_equal(got_out[b].astype(np.int64), out[b])]
    for b in range(cfg["batch"]):
        if b not in same:
            if gap[b] < NEAR_TIE:
                case.tags.add("greedy near tie")
            else:
                case.problems.append(f"greedy decoding of source {b}: {got_out[b].astype(int)} "
                                     f"(length {int(got_len[b])}), PyTorch {out[b]} "
                                     f"(length {out_len[b]})")
    if same:
        case.compare("decode.attention", got_att[same], attention[same])

    case.check_saved_state(lambda: Seq2Seq(cfg), state32)


if __name__ == "__main__":
    sys.exit(common.main("seq2seq", __doc__, make_config, run_case, default_cases=60))
