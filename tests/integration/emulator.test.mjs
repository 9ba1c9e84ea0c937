// emulator.test.mjs: the Stripe emulator on its own, over loopback: Stripe's wire format and
// errors, idempotency, hosted checkout with test cards, session expiry, subscriptions (two for
// one customer too), invoices with their charges, refunds, test clocks, the billing portal,
// faults, the control API, and signed webhooks checked with Stripe's SDK.
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { stripeForm, STRIPE_PARAMS_TOOL } from './lib.mjs';

const require = createRequire(import.meta.url);
const Stripe = require('stripe');

const BIN = path.resolve(process.env.EMULATOR_BIN || 'build/release/stripe-emulator');
const KEY = 'sk_test_emulator';
const WHSEC = 'whsec_emulator_test_secret';
const DAY = 86400;

let emu; // { child, base, log }

function startEmulator(env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, [], {
      env: { PATH: process.env.PATH, EMULATOR_LISTEN: '127.0.0.1:0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const e = { child, base: null, log: '' };
    let out = '';
    child.stderr.on('data', (d) => { e.log += d; });
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^stripe-emulator listening on (http:\/\/127\.0\.0\.1:\d+)\n/);
      if (m && !e.base) { e.base = m[1]; resolve(e); }
    });
    child.on('exit', (code) => { if (!e.base) reject(new Error(`emulator exited ${code}: ${e.log}`)); });
  });
}

// Calls the Stripe API: { status, body, headers }.
async function api(method, p, params = {}, { key = KEY, idem, raw } = {}) {
  const headers = {};
  if (key !== null) headers.Authorization = `Bearer ${key}`;
  if (idem) headers['Idempotency-Key'] = idem;
  let url = emu.base + p;
  let body;
  if (method === 'GET') {
    const q = raw ?? stripeForm(params);
    if (q) url += `?${q}`;
  } else {
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    body = raw ?? stripeForm(params);
  }
  const r = await fetch(url, { method, headers, body });
  return { status: r.status, body: await r.json(), headers: r.headers };
}

async function ok(method, p, params, opts) {
  const r = await api(method, p, params, opts);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

async function control(method, p, json) {
  const r = await fetch(emu.base + p, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  return { status: r.status, body: await r.json() };
}

async function page(method, p, fields) {
  const r = await fetch(emu.base + p, {
    method,
    redirect: 'manual',
    headers: fields ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {},
    body: fields ? new URLSearchParams(fields).toString() : undefined,
  });
  return { status: r.status, text: await r.text(), location: r.headers.get('location') };
}

async function eventTypes() {
  const list = await ok('GET', '/v1/events', { limit: 100 });
  return list.data.map((e) => e.type).reverse();
}

async function newCustomer(params = {}) {
  return ok('POST', '/v1/customers', { email: 'u@example.com', ...params });
}

async function newSession(customer, extra = {}) {
  return ok('POST', '/v1/checkout/sessions', {
    mode: 'subscription',
    customer,
    line_items: [{ price: 'price_premium_monthly', quantity: 1 }],
    success_url: 'https://app.example/ok?session={CHECKOUT_SESSION_ID}',
    cancel_url: 'https://app.example/cancel',
    client_reference_id: 'u1',
    metadata: { user_id: 'u1' },
    subscription_data: { metadata: { user_id: 'u1' } },
    ...extra,
  });
}

// A customer (on a clock when given) with a paid subscription through the hosted page.
async function subscribed({ clock, trialDays } = {}) {
  const cus = await newCustomer(clock ? { test_clock: clock } : {});
  const extra = trialDays ? { subscription_data: { trial_period_days: trialDays } } : {};
  const s = await newSession(cus.id, extra);
  const r = await page('POST', `/checkout/${s.id}/pay`, { card: '4242 4242 4242 4242' });
  assert.equal(r.status, 303, r.text);
  const done = await ok('GET', `/v1/checkout/sessions/${s.id}`);
  return { cus, session: done, sub: await ok('GET', `/v1/subscriptions/${done.subscription}`) };
}

before(async () => { emu = await startEmulator({ EMULATOR_WEBHOOK_SECRET: WHSEC }); });
after(async () => {
  const exited = new Promise((resolve) => emu.child.on('exit', (code, signal) => resolve({ code, signal })));
  emu.child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null }, emu.log.slice(-2000));
  assert.doesNotMatch(emu.log, /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error/);
});
beforeEach(async () => { assert.equal((await control('POST', '/_emulator/reset')).status, 200); });

describe('wire format and errors', () => {
  test('no key and a wrong key answer 401 with Stripe error JSON', async () => {
    const none = await api('GET', '/v1/customers', {}, { key: null });
    assert.equal(none.status, 401);
    assert.equal(none.body.error.type, 'invalid_request_error');
    assert.ok(none.headers.get('request-id'));
    const wrong = await api('GET', '/v1/customers', {}, { key: 'sk_test_abcdefgh1234' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error.message, 'Invalid API Key provided: sk_test_****1234');
  });

  test('Basic auth with the key as user is accepted', async () => {
    const r = await fetch(`${emu.base}/v1/customers`, {
      headers: { Authorization: `Basic ${Buffer.from(`${KEY}:`).toString('base64')}` },
    });
    assert.equal(r.status, 200);
  });

  const badRequests = [
    ['unknown parameter', 'POST', '/v1/customers', 'foo=1', 'Received unknown parameter: foo', 'foo'],
    ['unknown nested parameter', 'POST', '/v1/checkout/sessions',
      'mode=subscription&success_url=x&line_items[0][bogus]=1', 'Received unknown parameter: line_items[0][bogus]',
      'line_items[0][bogus]'],
    ['missing mode', 'POST', '/v1/checkout/sessions', 'success_url=https://x', 'Missing required param: mode.', 'mode'],
    ['invalid integer', 'GET', '/v1/customers', 'limit=abc', 'Invalid integer: abc', 'limit'],
    ['invalid boolean', 'GET', '/v1/prices', 'active=maybe', 'Invalid boolean: maybe', 'active'],
  ];
  for (const [name, method, p, raw, message, param] of badRequests) {
    test(`400 for ${name}`, async () => {
      const r = await api(method, p, {}, { raw });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.type, 'invalid_request_error');
      assert.equal(r.body.error.message, message);
      assert.equal(r.body.error.param, param);
    });
  }

  test('unknown ids answer 404 resource_missing', async () => {
    const r = await api('GET', '/v1/customers/cus_nope');
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'resource_missing');
    assert.equal(r.body.error.message, "No such customer: 'cus_nope'");
  });
});

