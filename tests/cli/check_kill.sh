#!/usr/bin/env bash
# kill -9 at random moments of a training run that saves a checkpoint every step:
# the checkpoint always loads afterwards, and the temporary files killed writes
# leave behind are gone once the next run has written the checkpoint. Files that
# only look like them (another name, a writer still running) stay.
#   check_kill.sh PATH_TO_ATTN
set -uo pipefail
attn=$1
source "$(dirname "$0")/expect.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seed=${ATTN_TEST_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$seed
echo "seed $seed (repeat with ATTN_TEST_SEED=$seed)"
ckpt=$work/k.safetensors
# A language model whose checkpoint (about 20 MB with AdamW's moments) is much of
# each step: it saves after every step, validating on one window.
head -c 200000 /usr/share/common-licenses/GPL-3 >"$work/text.txt"
model=(--task text --data "$work/text.txt" --layers 2 --embd 256 --heads 4 --block 32 --batch 2
  --eval-every 1 --eval-windows 1 --threads 1)

expect 0 "stopped after step 1" -- "$attn" train "${model[@]}" --steps 100000 --stop-at 1 \
  --out "$ckpt"
left=0
for kill in $(seq 20); do
  "$attn" train --resume "$ckpt" --threads 1 >/dev/null 2>&1 &
  pid=$!
  sleep "0.$((RANDOM % 40 + 10))"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null
  if ! "$attn" generate --model "$ckpt" --prompt "the " --tokens 1 >/dev/null \
    2>"$work/eval.err"; then
    echo "FAIL: after kill $kill the checkpoint does not load:"
    sed 's/^/    /' "$work/eval.err"
    failures=$((failures + 1))
  fi
  [ -e "$ckpt.tmp.$pid" ] && left=$((left + 1))
done
echo "ok:   the checkpoint loaded after each of 20 kills; $left of them left a temporary file"

# Look-alikes: a writer still running (this shell), and names not of the form.
touch "$ckpt.tmp.$$" "$ckpt.tmp.x1" "$work/other.safetensors.tmp.1"
sleep 0 &
dead=$!
wait "$dead"
touch "$ckpt.tmp.$dead"
expect 0 "stopped after step" -- "$attn" train --resume "$ckpt" --stop-at 1 --threads 1
stale=$(find "$work" -name 'k.safetensors.tmp.*' ! -name "k.safetensors.tmp.$$" \
  ! -name 'k.safetensors.tmp.x1' | wc -l)
if [ "$stale" -eq 0 ] && [ -e "$ckpt.tmp.$$" ] && [ -e "$ckpt.tmp.x1" ] &&
  [ -e "$work/other.safetensors.tmp.1" ]; then
  echo "ok:   the next write removed every stale temporary file and nothing else"
else
  echo "FAIL: after the next write: $(ls "$work")"
  failures=$((failures + 1))
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures kill check(s) failed"
  exit 1
fi
echo "every kill check passed"
