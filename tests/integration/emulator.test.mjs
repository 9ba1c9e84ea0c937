// emulator.test.mjs: the Stripe emulator on its own, over loopback: Stripe's wire format and
// errors, idempotency, hosted checkout with test cards, subscriptions, invoices, test clocks,
// the billing portal, faults, the control API, and signed webhooks checked with Stripe's SDK.
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { stripeForm } from './lib.mjs';

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
    assert.deepEqual(types.slice(-3), ['customer.subscription.updated', 'customer.subscription.updated',
      'customer.subscription.deleted']);
    assert.ok(events.at(-3).data.previous_attributes.items);
  });

  test('another customer\'s subscription is refused', async () => {
    const { sub } = await subscribed();
    const other = await newCustomer();
    const ps = await portal(other.id);
    assert.equal((await page('POST', `/portal/${ps.id}/cancel_now`, { subscription: sub.id })).status, 404);
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
    assert.equal((await ok('GET', '/v1/prices')).data.length, 2);
  });

  test('the request log holds what clients sent, valid for the OpenAPI spec', async () => {
    await subscribed();
    await ok('GET', '/v1/subscriptions', { status: 'all', limit: 3 });
    const log = (await control('GET', '/_emulator/requests')).body.data;
    assert.ok(log.length >= 4);
    for (const r of log) {
      const p = r.path.replace(/\/(cus|sub|cs_test|in)_[A-Za-z0-9_]+/, (m, k) => ({
        cus: '/{customer}', sub: '/{subscription_exposed_id}', cs_test: '/{session}', in: '/{invoice}',
      })[k]);
      const body = r.method === 'GET' ? r.query : r.body;
      const res = spawnSync('python3', ['/work/shared/tools/stripe_params.py', '-q', r.method, p, '--form', body], { encoding: 'utf8' });
      assert.equal(res.status, 0, `${r.method} ${p} ${body}: ${res.stdout}${res.stderr}`);
    }
    assert.equal((await control('POST', '/_emulator/requests/clear')).status, 200);
    assert.equal((await control('GET', '/_emulator/requests')).body.data.length, 0);
  });
});

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
});
