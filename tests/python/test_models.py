"""attn.models and attn.records against the attn tool: tiny models trained once
per module with `attn train`, then translations, generated text and attention
records compared with what `attn translate` and `attn generate` print and write;
streaming and stopping it early; and every bad file or argument raising a Python
exception with a clear message (attn's own where the library finds it).

The tool is the attn next to the library the package loads (the build tree's),
or the one ATTN_CLI names."""
import json
import os
import struct
import subprocess
import threading
import time

import numpy as np
import pytest

import attn
from attn import models, records
from attn._lib import _build

CLI = os.environ.get("ATTN_CLI") or os.path.join(os.path.dirname(_build.LIBRARY), "attn")
if not os.access(CLI, os.X_OK):
    pytest.skip(f"no attn tool at {CLI} (set ATTN_CLI)", allow_module_level=True)

DATES = ["Nov 24, 2026", "24/11/1999", "the 3rd of May 1950", "20261124", "Tue, 24 Nov 2026"]
# Text for the language model: repetitive enough for 200 steps to learn some of it.
TEXT = "".join(f"the {a} {v} the {b}. " for a in ("cat", "dog", "bird", "fox")
               for v in ("sat on", "ran to", "saw") for b in ("mat", "tree", "café", "hill")) * 3
PROMPT = "the dog "
BLOCK = 16


def tool(*args):
    """The tool's standard output (it must succeed), bytes that are no UTF-8 as
    U+FFFD (as the package reads a bytes model's)."""
    run = subprocess.run([CLI, *map(str, args)], capture_output=True)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    return run.stdout.decode(errors="replace")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Model files by name: dates (gru-bahdanau, soft), transformer (dates),
    hard (reverse, hard-reinforce: a buffer, and hard maps), text (a language
    model of characters), bytes (one of bytes)."""
    d = tmp_path_factory.mktemp("models")
    tiny = ["--batch", 16, "--threads", 1, "--eval-every", 100]
    trained = {
        "dates": ["--embed", 8, "--hidden", 16, "--steps", 150],
        "transformer": ["--model", "transformer", "--hidden", 16, "--heads", 2, "--ff", 32,
                        "--layers", 1, "--steps", 30],
        "hard": ["--task", "reverse", "--attention", "hard-reinforce", "--embed", 8,
                 "--hidden", 16, "--steps", 30],
    }
    paths = {name: d / f"{name}.safetensors" for name in [*trained, "text", "bytes"]}
    for name, args in trained.items():
        tool("train", *args, *tiny, "--out", paths[name])
    (d / "text.txt").write_text(TEXT)
    for unit, steps in (("chars", 200), ("bytes", 30)):
        tool("train", "--task", "text", "--data", d / "text.txt", "--unit", unit, "--layers", 1,
             "--embd", 16, "--heads", 2, "--block", BLOCK, "--steps", steps, *tiny, "--out",
             paths["text" if unit == "chars" else unit])
    return paths


@pytest.fixture(scope="module")
def lm(files):
    with models.LanguageModel(files["text"]) as model:
        yield model


def translations(output):
    """The outputs of `attn translate --no-grid`'s lines "source → output"."""
    return [line.split(" \u2192 ")[1] for line in output.splitlines()]


# ---- sequence-to-sequence models ----


@pytest.mark.parametrize("name", ["dates", "transformer"])
@pytest.mark.parametrize("beam", [1, 3])
def test_translate_equals_the_tool(files, name, beam):
    want = translations(tool("translate", "--model", files[name], "--no-grid", "--beam", beam,
                             *DATES))
    with models.load(files[name]) as model:
        assert isinstance(model, models.Translator) and model.task == "dates"
        assert model.translate(DATES, beam=beam) == want
        assert model.translate(DATES[1], beam=beam) == want[1]


def test_translate_attention_equals_the_tools_json(files):
    with models.Translator(files["dates"]) as model:
        for text in DATES[:3]:
            want = json.loads(tool("translate", "--model", files["dates"], "--json", text))
            output, weights = model.translate(text, attention=True)
            assert output == want["output"]
            # a row per output token and one for EOS, unless the output ran to max_tgt_len
            steps = len(want["output_tokens"])
            assert weights.shape == (min(steps + 1, model.config["max_tgt_len"]), len(text))
            # printed with 4 significant digits
            np.testing.assert_allclose(weights[:steps], want["attention"], rtol=1e-3, atol=0)
            np.testing.assert_allclose(weights.sum(axis=1), 1, atol=1e-5)


