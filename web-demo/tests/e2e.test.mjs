// End-to-end tests of the web demo in Debian's Chromium. Assertions compare finding codes,
// fields, verdicts, counts and times, never message wording.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HERE, ROOT, setContracts, setNow, setup, shot, watchProgress } from './helpers.mjs';
import { contractsJson, makeCsv, NOW } from './gen.mjs';

const SAMPLE = readFileSync(join(HERE, 'samples', 'contracts.json'), 'utf8');

let env;
before(async () => {
  env = await setup();
});
after(async () => {
  await env?.close();
});

async function formPage(now) {
  const page = await env.newPage();
  await setContracts(page, SAMPLE);
  await setNow(page, now);
  return page;
}

async function fillRecord(page, { marketplace, contract, dimension, quantity, start, end }) {
  await page.selectOption('#f-marketplace', marketplace);
  await page.selectOption('#f-contract', contract);
  if (dimension) await page.selectOption('#f-dimension', dimension);
  if (quantity !== undefined) await page.fill('#f-quantity', quantity);
  if (start !== undefined) await page.fill('#f-start', start);
  if (end !== undefined) await page.fill('#f-end', end);
}

const codesIn = (page, slot) => page.$$eval(`#${slot} .finding`, (ns) => ns.map((n) => n.dataset.code));

describe('Add usage form', () => {
  test('a backdated AWS start time shows the error and the earliest allowed start; fixing it accepts the record', async () => {
    const page = await formPage('2026-03-31T12:00:00Z');
    await shot(page, '00-initial.png');
    await fillRecord(page, { marketplace: 'aws', contract: 'aws/prod-analytics/cust-acme', dimension: 'api_calls', quantity: '10' });
    // Typed character by character: the form validates on every keystroke.
    await page.fill('#f-start', '');
    await page.type('#f-start', '2026-03-31T02:00:00Z');

    const finding = page.locator('#msg-start_time .finding[data-code="timestamp-out-of-bounds"]');
    await finding.waitFor();
    assert.equal(await finding.getAttribute('data-field'), 'start_time');
    assert.match(await finding.locator('.hint').textContent(), /2026-03-31T06:00:01Z/, 'the hint names the earliest allowed start (6 h or more is refused, so the first whole second after)');
    assert.equal(await page.getAttribute('#f-start', 'aria-invalid'), 'true');
    assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'rejected');
    assert.equal(await page.isDisabled('#submit'), true);
    await shot(page, '01-form-backdated-rejected.png');

    await page.fill('#f-start', '2026-03-31T07:15:00Z');
    await page.waitForSelector('#verdict[data-verdict="accepted"]');
    assert.deepEqual(await codesIn(page, 'msg-start_time'), []);
    assert.equal(await page.getAttribute('#f-start', 'aria-invalid'), null);
    assert.equal(await page.isDisabled('#submit'), false);
    // The deadline of an accepted AWS record is the last instant of its look-back: 1 ns
    // before start + 6 h (AWS refuses records "6 hours or more" old).
    assert.equal(await page.getAttribute('#deadline', 'data-at'), '2026-03-31T13:14:59.999999999Z');

    await page.click('#submit');
    await page.waitForFunction(() => document.getElementById('ready-count').textContent === '1');
    // The same hour again with another quantity is a duplicate of the ready record.
    await page.fill('#f-quantity', '11');
    await page.waitForSelector('#verdict[data-verdict="rejected"]');
    const dup = page.locator('#usage-form .finding[data-code="duplicate-request"]');
    await dup.waitFor();
    assert.equal(await dup.getAttribute('data-field'), 'start_time');
    assert.ok((await codesIn(page, 'msg-start_time')).includes('duplicate-request'));
    await page.fill('#f-start', '2026-03-31T08:15:00Z');
    await page.waitForSelector('#verdict[data-verdict="accepted"]');
    await shot(page, '02-form-accepted-ready-list.png');
    await page.close();
  });

  test('a quantity that is not a whole number of units gets the nearest valid quantity as a hint', async () => {
    const page = await formPage('2026-03-31T12:00:00Z');
    await fillRecord(page, { marketplace: 'aws', contract: 'aws/prod-analytics/cust-acme', dimension: 'storage_gb', quantity: '17', start: '2026-03-31T10:00:00Z' });
    const f = page.locator('#msg-quantity .finding[data-code="invalid-quantity"]');
    await f.waitFor();
    assert.match(await f.locator('.hint').textContent(), /\b15\b/);
    await page.fill('#f-quantity', '15');
    await page.waitForSelector('#verdict[data-verdict="accepted"]');
    await page.close();
  });

  test('choosing a cancelled contract shows its deadline', async () => {
    const page = await formPage('2026-03-31T23:50:00Z');
    await fillRecord(page, { marketplace: 'aws', contract: 'aws/prod-analytics/cust-globex', dimension: 'api_calls', quantity: '5', start: '2026-03-31T23:00:00Z' });
    const deadline = page.locator('#deadline');
    await deadline.waitFor({ state: 'visible' });
    // Cancelled at 23:30: usage dated before it may be sent until one hour after it.
    assert.equal(await deadline.getAttribute('data-at'), '2026-04-01T00:30:00Z');
    assert.equal(await deadline.getAttribute('data-rule'), 'aws.post_cancel');
    assert.match(await page.textContent('#countdown'), /40 min 00 s left/);
    assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'accepted');
    await shot(page, '03-form-cancelled-contract-deadline.png');

    // Usage dated after the cancellation is out of bounds.
    await page.fill('#f-start', '2026-03-31T23:40:00Z');
    await page.waitForSelector('#verdict[data-verdict="rejected"]');
    assert.ok((await codesIn(page, 'msg-start_time')).includes('timestamp-out-of-bounds'));
    await page.close();
  });

  test('Google records have an end time; an unknown dimension gets the closest name', async () => {
    const page = await formPage('2026-03-31T12:00:00Z');
    await fillRecord(page, { marketplace: 'gcp', contract: 'gcp/search.example.com/acct-umbrella', dimension: 'search.example.com/requests', quantity: '100', start: '2026-03-31T10:00:00Z', end: '2026-03-31T11:00:00Z' });
    assert.equal(await page.isVisible('#f-end'), true);
    await page.waitForSelector('#verdict[data-verdict="accepted"]');
    await page.fill('#f-end', '2026-03-31T09:00:00Z');
    await page.waitForSelector('#verdict[data-verdict="rejected"]');
    const codes = [...(await codesIn(page, 'msg-start_time')), ...(await codesIn(page, 'msg-end_time'))];
    assert.ok(codes.includes('timestamp-out-of-bounds'));
    await page.close();
  });
});

