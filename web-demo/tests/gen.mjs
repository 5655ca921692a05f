// Deterministic test data: contracts for the three marketplaces and a large usage CSV with a
// realistic mix of mistakes (backdated, future, duplicates, typos in dimensions, bad
// quantities, unit remainders, unknown and cancelled customers, Google intervals).
import { rng } from './helpers.mjs';

export const NOW = '2026-03-31T12:00:00Z';
const NOW_MS = Date.parse(NOW);
const H = 3_600_000;
// Enough customers that most rows have their own hour: duplicates stay a minority.
const AWS = 3000;
const AZURE = 1500;
const GCP = 1500;

function iso(ms) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function uuid(i) {
  const hex = (i * 2654435761 >>> 0).toString(16).padStart(8, '0');
  return `${hex}-0000-4000-8000-${String(i).padStart(12, '0')}`;
}

export function makeContracts() {
  const out = [];
  for (let i = 0; i < AWS; i++) {
    const cancelled = i % 15 === 14;
    out.push({
      marketplace: 'aws',
      product: 'prod-analytics',
      customer: `aws-cust-${i}`,
      status: cancelled ? 'cancelled' : 'active',
      starts_at: '2026-01-01T00:00:00Z',
      ...(cancelled ? { cancelled_at: '2026-03-31T09:30:00Z' } : {}),
      customer_identifier: `aws-cust-${i}`,
      dimensions: [{ name: 'api_calls' }, { name: 'storage_gb', unit: 5 }],
    });
  }
  for (let i = 0; i < AZURE; i++) {
    out.push({
      marketplace: 'azure',
      product: 'contoso-saas',
      customer: `az-sub-${i}`,
      status: i % 20 === 19 ? 'suspended' : 'active',
      starts_at: '2026-01-01T00:00:00Z',
      plan: 'pro',
      resource_id: uuid(i + 1),
      dimensions: [{ name: 'seats' }, { name: 'gb_processed', unit: 0.25 }],
    });
  }
  for (let i = 0; i < GCP; i++) {
    out.push({
      marketplace: 'gcp',
      product: 'search.example.com',
      customer: `gcp-acct-${i}`,
      status: 'active',
      starts_at: '2026-01-01T00:00:00Z',
      usage_reporting_id: `project:gcp-proj-${i}`,
      dimensions: [{ name: 'search.example.com/requests' }, { name: 'search.example.com/storage_gib_hours', type: 'decimal' }],
    });
  }
  return out;
}

function cell(v) {
  const s = String(v ?? '');
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** `rows` data rows, same output for the same seed. */
export function makeCsv(rows, seed = 42) {
  const r = rng(seed);
  const pick = (arr) => arr[Math.floor(r() * arr.length)];
  const lines = ['marketplace,product,customer,dimension,quantity,start_time,end_time,record_id,plan,internal_customer_identifier'];
  for (let i = 0; i < rows; i++) {
    const x = r();
    const mp = x < 0.5 ? 'aws' : x < 0.75 ? 'azure' : 'gcp';
    let product, customer, dimension, quantity, start, end = '', plan = '';
    const flaw = r();
    if (mp === 'aws') {
      product = 'prod-analytics';
      customer = `aws-cust-${Math.floor(r() * AWS)}`;
      dimension = r() < 0.8 ? 'api_calls' : 'storage_gb';
      quantity = dimension === 'storage_gb' ? 5 * Math.floor(r() * 40) : Math.floor(r() * 5000);
      start = NOW_MS - Math.floor(r() * 6 * H) + 1000;
    } else if (mp === 'azure') {
      product = 'contoso-saas';
      customer = `az-sub-${Math.floor(r() * AZURE)}`;
      dimension = r() < 0.7 ? 'seats' : 'gb_processed';
      quantity = dimension === 'gb_processed' ? (Math.floor(r() * 400) + 1) / 4 : Math.floor(r() * 50) + 1;
      start = NOW_MS - Math.floor(r() * 23 * H);
      plan = 'pro';
    } else {
      product = 'search.example.com';
      customer = `gcp-acct-${Math.floor(r() * GCP)}`;
      dimension = r() < 0.7 ? 'search.example.com/requests' : 'search.example.com/storage_gib_hours';
      quantity = dimension.endsWith('requests') ? Math.floor(r() * 10000) : (Math.floor(r() * 1000) / 10).toFixed(1);
      const hour = NOW_MS - H * (1 + Math.floor(r() * 3)) - (NOW_MS % H);
      start = hour;
      end = hour + H;
    }
    if (flaw < 0.04) start -= 30 * H; // backdated beyond every look-back
    else if (flaw < 0.06) start += 3 * H; // in the future
    else if (flaw < 0.08) dimension = dimension.replace(/s$/, '') + 'z'; // typo
    else if (flaw < 0.1) quantity = pick(['abc', '-3', '1.5', '']);
    else if (flaw < 0.11) customer = `nobody-${Math.floor(r() * 1000)}`;
    else if (flaw < 0.12 && mp === 'aws' && dimension === 'storage_gb') quantity = Number(quantity) + 2; // unit remainder
    else if (flaw < 0.13) start = 'yesterday';
    const startText = typeof start === 'number' ? iso(start) : start;
    const endText = typeof end === 'number' ? iso(end) : end;
    const internal = r() < 0.95 ? `crm-${Math.floor(r() * 9999)}` : '';
    lines.push([mp, product, customer, dimension, quantity, startText, endText, `rec-${i}`, plan, internal].map(cell).join(','));
  }
  return lines.join('\n') + '\n';
}

/** The contracts as JSON text, one contract per line. */
export function contractsJson() {
  return `[\n${makeContracts().map((c) => JSON.stringify(c)).join(',\n')}\n]\n`;
}