def check_same_record(got, want):
    assert (got.model, got.task, got.queries, got.keys) == (want.model, want.task, want.queries,
                                                           want.keys)
    assert [m.name for m in got.maps] == [m.name for m in want.maps]
    for g, w in zip(got.maps, want.maps):
        assert (g.site, g.layer, g.kind, g.hard, g.row_tokens, g.col_tokens) == \
               (w.site, w.layer, w.kind, w.hard, w.row_tokens, w.col_tokens)
        assert np.array_equal(g.weights, w.weights), g.name


def check_json_numbers(record, path):
    """record, what load_record read from the JSON file at path, holds the file's
    own numbers (written with 9 digits: the same floats)."""
    data = json.loads(path.read_text())
    assert (record.model, record.task, record.queries, record.keys) == \
           (data["model"], data["task"], data["queries"], data["keys"])
    for m, d in zip(record.maps, data["maps"], strict=True):
        assert (m.name, m.site, m.layer, m.kind, m.hard) == \
               (d["name"], d["site"], d["layer"], d["kind"], d["hard"])
        assert m.weights.shape == (d["heads"], d["rows"], d["cols"])
        assert np.array_equal(m.weights, np.array(d["weights"], np.float32))


@pytest.mark.parametrize("name, text", [("dates", "Nov 24, 2026"), ("transformer", "24/11/1999"),
                                        ("hard", "31415")])
def test_translation_records_equal_the_tools_files(files, tmp_path, name, text):
    written = {}
    for ext in ("json", "safetensors"):
        written[ext] = tmp_path / f"record.{ext}"
        tool("translate", "--model", files[name], "--no-grid", "--attention", written[ext], text)
    from_json, from_safetensors = (records.load_record(p) for p in written.values())
    check_json_numbers(from_json, written["json"])
    check_same_record(from_safetensors, from_json)
    with models.Translator(files[name]) as model:
        check_same_record(model.record(text), from_json)
        assert model.record(text).keys == list(text)
    kinds = {(m.kind, m.hard) for m in from_json.maps}
    if name == "transformer":  # encoder and decoder self-attention, cross-attention, 2 heads
        assert kinds == {("self", False), ("cross", False)}
        assert {m.weights.shape[0] for m in from_json.maps} == {2}
    else:
        assert kinds == {("cross", name == "hard")}


# ---- language models ----


@pytest.mark.parametrize("options", [
    {"temperature": 0},
    {"temperature": 0.8, "top_k": 5, "top_p": 0.9, "seed": 7},
    {"temperature": 1.5, "seed": 3, "use_cache": False},
])
def test_generate_equals_the_tool(files, lm, options):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items() if k != "use_cache"]
    flags += [] if options.get("use_cache", True) else ["--no-cache"]
    # 40 tokens: past the block size, so the context is cut as the tool cuts it
    want = tool("generate", "--model", files["text"], "--prompt", PROMPT, "--tokens", 40, *flags)
    got = lm.generate(PROMPT, 40, **options)
    assert want == PROMPT + got + "\n"
    assert len(got) == 40


def test_generate_cuts_a_long_prompt(files, lm):
    prompt = TEXT[:3 * BLOCK]
    want = tool("generate", "--model", files["text"], "--prompt", prompt, "--tokens", 5)
    assert want == prompt + lm.generate(prompt, 5) + "\n"


def test_stream_yields_the_text_piece_by_piece(lm):
    options = {"temperature": 0.8, "top_k": 10, "seed": 11}
    pieces = list(lm.stream(PROMPT, 30, **options))
    assert len(pieces) == 30 and all(len(p) == 1 for p in pieces)
    assert "".join(pieces) == lm.generate(PROMPT, 30, **options)


