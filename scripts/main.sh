#!/usr/bin/env bash
# The main job: build attn and run it. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DATTN_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)"

./build/attn info
echo
./build/attn demo "$@"
