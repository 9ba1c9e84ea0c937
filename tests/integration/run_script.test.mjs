// run_script.test.mjs: scripts/run.sh as `make run` runs it (issue #16), in a temporary copy of
// what it needs (the script and the two binaries; SUBGATE_RUN_DIR points its .env and var/ at
// another temporary directory). It prints one URL signed in as a development user, whose token
// subgate accepts; every log line names its process; SIGINT stops both processes and leaves none
// behind; a second run keeps the user bought in the first (the emulator's state file), and adds
// subgate's own origin to a .env written without it. With chromium (scripts/deps.sh --test), the
// purchase is made as a newcomer would: the printed URL opened in headless Chromium, Premium
// bought on the emulator's page with 4242 4242 4242 4242, the account back with usage bars.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { BIN, EMULATOR_BIN, assertNoSanitizerReport, freePort, tmpDir } from './lib.mjs';

const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((p) => fs.existsSync(p));

const P = '/api/v1/payments';
let repo;
let work;
let base;
let emuBase;
let run;

before(async () => {
  repo = tmpDir();
  work = tmpDir();
  fs.mkdirSync(path.join(repo, 'scripts'));
  fs.mkdirSync(path.join(repo, 'build/release'), { recursive: true });
  fs.copyFileSync('scripts/run.sh', path.join(repo, 'scripts/run.sh'));
  fs.copyFileSync(BIN, path.join(repo, 'build/release/subgate'));
  fs.copyFileSync(EMULATOR_BIN, path.join(repo, 'build/release/stripe-emulator'));
  for (const f of ['build/release/subgate', 'build/release/stripe-emulator']) fs.chmodSync(path.join(repo, f), 0o755);
  const [port, emuPort] = [await freePort(), await freePort()];
  base = `http://127.0.0.1:${port}`;
  emuBase = `http://127.0.0.1:${emuPort}`;
  process.env.RUN_TEST_LISTEN = `127.0.0.1:${port}`;
  process.env.RUN_TEST_EMU = `127.0.0.1:${emuPort}`;
});

after(async () => {
  if (run && run.exited === null) {
    run.child.kill('SIGTERM');
    await run.exit;
  }
});

// Starts run.sh; resolves to { child, out, url, token, exit } once it prints the URL.
function startRun() {
  const child = spawn('sh', [path.join(repo, 'scripts/run.sh')], {
    env: {
      PATH: process.env.PATH,
      LISTEN: process.env.RUN_TEST_LISTEN,
      EMULATOR_LISTEN: process.env.RUN_TEST_EMU,
      SUBGATE_RUN_DIR: work,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const r = { child, out: '', exited: null };
  r.exit = new Promise((res) => child.on('exit', (code, signal) => { r.exited = { code, signal }; res(r.exited); }));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`no URL printed: ${r.out}`));
    }, 30000);
    const see = (d) => {
      r.out += d;
      const m = r.out.match(/^run: open (http:\/\/\S+\/billing\/#token=(\S+))$/m);
      if (m && !r.url) {
        [r.url, r.token] = [m[1], m[2]];
        clearTimeout(t);
        resolve(r);
      }
    };
    child.stdout.on('data', see);
    child.stderr.on('data', see);
    child.on('exit', () => { clearTimeout(t); if (!r.url) reject(new Error(`run.sh exited: ${r.out}`)); });
  });
}

// Stops run.sh with SIGINT (Ctrl-C); resolves to its exit once no process of the copy is left.
async function stopRun(r) {
  r.child.kill('SIGINT');
  const exited = await r.exit;
  assertNoSanitizerReport(r.out);
  const left = () => spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).stdout
    .split('\n').filter((l) => l.includes(repo) || l.includes(`subgate-run.`) && l.includes('sed'));
  for (let i = 0; i < 50 && left().length; i++) await new Promise((res) => setTimeout(res, 100));
  assert.deepEqual(left(), [], 'no process of run.sh is left behind');
  return exited;
}

// Waits until run.sh's output matches re (subgate writes request lines from a log thread).
async function printed(r, re) {
  for (let i = 0; i < 100 && !re.test(r.out); i++) await new Promise((res) => setTimeout(res, 20));
  assert.match(r.out, re);
}

// Runs fn with run; stops run (SIGTERM) if fn fails, so the next test finds the ports free.
async function using(r, fn) {
  try {
    await fn();
  } finally {
    if (r.exited === null) {
      r.child.kill('SIGTERM');
      await r.exit;
    }
  }
}

async function call(token, method, p, body) {
  const r = await fetch(base + P + p, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json() };
}

async function ok(token, method, p, body) {
  const r = await call(token, method, p, body);
  assert.equal(r.status, 200, `${method} ${p}: ${JSON.stringify(r.body)}`);
  return r.body;
}

