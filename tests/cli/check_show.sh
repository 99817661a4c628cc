#!/usr/bin/env bash
# attn show: the picture of each format, the map and heads it chooses, the model
# view of --grid, the page of --html, and the messages and exit status of bad
# files and options. Most
# records are written here as JSON (the schema of attn/capture.h); a few come
# from models trained for a few steps, through attn translate --attention.
#   check_show.sh PATH_TO_ATTN
set -uo pipefail
attn=$1

source "$(dirname "$0")/expect.sh"

dir=$(mktemp -d /tmp/attn_check_show_XXXXXX)
trap 'rm -rf "$dir"' EXIT

# rows R C [causal]: R rows of C weights, each row uniform over the columns it
# may see (all, or the first i + 1 with causal).
rows() {
  awk -v R="$1" -v C="$2" -v causal="${3:-}" 'BEGIN {
    printf "["
    for (i = 0; i < R; i++) {
      n = causal ? i + 1 : C
      printf "%s[", i ? ", " : ""
      for (j = 0; j < C; j++) printf "%s%.9g", j ? ", " : "", j < n ? 1 / n : 0
      printf "]"
    }
    printf "]"
  }'
}

# map NAME LAYER KIND HARD TOKENS HEADS R C WEIGHTS_OF_ONE_HEAD
map() {
  local heads="" h
  for ((h = 0; h < $6; h++)); do heads+="${heads:+, }$9"; done
  printf '{"name": "%s", "layer": %d, "kind": "%s", "hard": %s, "tokens": "%s", ' \
    "$1" "$2" "$3" "$4" "$5"
  printf '"heads": %d, "rows": %d, "cols": %d, "weights": [%s]}' "$6" "$7" "$8" "$heads"
}

# record FILE MODEL QUERIES KEYS MAPS...
record() {
  local file=$1 model=$2 queries=$3 keys=$4 maps=""
  shift 4
  for m in "$@"; do maps+="${maps:+, }$m"; done
  printf '{"format": "attn-attention", "version": 1, "model": "%s", ' "$model" >"$file"
  printf '"task": "dates", ' >>"$file"
  printf '"queries": %s, "keys": %s, "maps": [%s]}\n' "$queries" "$keys" "$maps" >>"$file"
}

# An RNN with soft attention, one with hard attention, an encoder-decoder
# transformer of two layers and two heads, and a language model of two layers.
queries='["2", "0", "<eos>"]'
keys='["N", "o", "v", " "]'
record "$dir/rnn.json" gru-bahdanau "$queries" "$keys" \
  "$(map decoder.attention 0 cross false keys 1 3 4 "$(rows 3 4)")"
record "$dir/hard.json" gru-hard "$queries" "$keys" \
  "$(map decoder.attention 0 cross true keys 1 3 4 '[[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]')"
maps=()
for l in 0 1; do
  prefix=transformer.encoder.layers.$l
  maps+=("$(map $prefix.self_attn $l self false keys 2 4 4 "$(rows 4 4)")")
  prefix=transformer.decoder.layers.$l
  maps+=("$(map $prefix.self_attn $l self false queries 2 3 3 "$(rows 3 3 causal)")")
  maps+=("$(map $prefix.multihead_attn $l cross false keys 2 3 4 "$(rows 3 4)")")
done
record "$dir/tf.json" transformer "$queries" "$keys" "${maps[@]}"
record "$dir/gpt.json" gpt "$keys" "$keys" \
  "$(map transformer.h.0.attn 0 self false keys 4 4 4 "$(rows 4 4 causal)")" \
  "$(map transformer.h.1.attn 1 self false keys 4 4 4 "$(rows 4 4 causal)")"
record "$dir/empty.json" gpt '[]' '[]'
echo "not a record" >"$dir/corrupt.json"

# png FILE: the file starts with PNG's signature.
png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && echo "is a PNG"; }

expect 0 "usage: attn show FILE" -- "$attn" show --help
expect 0 "  show +draw recorded attention" -- "$attn" --help

# the default picture: FILE with .png, the first cross map, the mean over heads
expect 0 "^wrote $dir/rnn.png: decoder.attention \(cross\), 1 head, 3 x 4$" -- \
  "$attn" show "$dir/rnn.json"
expect 0 "is a PNG" -- png "$dir/rnn.png"
cp "$dir/rnn.json" "$dir/record.png"
expect 0 "^wrote $dir/record.png.png: " -- "$attn" show "$dir/record.png"
expect 0 "^wrote $dir/tf.png: transformer.decoder.layers.0.multihead_attn \(cross\), mean of 2" -- \
  "$attn" show "$dir/tf.json"
expect 0 ": transformer.h.1.attn \(self\), mean of 4 heads, 4 x 4$" -- "$attn" show "$dir/gpt.json"
expect 0 "is a PNG" -- png "$dir/gpt.png"

# choosing the map and the heads
expect 0 ": transformer.decoder.layers.1.multihead_attn \(cross\), head 1, 3 x 4$" -- \
  "$attn" show "$dir/tf.json" --layer 1 --head 1 --out "$dir/tf1.png"
