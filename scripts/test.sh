#!/usr/bin/env bash
# Every test: unit tests, conformance with PyTorch, the installed-library check,
# the exported symbols, the import cycles and data-parallel training under mpirun
# in a -Werror build with MPI; a build without MPI refusing mpirun; the unit tests
# again under AddressSanitizer+UBSan, and without OpenMP once per instruction set
# the CPU runs; the safetensors loader fuzzed for FUZZ_SECONDS (default 60), the
# attention-record loader for RECORD_FUZZ_SECONDS (default 30) and the model files'
# metadata for MODEL_FUZZ_SECONDS (default 30).
# Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
# Builds and test runs take every core: ctest runs as many tests at a time
# (each sets its own thread count), which keeps the whole CI run well under its
# 25 minutes (serially, the test runs took 13 of its 22).
jobs=$(nproc)

scripts/setup.sh test

echo "== unit tests under AddressSanitizer and UndefinedBehaviorSanitizer"
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DATTN_WERROR=ON -DATTN_SANITIZE=ON \
  -DATTN_MPI=OFF >/dev/null
cmake --build build-sanitize -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-sanitize -j"$jobs" -L unit --output-on-failure

echo "== unit tests without OpenMP, under each instruction set (ATTN_SIMD)"
# Built without MPI too: the tool must then refuse to run as one of several ranks.
cmake -S . -B build-noomp -DCMAKE_BUILD_TYPE=Release -DATTN_WERROR=ON -DATTN_OPENMP=OFF \
  -DATTN_MPI=OFF >/dev/null
cmake --build build-noomp -j"$jobs"
for isa in avx512bf16 avx512 avx2 scalar; do
  if ATTN_SIMD=$isa ./build-noomp/attn info --json | grep -q "\"simd\": \"$isa\""; then
    echo "-- ATTN_SIMD=$isa"
    ATTN_SIMD=$isa ctest --test-dir build-noomp -j"$jobs" -L unit --output-on-failure
  else
    echo "-- ATTN_SIMD=$isa skipped: this CPU or build cannot run it"
  fi
done

echo "-- a tool built without MPI refuses to train as one of 2 ranks"
refusal=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -np 2 \
  ./build-noomp/attn train --steps 1 --out build-noomp/refused.safetensors 2>&1 || true)
if grep -q "started as one of 2 MPI ranks, but this attn is built without MPI" <<<"$refusal"; then
  echo "ok"
else
  echo "test: the tool built without MPI did not refuse to run under mpirun:" >&2
  echo "$refusal" >&2
  exit 1
fi

echo "== fuzzing the safetensors loader for ${FUZZ_SECONDS:-60} s"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DATTN_BUILD_FUZZ=ON \
  -DATTN_BUILD_TESTS=OFF -DATTN_OPENMP=OFF -DATTN_MPI=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_safetensors
rm -rf build-fuzz/corpus && mkdir -p build-fuzz/corpus
python3 fuzz/make_seed_corpus.py build-fuzz/corpus
./build-fuzz/fuzz/fuzz_safetensors -max_total_time="${FUZZ_SECONDS:-60}" -print_final_stats=1 \
  build-fuzz/corpus 2>&1 | tail -n 12

echo "== fuzzing the attention-record loader for ${RECORD_FUZZ_SECONDS:-30} s"
cmake --build build-fuzz -j"$jobs" --target fuzz_record
rm -rf build-fuzz/record-corpus && mkdir -p build-fuzz/record-corpus
python3 fuzz/make_record_corpus.py build-fuzz/record-corpus
./build-fuzz/fuzz/fuzz_record -max_total_time="${RECORD_FUZZ_SECONDS:-30}" -print_final_stats=1 \
  build-fuzz/record-corpus 2>&1 | tail -n 12

# The tool's own messages (stderr) are closed: a bad file is the common case. A
# model is never allocated past what its file holds, so 64 MB is ample.
echo "== fuzzing the model files' metadata for ${MODEL_FUZZ_SECONDS:-30} s"
cmake --build build-fuzz -j"$jobs" --target attn_cli fuzz_model_file
rm -rf build-fuzz/model-corpus && mkdir -p build-fuzz/model-corpus
python3 fuzz/make_model_corpus.py build-fuzz/attn build-fuzz/model-corpus
./build-fuzz/fuzz/fuzz_model_file -max_total_time="${MODEL_FUZZ_SECONDS:-30}" \
  -malloc_limit_mb=64 -close_fd_mask=2 -dict=fuzz/model_file.dict -print_final_stats=1 \
  build-fuzz/model-corpus 2>&1 | tail -n 12

echo "== every test, -Werror build, with MPI (scripts/setup.sh test installs Open MPI)"
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Release -DATTN_WERROR=ON -DATTN_MPI=ON >/dev/null
cmake --build build-test -j"$jobs"
ctest --test-dir build-test -j"$jobs" --output-on-failure