describe('customers and prices', () => {
  test('create, retrieve, update, list by email', async () => {
    const c = await newCustomer({ name: 'Ann', metadata: { user_id: 'u1' } });
    assert.match(c.id, /^cus_[A-Za-z0-9]{14}$/);
    assert.equal(c.object, 'customer');
    assert.deepEqual(c.metadata, { user_id: 'u1' });
    const got = await ok('GET', `/v1/customers/${c.id}`);
    assert.deepEqual(got, c);
    const upd = await ok('POST', `/v1/customers/${c.id}`, { name: 'Bea', metadata: { plan: 'x' } });
    assert.equal(upd.name, 'Bea');
    assert.deepEqual(upd.metadata, { user_id: 'u1', plan: 'x' });
    await newCustomer({ email: 'other@example.com' });
    const list = await ok('GET', '/v1/customers', { email: 'u@example.com' });
    assert.deepEqual(list.data.map((x) => x.id), [c.id]);
    assert.equal(list.object, 'list');
    assert.equal(list.url, '/v1/customers');
  });

  test('the two prices exist with products', async () => {
    const p = await ok('GET', '/v1/prices/price_premium_monthly');
    assert.equal(p.unit_amount, 999);
    assert.equal(p.recurring.interval, 'month');
    const plus = await ok('GET', '/v1/prices/price_plus_monthly', { expand: ['product'] });
    assert.equal(plus.unit_amount, 1999);
    assert.equal(plus.product.object, 'product');
  });

  test('pagination: limit, has_more, starting_after, newest first', async () => {
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await newCustomer()).id);
    const p1 = await ok('GET', '/v1/customers', { limit: 2 });
    assert.deepEqual(p1.data.map((c) => c.id), [ids[4], ids[3]]);
    assert.equal(p1.has_more, true);
    const p2 = await ok('GET', '/v1/customers', { limit: 2, starting_after: ids[3] });
    assert.deepEqual(p2.data.map((c) => c.id), [ids[2], ids[1]]);
    const p3 = await ok('GET', '/v1/customers', { limit: 2, starting_after: ids[1] });
    assert.deepEqual(p3.data.map((c) => c.id), [ids[0]]);
    assert.equal(p3.has_more, false);
    assert.equal((await api('GET', '/v1/customers', { limit: 101 })).status, 400);
  });
});

describe('idempotency', () => {
  test('same key and parameters replay the first answer', async () => {
    const a = await api('POST', '/v1/customers', { email: 'i@example.com' }, { idem: 'k1' });
    const b = await api('POST', '/v1/customers', { email: 'i@example.com' }, { idem: 'k1' });
    assert.equal(a.status, 200);
    assert.deepEqual(b.body, a.body);
    assert.equal(b.status, 200);
    assert.equal(b.headers.get('idempotent-replayed'), 'true');
    assert.equal((await ok('GET', '/v1/customers')).data.length, 1);
  });

  test('same key with other parameters is an idempotency_error', async () => {
    await ok('POST', '/v1/customers', { email: 'i@example.com' }, { idem: 'k2' });
    const r = await api('POST', '/v1/customers', { email: 'j@example.com' }, { idem: 'k2' });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.type, 'idempotency_error');
    assert.match(r.body.error.message, /same parameters they were first used with/);
  });

  test('concurrent requests with one key create one object', async () => {
    const rs = await Promise.all(Array.from({ length: 8 }, () =>
      api('POST', '/v1/customers', { email: 'c@example.com' }, { idem: 'k3' })));
    assert.equal(new Set(rs.map((r) => r.body.id)).size, 1);
    assert.equal((await ok('GET', '/v1/customers')).data.length, 1);
  });
});

describe('checkout', () => {
  test('session, hosted page, pay 4242, redirect, subscription and invoice', async () => {
    const cus = await newCustomer();
    const s = await newSession(cus.id);
    assert.match(s.id, /^cs_test_/);
    assert.equal(s.url, `${emu.base}/checkout/${s.id}`);
    assert.equal(s.status, 'open');
    const pg = await page('GET', `/checkout/${s.id}`);
    assert.equal(pg.status, 200);
    assert.match(pg.text, /Premium/);
    assert.match(pg.text, /\$9\.99/);
    const r = await page('POST', `/checkout/${s.id}/pay`, { card: '4242 4242 4242 4242' });
    assert.equal(r.status, 303);
    assert.equal(r.location, `https://app.example/ok?session=${s.id}`);
    const done = await ok('GET', `/v1/checkout/sessions/${s.id}`, { expand: ['subscription'] });
    assert.equal(done.status, 'complete');
    assert.equal(done.payment_status, 'paid');
    const sub = done.subscription;
    assert.equal(sub.object, 'subscription');
    assert.equal(sub.status, 'active');
    assert.equal(sub.customer, cus.id);
    assert.deepEqual(sub.metadata, { user_id: 'u1' });
    assert.equal(sub.items.data[0].price.id, 'price_premium_monthly');
    assert.equal(sub.items.data[0].current_period_end, sub.current_period_end);
    assert.ok(sub.current_period_end > sub.current_period_start + 27 * DAY);
    const invs = await ok('GET', '/v1/invoices', { customer: cus.id });
    assert.equal(invs.data.length, 1);
    const inv = invs.data[0];
    assert.equal(inv.status, 'paid');
    assert.equal(inv.amount_paid, 999);
    assert.equal(inv.subscription, sub.id);
    assert.match(inv.hosted_invoice_url, /^http:\/\/127\.0\.0\.1:\d+\/invoice\/in_/);
    assert.equal((await page('GET', new URL(inv.hosted_invoice_url).pathname)).status, 200);
    const subs = await ok('GET', '/v1/subscriptions', { customer: cus.id, status: 'active' });
    assert.deepEqual(subs.data.map((x) => x.id), [sub.id]);
    assert.deepEqual(await eventTypes(), ['customer.created', 'customer.subscription.created',
      'invoice.created', 'invoice.finalized', 'invoice.paid', 'invoice.payment_succeeded',
      'checkout.session.completed']);
    assert.equal((await page('POST', `/checkout/${s.id}/pay`, { card: '4242424242424242' })).status, 409);
  });

  test('a declined card shows the page again and creates nothing', async () => {
    const cus = await newCustomer();
    const s = await newSession(cus.id);
    const r = await page('POST', `/checkout/${s.id}/pay`, { card: '4000000000000002' });
    assert.equal(r.status, 402);
    assert.match(r.text, /Your card was declined\./);
    assert.equal((await ok('GET', '/v1/subscriptions', { customer: cus.id })).data.length, 0);
    assert.equal((await ok('GET', '/v1/invoices')).data.length, 0);
    assert.equal((await ok('GET', `/v1/checkout/sessions/${s.id}`)).status, 'open');
  });

  test('3DS card: authentication page, fail declines, complete pays', async () => {
    const cus = await newCustomer();
    const s = await newSession(cus.id);
    let r = await page('POST', `/checkout/${s.id}/pay`, { card: '4000 0025 0000 3155' });
    assert.equal(r.status, 200);
    assert.match(r.text, /Complete authentication/);
    assert.match(r.text, /Fail authentication/);
    r = await page('POST', `/checkout/${s.id}/3ds/fail`, {});
    assert.match(r.text, /declined/);
    assert.equal((await ok('GET', '/v1/subscriptions', { customer: cus.id })).data.length, 0);
    await page('POST', `/checkout/${s.id}/pay`, { card: '4000002500003155' });
    r = await page('POST', `/checkout/${s.id}/3ds/complete`, {});
    assert.equal(r.status, 303);
    assert.equal((await ok('GET', '/v1/subscriptions', { customer: cus.id })).data[0].status, 'active');
  });

  test('a trial makes the subscription trialing with a zero invoice', async () => {
    const { sub } = await subscribed({ trialDays: 14 });
    assert.equal(sub.status, 'trialing');
    assert.equal(sub.trial_end, sub.current_period_end);
    assert.equal(sub.trial_end - sub.trial_start, 14 * DAY);
    const inv = await ok('GET', `/v1/invoices/${sub.latest_invoice}`);
    assert.equal(inv.amount_due, 0);
    assert.equal(inv.status, 'paid');
  });
});

