#!/usr/bin/env bash
# Data-parallel attn train under mpirun, on this machine's cores (oversubscribed,
# one thread per rank):
#   - N ranks give the checkpoint, byte for byte, that one process gives with
#     --accumulate N, for N = 2 and 3, for the dates models (a GRU, a Transformer
#     with dropout, hard-reinforce with its baseline buffer) and a language model
#     with dropout; 2 ranks of 2 replicas each, that of 2 ranks of --accumulate 2;
#   - against the undivided batch of one process the losses agree to 1e-4
#     (relative; rounding is all that differs: the sums are made in another order);
#   - ZeRO-1 (--zero 1) gives the checkpoint of the unsharded run, on 2 and 3 ranks;
#   - a run stopped (--stop-at, SIGTERM to the ranks) and resumed with the same N
#     ends as the uninterrupted one, byte for byte;
#   - a rank killed with SIGKILL ends the job with a non-zero status within seconds,
#     and the last checkpoint resumes to the uninterrupted run's end, byte for byte;
#   - ranks with other options or another instruction set are refused at the
#     start, as are a batch too small for its micro-batches and --zero 1 on a
#     model too small to shard; rank 0 alone reports.
#   check_mpi.sh PATH_TO_ATTN
set -uo pipefail
attn=$1
source "$(dirname "$0")/expect.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seed=${ATTN_TEST_SEED:-$((RANDOM % 100000 + 1))}
echo "seed $seed (repeat with ATTN_TEST_SEED=$seed)"
# As root (the CI's fresh machine), on 2 cores for 3 ranks, without the
# single-copy mechanism that containers may forbid (ptrace).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export ATTN_NUM_THREADS=1
mpi=(mpirun --oversubscribe)

if ! "$attn" info --json | grep -q '"mpi": "'; then
  echo "FAIL: this attn is built without MPI (attn info), so nothing here can run"
  exit 1
fi

# train NAME ARGS...: trains into $work/NAME.st, its output in $work/NAME.log.
train() {
  local name=$1
  shift
  if ! "$@" --seed "$seed" --out "$work/$name.st" >"$work/$name.log" 2>&1; then
    echo "FAIL: $* -> status $?:"
    sed 's/^/    /' "$work/$name.log" | tail -8
    failures=$((failures + 1))
  fi
}

head -c 100000 /usr/share/common-licenses/GPL-3 >"$work/text.txt"
gru=(train --steps 24 --eval-every 12 --batch 12)
transformer=(train --model transformer --dropout 0.1 --steps 16 --eval-every 8 --batch 12)
transformer_bf16=("${transformer[@]}" --precision bf16)
reinforce=(train --model lstm-bahdanau --attention hard-reinforce --steps 24 --eval-every 12
  --batch 12)
gpt=(train --task text --data "$work/text.txt" --layers 2 --embd 64 --heads 4 --block 32
  --steps 24 --eval-every 12 --batch 6 --eval-windows 8)
gpt_dropout=("${gpt[@]}" --dropout 0.1)

echo "== N ranks = --accumulate N in one process, byte for byte"
for n in 2 3; do
  for model in gru transformer transformer_bf16 reinforce gpt_dropout; do
    unset -n args
    declare -n args=$model
    train "$model-acc$n" "$attn" "${args[@]}" --accumulate "$n"
    train "$model-np$n" "${mpi[@]}" -np "$n" "$attn" "${args[@]}"
    expect_same_bytes "$work/$model-acc$n.st" "$work/$model-np$n.st" \
      "$model: mpirun -np $n = --accumulate $n"
  done
done
# Replicas on each rank: 2 ranks of 2 replicas run the micro-batches of 2 ranks
# of --accumulate 2, and sum them the same way.
train gpt_dropout-np2-acc2 "${mpi[@]}" -np 2 "$attn" "${gpt_dropout[@]}" --accumulate 2
train gpt_dropout-np2-replicas2 "${mpi[@]}" -np 2 "$attn" "${gpt_dropout[@]}" --replicas 2
expect_same_bytes "$work/gpt_dropout-np2-acc2.st" "$work/gpt_dropout-np2-replicas2.st" \
  "gpt_dropout: mpirun -np 2 --replicas 2 = -np 2 --accumulate 2"
