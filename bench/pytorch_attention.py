#!/usr/bin/python3
"""PyTorch's CPU attention at the sizes of `attn bench attention` and `attn bench mha`.

    /usr/bin/python3 bench/pytorch_attention.py [--threads 2] [--lengths 512,1024,2048]
        [--dims 64,128] [--mha-lengths 512,1024,2048] [--min-time 0.5] [--json]

Times, with torch.set_num_threads(N), fp32, B=1, H=8:
  - attention as matmul-softmax-matmul, q, k, v: (B, H, L, D); the causal one adds a
    -inf mask above the diagonal (Debian's PyTorch 1.13 has no
    F.scaled_dot_product_attention); forward, and forward+backward giving dq, dk, dv;
  - nn.MultiheadAttention(E=512, 8, batch_first=True) on self-attention, x: (B, L, E),
    need_weights=False (attn's module does not form the weights either), forward with
    autograd on (a training step's forward), and forward+backward.
Each time is the best of at least two runs lasting --min-time seconds in all.
GFLOP/s counts what `attn bench` counts: forward 4*B*H*L^2*D, backward 2.5x that,
halved when causal; for the module also 8*B*L*E^2 for the projections forward and
twice that backward.

PyTorch forms the (L, L) scores of every head, O(B*H*L^2) memory, so the default
lengths stop at 2048.
--json prints one JSON object per row, one per line, with the keys of `attn bench`
and the PyTorch version and BLAS file (torch_version, blas).

bench/compare.py runs it on Debian's OpenBLAS for OpenMP with
OPENBLAS_CORETYPE=SkylakeX by default (bench/torch_setup.py); run alone, PyTorch
loads the system's libblas.so.3.
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_setup import blas_library  # noqa: E402


def int_list(text):
    try:
        values = [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' has a value below 1")
    return values


def best_time(fn, min_time):
    """Seconds of the fastest of at least two runs lasting min_time in all."""
    best, spent, runs = math.inf, 0.0, 0
    while runs < 2 or spent < min_time:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        spent += elapsed
        runs += 1
    return best


def attention(q, k, v, causal):
    """softmax(q k^T / sqrt(D) + mask) v, the causal mask -inf where key j > query i."""
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if causal:
        L = q.shape[-2]
        mask = torch.triu(torch.full((L, L), float("-inf")), diagonal=1)
        scores = scores + mask
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def bench_attention(args, emit):
    for D in args.dims:
        for L in args.lengths:
            gen = torch.Generator().manual_seed(L * 1000 + D)
            shape = (args.batch, args.heads, L, D)
            q, k, v, dout = (torch.rand(shape, generator=gen) * 2 - 1 for _ in range(4))
            for causal in args.causal:
                for backward in args.passes:
                    flop = 4.0 * args.batch * args.heads * L * L * D
                    if backward:
                        flop *= 3.5
                    if causal:
                        flop /= 2

                    if backward:
                        qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))

                        def run():
                            for t in (qg, kg, vg):
                                t.grad = None
                            attention(qg, kg, vg, causal).backward(dout)
                    else:
                        def run():
                            with torch.no_grad():
                                attention(q, k, v, causal)

                    seconds = best_time(run, args.min_time)
                    emit({"bench": "attention", "batch": args.batch, "heads": args.heads,
                          "dim": D, "length": L, "causal": causal,
                          "pass": "fwd+bwd" if backward else "fwd", "ms": seconds * 1e3,
                          "gflops": flop / seconds * 1e-9, "threads": torch.get_num_threads()})


def bench_mha(args, emit):
    E = args.embed
    torch.manual_seed(1)
    module = torch.nn.MultiheadAttention(E, args.mha_heads, batch_first=True)
    for L in args.mha_lengths:
        gen = torch.Generator().manual_seed(L)
        x = torch.rand((args.batch, L, E), generator=gen) * 2 - 1
        dout = torch.rand((args.batch, L, E), generator=gen) * 2 - 1
        for backward in (False, True):
            xg = x.clone().requires_grad_()

            def run():
                module.zero_grad(set_to_none=True)
                xg.grad = None
                out, _ = module(xg, xg, xg, need_weights=False)
                if backward:
                    out.backward(dout)

            seconds = best_time(run, args.min_time)
            linear, attn = 8.0 * args.batch * L * E * E, 4.0 * args.batch * L * L * E
            flop = 3 * linear + 3.5 * attn if backward else linear + attn
            emit({"bench": "mha", "batch": args.batch, "embed": E, "heads": args.mha_heads,
                  "length": L, "pass": "fwd+bwd" if backward else "fwd", "ms": seconds * 1e3,
                  "gflops": flop / seconds * 1e-9, "threads": torch.get_num_threads()})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int_list, default=[512, 1024, 2048],
                        help="attention lengths (default 512,1024,2048)")
    parser.add_argument("--dims", type=int_list, default=[64, 128],
                        help="head dimensions (default 64,128)")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--causal", choices=["both", "yes", "no"], default="both")
    parser.add_argument("--pass", dest="pass_", choices=["fwd", "fwd+bwd", "both"],
                        default="both")
    parser.add_argument("--mha-lengths", type=int_list, default=[512, 1024, 2048],
                        help="nn.MultiheadAttention lengths (default 512,1024,2048)")
    parser.add_argument("--embed", type=int, default=512)
    parser.add_argument("--mha-heads", type=int, default=8)
    parser.add_argument("--what", choices=["attention", "mha", "both"], default="both")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads (default: PyTorch's)")
    parser.add_argument("--min-time", type=float, default=0.5)
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per row, one per line")
    args = parser.parse_args()
    if args.heads < 1 or args.batch < 1 or args.embed % max(args.mha_heads, 1) != 0:
        parser.error("--heads and --batch must be positive, --mha-heads must divide --embed")
    if not args.min_time >= 0:
        parser.error("--min-time must be >= 0")
    args.causal = {"both": [False, True], "yes": [True], "no": [False]}[args.causal]
    args.passes = {"both": [False, True], "fwd": [False], "fwd+bwd": [True]}[args.pass_]
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    header = {"attention": False, "mha": False}
    blas = blas_library()

    def emit(row):
        if args.json:
            print(json.dumps({**row, "torch_version": torch.__version__, "blas": blas}),
                  flush=True)
            return
        if not header[row["bench"]]:
            header[row["bench"]] = True
            if row["bench"] == "attention":
                print(f"PyTorch {torch.__version__} on {blas}, {torch.get_num_threads()} "
                      f"threads: matmul-softmax-matmul, B={args.batch} H={args.heads}\n")
                print(f"{'D':>4} {'L':>6} {'causal':<6} {'pass':<8} {'ms':>10} {'GFLOP/s':>9}")
            else:
                print(f"\nPyTorch {torch.__version__} on {blas}, {torch.get_num_threads()} "
                      f"threads: nn.MultiheadAttention({args.embed}, {args.mha_heads}, "
                      f"batch_first=True), B={args.batch}\n")
                print(f"{'L':>6} {'pass':<8} {'ms':>10} {'GFLOP/s':>9}")
        if row["bench"] == "attention":
            print(f"{row['dim']:4d} {row['length']:6d} {'yes' if row['causal'] else 'no':<6} "
                  f"{row['pass']:<8} {row['ms']:10.2f} {row['gflops']:9.1f}", flush=True)
        else:
            print(f"{row['length']:6d} {row['pass']:<8} {row['ms']:10.2f} {row['gflops']:9.1f}",
                  flush=True)

    try:
        if args.what in ("attention", "both"):
            bench_attention(args, emit)
        if args.what in ("mha", "both"):
            bench_mha(args, emit)
    except RuntimeError as error:  # PyTorch reports running out of memory this way
        print(f"pytorch_attention.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