describe('subscriptions and test clocks', () => {
  const T0 = 1700000000;

  async function clock() {
    return ok('POST', '/v1/test_helpers/test_clocks', { frozen_time: T0, name: 'c' });
  }

  test('advancing past the period end renews with a new paid invoice', async () => {
    const clk = await clock();
    const { sub } = await subscribed({ clock: clk.id });
    assert.equal(sub.current_period_start, T0);
    const adv = await ok('POST', `/v1/test_helpers/test_clocks/${clk.id}/advance`,
      { frozen_time: sub.current_period_end + 60 });
    assert.equal(adv.status, 'ready');
    const now = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.equal(now.status, 'active');
    assert.equal(now.current_period_start, sub.current_period_end);
    const invs = await ok('GET', '/v1/invoices', { subscription: sub.id });
    assert.equal(invs.data.length, 2);
    assert.equal(invs.data[0].status, 'paid');
    assert.equal(invs.data[0].billing_reason, 'subscription_cycle');
    assert.equal(invs.data[0].period_start, sub.current_period_end);
  });

  test('a declining card makes the renewal fail: past_due and invoice.payment_failed', async () => {
    const clk = await clock();
    const { cus, sub } = await subscribed({ clock: clk.id });
    assert.equal((await control('POST', `/_emulator/customers/${cus.id}/card`, { card: '4000000000000002' })).status, 200);
    await ok('POST', `/v1/test_helpers/test_clocks/${clk.id}/advance`, { frozen_time: sub.current_period_end + 60 });
    const now = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.equal(now.status, 'past_due');
    const inv = await ok('GET', `/v1/invoices/${now.latest_invoice}`);
    assert.equal(inv.status, 'open');
    assert.equal(inv.amount_paid, 0);
    const types = await eventTypes();
    assert.ok(types.includes('invoice.payment_failed'));
  });

  test('a trial ends: trial_will_end three days before, then active and charged', async () => {
    const clk = await clock();
    const { sub } = await subscribed({ clock: clk.id, trialDays: 7 });
    await ok('POST', `/v1/test_helpers/test_clocks/${clk.id}/advance`, { frozen_time: T0 + 5 * DAY });
    assert.ok((await eventTypes()).includes('customer.subscription.trial_will_end'));
    assert.equal((await ok('GET', `/v1/subscriptions/${sub.id}`)).status, 'trialing');
    await ok('POST', `/v1/test_helpers/test_clocks/${clk.id}/advance`, { frozen_time: T0 + 8 * DAY });
    const now = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.equal(now.status, 'active');
    assert.equal((await ok('GET', `/v1/invoices/${now.latest_invoice}`)).amount_paid, 999);
  });

  test('cancel_at_period_end, then advance: canceled', async () => {
    const clk = await clock();
    const { sub } = await subscribed({ clock: clk.id });
    const upd = await ok('POST', `/v1/subscriptions/${sub.id}`, { cancel_at_period_end: true });
    assert.equal(upd.cancel_at_period_end, true);
    assert.equal(upd.cancel_at, sub.current_period_end);
    await ok('POST', `/v1/test_helpers/test_clocks/${clk.id}/advance`, { frozen_time: sub.current_period_end + 1 });
    const now = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.equal(now.status, 'canceled');
    assert.equal(now.ended_at, sub.current_period_end);
    const types = await eventTypes();
    assert.equal(types.at(-2), 'customer.subscription.deleted');
    const events = await ok('GET', '/v1/events', { limit: 100 });
    const updated = events.data.find((e) => e.type === 'customer.subscription.updated');
    assert.deepEqual(updated.data.previous_attributes.cancel_at_period_end, false);
    assert.equal((await ok('GET', '/v1/subscriptions', { customer: sub.customer })).data.length, 0);
    assert.equal((await ok('GET', '/v1/subscriptions', { customer: sub.customer, status: 'all' })).data.length, 1);
  });

  test('DELETE cancels now', async () => {
    const { sub } = await subscribed();
    const del = await ok('DELETE', `/v1/subscriptions/${sub.id}`);
    assert.equal(del.status, 'canceled');
    assert.ok(del.ended_at && del.canceled_at);
    assert.equal((await eventTypes()).at(-1), 'customer.subscription.deleted');
  });

  test('switching the price through items[0]', async () => {
    const { sub } = await subscribed();
    const upd = await ok('POST', `/v1/subscriptions/${sub.id}`, {
      items: [{ id: sub.items.data[0].id, price: 'price_plus_monthly' }],
      proration_behavior: 'create_prorations',
    });
    assert.equal(upd.items.data[0].price.id, 'price_plus_monthly');
    const bad = await api('POST', `/v1/subscriptions/${sub.id}`, { items: [{ id: sub.items.data[0].id, price: 'price_nope' }] });
    assert.equal(bad.status, 400);
  });
});