// The printed URL in headless Chromium: the page signed in as the development user, Premium
// bought with the emulator's card, back on the page with the new plan and a usage bar per quota.
async function buyInBrowser(url) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const tab = await browser.newPage();
    await tab.goto(url);
    await tab.waitForSelector('body[data-ready=true]');
    assert.equal(await tab.locator('#account-tier').innerText(), 'Free');
    // The free tier's quotas as usage bars, named for screen readers.
    await tab.getByRole('progressbar', { name: 'Ai minutes' }).waitFor({ timeout: 5000 });
    await tab.getByRole('progressbar', { name: 'Scenarios' }).waitFor({ timeout: 5000 });
    assert.match(await tab.locator('#usage').innerText(), /0 of 30 minutes used today/);
    await tab.getByRole('button', { name: 'Subscribe to Premium' }).click();
    await tab.waitForURL((u) => u.toString().startsWith(emuBase));
    await tab.fill('input[name=card]', '4242 4242 4242 4242');
    await tab.click('button[type=submit]');
    await tab.waitForURL((u) => u.toString().startsWith(`${base}/billing/`));
    await tab.waitForSelector('body[data-ready=true]');
    assert.match(await tab.locator('#status').innerText(), /your plan is now Premium/);
    assert.equal(await tab.locator('#account-tier').innerText(), 'Premium (monthly)');
    // The built-in Premium has no limit on AI minutes: said in words, with no bar.
    assert.match(await tab.locator('#usage').innerText(), /Ai minutes\s+0 minutes used today \(UTC day\); no limit\./);
  } finally {
    await browser.close();
  }
}

// Without chromium: the same purchase through the API and the emulator's pay form.
async function buyOverHttp(token) {
  const s = await ok(token, 'POST', '/create-checkout-session', {
    tier: 'premium', success_url: `${base}/billing/?checkout=success`, cancel_url: `${base}/billing/`,
  });
  assert.ok(s.url.startsWith(emuBase), s.url);
  const paid = await fetch(`${s.url}/pay`, {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'card=4242424242424242',
  });
  assert.equal(paid.status, 303);
  assert.equal((await ok(token, 'POST', '/checkout-success', { session_id: s.session_id })).tier, 'premium');
}

test('the first run: one URL, its token accepted, tagged log lines, a purchase, Ctrl-C', async () => {
  run = await startRun();
  await using(run, async () => {
  assert.equal(new URL(run.url).origin, base);
  assert.equal((run.out.match(/^run: open /gm) || []).length, 1, 'one URL');
  assert.equal((await ok(run.token, 'GET', '/subscription')).tier, 'free');
  // Checkout back to the billing page, on subgate's own origin (in the new .env).
  if (CHROMIUM) await buyInBrowser(run.url);
  else await buyOverHttp(run.token);
  assert.equal((await ok(run.token, 'GET', '/subscription')).tier, 'premium');
  const env = fs.readFileSync(path.join(work, '.env'), 'utf8');
  assert.match(env, new RegExp(`^ALLOWED_REDIRECT_ORIGINS=${base},http://localhost:\\d+,http://localhost:3000$`, 'm'));
  assert.equal(fs.statSync(path.join(work, '.env')).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.join(work, 'var/emulator-state.json')).mode & 0o777, 0o600);
  for (const line of run.out.split('\n').filter(Boolean)) {
    assert.match(line, /^(run: |subgate  \| |emulator \| )/, `an untagged line: ${line}`);
  }
  await printed(run, /^subgate  \| .*"route":"\/api\/v1\/payments\/checkout-success"/m);
  if (CHROMIUM) await printed(run, /^subgate  \| .*"route":"\/billing\/"/m);
  assert.match(run.out, /^emulator \| stripe-emulator listening on /m);
  const exited = await stopRun(run);
  assert.equal(exited.code, 130, JSON.stringify(exited));
  });
});

test('the second run: the user bought before still works, and an old .env gets the origin', async () => {
  const envPath = path.join(work, '.env');
  // As an older run.sh wrote it: no subgate origin among the redirect origins.
  const old = fs.readFileSync(envPath, 'utf8').replace(/^ALLOWED_REDIRECT_ORIGINS=.*$/m, 'ALLOWED_REDIRECT_ORIGINS=http://localhost:3000');
  fs.writeFileSync(envPath, old, { mode: 0o600 });
  run = await startRun();
  await using(run, async () => {
  const sub = await ok(run.token, 'GET', '/subscription');
  assert.equal(sub.tier, 'premium');
  assert.equal(sub.status, 'active');
  const portal = await ok(run.token, 'POST', '/customer-portal', { return_url: `${base}/billing/` });
  assert.ok(portal.url.startsWith(emuBase), portal.url);
  assert.ok((await ok(run.token, 'GET', '/invoices')).data.length >= 1);
  run.child.kill('SIGTERM');
  const exited = await run.exit;
  assert.equal(exited.code, 143, JSON.stringify(exited));
  assertNoSanitizerReport(run.out);
  });
});
