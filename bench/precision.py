#!/usr/bin/python3
"""What mixed precision costs in accuracy: the same language model trained in
float32 and in bf16 (`attn train --precision`) on the same batches, side by side.

    bench/precision.py build/attn [--steps 2000] [--threads 2] [--json]

The corpus is bench/gpt.py's (about 1 MB of English from /usr/share/common-licenses
and /usr/share/doc/*/copyright), encoded by characters. The model is gpt.py's
small one, (layers, heads, embd, block, batch) = (4, 4, 128, 64, 12), with its
schedule (lr 1e-3, warm-up 100, cosine to 1e-4, weight decay 0.1, clip 1, seed 1,
dropout 0): both runs draw the same batches from the same initial weights and
differ only in the precision of the products. Each reports its last training loss
and its validation loss over the same 64 windows, each measured in the precision
it trained in (the checkpoints are float32 either way).

Goal (issue 16): |valid loss bf16 - valid loss float32| <= 0.02.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpt import build_corpus  # noqa: E402

MODEL = {"layers": 4, "heads": 4, "embd": 128, "block": 64, "batch": 12}
TRAIN = {"lr": 1e-3, "min-lr": 1e-4, "warmup": 100, "weight-decay": 0.1, "clip": 1.0, "seed": 1,
         "eval-windows": 64}
GOAL = 0.02


def log(message):
    print(message, file=sys.stderr, flush=True)


def train(attn, corpus, precision, steps, threads, out):
    command = [attn, "train", "--task", "text", "--data", corpus,
               *[a for k, v in {**MODEL, **TRAIN}.items() for a in (f"--{k}", str(v))],
               "--steps", str(steps), "--eval-every", "0", "--precision", precision,
               "--threads", str(threads), "--out", out, "--json"]
    log("+ " + " ".join(command))
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "ATTN_NUM_THREADS": str(threads)})
    if done.returncode != 0:
        sys.exit(f"precision.py: attn train exited with status {done.returncode}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["precision"] != precision:
        sys.exit(f"precision.py: asked for {precision}, attn trained in {report['precision']}")
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attn", help="path of the attn tool")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="one JSON object per run")
    args = parser.parse_args()
    if args.steps < 1 or args.threads < 1:
        sys.exit("precision.py: --steps and --threads must be positive")
    attn = os.path.abspath(args.attn)
    with tempfile.TemporaryDirectory(prefix="attn-precision-") as directory:
        corpus = os.path.join(directory, "corpus.txt")
        files, size, chars, vocab = build_corpus(corpus)
        runs = {p: train(attn, corpus, p, args.steps, args.threads,
                         os.path.join(directory, f"{p}.safetensors"))
                for p in ("float32", "bf16")}
    if args.json:
        for p, r in runs.items():
            print(json.dumps({"precision": p, **r}))
        return
    f, b = runs["float32"], runs["bf16"]
    diff = b["valid_loss"] - f["valid_loss"]
    print(f"### Accuracy of mixed precision ({MODEL['layers']} layers, {MODEL['heads']} heads, "
          f"embd {MODEL['embd']}, block {MODEL['block']}, batch {MODEL['batch']}, "
          f"{args.steps} steps, {f['parameters']:,} parameters)")
    print()
    print("| precision | last train loss | validation loss | ms/step | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for p, r in runs.items():
        print(f"| {p} | {r['train_loss']:.4f} | {r['valid_loss']:.4f} | {r['ms_per_step']:.1f} "
              f"| {f['ms_per_step'] / r['ms_per_step']:.2f}x |")
    print()
    print(f"Corpus: {files} files, {size:,} bytes, {vocab} distinct characters. Same initial "
          f"weights, batches, AdamW and schedule (lr {TRAIN['lr']:g}, warm-up {TRAIN['warmup']}, "
          f"cosine to {TRAIN['min-lr']:g}); validation: the mean cross-entropy (nats per "
          f"character) over the same {f['valid_windows']} windows, each run in its own "
          f"precision. bf16 - float32 = {diff:+.4f} (goal |difference| <= {GOAL:g}: "
          f"{'met' if abs(diff) <= GOAL else 'not met'}).")


if __name__ == "__main__":
    main()
