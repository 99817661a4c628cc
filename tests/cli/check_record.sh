#!/usr/bin/env bash
# attn translate --attention and attn generate --attention: the records they
# write, read by Debian's Python from the bytes alone (the schema of
# include/attn/capture.h, the tokens, every map's shape and rows), the same
# output with and without a record, the same weights in both formats, bad uses,
# and the model view attn show draws of a language model's record. The models
# are tiny and train for a few steps: this checks behaviour, not learning.
#   check_record.sh PATH_TO_ATTN
set -uo pipefail
attn=$1
source "$(dirname "$0")/expect.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# check_record JSON SAFETENSORS MODEL TASK OUTPUT SOURCE: both files hold the
# same valid record of MODEL on TASK (SOURCE -> OUTPUT; for task text OUTPUT is
# the whole text, whose last tokens the record must hold).
check_record() {
  /usr/bin/python3 - "$@" <<'EOF'
import json, math, re, struct, sys

json_path, st_path, model, task, output, source = sys.argv[1:]

def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]

def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__")
    assert meta["attn.kind"] == "attention", meta
    record = json.loads(meta["record"])
    body = data[8 + n:]
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", (name, t["dtype"])
        begin, end = t["data_offsets"]
        values = struct.unpack("<%df" % ((end - begin) // 4), body[begin:end])
        h, r, c = t["shape"]
        tensors[name] = [[list(values[(i * r + j) * c:(i * r + j + 1) * c]) for j in range(r)]
                         for i in range(h)]
    return record, tensors

rec = json.load(open(json_path))
st_rec, tensors = read_safetensors(st_path)
assert rec["format"] == "attn-attention" and rec["version"] == 1, rec["format"]
assert rec["model"] == model and rec["task"] == task, (rec["model"], rec["task"])
queries, keys = rec["queries"], rec["keys"]
if task == "text":  # output: the --json report of attn generate
    report = json.loads(output)
    text = report["prompt"] + report["text"]
    assert queries == keys, "a language model's queries are its keys"
    assert "".join(keys) == text[len(text) - len("".join(keys)):], (keys, text)
else:
    assert keys == list(source), (keys, source)
    ends = queries[-1:] == ["</s>"]
    assert "".join(queries[:-1] if ends else queries) == output, (queries, output)
assert "</s>" not in queries[:-1]
names = [m["name"] for m in rec["maps"]]
assert len(set(names)) == len(names) > 0, names
assert sorted(tensors) == sorted("attention." + n for n in names), (sorted(tensors), names)
for m, sm in zip(rec["maps"], st_rec["maps"]):
    assert {k: v for k, v in m.items() if k != "weights"} == sm, (m["name"], sm)
    name, kind, H, R, C = m["name"], m["kind"], m["heads"], m["rows"], m["cols"]
    over = m.get("tokens", "keys") if kind == "self" else None
    if kind == "cross":
        assert (R, C) == (len(queries), len(keys)), (name, R, C)
    else:
        n = len(queries) if over == "queries" else len(keys)
        assert R == C == n, (name, R, C, n)
    causal = task == "text" or over == "queries"
    if model == "transformer":
        assert re.fullmatch(r"transformer\.(encoder\.layers\.\d+\.self_attn|decoder\.layers\.\d+\."
                            r"(self_attn|multihead_attn))", name), name
        assert (kind == "self") == name.endswith("self_attn"), name
        assert over == ("queries" if ".decoder." in name and kind == "self" else
                        "keys" if kind == "self" else None), (name, over)
    elif task == "text":
        assert re.fullmatch(r"transformer\.h\.\d+\.attn", name) and kind == "self", name
    else:
        assert name == "decoder.attention" and kind == "cross" and H == 1, name
    # JSON holds 9 significant digits: the same float32 as the tensor's
    w = tensors["attention." + name]
    assert [[[f32(x) for x in r] for r in rows] for rows in m["weights"]] == w, \
        name + ": the formats disagree"
    assert len(w) == H and all(len(rows) == R and all(len(r) == C for r in rows) for rows in w)
    for h in range(H):
        for i, row in enumerate(w[h]):
            assert all(0.0 <= x <= 1.0 for x in row), (name, h, i, row)
            assert abs(sum(row) - 1.0) < 1e-4, (name, h, i, sum(row))
            if causal:
                assert all(x == 0.0 for x in row[i + 1:]), (name, h, i, "sees the future")
            if m["hard"]:
                assert sorted(row)[-1] == 1.0 and sum(x != 0.0 for x in row) == 1, (name, h, i)
print("record of %s: %d maps, %d queries, %d keys" % (model, len(names), len(queries), len(keys)))
EOF
}

expect 0 "--attention FILE +record what the model attended to" -- "$attn" translate --help
expect 0 "--attention FILE +record what every head" -- "$attn" generate --help

# Every kind of encoder-decoder: the text is the same with and without a record,
# and both files hold the record.
source_text="Nov 24, 2026"
tiny=(--embed 8 --hidden 16 --heads 2 --ff 16 --batch 8 --steps 20 --eval-every 1000 --threads 2)
for spec in "gru-bahdanau soft" "lstm-luong-dot hard-gumbel" "rnn-bahdanau hard-reinforce" \
            "lstm-luong-general soft" "transformer soft"; do
  read -r arch kind <<<"$spec"
  model="$work/$arch-$kind.safetensors"
  expect 0 "saved" -- "$attn" train "${tiny[@]}" --model "$arch" --attention "$kind" --out "$model"
  sample=()
  [ "$kind" != soft ] && sample=(--sample --seed 7)
  plain=$("$attn" translate --model "$model" --no-grid "${sample[@]}" "$source_text" 2>&1)
  with=$("$attn" translate --model "$model" --no-grid "${sample[@]}" \
         --attention "$work/rec.json" "$source_text" 2>&1)
  "$attn" translate --model "$model" --no-grid "${sample[@]}" \
    --attention "$work/rec.safetensors" "$source_text" >/dev/null 2>&1
  if [ "$plain" = "$with" ] && [ -n "$plain" ]; then
    echo "ok:   $arch $kind: the same translation with a record: '$plain'"
  else
    echo "FAIL: $arch $kind: '$plain' without a record, '$with' with one"
    failures=$((failures + 1))
  fi
  output=${plain#*→ }
  expect 0 "record of $arch" -- check_record "$work/rec.json" "$work/rec.safetensors" "$arch" \
    dates "$output" "$source_text"
done

# --json prints only JSON on stdout, and records too.
json=$("$attn" translate --model "$model" --json --attention "$work/j.json" "$source_text")
if /usr/bin/python3 -c 'import json, sys; json.loads(sys.argv[1])' "$json" &&
   [ -s "$work/j.json" ]; then
  echo "ok:   translate --json --attention: JSON on stdout, the record in the file"
else
  echo "FAIL: translate --json --attention printed: $json"
  failures=$((failures + 1))
fi

# --qk and --gradient: the same translation, and every map of both files holds
# q and k (heads, rows or cols, head_dim) and a gradient shaped as its weights.
check_extras() {
  /usr/bin/python3 - "$@" <<'EOF'
import json, struct, sys
json_path, st_path, step = sys.argv[1], sys.argv[2], int(sys.argv[3])
rec = json.load(open(json_path))
data = open(st_path, "rb").read()
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8:8 + n])
meta = json.loads(header.pop("__metadata__")["record"])
assert rec["gradient_step"] == meta["gradient_step"] == step, (rec["gradient_step"], step)
for m in rec["maps"]:
    h, r, c, d = m["heads"], m["rows"], m["cols"], m["head_dim"]
    for key, shape in (("q", [h, r, d]), ("k", [h, c, d]), ("gradient", [h, r, c])):
        got = [len(m[key]), len(m[key][0]), len(m[key][0][0])]
        assert got == shape, (m["name"], key, got, shape)
        prefix = {"q": "query.", "k": "key.", "gradient": "gradient."}[key]
        assert header[prefix + m["name"]]["shape"] == shape, (m["name"], key)
    assert any(g != 0 for head in m["gradient"] for row in head for g in row), m["name"]
print("extras of %d maps, gradient step %d" % (len(rec["maps"]), step))
EOF
}
model="$work/transformer-soft.safetensors"
plain=$("$attn" translate --model "$model" --no-grid "$source_text" 2>&1)
for step in all 2; do
  with=$("$attn" translate --model "$model" --no-grid --qk --gradient-step "$step" \
         --attention "$work/extras.json" "$source_text" 2>&1)
  "$attn" translate --model "$model" --no-grid --qk --gradient-step "$step" \
    --attention "$work/extras.safetensors" "$source_text" >/dev/null 2>&1
  if [ "$plain" = "$with" ]; then
    echo "ok:   --qk --gradient-step $step: the same translation"
  else
    echo "FAIL: --qk --gradient-step $step: '$plain' without, '$with' with"
    failures=$((failures + 1))
  fi
  [ "$step" = all ] && want=-1 || want=$step
  expect 0 "extras of 6 maps, gradient step $want" -- \
    check_extras "$work/extras.json" "$work/extras.safetensors" "$want"
