#!/usr/bin/python3
"""Trains tiny models of every architecture with the attn tool given, one step
each, and writes their files into a directory, to seed fuzz_model_file. Each is
written without its checksum keys (tests/cli/edit_meta.py), as files from before
checksums are, so that the fuzzer's changes to the metadata reach its
validation instead of stopping at the checksum; and in the fuzzer's form: the
JSON header, a NUL, the tensor bytes (the header's length is left out). Two
more describe models far larger than their files hold: the loader must refuse
them before allocating (the fuzzer runs with a malloc limit).

    /usr/bin/python3 fuzz/make_model_corpus.py build-fuzz/attn model-corpus/
"""
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EDIT_META = os.path.join(HERE, "..", "tests", "cli", "edit_meta.py")

SEQUENCE = ["--embed", "4", "--hidden", "8", "--batch", "4"]
TEXT = ["--task", "text", "--layers", "1", "--heads", "2", "--embd", "8", "--block", "8",
        "--batch", "2", "--eval-windows", "1"]
MODELS = {
    "gru-soft": SEQUENCE,
    "luong-general-reverse": SEQUENCE + ["--model", "lstm-luong-general", "--task", "reverse"],
    "rnn-reinforce": SEQUENCE + ["--model", "rnn-bahdanau", "--attention", "hard-reinforce"],
    "lstm-gumbel": SEQUENCE + ["--model", "lstm-bahdanau", "--attention", "hard-gumbel",
                               "--layers", "2"],
    "transformer-sort": ["--model", "transformer", "--task", "sort", "--hidden", "8",
                         "--heads", "2", "--ff", "8", "--layers", "1", "--batch", "4"],
    "lm-learned": TEXT,
    "lm-rope-bytes": TEXT + ["--positions", "rope", "--unit", "bytes", "--kv-heads", "1"],
    "lm-alibi-window": TEXT + ["--positions", "alibi", "--window", "3", "--no-bias"],
    "lm-sinusoidal-untied": TEXT + ["--positions", "sinusoidal", "--no-tie", "--dropout", "0.1"],
}
# name: (model, metadata changes)
LARGER_THAN_THEIR_FILES = {
    "gru-soft-hidden-4096": ("gru-soft", ["model.hidden_dim=4096"]),
    "lm-learned-embd-4096": ("lm-learned", ["model.n_embd=4096"]),
}


def write_fuzz_input(model, target, changes=()):
    """model without its checksum keys, with changes, in the fuzzer's form."""
    unsealed = target + ".unsealed"
    subprocess.run([sys.executable, EDIT_META, model, unsealed, "attn.crc32c", "attn.sealed",
                    *changes], check=True)
    with open(unsealed, "rb") as f:
        raw = f.read()
    os.unlink(unsealed)
    (n,) = struct.unpack("<Q", raw[:8])
    with open(target, "wb") as f:
        f.write(raw[8:8 + n].rstrip(b" ") + b"\0" + raw[8 + n:])


def main():
    attn, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        text = os.path.join(work, "text.txt")
        with open(text, "w", encoding="utf-8") as f:
            f.write("the quick brown fox jumps over the lazy dog; ça va? " * 4)
        for name, options in MODELS.items():
            model = os.path.join(work, name + ".safetensors")
            data = ["--data", text] if "text" in options else []
            run = subprocess.run([attn, "train", *options, *data, "--steps", "2", "--stop-at",
                                  "1", "--threads", "1", "--out", model],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit(f"training {name} failed ({run.returncode}):\n{run.stderr}")
            write_fuzz_input(model, os.path.join(out, name))
        for name, (model, changes) in LARGER_THAN_THEIR_FILES.items():
            write_fuzz_input(os.path.join(work, model + ".safetensors"), os.path.join(out, name),
                             changes)


if __name__ == "__main__":
    main()
