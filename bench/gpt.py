#!/usr/bin/python3
"""attn's language model (GPT) against PyTorch on this CPU, side by side in one run:
training speed, generation speed with and without the KV cache, and what 2000 steps
of training reach.

    bench/gpt.py build/attn [--threads 2] [--replicas 2] [--scale 1] [--gen-tokens 32]
                            [--gen-repeats 3]
                            [--no-quality] [--quality-steps 2000] [--torch-blas DIR]
                            [--parts speed,generation,quality] [--json]

The corpus is about 1 MB of English text that every Debian machine has: the files
under /usr/share/common-licenses, then /usr/share/doc/*/copyright, in sorted order,
regular UTF-8 files only, each distinct file once (a path that resolves to a file
already taken, or a file whose bytes equal one already taken, is skipped), until
the text reaches 1,000,000 bytes. It is written to a temporary directory and
encoded by characters (attn train's default).

1. Training speed, (layers, heads, embd, block, batch) = (4, 4, 128, 64, 12) and
   (6, 6, 384, 256, 8): `attn train --task text ... --eval-every 0 --json` for
   30 and 10 steps (times --scale), in float32 and with --precision bf16, and
   bench/torch_gpt.py train with the same model, batches (`attn data`), AdamW
   and schedule. attn trains with --replicas R (default: as many as --threads):
   R copies of the model each run 1/R of the batch on a thread of its own,
   the checkpoint of --accumulate R; beside it, bf16 with one model on the
   threads. Every side times whole training steps (forward, backward,
   clipping, AdamW; attn's also gather the step's batch); the table shows the mean
   over every step and the steady mean (without attn's first step, which faults
   in its buffers and creates its GEMM primitives, and without PyTorch's first
   3), and compares the steady ones. Beside them, `attn bench gemm`'s float32 and bf16 GEMM
   rates in the same run, and each model's bf16 floor, 6 x parameters x tokens
   at the bf16 rate, with the fraction of it bf16 training reaches.
2. Generation with the larger model at block size 1024 (its weights from a 1-step
   `attn train --block 1024`): for contexts 64, 256 and 1024, a prompt of
   (context - n) characters of the corpus and n new tokens, greedy: attn generate
   with and without the cache, and PyTorch's nanoGPT-style uncached loop on the
   same weights. Each side times prefill (the prompt's pass, to the first new
   token) and decoding (the n - 1 tokens after it) apart, the best of
   --gen-repeats runs with the four commands taken by turns; decoding tokens/s is
   shown beside the memory floor: the tokens/s of reading the weights and the
   key-value cache once per token at the read rate that `attn bench memory`
   measures in the same run, and the fraction attn reaches (goal 70 %), in float32
   and in bf16 (`attn generate --precision bf16`, whose floor counts 2 bytes a
   value). Then the agreement of bf16 with float32: greedy continuations of 40
   prompts from the last 10 % of the corpus by the small model trained 300 steps.
3. Learning quality (skip with --no-quality, or --parts without it; it takes minutes): the small model
   trained --quality-steps steps on both sides (lr 1e-3, warm-up 100, cosine to
   1e-4, dropout 0, the same batches); the validation loss over the same 64
   windows of attn_text_valid_windows.

Goals (issue 6): training at least 4x PyTorch's speed for the small model and 3x
for the larger; (issue 16) in bf16 at least 1.6x float32 attn for the larger and 3x
PyTorch for both; the cache at least 5x faster than no cache at context 1024; the
validation losses within 0.05. The machine may be shared: compare within one run.

PyTorch does its matrix products in whatever libblas.so.3 it loads; Debian's default,
the reference BLAS, is 15-30 times slower here than OpenBLAS. By default PyTorch runs
on Debian's OpenBLAS for OpenMP (libopenblas0-openmp, which `scripts/setup.sh bench`
installs) with OPENBLAS_CORETYPE=SkylakeX; --torch-blas DIR loads the libblas.so.3 in
DIR instead (bench/torch_setup.py). A note above the first table names the BLAS
PyTorch ran on.
Progress goes to stderr; the tables (Markdown) to stdout, or with --json one JSON
object per measurement.
"""