saved=$(grep -c "^saved " "$work/gpt_dropout-np3.log")
[ "$saved" -eq 1 ] && echo "ok:   rank 0 alone reports" ||
  { echo "FAIL: $saved ranks reported"; failures=$((failures + 1)); }

echo "== N ranks against one process and the undivided batch: losses within 1e-4"
# close A B WHAT: |A - B| <= 1e-4 |B|
close() {
  if awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * b) }'; then
    echo "ok:   $3 ($1 against $2)"
  else
    echo "FAIL: $3: $1 against $2, more than 1e-4 apart"
    failures=$((failures + 1))
  fi
}
train gpt-one "$attn" "${gpt[@]}" --json
train gpt-np3 "${mpi[@]}" -np 3 "$attn" "${gpt[@]}" --json
loss() { grep -o "\"$2\": [0-9.]*" "$work/$1.log" | grep -o "[0-9.]*$"; }
close "$(loss gpt-np3 valid_loss)" "$(loss gpt-one valid_loss)" "language model, 3 ranks: validation loss"
close "$(loss gpt-np3 train_loss)" "$(loss gpt-one train_loss)" "language model, 3 ranks: training loss"
train gru-one "$attn" "${gru[@]}"
valid() { grep "^step *24/" "$work/$1.log" | grep -o "loss [0-9.]*" | grep -o "[0-9.]*$"; }
close "$(valid gru-np3)" "$(valid gru-one)" "GRU on dates, 3 ranks: training loss of the last steps"

echo "== ZeRO-1 = the unsharded run, byte for byte"
for n in 2 3; do
  train "transformer-zero$n" "${mpi[@]}" -np "$n" "$attn" "${transformer[@]}" --zero 1
  expect_same_bytes "$work/transformer-np$n.st" "$work/transformer-zero$n.st" \
    "transformer, $n ranks: --zero 1 = plain"
done
train gpt-zero3 "${mpi[@]}" -np 3 "$attn" "${gpt_dropout[@]}" --zero 1
expect_same_bytes "$work/gpt_dropout-np3.st" "$work/gpt-zero3.st" "language model, 3 ranks: --zero 1 = plain"

echo "== stopped and resumed with the same N: the uninterrupted run's checkpoint"
train gpt-part "${mpi[@]}" -np 2 "$attn" "${gpt_dropout[@]}" --zero 1 --stop-at 7
"${mpi[@]}" -np 2 "$attn" train --resume "$work/gpt-part.st" --zero 1 >"$work/resume.log" 2>&1 ||
  { echo "FAIL: resume:"; tail -5 "$work/resume.log"; failures=$((failures + 1)); }
expect_same_bytes "$work/gpt_dropout-np2.st" "$work/gpt-part.st" \
  "language model, 2 ranks, ZeRO-1: --stop-at 7 then --resume"
# SIGTERM reaches every rank at its own moment; all stop after the same step.
# (Sent once training runs: the first checkpoint is written.)
long=("${gru[@]}" --steps 100000 --eval-every 5)
"${mpi[@]}" -np 2 "$attn" "${long[@]}" --seed "$seed" --out "$work/term.st" >"$work/term.log" 2>&1 &
pid=$!
for _ in $(seq 200); do [ -s "$work/term.st" ] && break; sleep 0.05; done
pkill -TERM -f -- "^$attn train .*--out $work/term.st"
wait "$pid"
status=$?
if [ "$status" -eq 143 ] && grep -q "interrupted (SIGTERM) after step" "$work/term.log"; then
  echo "ok:   SIGTERM to the ranks stops them after one step with status 143"
else
  echo "FAIL: SIGTERM to the ranks -> status $status:"
  sed 's/^/    /' "$work/term.log" | head -40
  failures=$((failures + 1))
