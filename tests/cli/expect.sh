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

# expect_interrupted CHECKPOINT LOG -- COMMAND...: starts a training COMMAND in the
# background, sends it Ctrl-C (SIGINT) once it has written CHECKPOINT, and expects
# it to stop with status 130 and to say so (its output goes to LOG).
expect_interrupted() {
  local checkpoint=$1 log=$2
  shift 3
  "$@" >"$log" 2>&1 &
  local pid=$! status
  for _ in $(seq 100); do [ -s "$checkpoint" ] && break; sleep 0.1; done
  kill -INT "$pid"
  wait "$pid"
  status=$?
  if [ "$status" -eq 130 ] && grep -q "interrupted after step" "$log"; then
    echo "ok:   SIGINT stops training with status 130"
  else
    echo "FAIL: SIGINT -> status $status, output:"
    sed 's/^/    /' "$log" | tail -5
    failures=$((failures + 1))
  fi
}
