// Shared set-up for the browser tests: a static server (unless test.sh started one), Debian's
// Chromium through playwright-core with a fresh profile, and screenshots under target/e2e/.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const HERE = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = resolve(HERE, '..');
export const OUT = process.env.E2E_OUT || join(ROOT, 'target', 'e2e');

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
];

/** Starts web-demo/serve.mjs on 127.0.0.1 (a free port); returns { url, stop() }. */
export async function startServer() {
  const child = spawn(process.execPath, [join(HERE, 'serve.mjs'), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((res, rej) => {
    let buf = '';
    const t = setTimeout(() => rej(new Error('serve.mjs did not start')), 10_000);
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /serving (http\S+)/.exec(buf);
      if (m) {
        clearTimeout(t);
        res(m[1]);
      }
    });
    child.on('exit', (code) => rej(new Error(`serve.mjs exited with ${code}`)));
  });
  return { url, stop: () => child.kill() };
}

/** Starts what the tests need; returns { url, browser, newPage(), close() }. */
export async function setup() {
  mkdirSync(OUT, { recursive: true });
  const server = process.env.DEMO_URL ? { url: process.env.DEMO_URL, stop() {} } : await startServer();
  const profile = mkdtempSync(join(tmpdir(), 'metergate-e2e-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ARGS,
    viewport: { width: 1360, height: 1000 },
  });
  const errors = [];
  return {
    url: server.url,
    errors,
    async newPage() {
      const page = await context.newPage();
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      await page.goto(server.url);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
      return page;
    },
    async close() {
      await context.close();
      server.stop();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Records every progress update the page shows from now on, as [bytes, total, bar value]
 * triples in `window.__progress` (read them with `page.evaluate(() => window.__progress)`).
 */
export async function watchProgress(page) {
  await page.evaluate(() => {
    window.__progress = [];
    const bar = document.getElementById('csv-progress');
    new MutationObserver(() => {
      if (bar.dataset.bytes) window.__progress.push([Number(bar.dataset.bytes), Number(bar.dataset.total), bar.value]);
    }).observe(bar, { attributes: true, attributeFilter: ['data-bytes'] });
  });
}

export async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: join(OUT, name), fullPage });
}

/** Sets the page's "now" (tests never depend on the real clock). */
export async function setNow(page, t) {
  await page.fill('#now', t);
  await page.waitForFunction(() => document.getElementById('now-clock').disabled === false);
}

/** Replaces the contracts JSON and waits until the page has compiled it. */
export async function setContracts(page, text) {
  // Set in one go (a 12,000-line paste typed by fill() is needlessly slow), as a paste would.
  await page.$eval('#contracts', (ta, t) => {
    ta.value = t;
    ta.dispatchEvent(new Event('input', { bubbles: true }));
  }, text);
  await page.waitForFunction(
    (n) => {
      const s = document.getElementById('contracts-status');
      return s.dataset.state === 'ok' && s.textContent.includes(`${n} contract`);
    },
    JSON.parse(text).length,
  );
}

/** Deterministic pseudo-random numbers (mulberry32). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
