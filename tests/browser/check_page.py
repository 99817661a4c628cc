#!/usr/bin/python3
"""attn show --html, end to end: a record with known weights (fresh random ones each
run, tokens that try to break the page such as "</script>") becomes a page through
the real attn binary, and Debian's headless Chromium opens it. Driven through the
DevTools protocol over --remote-debugging-pipe, the test takes screenshots, moves
the mouse over tokens and cells, clicks and presses keys, changes the map, the head
and the view, and reads what is drawn: the lines, their ends and widths, the
weights beside the tokens, the matrix canvas cell by cell (its colours on one scale
and each row on its own, its numbers, the readout of the cell under the mouse), the
model view's thumbnails pixel by pixel and what a click or Enter on one opens, the
step slider of a language model's record (by a click and the arrow keys), a window
of rows (--window), the neuron view (opened by clicks on a thumbnail, a matrix
cell and a query token; its scores and each dimension's q_d k_d against q . k
computed from the record, for a language model, Luong's decoder and the long
record's top keys; what it says for Bahdanau and a record without q and k), the
gradient-weighted, rollout and relevance maps (their values against float64,
tests/browser/reference.py, and attn analyze --json; their matrix), what a page
holds of q and k past its budget, and a 2,048-token record of 6 layers x 6 heads
with q and k: its page's size, its time from navigation to the page's ready
marker (under 2 s) and what it says it holds. It also checks that each page asked for nothing but itself and
threw no error. Python's standard library only.

    check_page.py PATH_TO_ATTN [--chromium PATH] [--seed N] [--keep DIR]

Exit status 0 when every check passes, 1 when one fails, 77 (skipped) when Chromium
is not installed. ATTN_TEST_SEED repeats a run.
"""
import argparse
import base64
import json
import math
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import reference
from reference import f32 as as_float32
from chromium import HEIGHT, TIMEOUT, WIDTH, Browser, Failure, check

SKIP = 77

TRICKY = ["</script>", "<!--<script>", "<!--", "\"", "'", "&amp;", " ", "\\", "\u00e9",
          "\u2028", "\t", "<b>", "\x01", "a\nb", ""]
PLAIN = list("0123456789-ABCDEFGHIJKLMNOPQRSTUVWXYZ")


# ---- the record -------------------------------------------------------------------

def soft_row(rng, n, visible):
    """Weights over the first `visible` of n keys summing to 1, whose largest beats
    the next by at least 0.05, so that no rounding can change which is strongest."""
    row = [0.0] * n
    raw = [rng.random() ** 2 + 0.01 for _ in range(visible)]
    top = rng.randrange(visible)
    raw[top] = max(raw) + 0.1 * sum(raw) + 0.05
    total = sum(raw)
    for j in range(visible):
        row[j] = raw[j] / total
    return row


def hard_row(rng, n):
    row = [0.0] * n
    row[rng.randrange(n)] = 1.0
    return row


def make_record(rng):
    n_keys, n_queries = rng.randint(9, 14), rng.randint(6, 10)
    keys = [rng.choice(PLAIN) for _ in range(n_keys)]
    queries = [rng.choice(PLAIN) for _ in range(n_queries)]
    # Every run has the tokens that would end the record's element or open a
    # comment in it, and a few other awkward ones.
    for tokens, always in ((keys, "</script>"), (queries, "<!--<script>")):
        tricky = [always] + rng.sample([t for t in TRICKY if t != always], 4)
        for t, i in zip(tricky, rng.sample(range(len(tokens)), 5)):
            tokens[i] = t

    def soft(heads, rows, cols, causal=False):
        return [[soft_row(rng, cols, i + 1 if causal else cols) for i in range(rows)]
                for _ in range(heads)]

    maps = [
        {"name": "decoder.attention", "layer": 0, "kind": "cross", "hard": False,
         "heads": 1, "rows": n_queries, "cols": n_keys,
         "weights": soft(1, n_queries, n_keys)},
        {"name": "transformer.encoder.layers.0.self_attn", "layer": 0, "kind": "self",
         "hard": False, "tokens": "keys", "heads": 3, "rows": n_keys, "cols": n_keys,
         "weights": soft(3, n_keys, n_keys)},
        {"name": "transformer.decoder.layers.0.self_attn", "layer": 0, "kind": "self",
         "hard": False, "tokens": "queries", "heads": 2, "rows": n_queries,
         "cols": n_queries, "weights": soft(2, n_queries, n_queries, causal=True)},
        {"name": "transformer.decoder.layers.0.multihead_attn", "layer": 0, "kind": "cross",
         "hard": True, "heads": 2, "rows": n_queries, "cols": n_keys,
         "weights": [[hard_row(rng, n_keys) for _ in range(n_queries)] for _ in range(2)]},
    ]
    return {"format": "attn-attention", "version": 1, "model": "test <model>", "task": "dates",
            "queries": queries, "keys": keys, "maps": maps}


def labels(record, m):
    """The tokens of a map's rows and columns (attn_map_row_tokens/col_tokens)."""
    if m["kind"] == "cross":
        return record["queries"], record["keys"]
    own = record[m.get("tokens", "keys")]
    return own, own


def weights(m, head):
    """One head's weights, or the mean over the heads (head < 0), as rows."""
    heads = range(m["heads"]) if head < 0 else [head]
    return [[sum(m["weights"][h][i][j] for h in heads) / len(heads) for j in range(m["cols"])]
            for i in range(m["rows"])]


def argmax(values):
    return max(range(len(values)), key=lambda k: values[k])


def shown(token):
    """A token as the page shows it: a space as U+2423, a control character or line
    break as its escape."""
    if token == "":
        return "\u2205"
    escapes = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    out = []
    for c in token:
        code = ord(c)
        if c == " ":
            out.append("\u2423")
        elif c in escapes:
            out.append(escapes[c])
        elif code < 0x20 or 0x7f <= code <= 0x9f:
            out.append("\\x%02x" % code)
        elif c in "\u2028\u2029":
            out.append("\\u%04x" % code)
        else:
            out.append(c)
    return "".join(out)


def percent(w):
    """A weight as the page writes it in percent (attention.js pct)."""
    if 0 < w < 0.005:
        return "%.2f%%" % (w * 100)
    return "%d%%" % math.floor(w * 100 + 0.5)


# ---- PNG --------------------------------------------------------------------------

