// Exact quantities through the package (issue 15, item 7): JSON text keeps every decimal
// digit, as the CLI does; a JS number cannot, and the tests show both sides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { pkgDir } from './helpers.mjs';

const require = createRequire(import.meta.url);
const mg = require(pkgDir);

const NOW = '2026-03-31T11:00:00Z';
const contracts = [
  {
    marketplace: 'aws', product: 'prod-a1', customer: 'cust-3', status: 'active',
    starts_at: '2026-01-01T00:00:00Z', customer_identifier: 'CUST3', dimensions: [{ name: 'api' }],
  },
  {
    marketplace: 'gcp', product: 'svc.example.com', customer: 'proj-2', status: 'active',
    starts_at: '2026-01-01T00:00:00Z', usage_reporting_id: 'project:acme-2',
    dimensions: [{ name: 'requests', unit: 3 }],
  },
];
const aws = (q) => `{"marketplace":"aws","product":"prod-a1","customer":"cust-3","dimension":"api","quantity":${q},"start_time":"2026-03-31T10:10:00Z"}`;
const gcp = (q) => `{"marketplace":"gcp","product":"svc.example.com","customer":"proj-2","dimension":"requests","quantity":${q},"start_time":"2026-03-31T10:00:00Z","end_time":"2026-03-31T10:10:00Z"}`;
const verdict = (text) => {
  const v = new mg.Validator(contracts, {});
  try {
    return v.validateRecord(text, NOW);
  } finally {
    v.free();
  }
};

test('JSON text keeps decimal digits that a JS number loses', () => {
  assert.equal(verdict(aws('2147483646.99999999')).verdict, 'rejected');
  assert.deepEqual(verdict(aws('2147483646.99999999')).findings.map((f) => f.code), ['invalid-quantity']);
  assert.equal(verdict(aws('2147483647')).verdict, 'accepted');
  assert.equal(verdict(aws('5.00000000000000000000000000000000000000')).verdict, 'accepted');
  assert.equal(verdict(gcp('9007199254740993.0')).verdict, 'accepted');
  assert.equal(verdict(gcp('9007199254740992.0')).verdict, 'rejected');
});

test('validate() takes the records array as JSON text too', () => {
  const text = `[${aws('2147483646.99999999')},${aws('2147483647').replace('10:10', '11:00')}]`;
  const r = mg.validate(text, contracts, { now: NOW });
  assert.deepEqual(r.verdicts.map((v) => v.verdict), ['rejected', 'accepted']);
});

test('a JS number is already rounded before metergate sees it: pass a string instead', () => {
  // 2147483646.99999999 as a JS number is 2147483647.
  const asNumber = verdict(JSON.parse(aws('2147483646.99999999')));
  assert.equal(asNumber.verdict, 'accepted');
  const asString = verdict(JSON.parse(aws('"2147483646.99999999"')));
  assert.equal(asString.verdict, 'rejected');
});
