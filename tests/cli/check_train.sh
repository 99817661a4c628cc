#!/usr/bin/env bash
# attn train, eval and translate: their options and messages, exact resume, an
# interrupted run's checkpoint, mixed precision, and files that are not good
# models. The models are tiny and train for a few steps: this checks behaviour,
# not learning.
#   check_train.sh PATH_TO_ATTN
set -uo pipefail
attn=$1
source "$(dirname "$0")/expect.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tiny=(--embed 8 --hidden 16 --batch 8 --eval-every 10 --threads 2)

expect 0 "usage: attn train" -- "$attn" train --help
expect 0 "usage: attn eval" -- "$attn" eval --help
expect 0 "usage: attn translate" -- "$attn" translate --help
expect 2 "unknown option '--bogus'" -- "$attn" train --bogus
expect 2 "--model: .*'gru-bahdnau'.*gru-bahdanau" -- "$attn" train --model gru-bahdnau
expect 2 "--attention: .*'hard'.*hard-reinforce" -- "$attn" train --attention hard
expect 2 "--task: .*'dats'.*dates" -- "$attn" train --task dats
expect 2 "--steps takes 1 to 1e8, not '0'" -- "$attn" train --steps 0
expect 2 "--lr takes 1e-8 to 10, not 'fast'" -- "$attn" train --lr fast
expect 2 "--resume continues a run with its own model" -- \
  "$attn" train --resume "$work/none.safetensors" --hidden 8
expect 2 "--model FILE is required" -- "$attn" eval
expect 2 "--model FILE is required" -- "$attn" translate "Nov 24, 2026"

# A run in one go, and the same run stopped after 13 steps and resumed: the
# checkpoints must be the same bytes.
expect 0 "test exact match: [0-9.]+% \(-?[0-9]+ of 2000\)" -- \
  "$attn" train "${tiny[@]}" --steps 30 --out "$work/whole.safetensors"
expect 0 "stopped after step 13 of 30; continue with: attn train --resume" -- \
  "$attn" train "${tiny[@]}" --steps 30 --stop-at 13 --out "$work/parts.safetensors"
expect 0 "test exact match" -- "$attn" train --resume "$work/parts.safetensors" --threads 2
expect_same_bytes "$work/whole.safetensors" "$work/parts.safetensors" \
  "a resumed run ends with the same checkpoint as one run"

# Mixed precision for the sequence models: --precision bf16 trains (the report says
# so, the weights differ from float32's), is kept in the checkpoint so that
# --resume continues in bf16 to the bytes of one run (dropout on, so its masks
# repeat too), and a bad value or a new precision on --resume is refused.
for model in gru-bahdanau lstm-luong-general transformer; do
  expect 0 "^$model, soft attention, dates, bf16: 20 steps" -- \
    "$attn" train "${tiny[@]}" --model "$model" --dropout 0.1 --steps 20 --precision bf16 \
    --out "$work/$model-bf16.safetensors"
done
expect 0 "stopped after step 13 of 20" -- \
  "$attn" train "${tiny[@]}" --model transformer --dropout 0.1 --steps 20 --precision bf16 \
  --stop-at 13 --out "$work/bf16-parts.safetensors"
expect 0 '"precision": "bf16", "test_examples": 2000' -- \
  "$attn" train --resume "$work/bf16-parts.safetensors" --threads 2 --json
expect_same_bytes "$work/transformer-bf16.safetensors" "$work/bf16-parts.safetensors" \
  "a resumed bf16 run ends with the same checkpoint as one bf16 run"
expect 0 "^transformer, soft attention, dates, float32: 20 steps" -- \
  "$attn" train "${tiny[@]}" --model transformer --dropout 0.1 --steps 20 \
  --out "$work/transformer-f32.safetensors"
expect_other_bytes "$work/transformer-bf16.safetensors" "$work/transformer-f32.safetensors" \
  "--precision bf16 trains other weights than float32"
expect 2 "--precision takes float32 or bf16, not 'fp16'" -- \
  "$attn" train "${tiny[@]}" --precision fp16
expect 2 "--resume continues a run with its own model" -- \
  "$attn" train --resume "$work/bf16-parts.safetensors" --precision float32
