#!/usr/bin/python3
"""attn analyze --model: the faithfulness checks on tiny models trained here (a
GRU with Bahdanau attention and a transformer on dates, a language model on a
text of words), against the records they wrote:

- every number in range, the pooled site changes the step-weighted means of
  the records', the same output on a second run (seeded permutations);
- Kendall's tau-b of each record's attention (heads averaged) and its erasure
  importance (both as the JSON gives them) recomputed here, step by step, by a
  reference written apart from attn's (pairs counted, ties by scipy's rule),
  itself checked on known rankings with ties;
- the erasure's dates alignment recomputed from its importance and the fields
  of the source (attn data's day, month and year characters, as check_dates
  gives them, here: the format of the test sources);
- where an intervention can change nothing, nothing changes: a language model
  whose queries are zero attends uniformly, so making its maps uniform or
  permuting them leaves every output distribution (TVD below 1e-6, no argmax
  changed); a context of two tokens has one key in its one output row;
- a GPT's erasure importance is null exactly where the erased token cannot
  reach the step (after it, or no context left);
- bad inputs: a record of another model (another architecture, or the same
  architecture with other weights), a record without tokens, tokens outside the
  vocabulary, --permutations without --model or out of range.
The output distributions under each intervention (uniform, permuted, erased)
are held to PyTorch by conformance.record. Debian's Python, standard library only.

    check_faithfulness.py PATH_TO_ATTN
"""

import json
import math
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz"))
from make_seed_corpus import sealed  # noqa: E402
from analyze_checks import ATTN, analyze, check, expect, finish, run  # noqa: E402


def kendall_tau_b(x, y):
    """(C - D) / sqrt((P - T_x)(P - T_y)) over all pairs; None where undefined."""
    score = untied_x = untied_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx = (x[i] > x[j]) - (x[i] < x[j])
            dy = (y[i] > y[j]) - (y[i] < y[j])
            score += dx * dy
            untied_x += dx != 0
            untied_y += dy != 0
    return score / math.sqrt(untied_x * untied_y) if untied_x and untied_y else None


def check_reference_tau():
    check(kendall_tau_b([1, 2, 3], [1, 2, 3]) == 1.0, "tau of one ranking")
    check(kendall_tau_b([1, 2, 3], [3, 2, 1]) == -1.0, "tau of reversed rankings")
    check(abs(kendall_tau_b([1, 2, 2, 3], [1, 2, 3, 3]) - 0.8) < 1e-12, "tau with ties: 0.8")
    check(abs(kendall_tau_b([1, 1, 2, 3], [2, 1, 4, 3]) - 0.5477225575051662) < 1e-12,
          "tau with ties: scipy's 0.5477")
    check(kendall_tau_b([1, 1], [1, 2]) is None, "tau of a tied ranking is undefined")


def close(a, b, what, tol=2e-5):
    check(a is not None and b is not None and abs(a - b) <= tol * max(1.0, abs(b)),
          f"{what}: {a} != {b}")


def head_mean(m):
    heads = m["weights"]
    return [[sum(h[i][j] for h in heads) / len(heads) for j in range(m["cols"])]
            for i in range(m["rows"])]


def mean_tau(explanation, erasure, gpt):
    taus = []
    for t, row in enumerate(erasure):
        n = t + 1 if gpt else len(row)
        if gpt and t == 0:
            continue
        tau = kendall_tau_b(explanation[t][:n], row[:n])
        if tau is not None:
            taus.append(tau)
    return (sum(taus) / len(taus) if taus else None), len(taus)


def check_consistent(got, files, what):
    """Numbers in range; the pool the step-weighted mean of the records'."""
    f = got["faithfulness"]
    check(f["records"] == len(files) and f["permutations"] == 3, f"{what}: header {f}")
    for site in f["sites"]:
        for key in ("uniform_tvd", "uniform_changed", "permuted_tvd", "permuted_changed"):
            check(0.0 <= site[key] <= 1.0 + 1e-6, f"{what}: {site['map']} {key} {site[key]}")
        steps = tvd = 0.0
        for r in f["per_record"]:
            (mine,) = [s for s in r["sites"] if s["map"] == site["map"]]
            steps += mine["steps"]
            tvd += mine["uniform_tvd"] * mine["steps"]
        check(steps == site["steps"], f"{what}: {site['map']} steps {steps} != {site['steps']}")
        close(tvd / steps, site["uniform_tvd"], f"{what}: pooled uniform TVD of {site['map']}")
    for k in f["kendall"]:
        check(k["tau"] is None or -1.0 <= k["tau"] <= 1.0, f"{what}: tau {k}")


