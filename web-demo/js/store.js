// Page state: "now", the contracts, the policy and the settings, and the compiled Validator
// built from them. Modules subscribe and re-render when something changes.
import { makeValidator } from './mg.js';
import { errorText, lineColumn } from './util.js';

const listeners = new Set();

export const store = {
  nowMs: Date.now(),
  followClock: true,
  contractsText: '',
  /** The parsed contracts array (for the form's dropdowns), or null when the JSON is bad. */
  contracts: null,
  policy: { name: 'my_policy', source: '', enabled: true },
  settingsText: '',
  settings: {},
  /** The compiled validator, or null when the contracts are unusable. */
  validator: null,
  /** Whether the current validator includes the policy. */
  policyApplied: false,
  errors: { contracts: null, policy: null, settings: null },
};

export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function emit(what) {
  for (const fn of listeners) {
    try {
      fn(what);
    } catch (e) {
      console.error(e);
    }
  }
}

export function setNow(ms, { follow } = {}) {
  store.nowMs = ms;
  if (follow !== undefined) store.followClock = follow;
  emit('now');
}

function policyList() {
  const p = store.policy;
  if (!p.enabled || !p.source.trim()) return [];
  return [{ name: p.name.trim() || 'my_policy', source: p.source }];
}

/** The configuration the CSV worker compiles its own validator from. */
export function currentConfig() {
  return {
    contracts: store.contractsText,
    policies: store.policyApplied ? policyList() : [],
    settings: store.errors.settings ? {} : store.settings,
  };
}

function tryBuild(config) {
  try {
    return { v: makeValidator(config) };
  } catch (e) {
    return { err: errorText(e) };
  }
}

/** Recompiles the validator from the current text of contracts, policy and settings. */
export function rebuild() {
  const errors = { contracts: null, policy: null, settings: null };

  try {
    const parsed = JSON.parse(store.contractsText);
    store.contracts = Array.isArray(parsed) ? parsed : null;
    if (!store.contracts) errors.contracts = { message: 'the contracts must be a JSON array' };
  } catch (e) {
    store.contracts = null;
    errors.contracts = { message: errorText(e) };
  }

  let settings = {};
  if (store.settingsText.trim()) {
    try {
      settings = JSON.parse(store.settingsText);
      if (settings === null || typeof settings !== 'object' || Array.isArray(settings)) {
        errors.settings = { message: 'the settings must be a JSON object' };
        settings = {};
      }
    } catch (e) {
      errors.settings = { message: errorText(e) };
      settings = {};
    }
  }
  store.settings = settings;

  const policies = policyList();
  let built = null;
  let applied = false;
  if (!errors.contracts) {
    const full = tryBuild({ contracts: store.contractsText, policies, settings });
    if (full.v) {
      built = full.v;
      applied = policies.length > 0;
    } else {
      // Find which input is at fault: drop the policy, then the settings.
      const noPolicy = policies.length ? tryBuild({ contracts: store.contractsText, policies: [], settings }) : full;
      if (policies.length && noPolicy.v) {
        built = noPolicy.v;
        errors.policy = { message: full.err, where: lineColumn(full.err) };
      } else {
        const bare = tryBuild({ contracts: store.contractsText, policies: [], settings: {} });
        if (bare.v) {
          built = bare.v;
          if (!errors.settings) errors.settings = { message: noPolicy.err };
          // The policy may be fine; it is only tried again once the settings are fixed.
        } else {
          errors.contracts = { message: bare.err, where: lineColumn(bare.err) };
        }
      }
    }
  }

  const old = store.validator;
  store.validator = built;
  store.policyApplied = applied;
  store.errors = errors;
  if (old && old !== built) {
    try {
      old.free();
    } catch {
      /* already freed */
    }
  }
  emit('validator');
}
