// The CSV check, off the main thread. It loads the metergate package itself, compiles its own
// Validator from the page's contracts, policy and settings, and validates the whole file with
// ONE validateCsv call, so that duplicates and overlaps are found across the whole file (see
// README.md, "Why one validateCsv call"). The page can stop it at any time by terminating it.
//
// Protocol (page -> worker):  {type:'run', file, config, now}
//                             {type:'page', id, code, verdict, offset, limit}
// (worker -> page):           {type:'progress', phase, value}
//                             {type:'done', summary, chart, codes, elapsed, findings}
//                             {type:'page', id, rows, total, offset}
//                             {type:'file', kind, blob, name, info}
//                             {type:'error', message}
import { loadMetergate, makeValidator } from './js/mg.js';
import { csvCell, csvLine, parseCsv } from './js/csvparse.js';

let state = null;

const post = (m) => self.postMessage(m);
const progress = (phase, value) => post({ type: 'progress', phase, value });

async function readFile(file) {
  if (typeof file === 'string') return file;
  const size = file.size || 1;
  const reader = file.stream().pipeThrough(new TextDecoderStream()).getReader();
  const parts = [];
  let bytes = 0;
  let lastPost = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    bytes += value.length;
    const now = performance.now();
    if (now - lastPost > 100) {
      lastPost = now;
      progress(`Reading the file: ${Math.min(100, Math.round((bytes / size) * 100))} %`, 5 + Math.min(20, (bytes / size) * 20));
    }
  }
  return parts.join('');
}

function countLines(text) {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n += 1;
  return n;
}

const FIXABLE_ERRORS = (f) => f.code === 'duplicate-request' || (f.code === 'invalid-quantity' && f.rule === 'all.unit');

async function run({ file, config, now }) {
  const t0 = performance.now();
  progress('Starting the checker…', 2);
  const mg = await loadMetergate();
  const text = await readFile(file);
  progress('Compiling the contracts and the policy…', 26);
  let validator;
  try {
    validator = makeValidator(config);
  } catch (e) {
    throw new Error(`cannot compile the contracts or the policy: ${e.message || e}`);
  }
  const approx = Math.max(0, countLines(text) - 1);
  progress(`Validating ${approx.toLocaleString('en-US')} rows in one pass (duplicates are checked across the whole file)…`, 30);
  // Let the progress message reach the page before the long synchronous call.
  await new Promise((r) => setTimeout(r, 0));
  let report;
  try {
    report = validator.validateCsv(text, now);
  } finally {
    validator.free();
  }
  progress('Indexing the findings…', 80);

  const verdicts = report.verdicts;
  const n = verdicts.length;
  const kind = new Uint8Array(n); // 1 accepted, 2 rejected
  const lines = new Uint32Array(n);
  const recordIds = new Array(n);
  const findings = []; // {row, code, severity, field, message, hint, rule}
  const byCode = new Map();
  for (let i = 0; i < n; i++) {
    const v = verdicts[i];
    kind[i] = v.verdict === 'accepted' ? 1 : 2;
    lines[i] = v.line;
    if (v.record_id) recordIds[i] = v.record_id;
    for (const f of v.findings) {
      findings.push({ row: i, code: f.code, severity: f.severity, field: f.field, message: f.message, hint: f.hint, rule: f.rule });
      const key = `${f.severity}\u0000${f.code}`;
      byCode.set(key, (byCode.get(key) || 0) + 1);
    }
    if (i % 100000 === 99999) progress(`Indexing the findings… ${Math.round(((i + 1) / n) * 100)} %`, 80 + (15 * (i + 1)) / n);
  }
  const chart = [...byCode.entries()]
    .map(([k, count]) => {
      const [severity, code] = k.split('\u0000');
      return { code, severity, count };
    })
    .sort((a, b) => (a.severity === b.severity ? b.count - a.count : a.severity === 'error' ? -1 : 1));
  const codes = [...new Set(chart.map((c) => c.code))].sort();
  state = { text, kind, lines, recordIds, findings, filters: new Map(), config, mg, verdicts: null };
  // Keep the per-row finding lists only as long as the downloads need them.
  state.rowFindings = verdicts.map((v) => v.findings);
  post({ type: 'done', summary: report.summary, chart, codes, elapsed: (performance.now() - t0) / 1000, findings: findings.length });

  buildAnnotated();
  buildAggregated();
  state.rowFindings = null;
}

function filtered(code, verdict) {
  const key = `${code}\u0000${verdict}`;
  let idx = state.filters.get(key);
  if (!idx) {
    const want = verdict === 'accepted' ? 1 : verdict === 'rejected' ? 2 : 0;
    const out = [];
    const fs = state.findings;
    for (let i = 0; i < fs.length; i++) {
      const f = fs[i];
      if (code && f.code !== code) continue;
      if (want && state.kind[f.row] !== want) continue;
      out.push(i);
    }
    idx = Int32Array.from(out);
    state.filters.set(key, idx);
  }
  return idx;
}

