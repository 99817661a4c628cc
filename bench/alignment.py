#!/usr/bin/python3
"""Trains every sequence-to-sequence model of attn on the dates task (the rows of
bench/seq2seq.py, each with `attn train`'s defaults), records what each attends to
on the first N sources of the fixed test split (`attn translate --attention`),
and prints a Markdown table of `attn analyze`: test exact match, the alignment of
each cross-attention map (the share of output digits whose strongest attention
falls on the right field of the source: day, month or year) and the mean entropy
of each map's rows.

    bench/alignment.py build/attn [--count 200] [--threads 2]
                                  [--only gru-bahdanau/soft,...] [--keep DIR] [--json]

--keep DIR keeps the checkpoints and records (DIR/<model>-<attention>/*.json) for
`attn show` and `attn analyze`.

Hard attention is recorded as the model decodes by default, taking the most
likely position. A multi-head map's alignment is that of its heads' mean.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seq2seq import ROWS  # noqa: E402  (the same models, in the same order)

# The target of the issue: the default soft-attention model aligns >= 90 %.
DEFAULT_ROW = ("gru-bahdanau", "soft")
DEFAULT_TARGET = 90.0


def run(command):
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def test_sources(attn, count):
    examples = json.loads(run([attn, "data", "--task", "dates", "--split", "test",
                               "--count", str(count), "--json"]))
    return [e["source"] for e in examples]


def train(attn, model, attention, extra, threads, directory):
    out = os.path.join(directory, f"{model}-{attention}.safetensors")
    report = json.loads(run([attn, "train", "--model", model, "--attention", attention,
                             "--threads", str(threads), "--json", "--out", out] + extra))
    return out, report


def record(attn, checkpoint, sources, directory):
    """One record per source (translate writes one source's attention a file)."""
    os.makedirs(directory)
    for i, source in enumerate(sources):
        path = os.path.join(directory, f"{i:05d}.json")
        run([attn, "translate", "--model", checkpoint, "--threads", "1", "--no-grid",
             "--attention", path, "--", source])
    return sorted(glob.glob(os.path.join(directory, "*.json")))


def map_label(m):
    """A short name for a map: the RNN decoders' one map has none."""
    if m["name"] == "decoder.attention":
        return ""
    if m["kind"] == "cross":
        return f"cross {m['layer']}"
    side = "enc" if ".encoder." in m["name"] else "dec"
    return f"{side} self {m['layer']}"


def cell(values):
    """'x' for one map, else 'label x, label y, ...'."""
    return ", ".join(f"{label} {value}".strip() for label, value in values)


def summarise(model, attention, report, analysis):
    # The encoder's maps, the decoder's self-attention, then the cross-attention.
    maps = sorted(analysis["maps"], key=lambda m: (map_label(m).split(" ")[0] != "enc",
                                                   m["kind"] == "cross", m["layer"]))
    alignment = [(map_label(m), f"{100 * m['alignment']['all']['score']:.1f} %")
                 for m in maps if m["alignment"] is not None]
    entropy = [(map_label(m), f"{m['mean_entropy']:.2f} ({m['mean_relative_entropy']:.2f})")
               for m in maps]
    best = max((m["alignment"]["all"]["score"] for m in maps if m["alignment"] is not None),
               default=None)
    return {
        "model": model, "attention": attention,
        "test_accuracy": report["test_accuracy"],
        "alignment": cell(alignment), "entropy": cell(entropy),
        "best_alignment": None if best is None else 100 * best,
        "scored": analysis["alignment"]["scored"], "records": analysis["records"],
        "analysis": analysis,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attn", help="path of the attn tool")
    parser.add_argument("--count", type=int, default=200,
                        help="test sources to record (default 200)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", help="comma-separated model/attention rows to run")
    parser.add_argument("--keep", metavar="DIR",
                        help="write the checkpoints and records into DIR and keep them")
    parser.add_argument("--json", action="store_true",
                        help="print each row, with attn analyze's output, as a JSON line")
    args = parser.parse_args()
    rows = ROWS
    if args.only:
        wanted = set(args.only.split(","))
        rows = [r for r in ROWS if f"{r[0]}/{r[1]}" in wanted]
        if not rows:
            sys.exit(f"--only {args.only}: no such rows; they are "
                     + ", ".join(f"{m}/{a}" for m, a, _ in ROWS))
    sources = test_sources(args.attn, args.count)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.keep or scratch
        os.makedirs(directory, exist_ok=True)
        for model, attention, extra in rows:
            checkpoint, report = train(args.attn, model, attention, extra, args.threads,
                                       directory)
            files = record(args.attn, checkpoint, sources,
                           os.path.join(directory, f"{model}-{attention}"))
            analysis = json.loads(run([args.attn, "analyze", "--json"] + files))
            result = summarise(model, attention, report, analysis)
            results.append(result)
            if args.json:
                print(json.dumps(result), flush=True)
            else:
                print(f"{model}/{attention}: test {result['test_accuracy']:.2f} %, "
                      f"alignment {result['alignment']}", file=sys.stderr, flush=True)
    if args.json:
        return
    print(f"The first {len(sources)} sources of the test split; entropy in nats, "
          "relative to log(#keys) in parentheses; a multi-head map's alignment is that "
          "of its heads' mean.\n")
    print("| model | attention | test exact match | alignment | mean entropy per map |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['model']} | {r['attention']} | {r['test_accuracy']:.2f} % "
              f"| {r['alignment']} | {r['entropy']} |")
    for r in results:
        if (r["model"], r["attention"]) == DEFAULT_ROW and r["best_alignment"] is not None:
            verdict = "meets" if r["best_alignment"] >= DEFAULT_TARGET else "misses"
            print(f"\nThe default model's alignment, {r['best_alignment']:.1f} %, {verdict} "
                  f"the target of {DEFAULT_TARGET:.0f} %.")


if __name__ == "__main__":
    main()
