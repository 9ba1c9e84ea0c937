// js_client.test.mjs: the JavaScript client (clients/js/subgate.js) driven against the real
// binary and the Stripe emulator: buy a plan through the hosted page, come back with
// checkoutSuccess, read subscription, usage and invoices, open the portal, cancel; and errors
// as SubgateError with the fields of subgate's Stripe-shaped bodies.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Subgate, SubgateError } from '../../clients/js/subgate.js';
import {
  emuControl, now, startEmulator, startServer, stopEmulator, stopServer, tmpDir, userToken,
} from './lib.mjs';

const WHSEC = 'whsec_js_client_integration';
const ORIGIN = 'http://localhost:3000';
const SUCCESS = `${ORIGIN}/billing/success?session_id={CHECKOUT_SESSION_ID}`;
const CANCEL = `${ORIGIN}/billing/cancel`;

let emu;
let srv;

before(async () => {
  emu = await startEmulator({ EMULATOR_WEBHOOK_SECRET: WHSEC });
  const dir = tmpDir();
  srv = await startServer({
    STRIPE_SECRET_KEY: 'sk_test_emulator',
    STRIPE_API_BASE: emu.base,
    STRIPE_WEBHOOK_SECRET: WHSEC,
    STRIPE_PREMIUM_PRICE_ID: 'price_premium_monthly',
    STRIPE_PLUS_PRICE_ID: 'price_plus_monthly',
    STRIPE_PUBLISHABLE_KEY: 'pk_test_jsclient',
    HTTP_THREADS: '4',
    DATABASE_URL: `sqlite:${path.join(dir, 'subgate.db')}`,
  }, { cwd: dir });
  const r = await emuControl(emu, 'POST', '/_emulator/webhooks', { url: `${srv.base}/api/v1/payments/webhook`, secret: WHSEC });
  assert.equal(r.status, 200, JSON.stringify(r.body));
});

after(async () => {
  await stopServer(srv);
  await stopEmulator(emu);
});

// Pays a session on the emulator's hosted page; the session id from the success redirect.
async function pay(url) {
  const r = await fetch(`${url}/pay`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ card: '4242424242424242' }).toString(),
    redirect: 'manual',
  });
  assert.equal(r.status, 303);
  const back = new URL(r.headers.get('location'));
  assert.equal(back.origin, ORIGIN);
  return back.searchParams.get('session_id');
}

describe('the JavaScript client', () => {
  const user = 'js_alice';
  let calls = 0;
  // A token function, as an app with refreshing tokens would pass.
  const client = () => new Subgate({ baseUrl: `${srv.base}/`, token: () => { calls++; return userToken(user, { exp: now() + 600 }); } });

  test('pricing needs no token and lists the tiers', async () => {
    const p = await new Subgate({ baseUrl: srv.base }).pricing();
    assert.equal(p.publishable_key, 'pk_test_jsclient');
    assert.ok(p.tiers.some((t) => t.id === 'premium'));
  });

  test('a new user is free, with usage and no invoices', async () => {
    const sg = client();
    const s = await sg.subscription();
    assert.equal(s.tier, 'free');
    assert.equal(s.status, 'none');
    const u = await sg.usage();
    assert.equal(typeof u, 'object');
    assert.deepEqual((await sg.invoices({ limit: 5 })).data ?? [], []);
    assert.ok(calls >= 3, 'the token function is called for each request');
  });

  test('errors are SubgateError with status, type, code, param, message and requestId', async () => {
    const sg = client();
    await assert.rejects(sg.checkout({ tier: 'gold', successUrl: SUCCESS, cancelUrl: CANCEL }), (e) => {
      assert.ok(e instanceof SubgateError);
      assert.equal(e.status, 400);
      assert.equal(e.type, 'invalid_request_error');
      assert.equal(e.param, 'tier');
      assert.ok(e.code && e.message, JSON.stringify(e));
      assert.match(e.requestId, /^req_/);
      return true;
    });
    await assert.rejects(new Subgate({ baseUrl: srv.base }).subscription(), (e) => e instanceof SubgateError && e.status === 401);
    await assert.rejects(sg.invoices({ limit: 1000 }), (e) => e.status === 400 && e.param === 'limit');
    await assert.rejects(new Subgate({ baseUrl: 'http://127.0.0.1:1' }).pricing(), (e) => e.status === 0 && e.type === 'connection_error');
  });

  test('buys premium, comes back with checkoutSuccess, reads and cancels', async () => {
    const sg = client();
    const session = await sg.checkout({ tier: 'premium', successUrl: SUCCESS, cancelUrl: CANCEL });
    assert.match(session.session_id, /^cs_/);
    const id = await pay(session.url);
    assert.equal(id, session.session_id);
    const s = await sg.checkoutSuccess(id);
    assert.equal(s.tier, 'premium');
    assert.equal(s.status, 'active');
    assert.equal((await sg.subscription()).tier, 'premium');
    const u = await sg.usage();
    assert.equal(typeof u, 'object');
    const inv = await sg.invoices({ limit: 10 });
    assert.ok(Array.isArray(inv.data), JSON.stringify(inv));
    const portal = await sg.portal(`${ORIGIN}/account`);
    assert.match(portal.url, /^http/);
    const atEnd = await sg.cancel();
    assert.equal(atEnd.cancel_at_period_end, true);
    const now_ = await sg.cancel({ immediate: true });
    assert.equal(now_.status, 'canceled');
    assert.equal((await sg.subscription()).tier, 'free');
    await assert.rejects(sg.cancel(), (e) => e instanceof SubgateError && e.status === 404);
  });
});
