// Runs every case of tests/conformance/*.json (and wasm/tests/fixtures/*.json) through the
// npm package and compares the full reports, messages included, with the native core's
// answers (wasm/examples/native_answers.rs, the same `Validator::validate`). Canonical JSON
// (sorted keys) must be identical.
//
// MG_NATIVE_ANSWERS names a file of native answers (wasm/test.sh makes it); without it this
// test runs the example itself with cargo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { canonical, pkgDir, rootDir, wasmDir } from './helpers.mjs';

const require = createRequire(import.meta.url);
const mg = require(pkgDir);

const dirs = [path.join(rootDir, 'tests', 'conformance'), path.join(wasmDir, 'tests', 'fixtures')];
const files = dirs
  .filter((d) => fs.existsSync(d))
  .flatMap((d) => fs.readdirSync(d).filter((f) => f.endsWith('.json')).sort().map((f) => path.join(d, f)));

function nativeAnswers() {
  const file = process.env.MG_NATIVE_ANSWERS;
  if (file) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const out = execFileSync(
    'cargo',
    ['run', '-q', '-p', 'metergate-wasm', '--example', 'native_answers', '--', ...dirs.filter((d) => fs.existsSync(d))],
    { cwd: rootDir, encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return JSON.parse(out);
}

const native = nativeAnswers();

function options(c) {
  return { now: c.now, settings: c.settings, policies: c.policies, history: c.history };
}

function run(fn) {
  try {
    return fn();
  } catch (e) {
    assert.ok(e instanceof Error, `threw a non-Error: ${e}`);
    return { error: e.message };
  }
}

test('there are conformance files to run', () => {
  assert.ok(files.length > 0, `no *.json in ${dirs.join(' or ')}`);
});

for (const file of files) {
  const name = path.basename(file);
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  test(`conformance ${path.relative(rootDir, file)}`, async (t) => {
    assert.ok(native[name], `no native answers for ${name}`);
    for (const c of doc.cases) {
      await t.test(c.name, () => {
        const want = native[name][c.name];
        assert.ok(want, `no native answer for case ${c.name}`);

        const got = run(() => mg.validate(c.records, c.contracts, options(c)));
        assert.equal(canonical(got), canonical(want), 'validate() differs from the native core');

        // The class gives the same report as the function.
        const viaClass = run(() => {
          const v = new mg.Validator(c.contracts, { settings: c.settings, policies: c.policies });
          try {
            return v.validate(c.records, c.now, c.history);
          } finally {
            v.free();
          }
        });
        assert.equal(canonical(viaClass), canonical(want), 'Validator.validate differs from the native core');

        // And the case's own expectations hold (tests/conformance/README.md: codes are a
        // multiset; fields maps a code to a field one of its findings must name).
        if (!want.error && Array.isArray(c.expect)) {
          assert.equal(got.verdicts.length, c.expect.length, 'one verdict per record');
          c.expect.forEach((e, i) => {
            const v = got.verdicts[i];
            assert.equal(v.verdict, e.verdict, `record ${i}: verdict`);
            const sorted = (xs) => [...xs].sort();
            assert.deepEqual(sorted(v.findings.map((f) => f.code)), sorted(e.codes ?? []), `record ${i}: codes`);
            for (const [code, field] of Object.entries(e.fields ?? {})) {
              assert.ok(
                v.findings.some((f) => f.code === code && f.field === field),
                `record ${i}: no ${code} finding names field ${field}`,
              );
            }
          });
        }
      });
    }
  });
}