done
expect 0 "gradient-weighted attention of transformer.decoder.layers.1.multihead_attn" -- \
  "$attn" analyze --gradient "$work/extras.json"
expect 1 "rec.json has no gradients" -- "$attn" analyze --gradient "$work/rec.json"
expect 2 "--gradient adds to the record; it needs --attention FILE" -- \
  "$attn" translate --model "$model" --gradient "$source_text"
expect 2 "--qk adds to the record; it needs --attention FILE" -- \
  "$attn" translate --model "$model" --qk "$source_text"
expect 2 "--gradient-step takes 'all' or 0 to 1048576, not 'x'" -- \
  "$attn" translate --model "$model" --gradient-step x --attention "$work/x.json" "$source_text"
expect 1 "gradient step 40 is not an output step" -- \
  "$attn" translate --model "$model" --gradient-step 40 --attention "$work/x.json" "$source_text"
# the RNN decoders: soft attention's gradient, Luong's q and k; not Bahdanau's
# q and k, nor a gradient of hard attention
expect 0 "" -- "$attn" translate --model "$work/gru-bahdanau-soft.safetensors" --gradient \
  --attention "$work/rnn.json" "$source_text"
expect 0 "gradient-weighted attention of decoder.attention" -- \
  "$attn" analyze --gradient "$work/rnn.json"