function page({ id, code, verdict, offset, limit }) {
  if (!state) return post({ type: 'page', id, rows: [], total: 0, offset: 0 });
  const idx = filtered(code || '', verdict || '');
  const start = Math.max(0, Math.min(offset, Math.max(0, idx.length - 1)));
  const rows = [];
  for (let k = start; k < Math.min(idx.length, start + limit); k++) {
    const f = state.findings[idx[k]];
    rows.push({
      line: state.lines[f.row],
      record_id: state.recordIds[f.row] ?? null,
      verdict: state.kind[f.row] === 1 ? 'accepted' : 'rejected',
      code: f.code,
      severity: f.severity,
      field: f.field ?? null,
      message: f.message,
      hint: f.hint ?? null,
    });
  }
  post({ type: 'page', id, rows, total: idx.length, offset: start });
}

/** The physical lines of each row: [first, last] 0-based line indexes, blank lines trimmed. */
function rowSpans(physical) {
  const n = state.lines.length;
  const spans = new Uint32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const first = state.lines[i] - 1;
    let last = i + 1 < n ? state.lines[i + 1] - 2 : physical.length - 1;
    while (last > first && physical[last].replace(/\r$/, '').trim() === '') last -= 1;
    spans[2 * i] = first;
    spans[2 * i + 1] = last;
  }
  return spans;
}

function buildAnnotated() {
  const physical = state.text.split('\n');
  state.physical = physical;
  state.spans = rowSpans(physical);
  const parts = [];
  let chunk = [];
  const strip = (s) => (s.endsWith('\r') ? s.slice(0, -1) : s);
  chunk.push(`${strip(physical[0] ?? '')},verdict,codes`);
  const n = state.lines.length;
  for (let i = 0; i < n; i++) {
    const first = state.spans[2 * i];
    const last = state.spans[2 * i + 1];
    for (let j = first; j < last; j++) chunk.push(strip(physical[j]));
    const codes = [...new Set(state.rowFindings[i].map((f) => f.code))].join(';');
    chunk.push(`${strip(physical[last])},${state.kind[i] === 1 ? 'accepted' : 'rejected'},${csvCell(codes)}`);
    if (chunk.length >= 20000) {
      parts.push(chunk.join('\n') + '\n');
      chunk = [];
    }
  }
  if (chunk.length) parts.push(chunk.join('\n') + '\n');
  post({ type: 'file', kind: 'annotated', blob: new Blob(parts, { type: 'text/csv' }), name: 'metergate-annotated.csv', info: `${n.toLocaleString('en-US')} rows` });
}

function buildAggregated() {
  const header = (parseCsv(state.physical[0] ?? '')[0] || []).map((h) => h.trim());
  const records = [];
  let repeats = 0;
  let fixed = 0;
  const n = state.lines.length;
  for (let i = 0; i < n; i++) {
    const fs = state.rowFindings[i];
    if (fs.some((f) => f.code === 'duplicate-ignored')) {
      repeats += 1; // an idempotent repeat: billed once, so it must not be summed twice
      continue;
    }
    if (state.kind[i] === 2) {
      const errors = fs.filter((f) => f.severity === 'error');
      if (!errors.length || !errors.every(FIXABLE_ERRORS)) continue;
      fixed += 1;
    }
    const first = state.spans[2 * i];
    const last = state.spans[2 * i + 1];
    const cells = parseCsv(state.physical.slice(first, last + 1).join('\n'))[0] || [];
    const rec = {};
    header.forEach((h, k) => {
      if (h && cells[k] !== undefined && cells[k] !== '' && !(h in rec)) rec[h] = cells[k];
    });
    records.push(rec);
  }
  let out;
  try {
    out = state.mg.aggregateHourly(records, state.config.contracts);
  } catch (e) {
    post({ type: 'file', kind: 'aggregated', blob: null, info: `cannot aggregate: ${e.message || e}` });
    return;
  }
  const cols = ['marketplace', 'product', 'customer', 'dimension', 'quantity', 'start_time', 'end_time', 'plan'];
  const lines = [cols.join(',')];
  for (const r of out.records) lines.push(csvLine(cols.map((c) => r[c] ?? '')));
  post({
    type: 'file',
    kind: 'aggregated',
    blob: new Blob([lines.join('\n') + '\n'], { type: 'text/csv' }),
    name: 'metergate-hourly.csv',
    info: `${out.records.length.toLocaleString('en-US')} hourly records from ${records.length.toLocaleString('en-US')} accepted or fixable rows (${fixed.toLocaleString('en-US')} fixed, ${repeats.toLocaleString('en-US')} idempotent repeats left out)`,
    carried: out.carried,
  });
}

self.onmessage = async (e) => {
  const m = e.data;
  try {
    if (m.type === 'run') await run(m);
    else if (m.type === 'page') page(m);
  } catch (err) {
    post({ type: 'error', message: err && err.message ? err.message : String(err) });
  }
};
