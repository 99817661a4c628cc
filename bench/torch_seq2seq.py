#!/usr/bin/python3
"""The PyTorch side of bench/seq2seq.py: trains the same encoder-decoder as an
attn model file on the same examples, with the same sizes, steps and schedule,
and prints one JSON line (test exact match, training seconds, tokens/s).

    bench/torch_seq2seq.py --attn build/attn --checkpoint dates.safetensors [--threads 2]
                           [--steps N] [--test-count N]

The model is the PyTorch transcription that tests/conformance/test_seq2seq.py
holds attn to (same structure and parameter names); PyTorch initialises it. The
examples come from `attn data`, so step t trains on the batch attn trained on
at step t. Tokens/s counts source and target tokens (EOS included) per second
of training, as attn train does. bench/seq2seq.py runs it on OpenBLAS with
OPENBLAS_CORETYPE=SkylakeX by default (bench/torch_setup.py); the JSON line names
the BLAS file PyTorch loaded.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "conformance"))
import st  # noqa: E402
from test_seq2seq import BOS, EOS, PAD, Seq2Seq  # noqa: E402
from torch_setup import blas_library  # noqa: E402

FIRST_CHAR = 3


def attn_data(attn, task, split, count, seed):
    command = [attn, "data", "--task", task, "--split", split, "--json", "--seed", str(seed),
               "--count", str(count)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def encode(text, chars):
    ids = {c: FIRST_CHAR + i for i, c in enumerate(chars)}
    return [ids[c] for c in text]


def make_batch(examples, src_chars, tgt_chars, S, T):
    """Padded tensors as attn_task_batch lays them out (attn/data.h)."""
    B = len(examples)
    src = np.zeros((B, S), np.int64)
    src_len = np.zeros(B, np.int64)
    tgt_in = np.zeros((B, T), np.int64)
    tgt_out = np.zeros((B, T), np.int64)
    for b, ex in enumerate(examples):
        x, y = encode(ex["source"], src_chars), encode(ex["target"], tgt_chars)
        src[b, :len(x)] = x
        src_len[b] = len(x)
        tgt_in[b, :len(y) + 1] = [BOS] + y
        tgt_out[b, :len(y) + 1] = y + [EOS]
    return (torch.from_numpy(src), torch.from_numpy(src_len), torch.from_numpy(tgt_in),
            torch.from_numpy(tgt_out))


def lr_at(step, t):
    """attn_lr_warmup_cosine."""
    if step < t["warmup"]:
        return t["lr"] * (step + 1) / t["warmup"]
    span = max(t["steps"] - t["warmup"], 1)
    progress = min(max((step - t["warmup"]) / span, 0.0), 1.0)
    return t["min_lr"] + (t["lr"] - t["min_lr"]) * (1 + math.cos(math.pi * progress)) / 2


@torch.no_grad()
def greedy_exact(model, examples, src_chars, tgt_chars, S, T):
    """Exact matches of greedy decoding (batches of 256)."""
    exact = 0
    for first in range(0, len(examples), 256):
        part = examples[first:first + 256]
        src, src_len, _, tgt_out = make_batch(part, src_chars, tgt_chars, S, T)
        used = int(src_len.max())
        state = model.start(src[:, :used], src_len)
        tokens = torch.full((len(part),), BOS, dtype=torch.int64)
        out = torch.full((len(part), T), PAD, dtype=torch.int64)
        done = torch.zeros(len(part), dtype=torch.bool)
        for t in range(T):
            logits, _ = model.step(state, tokens)
            logits[:, :EOS] = -math.inf  # PAD and BOS are never produced
            tokens = torch.where(done, torch.tensor(EOS), logits.argmax(-1))
            out[:, t] = torch.where(done, torch.tensor(PAD), tokens)
            done |= tokens == EOS
            if done.all():
                break
        exact += int((out == tgt_out).all(dim=1).sum())
    return exact


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attn", required=True, help="path of the attn tool")
    parser.add_argument("--checkpoint", required=True, help="a model file of attn train")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--test-count", type=int, default=2000,
                        help="examples of the test split (default 2000, the dates task's)")
    parser.add_argument("--steps", type=int,
                        help="train only the first N of the schedule's steps (to time it)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    _, meta = st.load(args.checkpoint)
    cfg, t = json.loads(meta["model"]), json.loads(meta["train"])
    if cfg["attention"] != "soft" or cfg["arch"] == "transformer" or cfg["dropout"] != 0:
        sys.exit(f"the transcription covers RNN models with soft attention and no dropout, "
                 f"not {cfg['arch']}/{cfg['attention']} with dropout {cfg['dropout']}")
    task, src_chars, tgt_chars = meta["task"], meta["src_vocab"], meta["tgt_vocab"]
    S, T = cfg["max_src_len"], cfg["max_tgt_len"]
    steps, B = min(t["steps"], args.steps or t["steps"]), t["batch"]
    train = attn_data(args.attn, task, "train", steps * B, t["seed"])
    test = attn_data(args.attn, task, "test", args.test_count, 0)

    torch.manual_seed(t["seed"])
    model = Seq2Seq({**cfg, "arch": cfg["arch"]})
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    batches = [make_batch(train[s * B:(s + 1) * B], src_chars, tgt_chars, S, T)
               for s in range(steps)]
    tokens = sum(int(b[1].sum()) + int((b[3] != PAD).sum()) for b in batches)

    start = time.monotonic()
    for step, (src, src_len, tgt_in, tgt_out) in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, t)
        logits = model(src[:, :int(src_len.max())], src_len, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                               ignore_index=PAD, label_smoothing=t["label_smoothing"])
        opt.zero_grad()
        loss.backward()
        if t["clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t["clip"])
        opt.step()
    seconds = time.monotonic() - start

    model.eval()
    exact = greedy_exact(model, test, src_chars, tgt_chars, S, T)
    print(json.dumps({
        "model": cfg["arch"], "attention": cfg["attention"], "steps": steps, "batch": B,
        "test_examples": len(test), "test_exact": exact,
        "test_accuracy": 100.0 * exact / len(test), "train_seconds": seconds,
        "tokens_per_second": tokens / seconds, "final_loss": float(loss),
        "torch_version": torch.__version__, "blas": blas_library(),
    }))


if __name__ == "__main__":
    main()
