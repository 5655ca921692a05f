// Types of the npm package "metergate" (handwritten from the Rust types of metergate-core;
// checked by `tsc --noEmit` in wasm/test.sh). The JSON shapes are exactly the CLI's.

/** `aws`, `azure` or `gcp`. */
export type MarketplaceName = "aws" | "azure" | "gcp";

/** A record field as given: a string, or a number (quantity). Empty, null and absent are missing. */
export type FieldValue = string | number | null | undefined;

/** One usage record as input. Fields that are not record fields become attributes (for policies). */
export interface UsageRecordInput {
  marketplace?: FieldValue;
  product?: FieldValue;
  customer?: FieldValue;
  dimension?: FieldValue;
  /** A number or a decimal string (`"12.5"`). */
  quantity?: FieldValue;
  /** RFC 3339 with an offset. */
  start_time?: FieldValue;
  /** Google only. */
  end_time?: FieldValue;
  record_id?: FieldValue;
  /** Azure plan id. */
  plan?: FieldValue;
  /** AWS usage allocations: an array of {quantity, tags: [{key, value}]}, or its JSON text. */
  allocations?: AllocationInput[] | string | null;
  /** Extra fields, for policies. */
  attributes?: Record<string, FieldValue>;
  [attribute: string]: unknown;
}

export interface AllocationInput {
  quantity: string | number;
  tags?: { key: string; value: string }[];
}

export type ContractStatus = "pending" | "active" | "suspended" | "cancelled" | "ended";

/** Microsoft SaaS fulfillment v2 `saasSubscriptionStatus` names. */
export type AzureContractState =
  | "NotStarted" | "PendingFulfillmentStart" | "Subscribed" | "Suspended" | "Unsubscribed";
/** Google Procurement API entitlement `state` names. */
export type GcpContractState =
  | "ACTIVATION_REQUESTED" | "ACTIVE" | "PENDING_CANCELLATION" | "PENDING_PLAN_CHANGE"
  | "PENDING_PLAN_CHANGE_APPROVAL" | "SUSPENDED" | "CANCELLED";
/** AWS Agreement API agreement `status` names. */
export type AwsContractState =
  | "ACTIVE" | "CANCELLED" | "TERMINATED" | "EXPIRED" | "RENEWED" | "REPLACED" | "ARCHIVED"
  | "SUPERSEDED" | "SUPERCEDED" | "ROLLED_BACK";

export interface DimensionInput {
  name: string;
  /** Billing unit: quantities must be whole multiples of it. */
  unit?: string | number;
  /** Google metric value type (default `int`). */
  type?: "int" | "decimal";
}

/** One contract, as in the contracts JSON. */
export interface ContractInput {
  marketplace: MarketplaceName;
  product: string;
  customer: string;
  /**
   * One of the five words, or the contract's own marketplace's name for the state, in any
   * letter case (a name of another marketplace is refused).
   */
  status: ContractStatus | AzureContractState | GcpContractState | AwsContractState | (string & {});
  starts_at: string;
  ends_at?: string;
  cancelled_at?: string;
  plan?: string;
  customer_identifier?: string;
  aws_account_id?: string;
  license_arn?: string;
  resource_id?: string;
  resource_uri?: string;
  usage_reporting_id?: string;
  dimensions?: DimensionInput[];
}

/** Settings (the CLI's metergate.toml as JSON). */
export interface Settings {
  aws?: { lookback?: "6h" | "24h" };
  /** How long before a deadline `window-closing` warns: `30m`, `2h`, `90s`, `1d`. */
  warning_margin?: string;
  /** Parameters per policy name. */
  params?: Record<string, unknown>;
}

/** A rhai policy: its source (named policy0, policy1, ... by position) or a named source. */
export type PolicyInput = string | { name: string; source: string };

/** A key already submitted (from a ledger), so that re-sends are caught. */
export interface HistoryEntry {
  marketplace: MarketplaceName;
  product: string;
  customer: string;
  dimension: string;
  start_time: string;
  end_time?: string;
  quantity: string | number;
  /** When it was sent (RFC 3339), for the hint of a record already sent. */
  sent_at?: string;
}

export interface ValidatorOptions {
  policies?: PolicyInput[];
  settings?: Settings;
}

export interface ValidateOptions extends ValidatorOptions {
  /** RFC 3339; default: the current time. */
  now?: string;
  history?: HistoryEntry[];
}

export type Severity = "error" | "warning";

export interface Finding {
  /** Stable code (`invalid-quantity`, ...) or a policy's own code. */
  code: string;
  severity: Severity;
  /** The record field at fault. */
  field: string | null;
  message: string;
  hint: string | null;
  /** Rule id (`aws.lookback`, ...) or `policy:<name>`. */
  rule: string;
}

export interface Verdict {
  /** 0-based position in the input. */
  index: number;
  record_id: string | null;
  verdict: "accepted" | "rejected";
  findings: Finding[];
}

export interface CsvVerdict extends Verdict {
  /** 1-based line of the file where the row starts (the header is line 1). */
  line: number;
}

export interface Summary {
  records: number;
  accepted: number;
  rejected: number;
  warnings: number;
  by_code: Record<string, number>;
}

export interface Report {
  verdicts: Verdict[];
  summary: Summary;
}

export interface CsvReport {
  verdicts: CsvVerdict[];
  summary: Summary;
}

export interface Deadline {
  /** Last instant (inclusive) at which the marketplace still takes the record. */
  at: string;
  /** The rule that sets it (`aws.lookback`, `gcp.lateness`, ...). */
  rule: string;
  /** False when passing it only earns a warning. */
  hard: boolean;
}

