// audit_payments.test.mjs: the payments routes held to the README's words under the faults a
// browser and Stripe bring: double clicks, replays, Stripe failing halfway through a change, and
// Stripe answering what is not a Stripe object. Stripe is the emulator, behind a small proxy of
// this file's own that can fail or garble chosen calls.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  EMULATOR_KEY, SERVICE_KEY, emuControl, errorOf, now, req, run, startEmulator, startServer,
  stopEmulator, stopServer, tmpDir,
} from './lib.mjs';
import { CANCEL, ORIGIN, SUCCESS, T0, billingFlows, paymentsCalls } from './billing_lib.mjs';

const P = '/api/v1/payments';
const WHSEC = 'whsec_audit_payments_0123456789';

let emu;
let proxy;
let srv;
// rules: [{ method, path (RegExp), times, answer(reqInfo) => {status, headers, body} | null }];
// an answer with wait (a promise) is held until it settles.
const rules = [];
const seen = [];

function startProxy(target) {
  return new Promise((resolve) => {
    const s = http.createServer(async (rq, rs) => {
      const chunks = [];
      for await (const c of rq) chunks.push(c);
      const body = Buffer.concat(chunks);
      seen.push({ method: rq.method, url: rq.url, body: body.toString() });
      const rule = rules.find((r) => r.times > 0 && r.method === rq.method && r.path.test(rq.url.split('?')[0]));
      if (rule) {
        rule.times--;
        const a = rule.answer({ method: rq.method, url: rq.url, body: body.toString() });
        if (a.wait) await a.wait; // Stripe slow to answer: until the test lets it go
        if (a.forward) {
          // forward, then hand back what a.forward makes of the answer
          const f = await fetch(target + rq.url, { method: rq.method, headers: rq.headers, body: rq.method === 'GET' ? undefined : body });
          const text = await f.text();
          const out = a.forward(f.status, text);
          rs.writeHead(out.status, { 'content-type': 'application/json', date: f.headers.get('date') || new Date().toUTCString(), ...(out.headers || {}) });
          rs.end(out.body);
          return;
        }
        rs.writeHead(a.status, { 'content-type': 'application/json', 'stripe-should-retry': 'false', ...(a.headers || {}) });
        rs.end(a.body);
        return;
      }
      const headers = { ...rq.headers };
      delete headers.host;
      const f = await fetch(target + rq.url, { method: rq.method, headers, body: rq.method === 'GET' || rq.method === 'DELETE' ? undefined : body });
      const text = await f.text();
      const out = {};
      for (const [k, v] of f.headers) if (!['content-length', 'transfer-encoding', 'connection', 'content-encoding'].includes(k)) out[k] = v;
      rs.writeHead(f.status, out);
      rs.end(text);
    });
    s.listen(0, '127.0.0.1', () => resolve({ s, base: `http://127.0.0.1:${s.address().port}` }));
  });
}

// POST of a JSON body on a connection of its own (no keep-alive pool): { status, body }.
function freshPost(server, p, key, body) {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const rq = http.request(`${server.base}${p}`, {
      method: 'POST', agent: false,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
    }, (rs) => {
      let text = '';
      rs.on('data', (c) => { text += c; });
      rs.on('end', () => {
        let parsed = text;
        try { parsed = JSON.parse(text); } catch { /* keep text */ }
        resolve({ status: rs.statusCode, body: parsed });
      });
    });
    rq.on('error', reject);
    rq.end(data);
  });
}

const fail500 = () => ({ status: 500, body: JSON.stringify({ error: { type: 'api_error', message: 'injected' } }) });

before(async () => {
  emu = await startEmulator({ EMULATOR_WEBHOOK_SECRET: WHSEC });
  proxy = await startProxy(emu.base);
  const dir = tmpDir();
  srv = await startServer({
    STRIPE_SECRET_KEY: EMULATOR_KEY,
    STRIPE_API_BASE: proxy.base,
    STRIPE_WEBHOOK_SECRET: WHSEC,
    STRIPE_PREMIUM_PRICE_ID: 'price_premium_monthly',
    STRIPE_PLUS_PRICE_ID: 'price_plus_monthly',
    STRIPE_PREMIUM_ANNUAL_PRICE_ID: 'price_premium_annual',
    STRIPE_PLUS_ANNUAL_PRICE_ID: 'price_plus_annual',
    PAST_DUE_GRACE_DAYS: '0',
    ENTITLEMENT_CACHE_USERS: '0',
    HTTP_THREADS: '4',
    DATABASE_URL: `sqlite:${path.join(dir, 'subgate.db')}`,
  }, { cwd: dir });
  const r = await emuControl(emu, 'POST', '/_emulator/webhooks', { url: `${srv.base}${P}/webhook`, secret: WHSEC });
  assert.equal(r.status, 200, JSON.stringify(r.body));
});

