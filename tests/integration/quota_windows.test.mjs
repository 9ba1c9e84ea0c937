// quota_windows.test.mjs: the month and billing_period quota windows (issue #15 item 2) with the
// server in a time zone far from UTC (Pacific/Kiritimati, UTC+14): a free user's month window is
// the UTC calendar month and refuses past its limit; a billing_period quota without a
// subscription counts by the month and says so; a subscriber's billing_period quota follows the
// subscription (a Stripe emulator test clock at the real time) and starts again at zero when the
// renewal arrives by webhook.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DAY, billingFlows, startBilling, stopBilling } from './billing_lib.mjs';
import { SERVICE_KEY, errorOf, now, req, tmpDir, userToken } from './lib.mjs';

const A = '/api/v1/access';
const WHSEC = 'whsec_quota_windows_integration';
const TZ = 'Pacific/Kiritimati';
const FREE = { exports: 3, reports: 4 };
const PREMIUM = { exports: null, reports: 6 };

// The catalogue: docs/tiers.example.json with its quotas replaced by a month and a billing
// period one (prices filled from STRIPE_*_PRICE_ID by startBilling).
function tiersFile() {
  const cat = JSON.parse(fs.readFileSync(path.resolve('docs/tiers.example.json'), 'utf8'));
  cat.quotas = [
    { id: 'exports', unit: 'export', window: 'month' },
    { id: 'reports', unit: 'report', window: 'billing_period' },
  ];
  for (const t of cat.tiers) t.limits = t.id === 'free' ? FREE : PREMIUM;
  const file = path.join(tmpDir(), 'tiers.json');
  fs.writeFileSync(file, JSON.stringify(cat));
  const rules = path.join(tmpDir(), 'gate.json');
  fs.writeFileSync(rules, JSON.stringify([{ prefix: '/api/reports/', feature: 'basic_lessons', quota: 'reports', amount: 1 }]));
  return { TIERS_FILE: file, GATE_RULES_FILE: rules };
}

// The UTC calendar month holding t (Unix seconds), from Date.UTC: [start, end).
function utcMonth(t) {
  const d = new Date(t * 1000);
  return [Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) / 1000,
    Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / 1000];
}

let emu;
let srv;
const { stripe, drain, advance, payPage } = billingFlows(() => emu);

before(async () => {
  ({ emu, srv } = await startBilling(WHSEC, { TZ, ...tiersFile() }));
});

after(async () => stopBilling({ emu, srv }));

const usage = async (user) => {
  const r = await req(srv, 'GET', `${A}/usage?user_id=${encodeURIComponent(user)}`, { token: SERVICE_KEY });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
};
const consume = (user, quota, amount) =>
  req(srv, 'POST', `${A}/consume`, { token: SERVICE_KEY, body: { user_id: user, quota, amount } });

// Runs f, whose answer shows the month holding the time it ran; the month before and after (one
// of them, unless the month turned meanwhile).
async function inMonth(f) {
  const before = utcMonth(now());
  const r = await f();
  const afterM = utcMonth(now());
  return { r, months: [before, afterM] };
}

const assertMonth = (q, months, what) => assert.ok(
  months.some(([s, e]) => q.window_start === s && q.resets_at === e),
  `${what}: ${q.window_start}..${q.resets_at} is not the UTC month ${JSON.stringify(months)}`,
);

describe('the server runs far from UTC', () => {
  test(`${TZ} is a real zone here (+14:00), so the test means something`, () => {
    const r = spawnSync('date', ['+%z'], { env: { TZ }, encoding: 'utf8' });
    assert.equal(r.stdout.trim(), '+1400');
  });
});

describe('month window', () => {
  const user = 'qw_free';

  test('a free user sees the UTC calendar month, from Date.UTC', async () => {
    const { r: b, months } = await inMonth(() => usage(user));
    assert.equal(b.tier, 'free');
    assert.deepEqual(Object.keys(b.quotas), ['exports', 'reports']);
    const q = b.quotas.exports;
    assert.equal(q.window, 'month');
    assert.equal(q.used, 0);
    assert.equal(q.limit, 3);
    assert.equal(q.remaining, 3);
    assert.equal('window_fallback' in q, false, 'a month quota falls back to nothing');
    assertMonth(q, months, 'exports');
  });

  test('consume up to the limit, then 402 naming the month end', async () => {
    let r = await consume(user, 'exports', 2);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.window, 'month');
    assert.equal(r.body.remaining, 1);
    assert.deepEqual(Object.keys(r.body), Object.keys(r.body).sort(), 'consume keys stay sorted');
    ({ r } = await inMonth(() => consume(user, 'exports', 1)));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.remaining, 0);
    const { r: refused, months } = await inMonth(() => consume(user, 'exports', 1));
    assert.equal(refused.status, 402, JSON.stringify(refused.body));
    const e = errorOf(refused);
    assert.equal(e.code, 'quota_exceeded');
    assert.equal(e.used, 3);
    assert.ok(months.some(([, end]) => e.resets_at === end), `resets_at ${e.resets_at}`);
    assert.match(e.message, /this month/);
    assert.equal((await usage(user)).quotas.exports.used, 3);
  });
});

