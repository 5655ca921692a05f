// The npm package metergate (built into wasm/pkg by wasm/build.sh) on the benchmark data:
//
//   node bench/node/metergate.mjs csv     DATA_DIR   Validator.validateCsv(text, now)
//   node bench/node/metergate.mjs objects DATA_DIR   Validator.validate(objects, now), the
//                                                    objects split from the CSV outside the
//                                                    timed part
//   node bench/node/metergate.mjs session DATA_DIR   Validator.csvSession({now, report:
//                                                    "problems"}), the file read from disk in
//                                                    1 MiB chunks inside the timed part (the
//                                                    text is never held whole)
//
// Built-in rules only (no policy), as `metergate check` without --policy. Prints one JSON line:
// best-of-BENCH_RUNS (default 3) seconds and the verdict counts.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { load, best, report, cells, runsArg } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const pkgDir = process.env.METERGATE_PKG ?? path.join(here, '..', '..', 'wasm', 'pkg');
const m = require(pkgDir);

const [mode, dir] = process.argv.slice(2);
const data = mode === 'session'
  ? {
      meta: JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')),
      contracts: fs.readFileSync(path.join(dir, 'contracts.json'), 'utf8'),
    }
  : load(dir);
const now = data.meta.now;
const v = new m.Validator(data.contracts);

let run;
if (mode === 'session') {
  run = () => {
    const fd = fs.openSync(path.join(dir, 'usage.csv'), 'r');
    const buf = new Uint8Array(1 << 20);
    const s = v.csvSession({ now, report: 'problems' });
    let problems = 0;
    try {
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        problems += s.push(buf.subarray(0, n)).length;
      }
      const end = s.finish();
      problems += end.verdicts.length;
      return { summary: end.summary, problems };
    } finally {
      s.free();
      fs.closeSync(fd);
    }
  };
} else if (mode === 'csv') {
  run = () => v.validateCsv(data.csv, now);
} else if (mode === 'objects') {
  // A trivial split, not timed: one plain object per row, every cell as its text.
  const lines = data.csv.split('\n');
  const header = cells(lines[0]);
  const records = [];
  for (let i = 1; i < lines.length; i++) {
    if (lines[i] === '') continue;
    const c = cells(lines[i]);
    const o = {};
    for (let j = 0; j < header.length; j++) o[header[j]] = c[j] ?? '';
    records.push(o);
  }
  run = () => v.validate(records, now);
} else {
  console.error('usage: node metergate.mjs csv|objects|session DATA_DIR');
  process.exit(2);
}
const { seconds, cpu_seconds, result } = best(runsArg(), run);
const s = result.summary;
report(`metergate-wasm-${mode}`, s.records, seconds, {
  cpu_seconds,
  accepted: s.accepted,
  rejected: s.rejected,
  warnings: s.warnings,
});
v.free();
