// The package as a dependency: CommonJS require, ESM import, the web build in Node with
// initSync, and a bundler (esbuild) build of a tiny browser app that is then run in Node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { tempProject, wasmDir, pkgDir } from './helpers.mjs';

const project = tempProject();
const NOW = '2026-03-01T12:00:00Z';
const app = `
const contracts = [{ marketplace: 'aws', product: 'prod-a1', customer: 'cust-1', status: 'active',
  starts_at: '2026-01-01T00:00:00Z', customer_identifier: 'Xk8JmQ2pLz9', dimensions: [{ name: 'api_calls' }] }];
const records = [{ marketplace: 'aws', product: 'prod-a1', customer: 'cust-1', dimension: 'api_calls',
  quantity: 3, start_time: '2026-03-01T10:00:00Z' }, { quantity: 'x' }];
const result = () => JSON.stringify(mg.validate(records, contracts, { now: '${NOW}' }).summary);
`;
const expected = JSON.stringify({
  records: 2, accepted: 1, rejected: 1, warnings: 0, by_code: { 'invalid-quantity': 1, 'invalid-record': 5 },
});

function node(file) {
  return execFileSync(process.execPath, [file], { cwd: project, encoding: 'utf8' }).trim();
}

test('CommonJS: require("metergate")', () => {
  const f = path.join(project, 'cjs.cjs');
  fs.writeFileSync(f, `const mg = require('metergate');\n${app}\nconsole.log(result());\n`);
  assert.equal(node(f), expected);
});

test('ESM: import from "metergate" (same instance as require)', () => {
  const f = path.join(project, 'esm.mjs');
  fs.writeFileSync(
    f,
    `import * as mg from 'metergate';\nimport init, { Validator } from 'metergate';\nimport { createRequire } from 'node:module';\n` +
      `await init();\nif (Validator !== createRequire(import.meta.url)('metergate').Validator) throw new Error('two instances');\n` +
      `${app}\nconsole.log(result());\n`,
  );
  assert.equal(node(f), expected);
});

test('web build in Node: initSync({ module: bytes })', () => {
  const f = path.join(project, 'web.mjs');
  fs.writeFileSync(
    f,
    `import fs from 'node:fs';\nimport { createRequire } from 'node:module';\nimport * as mg from 'metergate/web';\n` +
      `const wasm = createRequire(import.meta.url).resolve('metergate/metergate_bg.wasm');\n` +
      `mg.initSync({ module: fs.readFileSync(wasm) });\n${app}\nconsole.log(result());\n`,
  );
  assert.equal(node(f), expected);
});

test('bundler: esbuild bundles a browser app; the bundle runs and points at the .wasm', async () => {
  const esbuild = await import(path.join(wasmDir, 'node_modules', 'esbuild', 'lib', 'main.js'));
  const src = path.join(project, 'app.mjs');
  fs.writeFileSync(
    src,
    `import init, * as mg from 'metergate';\n${app}\n` +
      `export async function main(wasm) { await init(wasm === undefined ? undefined : { module_or_path: wasm }); return result(); }\n`,
  );
  const out = path.join(project, 'dist', 'app.js');
  await esbuild.build({
    entryPoints: [src], bundle: true, format: 'esm', platform: 'browser', outfile: out, logLevel: 'silent',
  });
  const text = fs.readFileSync(out, 'utf8');
  assert.match(text, /new URL\("metergate_bg\.wasm", import\.meta\.url\)/, 'the bundle loads the wasm next to itself');
  assert.doesNotMatch(text, /require\(/, 'no Node-only code in a browser bundle');
  // Deploy it as a browser would get it: the .wasm beside the bundle. Node cannot fetch a
  // file: URL, so pass the bytes (a browser calls main() with no argument).
  fs.copyFileSync(path.join(pkgDir, 'web', 'metergate_bg.wasm'), path.join(project, 'dist', 'metergate_bg.wasm'));
  const run = path.join(project, 'dist', 'run.mjs');
  fs.writeFileSync(
    run,
    `import fs from 'node:fs';\nimport { main } from './app.js';\n` +
      `console.log(await main(fs.readFileSync(new URL('metergate_bg.wasm', import.meta.url))));\n`,
  );
  assert.equal(node(run), expected);
});

test('package.json exports and types are in place', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  assert.equal(pkg.name, 'metergate');
  assert.ok(fs.existsSync(path.join(pkgDir, pkg.types)));
  for (const file of ['node/index.cjs', 'node/index.mjs', 'node/metergate.js', 'web/metergate.js', 'bundler/metergate.js',
    'web/metergate_bg.wasm', 'node/metergate_bg.wasm', 'bundler/metergate_bg.wasm']) {
    assert.ok(fs.existsSync(path.join(pkgDir, file)), file);
  }
});
