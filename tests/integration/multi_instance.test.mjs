// multi_instance.test.mjs: two subgate processes sharing one PostgreSQL database (issue #6
// item 3): across them, quotas are exact, a webhook event is applied once, concurrent first
// checkouts make one Stripe customer, and what one instance stores the other sees within the
// entitlement cache's bound (NOTIFY: milliseconds; the TTL at the latest).
// Needs SUBGATE_TEST_PG_URL (the maintenance URL of a throwaway server: scripts/pg.sh start);
// skipped without it.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  PG_URL, SERVICE_KEY, createPgDatabase, emuControl, now, req, run, startEmulator, startServer,
  stopEmulator, stopServer, stripeApi, userToken,
} from './lib.mjs';

const P = '/api/v1/payments';
const WHSEC = 'whsec_multi_instance_0123456789';
const PREMIUM = 'price_premium_monthly';
const ORIGIN = 'http://localhost:3000';
const SUCCESS = `${ORIGIN}/billing/success?session_id={CHECKOUT_SESSION_ID}`;
const CANCEL = `${ORIGIN}/billing/cancel`;
const SKIP = PG_URL ? false : 'SUBGATE_TEST_PG_URL is not set: two instances need a shared PostgreSQL '
  + '(start one with scripts/pg.sh start DIR PORT and export the URL it prints)';