def test_stream_stops_when_closed(lm):
    threads = threading.active_count()
    start = time.monotonic()
    stream = lm.stream(PROMPT, 1_000_000)  # were it to run on, this would take minutes
    first = [next(stream) for _ in range(3)]
    with pytest.raises(RuntimeError, match="in use by another call"):
        lm.generate(PROMPT, 1)  # the open stream holds the model
    stream.close()
    assert time.monotonic() - start < 5
    assert threading.active_count() == threads  # the generating thread has ended
    assert "".join(first) == lm.generate(PROMPT, 3)  # and the model is free again
    for _ in lm.stream(PROMPT, 100):  # leaving a loop, then dropping the generator
        break
    assert lm.generate(PROMPT, 1)


def test_generation_records_equal_the_tools_files(files, lm, tmp_path):
    written = {}
    for ext in ("json", "safetensors"):
        written[ext] = tmp_path / f"record.{ext}"
        tool("generate", "--model", files["text"], "--prompt", PROMPT, "--tokens", 12,
             "--temperature", 0, "--attention", written[ext])
    from_json, from_safetensors = (records.load_record(p) for p in written.values())
    check_json_numbers(from_json, written["json"])
    check_same_record(from_safetensors, from_json)
    # The tool records the final context: the last block of the prompt and the text.
    context = (PROMPT + lm.generate(PROMPT, 12, temperature=0))[-BLOCK:]
    check_same_record(lm.record(context), from_json)


def test_a_bytes_model_equals_the_tool(files, tmp_path):
    """A character may take several tokens: the text and the records' labels."""
    prompt = "the caf\u00e9 "
    written = tmp_path / "record.json"
    options = {"temperature": 1.5, "seed": 5}
    want = tool("generate", "--model", files["bytes"], "--prompt", prompt, "--tokens", 6,
                "--temperature", 1.5, "--seed", 5, "--attention", written)
    with models.load(files["bytes"]) as model:
        assert model.unit == "bytes"
        text = model.generate(prompt, 6, **options)
        assert want == prompt + text + "\n"
        assert "".join(model.stream(prompt, 6, **options)) == text
        record = model.record(prompt)
    assert record.keys == list("the caf") + ["<0xC3>", "<0xA9>", " "]
    context = records.load_record(written)
    assert context.keys[:len(record.keys)] == record.keys


def test_record_rows_sum_to_one(lm):
    text = TEXT[:BLOCK]
    (m,) = lm.record(text).maps
    assert (m.name, m.site, m.kind, m.layer, m.hard) == ("transformer.h.0.attn",
                                                        "transformer.h.*.attn", "self", 0, False)
    assert m.weights.shape == (2, len(text), len(text)) and m.weights.dtype == np.float32
    assert m.row_tokens == m.col_tokens == list(text)
    np.testing.assert_allclose(m.weights.sum(axis=-1), 1, atol=1e-5)
    assert not np.triu(m.weights, k=1).any()  # causal


def check_same_extras(got, want):
    """q, k and the gradients of two records, bit for bit."""
    assert got.gradient_step == want.gradient_step
    for g, w in zip(got.maps, want.maps, strict=True):
        for part in ("q", "k", "gradient"):
            a, b = getattr(g, part), getattr(w, part)
            assert (a is None) == (b is None), (g.name, part)
            assert a is None or np.array_equal(a, b), (g.name, part)


@pytest.mark.parametrize("name, flags, options", [
    ("transformer", ["--qk", "--gradient"], {"qk": True, "gradient": True}),
    ("transformer", ["--gradient-step", "1"], {"gradient_step": 1}),
    ("dates", ["--gradient"], {"gradient": True}),
])
def test_translation_extras_equal_the_tools_files(files, tmp_path, name, flags, options):
    text = "24/11/1999"
    written = tmp_path / "record.safetensors"
    tool("translate", "--model", files[name], "--no-grid", *flags, "--attention", written, text)
    want = records.load_record(written)
    with models.Translator(files[name]) as model:
        got = model.record(text, **options)
        plain = model.record(text)
    check_same_record(got, want)
    check_same_extras(got, want)
    assert got.gradient_step == options.get("gradient_step", records.EXPLAIN_ALL)
    assert all(m.gradient is not None and m.gradient.shape == m.weights.shape for m in got.maps)
    assert all((m.q is not None) == options.get("qk", False) for m in got.maps)
    assert plain.gradient_step is None and all(m.gradient is None for m in plain.maps)


