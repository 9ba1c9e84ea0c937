// access.test.mjs: usage, check, consume and track over HTTP (SPEC §3 GET /usage, §4): bad
// input, idempotency keys, and the concurrency guarantees of issue #5 (one and two processes).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PLUS_PRICE, WEBHOOK_SECRET, subscribe } from './access_lib.mjs';
import { SERVICE_KEY, errorOf, now, req, startServer, stopServer, tmpDir, userToken } from './lib.mjs';

const A = '/api/v1/access';

const ENV = { STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_PLUS_PRICE_ID: PLUS_PRICE, HTTP_THREADS: '4' };
const consume = (srv, body, headers = {}) =>
  req(srv, 'POST', `${A}/consume`, { token: SERVICE_KEY, body, headers });

let srv;
before(async () => { srv = await startServer(ENV); });
after(async () => { await stopServer(srv); });

// The hot answers are written without a tree (base/jw.h): their bytes stay what they were, compact
// JSON with the members in this order (consume's sorted), whatever the values.
describe('answer bytes', () => {
  const exact = (r, keys, what) => {
    assert.equal(r.text, JSON.stringify(r.body), `${what}: compact, nothing escaped differently`);
    assert.deepEqual(Object.keys(r.body), keys, `${what}: member order`);
  };
  const QUOTA = ['used', 'limit', 'remaining', 'window', 'window_start', 'resets_at'];
  test('check, usage, consume, track, refund and gate keep their member order', async () => {
    const user = 'u_bytes "q\\ é';
    const tok = userToken(user);
    const check = await req(srv, 'GET', `${A}/check?feature=custom_ai`, { token: tok });
    exact(check, ['allowed', 'user_id', 'feature', 'tier', 'required_tier', 'reason'], 'check');
    assert.equal(check.body.user_id, user);
    assert.equal(check.body.required_tier, 'plus');
    const usage = await req(srv, 'GET', '/api/v1/payments/usage', { token: tok });
    exact(usage, ['tier', 'quotas', 'can_use_ai', 'ai_minutes_used', 'ai_minutes_limit', 'ai_minutes_resets_at',
      'can_start_scenario', 'scenarios_completed', 'scenarios_limit', 'scenarios_resets_at'], 'usage');
    assert.deepEqual(Object.keys(usage.body.quotas), ['ai_minutes', 'scenarios']);
    for (const q of Object.values(usage.body.quotas)) assert.deepEqual(Object.keys(q), QUOTA);
    const read = await req(srv, 'GET', `${A}/usage?user_id=${encodeURIComponent(user)}`, { token: SERVICE_KEY });
    exact(read, ['user_id', 'tier', 'quotas'], 'service usage');
    for (const q of Object.values(read.body.quotas)) assert.deepEqual(Object.keys(q), QUOTA);
    const sorted = (flag) => ['amount', flag, 'limit', 'quota', 'remaining', 'resets_at', 'tier', 'used', 'user_id',
      'window', 'window_start'].sort();
    const c = await consume(srv, { user_id: user, quota: 'ai_minutes', amount: 2 });
    exact(c, sorted('granted'), 'consume');
    const t = await req(srv, 'POST', `${A}/track`, { token: SERVICE_KEY, body: { user_id: user, quota: 'ai_minutes', amount: 1 } });
    exact(t, sorted('recorded'), 'track');
    const f = await req(srv, 'POST', `${A}/refund`, { token: SERVICE_KEY, body: { user_id: user, quota: 'ai_minutes', amount: 1 } });
    exact(f, sorted('refunded'), 'refund');
    assert.equal(f.body.used, 2);
    const g = await req(srv, 'GET', `${A}/gate`, { token: tok, headers: { 'x-original-uri': '/api/ai/chat', 'x-original-method': 'POST' } });
    exact(g, ['allowed', 'reason', 'tier'], 'gate');
  });
});

