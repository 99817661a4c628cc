# Sourced by the CLI checks: expect() runs a command and checks its exit status
# and output, counting failures in $failures.
failures=0

# expect STATUS PATTERN -- COMMAND...: the command exits with STATUS and its
# stdout+stderr match the extended regular expression PATTERN.
expect() {
  local want=$1 pattern=$2
  shift 3
  local output status
  output=$("$@" 2>&1)
  status=$?
  if [ "$status" -ne "$want" ] || ! grep -Eq -- "$pattern" <<<"$output"; then
    echo "FAIL: $* -> status $status (want $want), output:"
    sed 's/^/    /' <<<"$output" | head -20
    failures=$((failures + 1))
  else
    echo "ok:   $*"
  fi
}

# expect_interrupted SIGNAL CHECKPOINT LOG -- COMMAND...: starts a training COMMAND
# in the background, sends it SIGNAL (INT, TERM or HUP) once it has written
# CHECKPOINT (or after a second, for CHECKPOINT -), and expects it to stop with
# status 128 + the signal's number and to say so (its output goes to LOG).
expect_interrupted() {
  local signal=$1 checkpoint=$2 log=$3
  shift 4
  "$@" >"$log" 2>&1 &
  local pid=$! status want
  want=$((128 + $(kill -l "$signal")))
  if [ "$checkpoint" = - ]; then
    sleep 1
  else
    for _ in $(seq 100); do [ -s "$checkpoint" ] && break; sleep 0.1; done
  fi
  kill -"$signal" "$pid"
  wait "$pid"
  status=$?
  if [ "$status" -eq "$want" ] && grep -q "interrupted (SIG$signal) after step" "$log"; then
    echo "ok:   SIG$signal stops training with status $want"
  else
    echo "FAIL: SIG$signal -> status $status (want $want), output:"
    sed 's/^/    /' "$log" | tail -5
    failures=$((failures + 1))
  fi
}

# expect_same_bytes A B WHAT: A and B hold the same bytes; WHAT says what that means.
expect_same_bytes() {
  if cmp -s "$1" "$2"; then
    echo "ok:   $3"
  else
    echo "FAIL: not so: $3 ($1 and $2 differ)"
    failures=$((failures + 1))
  fi
}

# expect_other_bytes A B WHAT: A and B differ; WHAT says what that means.
expect_other_bytes() {
  if cmp -s "$1" "$2"; then
    echo "FAIL: not so: $3 ($1 and $2 are the same)"
    failures=$((failures + 1))
  else
    echo "ok:   $3"
  fi
}
