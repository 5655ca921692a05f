// Deterministic benchmark data for bench/run.sh: a day of hourly usage for one seller on all
// three marketplaces, judged at NOW, with about 5 % of each kind of mistake.
//
//   node bench/gen_data.mjs OUT_DIR ROWS
//
// Writes OUT_DIR/usage.csv (ROWS data rows plus a header), OUT_DIR/contracts.json (every
// customer the rows name, except the deliberately unknown ones), OUT_DIR/config.toml (caps for
// examples/policies/dimension_cap.rhai) and OUT_DIR/meta.json (now, counts per kind of row).
// Same ROWS, same bytes: the random numbers come from a fixed-seed mulberry32, not Math.random.
//
// The good rows: one record per customer, dimension and hour, in time order (hour, then
// marketplace, then customer), for
//   AWS    the 6 hours of the look-back, dimensions api_calls, data_gb (unit 5), seats
//   Azure  the 24 hours of the look-back, plan gold/silver, events_1k, premium_hours (unit 0.5)
//   Google chained hourly intervals over 24 hours (the last one ends just before now),
//          requests (int; unit 100 for half the customers) and <service>/storage_gib_hours (decimal)
// The rows are about 45 % AWS, 35 % Azure, 20 % Google. Mixed in at random positions, each about
// 5 % of all rows (MISTAKES below): backdated, duplicate hour, unit remainder, unknown
// dimension, bad quantity, no-offset time, unknown customer.
import fs from 'node:fs';
import path from 'node:path';

const [outDir, rowsArg] = process.argv.slice(2);
const ROWS = Number(rowsArg);
if (!outDir || !Number.isInteger(ROWS) || ROWS < 1000) {
  console.error('usage: node bench/gen_data.mjs OUT_DIR ROWS   (ROWS >= 1000)');
  process.exit(2);
}

