// The package's API through its public entry points: shapes, errors, CSV, deadline, explain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { pkgDir } from './helpers.mjs';

const require = createRequire(import.meta.url);
const mg = require(pkgDir);

const NOW = '2026-03-01T12:00:00Z';
const contracts = [
  {
    marketplace: 'aws', product: 'prod-a1', customer: 'cust-1', status: 'active',
    starts_at: '2026-01-01T00:00:00Z', customer_identifier: 'Xk8JmQ2pLz9',
    dimensions: [{ name: 'api_calls' }, { name: 'data_gb', unit: '5' }],
  },
];
const rec = (extra = {}) => ({
  marketplace: 'aws', product: 'prod-a1', customer: 'cust-1', dimension: 'api_calls',
  start_time: '2026-03-01T10:00:00Z', quantity: 3, ...extra,
});
const codes = (v) => v.findings.map((f) => f.code);

test('a verdict has exactly the CLI JSON-lines shape, with nulls not undefined', () => {
  const r = mg.validate([rec({ quantity: '3.5' })], contracts, { now: NOW });
  const v = r.verdicts[0];
  assert.deepEqual(Object.keys(v), ['index', 'record_id', 'verdict', 'findings']);
  assert.equal(v.record_id, null);
  assert.deepEqual(Object.keys(v.findings[0]), ['code', 'severity', 'field', 'message', 'hint', 'rule']);
  assert.deepEqual(Object.keys(r.summary), ['records', 'accepted', 'rejected', 'warnings', 'by_code']);
  assert.equal(Object.getPrototypeOf(r.summary.by_code), Object.prototype, 'by_code is a plain object');
  assert.deepEqual(r.summary.by_code, { 'invalid-quantity': 1 });
});