def png_pixels(data):
    """(width, height, rows of (r, g, b)) of an 8-bit RGB or RGBA PNG."""
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG")
    pos, idat, width = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            check(depth == 8 and colour in (2, 6), "PNG depth %d colour type %d" % (depth, colour))
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    check(width is not None, "the PNG has no header")
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, cur = line[0], bytearray(line[1:])
        for x in range(stride):
            a = cur[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if kind == 1:
                cur[x] = (cur[x] + a) & 255
            elif kind == 2:
                cur[x] = (cur[x] + b) & 255
            elif kind == 3:
                cur[x] = (cur[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                cur[x] = (cur[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(cur[x:x + 3]) for x in range(0, stride, channels)])
        prev = cur
    return width, height, rows


def inspect_png(path):
    """Checks that the screenshot at path is a picture of something; returns its
    pixels, as rows of (r, g, b)."""
    with open(path, "rb") as f:
        width, height, rows = png_pixels(f.read())
    check((width, height) == (WIDTH, HEIGHT), "screenshot %dx%d" % (width, height))
    background = rows[0][0]
    colours = set()
    drawn = 0
    for row in rows:
        colours.update(row)
        drawn += sum(p != background for p in row)
    check(len(colours) > 16 and drawn > 0.01 * width * height,
          "screenshot %s is blank: %d colours, %d pixels off the background" %
          (path, len(colours), drawn))
    return rows


def screenshot(browser, path):
    browser.capture(path)
    return inspect_png(path)


def newly_tinted(before, after, box):
    """Pixels of box (x0, y0, x1, y1) that changed from one screenshot to the next
    and now have the page's orange accent, however faint."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return sum(before[y][x] != after[y][x] and after[y][x][0] - after[y][x][2] > 25
               for y in range(max(y0, 0), min(y1, HEIGHT))
               for x in range(max(x0, 0), min(x1, WIDTH)))


# ---- what the page shows ------------------------------------------------------------

def centre(browser, selector, index):
    """Scrolls element `index` of selector into view; the viewport point at its centre."""
    point = browser.js(
        "(() => { const e = document.querySelectorAll(%s)[%d];"
        " e.scrollIntoView({block: 'center', inline: 'center'});"
        " const r = e.getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        % (json.dumps(selector), index))
    check(point is not None, "no element %d of %s" % (index, selector))
    return point


def hover(browser, selector, index):
    browser.mouse("mouseMoved", 2, 2)
    x, y = centre(browser, selector, index)
    browser.mouse("mouseMoved", x, y)


def click(browser, selector):
    x, y = centre(browser, selector, 0)
    browser.mouse("mouseMoved", x, y)
    browser.mouse("mousePressed", x, y)
    browser.mouse("mouseReleased", x, y)


def choose(browser, select_id, value):
    browser.js("(() => { const s = document.getElementById(%s); s.value = %s;"
               " s.dispatchEvent(new Event('change')); })()" %
               (json.dumps(select_id), json.dumps(str(value))))


LINES_STATE = """(() => {
  const y = (e) => +e.querySelector('text').getAttribute('y');
  const side = (kind) => [...document.querySelectorAll('#lines .tok.' + kind)].map((g) => ({
    y: y(g), text: g.querySelector('text').textContent,
    weight: g.querySelector('.wt').textContent}));
  return {keys: side('key'), queries: side('query'),
    lines: [...document.querySelectorAll('#lines line')].map((l) => ({
      y1: +l.getAttribute('y1'), y2: +l.getAttribute('y2'),
      width: +l.getAttribute('stroke-width'), opacity: +l.getAttribute('stroke-opacity')})),
    readout: document.getElementById('readout').textContent,
    visible: !document.getElementById('lines-view').hidden};
})()"""

def canvas_pixels(browser, selector, points):
    """The (r, g, b, a) of the canvas's pixels at points [(x, y), ...] (canvas pixels)."""
    return browser.js(
        "(() => { const c = document.querySelector(%s), g = c.getContext('2d');"
        " return %s.map(([x, y]) => [...g.getImageData(x, y, 1, 1).data]); })()"
        % (json.dumps(selector), json.dumps(points)))


def rect(browser, selector):
    return browser.js("(() => { const e = document.querySelector(%s);"
                      " if (!e || e.hidden) return null; const r = e.getBoundingClientRect();"
                      " return [r.x, r.y, r.width, r.height]; })()" % json.dumps(selector))


def readout(browser):
    return browser.js("document.getElementById('readout').textContent")


def matrix_geometry(browser, n_rows, n_cols, what):
    """Where the matrix's cells are: hovering the canvas's bottom right corner (the
    last cell's) marks that cell; its box gives the cells' side and their origin.
    Returns (left, top, cell) in canvas pixels and the canvas's viewport box."""
    check(browser.js("!document.getElementById('matrix-view').hidden"),
          "%s: the matrix view is not shown" % what)
    browser.js("document.getElementById('matrix').scrollIntoView({block: 'center'})")
    box = rect(browser, "#matrix")
    browser.mouse("mouseMoved", 2, 2)
    browser.mouse("mouseMoved", box[0] + box[2] - 1, box[1] + box[3] - 1)
    mark = rect(browser, "#cell-mark")
    check(mark is not None, "%s: hovering the last cell marks none" % what)
    cell = mark[2]
    left = mark[0] - box[0] - (n_cols - 1) * cell
    top = mark[1] - box[1] - (n_rows - 1) * cell
    check(cell >= 1 and abs(mark[3] - cell) < 1e-6 and left >= 0 and top >= 0 and
          abs(box[2] - (left + n_cols * cell)) < 1e-6 and
          abs(box[3] - (top + n_rows * cell)) < 1e-6,
          "%s: the cells (%s) do not fill the canvas %s" % (what, mark, box))
    return left, top, cell, box


def hover_cell(browser, geometry, i, j):
    left, top, cell, box = geometry
    browser.mouse("mouseMoved", 2, 2)
    browser.mouse("mouseMoved", box[0] + left + (j + 0.5) * cell, box[1] + top + (i + 0.5) * cell)


def check_tokens(state, rows, cols, what):
    check([k["text"] for k in state["keys"]] == [shown(t) for t in cols],
          "%s: the key tokens drawn %s are not %s" %
          (what, [k["text"] for k in state["keys"]], [shown(t) for t in cols]))
    check([q["text"] for q in state["queries"]] == [shown(t) for t in rows],
          "%s: the query tokens drawn are not the record's" % what)


# A line is drawn 0.75 + 6 w wide, to 0.001 (the page's toFixed(3)): two weights
# closer than this may draw equally wide, and either is then the strongest.
WIDTH_RESOLUTION = 1e-3 / 6


def check_query_lines(browser, w, rows, cols, i, what):
    """Hovers query i and checks a line to each key it attends to, the strongest
    to the key with the largest weight, wider where the weight is larger."""
    hover(browser, "#lines .tok.query", i)
    state = browser.js(LINES_STATE)
    check_tokens(state, rows, cols, what)
    row = w[i]
    attended = [j for j in range(len(row)) if row[j] > 0]
    check(len(state["lines"]) == len(attended),
          "%s: query %d attends to %d keys but %d lines are drawn" %
          (what, i, len(attended), len(state["lines"])))
    key_at = {k["y"]: j for j, k in enumerate(state["keys"])}
    query_y = state["queries"][i]["y"]
    for line in state["lines"]:
        check(line["y2"] == query_y and line["y1"] in key_at,
              "%s: a line does not join query %d to a key: %s" % (what, i, line))
    strongest = max(state["lines"], key=lambda l: l["width"])
    best, chosen = argmax(row), key_at[strongest["y1"]]
    check(row[chosen] >= row[best] - WIDTH_RESOLUTION,
          "%s: the strongest line from query %d goes to key %d (weight %.4f), not to key %d "
          "(weight %.4f)" % (what, i, chosen, row[chosen], best, row[best]))
    for a in state["lines"]:
        for b in state["lines"]:
            wa, wb = row[key_at[a["y1"]]], row[key_at[b["y1"]]]
            check(not (wa > wb + 2e-3 and a["width"] <= b["width"]),
                  "%s: the line of weight %.4f is not wider than that of %.4f" % (what, wa, wb))
    label = state["keys"][best]["weight"]
    check(label != "" and abs(float(label.rstrip("%")) - row[best] * 100) <= 0.5 + 1e-6,
          "%s: key %d shows '%s' for weight %.4f" % (what, best, label, row[best]))
    check(shown(cols[best]) in state["readout"] and percent(row[best]) in state["readout"],
          "%s: the readout '%s' does not name key %d" % (what, state["readout"], best))
    return state


# The page's colour scale (attention.js STOPS): Blues, light to dark.
STOPS = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]]
# The matrix colour of weight 1 (the top of the scale): the darkest stop.
TOP_RGB = STOPS[-1]


def colour(t):
    """The page's colour of t in [0, 1] (attention.js colourOf); JavaScript rounds
    halves up."""
    x = min(1.0, max(0.0, t)) * (len(STOPS) - 1)
    i = min(len(STOPS) - 2, int(math.floor(x)))
    f = x - i
    return [int(math.floor(a + (b - a) * f + 0.5)) for a, b in zip(STOPS[i], STOPS[i + 1])]


def near(rgb, expected, tolerance=1):
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, expected))