fi
done_steps=$(grep -o "after step [0-9]*" "$work/term.log" | grep -o "[0-9]*$")
if [ -z "$done_steps" ]; then
  echo "FAIL: the interrupted run did not say after which step it stopped; its output:"
  sed 's/^/    /' "$work/term.log" | head -40
  failures=$((failures + 1))
  done_steps=0
fi
train term-straight "${mpi[@]}" -np 2 "$attn" "${long[@]}" --stop-at "$((done_steps + 7))"
"${mpi[@]}" -np 2 "$attn" train --resume "$work/term.st" --stop-at "$((done_steps + 7))" \
  >"$work/resume2.log" 2>&1
expect_same_bytes "$work/term-straight.st" "$work/term.st" \
  "SIGTERM after step $done_steps, resumed to step $((done_steps + 7)): the straight run's"

echo "== a rank killed: the job ends at once, the last checkpoint resumes"
"${mpi[@]}" -np 2 "$attn" "${gru[@]}" --steps 400 --eval-every 20 --seed "$seed" \
  --out "$work/kill.st" >"$work/kill.log" 2>&1 &
pid=$!
for _ in $(seq 200); do [ -s "$work/kill.st" ] && break; sleep 0.05; done
rank=$(pgrep -f -- "^$attn train .*--out $work/kill.st" | tail -n 1)
start=$SECONDS
kill -9 "$rank"
wait "$pid"
status=$?
if [ "$status" -ne 0 ] && [ $((SECONDS - start)) -le 10 ] &&
  ! pgrep -f -- "--out $work/kill.st" >/dev/null; then
  echo "ok:   a rank killed: the job ended in $((SECONDS - start)) s with status $status"
else
  echo "FAIL: a rank killed: status $status after $((SECONDS - start)) s"
  pkill -9 -f -- "--out $work/kill.st"
  failures=$((failures + 1))
fi
# The checkpoint holds step 20 or so; resumed to step 60 of the same schedule,
# it ends where a straight run stopped at 60 does.
"${mpi[@]}" -np 2 "$attn" train --resume "$work/kill.st" --stop-at 60 >"$work/resume3.log" 2>&1 ||
  { echo "FAIL: resume after the kill:"; tail -5 "$work/resume3.log"; failures=$((failures + 1)); }
train kill-straight "${mpi[@]}" -np 2 "$attn" "${gru[@]}" --steps 400 --eval-every 20 --stop-at 60
expect_same_bytes "$work/kill-straight.st" "$work/kill.st" \
  "the killed run's last checkpoint, resumed to step 60: the straight run's"

echo "== ranks that differ are refused at the start"
expect 2 "rank 1 differs from rank 0 in its --batch \(16, not 8\)" -- \
  "${mpi[@]}" -np 1 "$attn" train --steps 4 --batch 8 --out "$work/x.st" : \
  -np 1 "$attn" train --steps 4 --batch 16 --out "$work/x.st"
expect 2 "rank 1 differs from rank 0 in its --precision \(rank 0's: float32\)" -- \
  "${mpi[@]}" -np 1 "$attn" train --steps 4 --out "$work/x.st" : \
  -np 1 "$attn" train --steps 4 --precision bf16 --out "$work/x.st"
expect 2 "rank 1 differs from rank 0 in its instruction set .*rank 0's: avx2" -- \
  "${mpi[@]}" -np 1 -x ATTN_SIMD=avx2 "$attn" train --steps 4 --out "$work/x.st" : \
  -np 1 -x ATTN_SIMD=scalar "$attn" train --steps 4 --out "$work/x.st"
expect 2 "this model's 1120 make 1, fewer than the 3 ranks; run it without --zero" -- \
  "${mpi[@]}" -np 3 "$attn" train --steps 2 --embed 4 --hidden 4 --zero 1 --out "$work/x.st"
expect 2 "--batch 2 cannot be cut into 3 micro-batches \(3 ranks x --accumulate 1\)" -- \
  "${mpi[@]}" -np 3 "$attn" train --steps 4 --batch 2 --out "$work/x.st"

echo "$failures failures"
[ "$failures" -eq 0 ]
