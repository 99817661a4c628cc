#!/usr/bin/python3
"""attn export: a language model's and a sequence model's state_dict written as
safetensors in float32 and bf16, read back and loaded into PyTorch. The models are
trained from a fresh seed each run (printed on failure).

float32: every tensor of the model file's state_dict, bit for bit, nothing else
(the PyTorch transcription of the language model loads it strictly). bf16: each
value the nearest bfloat16, ties to even, so within half an ulp of bf16 of the
float32 weight (|b - w| <= 2^(e - 8) for 2^e <= |w| < 2^(e + 1)) and bit for bit
PyTorch's own rounding (torch.Tensor.to(torch.bfloat16)); the transcription in
bfloat16 loads it strictly. Bad options and files fail with a message and the
status of their kind.

    check_export.py build/attn
"""

import os
import random
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))
import st  # noqa: E402
from gpt_model import GPT  # noqa: E402
import json  # noqa: E402

ATTN = os.path.abspath(sys.argv[1])
SEED = random.randrange(1, 2**31)
failures = []


def run(*args, status=0, expect=""):
    done = subprocess.run([ATTN, *args], capture_output=True, text=True)
    text = done.stdout + done.stderr
    if done.returncode != status or expect not in text:
        failures.append(f"attn {' '.join(args)}: status {done.returncode} (want {status}), "
                        f"output {text.strip()[:300]!r} (want {expect!r})")
    return text


def check(condition, message):
    if not condition:
        failures.append(message)


def half_ulp_bf16(w):
    """Half an ulp of bfloat16 at each float32 value w (0 at zero)."""
    w = np.abs(w.astype(np.float64))
    exponent = np.floor(np.log2(np.where(w > 0, w, 1.0)))
    return np.where(w > 0, np.exp2(exponent - 8), 0.0)


def check_export(model_file, kind, work):
    saved, _ = st.load(model_file)
    f32_file, bf16_file = os.path.join(work, f"{kind}32.st"), os.path.join(work, f"{kind}16.st")
    run("export", model_file, "--out", f32_file)
    run("export", model_file, "--dtype", "bf16", "--out", bf16_file)
    f32, meta = st.load(f32_file)
    bf16, meta16 = st.load(bf16_file)
    check(meta.get("attn.kind") == kind and meta16.get("format") == "pt",
          f"{kind}: metadata {meta16}")
    check(list(f32) == list(bf16), f"{kind}: the two exports hold different names")
    check(len(f32) > 0, f"{kind}: nothing exported")
    for name, w in f32.items():
        check(name in saved and w.dtype == np.float32 and np.array_equal(
            w.view(np.uint32), saved[name].view(np.uint32)),
            f"{kind}: {name} is not the model file's float32 tensor")
        b = bf16[name]
        check(b.dtype == np.uint16 and b.shape == w.shape, f"{kind}: {name} is not bf16")
        wide = st.bf16_to_float32(b)
        err = np.abs(wide.astype(np.float64) - w.astype(np.float64))
        check(bool(np.all(err <= half_ulp_bf16(w))),
              f"{kind}: {name} off by {float(np.max(err - half_ulp_bf16(w))):.3g} beyond half an "
              "ulp of bf16")
        torch_bits = torch.from_numpy(w).to(torch.bfloat16).view(torch.int16).numpy()
        check(np.array_equal(torch_bits.view(np.uint16), b),
              f"{kind}: {name} is not PyTorch's rounding to bfloat16")
    return f32, bf16, meta


def main():
    with tempfile.TemporaryDirectory(prefix="attn-export-") as work:
        words = os.path.join(work, "words.txt")
        rng = random.Random(SEED)
        with open(words, "w") as f:
            f.write(" ".join(rng.choice(["the", "model", "key", "value", "of", "a", "query"])
                             for _ in range(3000)))
        lm = os.path.join(work, "lm.safetensors")
        run("train", "--task", "text", "--data", words, "--layers", "2", "--embd", "32",
            "--heads", "2", "--block", "16", "--batch", "4", "--steps", "5", "--warmup", "1",
            "--lr", "1e-2", "--seed", str(SEED), "--threads", "2", "--out", lm)
        f32, bf16, meta = check_export(lm, "gpt", work)
        cfg = json.loads(meta["model"])
        model = GPT({**cfg, "dropout": 0.0})
        check(set(f32) == set(model.state_dict()), f"gpt: names {sorted(f32)} are not the "
              f"transcription's {sorted(model.state_dict())}")
        model.load_state_dict({k: torch.from_numpy(v) for k, v in f32.items()}, strict=True)
        model = model.to(torch.bfloat16)
        model.load_state_dict({k: torch.from_numpy(v.view(np.int16)).view(torch.bfloat16)
                               for k, v in bf16.items()}, strict=True)
        check(all(p.dtype == torch.bfloat16 for p in model.parameters()), "gpt: not bfloat16")

        s2s = os.path.join(work, "s2s.safetensors")
        run("train", "--embed", "8", "--hidden", "16", "--heads", "2", "--ff", "16", "--batch",
            "8", "--steps", "3", "--eval-every", "1000", "--seed", str(SEED), "--threads", "2",
            "--model", "transformer", "--out", s2s)
        check_export(s2s, "seq2seq", work)

        # Bad options, paths and files.
        out = os.path.join(work, "out.st")
        run("export", lm, "--dtype", "fp16", "--out", out, status=2,
            expect="--dtype takes float32 or bf16, not 'fp16'")
        run("export", lm, status=2, expect="--out FILE is required")
        run("export", "--out", out, status=2, expect="give the model file to export")
        run("export", lm, "--out", lm, status=2, expect="--out")
        run("export", lm, "--out", os.path.join(work, "no", "such", "dir.st"), status=2,
            expect="--out")
        run("export", os.path.join(work, "missing.st"), "--out", out, status=1,
            expect="missing.st")
        st.save(os.path.join(work, "plain.st"), {"x": np.zeros(3, np.float32)})
        run("export", os.path.join(work, "plain.st"), "--out", out, status=1,
            expect="is not a model file of attn train")
        check(not os.path.exists(out), "a failed export left its output")
        run("export", "--help", expect="usage: attn export MODEL --out FILE")
    if failures:
        print(f"seed {SEED}:")
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)
    print(f"attn export: float32 and bf16 state_dicts check out (seed {SEED})")


if __name__ == "__main__":
    main()
