// WASM side of the WASM-vs-native timing, on the files bench/gen.mjs makes:
//
//   node bench/gen.mjs /tmp/mg-bench 100000
//   node bench/bench.mjs /tmp/mg-bench
//   cargo run --release -p metergate-wasm --example native_bench -- /tmp/mg-bench
//
// Prints microseconds per record (best of 5 runs) as JSON.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const m = require('../pkg');
const dir = process.argv[2];
const contracts = fs.readFileSync(path.join(dir, 'contracts.json'), 'utf8');
const recordsText = fs.readFileSync(path.join(dir, 'records.json'), 'utf8');
const csv = fs.readFileSync(path.join(dir, 'records.csv'), 'utf8');
const { now } = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
const records = JSON.parse(recordsText);
const n = records.length;

function best(runs, f) {
  let b = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    f();
    b = Math.min(b, Number(process.hrtime.bigint() - t) / 1e9);
  }
  return b;
}

const v = new m.Validator(contracts);
const check = v.validate(records, now);
const csvCheck = v.validateCsv(csv, now);
const us = (s) => (s / n) * 1e6;
const out = {
  records: n,
  accepted: check.summary.accepted,
  rejected: check.summary.rejected,
  csv_same_counts: JSON.stringify(csvCheck.summary) === JSON.stringify(check.summary),
  us_per_record: {
    validate_objects: us(best(5, () => v.validate(records, now))),
    validate_csv: us(best(5, () => v.validateCsv(csv, now))),
    json_parse_then_validate: us(best(5, () => v.validate(JSON.parse(recordsText), now))),
  },
};
v.free();
console.log(JSON.stringify(out));
