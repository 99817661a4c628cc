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