expect 0 "" -- "$attn" translate --model "$work/lstm-luong-general-soft.safetensors" --qk \
  --gradient-step 0 --attention "$work/rnn.json" "$source_text"
expect 1 "gru-bahdanau scores v . tanh\\(W q \\+ U k\\), not a dot product" -- \
  "$attn" translate --model "$work/gru-bahdanau-soft.safetensors" --qk \
  --attention "$work/x.json" "$source_text"
expect 1 "hard attention picks one position per step" -- \
  "$attn" translate --model "$work/lstm-luong-dot-hard-gumbel.safetensors" --gradient \
  --attention "$work/x.json" "$source_text"

# Bad uses: several texts, beam search, a file that cannot be written.
model="$work/gru-bahdanau-soft.safetensors"
expect 2 "--attention FILE records one TEXT; 2 given" -- \
  "$attn" translate --model "$model" --attention "$work/x.json" "Nov 24, 2026" "1 May 1999"
expect 2 "--attention FILE records one TEXT; 0 given" -- \
  "$attn" translate --model "$model" --attention "$work/x.json"
expect 2 "--attention records greedy decoding; --beam 3 must be 1" -- \
  "$attn" translate --model "$model" --attention "$work/x.json" --beam 3 "Nov 24, 2026"
expect 2 "option '--attention' needs a value" -- "$attn" translate --model "$model" --attention
expect 2 "--attention $work/none/x.json: the folder $work/none does not exist" -- \
  "$attn" translate --model "$model" --attention "$work/none/x.json" "Nov 24, 2026"

