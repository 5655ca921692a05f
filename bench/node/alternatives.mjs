// What a front-end team would write instead of metergate, on the same CSV text:
//
//   node bench/node/alternatives.mjs ajv DATA_DIR   papaparse + ajv (compiled JSON Schema,
//                                                   ajv-formats for RFC 3339 date-time)
//   node bench/node/alternatives.mjs zod DATA_DIR   papaparse + zod, the same schema
//
// Per-field schema checks only: required fields, types, ranges, the marketplace and dimension
// enums, RFC 3339 times with an offset. No look-back windows, no dedup, no units, no contract
// state. Parsing is timed with the checks (both start from the text). Prints one JSON line:
// best-of-BENCH_RUNS (default 3) seconds, and how many rows passed.
import Papa from 'papaparse';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { z } from 'zod';
import { load, best, report, runsArg } from './common.mjs';

const [which, dir] = process.argv.slice(2);
const data = load(dir);

const MARKETPLACES = ['aws', 'azure', 'gcp'];
const GCP_STORAGE = 'logstream.endpoints.acme-public.cloud.goog/storage_gib_hours';
const DIMENSIONS = ['api_calls', 'data_gb', 'seats', 'events_1k', 'premium_hours', 'requests', GCP_STORAGE];
const MAX_QUANTITY = 2147483647;

function parse(text) {
  // quantity as a number (dynamicTyping), everything else as text; "" stays "" (missing).
  return Papa.parse(text, { header: true, skipEmptyLines: true, dynamicTyping: { quantity: true } }).data;
}

function checkAll(rows, validateRow) {
  const out = new Array(rows.length);
  let valid = 0;
  for (let i = 0; i < rows.length; i++) {
    const errors = validateRow(rows[i]);
    if (errors === null) valid++;
    out[i] = { index: i, record_id: rows[i].record_id, valid: errors === null, errors };
  }
  return { valid, verdicts: out };
}

let validateRow;
if (which === 'ajv') {
  const ajv = new Ajv(); // defaults: stop at the first error of a row
  addFormats(ajv, ['date-time']);
  const text = { type: 'string', minLength: 1, maxLength: 255 };
  const schema = {
    type: 'object',
    required: ['record_id', 'marketplace', 'product', 'customer', 'dimension', 'quantity', 'start_time'],
    properties: {
      record_id: text,
      marketplace: { enum: MARKETPLACES },
      product: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[-a-zA-Z0-9/=:_.@]+$' },
      customer: text,
      dimension: { enum: DIMENSIONS },
      quantity: { type: 'number', minimum: 0, maximum: MAX_QUANTITY },
      start_time: { type: 'string', format: 'date-time' },
      end_time: { anyOf: [{ const: '' }, { type: 'string', format: 'date-time' }] },
      plan: { type: 'string', maxLength: 255 },
      team: { type: 'string' },
    },
  };
  const validate = ajv.compile(schema);
  validateRow = (row) => (validate(row) ? null : validate.errors);
} else if (which === 'zod') {
  const text = z.string().min(1).max(255);
  const schema = z.object({
    record_id: text,
    marketplace: z.enum(MARKETPLACES),
    product: z.string().min(1).max(255).regex(/^[-a-zA-Z0-9/=:_.@]+$/),
    customer: text,
    dimension: z.enum(DIMENSIONS),
    quantity: z.number().min(0).max(MAX_QUANTITY),
    start_time: z.iso.datetime({ offset: true }),
    end_time: z.union([z.literal(''), z.iso.datetime({ offset: true })]),
    plan: z.string().max(255),
    team: z.string(),
  });
  validateRow = (row) => {
    const r = schema.safeParse(row);
    return r.success ? null : r.error.issues;
  };
} else {
  console.error('usage: node alternatives.mjs ajv|zod DATA_DIR');
  process.exit(2);
}

const { seconds, cpu_seconds, result } = best(runsArg(), () => checkAll(parse(data.csv), validateRow));
report(`papaparse+${which}`, result.verdicts.length, seconds, {
  cpu_seconds,
  valid: result.valid,
  invalid: result.verdicts.length - result.valid,
});