describe('usage', () => {
  test('a new free user sees the original shape plus every quota', async () => {
    const r = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken('u_usage') });
    assert.equal(r.status, 200);
    const b = r.body;
    assert.equal(b.tier, 'free');
    assert.equal(b.can_use_ai, true);
    assert.equal(b.can_start_scenario, true);
    assert.equal(b.ai_minutes_used, 0);
    assert.equal(b.ai_minutes_limit, 30);
    assert.equal(b.scenarios_completed, 0);
    assert.equal(b.scenarios_limit, 5);
    assert.equal(b.quotas.ai_minutes.window, 'day');
    assert.equal(b.quotas.ai_minutes.remaining, 30);
    assert.equal(b.quotas.ai_minutes.resets_at % 86400, 0);
    assert.ok(b.quotas.ai_minutes.resets_at > now());
    assert.equal(b.quotas.scenarios.window, 'week');
    // Monday 00:00 UTC: 1970-01-05 was a Monday.
    assert.equal((b.quotas.scenarios.resets_at - 4 * 86400) % (7 * 86400), 0);
  });
  test('usage follows consumption; a plus user is unlimited', async () => {
    assert.equal((await consume(srv, { user_id: 'u_usage2', quota: 'ai_minutes', amount: 7 })).status, 200);
    let r = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken('u_usage2') });
    assert.equal(r.body.ai_minutes_used, 7);
    assert.equal(r.body.quotas.ai_minutes.remaining, 23);
    await subscribe(srv, 'u_usage_plus');
    r = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken('u_usage_plus') });
    assert.equal(r.body.tier, 'plus');
    assert.equal(r.body.ai_minutes_limit, null);
    assert.equal(r.body.quotas.ai_minutes.remaining, null);
    assert.equal(r.body.can_use_ai, true);
  });
  test('a service key cannot read /usage (it names no user)', async () => {
    const r = await req(srv, 'GET', '/api/v1/payments/usage', { token: SERVICE_KEY });
    assert.equal(r.status, 401);
  });
});

describe('check', () => {
  const cases = [
    { name: 'free user, free feature', user: 'u_chk', feature: 'ai_conversation', allowed: true, required: 'free', reason: 'allowed' },
    { name: 'free user, plus feature', user: 'u_chk', feature: 'business_german', allowed: false, required: 'plus', reason: 'not_in_tier' },
    { name: 'free user, premium feature', user: 'u_chk', feature: 'unlimited_ai', allowed: false, required: 'premium', reason: 'not_in_tier' },
  ];
  for (const c of cases) {
    test(`${c.name} (user token and service key agree)`, async () => {
      const q = `${A}/check?feature=${c.feature}`;
      const mine = await req(srv, 'GET', q, { token: userToken(c.user) });
      const svc = await req(srv, 'GET', `${q}&user_id=${c.user}`, { token: SERVICE_KEY });
      for (const r of [mine, svc]) {
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.equal(r.body.allowed, c.allowed);
        assert.equal(r.body.tier, 'free');
        assert.equal(r.body.required_tier, c.required);
        assert.equal(r.body.reason, c.reason);
        assert.equal(r.body.feature, c.feature);
      }
    });
  }
  test('a plus subscriber may use business_german', async () => {
    await subscribe(srv, 'u_chk_plus');
    const r = await req(srv, 'GET', `${A}/check?feature=business_german`, { token: userToken('u_chk_plus') });
    assert.equal(r.body.allowed, true);
    assert.equal(r.body.tier, 'plus');
  });
  const bad = [
    { name: 'unknown feature', q: '?feature=teleport', token: () => userToken('u_chk'), status: 400, param: 'feature' },
    { name: 'missing feature', q: '', token: () => userToken('u_chk'), status: 400, param: 'feature' },
    { name: 'unknown parameter', q: '?feature=basic_lessons&x=1', token: () => userToken('u_chk'), status: 400, param: 'x' },
    { name: 'a user asking about another user', q: '?feature=basic_lessons&user_id=someone_else', token: () => userToken('u_chk'), status: 403 },
    { name: 'a service naming no user', q: '?feature=basic_lessons', token: () => SERVICE_KEY, status: 400, param: 'user_id' },
    { name: 'no credentials', q: '?feature=basic_lessons', token: () => undefined, status: 401 },
    { name: 'a wrong service key', q: '?feature=basic_lessons&user_id=u', token: () => 'svc_wrong_key_0123456789abc', status: 401 },
  ];
  for (const b of bad) {
    test(`refuses ${b.name}`, async () => {
      const r = await req(srv, 'GET', `${A}/check${b.q}`, { token: b.token() });
      assert.equal(r.status, b.status, JSON.stringify(r.body));
      const e = errorOf(r);
      if (b.param) assert.equal(e.param, b.param);
    });
  }
});

