#!/usr/bin/python3
"""What dropout costs in a training step, attn beside PyTorch.

    bench/dropout.py [ATTN] [--threads 2] [--steps 20] [--repeats 3] [--p 0.1]
                     [--torch-blas DIR] [--no-torch]

Trains the issue's character model (6 layers, 6 heads, embd 192, block 128, batch 16;
bench/gpt.py's corpus and schedule) for --steps steps with --dropout 0 and with
--dropout P, alternating the two --repeats times so that both see the same load, and
prints each side's fastest ms per step and dropout's cost: the time it adds to a step,
(with - without) / without. attn draws every mask from Philox
(attention weights in the fused kernel, the residual and embedding dropouts in the
vector kernels); PyTorch (bench/torch_gpt.py, the same model) runs nn.Dropout and
its attention's dropout on its own generator.
"""

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpt import TORCH_SCRIPT, build_corpus, log, options, run_json  # noqa: E402
from torch_setup import add_blas_option, blas_note, torch_env  # noqa: E402

MODEL = {"layers": 6, "heads": 6, "embd": 192, "block": 128}
BATCH = 16


def step_ms(args, corpus, out, side, p):
    extra = {"dropout": p}
    if side == "attn":
        command = [args.attn, "train", "--task", "text", "--data", corpus,
                   *options(MODEL, BATCH, args.steps, extra), "--eval-every", "0",
                   "--threads", str(args.threads), "--out", out, "--json"]
        report, _ = run_json(command, {**os.environ, "ATTN_NUM_THREADS": str(args.threads)})
    else:
        command = ["/usr/bin/python3", TORCH_SCRIPT, "train", "--attn", args.attn,
                   "--data", corpus, *options(MODEL, BATCH, args.steps, extra),
                   "--threads", str(args.threads)]
        report, _ = run_json(command, torch_env(args.threads, args.torch_blas))
        args.blas = report.get("blas")
        args.torch_version = report.get("torch_version")
    return report["ms_per_step"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("attn", nargs="?", default="build/attn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--p", type=float, default=0.1)
    parser.add_argument("--no-torch", dest="torch", action="store_false")
    add_blas_option(parser)
    args = parser.parse_args()
    args.attn = os.path.abspath(args.attn)
    if args.threads < 1 or args.steps < 1 or args.repeats < 1 or not 0 < args.p < 1:
        sys.exit("dropout.py: --threads, --steps and --repeats must be positive, --p in (0, 1)")
    sides = ["attn", "PyTorch"] if args.torch else ["attn"]
    best = {(side, p): float("inf") for side in sides for p in (0.0, args.p)}
    with tempfile.TemporaryDirectory(prefix="attn-dropout-bench-") as directory:
        corpus = os.path.join(directory, "corpus.txt")
        build_corpus(corpus)
        out = os.path.join(directory, "model.safetensors")
        for repeat in range(args.repeats):
            log(f"dropout.py: round {repeat + 1} of {args.repeats}")
            for side in sides:
                for p in (0.0, args.p):
                    best[side, p] = min(best[side, p], step_ms(args, corpus, out, side, p))
    print(f"Dropout's cost in a training step: {MODEL['layers']} layers, {MODEL['heads']} heads, "
          f"embd {MODEL['embd']}, block {MODEL['block']}, batch {BATCH}, {args.threads} threads, "
          f"fastest of {args.repeats} runs of {args.steps} steps.")
    if args.torch:
        print(blas_note(args.torch_version, args.blas))
    print()
    print(f"| side | ms/step, dropout 0 | ms/step, dropout {args.p:g} | dropout's cost |")
    print("| --- | ---: | ---: | ---: |")
    for side in sides:
        without, with_p = best[side, 0.0], best[side, args.p]
        print(f"| {side} | {without:.1f} | {with_p:.1f} | +{100 * (with_p - without) / without:.1f} % |")


if __name__ == "__main__":
    main()
