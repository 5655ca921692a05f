// Node, ES module: the same instance as require('metergate') (no second copy of the wasm).
// `init` and `initSync` exist only so that code written for the browser build runs unchanged.
import m from './index.cjs';

export const { validate, Validator, explain, aggregateHourly, version } = m;
export function initSync() {}
export default async function init() {}