// --- deterministic randomness -------------------------------------------------------------
let seed = 0x6d657467 ^ 20260317;
function rand() {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1)); // inclusive
const pick = (a) => a[Math.floor(rand() * a.length)];
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const alnum = (n) => Array.from({ length: n }, () => pick(ALNUM)).join('');
const hex = (n) => Array.from({ length: n }, () => pick('0123456789abcdef')).join('');
const digits = (n) => String(int(1, 9)) + Array.from({ length: n - 1 }, () => int(0, 9)).join('');
const uuid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-${pick('89ab')}${hex(3)}-${hex(12)}`;

// --- time ---------------------------------------------------------------------------------
const NOW_S = '2026-03-17T12:30:00Z';
const NOW = Date.parse(NOW_S);
const H = 3600_000;
const M = 60_000;
const iso = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');
const NOW_HOUR = Math.floor(NOW / H) * H; // 12:00
// The 24 clock hours 2026-03-16T13:00Z .. 2026-03-17T12:00Z.
const HOURS = Array.from({ length: 24 }, (_, i) => NOW_HOUR - (23 - i) * H);

// --- products and contracts ---------------------------------------------------------------
const AWS_PRODUCTS = ['prod-logstream', 'prod-metricsvault'];
const AZ_PRODUCT = 'contoso-analytics-saas';
const GCP_PRODUCT = 'logstream.endpoints.acme-public.cloud.goog';
const GCP_STORAGE = `${GCP_PRODUCT}/storage_gib_hours`;

const MISTAKES = [
  'backdated',
  'duplicate_hour',
  'unit_remainder',
  'unknown_dimension',
  'bad_quantity',
  'no_offset_time',
  'unknown_customer',
];
const MISTAKE_SHARE = 0.05 * MISTAKES.length; // 35 % of the rows
const SHARE = { aws: 0.45, azure: 0.35, gcp: 0.2 };
const PER_CUSTOMER = { aws: 3 * 6, azure: 2 * 24, gcp: 2 * 24 };

const goodTarget = Math.round(ROWS * (1 - MISTAKE_SHARE));
const nCust = {};
for (const mp of ['aws', 'azure', 'gcp']) {
  nCust[mp] = Math.max(3, Math.round((goodTarget * SHARE[mp]) / PER_CUSTOMER[mp]));
}

const contracts = [];
const customers = { aws: [], azure: [], gcp: [] };
for (let i = 0; i < nCust.aws; i++) {
  const product = AWS_PRODUCTS[i % AWS_PRODUCTS.length];
  const c = {
    marketplace: 'aws',
    product,
    customer: `cust-${String(i).padStart(6, '0')}`,
    status: 'active',
    starts_at: `2025-${String(int(1, 12)).padStart(2, '0')}-01T00:00:00Z`,
  };
  if (i % 2 === 0) {
    c.customer_identifier = alnum(11);
  } else {
    const acct = digits(12);
    c.aws_account_id = acct;
    c.license_arn = `arn:aws:license-manager::${acct}:license:l-${hex(17)}`;
  }
  c.dimensions = [{ name: 'api_calls' }, { name: 'data_gb', unit: '5' }, { name: 'seats' }];
  contracts.push(c);
  customers.aws.push({ product, customer: c.customer, dims: ['api_calls', 'data_gb', 'seats'] });
}
for (let i = 0; i < nCust.azure; i++) {
  const plan = i % 3 === 0 ? 'silver' : 'gold';
  const c = {
    marketplace: 'azure',
    product: AZ_PRODUCT,
    customer: `tenant-${String(i).padStart(6, '0')}`,
    status: 'active',
    starts_at: `2025-${String(int(1, 12)).padStart(2, '0')}-15T00:00:00Z`,
    plan,
    resource_id: uuid(),
    dimensions: [{ name: 'events_1k' }, { name: 'premium_hours', unit: '0.5' }],
  };
  contracts.push(c);
  customers.azure.push({ product: AZ_PRODUCT, customer: c.customer, plan, dims: ['events_1k', 'premium_hours'] });
}
for (let i = 0; i < nCust.gcp; i++) {
  const unit100 = i % 2 === 1;
  const c = {
    marketplace: 'gcp',
    product: GCP_PRODUCT,
    customer: `acct-${String(i).padStart(6, '0')}`,
    status: 'active',
    starts_at: '2026-01-01T00:00:00Z',
    usage_reporting_id: i % 2 === 0 ? `project_number:${digits(12)}` : `project:acme-prod-${i}`,
    dimensions: [
      unit100 ? { name: 'requests', type: 'int', unit: '100' } : { name: 'requests', type: 'int' },
      { name: 'storage_gib_hours', type: 'decimal' },
    ],
  };
  contracts.push(c);
  customers.gcp.push({ product: GCP_PRODUCT, customer: c.customer, unit100, dims: ['requests', GCP_STORAGE] });
}

// --- good rows, in time order -------------------------------------------------------------
const TEAMS = ['platform', 'search', 'billing', 'ingest'];

function quantity(mp, dim, cust) {
  switch (dim) {
    case 'api_calls':
      return String(int(0, 240000));
    case 'data_gb':
      return String(int(0, 400) * 5);
    case 'seats':
      return String(int(1, 60));
    case 'events_1k':
      return (int(1, 9000) / 10).toFixed(1);
    case 'premium_hours':
      return (int(1, 16) / 2).toFixed(1);
    case 'requests':
      return cust.unit100 ? String(int(1, 900) * 100) : String(int(1000, 90000));
    default:
      return (int(100, 99999) / 100).toFixed(2);
  }
}

// A good slot is [mp, customer index, dim index, hour index]; counted, then produced lazily
// so that 1M rows do not sit in memory as objects.
const AWS_FIRST_HOUR = 24 - 6;
function* goodRows() {
  for (let h = 0; h < 24; h++) {
    const hour = HOURS[h];
    for (const mp of ['aws', 'azure', 'gcp']) {
      if (mp === 'aws' && h < AWS_FIRST_HOUR) continue;
      const list = customers[mp];
      for (let ci = 0; ci < list.length; ci++) {
        const cust = list[ci];
        for (const dim of cust.dims) {
          let start;
          let end = '';
          if (mp === 'gcp') {
            start = iso(hour);
            // The last interval ends before now (12:25); the rest chain hourly.
            end = iso(h === 23 ? hour + 25 * M : hour + H);
          } else {
            // The current hour only up to now; AWS's first hour after the 6 h look-back start.
            const maxMin = h === 23 ? 29 : 59;
            const minMin = mp === 'aws' && h === AWS_FIRST_HOUR ? 31 : mp === 'azure' && h === 0 ? 31 : 0;
            start = iso(hour + int(minMin, maxMin) * M);
          }
          yield {
            marketplace: mp,
            product: cust.product,
            customer: cust.customer,
            dimension: dim,
            quantity: quantity(mp, dim, cust),
            start_time: start,
            end_time: end,
            plan: cust.plan ?? '',
            team: pick(TEAMS),
            _cust: cust,
          };
        }
      }
    }
  }
}
let goodTotal = 0;
for (const mp of ['aws', 'azure', 'gcp']) {
  for (const c of customers[mp]) goodTotal += c.dims.length * (mp === 'aws' ? 6 : 24);
}
const goodUsed = Math.min(goodTotal, ROWS - Math.round(ROWS * MISTAKE_SHARE));
const mistakeTotal = ROWS - goodUsed;

// --- mistakes -----------------------------------------------------------------------------
const recent = []; // a ring of recent good rows, for duplicates
const RING = 4096;
const TYPOS = {
  api_calls: ['api_call', 'apicalls', 'API_calls'],
  data_gb: ['Data_GB', 'data_gib', 'datagb'],
  seats: ['seat', 'Seats'],
  events_1k: ['event_1k', 'events1k', 'events_1K'],
  premium_hours: ['premium_hour', 'premiumhours'],
  requests: ['request', 'Requests'],
  [GCP_STORAGE]: [`${GCP_PRODUCT}/storage_gb_hours`, 'storage_gib_hour'],
};
const BAD_QUANTITY = {
  aws: ['-2', '12.5', '1,5', 'abc', '', '2147483648', '1e3'],
  azure: ['0', '-1.5', '1,5', 'n/a', '', 'NaN'],
  gcp: ['12.5', '-100', '1,5', 'abc', ''],
};

function pickMp() {
  const r = rand();
  return r < SHARE.aws ? 'aws' : r < SHARE.aws + SHARE.azure ? 'azure' : 'gcp';
}

function freshRow(mp, hourIdx) {
  // A good-looking row for a random customer at a recent hour, to be spoiled.
  const cust = pick(customers[mp]);
  const dim = pick(cust.dims);
  const h = mp === 'aws' ? Math.max(hourIdx, AWS_FIRST_HOUR + 1) : Math.max(hourIdx, 1);
  const hour = HOURS[Math.min(h, 22)];
  return {
    marketplace: mp,
    product: cust.product,
    customer: cust.customer,
    dimension: dim,
    quantity: quantity(mp, dim, cust),
    start_time: mp === 'gcp' ? iso(hour) : iso(hour + int(0, 59) * M),
    end_time: mp === 'gcp' ? iso(hour + H) : '',
    plan: cust.plan ?? '',
    team: pick(TEAMS),
    _cust: cust,
  };
}

function mistake(kind, hourIdx) {
  const mp = pickMp();
  let r;
  switch (kind) {
    case 'backdated': {
      r = freshRow(mp, hourIdx);
      if (mp === 'aws') r.start_time = iso(NOW - int(7 * 60, 20 * 60) * M);
      else if (mp === 'azure') r.start_time = iso(NOW - int(25 * 60, 47 * 60) * M);
      else {
        // Google has no look-back: an interval ending in the future instead.
        const end = NOW + int(10, 120) * M;
        r.start_time = iso(end - H);
        r.end_time = iso(end);
      }
      break;
    }
    case 'duplicate_hour': {
      const prior = recent.length ? recent[int(0, recent.length - 1)] : freshRow(mp, hourIdx);
      r = { ...prior, team: pick(TEAMS) };
      // Another quantity in the same hour (AWS, Azure) or for the same interval (Google).
      let q = quantity(r.marketplace, r.dimension, r._cust);
      if (q === prior.quantity) q = quantity(r.marketplace, r.dimension, r._cust);
      r.quantity = q;
      if (r.marketplace !== 'gcp') {
        const t = Date.parse(r.start_time);
        const hour = Math.floor(t / H) * H;
        const limit = hour === NOW_HOUR ? 29 : 59;
        r.start_time = iso(hour + int(0, limit) * M);
      }
      break;
    }
    case 'unit_remainder': {
      const mp2 = mp === 'gcp' && !customers.gcp.some((c) => c.unit100) ? 'aws' : mp;
      r = freshRow(mp2, hourIdx);
      if (mp2 === 'aws') {
        r.dimension = 'data_gb';
        r.quantity = String(int(0, 400) * 5 + int(1, 4));
      } else if (mp2 === 'azure') {
        r.dimension = 'premium_hours';
        r.quantity = pick(['1.3', '0.25', '2.7', '4.1', '0.2']);
      } else {
        let cust = r._cust;
        while (!cust.unit100) cust = pick(customers.gcp);
        r.customer = cust.customer;
        r.dimension = 'requests';
        r.quantity = String(int(1, 900) * 100 + int(1, 99));
      }
      break;
    }
    case 'unknown_dimension':
      r = freshRow(mp, hourIdx);
      r.dimension = pick(TYPOS[r.dimension]);
      break;
    case 'bad_quantity':
      r = freshRow(mp, hourIdx);
      r.quantity = pick(BAD_QUANTITY[mp]);
      break;
    case 'no_offset_time':
      r = freshRow(mp, hourIdx);
      r.start_time = r.start_time.replace('Z', '');
      if (mp === 'gcp' && rand() < 0.5) r.end_time = r.end_time.replace('Z', '');
      break;
    case 'unknown_customer':
      r = freshRow(mp, hourIdx);
      r.customer = pick([`${r.customer}x`, r.customer.toUpperCase(), `${r.customer.slice(0, -1)}`, 'cust-unknown']);
      break;
    default:
      throw new Error(kind);
  }
  return r;
}

// --- write --------------------------------------------------------------------------------
fs.mkdirSync(outDir, { recursive: true });
const COLUMNS = ['record_id', 'marketplace', 'product', 'customer', 'dimension', 'quantity', 'start_time', 'end_time', 'plan', 'team'];
const cell = (v) => (/[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);
const fd = fs.openSync(path.join(outDir, 'usage.csv'), 'w');
let buf = [COLUMNS.join(',')];
let bufLen = 0;
const counts = { good: 0, aws: 0, azure: 0, gcp: 0 };
for (const k of MISTAKES) counts[k] = 0;
const gen = goodRows();
let goodLeft = goodUsed;
let badLeft = mistakeTotal;
let hourIdx = 0;
for (let i = 0; i < ROWS; i++) {
  let r;
  if (badLeft > 0 && rand() * (goodLeft + badLeft) < badLeft) {
    const kind = MISTAKES[Math.floor(rand() * MISTAKES.length)];
    r = mistake(kind, hourIdx);
    counts[kind]++;
    badLeft--;
  } else {
    r = gen.next().value;
    hourIdx = HOURS.indexOf(Math.floor(Date.parse(r.start_time) / H) * H);
    if (recent.length < RING) recent.push(r);
    else recent[int(0, RING - 1)] = r;
    counts.good++;
    goodLeft--;
  }
  counts[r.marketplace]++;
  r.record_id = `r-${String(i + 1).padStart(7, '0')}`;
  const line = COLUMNS.map((c) => cell(r[c])).join(',');
  buf.push(line);
  bufLen += line.length;
  if (bufLen > 1 << 20) {
    fs.writeSync(fd, buf.join('\n') + '\n');
    buf = [];
    bufLen = 0;
  }
}
if (buf.length) fs.writeSync(fd, buf.join('\n') + '\n');
fs.closeSync(fd);

fs.writeFileSync(path.join(outDir, 'contracts.json'), JSON.stringify(contracts) + '\n');
fs.writeFileSync(
  path.join(outDir, 'config.toml'),
  [
    '# Written by bench/gen_data.mjs: settings for the policy run of bench/run.sh.',
    'warning_margin = "30m"',
    '',
    '[aws]',
    'lookback = "6h"',
    '',
    '[params.dimension_cap]',
    'caps = { api_calls = 200000, data_gb = 1800, events_1k = 850 }',
    '',
  ].join('\n'),
);
fs.writeFileSync(
  path.join(outDir, 'meta.json'),
  JSON.stringify({ now: NOW_S, rows: ROWS, contracts: contracts.length, customers: nCust, counts }, null, 1) + '\n',
);
console.log(`gen_data: ${ROWS} rows, ${contracts.length} contracts in ${outDir} (${JSON.stringify(counts)})`);
