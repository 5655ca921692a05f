// The CSV check, off the main thread. It loads the metergate package itself, compiles its own
// Validator from the page's contracts, policy and settings, and streams the file through ONE
// CSV session (Validator.csvSession): File.stream() chunks go into the session as bytes, so
// duplicates and overlaps are found across the whole file while only one chunk of it is in
// memory at a time, and the progress bar moves with the bytes read (see README.md). The page
// can stop it at any time by terminating it.
//
// Protocol (page -> worker):  {type:'run', file, config, now}
//                             {type:'page', id, code, verdict, offset, limit}
// (worker -> page):           {type:'progress', phase, value, bytes, total}
//                             {type:'done', summary, chart, codes, elapsed, findings}
//                             {type:'page', id, rows, total, offset}
//                             {type:'file', kind, blob, name, info}
//                             {type:'error', message}
import { loadMetergate, makeValidator } from './js/mg.js';
import { csvCell, csvLine, parseCsv } from './js/csvparse.js';

let state = null;

const post = (m) => self.postMessage(m);
const progress = (phase, value, extra = {}) => post({ type: 'progress', phase, value, ...extra });

/** A growable typed array (one number per row, without holding verdict objects). */
class Column {
  constructor(Type) {
    this.Type = Type;
    this.a = new Type(1 << 16);
    this.n = 0;
  }
  push(x) {
    if (this.n === this.a.length) {
      const b = new this.Type(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = x;
  }
  get(i) {
    return this.a[i];
  }
}

const FIXABLE_ERRORS = (f) => f.code === 'duplicate-request' || (f.code === 'invalid-quantity' && f.rule === 'all.unit');

async function run({ file, config, now }) {
  const t0 = performance.now();
  progress('Starting the checker…', 2);
  const mg = await loadMetergate();
  progress('Compiling the contracts and the policy…', 3);
  let validator;
  try {
    validator = makeValidator(config);
  } catch (e) {
    throw new Error(`cannot compile the contracts or the policy: ${e.message || e}`);
  }
  if (typeof file === 'string') file = new Blob([file]);
  const size = file.size || 1;
  const kind = new Column(Uint8Array); // 1 accepted, 2 rejected
  const lines = new Column(Uint32Array);
  const recordIds = new Map(); // row -> record_id, for rows with findings
  const rowFindings = new Map(); // row -> findings, for rows with findings
  const findings = []; // {row, code, severity, field, message, hint, rule}
  const byCode = new Map();
  const take = (verdicts) => {
    for (const v of verdicts) {
      const i = kind.n;
      kind.push(v.verdict === 'accepted' ? 1 : 2);
      lines.push(v.line);
      if (!v.findings.length) continue;
      if (v.record_id) recordIds.set(i, v.record_id);
      rowFindings.set(i, v.findings);
      for (const f of v.findings) {
        findings.push({ row: i, code: f.code, severity: f.severity, field: f.field, message: f.message, hint: f.hint, rule: f.rule });
        const key = `${f.severity}\u0000${f.code}`;
        byCode.set(key, (byCode.get(key) || 0) + 1);
      }
    }
  };

  // One pass: the file's bytes, chunk by chunk, through one session.
  const session = validator.csvSession({ now, report: 'all' });
  let summary;
  try {
    const reader = file.stream().getReader();
    let bytes = 0;
    let lastPost = -Infinity;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      take(session.push(value));
      bytes += value.length;
      const t = performance.now();
      if (t - lastPost > 100) {
        lastPost = t;
        const pct = Math.min(100, Math.round((bytes / size) * 100));
        progress(`Validating: ${pct} % of the file, ${kind.n.toLocaleString('en-US')} rows so far (duplicates are checked across the whole file)…`, 5 + (85 * bytes) / size, { bytes, total: size });
      }
    }
    const end = session.finish();
    take(end.verdicts);
    summary = end.summary;
  } finally {
    session.free();
    validator.free();
  }
  progress('Indexing the findings…', 92, { bytes: size, total: size });

  const chart = [...byCode.entries()]
    .map(([k, count]) => {
      const [severity, code] = k.split('\u0000');
      return { code, severity, count };
    })
    .sort((a, b) => (a.severity === b.severity ? b.count - a.count : a.severity === 'error' ? -1 : 1));
  const codes = [...new Set(chart.map((c) => c.code))].sort();
  state = { file, kind, lines, recordIds, findings, filters: new Map(), config, mg, rowFindings };
  post({ type: 'done', summary, chart, codes, elapsed: (performance.now() - t0) / 1000, findings: findings.length });

  await buildDownloads();
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
      if (want && state.kind.get(f.row) !== want) continue;
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
      line: state.lines.get(f.row),
      record_id: state.recordIds.get(f.row) ?? null,
      verdict: state.kind.get(f.row) === 1 ? 'accepted' : 'rejected',
      code: f.code,
      severity: f.severity,
      field: f.field ?? null,
      message: f.message,
      hint: f.hint ?? null,
    });
  }
  post({ type: 'page', id, rows, total: idx.length, offset: start });
}