describe('consume and track', () => {
  test('grants until the limit, then 402 with nothing recorded', async () => {
    let r = await consume(srv, { user_id: 'u_lim', quota: 'ai_minutes', amount: 29 });
    assert.equal(r.status, 200);
    assert.deepEqual([r.body.granted, r.body.used, r.body.limit, r.body.remaining], [true, 29, 30, 1]);
    assert.ok(r.body.resets_at > now());
    r = await consume(srv, { user_id: 'u_lim', quota: 'ai_minutes', amount: 2 });
    assert.equal(r.status, 402);
    const e = errorOf(r);
    assert.equal(e.code, 'quota_exceeded');
    assert.equal(e.used, 29);
    assert.equal(e.limit, 30);
    assert.match(e.message, /29 of 30/);
    r = await consume(srv, { user_id: 'u_lim', quota: 'ai_minutes', amount: 1 });
    assert.equal(r.status, 200);
    assert.equal(r.body.used, 30);
    assert.equal(r.body.remaining, 0);
  });
  test('an unlimited tier is recorded but never refused', async () => {
    await subscribe(srv, 'u_unl');
    const r = await consume(srv, { user_id: 'u_unl', quota: 'ai_minutes', amount: 1000 });
    assert.equal(r.status, 200);
    assert.equal(r.body.limit, null);
    assert.equal(r.body.used, 1000);
    const u = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken('u_unl') });
    assert.equal(u.body.ai_minutes_used, 1000);
  });
  test('track records past the limit without refusing', async () => {
    const t = (amount) => req(srv, 'POST', `${A}/track`, { token: SERVICE_KEY, body: { user_id: 'u_trk', quota: 'scenarios', amount } });
    let r = await t(5);
    assert.equal(r.status, 200);
    assert.equal(r.body.recorded, true);
    r = await t(2);
    assert.equal(r.status, 200);
    assert.equal(r.body.used, 7);
    assert.equal(r.body.remaining, 0);
    r = await consume(srv, { user_id: 'u_trk', quota: 'scenarios', amount: 1 });
    assert.equal(r.status, 402);
  });
  const bad = [
    { name: 'unknown quota', body: { user_id: 'u_bad', quota: 'gpu_hours', amount: 1 }, status: 400, param: 'quota' },
    { name: 'a missing amount', body: { user_id: 'u_bad', quota: 'ai_minutes' }, status: 400, param: 'amount' },
    { name: 'a null amount', body: { user_id: 'u_bad', quota: 'ai_minutes', amount: null }, status: 400, param: 'amount' },
    { name: 'a string amount', body: { user_id: 'u_bad', quota: 'ai_minutes', amount: '1' }, status: 400, param: 'amount' },
    { name: 'zero amount', body: { user_id: 'u_bad', quota: 'ai_minutes', amount: 0 }, status: 400, param: 'amount' },
    { name: 'negative amount', body: { user_id: 'u_bad', quota: 'ai_minutes', amount: -5 }, status: 400, param: 'amount' },
    { name: 'huge amount', body: { user_id: 'u_bad', quota: 'ai_minutes', amount: 1000001 }, status: 400, param: 'amount' },
    { name: 'fractional amount', body: { user_id: 'u_bad', quota: 'ai_minutes', amount: 1.5 }, status: 400, param: 'amount' },
    { name: 'missing user_id', body: { quota: 'ai_minutes', amount: 1 }, status: 400, param: 'user_id' },
    { name: 'empty user_id', body: { user_id: '', quota: 'ai_minutes', amount: 1 }, status: 400, param: 'user_id' },
    { name: 'unknown field', body: { user_id: 'u_bad', quota: 'ai_minutes', amount: 1, force: true }, status: 400 },
    { name: 'a user token', body: { user_id: 'u_bad', quota: 'ai_minutes', amount: 1 }, token: () => userToken('u_bad'), status: 403 },
    { name: 'no credentials', body: { user_id: 'u_bad', quota: 'ai_minutes', amount: 1 }, token: () => undefined, status: 401 },
  ];
  for (const path of ['consume', 'track']) {
    for (const b of bad) {
      test(`${path} refuses ${b.name}, recording nothing`, async () => {
        const token = b.token ? b.token() : SERVICE_KEY;
        const r = await req(srv, 'POST', `${A}/${path}`, { token, body: b.body });
        assert.equal(r.status, b.status, JSON.stringify(r.body));
        const e = errorOf(r);
        if (b.param) assert.equal(e.param, b.param);
      });
    }
  }
  test('the refused requests above recorded nothing', async () => {
    const u = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken('u_bad') });
    assert.equal(u.body.ai_minutes_used, 0);
  });
});

