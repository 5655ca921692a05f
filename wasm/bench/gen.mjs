// Makes benchmark input from the example data: the 15 example contracts and 237 example rows
// cloned with a product and customer per copy (every copy has its own contracts and dedup
// keys, so the mix of verdicts is the example's), until N rows. Writes DIR/{contracts.json,records.json,records.csv,meta.json}.
//
//   node bench/gen.mjs DIR [N=100000]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const examples = path.join(here, '..', '..', 'examples');
const dir = process.argv[2];
const n = Number(process.argv[3] ?? 100000);
if (!dir) {
  console.error('usage: node bench/gen.mjs DIR [N]');
  process.exit(2);
}
const baseContracts = JSON.parse(fs.readFileSync(path.join(examples, 'contracts.json'), 'utf8'));
const lines = fs.readFileSync(path.join(examples, 'usage.csv'), 'utf8').trim().split('\n');
// The example file has quoted cells ("1,5") but no line breaks inside cells.
function cells(line) {
  const out = [];
  let cur = '';
  let quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  out.push(cur);
  return out;
}
const unquote = (c) => (c.startsWith('"') ? c.slice(1, -1).replaceAll('""', '"') : c);
const header = cells(lines[0]);
const rows = lines.slice(1).map(cells);
// Google products are service names (host names): prefix a label; others get a suffix.
const product = (mp, p, k) => (mp === 'gcp' ? `k${k}.${p}` : `${p}-${k}`);
const copies = Math.ceil(n / rows.length);
const contracts = [];
for (let k = 0; k < copies; k++) {
  for (const c of baseContracts) contracts.push({ ...c, product: product(c.marketplace, c.product, k), customer: `${c.customer}-${k}` });
}
const csv = [header.join(',')];
const records = [];
const ci = header.indexOf('customer');
const pi = header.indexOf('product');
const mi = header.indexOf('marketplace');
const ri = header.indexOf('record_id');
outer: for (let k = 0; k < copies; k++) {
  for (const r of rows) {
    if (records.length >= n) break outer;
    const row = r.slice();
    row[ci] = `${row[ci]}-${k}`;
    row[pi] = product(row[mi], row[pi], k);
    row[ri] = `${row[ri]}-${k}`;
    csv.push(row.join(','));
    const rec = {};
    header.forEach((h, i) => {
      const c = unquote(row[i] ?? '');
      if (c === '') return;
      rec[h] = h === 'quantity' && /^-?\d+(\.\d+)?$/.test(c) ? Number(c) : c;
    });
    records.push(rec);
  }
}
fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(path.join(dir, 'contracts.json'), JSON.stringify(contracts));
fs.writeFileSync(path.join(dir, 'records.json'), JSON.stringify(records));
fs.writeFileSync(path.join(dir, 'records.csv'), csv.join('\n') + '\n');
fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify({ now: '2026-03-31T23:50:00Z', records: records.length }));
console.log(`wrote ${records.length} records, ${contracts.length} contracts to ${dir}`);
