#!/usr/bin/env bash
# The README's screenshot of the page's model view, docs/model_view.png: trains
# the dates Transformer (2 + 2 layers, 4 heads, seed 1; about half a minute on
# 2 cores), records one translation with q, k and gradients, writes its page
# and has headless Chromium draw the model view (scripts/page_screenshot.py).
#   scripts/readme_screenshot.sh [BUILD_DIR]     (default build)
# Needs Chromium (/usr/bin/chromium) and attn built in BUILD_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
attn="${1:-build}/attn"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$attn" train --model transformer --seed 1 --out "$work/dates.safetensors" >/dev/null
"$attn" translate --model "$work/dates.safetensors" --attention "$work/record.json" --qk \
  --gradient "Tue, 24 Nov 2026"
"$attn" show "$work/record.json" --html "$work/page.html"
/usr/bin/python3 scripts/page_screenshot.py "$work/page.html" docs/model_view.png --width 760