def check_taus(got, records, gpt, what):
    """Each record's attention tau recomputed from its map and its erasure."""
    for r, path in zip(got["faithfulness"]["per_record"], records):
        rec = json.load(open(path))
        cross = [m for m in rec["maps"] if m["kind"] == "cross"] or [rec["maps"][-1]]
        for m in cross:
            (entry,) = [k for k in r["kendall"]
                        if k["explanation"] == "attention" and k["map"] == m["name"]]
            tau, steps = mean_tau(head_mean(m), r["erasure"], gpt)
            check(entry["steps"] == steps, f"{what} {path}: {m['name']} steps {entry}, {steps}")
            close(entry["tau"], tau, f"{what} {path}: tau of {m['name']}", 1e-5)


# Sources whose fields are known: day-first (the day above 12), day 0-1, month
# 3-4, year 6-9; the field of each output character of YYYY-MM-DD.
SOURCES = ["24/11/2026", "28/07/1999", "15/01/2040"]
FIELDS = [1, 1, 0, 2, 2, 0, 3, 3, 3, 3]  # day 1, month 2, year 3, else 0
WANT = [3, 3, 3, 3, 0, 2, 2, 0, 1, 1]


def check_dates(directory):
    gru = os.path.join(directory, "gru.safetensors")
    tf = os.path.join(directory, "tf.safetensors")
    other = os.path.join(directory, "gru2.safetensors")
    # enough training for outputs of the form YYYY-MM-DD, scored for alignment
    tiny = ["--steps", "300", "--batch", "32", "--threads", "2"]
    run("train", "--model", "gru-bahdanau", "--hidden", "16", *tiny, "--out", gru)
    run("train", "--model", "gru-bahdanau", "--hidden", "16", "--seed", "2", "--steps", "20",
        "--out", other)
    run("train", "--model", "transformer", "--hidden", "16", "--heads", "2", "--layers", "2",
        *tiny, "--out", tf)
    for model, name in ((gru, "gru"), (tf, "transformer")):
        records = []
        for i, source in enumerate(SOURCES):
            path = os.path.join(directory, f"{name}{i}.json")
            run("translate", "--model", model, "--gradient", "--attention", path, source)
            records.append(path)
        got = analyze("--model", model, "--permutations", "3", *records)
        if got is None:
            continue
        check_consistent(got, records, name)
        check_taus(got, records, False, name)
        kinds = {k["explanation"] for k in got["faithfulness"]["kendall"]}
        want = {"attention", "gradient-weighted"} | ({"rollout"} if name == "transformer" else set())
        check(kinds == want, f"{name}: explanations {kinds}, want {want}")
        # the erasure's alignment, from its importance, over the ISO outputs
        digits = aligned = 0
        for r, path in zip(got["faithfulness"]["per_record"], records):
            rec = json.load(open(path))
            output = "".join(rec["queries"][:10])
            if len(output) != 10 or output[4] != "-" or output[7] != "-" or \
                    not output.replace("-", "").isdigit():
                continue
            fields = FIELDS
            for t in range(10):
                if WANT[t]:
                    row = r["erasure"][t]
                    digits += 1
                    aligned += fields[max(range(len(row)), key=row.__getitem__)] == WANT[t]
        e = got["faithfulness"]["erasure_alignment"]
        check(digits > 0 and e is not None and
              (e["all"]["digits"], e["all"]["aligned"]) == (digits, aligned),
              f"{name}: erasure alignment {e}, want {aligned} of {digits} (> 0)")
        again = analyze("--model", model, "--permutations", "3", *records)
        check(again == got, f"{name}: a second run differs")
        text = subprocess.run([ATTN, "analyze", "--model", model, "--permutations", "3",
                               records[0]], capture_output=True, text=True).stdout
        check("faithfulness over 1 record" in text and "leave-one-out erasure:" in text and
              "Kendall tau between leave-one-out erasure" in text, f"{name}: text {text!r}")
    # refusals
    expect(1, "is a record of transformer on dates, but", "--model", gru,
           os.path.join(directory, "transformer0.json"))
    expect(1, "was not recorded by", "--model", other, os.path.join(directory, "gru0.json"))
    rec = json.load(open(os.path.join(directory, "gru0.json")))
    rec.pop("attn.sealed", None), rec.pop("attn.crc32c", None)
    strange = dict(rec, keys=["\u263a"] + rec["keys"][1:])
    path = os.path.join(directory, "strange.json")
    json.dump(strange, open(path, "w"))
    expect(1, "source character 0 '\u263a' is not in the vocabulary of", "--model", gru, path)
    empty = dict(rec, queries=[], keys=[], maps=[])
    empty.pop("gradient_step", None)
    path = os.path.join(directory, "empty.json")
    json.dump(empty, open(path, "w"))
    expect(1, "has 0 input and 0 output tokens", "--model", gru, path)
    expect(2, "--permutations needs --model", "--permutations", "3",
           os.path.join(directory, "gru0.json"))
    expect(2, "--permutations '0' is not a count", "--model", gru, "--permutations", "0",
           os.path.join(directory, "gru0.json"))
    expect(1, "missing.safetensors", "--model", os.path.join(directory, "missing.safetensors"),
           os.path.join(directory, "gru0.json"))


