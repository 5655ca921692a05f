// The CSV check, off the main thread. It loads the metergate package itself, compiles its own
// Validator from the page's contracts, policy and settings, and streams the file through ONE
// CSV session (Validator.csvSession): File.stream() chunks go into the session as bytes, so
// duplicates and overlaps are found across the whole file while only one chunk of it is in
// memory at a time, and the progress bar moves with the bytes read (see README.md). The page
// can stop it at any time by terminating it.
//
// Memory stays bounded by the file's row count at a few bytes a row, not by its findings: only
// verdicts with findings cross from WASM (report "problems"), each row keeps one flag byte,
// its first line and its set of codes (typed arrays), and the findings table keeps at most
// TABLE_CAP findings (TABLE_CAP_PER_CODE per code) as objects; the page says when it is capped.
//
// Protocol (page -> worker):  {type:'run', file, config, now}
//                             {type:'page', id, code, verdict, offset, limit}
//                             {type:'downloads'}  (build them now, for a large file)
// (worker -> page):           {type:'progress', phase, value, bytes, total}
//                             {type:'done', summary, chart, codes, elapsed, findings,
//                              table: {kept, capped, cap, perCode}}
//                             {type:'page', id, rows, total, offset}
//                             {type:'file', kind, blob, name, info}
//                             {type:'error', message}
import { loadMetergate, makeValidator } from './js/mg.js';
import { csvCell, csvLine, parseCsv } from './js/csvparse.js';

let state = null;

const post = (m) => self.postMessage(m);
const progress = (phase, value, extra = {}) => post({ type: 'progress', phase, value, ...extra });

/**
 * How many findings the table keeps, at most, in all and per code (the first ones in file
 * order). A 1M-row file has hundreds of thousands of findings: as objects they would take
 * gigabytes. The counts, the chart and the downloads cover every row whatever these caps.
 */
const TABLE_CAP = 20_000;
const TABLE_CAP_PER_CODE = 2_000;
/**
 * Files up to this size get their downloads built right after the check. Larger ones on
 * request (the page's "Prepare the downloads" button): the second pass holds the hourly sums
 * and the two files, memory in proportion to the file that a check alone does not need.
 */
const AUTO_DOWNLOADS_MAX_BYTES = 32 * 1024 * 1024;
/** Bytes per session.push (File.stream() chunks are larger). */
const PUSH_SLICE = 16 * 1024;

/** A growable typed array (one number per row, without holding verdict objects). */
class Column {
  constructor(Type) {
    this.Type = Type;
    this.a = new Type(1 << 16);
    this.n = 0;
  }
  reserve(n) {
    if (n <= this.a.length) return;
    let len = this.a.length;
    while (len < n) len *= 2;
    const b = new this.Type(len);
    b.set(this.a.subarray(0, this.n));
    this.a = b;
  }
  push(x) {
    this.reserve(this.n + 1);
    this.a[this.n++] = x;
  }
  /** Appends `x` until there are `n` values. */
  fillTo(n, x) {
    if (n <= this.n) return;
    this.reserve(n);
    this.a.fill(x, this.n, n);
    this.n = n;
  }
  append(arr) {
    this.reserve(this.n + arr.length);
    this.a.set(arr, this.n);
    this.n += arr.length;
  }
  get(i) {
    return this.a[i];
  }
}