expect 0 ": transformer.encoder.layers.1.self_attn \(self\), 2 heads, 4 x 4$" -- \
  "$attn" show "$dir/tf.json" --map transformer.encoder.layers.1.self_attn --grid \
  --out "$dir/enc.png"
expect 0 ": transformer.h.0.attn \(self\), 4 heads, 4 x 4$" -- \
  "$attn" show "$dir/gpt.json" --layer 0 --grid --cell 12 --out "$dir/gpt0.pdf"
expect 0 ": decoder.attention \(cross\), head 0, 3 x 4$" -- \
  "$attn" show "$dir/hard.json" --head 0 --out "$dir/hard.png"

# --grid without a map: the model view, every head of every map, in each format
expect 0 "^wrote $dir/tf-model.png: model view, 6 maps x 2 heads$" -- \
  "$attn" show "$dir/tf.json" --grid --out "$dir/tf-model.png"
expect 0 "is a PNG" -- png "$dir/tf-model.png"
expect 0 "^wrote $dir/tf-model.svg: model view, 6 maps x 2 heads$" -- \
  "$attn" show "$dir/tf.json" --grid --out "$dir/tf-model.svg"
expect 0 "<title>transformer · model view</title>" -- cat "$dir/tf-model.svg"
first="transformer.encoder.layers.0.self_attn \(layer 0, self, 2 heads, 4 x 4\)"
expect 0 "<desc>maps: $first; " -- cat "$dir/tf-model.svg"
expect 0 "^wrote $dir/gpt-model.pdf: model view, 2 maps x 4 heads$" -- \
  "$attn" show "$dir/gpt.json" --grid --cell 12 --title "two layers" --out "$dir/gpt-model.pdf"
expect 0 "^%PDF-" -- head -c 5 "$dir/gpt-model.pdf"
expect 0 "^wrote $dir/rnn-model.png: model view, 1 map x 1 head$" -- \
  "$attn" show "$dir/rnn.json" --grid --out "$dir/rnn-model.png"
record "$dir/mixed.json" mixed "$queries" "$keys" \
  "$(map a 0 cross false keys 1 3 4 "$(rows 3 4)")" "$(map b 1 cross true keys 3 3 4 \
    '[[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]')"
expect 0 "^wrote $dir/mixed.png: model view, 2 maps x up to 3 heads$" -- \
  "$attn" show "$dir/mixed.json" --grid

# SVG carries the title and the tokens as text (a decoder's self-attention is
# labelled by the output tokens); PDF is a PDF
expect 0 "^wrote $dir/dec.svg" -- "$attn" show "$dir/tf.json" --title "decoder <0>" \
  --map transformer.decoder.layers.0.self_attn --out "$dir/dec.svg"
expect 0 "<title>decoder &lt;0&gt;</title>" -- cat "$dir/dec.svg"
expect 0 "<desc>rows: 2 0 &lt;eos&gt;; columns: 2 0 &lt;eos&gt;</desc>" -- cat "$dir/dec.svg"
expect 0 "<desc>rows: 2 0 &lt;eos&gt;; columns: N o v ␣</desc>" -- \
  bash -c "'$attn' show '$dir/rnn.json' --out '$dir/rnn.SVG' >/dev/null && cat '$dir/rnn.SVG'"
expect 0 "^%PDF-" -- head -c 5 "$dir/gpt0.pdf"

# --html: the page alone, or with a picture
expect 0 "^wrote $dir/tf.html: a page of 6 maps, every weight held exactly$" -- \
  "$attn" show "$dir/tf.json" --html "$dir/tf.html"
# --window: the rows the page holds exactly (the browser test reads what it holds)
expect 0 "^wrote $dir/w.html: a page of 1 map, 1 held exactly only for a window of rows" -- \
  "$attn" show "$dir/rnn.json" --html "$dir/w.html" --window 1:1
expect 2 "--window chooses the rows of the page: give --html too" -- \
  "$attn" show "$dir/rnn.json" --window 0:1
expect 2 "--window 9:1 starts past every map: the record's maps have at most 3 rows" -- \
  "$attn" show "$dir/rnn.json" --html "$dir/w.html" --window 9:1
expect 2 "--window takes FIRST:COUNT, a first row from 0 and a count from 1, not '1:0'" -- \
  "$attn" show "$dir/rnn.json" --html "$dir/w.html" --window 1:0
expect 0 "<html" -- cat "$dir/tf.html"
for line in "wrote $dir/rnn.html: a page of 1 map" "wrote $dir/both.svg: decoder.attention"; do
  expect 0 "^$line" -- "$attn" show "$dir/rnn.json" --html "$dir/rnn.html" --out "$dir/both.svg"
done
expect 2 "--grid, --cell and --title shape the picture: give --out too" -- \
  "$attn" show "$dir/rnn.json" --html "$dir/rnn.html" --head 0