test('bad values get verdicts; undefined, null, "" and NaN are missing (records are read as JSON)', () => {
  const r = mg.validate(
    [rec({ quantity: undefined }), rec({ quantity: null }), rec({ quantity: '' }), rec({ quantity: NaN }),
      rec({ quantity: [3] }), rec({ dimension: { x: 1 } }), 'aws', rec({ attributes: 5 }), rec({ quantity: 5n }),
      rec({ start_time: new Date('2026-03-01T10:30:00Z'), quantity: 4 })],
    contracts, { now: NOW },
  );
  assert.deepEqual(r.verdicts.map(codes), [
    ['invalid-record'], ['invalid-record'], ['invalid-record'], ['invalid-record'],
    ['invalid-quantity'], ['invalid-record'], ['invalid-record'], ['invalid-record'], ['invalid-record'],
    [], // a Date is read as its ISO string
  ]);
  assert.deepEqual(r.verdicts.slice(0, 9).map((v) => v.findings[0].field), [
    'quantity', 'quantity', 'quantity', 'quantity', 'quantity', 'dimension', null, null, null,
  ]);
  assert.match(r.verdicts[8].findings[0].message, /^record 8 cannot be read: .*BigInt/);
  assert.deepEqual(r.verdicts.map((v) => v.index), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(r.summary.rejected, 9);
});

test('the default now is the current time', () => {
  const recent = new Date(Date.now() - 60_000).toISOString();
  const r = mg.validate([rec({ start_time: recent })], contracts);
  assert.equal(r.verdicts[0].verdict, 'accepted');
  const old = new Date(Date.now() - 7 * 3600_000).toISOString();
  const r2 = mg.validate([rec({ start_time: old })], contracts);
  assert.deepEqual(codes(r2.verdicts[0]), ['timestamp-out-of-bounds']);
});

test('unusable arguments throw Errors that say what is wrong', () => {
  const cases = [
    [() => mg.validate({}, contracts), /^records: must be an array/],
    [() => mg.validate('x', contracts), /^records:/],
    [() => mg.validate([], {}), /^contracts: must be an array/],
    [() => mg.validate([], [{ marketplace: 'aws' }]), /^contracts: .*missing field/],
    [() => mg.validate([], contracts, { now: 'soon' }), /^now: "soon" is not an RFC 3339 date-time/],
    [() => mg.validate([], contracts, { now: 5 }), /^now: must be an RFC 3339 string/],
    [() => mg.validate([], contracts, { settings: { bogus: 1 } }), /^settings: .*bogus/],
    [() => mg.validate([], contracts, { history: [{ marketplace: 'aws' }] }), /^history: \[0\]/],
    [() => mg.validate([], contracts, { policies: 'fn check(r, c) {}' }), /^policies: must be an array/],
    [() => new mg.Validator(contracts, { policies: [{ name: 'p', source: 'fn check(record, ctx) {\n  let = 1;\n}' }] }),
      /^policy p: line 2, column \d+: /],
    [() => new mg.Validator(contracts, { policies: ['fn nope() {}'] }), /^policy policy0: defines no fn check/],
    [() => new mg.Validator(contracts).validateRecord(7, NOW), /^record: it is a number/],
    [() => new mg.Validator(contracts).validateCsv(['a'], NOW), /^text: must be the CSV text/],
  ];
  for (const [f, re] of cases) {
    assert.throws(f, (e) => e instanceof Error && re.test(e.message), String(re));
  }
});

test('contracts may be given as JSON text', () => {
  const r = mg.validate([rec()], JSON.stringify(contracts), { now: NOW });
  assert.equal(r.verdicts[0].verdict, 'accepted');
});

test('Validator: compiled once, policies as strings or {name, source}, settings params', () => {
  const v = new mg.Validator(contracts, {
    policies: [
      'fn check(record, ctx) { if record.quantity > ctx.params.max { reject_field("quantity", "too-big", "over") } }',
      { name: 'team', source: 'fn check(record, ctx) { if record.attributes.get("team") == () { warn("no-team", "no team") } }' },
    ],
    settings: { params: { policy0: { max: 10 } } },
  });
  try {
    const one = v.validateRecord(rec({ quantity: 11 }), NOW);
    assert.deepEqual(codes(one), ['too-big', 'no-team']);
    assert.deepEqual(one.findings.map((f) => f.rule), ['policy:policy0', 'policy:team']);
    assert.deepEqual(codes(v.validateRecord(rec({ quantity: 10, team: 'x' }), NOW)), []);
    // validateRecord is stateless: the same record twice is no duplicate.
    assert.deepEqual(codes(v.validateRecord(rec({ team: 'x' }), NOW)), []);
    assert.deepEqual(codes(v.validateRecord(rec({ team: 'x' }), NOW)), []);
    // validate() is one session.
    const r = v.validate([rec({ team: 'x' }), rec({ team: 'x', quantity: 4 })], NOW);
    assert.deepEqual(r.verdicts.map(codes), [[], ['duplicate-request']]);
  } finally {
    v.free();
  }
});

test('validateCsv: CLI column rules, attributes, line numbers, one session', () => {
  const v = new mg.Validator(contracts, {
    policies: [{ name: 'team', source: 'fn check(record, ctx) { if record.attributes.get("team") == () { warn("no-team", "no team") } }' }],
  });
  const csv = [
    'team,quantity,start_time,dimension,customer,product,marketplace,record_id',
    'ops,3,2026-03-01T10:00:00Z,api_calls,cust-1,prod-a1,aws,r-1',
    ',4,2026-03-01T10:00:00Z,api_calls,cust-1,prod-a1,aws,',
    '"a ""quoted""\nteam",10,2026-03-01T11:00:00Z,data_gb,cust-1,prod-a1,aws,r-3',
    'ops,,2026-03-01T11:00:00Z,api_calls,cust-1,prod-a1,aws,r-4',
    '',
  ].join('\n');
  const r = v.validateCsv(csv, NOW);
  assert.deepEqual(r.verdicts.map((x) => x.line), [2, 3, 4, 6]);
  assert.deepEqual(r.verdicts.map((x) => x.index), [0, 1, 2, 3]);
  assert.deepEqual(r.verdicts.map((x) => x.record_id), ['r-1', null, 'r-3', 'r-4']);
  assert.deepEqual(r.verdicts.map(codes), [[], ['duplicate-request', 'no-team'], [], ['invalid-record']]);
  assert.equal(r.verdicts[3].findings[0].field, 'quantity');
  assert.deepEqual(r.summary, {
    records: 4, accepted: 2, rejected: 2, warnings: 1,
    by_code: { 'duplicate-request': 1, 'invalid-record': 1, 'no-team': 1 },
  });
  // The same rows as objects give the same findings (the CSV reader only maps columns).
  const objects = mg.validate(
    [
      { team: 'ops', ...rec({ quantity: '3', record_id: 'r-1' }) },
      rec({ quantity: '4' }),
      { team: 'a "quoted"\nteam', ...rec({ quantity: '10', dimension: 'data_gb', start_time: '2026-03-01T11:00:00Z', record_id: 'r-3' }) },
      { team: 'ops', ...rec({ quantity: '', start_time: '2026-03-01T11:00:00Z', record_id: 'r-4' }) },
    ],
    contracts,
    { now: NOW, policies: [{ name: 'team', source: 'fn check(record, ctx) { if record.attributes.get("team") == () { warn("no-team", "no team") } }' }] },
  );
  assert.deepEqual(
    objects.verdicts.map((x) => x.findings),
    r.verdicts.map((x) => x.findings),
  );
  // The input cannot be used: an Error, like the CLI's exit 2 (the same core reader).
  assert.throws(() => v.validateCsv('', NOW), /line 1: no header row/);
  assert.throws(() => v.validateCsv('quantity,quantity\n1,2\n', NOW), /"quantity" appears twice/);
  assert.throws(() => v.validateCsv(`quantity${',c'.repeat(1024)}\n`, NOW), /1025 columns; the limit is 1024/);
  // Bytes work as well as text.
  assert.deepEqual(v.validateCsv(new TextEncoder().encode(csv), NOW), r);
  v.free();
});

test('csvSession: chunks in any split give the verdicts of validateCsv', () => {
  const v = new mg.Validator(contracts);
  const lines = ['record_id,quantity,start_time,dimension,customer,product,marketplace'];
  for (let i = 0; i < 50; i++) {
    const q = i % 7 === 3 ? 'x' : String(i);
    lines.push(`r-${i},${q},2026-03-01T${String(i % 12).padStart(2, '0')}:00:00Z,api_calls,cust-1,prod-a1,aws`);
  }
  const csv = `\ufeff${lines.join('\r\n')}\r\n\r\n"é",1,,,,,`;
  const whole = v.validateCsv(csv, NOW);
  const bytes = new TextEncoder().encode(csv);
  for (const size of [1, 2, 3, 7, 64, 1000, bytes.length]) {
    const s = v.csvSession({ now: NOW });
    const got = [];
    for (let at = 0; at < bytes.length; at += size) got.push(...s.push(bytes.subarray(at, at + size)));
    assert.ok(s.bytesRead <= bytes.length);
    const end = s.finish();
    got.push(...end.verdicts);
    assert.deepEqual(got, whole.verdicts, `chunks of ${size}`);
    assert.deepEqual(end.summary, whole.summary);
    assert.throws(() => s.push('x'), /finished/);
    s.free();
  }
  // "problems": only verdicts with findings cross; the summary counts every row.
  const s = v.csvSession({ now: NOW, report: 'problems' });
  const got = [...s.push(csv.slice(0, 500)), ...s.push(csv.slice(500))];
  assert.equal(s.summary.records, whole.summary.records - 1);
  const end = s.finish();
  got.push(...end.verdicts);
  assert.deepEqual(got, whole.verdicts.filter((x) => x.findings.length > 0));
  assert.deepEqual(end.summary, whole.summary);
  s.free();
  // rowLines: where every row starts, clean ones too, whatever the report; none unless asked.
  for (const size of [1, 64, bytes.length]) {
    const r = v.csvSession({ now: NOW, report: 'problems', rowLines: true });
    const starts = [];
    for (let at = 0; at < bytes.length; at += size) {
      r.push(bytes.subarray(at, at + size));
      starts.push(...r.takeRowLines());
    }
    r.finish();
    starts.push(...r.takeRowLines());
    assert.deepEqual(starts, whole.verdicts.map((x) => x.line), `row lines, chunks of ${size}`);
    assert.equal(r.takeRowLines().length, 0);
    r.free();
  }
  const plain = v.csvSession({ now: NOW });
  plain.push(csv);
  assert.ok(plain.takeRowLines() instanceof Float64Array);
  assert.equal(plain.takeRowLines().length, 0);
  plain.free();
  assert.throws(() => v.csvSession({ rowLines: 'yes' }), /rowLines: must be a boolean/);
  // A bad header stops the session with an Error.
  const bad = v.csvSession({ now: NOW });
  assert.throws(() => bad.push('a,b\n1,2\n'), /no usable header/);
  assert.throws(() => bad.push('x'), /finished/);
  assert.throws(() => v.csvSession({ report: 'some' }), /report: must be/);
  assert.throws(() => v.csvSession({ now: 5 }), /now: must be/);
  const s2 = v.csvSession({ now: NOW });
  assert.throws(() => s2.push(5), /chunk: must be a string or a Uint8Array/);
  v.free();
});

test('deadline: the core Deadline, or null', () => {
  const v = new mg.Validator(contracts);
  assert.deepEqual(v.deadline(rec(), NOW), { at: '2026-03-01T15:59:59.999999999Z', rule: 'aws.lookback', hard: true });
  assert.equal(v.deadline(rec({ quantity: 'x' }), NOW), null);
  v.free();
});

test('explain, aggregateHourly, version', () => {
  const e = mg.explain('duplicate-request');
  assert.equal(e.code, 'duplicate-request');
  assert.equal(e.severity, 'error');
  assert.ok(e.rules.some((r) => r.id === 'aws.dedup'));
  assert.equal(mg.explain('over-cap'), null);

  const agg = mg.aggregateHourly(
    [rec({ dimension: 'data_gb', quantity: 7 }), rec({ dimension: 'data_gb', quantity: '4', start_time: '2026-03-01T10:59:00Z' }), { quantity: 'x' }],
    contracts,
  );
  assert.deepEqual(agg.records.map((r) => [r.start_time, r.quantity]), [['2026-03-01T10:59:00Z', '10']]);
  assert.deepEqual(agg.carried.map((c) => [c.next_hour, c.remainder]), [['2026-03-01T11:00:00Z', '1']]);
  assert.deepEqual(agg.skipped.map((s) => s.index), [2]);

  assert.match(mg.version(), /^\d+\.\d+\.\d+/);
  assert.equal(mg.version(), require(`${pkgDir}/package.json`).version);
});
