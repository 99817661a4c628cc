#!/usr/bin/python3
"""The PyTorch side of bench/gpt.py: trains attn's decoder-only language model, or
generates with one, in PyTorch, and prints one JSON line.

    bench/torch_gpt.py train --attn build/attn --data FILE [--unit chars|bytes]
                       [--layers 4 --heads 4 --kv-heads 0 --embd 128 --block 64
                        --positions learned --window 0 --no-bias --no-tie --dropout 0]
                       [--batch 12 --steps 2000 --lr 1e-3 --min-lr 1e-4 --warmup 100
                        --weight-decay 0.1 --clip 1 --seed 1 --eval-windows 64]
                       [--threads 2]
    bench/torch_gpt.py generate --model FILE (--prompt TEXT | --prompt-file FILE)
                       --tokens N [--threads 2]
    bench/torch_gpt.py eval --model FILE --data FILE [--eval-windows 64] [--threads 2]

train: the model is the transcription the conformance test holds attn to
(tests/conformance/gpt_model.py: same structure and parameter names, nanoGPT's
initialisation, seeded with --seed). The options are attn train's and mean the same.
The text is encoded as attn encodes it (one id per distinct character in code-point
order, or one per byte); the batch of step s is the one attn trains on, read from
`attn data --task text`. AdamW (betas 0.9, 0.99, eps 1e-8, weight decay on the 2-D
parameters only), attn_lr_warmup_cosine and gradient clipping as attn train. A step
is timed from setting its learning rate to the end of the optimizer's update:
forward, backward, clipping and AdamW, what attn train's ms_per_step counts. After
training, the validation loss is the mean cross-entropy over the windows of
attn_text_valid_windows(text, block, --eval-windows) (0 skips it).

generate: loads an attn model file (a safetensors checkpoint) into the same
transcription and continues the prompt greedily, nanoGPT's way: every new token
runs the model over the whole context (cropped to the block size) and takes the
most likely next token (the first on ties, as attn's temperature 0). Seconds count
the generation loop only, as attn generate's do, split as attn generate splits them:
prefill from the start to the first new token (one pass over the prompt and its
argmax), decode from the first new token to the last (each a pass and an argmax).

eval: the validation loss of an attn model file on its text, computed as train
computes its own; equal to what attn train reported for that model, it shows that
both sides measure the same windows the same way.

bench/gpt.py runs it on OpenBLAS with OPENBLAS_CORETYPE=SkylakeX by default
(bench/torch_setup.py); train and generate report the BLAS file PyTorch loaded.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "conformance"))
import st  # noqa: E402
from gpt_model import GPT, configure_optimizer, lr_at  # noqa: E402
from torch_setup import blas_library  # noqa: E402

BETAS = (0.9, 0.99)


# ---- text, as attn/data.h encodes it ----

class Vocab:
    """unit "chars": id i is the i-th distinct code point, ascending; "bytes": id = byte."""

    def __init__(self, unit, chars=None):
        self.unit = unit
        self.chars = chars
        if unit == "chars":
            self.ids = {c: i for i, c in enumerate(chars)}

    @classmethod
    def of_text(cls, unit, data):
        if unit == "bytes":
            return cls("bytes")
        return cls("chars", sorted(set(data.decode("utf-8"))))

    @property
    def size(self):
        return 256 if self.unit == "bytes" else len(self.chars)

    def encode(self, data):
        if self.unit == "bytes":
            return np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        text = data.decode("utf-8")
        return np.fromiter((self.ids[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids):
        if self.unit == "bytes":
            return bytes(ids).decode("utf-8", errors="replace")
        return "".join(self.chars[i] for i in ids)


def valid_windows(ids, T, max_windows):
    """attn_text_valid_windows and attn_text_valid_batch: the starts (token offsets
    into the whole text) of the validation windows."""
    n = len(ids)
    train_count = n * 9 // 10
    n_valid = n - train_count
    count = min(max_windows, (n_valid - 1) // T)
    if count <= 0:
        return np.zeros(0, np.int64)
    if count == 1:
        return np.array([train_count], np.int64)
    return np.array([train_count + k * (n_valid - 1 - T) // (count - 1) for k in range(count)],
                    np.int64)


def windows(ids, starts, T):
    """x, y: (len(starts), T): the windows' first T tokens and their next tokens."""
    rows = starts[:, None] + np.arange(T + 1)[None, :]
    w = torch.from_numpy(ids[rows])
    return w[:, :T].contiguous(), w[:, 1:].contiguous()


