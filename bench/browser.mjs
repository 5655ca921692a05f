// The web demo in Debian's Chromium on a benchmark file, measured as a user would run it:
//
//   node bench/browser.mjs DATA_DIR [--cli BIN] [--interval MS] [--no-downloads]
//
// Serves web-demo/ (web-demo/serve.mjs, 127.0.0.1, a free port), opens the page in
// /usr/bin/chromium through playwright-core (headless; nothing downloads a browser), pastes
// DATA_DIR/contracts.json, sets "now" to DATA_DIR/meta.json's, gives DATA_DIR/usage.csv to the
// file input and waits until the check is done (the summary shows), then until both downloads
// are ready (a large file's on request: it clicks "Prepare the downloads"). Meanwhile, every
// --interval ms (default 100), it samples
//   - the page's JS heap: CDP Performance.getMetrics -> JSHeapUsedSize (the page's main thread;
//     the worker's heap and WASM memory are in the PSS below);
//   - the whole browser's memory: PSS summed over the browser process and every process under
//     it (/proc/PID/smaps_rollup), by process type (browser, renderer, gpu, utility...).
// The peaks are kept per phase: the check (what the targets judge) and the downloads. "idle" is
// the same figures with the page loaded, the engine loaded and the contracts
// compiled, before the file is given. With --cli, it runs `BIN check` on the same file and
// compares the counts. Prints one JSON line (bench/run.sh reads it) and a summary on stderr.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// The demo's own test helpers: its static server and the progress recorder.
import { startServer, watchProgress } from '../web-demo/tests/helpers.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const DEMO = join(ROOT, 'web-demo');
// playwright-core is the web demo's dev dependency (web-demo/package-lock.json).
const { chromium } = createRequire(join(DEMO, 'package.json'))('playwright-core');

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const dir = args[0];
if (!dir || dir.startsWith('--')) {
  console.error('usage: node bench/browser.mjs DATA_DIR [--cli BIN] [--interval MS] [--no-downloads]');
  process.exit(2);
}
const interval = Number(opt('--interval', '100'));
const cliBin = opt('--cli');
const say = (s) => process.stderr.write(`browser.mjs: ${s}\n`);
const MiB = 1024 * 1024;

const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
const contracts = readFileSync(join(dir, 'contracts.json'), 'utf8');
const csvPath = resolve(join(dir, 'usage.csv'));
const size = statSync(csvPath).size;

// --- the browser's processes ------------------------------------------------------------
function children() {
  const kids = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (!kids.has(ppid)) kids.set(ppid, []);
    kids.get(ppid).push(Number(name));
  }
  return kids;
}

function kind(pid) {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const m = /--type=([a-z-]+)/.exec(cmd);
    if (!m) return cmd.includes('chrom') ? 'browser' : 'other';
    if (m[1] === 'utility') {
      const s = /--utility-sub-type=([\w.]+)/.exec(cmd);
      return `utility:${s ? s[1].split('.').pop() : '?'}`;
    }
    return m[1];
  } catch {
    return 'gone';
  }
}

/** PSS in KiB of `root` and every process under it: { total, byKind: {kind: KiB}, count }. */
function pss(root) {
  const kids = children();
  const todo = [root];
  const byKind = {};
  let total = 0;
  let count = 0;
  while (todo.length) {
    const pid = todo.pop();
    for (const c of kids.get(pid) || []) todo.push(c);
    let text;
    try {
      text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    } catch {
      continue;
    }
    const m = /^Pss:\s+(\d+) kB/m.exec(text);
    if (!m) continue;
    const k = kind(pid);
    byKind[k] = (byKind[k] || 0) + Number(m[1]);
    total += Number(m[1]);
    count += 1;
  }
  return { total, byKind, count };
}

