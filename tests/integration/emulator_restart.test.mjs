// emulator_restart.test.mjs: the emulator's state file (EMULATOR_STATE_FILE, issue #16). A user
// subscribes through subgate in front of the emulator; both are restarted, the emulator once
// with SIGTERM and once with SIGKILL, and the same user's subscription, invoices, portal, plan
// change and cancellation still work, while new users get ids that collide with none before.
// Then the state file is deleted (the database kept): subgate answers 409 stripe_object_missing,
// naming the object, where it used to say "try again later" (checkout, portal, plan change and
// its preview, cancel).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  EMULATOR_BIN, errorOf, freePort, now, req, startEmulator, startServer, stopEmulator, stopServer, stripeApi, tmpDir,
  userToken,
} from './lib.mjs';

const P = '/api/v1/payments';
const WHSEC = 'whsec_restart_integration_secret';
const ORIGIN = 'http://localhost:3000';

let dir;
let stateFile;
let emuPort;
let srvPort;
let emu;
let srv;

async function startEmu() {
  emu = await startEmulator({
    EMULATOR_LISTEN: `127.0.0.1:${emuPort}`,
    EMULATOR_STATE_FILE: stateFile,
    EMULATOR_WEBHOOK_URL: `http://127.0.0.1:${srvPort}${P}/webhook`,
    EMULATOR_WEBHOOK_SECRET: WHSEC,
  });
}

async function startSrv() {
  srv = await startServer({
    STRIPE_SECRET_KEY: 'sk_test_emulator',
    STRIPE_API_BASE: `http://127.0.0.1:${emuPort}`,
    STRIPE_WEBHOOK_SECRET: WHSEC,
    STRIPE_PREMIUM_PRICE_ID: 'price_premium_monthly',
    STRIPE_PLUS_PRICE_ID: 'price_plus_monthly',
    ALLOWED_REDIRECT_ORIGINS: ORIGIN,
    HTTP_THREADS: '4',
    DATABASE_URL: `sqlite:${path.join(dir, 'subgate.db')}`,
  }, { cwd: dir, port: srvPort });
}

// Stops both: subgate with SIGTERM, the emulator with signal (SIGKILL: nothing saved on exit).
async function stopBoth(signal) {
  await stopServer(srv);
  if (signal === 'SIGKILL') {
    emu.child.kill('SIGKILL');
    await emu.exit;
  } else {
    await stopEmulator(emu);
    assert.equal(emu.exited.code, 0, emu.log);
  }
}

async function restart(signal) {
  await stopBoth(signal);
  await startEmu();
  await startSrv();
}

const call = (user, method, p, body) => req(srv, method, P + p, { token: userToken(user, { exp: now() + 3600 }), body });

async function ok(user, method, p, body) {
  const r = await call(user, method, p, body);
  assert.equal(r.status, 200, `${method} ${p}: ${JSON.stringify(r.body)}`);
  return r.body;
}

async function drain() {
  const r = await fetch(`${emu.base}/_emulator/webhooks/drain`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"timeout_ms":20000}',
  });
  assert.equal(r.status, 200);
}

// Subscribes user to premium through subgate: checkout, the hosted page paid, checkout-success.
async function subscribe(user) {
  const s = await ok(user, 'POST', '/create-checkout-session', {
    tier: 'premium', success_url: `${ORIGIN}/billing/success`, cancel_url: `${ORIGIN}/billing/cancel`,
  });
  const paid = await fetch(`${s.url}/pay`, {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'card=4242424242424242',
  });
  assert.equal(paid.status, 303, await paid.text());
  const sub = await ok(user, 'POST', '/checkout-success', { session_id: s.session_id });
  await drain();
  return { session: s.session_id, sub };
}