def attn_starts(args):
    """The window starts of every step's batch, (steps, batch), from `attn data`."""
    command = [args.attn, "data", "--task", "text", "--data", args.data, "--unit", args.unit,
               "--block", str(args.block), "--batch", str(args.batch), "--steps",
               str(args.steps), "--seed", str(args.seed)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    starts = np.array([[int(v) for v in line.split()] for line in done.stdout.splitlines()],
                      np.int64)
    if starts.shape != (args.steps, args.batch):
        sys.exit(f"attn data printed {starts.shape} starts, expected "
                 f"({args.steps}, {args.batch})")
    return starts


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def valid_loss(model, ids, T, max_windows, batch):
    starts = valid_windows(ids, T, max_windows)
    model.eval()
    total = 0.0
    for first in range(0, len(starts), batch):
        x, y = windows(ids, starts[first:first + batch], T)
        _, loss = model(x, y)
        total += float(loss) * len(x)
    model.train()
    return total / len(starts), len(starts)


def progress(step, steps, loss):
    """A line updated in place on a terminal; else a line every tenth of the run."""
    line = f"PyTorch step {step}/{steps} loss {loss:.4f}"
    if sys.stderr.isatty():
        print(f"\r{line}", end="\n" if step == steps else "", file=sys.stderr, flush=True)
    elif step == steps or step % max(1, steps // 10) == 0:
        print(line, file=sys.stderr, flush=True)


def train(args):
    with open(args.data, "rb") as f:
        data = f.read()
    vocab = Vocab.of_text(args.unit, data)
    ids = vocab.encode(data)
    starts = attn_starts(args)
    T = args.block
    batches = [windows(ids, s, T) for s in starts]

    torch.manual_seed(args.seed)
    model = GPT({
        "vocab_size": vocab.size, "block_size": T, "n_layer": args.layers,
        "n_head": args.heads, "n_kv_head": args.kv_heads, "n_embd": args.embd,
        "position": args.positions, "rope_theta": 10000.0, "window": args.window,
        "bias": not args.no_bias, "tie_weights": not args.no_tie, "dropout": args.dropout,
    })
    model.train()
    opt = configure_optimizer(model, args.lr, args.weight_decay, BETAS)
    params = [p for group in opt.param_groups for p in group["params"]]

    step_seconds = []
    loss = None
    for step, (x, y) in enumerate(batches):
        start = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.warmup, args.steps, args.lr, args.min_lr)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        step_seconds.append(time.perf_counter() - start)
        progress(step + 1, args.steps, float(loss))

    report = {
        "task": "text", "steps": args.steps, "batch": args.batch, "block": T,
        "parameters": parameter_count(model), "vocab_size": vocab.size,
        "train_loss": float(loss), "train_seconds": sum(step_seconds),
        "ms_per_step": 1000.0 * sum(step_seconds) / len(step_seconds),
        "step_ms": [1000.0 * s for s in step_seconds],
        "threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "blas": blas_library(),
    }
    report["tokens_per_s"] = args.batch * T * 1000.0 / report["ms_per_step"]
    if args.eval_windows > 0:
        report["valid_loss"], report["valid_windows"] = valid_loss(
            model, ids, T, args.eval_windows, args.batch)
    print(json.dumps(report))


def load_attn_model(path):
    """The transcription holding an attn model file's weights, its config and vocabulary."""
    tensors, meta = st.load(path)
    if meta.get("attn.kind") != "gpt":
        sys.exit(f"{path} is not a language model file (attn.kind {meta.get('attn.kind')!r})")
    cfg = json.loads(meta["model"])
    v = json.loads(meta["vocab"])
    vocab = Vocab(v["unit"], [chr(c) for c in v.get("chars", [])])
    model = GPT({**cfg, "dropout": 0.0})
    # The checkpoint also holds the optimizer's state; the model takes its own keys.
    missing = [k for k in model.state_dict() if k not in tensors]
    if missing:
        sys.exit(f"{path} lacks the parameters {', '.join(missing)}")
    model.load_state_dict({k: torch.from_numpy(tensors[k]) for k in model.state_dict()})
    model.eval()
    return model, cfg, vocab


def evaluate(args):
    """The validation loss of an attn model file, computed by PyTorch: it checks that
    both sides measure the same windows the same way."""
    model, cfg, vocab = load_attn_model(args.model)
    with open(args.data, "rb") as f:
        ids = vocab.encode(f.read())
    loss, count = valid_loss(model, ids, cfg["block_size"], args.eval_windows, 16)
    print(json.dumps({"valid_loss": loss, "valid_windows": count,
                      "torch_version": torch.__version__}))


@torch.no_grad()
def generate(args):
    model, cfg, vocab = load_attn_model(args.model)
    if args.prompt_file:
        with open(args.prompt_file, "rb") as f:
            prompt = f.read()
    else:
        prompt = args.prompt.encode("utf-8")
    idx = torch.from_numpy(vocab.encode(prompt))[None, :]
    block = cfg["block_size"]

    start = time.perf_counter()
    first = None
    for _ in range(args.tokens):
        logits, _ = model(idx[:, -block:])
        idx = torch.cat([idx, logits[:, -1, :].argmax(-1, keepdim=True)], dim=1)
        if first is None:
            first = time.perf_counter()
    last = time.perf_counter()
    seconds, prefill, decode = last - start, first - start, last - first

    new = idx[0, -args.tokens:].tolist()
    prompt_tokens = idx.shape[1] - args.tokens
    print(json.dumps({
        "prompt_tokens": prompt_tokens, "tokens": args.tokens, "cache": False,
        "prefill_seconds": prefill, "prefill_tokens_per_s": prompt_tokens / prefill,
        "decode_tokens": args.tokens - 1, "decode_seconds": decode,
        "decode_tokens_per_s": (args.tokens - 1) / decode if decode > 0 else 0.0,
        "seconds": seconds, "tokens_per_s": args.tokens / seconds, "text": vocab.decode(new),
        "threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "blas": blas_library(),
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the model in PyTorch on attn's batches")
    t.add_argument("--attn", required=True, help="path of the attn tool (for `attn data`)")
    t.add_argument("--data", required=True, help="the UTF-8 text file")
    t.add_argument("--unit", choices=["chars", "bytes"], default="chars")
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--heads", type=int, default=4)
    t.add_argument("--kv-heads", type=int, default=0)
    t.add_argument("--embd", type=int, default=128)
    t.add_argument("--block", type=int, default=64)
    t.add_argument("--positions", choices=["learned", "sinusoidal", "rope", "alibi"],
                   default="learned")
    t.add_argument("--window", type=int, default=0)
    t.add_argument("--no-bias", action="store_true")
    t.add_argument("--no-tie", action="store_true")
    t.add_argument("--dropout", type=float, default=0.0)
    t.add_argument("--batch", type=int, default=12)
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--min-lr", type=float, default=1e-4)
    t.add_argument("--warmup", type=int, default=100)
    t.add_argument("--weight-decay", type=float, default=0.1)
    t.add_argument("--clip", type=float, default=1.0)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--eval-windows", type=int, default=64,
                   help="validation windows for the final loss (0: no evaluation)")

    g = sub.add_parser("generate", help="greedy, uncached generation with an attn model file")
    g.add_argument("--model", required=True, help="a model file of attn train --task text")
    prompt = g.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt")
    prompt.add_argument("--prompt-file")
    g.add_argument("--tokens", type=int, required=True)

    e = sub.add_parser("eval", help="the validation loss of an attn model file")
    e.add_argument("--model", required=True, help="a model file of attn train --task text")
    e.add_argument("--data", required=True, help="the text it was trained on")
    e.add_argument("--eval-windows", type=int, default=64)

    for p in (t, g, e):
        p.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.command == "train":
        if args.steps < 1 or args.batch < 1 or args.block < 1:
            sys.exit("--steps, --batch and --block must be at least 1")
        train(args)
    elif args.command == "eval":
        if args.eval_windows < 1:
            sys.exit("--eval-windows must be at least 1")
        evaluate(args)
    else:
        if args.tokens < 1:
            sys.exit("--tokens must be at least 1")
        generate(args)


if __name__ == "__main__":
    main()
