#!/usr/bin/python3
"""attn show --html, end to end: a record with known weights (fresh random ones each
run, tokens that try to break the page such as "</script>") becomes a page through
the real attn binary, and Debian's headless Chromium opens it. Driven through the
DevTools protocol over --remote-debugging-pipe, the test takes screenshots, moves
the mouse over tokens and cells, changes the map, the head and the view, and reads
what is drawn: the lines, their ends and widths, the weights beside the tokens, the
matrix cells and their colours (on one scale, and each row on its own), the
tooltip. It also checks that the page asked for nothing but itself and threw no
error. Python's standard library only.

    check_page.py PATH_TO_ATTN [--chromium PATH] [--seed N] [--keep DIR]

Exit status 0 when every check passes, 1 when one fails, 77 (skipped) when Chromium
is not installed. ATTN_TEST_SEED repeats a run.
"""
import argparse
import base64
import fcntl
import json
import math
import os
import random
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

SKIP = 77
TIMEOUT = 20.0  # seconds for any one reply of the browser
WIDTH, HEIGHT = 1280, 1000

TRICKY = ["</script>", "<!--<script>", "<!--", "\"", "'", "&amp;", " ", "\\", "\u00e9",
          "\u2028", "\t", "<b>", "\x01", "a\nb", ""]
