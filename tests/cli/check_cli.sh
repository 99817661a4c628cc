#!/usr/bin/env bash
# The attn tool's contract: help and version, exit status 0 / 1 / 2, messages that
# name the problem, and a demo whose checks pass.
#   check_cli.sh PATH_TO_ATTN
set -uo pipefail
attn=$1
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

expect 0 "usage: attn <command>" -- "$attn" --help
expect 0 "^attn [0-9]+\.[0-9]+\.[0-9]+$" -- "$attn" --version
expect 2 "usage: attn" -- "$attn"
expect 2 "unknown command 'frobnicate'" -- "$attn" frobnicate
expect 0 "gemm" -- "$attn" info
expect 0 '"gemm": "' -- "$attn" info --json
expect 2 "unknown option '--bogus'" -- "$attn" info --bogus
expect 0 "usage: attn demo" -- "$attn" demo --help
expect 0 "output shape  \(1, 10, 32\)" -- "$attn" demo
expect 0 "each sums to 1" -- "$attn" demo --sentence "a b c" --heads 2 --head 1 --causal
expect 0 '"output_shape": \[1, 3, 32\]' -- "$attn" demo --sentence "a b c" --json
expect 2 "--embed 10 is not divisible by --heads 3" -- "$attn" demo --embed 10 --heads 3
expect 2 "--head 4 does not exist" -- "$attn" demo --head 4
expect 2 "--heads takes 1 to 4096, not 'x'" -- "$attn" demo --heads x
expect 2 "option .--seed. needs a value" -- "$attn" demo --seed
expect 2 "has no words" -- "$attn" demo --sentence "   "

if [ "$failures" -ne 0 ]; then
  echo "$failures CLI check(s) failed"
  exit 1
fi
echo "every CLI check passed"
