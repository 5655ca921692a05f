// Boots the page: loads the metergate package, the sample contracts and the example
// policies, and wires "now", the contracts editor and the policy editor to the store.
import { loadMetergate } from './mg.js';
import { rebuild, setNow, store, subscribe } from './store.js';
import { initForm } from './form.js';
import { initCsv } from './csv.js';
import { debounce, el, errorText, formatInt, parseTime, rfc3339 } from './util.js';

const $ = (id) => document.getElementById(id);

const STARTER_POLICY = `// Your own rule, run after the marketplace rules on every record.
// Report with reject(code, message[, hint]) or warn(...); reject_field / warn_field
// take the field first, so the message shows next to that input.
fn check(record, ctx) {
    // Example: refuse a quantity far above anything this product meters.
    // if record.quantity > 1000000 {
    //     reject_field("quantity", "too-large", \`quantity \${record.quantity} looks wrong\`);
    // }
}
`;

const DEFAULT_SETTINGS = {
  aws: { lookback: '6h' },
  warning_margin: '30m',
  params: {
    dimension_cap: { caps: { api_calls: 100000, seats: 500 } },
  },
};

let sampleContracts = '[]';

function setStatus(id, kind, text) {
  const p = $(id);
  p.className = `status ${kind}`;
  p.textContent = text;
  p.dataset.state = kind;
}

// ---- now ---------------------------------------------------------------------------------
function initNow() {
  const input = $('now');
  input.value = rfc3339(new Date(store.nowMs));
  const mode = () => {
    $('now-mode').textContent = store.followClock ? 'Following the real clock.' : 'Fixed time (not the real clock).';
    $('now-clock').disabled = store.followClock;
  };
  input.addEventListener('input', () => {
    const ms = parseTime(input.value);
    if (Number.isNaN(ms)) {
      input.setAttribute('aria-invalid', 'true');
      $('now-error').textContent = 'Write an RFC 3339 time, e.g. 2026-03-31T12:00:00Z.';
      return;
    }
    input.removeAttribute('aria-invalid');
    $('now-error').textContent = '';
    setNow(ms, { follow: false });
    mode();
  });
  $('now-clock').addEventListener('click', () => {
    input.removeAttribute('aria-invalid');
    $('now-error').textContent = '';
    setNow(Date.now(), { follow: true });
    input.value = rfc3339(new Date(store.nowMs));
    mode();
  });
  setInterval(() => {
    if (!store.followClock) return;
    const ms = Math.floor(Date.now() / 1000) * 1000;
    if (document.activeElement !== input) input.value = rfc3339(new Date(ms));
    setNow(ms);
  }, 1000);
  mode();
}

// ---- contracts ---------------------------------------------------------------------------
function renderContractsStatus() {
  const e = store.errors.contracts;
  const ta = $('contracts');
  if (e) {
    ta.setAttribute('aria-invalid', 'true');
    setStatus('contracts-status', 'error', `Not usable: ${e.message}`);
  } else {
    ta.removeAttribute('aria-invalid');
    const n = store.contracts ? store.contracts.length : 0;
    const mps = new Set((store.contracts || []).map((c) => c.marketplace));
    setStatus('contracts-status', 'ok', `✓ ${n} contract${n === 1 ? '' : 's'} (${[...mps].join(', ')})`);
  }
}

/**
 * Contracts texts longer than this are not kept in the textarea: Chromium lays out and keeps
 * the whole text of a textarea, about 250 MiB for 24,000 contracts (6.8 MB of JSON), more than
 * checking a 1M-row file costs. The store keeps the text; the textarea shows its start,
 * read-only, until "Edit here anyway".
 */
const LARGE_CONTRACTS = 1 << 20;
let editLarge = false;

function showContracts(text) {
  const ta = $('contracts');
  const large = text.length > LARGE_CONTRACTS && !editLarge;
  $('contracts-edit').hidden = !large;
  ta.readOnly = large;
  if (!large) {
    delete ta.dataset.preview;
    if (ta.value !== text) ta.value = text;
    return;
  }
  const cut = text.lastIndexOf('\n', 20_000);
  ta.value = `${text.slice(0, cut > 0 ? cut : 20_000)}\n\n… ${formatInt(text.length)} characters in all: too large to edit here (the whole text is in use). Load an edited file, paste a new text, or press "Edit here anyway".`;
  ta.dataset.preview = 'true';
}

function setContractsText(text) {
  store.contractsText = text;
  showContracts(text);
}

function initContracts() {
  const ta = $('contracts');
  setContractsText(sampleContracts);
  const apply = debounce(() => rebuild(), 250);
  ta.addEventListener('input', () => {
    // A large paste moves out of the textarea at once, before it is laid out.
    if (ta.value.length > LARGE_CONTRACTS && !editLarge) setContractsText(ta.value);
    else store.contractsText = ta.value;
    apply();
  });
  ta.addEventListener('paste', (e) => {
    // Pasting over the read-only preview replaces the whole text.
    if (!ta.readOnly) return;
    const text = e.clipboardData && e.clipboardData.getData('text');
    if (!text) return;
    e.preventDefault();
    setContractsText(text);
    apply();
  });
  $('contracts-edit').addEventListener('click', () => {
    editLarge = true;
    showContracts(store.contractsText);
  });
  $('contracts-file').addEventListener('change', async (e) => {
    const f = e.target.files && e.target.files[0];
    e.target.value = '';
    if (!f) return;
    editLarge = false;
    setContractsText(await f.text());
    rebuild();
  });
  $('contracts-reset').addEventListener('click', () => {
    editLarge = false;
    setContractsText(sampleContracts);
    rebuild();
  });
}

