#!/usr/bin/python3
"""Trains every sequence-to-sequence model of attn on a built-in task and prints a
table: test exact match, wall time and training tokens/s of each, and the same for
a PyTorch script of the default model trained on the same examples with the same
sizes, steps and schedule (bench/torch_seq2seq.py), with the speed ratio.

    bench/seq2seq.py build/attn [--threads 2] [--only gru-bahdanau/soft,...]
                                [--no-torch] [--torch-steps N] [--torch-blas DIR]
                                [--json]

Each row is one `attn train --json` run in a scratch directory; its wall time is
the whole process (model setup, training, validation, test decoding).

PyTorch runs on Debian's OpenBLAS for OpenMP (libopenblas0-openmp) with
OPENBLAS_CORETYPE=SkylakeX by default, or on the libblas.so.3 in --torch-blas DIR
(bench/torch_setup.py); the header names the BLAS it ran on.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_setup import add_blas_option, blas_note, torch_env  # noqa: E402

# (model, attention, extra options); the first row is the default `attn train`.
ROWS = [
    ("gru-bahdanau", "soft", []),
    ("rnn-bahdanau", "soft", []),
    ("lstm-bahdanau", "soft", []),
    ("lstm-luong-dot", "soft", []),
    ("lstm-luong-general", "soft", []),
    ("transformer", "soft", []),
    ("gru-bahdanau", "hard-reinforce", []),
    ("gru-bahdanau", "hard-gumbel", []),
]

TARGETS = {"soft": 99.0, "hard-reinforce": 95.0, "hard-gumbel": 95.0}
DEFAULT_TARGET = 99.5


def run_report(command, env=None):
    """Runs command; returns the JSON report it prints, with its wall time added."""
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    report = json.loads(done.stdout)
    report["wall_seconds"] = wall
    return report


def run_attn(attn, model, attention, extra, threads, task, directory):
    out = os.path.join(directory, f"{model}-{attention}.safetensors")
    return run_report([attn, "train", "--task", task, "--model", model, "--attention", attention,
                       "--threads", str(threads), "--json", "--out", out] + extra)


def run_torch(default_report, threads):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_seq2seq.py")
    command = ["/usr/bin/python3", script, "--attn", ARGS.attn, "--threads", str(threads),
               "--checkpoint", default_report["checkpoint"],
               "--test-count", str(default_report["test_examples"])]
    if ARGS.torch_steps:
        command += ["--steps", str(ARGS.torch_steps)]
    return run_report(command, torch_env(threads, ARGS.torch_blas))


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attn", help="path of the attn tool")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--task", default="dates")
    parser.add_argument("--only", help="comma-separated model/attention rows to run")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch run")
    parser.add_argument("--torch-steps", type=int,
                        help="train PyTorch for only the first N steps: its speed, not its "
                             "accuracy")
    add_blas_option(parser)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines")
    ARGS = parser.parse_args()
    rows = ROWS
    if ARGS.only:
        wanted = set(ARGS.only.split(","))
        rows = [r for r in ROWS if f"{r[0]}/{r[1]}" in wanted]
        if not rows:
            sys.exit(f"--only matches no row; rows are "
                     f"{', '.join(f'{m}/{a}' for m, a, _ in ROWS)}")

    with tempfile.TemporaryDirectory() as directory:
        reports = []
        for model, attention, extra in rows:
            report = run_attn(ARGS.attn, model, attention, extra, ARGS.threads, ARGS.task,
                              directory)
            reports.append(report)
            if ARGS.json:
                print(json.dumps(report), flush=True)
        torch_report = None
        if not ARGS.no_torch and rows[0] == ROWS[0]:
            torch_report = run_torch(reports[0], ARGS.threads)
            if ARGS.json:
                print(json.dumps(torch_report), flush=True)
    if ARGS.json:
        return

    print(f"task {ARGS.task}, {ARGS.threads} threads")
    if torch_report:
        print(blas_note(torch_report["torch_version"], torch_report["blas"]))
    print(f"{'model':<20} {'attention':<15} {'steps':>6} {'test exact':>10} {'target':>7} "
          f"{'wall s':>7} {'train s':>8} {'tokens/s':>9}")
    for i, r in enumerate(reports):
        target = DEFAULT_TARGET if i == 0 and rows[0] == ROWS[0] else TARGETS[r["attention"]]
        mark = "" if r["test_accuracy"] >= target else "  (below target)"
        print(f"{r['model']:<20} {r['attention']:<15} {r['steps']:>6} "
              f"{r['test_accuracy']:>9.2f}% {target:>6.1f}% {r['wall_seconds']:>7.1f} "
              f"{r['train_seconds']:>8.1f} {r['tokens_per_second']:>9.0f}{mark}")
    if torch_report:
        t = torch_report
        accuracy = (f"{t['test_accuracy']:>9.2f}%" if t["steps"] == reports[0]["steps"]
                    else f"{'-':>10}")
        print(f"{'PyTorch ' + t['model']:<20} {t['attention']:<15} {t['steps']:>6} "
              f"{accuracy} {'':>7} {t['wall_seconds']:>7.1f} "
              f"{t['train_seconds']:>8.1f} {t['tokens_per_second']:>9.0f}")
        ratio = reports[0]["tokens_per_second"] / t["tokens_per_second"]
        print(f"training speed of the default model, attn / PyTorch: {ratio:.1f}x")


if __name__ == "__main__":
    main()
