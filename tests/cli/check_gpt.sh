#!/usr/bin/env bash
# attn train --task text, attn generate and attn data --task text: their options
# and messages, the JSON reports, exact resume, an interrupted run's checkpoint,
# cached and uncached generation, and bad text, prompts and model files. The
# models are tiny and train for a few steps: this checks behaviour, not learning.
#   check_gpt.sh PATH_TO_ATTN
set -uo pipefail
attn=$1
source "$(dirname "$0")/expect.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A text of 3000 lines of words drawn by a seeded $RANDOM: the same every run.
RANDOM=42
words=(attention query key value model token the a of to and is in that layer head)
for _ in $(seq 3000); do
  line=""
  for _ in 1 2 3 4 5 6; do line+="${words[RANDOM % 16]} "; done
  echo "$line."
done >"$work/words.txt"
text=(--task text --data "$work/words.txt")
tiny=(--layers 1 --embd 32 --heads 2 --block 16 --batch 4 --lr 1e-2 --warmup 5 --threads 2)

expect 0 "attn train --task text --data FILE" -- "$attn" train --help
expect 0 "usage: attn generate --model FILE" -- "$attn" generate --help
expect 0 "attn data --task text --data FILE" -- "$attn" data --help
expect 0 "generate +continue a text" -- "$attn" --help

# The JSON report, and a run in one go against the same run stopped after 13
# steps and resumed (dropout on, so its masks must repeat too): the checkpoints
# must be the same bytes.
expect 0 '^\{"task": "text", .*"steps": 20, "parameters": [0-9]+, "train_loss": [0-9.]+, "valid_loss": [0-9.]+,.*"ms_per_step": [0-9.]+, "steady_ms_per_step": [0-9.]+, "tokens_per_s": [0-9.]+, .*"wall_seconds": [0-9.]+' -- \
  "$attn" train "${text[@]}" "${tiny[@]}" --steps 20 --json --out "$work/lm.safetensors"
expect 0 "saved .*whole.safetensors" -- "$attn" train "${text[@]}" "${tiny[@]}" --dropout 0.1 \
  --steps 30 --eval-every 10 --out "$work/whole.safetensors"
expect 0 "stopped after step 13 of 30; continue with: attn train --resume" -- \
  "$attn" train "${text[@]}" "${tiny[@]}" --dropout 0.1 --steps 30 --eval-every 10 \
  --stop-at 13 --out "$work/parts.safetensors"
expect 0 "step +30/30 +loss [0-9.]+ +valid loss [0-9.]+" -- \
  "$attn" train --resume "$work/parts.safetensors" --threads 2
expect_same_bytes "$work/whole.safetensors" "$work/parts.safetensors" \
  "a resumed run ends with the same checkpoint as one run"
expect 2 "--resume continues a run with its own model" -- \
  "$attn" train --resume "$work/parts.safetensors" --embd 64

# Mixed precision: --precision bf16 trains (its report says so, and its weights
# differ from float32's), is kept in the checkpoint so that --resume continues
# in bf16 to the same bytes as one run, and is refused where it does not apply.
expect 0 '"precision": "bf16", .*"train_loss": [0-9.]+, "valid_loss": [0-9.]+' -- \
  "$attn" train "${text[@]}" "${tiny[@]}" --dropout 0.1 --steps 20 --eval-every 10 \
  --precision bf16 --json --out "$work/bf16.safetensors"
expect 0 "stopped after step 9 of 20" -- \
  "$attn" train "${text[@]}" "${tiny[@]}" --dropout 0.1 --steps 20 --eval-every 10 \
  --precision bf16 --stop-at 9 --out "$work/bf16-parts.safetensors"
expect 0 "step +20/20 +loss [0-9.]+ +valid loss [0-9.]+" -- \
  "$attn" train --resume "$work/bf16-parts.safetensors" --threads 2
expect_same_bytes "$work/bf16.safetensors" "$work/bf16-parts.safetensors" \
  "a resumed bf16 run ends with the same checkpoint as one bf16 run"
expect 0 "saved .*f32.safetensors" -- "$attn" train "${text[@]}" "${tiny[@]}" --dropout 0.1 \
  --steps 20 --eval-every 10 --precision float32 --out "$work/f32.safetensors"