describe('billing portal', () => {
  async function portal(cus) {
    const ps = await ok('POST', '/v1/billing_portal/sessions', { customer: cus, return_url: 'https://app.example/account' });
    assert.match(ps.id, /^bps_/);
    return ps;
  }

  test('the page shows the subscription; switch, cancel at period end, cancel now', async () => {
    const { cus, sub } = await subscribed();
    const ps = await portal(cus.id);
    const pg = await page('GET', new URL(ps.url).pathname);
    assert.equal(pg.status, 200);
    assert.match(pg.text, /Premium/);
    assert.match(pg.text, /Switch to Plus/);
    let r = await page('POST', `/portal/${ps.id}/switch`, { subscription: sub.id, price: 'price_plus_monthly' });
    assert.equal(r.status, 303);
    assert.equal(r.location, 'https://app.example/account');
    assert.equal((await ok('GET', `/v1/subscriptions/${sub.id}`)).items.data[0].price.id, 'price_plus_monthly');
    r = await page('POST', `/portal/${ps.id}/cancel`, { subscription: sub.id });
    assert.equal(r.status, 303);
    assert.equal((await ok('GET', `/v1/subscriptions/${sub.id}`)).cancel_at_period_end, true);
    r = await page('POST', `/portal/${ps.id}/cancel_now`, { subscription: sub.id });
    assert.equal(r.status, 303);
    assert.equal((await ok('GET', `/v1/subscriptions/${sub.id}`)).status, 'canceled');
    const events = (await ok('GET', '/v1/events', { limit: 100 })).data.reverse();
    const types = events.map((e) => e.type);
    assert.deepEqual(types.slice(-7), ['customer.subscription.updated', 'invoice.created', 'invoice.finalized',
      'invoice.paid', 'invoice.payment_succeeded', 'customer.subscription.updated',
      'customer.subscription.deleted']);
    assert.ok(events.at(-7).data.previous_attributes.items);
    assert.equal(events.at(-6).data.object.billing_reason, 'subscription_update');
  });

  test('another customer\'s subscription is refused', async () => {
    const { sub } = await subscribed();
    const other = await newCustomer();
    const ps = await portal(other.id);
    assert.equal((await page('POST', `/portal/${ps.id}/cancel_now`, { subscription: sub.id })).status, 404);
  });
});

// Pays a session on its hosted page with the card that always succeeds.
async function pay(session) {
  const r = await page('POST', `/checkout/${session.id}/pay`, { card: '4242 4242 4242 4242' });
  assert.equal(r.status, 303, r.text);
  return ok('GET', `/v1/checkout/sessions/${session.id}`);
}

async function lastEvents(n) {
  return (await ok('GET', '/v1/events', { limit: n })).data.reverse();
}

describe('checkout session expiry', () => {
  test('an open session expires: status expired, url null, event, and its page cannot be paid', async () => {
    const cus = await newCustomer();
    const s = await newSession(cus.id);
    assert.ok(s.expires_at >= s.created + DAY - 5);
    const ex = await ok('POST', `/v1/checkout/sessions/${s.id}/expire`);
    assert.equal(ex.id, s.id);
    assert.equal(ex.object, 'checkout.session');
    assert.equal(ex.status, 'expired');
    assert.equal(ex.url, null);
    assert.equal(ex.payment_status, 'unpaid');
    assert.deepEqual(await ok('GET', `/v1/checkout/sessions/${s.id}`), ex);
    const [ev] = await lastEvents(1);
    assert.equal(ev.type, 'checkout.session.expired');
    assert.deepEqual(ev.data.object, ex);
    const pg = await page('GET', `/checkout/${s.id}`);
    assert.equal(pg.status, 410);
    assert.match(pg.text, /has expired/);
    assert.doesNotMatch(pg.text, /<form/);
    const paid = await page('POST', `/checkout/${s.id}/pay`, { card: '4242 4242 4242 4242' });
    assert.equal(paid.status, 410);
    assert.match(paid.text, /has expired/);
    assert.equal((await page('POST', `/checkout/${s.id}/3ds/complete`, {})).status, 410);
    assert.equal((await ok('GET', '/v1/subscriptions', { customer: cus.id, status: 'all' })).data.length, 0);
    assert.equal((await ok('GET', '/v1/invoices', { customer: cus.id })).data.length, 0);
    assert.equal((await ok('GET', '/v1/charges', { customer: cus.id })).data.length, 0);
    assert.equal((await lastEvents(1))[0].id, ev.id);
  });

  test('a session waiting for 3DS authentication expires and cannot then be completed', async () => {
    const s = await newSession((await newCustomer()).id);
    assert.equal((await page('POST', `/checkout/${s.id}/pay`, { card: '4000 0025 0000 3155' })).status, 200);
    await ok('POST', `/v1/checkout/sessions/${s.id}/expire`);
    assert.equal((await page('POST', `/checkout/${s.id}/3ds/complete`, {})).status, 410);
    assert.equal((await ok('GET', `/v1/checkout/sessions/${s.id}`)).subscription, null);
  });

  test('only open sessions expire: complete and expired ones answer 400, unknown ids 404', async () => {
    const { session } = await subscribed();
    const done = await api('POST', `/v1/checkout/sessions/${session.id}/expire`);
    assert.equal(done.status, 400);
    assert.equal(done.body.error.type, 'invalid_request_error');
    assert.equal(done.body.error.message,
      'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of `complete`.');
    assert.equal((await ok('GET', `/v1/checkout/sessions/${session.id}`)).status, 'complete');
    const s = await newSession(session.customer);
    await ok('POST', `/v1/checkout/sessions/${s.id}/expire`);
    const twice = await api('POST', `/v1/checkout/sessions/${s.id}/expire`);
    assert.equal(twice.status, 400);
    assert.match(twice.body.error.message, /has a status of `expired`\.$/);
    const types = await eventTypes();
    assert.equal(types.filter((t) => t === 'checkout.session.expired').length, 1);
    const none = await api('POST', '/v1/checkout/sessions/cs_test_nope/expire');
    assert.equal(none.status, 404);
    assert.equal(none.body.error.code, 'resource_missing');
    assert.equal(none.body.error.message, "No such checkout.session: 'cs_test_nope'");
  });

  test('Idempotency-Key replays an expiry instead of refusing it', async () => {
    const s = await newSession((await newCustomer()).id);
    const a = await api('POST', `/v1/checkout/sessions/${s.id}/expire`, {}, { idem: 'exp-1' });
    const b = await api('POST', `/v1/checkout/sessions/${s.id}/expire`, {}, { idem: 'exp-1' });
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.deepEqual(b.body, a.body);
    assert.equal(b.headers.get('idempotent-replayed'), 'true');
    assert.equal((await eventTypes()).filter((t) => t === 'checkout.session.expired').length, 1);
  });

  test('expires_at is honoured on the customer\'s test clock', async () => {
    const T0 = 1700000000;
    const clk = await ok('POST', '/v1/test_helpers/test_clocks', { frozen_time: T0 });
    const cus = await newCustomer({ test_clock: clk.id });
    const early = await api('POST', '/v1/checkout/sessions', {
      mode: 'subscription', customer: cus.id, success_url: 'https://app.example/ok',
      line_items: [{ price: 'price_premium_monthly' }], expires_at: T0 + 60,
    });
    assert.equal(early.status, 400);
    assert.equal(early.body.error.param, 'expires_at');
    const s = await newSession(cus.id, { expires_at: T0 + 3600 });
    assert.equal(s.expires_at, T0 + 3600);
    await ok('POST', `/v1/test_helpers/test_clocks/${clk.id}/advance`, { frozen_time: T0 + 1800 });
    assert.equal((await ok('GET', `/v1/checkout/sessions/${s.id}`)).status, 'open');
    await ok('POST', `/v1/test_helpers/test_clocks/${clk.id}/advance`, { frozen_time: T0 + 7200 });
    const now = await ok('GET', `/v1/checkout/sessions/${s.id}`);
    assert.equal(now.status, 'expired');
    assert.equal(now.url, null);
    const ev = (await ok('GET', '/v1/events', { limit: 100 })).data.find((e) => e.type === 'checkout.session.expired');
    assert.equal(ev.created, T0 + 3600);
    assert.equal((await page('POST', `/checkout/${s.id}/pay`, { card: '4242424242424242' })).status, 410);
  });
});