// --- the CLI's counts (optional) ---------------------------------------------------------
let cli = null;
if (cliBin) {
  let out;
  try {
    out = execFileSync(cliBin, ['check', csvPath, '--contracts', join(dir, 'contracts.json'), '--now', meta.now, '--format', 'json'], {
      maxBuffer: 4 << 30,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch (e) {
    if (typeof e.stdout !== 'string' || !e.stdout) throw e; // exit 1: some rows rejected
    out = e.stdout;
  }
  const last = JSON.parse(out.slice(out.trimEnd().lastIndexOf('\n') + 1));
  const s = last.summary ?? last;
  cli = { records: s.records, accepted: s.accepted, rejected: s.rejected, warnings: s.warnings };
  out = null;
}

// --- serve and open ----------------------------------------------------------------------
execFileSync(process.execPath, [join(DEMO, 'build.mjs'), '--if-needed'], { stdio: ['ignore', 'ignore', 'inherit'] });
const server = await startServer();
const url = server.url;

const profile = mkdtempSync(join(tmpdir(), 'metergate-bench-browser-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  viewport: { width: 1360, height: 1000 },
});
let result;
try {
  // The browser process: the one child of this node process that runs chromium.
  const rootPid = (children().get(process.pid) || []).find((p) => /chrom/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8')));
  if (!rootPid) throw new Error('cannot find the browser process');
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  await page.$eval('#contracts', (ta, t) => {
    ta.value = t;
    ta.dispatchEvent(new Event('input', { bubbles: true }));
  }, contracts);
  await page.waitForFunction(() => document.getElementById('contracts-status').dataset.state === 'ok', null, { timeout: 60_000 });
  await page.fill('#now', meta.now);
  await page.waitForFunction(() => document.getElementById('now-clock').disabled === false);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const heap = async () => {
    const { metrics } = await cdp.send('Performance.getMetrics');
    return metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? NaN;
  };
  await page.waitForTimeout(1000);
  await cdp.send('HeapProfiler.collectGarbage');
  const idle = { heap: await heap(), pss: pss(rootPid) };
  say(`idle: page JS heap ${(idle.heap / MiB).toFixed(1)} MiB, PSS ${(idle.pss.total / 1024).toFixed(1)} MiB over ${idle.pss.count} processes`);

  await watchProgress(page);

  // Sampling runs beside the check until stopped.
  // Two phases: the check (until the summary shows: the figures the targets judge), then the
  // downloads (built on request for a large file, or at once for a small one).
  const peak = { heap: idle.heap, pss: idle.pss, heapAt: 0, pssAt: 0, wasm: 0 };
  const dl = { heap: 0, pss: { total: 0, byKind: {} }, pssAt: 0 };
  let checking = true;
  let sampling = true;
  // The worker's WASM memory (it only grows): the package's module instance, asked in the worker.
  let wasmError = null;
  let probing = false;
  const wasmBytes = async () => {
    const w = page.workers()[0];
    if (!w) return 0;
    return w.evaluate(async () => {
      const m = await import(new URL('vendor/metergate.js', self.location.href).href);
      return (await m.default()).memory.buffer.byteLength;
    }).catch((e) => {
      if (!wasmError) say(`cannot read the worker's WASM memory: ${(wasmError = e).message.split('\n')[0]}`);
      return 0;
    });
  };
  let samples = 0;
  const trace = []; // [seconds, PSS MiB]
  const t0 = performance.now();
  const sampler = (async () => {
    while (sampling) {
      // The worker answers only between its tasks: its WASM memory is asked on the side, so
      // that a busy worker never holds up the PSS and heap samples.
      if (!probing) {
        probing = true;
        wasmBytes().then((w) => {
          if (w > peak.wasm) peak.wasm = w;
          probing = false;
        });
      }
      const [h, p] = await Promise.all([heap().catch(() => NaN), Promise.resolve(pss(rootPid))]);
      const at = (performance.now() - t0) / 1000;
      const ph = checking ? peak : dl;
      if (h > ph.heap) Object.assign(ph, { heap: h, heapAt: at });
      if (p.total > ph.pss.total) Object.assign(ph, { pss: p, pssAt: at });
      trace.push([Number(at.toFixed(1)), Math.round(p.total / 1024)]);
      samples += 1;
      await new Promise((r) => setTimeout(r, interval));
    }
  })();
  await page.setInputFiles('#csv-file', csvPath);
  await page.waitForSelector('#csv-phase[data-state="done"], #csv-phase[data-state="error"]', { timeout: 1_800_000, state: 'attached' });
  const checked = (performance.now() - t0) / 1000;
  checking = false;
  Object.assign(dl, { heap: 0, pss: { total: 0, byKind: {} } });
  const phase = await page.$eval('#csv-phase', (p) => ({ state: p.dataset.state, text: p.textContent }));
  if (phase.state !== 'done') throw new Error(`the check failed: ${phase.text}`);
  // A large file's downloads wait for a click (web-demo/worker.js AUTO_DOWNLOADS_MAX_BYTES).
  const onRequest = await page.isVisible('#dl-prepare');
  if (onRequest && !args.includes('--no-downloads')) await page.click('#dl-prepare');
  if (!args.includes('--no-downloads')) await page.waitForSelector('#dl-aggregated[data-info]:not([data-info=""])', { timeout: 1_800_000, state: 'attached' });
  const finished = (performance.now() - t0) / 1000;
  await page.waitForTimeout(500);
  sampling = false;
  await sampler;
  await cdp.send('HeapProfiler.collectGarbage');
  const after = { heap: await heap(), pss: pss(rootPid) };

  const got = await page.$eval('#csv-summary', (s) => ({ ...s.dataset }));
  const counts = { records: Number(got.records), accepted: Number(got.accepted), rejected: Number(got.rejected), warnings: Number(got.warnings) };
  const seen = await page.evaluate(() => window.__progress);
  const downloads = await page.evaluate(() => ['dl-annotated', 'dl-aggregated'].map((id) => Boolean(document.getElementById(id).dataset.url)));
  if (!downloads.every(Boolean)) say(`downloads not ready: ${await page.textContent('#dl-status')} ${JSON.stringify(downloads)}`);
  // The bar moved: several updates, some of them partway through the file, never backwards,
  // ending at the file's size.
  const partial = seen.filter(([b]) => b > 0 && b < size).length;
  const monotone = seen.every((s, i) => i === 0 || (s[0] >= seen[i - 1][0] && s[2] >= seen[i - 1][2]));
  const progressOk = seen.length >= 3 && partial >= 2 && monotone && seen[seen.length - 1][0] === size;
  result = {
    name: 'browser',
    records: counts.records,
    seconds: checked,
    seconds_with_downloads: finished,
    accepted: counts.accepted,
    rejected: counts.rejected,
    warnings: counts.warnings,
    counts_equal_cli: cli ? ['records', 'accepted', 'rejected', 'warnings'].every((k) => cli[k] === counts[k]) : null,
    cli,
    progress_updates: seen.length,
    progress_partial: partial,
    progress_ok: progressOk,
    downloads_ready: downloads.every(Boolean),
    js_heap_idle_bytes: idle.heap,
    js_heap_peak_bytes: peak.heap,
    js_heap_after_bytes: after.heap,
    pss_idle_kib: idle.pss.total,
    pss_peak_kib: peak.pss.total,
    pss_after_kib: after.pss.total,
    pss_peak_at_s: Number(peak.pssAt.toFixed(1)),
    worker_wasm_peak_bytes: peak.wasm,
    downloads_on_request: onRequest,
    pss_peak_downloads_kib: dl.pss.total,
    pss_peak_downloads_by_kind_kib: dl.pss.byKind,
    js_heap_peak_downloads_bytes: dl.heap,
    pss_peak_by_kind_kib: peak.pss.byKind,
    pss_idle_by_kind_kib: idle.pss.byKind,
    samples,
    pss_trace_mib: trace,
    page_errors: errors,
    file_bytes: size,
  };
  say(
    `${counts.records} rows in ${checked.toFixed(1)} s (downloads ready at ${finished.toFixed(1)} s); page JS heap peak ${(peak.heap / MiB).toFixed(1)} MiB; ` +
      `PSS peak ${(peak.pss.total / 1024).toFixed(1)} MiB at ${peak.pssAt.toFixed(1)} s ${JSON.stringify(Object.fromEntries(Object.entries(peak.pss.byKind).map(([k, v]) => [k, Math.round(v / 1024)])))}, ` +
      `while building the downloads${onRequest ? ' (on request)' : ''} ${(dl.pss.total / 1024).toFixed(1)} MiB; worker WASM memory ${(peak.wasm / MiB).toFixed(1)} MiB; idle ${(idle.pss.total / 1024).toFixed(1)} MiB, after ${(after.pss.total / 1024).toFixed(1)} MiB; progress updates ${seen.length} (${partial} partway, ok=${progressOk}); ` +
      `counts ${JSON.stringify(counts)}${cli ? ` CLI ${JSON.stringify(cli)} equal=${result.counts_equal_cli}` : ''}`,
  );
} finally {
  await context.close();
  server.stop();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