expect_other_bytes "$work/bf16.safetensors" "$work/f32.safetensors" \
  "--precision bf16 trains other weights than float32"
expect 2 "--precision takes float32 or bf16, not 'fp16'" -- \
  "$attn" train "${text[@]}" "${tiny[@]}" --precision fp16
expect 2 "--resume continues a run with its own model" -- \
  "$attn" train --resume "$work/bf16-parts.safetensors" --precision float32
# A checkpoint written before --precision existed has no such option: it
# continues in float32 (to the bytes of a float32 run); a bad value is refused.
/usr/bin/python3 "$(dirname "$0")/edit_meta.py" "$work/bf16-parts.safetensors" \
  "$work/old.safetensors" train.precision train.steps=30
expect 0 "30 steps, [0-9.]+M parameters, float32" -- "$attn" train --resume "$work/old.safetensors"
/usr/bin/python3 "$(dirname "$0")/edit_meta.py" "$work/bf16-parts.safetensors" \
  "$work/fp16.safetensors" 'train.precision="fp16"'
expect 1 "fp16.safetensors: .*metadata 'train'.*unknown precision 'fp16'; the precisions are float32 and bf16" -- \
  "$attn" train --resume "$work/fp16.safetensors"

# Replicas: --replicas R runs a step's micro-batches R at a time, each on a
# model of its own on a thread of its own, and must give --accumulate R's
# checkpoint byte for byte (float32 and bf16, dropout on), also with several
# waves a step and across a resume; what cannot be split is refused.
for precision in float32 bf16; do
  common=("${text[@]}" "${tiny[@]}" --dropout 0.1 --steps 12 --eval-every 6
    --precision "$precision")
  expect 0 '"accumulate": 1, "replicas": 2,' -- "$attn" train "${common[@]}" --replicas 2 \
    --json --out "$work/replicas-$precision.safetensors"
  expect 0 '"accumulate": 2, "replicas": 1,' -- "$attn" train "${common[@]}" --accumulate 2 \
    --json --out "$work/accumulate-$precision.safetensors"
  expect_same_bytes "$work/replicas-$precision.safetensors" \
    "$work/accumulate-$precision.safetensors" "$precision: --replicas 2 = --accumulate 2"
done
common=("${text[@]}" "${tiny[@]}" --dropout 0.1 --steps 12 --eval-every 6)
expect 0 "saved" -- "$attn" train "${common[@]}" --accumulate 4 --out "$work/acc4.safetensors"
expect 0 "saved" -- "$attn" train "${common[@]}" --replicas 2 --accumulate 2 \
  --out "$work/rep2acc2.safetensors"
expect_same_bytes "$work/acc4.safetensors" "$work/rep2acc2.safetensors" \
  "--replicas 2 --accumulate 2 (two waves a step) = --accumulate 4"
expect 0 "stopped after step 5 of 12" -- "$attn" train "${common[@]}" --replicas 2 \
  --accumulate 2 --stop-at 5 --out "$work/rep-parts.safetensors"
expect 0 "step +12/12 +loss" -- "$attn" train --resume "$work/rep-parts.safetensors" \
  --replicas 2 --accumulate 2
expect_same_bytes "$work/acc4.safetensors" "$work/rep-parts.safetensors" \
  "a run with replicas, stopped and resumed with them, = --accumulate 4"
expect 2 "--batch 4 cannot be cut into 6 micro-batches \(1 ranks x --accumulate 2 x --replicas 3\)" -- \
  "$attn" train "${common[@]}" --replicas 3 --accumulate 2
expect 2 "--replicas takes 1 to 64, not '0'" -- "$attn" train "${common[@]}" --replicas 0
expect 2 "--replicas is for a language model: add --task text" -- \
  "$attn" train --steps 2 --replicas 2

# Generation: greedy is deterministic, and the cache changes nothing while the
# context fits the block (a 4-token prompt and 12 new tokens in a block of 16).
model=(--model "$work/whole.safetensors")
greedy=(--prompt "the " --tokens 12 --temperature 0)
first=$("$attn" generate "${model[@]}" "${greedy[@]}" 2>&1)
second=$("$attn" generate "${model[@]}" "${greedy[@]}" 2>&1)
uncached=$("$attn" generate "${model[@]}" "${greedy[@]}" --no-cache 2>&1)
if [ "$first" = "$second" ] && [ "$first" = "$uncached" ] && [ "${first:0:4}" = "the " ]; then
  echo "ok:   greedy generation repeats, with and without the cache: '$first'"
