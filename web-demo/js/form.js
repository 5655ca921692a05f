// "Add usage": a seller-portal style form validated on every keystroke with
// Validator.validateRecord, with field-level findings, a live deadline countdown, and a
// local "ready to send" list.
import { store, subscribe } from './store.js';
import { el, errorText, formatDuration, hourFloor, parseTime, rfc3339, setDownload } from './util.js';

const $ = (id) => document.getElementById(id);

const FIELD_SLOT = {
  marketplace: 'msg-marketplace',
  product: 'msg-contract',
  customer: 'msg-contract',
  plan: 'msg-contract',
  dimension: 'msg-dimension',
  quantity: 'msg-quantity',
  start_time: 'msg-start_time',
  end_time: 'msg-end_time',
  record_id: 'msg-record_id',
};
const SLOT_INPUT = {
  'msg-marketplace': 'f-marketplace',
  'msg-contract': 'f-contract',
  'msg-dimension': 'f-dimension',
  'msg-quantity': 'f-quantity',
  'msg-start_time': 'f-start',
  'msg-end_time': 'f-end',
  'msg-record_id': 'f-record-id',
};

const ready = [];
let last = { key: '', verdict: null, deadline: null };

function contractKey(c) {
  return `${c.marketplace}/${c.product}/${c.customer}`;
}

function selectedContract() {
  const key = $('f-contract').value;
  return (store.contracts || []).find((c) => contractKey(c) === key) || null;
}

function fillContracts() {
  const sel = $('f-contract');
  const mp = $('f-marketplace').value;
  const previous = sel.value;
  const list = (store.contracts || []).filter((c) => c && c.marketplace === mp);
  sel.replaceChildren();
  if (!list.length) {
    sel.append(el('option', { value: '', text: store.contracts ? 'No contract for this marketplace' : 'Fix the contracts JSON first' }));
  }
  for (const c of list) {
    const label = `${c.product} · ${c.customer}${c.status && c.status !== 'active' ? ` (${c.status})` : ''}`;
    sel.append(el('option', { value: contractKey(c), text: label }));
  }
  if (list.some((c) => contractKey(c) === previous)) sel.value = previous;
  fillDimensions();
}

function fillDimensions() {
  const sel = $('f-dimension');
  const previous = sel.value;
  const c = selectedContract();
  const dims = (c && Array.isArray(c.dimensions) ? c.dimensions : []).map((d) => d && d.name).filter(Boolean);
  sel.replaceChildren();
  if (!dims.length) sel.append(el('option', { value: '', text: 'No dimension' }));
  for (const name of dims) sel.append(el('option', { value: name, text: name }));
  if (dims.includes(previous)) sel.value = previous;
  const info = $('contract-info');
  if (c) {
    const bits = [`status ${c.status}`, `from ${c.starts_at}`];
    if (c.cancelled_at) bits.push(`cancelled ${c.cancelled_at}`);
    if (c.ends_at) bits.push(`ends ${c.ends_at}`);
    if (c.plan) bits.push(`plan ${c.plan}`);
    const unit = (c.dimensions || []).find((d) => d.name === sel.value)?.unit;
    if (unit !== undefined) bits.push(`${sel.value}: unit ${unit}`);
    info.textContent = bits.join(' · ');
  } else {
    info.textContent = '';
  }
}

function showEnd() {
  const gcp = $('f-marketplace').value === 'gcp';
  $('end-field').hidden = !gcp;
  $('start-label').textContent = gcp ? 'Start time' : 'Usage time';
}

export function currentRecord() {
  const c = selectedContract();
  const rec = { marketplace: $('f-marketplace').value };
  if (c) {
    rec.product = c.product;
    rec.customer = c.customer;
    if (c.plan) rec.plan = c.plan;
  }
  const put = (name, value) => {
    const v = String(value ?? '').trim();
    if (v) rec[name] = v;
  };
  put('dimension', $('f-dimension').value);
  put('quantity', $('f-quantity').value);
  put('start_time', $('f-start').value);
  if (rec.marketplace === 'gcp') put('end_time', $('f-end').value);
  put('record_id', $('f-record-id').value);
  return rec;
}