after(async () => {
  await stopServer(srv);
  await stopEmulator(emu);
  proxy?.s.close();
});

const flows = billingFlows(() => emu);
const { call, ok, subscriber } = paymentsCalls(() => srv, flows);

const checkoutBody = (tier = 'premium') => ({ tier, success_url: SUCCESS, cancel_url: CANCEL });

// The Stripe subscription's live schedule, and the price of its next phase.
async function stripeSchedule(subId) {
  const sub = await flows.stripe('GET', `/v1/subscriptions/${subId}`);
  if (!sub.schedule) return null;
  const id = typeof sub.schedule === 'string' ? sub.schedule : sub.schedule.id;
  const sched = await flows.stripe('GET', `/v1/subscription_schedules/${id}`);
  const price = (phase) => { const p = phase.items[0].price; return typeof p === 'string' ? p : p.id; };
  return { status: sched.status, next: sched.phases.length > 1 ? price(sched.phases[1]) : null };
}

describe('a change Stripe refuses halfway changes nothing, as its answer says', () => {
  test('cancel with a downgrade scheduled, the cancel refused: the downgrade is still there', async () => {
    const user = 'aud_cancel_sched';
    const ctx = await subscriber(user, 'price_plus_monthly');
    await ok(user, 'POST', '/change-plan', { tier: 'premium' });
    await flows.drain();
    rules.push({ method: 'POST', path: new RegExp(`^/v1/subscriptions/${ctx.sub.id}$`), times: 1, answer: fail500 });
    const r = await call(user, 'POST', '/cancel-subscription');
    rules.length = 0;
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.equal(errorOf(r).code, 'stripe_error');
    assert.match(errorOf(r).message, /nothing was changed/);
    await flows.drain();
    const s = await ok(user, 'GET', '/subscription');
    assert.equal(s.tier, 'plus');
    assert.equal(s.cancel_at_period_end, false);
    assert.equal(s.pending_change?.tier, 'premium', `the downgrade is kept: ${JSON.stringify(s.pending_change)}`);
    assert.equal(s.pending_change.effective_at, ctx.sub.current_period_end);
    assert.deepEqual(await stripeSchedule(ctx.sub.id), { status: 'active', next: 'price_premium_monthly' }, 'at Stripe too');
    const again = await ok(user, 'POST', '/cancel-subscription');
    assert.equal(again.cancel_at_period_end, true, 'a retry cancels');
    assert.equal(again.pending_change, null);
  });

  test('cancel now with a downgrade scheduled, the cancel refused: the downgrade is still there', async () => {
    const user = 'aud_cancelnow_sched';
    const ctx = await subscriber(user, 'price_plus_monthly');
    await ok(user, 'POST', '/change-plan', { tier: 'premium' });
    rules.push({ method: 'DELETE', path: new RegExp(`^/v1/subscriptions/${ctx.sub.id}$`), times: 1, answer: fail500 });
    const r = await call(user, 'POST', '/cancel-subscription?immediate=true');
    rules.length = 0;
    assert.equal(r.status, 502, JSON.stringify(r.body));
    await flows.drain();
    const s = await ok(user, 'GET', '/subscription');
    assert.equal(s.status, 'active');
    assert.equal(s.pending_change?.tier, 'premium', `the downgrade is kept: ${JSON.stringify(s.pending_change)}`);
    assert.equal((await stripeSchedule(ctx.sub.id))?.next, 'price_premium_monthly');
  });

  test('an upgrade over a scheduled downgrade, the upgrade refused: the downgrade is still there', async () => {
    const user = 'aud_up_sched';
    const ctx = await subscriber(user, 'price_premium_annual');
    await ok(user, 'POST', '/change-plan', { tier: 'premium', interval: 'month' });
    rules.push({ method: 'POST', path: new RegExp(`^/v1/subscriptions/${ctx.sub.id}$`), times: 1, answer: fail500 });
    const r = await call(user, 'POST', '/change-plan', { tier: 'plus', interval: 'year' });
    rules.length = 0;
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.match(errorOf(r).message, /nothing was changed/);
    await flows.drain();
    const s = await ok(user, 'GET', '/subscription');
    assert.equal(s.tier, 'premium');
    assert.equal(s.interval, 'year');
    assert.equal(s.pending_change?.interval, 'month', `the downgrade is kept: ${JSON.stringify(s.pending_change)}`);
    assert.equal((await stripeSchedule(ctx.sub.id))?.next, 'price_premium_monthly');
    assert.equal((await flows.stripeInvoices(ctx.sub.id)).length, 1, 'nothing charged');
  });
});