else
  echo "FAIL: greedy generation: '$first', again '$second', without the cache '$uncached'"
  failures=$((failures + 1))
fi
expect 0 '^\{"model": .*"prompt": "the ", "text": ".*", "prompt_tokens": 4, "tokens": 12, "cache": true, .*"prefill_seconds": [0-9.]+, "prefill_tokens_per_s": [0-9.]+, "decode_tokens": 11, "decode_seconds": [0-9.]+, "decode_tokens_per_s": [0-9.]+, "seconds": [0-9.]+, "tokens_per_s": [0-9.]+\}$' -- \
  "$attn" generate "${model[@]}" --prompt "the " --tokens 12 --top-k 5 --top-p 0.9 --json
expect 0 '"cache": false' -- \
  "$attn" generate "${model[@]}" --prompt "the " --tokens 3 --no-cache --json
# bf16 inference: its cache holds half float32's bytes.
f32_bytes=$("$attn" generate "${model[@]}" "${greedy[@]}" --json | grep -o '"cache_bytes": [0-9]*')
expect 0 "\"precision\": \"bf16\", \"cache_bytes\": $(( ${f32_bytes#*: } / 2 ))," -- \
  "$attn" generate "${model[@]}" "${greedy[@]}" --precision bf16 --json
printf 'a model of' >"$work/prompt.txt"
expect 0 "^a model of" -- "$attn" generate "${model[@]}" --prompt-file "$work/prompt.txt" --tokens 5
expect 0 "the prompt's 31 tokens exceed the model's block size 16; it continues the last 16" -- \
  "$attn" generate "${model[@]}" --prompt "the model is the value of a key" --tokens 3

# Past the block size: the cached context drops its oldest half and refills.
expect 0 '"tokens": 40, "cache": true' -- \
  "$attn" generate "${model[@]}" --prompt "the " --tokens 40 --json
expect 0 '"tokens": 40, "cache": false' -- \
  "$attn" generate "${model[@]}" --prompt "the " --tokens 40 --no-cache --json

# The other model options, and bytes for tokens.
expect 0 '"positions": "rope", "window": 8' -- "$attn" train "${text[@]}" "${tiny[@]}" \
  --positions rope --kv-heads 1 --window 8 --no-bias --no-tie --steps 3 --json \
  --out "$work/rope.safetensors"
expect 0 "^the " -- "$attn" generate --model "$work/rope.safetensors" --prompt "the " --tokens 20
expect 0 '"unit": "bytes", "vocab_size": 256, .*"positions": "alibi"' -- \
  "$attn" train "${text[@]}" "${tiny[@]}" --unit bytes --positions alibi --steps 3 --json \
  --out "$work/bytes.safetensors"
expect 0 '"prompt": "th\\ufffd", "text": ".*", "prompt_tokens": 3' -- \
  "$attn" generate --model "$work/bytes.safetensors" --prompt $'th\xe9' --tokens 20 --json

# attn data --task text: a line per step, a window start per batch row.
starts=$("$attn" data "${text[@]}" --block 16 --batch 4 --steps 7 --first-step 3)
if [ "$(wc -l <<<"$starts")" -eq 7 ] && ! grep -Evq '^[0-9]+( [0-9]+){3}$' <<<"$starts"; then
  echo "ok:   attn data --task text prints 7 lines of 4 window starts"
else
  echo "FAIL: attn data --task text printed:"
  sed 's/^/    /' <<<"$starts" | head -10
  failures=$((failures + 1))
fi

# Ctrl-C: the run stops after the current step, saves, and says how to resume;
# the checkpoint is whole and generates.
expect_interrupted INT "$work/interrupted.safetensors" "$work/int.out" -- \
  "$attn" train "${text[@]}" "${tiny[@]}" --steps 100000 --eval-every 20 \
  --out "$work/interrupted.safetensors"
expect 0 "^the " -- "$attn" generate --model "$work/interrupted.safetensors" --prompt "the " \
  --tokens 4