// ---- policy ------------------------------------------------------------------------------
function renderGutter() {
  const ta = $('policy');
  const lines = ta.value.split('\n').length;
  const errLine = store.errors.policy?.where?.line;
  const g = $('policy-gutter');
  g.replaceChildren(...Array.from({ length: lines }, (_, i) => {
    const n = i + 1;
    return n === errLine ? el('span', { class: 'err', text: `${n}` }, '\n') : `${n}\n`;
  }));
  g.scrollTop = ta.scrollTop;
}

function renderPolicyStatus() {
  const e = store.errors.policy;
  const ta = $('policy');
  const p = store.policy;
  const old = $('policy-goto');
  if (old) old.remove();
  if (e) {
    ta.setAttribute('aria-invalid', 'true');
    // The package's message already names the line and column ("policy x: line 4, column 5: ...").
    const where = e.where && !/line\s+\d+\s*,\s*column/i.test(e.message) ? `Line ${e.where.line}, column ${e.where.column}: ` : '';
    setStatus('policy-status', 'error', `${where}${e.message} — not applied.`);
    if (e.where) {
      $('policy-status').dataset.line = String(e.where.line);
      $('policy-status').dataset.column = String(e.where.column);
      const btn = el('button', { type: 'button', id: 'policy-goto', class: 'secondary small', text: 'Go to the error' });
      btn.addEventListener('click', () => goTo(e.where.line, e.where.column));
      $('policy-status').after(btn);
    }
  } else {
    ta.removeAttribute('aria-invalid');
    delete $('policy-status').dataset.line;
    delete $('policy-status').dataset.column;
    if (!p.enabled) setStatus('policy-status', 'muted', 'Not applied (unchecked).');
    else if (!p.source.trim()) setStatus('policy-status', 'muted', 'No policy.');
    else if (store.policyApplied) setStatus('policy-status', 'ok', `✓ Compiled. Policy “${p.name}” applies to the form and to the next CSV check.`);
    else setStatus('policy-status', 'muted', 'Not applied until the contracts and settings are fixed.');
  }
  renderGutter();
}

function goTo(line, column) {
  const ta = $('policy');
  const lines = ta.value.split('\n');
  let pos = 0;
  for (let i = 0; i < Math.min(line - 1, lines.length); i++) pos += lines[i].length + 1;
  pos += Math.max(0, column - 1);
  ta.focus();
  ta.setSelectionRange(pos, pos);
}

async function initPolicy() {
  const ta = $('policy');
  ta.value = STARTER_POLICY;
  store.policy.source = STARTER_POLICY;
  const apply = debounce(() => {
    store.policy.source = ta.value;
    rebuild();
  }, 200);
  ta.addEventListener('input', () => {
    renderGutter();
    apply();
  });
  ta.addEventListener('scroll', () => {
    $('policy-gutter').scrollTop = ta.scrollTop;
  });
  $('policy-name').addEventListener('input', debounce(() => {
    store.policy.name = $('policy-name').value.trim() || 'my_policy';
    rebuild();
  }, 250));
  $('policy-enabled').addEventListener('change', () => {
    store.policy.enabled = $('policy-enabled').checked;
    rebuild();
  });
  const sel = $('policy-example');
  let names = [];
  try {
    const r = await fetch(new URL('../vendor/policies/index.json', import.meta.url));
    if (r.ok) names = await r.json();
  } catch {
    names = [];
  }
  for (const n of names) sel.append(el('option', { value: n, text: `${n}.rhai` }));
  if (!names.length) sel.disabled = true;
  sel.addEventListener('change', async () => {
    const name = sel.value;
    if (!name) return;
    const r = await fetch(new URL(`../vendor/policies/${encodeURIComponent(name)}.rhai`, import.meta.url));
    if (!r.ok) return;
    ta.value = await r.text();
    $('policy-name').value = name;
    store.policy.name = name;
    store.policy.source = ta.value;
    ta.scrollTop = 0;
    rebuild();
  });

  const st = $('settings');
  st.value = JSON.stringify(DEFAULT_SETTINGS, null, 2);
  store.settingsText = st.value;
  st.addEventListener('input', debounce(() => {
    store.settingsText = st.value;
    rebuild();
  }, 250));
}

function renderSettingsStatus() {
  const e = store.errors.settings;
  if (e) {
    $('settings').setAttribute('aria-invalid', 'true');
    setStatus('settings-status', 'error', `Not usable: ${e.message} (the defaults apply).`);
  } else {
    $('settings').removeAttribute('aria-invalid');
    setStatus('settings-status', 'ok', '✓ Settings applied.');
  }
}

// ---- boot --------------------------------------------------------------------------------
async function boot() {
  const banner = $('engine-status');
  let mg;
  try {
    mg = await loadMetergate();
  } catch (e) {
    banner.className = 'banner error';
    banner.textContent = `The metergate engine could not load: ${errorText(e)}. Run "npm run build" in web-demo/.`;
    return;
  }
  try {
    const r = await fetch(new URL('../vendor/samples/contracts.json', import.meta.url));
    sampleContracts = r.ok ? await r.text() : '[]';
  } catch {
    sampleContracts = '[]';
  }
  $('version').textContent = `metergate ${mg.version()}`;
  initNow();
  initContracts();
  await initPolicy();
  subscribe((what) => {
    if (what === 'validator') {
      renderContractsStatus();
      renderPolicyStatus();
      renderSettingsStatus();
    }
  });
  rebuild();
  initForm();
  initCsv();
  banner.className = 'banner ok';
  banner.textContent = 'Ready.';
  document.body.dataset.ready = 'true';
}

boot();