// Every id the emulator holds, by listing what subgate's users made.
async function stripeIds() {
  const ids = new Set();
  for (const p of ['/v1/customers', '/v1/subscriptions', '/v1/invoices', '/v1/checkout/sessions', '/v1/events']) {
    const r = await stripeApi(emu, 'GET', p, { limit: 100 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const o of r.body.data) ids.add(o.id);
  }
  return ids;
}

before(async () => {
  dir = tmpDir();
  stateFile = path.join(dir, 'emulator-state.json');
  [emuPort, srvPort] = [await freePort(), await freePort()];
  await startEmu();
  await startSrv();
});

after(async () => {
  await stopServer(srv);
  await stopEmulator(emu);
});

describe('a restart keeps every user working', () => {
  const seen = new Set();

  test('a user subscribes; the state file is 0600', async () => {
    await subscribe('restart_a');
    const s = await ok('restart_a', 'GET', '/subscription');
    assert.equal(s.tier, 'premium');
    assert.equal(s.status, 'active');
    assert.equal(fs.statSync(stateFile).mode & 0o777, 0o600);
    for (const id of await stripeIds()) seen.add(id);
  });

  test('after SIGTERM: subscription, invoices, portal and a plan change of the same user', async () => {
    await restart('SIGTERM');
    assert.equal((await ok('restart_a', 'GET', '/subscription')).tier, 'premium');
    const inv = await ok('restart_a', 'GET', '/invoices');
    assert.ok(inv.data.length >= 1, JSON.stringify(inv));
    const portal = await ok('restart_a', 'POST', '/customer-portal', { return_url: `${ORIGIN}/billing/` });
    assert.match(portal.url, /^http:\/\/127\.0\.0\.1:\d+\/portal\//);
    await ok('restart_a', 'POST', '/change-plan', { tier: 'plus' });
    await drain();
    assert.equal((await ok('restart_a', 'GET', '/subscription')).tier, 'plus');
  });

  test('after SIGKILL: the plan change is still known, cancel works, new ids collide with none', async () => {
    for (const id of await stripeIds()) seen.add(id);
    await restart('SIGKILL');
    const before = await stripeIds();
    for (const id of seen) assert.ok(before.has(id), `${id} survived kill -9`);
    const sub = await ok('restart_a', 'GET', '/subscription');
    assert.equal(sub.tier, 'plus');
    const cancel = await ok('restart_a', 'POST', '/cancel-subscription');
    assert.equal(cancel.cancel_at_period_end, true, JSON.stringify(cancel));
    await subscribe('restart_b');
    const fresh = [...await stripeIds()].filter((id) => !before.has(id));
    assert.ok(fresh.length >= 4, `new objects: ${fresh}`);
    for (const id of fresh) assert.ok(!seen.has(id), `${id} reused`);
  });
});

describe('a database whose Stripe objects the emulator does not know', () => {
  test('the state file deleted: a clear 409 stripe_object_missing, not "try again later"', async () => {
    await subscribe('restart_c');
    // A user who opened a checkout and left: their customer is stored, no subscription.
    await ok('restart_d', 'POST', '/create-checkout-session', {
      tier: 'premium', success_url: `${ORIGIN}/billing/success`, cancel_url: `${ORIGIN}/billing/cancel`,
    });
    await stopBoth('SIGTERM');
    fs.unlinkSync(stateFile);
    await startEmu();
    await startSrv();
    const cases = [
      // Another ask than the open session's: a new session for the stored customer.
      ['POST', '/create-checkout-session', {
        tier: 'plus', success_url: `${ORIGIN}/billing/success`, cancel_url: `${ORIGIN}/billing/cancel`,
      }, 'customer', 'restart_d'],
      ['POST', '/customer-portal', { return_url: `${ORIGIN}/billing/` }, 'customer'],
      ['POST', '/change-plan', { tier: 'plus' }, 'subscription'],
      ['POST', '/preview-plan-change', { tier: 'plus' }, 'subscription'],
      ['POST', '/cancel-subscription', undefined, 'subscription'],
    ];
    for (const [method, p, body, kind, user = 'restart_c'] of cases) {
      const r = await call(user, method, p, body);
      const e = errorOf(r);
      assert.equal(r.status, 409, `${p}: ${JSON.stringify(r.body)}`);
      assert.equal(e.code, 'stripe_object_missing', `${p}: ${JSON.stringify(r.body)}`);
      assert.match(e.message, new RegExp(`No such ${kind}`), p);
      assert.doesNotMatch(e.message, /try again later/, p);
    }
  });
});

test('the emulator refuses a checkout session for a customer it does not know, as Stripe does', async () => {
  const r = await stripeApi(emu, 'POST', '/v1/checkout/sessions', {
    mode: 'subscription', customer: 'cus_unknown', line_items: [{ price: 'price_premium_monthly', quantity: 1 }],
    success_url: `${ORIGIN}/billing/success`,
  });
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.equal(r.body.error.code, 'resource_missing');
  assert.equal(r.body.error.param, 'customer');
});

test('a corrupt state file stops the emulator at start, naming the file, which it leaves as it was', async () => {
  const bad = path.join(tmpDir(), 'emulator-state.json');
  for (const content of ['{"version":1,', '{"version":99}']) {
    fs.writeFileSync(bad, content, { mode: 0o600 });
    const r = spawnSync(EMULATOR_BIN, [], {
      env: { PATH: process.env.PATH, EMULATOR_LISTEN: '127.0.0.1:0', EMULATOR_STATE_FILE: bad },
      encoding: 'utf8', timeout: 10000,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.ok(r.stderr.includes(`EMULATOR_STATE_FILE: state file '${bad}'`), r.stderr);
    assert.equal(fs.readFileSync(bad, 'utf8'), content);
  }
});
