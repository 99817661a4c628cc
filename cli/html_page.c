/* attn show --html: the interactive attention page (html_page.h).
 *
 * The page is the document up to the record's <script type="application/json">
 * element, the record as JSON, and the script that draws it. The JSON follows
 * the record schema of attn/capture.h, with two differences: weights are
 * rounded to 6 decimals (finer than the page shows, and shorter than the
 * file's 9 significant digits), and each map names the token
 * lists of its rows and columns ("row_tokens", "col_tokens": "queries" or
 * "keys"), so the script need not know which lists label which maps. Every "<"
 * in the JSON is written as \u003c, so no token can end the element early
 * ("</script>") or open a comment ("<!--"). */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/io.h"
#include "cli.h"
#include "html_page.h"

/* The document up to the opening tag of the record's element. The content
 * security policy lets the page load nothing at all from anywhere. */
static const char page_head[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta http-equiv=\"Content-Security-Policy\"\n"
    "      content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
    "<title>attn: what the model attends to</title>\n"
    "<style>\n"
    ":root {\n"
    "  --ink: #1b1b1b;\n"
    "  --muted: #595959;\n"
    "  --accent: #b43c0c;\n"
    "  --soft: #fbe3d4;\n"
    "  --rule: #cfcfcf;\n"
    "}\n"
    "body {\n"
    "  font: 15px/1.45 system-ui, sans-serif;\n"
    "  color: var(--ink);\n"
    "  background: #fff;\n"
    "  margin: 1.25rem 1.5rem;\n"
    "}\n"
    "h1 { font-size: 1.3rem; margin: 0 0 .2rem; }\n"
    "#summary { color: var(--muted); margin: 0 0 1rem; }\n"
    "#controls {\n"
    "  display: flex;\n"
    "  flex-wrap: wrap;\n"
    "  gap: .75rem 1.5rem;\n"
    "  align-items: flex-end;\n"
    "  margin-bottom: .6rem;\n"
    "}\n"
    "#controls > label {\n"
    "  display: flex;\n"
    "  flex-direction: column;\n"
    "  font-size: .85rem;\n"
    "  color: var(--muted);\n"
    "}\n"
    "select { font: inherit; color: var(--ink); padding: .15rem; max-width: 40rem; }\n"
    "fieldset {\n"
    "  border: 1px solid var(--rule);\n"
    "  border-radius: 4px;\n"
    "  padding: .1rem .6rem .3rem;\n"
    "  margin: 0;\n"
    "}\n"
    "legend { font-size: .85rem; color: var(--muted); padding: 0 .2rem; }\n"
    "fieldset label { margin-right: .9rem; cursor: pointer; }\n"
    "#note { color: var(--muted); margin: 0 0 .4rem; }\n"
    "#readout {\n"
    "  min-height: 2.9em;\n"
    "  margin: .2rem 0 .8rem;\n"
    "  padding: .35rem .6rem;\n"
    "  background: #f5f5f5;\n"
    "  border-left: 3px solid var(--accent);\n"
    "}\n"
    ".view { overflow: auto; }\n"
    "#lines text {\n"
    "  font: 15px ui-monospace, \"DejaVu Sans Mono\", monospace;\n"
    "  fill: var(--ink);\n"
    "  dominant-baseline: central;\n"
    "  white-space: pre;\n"
    "}\n"
    "#lines text.side { font: .8rem system-ui, sans-serif; fill: var(--muted); }\n"
    "#lines text.wt { font: 12px system-ui, sans-serif; fill: var(--accent); }\n"
    "#lines .tok { outline: none; }\n"
    "#lines .tok rect { fill: transparent; }\n"
    "#lines .tok.on rect { fill: var(--soft); }\n"
    "#lines .tok.to rect { fill: #fdf1ea; }\n"
    "#lines .tok:focus-visible rect { stroke: #1d4f91; stroke-width: 2; }\n"
    "#lines line { stroke: var(--accent); stroke-linecap: round; }\n"
    "#scale {\n"
    "  display: flex;\n"
    "  align-items: center;\n"
    "  gap: .5rem;\n"
    "  font-size: .8rem;\n"
    "  color: var(--muted);\n"
    "  margin-bottom: .4rem;\n"
    "}\n"
    "#bar { display: inline-block; width: 12rem; height: .8rem; border: 1px solid var(--rule); }\n"
    "#matrix {\n"
    "  border-collapse: collapse;\n"
    "  font: 11px ui-monospace, \"DejaVu Sans Mono\", monospace;\n"
    "}\n"
    "#matrix caption {\n"
    "  position: absolute;\n"
    "  width: 1px;\n"
    "  height: 1px;\n"
    "  overflow: hidden;\n"
    "  clip-path: inset(50%);\n"
    "}\n"
    "#matrix th { font-weight: normal; padding: 1px 4px; white-space: pre; }\n"
    "#matrix thead th { writing-mode: vertical-rl; vertical-align: bottom; text-align: end; }\n"
    "#matrix.upright thead th { writing-mode: horizontal-tb; text-align: center; }\n"
    "#matrix tbody th { text-align: right; }\n"
    "#matrix th.on { background: var(--soft); }\n"
    "#matrix td {\n"
    "  min-width: 2.2em;\n"
    "  height: 1.7em;\n"
    "  padding: 0 2px;\n"
    "  text-align: center;\n"
    "  border: 1px solid #fff;\n"
    "}\n"
    "#matrix td.dark { color: #fff; }\n"
    "#matrix td.on { outline: 2px solid var(--accent); outline-offset: -2px; }\n"
    "#matrix.dense td { min-width: 9px; width: 9px; height: 9px; border: 0; font-size: 0; }\n"
    "#matrix.dense th { font-size: 9px; line-height: 9px; padding: 0 2px; }\n"
    "#tip {\n"
    "  position: fixed;\n"
    "  pointer-events: none;\n"
    "  background: #222;\n"
    "  color: #fff;\n"
    "  padding: .2rem .45rem;\n"
    "  border-radius: 3px;\n"
    "  font-size: .8rem;\n"
    "  white-space: pre;\n"
    "}\n"
    "[hidden] { display: none !important; }\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "<h1>What the model attends to</h1>\n"
    "<p id=\"summary\"></p>\n"
    "<noscript><p>This page needs JavaScript to draw the attention.</p></noscript>\n"
    "<div id=\"controls\">\n"
    "<label>Attention map <select id=\"map\"></select></label>\n"
    "<label>Head <select id=\"head\"></select></label>\n"
    "<fieldset><legend>View</legend>\n"
    "<label><input type=\"radio\" name=\"view\" value=\"lines\" checked> Lines</label>\n"
    "<label><input type=\"radio\" name=\"view\" value=\"matrix\"> Matrix</label>\n"
    "</fieldset>\n"
    "</div>\n"
    "<p id=\"note\"></p>\n"
    "<p id=\"readout\" aria-live=\"polite\"></p>\n"
    "<div id=\"lines-view\" class=\"view\">\n"
    "<svg id=\"lines\" role=\"group\"\n"
    "     aria-label=\"keys and queries; focus or hover a token to draw its attention\"></svg>\n"
    "</div>\n"
    "<div id=\"matrix-view\" class=\"view\" hidden>\n"
    "<div id=\"scale\" aria-hidden=\"true\">\n"
    "<span>0%</span><span id=\"bar\"></span><span id=\"top\">100%</span>\n"
    "<span>&middot; a row per query (attending), a column per key (attended to)</span>\n"
    "</div>\n"
    "<table id=\"matrix\"></table>\n"
    "</div>\n"
    "<div id=\"tip\" role=\"tooltip\" hidden></div>\n"
    "<script type=\"application/json\" id=\"record\">\n";

/* The end of the record's element, the script and the end of the document. */
static const char page_tail[] =
    "</script>\n"
    "<script>\n"
    "'use strict';\n"
    "(function () {\n"
    "  const rec = JSON.parse(document.getElementById('record').textContent);\n"
    "  const $ = (id) => document.getElementById(id);\n"
    "  const SVG = 'http://www.w3.org/2000/svg';\n"
    "  const mapSel = $('map'), headSel = $('head'), svg = $('lines'), table = $('matrix');\n"
    "  const readout = $('readout'), note = $('note'), tip = $('tip');\n"
    "  /* Blues, light to dark: the matrix colour from weight 0 to the largest shown. */\n"
    "  const STOPS = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181],\n"
    "    [8, 48, 107]];\n"
    "  const rgb = (c) => 'rgb(' + c.join(',') + ')';\n"
    "  const ROW = 24, GAP = 240, PAD = 8, LABEL = 44, TOP = 28;\n"
    "  /* Up to this many keys the matrix prints each weight in its cell. */\n"
    "  const NUMBERED_COLS = 40;\n"
    "  let cur = null; /* the map, head, weights (rows x cols, float64) and labels shown */\n"
    "\n"
    "  /* A token as text that shows its blanks: a space as U+2423, a control\n"
    "   * character or line break as its escape (\\n, \\t, \\x01, \\u2028). */\n"
    "  const ESCAPES = { '\\n': '\\\\n', '\\r': '\\\\r', '\\t': '\\\\t' };\n"
    "  function shown(t) {\n"
    "    if (t === '') return '\\u2205';\n"
    "    return t.replace(/[\\x00-\\x20\\x7f-\\x9f\\u2028\\u2029]/g, (c) => c === ' ' ? '\\u2423'\n"
    "      : ESCAPES[c] || (c < '\\u0100' ? '\\\\x' : '\\\\u') +\n"
    "        c.charCodeAt(0).toString(16).padStart(c < '\\u0100' ? 2 : 4, '0'));\n"
    "  }\n"
    "  function quoted(t) { return '\\u201c' + shown(t) + '\\u201d'; }\n"
    "  function pct(w) { return Math.round(w * 100) + '%'; }\n"
    "  function colour(w) {\n"
    "    const x = Math.min(1, Math.max(0, w)) * (STOPS.length - 1);\n"
    "    const i = Math.min(STOPS.length - 2, Math.floor(x)), f = x - i;\n"
    "    return rgb(STOPS[i].map((a, k) => Math.round(a + (STOPS[i + 1][k] - a) * f)));\n"
    "  }\n"
    "  function svgEl(name, attrs) {\n"
    "    const e = document.createElementNS(SVG, name);\n"
    "    for (const k in attrs) e.setAttribute(k, attrs[k]);\n"
    "    return e;\n"
    "  }\n"
    "  function plural(n, word) { return n + ' ' + word + (n === 1 ? '' : 's'); }\n"
    "\n"
    "  /* The weights of one head, or their mean over the heads (head < 0). */\n"
    "  function weightsOf(m, head) {\n"
    "    const w = new Float64Array(m.rows * m.cols);\n"
    "    const first = head < 0 ? 0 : head, last = head < 0 ? m.heads - 1 : head;\n"
    "    const scale = 1 / (last - first + 1);\n"
    "    for (let h = first; h <= last; h++)\n"
    "      for (let i = 0; i < m.rows; i++) {\n"
    "        const row = m.weights[h][i];\n"
    "        for (let j = 0; j < m.cols; j++) w[i * m.cols + j] += row[j] * scale;\n"
    "      }\n"
    "    return w;\n"
    "  }\n"
    "\n"
    "  function describe(m) {\n"
    "    return m.name + ' \\u2014 layer ' + m.layer + ', ' + m.kind + (m.hard ? ', hard' : '') +\n"
    "      ', ' + plural(m.heads, 'head');\n"
    "  }\n"
    "\n"
    "  function fillHeads(m) {\n"
    "    headSel.length = 0;\n"
    "    if (m.heads > 1) headSel.add(new Option('mean of ' + m.heads + ' heads', '-1'));\n"
    "    for (let h = 0; h < m.heads; h++) headSel.add(new Option('head ' + h, String(h)));\n"
    "    headSel.disabled = m.heads === 1;\n"
    "  }\n"
    "\n"
    "  function view() { return document.querySelector('input[name=view]:checked').value; }\n"
    "\n"
    "  function select() {\n"
    "    const m = rec.maps[+mapSel.value];\n"
    "    const head = +headSel.value;\n"
    "    const w = weightsOf(m, head);\n"
    "    cur = { map: m, head: head, w: w, vmax: w.reduce((a, b) => Math.max(a, b), 0) || 1,\n"
    "      rows: rec[m.row_tokens], cols: rec[m.col_tokens] };\n"
    "    let text = m.kind === 'cross'\n"
    "      ? 'Cross-attention: each output token (query) weighs the input tokens (keys).'\n"
    "      : 'Self-attention: each token (query) weighs the tokens of its own sequence (keys).';\n"
    "    if (m.hard) text += head < 0\n"
    "      ? ' Hard attention: each head chose one key per query; the mean shows the share' +\n"
    "        ' of heads that chose it.'\n"
    "      : ' Hard attention: each query chose one key, the only one drawn.';\n"
    "    note.textContent = text;\n"
    "    render();\n"
    "  }\n"
    "\n"
    "  function render() {\n"
    "    const lines = view() === 'lines';\n"
    "    $('lines-view').hidden = !lines;\n"
    "    $('matrix-view').hidden = lines;\n"
    "    tip.hidden = true;\n"
    "    if (lines) drawLines(); else drawMatrix();\n"
    "  }\n"
    "\n"
    "  /* ---- lines: the keys in a column on the left, the queries on the right ---- */\n"
    "  let layout = null;\n"
    "\n"
    "  function drawLines() {\n"
    "    svg.textContent = '';\n"
    "    const header = (text) => {\n"
    "      const t = svgEl('text', { y: TOP / 2, class: 'side' });\n"
    "      t.textContent = text;\n"
    "      svg.append(t);\n"
    "      return t;\n"
    "    };\n"
    "    const keyHead = header('keys (attended to)'), queryHead = header('queries (attending)');\n"
    "    const keys = cur.cols.map((t, j) => token('key', j, t));\n"
    "    const queries = cur.rows.map((t, i) => token('query', i, t));\n"
    "    const width = (list, head) =>\n"
    "      list.reduce((w, t) => Math.max(w, t.width), head.getComputedTextLength());\n"
    "    const kw = width(keys, keyHead), qw = width(queries, queryHead);\n"
    "    const xk = LABEL + PAD + kw + PAD, xq = xk + GAP;\n"
    "    layout = { xk: xk, xq: xq, keys: keys, queries: queries, links: svgEl('g', {}) };\n"
    "    keys.forEach((k, j) => place(k, j, xk - PAD, 'end'));\n"
    "    queries.forEach((q, i) => place(q, i, xq + PAD, 'start'));\n"
    "    keyHead.setAttribute('x', xk - PAD);\n"
    "    keyHead.setAttribute('text-anchor', 'end');\n"
    "    queryHead.setAttribute('x', xq + PAD);\n"
    "    svg.insertBefore(layout.links, svg.firstChild);\n"
    "    const n = Math.max(keys.length, queries.length);\n"
    "    svg.setAttribute('width', xq + PAD + qw + PAD + LABEL);\n"
    "    svg.setAttribute('height', TOP + n * ROW + PAD);\n"
    "    readout.textContent =\n"
    "      'Hover over a token, or focus it with Tab, to draw the lines of its attention.';\n"
    "  }\n"
    "\n"
    "  function token(kind, index, text) {\n"
    "    const g = svgEl('g', { class: 'tok ' + kind, tabindex: '0',\n"
    "      'aria-label': kind + ' ' + index + ': ' + shown(text) });\n"
    "    const label = svgEl('text', {});\n"
    "    label.textContent = shown(text);\n"
    "    const weight = svgEl('text', { class: 'wt' });\n"
    "    g.append(svgEl('rect', {}), label, weight);\n"
    "    svg.append(g);\n"
    "    const show = () => kind === 'query' ? showQuery(index) : showKey(index);\n"
    "    g.addEventListener('mouseenter', show);\n"
    "    g.addEventListener('focus', show);\n"
    "    g.addEventListener('mouseleave', clearLines);\n"
    "    g.addEventListener('blur', clearLines);\n"
    "    return { g: g, text: label, weight: weight, width: label.getComputedTextLength() };\n"
    "  }\n"
    "\n"
    "  /* Puts token number `index` on its row: its text anchored at x, its box\n"
    "   * around the text, its weight label just outside the box. */\n"
    "  function place(t, index, x, anchor) {\n"
    "    const outer = anchor === 'end' ? x - t.width - PAD : x + t.width + PAD;\n"
    "    const y = TOP + index * ROW + ROW / 2;\n"
    "    const rect = t.g.firstChild;\n"
    "    rect.setAttribute('x', (anchor === 'end' ? x - t.width : x) - PAD / 2);\n"
    "    rect.setAttribute('y', y - ROW / 2 + 1);\n"
    "    rect.setAttribute('width', t.width + PAD);\n"
    "    rect.setAttribute('height', ROW - 2);\n"
    "    rect.setAttribute('rx', 3);\n"
    "    t.text.setAttribute('x', x);\n"
    "    t.text.setAttribute('y', y);\n"
    "    t.text.setAttribute('text-anchor', anchor);\n"
    "    t.weight.setAttribute('x', outer);\n"
    "    t.weight.setAttribute('y', y);\n"
    "    t.weight.setAttribute('text-anchor', anchor);\n"
    "    t.y = y;\n"
    "  }\n"
    "\n"
    "  function clearLines() {\n"
    "    layout.links.textContent = '';\n"
    "    for (const t of layout.keys.concat(layout.queries)) {\n"
    "      t.g.classList.remove('on', 'to');\n"
    "      t.weight.textContent = '';\n"
    "    }\n"
    "  }\n"
    "\n"
    "  /* Lines from query i to key j for the given (i, j, weight) triples, weakest\n"
    "   * first so that the strongest are drawn on top. */\n"
    "  function link(pairs) {\n"
    "    pairs.sort((a, b) => a[2] - b[2]);\n"
    "    for (const [i, j, w] of pairs) {\n"
    "      if (!(w > 0)) continue;\n"
    "      layout.links.append(svgEl('line', {\n"
    "        x1: layout.xk, y1: layout.keys[j].y, x2: layout.xq, y2: layout.queries[i].y,\n"
    "        'stroke-width': (0.75 + 6 * w).toFixed(3),\n"
    "        'stroke-opacity': (0.12 + 0.88 * w).toFixed(3) }));\n"
    "    }\n"
    "  }\n"
    "\n"
    "  /* The strongest few of `pairs` as text. */\n"
    "  function strongest(pairs, other) {\n"
    "    const attended = pairs.filter((p) => p[2] > 0).sort((a, b) => b[2] - a[2]);\n"
    "    if (attended.length === 0) return 'nothing (every weight is 0).';\n"
    "    const top = attended.slice(0, 3), more = attended.length - top.length;\n"
    "    return top.map((p) => other(p) + ' ' + pct(p[2])).join(', ') +\n"
    "      (more > 0 ? ', and ' + more + ' more.' : '.');\n"
    "  }\n"
    "\n"
    "  function showQuery(i) {\n"
    "    clearLines();\n"
    "    const C = cur.cols.length, pairs = [];\n"
    "    for (let j = 0; j < C; j++) {\n"
    "      const w = cur.w[i * C + j];\n"
    "      pairs.push([i, j, w]);\n"
    "      if (w >= 0.005) {\n"
    "        layout.keys[j].weight.textContent = pct(w);\n"
    "        layout.keys[j].g.classList.add('to');\n"
    "      }\n"
    "    }\n"
    "    layout.queries[i].g.classList.add('on');\n"
    "    link(pairs.slice());\n"
    "    readout.textContent = 'Query ' + i + ' ' + quoted(cur.rows[i]) + ' attends to ' +\n"
    "      strongest(pairs, (p) => 'key ' + p[1] + ' ' + quoted(cur.cols[p[1]]));\n"
    "  }\n"
    "\n"
    "  function showKey(j) {\n"
    "    clearLines();\n"
    "    const C = cur.cols.length, pairs = [];\n"
    "    for (let i = 0; i < cur.rows.length; i++) {\n"
    "      const w = cur.w[i * C + j];\n"
    "      pairs.push([i, j, w]);\n"
    "      if (w >= 0.005) {\n"
    "        layout.queries[i].weight.textContent = pct(w);\n"
    "        layout.queries[i].g.classList.add('to');\n"
    "      }\n"
    "    }\n"
    "    layout.keys[j].g.classList.add('on');\n"
    "    link(pairs.slice());\n"
    "    readout.textContent = 'Key ' + j + ' ' + quoted(cur.cols[j]) + ' is attended to by ' +\n"
    "      strongest(pairs, (p) => 'query ' + p[0] + ' ' + quoted(cur.rows[p[0]]));\n"
    "  }\n"
    "\n"
    "  /* ---- matrix: a row per query, a column per key ---- */\n"
    "  function drawMatrix() {\n"
    "    table.textContent = '';\n"
    "    const R = cur.rows.length, C = cur.cols.length;\n"
    "    table.classList.toggle('dense', C > NUMBERED_COLS);\n"
    "    table.classList.toggle('upright', cur.cols.every((t) => shown(t).length <= 3));\n"
    "    table.createCaption().textContent = 'Attention weights' +\n"
    "      (C > NUMBERED_COLS ? '' : ' in percent') + ': a row per query, a column per key.';\n"
    "    const head = table.createTHead().insertRow();\n"
    "    head.append(document.createElement('td'));\n"
    "    for (let j = 0; j < C; j++) {\n"
    "      const th = document.createElement('th');\n"
    "      th.scope = 'col';\n"
    "      th.textContent = shown(cur.cols[j]);\n"
    "      head.append(th);\n"
    "    }\n"
    "    const body = table.createTBody();\n"
    "    for (let i = 0; i < R; i++) {\n"
    "      const tr = body.insertRow();\n"
    "      const th = document.createElement('th');\n"
    "      th.scope = 'row';\n"
    "      th.textContent = shown(cur.rows[i]);\n"
    "      tr.append(th);\n"
    "      for (let j = 0; j < C; j++) {\n"
    "        const w = cur.w[i * C + j], td = tr.insertCell();\n"
    "        td.style.background = colour(w / cur.vmax);\n"
    "        if (w > 0.55 * cur.vmax) td.className = 'dark';\n"
    "        if (C <= NUMBERED_COLS && w >= 0.005) td.textContent = Math.round(w * 100);\n"
    "      }\n"
    "    }\n"
    "    $('top').textContent = pct(cur.vmax);\n"
    "    readout.textContent = 'Hover over a cell to read its weight.';\n"
    "  }\n"
    "\n"
    "  let hovered = null;\n"
    "  function unhover() {\n"
    "    if (hovered === null) return;\n"
    "    for (const e of hovered) e.classList.remove('on');\n"
    "    hovered = null;\n"
    "    tip.hidden = true;\n"
    "  }\n"
    "  table.addEventListener('mouseover', (e) => {\n"
    "    const td = e.target.closest('td');\n"
    "    unhover();\n"
    "    if (td === null || td.cellIndex < 1 || td.parentNode.parentNode.tagName !== 'TBODY')\n"
    "      return;\n"
    "    const i = td.parentNode.sectionRowIndex, j = td.cellIndex - 1;\n"
    "    const w = cur.w[i * cur.cols.length + j];\n"
    "    hovered = [td, td.parentNode.cells[0], table.tHead.rows[0].cells[j + 1]];\n"
    "    for (const x of hovered) x.classList.add('on');\n"
    "    const text = 'query ' + i + ' ' + quoted(cur.rows[i]) + ' \\u2192 key ' + j + ' ' +\n"
    "      quoted(cur.cols[j]) + ': ' + w.toFixed(4);\n"
    "    readout.textContent = text.charAt(0).toUpperCase() + text.slice(1);\n"
    "    tip.textContent = w.toFixed(4) + ' (' + (w * 100).toFixed(1) + '%)';\n"
    "    tip.hidden = false;\n"
    "    const r = td.getBoundingClientRect();\n"
    "    tip.style.left = (r.right + 6) + 'px';\n"
    "    tip.style.top = (r.bottom + 4) + 'px';\n"
    "  });\n"
    "  table.addEventListener('mouseleave', unhover);\n"
    "\n"
    "  /* ---- start ---- */\n"
    "  document.title = 'attn: what ' + (rec.model || 'the model') + ' attends to';\n"
    "  $('summary').textContent = 'Model ' + (rec.model || '?') +\n"
    "    (rec.task ? ', task ' + rec.task : '') + ': ' + plural(rec.keys.length, 'key token') +\n"
    "    ', ' + plural(rec.queries.length, 'query token') + ', ' +\n"
    "    plural(rec.maps.length, 'attention map') + '.';\n"
    "  $('bar').style.background =\n"
    "    'linear-gradient(to right, ' + STOPS.map(rgb).join(', ') + ')';\n"
    "  if (rec.maps.length === 0) {\n"
    "    $('controls').hidden = true;\n"
    "    $('lines-view').hidden = true;\n"
    "    readout.textContent = 'This record holds no attention maps.';\n"
    "    return;\n"
    "  }\n"
    "  rec.maps.forEach((m, i) => mapSel.add(new Option(describe(m), String(i))));\n"
    "  fillHeads(rec.maps[0]);\n"
    "  mapSel.addEventListener('change', () => {\n"
    "    fillHeads(rec.maps[+mapSel.value]);\n"
    "    select();\n"
    "  });\n"
    "  headSel.addEventListener('change', select);\n"
    "  for (const r of document.querySelectorAll('input[name=view]'))\n"
    "    r.addEventListener('change', render);\n"
    "  select();\n"
    "})();\n"
    "</script>\n"
    "</body>\n"
    "</html>\n";

/* Which of r's token lists labels m's rows (rows true) or columns, as
 * "queries" or "keys"; NULL after saying so (for the page at path) if the list
 * does not have a token for each of them. */
static const char *token_list(const attn_record *r, const attn_attention_map *m, bool rows,
                              const char *path)
{
    char *const *tokens = rows ? attn_map_row_tokens(r, m) : attn_map_col_tokens(r, m);
    const char *what = rows ? "rows" : "columns";
    if (tokens == NULL) {
        fprintf(stderr, "attn: %s: map '%s' has %d %s but the record has no tokens for them\n",
                path, m->name, rows ? m->rows : m->cols, what);
        return NULL;
    }
    bool queries = tokens == r->queries;
    int have = queries ? r->n_queries : r->n_keys, want = rows ? m->rows : m->cols;
    if (have != want) {
        fprintf(stderr, "attn: %s: map '%s' has %d %s but the record has %d %s tokens\n", path,
                m->name, want, what, have, queries ? "query" : "key");
        return NULL;
    }
    return queries ? "queries" : "keys";
}

/* Whether every weight of m is finite and in [0, 1]; says which is not (for
 * the page at path). */
static bool check_weights(const attn_attention_map *m, const char *path)
{
    const size_t per_head = (size_t)m->rows * (size_t)m->cols;
    for (size_t k = 0; k < (size_t)m->heads * per_head; k++) {
        const float w = m->weights[k];
        if (isfinite(w) && w >= 0.0f && w <= 1.0f) continue;
        fprintf(stderr,
                "attn: %s: map '%s' head %d row %d column %d: weight %g is not in [0, 1]\n",
                path, m->name, (int)(k / per_head), (int)(k % per_head / (size_t)m->cols),
                (int)(k % (size_t)m->cols), (double)w);
        return false;
    }
    return true;
}

static void write_tokens(FILE *out, char *const *tokens, int n)
{
    fputc('[', out);
    for (int i = 0; i < n; i++) {
        if (i > 0) fputc(',', out);
        cli_json_string(out, tokens[i]);
    }
    fputc(']', out);
}

/* w with 6 decimals, without trailing zeros: "0.25", "1", "0". */
static void write_weight(FILE *out, float w)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%.6f", (double)w);
    while (n > 1 && text[n - 1] == '0') n--;
    if (text[n - 1] == '.') n--;
    fwrite(text, 1, (size_t)n, out);
}

