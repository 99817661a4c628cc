#!/usr/bin/python3
"""Data-parallel attn train on this machine, and what it would do on a cluster.

    bench/mpi.py build/attn [--scale 1] [--json]

Each model trains the same steps three ways, in one run, with the same options:
  - 1 process x 2 threads    (attn train --threads 2)
  - 2 ranks x 1 thread       (mpirun -np 2 attn train --threads 1)
  - 1 process x 1 thread, --accumulate 2: the 2 ranks' work done one after the other
The models: the language model of bench/gpt.py, (layers, heads, embd, block, batch)
= (4, 4, 128, 64, 12) and (6, 6, 384, 256, 8), on its corpus, and the dates task's
default GRU with Bahdanau attention (batch 64). Every run reports its mean time per
step (rank 0's; every step counted, the first too) and, per step, the time rank 0
spends exchanging the gradient once both ranks are there (attn's reduce-scatter in
rank order and all-gather) and the time it waits for the other rank before (a
barrier: the ranks' passes take unequal times on a shared machine).

Then an estimate for N machines like this one on a 25 Gbit/s network, each running
1 process x 2 threads with this batch (weak scaling: the global batch is N times
as large). Each step adds the gradient's exchange to the measured step time t_1:
    S     = 4 bytes x parameters                (the float32 gradient)
    t_ex  = 2 (N - 1) / N x S / W + 2 (N - 1) a  (bandwidth W = 25 Gbit/s = 3.125 GB/s,
                                                  a = 20 us per message)
    t_N   = t_1 + t_ex,   efficiency = t_1 / t_N,   speed-up = N x efficiency
2 (N - 1) / N x S is what every rank sends and receives in a reduce-scatter and an
all-gather (or a ring all-reduce); 2 (N - 1) messages of latency a is the ring's
count. Nothing is overlapped with computation (attn exchanges after the backward
pass), so this is what attn as built would reach, not a bound.
Progress goes to stderr; the tables (Markdown) to stdout, or with --json one JSON
object per measurement.
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

NETWORK_BYTES_PER_S = 25e9 / 8
MESSAGE_LATENCY_S = 20e-6
NODES = [8, 32, 128]
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}

# name, attn train options, steps at --scale 1
MODELS = [
    ("GPT (4, 4, 128, 64), batch 12",
     ["--task", "text", "--layers", "4", "--heads", "4", "--embd", "128", "--block", "64",
      "--batch", "12", "--eval-every", "0"], 40),
    ("GPT (6, 6, 384, 256), batch 8",
     ["--task", "text", "--layers", "6", "--heads", "6", "--embd", "384", "--block", "256",
      "--batch", "8", "--eval-every", "0"], 10),
    ("dates, GRU + Bahdanau, batch 64", ["--task", "dates", "--batch", "64"], 60),
]
SETUPS = [
    ("1 process x 2 threads", [], ["--threads", "2"]),
    ("2 ranks x 1 thread", ["mpirun", "-np", "2"], ["--threads", "1"]),
    ("1 process x 1 thread, --accumulate 2", [], ["--threads", "1", "--accumulate", "2"]),
]


def log(message):
    print(message, file=sys.stderr, flush=True)


def train(launcher, options, out):
    """Runs attn train with --json; returns its report."""
    command = [*launcher, ARGS.attn, "train", *options, "--out", out, "--json"]
    log("+ " + " ".join(command))
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, **MPI_ENV})
    if done.returncode != 0:
        sys.exit(f"mpi.py: {' '.join(command)} exited with status {done.returncode}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


def estimate(step_ms, parameters, nodes):
    """The weak-scaling estimate of the docstring for `nodes` machines."""
    size = 4.0 * parameters
    exchange = (2 * (nodes - 1) / nodes * size / NETWORK_BYTES_PER_S
                + 2 * (nodes - 1) * MESSAGE_LATENCY_S)
    step = step_ms / 1000.0
    efficiency = step / (step + exchange)
    return exchange * 1000.0, efficiency, nodes * efficiency


def emit(kind, report):
    if ARGS.json:
        print(json.dumps({"measurement": kind, **report}), flush=True)


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("attn", help="the attn binary (built with MPI: attn info says mpi)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the step counts")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per measurement instead of the tables")
    ARGS = parser.parse_args()
    ARGS.attn = os.path.abspath(ARGS.attn)
    info = json.loads(subprocess.run([ARGS.attn, "info", "--json"], stdout=subprocess.PIPE,
                                     text=True, check=True).stdout)
    if not info.get("mpi"):
        sys.exit("mpi.py: this attn is built without MPI (attn info); install Open MPI "
                 "(scripts/setup.sh test) and rebuild")
    start = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory(prefix="attn-mpi-bench-") as directory:
        corpus = os.path.join(directory, "corpus.txt")
        build_corpus(corpus)
        for name, options, steps in MODELS:
            steps = max(4, round(steps * ARGS.scale))
            options = [*options, "--steps", str(steps), "--seed", "1"]
            if "text" in options:
                options += ["--data", corpus]
            reports = []
            for setup, launcher, extra in SETUPS:
                report = train(launcher, [*options, *extra],
                               os.path.join(directory, f"{len(rows)}-{len(reports)}.st"))
                emit("training", {"model": name, "setup": setup, **report})
                reports.append(report)
            rows.append((name, reports))
    if ARGS.json:
        for name, reports in rows:
            one = reports[0]
            for nodes in NODES:
                exchange, efficiency, speedup = estimate(one["ms_per_step"], one["parameters"],
                                                         nodes)
                emit("estimate", {"model": name, "nodes": nodes, "exchange_ms": exchange,
                                  "efficiency": efficiency, "speedup": speedup})
        log(f"mpi.py: done in {time.monotonic() - start:.0f} s")
        return
    print(f"attn {info['version']}, {info['mpi']}, {info['gemm']}, simd {info['simd']}; "
          "ms per step (mean over every step)")
    print()
    print("| model | parameters | gradient | 1 process x 2 threads | 2 ranks x 1 thread "
          "| of which exchanging | of which waiting | 2 ranks / 1 process (steps/s) "
          "| 1 thread, --accumulate 2 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, (one, two, accumulated) in rows:
        print(f"| {name} | {one['parameters'] / 1e6:.2f}M | {4 * one['parameters'] / 1e6:.1f} MB "
              f"| {one['ms_per_step']:.1f} | {two['ms_per_step']:.1f} "
              f"| {two['exchange_ms_per_step']:.2f} "
              f"({100 * two['exchange_ms_per_step'] / two['ms_per_step']:.1f} %) "
              f"| {two['wait_ms_per_step']:.2f} "
              f"| {one['ms_per_step'] / two['ms_per_step']:.2f} "
              f"| {accumulated['ms_per_step']:.1f} |")
    print()
    print("Estimate for N such machines on 25 Gbit/s, each 1 process x 2 threads with this "
          "batch (formula in bench/mpi.py): exchange ms per step, efficiency, speed-up")
    print()
    print("| model | " + " | ".join(f"N = {n}" for n in NODES) + " |")
    print("|---|" + "---|" * len(NODES))
    for name, (one, _, _) in rows:
        cells = []
        for nodes in NODES:
            exchange, efficiency, speedup = estimate(one["ms_per_step"], one["parameters"], nodes)
            cells.append(f"{exchange:.1f} ms, {100 * efficiency:.0f} %, {speedup:.1f}x")
        print(f"| {name} | " + " | ".join(cells) + " |")
    log(f"mpi.py: done in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