describe('checkout session list', () => {
  test('filters by customer and subscription; pages with starting_after and ending_before', async () => {
    const a = await newCustomer();
    const b = await newCustomer({ email: 'b@example.com' });
    const s1 = await newSession(a.id);
    const s2 = await newSession(a.id);
    const s3 = await newSession(a.id);
    const other = await newSession(b.id);
    const done = await pay(s2);
    const ids = (list) => list.data.map((x) => x.id);
    const all = await ok('GET', '/v1/checkout/sessions', { customer: a.id });
    assert.equal(all.object, 'list');
    assert.equal(all.url, '/v1/checkout/sessions');
    assert.deepEqual(ids(all), [s3.id, s2.id, s1.id]);
    assert.deepEqual(ids(await ok('GET', '/v1/checkout/sessions', { customer: b.id })), [other.id]);
    assert.deepEqual(ids(await ok('GET', '/v1/checkout/sessions', { subscription: done.subscription })), [s2.id]);
    // customer_details is filled in when a session completes, as at Stripe.
    assert.deepEqual(ids(await ok('GET', '/v1/checkout/sessions', { customer_details: { email: 'u@example.com' } })), [s2.id]);
    const p1 = await ok('GET', '/v1/checkout/sessions', { customer: a.id, limit: 1 });
    assert.deepEqual(ids(p1), [s3.id]);
    assert.equal(p1.has_more, true);
    const p2 = await ok('GET', '/v1/checkout/sessions', { customer: a.id, limit: 1, starting_after: s3.id });
    assert.deepEqual(ids(p2), [s2.id]);
    const back = await ok('GET', '/v1/checkout/sessions', { customer: a.id, limit: 1, ending_before: s1.id });
    assert.deepEqual(ids(back), [s2.id]);
    assert.equal(back.has_more, true);
    const top = await ok('GET', '/v1/checkout/sessions', { customer: a.id, ending_before: s1.id });
    assert.deepEqual(ids(top), [s3.id, s2.id]);
    assert.equal(top.has_more, false);
    const both = await api('GET', '/v1/checkout/sessions', { starting_after: s1.id, ending_before: s3.id });
    assert.equal(both.status, 400);
    const gone = await api('GET', '/v1/checkout/sessions', { ending_before: 'cs_test_nope' });
    assert.equal(gone.status, 400);
    assert.equal(gone.body.error.param, 'ending_before');
  });
});