// Row flags (one byte a row).
const ACCEPTED = 1;
const REJECTED = 2;
const REPEAT = 4; // an idempotent repeat (duplicate-ignored): billed once, not summed again
const FIXABLE = 8; // rejected only for errors the hourly aggregation fixes

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
  // Per row, compactly: its flags, the first line of the file it is on, and its set of codes
  // (an index into `codeSets`, 0 = none). Only rows with findings cross from WASM as objects.
  const flags = new Column(Uint8Array);
  const lines = new Column(Float64Array);
  const codeSet = new Column(Uint16Array);
  const codeSets = [''];
  const codeSetIds = new Map([['', 0]]);
  const findings = []; // the table: at most TABLE_CAP, TABLE_CAP_PER_CODE per code
  const kept = new Map(); // code -> findings kept
  let findingCount = 0;
  const byCode = new Map();
  const take = (verdicts) => {
    for (const v of verdicts) {
      const i = v.index;
      flags.fillTo(i, ACCEPTED);
      codeSet.fillTo(i, 0);
      const fs = v.findings;
      let f = v.verdict === 'accepted' ? ACCEPTED : REJECTED;
      const codes = [];
      let errors = 0;
      let fixable = true;
      for (const x of fs) {
        if (!codes.includes(x.code)) codes.push(x.code);
        if (x.code === 'duplicate-ignored') f |= REPEAT;
        if (x.severity === 'error') {
          errors += 1;
          if (!FIXABLE_ERRORS(x)) fixable = false;
        }
        const key = `${x.severity}\u0000${x.code}`;
        byCode.set(key, (byCode.get(key) || 0) + 1);
        findingCount += 1;
        const k = kept.get(x.code) || 0;
        if (findings.length < TABLE_CAP && k < TABLE_CAP_PER_CODE) {
          kept.set(x.code, k + 1);
          findings.push({ row: i, line: v.line, record_id: v.record_id ?? null, code: x.code, severity: x.severity, field: x.field ?? null, message: x.message, hint: x.hint ?? null });
        }
      }
      if (f & REJECTED && errors && fixable) f |= FIXABLE;
      const set = codes.join(';');
      let id = codeSetIds.get(set);
      if (id === undefined) {
        id = codeSets.length;
        if (id > 0xffff) throw new Error('more than 65,535 different sets of finding codes');
        codeSets.push(set);
        codeSetIds.set(set, id);
      }
      flags.push(f);
      codeSet.push(id);
    }
  };

  // One pass: the file's bytes, chunk by chunk, through one session. Only the verdicts with
  // findings cross into JS; the session tells where every row starts (rowLines).
  const session = validator.csvSession({ now, report: 'problems', rowLines: true });
  let summary;
  try {
    const reader = file.stream().getReader();
    let bytes = 0;
    let lastPost = -Infinity;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      // In slices: each push's verdicts cross as one JSON text, and texts this short stay in
      // V8's young generation, collected at once, instead of piling up as large objects
      // until a full collection. Progress is told per slice.
      for (let at = 0; at < value.length; at += PUSH_SLICE) {
        const slice = value.subarray(at, at + PUSH_SLICE);
        take(session.push(slice));
        lines.append(session.takeRowLines());
        bytes += slice.length;
        const t = performance.now();
        if (t - lastPost > 100) {
          lastPost = t;
          const pct = Math.min(100, Math.round((bytes / size) * 100));
          progress(`Validating: ${pct} % of the file, ${lines.n.toLocaleString('en-US')} rows so far (duplicates are checked across the whole file)…`, 5 + (85 * bytes) / size, { bytes, total: size });
        }
      }
    }
    const end = session.finish();
    take(end.verdicts);
    lines.append(session.takeRowLines());
    summary = end.summary;
  } finally {
    session.free();
    validator.free();
  }
  flags.fillTo(lines.n, ACCEPTED);
  codeSet.fillTo(lines.n, 0);
  progress('Indexing the findings…', 92, { bytes: size, total: size });

  const chart = [...byCode.entries()]
    .map(([k, count]) => {
      const [severity, code] = k.split('\u0000');
      return { code, severity, count };
    })
    .sort((a, b) => (a.severity === b.severity ? b.count - a.count : a.severity === 'error' ? -1 : 1));
  const codes = [...new Set(chart.map((c) => c.code))].sort();
  state = { file, flags, lines, codeSet, codeSets, findings, filters: new Map(), config, mg };
  const capped = findings.length < findingCount;
  post({
    type: 'done',
    summary,
    chart,
    codes,
    elapsed: (performance.now() - t0) / 1000,
    findings: findingCount,
    table: { kept: findings.length, capped, cap: TABLE_CAP, perCode: TABLE_CAP_PER_CODE },
    downloadsOnRequest: size > AUTO_DOWNLOADS_MAX_BYTES,
  });

  if (size <= AUTO_DOWNLOADS_MAX_BYTES) await downloads();
}

/** Builds the downloads once (after the check, or when the page asks for them). */
function downloads() {
  if (!state) throw new Error('no file has been checked');
  if (!state.downloads) state.downloads = buildDownloads();
  return state.downloads;
}