/** The file's physical lines (split at \n, a trailing \r removed), read again as a stream. */
async function* physicalLines(file) {
  const reader = file.stream().pipeThrough(new TextDecoderStream()).getReader();
  let rest = '';
  const strip = (s) => (s.endsWith('\r') ? s.slice(0, -1) : s);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const parts = (rest + value).split('\n');
    rest = parts.pop();
    for (const p of parts) yield strip(p);
  }
  if (rest !== '') yield strip(rest);
}

/**
 * The downloads, from a second streamed pass over the file (the text is never held whole):
 * the annotated CSV (every row plus its verdict) and the hourly aggregation of the accepted
 * or fixable rows (summed in batches without units, then once with the contracts' units, which
 * gives what one call over every row gives).
 */
async function buildDownloads() {
  const n = state.lines.n;
  const parts = [];
  let chunk = [];
  const flush = (force) => {
    if (chunk.length >= 20000 || (force && chunk.length)) {
      parts.push(new Blob([chunk.join('\n') + '\n']));
      chunk = [];
    }
  };
  let header = null;
  const partials = [];
  let batch = [];
  let repeats = 0;
  let fixed = 0;
  let used = 0;
  const aggregateBatch = (force) => {
    if (batch.length >= 20000 || (force && batch.length)) {
      const out = state.mg.aggregateHourly(batch, null);
      for (const r of out.records) partials.push(r);
      batch = [];
    }
  };
  const emitRow = (i, rowLines) => {
    while (rowLines.length > 1 && rowLines[rowLines.length - 1].trim() === '') rowLines.pop();
    const fs = state.rowFindings.get(i) ?? [];
    const codes = [...new Set(fs.map((f) => f.code))].join(';');
    for (let j = 0; j < rowLines.length - 1; j++) chunk.push(rowLines[j]);
    chunk.push(`${rowLines[rowLines.length - 1]},${state.kind.get(i) === 1 ? 'accepted' : 'rejected'},${csvCell(codes)}`);
    flush(false);
    if (fs.some((f) => f.code === 'duplicate-ignored')) {
      repeats += 1; // an idempotent repeat: billed once, so it must not be summed twice
      return;
    }
    if (state.kind.get(i) === 2) {
      const errors = fs.filter((f) => f.severity === 'error');
      if (!errors.length || !errors.every(FIXABLE_ERRORS)) return;
      fixed += 1;
    }
    const cells = parseCsv(rowLines.join('\n'))[0] || [];
    const rec = {};
    header.forEach((h, k) => {
      if (h && cells[k] !== undefined && cells[k] !== '' && !(h in rec)) rec[h] = cells[k];
    });
    batch.push(rec);
    used += 1;
    aggregateBatch(false);
  };
  let lineNo = 0;
  let row = -1; // the row whose lines are being gathered
  let rowLines = [];
  for await (const line of physicalLines(state.file)) {
    lineNo += 1;
    if (lineNo === 1) {
      header = (parseCsv(line)[0] || []).map((h) => h.replace(/^\ufeff+/, '').trim());
      chunk.push(`${line.replace(/^\ufeff/, '')},verdict,codes`);
      continue;
    }
    if (row + 1 < n && lineNo === state.lines.get(row + 1)) {
      if (row >= 0) emitRow(row, rowLines);
      row += 1;
      rowLines = [];
      if (row % 50000 === 0) progress(`Preparing the downloads… ${Math.round((row / n) * 100)} %`, 92 + (8 * row) / n);
    }
    if (row >= 0) rowLines.push(line);
  }
  if (row >= 0) emitRow(row, rowLines.length ? rowLines : ['']);
  flush(true);
  aggregateBatch(true);
  post({ type: 'file', kind: 'annotated', blob: new Blob(parts, { type: 'text/csv' }), name: 'metergate-annotated.csv', info: `${n.toLocaleString('en-US')} rows` });

  let out;
  try {
    out = state.mg.aggregateHourly(partials, state.config.contracts);
  } catch (e) {
    post({ type: 'file', kind: 'aggregated', blob: null, info: `cannot aggregate: ${e.message || e}` });
    return;
  }
  const cols = ['marketplace', 'product', 'customer', 'dimension', 'quantity', 'start_time', 'end_time', 'plan'];
  const out_lines = [cols.join(',')];
  for (const r of out.records) out_lines.push(csvLine(cols.map((c) => r[c] ?? '')));
  post({
    type: 'file',
    kind: 'aggregated',
    blob: new Blob([out_lines.join('\n') + '\n'], { type: 'text/csv' }),
    name: 'metergate-hourly.csv',
    info: `${out.records.length.toLocaleString('en-US')} hourly records from ${used.toLocaleString('en-US')} accepted or fixable rows (${fixed.toLocaleString('en-US')} fixed, ${repeats.toLocaleString('en-US')} idempotent repeats left out)`,
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