import argparse
import glob
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from torch_setup import add_blas_option, blas_note, torch_env  # noqa: E402

TORCH_SCRIPT = os.path.join(HERE, "torch_gpt.py")
CORPUS_BYTES = 1_000_000
CORPUS_SOURCES = ["/usr/share/common-licenses/*", "/usr/share/doc/*/copyright"]

# name, model options, batch, steps at --scale 1, goal (attn speed / PyTorch speed)
SPEED_CONFIGS = [
    ("small", {"layers": 4, "heads": 4, "embd": 128, "block": 64}, 12, 30, 4.0),
    ("large", {"layers": 6, "heads": 6, "embd": 384, "block": 256}, 8, 10, 3.0),
]
# bf16 training's goals (issue 16): (x float32 attn or 0 for none, x PyTorch)
BF16_GOALS = {"small": (0, 3.0), "large": (1.6, 3.0)}
GEMM_SIZES = [512, 2048]
GEN_MODEL = {"layers": 6, "heads": 6, "embd": 384, "block": 1024}
GEN_CONTEXTS = [64, 256, 1024]
CACHE_GOAL = 5.0
DECODE_FLOOR_GOAL = 0.7  # cached decoding's fraction of the memory floor (issue 16)
AGREEMENT_STEPS, AGREEMENT_PROMPTS = 300, 40  # bf16 against float32 greedy tokens
QUALITY_GOAL = 0.05
WARM_STEPS = 3  # PyTorch's steady state: its steps without the first few
# The schedule and optimizer of every training run, on both sides.
TRAIN_OPTIONS = {"lr": 1e-3, "min-lr": 1e-4, "warmup": 100, "weight-decay": 0.1, "clip": 1.0,
                 "seed": 1, "eval-windows": 64}


def log(message):
    print(message, file=sys.stderr, flush=True)


def build_corpus(path):
    """Writes the corpus to path; returns (files used, bytes, characters, distinct
    characters)."""
    seen_paths, seen_digests, parts, size = set(), set(), [], 0
    for pattern in CORPUS_SOURCES:
        for name in sorted(glob.glob(pattern)):
            real = os.path.realpath(name)
            if real in seen_paths or not os.path.isfile(real):
                continue
            seen_paths.add(real)
            with open(real, "rb") as f:
                data = f.read()
            digest = hashlib.sha256(data).digest()
            if not data or digest in seen_digests:
                continue
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            seen_digests.add(digest)
            parts.append(data)
            size += len(data)
            if size >= CORPUS_BYTES:
                break
        if size >= CORPUS_BYTES:
            break
    if size < CORPUS_BYTES:
        sys.exit(f"gpt.py: the text files found hold {size} bytes, fewer than {CORPUS_BYTES}")
    blob = b"".join(parts)
    with open(path, "wb") as f:
        f.write(blob)
    text = blob.decode("utf-8")
    return len(parts), len(blob), len(text), len(set(text))


def options(model, batch, steps, extra=None):
    """The command-line options shared by attn train and torch_gpt.py train."""
    values = {**model, "batch": batch, "steps": steps, **TRAIN_OPTIONS, **(extra or {})}
    return [a for k, v in values.items() for a in (f"--{k}", str(v))]


def run_json(command, env):
    """Runs command in the environment env (echoed to stderr, its stderr passed
    through); returns its last stdout line parsed as JSON, and the wall seconds."""
    log("+ " + " ".join(command))
    start = time.monotonic()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env)
    wall = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"gpt.py: {command[0]} exited with status {done.returncode}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not lines:
        sys.exit(f"gpt.py: {' '.join(command)} printed nothing")
    return json.loads(lines[-1]), wall