describe('charges and refunds', () => {
  test('a paid invoice carries its charge and PaymentIntent; a free trial\'s has neither', async () => {
    const { cus, sub } = await subscribed();
    const inv = await ok('GET', `/v1/invoices/${sub.latest_invoice}`);
    assert.match(inv.charge, /^ch_[A-Za-z0-9]{24}$/);
    assert.match(inv.payment_intent, /^pi_[A-Za-z0-9]{24}$/);
    const ch = await ok('GET', `/v1/charges/${inv.charge}`);
    assert.equal(ch.object, 'charge');
    assert.equal(ch.amount, 999);
    assert.equal(ch.amount_captured, 999);
    assert.equal(ch.amount_refunded, 0);
    assert.equal(ch.refunded, false);
    assert.equal(ch.paid, true);
    assert.equal(ch.status, 'succeeded');
    assert.equal(ch.currency, 'usd');
    assert.equal(ch.customer, cus.id);
    assert.equal(ch.invoice, inv.id);
    assert.equal(ch.payment_intent, inv.payment_intent);
    assert.equal(ch.payment_method_details.card.last4, '4242');
    const pi = await ok('GET', `/v1/payment_intents/${inv.payment_intent}`);
    assert.equal(pi.object, 'payment_intent');
    assert.equal(pi.status, 'succeeded');
    assert.equal(pi.amount, 999);
    assert.equal(pi.latest_charge, ch.id);
    assert.equal(pi.invoice, inv.id);
    const expanded = await ok('GET', `/v1/invoices/${inv.id}`, { expand: ['charge', 'payment_intent'] });
    assert.equal(expanded.charge.id, ch.id);
    assert.equal(expanded.payment_intent.id, pi.id);
    assert.deepEqual((await ok('GET', '/v1/charges', { customer: cus.id })).data.map((c) => c.id), [ch.id]);
    const { sub: trial } = await subscribed({ trialDays: 7 });
    const free = await ok('GET', `/v1/invoices/${trial.latest_invoice}`);
    assert.equal(free.charge, null);
    assert.equal(free.payment_intent, null);
  });

  test('refunding the whole charge: the refund, the charge, the events, the control view', async () => {
    const { cus, sub } = await subscribed();
    const inv = await ok('GET', `/v1/invoices/${sub.latest_invoice}`);
    const re = await ok('POST', '/v1/refunds', { charge: inv.charge, reason: 'duplicate', metadata: { why: 'second' } });
    assert.match(re.id, /^re_[A-Za-z0-9]{24}$/);
    assert.equal(re.object, 'refund');
    assert.equal(re.amount, 999);
    assert.equal(re.charge, inv.charge);
    assert.equal(re.payment_intent, inv.payment_intent);
    assert.equal(re.currency, 'usd');
    assert.equal(re.status, 'succeeded');
    assert.equal(re.reason, 'duplicate');
    assert.deepEqual(re.metadata, { why: 'second' });
    assert.equal(typeof re.created, 'number');
    const ch = await ok('GET', `/v1/charges/${inv.charge}`);
    assert.equal(ch.amount_refunded, 999);
    assert.equal(ch.refunded, true);
    assert.deepEqual(await ok('GET', `/v1/refunds/${re.id}`), re);
    assert.deepEqual((await ok('GET', '/v1/refunds', { charge: inv.charge })).data, [re]);
    const events = await lastEvents(2);
    assert.deepEqual(events.map((e) => e.type), ['refund.created', 'charge.refunded']);
    assert.deepEqual(events[0].data.object, re);
    assert.deepEqual(events[1].data.object, ch);
    assert.deepEqual(events[1].data.previous_attributes, { amount_refunded: 0, refunded: false });
    assert.equal((await ok('GET', `/v1/invoices/${inv.id}`)).status, 'paid');
    const again = await api('POST', '/v1/refunds', { charge: inv.charge });
    assert.equal(again.status, 400);
    assert.equal(again.body.error.type, 'invalid_request_error');
    assert.equal(again.body.error.code, 'charge_already_refunded');
    assert.equal(again.body.error.message, `Charge ${inv.charge} has already been refunded.`);
    const view = await control('GET', `/_emulator/customers/${cus.id}/payments`);
    assert.equal(view.status, 200);
    assert.deepEqual(view.body.data, [{
      charge: inv.charge, payment_intent: inv.payment_intent, invoice: inv.id, subscription: sub.id,
      amount: 999, amount_refunded: 999, refunded: true, created: ch.created,
      refunds: [{ id: re.id, amount: 999, reason: 'duplicate', created: re.created }],
    }]);
    assert.equal((await control('GET', '/_emulator/customers/cus_nope/payments')).status, 404);
  });

  test('partial refunds by payment_intent, more than is left, then the rest', async () => {
    const { sub } = await subscribed();
    const inv = await ok('GET', `/v1/invoices/${sub.latest_invoice}`);
    const part = await ok('POST', '/v1/refunds', { payment_intent: inv.payment_intent, amount: 300 });
    assert.equal(part.amount, 300);
    assert.equal(part.charge, inv.charge);
    assert.equal(part.reason, null);
    let ch = await ok('GET', `/v1/charges/${inv.charge}`);
    assert.equal(ch.amount_refunded, 300);
    assert.equal(ch.refunded, false);
    const ev = (await lastEvents(1))[0];
    assert.equal(ev.type, 'charge.refunded');
    assert.deepEqual(ev.data.previous_attributes, { amount_refunded: 0 });
    const big = await api('POST', '/v1/refunds', { charge: inv.charge, amount: 700 });
    assert.equal(big.status, 400);
    assert.equal(big.body.error.code, 'amount_too_large');
    assert.equal(big.body.error.param, 'amount');
    assert.equal(big.body.error.message, 'Refund amount ($7.00) is greater than unrefunded amount on charge ($6.99)');
    const rest = await ok('POST', '/v1/refunds', { charge: inv.charge, payment_intent: inv.payment_intent });
    assert.equal(rest.amount, 699);
    ch = await ok('GET', `/v1/charges/${inv.charge}`);
    assert.equal(ch.amount_refunded, 999);
    assert.equal(ch.refunded, true);
    const list = await ok('GET', '/v1/refunds', { payment_intent: inv.payment_intent });
    assert.deepEqual(list.data.map((r) => r.id), [rest.id, part.id]);
    const more = await api('POST', '/v1/refunds', { payment_intent: inv.payment_intent, amount: 1 });
    assert.equal(more.status, 400);
    assert.equal(more.body.error.code, 'charge_already_refunded');
  });

  test('refund errors: no target, unknown ids, a bad amount or reason', async () => {
    const { sub } = await subscribed();
    const inv = await ok('GET', `/v1/invoices/${sub.latest_invoice}`);
    const cases = [
      [{}, 400, 'parameter_missing', undefined],
      [{ charge: 'ch_nope' }, 400, 'resource_missing', 'charge'],
      [{ payment_intent: 'pi_nope' }, 400, 'resource_missing', 'payment_intent'],
      [{ charge: inv.charge, amount: 0 }, 400, 'parameter_invalid_integer', 'amount'],
      [{ charge: inv.charge, reason: 'bored' }, 400, 'parameter_invalid', 'reason'],
      [{ charge: inv.charge, bogus: 1 }, 400, 'parameter_unknown', 'bogus'],
    ];
    for (const [params, status, code, param] of cases) {
      const r = await api('POST', '/v1/refunds', params);
      assert.equal(r.status, status, JSON.stringify(params));
      assert.equal(r.body.error.type, 'invalid_request_error');
      assert.equal(r.body.error.code, code, JSON.stringify(r.body));
      assert.equal(r.body.error.param, param);
    }
    assert.equal((await api('POST', '/v1/refunds', { charge: 'ch_nope' })).body.error.message, "No such charge: 'ch_nope'");
    assert.equal((await api('GET', '/v1/refunds/re_nope')).status, 404);
    assert.equal((await api('GET', '/v1/charges/ch_nope')).status, 404);
    assert.equal((await api('GET', '/v1/payment_intents/pi_nope')).status, 404);
    assert.equal((await ok('GET', `/v1/charges/${inv.charge}`)).amount_refunded, 0);
    assert.equal((await ok('GET', '/v1/refunds')).data.length, 0);
  });
});