function findingNode(f) {
  const node = el('div', { class: `finding ${f.severity}`, 'data-code': f.code, 'data-field': f.field ?? '' },
    el('span', { class: 'code', text: f.code }),
    el('span', { class: 'message', text: f.message }),
    f.rule ? el('span', { class: 'rule', text: `(${f.rule})` }) : null,
    f.hint ? el('span', { class: 'hint', text: f.hint }) : null);
  return node;
}

function render(verdict, problem) {
  const slots = {};
  for (const id of [...new Set(Object.values(FIELD_SLOT)), 'msg-general']) slots[id] = [];
  const findings = verdict ? verdict.findings : [];
  for (const f of findings) slots[FIELD_SLOT[f.field] || 'msg-general'].push(f);
  for (const [id, list] of Object.entries(slots)) {
    $(id).replaceChildren(...list.map(findingNode));
    const input = SLOT_INPUT[id] && $(SLOT_INPUT[id]);
    if (input) {
      if (list.some((f) => f.severity === 'error')) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  }
  const box = $('verdict');
  const submit = $('submit');
  if (!verdict) {
    box.replaceChildren(el('span', { class: 'badge pending', text: problem || 'Not checked' }));
    box.dataset.verdict = '';
    submit.disabled = true;
    $('submit-why').textContent = problem || '';
    return;
  }
  const errors = findings.filter((f) => f.severity === 'error').length;
  const warnings = findings.length - errors;
  box.dataset.verdict = verdict.verdict;
  const label = verdict.verdict === 'accepted'
    ? `✓ Accepted${warnings ? ` with ${warnings} warning${warnings > 1 ? 's' : ''}` : ''}`
    : `✕ Rejected: ${errors} problem${errors > 1 ? 's' : ''} to fix`;
  // For screen readers (this box is aria-live): what is wrong, field by field.
  const spoken = findings.map((f) => `${f.severity} ${f.code}${f.field ? ` on ${f.field}` : ''}: ${f.message}${f.hint ? `. ${f.hint}` : ''}`).join('. ');
  box.replaceChildren(el('span', { class: `badge ${verdict.verdict}`, text: label }), spoken ? el('span', { class: 'sr-only', text: ` ${spoken}` }) : null);
  submit.disabled = verdict.verdict !== 'accepted';
  $('submit-why').textContent = verdict.verdict === 'accepted' ? '' : 'Fix the problems above to add this record.';
}

function renderDeadline() {
  const box = $('deadline');
  const d = last.deadline;
  if (!d) {
    box.hidden = true;
    box.replaceChildren();
    delete box.dataset.at;
    return;
  }
  const at = parseTime(d.at);
  const left = at - store.nowMs;
  box.hidden = false;
  box.dataset.at = d.at;
  box.dataset.rule = d.rule;
  box.classList.toggle('passed', left < 0);
  box.classList.toggle('soon', left >= 0 && left < 30 * 60_000);
  const what = d.hard ? 'Send by' : 'Report by';
  const after = d.hard ? '' : ' (later it is only a warning)';
  box.replaceChildren(
    el('span', { text: `${what} ` }),
    el('time', { datetime: d.at, text: d.at }),
    el('span', { class: 'muted', text: ` · rule ${d.rule}${after} · ` }),
    left >= 0
      ? el('strong', { id: 'countdown', text: `${formatDuration(left)} left` })
      : el('strong', { id: 'countdown', text: `passed ${formatDuration(-left)} ago` }),
  );
}

/** Findings the stateless check cannot see: a repeat of a record already in the ready list. */
function dedupAgainstReady(v, rec, now) {
  if (!ready.length) return [];
  try {
    const report = v.validate([...ready, rec], now);
    const mine = report.verdicts[report.verdicts.length - 1];
    return mine.findings.filter((f) => f.code === 'duplicate-request' || f.code === 'duplicate-ignored');
  } catch {
    return [];
  }
}

export function check(force = false) {
  const v = store.validator;
  const rec = currentRecord();
  const now = rfc3339(new Date(store.nowMs));
  const key = JSON.stringify([rec, now, ready.length]);
  if (!force && key === last.key) {
    renderDeadline();
    return;
  }
  last.key = key;
  if (!v) {
    last.verdict = null;
    last.deadline = null;
    render(null, 'Fix the contracts to check records');
    renderDeadline();
    return;
  }
  let verdict;
  try {
    verdict = v.validateRecord(rec, now);
    const extra = dedupAgainstReady(v, rec, now).filter((f) => !verdict.findings.some((g) => g.code === f.code));
    if (extra.length) {
      verdict = { ...verdict, findings: [...verdict.findings, ...extra] };
      if (extra.some((f) => f.severity === 'error')) verdict.verdict = 'rejected';
    }
  } catch (e) {
    last.verdict = null;
    last.deadline = null;
    render(null, `Could not check: ${errorText(e)}`);
    renderDeadline();
    return;
  }
  let deadline = null;
  try {
    deadline = v.deadline(rec, now) ?? null;
  } catch {
    deadline = null;
  }
  const same = JSON.stringify(verdict) === JSON.stringify(last.verdict);
  last.verdict = verdict;
  last.deadline = deadline;
  if (!same || force) render(verdict);
  renderDeadline();
}

function renderReady() {
  const body = $('ready-table').tBodies[0];
  body.replaceChildren();
  ready.forEach((r, i) => {
    const remove = el('button', { type: 'button', class: 'secondary small', text: 'Remove', 'aria-label': `Remove record ${i + 1}` });
    remove.addEventListener('click', () => {
      ready.splice(i, 1);
      renderReady();
      check(true);
    });
    body.append(el('tr', {},
      el('td', { text: r.marketplace }), el('td', { text: r.customer ?? '' }), el('td', { class: 'mono', text: r.dimension ?? '' }),
      el('td', { class: 'num', text: r.quantity ?? '' }),
      el('td', { class: 'mono', text: r.end_time ? `${r.start_time} → ${r.end_time}` : r.start_time ?? '' }),
      el('td', {}, remove)));
  });
  if (!ready.length) body.append(el('tr', {}, el('td', { colspan: '6', class: 'empty', text: 'Nothing yet.' })));
  $('ready-count').textContent = String(ready.length);
  $('ready-download').disabled = !ready.length;
  $('ready-clear').disabled = !ready.length;
}

function setStartToHour() {
  const h = hourFloor(store.nowMs);
  if ($('f-marketplace').value === 'gcp') {
    $('f-start').value = rfc3339(new Date(h - 3_600_000));
    $('f-end').value = rfc3339(new Date(h));
  } else {
    $('f-start').value = rfc3339(new Date(h));
  }
}

export function initForm() {
  const form = $('usage-form');
  $('f-quantity').value = '1';
  setStartToHour();
  showEnd();
  fillContracts();

  $('f-marketplace').addEventListener('change', () => {
    showEnd();
    if ($('f-marketplace').value === 'gcp' && !$('f-end').value) setStartToHour();
    fillContracts();
    check();
  });
  $('f-contract').addEventListener('change', () => {
    fillDimensions();
    check();
  });
  $('f-dimension').addEventListener('change', () => {
    fillDimensions();
    check();
  });
  for (const id of ['f-quantity', 'f-start', 'f-end', 'f-record-id']) $(id).addEventListener('input', () => check());
  $('start-hour').addEventListener('click', () => {
    setStartToHour();
    check();
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    check(true);
    if (!last.verdict || last.verdict.verdict !== 'accepted') return;
    ready.push(currentRecord());
    renderReady();
    check(true);
    $('submit-why').textContent = 'Added to “ready to send”.';
  });
  $('ready-clear').addEventListener('click', () => {
    ready.length = 0;
    renderReady();
    check(true);
  });
  $('ready-download').addEventListener('click', () => {
    const a = el('a', {});
    setDownload(a, new Blob([JSON.stringify(ready, null, 2) + '\n'], { type: 'application/json' }), 'metergate-ready.json');
    document.body.append(a);
    a.click();
    a.remove();
  });
  renderReady();

  subscribe((what) => {
    if (what === 'validator') {
      fillContracts();
      check(true);
    } else if (what === 'now') {
      check();
    }
  });
  check(true);
}