def attn_env():
    return {**os.environ, "ATTN_NUM_THREADS": str(ARGS.threads)}


def pytorch_env(generation=False):
    return torch_env(ARGS.threads, ARGS.torch_blas, generation)


def attn_train(corpus, model, batch, steps, out, extra=None):
    """attn train's report, with cpu_seconds: the processor time the run took (user
    and system, every thread; the tool's OpenMP threads wait passively), which
    other jobs on a shared machine inflate far less than its wall time."""
    command = [ARGS.attn, "train", "--task", "text", "--data", corpus,
               *options(model, batch, steps, extra), "--eval-every", "0",
               "--threads", str(ARGS.threads), "--out", out, "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = run_json(command, attn_env())[0]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return report


def torch_train(corpus, model, batch, steps, extra=None):
    command = ["/usr/bin/python3", TORCH_SCRIPT, "train", "--attn", ARGS.attn, "--data", corpus,
               *options(model, batch, steps, extra), "--threads", str(ARGS.threads)]
    report, wall = run_json(command, pytorch_env())
    report["wall_seconds"] = wall
    return report


def torch_steady_ms(report):
    """PyTorch's ms/step without its first WARM_STEPS steps (all of them if it took
    no more)."""
    steps = report["step_ms"][WARM_STEPS:] or report["step_ms"]
    return sum(steps) / len(steps)


def emit(kind, report):
    if ARGS.json:
        print(json.dumps({"measurement": kind, **report}), flush=True)


def describe(model, batch=None):
    text = (f"{model['layers']} layers, {model['heads']} heads, embd {model['embd']}, "
            f"block {model['block']}")
    return text if batch is None else f"{text}, batch {batch}"


def gemm_rates():
    """attn bench gemm in this run: {size: {"float32_gflops", "bf16_gflops", ...}}."""
    command = [ARGS.attn, "bench", "gemm", "--sizes", ",".join(map(str, GEMM_SIZES)),
               "--threads", str(ARGS.threads), "--json"]
    log("+ " + " ".join(command))
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=attn_env())
    if done.returncode != 0:
        sys.exit(f"gpt.py: attn bench gemm exited with status {done.returncode}")
    return {r["n"]: r for r in map(json.loads, done.stdout.splitlines()) if r}


def floor_ms(parameters, batch, block, gflops):
    """ms/step if a step cost only its GEMM flops, 6 x parameters x tokens (2 for the
    forward, 4 for the backward), at the GEMM rate gflops."""
    return 6.0 * parameters * batch * block / (gflops * 1e9) * 1e3