describe('a second subscription for one customer', () => {
  test('a second paid session makes a second live subscription; cancel it now and refund it', async () => {
    const { cus, sub: first } = await subscribed();
    const s2 = await newSession(cus.id);
    const done = await pay(s2);
    assert.equal(done.status, 'complete');
    assert.equal(done.customer, cus.id);
    assert.notEqual(done.subscription, first.id);
    const live = await ok('GET', '/v1/subscriptions', { customer: cus.id });
    assert.deepEqual(live.data.map((x) => [x.id, x.status]), [[done.subscription, 'active'], [first.id, 'active']]);
    const second = await ok('GET', `/v1/subscriptions/${done.subscription}`);
    const inv1 = await ok('GET', `/v1/invoices/${first.latest_invoice}`);
    const inv2 = await ok('GET', `/v1/invoices/${second.latest_invoice}`);
    assert.notEqual(inv1.charge, inv2.charge);
    assert.equal(inv2.amount_paid, 999);
    const del = await ok('DELETE', `/v1/subscriptions/${second.id}`, { invoice_now: false, prorate: false });
    assert.equal(del.status, 'canceled');
    await ok('POST', '/v1/refunds', { charge: inv2.charge, reason: 'duplicate' });
    assert.deepEqual((await ok('GET', '/v1/subscriptions', { customer: cus.id })).data.map((x) => x.id), [first.id]);
    assert.deepEqual((await eventTypes()).slice(-3), ['customer.subscription.deleted', 'refund.created', 'charge.refunded']);
    const view = (await control('GET', `/_emulator/customers/${cus.id}/payments`)).body.data;
    assert.deepEqual(view.map((p) => [p.subscription, p.amount_refunded, p.refunded]),
      [[first.id, 0, false], [second.id, 999, true]]);
    const both = await ok('DELETE', `/v1/subscriptions/${first.id}`, { invoice_now: true, prorate: true });
    assert.equal(both.status, 'canceled');
  });
});

describe('faults and control API', () => {
  test('500 twice, then OK', async () => {
    assert.equal((await control('POST', '/_emulator/faults', { mode: '500', count: 2 })).status, 200);
    assert.equal((await api('GET', '/v1/customers')).status, 500);
    const second = await api('GET', '/v1/customers');
    assert.equal(second.status, 500);
    assert.equal(second.body.error.type, 'api_error');
    assert.equal((await api('GET', '/v1/customers')).status, 200);
  });

  test('500_saved: the 500 is kept under the key and replayed; other routes and keys pass', async () => {
    const set = await control('POST', '/_emulator/faults',
      { mode: '500_saved', count: 1, method: 'POST', path: '/v1/customers' });
    assert.equal(set.status, 200);
    assert.equal((await ok('GET', '/v1/customers')).data.length, 0); // another route: not counted
    const first = await api('POST', '/v1/customers', { email: 's@example.com' }, { idem: 'saved-1' });
    assert.equal(first.status, 500);
    assert.equal(first.body.error.type, 'api_error');
    assert.equal(first.headers.get('idempotent-replayed'), null);
    const again = await api('POST', '/v1/customers', { email: 's@example.com' }, { idem: 'saved-1' });
    assert.equal(again.status, 500);
    assert.deepEqual(again.body, first.body);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal((await ok('GET', '/v1/customers')).data.length, 0); // nothing was made
    await ok('POST', '/v1/customers', { email: 's@example.com' }, { idem: 'saved-1~1' });
    assert.equal((await ok('GET', '/v1/customers')).data.length, 1);
  });

  test('500_applied: the request takes effect, and its key replays the 500', async () => {
    await control('POST', '/_emulator/faults', { mode: '500_applied', count: 1 });
    const first = await api('POST', '/v1/customers', { email: 'a@example.com' }, { idem: 'applied-1' });
    assert.equal(first.status, 500);
    assert.equal((await ok('GET', '/v1/customers')).data.length, 1); // it was made
    const again = await api('POST', '/v1/customers', { email: 'a@example.com' }, { idem: 'applied-1' });
    assert.equal(again.status, 500);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
  });

  test('429 answers rate_limit_error', async () => {
    await control('POST', '/_emulator/faults', { mode: '429', count: 1 });
    const r = await api('GET', '/v1/customers');
    assert.equal(r.status, 429);
    assert.equal(r.body.error.type, 'rate_limit_error');
  });

  test('drop closes the connection without an answer', async () => {
    await control('POST', '/_emulator/faults', { mode: 'drop', count: 1 });
    await assert.rejects(api('POST', '/v1/customers', { email: 'd@example.com' }));
    assert.equal((await ok('GET', '/v1/customers')).data.length, 0);
  });

  test('timeout holds the request, then answers', async () => {
    await control('POST', '/_emulator/faults', { mode: 'timeout', count: 1, delay_ms: 300 });
    const t = Date.now();
    assert.equal((await api('GET', '/v1/customers')).status, 200);
    assert.ok(Date.now() - t >= 250);
  });

  test('reset empties state but keeps the prices', async () => {
    await newCustomer();
    await control('POST', '/_emulator/reset');
    assert.equal((await ok('GET', '/v1/customers')).data.length, 0);
    assert.equal((await ok('GET', '/v1/prices')).data.length, 4);
    assert.equal((await ok('GET', '/v1/promotion_codes', { code: 'SUBGATE20' })).data.length, 1);
  });

  test('the request log holds what clients sent, valid for the OpenAPI spec', async () => {
    await subscribed();
    await ok('GET', '/v1/subscriptions', { status: 'all', limit: 3 });
    const log = (await control('GET', '/_emulator/requests')).body.data;
    assert.ok(log.length >= 4);
    checkAgainstSpec(log);
    assert.equal((await control('POST', '/_emulator/requests/clear')).status, 200);
    assert.equal((await control('GET', '/_emulator/requests')).body.data.length, 0);
  });

  test('expiry, session lists, charges and refunds: the requests are valid for the OpenAPI spec', async () => {
    const { cus, sub } = await subscribed();
    const inv = await ok('GET', `/v1/invoices/${sub.latest_invoice}`, { expand: ['charge'] });
    const s = await newSession(cus.id);
    await ok('POST', `/v1/checkout/sessions/${s.id}/expire`, { expand: ['subscription'] });
    await ok('GET', '/v1/checkout/sessions', { customer: cus.id, limit: 2, ending_before: s.id });
    await ok('GET', '/v1/checkout/sessions', { subscription: sub.id, customer_details: { email: 'u@example.com' } });
    await ok('GET', `/v1/charges/${inv.charge.id}`);
    await ok('GET', '/v1/charges', { customer: cus.id, payment_intent: inv.payment_intent });
    await ok('GET', `/v1/payment_intents/${inv.payment_intent}`);
    const re = await ok('POST', '/v1/refunds', { payment_intent: inv.payment_intent, amount: 100, reason: 'requested_by_customer', metadata: { k: 'v' } });
    await ok('POST', '/v1/refunds', { charge: inv.charge.id, reason: 'duplicate' });
    await ok('GET', `/v1/refunds/${re.id}`);
    await ok('GET', '/v1/refunds', { charge: inv.charge.id, limit: 5 });
    await ok('DELETE', `/v1/subscriptions/${sub.id}`, { invoice_now: true, prorate: false });
    const log = (await control('GET', '/_emulator/requests')).body.data;
    const seen = new Set(log.map((r) => `${r.method} ${r.path.replace(/\/(ch|pi|re|cs_test|sub|in)_[A-Za-z0-9_]+/, '/{id}')}`));
    for (const want of ['POST /v1/checkout/sessions/{id}/expire', 'GET /v1/checkout/sessions', 'GET /v1/charges/{id}',
      'GET /v1/charges', 'GET /v1/payment_intents/{id}', 'POST /v1/refunds', 'GET /v1/refunds/{id}', 'GET /v1/refunds',
      'DELETE /v1/subscriptions/{id}']) assert.ok(seen.has(want), want);
    checkAgainstSpec(log);
  });
});