describe('billing_period window without a subscription', () => {
  const user = 'qw_nosub';

  test('counts by the UTC month and says so', async () => {
    const { r: b, months } = await inMonth(() => usage(user));
    const q = b.quotas.reports;
    assert.deepEqual(Object.keys(q), ['used', 'limit', 'remaining', 'window', 'window_fallback', 'window_start', 'resets_at']);
    assert.equal(q.window, 'billing_period');
    assert.equal(q.window_fallback, 'month');
    assertMonth(q, months, 'reports');
  });

  test('consume says the fallback too, in its sorted keys', async () => {
    const { r, months } = await inMonth(() => consume(user, 'reports', 4));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(Object.keys(r.body), Object.keys(r.body).sort());
    assert.equal(r.body.window, 'billing_period');
    assert.equal(r.body.window_fallback, 'month');
    assertMonth(r.body, months, 'consume');
    const refused = await consume(user, 'reports', 1);
    assert.equal(refused.status, 402);
    assert.equal(errorOf(refused).remaining, 0);
  });
});

describe('billing_period window of a subscriber', () => {
  const user = 'qw_sub';
  let clock;
  let sub;

  test('follows the subscription bought on a test clock at the real time', async () => {
    const t0 = now();
    clock = await stripe('POST', '/v1/test_helpers/test_clocks', { frozen_time: t0 });
    const cus = await stripe('POST', '/v1/customers', { email: `${user}@example.com`, metadata: { user_id: user }, test_clock: clock.id });
    const session = await stripe('POST', '/v1/checkout/sessions', {
      mode: 'subscription', customer: cus.id, client_reference_id: user,
      line_items: [{ price: 'price_premium_monthly', quantity: 1 }],
      success_url: 'http://localhost:3000/ok?session_id={CHECKOUT_SESSION_ID}', cancel_url: 'http://localhost:3000/no',
      metadata: { user_id: user }, subscription_data: { metadata: { user_id: user } },
    });
    await payPage(session.url);
    const r = await req(srv, 'POST', '/api/v1/payments/checkout-success', { token: userToken(user, { exp: now() + 3600 }), body: { session_id: session.id } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await drain();
    sub = r.body;
    assert.equal(sub.tier, 'premium');
    assert.ok(sub.current_period_start <= now() && now() < sub.current_period_end, 'the period holds now');
    const q = (await usage(user)).quotas.reports;
    assert.deepEqual(q, {
      used: 0, limit: 6, remaining: 6, window: 'billing_period',
      window_start: sub.current_period_start, resets_at: sub.current_period_end,
    });
  });

  test('consume and the gate count in the period', async () => {
    const r = await consume(user, 'reports', 4);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.window_start, sub.current_period_start);
    assert.equal(r.body.resets_at, sub.current_period_end);
    assert.equal('window_fallback' in r.body, false);
    const g = await req(srv, 'GET', `${A}/gate`, { token: userToken(user, { exp: now() + 3600 }), headers: { 'x-original-uri': '/api/reports/new' } });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    assert.equal(g.headers.get('x-subgate-remaining'), '1');
    assert.equal(g.headers.get('x-subgate-resets-at'), String(sub.current_period_end));
    const u = (await usage(user)).quotas;
    assert.equal(u.reports.used, 5);
    assert.equal(u.exports.window, 'month', 'the month quota stays the calendar month');
    assert.equal(u.exports.limit, null);
  });

  test('the renewal (by webhook) starts a new period at zero', async () => {
    const oldEnd = sub.current_period_end;
    await advance(clock, oldEnd + DAY);
    const s = await req(srv, 'GET', '/api/v1/payments/subscription', { token: userToken(user, { exp: now() + 3600 }) });
    assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.equal(s.body.tier, 'premium');
    assert.equal(s.body.current_period_start, oldEnd, 'the renewal arrived');
    assert.ok(s.body.current_period_end > oldEnd + 27 * DAY);
    const q = (await usage(user)).quotas.reports;
    assert.deepEqual(q, {
      used: 0, limit: 6, remaining: 6, window: 'billing_period',
      window_start: oldEnd, resets_at: s.body.current_period_end,
    });
    const r = await consume(user, 'reports', 6);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.window_start, oldEnd);
    assert.equal((await consume(user, 'reports', 1)).status, 402);
  });
});
