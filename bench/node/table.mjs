// Formats bench/run.sh's results (JSON lines) as the Markdown of bench/RESULTS.md.
//
//   node table.mjs RESULTS.jsonl MODE ROWS NPROC CPU DATE NOW RUNS
import fs from 'node:fs';

const [file, mode, rowsArg, nproc, cpu, date, now, runs] = process.argv.slice(2);
const rows = Number(rowsArg);
const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const timed = new Map(lines.filter((l) => !l.counts).map((l) => [l.name, l]));
const counts = new Map(lines.filter((l) => l.counts).map((l) => [l.name, l]));

const ALL = 'all built-in rules: form, ids, units, look-back windows, dedup, contract state';
const SCHEMA = 'per-field schema only (types, ranges, enums, RFC 3339); **no** windows, dedup, units or contract state';
const VARIANTS = [
  ['floor', 'parse-only floor: `csv` crate → `RawRecord` (bench/floor)', 'none'],
  ['cli-builtin', '`metergate check --format json`', ALL],
  ['cli-policy', '`metergate check --format json --policy dimension_cap.rhai`', `${ALL} + one rhai policy`],
  ['wasm-session', 'npm `metergate` in Node: `csvSession({report: "problems"})`, 1 MiB chunks read from disk', ALL],
  ['wasm-csv', 'npm `metergate` in Node: `Validator.validateCsv(text)`', ALL],
  ['wasm-objects', 'npm `metergate` in Node: `Validator.validate(objects)` (split not timed)', ALL],
  ['papaparse-ajv', 'papaparse + ajv (compiled schema, ajv-formats)', SCHEMA],
  ['papaparse-zod', 'papaparse + zod (same schema)', SCHEMA],
  ['browser', 'web demo in Debian Chromium (bench/browser.mjs): file input → worker → `csvSession`, `File.stream()` chunks, until the summary shows', ALL],
];

const floor = timed.get('floor');
const browser = timed.get('browser');
const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
const rate = (r) => r.records / r.seconds;
const cpuRate = (r) => r.records / Math.max(r.cpu_seconds, 0.01);
const mib = (r) => r.rss_kib / 1024;

function verdicts(name, r) {
  const c = counts.get(name) ?? r;
  if (c.accepted !== undefined) return `${fmtInt(c.accepted)} accepted / ${fmtInt(c.rejected)} rejected`;
  if (c.valid !== undefined) return `${fmtInt(c.valid)} valid / ${fmtInt(c.invalid)} invalid`;
  return '—';
}

