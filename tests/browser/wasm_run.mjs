// wasm_run.mjs BUILD_WASM_DIR: serve the wasm build and tests/browser/wasm_page.html
// from a tiny static server on 127.0.0.1, open the page in Debian's Chromium
// (headless, through playwright-core; no browser is ever downloaded), wait
// for its results and assert them. Exit 0 when every check passed.
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serveStatic } from './static_files.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const dist = path.resolve(process.argv[2] || path.join(root, 'build-wasm'));
const executablePath = process.env.SL_CHROMIUM || '/usr/bin/chromium';

// URL prefix -> directory. Only plain file names below these are served.
const mounts = {
  '/dist/': dist,
  '/tests/': path.join(root, 'tests/wasm'),
  '/schemas/': path.join(root, 'schemas'),
};
const index = path.join(here, 'wasm_page.html');
const server = http.createServer((req, res) => serveStatic(req, res, { mounts, index }));
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${server.address().port}/`;

let browser;
let failed = 0;
const pageErrors = [];
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    // playwright gives the browser a fresh temporary profile (--user-data-dir)
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err && err.stack ? err.stack : err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(`console.error: ${msg.text()}`);
  });
  await page.goto(base);
  await page.waitForFunction(() => window.__results !== undefined, null, { timeout: 150000 });
  const results = await page.evaluate(() => window.__results);
  const cost = await page.evaluate(() => window.__cost || {});
  const notes = await page.evaluate(() => window.__notes || []);
  const version = browser.version();
  for (const r of results) {
    if (!r.ok) {
      failed++;
      console.log(`FAIL ${r.name}${r.detail ? `\n     ${String(r.detail).replace(/\n/g, '\n     ')}` : ''}`);
    }
  }
  // Actor errors the scenarios provoke on purpose are reported through
  // onError, not console.error; anything on the console is unexpected.
  for (const e of pageErrors) {
    failed++;
    console.log(`FAIL page error: ${e}`);
  }
  for (const n of notes) console.log(`note (Chromium ${version}): ${n}`);
  for (const [k, v] of Object.entries(cost)) console.log(`cost (Chromium ${version}): ${k}: ${v}`);
  console.log(`browser wasm test (Chromium ${version}): ${results.length - failed} passed, ${failed} failed`);
  if (results.length < 100) {
    failed++;
    console.log(`FAIL only ${results.length} results: the page did not run everything`);
  }
} catch (err) {
  failed++;
  console.log(`FAIL ${err && err.stack ? err.stack : err}`);
} finally {
  if (browser) await browser.close();
  server.close();
}
process.exitCode = failed ? 1 : 0;