PLAIN = list("0123456789-ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


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


def newly_tinted(before, after, box):
    """Pixels of box (x0, y0, x1, y1) that changed from one screenshot to the next
    and now have the page's orange accent, however faint."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return sum(before[y][x] != after[y][x] and after[y][x][0] - after[y][x][2] > 25
               for y in range(max(y0, 0), min(y1, HEIGHT))
               for x in range(max(x0, 0), min(x1, WIDTH)))


# ---- Chromium over the DevTools pipe ----------------------------------------------

class Browser:
    def __init__(self, chromium, profile, log):
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # Out of the way of fds 3 and 4, which the child takes as the pipe.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 32)
                for fd in (to_chrome_r, to_chrome_w, from_chrome_r, from_chrome_w)]
        for fd in (to_chrome_r, to_chrome_w, from_chrome_r, from_chrome_w):
            os.close(fd)
        child_in, self.out, self.inp, child_out = high

        def pipe_fds():
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--hide-scrollbars",
             "--remote-debugging-pipe", "--user-data-dir=" + profile,
             "--window-size=%d,%d" % (WIDTH, HEIGHT), "about:blank"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(3, 4),
            preexec_fn=pipe_fds)
        os.close(child_in)
        os.close(child_out)
        self.buffer = b""
        self.next_id = 0
        self.events = []
        self.session = None

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except (Failure, OSError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.out)
        os.close(self.inp)

    def read_message(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            check(left > 0, "Chromium did not answer within %g s" % TIMEOUT)
            ready, _, _ = select.select([self.inp], [], [], left)
            if ready:
                chunk = os.read(self.inp, 1 << 20)
                check(chunk != b"", "Chromium closed the DevTools pipe (exit status %s)" %
                      self.proc.poll())
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=True):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self.out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self.read_message(deadline)
            if reply.get("id") == self.next_id:
                check("error" not in reply, "%s failed: %s" % (method, reply.get("error")))
                return reply["result"]
            self.events.append(reply)

    def wait_event(self, method):
        deadline = time.monotonic() + TIMEOUT
        while True:
            for e in self.events:
                if e.get("method") == method:
                    return e
            self.events.append(self.read_message(deadline))

    def open_page(self):
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(domain + ".enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})

    def navigate(self, url):
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.call("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def js(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        check("exceptionDetails" not in result,
              "the page's script failed on %s: %s" % (expression, result.get("exceptionDetails")))
        return result["result"].get("value")

    def mouse(self, kind, x, y):
        params = {"type": kind, "x": x, "y": y}
        if kind != "mouseMoved":
            params.update(button="left", clickCount=1)
        self.call("Input.dispatchMouseEvent", params)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return inspect_png(path)


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
          abs(box[2] - (left + n_cols * cell)) < 1e-6 and abs(box[3] - (top + n_rows * cell)) < 1e-6,
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


def check_matrix_cells(browser, w, rows, cols, what, per_row=False):
    """The matrix canvas, cell by cell: each cell's colour (read at its corner,
    away from the number) is its weight's on the scale (the largest weight shown,
    or per_row its row's largest), and a cell of at least 0.5 % shows text in its
    middle, one below it none (when the cells are large enough for numbers).
    Hovering reads out every row's and every column's tokens. Returns the
    geometry."""
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
    numbered = cell >= 24
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
        check(("query %d \u201c%s\u201d" % (i, shown(rows[i]))).lower() in text.lower() and
              "key %d \u201c%s\u201d" % (j, shown(cols[j])) in text and
              abs(float(text.rsplit(": ", 1)[-1]) - w[i][j]) <= 5e-5 + 1e-7,
              "%s: hovering cell (%d, %d) of weight %.6f reads '%s'" % (what, i, j, w[i][j], text))
    for j in range(len(cols)):
        i = (j * 5) % len(rows)
        hover_cell(browser, geometry, i, j)
        check("key %d \u201c%s\u201d" % (j, shown(cols[j])) in readout(browser),
              "%s: hovering column %d reads '%s'" % (what, j, readout(browser)))
    return geometry


def check_matrix(browser, w, rows, cols, what):
    """check_matrix_cells on one colour scale, whose top reads the largest weight."""
    geometry = check_matrix_cells(browser, w, rows, cols, what)
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


def check_cell_tip(browser, geometry, w, i, j, what):
    hover_cell(browser, geometry, i, j)
    tip = browser.js("(() => { const t = document.getElementById('tip');"
                     " return t.hidden ? null : t.textContent; })()")
    check(tip is not None, "%s: hovering cell (%d, %d) shows no value" % (what, i, j))
    check(abs(float(tip.split()[0]) - w[i][j]) <= 1e-4,
          "%s: cell (%d, %d) shows '%s' for weight %.6f" % (what, i, j, tip, w[i][j]))


# ---- the test -------------------------------------------------------------------------

def run_attn(attn, args, tmp):
    return subprocess.run([os.path.abspath(attn)] + args, cwd=tmp, capture_output=True,
                          text=True, timeout=60)


def decode_floats(text):
    data = base64.b64decode(text)
    return list(struct.unpack("<%df" % (len(data) // 4), data))


def as_float32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def embedded_record(page_path):
    with open(page_path, encoding="utf-8") as f:
        page = f.read()
    check(page.count("</script>") == 2,
          "the page holds %d '</script>': a token ended its element" % page.count("</script>"))
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
    before = browser.screenshot(os.path.join(tmp, "1-lines.png"))

    w = weights(m, 0)
    i = rng.randrange(len(rows))
    check_query_lines(browser, w, rows, cols, i, m["name"])
    # Between the columns, where only lines are drawn.
    gap = browser.js("(() => { const r = document.getElementById('lines').getBoundingClientRect();"
                     " const l = document.querySelector('#lines line');"
                     " return [r.x + +l.getAttribute('x1') + 2, r.y,"
                     " r.x + +l.getAttribute('x2') - 2, r.bottom]; })()")
    tinted = newly_tinted(before, browser.screenshot(os.path.join(tmp, "2-hover.png")), gap)
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
    browser.screenshot(os.path.join(tmp, "3-matrix.png"))
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
    browser.screenshot(os.path.join(tmp, "4-hard.png"))

    # Nothing but the page itself was asked for, and nothing went wrong.
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
    print("check_page: ok (seed %d, %.1f s): page, screenshots, lines, heads, matrix, per-row "
          "scale, hard attention, no requests" % (args.seed, time.monotonic() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
