'use strict';
(function () {
  const rec = JSON.parse(document.getElementById('record').textContent);
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';
  const mapSel = $('map'), headSel = $('head'), svg = $('lines'), table = $('matrix');
  const readout = $('readout'), note = $('note'), tip = $('tip'), perRow = $('per-row');
  /* Blues, light to dark: the matrix colour from weight 0 to the largest shown. */
  const STOPS = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181],
    [8, 48, 107]];
  const rgb = (c) => 'rgb(' + c.join(',') + ')';
  const ROW = 24, GAP = 240, PAD = 8, LABEL = 44, TOP = 28;
  /* Up to this many keys the matrix prints each weight in its cell. */
  const NUMBERED_COLS = 40;
  let cur = null; /* the map, head, weights (rows x cols, float64) and labels shown */

  /* A token as text that shows its blanks: a space as U+2423, a control
   * character or line break as its escape (\n, \t, \x01, \u2028). */
  const ESCAPES = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  function shown(t) {
    if (t === '') return '\u2205';
    return t.replace(/[\x00-\x20\x7f-\x9f\u2028\u2029]/g, (c) => c === ' ' ? '\u2423'
      : ESCAPES[c] || (c < '\u0100' ? '\\x' : '\\u') +
        c.charCodeAt(0).toString(16).padStart(c < '\u0100' ? 2 : 4, '0'));
  }
  function quoted(t) { return '\u201c' + shown(t) + '\u201d'; }
  function pct(w) { return Math.round(w * 100) + '%'; }
  function colour(w) {
    const x = Math.min(1, Math.max(0, w)) * (STOPS.length - 1);
    const i = Math.min(STOPS.length - 2, Math.floor(x)), f = x - i;
    return rgb(STOPS[i].map((a, k) => Math.round(a + (STOPS[i + 1][k] - a) * f)));
  }
  function svgEl(name, attrs) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function plural(n, word) { return n + ' ' + word + (n === 1 ? '' : 's'); }

  /* The weights of one head, or their mean over the heads (head < 0). */
  function weightsOf(m, head) {
    const w = new Float64Array(m.rows * m.cols);
    const first = head < 0 ? 0 : head, last = head < 0 ? m.heads - 1 : head;
    const scale = 1 / (last - first + 1);
    for (let h = first; h <= last; h++)
      for (let i = 0; i < m.rows; i++) {
        const row = m.weights[h][i];
        for (let j = 0; j < m.cols; j++) w[i * m.cols + j] += row[j] * scale;
      }
    return w;
  }

  function describe(m) {
    return m.name + ' \u2014 layer ' + m.layer + ', ' + m.kind + (m.hard ? ', hard' : '') +
      ', ' + plural(m.heads, 'head');
  }

  function fillHeads(m) {
    headSel.length = 0;
    if (m.heads > 1) headSel.add(new Option('mean of ' + m.heads + ' heads', '-1'));
    for (let h = 0; h < m.heads; h++) headSel.add(new Option('head ' + h, String(h)));
    headSel.disabled = m.heads === 1;
  }

  function view() { return document.querySelector('input[name=view]:checked').value; }

  function select() {
    const m = rec.maps[+mapSel.value];
    const head = +headSel.value;
    const w = weightsOf(m, head);
    cur = { map: m, head: head, w: w, vmax: w.reduce((a, b) => Math.max(a, b), 0) || 1,
      rows: rec[m.row_tokens], cols: rec[m.col_tokens] };
    let text = m.kind === 'cross'
      ? 'Cross-attention: each output token (query) weighs the input tokens (keys).'
      : 'Self-attention: each token (query) weighs the tokens of its own sequence (keys).';
    if (m.hard) text += head < 0
      ? ' Hard attention: each head chose one key per query; the mean shows the share' +
        ' of heads that chose it.'
      : ' Hard attention: each query chose one key, the only one drawn.';
    note.textContent = text;
    render();
  }

  function render() {
    const lines = view() === 'lines';
    $('lines-view').hidden = !lines;
    $('matrix-view').hidden = lines;
    tip.hidden = true;
    if (lines) drawLines(); else drawMatrix();
  }

  /* ---- lines: the keys in a column on the left, the queries on the right ---- */
  let layout = null;

  function drawLines() {
    svg.textContent = '';
    const header = (text) => {
      const t = svgEl('text', { y: TOP / 2, class: 'side' });
      t.textContent = text;
      svg.append(t);
      return t;
    };
    const keyHead = header('keys (attended to)'), queryHead = header('queries (attending)');
    const keys = cur.cols.map((t, j) => token('key', j, t));
    const queries = cur.rows.map((t, i) => token('query', i, t));
    const width = (list, head) =>
      list.reduce((w, t) => Math.max(w, t.width), head.getComputedTextLength());
    const kw = width(keys, keyHead), qw = width(queries, queryHead);
    const xk = LABEL + PAD + kw + PAD, xq = xk + GAP;
    layout = { xk: xk, xq: xq, keys: keys, queries: queries, links: svgEl('g', {}) };
    keys.forEach((k, j) => place(k, j, xk - PAD, 'end'));
    queries.forEach((q, i) => place(q, i, xq + PAD, 'start'));
    keyHead.setAttribute('x', xk - PAD);
    keyHead.setAttribute('text-anchor', 'end');
    queryHead.setAttribute('x', xq + PAD);
    svg.insertBefore(layout.links, svg.firstChild);
    const n = Math.max(keys.length, queries.length);
    svg.setAttribute('width', xq + PAD + qw + PAD + LABEL);
    svg.setAttribute('height', TOP + n * ROW + PAD);
    readout.textContent =
      'Hover over a token, or focus it with Tab, to draw the lines of its attention.';
  }

  function token(kind, index, text) {
    const g = svgEl('g', { class: 'tok ' + kind, tabindex: '0',
      'aria-label': kind + ' ' + index + ': ' + shown(text) });
    const label = svgEl('text', {});
    label.textContent = shown(text);
    const weight = svgEl('text', { class: 'wt' });
    g.append(svgEl('rect', {}), label, weight);
    svg.append(g);
    const show = () => kind === 'query' ? showQuery(index) : showKey(index);
    g.addEventListener('mouseenter', show);
    g.addEventListener('focus', show);
    g.addEventListener('mouseleave', clearLines);
    g.addEventListener('blur', clearLines);
    return { g: g, text: label, weight: weight, width: label.getComputedTextLength() };
  }

  /* Puts token number `index` on its row: its text anchored at x, its box
   * around the text, its weight label just outside the box. */
  function place(t, index, x, anchor) {
    const outer = anchor === 'end' ? x - t.width - PAD : x + t.width + PAD;
    const y = TOP + index * ROW + ROW / 2;
    const rect = t.g.firstChild;
    rect.setAttribute('x', (anchor === 'end' ? x - t.width : x) - PAD / 2);
    rect.setAttribute('y', y - ROW / 2 + 1);
    rect.setAttribute('width', t.width + PAD);
    rect.setAttribute('height', ROW - 2);
    rect.setAttribute('rx', 3);
    t.text.setAttribute('x', x);
    t.text.setAttribute('y', y);
    t.text.setAttribute('text-anchor', anchor);
    t.weight.setAttribute('x', outer);
    t.weight.setAttribute('y', y);
    t.weight.setAttribute('text-anchor', anchor);
    t.y = y;
  }

  function clearLines() {
    layout.links.textContent = '';
    for (const t of layout.keys.concat(layout.queries)) {
      t.g.classList.remove('on', 'to');
      t.weight.textContent = '';
    }
  }

  /* Lines from query i to key j for the given (i, j, weight) triples, weakest
   * first so that the strongest are drawn on top. */
  function link(pairs) {
    pairs.sort((a, b) => a[2] - b[2]);
    for (const [i, j, w] of pairs) {
      if (!(w > 0)) continue;
      layout.links.append(svgEl('line', {
        x1: layout.xk, y1: layout.keys[j].y, x2: layout.xq, y2: layout.queries[i].y,
        'stroke-width': (0.75 + 6 * w).toFixed(3),
        'stroke-opacity': (0.12 + 0.88 * w).toFixed(3) }));
    }
  }

  /* The strongest few of `pairs` as text. */
  function strongest(pairs, other) {
    const attended = pairs.filter((p) => p[2] > 0).sort((a, b) => b[2] - a[2]);
    if (attended.length === 0) return 'nothing (every weight is 0).';
    const top = attended.slice(0, 3), more = attended.length - top.length;
    return top.map((p) => other(p) + ' ' + pct(p[2])).join(', ') +
      (more > 0 ? ', and ' + more + ' more.' : '.');
  }

  function showQuery(i) {
    clearLines();
    const C = cur.cols.length, pairs = [];
    for (let j = 0; j < C; j++) {
      const w = cur.w[i * C + j];
      pairs.push([i, j, w]);
      if (w >= 0.005) {
        layout.keys[j].weight.textContent = pct(w);
        layout.keys[j].g.classList.add('to');
      }
    }
    layout.queries[i].g.classList.add('on');
    link(pairs.slice());
    readout.textContent = 'Query ' + i + ' ' + quoted(cur.rows[i]) + ' attends to ' +
      strongest(pairs, (p) => 'key ' + p[1] + ' ' + quoted(cur.cols[p[1]]));
  }

  function showKey(j) {
    clearLines();
    const C = cur.cols.length, pairs = [];
    for (let i = 0; i < cur.rows.length; i++) {
      const w = cur.w[i * C + j];
      pairs.push([i, j, w]);
      if (w >= 0.005) {
        layout.queries[i].weight.textContent = pct(w);
        layout.queries[i].g.classList.add('to');
      }
    }
    layout.keys[j].g.classList.add('on');
    link(pairs.slice());
    readout.textContent = 'Key ' + j + ' ' + quoted(cur.cols[j]) + ' is attended to by ' +
      strongest(pairs, (p) => 'query ' + p[0] + ' ' + quoted(cur.rows[p[0]]));
  }

  /* ---- matrix: a row per query, a column per key ---- */
  function drawMatrix() {
    table.textContent = '';
    const R = cur.rows.length, C = cur.cols.length;
    table.classList.toggle('dense', C > NUMBERED_COLS);
    table.classList.toggle('upright', cur.cols.every((t) => shown(t).length <= 3));
    table.createCaption().textContent = 'Attention weights' +
      (C > NUMBERED_COLS ? '' : ' in percent') + ': a row per query, a column per key.';
    const head = table.createTHead().insertRow();
    head.append(document.createElement('td'));
    for (let j = 0; j < C; j++) {
      const th = document.createElement('th');
      th.scope = 'col';
      th.textContent = shown(cur.cols[j]);
      head.append(th);
    }
    const body = table.createTBody();
    for (let i = 0; i < R; i++) {
      const tr = body.insertRow();
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = shown(cur.rows[i]);
      tr.append(th);
      /* The colour's top: the largest weight shown, or the row's own, so that
       * the shape of a row whose weights are all small still shows. */
      let top = cur.vmax;
      if (perRow.checked) {
        top = 0;
        for (let j = 0; j < C; j++) top = Math.max(top, cur.w[i * C + j]);
        top = top || 1;
      }
      for (let j = 0; j < C; j++) {
        const w = cur.w[i * C + j], td = tr.insertCell();
        td.style.background = colour(w / top);
        if (w > 0.55 * top) td.className = 'dark';
        if (C <= NUMBERED_COLS && w >= 0.005) td.textContent = Math.round(w * 100);
      }
    }
    $('top').textContent = perRow.checked ? "the row's largest" : pct(cur.vmax);
    readout.textContent = 'Hover over a cell to read its weight.';
  }

  let hovered = null;
  function unhover() {
    if (hovered === null) return;
    for (const e of hovered) e.classList.remove('on');
    hovered = null;
    tip.hidden = true;
  }
  table.addEventListener('mouseover', (e) => {
    const td = e.target.closest('td');
    unhover();
    if (td === null || td.cellIndex < 1 || td.parentNode.parentNode.tagName !== 'TBODY')
      return;
    const i = td.parentNode.sectionRowIndex, j = td.cellIndex - 1;
    const w = cur.w[i * cur.cols.length + j];
    hovered = [td, td.parentNode.cells[0], table.tHead.rows[0].cells[j + 1]];
    for (const x of hovered) x.classList.add('on');
    const text = 'query ' + i + ' ' + quoted(cur.rows[i]) + ' \u2192 key ' + j + ' ' +
      quoted(cur.cols[j]) + ': ' + w.toFixed(4);
    readout.textContent = text.charAt(0).toUpperCase() + text.slice(1);
    tip.textContent = w.toFixed(4) + ' (' + (w * 100).toFixed(1) + '%)';
    tip.hidden = false;
    const r = td.getBoundingClientRect();
    tip.style.left = (r.right + 6) + 'px';
    tip.style.top = (r.bottom + 4) + 'px';
  });
  table.addEventListener('mouseleave', unhover);

  /* ---- start ---- */
  document.title = 'attn: what ' + (rec.model || 'the model') + ' attends to';
  $('summary').textContent = 'Model ' + (rec.model || '?') +
    (rec.task ? ', task ' + rec.task : '') + ': ' + plural(rec.keys.length, 'key token') +
    ', ' + plural(rec.queries.length, 'query token') + ', ' +
    plural(rec.maps.length, 'attention map') + '.';
  $('bar').style.background =
    'linear-gradient(to right, ' + STOPS.map(rgb).join(', ') + ')';
  if (rec.maps.length === 0) {
    $('controls').hidden = true;
    $('lines-view').hidden = true;
    readout.textContent = 'This record holds no attention maps.';
    return;
  }
  rec.maps.forEach((m, i) => mapSel.add(new Option(describe(m), String(i))));
  fillHeads(rec.maps[0]);
  mapSel.addEventListener('change', () => {
    fillHeads(rec.maps[+mapSel.value]);
    select();
  });
  headSel.addEventListener('change', select);
  for (const r of document.querySelectorAll('input[name=view]'))
    r.addEventListener('change', render);
  perRow.addEventListener('change', render);
  select();
})();
