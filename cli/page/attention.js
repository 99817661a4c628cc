'use strict';
(function () {
  const rec = JSON.parse(document.getElementById('record').textContent);
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';
  const mapSel = $('map'), headSel = $('head'), svg = $('lines'), canvas = $('matrix');
  const readout = $('readout'), note = $('note'), tip = $('tip'), perRow = $('per-row');
  const slider = $('step'), strip = $('strip'), mark = $('cell-mark');
  /* Blues, light to dark: the colour from weight 0 to the top of the scale. */
  const STOPS = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181],
    [8, 48, 107]];
  const rgb = (c) => 'rgb(' + c.join(',') + ')';
  const ROW = 24, GAP = 240, PAD = 8, LABEL = 44, TOP = 28;
  /* The matrix: a cell's side in pixels at most, from which cells print their
   * weight, and from which the tokens label the rows and columns. */
  const CELL_MAX = 28, NUMBERED_CELL = 24, LABELLED_CELL = 10;
  /* The lines view draws up to this many tokens a side: more lines than this
   * are a blur, and thousands of SVG nodes make the page slow. */
  const LINES_MAX = 200;
  const THUMB_PX = 72, STRIP_HEIGHT = 80, STRIP_BAR_MAX = 24, OVERVIEW_PX = 256;
  let cur = null; /* the map, head, weights (rows x cols, float64) and labels shown */
  /* The record's own maps, before those html_page.c derived from them. */
  const recorded = rec.maps.filter((m) => !m.derived);

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
  /* Values of a map that are no shares of 1 (gradient-weighted attention and
   * its relevance, html_page.c's derived maps) are written to 3 significant
   * digits, 4 where a cell is read out (they are often near 1e-5); weights and
   * rollout are shares, in percent, and to 4 decimals where read out. */
  function isShare(m) { return !m.derived || m.derived === 'rollout'; }
  function amount(m, w) { return isShare(m) ? pct(w) : w.toPrecision(3); }
  function exactText(m, w) { return isShare(m) ? w.toFixed(4) : w.toPrecision(4); }
  /* A weight in percent: whole ones, or two decimals below 0.5 % (a long
   * sequence's weights are mostly that small, and "0%" would hide them). */
  function pct(w) {
    return (w > 0 && w < 0.005 ? (w * 100).toFixed(2) : Math.round(w * 100)) + '%';
  }
  function colourOf(t) {
    const c = [0, 0, 0];
    colourInto(t, c, 0);
    return c;
  }
  /* colourOf(t) written at out[at], out[at + 1], out[at + 2]. */
  function colourInto(t, out, at) {
    const x = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
    const i = Math.min(STOPS.length - 2, Math.floor(x)), f = x - i;
    const a = STOPS[i], b = STOPS[i + 1];
    for (let k = 0; k < 3; k++) out[at + k] = Math.round(a[k] + (b[k] - a[k]) * f);
  }
  function svgEl(name, attrs) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function plural(n, word) { return n + ' ' + word + (n === 1 ? '' : 's'); }

  /* base64 of little-endian float32 values (html_page.c) as numbers. */
  function floats(text) {
    const buffer = bytes(text);
    const data = new DataView(buffer.buffer), out = new Float32Array(buffer.length >> 2);
    for (let k = 0; k < out.length; k++) out[k] = data.getFloat32(4 * k, true);
    return out;
  }
  /* base64 of bytes (the thumbnails' shades, html_page.c) as numbers. */
  function bytes(text) {
    const raw = atob(text), out = new Uint8Array(raw.length);
    for (let k = 0; k < raw.length; k++) out[k] = raw.charCodeAt(k);
    return out;
  }
  /* A map's thumbnails' shades, read when first drawn. */
  function thumbShades(m) {
    if (!m.shades) m.shades = bytes(m.thumbs);
    return m.shades;
  }
  /* A map's exact weights (its window of rows), read when it is first shown. */
  function exact(m) {
    if (!m.exact) m.exact = floats(m.weights);
    return m.exact;
  }

  /* The window's weights of one head, or their mean over the heads (head < 0). */
  function weightsOf(m, head) {
    const w = new Float64Array(m.count * m.cols), all = exact(m), plane = m.count * m.cols;
    const first = head < 0 ? 0 : head, last = head < 0 ? m.heads - 1 : head;
    const scale = 1 / (last - first + 1);
    for (let h = first; h <= last; h++)
      for (let k = 0; k < plane; k++) w[k] += all[h * plane + k] * scale;
    return w;
  }

  const DERIVED = {
    'gradient-weighted': (m) => 'gradient-weighted attention of ' + m.name + ' (layer ' +
      m.layer + ', ' + m.kind + ')',
    'rollout': (m) => 'rollout of ' + m.name + ' over ' + plural(m.layers, 'layer'),
    'relevance': (m) => 'relevance (gradient-weighted rollout) of ' + m.name + ' over ' +
      plural(m.layers, 'layer')
  };
  function describe(m) {
    if (m.derived) return DERIVED[m.derived](m);
    return m.name + ' \u2014 layer ' + m.layer + ', ' + m.kind + (m.hard ? ', hard' : '') +
      ', ' + plural(m.heads, 'head');
  }

  /* What a derived map is, as the note says it. */
  const EXPLAINED = {
    'gradient-weighted': 'Gradient-weighted attention (Chefer et al., 2021): the mean over' +
      ' the heads of the positive part of each weight times d log p / d weight, where a' +
      ' head\'s attention raised the log-probability of the explained output',
    'rollout': 'Attention rollout (Abnar and Zuidema, 2020): each layer\'s heads averaged,' +
      ' (A + I) / 2 with rows renormalised for the residual connections, multiplied from' +
      ' the first layer up; row i is how much of token i at the top comes from each input',
    'relevance': 'Relevance (Chefer et al., 2021): R = I, then R \u2190 R + G R layer by' +
      ' layer from the first, G a layer\'s gradient-weighted attention; row i is the' +
      ' relevance of each input token to token i\'s output at the top'
  };
  function explainDerived(m) {
    const step = rec.gradient_step < 0 ? 'the whole output'
      : 'output token ' + rec.gradient_step + ' ' + quoted(rec.queries[rec.gradient_step]);
    return EXPLAINED[m.derived] + (m.derived === 'rollout' ? '' : ' (log p of ' + step + ')') +
      '. Computed by libattn when the page was written, as attn analyze computes it.';
  }

  /* Paints rows x cols values (from `at` in `values`) into a canvas of a pixel a
   * value, each coloured at top(i) (the top of the scale for row i). */
  function paint(target, values, at, rows, cols, top) {
    target.width = cols;
    target.height = rows;
    const ctx = target.getContext('2d'), image = ctx.createImageData(cols, rows);
    for (let i = 0; i < rows; i++) {
      const t = top(i);
      for (let j = 0; j < cols; j++) {
        const p = 4 * (i * cols + j);
        colourInto(values[at + i * cols + j] / t, image.data, p);
        image.data[p + 3] = 255;
      }
    }
    ctx.putImageData(image, 0, 0);
  }

  /* ---- what the page holds exactly ---- */
  function heldText(m) {
    if (m.count === m.rows)
      return 'All ' + m.rows + ' query rows of this map are held exactly (float32).';
    const how = ' Choose others with attn show --html PAGE --window FIRST:COUNT (at most ' +
      rec.weights_max.toLocaleString('en') + ' weights a page).';
    if (m.count === 0)
      return 'No query row of this map is held exactly, only its downsampled thumbnails.' + how;
    return 'Only query rows ' + m.first + ' to ' + (m.first + m.count - 1) + ' of ' + m.rows +
      ' are held exactly (float32): the lines, the matrix and the step slider show them' +
      ' alone; the thumbnails show the whole map downsampled.' + how;
  }

  function recordHeldText() {
    /* Derived maps have the window of the maps they come from. */
    const cut = recorded.filter((m) => m.count < m.rows).length;
    const shrunk = rec.maps.some((m) => m.thumb_rows < m.rows || m.thumb_cols < m.cols);
    return (cut === 0 ? 'Every weight is held exactly (float32). '
      : plural(cut, 'map') + ' of ' + recorded.length + ' are held exactly only for a window' +
        ' of query rows' + (rec.window_given ? ' (chosen with --window)' : ' (the last ones)') +
        ', as each map says below. ') +
      (shrunk ? 'Thumbnails are downsampled to at most 64 values a side, each the mean of' +
        ' the weights it covers (their largest for hard attention), ' : 'Thumbnails show' +
        ' every weight, ') + 'its shade to 1/255 of the scale.';
  }

  /* ---- the model view: a row per map, a column per head ---- */
  function shortLabel(m) {
    const parts = m.name.split('.'), at = parts.indexOf(String(m.layer));
    if (at > 0) parts.splice(at - 1, 2);
    return parts.join('.');
  }

  function drawModelView() {
    const grid = $('grid');
    const heads = Math.max(...recorded.map((m) => m.heads));
    const longest = Math.max(...recorded.map((m) => Math.max(m.thumb_rows, m.thumb_cols)));
    const px = THUMB_PX / longest;
    grid.style.gridTemplateColumns = 'max-content repeat(' + heads + ', max-content)';
    grid.append(document.createElement('span'));
    for (let h = 0; h < heads; h++) {
      const name = document.createElement('span');
      name.className = 'head-name';
      name.textContent = 'head ' + h;
      grid.append(name);
    }
    recorded.forEach((m, k) => {
      const label = document.createElement('span');
      label.className = 'map-name';
      label.textContent = shortLabel(m);
      label.append(document.createElement('br'), 'layer ' + m.layer + ' \u00b7 ' + m.kind +
        (m.hard ? ' \u00b7 hard' : ''));
      grid.append(label);
      for (let h = 0; h < heads; h++)
        grid.append(h < m.heads ? thumbnail(m, k, h, px) : document.createElement('span'));
    });
    $('model-top').textContent = pct(rec.vmax);
  }

  function thumbnail(m, k, h, px) {
    const c = document.createElement('canvas');
    c.className = 'thumb';
    c.tabIndex = 0;
    c.setAttribute('role', 'button');
    c.setAttribute('aria-label', 'open ' + m.name + ', head ' + h);
    c.title = m.name + ', head ' + h;
    paint(c, thumbShades(m), h * m.thumb_rows * m.thumb_cols, m.thumb_rows, m.thumb_cols,
      () => 255);
    c.style.width = Math.round(m.thumb_cols * px) + 'px';
    c.style.height = Math.round(m.thumb_rows * px) + 'px';
    const open = () => openHead(k, h);
    c.addEventListener('click', open);
    c.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter' && e.key !== ' ') return;
      e.preventDefault();
      open();
    });
    return c;
  }

  /* Opens head h of map k in the main view, as its matrix. */
  function openHead(k, h) {
    mapSel.value = String(k);
    fillHeads(rec.maps[k]);
    headSel.value = String(h);
    document.querySelector('input[name=view][value=matrix]').checked = true;
    select();
    $('main').scrollIntoView({ block: 'start' });
  }

  /* ---- the main view ---- */
  function fillHeads(m) {
    headSel.length = 0;
    if (m.derived) headSel.add(new Option('every head, combined', '0'));
    else if (m.heads > 1) headSel.add(new Option('mean of ' + m.heads + ' heads', '-1'));
    for (let h = 0; h < m.heads && !m.derived; h++)
      headSel.add(new Option('head ' + h, String(h)));
    headSel.disabled = m.heads === 1;
  }

  function view() { return document.querySelector('input[name=view]:checked').value; }

  function select() {
    const m = rec.maps[+mapSel.value];
    const head = +headSel.value;
    const w = weightsOf(m, head);
    /* Another map: the lines view's windows start again from their defaults. */
    if (!cur || cur.map !== m) $('keys-from').value = $('queries-from').value = '';
    cur = { map: m, head: head, w: w, vmax: w.reduce((a, b) => Math.max(a, b), 0) || 1,
      first: m.first, rows: rec[m.row_tokens].slice(m.first, m.first + m.count),
      cols: rec[m.col_tokens] };
    let text = m.derived ? explainDerived(m) : m.kind === 'cross'
      ? 'Cross-attention: each output token (query) weighs the input tokens (keys).'
      : 'Self-attention: each token (query) weighs the tokens of its own sequence (keys).';
    if (m.hard) text += head < 0
      ? ' Hard attention: each head chose one key per query; the mean shows the share' +
        ' of heads that chose it.'
      : ' Hard attention: each query chose one key, the only one drawn.';
    note.textContent = text + ' ' + heldText(m);
    drawOverview();
    updateSteps();
    render();
    neuron.choose(m, head);
  }

  function render() {
    const lines = view() === 'lines';
    $('lines-view').hidden = !lines;
    $('matrix-view').hidden = lines;
    tip.hidden = true;
    mark.hidden = true;
    if (lines) drawLines(); else drawMatrix();
  }

  /* ---- lines: the keys in a column on the left, the queries on the right ---- */
  let layout = null;

  /* The first and the count of n tokens the lines view draws: all of them, or
   * LINES_MAX from the input's value (its default when empty), which it then
   * shows clamped. */
  function linesWindow(input, n, fallback, offset) {
    const count = Math.min(n, LINES_MAX);
    input.parentNode.hidden = count === n;
    if (count === n) return [0, n];
    const wanted = input.value === '' ? fallback : +input.value - offset;
    const first = Math.min(n - count, Math.max(0, Math.floor(wanted) || 0));
    input.min = offset;
    input.max = offset + n - count;
    input.value = offset + first;
    return [first, count];
  }

  function drawLines() {
    svg.textContent = '';
    const R = cur.rows.length, C = cur.cols.length;
    /* Past LINES_MAX a side, a window: by default the last queries held (a
     * language model's newest) and, for causal attention, the keys just before
     * the last of them (its nearest context), else the first keys. */
    const [q0, qn] = linesWindow($('queries-from'), R, R - LINES_MAX, cur.first);
    const lastQuery = cur.first + q0 + qn - 1;
    const [k0, kn] = linesWindow($('keys-from'), C,
      cur.map.causal ? lastQuery + 1 - LINES_MAX : 0, 0);
    const windowed = qn < R || kn < C;
    $('lines-window').hidden = !windowed;
    $('lines-window-text').textContent = windowed ? 'The lines view draws up to ' +
      LINES_MAX + ' tokens a side: keys ' + k0 + ' to ' + (k0 + kn - 1) + ' of ' + C +
      ', queries ' + (cur.first + q0) + ' to ' + lastQuery + '. The readout names the' +
      ' strongest of all.' : '';
    const header = (text) => {
      const t = svgEl('text', { y: TOP / 2, class: 'side' });
      t.textContent = text;
      svg.append(t);
      return t;
    };
    const keyHead = header('keys (attended to)'), queryHead = header('queries (attending)');
    const keys = cur.cols.slice(k0, k0 + kn).map((t, n) => token('key', k0 + n, t));
    const queries = cur.rows.slice(q0, q0 + qn).map((t, n) => token('query', q0 + n, t));
    const width = (list, head) =>
      list.reduce((w, t) => Math.max(w, t.width), head.getComputedTextLength());
    const kw = width(keys, keyHead), qw = width(queries, queryHead);
    const xk = LABEL + PAD + kw + PAD, xq = xk + GAP;
    layout = { xk: xk, xq: xq, keys: keys, queries: queries, links: svgEl('g', {}),
      k0: k0, q0: q0 };
    keys.forEach((k, n) => place(k, n, xk - PAD, 'end'));
    queries.forEach((q, n) => place(q, n, xq + PAD, 'start'));
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

  /* The drawn key j, query i (indices into cur.cols, cur.rows), or undefined. */
  function keyToken(j) { return layout.keys[j - layout.k0]; }
  function queryToken(i) { return layout.queries[i - layout.q0]; }

  function token(kind, index, text) {
    const number = kind === 'query' ? cur.first + index : index;
    const g = svgEl('g', { class: 'tok ' + kind, tabindex: '0',
      'aria-label': kind + ' ' + number + ': ' + shown(text) });
    const label = svgEl('text', {});
    label.textContent = shown(text);
    const weight = svgEl('text', { class: 'wt' });
    g.append(svgEl('rect', {}), label, weight);
    svg.append(g);
    const show = () => kind === 'query' ? showQuery(index) : showKey(index);
    if (kind === 'query') g.addEventListener('click', () => neuron.query(cur.first + index));
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
      const key = keyToken(j), query = queryToken(i);
      if (!(w > 0) || !key || !query) continue;
      const t = isShare(cur.map) ? w : w / cur.vmax;
      layout.links.append(svgEl('line', {
        x1: layout.xk, y1: key.y, x2: layout.xq, y2: query.y,
        'stroke-width': (0.75 + 6 * t).toFixed(3),
        'stroke-opacity': (0.12 + 0.88 * t).toFixed(3) }));
    }
  }

  /* The strongest few of `pairs` as text. */
  function strongest(pairs, other) {
    const attended = pairs.filter((p) => p[2] > 0).sort((a, b) => b[2] - a[2]);
    if (attended.length === 0) return 'nothing (every weight is 0).';
    const top = attended.slice(0, 3), more = attended.length - top.length;
    return top.map((p) => other(p) + ' ' + amount(cur.map, p[2])).join(', ') +
      (more > 0 ? ', and ' + more + ' more.' : '.');
  }

  /* Query i of the window (row cur.first + i of the map) as text. */
  function queryName(i) { return 'query ' + (cur.first + i) + ' ' + quoted(cur.rows[i]); }
  function keyName(j) { return 'key ' + j + ' ' + quoted(cur.cols[j]); }
  function capital(text) { return text.charAt(0).toUpperCase() + text.slice(1); }

  /* Marks a drawn token that weight w goes to or comes from, with its percent. */
  function markToken(t, w) {
    if (!t || (isShare(cur.map) ? w : w / cur.vmax) < 0.005) return;
    t.weight.textContent = amount(cur.map, w);
    t.g.classList.add('to');
  }

  function showQuery(i) {
    clearLines();
    const C = cur.cols.length, pairs = [];
    for (let j = 0; j < C; j++) {
      pairs.push([i, j, cur.w[i * C + j]]);
      markToken(keyToken(j), cur.w[i * C + j]);
    }
    queryToken(i).g.classList.add('on');
    link(pairs.slice());
    readout.textContent = capital(queryName(i)) + ' attends to ' +
      strongest(pairs, (p) => keyName(p[1]));
  }

  function showKey(j) {
    clearLines();
    const C = cur.cols.length, pairs = [];
    for (let i = 0; i < cur.rows.length; i++) {
      pairs.push([i, j, cur.w[i * C + j]]);
      markToken(queryToken(i), cur.w[i * C + j]);
    }
    keyToken(j).g.classList.add('on');
    link(pairs.slice());
    readout.textContent = capital(keyName(j)) + ' is attended to by ' +
      strongest(pairs, (p) => queryName(p[0]));
  }

  /* ---- matrix: a canvas, a row per query, a column per key ---- */
  let grid = null; /* where the cells are on the canvas: left, top, cell, rows, cols */
  let cursor = [0, 0]; /* the cell the arrow keys move from */

  /* The top of row i's colour scale: the largest weight shown, or the row's own,
   * so that the shape of a row whose weights are all small still shows. */
  function rowTop(i) {
    if (!perRow.checked) return cur.vmax;
    const C = cur.cols.length;
    let top = 0;
    for (let j = 0; j < C; j++) top = Math.max(top, cur.w[i * C + j]);
    return top || 1;
  }

  /* The cells' side: as large as fits the page's width, at most CELL_MAX, at
   * least a pixel (the canvas then scrolls). */
  function cellSide(C) {
    const room = Math.max(200, $('main').clientWidth - 160);
    return Math.max(1, Math.min(CELL_MAX, Math.floor(room / C)));
  }

  function drawMatrix() {
    const R = cur.rows.length, C = cur.cols.length, cell = cellSide(C);
    if (R === 0) {
      grid = { left: 0, top: 0, cell: cell, rows: 0, cols: C };
      canvas.width = canvas.height = 0;
      readout.textContent = 'No row of this map is held exactly.';
      return;
    }
    const labelled = cell >= LABELLED_CELL, numbered = cell >= NUMBERED_CELL;
    const ctx = canvas.getContext('2d');
    const upright = cur.cols.every((t) => shown(t).length <= 3);
    ctx.font = '11px ui-monospace, "DejaVu Sans Mono", monospace';
    const widest = (list) => list.reduce((w, t) => Math.max(w, ctx.measureText(shown(t)).width), 0);
    const left = labelled ? Math.ceil(widest(cur.rows)) + 8 : 0;
    const top = labelled ? (upright ? 16 : Math.ceil(widest(cur.cols)) + 8) : 0;
    grid = { left: left, top: top, cell: cell, rows: R, cols: C };
    /* As many canvas pixels as the screen has, so that text stays sharp. */
    const ratio = window.devicePixelRatio || 1, width = left + C * cell, height = top + R * cell;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = width + 'px';
    canvas.style.height = height + 'px';
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    const cells = document.createElement('canvas');
    const tops = [];
    for (let i = 0; i < R; i++) tops.push(rowTop(i));
    paint(cells, cur.w, 0, R, C, (i) => tops[i]);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(cells, left, top, C * cell, R * cell);
    ctx.font = '11px ui-monospace, "DejaVu Sans Mono", monospace';
    ctx.fillStyle = '#1b1b1b';
    if (labelled) drawLabels(ctx, upright);
    if (numbered && isShare(cur.map)) drawNumbers(ctx, tops);
    canvas.setAttribute('aria-label', (cur.map.derived ? describe(cur.map) : 'Attention weights') +
      (numbered && isShare(cur.map) ? ' in percent' : '') +
      ': ' + plural(R, 'query row') + ', ' + plural(C, 'key column') +
      '; hover a cell, or focus the matrix and use the arrow keys, to read its weight.');
    $('top').textContent = perRow.checked ? "the row's largest" : amount(cur.map, cur.vmax);
    readout.textContent = 'Hover over a cell, or focus the matrix and use the arrow keys,' +
      ' to read its weight.';
  }

  function drawLabels(ctx, upright) {
    const g = grid;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    cur.rows.forEach((t, i) => ctx.fillText(shown(t), g.left - 4, g.top + (i + 0.5) * g.cell));
    cur.cols.forEach((t, j) => {
      const x = g.left + (j + 0.5) * g.cell;
      if (upright) {
        ctx.textAlign = 'center';
        ctx.fillText(shown(t), x, g.top / 2);
        return;
      }
      ctx.save();
      ctx.translate(x, g.top - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = 'left';
      ctx.fillText(shown(t), 0, 0);
      ctx.restore();
    });
  }

  /* Each weight from 0.5% in its cell, in percent, white on dark cells. */
  function drawNumbers(ctx, tops) {
    const g = grid;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    for (let i = 0; i < g.rows; i++)
      for (let j = 0; j < g.cols; j++) {
        const w = cur.w[i * g.cols + j];
        if (w < 0.005) continue;
        ctx.fillStyle = w > 0.55 * tops[i] ? '#fff' : '#1b1b1b';
        ctx.fillText(String(Math.round(w * 100)), g.left + (j + 0.5) * g.cell,
          g.top + (i + 0.5) * g.cell);
      }
  }

  /* The cell under a point of the canvas (CSS pixels from its top left), or null. */
  function cellAt(x, y) {
    const i = Math.floor((y - grid.top) / grid.cell), j = Math.floor((x - grid.left) / grid.cell);
    return i >= 0 && i < grid.rows && j >= 0 && j < grid.cols ? [i, j] : null;
  }

  /* Reads cell (i, j) out, marks it, and puts the tooltip beside it. */
  function showCell(i, j) {
    const w = cur.w[i * grid.cols + j];
    readout.textContent = capital(queryName(i)) + ' \u2192 ' + keyName(j) + ': ' +
      exactText(cur.map, w);
    const x = grid.left + j * grid.cell, y = grid.top + i * grid.cell;
    Object.assign(mark.style, { left: x + 'px', top: y + 'px',
      width: grid.cell + 'px', height: grid.cell + 'px' });
    mark.hidden = false;
    tip.textContent = isShare(cur.map) ? w.toFixed(4) + ' (' + (w * 100).toFixed(1) + '%)'
      : w.toPrecision(4);
    tip.hidden = false;
    const r = canvas.getBoundingClientRect();
    tip.style.left = (r.left + x + grid.cell + 6) + 'px';
    tip.style.top = (r.top + y + grid.cell + 4) + 'px';
    cursor = [i, j];
  }

  function hideCell() {
    mark.hidden = true;
    tip.hidden = true;
  }

  canvas.tabIndex = 0;
  /* Where a mouse event is on a canvas, in CSS pixels from the top left of its
   * content, inside any border (offsetX and offsetY are rounded to whole pixels,
   * a cell off where the canvas starts between pixels). */
  function pointOn(target, e) {
    const r = target.getBoundingClientRect();
    return [e.clientX - r.left - target.clientLeft, e.clientY - r.top - target.clientTop];
  }
  canvas.addEventListener('mousemove', (e) => {
    const at = cellAt(...pointOn(canvas, e));
    if (at) showCell(at[0], at[1]); else hideCell();
  });
  canvas.addEventListener('click', (e) => {
    const at = cellAt(...pointOn(canvas, e));
    if (at) neuron.query(cur.first + at[0]);
  });
  canvas.addEventListener('mouseleave', hideCell);
  canvas.addEventListener('blur', hideCell);
  const MOVES = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
  canvas.addEventListener('keydown', (e) => {
    const move = MOVES[e.key];
    if (!move || grid.rows === 0) return;
    e.preventDefault();
    const i = Math.min(grid.rows - 1, Math.max(0, cursor[0] + move[0]));
    const j = Math.min(grid.cols - 1, Math.max(0, cursor[1] + move[1]));
    showCell(i, j);
  });

  /* ---- the overview: the whole of a map held only in part ---- */
  const overview = $('overview');
  let overviewScale = 1;

  /* The shown head's thumbnail shades (0 to 255), or their mean over the heads. */
  function shadesOf(m, head) {
    const plane = m.thumb_rows * m.thumb_cols, out = new Float64Array(plane);
    const first = head < 0 ? 0 : head, last = head < 0 ? m.heads - 1 : head;
    for (let h = first; h <= last; h++)
      for (let k = 0; k < plane; k++) out[k] += thumbShades(m)[h * plane + k] / (last - first + 1);
    return out;
  }

  /* The cells [lo, hi) of n that value p of `values` stands for (html_page.c's
   * thumbnails, heatmap_pixel_weight). */
  function covered(p, values, n) {
    const lo = Math.floor(p * n / values), hi = Math.floor((p + 1) * n / values);
    return [lo, Math.max(hi, lo + 1)];
  }

  function drawOverview() {
    const m = cur.map, box = $('overview-box');
    box.hidden = m.count === m.rows;
    if (box.hidden) return;
    cur.shades = shadesOf(m, cur.head);
    paint(overview, cur.shades, 0, m.thumb_rows, m.thumb_cols, () => 255);
    overviewScale = Math.max(1, Math.floor(OVERVIEW_PX / Math.max(m.thumb_rows, m.thumb_cols)));
    const height = m.thumb_rows * overviewScale;
    overview.style.width = m.thumb_cols * overviewScale + 'px';
    overview.style.height = height + 'px';
    /* The held rows, outlined where they fall, at least a few pixels high. */
    const band = $('held-band'), from = Math.floor(height * m.first / m.rows);
    const tall = Math.max(4, Math.ceil(height * (m.first + m.count) / m.rows) - from);
    band.hidden = m.count === 0;
    band.style.top = overview.clientTop + Math.min(from, height - tall) + 'px';
    band.style.height = tall + 'px';
    $('overview-text').textContent = 'The whole map, downsampled to ' + m.thumb_rows + ' x ' +
      m.thumb_cols + ': each pixel the ' + (m.hard ? 'largest' : 'mean') + ' of the weights it' +
      ' covers' + (cur.head < 0 ? ' (for the mean of the heads, the mean of theirs)' : '') +
      ', to 1/255 of ' + amount(m, m.vmax) + '. Outlined: the rows held exactly.' +
      ' Hover over it to read a pixel.';
    overview.setAttribute('aria-label', $('overview-text').textContent);
  }

  overview.addEventListener('mousemove', (e) => {
    const m = cur.map, [x, y] = pointOn(overview, e);
    const ty = Math.floor(y / overviewScale), tx = Math.floor(x / overviewScale);
    if (ty < 0 || ty >= m.thumb_rows || tx < 0 || tx >= m.thumb_cols) return;
    const [i0, i1] = covered(ty, m.thumb_rows, m.rows);
    const [j0, j1] = covered(tx, m.thumb_cols, m.cols);
    const w = cur.shades[ty * m.thumb_cols + tx] / 255 * m.vmax;
    readout.textContent = 'Queries ' + i0 + ' to ' + (i1 - 1) + ', keys ' + j0 + ' to ' +
      (j1 - 1) + ' (downsampled): ' + (m.hard ? 'largest' : 'mean') + ' about ' +
      exactText(m, w) + ', to within ' + exactText(m, m.vmax / 510) + '.';
  });

  /* ---- the step slider: for causal self-attention over one sequence ---- */
  const stepped = recorded.length > 0 &&
    recorded.every((m) => m.causal && m.row_tokens === recorded[0].row_tokens);

  function updateSteps() {
    $('steps').hidden = !stepped || !cur.map.causal || cur.rows.length === 0;
    if ($('steps').hidden) return;
    const at = +slider.value;
    slider.min = cur.first;
    slider.max = cur.first + cur.rows.length - 1;
    slider.value = Math.min(+slider.max, Math.max(+slider.min, at));
    drawStep();
  }

  /* Row t of the map: what token t attended to of itself and the tokens before
   * it, as a bar a key, as tall as its weight against the row's largest. */
  function drawStep() {
    const t = +slider.value, i = t - cur.first, C = cur.cols.length, n = t + 1;
    const row = Array.from(cur.w.subarray(i * C, i * C + n));
    const top = Math.max(...row) || 1;
    const bar = Math.max(1, Math.min(STRIP_BAR_MAX, Math.floor(($('main').clientWidth - 40) / n)));
    strip.width = n * bar;
    strip.height = STRIP_HEIGHT;
    strip.dataset.bar = bar;
    const ctx = strip.getContext('2d');
    row.forEach((w, j) => {
      const h = Math.round(STRIP_HEIGHT * w / top);
      ctx.fillStyle = rgb(colourOf(w / top));
      ctx.fillRect(j * bar, STRIP_HEIGHT - h, bar, h);
    });
    $('step-at').textContent = t + ' of ' + (cur.map.rows - 1);
    slider.setAttribute('aria-valuetext', 'step ' + t + ', ' + shown(cur.rows[i]));
    $('step-text').textContent = 'Step ' + t + ': ' + quoted(cur.rows[i]) + ' attends to ' +
      strongest(row.map((w, j) => [i, j, w]), (p) => keyName(p[1])) +
      ' Bars from key 0 to key ' + t + ', as tall as the value against the step\'s largest (' +
      amount(cur.map, top) + ').';
  }
  slider.addEventListener('input', () => {
    drawStep();
    neuron.query(+slider.value);
  });
  strip.addEventListener('mousemove', (e) => {
    const i = +slider.value - cur.first, j = Math.floor(pointOn(strip, e)[0] / +strip.dataset.bar);
    if (j > +slider.value) return;
    readout.textContent = capital(queryName(i)) + ' \u2192 ' + keyName(j) + ': ' +
      exactText(cur.map, cur.w[i * cur.cols.length + j]);
  });

  /* ---- start ---- */
  document.title = 'attn: what ' + (rec.model || 'the model') + ' attends to';
  $('summary').textContent = 'Model ' + (rec.model || '?') +
    (rec.task ? ', task ' + rec.task : '') + ': ' + plural(rec.keys.length, 'key token') +
    ', ' + plural(rec.queries.length, 'query token') + ', ' +
    plural(recorded.length, 'attention map') +
    (recorded.length < rec.maps.length ? ' and ' + plural(rec.maps.length - recorded.length,
      'map') + ' derived from them (gradient-weighted, rollout)' : '') + '.';
  $('bar').style.background =
    'linear-gradient(to right, ' + STOPS.map((c) => rgb(c)).join(', ') + ')';
  /* Head h's held row i of map m, exactly. */
  function exactRow(m, h, i) {
    return exact(m).subarray((h * m.count + i) * m.cols, (h * m.count + i + 1) * m.cols);
  }
  const neuron = attnNeuronView({ rec: rec, $: $, shown: shown, quoted: quoted, floats: floats,
    plural: plural, readout: readout, pointOn: pointOn, exactRow: exactRow });
  if (rec.maps.length === 0) {
    $('model').hidden = true;
    $('main').hidden = true;
    $('held').textContent = 'This record holds no attention maps.';
  } else {
    $('held').textContent = recordHeldText();
    drawModelView();
    const group = (label) => {
      const g = document.createElement('optgroup');
      g.label = label;
      mapSel.append(g);
      return g;
    };
    const weightsGroup = group('attention weights');
    const derivedGroup = recorded.length < rec.maps.length ? group('derived from them') : null;
    rec.maps.forEach((m, i) =>
      (m.derived ? derivedGroup : weightsGroup).append(new Option(describe(m), String(i))));
    fillHeads(rec.maps[0]);
    mapSel.addEventListener('change', () => {
      fillHeads(rec.maps[+mapSel.value]);
      select();
    });
    headSel.addEventListener('change', select);
    for (const r of document.querySelectorAll('input[name=view]'))
      r.addEventListener('change', render);
    perRow.addEventListener('change', render);
    for (const input of [$('keys-from'), $('queries-from')])
      input.addEventListener('change', render);
    /* The slider starts at the last step: a language model's newest token. */
    slider.max = String(Number.MAX_SAFE_INTEGER);
    slider.value = slider.max;
    select();
  }
  /* For whoever waits on the page (the browser test): drawn, and how long after
   * the navigation began. */
  document.documentElement.dataset.readyMs = String(Math.round(performance.now()));
})();