static void write_map(FILE *out, const attn_attention_map *m, const char *row_tokens,
                      const char *col_tokens)
{
    fputs("{\"name\":", out);
    cli_json_string(out, m->name);
    fprintf(out,
            ",\"layer\":%d,\"kind\":\"%s\",\"hard\":%s,\"row_tokens\":\"%s\","
            "\"col_tokens\":\"%s\",\"heads\":%d,\"rows\":%d,\"cols\":%d,\"weights\":[",
            m->layer, attn_map_kind_name(m->kind), m->hard ? "true" : "false", row_tokens,
            col_tokens, m->heads, m->rows, m->cols);
    const float *w = m->weights;
    for (int h = 0; h < m->heads; h++) {
        fputs(h > 0 ? ",[" : "[", out);
        for (int i = 0; i < m->rows; i++) {
            fputs(i > 0 ? ",[" : "[", out);
            for (int j = 0; j < m->cols; j++) {
                if (j > 0) fputc(',', out);
                write_weight(out, *w++);
            }
            fputc(']', out);
        }
        fputc(']', out);
    }
    fputs("]}", out);
}

/* Writes r as JSON to out; false after saying why if r cannot be shown on the
 * page at path. */
static bool write_record(FILE *out, const attn_record *r, const char *path)
{
    fputs("{\"format\":\"attn-attention\",\"version\":1,\"model\":", out);
    cli_json_string(out, r->model);
    fputs(",\"task\":", out);
    cli_json_string(out, r->task);
    fputs(",\"queries\":", out);
    write_tokens(out, r->queries, r->n_queries);
    fputs(",\"keys\":", out);
    write_tokens(out, r->keys, r->n_keys);
    fputs(",\"maps\":[", out);
    for (int k = 0; k < r->n_maps; k++) {
        const attn_attention_map *m = &r->maps[k];
        const char *rows = token_list(r, m, true, path), *cols = token_list(r, m, false, path);
        if (rows == NULL || cols == NULL || !check_weights(m, path)) return false;
        if (k > 0) fputc(',', out);
        write_map(out, m, rows, cols);
    }
    fputs("]}", out);
    return true;
}

