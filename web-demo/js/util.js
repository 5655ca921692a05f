// Small helpers shared by the page's modules.

/** RFC 3339 in UTC, whole seconds: 2026-03-31T12:00:00Z */
export function rfc3339(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Parses RFC 3339 text into epoch milliseconds, or NaN. Strict enough for a "now" field. */
export function parseTime(text) {
  const t = String(text ?? '').trim();
  if (!/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/.test(t)) return NaN;
  return Date.parse(t.replace(' ', 'T'));
}

export function hourFloor(ms) {
  return Math.floor(ms / 3_600_000) * 3_600_000;
}

/** "2 h 05 min 09 s" style, for countdowns. */
export function formatDuration(ms) {
  const neg = ms < 0;
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const pad = (n) => String(n).padStart(2, '0');
  let out;
  if (d > 0) out = `${d} d ${h} h ${pad(m)} min`;
  else if (h > 0) out = `${h} h ${pad(m)} min ${pad(s)} s`;
  else out = `${m} min ${pad(s)} s`;
  return neg ? `-${out}` : out;
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'id' || k === 'title' || k === 'scope' || k === 'colspan') e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

export function formatInt(n) {
  return Number(n).toLocaleString('en-US');
}

/** Pulls "line L, column C" out of an error message, if it has them. */
export function lineColumn(message) {
  const m = /line\s+(\d+)\s*,\s*column\s+(\d+)/i.exec(String(message));
  return m ? { line: Number(m[1]), column: Number(m[2]) } : null;
}

export function errorText(e) {
  if (e instanceof Error) return e.message;
  if (typeof e === 'string') return e;
  try { return JSON.stringify(e); } catch { return String(e); }
}

/** Offers text or a Blob as a file download through a link element. */
export function setDownload(link, blob, name) {
  if (link.dataset.url) URL.revokeObjectURL(link.dataset.url);
  const url = URL.createObjectURL(blob);
  link.href = url;
  link.dataset.url = url;
  link.download = name;
  link.removeAttribute('aria-disabled');
}