expect 0 "^test exact match: [0-9.]+% \([0-9]+ of 2000\), beam 1" -- \
  "$attn" eval --model "$work/gru-bahdanau-bf16.safetensors"

expect 0 '"test_examples": 1000, "test_exact": [0-9]+' -- \
  "$attn" train "${tiny[@]}" --task reverse --steps 5 --json --out "$work/reverse.safetensors"
expect 0 "^test exact match: [0-9.]+% \([0-9]+ of 2000\), beam 1" -- \
  "$attn" eval --model "$work/whole.safetensors"
expect 0 '"split": "valid", "beam": 3, "examples": 1000' -- \
  "$attn" eval --model "$work/whole.safetensors" --split valid --beam 3 --json
expect 0 $'^Nov 24, 2026 \u2192 [0-9-]*$' -- \
  "$attn" translate --model "$work/whole.safetensors" "Nov 24, 2026"
expect 0 '"source": "24/11/2026", "output": "[0-9-]*", "source_tokens": \["2", "4", "/"' -- \
  "$attn" translate --model "$work/whole.safetensors" --json "24/11/2026"
expect 0 "^ +2 4 / 1 1 / 2 0 2 6 $" -- \
  "$attn" translate --model "$work/whole.safetensors" --grid "24/11/2026"
expect 1 "24 déc 2026.*'é'" -- "$attn" translate --model "$work/whole.safetensors" "24 déc 2026"
expect 1 "invalid UTF-8" -- "$attn" translate --model "$work/whole.safetensors" $'24 d\xe9c 2026'
expect 1 "longer than" -- "$attn" translate --model "$work/whole.safetensors" \
  "24 November 2026 24 November 2026 24 November 2026"

# Standard input is read as whole lines of text: a NUL ends it with a message (so
# /dev/zero fails at once), and a long line is one line, not several.
expect 1 "input line 1 has a NUL byte at byte 1; the input must be text" -- \
  timeout 10 "$attn" translate --model "$work/whole.safetensors" </dev/zero
printf '1/1/2000\nab\0c\n' >"$work/nul.txt"
expect 1 "input line 2 has a NUL byte at byte 3" -- \
  "$attn" translate --model "$work/whole.safetensors" <"$work/nul.txt"
head -c 5000 /dev/zero | tr '\0' 7 >"$work/long.txt"
"$attn" translate --model "$work/whole.safetensors" <"$work/long.txt" >/dev/null 2>"$work/long.err"
if [ "$(wc -l <"$work/long.err")" -eq 1 ] && grep -q "7\{5000\}" "$work/long.err"; then
  echo "ok:   a line of 5000 bytes is read as one line"
else
  echo "FAIL: a line of 5000 bytes: $(head -c 300 "$work/long.err")"
  failures=$((failures + 1))
fi

# Control characters of the input reach the terminal escaped.
expect 1 'attn translate: "a.x1b.0;x.x07": character U.001B' -- \
  "$attn" translate --model "$work/whole.safetensors" $'a\e]0;x\a'

# Files that are not good models.
expect 1 "missing.safetensors" -- "$attn" eval --model "$work/missing.safetensors"
printf 'not a safetensors file' >"$work/junk.safetensors"
expect 1 "junk.safetensors" -- "$attn" eval --model "$work/junk.safetensors"
head -c 2000 "$work/whole.safetensors" >"$work/cut.safetensors"
expect 1 "cut.safetensors" -- "$attn" translate --model "$work/cut.safetensors" "1/1/2000"
header='{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
printf "$(printf '\\x%02x' ${#header})\\0\\0\\0\\0\\0\\0\\0%s\\0\\0\\200\\77" "$header" \
  >"$work/tensor.safetensors"
expect 1 "not an attn model file" -- "$attn" eval --model "$work/tensor.safetensors"
expect 2 "--resume continues a run with its own model" -- \
  "$attn" train --resume "$work/reverse.safetensors" --task dates

# An output that is an input is refused before any work; an output's folder must
# exist and take files.
cp "$work/whole.safetensors" "$work/keep.safetensors"
expect 2 "--attention $work/keep.safetensors is the file --model reads" -- \
  "$attn" translate --model "$work/keep.safetensors" --attention "$work/keep.safetensors" \
  "24-NOV-26"