def speed(corpus, directory):
    rows = []
    replicas = {"replicas": ARGS.replicas} if ARGS.replicas > 1 else {}
    rates = gemm_rates()
    emit("gemm", {"rates": rates})
    best = {p: max(r[f"{p}_gflops"] for r in rates.values()) for p in ("float32", "bf16")}
    for name, model, batch, steps, goal in SPEED_CONFIGS:
        steps = max(3, round(steps * ARGS.scale))
        log(f"training speed, {name}: {describe(model, batch)}, {steps} steps")
        a = attn_train(corpus, model, batch, steps, os.path.join(directory, f"{name}.st"),
                       {"eval-windows": 1, **replicas})
        b = attn_train(corpus, model, batch, steps, os.path.join(directory, f"{name}-bf16.st"),
                       {"eval-windows": 1, "precision": "bf16", **replicas})
        one = attn_train(corpus, model, batch, steps, os.path.join(directory, f"{name}-1.st"),
                         {"eval-windows": 1, "precision": "bf16"}) if replicas else b
        t = torch_train(corpus, model, batch, steps, {"eval-windows": 0})
        if a["parameters"] != t["parameters"]:
            sys.exit(f"gpt.py: attn's model has {a['parameters']} parameters, PyTorch's "
                     f"{t['parameters']}: not the same model")
        emit("train_speed", {"config": name, "attn": a, "attn_bf16": b, "attn_bf16_one_model": one,
                             "torch": t})
        rows.append((name, model, batch, steps, goal, a, b, one, t))
    if ARGS.json:
        return
    print(f"### Training speed ({ARGS.threads} threads, attn with --replicas {ARGS.replicas})")
    print()
    print(blas_note(rows[0][8]["torch_version"], rows[0][8]["blas"]))
    print()
    print("| config | parameters | steps | every step: attn float32 / attn bf16 / PyTorch ms "
          "| steady: attn float32 ms | attn bf16 ms | attn bf16, one model ms | PyTorch ms "
          "| float32 / PyTorch (goal) | bf16 / float32 (goal) "
          "| bf16 / float32 by CPU time | bf16 / PyTorch (goal) | bf16 tokens/s | bf16 floor ms "
          "| bf16 / floor |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
          "| ---: | ---: | ---: |")
    for name, model, batch, steps, goal, a, b, one, t in rows:
        steady_a, steady_b, steady_t = (a["steady_ms_per_step"], b["steady_ms_per_step"],
                                        torch_steady_ms(t))
        ratio = steady_t / steady_a
        bf16_ratio = steady_a / steady_b
        bf16_torch = steady_t / steady_b
        floor = floor_ms(a["parameters"], batch, model["block"], best["bf16"])
        mark = lambda x, g: f"{x:.2f}x ({g:g}x {'met' if x >= g else 'not met'})"  # noqa: E731
        bf16_goal = BF16_GOALS[name]
        print(f"| {describe(model, batch)} | {a['parameters']:,} | {steps} "
              f"| {a['ms_per_step']:.1f} / {b['ms_per_step']:.1f} / {t['ms_per_step']:.1f} "
              f"| {steady_a:.1f} | {steady_b:.1f} | {one['steady_ms_per_step']:.1f} "
              f"| {steady_t:.1f} "
              f"| {mark(ratio, goal)} "
              f"| {mark(bf16_ratio, bf16_goal[0]) if bf16_goal[0] else f'{bf16_ratio:.2f}x'} "
              f"| {a['cpu_seconds'] / b['cpu_seconds']:.2f}x "
              f"| {mark(bf16_torch, bf16_goal[1])} | {1e3 * batch * model['block'] / steady_b:,.0f} "
              f"| {floor:.1f} | {100 * floor / steady_b:.0f} % |")
    print()
    gemm = "; ".join(f"{n}^3: float32 {r['float32_gflops']:.0f}, bf16 {r['bf16_gflops']:.0f}"
                     for n, r in sorted(rates.items()))
    print("ms/step: the mean of forward, backward, clipping and AdamW (attn's steps also "
          "gather their batch) over every step, and steady: without attn's first step (which "
          "also faults in every buffer and creates the GEMM primitives) and without "
          f"PyTorch's first {WARM_STEPS}; the ratios, tokens/s = batch x block / ms and the "
          "floor's fraction are the steady ones, as a long run sees them. Same model (parameter counts checked), batches, optimizer and "
          "schedule on every side; bf16 is `attn train --precision bf16` (mixed precision: "
          f"bf16 products, float32 sums and state). attn trains with --replicas "
          f"{ARGS.replicas}: that many copies of the model, each running its part of the "
          "batch on a thread of its own (the checkpoint of --accumulate "
          f"{ARGS.replicas}); one model: bf16 with the model's products and kernels "
          f"parallel over the {ARGS.threads} threads instead. GEMM GFLOP/s in this run ({gemm}; "
          "`attn bench gemm`). By CPU time: the ratio of the two attn train processes' "
          "processor seconds (every thread, the whole run), which other jobs on a shared "
          "machine inflate far less than wall time. The bf16 floor: 6 x parameters x tokens at the best bf16 "
          f"GEMM rate ({best['bf16']:.0f} GFLOP/s), the step if it were GEMM flops alone; "
          "bf16 / floor is the fraction of that reached.")
    print()


