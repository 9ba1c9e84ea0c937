// billing_lib.mjs: subgate in front of the Stripe emulator, for the tests of plan changes through
// subgate's API and its clients (plans, audit_payments, js_client): both started with every price
// of the built-in catalogue (monthly and annual), webhooks delivered, users bought on test clocks,
// and a user's calls to the payments routes.
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  emuControl, now, req, startEmulator, startServer, stopEmulator, stopServer, stripeApi, tmpDir,
  userToken,
} from './lib.mjs';

export const ORIGIN = 'http://localhost:3000';
export const SUCCESS = `${ORIGIN}/billing/success?session_id={CHECKOUT_SESSION_ID}`;
export const CANCEL = `${ORIGIN}/billing/cancel`;
export const DAY = 86400;
export const T0 = 1767225600; // 2026-01-01T00:00:00Z: January has 31 days

// Starts the emulator and a server on SQLite (PostgreSQL in that mode) with the four prices;
// env adds to the server's. Resolves to { emu, srv }.
export async function startBilling(whsec, env = {}) {
  const emu = await startEmulator({ EMULATOR_WEBHOOK_SECRET: whsec });
  const dir = tmpDir();
  const srv = await startServer({
    STRIPE_SECRET_KEY: 'sk_test_emulator',
    STRIPE_API_BASE: emu.base,
    STRIPE_WEBHOOK_SECRET: whsec,
    STRIPE_PREMIUM_PRICE_ID: 'price_premium_monthly',
    STRIPE_PLUS_PRICE_ID: 'price_plus_monthly',
    STRIPE_PREMIUM_ANNUAL_PRICE_ID: 'price_premium_annual',
    STRIPE_PLUS_ANNUAL_PRICE_ID: 'price_plus_annual',
    HTTP_THREADS: '4',
    DATABASE_URL: `sqlite:${path.join(dir, 'subgate.db')}`,
    ...env,
  }, { cwd: dir });
  const r = await emuControl(emu, 'POST', '/_emulator/webhooks', { url: `${srv.base}/api/v1/payments/webhook`, secret: whsec });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { emu, srv };
}

export async function stopBilling(b) {
  if (!b) return;
  await stopServer(b.srv);
  await stopEmulator(b.emu);
}

// The emulator-side steps over the emulator emu() returns (started in a before hook).
export function billingFlows(emu) {
  async function stripe(method, p, params) {
    const r = await stripeApi(emu(), method, p, params);
    assert.equal(r.status, 200, `${method} ${p}: ${JSON.stringify(r.body)}`);
    return r.body;
  }

  // Waits until every webhook the emulator has queued was delivered.
  async function drain() {
    const r = await emuControl(emu(), 'POST', '/_emulator/webhooks/drain', { timeout_ms: 20000 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }

  async function advance(clock, to) {
    await stripe('POST', `/v1/test_helpers/test_clocks/${clock.id}/advance`, { frozen_time: to });
    await drain();
  }

  // Pays a checkout session's hosted page (a full URL, or the emulator's path) with card; the
  // redirect answer.
  async function payPage(url, card = '4242424242424242') {
    const r = await fetch(url.startsWith('http') ? `${url}/pay` : `${emu().base}${url}/pay`, {
      method: 'POST', redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ card }).toString(),
    });
    assert.equal(r.status, 303, await r.text());
    return r;
  }

  // A customer of user on a fresh test clock at T0, with a checkout session for price made as
  // subgate makes them, paid on the hosted page: { clock, cus, session }. The caller tells subgate
  // (checkout-success).
  async function paidSession(user, price = 'price_premium_monthly') {
    const clock = await stripe('POST', '/v1/test_helpers/test_clocks', { frozen_time: T0 });
    const cus = await stripe('POST', '/v1/customers', { email: `${user}@example.com`, metadata: { user_id: user }, test_clock: clock.id });
    const session = await stripe('POST', '/v1/checkout/sessions', {
      mode: 'subscription', customer: cus.id, client_reference_id: user,
      line_items: [{ price, quantity: 1 }], success_url: SUCCESS, cancel_url: CANCEL,
      metadata: { user_id: user }, subscription_data: { metadata: { user_id: user } },
    });
    await payPage(session.url);
    return { clock, cus, session };
  }

  async function stripeInvoices(subId) {
    return (await stripe('GET', '/v1/invoices', { subscription: subId, limit: 100 })).data;
  }

  return { stripe, drain, advance, payPage, paidSession, stripeInvoices };
}

// A user's calls to the payments routes of the server srv() returns (started in a before hook),
// with a fresh token each: call answers whatever comes back, ok asserts a 200 and answers its body,
// and subscriber buys user a subscription through flows (billingFlows): { clock, cus, sub }.
export function paymentsCalls(srv, flows) {
  const call = (user, method, p, body) =>
    req(srv(), method, `/api/v1/payments${p}`, { token: userToken(user, { exp: now() + 3600 }), body });

  async function ok(user, method, p, body) {
    const r = await call(user, method, p, body);
    assert.equal(r.status, 200, `${method} ${p}: ${JSON.stringify(r.body)}`);
    return r.body;
  }

  // A user subscribed to `price` through a checkout session like subgate's, on a test clock at T0.
  async function subscriber(user, price = 'price_premium_monthly') {
    const { clock, cus, session } = await flows.paidSession(user, price);
    const sub = await ok(user, 'POST', '/checkout-success', { session_id: session.id });
    await flows.drain();
    return { clock, cus, sub };
  }

  return { call, ok, subscriber };
}