export interface RuleDoc {
  id: string;
  codes: string[];
  value: string;
  source: string;
}

export interface Explanation {
  code: string;
  severity: Severity;
  meaning: string;
  fix: string;
  rules: RuleDoc[];
}

/** A parsed record, as aggregation returns it (quantities as decimal strings). */
export interface UsageRecord {
  marketplace: MarketplaceName;
  product: string;
  customer: string;
  dimension: string;
  quantity: string;
  start_time: string;
  end_time: string | null;
  record_id: string | null;
  plan: string | null;
  allocations: { quantity: string; tags: { key: string; value: string }[] }[] | null;
  attributes: Record<string, string>;
}

export interface Carry {
  marketplace: MarketplaceName;
  product: string;
  customer: string;
  dimension: string;
  /** The plan of the last hour's records (Microsoft needs it on the wire). */
  plan?: string;
  /** The hour after the last one aggregated. */
  next_hour: string;
  /** Below one unit. */
  remainder: string;
}

export interface Aggregated {
  records: UsageRecord[];
  carried: Carry[];
  /** Records left out because they do not parse, with their form findings. */
  skipped: Verdict[];
}

/**
 * Validates records in one session (duplicates are caught across them).
 * `records` may also be the JSON text of the array: its numbers then keep every decimal digit
 * (a JS number carries about 15-17 significant digits: `9007199254740993` is already
 * `9007199254740992` as a JS number, so pass such quantities as strings or in JSON text).
 * Throws an Error only for unusable arguments: records not an array, contracts or settings
 * that do not parse, a policy that does not compile, a bad `now`.
 */
export function validate(
  records: UsageRecordInput[] | string,
  contracts: ContractInput[] | string,
  options?: ValidateOptions,
): Report;

/** Contracts, settings and compiled policies, built once. Call `free()` when done. */
export class Validator {
  constructor(contracts: ContractInput[] | string, options?: ValidatorOptions);
  /** Validates records in one session, after the optional history. */
  /** Records as objects, or as JSON text (exact decimals beyond what a JS number holds). */
  validate(records: UsageRecordInput[] | string, now?: string | null, history?: HistoryEntry[]): Report;
  /** One record alone, without dedup state (for forms); an object or its JSON text. */
  validateRecord(record: UsageRecordInput | string, now?: string | null): Verdict;
  /**
   * A whole CSV file (header row; any column order; other columns are attributes): a CSV
   * session fed the text in one piece, with `report: "all"`. Throws an Error when the input
   * cannot be used (no usable header), like the CLI's exit 2.
   */
  validateCsv(text: string | Uint8Array, now?: string | null, history?: HistoryEntry[]): CsvReport;
  /**
   * Starts a streaming CSV session: feed the file chunk by chunk (`push`), then `finish`.
   * Memory stays bounded by the longest row and the dedup keys, not by the file's size.
   */
  csvSession(options?: CsvSessionOptions): CsvSession;
  /** The last instant the record can still be sent, or null when it does not parse. */
  deadline(record: UsageRecordInput, now?: string | null): Deadline | null;
  /** Releases the WASM memory. */
  free(): void;
}

export interface CsvSessionOptions {
  /** RFC 3339; default: the current time. */
  now?: string | null;
  /**
   * `"all"` (default): every row's verdict crosses into JS. `"problems"`: only rejected verdicts
   * and those with warnings do; the summary still counts every row.
   */
  report?: "all" | "problems";
  /** Keys already submitted, so that re-sends are caught. */
  history?: HistoryEntry[];
  /**
   * Keep the first line of every row (all rows, whatever `report` says) for `takeRowLines()`:
   * with `report: "problems"`, where the clean rows start in the file. Default false.
   */
  rowLines?: boolean;
}

/**
 * A streaming CSV check: one session (duplicates are caught across the whole input) over
 * chunks of CSV. The rows are read by the same reader as the CLI's (same lines, limits and
 * findings). A row split across chunks gets its verdict with the chunk that completes it.
 * Call `free()` when done with it.
 */
export class CsvSession {
  /**
   * Reads one chunk: bytes (any split, even inside a character) or text (split between
   * characters, as TextDecoder gives it). Returns the verdicts of the rows this chunk
   * completed. Throws an Error when the input cannot be used (no usable header); the session
   * is then over.
   */
  push(chunk: string | Uint8Array): CsvVerdict[];
  /** Ends the input: the verdict of a last row without a line break, and the counts of every row. */
  finish(): CsvReport;
  /**
   * The 1-based first line of every row read since the last call (or since the start), in
   * row order, whatever `report` says; also after `finish()`. Empty unless the session was
   * made with `rowLines: true`.
   */
  takeRowLines(): Float64Array;
  /** Bytes read so far (for progress). */
  readonly bytesRead: number;
  /** The counts so far. */
  readonly summary: Summary;
  /** Releases the WASM memory. */
  free(): void;
}

/** What a finding code means and how to fix it; null for codes metergate does not define. */
export function explain(code: string): Explanation | null;

/** Sums records into one per key and hour; with contracts, whole units are sent and the rest carried. */
export function aggregateHourly(
  records: UsageRecordInput[],
  contracts?: ContractInput[] | string | null,
): Aggregated;

/** The package version. */
export function version(): string;

/**
 * Browser build: loads the .wasm (by default next to the JS file). Must be awaited before
 * any other call. In Node the module is ready on import and this does nothing.
 */
export default function init(
  module_or_path?: { module_or_path: unknown } | unknown,
): Promise<unknown>;

/** Browser build: instantiates from bytes or a compiled module, synchronously. Node: does nothing. */
export function initSync(module: { module: unknown } | unknown): unknown;
