// Shared by the node tests: where things are, and a temporary project that depends on the
// built package by name (so that `require('metergate')` goes through its exports map).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const wasmDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const rootDir = path.resolve(wasmDir, '..');
export const pkgDir = path.join(wasmDir, 'pkg');

if (!fs.existsSync(path.join(pkgDir, 'package.json'))) {
  throw new Error(`${pkgDir} is not built: run wasm/build.sh first`);
}

/** A fresh directory with node_modules/metergate -> wasm/pkg. */
export function tempProject() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metergate-test-'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(pkgDir, path.join(dir, 'node_modules', 'metergate'), 'dir');
  return dir;
}

/** JSON with object keys sorted at every level. */
export function canonical(v) {
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  }
  return v;
}