def zero_queries(source, target):
    """The language model at source with every block's query projection (the
    first n_embd rows of c_attn, and their bias) zero, sealed anew."""
    data = open(source, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = bytearray(data[8 + n:])
    embd = json.loads(header["__metadata__"]["model"])["n_embd"]
    for name, t in header.items():
        if name.startswith("transformer.h.") and name.endswith(".attn.c_attn.weight") or \
                name.endswith(".attn.c_attn.bias"):
            begin = t["data_offsets"][0]
            count = embd * (t["shape"][1] if len(t["shape"]) == 2 else 1)
            body[begin:begin + 4 * count] = bytes(4 * count)
    meta = header["__metadata__"]
    del meta["attn.sealed"], meta["attn.crc32c"]  # last, as attn writes them
    meta["attn.sealed"] = "crc32c"
    meta["attn.crc32c"] = "00000000"
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    open(target, "wb").write(sealed(struct.pack("<Q", len(text)) + text + bytes(body)))


def check_language_model(directory):
    words = "attention query key value model token the a of to and is in that layer head".split()
    lines = [" ".join(words[(7 * i + 3 * k) % len(words)] for k in range(6)) + " ."
             for i in range(600)]
    data = os.path.join(directory, "words.txt")
    open(data, "w").write("\n".join(lines))
    lm = os.path.join(directory, "lm.safetensors")
    run("train", "--task", "text", "--data", data, "--layers", "2", "--embd", "16", "--heads",
        "2", "--block", "16", "--batch", "4", "--steps", "30", "--threads", "2", "--out", lm)
    records = []
    for i, prompt in enumerate(["the key ", "a layer of "]):
        path = os.path.join(directory, f"lm{i}.json")
        run("generate", "--model", lm, "--prompt", prompt, "--tokens", "4", "--gradient",
            "--attention", path)
        records.append(path)
    got = analyze("--model", lm, "--permutations", "3", *records)
    if got is not None:
        check_consistent(got, records, "gpt")
        check_taus(got, records, True, "gpt")
        kinds = {k["explanation"] for k in got["faithfulness"]["kendall"]}
        check(kinds == {"attention", "rollout", "flow", "gradient-weighted"},
              f"gpt explanations {kinds}")
        for r, path in zip(got["faithfulness"]["per_record"], records):
            n = len(json.load(open(path))["keys"])
            for t, row in enumerate(r["erasure"]):
                nulls = [i for i, v in enumerate(row) if v is None]
                want = list(range(n)) if t == 0 else list(range(t + 1, n))
                check(len(row) == n and nulls == want, f"gpt {path} erasure row {t}: {row}")
    # zero queries: every row uniform over the tokens up to it
    flat = os.path.join(directory, "flat.safetensors")
    zero_queries(lm, flat)
    path = os.path.join(directory, "flat.json")
    run("generate", "--model", flat, "--prompt", "the key ", "--tokens", "4", "--attention", path)
    got = analyze("--model", flat, "--permutations", "3", path)
    for site in (got or {"faithfulness": {"sites": []}})["faithfulness"]["sites"]:
        check(site["uniform_tvd"] < 1e-6 and site["permuted_tvd"] < 1e-6 and
              site["uniform_changed"] == 0 and site["permuted_changed"] == 0,
              f"uniform maps made uniform or permuted change the output: {site}")
    check(got is not None and len(got["faithfulness"]["sites"]) == 2, "flat model's sites")
    # two tokens: one output row, one key
    path = os.path.join(directory, "two.json")
    run("generate", "--model", lm, "--prompt", "t", "--tokens", "1", "--attention", path)
    got = analyze("--model", lm, path)
    for site in (got or {"faithfulness": {"sites": []}})["faithfulness"]["sites"]:
        check(site["steps"] == 1 and site["permuted_tvd"] < 1e-6 and site["uniform_tvd"] < 1e-6,
              f"a one-key row permuted or made uniform changes the output: {site}")


def main():
    check_reference_tau()
    with tempfile.TemporaryDirectory() as directory:
        check_dates(directory)
        check_language_model(directory)
    finish("faithfulness")


if __name__ == "__main__":
    main()
