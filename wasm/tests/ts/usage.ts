// Type-checked (never run) by wasm/test.sh: `tsc --noEmit -p wasm/tests/ts`.
import init, {
  aggregateHourly, explain, validate, version, Validator,
  type ContractInput, type CsvReport, type CsvSession, type CsvVerdict, type Summary, type Deadline, type Finding, type Report, type UsageRecordInput, type Verdict,
} from 'metergate';

const contracts: ContractInput[] = [{
  marketplace: 'aws', product: 'prod-a1', customer: 'cust-1', status: 'active',
  starts_at: '2026-01-01T00:00:00Z', customer_identifier: 'Xk8JmQ2pLz9', dimensions: [{ name: 'api_calls', unit: '5' }],
}];
const records: UsageRecordInput[] = [
  { marketplace: 'aws', product: 'prod-a1', customer: 'cust-1', dimension: 'api_calls', quantity: 3, start_time: '2026-03-01T10:00:00Z', team: 'ops' },
  { quantity: '2.5', attributes: { region: 'eu' } },
];

export async function main(): Promise<number> {
  await init();
  const report: Report = validate(records, contracts, {
    now: '2026-03-01T12:00:00Z',
    policies: ['fn check(record, ctx) {}', { name: 'cap', source: 'fn check(record, ctx) {}' }],
    settings: { aws: { lookback: '24h' }, warning_margin: '30m', params: { cap: { max: 10 } } },
    history: [{ marketplace: 'aws', product: 'prod-a1', customer: 'cust-1', dimension: 'api_calls', start_time: '2026-03-01T09:00:00Z', quantity: '3' }],
  });
  const first: Verdict = report.verdicts[0];
  const f: Finding | undefined = first.findings[0];
  const field: string | null = f ? f.field : null;
  const accepted: boolean = first.verdict === 'accepted';

  const v = new Validator(contracts, { policies: [] });
  const one: Verdict = v.validateRecord(records[0]);
  const csv: CsvReport = v.validateCsv('marketplace\naws\n', '2026-03-01T12:00:00Z');
  const line: number = csv.verdicts[0].line;
  const session: CsvSession = v.csvSession({ now: '2026-03-01T12:00:00Z', report: 'problems' });
  const some: CsvVerdict[] = session.push('marketplace\n');
  const more: CsvVerdict[] = session.push(new TextEncoder().encode('aws\n'));
  const read: number = session.bytesRead;
  const starts: Float64Array = v.csvSession({ rowLines: true }).takeRowLines();
  const { verdicts: last, summary }: { verdicts: CsvVerdict[]; summary: Summary } = session.finish();
  session.free();
  // @ts-expect-error report is "all" or "problems"
  v.csvSession({ report: 'some' });
  const d: Deadline | null = v.deadline(records[0], null);
  const again: Report = v.validate(records);
  v.free();

  const e = explain('late-report');
  const severity = e?.severity;
  const agg = aggregateHourly(records, contracts);
  const q: string = agg.records[0].quantity;
  const s: string = version();
  // @ts-expect-error records must be an array
  validate({}, contracts);
  return [field, accepted, one, line, some, more, read, last, summary, d, again, severity, q, s].length + report.summary.by_code['x'];
}
