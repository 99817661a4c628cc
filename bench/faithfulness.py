#!/usr/bin/python3
"""Is the attention of the dates models faithful? Trains the soft-attention
models of the README's dates analysis with `attn train`'s defaults (or takes
them from --models DIR, as <model>.safetensors), records the first N sources of
the fixed test split with their gradients (`attn translate --gradient
--attention`), runs `attn analyze --model` on each model's records and prints
two Markdown tables:

  - per cross-attention map, which explanation agrees best with the dates'
    ground truth (the share of output digits whose most important source
    character lies in the right field: attention, its rollout through the
    encoder, gradient-weighted attention, leave-one-out erasure) and how each
    ranks the source characters against erasure (Kendall's tau-b, mean over
    output steps and records);
  - per site, the output change when its weights are made uniform or permuted
    (mean total-variation distance per output step, share of steps whose argmax
    changes).

    bench/faithfulness.py build/attn [--count 100] [--permutations 5]
                                     [--models DIR] [--keep DIR] [--threads 2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from alignment import run, test_sources  # noqa: E402

MODELS = ["gru-bahdanau", "lstm-luong-general", "transformer"]


def train(attn, model, threads, directory):
    out = os.path.join(directory, f"{model}.safetensors")
    run([attn, "train", "--model", model, "--threads", str(threads), "--json", "--out", out])
    return out


def record(attn, checkpoint, sources, directory):
    os.makedirs(directory, exist_ok=True)
    files = []
    for i, source in enumerate(sources):
        path = os.path.join(directory, f"{i:05d}.json")
        subprocess.run([attn, "translate", "--model", checkpoint, "--threads", "1", "--no-grid",
                        "--gradient", "--attention", path, "--", source], check=True,
                       capture_output=True)
        files.append(path)
    return files


def percent(alignment):
    if alignment is None or alignment["all"]["score"] is None:
        return "—"
    return f"{100 * alignment['all']['score']:.1f} %"


def number(x, digits=3):
    return "—" if x is None else f"{x:.{digits}f}"


def short(name):
    return (name.replace("transformer.decoder.layers.", "decoder ")
            .replace("transformer.encoder.layers.", "encoder ")
            .replace(".multihead_attn", " cross").replace(".self_attn", " self"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attn")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--permutations", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", metavar="DIR", help="trained <model>.safetensors to use")
    parser.add_argument("--keep", metavar="DIR", help="keep checkpoints and records in DIR")
    args = parser.parse_args()
    sources = test_sources(args.attn, args.count)
    rows, sites = [], []
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.keep or scratch
        os.makedirs(directory, exist_ok=True)
        for model in MODELS:
            checkpoint = (os.path.join(args.models, f"{model}.safetensors") if args.models
                          else train(args.attn, model, args.threads, directory))
            files = record(args.attn, checkpoint, sources, os.path.join(directory, model))
            got = json.loads(run([args.attn, "analyze", "--json", "--model", checkpoint,
                                  "--permutations", str(args.permutations)] + files))
            faith = got["faithfulness"]
            by_map = {}
            for k in faith["kendall"]:
                by_map.setdefault(k["map"], {})[k["explanation"]] = k
            for name, ks in by_map.items():
                rows.append((model, short(name), ks, faith["erasure_alignment"]))
            for s in faith["sites"]:
                sites.append((model, short(s["map"]), s))
            print(f"{model}: {got['records']} records, {faith['records']} checked",
                  file=sys.stderr, flush=True)
    print(f"The first {len(sources)} sources of the test split, recorded with --gradient "
          f"(log p of the whole output); {args.permutations} permutations a site.\n")
    print("| model | cross-attention | alignment: attention | rollout | gradient-weighted "
          "| erasure | τ with erasure: attention | rollout | gradient-weighted |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for model, name, ks, erasure in rows:
        def get(what, key):
            k = ks.get(what)
            return None if k is None else k[key]
        print(f"| {model} | {name or 'decoder.attention'} "
              f"| {percent(get('attention', 'alignment'))} "
              f"| {percent(get('rollout', 'alignment'))} "
              f"| {percent(get('gradient-weighted', 'alignment'))} | {percent(erasure)} "
              f"| {number(get('attention', 'tau'))} | {number(get('rollout', 'tau'))} "
              f"| {number(get('gradient-weighted', 'tau'))} |")
    print("\n| model | site | uniform: TVD | argmax changed | permuted: TVD | argmax changed |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for model, name, s in sites:
        print(f"| {model} | {name} | {number(s['uniform_tvd'])} "
              f"| {100 * s['uniform_changed']:.1f} % | {number(s['permuted_tvd'])} "
              f"| {100 * s['permuted_changed']:.1f} % |")


if __name__ == "__main__":
    main()