def test_generation_extras_equal_the_tools_files(files, lm, tmp_path):
    written = tmp_path / "record.json"
    tool("generate", "--model", files["text"], "--prompt", PROMPT, "--tokens", 4,
         "--temperature", 0, "--qk", "--gradient", "--attention", written)
    want = records.load_record(written)
    context = PROMPT + lm.generate(PROMPT, 4, temperature=0)
    got = lm.record(context, qk=True, gradient=True)
    check_same_record(got, want)
    check_same_extras(got, want)
    assert got.gradient_step == len(context) - 1
    (m,) = got.maps
    assert m.q.shape == m.k.shape == (2, len(context), m.q.shape[2])
    assert not np.triu(m.gradient, k=1).any()  # masked cells: no gradient


def test_record_extras_refused(files, lm):
    with models.Translator(files["hard"]) as model:
        with pytest.raises(attn.AttnNotImplementedError, match="no gradient to record"):
            model.record("31415", gradient=True)
    with models.Translator(files["dates"]) as model:
        with pytest.raises(attn.AttnNotImplementedError, match="records no q and k"):
            model.record("1/2/2000", qk=True)
    with pytest.raises(attn.AttnValueError, match="gradient step 0 is not a token"):
        lm.record(PROMPT, gradient_step=0)
    with pytest.raises(TypeError, match="gradient_step must be an int"):
        lm.record(PROMPT, gradient_step=1.5)


# ---- bad files ----


def rewrite(source, target, **metadata):
    """A copy of the safetensors file source with metadata keys replaced (None
    removes one) and without its checksum: a file attn loads as it is."""
    data = source.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header["__metadata__"]
    for key in ("attn.sealed", "attn.crc32c"):
        del meta[key]
    for key, value in metadata.items():
        if value is None:
            del meta[key]
        else:
            meta[key] = value if isinstance(value, str) else json.dumps(value)
    text = json.dumps(header).encode()
    target.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n:])
    return target