# records of real models (a few training steps), as JSON and as safetensors
for run in "gru:--model gru-bahdanau" "hard:--attention hard-gumbel" \
  "transformer:--model transformer --layers 2"; do
  name=${run%%:*}
  # shellcheck disable=SC2086 # the model's options are words
  "$attn" train ${run#*:} --steps 10 --eval-every 10 --out "$dir/$name.safetensors" >/dev/null 2>&1 ||
    echo "cannot train $name"
  for record in "$dir/$name.rec.json" "$dir/$name.rec.st"; do
    "$attn" translate --model "$dir/$name.safetensors" --attention "$record" "24-NOV-26" >/dev/null
  done
  expect 0 "^wrote $dir/$name.rec.png: .* \(cross\), .*, [0-9]+ x 9$" -- \
    "$attn" show "$dir/$name.rec.json"
  expect 0 "^wrote $dir/$name.pdf: model view, [0-9]+ maps? x [0-9]+ heads?$" -- \
    "$attn" show "$dir/$name.rec.st" --grid --out "$dir/$name.pdf"
done
for picture in transformer.png transformer.svg; do
  expect 0 "^wrote $dir/$picture: model view, 6 maps x 4 heads$" -- \
    "$attn" show "$dir/transformer.rec.json" --grid --out "$dir/$picture"
done
expect 0 "^wrote $dir/tf-layer0.png: .*layers.0.multihead_attn \(cross\), 4 heads, [0-9]+ x 9$" -- \
  "$attn" show "$dir/transformer.rec.json" --layer 0 --grid --out "$dir/tf-layer0.png"
expect 0 ": decoder.attention \(cross\), 1 head, " -- "$attn" show "$dir/hard.rec.json"
expect 0 ": transformer.encoder.layers.1.self_attn \(self\), 4 heads, 9 x 9$" -- \
  "$attn" show "$dir/transformer.rec.st" --map transformer.encoder.layers.1.self_attn --grid

# bad files
expect 1 "cannot open '$dir/missing.json'" -- "$attn" show "$dir/missing.json"
expect 1 "'$dir/corrupt.json': not valid JSON" -- "$attn" show "$dir/corrupt.json"
expect 1 "$dir/empty.json holds no attention maps" -- "$attn" show "$dir/empty.json"
expect 2 "--out $dir/no/such/dir.png: the folder $dir/no/such does not exist" -- \
  "$attn" show "$dir/rnn.json" --out "$dir/no/such/dir.png"

# bad options and choices
expect 2 "no map named 'nope' in $dir/tf.json; its maps are:" -- \
  "$attn" show "$dir/tf.json" --map nope
expect 2 "  transformer.decoder.layers.1.self_attn  \(layer 1, self, 2 heads, 3 x 3\)" -- \
  "$attn" show "$dir/tf.json" --map nope
expect 2 "no map of layer 7 in $dir/tf.json; its layers are 0 to 1" -- \
  "$attn" show "$dir/tf.json" --layer 7
expect 2 "--head 2 does not exist: map '.*layers.0.multihead_attn' has 2 heads \(0 to 1\)" -- \
  "$attn" show "$dir/tf.json" --head 2
expect 2 "--head 1 does not exist: map 'decoder.attention' has 1 head \(0 to 0\)" -- \
  "$attn" show "$dir/rnn.json" --head 1
expect 2 "--out '$dir/x.jpg' has no known extension: use .png, .svg or .pdf" -- \
  "$attn" show "$dir/rnn.json" --out "$dir/x.jpg"
cp "$dir/rnn.json" "$dir/record.svg"
expect 2 "--out $dir/record.svg is the file FILE reads" -- \
  "$attn" show "$dir/record.svg" --out "$dir/record.svg"
ln -sf record.svg "$dir/link.html"
expect 2 "--html $dir/link.html is the file FILE reads" -- \
  "$attn" show "$dir/record.svg" --html "$dir/link.html"
expect 2 "--html and --out are the same file" -- \
  "$attn" show "$dir/rnn.json" --out "$dir/both.svg" --html "$dir/./both.svg"
expect 2 "--map and --layer both choose the map" -- \
  "$attn" show "$dir/tf.json" --map decoder.attention --layer 0
expect 2 "--grid: give one of --head, --average and --grid" -- \
  "$attn" show "$dir/tf.json" --head 0 --grid
expect 2 "--cell takes 2 to 200 pixels, not '1'" -- "$attn" show "$dir/rnn.json" --cell 1
expect 2 "--head takes 0 to 2147483647, not '-1'" -- "$attn" show "$dir/rnn.json" --head -1
expect 2 "--layer takes 0 to 256, not 'x'" -- "$attn" show "$dir/rnn.json" --layer x
expect 2 "a record FILE is required" -- "$attn" show
expect 2 "unexpected argument 'more'" -- "$attn" show "$dir/rnn.json" more
expect 2 "option '--out' needs a value" -- "$attn" show "$dir/rnn.json" --out
expect 2 "unknown option '--bogus'" -- "$attn" show "$dir/rnn.json" --bogus

# nothing half-written is left behind
expect 0 "^ *0$" -- bash -c "find '$dir' -name '*.tmp.*' | wc -l"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