describe('idempotency keys', () => {
  test('a retry is answered as the first time and counts once', async () => {
    const h = { 'idempotency-key': 'retry-1' };
    const a = await consume(srv, { user_id: 'u_idem', quota: 'ai_minutes', amount: 3 }, h);
    const b = await consume(srv, { user_id: 'u_idem', quota: 'ai_minutes', amount: 3 }, h);
    assert.equal(a.status, 200);
    assert.deepEqual(b.body, a.body);
    assert.equal(b.headers.get('idempotent-replayed'), 'true');
    assert.equal(a.headers.get('idempotent-replayed'), null);
    const c = await consume(srv, { user_id: 'u_idem', quota: 'ai_minutes', amount: 3 }, { 'idempotency-key': 'retry-2' });
    assert.equal(c.body.used, 6);
  });
  test('a refusal is replayed as a refusal, even after room appears elsewhere', async () => {
    assert.equal((await consume(srv, { user_id: 'u_idem402', quota: 'scenarios', amount: 5 })).status, 200);
    const h = { 'idempotency-key': 'refused-1' };
    const a = await consume(srv, { user_id: 'u_idem402', quota: 'scenarios', amount: 1 }, h);
    const b = await consume(srv, { user_id: 'u_idem402', quota: 'scenarios', amount: 1 }, h);
    assert.equal(a.status, 402);
    assert.equal(b.status, 402);
    assert.deepEqual(b.body, a.body);
  });
  test('the same key with another body is a 409; other users and services do not share keys', async () => {
    const h = { 'idempotency-key': 'shared-key' };
    assert.equal((await consume(srv, { user_id: 'u_k1', quota: 'ai_minutes', amount: 1 }, h)).status, 200);
    const other = await consume(srv, { user_id: 'u_k1', quota: 'ai_minutes', amount: 2 }, h);
    assert.equal(other.status, 409);
    const track = await req(srv, 'POST', `${A}/track`, { token: SERVICE_KEY, body: { user_id: 'u_k1', quota: 'ai_minutes', amount: 1 }, headers: h });
    assert.equal(track.status, 409);
    const u2 = await consume(srv, { user_id: 'u_k2', quota: 'ai_minutes', amount: 2 }, h);
    assert.equal(u2.status, 200);
    assert.equal(u2.body.used, 2);
  });
  test('a bad key is a 400', async () => {
    const r = await consume(srv, { user_id: 'u_k3', quota: 'ai_minutes', amount: 1 }, { 'idempotency-key': 'x'.repeat(256) });
    assert.equal(r.status, 400);
  });
  test('50 concurrent requests with one key count once and all get the same answer', async () => {
    const h = { 'idempotency-key': 'race-50' };
    const rs = await Promise.all(Array.from({ length: 50 }, () =>
      consume(srv, { user_id: 'u_race', quota: 'ai_minutes', amount: 4 }, h)));
    for (const r of rs) {
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, rs[0].body);
    }
    assert.equal(rs.filter((r) => r.headers.get('idempotent-replayed') !== 'true').length, 1);
    const u = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken('u_race') });
    assert.equal(u.body.ai_minutes_used, 4);
  });
});

// Fires n consume requests of 1 minute for user, spread over the servers, all at once.
async function storm(servers, user, n) {
  const rs = await Promise.all(Array.from({ length: n }, (_, i) =>
    consume(servers[i % servers.length], { user_id: user, quota: 'ai_minutes', amount: 1 })));
  const count = (s) => rs.filter((r) => r.status === s).length;
  return { granted: count(200), refused: count(402), other: rs.filter((r) => r.status !== 200 && r.status !== 402) };
}