const out = [];
out.push(`# metergate benchmark results`);
out.push('');
out.push(`Written by \`bash bench/run.sh${mode === 'quick' ? ' --quick' : ''}\` on ${date}.`);
out.push('');
out.push(`- Machine: ${nproc} CPUs (\`nproc\`), ${cpu}; shared with other work while it ran, so expect noise.`);
out.push(`- Node ${process.version}.`);
out.push(`- Input: bench/data/rows-${rows}/usage.csv, ${fmtInt(rows)} rows from \`bench/gen_data.mjs\` (AWS, Azure, Google; about 5 % of each of 7 kinds of mistake), judged at ${now}.`);
out.push(`- Time: ${Number(runs) === 1 ? 'one run each' : `the best of ${runs} runs`}. Native rows: the whole process (start, contracts, read, check, JSON Lines to /dev/null). Node rows: the timed call only, on text already in memory (the papaparse rows include parsing).`);
out.push('- Wall and CPU: the machine is shared, so wall time includes waiting for a core; CPU time (user + system, from GNU time for native processes, `process.cpuUsage()` around the timed call in Node, GC and compiler threads included) is what the work costs. Every native variant is single-threaded. The targets below are judged on CPU time; the wall-time column is there for completeness.');
out.push(`- Peak RSS: GNU \`/usr/bin/time -f '%e %M'\` of the whole process (for Node: node itself, all runs).`);
out.push('- × floor: CPU time divided by the floor\'s CPU time (lower is better).');
if (browser) {
  out.push(
    `- Browser row: \`node bench/browser.mjs\` serves web-demo/ on 127.0.0.1, opens it in \`/usr/bin/chromium\` (headless, playwright-core), pastes the contracts, sets now, gives usage.csv to the file input and waits for the summary (wall time to there). ` +
      `Memory, sampled every 100 ms, peak until the summary shows: PSS summed over the browser process and every process under it (\`/proc/PID/smaps_rollup\`; the worker's JS heap and WASM memory are in the renderer's), and the page's JS heap (CDP \`Performance.getMetrics\` → \`JSHeapUsedSize\`, the main thread). ` +
      `Then the downloads (${browser.downloads_on_request ? 'built on request for a file this large: the script clicks "Prepare the downloads"' : 'built at once'}): ready at ${browser.seconds_with_downloads.toFixed(1)} s, peak PSS ${(browser.pss_peak_downloads_kib / 1024).toFixed(1)} MiB while building them (not part of the targets). ` +
      `The worker's WASM memory peaked at ${(browser.worker_wasm_peak_bytes / 1048576).toFixed(1)} MiB. ` +
      `Idle (page, engine and contracts loaded, no file yet): ${(browser.pss_idle_kib / 1024).toFixed(1)} MiB PSS, ${(browser.js_heap_idle_bytes / 1048576).toFixed(1)} MiB page JS heap. ` +
      `At the peak (${browser.pss_peak_at_s} s in): ${Object.entries(browser.pss_peak_by_kind_kib).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / 1024).toFixed(0)} MiB`).join(', ')}.`,
  );
}
out.push('');
out.push('| what | checks | records/s (CPU) | records/s (wall) | CPU s | wall s | × floor | peak RSS (MiB) | verdicts |');
out.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
for (const [name, what, checks] of VARIANTS) {
  const r = timed.get(name);
  if (!r) continue;
  if (name === 'browser') {
    // No CPU figure (the browser's several processes); the memory column is the whole browser's PSS.
    out.push(
      `| ${what} | ${checks} | — | ${fmtInt(rate(r))} | — | ${r.seconds.toFixed(2)} | — | ${(r.pss_peak_kib / 1024).toFixed(1)} (PSS, all processes) | ${verdicts(name, r)} |`,
    );
    continue;
  }
  out.push(
    `| ${what} | ${checks} | ${fmtInt(cpuRate(r))} | ${fmtInt(rate(r))} | ${r.cpu_seconds.toFixed(2)} | ${r.seconds.toFixed(2)} | ${(r.cpu_seconds / floor.cpu_seconds).toFixed(2)} | ${mib(r).toFixed(1)} | ${verdicts(name, r)} |`,
  );
}

// Targets: reported here, never asserted.
const cliB = timed.get('cli-builtin');
const cliP = timed.get('cli-policy');
const wasm = timed.get('wasm-csv');
const ajv = timed.get('papaparse-ajv');
const mark = (ok) => (ok ? 'met' : '**missed**');
const t = [];
t.push(['CLI, built-in rules: ≥ 1,000,000 records/s (one core)', `${fmtInt(cpuRate(cliB))} records/s (wall: ${fmtInt(rate(cliB))})`, cpuRate(cliB) >= 1e6]);
t.push(['CLI, built-in rules: ≤ 3× the floor', `${(cliB.cpu_seconds / floor.cpu_seconds).toFixed(2)}× (wall: ${(cliB.seconds / floor.seconds).toFixed(2)}×)`, cliB.cpu_seconds / floor.cpu_seconds <= 3]);
t.push(['CLI, one policy: ≥ 500,000 records/s', `${fmtInt(cpuRate(cliP))} records/s (wall: ${fmtInt(rate(cliP))})`, cpuRate(cliP) >= 5e5]);
const rssNote = rows === 1e6 ? '' : ` (at ${fmtInt(rows)} rows; the target is for 1,000,000)`;
t.push([
  'CLI peak RSS ≤ 150 MB for 1M rows',
  `${(cliB.rss_kib / 1024).toFixed(1)} / ${(cliP.rss_kib / 1024).toFixed(1)} MiB (built-in / policy)${rssNote}`,
  Math.max(cliB.rss_kib, cliP.rss_kib) * 1024 <= 150e6,
]);
const sess = timed.get('wasm-session');
if (sess) {
  t.push(['npm `csvSession` ≥ 2× papaparse + ajv records/s', `${(ajv.cpu_seconds / sess.cpu_seconds).toFixed(2)}× (wall: ${(ajv.seconds / sess.seconds).toFixed(2)}×)`, ajv.cpu_seconds / sess.cpu_seconds >= 2]);
  t.push(['npm `csvSession` ≤ 1.5× the CLI CPU time', `${(sess.cpu_seconds / cliB.cpu_seconds).toFixed(2)}×`, sess.cpu_seconds / cliB.cpu_seconds <= 1.5]);
  t.push([`npm \`csvSession\` peak RSS ≤ 250 MB (1 MiB chunks)`, `${(sess.rss_kib / 1024).toFixed(1)} MiB${rssNote}`, sess.rss_kib * 1024 <= 250e6]);
}
t.push(['WASM `validateCsv` ≤ 1.5× the native (CLI built-in) time', `${(wasm.cpu_seconds / cliB.cpu_seconds).toFixed(2)}× (wall: ${(wasm.seconds / cliB.seconds).toFixed(2)}×)`, wasm.cpu_seconds / cliB.cpu_seconds <= 1.5]);
t.push(['WASM `validateCsv` at least as fast as papaparse + ajv', `${(ajv.cpu_seconds / wasm.cpu_seconds).toFixed(2)}× as fast (wall: ${(ajv.seconds / wasm.seconds).toFixed(2)}×)`, wasm.cpu_seconds <= ajv.cpu_seconds]);
if (browser) {
  const cliCounts = counts.get('cli-builtin');
  const equal = cliCounts && ['records', 'accepted', 'rejected', 'warnings'].every((k) => browser[k] === cliCounts[k]);
  const rowsNote = rows === 1e6 ? '' : ` (at ${fmtInt(rows)} rows; the target is for 1,000,000)`;
  t.push(['Browser: page JS heap < 300 MB', `${(browser.js_heap_peak_bytes / 1e6).toFixed(1)} MB peak (idle ${(browser.js_heap_idle_bytes / 1e6).toFixed(1)} MB)${rowsNote}`, browser.js_heap_peak_bytes < 300e6]);
  t.push(['Browser: PSS of every Chromium process < 800 MiB', `${(browser.pss_peak_kib / 1024).toFixed(1)} MiB peak (idle ${(browser.pss_idle_kib / 1024).toFixed(1)} MiB)${rowsNote}`, browser.pss_peak_kib < 800 * 1024]);
  t.push(['Browser: counts equal the CLI\'s', `${fmtInt(browser.accepted)} accepted / ${fmtInt(browser.rejected)} rejected / ${fmtInt(browser.warnings)} warnings in ${browser.seconds.toFixed(1)} s`, Boolean(equal)]);
  t.push(['Browser: the progress bar moves', `${browser.progress_updates} updates, ${browser.progress_partial} of them partway through the file`, browser.progress_ok]);
}
out.push('');
out.push('## Targets (reported, never asserted)');
out.push('');
out.push('| target | measured | |');
out.push('| --- | --- | --- |');
for (const [what, got, ok] of t) out.push(`| ${what} | ${got} | ${mark(ok)} |`);

// The same verdicts everywhere: the CLI and the npm package call the same core.
const a = counts.get('cli-builtin');
const same = ['wasm-session', 'wasm-csv', 'wasm-objects'].map((n) => timed.get(n)).filter(Boolean);
const agree = a && same.every((r) => r.accepted === a.accepted && r.rejected === a.rejected && r.records === a.records);
out.push('');
out.push(
  agree
    ? `The CLI and every npm-package run give the same counts (${fmtInt(a.accepted)} accepted, ${fmtInt(a.rejected)} rejected, ${fmtInt(a.warnings)} warnings).`
    : `**The CLI and the npm package disagree on the counts**: ${JSON.stringify([a, ...same])}`,
);
out.push('');
console.log(out.join('\n'));