def weights_read(parameters):
    """The weights one decoding step reads: all of them but the learned position
    table, of which it reads one row."""
    return parameters - (GEN_MODEL["block"] - 1) * GEN_MODEL["embd"]


def decode_floor(parameters, cache_tokens, read_gb_per_s, value_bytes=4):
    """Tokens/s if one decoding step cost only reading the weights and the key-value
    cache of cache_tokens tokens (keys and values: 2 x layers x tokens x embd
    values) once, at the read rate; value_bytes 4 for float32, 2 for bf16."""
    cache = 2 * GEN_MODEL["layers"] * cache_tokens * GEN_MODEL["embd"]
    return read_gb_per_s * 1e9 / (value_bytes * (weights_read(parameters) + cache))


def best_generations(commands):
    """Runs every (command, env) of one context ARGS.gen_repeats times, taking
    them by turns, so that a busy spell of a shared machine falls on all of them
    alike; returns each command's result with its best prefill and its best
    decoding rate over the runs (one run is a single generation, whose figures
    move by 10-20 % from run to run here). Greedy decoding must give one text."""
    runs = [[] for _ in commands]
    for _ in range(ARGS.gen_repeats):
        for i, (command, env) in enumerate(commands):
            runs[i].append(run_json(command, env)[0])
    best = []
    for command_runs in runs:
        if any(r["text"] != command_runs[0]["text"] for r in command_runs):
            sys.exit("gpt.py: one greedy generation gave different texts from run to run")
        result = dict(command_runs[0])
        for key in ("prefill_tokens_per_s", "decode_tokens_per_s"):
            result[key] = max(r[key] for r in command_runs)
        best.append(result)
    return best