/* The JSON as the content of a <script> element: each "<" (only ever inside a
 * string) becomes the escape \u003c, which JSON.parse reads back as "<". A
 * malloc'd copy of *size bytes (not terminated), or NULL without memory. */
static char *script_text(const char *json, size_t *size)
{
    static const char escape[] = "\\u003c";
    const char *end = json + *size;
    size_t lt = 0;
    for (const char *p = json; (p = memchr(p, '<', (size_t)(end - p))) != NULL; p++) lt++;
    char *text = malloc(*size + lt * (sizeof escape - 2) + 1);
    if (text == NULL) return NULL;
    char *out = text;
    for (const char *p = json; p < end; p++) {
        if (*p != '<') {
            *out++ = *p;
        } else {
            memcpy(out, escape, sizeof escape - 1);
            out += sizeof escape - 1;
        }
    }
    *size = (size_t)(out - text);
    return text;
}

/* Writes the page around the record's JSON, atomically. */
static int write_page(const char *path, const char *json, size_t size)
{
    char *text = script_text(json, &size);
    if (text == NULL) {
        fprintf(stderr, "attn: no memory for the page '%s'\n", path);
        return EXIT_RUNTIME;
    }
    const attn_file_part parts[] = {
        {page_head, sizeof page_head - 1}, {text, size}, {page_tail, sizeof page_tail - 1}};
    attn_status s = attn_write_file_atomically(path, parts, 3);
    free(text);
    if (s == ATTN_OK) return EXIT_OK;
    fprintf(stderr, "attn: %s\n", attn_last_error());
    return EXIT_RUNTIME;
}

int cli_show_html(const attn_record *r, const char *path)
{
    char *json = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&json, &size);
    if (mem == NULL) {
        fprintf(stderr, "attn: no memory for the page '%s'\n", path);
        return EXIT_RUNTIME;
    }
    bool shown = write_record(mem, r, path);
    bool written = !ferror(mem);
    if (fclose(mem) != 0) written = false;
    int status = EXIT_RUNTIME;
    if (!written) fprintf(stderr, "attn: no memory for the page '%s'\n", path);
    else if (shown) status = write_page(path, json, size);
    free(json);
    return status;
}