describe('two instances on one PostgreSQL database', { skip: SKIP }, () => {
  let emu;
  let env;
  let a;
  let b;

  before(async () => {
    emu = await startEmulator({ EMULATOR_WEBHOOK_SECRET: WHSEC });
    env = {
      DATABASE_URL: createPgDatabase(),
      STRIPE_SECRET_KEY: 'sk_test_emulator',
      STRIPE_API_BASE: emu.base,
      STRIPE_WEBHOOK_SECRET: WHSEC,
      STRIPE_PREMIUM_PRICE_ID: PREMIUM,
      STRIPE_PLUS_PRICE_ID: 'price_plus_monthly',
      HTTP_THREADS: '8',
    };
    // Started together: both migrate the empty database at once (an advisory lock serialises them).
    [a, b] = await Promise.all([startServer(env), startServer(env)]);
  });

  after(async () => {
    await stopServer(a);
    await stopServer(b);
    await stopEmulator(emu);
  });

  const both = () => [a, b];
  // What one instance wrote, the other's entitlement cache drops when PostgreSQL's NOTIFY
  // arrives (milliseconds) and at the latest after ENTITLEMENT_CACHE_TTL_MS (1000 ms here).
  const eventually = async (check, withinMs = 1500) => {
    const start = performance.now();
    for (;;) {
      try {
        return await check();
      } catch (e) {
        if (performance.now() - start > withinMs) throw e;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  const auth = (user) => userToken(user, { exp: now() + 3600 });

  test('both are ready on the same database', async () => {
    for (const s of both()) {
      const r = await req(s, 'GET', '/readyz');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.status, 'ready');
      assert.ok(r.body.schema_version >= 1);
    }
    assert.equal(a.databaseUrl, b.databaseUrl);
  });

  test('200 concurrent consumes of 1 AI minute across both: exactly 30 granted', async () => {
    const user = 'mi_storm';
    const rs = await Promise.all(Array.from({ length: 200 }, (_, i) =>
      req(both()[i % 2], 'POST', '/api/v1/access/consume', {
        token: SERVICE_KEY, body: { user_id: user, quota: 'ai_minutes', amount: 1 },
      })));
    const other = rs.filter((r) => r.status !== 200 && r.status !== 402);
    assert.deepEqual(other.map((r) => [r.status, r.body]), []);
    assert.equal(rs.filter((r) => r.status === 200).length, 30);
    assert.equal(rs.filter((r) => r.status === 402).length, 170);
    // Which instance wins the 30 is timing: with group commit one instance's batch can take
    // them all. Both answered every request of theirs (200 or 402, checked above).
    for (const s of both()) {
      const u = await req(s, 'GET', `${P}/usage`, { token: userToken(user) });
      assert.equal(u.body.ai_minutes_used, 30);
      assert.equal(u.body.quotas.ai_minutes.remaining, 0);
    }
  });

  test('one signed webhook event delivered to both at once is applied once', async () => {
    const user = 'mi_hook';
    const t = now();
    const id = `evt_mi_${crypto.randomBytes(6).toString('hex')}`;
    const body = JSON.stringify({
      id, object: 'event', type: 'customer.subscription.created', created: t, livemode: false,
      data: {
        object: {
          id: 'sub_mi_hook', object: 'subscription', customer: 'cus_mi_hook', status: 'active',
          current_period_start: t - 60, current_period_end: t + 30 * 86400,
          cancel_at_period_end: false, canceled_at: null, cancel_at: null, trial_end: null,
          metadata: { user_id: user },
          items: { object: 'list', data: [{ id: 'si_mi_hook', price: { id: PREMIUM } }] },
        },
      },
    });
    const sig = crypto.createHmac('sha256', WHSEC).update(`${t}.${body}`).digest('hex');
    const headers = { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': `t=${t},v1=${sig}` };
    // Ten deliveries to each instance, all in flight together.
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      req(both()[i % 2], 'POST', `${P}/webhook`, { raw: body, headers })));
    for (const r of rs) assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(rs.filter((r) => r.body.duplicate === false).length, 1, 'applied by exactly one delivery');
    assert.equal(rs.filter((r) => r.body.duplicate === true).length, 19);
    const ev = run(['events', '--limit', '1000'], { env: { DATABASE_URL: a.databaseUrl } });
    assert.equal(ev.status, 0, ev.stderr);
    const row = ev.stdout.split('\n').map((l) => l.split('\t')).find((c) => c[0] === id);
    assert.ok(row, `${id} listed by subgate events`);
    assert.equal(row[3], 'applied');
    assert.equal(row[4], '1', 'attempts: applied once');
    for (const s of both()) {
      await eventually(async () => {
        const r = await req(s, 'GET', `${P}/subscription`, { token: userToken(user) });
        assert.equal(r.body.tier, 'premium');
        assert.equal(r.body.status, 'active');
      });
    }
  });

  const checkout = (srv, user) => req(srv, 'POST', `${P}/create-checkout-session`, {
    token: auth(user), body: { tier: 'premium', success_url: SUCCESS, cancel_url: CANCEL },
  });

  test('20 concurrent first checkouts of one user across both make one Stripe customer', async () => {
    const user = 'mi_buyer';
    // Stripe slowed down: every request lands between "no stored customer" and "stored".
    await emuControl(emu, 'POST', '/_emulator/requests/clear');
    await emuControl(emu, 'POST', '/_emulator/faults', { mode: 'timeout', percent: 100, delay_ms: 150 });
    let rs;
    try {
      rs = await Promise.all(Array.from({ length: 20 }, (_, i) => checkout(both()[i % 2], user)));
    } finally {
      await emuControl(emu, 'POST', '/_emulator/faults', { mode: 'none' });
    }
    for (const r of rs) assert.equal(r.status, 200, JSON.stringify(r.body));
    const log = await emuControl(emu, 'GET', '/_emulator/requests');
    const creates = log.body.data.filter((x) => x.method === 'POST' && x.path === '/v1/customers');
    assert.ok(creates.length > 1, `the race happened: ${creates.length} customer creations were asked`);
    const cus = await stripeApi(emu, 'GET', '/v1/customers', { email: `${user}@example.com`, limit: 100 });
    assert.equal(cus.status, 200);
    assert.equal(cus.body.data.length, 1, 'one Stripe customer');
    const sessions = await Promise.all(rs.map((r) => stripeApi(emu, 'GET', `/v1/checkout/sessions/${r.body.session_id}`)));
    for (const s of sessions) assert.equal(s.body.customer, cus.body.data[0].id);
    assert.equal(new Set(rs.map((r) => r.body.session_id)).size, 1, 'the same ask on both: one session');
  });

  test('ten different asks with a trial across both at once: one open session, one trial', async () => {
    const user = 'mi_tabs';
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => req(both()[i % 2], 'POST', `${P}/create-checkout-session`, {
      token: auth(user),
      body: { tier: i % 3 ? 'premium' : 'plus', success_url: `${ORIGIN}/ok?tab=${i}&session_id={CHECKOUT_SESSION_ID}`, cancel_url: CANCEL, trial_days: 7 },
    })));
    for (const r of rs) assert.ok(r.status === 200 || (r.status === 409 && r.body.error.code === 'checkout_busy'), JSON.stringify(r.body));
    const ok = rs.filter((r) => r.status === 200);
    const states = await Promise.all(ok.map((r) => stripeApi(emu, 'GET', `/v1/checkout/sessions/${r.body.session_id}`)));
    const open = states.filter((s) => s.body.status === 'open');
    assert.ok(open.length <= 1, `at most one open session: ${open.length}`);
    const trials = ok.filter((r, i) => states[i].body.status === 'open' && r.body.trial.granted > 0);
    assert.ok(trials.length <= 1, 'at most one open session carries the trial');
    const last = await req(b, 'POST', `${P}/create-checkout-session`, {
      token: auth(user), body: { tier: 'premium', success_url: SUCCESS, cancel_url: CANCEL, trial_days: 7 },
    });
    assert.equal(last.status, 200, JSON.stringify(last.body));
    const cus = (await stripeApi(emu, 'GET', `/v1/checkout/sessions/${last.body.session_id}`)).body.customer;
    const all = await stripeApi(emu, 'GET', '/v1/checkout/sessions', { customer: cus, limit: 100 });
    assert.equal(all.body.data.filter((s) => s.status === 'open').length, 1, 'then exactly one open');
    assert.equal(last.body.trial.granted, 7, 'holding the one trial');
  });

  test('a checkout started on A and completed through B is seen by both', async () => {
    const user = 'mi_cross';
    const started = await checkout(a, user);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    const paid = await fetch(`${started.body.url}/pay`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ card: '4242424242424242' }).toString(),
      redirect: 'manual',
    });
    assert.equal(paid.status, 303);
    const sessionId = new URL(paid.headers.get('location')).searchParams.get('session_id');
    assert.equal(sessionId, started.body.session_id);
    const done = await req(b, 'POST', `${P}/checkout-success`, { token: auth(user), body: { session_id: sessionId } });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.tier, 'premium');
    for (const s of both()) {
      await eventually(async () => {
        const r = await req(s, 'GET', `${P}/subscription`, { token: auth(user) });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.equal(r.body.tier, 'premium');
        assert.equal(r.body.status, 'active');
        assert.equal(r.body.price_id, PREMIUM);
      });
    }
  });
});