function filtered(code, verdict) {
  const key = `${code}\u0000${verdict}`;
  let idx = state.filters.get(key);
  if (!idx) {
    const want = verdict === 'accepted' ? ACCEPTED : verdict === 'rejected' ? REJECTED : 0;
    const out = [];
    const fs = state.findings;
    for (let i = 0; i < fs.length; i++) {
      const f = fs[i];
      if (code && f.code !== code) continue;
      if (want && !(state.flags.get(f.row) & want)) continue;
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
      line: f.line,
      record_id: f.record_id,
      verdict: state.flags.get(f.row) & ACCEPTED ? 'accepted' : 'rejected',
      code: f.code,
      severity: f.severity,
      field: f.field,
      message: f.message,
      hint: f.hint,
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
 * or fixable rows. Rows are summed in batches without units; the partial sums are kept as
 * JSON text, grouped by marketplace, product and customer, and summed again with the
 * contracts' units group by group, in key order: a sum and its carried remainder depend only
 * on its own key's records, so this gives what one call over every row gives, without every
 * record as an object at once.
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
  const groups = new Map(); // "marketplace\0product\0customer" -> JSON texts of partial sums
  let batch = [];
  let repeats = 0;
  let fixed = 0;
  let used = 0;
  const aggregateBatch = (force) => {
    if (batch.length >= 20000 || (force && batch.length)) {
      const out = state.mg.aggregateHourly(batch, null);
      for (const r of out.records) {
        const key = `${r.marketplace}\u0000${r.product}\u0000${r.customer}`;
        const g = groups.get(key);
        if (g) g.push(JSON.stringify(r));
        else groups.set(key, [JSON.stringify(r)]);
      }
      batch = [];
    }
  };
  const emitRow = (i, rowLines) => {
    while (rowLines.length > 1 && rowLines[rowLines.length - 1].trim() === '') rowLines.pop();
    const f = state.flags.get(i);
    const codes = state.codeSets[state.codeSet.get(i)];
    for (let j = 0; j < rowLines.length - 1; j++) chunk.push(rowLines[j]);
    chunk.push(`${rowLines[rowLines.length - 1]},${f & ACCEPTED ? 'accepted' : 'rejected'},${csvCell(codes)}`);
    flush(false);
    if (f & REPEAT) {
      repeats += 1; // an idempotent repeat: billed once, so it must not be summed twice
      return;
    }
    if (f & REJECTED) {
      if (!(f & FIXABLE)) return;
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
  parts.length = 0;

  const cols = ['marketplace', 'product', 'customer', 'dimension', 'quantity', 'start_time', 'end_time', 'plan'];
  const outParts = [csvLine(cols) + '\n'];
  const carried = [];
  let records = 0;
  let texts = [];
  const keys = [...groups.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const sumGroups = () => {
    if (!texts.length) return;
    const out = state.mg.aggregateHourly(JSON.parse(`[${texts.join(',')}]`), state.config.contracts);
    texts = [];
    const lines = out.records.map((r) => csvLine(cols.map((c) => r[c] ?? '')));
    if (lines.length) outParts.push(new Blob([lines.join('\n') + '\n']));
    records += out.records.length;
    for (const c of out.carried) carried.push(c);
  };
  try {
    for (const key of keys) {
      const g = groups.get(key);
      groups.delete(key);
      for (const t of g) texts.push(t);
      if (texts.length >= 20000) sumGroups();
    }
    sumGroups();
  } catch (e) {
    post({ type: 'file', kind: 'aggregated', blob: null, info: `cannot aggregate: ${e.message || e}` });
    return;
  }
  post({
    type: 'file',
    kind: 'aggregated',
    blob: new Blob(outParts, { type: 'text/csv' }),
    name: 'metergate-hourly.csv',
    info: `${records.toLocaleString('en-US')} hourly records from ${used.toLocaleString('en-US')} accepted or fixable rows (${fixed.toLocaleString('en-US')} fixed, ${repeats.toLocaleString('en-US')} idempotent repeats left out)`,
    carried,
  });
}

self.onmessage = async (e) => {
  const m = e.data;
  try {
    if (m.type === 'run') await run(m);
    else if (m.type === 'page') page(m);
    else if (m.type === 'downloads') await downloads();
  } catch (err) {
    post({ type: 'error', message: err && err.message ? err.message : String(err) });
  }
};
