'use strict';
/* The neuron view of attn show --html's page (after bertviz's): for one head of
 * a map and one query token, the query's vector q, each shown key's vector k,
 * and each dimension's contribution to the key's score, q_d k_d times the map's
 * scale (1 / sqrt(head_dim) for the Transformers, 1 for Luong's decoders:
 * html_page.c's score_scale), which summed over the dimensions is the score
 * before the softmax; then the scores and the recorded weights. The vectors are
 * drawn on one canvas (a row per key, a column per dimension), the numbers in a
 * table of a row per key. A key weighed by a long record's query is one of
 * thousands: past rec.neuron_all keys the view shows the rec.neuron_top the
 * query weighs most (html_page.c holds k for those alone), and says so.
 *
 * attention.js calls attnNeuronView once with what it shares, then choose(map,
 * head) when the main view changes and query(row) when a query is picked
 * (a click on a query token or a matrix cell, or the step slider). */
function attnNeuronView(page) {
  const { rec, $, shown, quoted, floats, plural, readout, pointOn, exactRow } = page;
  const canvas = $('neuron-canvas'), note = $('neuron-note'), querySel = $('neuron-query');
  const table = $('neuron-table'), body = table.tBodies[0], mark = $('neuron-mark');
  const ROW = 16, TITLE = 20, LABEL = 170, GAP = 18, BAR = 110, CELL_MAX = 18;
  /* A block of cells is at least this wide, so that its title fits. */
  const BLOCK_MIN = 190;
  /* Diverging colours: blue below 0, white at 0, red above. */
  const NEGATIVE = [33, 102, 172], ZERO = [247, 247, 247], POSITIVE = [178, 24, 43];
  let at = null; /* what is drawn: map, head, row, keys, q, k, terms, scores; geometry */

  function signedColour(t) {
    const end = t < 0 ? NEGATIVE : POSITIVE, f = Math.min(1, Math.abs(t));
    return 'rgb(' + ZERO.map((z, c) => Math.round(z + (end[c] - z) * f)).join(',') + ')';
  }

  function hasQk(m) { return m.q !== undefined; }

  /* Why map m at head `head` has no neuron view, or '' if it has one. */
  function unavailable(m, head) {
    if (m.derived) return 'The neuron view shows a recorded map\'s q and k: choose one of the' +
      ' attention weights\' maps.';
    if (m.additive) return 'Not available for this map: Bahdanau\'s additive attention scores' +
      ' v \u00b7 tanh(W q + U k), which is no dot product of a q and a k.';
    if (m.count === 0) return 'No query row of this map is held exactly: choose rows with' +
      ' --window FIRST:COUNT.';
    if (m.qk_not_held) return 'This map\'s q and k are recorded, but the page holds too many' +
      ' query rows to hold them too: write it with attn show FILE --html PAGE --window' +
      ' FIRST:COUNT of fewer rows.';
    if (!hasQk(m)) return 'This record holds no q and k. Record them with --qk: attn translate' +
      ' --model MODEL --attention REC.json --qk "TEXT" (or, for a language model, attn' +
      ' generate --model MODEL --prompt TEXT --tokens N --attention REC.json --qk), then attn' +
      ' show REC.json --html PAGE.';
    if (head < 0) return 'The neuron view shows one head: choose one under Head above (or' +
      ' click its thumbnail in the model view).';
    return '';
  }

  /* Map m's q of head h, held row i (m.first + index), and a function giving
   * k of key j (or null where the page does not hold it). */
  function vectors(m, h, i) {
    const D = m.head_dim;
    if (!m.qf) {
      m.qf = floats(m.q);
      m.kf = floats(m.k);
    }
    const q = m.qf.subarray((h * m.count + i - m.first) * D, (h * m.count + i - m.first + 1) * D);
    if (!m.k_keys) return [q, (j) => m.kf.subarray((h * m.cols + j) * D, (h * m.cols + j + 1) * D)];
    if (!m.slots) m.slots = [];
    if (!m.slots[h]) {
      let offset = 0;
      for (let e = 0; e < h; e++) offset += m.k_keys[e].length;
      const slot = new Int32Array(m.cols).fill(-1);
      m.k_keys[h].forEach((j, n) => { slot[j] = offset + n; });
      m.slots[h] = slot;
    }
    const slot = m.slots[h];
    return [q, (j) => slot[j] < 0 ? null : m.kf.subarray(slot[j] * D, (slot[j] + 1) * D)];
  }

  /* The keys of row i shown: every key it may see (a causal map's up to i) if
   * all are held and there are at most rec.neuron_all, else the rec.neuron_top
   * it weighs most of those held (ties to the first key, as html_page.c picks
   * them), in key order. Returns [keys, every]. */
  function shownKeys(m, i, weights, kOf) {
    const seen = [];
    for (let j = 0; j < (m.causal ? i + 1 : m.cols); j++) if (kOf(j)) seen.push(j);
    const visible = m.causal ? i + 1 : m.cols;
    if (seen.length === visible && visible <= rec.neuron_all) return [seen, true];
    const top = seen.slice().sort((a, b) => weights[b] - weights[a] || a - b)
      .slice(0, rec.neuron_top);
    return [top.sort((a, b) => a - b), false];
  }

  function choose(m, head) {
    const why = unavailable(m, head);
    querySel.parentNode.hidden = table.hidden = canvas.hidden = why !== '';
    mark.hidden = true;
    if (why !== '') {
      note.textContent = why;
      at = null;
      return;
    }
    const previous = +querySel.value, rows = rec[m.row_tokens];
    querySel.length = 0;
    for (let i = m.first; i < m.first + m.count; i++)
      querySel.add(new Option(i + ' ' + quoted(rows[i]), String(i)));
    const last = m.first + m.count - 1;
    querySel.value = String(querySel.length > 0 && previous >= m.first && previous <= last &&
      at !== null ? previous : last);
    at = { map: m, head: head };
    draw();
  }

  function query(row) {
    if (at === null || row < at.map.first || row >= at.map.first + at.map.count) return;
    querySel.value = String(row);
    draw();
  }

  function draw() {
    const m = at.map, h = at.head, i = +querySel.value, D = m.head_dim, scale = m.score_scale;
    const [q, kOf] = vectors(m, h, i);
    const weights = exactRow(m, h, i - m.first);
    const [keys, every] = shownKeys(m, i, weights, kOf);
    const terms = keys.map((j) => {
      const k = kOf(j), t = new Float64Array(D);
      for (let d = 0; d < D; d++) t[d] = q[d] * k[d] * scale;
      return t;
    });
    const scores = terms.map((t) => t.reduce((a, b) => a + b, 0));
    Object.assign(at, { row: i, keys: keys, q: q, kOf: kOf, terms: terms, scores: scores,
      weights: weights, every: every });
    const rows = rec[m.row_tokens], visible = m.causal ? i + 1 : m.cols;
    const scaleText = scale === 1 ? 'unscaled (Luong\'s score)'
      : 'times 1/\u221a' + D + ' = ' + scale.toPrecision(6);
    note.textContent = 'Head ' + h + ', query ' + i + ' ' + quoted(rows[i]) + ': its q (top row)' +
      ' and each key\'s k (left), and each dimension\'s contribution to the score, q_d k_d ' +
      scaleText + ' (right; red adds, blue takes away), whose sum over the ' + D +
      ' dimensions is the key\'s score before the softmax' +
      (rec.model === 'gpt' ? ' (plus ALiBi\'s bias, for a model with ALiBi positions)' : '') +
      '. ' +
      (every ? 'Every key the query sees (' + plural(visible, 'key') + ').'
        : 'Shown: the ' + plural(keys.length, 'key') + ' this query weighs most, of the ' +
          visible + ' it sees, in key order' +
          (m.k_keys ? ' (the page holds k of those alone).' : '.')) +
      ' Click a query token or a matrix cell (or move the step slider, for a language model)' +
      ' to pick another query.';
    drawCanvas();
    fillTable();
  }

  function drawCanvas() {
    const m = at.map, D = m.head_dim, n = at.keys.length;
    const room = Math.max(400, $('main').clientWidth - 30) - LABEL - 2 * GAP - BAR;
    const cell = Math.max(1, Math.min(CELL_MAX, Math.floor(room / (2 * D))));
    const block = Math.max(BLOCK_MIN, D * cell);
    const xk = LABEL, xt = xk + block + GAP, xw = xt + block + GAP;
    const width = xw + BAR, height = TITLE + (n + 1) * ROW;
    Object.assign(at, { cell: cell, xk: xk, xt: xt, xw: xw });
    /* Where the cells are, for whoever reads the canvas (the browser test). */
    canvas.dataset.geometry = JSON.stringify({ cell: cell, xk: xk, xt: xt, xw: xw, top: TITLE,
      row: ROW });
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = width + 'px';
    canvas.style.height = height + 'px';
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    let vecTop = 0, termTop = 0;
    for (let d = 0; d < D; d++) vecTop = Math.max(vecTop, Math.abs(at.q[d]));
    at.keys.forEach((j, r) => {
      const k = at.kOf(j);
      for (let d = 0; d < D; d++) {
        vecTop = Math.max(vecTop, Math.abs(k[d]));
        termTop = Math.max(termTop, Math.abs(at.terms[r][d]));
      }
    });
    vecTop = vecTop || 1;
    termTop = termTop || 1;
    const weightTop = Math.max(...at.keys.map((j) => at.weights[j])) || 1;
    ctx.font = '11px ui-monospace, "DejaVu Sans Mono", monospace';
    ctx.textBaseline = 'middle';
    ctx.fillStyle = '#595959';
    ctx.fillText('q and k (\u00b1' + vecTop.toPrecision(3) + ')', xk, TITLE / 2);
    ctx.fillText('q_d k_d \u00d7 scale (\u00b1' + termTop.toPrecision(3) + ')', xt, TITLE / 2);
    ctx.fillText('weight', xw, TITLE / 2);
    const rows = rec[m.row_tokens], cols = rec[m.col_tokens];
    const label = (text, r) => {
      ctx.fillStyle = '#1b1b1b';
      ctx.textAlign = 'right';
      ctx.fillText(text, xk - 6, TITLE + (r + 0.5) * ROW, LABEL - 10);
      ctx.textAlign = 'left';
    };
    label('q ' + at.row + ' ' + shown(rows[at.row]), 0);
    for (let d = 0; d < D; d++) {
      ctx.fillStyle = signedColour(at.q[d] / vecTop);
      ctx.fillRect(xk + d * cell, TITLE, cell, ROW - 2);
    }
    at.keys.forEach((j, r) => {
      const y = TITLE + (r + 1) * ROW, k = at.kOf(j);
      label('k ' + j + ' ' + shown(cols[j]), r + 1);
      for (let d = 0; d < D; d++) {
        ctx.fillStyle = signedColour(k[d] / vecTop);
        ctx.fillRect(xk + d * cell, y, cell, ROW - 2);
        ctx.fillStyle = signedColour(at.terms[r][d] / termTop);
        ctx.fillRect(xt + d * cell, y, cell, ROW - 2);
      }
      ctx.fillStyle = '#2171b5';
      ctx.fillRect(xw, y + 2, Math.max(1, BAR * at.weights[j] / weightTop), ROW - 6);
    });
    canvas.setAttribute('aria-label', 'q of query ' + at.row + ' and k of ' +
      plural(at.keys.length, 'key') + ', ' + D + ' dimensions each, and each dimension\'s' +
      ' contribution to the score; hover a cell to read it, the table below has the scores.');
  }

  function fillTable() {
    const m = at.map, cols = rec[m.col_tokens];
    /* The softmax of the scores, when they are every key the query sees. */
    let soft = null;
    if (at.every) {
      const top = Math.max(...at.scores);
      const e = at.scores.map((s) => Math.exp(s - top)), sum = e.reduce((a, b) => a + b, 0);
      soft = e.map((v) => v / sum);
    }
    table.tHead.rows[0].cells[4].hidden = soft === null;
    body.textContent = '';
    at.keys.forEach((j, r) => {
      const tr = body.insertRow();
      const order = Array.from(at.terms[r].keys())
        .sort((a, b) => Math.abs(at.terms[r][b]) - Math.abs(at.terms[r][a])).slice(0, 3);
      const cells = [String(j), shown(cols[j]), at.scores[r].toPrecision(6),
        at.weights[j].toFixed(4), soft ? soft[r].toFixed(4) : '',
        order.map((d) => 'd' + d + ' ' + (at.terms[r][d] >= 0 ? '+' : '') +
          at.terms[r][d].toPrecision(3)).join(', ')];
      cells.forEach((text, c) => {
        const td = tr.insertCell();
        td.textContent = text;
        if (c === 4) td.hidden = soft === null;
      });
    });
  }

  /* What the canvas holds at a point: [row (0 the query, r + 1 key r), block
   * ('k', 'term', 'weight'), dimension], or null. */
  function partAt(x, y) {
    const r = Math.floor((y - TITLE) / ROW), c = at.cell, D = at.map.head_dim;
    if (r < 0 || r > at.keys.length) return null;
    if (x >= at.xk && x < at.xk + D * c) return [r, 'k', Math.floor((x - at.xk) / c)];
    if (r > 0 && x >= at.xt && x < at.xt + D * c) return [r, 'term', Math.floor((x - at.xt) / c)];
    if (r > 0 && x >= at.xw && x < at.xw + BAR) return [r, 'weight', -1];
    return null;
  }

  canvas.addEventListener('mousemove', (e) => {
    if (at === null || at.keys === undefined) return;
    const part = partAt(...pointOn(canvas, e));
    mark.hidden = part === null;
    if (part === null) return;
    const [r, block, d] = part, cols = rec[at.map.col_tokens];
    const key = r > 0 ? 'Key ' + at.keys[r - 1] + ' ' + quoted(cols[at.keys[r - 1]]) : '';
    if (r === 0) {
      readout.textContent = 'Query ' + at.row + ', dimension ' + d + ': q_d = ' +
        at.q[d].toPrecision(6);
    } else if (block === 'k') {
      readout.textContent = key + ', dimension ' + d + ': k_d = ' +
        at.kOf(at.keys[r - 1])[d].toPrecision(6) + ' (q_d = ' + at.q[d].toPrecision(6) + ')';
    } else if (block === 'term') {
      readout.textContent = key + ', dimension ' + d + ': q_d k_d \u00d7 scale = ' +
        at.terms[r - 1][d].toPrecision(6) + ' of the score ' + at.scores[r - 1].toPrecision(6);
    } else {
      readout.textContent = key + ': score ' + at.scores[r - 1].toPrecision(6) + ', weight ' +
        at.weights[at.keys[r - 1]].toFixed(4);
    }
    const x = block === 'weight' ? at.xw : (block === 'k' ? at.xk : at.xt) + d * at.cell;
    Object.assign(mark.style, { left: x + 'px', top: TITLE + r * ROW + 'px',
      width: (block === 'weight' ? BAR : at.cell) + 'px', height: ROW - 2 + 'px' });
  });
  canvas.addEventListener('mouseleave', () => { mark.hidden = true; });
  querySel.addEventListener('change', draw);

  return { choose: choose, query: query };
}
