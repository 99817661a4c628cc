#!/usr/bin/python3
"""What mixed precision costs in accuracy: the same models trained in float32 and
in bf16 (`attn train --precision`) on the same batches, side by side.

    bench/precision.py build/attn [--part lm|dates|both] [--steps 2000] [--threads 2] [--json]

Two tables. The language model (--part lm):

The corpus is bench/gpt.py's (about 1 MB of English from /usr/share/common-licenses
and /usr/share/doc/*/copyright), encoded by characters. The model is gpt.py's
small one, (layers, heads, embd, block, batch) = (4, 4, 128, 64, 12), with its
schedule (lr 1e-3, warm-up 100, cosine to 1e-4, weight decay 0.1, clip 1, seed 1,
dropout 0): both runs draw the same batches from the same initial weights and
differ only in the precision of the products. Each reports its last training loss
and its validation loss over the same 64 windows, each measured in the precision
it trained in (the checkpoints are float32 either way).

Goal (issue 16): |valid loss bf16 - valid loss float32| <= 0.02.

The sequence models (--part dates): the README's dates run (`attn train --model M`,
its defaults: 1000 steps of 64 examples, lr 3e-3, warm-up 100, seed 1) for the
Transformer and the default GRU with Bahdanau attention, in float32 and in bf16,
each with the same weights and batches. Each reports the test split's exact match
decoded greedily in the precision it trained in, and `attn eval` of its
checkpoint (float32 decoding of the same weights), the training loop's time and
the whole command's wall time. Goal (issue 16): bf16 test exact match >= 99.5 %,
as float32's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpt import build_corpus  # noqa: E402

MODEL = {"layers": 4, "heads": 4, "embd": 128, "block": 64, "batch": 12}
TRAIN = {"lr": 1e-3, "min-lr": 1e-4, "warmup": 100, "weight-decay": 0.1, "clip": 1.0, "seed": 1,
         "eval-windows": 64}
GOAL = 0.02
DATES_MODELS = ("gru-bahdanau", "transformer")
DATES_GOAL = 99.5


def log(message):
    print(message, file=sys.stderr, flush=True)


def run_json(command, threads):
    """Runs an attn command and returns its last line's JSON and its wall time."""
    log("+ " + " ".join(command))
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "ATTN_NUM_THREADS": str(threads)})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"precision.py: attn {command[1]} exited with status {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1]), seconds


def train(attn, precision, threads, out, options):
    report, seconds = run_json([attn, "train", *options, "--precision", precision,
                                "--threads", str(threads), "--out", out, "--json"], threads)
    if report["precision"] != precision:
        sys.exit(f"precision.py: asked for {precision}, attn trained in {report['precision']}")
    report["wall_seconds"] = seconds
    return report


def train_text(attn, corpus, precision, steps, threads, out):
    options = ["--task", "text", "--data", corpus,
               *[a for k, v in {**MODEL, **TRAIN}.items() for a in (f"--{k}", str(v))],
               "--steps", str(steps), "--eval-every", "0"]
    return train(attn, precision, threads, out, options)


def train_dates(attn, model, precision, threads, out):
    report = train(attn, precision, threads, out, ["--model", model])
    evaluated, _ = run_json([attn, "eval", "--model", out, "--threads", str(threads), "--json"],
                            threads)
    report["float32_decoding"] = evaluated
    return report


def language_model(attn, args, directory):
    corpus = os.path.join(directory, "corpus.txt")
    files, size, chars, vocab = build_corpus(corpus)
    runs = {p: train_text(attn, corpus, p, args.steps, args.threads,
                          os.path.join(directory, f"{p}.safetensors"))
            for p in ("float32", "bf16")}
    if args.json:
        for p, r in runs.items():
            print(json.dumps({"part": "lm", "precision": p, **r}))
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


def dates(attn, args, directory):
    runs = {(m, p): train_dates(attn, m, p, args.threads,
                                os.path.join(directory, f"{m}-{p}.safetensors"))
            for m in DATES_MODELS for p in ("float32", "bf16")}
    if args.json:
        for (m, p), r in runs.items():
            print(json.dumps({"part": "dates", "model": m, "precision": p, **r}))
        return
    first = runs[(DATES_MODELS[0], "float32")]
    print(f"### Accuracy of mixed precision on dates ({first['steps']} steps of "
          f"{first['batch']} examples, {first['test_examples']} test examples, "
          f"{args.threads} threads)")
    print()
    print("| model | precision | test exact match | float32 decoding of its weights "
          "| training s | wall s | ms/step | speed-up |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    met = True
    for (m, p), r in runs.items():
        f = runs[(m, "float32")]
        decoded = r["float32_decoding"]
        print(f"| {m} | {p} | {r['test_accuracy']:.2f} % ({r['test_exact']}) "
              f"| {100.0 * decoded['exact'] / decoded['examples']:.2f} % "
              f"| {r['train_seconds']:.1f} | {r['wall_seconds']:.1f} | {r['ms_per_step']:.1f} "
              f"| {f['ms_per_step'] / r['ms_per_step']:.2f}x |")
        met = met and r["test_accuracy"] >= DATES_GOAL
    print()
    print(f"Same initial weights, batches, AdamW and schedule per model; test exact match "
          f"decoded greedily in the precision the run trained in (the training run's report), "
          f"then in float32 by `attn eval`. Goal: every run >= {DATES_GOAL} % "
          f"({'met' if met else 'not met'}).")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attn", help="path of the attn tool")
    parser.add_argument("--part", choices=("lm", "dates", "both"), default="both")
    parser.add_argument("--steps", type=int, default=2000, help="of the language model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="one JSON object per run")
    args = parser.parse_args()
    if args.steps < 1 or args.threads < 1:
        sys.exit("precision.py: --steps and --threads must be positive")
    attn = os.path.abspath(args.attn)
    with tempfile.TemporaryDirectory(prefix="attn-precision-") as directory:
        if args.part in ("lm", "both"):
            language_model(attn, args, directory)
        if args.part == "both" and not args.json:
            print()
        if args.part in ("dates", "both"):
            dates(attn, args, directory)


if __name__ == "__main__":
    main()
