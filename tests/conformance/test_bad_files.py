"""attn_conform on corrupt weights files: it must exit with status 1 (not crash:
no signal) and print a message that names the problem.

A small seed_mha case is written once; it must run cleanly. Then each bad file
replaces weights.safetensors (or inputs.safetensors) in turn: a missing key, an
unexpected key, a wrong shape, a truncated file, a header length past the end,
bad JSON, overlapping offsets, a duplicate key, a dtype whose size does not match
the offsets, and a few more. The message must contain, for each group of words
listed with the case, one of them (case-insensitive).
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

import st

E, H, N, L = 8, 2, 2, 3
HD = E // H


def good_weights(rng):
    return {
        "values.weight": rng.standard_normal((HD, HD)).astype(np.float32),
        "keys.weight": rng.standard_normal((HD, HD)).astype(np.float32),
        "queries.weight": rng.standard_normal((HD, HD)).astype(np.float32),
        "fc_out.weight": rng.standard_normal((E, E)).astype(np.float32),
        "fc_out.bias": rng.standard_normal((E,)).astype(np.float32),
    }


def good_inputs(rng):
    tensors = {name: rng.standard_normal((N, L, E)).astype(np.float32)
               for name in ["query", "keys", "values", "dout"]}
    config = {"embed_size": E, "heads": H, "batch": N, "len_q": L, "len_k": L,
              "self_attention": False, "alias_grads": False, "mask": "none",
              "need_weights": True}
    return tensors, {k: json.dumps(v) for k, v in config.items()}


def raw_file(entries, data, header_length=None):
    """A safetensors file from a header written by hand: `entries` is a list of
    (name, JSON text) pairs, so that names may repeat."""
    text = ("{" + ",".join(f"{json.dumps(name)}:{value}" for name, value in entries)
            + "}").encode()
    length = len(text) if header_length is None else header_length
    return struct.pack("<Q", length) + text + data


def entry(dtype, shape, begin, end):
    return json.dumps({"dtype": dtype, "shape": shape, "data_offsets": [begin, end]})


def bad_files(weights):
    """(description, weights file bytes, keyword groups)."""
    good = st.encode(weights)
    cases = []

    missing = dict(weights)
    del missing["fc_out.bias"]
    cases.append(("missing key", st.encode(missing), [["missing", "not found"], ["fc_out.bias"]]))

    extra = dict(weights)
    extra["extra.weight"] = np.zeros((2, 2), np.float32)
    cases.append(("unexpected key", st.encode(extra), [["unexpected", "unknown"],
                                                      ["extra.weight"]]))

    reshaped = dict(weights)
    reshaped["fc_out.weight"] = np.zeros((E, E - 1), np.float32)
    cases.append(("wrong shape", st.encode(reshaped), [["shape"], ["fc_out.weight"]]))

    cases.append(("truncated file", good[:-7],
                  [["offset", "size", "end", "short", "trunc", "past", "beyond", "outside"]]))
    cases.append(("file shorter than the header length field", good[:5],
                  [["header", "length", "short", "small", "bytes"]]))
    cases.append(("header length past the end",
                  struct.pack("<Q", len(good) + 100) + good[8:],
                  [["header"], ["length", "end", "past", "beyond", "exceed", "larger", "size"]]))
    cases.append(("huge header length", struct.pack("<Q", 2**63 + 5) + good[8:],
                  [["header"], ["length", "limit", "end", "past", "large"]]))
    unclosed = b'{"fc_out.bias": {"dtype": "F32", "shape": [8'
    cases.append(("bad JSON (unclosed)", struct.pack("<Q", len(unclosed)) + unclosed,
                  [["json"]]))
    syntax = b'{"fc_out.bias":,}'
    cases.append(("bad JSON (syntax)", struct.pack("<Q", len(syntax)) + syntax, [["json"]]))

    f32 = 4
    a = HD * HD * f32
    overlapping = [
        ("values.weight", entry("F32", [HD, HD], 0, a)),
        ("keys.weight", entry("F32", [HD, HD], a - f32, 2 * a - f32)),
    ]
    cases.append(("overlapping offsets", raw_file(overlapping, bytes(2 * a)),
                  [["overlap", "gap", "order", "contiguous"]]))

    duplicate = [
        ("values.weight", entry("F32", [HD, HD], 0, a)),
        ("values.weight", entry("F32", [HD, HD], a, 2 * a)),
    ]
    cases.append(("duplicate key", raw_file(duplicate, bytes(2 * a)),
                  [["twice", "duplicate", "more than once", "repeated"], ["values.weight"]]))

    wrong_size = [("values.weight", entry("F64", [HD, HD], 0, a))]
    cases.append(("dtype size does not match the offsets", raw_file(wrong_size, bytes(a)),
                  [["values.weight"], ["size", "bytes", "offset", "f64", "match"]]))

    cases.append(("unknown dtype", raw_file([("values.weight", entry("Q7", [HD, HD], 0, a))],
                                            bytes(a)),
                  [["dtype"], ["q7"]]))
    cases.append(("negative dimension",
                  raw_file([("values.weight", entry("F32", [-HD, HD], 0, a))], bytes(a)),
                  [["values.weight"], ["shape", "dimension", "negative"]]))
    cases.append(("offsets past the data",
                  raw_file([("values.weight", entry("F32", [HD, HD], 0, a))], bytes(a - 4)),
                  [["values.weight"], ["offset", "end", "past", "beyond", "outside", "size"]]))
    cases.append(("header not an object", raw_file([], b"").replace(b"{}", b"[]"),
                  [["object", "json", "header"]]))
    cases.append(("empty file", b"", [["header", "length", "short", "small", "bytes", "empty"]]))
    return cases


def run(driver, directory):
    proc = subprocess.run([driver, "seed_mha", directory], capture_output=True, text=True,
                          timeout=60)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--driver", required=True, help="path of attn_conform")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    weights = good_weights(rng)
    tensors, metadata = good_inputs(rng)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="attn_conform_bad_") as directory:
        weights_path = os.path.join(directory, "weights.safetensors")
        inputs_path = os.path.join(directory, "inputs.safetensors")
        st.save(inputs_path, tensors, metadata)
        st.save(weights_path, weights)
        code, message = run(args.driver, directory)
        if code != 0:
            print(f"FAIL the good case: exit status {code}: {message}")
            return 1
        print("ok   the good case runs")

        cases = bad_files(weights)
        # Bad inputs: a missing tensor, a tensor of the wrong shape.
        missing_input = dict(tensors)
        del missing_input["dout"]
        wrong_input = dict(tensors)
        wrong_input["keys"] = tensors["keys"][:, :2]
        input_cases = [
            ("input tensor missing", st.encode(missing_input, metadata), [["dout"]]),
            ("input of the wrong shape", st.encode(wrong_input, metadata),
             [["keys"], ["shape"]]),
        ]

        for target, group in [(weights_path, cases), (inputs_path, input_cases)]:
            for description, blob, keywords in group:
                st.save(weights_path, weights)
                st.save(inputs_path, tensors, metadata)
                with open(target, "wb") as f:
                    f.write(blob)
                code, message = run(args.driver, directory)
                problems = []
                if code < 0:
                    problems.append(f"killed by signal {-code}")
                elif code != 1:
                    problems.append(f"exit status {code}, not 1")
                lower = message.lower()
                for words in keywords:
                    if not any(w.lower() in lower for w in words):
                        problems.append(f"message names none of {words}")
                status = "FAIL" if problems else "ok  "
                print(f"{status} {description}: [{code}] {message}")
                for problem in problems:
                    print(f"     {problem}")
                failures += bool(problems)
    total = len(cases) + len(input_cases)
    print(f"\nbad_files: {total - failures} of {total} bad files rejected as expected")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