def check_matrix_cells(browser, w, rows, cols, what, per_row=False, first=0, share=True):
    """The matrix canvas, cell by cell: each cell's colour (read at its corner,
    away from the number) is its weight's on the scale (the largest weight shown,
    or per_row its row's largest), and a cell of at least 0.5 % shows text in its
    middle, one below it none (when the cells are large enough for numbers).
    Hovering reads out every row's and every column's tokens, and the value to
    4 decimals. A map of values that are no shares (share False: gradient-weighted
    attention, relevance) prints no numbers in its cells and reads out 4
    significant digits. Returns the geometry."""
    geometry = matrix_geometry(browser, len(rows), len(cols), what)
    left, top, cell, _ = geometry
    vmax = max(max(r) for r in w) or 1.0
    corners, middles = [], []
    for i in range(len(rows)):
        for j in range(len(cols)):
            x, y = int(left + j * cell), int(top + i * cell)
            corners.append([x + 1, y + 1])
            middles.append([[x + dx, y + int(cell // 2)] for dx in range(3, int(cell) - 3)])
    got = canvas_pixels(browser, "#matrix", corners)
    numbered = cell >= 24 and share
    mids = canvas_pixels(browser, "#matrix", [p for m in middles for p in m]) if numbered else []
    per_cell = max(0, int(cell) - 6)
    for k, rgba in enumerate(got):
        i, j = divmod(k, len(cols))
        scale = (max(w[i]) or 1.0) if per_row else vmax
        expected = colour(w[i][j] / scale)
        check(near(rgba, expected),
              "%s: cell (%d, %d) of weight %.6f is %s, not %s" % (what, i, j, w[i][j], rgba[:3],
                                                                  expected))
        if numbered:
            text = any(not near(p, rgba, 8) for p in mids[k * per_cell:(k + 1) * per_cell])
            # A weight is printed in percent from 0.5 %; rounding may go either way
            # within 1e-6 of a boundary.
            v = w[i][j]
            check(text == (v >= 0.005) or abs(v - 0.005) < 1e-6,
                  "%s: cell (%d, %d) of weight %.6f %s a number" %
                  (what, i, j, v, "shows" if text else "does not show"))
    for i in range(len(rows)):
        j = (i * 7) % len(cols)
        hover_cell(browser, geometry, i, j)
        text = readout(browser)
        check(("query %d \u201c%s\u201d" % (first + i, shown(rows[i]))).lower() in text.lower() and
              "key %d \u201c%s\u201d" % (j, shown(cols[j])) in text and
              abs(float(text.rsplit(": ", 1)[-1]) - w[i][j]) <=
              (5e-5 if share else 5e-4 * abs(w[i][j])) + 1e-7,
              "%s: hovering cell (%d, %d) of weight %.6f reads '%s'" % (what, i, j, w[i][j], text))
    for j in range(len(cols)):
        i = (j * 5) % len(rows)
        hover_cell(browser, geometry, i, j)
        check("key %d \u201c%s\u201d" % (j, shown(cols[j])) in readout(browser),
              "%s: hovering column %d reads '%s'" % (what, j, readout(browser)))
    return geometry


def check_matrix(browser, w, rows, cols, what, first=0):
    """check_matrix_cells on one colour scale, whose top reads the largest weight."""
    geometry = check_matrix_cells(browser, w, rows, cols, what, first=first)
    top = browser.js("document.getElementById('top').textContent")
    check(top == percent(max(max(r) for r in w)), "%s: the scale's top reads '%s'" % (what, top))
    return geometry


def check_matrix_per_row(browser, w, rows, cols, what):
    """Ticks "each row to its own largest weight" by a click: every cell takes the
    colour of its weight over its row's largest, so each row's largest has the
    scale's top colour, and the scale says so. A second click goes back to one
    scale for the matrix."""
    click(browser, "#per-row")
    left, top, cell, _ = check_matrix_cells(browser, w, rows, cols, what + " per row",
                                            per_row=True)
    for i in range(len(rows)):
        if max(w[i]) <= 0:
            continue
        j = argmax(w[i])
        rgba = canvas_pixels(browser, "#matrix", [[int(left + j * cell) + 1,
                                                   int(top + i * cell) + 1]])[0]
        check(rgba[:3] == TOP_RGB, "%s per row: row %d's largest weight is %s, not the top "
              "colour %s" % (what, i, rgba[:3], TOP_RGB))
    top_text = browser.js("document.getElementById('top').textContent")
    check(top_text == "the row's largest", "%s per row: the scale reads '%s'" % (what, top_text))
    click(browser, "#per-row")
    check_matrix(browser, w, rows, cols, what + " after per row")


def check_cell_keys(browser, geometry, w, rows, cols, what):
    """A click on a cell focuses the matrix; the arrow keys then move the readout
    from that cell, a row down and a column left, and stop at the edge."""
    left, top, cell, box = geometry
    i, j = len(rows) // 2, len(cols) // 2
    x, y = box[0] + left + (j + 0.5) * cell, box[1] + top + (i + 0.5) * cell
    browser.mouse("mouseMoved", x, y)
    browser.mouse("mousePressed", x, y)
    browser.mouse("mouseReleased", x, y)
    check(browser.js("document.activeElement.id") == "matrix",
          "%s: a click does not focus the matrix" % what)
    key(browser, "ArrowDown", "ArrowDown", 40)
    key(browser, "ArrowLeft", "ArrowLeft", 37)
    text = readout(browser)
    check(text.startswith("Query %d \u201c%s\u201d \u2192 key %d \u201c%s\u201d: " %
                          (i + 1, shown(rows[i + 1]), j - 1, shown(cols[j - 1]))) and
          abs(float(text.rsplit(": ", 1)[-1]) - w[i + 1][j - 1]) <= 5e-5 + 1e-7,
          "%s: the arrow keys from cell (%d, %d) read '%s'" % (what, i, j, text))
    for _ in range(len(cols)):
        key(browser, "ArrowRight", "ArrowRight", 39)
    check(" \u2192 key %d \u201c" % (len(cols) - 1) in readout(browser),
          "%s: the right arrow goes past the last key: '%s'" % (what, readout(browser)))


def check_cell_tip(browser, geometry, w, i, j, what):
    hover_cell(browser, geometry, i, j)
    tip = browser.js("(() => { const t = document.getElementById('tip');"
                     " return t.hidden ? null : t.textContent; })()")
    check(tip is not None, "%s: hovering cell (%d, %d) shows no value" % (what, i, j))
    check(abs(float(tip.split()[0]) - w[i][j]) <= 1e-4,
          "%s: cell (%d, %d) shows '%s' for weight %.6f" % (what, i, j, tip, w[i][j]))


# ---- the model view, the step slider, the long record -----------------------------------

def key(browser, name, code, virtual, text=None):
    """A key pressed and released, as the keyboard sends it to the focused element."""
    for kind in ("keyDown", "keyUp"):
        params = {"type": kind, "key": name, "code": code, "windowsVirtualKeyCode": virtual}
        if text is not None and kind == "keyDown":
            params["text"] = text
        browser.call("Input.dispatchKeyEvent", params)


def thumb_index(record, k, h):
    """The place of map k's head h among the model view's thumbnails."""
    return sum(m["heads"] for m in record["maps"][:k]) + h


def selected(browser):
    return browser.js("[document.getElementById('map').value,"
                      " document.getElementById('head').value,"
                      " !document.getElementById('matrix-view').hidden]")


def check_model_view(browser, record, tmp, rng):
    """Every (map, head) is a thumbnail whose pixels are its weights' colours on the
    record's one scale (to its 1/255 shades); a real click on one opens it in the
    matrix (the selects follow, and the screenshot shows the colour of its largest
    weight there), and Enter on a focused one opens it too."""
    maps = record["maps"]
    vmax = as_float32(max(x for m in maps for h in m["weights"] for r in h for x in r))
    names = browser.js("[...document.querySelectorAll('#grid .thumb')]"
                       ".map((c) => c.getAttribute('aria-label'))")
    check(names == ["open %s, head %d" % (m["name"], h) for m in maps for h in range(m["heads"])],
          "the model view's thumbnails are %s" % names)
    for k, m in enumerate(maps):
        for h in range(m["heads"]):
            points = [[j, i] for i in range(m["rows"]) for j in range(m["cols"])]
            got = canvas_pixels(browser, "#grid canvas:nth-of-type(%d)" %
                                (thumb_index(record, k, h) + 1), points)
            for (j, i), rgba in zip(points, got):
                shade = math.floor(255 * as_float32(m["weights"][h][i][j]) / vmax + 0.5)
                check(near(rgba, colour(shade / 255)),
                      "thumbnail of %s head %d: pixel (%d, %d) is %s, not %s" %
                      (m["name"], h, i, j, rgba[:3], colour(shade / 255)))

    k, h = 1, rng.randrange(maps[1]["heads"])
    click(browser, "#grid .thumb:nth-of-type(%d)" % (thumb_index(record, k, h) + 1))
    check(selected(browser) == [str(k), str(h), True],
          "a click on the thumbnail of map %d head %d shows %s" % (k, h, selected(browser)))
    m = maps[k]
    rows, cols = labels(record, m)
    w = weights(m, h)
    left, top, cell, box = matrix_geometry(browser, len(rows), len(cols), "model view's click")
    i, j = max(((i, j) for i in range(len(rows)) for j in range(len(cols))),
               key=lambda p: w[p[0]][p[1]])
    browser.mouse("mouseMoved", 2, 2)
    pixels = screenshot(browser, os.path.join(tmp, "5-opened.png"))
    x, y = int(box[0] + left + j * cell + 2), int(box[1] + top + i * cell + 2)
    check(near(pixels[y][x], TOP_RGB, 2),
          "after the click, the screenshot's cell (%d, %d) of the largest weight is %s, not %s" %
          (i, j, pixels[y][x], TOP_RGB))

    k, h = 3, 1
    browser.js("document.querySelectorAll('#grid .thumb')[%d].focus()" % thumb_index(record, k, h))
    key(browser, "Enter", "Enter", 13, "\r")
    check(selected(browser) == [str(k), str(h), True],
          "Enter on the thumbnail of map %d head %d shows %s" % (k, h, selected(browser)))
    rows, cols = labels(record, maps[k])
    check_matrix(browser, weights(maps[k], h), rows, cols, "map %d head %d by Enter" % (k, h))


STRIP_HEIGHT = 80  # attention.js


def check_step(browser, w, tokens, t, what):
    """The slider stands at step t: the text names the token and the key it
    attends to most, and the strip has a bar per key of its context, each as
    tall as its weight against the largest, in its colour."""
    value = int(browser.js("document.getElementById('step').value"))
    check(value == t, "%s: the slider is at %d, not %d" % (what, value, t))
    row = w[t][:t + 1]
    best = argmax(row)
    text = browser.js("document.getElementById('step-text').textContent")
    check(text.startswith("Step %d: \u201c%s\u201d attends to key %d \u201c%s\u201d %s" %
                          (t, shown(tokens[t]), best, shown(tokens[best]), percent(row[best]))),
          "%s: the step reads '%s'" % (what, text))
    bar = int(browser.js("document.getElementById('strip').dataset.bar"))
    width = browser.js("document.getElementById('strip').width")
    check(width == (t + 1) * bar, "%s: the strip is %d pixels wide for %d keys of %d" %
          (what, width, t + 1, bar))
    top = max(row)
    points = []
    for j, v in enumerate(row):
        x = j * bar + bar // 2
        height = math.floor(STRIP_HEIGHT * v / top + 0.5)
        points += [[x, STRIP_HEIGHT - 1], [x, STRIP_HEIGHT - height - 1]]
    got = canvas_pixels(browser, "#strip", points)
    for j, v in enumerate(row):
        height = math.floor(STRIP_HEIGHT * v / top + 0.5)
        inside, above = got[2 * j], got[2 * j + 1]
        check(height < 2 or near(inside, colour(v / top)),
              "%s: key %d's bar is %s, not %s" % (what, j, inside, colour(v / top)))
        check(height >= STRIP_HEIGHT or above[3] == 0,
              "%s: key %d's bar of weight %.4f is taller than %d pixels" % (what, j, v, height))
    check(near(canvas_pixels(browser, "#strip", [[best * bar + bar // 2, 0]])[0], TOP_RGB),
          "%s: the bar of the largest weight does not reach the top" % what)


def make_lm_record(rng):
    """A language model's record: causal self-attention over one sequence."""
    n = rng.randint(10, 16)
    tokens = [rng.choice(PLAIN) for _ in range(n)]
    for t, i in zip(["</script>", " ", "\n"], rng.sample(range(n), 3)):
        tokens[i] = t
    maps = [{"name": "transformer.h.%d.attn" % layer, "layer": layer, "kind": "self",
             "hard": False, "heads": 2, "rows": n, "cols": n,
             "weights": [[soft_row(rng, n, i + 1) for i in range(n)] for _ in range(2)]}
            for layer in range(3)]
    return {"format": "attn-attention", "version": 1, "model": "gpt", "task": "text",
            "queries": tokens, "keys": tokens, "maps": maps}


def check_slider(browser, record, page_path, rng):
    """The step slider of a language model's record, by real clicks and keys."""
    browser.events = []
    url = "file://" + os.path.abspath(page_path)
    browser.navigate(url)
    tokens, n = record["keys"], len(record["keys"])
    check(browser.js("!document.getElementById('steps').hidden"),
          "a language model's page has no step slider")
    m = record["maps"][0]
    check_step(browser, weights(m, -1), tokens, n - 1, "the first step shown")
    choose(browser, "map", 2)
    choose(browser, "head", 1)
    m = record["maps"][2]
    w = weights(m, 1)
    check_step(browser, w, tokens, n - 1, "map 2 head 1")
    box = rect(browser, "#step")
    browser.mouse("mouseMoved", box[0] + box[2] * 0.3, box[1] + box[3] / 2)
    browser.mouse("mousePressed", box[0] + box[2] * 0.3, box[1] + box[3] / 2)
    browser.mouse("mouseReleased", box[0] + box[2] * 0.3, box[1] + box[3] / 2)
    t = int(browser.js("document.getElementById('step').value"))
    check(0 < t < n - 1, "a click at 30%% of the slider sets step %d of %d" % (t, n))
    check_step(browser, w, tokens, t, "a click on the slider")
    key(browser, "ArrowRight", "ArrowRight", 39)
    check_step(browser, w, tokens, t + 1, "the right arrow")
    key(browser, "ArrowLeft", "ArrowLeft", 37)
    key(browser, "ArrowLeft", "ArrowLeft", 37)
    check_step(browser, w, tokens, t - 1, "the left arrow twice")
    choose(browser, "head", 0)
    check_step(browser, weights(m, 0), tokens, t - 1, "head 0 at the same step")
    check_quiet(browser, url)


def lm_vector(h, i, d, layer, which):
    """Value d of head h's q (which 0) or k (which 1) of token i in the long
    record: small integers over 4, exact in float32, of both signs."""
    return ((i * 7 + d * 3 + h * 5 + layer + which * 2) % 11 - 5) / 4.0


def write_lm_record(path, n, layers, heads, head_dim=0):
    """A language model's record of n tokens, layers x heads as safetensors: every
    head attends evenly to the tokens so far, so row i holds 1 / (i + 1) up to the
    diagonal; with head_dim, q and k of lm_vector. Returns its tokens."""
    header, offset = {}, 0
    size = heads * n * n * 4
    vectors = heads * n * head_dim * 4
    maps = []
    for layer in range(layers):
        name = "transformer.h.%d.attn" % layer
        maps.append({"name": name, "site": "transformer.h.*.attn", "layer": layer,
                     "kind": "self", "hard": False, "heads": heads, "rows": n, "cols": n})
        header["attention." + name] = {"dtype": "F32", "shape": [heads, n, n],
                                       "data_offsets": [offset, offset + size]}
        offset += size
        if head_dim:
            maps[-1]["head_dim"] = head_dim
            for which in ("query", "key"):
                header["%s.%s" % (which, name)] = {
                    "dtype": "F32", "shape": [heads, n, head_dim],
                    "data_offsets": [offset, offset + vectors]}
                offset += vectors
    tokens = [PLAIN[i % len(PLAIN)] for i in range(n)]
    header["__metadata__"] = {"attn.kind": "attention", "record": json.dumps(
        {"format": "attn-attention", "version": 1, "model": "gpt", "task": "text",
         "queries": tokens, "keys": tokens, "maps": maps})}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    plane = bytearray()
    for i in range(n):
        plane += struct.pack("<f", 1.0 / (i + 1)) * (i + 1) + bytes(4 * (n - 1 - i))
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for layer in range(layers):
            for _ in range(heads):
                f.write(plane)
            for which in range(2 if head_dim else 0):
                f.write(struct.pack("<%df" % (heads * n * head_dim),
                                    *(lm_vector(h, i, d, layer, which) for h in range(heads)
                                      for i in range(n) for d in range(head_dim))))
    return tokens


LONG, LONG_LAYERS, LONG_HEADS, LONG_DIM = 2048, 6, 6, 8
WEIGHTS_MAX = 1 << 19  # html_page.h: the exact weights a page holds
LOAD_BOUND_MS = 2000  # issue 18: the long record opens in under 2 s


def wait_ready(browser, url):
    """Navigates to url; the milliseconds from the navigation's start to the page's
    ready marker, by the page's own clock."""
    browser.call("Page.navigate", {"url": url})
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready = browser.js("(location.href === %s && document.documentElement &&"
                           " document.documentElement.dataset.readyMs) || null" % json.dumps(url))
        if ready is not None:
            return int(ready)
        time.sleep(0.02)
    raise Failure("the page at %s set no ready marker within %g s" % (url, TIMEOUT))


def check_overview(browser, first, held):
    """A map held only in part shows the whole of it downsampled, the held rows
    outlined, and reads a pixel out under the mouse: the mean of the weights it
    covers (in the long record, 1 / (i + 1) over rows i), to 1/255."""
    text = browser.js("document.getElementById('overview-text').textContent")
    check(text.startswith("The whole map, downsampled to 64 x 64: each pixel the mean"),
          "the long map's overview says '%s'" % text)
    browser.js("document.getElementById('overview').scrollIntoView({block: 'center'})")
    box = rect(browser, "#overview")
    scale = (box[2] - 2) / 64  # inside its border of a pixel
    band = rect(browser, "#held-band")
    check(band is not None and box[1] + 0.9 * box[3] <= band[1] <= box[1] + box[3],
          "the held rows %d to %d are not outlined at the overview's bottom: %s in %s" %
          (first, LONG - 1, band, box))
    side = LONG // 64
    for tx, ty in ((10, 40), (0, 0), (63, 5)):
        browser.mouse("mouseMoved", 2, 2)
        browser.mouse("mouseMoved", box[0] + 1 + (tx + 0.5) * scale,
                      box[1] + 1 + (ty + 0.5) * scale)
        rows, cols = range(ty * side, (ty + 1) * side), range(tx * side, (tx + 1) * side)
        mean = sum(1.0 / (i + 1) for i in rows for j in cols if j <= i) / (side * side)
        shade = math.floor(255 * mean + 0.5)
        text = readout(browser)
        check(text.startswith("Queries %d to %d, keys %d to %d (downsampled): mean about " %
                              (rows[0], rows[-1], cols[0], cols[-1])) and
              abs(float(text.split("about ")[1].split(",")[0]) - mean) <= 1 / 510 + 5e-5,
              "the overview at (%d, %d) reads '%s', not a mean of %.4f" % (tx, ty, text, mean))
        rgba = canvas_pixels(browser, "#overview", [[tx, ty]])[0]
        check(near(rgba, colour(shade / 255)), "the overview's pixel (%d, %d) is %s, not %s" %
              (tx, ty, rgba[:3], colour(shade / 255)))


def check_long_lines(browser, tokens, first):
    """The lines view of the long record draws a window of 200 keys, by default
    those just before the last held query (its nearest context), and the held
    queries; hovering one draws a line to each key of the window it attends to,
    while the readout names the strongest of all. The keys' window moves by its
    input."""
    click(browser, "input[name=view][value=lines]")
    text = browser.js("document.getElementById('lines-window-text').textContent")
    k0 = LONG - 200
    check(text.startswith("The lines view draws up to 200 tokens a side: keys %d to %d of %d, "
                          "queries %d to %d." % (k0, LONG - 1, LONG, first, LONG - 1)),
          "the long record's lines view says '%s'" % text)
    check(browser.js("document.getElementById('queries-window').hidden"),
          "the long record's 7 held queries get a window of their own")
    for k0, i in ((k0, 0), (0, LONG - 1 - first)):
        state = browser.js(LINES_STATE)
        check([k["text"] for k in state["keys"]] == tokens[k0:k0 + 200] and
              [q["text"] for q in state["queries"]] == tokens[first:],
              "the long record's lines view does not draw keys %d to %d and the held queries" %
              (k0, k0 + 199))
        hover(browser, "#lines .tok.query", i)
        state = browser.js(LINES_STATE)
        q = first + i
        drawn = sum(1 for j in range(k0, k0 + 200) if j <= q)
        check(len(state["lines"]) == drawn, "query %d draws %d lines to keys %d to %d, not %d" %
              (q, len(state["lines"]), k0, k0 + 199, drawn))
        check(state["readout"].startswith(
            "Query %d \u201c%s\u201d attends to key 0 \u201c%s\u201d %s" %
            (q, tokens[q], tokens[0], percent(1.0 / (q + 1)))),
              "query %d's readout is '%s'" % (q, state["readout"]))
        browser.js("(() => { const e = document.getElementById('keys-from'); e.value = '0';"
                   " e.dispatchEvent(new Event('change')); })()")


def check_long_neuron(browser, tokens, first, box):
    """A click on a cell of the long matrix (layer 5, head 3) picks its query for
    the neuron view, which shows the 32 keys it weighs most of the 2,048 (all
    weigh 1 / (q + 1): the first 32), their scores those of lm_vector's q and k."""
    i = 2
    q = first + i
    click_at(browser, math.ceil(box[0] + 10), math.ceil(box[1] + i))
    vector = [lm_vector(3, q, d, 5, 0) for d in range(LONG_DIM)]
    state = check_neuron(browser, vector, lambda j: [lm_vector(3, j, d, 5, 1)
                                                     for d in range(LONG_DIM)],
                         [1.0 / (q + 1)] * LONG, list(range(32)), 1 / math.sqrt(LONG_DIM), q,
                         tokens, "the long record's query %d" % q, random.Random(q))
    check("Shown: the 32 keys this query weighs most, of the %d it sees, in key order (the page "
          "holds k of those alone)" % (q + 1) in state["note"],
          "the long record's neuron view says '%s'" % state["note"])


def check_long(browser, attn, tmp):
    """The 2,048-token record of 6 x 6 heads: a page of a few MB holding its last
    rows exactly, open within LOAD_BOUND_MS, responsive, and honest about what it
    holds. Returns the load time in ms."""
    tokens = write_lm_record(os.path.join(tmp, "long.safetensors"), LONG, LONG_LAYERS,
                             LONG_HEADS, LONG_DIM)
    run = run_attn(attn, ["show", "long.safetensors", "--html", "long.html"], tmp)
    check(run.returncode == 0, "attn show --html of the long record failed (%d): %s" %
          (run.returncode, run.stderr))
    os.remove(os.path.join(tmp, "long.safetensors"))
    page_path = os.path.join(tmp, "long.html")
    size = os.path.getsize(page_path)
    check(size < 4 << 20, "the long record's page is %d bytes" % size)
    # Every head of every layer, and the rollout over the layers.
    held = WEIGHTS_MAX // ((LONG_LAYERS * LONG_HEADS + 1) * LONG)
    first = LONG - held
    for e in embedded_record(page_path)["maps"]:
        check((e["first"], e["count"], e["thumb_rows"], e["thumb_cols"]) == (first, held, 64, 64),
              "long record, map %s: rows %d+%d held, thumbnails %dx%d" %
              (e["name"], e["first"], e["count"], e["thumb_rows"], e["thumb_cols"]))

    browser.events = []
    url = "file://" + os.path.abspath(page_path)
    load_ms = wait_ready(browser, url)
    check(load_ms < LOAD_BOUND_MS, "the long record's page took %d ms to open, more than %d" %
          (load_ms, LOAD_BOUND_MS))
    held_text = browser.js("document.getElementById('held').textContent")
    check("6 maps of 6 are held exactly only for a window of query rows (the last ones)" in
          held_text and "downsampled to at most 64 values a side" in held_text,
          "the long page says '%s'" % held_text)

    start = time.monotonic()
    click(browser, "#grid .thumb:nth-of-type(%d)" % (5 * LONG_HEADS + 3 + 1))
    check(selected(browser) == ["5", "3", True], "the long page's click shows %s" %
          selected(browser))
    opened = time.monotonic() - start
    check(opened < 1.0, "opening a map of the long record took %.2f s" % opened)
    note = browser.js("document.getElementById('note').textContent")
    check("Only query rows %d to %d of %d are held exactly" % (first, LONG - 1, LONG) in note,
          "the long map's note reads '%s'" % note)
    check_overview(browser, first, held)
    browser.js("document.getElementById('matrix').scrollIntoView({block: 'center'})")
    box = rect(browser, "#matrix")
    check(box[2] == LONG and box[3] == held, "the long matrix is %s, not a pixel a weight" % box)
    for i, j in ((0, 5), (held - 1, 700), (2, 1000)):
        # Cells of a pixel: the whole pixel inside cell (i, j), as the mouse has
        # whole pixels.
        browser.mouse("mouseMoved", math.ceil(box[0] + j), math.ceil(box[1] + i))
        q = first + i
        expected = 1.0 / (q + 1)
        text = readout(browser)
        check(text.startswith("Query %d \u201c%s\u201d \u2192 key %d \u201c%s\u201d: " %
                              (q, tokens[q], j, tokens[j])) and
              abs(float(text.rsplit(": ", 1)[-1]) - expected) <= 5e-5,
              "the long matrix at (%d, %d) reads '%s', not %.4f" % (i, j, text, expected))
    check_long_neuron(browser, tokens, first, box)
    check(browser.js("document.getElementById('step').value") == str(LONG - 1) and
          browser.js("document.getElementById('step').min") == str(first),
          "the long record's slider does not cover rows %d to %d" % (first, LONG - 1))
    step = browser.js("document.getElementById('step-text').textContent")
    check(step.startswith("Step %d: \u201c%s\u201d attends to key 0 \u201c%s\u201d %s" %
                          (LONG - 1, tokens[-1], tokens[0], percent(1.0 / LONG))),
          "the long record's last step reads '%s'" % step)
    check_long_lines(browser, tokens, first)
    check_quiet(browser, url)
    return load_ms


def check_window_options(attn, record, tmp):
    """--window FIRST:COUNT holds those rows of every map (fewer where a map ends
    sooner); a window past every map, a bad one, or one without --html is refused."""
    run = run_attn(attn, ["show", "rec.json", "--html", "window.html", "--window", "2:3"], tmp)
    check(run.returncode == 0, "--window 2:3 failed (%d): %s" % (run.returncode, run.stderr))
    embedded = embedded_record(os.path.join(tmp, "window.html"))
    check(embedded["window_given"], "the page does not say its window was chosen")
    for m, e in zip(record["maps"], embedded["maps"]):
        check((e["first"], e["count"]) == (2, 3), "map %s holds rows %d+%d for --window 2:3" %
              (m["name"], e["first"], e["count"]))
        held = decode_floats(e["weights"])
        check(held == [as_float32(x) for h in m["weights"] for r in h[2:5] for x in r],
              "map %s: the window's weights are not rows 2 to 4" % m["name"])
    for args, message in ((["--html", "x.html", "--window", "100:1"], "starts past every map"),
                          (["--html", "x.html", "--window", "0:0"], "takes FIRST:COUNT"),
                          (["--html", "x.html", "--window", "3"], "takes FIRST:COUNT"),
                          (["--window", "0:1"], "give --html too")):
        run = run_attn(attn, ["show", "rec.json"] + args, tmp)
        check(run.returncode == 2 and message in run.stderr,
              "attn show %s: exit %d, '%s'" % (" ".join(args), run.returncode, run.stderr))
    # One map of 800 x 800 weights, more than a page holds: the last rows that fit
    # by default, and a window of more rows refused with the number that fits.
    write_lm_record(os.path.join(tmp, "800.safetensors"), 800, 1, 1)
    fit = WEIGHTS_MAX // 800
    run = run_attn(attn, ["show", "800.safetensors", "--html", "800.html"], tmp)
    check(run.returncode == 0,
          "the 800-token record failed (%d): %s" % (run.returncode, run.stderr))
    e = embedded_record(os.path.join(tmp, "800.html"))["maps"][0]
    check((e["first"], e["count"]) == (800 - fit, fit),
          "the 800-token record holds rows %d+%d, not its last %d" % (e["first"], e["count"], fit))
    run = run_attn(attn, ["show", "800.safetensors", "--html", "x.html", "--window",
                          "0:%d" % (fit + 1)], tmp)
    check(run.returncode == 2 and "at most %d rows fit" % fit in run.stderr,
          "a window of %d rows of 800: exit %d, '%s'" % (fit + 1, run.returncode, run.stderr))
    check(not os.path.exists(os.path.join(tmp, "x.html")), "a refused window wrote a page")


def check_window_page(browser, record, page_path):
    """The page of --window 2:3 says which rows it holds and shows only them."""
    browser.events = []
    url = "file://" + os.path.abspath(page_path)
    browser.navigate(url)
    m = record["maps"][1]
    choose(browser, "map", 1)
    choose(browser, "head", 0)
    note = browser.js("document.getElementById('note').textContent")
    check("Only query rows 2 to 4 of %d are held exactly" % m["rows"] in note,
          "the window's note reads '%s'" % note)
    click(browser, "input[name=view][value=matrix]")
    rows, cols = labels(record, m)
    check_matrix(browser, weights(m, 0)[2:5], rows[2:5], cols, "--window 2:3", first=2)
    check_quiet(browser, url)


# ---- the neuron view and the derived maps ------------------------------------------------

def gauss_vectors(rng, heads, n, dim):
    return [[[rng.gauss(0, 1) for _ in range(dim)] for _ in range(n)] for _ in range(heads)]


def make_neuron_record(rng):
    """A language model's record with q, k and gradients: causal self-attention
    of 2 heads in 2 layers at one site, from which the page derives each map's
    gradient-weighted attention, the rollout and the relevance."""
    n, heads, dim = rng.randint(8, 12), 2, rng.choice([4, 8, 16])
    tokens = [rng.choice(PLAIN) for _ in range(n)]
    tokens[rng.randrange(n)] = "</script>"
    maps = [{"name": "transformer.h.%d.attn" % layer, "site": "transformer.h.*.attn",
             "layer": layer, "kind": "self", "hard": False, "heads": heads, "rows": n, "cols": n,
             "weights": [[soft_row(rng, n, i + 1) for i in range(n)] for _ in range(heads)],
             "head_dim": dim, "q": gauss_vectors(rng, heads, n, dim),
             "k": gauss_vectors(rng, heads, n, dim),
             "gradient": [[[rng.gauss(0, 1) if j <= i else 0.0 for j in range(n)]
                           for i in range(n)] for _ in range(heads)]}
            for layer in range(2)]
    return {"format": "attn-attention", "version": 1, "model": "gpt", "task": "text",
            "queries": tokens, "keys": tokens, "maps": maps, "gradient_step": -1}


def make_rnn_record(rng, model, qk):
    """An RNN decoder's record: one cross map of one head; with qk (Luong's
    decoders) its q and k, which it scores unscaled."""
    n_keys, n_queries, dim = rng.randint(8, 14), rng.randint(5, 9), 6
    m = {"name": "decoder.attention", "layer": 0, "kind": "cross", "hard": False, "heads": 1,
         "rows": n_queries, "cols": n_keys,
         "weights": [[soft_row(rng, n_keys, n_keys) for _ in range(n_queries)]]}
    if qk:
        m.update(head_dim=dim, q=gauss_vectors(rng, 1, n_queries, dim),
                 k=gauss_vectors(rng, 1, n_keys, dim))
    return {"format": "attn-attention", "version": 1, "model": model, "task": "dates",
            "queries": [rng.choice(PLAIN) for _ in range(n_queries)],
            "keys": [rng.choice(PLAIN) for _ in range(n_keys)], "maps": [m]}


NEURON_STATE = """(() => {
  const c = document.getElementById('neuron-canvas');
  return {note: document.getElementById('neuron-note').textContent,
    query: document.getElementById('neuron-query').value,
    shown: !c.hidden, geometry: c.hidden ? null : JSON.parse(c.dataset.geometry),
    table: [...document.querySelectorAll('#neuron-table tbody tr')].map((r) =>
      [...r.cells].map((c) => c.hidden ? null : c.textContent))};
})()"""


def check_neuron(browser, q, k_of, weights_row, keys, scale, i, tokens, what, rng):
    """The neuron view of query i shows `keys` in its table, each with its score
    (q . k_j times scale, computed here from the record's float32 q and k) to
    its 6 significant digits, its recorded weight, and when every key the query
    sees is shown, the softmax of the scores; hovering the canvas reads out q_d,
    k_d and q_d k_d scale for dimensions chosen at random."""
    state = browser.js(NEURON_STATE)
    check(state["shown"] and state["query"] == str(i),
          "%s: the neuron view shows query %s, not %d: '%s'" % (what, state["query"], i,
                                                                state["note"]))
    got = [int(r[0]) for r in state["table"]]
    check(got == keys, "%s: the neuron view shows keys %s, not %s" % (what, got, keys))
    scores = [sum(reference.score_terms(q, k_of(j), scale)) for j in keys]
    soft = reference.softmax(scores)
    for row, j, score, p in zip(state["table"], keys, scores, soft):
        check(row[1] == shown(tokens[j]), "%s: key %d is shown as '%s'" % (what, j, row[1]))
        check(abs(float(row[2]) - score) <= 1e-5 * abs(score) + 1e-9,
              "%s: key %d's score reads %s, not q . k x %.6g = %.9g" %
              (what, j, row[2], scale, score))
        check(abs(float(row[3]) - as_float32(weights_row[j])) <= 5e-5 + 1e-7,
              "%s: key %d's weight reads %s, not %.6f" % (what, j, row[3], weights_row[j]))
        check(row[4] is None or abs(float(row[4]) - p) <= 5e-5 + 1e-7,
              "%s: key %d's softmax reads %s, not %.6f" % (what, j, row[4], p))
    browser.js("document.getElementById('neuron-canvas').scrollIntoView({block: 'center'})")
    box, g = rect(browser, "#neuron-canvas"), state["geometry"]
    dim = len(q)
    for _ in range(3):
        r, d = rng.randrange(len(keys)), rng.randrange(dim)
        j, y = keys[r], box[1] + g["top"] + (r + 1.5) * g["row"]
        name = "Key %d \u201c%s\u201d, dimension %d: " % (j, shown(tokens[j]), d)
        term = reference.score_terms(q, k_of(j), scale)[d]
        for x, expected in ((g["xt"], term), (g["xk"], as_float32(k_of(j)[d]))):
            browser.mouse("mouseMoved", 2, 2)
            browser.mouse("mouseMoved", box[0] + x + (d + 0.5) * g["cell"], y)
            text = readout(browser)
            value = text.split(" = ")[1].split(" ")[0] if " = " in text else "nan"
            check(text.startswith(name) and abs(float(value) - expected) <= 1e-5 * abs(expected) +
                  1e-9, "%s: hovering key %d dimension %d reads '%s', not %.9g" %
                  (what, j, d, text, expected))
        browser.mouse("mouseMoved", box[0] + g["xk"] + (d + 0.5) * g["cell"],
                      box[1] + g["top"] + 0.5 * g["row"])
        text = readout(browser)
        check(text.startswith("Query %d, dimension %d: q_d = " % (i, d)) and
              abs(float(text.rsplit(" ", 1)[1]) - as_float32(q[d])) <= 1e-5 * abs(q[d]) + 1e-9,
              "%s: hovering q's dimension %d reads '%s'" % (what, d, text))
    return state


def click_at(browser, x, y):
    browser.mouse("mouseMoved", x, y)
    browser.mouse("mousePressed", x, y)
    browser.mouse("mouseReleased", x, y)


def check_neuron_page(browser, attn, record, page_path, tmp, rng):
    """The neuron view of a language model's record, opened by real clicks: a
    thumbnail of the model view, then a matrix cell picks its query, a query
    token of the lines view another; the mean of the heads asks for one head;
    then the derived maps."""
    browser.events = []
    url = "file://" + os.path.abspath(page_path)
    browser.navigate(url)
    maps, tokens = record["maps"], record["keys"]
    k, h = 1, rng.randrange(maps[1]["heads"])
    click(browser, "#grid .thumb:nth-of-type(%d)" % (thumb_index(record, k, h) + 1))
    check(selected(browser) == [str(k), str(h), True],
          "a click on the thumbnail of map %d head %d shows %s" % (k, h, selected(browser)))
    m, n = maps[k], maps[k]["rows"]
    scale = 1 / math.sqrt(m["head_dim"])
    left, top, cell, box = matrix_geometry(browser, n, n, "neuron record")
    i = rng.randrange(n)
    click_at(browser, box[0] + left + (rng.randrange(i + 1) + 0.5) * cell,
             box[1] + top + (i + 0.5) * cell)
    what = "%s head %d query %d" % (m["name"], h, i)
    state = check_neuron(browser, m["q"][h][i], lambda j: m["k"][h][j], m["weights"][h][i],
                         list(range(i + 1)), scale, i, tokens, what, rng)
    check("1/\u221a%d" % m["head_dim"] in state["note"] and "Every key the query sees (%s)" %
          ("1 key" if i == 0 else "%d keys" % (i + 1)) in state["note"],
          "%s: the neuron view says '%s'" % (what, state["note"]))
    click(browser, "input[name=view][value=lines]")
    i = rng.randrange(n)
    click_at(browser, *centre(browser, "#lines .tok.query", i))
    check_neuron(browser, m["q"][h][i], lambda j: m["k"][h][j], m["weights"][h][i],
                 list(range(i + 1)), scale, i, tokens, "%s head %d query %d by its token" %
                 (m["name"], h, i), rng)
    choose(browser, "head", -1)
    state = browser.js(NEURON_STATE)
    check(not state["shown"] and "choose one under Head" in state["note"],
          "the mean of the heads' neuron view says '%s'" % state["note"])
    check_derived(browser, attn, record, page_path, tmp)
    check_quiet(browser, url)


def check_derived(browser, attn, record, page_path, tmp):
    """The gradient-weighted, rollout and relevance maps the page offers: the
    values it holds are those computed here (reference.py) and those attn
    analyze reports (each row's top key and its value), and its matrix, chosen
    in the map menu, draws and reads them out."""
    run = run_attn(attn, ["analyze", "--json", "neuron.json"], tmp)
    check(run.returncode == 0, "attn analyze failed (%d): %s" % (run.returncode, run.stderr))
    analysis = json.loads(run.stdout)
    maps, site = record["maps"], "transformer.h.*.attn"
    tops = {("rollout", site): analysis["rollout"][0]["top_key"],
            ("relevance", site): analysis["rollout"][0]["gradient_top_key"]}
    for e in analysis["gradient_weighted"]:
        tops["gradient-weighted", e["map"]] = e["top_key"]
    expected = {("rollout", site): reference.rollout(maps),
                ("relevance", site): reference.relevance(maps)}
    for m in maps:
        expected["gradient-weighted", m["name"]] = reference.gradient_weighted(m)
    embedded = embedded_record(page_path)["maps"]
    derived = {(e["derived"], e["name"]): (k, e) for k, e in enumerate(embedded) if "derived" in e}
    check(sorted(derived) == sorted(expected) == sorted(tops),
          "the page derives %s, attn analyze %s, not %s" % (sorted(derived), sorted(tops),
                                                            sorted(expected)))
    tokens = record["keys"]
    for key in sorted(expected):
        k, e = derived[key]
        n, ref = e["rows"], expected[key]
        held = decode_floats(e["weights"])
        rows = [held[i * n:(i + 1) * n] for i in range(n)]
        for i in range(n):
            for j in range(n):
                check(abs(rows[i][j] - ref[i][j]) <= 1e-5 * abs(ref[i][j]) + 1e-7,
                      "%s of %s: the page holds %.9g at (%d, %d), not %.9g" %
                      (key[0], key[1], rows[i][j], i, j, ref[i][j]))
            top = tops[key][i]
            check(top is None and max(rows[i]) <= 0 or top is not None and
                  rows[i][top[0]] == max(rows[i]) and
                  abs(rows[i][top[0]] - top[1]) <= 5e-6 * abs(top[1]) + 1e-12,
                  "%s of %s, row %d: attn analyze's top key is %s, the page's row %s" %
                  (key[0], key[1], i, top, rows[i]))
        choose(browser, "map", k)
        click(browser, "input[name=view][value=matrix]")
        what = "%s of %s" % key
        note = browser.js("document.getElementById('note').textContent")
        check("as attn analyze computes it" in note, "%s: the note reads '%s'" % (what, note))
        check_matrix_cells(browser, ref, tokens, tokens, what, share=key[0] == "rollout")
        state = browser.js(NEURON_STATE)
        check(not state["shown"] and "choose one of the attention weights' maps" in state["note"],
              "%s: the neuron view says '%s'" % (what, state["note"]))


def check_rnn_pages(browser, attn, tmp, rng):
    """Luong's decoder: the neuron view of its one head, every key, scores
    unscaled; query picked by a click on a matrix cell. Bahdanau's: not
    available, and why."""
    record = make_rnn_record(rng, "lstm-luong-general", True)
    browser.events = []
    url = "file://" + os.path.abspath(show_page(attn, record, "luong", tmp))
    browser.navigate(url)
    m = record["maps"][0]
    rows, cols = labels(record, m)
    last = m["rows"] - 1
    state = check_neuron(browser, m["q"][0][last], lambda j: m["k"][0][j], m["weights"][0][last],
                         list(range(m["cols"])), 1.0, last, cols, "Luong, the last query", rng)
    check("unscaled (Luong's score)" in state["note"], "Luong's neuron view says '%s'" %
          state["note"])
    click(browser, "input[name=view][value=matrix]")
    left, top, cell, box = matrix_geometry(browser, len(rows), len(cols), "Luong")
    i = rng.randrange(m["rows"])
    click_at(browser, box[0] + left + 0.5 * cell, box[1] + top + (i + 0.5) * cell)
    check_neuron(browser, m["q"][0][i], lambda j: m["k"][0][j], m["weights"][0][i],
                 list(range(m["cols"])), 1.0, i, cols, "Luong, query %d" % i, rng)
    check_quiet(browser, url)

    browser.navigate("file://" + os.path.abspath(
        show_page(attn, make_rnn_record(rng, "gru-bahdanau", False), "bahdanau", tmp)))
    state = browser.js(NEURON_STATE)
    check(not state["shown"] and state["note"].startswith(
        "Not available for this map: Bahdanau's additive attention"),
          "Bahdanau's neuron view says '%s'" % state["note"])


def check_qk_budget(attn, tmp, rng):
    """q and k past what a page holds (HTML_QK_MAX values): a record of 300
    tokens with q and k of 1,500 dimensions. Holding rows 0 to 59 (--window
    0:60), each head keeps k of the keys among each held row's 4 largest
    weights (ties to the first key; 524,288 / (60 x 1,500) - 1 = 4), with their
    exact values; holding every row, not even q fits, and the map says so."""
    n, dim, rows, top = 300, 1500, 60, 4
    weights = [[soft_row(rng, n, i + 1) for i in range(n)]]
    m = {"name": "transformer.h.0.attn", "layer": 0, "kind": "self", "hard": False,
         "heads": 1, "rows": n, "cols": n, "weights": weights, "head_dim": dim,
         "q": [[[float((i + d) % 7 - 3) for d in range(dim)] for i in range(n)]],
         "k": [[[float((i * 3 + d) % 5 - 2) for d in range(dim)] for i in range(n)]]}
    record = {"format": "attn-attention", "version": 1, "model": "gpt", "task": "text",
              "queries": ["a"] * n, "keys": ["a"] * n, "maps": [m]}
    e = embedded_record(show_page(attn, record, "qk", tmp))["maps"][0]
    check(e.get("qk_not_held") and "q" not in e,
          "q and k of %d dimensions for every row: the page holds %s" % (dim, sorted(e)))
    run = run_attn(attn, ["show", "qk.json", "--html", "qk.html", "--window", "0:%d" % rows], tmp)
    check(run.returncode == 0, "--window 0:%d failed (%d): %s" % (rows, run.returncode, run.stderr))
    e = embedded_record(os.path.join(tmp, "qk.html"))["maps"][0]
    held = set()
    for row in weights[0][:rows]:
        held.update(sorted(range(n), key=lambda j: (-as_float32(row[j]), j))[:top])
    held = sorted(held)
    check(e["k_keys"] == [held], "q and k of %d dimensions: the page holds k of keys %s, not %s" %
          (dim, e["k_keys"], held))
    check(decode_floats(e["k"]) == [m["k"][0][j][d] for j in held for d in range(dim)] and
          decode_floats(e["q"]) == [x for q in m["q"][0][:rows] for x in q],
          "q and k of %d dimensions: the page's values are not the record's" % dim)


# ---- the test -------------------------------------------------------------------------

def show_page(attn, record, name, tmp):
    """Writes record as name.json in tmp and its page name.html; the page's path."""
    with open(os.path.join(tmp, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(record, f)
    run = run_attn(attn, ["show", name + ".json", "--html", name + ".html"], tmp)
    check(run.returncode == 0, "attn show --html of the record %s failed (%d): %s" %
          (name, run.returncode, run.stderr))
    return os.path.join(tmp, name + ".html")


def run_attn(attn, args, tmp):
    return subprocess.run([os.path.abspath(attn)] + args, cwd=tmp, capture_output=True,
                          text=True, timeout=60)


def decode_floats(text):
    data = base64.b64decode(text)
    return list(struct.unpack("<%df" % (len(data) // 4), data))


def embedded_record(page_path):
    with open(page_path, encoding="utf-8") as f:
        page = f.read()
    check(page.count("</script>") == page.count("<script") == 3,
          "the page holds %d '</script>' for %d '<script': a token ended its element" %
          (page.count("</script>"), page.count("<script")))
    check(re.search(r"<(?:link|img|iframe|object|embed|audio|video|source)\b|\bsrc=|@import|url\(",
                    page) is None, "the page refers to another resource")
    data = re.search(r'<script type="application/json" id="record">(.*?)</script>', page, re.S)
    check(data is not None, "no record element in the page")
    return json.loads(data.group(1))


def check_file(record, page_path):
    """The page holds every weight of a short record exactly (float32), and each
    thumbnail's shades are its weights over the record's largest, in 1/255."""
    embedded = embedded_record(page_path)
    check(embedded["keys"] == record["keys"] and embedded["queries"] == record["queries"],
          "the embedded tokens differ from the record's")
    vmax = as_float32(max(x for m in record["maps"] for h in m["weights"] for r in h for x in r))
    check(embedded["vmax"] == vmax, "the page's vmax %s is not %s" % (embedded["vmax"], vmax))
    for m, e in zip(record["maps"], embedded["maps"]):
        check((e["first"], e["count"]) == (0, m["rows"]),
              "map %s: rows %d+%d held, not all" % (m["name"], e["first"], e["count"]))
        flat = [x for h in m["weights"] for r in h for x in r]
        held = decode_floats(e["weights"])
        check(held == [as_float32(x) for x in flat],
              "map %s: the embedded weights are not the record's" % m["name"])
        check((e["thumb_rows"], e["thumb_cols"]) == (m["rows"], m["cols"]),
              "map %s: a short map's thumbnail is downsampled" % m["name"])
        shades = base64.b64decode(e["thumbs"])
        check(all(abs(a - 255 * as_float32(x) / vmax) <= 0.5 + 1e-6 for a, x in zip(shades, flat))
              and len(shades) == len(flat),
              "map %s: the thumbnail's shades are not its weights" % m["name"])


def check_page(browser, record, page_path, tmp, rng):
    browser.open_page()
    url = "file://" + os.path.abspath(page_path)
    browser.navigate(url)
    maps = record["maps"]

    # The first map, the only head; no line before a hover.
    m = maps[0]
    rows, cols = labels(record, m)
    state = browser.js(LINES_STATE)
    check(state["visible"], "the lines view is not shown first")
    check(state["lines"] == [], "%d lines are drawn before any hover" % len(state["lines"]))
    check_tokens(state, rows, cols, m["name"])
    options = browser.js("[...document.querySelectorAll('#map option')].map((o) => o.textContent)")
    check(len(options) == len(maps) and all(mm["name"] in o for mm, o in zip(maps, options)),
          "the map choices %s are not the record's maps" % options)
    before = screenshot(browser, os.path.join(tmp, "1-lines.png"))

    w = weights(m, 0)
    i = rng.randrange(len(rows))
    check_query_lines(browser, w, rows, cols, i, m["name"])
    # Between the columns, where only lines are drawn.
    gap = browser.js("(() => { const r = document.getElementById('lines').getBoundingClientRect();"
                     " const l = document.querySelector('#lines line');"
                     " return [r.x + +l.getAttribute('x1') + 2, r.y,"
                     " r.x + +l.getAttribute('x2') - 2, r.bottom]; })()")
    tinted = newly_tinted(before, screenshot(browser, os.path.join(tmp, "2-hover.png")), gap)
    check(tinted > 500, "the screenshot after hovering query %d shows no lines (%d pixels "
          "newly drawn in the accent colour)" % (i, tinted))
    browser.mouse("mouseMoved", 2, 2)
    check(browser.js(LINES_STATE)["lines"] == [], "the lines stay after the mouse leaves")

    # A key: a line from each query that attends to it.
    j = rng.randrange(len(cols))
    hover(browser, "#lines .tok.key", j)
    state = browser.js(LINES_STATE)
    column = [w[q][j] for q in range(len(rows))]
    check(len(state["lines"]) == sum(c > 0 for c in column),
          "key %d: %d lines for %d queries" % (j, len(state["lines"]), sum(c > 0 for c in column)))
    query_at = {q["y"]: n for n, q in enumerate(state["queries"])}
    strongest = max(state["lines"], key=lambda l: l["width"])
    chosen = query_at.get(strongest["y2"])
    check(chosen is not None and column[chosen] >= max(column) - WIDTH_RESOLUTION and
          strongest["y1"] == state["keys"][j]["y"],
          "key %d: the strongest line comes from query %s, not %d" %
          (j, chosen, argmax(column)))

    # The keyboard: focusing a token draws its lines as hovering does.
    browser.mouse("mouseMoved", 2, 2)
    browser.js("document.querySelectorAll('#lines .tok.key')[%d].focus()" % j)
    check(len(browser.js(LINES_STATE)["lines"]) == sum(c > 0 for c in column),
          "focusing key %d does not draw its lines" % j)
    browser.js("document.activeElement.blur()")
    check(browser.js(LINES_STATE)["lines"] == [], "the lines stay after the focus leaves")

    # The encoder's self-attention: its heads and their mean.
    choose(browser, "map", 1)
    m = maps[1]
    rows, cols = labels(record, m)
    heads = browser.js("[...document.querySelectorAll('#head option')].map((o) => o.value)")
    check(heads == ["-1"] + [str(h) for h in range(m["heads"])],
          "map %s offers the heads %s" % (m["name"], heads))
    state = browser.js(NEURON_STATE)
    check(not state["shown"] and "This record holds no q and k. Record them with --qk: attn "
          "translate --model MODEL --attention REC.json --qk" in state["note"],
          "a record without q and k: the neuron view says '%s'" % state["note"])
    for head in (2, -1):
        choose(browser, "head", head)
        w = weights(m, head)
        check_query_lines(browser, w, rows, cols, rng.randrange(len(rows)),
                          "%s head %d" % (m["name"], head))

    # The matrix of head 1, by a click on the view's radio button.
    choose(browser, "head", 1)
    click(browser, "input[name=view][value=matrix]")
    check(not browser.js(LINES_STATE)["visible"], "the lines view stays after choosing the matrix")
    w = weights(m, 1)
    geometry = check_matrix(browser, w, rows, cols, "%s head 1" % m["name"])
    i, j = rng.randrange(len(rows)), rng.randrange(len(cols))
    check_cell_tip(browser, geometry, w, i, j, "%s head 1" % m["name"])
    check_cell_keys(browser, geometry, w, rows, cols, "%s head 1" % m["name"])
    screenshot(browser, os.path.join(tmp, "3-matrix.png"))
    check_matrix_per_row(browser, w, rows, cols, "%s head 1" % m["name"])

    # The decoder's causal self-attention over the queries: zeros above the diagonal.
    choose(browser, "map", 2)
    m = maps[2]
    rows, cols = labels(record, m)
    w = weights(m, -1)
    check_matrix(browser, w, rows, cols, "%s mean" % m["name"])

    # Hard attention: the chosen cells and lines only.
    choose(browser, "map", 3)
    m = maps[3]
    rows, cols = labels(record, m)
    choose(browser, "head", 1)
    w = weights(m, 1)
    check_matrix(browser, w, rows, cols, "%s head 1" % m["name"])
    click(browser, "input[name=view][value=lines]")
    for i in range(len(rows)):
        state = check_query_lines(browser, w, rows, cols, i, "%s head 1" % m["name"])
        check(len(state["lines"]) == 1,
              "hard map: query %d has %d lines" % (i, len(state["lines"])))
    screenshot(browser, os.path.join(tmp, "4-hard.png"))

    check(browser.js("document.getElementById('steps').hidden"),
          "a record with cross-attention has a step slider")
    check_model_view(browser, record, tmp, rng)
    check_quiet(browser, url)


def check_quiet(browser, url):
    """Nothing but the page itself was asked for, and nothing went wrong, since the
    events were last cleared."""
    requests = [e["params"]["request"]["url"] for e in browser.events
                if e.get("method") == "Network.requestWillBeSent"]
    check(requests == [url], "the page made requests: %s" % requests)
    errors = [e["params"] for e in browser.events
              if e.get("method") == "Runtime.exceptionThrown" or
              (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error") or
              (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")]
    check(errors == [], "the page reported errors: %s" % errors)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("attn", help="the attn binary")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--seed", type=int,
                        default=int(os.environ.get("ATTN_TEST_SEED", random.randrange(1 << 31))))
    parser.add_argument("--keep", metavar="DIR", help="copy the page and screenshots to DIR")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    record = make_record(rng)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="attn-page-") as tmp:
        try:
            with open(os.path.join(tmp, "rec.json"), "w", encoding="utf-8") as f:
                json.dump(record, f)
            run = run_attn(args.attn, ["show", "rec.json", "--html", "page.html"], tmp)
            check(run.returncode == 0, "attn show --html failed (%d): %s" %
                  (run.returncode, run.stderr))
            check_file(record, os.path.join(tmp, "page.html"))
            run = run_attn(args.attn, ["show", "rec.json", "--html", "no/such/dir/page.html"], tmp)
            check(run.returncode == 2 and "no/such/dir/page.html" in run.stderr and
                  "does not exist" in run.stderr,
                  "a page whose folder does not exist: exit %d, '%s'" % (run.returncode, run.stderr))
            check(sorted(os.listdir(tmp)) == ["page.html", "rec.json"],
                  "files left behind: %s" % os.listdir(tmp))
            check_window_options(args.attn, record, tmp)
            check_qk_budget(args.attn, tmp, rng)
            neuron_record = make_neuron_record(rng)
            show_page(args.attn, neuron_record, "neuron", tmp)
            lm_record = make_lm_record(rng)
            show_page(args.attn, lm_record, "lm", tmp)

            if not os.access(args.chromium, os.X_OK):
                print("check_page: skipped, no Chromium at %s (apt-get install chromium)" %
                      args.chromium)
                return SKIP
            profile = os.path.join(tmp, "profile")
            os.mkdir(profile)
            with open(os.path.join(tmp, "chromium.log"), "w") as log:
                browser = Browser(args.chromium, profile, log)
                try:
                    check_page(browser, record, os.path.join(tmp, "page.html"), tmp, rng)
                    check_window_page(browser, record, os.path.join(tmp, "window.html"))
                    check_slider(browser, lm_record, os.path.join(tmp, "lm.html"), rng)
                    check_neuron_page(browser, args.attn, neuron_record,
                                      os.path.join(tmp, "neuron.html"), tmp, rng)
                    check_rnn_pages(browser, args.attn, tmp, rng)
                    load_ms = check_long(browser, args.attn, tmp)
                finally:
                    browser.close()
        except Failure as e:
            print("check_page: FAILED (seed %d; ATTN_TEST_SEED=%d repeats it): %s" %
                  (args.seed, args.seed, e))
            return 1
        finally:
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                for name in os.listdir(tmp):
                    if name.endswith((".png", ".html", ".json", ".log")):
                        shutil.copy(os.path.join(tmp, name), args.keep)
    print("check_page: ok (seed %d, %.1f s): page, screenshots, lines, heads, matrix canvas, "
          "per-row scale, hard attention, model view, --window, step slider, neuron view (q . k "
          "of GPT, Luong and long records), gradient-weighted, rollout and relevance maps "
          "against attn analyze, no requests; the "
          "2,048-token record of 6 x 6 heads opened in %d ms (bound %d)" %
          (args.seed, time.monotonic() - start, load_ms, LOAD_BOUND_MS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
