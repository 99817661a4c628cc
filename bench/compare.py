#!/usr/bin/python3
"""attn against PyTorch on this CPU: the same sizes and threads, in one run.

Usage, from the source tree after building (cmake -S . -B build && cmake --build build):

    bench/compare.py build/attn                         # D=64, L=1024,2048,4096, 2 threads
    bench/compare.py build/attn --lengths 512,1024 --dims 64,128 --threads 1
    bench/compare.py build/attn --torch-max-length 4096 # let PyTorch run longer sequences
    bench/compare.py build/attn --torch-blas DIR        # PyTorch on DIR/libblas.so.3

It runs, one after the other,
    ATTN bench attention --json   (the fused kernel; the SGEMM rate of the same run)
    ATTN bench mha --json         (attn_mha = nn.MultiheadAttention(512, 8, batch_first=True))
    /usr/bin/python3 bench/pytorch_attention.py --json   (matmul-softmax-matmul and
                                                          nn.MultiheadAttention)
with the same lengths, head dimensions, --threads and --min-time, and prints two tables:
attn's ms and fraction of the GEMM rate, PyTorch's ms, and the speed-up (PyTorch ms /
attn ms). PyTorch needs O(L^2) memory and time per head, so it runs only lengths up
to --torch-max-length (default 2048); longer rows show '-'.
PyTorch runs on Debian's OpenBLAS for OpenMP (libopenblas0-openmp) with
OPENBLAS_CORETYPE=SkylakeX by default (bench/torch_setup.py); the header names the
BLAS it ran on.
The machine may be shared: compare within one run, not across runs.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from torch_setup import add_blas_option, blas_note, torch_env  # noqa: E402


def run_json(command, env=None):
    """Runs command, echoing it to stderr; returns its stdout lines parsed as JSON."""
    print("+ " + " ".join(command), file=sys.stderr, flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"compare.py: {command[0]} exited with status {result.returncode}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def speed_up(torch_ms, attn_ms):
    """PyTorch's time over attn's, right-aligned in 8 columns ('-' if not run)."""
    return f"{'-':>8}" if torch_ms is None else f"{torch_ms / attn_ms:7.0f}x"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("attn", help="the attn tool, e.g. build/attn")
    parser.add_argument("--lengths", default="1024,2048,4096")
    parser.add_argument("--dims", default="64")
    parser.add_argument("--mha-lengths", default=None, help="default: --lengths")
    parser.add_argument("--causal", choices=["both", "yes", "no"], default="both")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-time", default="0.5")
    parser.add_argument("--torch-max-length", type=int, default=2048)
    parser.add_argument("--python", default="/usr/bin/python3",
                        help="the Python with torch (default /usr/bin/python3)")
    add_blas_option(parser)
    args = parser.parse_args()
    mha_lengths = args.mha_lengths or args.lengths

    def torch_lengths(text):
        kept = [x for x in text.split(",") if int(x) <= args.torch_max_length]
        return ",".join(kept)

    common = ["--threads", str(args.threads), "--min-time", args.min_time, "--json"]
    attn_rows = run_json([args.attn, "bench", "attention", "--lengths", args.lengths,
                          "--dims", args.dims, "--causal", args.causal,
                          "--reference-max", "0"] + common)
    attn_rows += run_json([args.attn, "bench", "mha", "--lengths", mha_lengths] + common)
    torch_rows = []
    t_lengths, t_mha_lengths = torch_lengths(args.lengths), torch_lengths(mha_lengths)
    if t_lengths or t_mha_lengths:
        torch_cmd = [args.python, os.path.join(HERE, "pytorch_attention.py"),
                     "--dims", args.dims, "--causal", args.causal] + common
        torch_cmd += ["--lengths", t_lengths] if t_lengths else ["--what", "mha"]
        torch_cmd += ["--mha-lengths", t_mha_lengths] if t_mha_lengths else ["--what",
                                                                             "attention"]
        torch_rows = run_json(torch_cmd, torch_env(args.threads, args.torch_blas))

    def key(row):
        return (row["bench"], row.get("dim"), row["length"], row.get("causal"), row["pass"])

    torch_by_key = {key(row): row for row in torch_rows}
    attention = [row for row in attn_rows if row["bench"] == "attention"]
    mha = [row for row in attn_rows if row["bench"] == "mha"]
    gemm = attention[0]["gemm_gflops"] if attention else None

    print(f"\nattn ({attention[0]['kernel'] if attention else '?'} kernels) against PyTorch, "
          f"{args.threads} threads, fp32; SGEMM rate of this run: {fmt(gemm, '.0f')} GFLOP/s")
    if torch_rows:
        print(blas_note(torch_rows[0]["torch_version"], torch_rows[0]["blas"]))
    else:
        print(f"PyTorch not run: every length is above --torch-max-length "
              f"{args.torch_max_length}")
    print()
    print("Scaled dot-product attention, B=1 H=8 (PyTorch: matmul-softmax-matmul)\n")
    print(f"{'D':>4} {'L':>6} {'causal':<6} {'pass':<8} {'attn ms':>9} {'GFLOP/s':>8} "
          f"{'/ GEMM':>6} {'torch ms':>9} {'GFLOP/s':>8} {'speed-up':>8}")
    for row in attention:
        other = torch_by_key.get(key(row))
        t_ms = other["ms"] if other else None
        print(f"{row['dim']:4d} {row['length']:6d} {'yes' if row['causal'] else 'no':<6} "
              f"{row['pass']:<8} {row['ms']:9.2f} {row['gflops']:8.1f} {row['vs_gemm']:6.2f} "
              f"{fmt(t_ms, '9.1f', '        -')} "
              f"{fmt(other and other['gflops'], '8.1f', '       -')} "
              f"{speed_up(t_ms, row['ms'])}")

    print("\nnn.MultiheadAttention(512, 8, batch_first=True), self-attention, B=1, "
          "need_weights=False\n")
    print(f"{'L':>6} {'pass':<8} {'attn ms':>9} {'GFLOP/s':>8} {'torch ms':>9} {'GFLOP/s':>8} "
          f"{'speed-up':>8}")
    for row in mha:
        other = torch_by_key.get(key(row))
        t_ms = other["ms"] if other else None
        print(f"{row['length']:6d} {row['pass']:<8} {row['ms']:9.2f} {row['gflops']:8.1f} "
              f"{fmt(t_ms, '9.1f', '        -')} "
              f"{fmt(other and other['gflops'], '8.1f', '       -')} "
              f"{speed_up(t_ms, row['ms'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