describe('Stripe answering what is not a Stripe object', () => {
  test('a created checkout session without a url: 502, and the next ask gets a page to pay', async () => {
    const user = 'aud_session_nourl';
    rules.push({ method: 'POST', path: /^\/v1\/checkout\/sessions$/, times: 1, answer: () => ({ status: 200, body: '{"id":"cs_test_nourl","object":"checkout.session","status":"open"}' }) });
    const r = await call(user, 'POST', '/create-checkout-session', checkoutBody());
    rules.length = 0;
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.equal(errorOf(r).code, 'stripe_error');
    const again = await ok(user, 'POST', '/create-checkout-session', checkoutBody());
    assert.notEqual(again.session_id, 'cs_test_nourl', 'the broken session is not handed back');
    assert.match(again.url, /^http:\/\/127\.0\.0\.1:\d+\/checkout\/cs_test_/);
  });

  for (const [name, body] of [['not JSON', 'garbage'], ['an array', '[]'], ['an object without id', '{}']]) {
    test(`cancel answered ${name}: 502 JSON, the subscription unchanged`, async () => {
      const user = `aud_cmal_${name.replace(/\W/g, '')}`;
      await subscriber(user);
      rules.push({ method: 'DELETE', path: /^\/v1\/subscriptions\//, times: 1, answer: () => ({ status: 200, body }) });
      rules.push({ method: 'POST', path: /^\/v1\/subscriptions\//, times: 1, answer: () => ({ status: 200, body }) });
      const now1 = await call(user, 'POST', '/cancel-subscription?immediate=true');
      const end1 = await call(user, 'POST', '/cancel-subscription');
      rules.length = 0;
      for (const x of [now1, end1]) {
        assert.equal(x.status, 502, JSON.stringify(x.body));
        assert.equal(errorOf(x).code, 'stripe_error');
      }
      const s = await ok(user, 'GET', '/subscription');
      assert.equal(s.tier, 'premium');
      assert.equal(s.status, 'active');
      assert.equal(s.cancel_at_period_end, false);
    });
  }

  test('checkout-success and the portal answered garbage: 502 JSON, nothing stored', async () => {
    const user = 'aud_cs_garbage';
    const { session } = await flows.paidSession(user);
    for (const body of ['garbage', '{}']) {
      rules.push({ method: 'GET', path: /^\/v1\/checkout\/sessions\//, times: 1, answer: () => ({ status: 200, body }) });
      const r = await call(user, 'POST', '/checkout-success', { session_id: session.id });
      rules.length = 0;
      assert.equal(r.status, 502, JSON.stringify(r.body));
      assert.equal(errorOf(r).code, 'stripe_error');
    }
    assert.equal((await ok(user, 'POST', '/checkout-success', { session_id: session.id })).tier, 'premium');
    rules.push({ method: 'POST', path: /billing_portal/, times: 1, answer: () => ({ status: 200, body: '{}' }) });
    const p = await call(user, 'POST', '/customer-portal', { return_url: `${ORIGIN}/x` });
    rules.length = 0;
    assert.equal(p.status, 502, JSON.stringify(p.body));
    assert.equal(errorOf(p).code, 'stripe_error');
  });
});

describe('double clicks, tabs and a checkout paid meanwhile', () => {
  test('three downgrade clicks at once: all answered 200 with the one scheduled change', async () => {
    const user = 'aud_down3';
    const ctx = await subscriber(user, 'price_plus_monthly');
    const rs = await Promise.all(Array.from({ length: 3 }, () => call(user, 'POST', '/change-plan', { tier: 'premium' })));
    for (const r of rs) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.tier, 'plus');
      assert.equal(r.body.pending_change?.tier, 'premium');
    }
    assert.equal(new Set(rs.map((r) => r.body.pending_change.schedule_id)).size, 1, 'one schedule');
    assert.deepEqual(await stripeSchedule(ctx.sub.id), { status: 'active', next: 'price_premium_monthly' });
    assert.equal((await flows.stripeInvoices(ctx.sub.id)).length, 1, 'nothing charged now');
  });

  test('another ask after the open session was paid (no webhook yet): 409 subscription_exists', async () => {
    const user = 'aud_paid_then_ask';
    await emuControl(emu, 'POST', '/_emulator/webhooks', { url: 'http://127.0.0.1:9/none', secret: WHSEC });
    try {
      const a = await ok(user, 'POST', '/create-checkout-session', checkoutBody());
      await flows.payPage(a.url);
      for (let i = 0; i < 2; i++) {
        const r = await call(user, 'POST', '/create-checkout-session', checkoutBody('plus'));
        assert.equal(r.status, 409, JSON.stringify(r.body));
        assert.equal(errorOf(r).code, 'subscription_exists');
      }
      const s = await ok(user, 'POST', '/checkout-success', { session_id: a.session_id });
      assert.equal(s.tier, 'premium');
      const cus = (await flows.stripe('GET', '/v1/customers', { email: `${user}@example.com` })).data;
      assert.equal(cus.length, 1);
      const subs = (await flows.stripe('GET', '/v1/subscriptions', { customer: cus[0].id, status: 'all' })).data;
      assert.equal(subs.length, 1, 'one subscription, paid once');
    } finally {
      await emuControl(emu, 'POST', '/_emulator/webhooks', { url: `${srv.base}${P}/webhook`, secret: WHSEC });
    }
  });
});

function signed(raw) {
  const t = now();
  const v1 = crypto.createHmac('sha256', WHSEC).update(`${t}.${raw}`).digest('hex');
  return { raw, headers: { 'content-type': 'application/json', 'stripe-signature': `t=${t},v1=${v1}` } };
}
const webhook = (raw) => req(srv, 'POST', `${P}/webhook`, signed(raw));
function eventRow(id) {
  const r = run(['events', '--limit', '1000'], { env: { DATABASE_URL: srv.databaseUrl }, cwd: srv.dir });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').map((l) => l.split('\t')).find((row) => row[0] === id);
}

describe('webhooks delivered again', () => {
  test('an event id applied before, delivered with another body: 200 duplicate, nothing changed, still applied', async () => {
    const user = 'aud_dup_body';
    const t = now();
    const sub = (price, extra = {}) => ({
      id: 'sub_auddupbody', object: 'subscription', customer: 'cus_auddupbody', status: 'active',
      current_period_start: t - 60, current_period_end: t + 30 * 86400, cancel_at_period_end: false,
      canceled_at: null, cancel_at: null, trial_end: null, metadata: { user_id: user },
      items: { object: 'list', data: [{ id: 'si_auddupbody', price: { id: price } }] }, ...extra,
    });
    const ev = (object) => JSON.stringify({ id: 'evt_auddupbody', object: 'event', type: 'customer.subscription.updated', created: t, livemode: false, data: { object } });
    const first = await webhook(ev(sub('price_premium_monthly')));
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.duplicate, false);
    for (const other of [sub('price_nobody_sells'), sub('price_premium_monthly', { current_period_end: 'soon' }), sub('price_plus_monthly')]) {
      const again = await webhook(ev(other));
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.duplicate, true);
    }
    const s = await ok(user, 'GET', '/subscription');
    assert.equal(s.tier, 'premium');
    assert.equal(s.price_id, 'price_premium_monthly');
    const row = eventRow('evt_auddupbody');
    assert.equal(row?.[3], 'applied', `still recorded as applied: ${row}`);
  });
});
describe('a webhook waiting for a slow Stripe', () => {
  // On SQLite the hot writes are fibers of one thread: a webhook that called Stripe from there
  // would hold every consume until Stripe answered: its Stripe calls go to threads of their own
  // (request_then), and its answer waits for them.
  test('holds no consume meanwhile: they are answered while its refund waits', async () => {
    const user = 'aud_slow_refund';
    const first = await ok(user, 'POST', '/create-checkout-session', checkoutBody());
    await flows.payPage(first.url);
    await ok(user, 'POST', '/checkout-success', { session_id: first.session_id });
    await flows.drain();
    const cus = (await flows.stripe('GET', `/v1/checkout/sessions/${first.session_id}`)).customer;
    let release;
    const held = new Promise((r) => { release = r; });
    const refunds = () => seen.filter((x) => x.method === 'POST' && x.url === '/v1/refunds').length;
    const before = refunds();
    rules.push({ method: 'POST', path: /^\/v1\/refunds$/, times: 1,
      answer: () => ({ wait: held, forward: (status, text) => ({ status, body: text }) }) });
    try {
      const outside = await flows.stripe('POST', '/v1/checkout/sessions', {
        mode: 'subscription', customer: cus, client_reference_id: user,
        line_items: [{ price: 'price_plus_monthly', quantity: 1 }], success_url: SUCCESS, cancel_url: CANCEL,
        metadata: { user_id: user }, subscription_data: { metadata: { user_id: user } },
      });
      await flows.payPage(outside.url);
      for (let t0 = Date.now(); refunds() === before && Date.now() - t0 < 10000;) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(refunds(), before + 1, 'the second subscription\'s refund reached Stripe, which holds it');
      // On a new connection: a kept-alive one may belong to the serving thread that runs the
      // webhook, and waits with it (as any request of that thread does); a new one is taken by
      // a serving thread that is free.
      const t = Date.now();
      const r = await freshPost(srv, '/api/v1/access/consume', SERVICE_KEY,
        { user_id: 'aud_slow_other', quota: 'ai_minutes', amount: 1 });
      const took = Date.now() - t;
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(took < 2000, `the consume waited ${took} ms for the webhook's Stripe call`);
    } finally {
      release();
      rules.length = 0;
    }
    await flows.drain();
    const pays = await emuControl(emu, 'GET', `/_emulator/customers/${cus}/payments`);
    assert.equal(pays.body.data.filter((x) => x.refunded).length, 1, 'the second one refunded, once');
  });
});

describe('nobody pays twice, with Stripe failing on the way', () => {
  test('a second subscription whose refund fails at first is canceled, then refunded once on the next event', async () => {
    const user = 'aud_twice_refund';
    const first = await ok(user, 'POST', '/create-checkout-session', checkoutBody());
    await flows.payPage(first.url);
    await ok(user, 'POST', '/checkout-success', { session_id: first.session_id });
    await flows.drain();
    const cus = (await flows.stripe('GET', `/v1/checkout/sessions/${first.session_id}`)).customer;
    const refundsTried = () => seen.filter((x) => x.method === 'POST' && x.url === '/v1/refunds').length;
    const refunds0 = refundsTried();
    rules.push({ method: 'POST', path: /^\/v1\/refunds$/, times: 1000, answer: fail500 });
    const outside = await flows.stripe('POST', '/v1/checkout/sessions', {
      mode: 'subscription', customer: cus, client_reference_id: user,
      line_items: [{ price: 'price_plus_monthly', quantity: 1 }], success_url: SUCCESS, cancel_url: CANCEL,
      metadata: { user_id: user }, subscription_data: { metadata: { user_id: user } },
    });
    await flows.payPage(outside.url);
    await flows.drain();
    // Refused at least once before Stripe is let refund: a webhook's answer waits for its try,
    // but one whose delivery the emulator gave up waiting for (5 s) may still be on its way.
    for (const t0 = Date.now(); refundsTried() === refunds0 && Date.now() - t0 < 20000;) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 300)); // the other events' tries, made at the same time
    rules.length = 0;
    assert.ok(refundsTried() > refunds0, 'the refund was tried while Stripe refused it');
    const subs = (await flows.stripe('GET', '/v1/subscriptions', { customer: cus, status: 'all' })).data;
    assert.equal(subs.length, 2);
    const kept = subs.find((x) => x.status === 'active');
    assert.equal(kept?.items.data[0].price.id, 'price_premium_monthly', 'the first is kept, the second canceled');
    let pays = await emuControl(emu, 'GET', `/_emulator/customers/${cus}/payments`);
    let second = pays.body.data.find((x) => x.subscription !== kept.id);
    assert.equal(second.refunded, false, 'Stripe refused the refund');
    // The next event of the user retries it.
    const again = await ok(user, 'POST', '/checkout-success', { session_id: first.session_id });
    assert.equal(again.tier, 'premium');
    for (let t0 = Date.now(); Date.now() - t0 < 5000; await new Promise((r) => setTimeout(r, 100))) {
      pays = await emuControl(emu, 'GET', `/_emulator/customers/${cus}/payments`);
      second = pays.body.data.find((x) => x.subscription !== kept.id);
      if (second.refunded) break;
    }
    assert.equal(second.refunded, true, JSON.stringify(pays.body));
    assert.equal(second.amount_refunded, second.amount, 'refunded once, in full');
    await ok(user, 'POST', '/checkout-success', { session_id: first.session_id });
    const refunds = seen.filter((x) => x.method === 'POST' && x.url === '/v1/refunds');
    assert.ok(refunds.length >= 2);
    assert.equal((await emuControl(emu, 'GET', `/_emulator/customers/${cus}/payments`)).body.data.find((x) => x.subscription !== kept.id).amount_refunded, second.amount);
  });
});

describe('secrets', () => {
  test('after all of the above, neither the Stripe key nor the webhook secret is in the log or the pricing', async () => {
    const pricing = await req(srv, 'GET', `${P}/pricing`);
    assert.equal(pricing.status, 200);
    for (const secret of [EMULATOR_KEY, WHSEC]) {
      assert.ok(!pricing.text.includes(secret), 'not in the pricing');
      assert.ok(!srv.log.includes(secret), `${secret.slice(0, 6)}... not in the log`);
    }
  });
});
