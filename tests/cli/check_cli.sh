#!/usr/bin/env bash
# The attn tool's contract: help and version, exit status 0 / 1 / 2, messages that
# name the problem, and a demo whose checks pass.
#   check_cli.sh PATH_TO_ATTN
set -uo pipefail
attn=$1

source "$(dirname "$0")/expect.sh"

expect 0 "usage: attn <command>" -- "$attn" --help
expect 0 "^attn [0-9]+\.[0-9]+\.[0-9]+$" -- "$attn" --version
expect 2 "usage: attn" -- "$attn"
expect 2 "unknown command 'frobnicate'" -- "$attn" frobnicate
expect 0 "gemm" -- "$attn" info
# The environment variables the library reads are checked before any command.
for threads in 0 -1 abc 99999999999 2x; do
  expect 2 "ATTN_NUM_THREADS is '$threads', not a thread count in \\[1, 1024\\]" -- \
    env ATTN_NUM_THREADS="$threads" "$attn" info
done
expect 0 "threads +3 " -- env ATTN_NUM_THREADS=3 "$attn" info
expect 2 "ATTN_SIMD=avx9 is not one of avx512bf16, avx512, avx2, scalar" -- env ATTN_SIMD=avx9 "$attn" info
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

# attn bench: tiny sizes and --min-time 0 (two runs a row), so nothing is really timed.
expect 0 "usage: attn bench <attention\|mha\|memory\|gemm>" -- "$attn" bench --help
expect 0 "usage: attn bench memory" -- "$attn" bench memory --help
expect 0 '^\{"mb": 8, "threads": 1, "read_gb_per_s": [0-9.]+, "decode_product_gb_per_s": [0-9.]+\}$' \
  -- "$attn" bench memory --mb 8 --threads 1 --min-time 0 --json
expect 2 "--mb takes 8 to 65536, not '4'" -- "$attn" bench memory --mb 4
expect 0 "usage: attn bench gemm" -- "$attn" bench gemm --help
expect 0 '^\{"bench": "gemm", "n": 64, "threads": 1, "float32_gflops": [0-9.]+, "bf16_gflops": [0-9.]+, "float32_backend": ".+", "bf16_backend": ".+"\}$' \
  -- "$attn" bench gemm --sizes 64 --threads 1 --min-time 0 --json
expect 2 "--sizes takes up to 32 comma-separated integers from 1 to 4096, not '0'" -- \
  "$attn" bench gemm --sizes 0
expect 0 "usage: attn bench attention" -- "$attn" bench attention --help
expect 0 "^ +16 +64 no +fwd +[0-9.]+ +[0-9.]+ +[0-9]+ +[0-9.]+ +[0-9.]+$" -- \
  "$attn" bench attention --lengths 64 --dims 16 --min-time 0 --gemm-size 64
expect 0 '^\{"bench": "attention", .*"causal": true, "pass": "fwd\+bwd", .*\}$' -- \
  "$attn" bench attention --lengths 33 --dims 8 --min-time 0 --gemm-size 64 --json
expect 2 "--lengths takes up to 32 comma-separated integers from 1 to [0-9]+, not 'x'" -- \
  "$attn" bench attention --lengths x
expect 0 "^ +16 +64 yes +fwd\+bwd +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+$" -- \
  "$attn" bench attention --lengths 64 --dims 16 --min-time 0 --gemm-size 64 --precision bf16
expect 0 '^\{"bench": "attention", .*"bf16_vs_float32": [0-9.]+, .*"kernel_bf16": ".*"\}$' -- \
  "$attn" bench attention --lengths 33 --dims 7 --min-time 0 --gemm-size 64 --json --precision bf16
expect 2 "--precision takes float32 or bf16, not 'fp8'" -- "$attn" bench attention --precision fp8
expect 0 "^bf16 attention scalar: bf16 widened to float32$" -- env ATTN_SIMD=scalar "$attn" info
expect 2 "--causal takes both, yes or no, not 'maybe'" -- "$attn" bench attention --causal maybe
expect 2 "--pass takes fwd, fwd\+bwd or both, not 'back'" -- "$attn" bench attention --pass back
expect 2 "--min-time takes 0 to 3600 seconds, not '-1'" -- "$attn" bench attention --min-time -1
expect 2 "unknown benchmark 'gemv'" -- "$attn" bench gemv
expect 2 "unknown option .--bogus." -- "$attn" bench mha --bogus
expect 1 "out of memory" -- "$attn" bench attention --lengths 1048576 --dims 4096 --gemm-size 8
expect 0 "usage: attn bench mha" -- "$attn" bench mha --help
expect 0 "^ +32 fwd\+bwd +[0-9.]+ +[0-9.]+$" -- "$attn" bench mha --lengths 32 --min-time 0
expect 0 '^\{"bench": "mha", .*"length": 16, "pass": "fwd", .*\}$' -- \
  "$attn" bench mha --lengths 16 --embed 32 --heads 4 --min-time 0 --json
expect 2 "--embed 10 is not divisible by --heads 3" -- "$attn" bench mha --embed 10 --heads 3

# every line of --json output is one JSON object (checked where a Python is found)
python=$(command -v python3 || true)
if [ -n "$python" ]; then
  expect 0 "^4 rows ok$" -- bash -c "'$attn' bench attention --lengths 17 --dims 8 \
    --min-time 0 --gemm-size 32 --json | '$python' -c 'import json, sys
rows = [json.loads(line) for line in sys.stdin]
assert all(r[\"ms\"] > 0 and r[\"extra_bytes\"] > 0 for r in rows), rows
print(len(rows), \"rows ok\")'"
  expect 0 "^2 rows ok$" -- bash -c "'$attn' bench mha --lengths 8 --embed 16 --heads 2 \
    --min-time 0 --json | '$python' -c 'import json, sys
rows = [json.loads(line) for line in sys.stdin]
print(len(rows), \"rows ok\")'"
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures CLI check(s) failed"
  exit 1
fi
echo "every CLI check passed"
