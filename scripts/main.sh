#!/usr/bin/env bash
# The main job: build attn, train the default model on the built-in dates task
# (human-written dates -> ISO dates), then translate a few dates and show what
# the model attended to: as shaded grids, then one date recorded, drawn as a
# heatmap (attention.png), written as an interactive page (attention.html) and
# scored by attn analyze. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DATTN_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)"

./build/attn info
echo
./build/attn train --out dates.safetensors "$@"
echo
./build/attn translate --model dates.safetensors --grid \
  "Tuesday, November 24, 2026" "24-NOV-26" "the 3rd of March 1999" "2000.02.29"
echo
./build/attn translate --model dates.safetensors --attention attention.json "Tue, 24 Nov 2026"
./build/attn show attention.json --out attention.png --html attention.html
./build/attn analyze attention.json