describe('Policy editor', () => {
  test('a syntax error shows line and column; a valid policy changes a verdict', async () => {
    const page = await formPage('2026-03-31T12:00:00Z');
    await fillRecord(page, { marketplace: 'aws', contract: 'aws/prod-analytics/cust-acme', dimension: 'api_calls', quantity: '500', start: '2026-03-31T10:00:00Z' });
    await page.waitForSelector('#verdict[data-verdict="accepted"]');

    await page.fill('#policy-name', 'cap_500');
    await page.fill('#policy', 'fn check(record, ctx) {\n    if record.quantity > 100 {\n        reject_field("quantity", "too-big", "over 100" \n    }\n}\n');
    await page.waitForSelector('#policy-status[data-state="error"][data-line]');
    const line = Number(await page.getAttribute('#policy-status', 'data-line'));
    const column = Number(await page.getAttribute('#policy-status', 'data-column'));
    assert.ok(line >= 3 && line <= 4, `error line ${line}`);
    assert.ok(column >= 1, `error column ${column}`);
    assert.match(await page.textContent('#policy-status'), new RegExp(`[Ll]ine ${line}, column ${column}`));
    assert.equal(await page.isVisible('#policy-gutter .err'), true);
    // A policy that does not compile is not applied: the record is still accepted.
    assert.equal(await page.getAttribute('#verdict', 'data-verdict'), 'accepted');
    await shot(page, '04-policy-syntax-error.png');

    await page.fill('#policy', 'fn check(record, ctx) {\n    if record.quantity > 100 {\n        reject_field("quantity", "too-big", `quantity ${record.quantity} is over 100`, "split it or check the meter");\n    }\n}\n');
    await page.waitForSelector('#policy-status[data-state="ok"]');
    await page.waitForSelector('#verdict[data-verdict="rejected"]');
    const f = page.locator('#msg-quantity .finding[data-code="too-big"]');
    await f.waitFor();
    assert.equal(await f.getAttribute('data-field'), 'quantity');
    assert.equal(await page.isDisabled('#submit'), true);
    await shot(page, '05-policy-rejects-record.png');

    // Unchecking "Apply" takes it out again.
    await page.uncheck('#policy-enabled');
    await page.waitForSelector('#verdict[data-verdict="accepted"]');
    await page.close();
  });

  test('the bundled example policies load and compile', async () => {
    const page = await formPage('2026-03-31T12:00:00Z');
    const names = await page.$$eval('#policy-example option', (os) => os.map((o) => o.value).filter(Boolean));
    assert.ok(names.length >= 1, 'at least one example policy is bundled');
    for (const name of names) {
      await page.selectOption('#policy-example', name);
      await page.waitForFunction((n) => document.getElementById('policy-name').value === n, name);
      await page.waitForSelector('#policy-status[data-state="ok"]');
    }
    await page.close();
  });
});