expect_same_bytes "$work/whole.safetensors" "$work/keep.safetensors" "the model is untouched"
expect 2 "--out $work/none/x.safetensors: the folder $work/none does not exist" -- \
  "$attn" train "${tiny[@]}" --steps 5 --out "$work/none/x.safetensors"
expect 2 "--out $work is a folder, not a file" -- \
  "$attn" train "${tiny[@]}" --steps 5 --out "$work"

# --clip 0 trains without clipping; a checkpoint whose clip is out of range is
# refused on --resume, naming the key and the value.
expect 0 "test exact match" -- \
  "$attn" train "${tiny[@]}" --steps 10 --clip 0 --out "$work/noclip.safetensors"
edit_meta() { /usr/bin/python3 "$(dirname "$0")/edit_meta.py" "$@"; }
edit_meta "$work/noclip.safetensors" "$work/badclip.safetensors" train.clip=-1
expect 1 "'clip' in metadata 'train' is -1; it must be in \\[0, 1e\\+06\\]" -- \
  "$attn" train --resume "$work/badclip.safetensors" --threads 2

# Hostile metadata is refused whole, naming the key and the value.
bad_meta() { # bad_meta MESSAGE KEY=VALUE...
  local message=$1
  shift
  edit_meta "$work/noclip.safetensors" "$work/bad.safetensors" "$@"
  expect 1 "$message" -- "$attn" eval --model "$work/bad.safetensors"
}
bad_meta "hidden_dim is 2147483647; it must be in \\[1, 65536\\]" model.hidden_dim=2147483647
bad_meta "metadata 'model' describes a model of [0-9]+ parameters, but the file holds only" \
  model.hidden_dim=65536
bad_meta "the model's lengths \\(max_src_len 32, max_tgt_len 2147483647\\) are not its task's" \
  model.max_tgt_len=2147483647
bad_meta "metadata 'step' is '99999999999999999999', not a step count" step=99999999999999999999
bad_meta "metadata 'optimizer.step' is 7 but 'step' is 10" optimizer.step=7
bad_meta "metadata 'step' is 11, past the 10 steps of its schedule" step=11 optimizer.step=11
bad_meta "'lr' in metadata 'train' is 1e\\+300; it must be in \\[1e-08, 10\\]" train.lr=1e300
# A changed byte anywhere is caught by the checksum; a file without one is refused.
cp "$work/noclip.safetensors" "$work/flipped.safetensors"
printf '\x01' | dd of="$work/flipped.safetensors" bs=1 seek=$(($(stat -c %s \
  "$work/flipped.safetensors") - 3)) conv=notrunc status=none
expect 1 "do not match their checksum .*: the file is damaged" -- \
  "$attn" eval --model "$work/flipped.safetensors"
bad_meta "its checksum metadata is damaged \\('attn.sealed' present, 'attn.crc32c' missing\\)" \
  attn.crc32c
# A file from before checksums (neither key) loads as it is.
edit_meta "$work/noclip.safetensors" "$work/old.safetensors" attn.crc32c attn.sealed
expect 0 "test exact match" -- "$attn" eval --model "$work/old.safetensors"
expect 2 "--steps 5 is below the 10 steps the checkpoint has done" -- \
  "$attn" train --resume "$work/noclip.safetensors" --steps 5 --threads 2

# Ctrl-C, SIGTERM, SIGHUP: the run stops after the current step, saves, and says
# how to resume; the checkpoint is whole and loads.
for signal in INT TERM HUP; do
  rm -f "$work/interrupted.safetensors"
  expect_interrupted "$signal" "$work/interrupted.safetensors" "$work/int.out" -- \
    "$attn" train "${tiny[@]}" --steps 100000 --out "$work/interrupted.safetensors"
  expect 0 "exact match" -- "$attn" eval --model "$work/interrupted.safetensors" --split valid
done

if [ "$failures" -ne 0 ]; then
  echo "$failures train check(s) failed"
  exit 1
fi
echo "every train check passed"