// Checks every logged request's parameters against Stripe's OpenAPI spec (stripe_params.py).
function checkAgainstSpec(log) {
  const templates = {
    cus: '/{customer}', sub: '/{subscription_exposed_id}', cs_test: '/{session}', in: '/{invoice}',
    ch: '/{charge}', pi: '/{intent}', re: '/{refund}',
  };
  for (const r of log) {
    const p = r.path.replace(/\/(cus|sub|cs_test|in|ch|pi|re)_[A-Za-z0-9_]+/, (m, k) => templates[k]);
    const body = r.method === 'GET' ? r.query : r.body;
    const res = spawnSync('python3', [STRIPE_PARAMS_TOOL, '-q', r.method, p, '--form', body], { encoding: 'utf8' });
    assert.equal(res.status, 0, `${r.method} ${p} ${body}: ${res.stdout}${res.stderr}`);
  }
}

describe('webhooks', () => {
  let receiver;
  let received = [];

  before(async () => {
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        received.push({ body, sig: req.headers['stripe-signature'] });
        res.end('ok');
      });
    });
    await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  });
  after(() => receiver.close());

  test('events arrive in order, signed with the configured secret', async () => {
    received = [];
    const url = `http://127.0.0.1:${receiver.address().port}/hook`;
    assert.equal((await control('POST', '/_emulator/webhooks', { url, order: 'ordered', retry_base_ms: 10 })).status, 200);
    await subscribed();
    assert.equal((await control('POST', '/_emulator/webhooks/drain', { timeout_ms: 5000 })).status, 200);
    const stripe = new Stripe('sk_test_x');
    const events = received.map((r) => stripe.webhooks.constructEvent(r.body, r.sig, WHSEC));
    assert.deepEqual(events.map((e) => e.type), ['customer.created', 'customer.subscription.created',
      'invoice.created', 'invoice.finalized', 'invoice.paid', 'invoice.payment_succeeded',
      'checkout.session.completed']);
    assert.throws(() => stripe.webhooks.constructEvent(received[0].body, received[0].sig, 'whsec_wrong'));
    await control('POST', '/_emulator/webhooks', { url: '' });
  });

  test('session expiry and refunds are delivered signed like the others', async () => {
    received = [];
    const url = `http://127.0.0.1:${receiver.address().port}/hook`;
    const { cus, sub } = await subscribed();
    const inv = await ok('GET', `/v1/invoices/${sub.latest_invoice}`);
    assert.equal((await control('POST', '/_emulator/webhooks', { url, order: 'ordered', retry_base_ms: 10 })).status, 200);
    const s = await newSession(cus.id);
    await ok('POST', `/v1/checkout/sessions/${s.id}/expire`);
    await ok('POST', '/v1/refunds', { charge: inv.charge, amount: 500 });
    assert.equal((await control('POST', '/_emulator/webhooks/drain', { timeout_ms: 5000 })).status, 200);
    const stripe = new Stripe('sk_test_x');
    const events = received.map((r) => stripe.webhooks.constructEvent(r.body, r.sig, WHSEC));
    const byType = Object.fromEntries(events.map((e) => [e.type, e]));
    assert.ok(byType['checkout.session.expired'], events.map((e) => e.type).join());
    assert.equal(byType['checkout.session.expired'].data.object.id, s.id);
    assert.equal(byType['checkout.session.expired'].data.object.status, 'expired');
    assert.equal(byType['refund.created'].data.object.amount, 500);
    assert.equal(byType['charge.refunded'].data.object.id, inv.charge);
    assert.equal(byType['charge.refunded'].data.object.amount_refunded, 500);
    await control('POST', '/_emulator/webhooks', { url: '' });
  });
});