describe('service-side reads and refunds', () => {
  const refund = (body, headers = {}) => req(srv, 'POST', `${A}/refund`, { token: SERVICE_KEY, body, headers });
  const usage = (user, token = SERVICE_KEY) => req(srv, 'GET', `${A}/usage${user === null ? '' : `?user_id=${user}`}`, { token });

  test('a service reads any user\'s quotas without spending them', async () => {
    assert.equal((await consume(srv, { user_id: 'u_read', quota: 'ai_minutes', amount: 4 })).status, 200);
    for (let i = 0; i < 3; i++) {
      const r = await usage('u_read');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.user_id, 'u_read');
      assert.equal(r.body.tier, 'free');
      assert.deepEqual([r.body.quotas.ai_minutes.used, r.body.quotas.ai_minutes.remaining], [4, 26]);
    }
    assert.equal((await usage('u_read', userToken('u_read'))).status, 200, 'a user reads its own');
    assert.equal((await usage('u_read', userToken('u_other'))).status, 403, 'but not another\'s');
    const missing = await usage(null);
    assert.equal(missing.status, 400);
    assert.equal(errorOf(missing).param, 'user_id');
  });

  test('units given back lower the counter, never below zero, once per Idempotency-Key', async () => {
    assert.equal((await consume(srv, { user_id: 'u_ref', quota: 'ai_minutes', amount: 30 })).status, 200);
    assert.equal((await consume(srv, { user_id: 'u_ref', quota: 'ai_minutes', amount: 1 })).status, 402);
    let r = await refund({ user_id: 'u_ref', quota: 'ai_minutes', amount: 5 }, { 'idempotency-key': 'failed-call-1' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.refunded, r.body.used, r.body.remaining], [true, 25, 5]);
    r = await refund({ user_id: 'u_ref', quota: 'ai_minutes', amount: 5 }, { 'idempotency-key': 'failed-call-1' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('idempotent-replayed'), 'true');
    assert.equal(r.body.used, 25, 'the retry gave nothing more back');
    assert.equal((await consume(srv, { user_id: 'u_ref', quota: 'ai_minutes', amount: 5 })).status, 200, 'the units are usable again');
    r = await refund({ user_id: 'u_ref', quota: 'ai_minutes', amount: 1000 });
    assert.equal(r.status, 200);
    assert.equal(r.body.used, 0, 'never below zero');
    r = await refund({ user_id: 'u_never', quota: 'scenarios', amount: 2 });
    assert.deepEqual([r.status, r.body.used], [200, 0], 'nothing used: stays at zero');
    const user = await req(srv, 'POST', `${A}/refund`, { token: userToken('u_ref'), body: { user_id: 'u_ref', quota: 'ai_minutes', amount: 1 } });
    assert.equal(user.status, 403, 'users cannot give themselves units');
    const bad = await refund({ user_id: 'u_ref', quota: 'ai_minutes' });
    assert.equal(bad.status, 400);
    assert.equal(errorOf(bad).param, 'amount');
  });
});

describe('concurrency', () => {
  test('200 concurrent consumes of 1 minute: exactly 30 granted, 170 refused', async () => {
    const s = await storm([srv], 'u_storm', 200);
    assert.deepEqual(s.other, []);
    assert.equal(s.granted, 30);
    assert.equal(s.refused, 170);
    const u = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken('u_storm') });
    assert.equal(u.body.ai_minutes_used, 30);
  });
  test('the same with two server processes sharing one SQLite file', async () => {
    const dir = tmpDir();
    const db = `sqlite:${path.join(dir, 'shared.db')}`;
    const a = await startServer({ ...ENV, DATABASE_URL: db }, { cwd: dir });
    let b;
    try {
      b = await startServer({ ...ENV, DATABASE_URL: db }, { cwd: dir });
      const s = await storm([a, b], 'u_storm2', 200);
      assert.deepEqual(s.other, []);
      assert.equal(s.granted, 30);
      assert.equal(s.refused, 170);
      for (const x of [a, b]) {
        const u = await req(x, 'GET', '/api/v1/payments/usage', { token: userToken('u_storm2') });
        assert.equal(u.body.ai_minutes_used, 30);
      }
    } finally {
      await stopServer(b);
      await stopServer(a);
    }
  });
});
