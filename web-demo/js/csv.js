// "Check a CSV file": runs worker.js, shows progress, a summary, a chart of findings by code,
// a paginated findings table (the rows stay in the worker, up to its caps; only one page is in
// the DOM), and the downloads.
import { currentConfig, store } from './store.js';
import { el, formatInt, rfc3339, setDownload } from './util.js';

const $ = (id) => document.getElementById(id);
const PAGE = 100;
const SVG = 'http://www.w3.org/2000/svg';

let worker = null;
let running = false;
let pageReq = 0;
let view = { offset: 0, total: 0, code: '', verdict: '' };
let carried = null;

function setPhase(text, value) {
  $('csv-phase').textContent = text;
  const bar = $('csv-progress');
  if (value === null || value === undefined) bar.removeAttribute('value');
  else bar.value = value;
}

function stopWorker() {
  if (worker) worker.terminate();
  worker = null;
}

function setRunning(on) {
  running = on;
  $('csv-stop').disabled = !on;
  $('csv-card').setAttribute('aria-busy', on ? 'true' : 'false');
}

function resetDownloads() {
  for (const id of ['dl-annotated', 'dl-aggregated']) {
    const a = $(id);
    if (a.dataset.url) URL.revokeObjectURL(a.dataset.url);
    delete a.dataset.url;
    a.removeAttribute('href');
    a.setAttribute('aria-disabled', 'true');
  }
  $('dl-status').textContent = 'Preparing downloads…';
  $('dl-prepare').hidden = true;
  carried = null;
}

