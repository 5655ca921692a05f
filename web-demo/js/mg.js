// The one place that talks to the npm package "metergate" (its web target, copied into
// vendor/ by build.mjs). Both the page and the CSV worker import this module.
import init, * as mg from '../vendor/metergate.js';

let loading = null;

/** Loads and instantiates the WASM module once; resolves to the package's exports. */
export function loadMetergate() {
  if (!loading) loading = init().then(() => mg);
  return loading;
}

/**
 * Compiles a validator. `config` = { contracts: string (JSON text), policies: [{name, source}],
 * settings: object }. Throws the package's Error (a policy compile error names line and column).
 */
export function makeValidator(config) {
  const options = {};
  if (config.policies && config.policies.length) options.policies = config.policies;
  if (config.settings && Object.keys(config.settings).length) options.settings = config.settings;
  return new mg.Validator(config.contracts, options);
}

export { mg };