def generation(corpus, directory):
    n_new = ARGS.gen_tokens
    if n_new < 2:
        sys.exit("gpt.py: --gen-tokens must be at least 2 (decoding is timed from the second)")
    log(f"generation: {describe(GEN_MODEL)}, weights from one training step")
    model_file = os.path.join(directory, "gen.st")
    trained = attn_train(corpus, GEN_MODEL, 1, 1, model_file, {"eval-windows": 1, "warmup": 1})
    memory, _ = run_json([ARGS.attn, "bench", "memory", "--threads", str(ARGS.threads),
                          "--json"], attn_env())
    with open(corpus, encoding="utf-8") as f:
        text = f.read(max(GEN_CONTEXTS))
    rows = []
    for context in GEN_CONTEXTS:
        if context <= n_new:
            sys.exit(f"gpt.py: --gen-tokens {n_new} leaves no prompt at context {context}")
        prompt_file = os.path.join(directory, f"prompt{context}.txt")
        with open(prompt_file, "w", encoding="utf-8") as f:
            f.write(text[:context - n_new])
        base = [ARGS.attn, "generate", "--model", model_file, "--prompt-file", prompt_file,
                "--tokens", str(n_new), "--temperature", "0", "--threads", str(ARGS.threads),
                "--json"]
        cached, cached16, uncached, t = best_generations([
            (base, attn_env()),
            (base + ["--precision", "bf16"], attn_env()),
            (base + ["--no-cache"], attn_env()),
            (["/usr/bin/python3", TORCH_SCRIPT, "generate", "--model", model_file,
              "--prompt-file", prompt_file, "--tokens", str(n_new),
              "--threads", str(ARGS.threads)], pytorch_env(generation=True))])
        # Decoding step i (1 .. n - 1) reads the cache of prompt + i tokens.
        mean_cache = cached["prompt_tokens"] + n_new / 2
        floor = decode_floor(trained["parameters"], mean_cache, memory["read_gb_per_s"])
        floor16 = decode_floor(trained["parameters"], mean_cache, memory["read_gb_per_s"], 2)
        emit("generation", {"context": context, "attn_cached": cached,
                            "attn_cached_bf16": cached16, "attn_uncached": uncached, "torch": t,
                            "floor_tokens_per_s": floor, "bf16_floor_tokens_per_s": floor16,
                            "read_gb_per_s": memory["read_gb_per_s"]})
        rows.append((context, cached, cached16, uncached, t, floor, floor16))
    agree = agreement(corpus, directory)
    if ARGS.json:
        return
    print(f"### Generation ({describe(GEN_MODEL)}, "
          f"greedy, {n_new} new tokens, {ARGS.threads} threads)")
    print()
    print("Decoding (each new token after the first: one token through the model and "
          "its draw):")
    print()
    goal = f"goal {100 * DECODE_FLOOR_GOAL:.0f} %"
    print("| context | prompt tokens | attn cached tokens/s | memory floor tokens/s "
          f"| cached / floor ({goal}) | attn bf16 cached tokens/s | bf16 floor tokens/s "
          f"| bf16 / bf16 floor ({goal}) | attn uncached tokens/s | cache speed-up "
          "| PyTorch uncached tokens/s | attn uncached / PyTorch | same tokens as PyTorch |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
          "| --- |")
    for context, c, c16, u, t, floor, floor16 in rows:
        rate, rate16 = c["decode_tokens_per_s"], c16["decode_tokens_per_s"]
        ratio = rate / u["decode_tokens_per_s"]
        cache_goal = (f" (goal {CACHE_GOAL:g}x: {'met' if ratio >= CACHE_GOAL else 'not met'})"
                      if context == max(GEN_CONTEXTS) else "")
        same = "yes" if c["text"] == u["text"] == t["text"] else (
            "cached = uncached only" if c["text"] == u["text"] else "no")
        print(f"| {context} | {c['prompt_tokens']} | {rate:,.1f} | {floor:,.0f} "
              f"| {100 * rate / floor:.0f} % | {rate16:,.1f} | {floor16:,.0f} "
              f"| {100 * rate16 / floor16:.0f} % "
              f"| {u['decode_tokens_per_s']:,.1f} | {ratio:.1f}x{cache_goal} "
              f"| {t['decode_tokens_per_s']:,.1f} "
              f"| {u['decode_tokens_per_s'] / t['decode_tokens_per_s']:.2f}x | {same} |")
    print()
    print("Prefill (the prompt's pass to the first new token, its draw included):")
    print()
    print("| context | prompt tokens | attn cached tokens/s | attn bf16 cached tokens/s "
          "| attn uncached tokens/s | PyTorch tokens/s | attn cached / PyTorch |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for context, c, c16, u, t, _, _ in rows:
        print(f"| {context} | {c['prompt_tokens']} | {c['prefill_tokens_per_s']:,.0f} "
              f"| {c16['prefill_tokens_per_s']:,.0f} "
              f"| {u['prefill_tokens_per_s']:,.0f} | {t['prefill_tokens_per_s']:,.0f} "
              f"| {c['prefill_tokens_per_s'] / t['prefill_tokens_per_s']:.2f}x |")
    print()
    print("Both sides time the same two parts of one generation (attn generate --json and "
          "bench/torch_gpt.py generate): prefill from the start to the first new token, "
          f"decoding from the first new token to the last ({n_new - 1} steps); model "
          f"loading excluded; each rate the best of {ARGS.gen_repeats} runs, the four "
          "commands of a context taken by turns. Uncached, every token reruns the whole context (nanoGPT's "
          "generate on the PyTorch side). The memory floor: decoding one token reads every "
          "weight (of the position table one row) and the cache's keys and values once, so "
          "it cannot beat read rate / (4 x weights read + 8 x layers x tokens cached x embd) "
          "bytes (bf16: half of those bytes), tokens cached the mean over the decoding steps; "
          f"the read rate, {memory['read_gb_per_s']:.1f} GB/s on {ARGS.threads} threads, is "
          "`attn bench memory` in this run. bf16 (`--precision bf16`): the weights rounded to "
          "bf16 once at load, the key-value cache in bf16, products and sums in float32; "
          "its prefill runs the same bf16 products, a row of the prompt at a time over each "
          "block of weights.")
    print()
    print(f"Greedy tokens of bf16 against float32 ({agree['model']}, {agree['prompts']} "
          f"prompts of {agree['prompt_chars']} characters from the last 10 % of the corpus, "
          f"{agree['tokens']} new tokens each): identical on {agree['identical']} of "
          f"{agree['prompts']} prompts ({100 * agree['identical'] / agree['prompts']:.0f} %); "
          f"{100 * agree['same_tokens'] / (agree['prompts'] * agree['tokens']):.1f} % of the "
          "tokens come before the first difference.")
    print()


def agreement(corpus, directory):
    """Greedy generation in bf16 against float32 on many prompts, with a model
    trained long enough to say something: how many continuations are identical,
    and how many tokens come before the first difference."""
    model, steps = SPEED_CONFIGS[0][1], AGREEMENT_STEPS
    log(f"bf16 agreement: {describe(model)}, {steps} steps, {AGREEMENT_PROMPTS} prompts")
    model_file = os.path.join(directory, "agreement.st")
    attn_train(corpus, model, SPEED_CONFIGS[0][2], steps, model_file, {"eval-windows": 1})
    with open(corpus, encoding="utf-8") as f:
        text = f.read()
    tail = text[len(text) * 9 // 10:]
    chars, n_new = model["block"] // 2, model["block"] // 2
    identical = same_tokens = 0
    for i in range(AGREEMENT_PROMPTS):
        start = i * (len(tail) - chars) // AGREEMENT_PROMPTS
        prompt_file = os.path.join(directory, "agreement_prompt.txt")
        with open(prompt_file, "w", encoding="utf-8") as f:
            f.write(tail[start:start + chars])
        base = [ARGS.attn, "generate", "--model", model_file, "--prompt-file", prompt_file,
                "--tokens", str(n_new), "--temperature", "0", "--threads", str(ARGS.threads),
                "--json"]
        texts = [run_json(base + ["--precision", p], attn_env())[0]["text"]
                 for p in ("float32", "bf16")]
        identical += texts[0] == texts[1]
        same_tokens += next((k for k, (a, b) in enumerate(zip(*texts)) if a != b),
                            min(len(texts[0]), len(texts[1])))
    report = {"model": f"{describe(model)}, trained {steps} steps",
              "prompts": AGREEMENT_PROMPTS, "prompt_chars": chars, "tokens": n_new,
              "identical": identical, "same_tokens": same_tokens}
    emit("bf16_agreement", report)
    return report


def quality(corpus, directory):
    name, model, batch, _, _ = SPEED_CONFIGS[0]
    steps = ARGS.quality_steps
    log(f"learning quality: {describe(model, batch)}, {steps} steps on each side")
    model_file = os.path.join(directory, "quality.st")
    a = attn_train(corpus, model, batch, steps, model_file)
    t = torch_train(corpus, model, batch, steps)
    # PyTorch's loss of attn's trained weights: equal to attn's own figure when both
    # sides measure the same windows the same way.
    check, _ = run_json(["/usr/bin/python3", TORCH_SCRIPT, "eval", "--model", model_file,
                         "--data", corpus, "--eval-windows", str(TRAIN_OPTIONS["eval-windows"]),
                         "--threads", str(ARGS.threads)], pytorch_env())
    if check["valid_windows"] != a["valid_windows"] or \
            abs(check["valid_loss"] - a["valid_loss"]) > 1e-4:
        sys.exit(f"gpt.py: attn's model scores {a['valid_loss']:.5f} over "
                 f"{a['valid_windows']} windows in attn, {check['valid_loss']:.5f} over "
                 f"{check['valid_windows']} in PyTorch: the two do not measure the same")
    emit("quality", {"config": name, "attn": a, "torch": t, "torch_eval_of_attn": check})
    if ARGS.json:
        return
    diff = a["valid_loss"] - t["valid_loss"]
    print(f"### Learning quality ({describe(model, batch)}, {steps} steps, lr "
          f"{TRAIN_OPTIONS['lr']:g} warm-up {TRAIN_OPTIONS['warmup']} cosine to "
          f"{TRAIN_OPTIONS['min-lr']:g}, dropout 0)")
    print()
    print("| | last train loss | validation loss | training s |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| attn | {a['train_loss']:.4f} | {a['valid_loss']:.4f} "
          f"| {a['train_seconds']:.1f} |")
    print(f"| PyTorch | {t['train_loss']:.4f} | {t['valid_loss']:.4f} "
          f"| {t['train_seconds']:.1f} |")
    print()
    print(f"Validation loss: the mean cross-entropy (nats per character) over the same "
          f"{t['valid_windows']} windows of the last 10 % of the corpus (PyTorch gives "
          f"attn's trained model {check['valid_loss']:.4f}, the loss attn reports for it). "
          f"attn - PyTorch = {diff:+.4f} (goal |difference| <= {QUALITY_GOAL:g}: "
          f"{'met' if abs(diff) <= QUALITY_GOAL else 'not met'}).")
    print()


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attn", help="path of the attn tool")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--replicas", type=int,
                        help="attn train --replicas in the speed part (default: --threads)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies the steps of the speed runs (30 and 10)")
    parser.add_argument("--gen-repeats", type=int, default=3,
                        help="runs of each generation command, the best rates kept (default 3)")
    parser.add_argument("--gen-tokens", type=int, default=32,
                        help="new tokens per generation (default 32)")
    parser.add_argument("--quality", action=argparse.BooleanOptionalAction, default=True,
                        help="train the small model --quality-steps steps on both sides "
                             "(default on; minutes)")
    parser.add_argument("--quality-steps", type=int, default=2000)
    parser.add_argument("--parts", default="speed,generation,quality",
                        help="which parts to run, comma-separated (default all three)")
    add_blas_option(parser)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per measurement instead of the tables")
    ARGS = parser.parse_args()
    ARGS.attn = os.path.abspath(ARGS.attn)
    if ARGS.replicas is None:
        ARGS.replicas = ARGS.threads
    if (ARGS.threads < 1 or ARGS.replicas < 1 or ARGS.gen_tokens < 1 or ARGS.gen_repeats < 1
            or ARGS.quality_steps < 1 or ARGS.scale <= 0):
        sys.exit("gpt.py: --threads, --replicas, --gen-tokens, --gen-repeats, --quality-steps "
                 "and --scale must be positive")
    parts = ARGS.parts.split(",")
    unknown = [p for p in parts if p not in ("speed", "generation", "quality")]
    if unknown or not parts:
        sys.exit(f"gpt.py: --parts takes speed, generation and quality, not {ARGS.parts!r}")

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="attn-gpt-bench-") as directory:
        corpus = os.path.join(directory, "corpus.txt")
        files, size, chars, vocab = build_corpus(corpus)
        emit("corpus", {"files": files, "bytes": size, "characters": chars, "vocab": vocab})
        if not ARGS.json:
            print(f"Corpus: {files} files from /usr/share/common-licenses and "
                  f"/usr/share/doc/*/copyright, {size:,} bytes, {chars:,} characters, "
                  f"vocabulary of {vocab} characters.")
            print()
        if "speed" in parts:
            speed(corpus, directory)
        if "generation" in parts:
            generation(corpus, directory)
        if ARGS.quality and "quality" in parts:
            quality(corpus, directory)
    log(f"gpt.py: done in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
