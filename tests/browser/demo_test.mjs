// demo_test.mjs: act 3 of `make demo`, run headless (tests/browser_demo_test.sh).
//
//   node demo_test.mjs --demo examples/demo.sh --build BUILD --dist BUILD_WASM
//
//  1. starts `sh demo.sh BUILD --browser` in its own process group, as a
//     person would (DEMO_BROWSER_SECONDS=120, never reached);
//  2. opens the URL it prints in Debian's Chromium (playwright-core);
//  3. waits until the page's browser worker has done N tasks, as the page
//     counts them and as the dispatcher's state shown on the page says, and
//     until the dispatcher got its telemetry datagrams; checks the terminal
//     told of the join; uses the page's burst button and rate slider;
//  4. closes the page: the terminal must show DOWN(noconnection) for that
//     worker and its browser node leaving the gateway;
//  5. sends SIGINT to the process group (Ctrl-C): the demo must exit 0 with
//     both summaries, and leave no process behind.
// Exit 0 when every check passed. Bounded: about 20 s, at most 100 s.
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const k of ['demo', 'build', 'dist']) {
  if (!args[k]) {
    console.error(`demo_test.mjs: --${k} is required`);
    process.exit(2);
  }
}
const N_TASKS = 5;
const executablePath = process.env.SL_CHROMIUM || '/usr/bin/chromium';
const t0 = Date.now();
let failed = 0;
function check(name, ok, detail) {
  if (ok) console.log(`ok   ${name}`);
  else {
    failed++;
    console.log(`FAIL ${name}${detail !== undefined ? `\n     ${String(detail).replace(/\n/g, '\n     ')}` : ''}`);
  }
}