describe('CSV check', () => {
  test('a 100,000-row CSV: the summary equals the CLI on the same file and now', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'metergate-csv-'));
    try {
      const contracts = contractsJson();
      const csv = makeCsv(100_000, 7);
      const csvPath = join(dir, 'usage.csv');
      const contractsPath = join(dir, 'contracts.json');
      writeFileSync(csvPath, csv);
      writeFileSync(contractsPath, contracts);

      const cli = process.env.METERGATE_CLI || join(ROOT, 'target', 'debug', 'metergate');
      let out;
      try {
        out = execFileSync(cli, ['check', csvPath, '--contracts', contractsPath, '--now', NOW, '--format', 'json'], { maxBuffer: 1 << 30, encoding: 'utf8' });
      } catch (e) {
        // `check` exits non-zero when records are rejected; its output is still the report.
        if (typeof e.stdout !== 'string' || !e.stdout) throw e;
        out = e.stdout;
      }
      const last = out.trim().split('\n').pop();
      const cliSummary = JSON.parse(last).summary;
      assert.ok(cliSummary && cliSummary.records === 100_000, `CLI summary line: ${last}`);

      const page = await env.newPage();
      await setContracts(page, contracts);
      await setNow(page, NOW);
      await page.setInputFiles('#csv-file', csvPath);
      await page.waitForSelector('#csv-phase[data-state="done"]', { timeout: 120_000 });
      const got = await page.$eval('#csv-summary', (s) => ({ ...s.dataset }));
      assert.deepEqual(
        { records: Number(got.records), accepted: Number(got.accepted), rejected: Number(got.rejected), warnings: Number(got.warnings) },
        { records: cliSummary.records, accepted: cliSummary.accepted, rejected: cliSummary.rejected, warnings: cliSummary.warnings },
      );
      assert.ok(cliSummary.rejected > 0 && cliSummary.accepted > 0);

      // The chart has a bar per code; the table shows one page of findings with line numbers.
      await page.waitForSelector('#csv-chart svg rect');
      await page.waitForSelector('#findings-table tbody tr[data-code]');
      const rows = await page.$$eval('#findings-table tbody tr', (trs) => trs.length);
      assert.ok(rows <= 100, 'only one page of findings is in the DOM');
      await page.waitForSelector('#dl-annotated[data-url]');
      await page.waitForSelector('#dl-aggregated[data-url]');
      await page.locator('#csv-card').scrollIntoViewIfNeeded();
      await page.evaluate(() => document.getElementById('csv-card').scrollIntoView());
      await shot(page, '06-csv-summary.png', false);

      // Filter: only rejected duplicate-request rows; each row's line points at that record.
      await page.selectOption('#filter-code', 'duplicate-request');
      await page.selectOption('#filter-verdict', 'rejected');
      await page.waitForFunction(() => {
        const trs = [...document.querySelectorAll('#findings-table tbody tr')];
        return trs.length > 0 && trs.every((tr) => tr.dataset.code === 'duplicate-request' && tr.dataset.verdict === 'rejected');
      });
      const firstLine = Number(await page.textContent('#findings-table tbody tr td:first-child'));
      const firstId = await page.textContent('#findings-table tbody tr td:nth-child(2)');
      assert.equal(csv.split('\n')[firstLine - 1].split(',')[7], firstId, 'the line number points at the record');
      await page.click('#page-next');
      await page.waitForFunction(() => /^Findings 101–/.test(document.getElementById('page-info').textContent));
      await shot(page, '07-csv-filtered.png', false);

      // The annotated CSV: every input row plus its verdict.
      const annotated = await page.evaluate(async () => (await fetch(document.getElementById('dl-annotated').href)).text());
      const alines = annotated.trim().split('\n');
      assert.equal(alines.length, 100_001);
      assert.match(alines[0], /,verdict,codes$/);
      const rejectedRows = alines.slice(1).filter((l) => /,rejected,[^,]*$/.test(l)).length;
      assert.equal(rejectedRows, cliSummary.rejected);
      const aggregated = await page.evaluate(async () => (await fetch(document.getElementById('dl-aggregated').href)).text());
      assert.match(aggregated.split('\n')[0], /^marketplace,product,customer,dimension,quantity,start_time/);
      assert.ok(aggregated.trim().split('\n').length > 1);
      await page.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the progress bar moves with the bytes read, up to the file size', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'metergate-progress-'));
    try {
      const page = await env.newPage();
      await setContracts(page, contractsJson());
      await setNow(page, NOW);
      const csvPath = join(dir, 'progress.csv');
      const csv = makeCsv(300_000, 13);
      writeFileSync(csvPath, csv);
      // Every progress update the page shows, as (bytes, bar value) pairs.
      await watchProgress(page);
      await page.setInputFiles('#csv-file', csvPath);
      await page.waitForSelector('#csv-phase[data-state="done"]', { timeout: 120_000 });
      const seen = await page.evaluate(() => window.__progress);
      const size = Buffer.byteLength(csv);
      assert.ok(seen.length >= 3, `progress updates: ${JSON.stringify(seen)}`);
      const partial = seen.filter(([b]) => b > 0 && b < size);
      assert.ok(partial.length >= 1, `some update shows part of the file: ${JSON.stringify(seen)}`);
      for (let i = 1; i < seen.length; i++) {
        assert.ok(seen[i][0] >= seen[i - 1][0], 'bytes never go back');
        assert.ok(seen[i][2] >= seen[i - 1][2], 'the bar never goes back');
      }
      assert.equal(seen[seen.length - 1][0], size);
      assert.ok(seen.every(([, total]) => total === size));
      await page.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the benchmark's data at 20,000 rows: counts equal the CLI's, the progress bar moves", async () => {
    // bench/gen_data.mjs's file (the one bench/browser.mjs feeds at 1M rows), small enough for
    // a test: the same page path, checked for counts and progress (memory is the bench's job).
    const dir = mkdtempSync(join(tmpdir(), 'metergate-benchdata-'));
    try {
      execFileSync(process.execPath, [join(ROOT, 'bench', 'gen_data.mjs'), dir, '20000'], { stdio: 'ignore' });
      const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
      const csvPath = join(dir, 'usage.csv');
      const cli = process.env.METERGATE_CLI || join(ROOT, 'target', 'debug', 'metergate');
      let out;
      try {
        out = execFileSync(cli, ['check', csvPath, '--contracts', join(dir, 'contracts.json'), '--now', meta.now, '--format', 'json'], { maxBuffer: 1 << 30, encoding: 'utf8' });
      } catch (e) {
        if (typeof e.stdout !== 'string' || !e.stdout) throw e;
        out = e.stdout;
      }
      const cliSummary = JSON.parse(out.trim().split('\n').pop()).summary;
      assert.equal(cliSummary.records, 20_000);

      const page = await env.newPage();
      await setContracts(page, readFileSync(join(dir, 'contracts.json'), 'utf8'));
      await setNow(page, meta.now);
      await watchProgress(page);
      await page.setInputFiles('#csv-file', csvPath);
      await page.waitForSelector('#csv-phase[data-state="done"]', { timeout: 120_000 });
      const got = await page.$eval('#csv-summary', (s) => ({ ...s.dataset }));
      assert.deepEqual(
        { records: Number(got.records), accepted: Number(got.accepted), rejected: Number(got.rejected), warnings: Number(got.warnings) },
        { records: cliSummary.records, accepted: cliSummary.accepted, rejected: cliSummary.rejected, warnings: cliSummary.warnings },
      );
      const seen = await page.evaluate(() => window.__progress);
      const size = statSync(csvPath).size;
      assert.ok(seen.length >= 2, `progress updates: ${JSON.stringify(seen)}`);
      assert.ok(seen.some(([b, , v]) => b > 0 && v > 5), `the bar moved: ${JSON.stringify(seen)}`);
      assert.equal(seen[seen.length - 1][0], size);
      // The table keeps at most 2,000 findings per code (some codes have more here), and the
      // page says so; the chart still counts every finding.
      await page.waitForSelector('#findings-table tbody tr[data-code]');
      assert.equal(await page.$eval('#table-note', (n) => n.dataset.capped), 'true');
      const shown = Number((await page.textContent('#page-info')).replace(/,/g, '').match(/of (\d+)$/)[1]);
      const charted = await page.$eval('#csv-chart svg', (svg) => svg.getAttribute('aria-label'));
      const all = [...charted.matchAll(/ (\d+)(?:,|$)/g)].reduce((a, m) => a + Number(m[1]), 0);
      assert.ok(shown < all && shown <= 20_000, `table ${shown}, findings ${all}`);
      // The annotated download still has a verdict for every row.
      await page.waitForSelector('#dl-annotated[data-url]');
      const annotated = await page.evaluate(async () => (await fetch(document.getElementById('dl-annotated').href)).text());
      const alines = annotated.trim().split('\n');
      assert.equal(alines.length, 20_001);
      assert.equal(alines.slice(1).filter((l) => /,rejected,[^,]*$/.test(l)).length, cliSummary.rejected);
      await page.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('Stop ends a running check and the page stays responsive', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'metergate-stop-'));
    try {
      const page = await env.newPage();
      await setContracts(page, contractsJson());
      await setNow(page, NOW);
      // A slow policy (many operations per record) on a large file.
      await page.fill('#policy-name', 'slow');
      await page.fill('#policy', 'fn check(record, ctx) {\n    let n = 0;\n    for i in 0..5000 { n += i; }\n}\n');
      await page.waitForSelector('#policy-status[data-state="ok"]');
      const csvPath = join(dir, 'big.csv');
      writeFileSync(csvPath, makeCsv(200_000, 11));
      await page.setInputFiles('#csv-file', csvPath);
      await page.waitForSelector('#csv-phase[data-state="running"]');
      await page.waitForFunction(() => /Validating/.test(document.getElementById('csv-phase').textContent), null, { timeout: 60_000 });
      // The main thread is free while the worker works: the form still validates.
      await page.fill('#f-quantity', '3');
      assert.equal(await page.isEnabled('#csv-stop'), true);
      await shot(page, '08-csv-running.png', false);
      await page.click('#csv-stop');
      await page.waitForSelector('#csv-phase[data-state="stopped"]');
      assert.equal(await page.isDisabled('#csv-stop'), true);
      assert.equal(await page.isHidden('#csv-results'), true);
      await page.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('no page errors were logged', () => {
    assert.deepEqual(env.errors, []);
  });
});
