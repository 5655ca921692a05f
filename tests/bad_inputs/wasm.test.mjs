// The bad-input catalogue (tests/bad_inputs/cases/*/) through the npm package "metergate"
// (wasm/pkg, Node build): CSV cases with Validator.validateCsv on the file's bytes (the same
// core reader as the CLI's, so the CLI's rows, or its exit 2 as a thrown Error), JSON cases
// with Validator.validate on the parsed array. Run: node --test tests/bad_inputs/wasm.test.mjs
// (after wasm/build.sh).
//
// A case's expect.json may hold a `wasm` key: "skip" (the case is about the CLI only: files
// that are not UTF-8, JSON Lines, config files, JSON syntax the JS caller parses itself), an
// object with its own `rows` (where the package reads CSV or JSON differently from the CLI),
// or `error_contains` (fragments of the Error the Validator constructor throws). Without it,
// the package must give the CLI's `rows`. JSON verdicts carry no line, so rows are compared
// in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const metergate = require(join(here, '../../wasm/pkg/node/index.cjs'));
const NOW = '2026-03-10T12:00:00Z';

/** Expands @@REPEAT("text",N)@@ markers ({i} is the copy's 0-based number). */
function expand(text) {
  return text.replace(/@@REPEAT\((".*?"),(\d+)\)@@/g, (_, lit, n) => {
    const s = JSON.parse(lit);
    const count = Number(n);
    if (!s.includes('{i}')) return s.repeat(count);
    const parts = [];
    for (let i = 0; i < count; i++) parts.push(s.replaceAll('{i}', String(i)));
    return parts.join('');
  });
}

function checkRows(name, rows, verdicts, withLines) {
  assert.equal(verdicts.length, rows.length, `${name}: number of verdicts`);
  rows.forEach((want, i) => {
    const got = verdicts[i];
    const where = `${name}: row ${i}`;
    if (withLines) assert.equal(got.line, want.line, `${where}: line`);
    assert.equal(got.verdict, want.verdict, `${where}: verdict (findings ${JSON.stringify(got.findings)})`);
    if (want.verdict === 'accepted') {
      assert.deepEqual(got.findings, [], `${where}: a good row got findings`);
    } else {
      const wanted = [want, ...(want.alternatives ?? [])];
      const hit = got.findings.some((f) =>
        wanted.some((w) => f.code === w.code && (f.field ?? null) === w.field));
      assert.ok(hit, `${where}: no ${want.code} on ${want.field}: ${JSON.stringify(got.findings)}`);
    }
  });
}

const casesDir = join(here, 'cases');
for (const name of readdirSync(casesDir).sort()) {
  const dir = join(casesDir, name);
  if (!existsSync(join(dir, 'expect.json'))) continue;
  const expect = JSON.parse(readFileSync(join(dir, 'expect.json'), 'utf8'));
  const files = readdirSync(dir);
  const input = files.find((f) => f.startsWith('input.'));
  const w = expect.wasm;
  const skip = w === 'skip' || input.endsWith('.jsonl') || files.includes('config.toml');
  test(name, { skip: skip ? 'CLI only' : false }, () => {
    const contractsFile = files.includes('contracts.json')
      ? join(dir, 'contracts.json')
      : join(here, 'contracts.json');
    const contracts = readFileSync(contractsFile, 'utf8');
    const policies = files
      .filter((f) => f.endsWith('.rhai'))
      .map((f) => ({ name: f.slice(0, -5), source: expand(readFileSync(join(dir, f), 'utf8')) }));
    if (w && w.error_contains) {
      assert.throws(
        () => new metergate.Validator(contracts, { policies }),
        (e) => {
          for (const frag of w.error_contains) {
            assert.ok(e.message.includes(frag), `${name}: error ${JSON.stringify(e.message)} lacks ${frag}`);
          }
          return true;
        },
      );
      return;
    }
    const v = new metergate.Validator(contracts, { policies });
    if (input.endsWith('.csv')) {
      // The file's bytes as they are (they may not be UTF-8), through the core's CSV reader
      // like the CLI's, so the CLI's answer is expected, exit 2 included.
      const raw = readFileSync(join(dir, input));
      const bytes = raw.includes('@@REPEAT(') ? new TextEncoder().encode(expand(raw.toString('utf8'))) : raw;
      if (!w && expect.exit === 2) {
        assert.throws(
          () => v.validateCsv(bytes, NOW),
          (e) => {
            for (const frag of expect.stderr_contains ?? []) {
              const want = frag.replace(/^input\.csv:(\d+)$/, 'line $1');
              assert.ok(e.message.includes(want), `${name}: error ${JSON.stringify(e.message)} lacks ${want}`);
            }
            return true;
          },
        );
        return;
      }
      const rows = (w && w.rows) ?? expect.rows;
      const report = v.validateCsv(bytes, NOW);
      checkRows(name, rows, report.verdicts, true);
      assert.equal(report.summary.records, rows.length);
      return;
    }
    const rows = (w && w.rows) ?? expect.rows;
    assert.ok(rows, `${name}: no rows to compare (give the case a wasm key)`);
    const text = expand(readFileSync(join(dir, input), 'utf8'));
    {
      const report = v.validate(JSON.parse(text), NOW);
      checkRows(name, rows, report.verdicts, false);
      assert.equal(report.summary.records, rows.length);
    }
  });
}