# The language model: the final context (prompt and text, cut to the block) is
# recorded, and the text is the same with and without a record.
RANDOM=7
words=(attention query key value model token the a of to and is in that layer head)
for _ in $(seq 800); do
  line=""
  for _ in 1 2 3 4 5 6; do line+="${words[RANDOM % 16]} "; done
  echo "$line."
done >"$work/words.txt"
lm="$work/lm.safetensors"
expect 0 "saved" -- "$attn" train --task text --data "$work/words.txt" --layers 2 --embd 32 \
  --heads 2 --block 16 --batch 4 --steps 10 --threads 2 --out "$lm"
# The generated text of a --json report, quoted (it may end in a newline).
text_of() { /usr/bin/python3 -c 'import json, sys; print(repr(json.loads(sys.argv[1])["text"]))' "$1"; }
for prompt in "the key " "attention is a query of the value in that layer"; do
  gen=(--model "$lm" --prompt "$prompt" --tokens 12 --seed 3 --json)
  plain=$("$attn" generate "${gen[@]}" 2>/dev/null)
  with=$("$attn" generate "${gen[@]}" --attention "$work/lm.json" 2>/dev/null)
  "$attn" generate "${gen[@]}" --attention "$work/lm-record.safetensors" >/dev/null 2>&1
  if [ "$(text_of "$plain")" = "$(text_of "$with")" ]; then
    echo "ok:   generate: the same text with a record: $(text_of "$plain")"
  else
    echo "FAIL: generate: '$plain' without a record, '$with' with one"
    failures=$((failures + 1))
  fi
  expect 0 "record of gpt: 2 maps, 16 queries" -- check_record "$work/lm.json" \
    "$work/lm-record.safetensors" gpt text "$plain" ""
done
# --qk --gradient on the language model: the same text; the last token explained
gen=(--model "$lm" --prompt "the key " --tokens 6 --seed 3 --json)
plain=$("$attn" generate "${gen[@]}" 2>/dev/null)
with=$("$attn" generate "${gen[@]}" --qk --gradient --attention "$work/lm-extras.json" 2>/dev/null)
"$attn" generate "${gen[@]}" --qk --gradient --attention "$work/lm-extras.safetensors" \
  >/dev/null 2>&1
if [ "$(text_of "$plain")" = "$(text_of "$with")" ]; then
  echo "ok:   generate --qk --gradient: the same text"
else
  echo "FAIL: generate --qk --gradient: '$plain' without, '$with' with"
  failures=$((failures + 1))
fi
expect 0 "extras of 2 maps, gradient step 13" -- \
  check_extras "$work/lm-extras.json" "$work/lm-extras.safetensors" 13
expect 0 "gradient-weighted relevance of transformer.h.[*].attn over 2 layers [(]log p of token 13" \
  -- "$attn" analyze "$work/lm-extras.json"
expect 1 "gradient step 14 is not a token of the context" -- \
  "$attn" generate "${gen[@]}" --gradient-step 14 --attention "$work/x.json"
# attn show --grid draws the record's model view: each of its layers' heads
for picture in lm.png lm.svg lm.pdf; do
  expect 0 "^wrote $work/$picture: model view, 2 maps x 2 heads$" -- \
    "$attn" show "$work/lm-record.safetensors" --grid --out "$work/$picture"
done
expect 2 "--attention $work/none/x.json: the folder $work/none does not exist" -- \
  "$attn" generate --model "$lm" --prompt "the " --tokens 2 --attention "$work/none/x.json"

if [ "$failures" -ne 0 ]; then
  echo "$failures record check(s) failed"
  exit 1
fi
echo "every record check passed"