function start(file) {
  stopWorker();
  const config = currentConfig();
  if (store.errors.contracts) {
    setPhase('Fix the contracts JSON first.', 0);
    return;
  }
  $('csv-filename').textContent = `${file.name} (${formatInt(file.size)} bytes)`;
  $('csv-results').hidden = true;
  resetDownloads();
  setRunning(true);
  setPhase('Starting…', 1);
  const now = rfc3339(new Date(store.nowMs));
  worker = new Worker(new URL('../worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = (e) => onMessage(e.data);
  worker.onerror = (e) => {
    e.preventDefault();
    setRunning(false);
    setPhase(`The checker failed: ${e.message || 'unknown error'}`, 0);
    $('csv-phase').dataset.state = 'error';
    stopWorker();
  };
  $('csv-phase').dataset.state = 'running';
  worker.postMessage({ type: 'run', file, config, now });
}

function onMessage(m) {
  if (m.type === 'progress') {
    setPhase(m.phase, m.value);
    if (m.bytes !== undefined) {
      // Real progress: bytes of the file read into the session so far.
      const bar = $('csv-progress');
      bar.dataset.bytes = String(m.bytes);
      bar.dataset.total = String(m.total);
    }
  } else if (m.type === 'error') {
    setRunning(false);
    setPhase(`Could not check the file: ${m.message}`, 0);
    $('csv-phase').dataset.state = 'error';
  } else if (m.type === 'done') {
    setRunning(false);
    setPhase(`Checked ${formatInt(m.summary.records)} records in ${m.elapsed.toFixed(1)} s (now = ${rfc3339(new Date(store.nowMs))}).`, 100);
    $('csv-phase').dataset.state = 'done';
    showSummary(m);
    if (m.downloadsOnRequest) {
      $('dl-prepare').hidden = false;
      $('dl-prepare').disabled = false;
      $('dl-status').textContent = 'A large file: the downloads are built when asked for (a second pass over the file; it needs memory in proportion to the file).';
    }
  } else if (m.type === 'page') {
    if (m.id === pageReq) renderPage(m);
  } else if (m.type === 'file') {
    const a = $(m.kind === 'annotated' ? 'dl-annotated' : 'dl-aggregated');
    if (m.blob) setDownload(a, m.blob, m.name);
    a.dataset.info = m.info || '';
    if (m.kind === 'aggregated') {
      $('dl-prepare').hidden = true;
      carried = m.carried || [];
      const extra = carried.length ? ` ${carried.length} remainder(s) below one unit to carry into the next run.` : '';
      $('dl-status').textContent = `Hourly fix: ${m.info || ''}.${extra}`;
    }
  }
}

function showSummary(m) {
  const s = m.summary;
  $('s-records').textContent = formatInt(s.records);
  $('s-accepted').textContent = formatInt(s.accepted);
  $('s-rejected').textContent = formatInt(s.rejected);
  $('s-warnings').textContent = formatInt(s.warnings);
  $('s-time').textContent = m.elapsed.toFixed(1);
  const summary = $('csv-summary');
  for (const k of ['records', 'accepted', 'rejected', 'warnings']) summary.dataset[k] = String(s[k]);
  drawChart(m.chart);
  // The table holds a bounded number of findings (the worker's caps); say which.
  const t = m.table;
  $('table-note').textContent = t && t.capped
    ? `The table holds the first ${formatInt(t.perCode)} findings of each code, at most ${formatInt(t.cap)} (${formatInt(t.kept)} of ${formatInt(m.findings)} findings here), so that a large file keeps the tab's memory bounded. The counts, the chart and both downloads cover every row.`
    : `The table holds every finding (${formatInt(m.findings)}).`;
  $('table-note').dataset.capped = t && t.capped ? 'true' : 'false';
  const sel = $('filter-code');
  sel.replaceChildren(el('option', { value: '', text: 'All codes' }), ...m.codes.map((c) => el('option', { value: c, text: c })));
  $('filter-verdict').value = '';
  view = { offset: 0, total: 0, code: '', verdict: '' };
  $('csv-results').hidden = false;
  requestPage();
}

function drawChart(rows) {
  const box = $('csv-chart');
  if (!rows.length) {
    box.replaceChildren(el('p', { class: 'help', text: 'No findings: every record is clean.' }));
    return;
  }
  const max = Math.max(...rows.map((r) => r.count));
  const barH = 22;
  const gap = 6;
  const labelW = 210;
  const width = 760;
  const plotW = width - labelW - 90;
  const height = rows.length * (barH + gap) + 24;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', String(width));
  svg.setAttribute('role', 'img');
  const total = rows.reduce((a, r) => a + r.count, 0);
  svg.setAttribute('aria-label', `Findings by code: ${rows.map((r) => `${r.code} ${r.count}`).join(', ')}`);
  const mk = (tag, attrs, text) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    return n;
  };
  rows.forEach((r, i) => {
    const y = i * (barH + gap);
    const w = Math.max(2, (r.count / max) * plotW);
    svg.append(mk('text', { x: labelW - 8, y: y + barH / 2 + 4, 'text-anchor': 'end', class: 'code' }, r.code));
    const bar = mk('rect', { x: labelW, y, width: w, height: barH, rx: 3, class: `bar-${r.severity}` });
    bar.append(mk('title', {}, `${r.code} (${r.severity}): ${r.count}`));
    svg.append(bar);
    svg.append(mk('text', { x: labelW + w + 6, y: y + barH / 2 + 4 }, formatInt(r.count)));
  });
  const ly = rows.length * (barH + gap) + 10;
  svg.append(mk('rect', { x: labelW, y: ly - 9, width: 10, height: 10, class: 'bar-error' }));
  svg.append(mk('text', { x: labelW + 14, y: ly }, 'error (rejects the record)'));
  svg.append(mk('rect', { x: labelW + 200, y: ly - 9, width: 10, height: 10, class: 'bar-warning' }));
  svg.append(mk('text', { x: labelW + 214, y: ly }, `warning · ${formatInt(total)} findings in all`));
  box.replaceChildren(svg);
}

function requestPage() {
  if (!worker) return;
  pageReq += 1;
  worker.postMessage({ type: 'page', id: pageReq, code: view.code, verdict: view.verdict, offset: view.offset, limit: PAGE });
}

function renderPage(m) {
  view.total = m.total;
  view.offset = m.offset;
  const body = $('findings-table').tBodies[0];
  body.replaceChildren(
    ...m.rows.map((r) =>
      el('tr', { 'data-code': r.code, 'data-verdict': r.verdict },
        el('td', { class: 'num', text: String(r.line) }),
        el('td', { class: 'mono', text: r.record_id ?? '' }),
        el('td', {}, el('span', { class: `pill ${r.verdict}`, text: r.verdict })),
        el('td', {}, el('span', { class: `sev-${r.severity}`, text: r.code })),
        el('td', { class: 'mono', text: r.field ?? '' }),
        el('td', { text: r.message }),
        el('td', { text: r.hint ?? '' }))),
  );
  if (!m.rows.length) body.append(el('tr', {}, el('td', { colspan: '7', class: 'empty', text: 'No findings match.' })));
  const to = Math.min(m.total, m.offset + m.rows.length);
  $('page-info').textContent = m.total ? `Findings ${formatInt(m.offset + 1)}–${formatInt(to)} of ${formatInt(m.total)}` : 'No findings';
  $('page-prev').disabled = m.offset <= 0;
  $('page-next').disabled = to >= m.total;
}

export function initCsv() {
  const input = $('csv-file');
  input.addEventListener('change', () => {
    if (input.files && input.files[0]) start(input.files[0]);
    input.value = '';
  });
  const zone = $('dropzone');
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) start(f);
  });
  $('csv-stop').addEventListener('click', () => {
    if (!running) return;
    stopWorker();
    setRunning(false);
    setPhase('Stopped. Nothing was kept from this run.', 0);
    $('csv-phase').dataset.state = 'stopped';
  });
  $('filter-code').addEventListener('change', (e) => {
    view.code = e.target.value;
    view.offset = 0;
    requestPage();
  });
  $('filter-verdict').addEventListener('change', (e) => {
    view.verdict = e.target.value;
    view.offset = 0;
    requestPage();
  });
  $('page-prev').addEventListener('click', () => {
    view.offset = Math.max(0, view.offset - PAGE);
    requestPage();
  });
  $('page-next').addEventListener('click', () => {
    if (view.offset + PAGE < view.total) view.offset += PAGE;
    requestPage();
  });
  $('dl-prepare').addEventListener('click', () => {
    if (!worker) return;
    $('dl-prepare').disabled = true;
    $('dl-status').textContent = 'Preparing downloads…';
    worker.postMessage({ type: 'downloads' });
  });
  for (const id of ['dl-annotated', 'dl-aggregated']) {
    $(id).addEventListener('click', (e) => {
      if (!$(id).dataset.url) e.preventDefault();
    });
  }
  resetDownloads();
  $('dl-status').textContent = '';
}