def model_json(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(json.loads(f.read(n))["__metadata__"]["model"])


def test_missing_file(tmp_path):
    with pytest.raises(attn.AttnOSError, match="cannot open '.*nothing.safetensors': No such"):
        models.load(tmp_path / "nothing.safetensors")
    with pytest.raises(attn.AttnOSError, match="cannot open '.*nothing.json'"):
        records.load_record(tmp_path / "nothing.json")


def test_wrong_kind(files, tmp_path):
    with pytest.raises(attn.AttnValueError,
                       match="a language model, not a sequence-to-sequence one; use LanguageModel"):
        models.Translator(files["text"])
    with pytest.raises(ValueError, match="a sequence-to-sequence model, not a language model; "
                                         "use Translator"):
        models.LanguageModel(files["dates"])
    with models.load(files["text"]) as model:
        assert isinstance(model, models.LanguageModel)
    record = tmp_path / "record.safetensors"
    tool("translate", "--model", files["dates"], "--attention", record, "--no-grid", "1999-01-02")
    with pytest.raises(attn.AttnValueError, match="is an attn 'attention' file, not a model"):
        models.load(record)
    with pytest.raises(attn.AttnValueError, match="not an attn model file"):
        models.load(rewrite(files["dates"], tmp_path / "plain.safetensors", **{"attn.kind": None}))
    with pytest.raises(attn.AttnValueError, match="not an attention record"):
        records.load_record(files["dates"])  # a model is no record
    with pytest.raises(attn.AttnValueError, match="not valid JSON"):
        records.load_record(files["text"].parent / "text.txt")


def test_damaged_file(files, tmp_path):
    damaged = tmp_path / "damaged.safetensors"
    data = bytearray(files["dates"].read_bytes())
    data[-100] ^= 1
    damaged.write_bytes(data)
    with pytest.raises(attn.AttnValueError, match="do not match their checksum"):
        models.Translator(damaged)
    with pytest.raises(attn.AttnValueError, match="header length"):
        models.load(files["text"].parent / "text.txt")


def test_bad_metadata(files, tmp_path):
    path = tmp_path / "bad.safetensors"
    cfg = model_json(files["text"])
    cases = [
        (files["text"], {"model": dict(cfg, n_embd=None)},
         "'n_embd' in metadata 'model' is missing or not a whole number"),
        (files["text"], {"model": dict(cfg, n_embd=15)},
         "metadata 'model': n_embd 15 is not divisible by n_head 2"),  # the library's check
        (files["text"], {"model": dict(cfg, position="spiral")},
         "metadata 'model': .*spiral.*learned"),  # the library lists the known names
        (files["text"], {"model": dict(cfg, n_layer=8)},
         r"describes a model of \d+ parameters, but the file holds only \d+ numbers"),
        (files["text"], {"model": dict(cfg, bias=1)}, "'bias' .* not true or false"),
        (files["text"], {"vocab": {"unit": "chars", "chars": [98, 97]}},
         "metadata 'vocab': .*ascend"),
        (files["text"], {"step": "-3"}, "metadata 'step' is '-3', not a step count"),
        (files["dates"], {"task": "poems"}, "metadata 'task': .*poems"),
        (files["dates"], {"tgt_vocab": "0123456789"}, "'tgt_vocab' differs from the 'dates'"),
        (files["dates"], {"model": dict(model_json(files["dates"]), hidden_dim=12)},
         "key .* has shape .* in the file but .* in the module"),  # the library: tensors do not fit
    ]
    for source, metadata, message in cases:
        rewrite(source, path, **metadata)
        with pytest.raises(attn.AttnValueError, match=message) as e:
            models.load(path)
        assert str(e.value).startswith(f"{path}: ")


# ---- bad arguments ----


def test_bad_arguments(files, lm):
    model = models.Translator(files["dates"])
    bad = [
        (lambda: models.load(3), TypeError, "not int"),
        (lambda: model.translate(123), TypeError, "texts must be a str or a list of str, not int"),
        (lambda: model.translate([b"1999"]), TypeError, "text must be a str, not bytes"),
        (lambda: model.translate("Nov 24", beam="3"), TypeError, "beam must be an int, not str"),
        (lambda: model.translate("Nov 24", beam=0), ValueError, r"beam must be in \[1, 64\]"),
        (lambda: model.translate(""), ValueError, "text is empty"),
        (lambda: model.translate("Nov 24\0"), ValueError, "NUL"),
        (lambda: model.translate("Nov 24 \u20ac"), attn.AttnValueError,
         "character '\u20ac' .* at position 7 is not in the vocabulary"),
        (lambda: model.translate("1" * 40), attn.AttnValueError,
         "text of 40 characters is longer than the maximum 32"),
        (lambda: model.record("Nov 24", seed=-1), ValueError, "seed must be in"),
        (lambda: lm.generate(PROMPT, "5"), TypeError, "tokens must be an int, not str"),
        (lambda: lm.generate(PROMPT, 0), ValueError, "tokens must be in"),
        (lambda: lm.generate(PROMPT, 5, temperature="hot"), TypeError, "temperature must be a "
                                                                       "number"),
        (lambda: lm.generate(PROMPT, 5, temperature=-1), attn.AttnValueError,
         "temperature -1 must be finite and at least 0"),  # the library's message
        (lambda: lm.generate(PROMPT, 5, top_p=0), attn.AttnValueError, r"top_p 0 is outside"),
        (lambda: lm.generate(PROMPT, 5, top_k=2**40), ValueError, "top_k must be in"),
        (lambda: lm.generate(["the"], 5), TypeError, "prompt must be a str, not list"),
        (lambda: lm.generate("\u20ac", 5), attn.AttnValueError, "not in the vocabulary"),
        (lambda: lm.record(TEXT[:BLOCK + 1]), attn.AttnValueError,
         f"context of {BLOCK + 1} tokens exceeds the block size {BLOCK}"),
    ]
    for call, error, message in bad:
        with pytest.raises(error, match=message):
            call()
    with pytest.raises(attn.AttnValueError, match="top_p"):
        list(lm.stream(PROMPT, 5, top_p=2))  # from the generating thread, with its message
    model.close()
    with pytest.raises(ValueError, match="the model is closed"):
        model.translate("Nov 24, 2026")
    model.close()  # twice is harmless