// ------------------------------------------------------------ the demo
const demo = spawn('sh', [args.demo, args.build, '--browser'], {
  detached: true, // its own process group: SIGINT to all of it, like Ctrl-C in a terminal
  stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, DEMO_BROWSER_SECONDS: '120', SL_WASM_DIR: args.dist },
});
const lines = [];
let waiters = [];
function feed(stream, tag) {
  let buf = '';
  stream.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      if (process.env.SL_VERBOSE) console.log(`${tag}: ${line}`);
      waiters = waiters.filter((w) => !(w.re.test(line) && (w.resolve(line), true)));
    }
  });
}
feed(demo.stdout, 'demo');
feed(demo.stderr, 'demo stderr');
const exited = new Promise((r) => demo.on('exit', (code, sig) => r({ code, sig })));
function waitLine(re, ms) {
  const have = lines.find((l) => re.test(l));
  if (have) return Promise.resolve(have);
  return new Promise((resolve) => {
    const w = { re, resolve };
    waiters.push(w);
    setTimeout(() => {
      waiters = waiters.filter((x) => x !== w);
      resolve(null);
    }, ms);
  });
}
function groupAlive() {
  try {
    process.kill(-demo.pid, 0);
    return true;
  } catch {
    return false;
  }
}
const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let browser;
let stopped = false;
try {
  const open = await waitLine(/^\s*Open\s+(http:\/\/127\.0\.0\.1:\d+\/)/, 30000);
  check('the demo prints the URL to open', open !== null, lines.slice(-20).join('\n'));
  if (!open) throw new Error('no URL');
  const url = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(open)[1];

  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(String(err && err.stack ? err.stack : err)));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console.error: ${m.text()}`);
    if (process.env.SL_VERBOSE) console.log(`page console.${m.type()}: ${m.text()}`);
  });
  await page.goto(url);
  await page.waitForFunction(() => window.demo && (window.demo.ready || window.demo.error), null, { timeout: 20000 });
  const first = await page.evaluate(() => ({ ready: demo.ready, error: demo.error, node: demo.node, gateway: demo.gateway, workers: demo.workers.map((w) => w.name) }));
  check('the page joins the cluster through the gateway (Starling.connect)', first.ready && /^[0-9a-f]{16}$/.test(first.node || ''), JSON.stringify(first));
  const name = first.workers[0];
  check('the page starts a browser worker', typeof name === 'string', JSON.stringify(first));

  const joined = await waitLine(new RegExp(`${esc(name)} joined: a browser worker .*relayed by the gateway`), 10000);
  check('the terminal shows the browser worker joined the dispatcher', joined !== null);
  check('the terminal shows the browser node joined the gateway', lines.some((l) => l.includes(`browser node ${first.node} joined through this gateway`)));
  check("the terminal shows the page's viewer subscribed", (await waitLine(/a page's viewer subscribed/, 5000)) !== null);

  // N tasks done by this tab's worker: as the page counts them, and as the
  // dispatcher's state (drawn in the workers table) says; its telemetry arrived.
  const progress = await page
    .waitForFunction(
      ({ name, n }) => {
        const w = demo.workers.find((x) => x.name === name);
        const row = document.querySelector(`#workers tr[data-worker="${name}"]`);
        if (!w || !row) return false;
        const done = Number(row.querySelector('td.done').textContent);
        const tele = Number(row.querySelector('td.telemetry').textContent);
        return w.done >= n && done >= n && tele >= 5 ? { local: w.done, shown: done, telemetry: tele, sent: w.telemetry } : false;
      },
      { name, n: N_TASKS },
      { timeout: 30000, polling: 200 },
    )
    .then((h) => h.jsonValue(), (e) => ({ error: String(e) }));
  check(`the page shows its browser worker completed ${N_TASKS} tasks (counted by the page and by the dispatcher)`, !progress.error && progress.local >= N_TASKS && progress.shown >= N_TASKS, JSON.stringify(progress));
  check("the dispatcher got the worker's telemetry datagrams (shown on the page)", !progress.error && progress.telemetry >= 5 && progress.telemetry <= progress.sent, JSON.stringify(progress));
  const st = await page.evaluate(() => ({ state: demo.state, logs: document.querySelectorAll('#log-cluster li').length, local: document.querySelectorAll('#log-local li').length }));
  const natives = (st.state?.workers || []).filter((w) => w[1] === 'native' && w[3] && w[5] > 0).length;
  check('the page shows native workers working too', natives === 2, JSON.stringify(st.state?.workers));
  check("every answer was verified by the dispatcher", st.state && st.state.wrong === 0 && st.state.verified === st.state.done && st.state.done > 0, JSON.stringify(st.state));
  check("the page shows the live traffic (the dispatcher's log and its own)", st.logs > 5 && st.local > 5, `${st.logs} / ${st.local} entries`);

  // The controls.
  await page.click('#burst');
  check('the burst button reaches the dispatcher', (await waitLine(/a page sent a burst: 20 tasks at once/, 5000)) !== null);
  await page.$eval('#rate', (el) => {
    el.value = '6';
    el.dispatchEvent(new Event('change'));
  });
  check('the rate slider reaches the dispatcher', (await waitLine(/a page set the task rate to 6 per second/, 5000)) !== null);
  // Let the burst land on the browser worker too, so that closing the page
  // leaves tasks to reassign (not checked: timing-dependent).
  await page.waitForTimeout(800);

  // Closing the tab: the session ends; DOWN(noconnection) at the dispatcher.
  await page.close();
  const down = await waitLine(new RegExp(`DOWN ${esc(name)} \\(browser worker\\): reason noconnection`), 10000);
  check('page closed: the dispatcher gets DOWN(noconnection) for its worker', down !== null, lines.slice(-15).join('\n'));
  check('page closed: the gateway sees the browser node leave', (await waitLine(new RegExp(`browser node ${first.node} left`), 5000)) !== null);
  for (const e of pageErrors) check('no page error', false, e);

  // Ctrl-C: the whole process group gets SIGINT.
  process.kill(-demo.pid, 'SIGINT');
  const ex = await Promise.race([exited, new Promise((r) => setTimeout(() => r({ code: 'timeout' }), 20000))]);
  stopped = ex.code !== 'timeout';
  check('Ctrl-C: the demo exits with status 0', ex.code === 0, `${JSON.stringify(ex)}\n${lines.slice(-25).join('\n')}`);
  const out = lines.join('\n');
  check('Ctrl-C: the hub printed its summary, 0 wrong answers', /Hub summary[\s\S]*\(\d+ verified, 0 wrong\)/.test(out));
  check('Ctrl-C: the gateway printed its summary, the hub exited cleanly', /Gateway summary[\s\S]*hub\s+exited cleanly/.test(out));
  check('Ctrl-C: the act says it ended cleanly', /== Act 3 ended cleanly/.test(out));
  await new Promise((r) => setTimeout(r, 300));
  check('no process of the demo is left (gateway, hub, web server)', !groupAlive());
} catch (e) {
  check('harness', false, e && e.stack ? e.stack : e);
} finally {
  if (browser) await browser.close();
  if (!stopped || groupAlive()) {
    try {
      process.kill(-demo.pid, 'SIGKILL');
    } catch {}
  }
}
console.log(`elapsed ${((Date.now() - t0) / 1000).toFixed(1)} s`);
console.log(failed ? `${failed} check(s) failed` : 'all checks passed');
process.exit(failed ? 1 : 0);
