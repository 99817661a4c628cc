#!/usr/bin/python3
"""attn from Python, in one run: what the binding costs, and what attn.torch
gives a PyTorch user.

Usage, from the source tree after building (cmake -S . -B build && cmake --build build):

    bench/python_attention.py build            # the build folder: build/attn, build/python
    bench/python_attention.py build --threads 1 --min-time 1

It prints four tables:
  1. attn.scaled_dot_product_attention from NumPy against the same call timed in C
     (`attn bench attention --json`, the same B, H, L, D, threads), forward: the
     binding's cost per call in microseconds and as a fraction of the call;
  2. attn.torch.scaled_dot_product_attention against PyTorch's attention
     (matmul-softmax-matmul: Debian's PyTorch 1.13 has no fused CPU attention),
     forward and forward+backward, with autograd;
  3. attn.torch.MultiheadAttention against torch.nn.MultiheadAttention(512, 8,
     batch_first=True), need_weights=False, forward with autograd on and
     forward+backward;
  4. one training step (forward, backward, AdamW) of a nanoGPT-style PyTorch model
     with PyTorch's attention and with attn.torch's, the rest of the model the same.
Each time is the best of at least two runs lasting --min-time seconds in all.
PyTorch runs on Debian's OpenBLAS for OpenMP with OPENBLAS_CORETYPE=SkylakeX
(bench/torch_setup.py): the script restarts itself in that environment. The
machine may be shared: compare within one run, not across runs.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from torch_setup import add_blas_option, blas_library, blas_note, torch_env  # noqa: E402

RESTARTED = "ATTN_BENCH_PYTHON_ENV"


def int_list(text):
    return [int(item) for item in text.split(",")]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("build", help="the build folder, holding attn and python/attn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=0.5)
    parser.add_argument("--overhead-lengths", type=int_list, default=[16, 128, 512, 2048])
    parser.add_argument("--lengths", type=int_list, default=[512, 1024, 2048])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--gpt", type=int_list, default=[6, 6, 384, 256, 8],
                        help="layers, heads, embedding, block, batch of the model (default "
                             "6,6,384,256,8)")
    add_blas_option(parser)
    return parser.parse_args()


def restart_in_torch_env(args):
    """Runs this script again with PyTorch's benchmark environment and attn's
    package on the path, unless this is that run."""
    if os.environ.get(RESTARTED):
        return
    env = torch_env(args.threads, args.torch_blas)
    env[RESTARTED] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.join(os.path.abspath(args.build), "python"),
                    os.environ.get("PYTHONPATH")) if p)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def c_times(args):
    """ms of attn_sdpa_forward per length, from `attn bench attention`."""
    command = [os.path.join(args.build, "attn"), "bench", "attention", "--json",
               "--lengths", ",".join(map(str, args.overhead_lengths)), "--dims", str(args.dim),
               "--heads", str(args.heads), "--causal", "no", "--pass", "fwd",
               "--reference-max", "0", "--threads", str(args.threads),
               "--min-time", str(args.min_time)]
    print("+ " + " ".join(command), file=sys.stderr, flush=True)
    out = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout
    return {row["length"]: row["ms"] for row in map(json.loads, out.splitlines())}


def overhead_table(args, np, attn, best_time):
    in_c = c_times(args)
    print(f"\n1. attn.scaled_dot_product_attention from NumPy vs the same call in C "
          f"(attn bench attention): B=1 H={args.heads} D={args.dim}, forward\n")
    print(f"{'L':>6} {'C us':>10} {'NumPy us':>10} {'cost us':>9} {'cost':>7}")
    rng = np.random.default_rng(1)
    for L in args.overhead_lengths:
        q, k, v = (rng.standard_normal((1, args.heads, L, args.dim), dtype=np.float32)
                   for _ in range(3))
        seconds = best_time(lambda: attn.scaled_dot_product_attention(q, k, v), args.min_time)
        c_us, py_us = in_c[L] * 1e3, seconds * 1e6
        print(f"{L:6d} {c_us:10.1f} {py_us:10.1f} {py_us - c_us:9.1f} "
              f"{(py_us - c_us) / c_us:7.1%}", flush=True)


def attention_table(args, torch, attn_torch, best_time, torch_attention):
    print(f"\n2. attn.torch.scaled_dot_product_attention vs PyTorch's attention "
          f"(matmul-softmax-matmul): B=1 H={args.heads} D={args.dim}\n")
    print(f"{'L':>6} {'causal':<6} {'pass':<8} {'PyTorch ms':>11} {'attn ms':>9} "
          f"{'speed-up':>9}")
    for L in args.lengths:
        gen = torch.Generator().manual_seed(L)
        shape = (1, args.heads, L, args.dim)
        q, k, v, dout = (torch.rand(shape, generator=gen) * 2 - 1 for _ in range(4))
        for causal in (False, True):
            for backward in (False, True):
                times = []
                for attend in (lambda a, b, c: torch_attention(a, b, c, causal),
                               lambda a, b, c: attn_torch.scaled_dot_product_attention(
                                   a, b, c, is_causal=causal)):
                    qg, kg, vg = (t.clone().requires_grad_(backward) for t in (q, k, v))

                    def run():
                        out = attend(qg, kg, vg)
                        if backward:
                            out.backward(dout)

                    times.append(best_time(run, args.min_time) * 1e3)
                print(f"{L:6d} {'yes' if causal else 'no':<6} "
                      f"{'fwd+bwd' if backward else 'fwd':<8} {times[0]:11.2f} "
                      f"{times[1]:9.2f} {times[0] / times[1]:8.1f}x", flush=True)


def mha_table(args, torch, attn_torch, best_time):
    E, H = 512, 8
    print(f"\n3. attn.torch.MultiheadAttention vs torch.nn.MultiheadAttention({E}, {H}, "
          f"batch_first=True), need_weights=False, B=1\n")
    print(f"{'L':>6} {'pass':<8} {'PyTorch ms':>11} {'attn ms':>9} {'speed-up':>9}")
    torch.manual_seed(1)
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True)
    ours = attn_torch.MultiheadAttention(E, H, batch_first=True)
    ours.load_state_dict(theirs.state_dict())
    for L in args.lengths:
        x = torch.rand(1, L, E) * 2 - 1
        dout = torch.rand(1, L, E) * 2 - 1
        for backward in (False, True):
            times = []
            for module in (theirs, ours):
                xg = x.clone().requires_grad_()

                def run():
                    module.zero_grad(set_to_none=True)
                    out, _ = module(xg, xg, xg, need_weights=False)
                    if backward:
                        out.backward(dout)

                times.append(best_time(run, args.min_time) * 1e3)
            print(f"{L:6d} {'fwd+bwd' if backward else 'fwd':<8} {times[0]:11.2f} "
                  f"{times[1]:9.2f} {times[0] / times[1]:8.1f}x", flush=True)


def gpt_table(args, torch, attn_torch, best_time, torch_attention):
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
    from test_torch import GPT  # the model the tests train both ways

    layers, heads, E, T, B = args.gpt
    V = 65
    print(f"\n4. one training step of a nanoGPT-style model ({layers} layers, {heads} heads, "
          f"embedding {E}, block {T}, batch {B}, vocabulary {V}): forward, backward, AdamW\n")
    print(f"{'attention':<22} {'ms/step':>9} {'speed-up':>9}")
    data = torch.randint(0, V, (B, T + 1), generator=torch.Generator().manual_seed(1))
    results = []
    for name, attend in (("PyTorch (matmul)", lambda q, k, v: torch_attention(q, k, v, True)),
                         ("attn.torch", lambda q, k, v: attn_torch.scaled_dot_product_attention(
                             q, k, v, is_causal=True))):
        torch.manual_seed(1)
        model = GPT(V, T, E, heads, layers, attend)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            loss = model(data[:, :-1], data[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        results.append(best_time(step, args.min_time) * 1e3)
        print(f"{name:<22} {results[-1]:9.1f} {results[0] / results[-1]:8.2f}x", flush=True)


def main():
    args = parse_args()
    restart_in_torch_env(args)
    import numpy as np
    import torch

    import attn
    import attn.torch as attn_torch
    from pytorch_attention import attention as torch_attention, best_time

    torch.set_num_threads(args.threads)
    attn.set_num_threads(args.threads)
    print(f"attn {attn.__version__} ({attn.simd_variant()}), {args.threads} threads; "
          f"{blas_note(torch.__version__, blas_library())}")
    overhead_table(args, np, attn, best_time)
    attention_table(args, torch, attn_torch, best_time, torch_attention)
    mha_table(args, torch, attn_torch, best_time)
    gpt_table(args, torch, attn_torch, best_time, torch_attention)


if __name__ == "__main__":
    main()