# A run that validates only at its end (--eval-every 0) still saves when SIGTERM
# stops it.
expect_interrupted TERM - "$work/term.out" -- \
  "$attn" train "${text[@]}" "${tiny[@]}" --steps 100000 --eval-every 0 \
  --out "$work/terminated.safetensors"
expect 0 "^the " -- "$attn" generate --model "$work/terminated.safetensors" --prompt "the " \
  --tokens 4

# An output that is an input is refused before any work, through a link too, and
# the input is left as it was; an output's folder must exist.
cp "$work/words.txt" "$work/book.txt"
expect 2 "--out $work/book.txt is the file --data reads; writing it would destroy it" -- \
  "$attn" train --task text --data "$work/book.txt" --out "$work/book.txt" --steps 5
ln -sf book.txt "$work/book.link"
expect 2 "--out $work/book.link is the file --data reads" -- \
  "$attn" train --task text --data "$work/book.txt" --out "$work/book.link" --steps 5
expect 2 "--out $work/words.txt is the file the checkpoint's data reads" -- \
  "$attn" train --resume "$work/lm.safetensors" --out "$work/words.txt" --threads 2
expect 2 "--attention $work/lm.safetensors is the file --model reads" -- \
  "$attn" generate --model "$work/lm.safetensors" --prompt "the " --tokens 2 \
  --attention "$work/lm.safetensors"
expect 2 "--attention $work/book.txt is the file --prompt-file reads" -- \
  "$attn" generate --model "$work/lm.safetensors" --prompt-file "$work/book.txt" --tokens 2 \
  --attention "$work/book.txt"
expect_same_bytes "$work/words.txt" "$work/book.txt" "the text is untouched"

# Inputs are bounded: a prompt file of more than 16 MiB, or an endless one, is
# refused before it is read whole.
expect 1 "'/dev/zero' is larger than 16777216 bytes, the most a prompt may hold" -- \
  timeout 10 "$attn" generate --model "$work/lm.safetensors" --prompt-file /dev/zero --tokens 2
truncate -s 2G "$work/sparse.txt"
expect 1 "sparse.txt' is larger than 16777216 bytes, the most a prompt may hold" -- \
  timeout 10 "$attn" generate --model "$work/lm.safetensors" --prompt-file "$work/sparse.txt" \
  --tokens 2
expect 1 "sparse.txt' is larger than 1073741824 bytes, the most a record may hold" -- \
  timeout 10 "$attn" show "$work/sparse.txt"
expect 1 "sparse.txt' is larger than 1073741824 bytes, the most a record may hold" -- \
  timeout 10 "$attn" analyze "$work/sparse.txt"
rm -f "$work/sparse.txt"
truncate -s 65G "$work/sparse.safetensors"
expect 1 "sparse.safetensors' is larger than 68719476736 bytes, the most a safetensors file may \
hold" -- timeout 10 "$attn" generate --model "$work/sparse.safetensors" --prompt "the " --tokens 2
rm -f "$work/sparse.safetensors"

# Bad text.
: >"$work/empty.txt"
head -c 100 "$work/words.txt" >"$work/short.txt"
printf '\xff\xfe' >"$work/invalid.txt"
expect 1 "missing.txt" -- "$attn" train --task text --data "$work/missing.txt" "${tiny[@]}"
expect 1 "empty.txt is empty" -- "$attn" train --task text --data "$work/empty.txt" "${tiny[@]}"
expect 1 "short.txt has 100 characters: a block size of 16 needs at least" -- \
  "$attn" train --task text --data "$work/short.txt" "${tiny[@]}"
expect 1 "invalid.txt.*invalid UTF-8 at byte 0" -- \
  "$attn" train --task text --data "$work/invalid.txt" "${tiny[@]}"
expect 1 "words.txt has [0-9]+ characters: a block size of 100000 needs at least" -- \
  "$attn" train "${text[@]}" --block 100000
expect 1 "invalid UTF-8" -- "$attn" data --task text --data "$work/invalid.txt"
head -c 30000 "$work/words.txt" | tr 'y' 'Y' >"$work/other.txt"
expect 1 "other.txt has a vocabulary of [0-9]+ chars, not the [0-9]+ of the model" -- \
  "$attn" train --resume "$work/lm.safetensors" --data "$work/other.txt" --steps 40

# Bad options.
expect 2 "--positions: .*'rotary'.*learned, sinusoidal, rope and alibi" -- \
  "$attn" train "${text[@]}" --positions rotary
expect 2 "n_embd 32 is not divisible by n_head 3" -- \
  "$attn" train "${text[@]}" --embd 32 --heads 3
expect 2 "n_head 4 is not divisible by n_kv_head 3" -- \
  "$attn" train "${text[@]}" --heads 4 --kv-heads 3
expect 2 "--unit: .*'words'" -- "$attn" train "${text[@]}" --unit words
expect 2 "--task text needs --data FILE" -- "$attn" train --task text
expect 2 "--hidden is for the sequence-to-sequence tasks, not a language model" -- \
  "$attn" train "${text[@]}" --hidden 16
expect 2 "--beam is for the sequence-to-sequence tasks, not a language model" -- \
  "$attn" train --resume "$work/lm.safetensors" --beam 2
expect 2 "--block is for a language model: add --task text" -- "$attn" train --block 16
expect 2 "--count is for the built-in tasks, not --task text" -- \
  "$attn" data "${text[@]}" --count 3
expect 2 "--model FILE is required" -- "$attn" generate --prompt "the " --tokens 3
expect 2 "--tokens N is required" -- "$attn" generate "${model[@]}" --prompt "the "
expect 2 "--tokens takes 1 to 1000000, not '0'" -- \
  "$attn" generate "${model[@]}" --prompt "the " --tokens 0
expect 2 "one of them" -- "$attn" generate "${model[@]}" --tokens 3
expect 2 "--top-p takes a number in \(0, 1\], not '0'" -- \
  "$attn" generate "${model[@]}" --prompt "the " --tokens 3 --top-p 0
expect 2 "--precision takes float32 or bf16, not 'fp8'" -- \
  "$attn" generate "${model[@]}" --prompt "the " --tokens 3 --precision fp8
expect 2 "--precision bf16 runs with the cache only" -- \
  "$attn" generate "${model[@]}" --prompt "the " --tokens 3 --precision bf16 --no-cache

# Bad prompts and model files.
expect 1 "the prompt: character 'é' \(U\+00E9\) at character 4 is not in the vocabulary" -- \
  "$attn" generate "${model[@]}" --prompt "the é" --tokens 3
expect 1 "the prompt is empty" -- "$attn" generate "${model[@]}" --prompt "" --tokens 3
expect 1 "nothing.txt" -- "$attn" generate "${model[@]}" --prompt-file "$work/nothing.txt" \
  --tokens 3
expect 1 "missing.safetensors" -- \
  "$attn" generate --model "$work/missing.safetensors" --prompt "the " --tokens 3
expect 0 "stopped after step 1" -- "$attn" train --embed 8 --hidden 16 --batch 8 --steps 2 \
  --stop-at 1 --threads 2 --out "$work/dates.safetensors"
expect 1 "dates.safetensors: holds a 'seq2seq' model, not a language model; use attn translate" -- \
  "$attn" generate --model "$work/dates.safetensors" --prompt "the " --tokens 3
expect 1 "lm.safetensors: a language model, not a sequence-to-sequence one; use attn generate" -- \
  "$attn" translate --model "$work/lm.safetensors" "1/1/2000"
expect 1 "lm.safetensors: a language model.*use attn generate" -- \
  "$attn" eval --model "$work/lm.safetensors"
# A config describing a model larger than its file is refused before anything
# is allocated for it (here 64 blocks 65536 wide: 3.3e12 parameters).
/usr/bin/python3 "$(dirname "$0")/edit_meta.py" "$work/lm.safetensors" "$work/huge.safetensors" \
  model.n_embd=65536 model.n_layer=64
expect 1 "huge.safetensors: metadata 'model' describes a model of 3298591965184 parameters, but \
the file holds only [0-9]+ numbers" -- "$attn" generate --model "$work/huge.safetensors" \
  --prompt "the " --tokens 3
head -c 3000 "$work/lm.safetensors" >"$work/cut.safetensors"
expect 1 "cut.safetensors" -- "$attn" generate --model "$work/cut.safetensors" --prompt "the " \
  --tokens 3

if [ "$failures" -ne 0 ]; then
  echo "$failures language model check(s) failed"
  exit 1
fi
echo "every language model check passed"
