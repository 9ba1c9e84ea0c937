// ledger.test.mjs: issue #15 items 3 and 4. Extra units of a quota granted by a service, for
// the current window or as a balance drawn on once the window's allowance is spent (and given
// back by a refund); the usage ledger that records every consume, track, refund and grant with
// its idempotency key and request id, readable per user a page at a time; concurrent consumes
// never draw more than the balance; what a hostile caller sends changes nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SERVICE_KEY, req, run, startServer, stopServer, tmpDir, userToken } from './lib.mjs';

const A = '/api/v1/access';

let srv;
before(async () => { srv = await startServer({ HTTP_THREADS: '4' }, { cwd: tmpDir() }); });
after(async () => { await stopServer(srv); });

const svc = (method, p, body, headers = {}) => req(srv, method, p, { token: SERVICE_KEY, body, headers });
const consume = (user, quota, amount, headers) => svc('POST', `${A}/consume`, { user_id: user, quota, amount }, headers);
const refund = (user, quota, amount, headers) => svc('POST', `${A}/refund`, { user_id: user, quota, amount }, headers);
const grantUnits = (body, headers) => svc('POST', `${A}/quota-grants`, body, headers);
const usage = async (user) => (await svc('GET', `${A}/usage?user_id=${user}`)).body.quotas;
const ledger = async (user, q = '') => {
  const r = await svc('GET', `${A}/ledger?user_id=${user}${q}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
};

describe('a balance of extra units', () => {
  // The refusal counts the window's allowance (limit + extra), as `remaining` does, and says
  // what the balance holds when it was too small: "35 of 30 used" read as a bug.
  test('a refusal past limit and extra names the allowance and the balance', async () => {
    const user = 'l_refusal';
    assert.equal((await grantUnits({ user_id: user, quota: 'ai_minutes', units: 5, scope: 'window' })).status, 200);
    assert.equal((await grantUnits({ user_id: user, quota: 'ai_minutes', units: 2, scope: 'balance' })).status, 200);
    assert.equal((await consume(user, 'ai_minutes', 35)).status, 200);
    const r = await consume(user, 'ai_minutes', 3);
    assert.equal(r.status, 402);
    assert.equal(r.body.error.message, "quota 'ai_minutes' exceeded: 35 of 35 used this day, 3 more asked, 2 in the balance");
    assert.equal(r.body.error.remaining, 2);
  });

  test('drawn on once the day is spent, given back by a refund, retried once', async () => {
    const user = 'l_balance';
    assert.equal((await consume(user, 'ai_minutes', 30)).status, 200);
    const refused = await consume(user, 'ai_minutes', 1);
    assert.equal(refused.status, 402, 'the free tier\'s 30 minutes are spent');
    assert.equal(refused.body.error.remaining, 0);

    const g = await grantUnits({ user_id: user, quota: 'ai_minutes', units: 10, scope: 'balance', reason: 'top-up 10' },
      { 'Idempotency-Key': 'topup-1' });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    assert.equal(g.body.object, 'quota_grant');
    assert.equal(g.body.kind, 'grant');
    assert.equal(g.body.scope, 'balance');
    assert.equal(g.body.window_start, null);
    assert.equal(g.body.amount, 10);
    assert.equal(g.body.idempotency_key, 'topup-1');
    assert.equal(g.body.request_id, g.headers.get('request-id'));
    assert.deepEqual([g.body.usage.balance, g.body.usage.remaining, g.body.usage.used], [10, 10, 30]);

    const again = await grantUnits({ user_id: user, quota: 'ai_minutes', units: 10, scope: 'balance', reason: 'top-up 10' },
      { 'Idempotency-Key': 'topup-1' });
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal(again.body.id, g.body.id, 'the same grant');
    assert.equal(again.body.usage.balance, 10, 'granted once');
    const other = await grantUnits({ user_id: user, quota: 'ai_minutes', units: 11, scope: 'balance', reason: 'top-up 10' },
      { 'Idempotency-Key': 'topup-1' });
    assert.equal(other.status, 409);
    assert.equal(other.body.error.code, 'idempotency_key_reused');
    assert.equal((await usage(user)).ai_minutes.balance, 10, 'a refused retry changes nothing');

    let c = await consume(user, 'ai_minutes', 4, { 'Idempotency-Key': 'job-1' });
    assert.equal(c.status, 200, JSON.stringify(c.body));
    assert.deepEqual([c.body.used, c.body.balance, c.body.extra, c.body.remaining], [34, 6, 0, 6]);
    const retry = await consume(user, 'ai_minutes', 4, { 'Idempotency-Key': 'job-1' });
    assert.equal(retry.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(retry.body, c.body, 'a retry answers the first outcome');
    assert.equal((await usage(user)).ai_minutes.balance, 6, 'and draws nothing more');

    c = await consume(user, 'ai_minutes', 7);
    assert.equal(c.status, 402, 'more than the balance: all or nothing');
    assert.deepEqual([c.body.error.used, c.body.error.balance, c.body.error.remaining], [34, 6, 6]);

    let r = await refund(user, 'ai_minutes', 3);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.used, r.body.balance], [31, 9], 'the balance units come back first');
    r = await refund(user, 'ai_minutes', 2);
    assert.deepEqual([r.body.used, r.body.balance], [29, 10], 'never more than the window drew');
    const u = (await usage(user)).ai_minutes;
    assert.deepEqual([u.used, u.limit, u.extra, u.balance, u.remaining], [29, 30, 0, 10, 11]);
    const own = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken(user) });
    assert.equal(own.body.quotas.ai_minutes.balance, 10, 'the user sees it too');
    assert.equal(own.body.can_use_ai, true);

    const l = await ledger(user);
    assert.deepEqual(l.data.map((e) => [e.kind, e.amount, e.used_after, e.balance_change]), [
      ['refund', 2, 29, 1],
      ['refund', 3, 31, 3],
      ['consume', 4, 34, -4],
      ['grant', 10, 0, 10],
      ['consume', 30, 30, 0],
    ], 'newest first; refused consumes and replays write nothing');
    assert.equal(l.data[2].idempotency_key, 'job-1');
    assert.match(l.data[2].request_id, /^req_[0-9a-f]{16}$/);
    assert.equal(l.data[3].reason, 'top-up 10');
    assert.equal(l.has_more, false);
  });

  test('concurrent consumes never draw more than the balance', async () => {
    const user = 'l_race';
    assert.equal((await consume(user, 'ai_minutes', 30)).status, 200);
    assert.equal((await grantUnits({ user_id: user, quota: 'ai_minutes', units: 5, scope: 'balance' })).status, 200);
    const all = await Promise.all(Array.from({ length: 24 }, () => consume(user, 'ai_minutes', 1)));
    assert.equal(all.filter((r) => r.status === 200).length, 5, all.map((r) => r.status).join(','));
    assert.ok(all.every((r) => r.status === 200 || r.status === 402));
    const u = (await usage(user)).ai_minutes;
    assert.deepEqual([u.used, u.balance, u.remaining], [35, undefined, 0], 'balance 0: not shown');
    const l = await ledger(user, '&quota=ai_minutes');
    assert.equal(l.data.filter((e) => e.kind === 'consume').length, 6);
    assert.equal(l.data.reduce((s, e) => s + e.balance_change, 0), 0, '5 granted, 5 drawn');
  });
});

describe('extra units for this window', () => {
  test('widen this week\'s allowance only', async () => {
    const user = 'l_window';
    assert.equal((await consume(user, 'scenarios', 5)).status, 200);
    const g = await grantUnits({ user_id: user, quota: 'scenarios', units: 2, scope: 'window' });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    assert.equal(g.body.scope, 'window');
    assert.equal(g.body.window_start, g.body.usage.window_start);
    assert.deepEqual([g.body.usage.extra, g.body.usage.remaining], [2, 2]);
    assert.equal((await consume(user, 'scenarios', 2)).status, 200);
    const over = await consume(user, 'scenarios', 1);
    assert.equal(over.status, 402);
    assert.deepEqual([over.body.error.used, over.body.error.extra, over.body.error.remaining], [7, 2, 0]);
    const u = (await usage(user)).scenarios;
    assert.deepEqual([u.used, u.limit, u.extra, u.balance, u.remaining], [7, 5, 2, 0, 0]);
    assert.equal((await usage(user)).ai_minutes.extra, undefined, 'other quotas keep their shape');
  });
});

describe('reading the ledger', () => {
  test('a page at a time; a user reads only their own', async () => {
    const user = 'l_pages';
    for (let i = 1; i <= 5; i++) assert.equal((await consume(user, 'ai_minutes', i)).status, 200);
    assert.equal((await svc('POST', `${A}/track`, { user_id: user, quota: 'scenarios', amount: 1 })).status, 200);
    const p1 = await ledger(user, '&limit=2');
    assert.deepEqual(p1.data.map((e) => [e.kind, e.amount]), [['track', 1], ['consume', 5]]);
    assert.equal(p1.has_more, true);
    const p2 = await ledger(user, `&limit=2&before=${p1.next_before}`);
    assert.deepEqual(p2.data.map((e) => e.amount), [4, 3]);
    const only = await ledger(user, '&quota=scenarios');
    assert.deepEqual(only.data.map((e) => e.kind), ['track']);
    const own = await req(srv, 'GET', `${A}/ledger`, { token: userToken(user) });
    assert.equal(own.status, 200);
    assert.equal(own.body.data.length, 6);
    const theirs = await req(srv, 'GET', `${A}/ledger?user_id=l_balance`, { token: userToken(user) });
    assert.equal(theirs.status, 403);
    for (const q of ['&limit=0', '&limit=201', '&limit=x', '&before=0', '&before=-1', '&quota=gold', '&page=2']) {
      const r = await svc('GET', `${A}/ledger?user_id=${user}${q}`);
      assert.equal(r.status, 400, `${q}: ${r.text}`);
      assert.equal(r.body.error.type, 'invalid_request_error');
    }
    assert.equal((await svc('GET', `${A}/ledger`)).status, 400, 'a service names the user');
    assert.equal((await req(srv, 'GET', `${A}/ledger?user_id=${user}`)).status, 401);
  });
});

describe('hostile grants change nothing', () => {
  test('bad bodies, users and keys', async () => {
    const user = 'l_hostile';
    const good = { user_id: user, quota: 'ai_minutes', units: 5, scope: 'balance' };
    const bad = [
      { ...good, units: 0 }, { ...good, units: -5 }, { ...good, units: 1e12 }, { ...good, units: '5' },
      { ...good, units: 1.5 }, { ...good, scope: 'forever' }, { ...good, scope: undefined },
      { ...good, quota: 'gold' }, { ...good, user_id: '' }, { ...good, user_id: 'x'.repeat(300) },
      { ...good, reason: 'r'.repeat(300) }, { ...good, extra: 1 }, { ...good, user_id: 7 },
    ];
    for (const body of bad) {
      const r = await grantUnits(body);
      assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${r.text}`);
      assert.ok(r.body.error.message);
    }
    let r = await grantUnits(good, { 'Idempotency-Key': 'k'.repeat(256) });
    assert.equal(r.status, 400, 'a key longer than 255 bytes');
    r = await grantUnits(good, { 'Idempotency-Key': 'two words' });
    assert.equal(r.status, 400, 'a key with a space');
    r = await req(srv, 'POST', `${A}/quota-grants`, { token: userToken(user), body: good });
    assert.equal(r.status, 401, 'a user cannot grant themselves units');
    r = await req(srv, 'POST', `${A}/quota-grants`, { raw: '{"user_id":', token: SERVICE_KEY, headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 400);
    const u = (await usage(user)).ai_minutes;
    assert.equal(u.balance, undefined, 'nothing granted');
    assert.deepEqual((await ledger(user)).data, []);
  });

  test('an unlimited quota takes no extra units', async () => {
    const r = await grantUnits({ user_id: 'l_unlimited', quota: 'ai_minutes', units: 5, scope: 'balance' });
    assert.equal(r.status, 200, 'a free user: limited');
    // A premium user is unlimited on ai_minutes only through a subscription; the built-in
    // enterprise grant makes it so here.
    const g = await svc('POST', `${A}/grants`, { user_id: 'l_unlimited2', tier: 'enterprise' });
    assert.equal(g.status, 200);
    const u = await grantUnits({ user_id: 'l_unlimited2', quota: 'ai_minutes', units: 5, scope: 'balance' });
    assert.equal(u.status, 400);
    assert.match(u.body.error.message, /unlimited/);
  });
});

describe('USAGE_LEDGER=off', () => {
  test('consumes write no entries; grants still do', async () => {
    const off = await startServer({ USAGE_LEDGER: 'off' }, { cwd: tmpDir() });
    try {
      const s = (method, p, body) => req(off, method, p, { token: SERVICE_KEY, body });
      assert.equal((await s('POST', `${A}/consume`, { user_id: 'l_off', quota: 'ai_minutes', amount: 30 })).status, 200);
      assert.equal((await s('POST', `${A}/quota-grants`, { user_id: 'l_off', quota: 'ai_minutes', units: 2, scope: 'balance' })).status, 200);
      const c = await s('POST', `${A}/consume`, { user_id: 'l_off', quota: 'ai_minutes', amount: 2 });
      assert.equal(c.status, 200, 'the balance works without the ledger');
      assert.equal(c.body.used, 32);
      assert.equal(c.body.balance, undefined, 'spent: extra and balance 0 are not shown');
      const l = await s('GET', `${A}/ledger?user_id=l_off`);
      assert.deepEqual(l.body.data.map((e) => e.kind), ['grant']);
    } finally {
      await stopServer(off);
    }
  });
});

describe('subgate user ID', () => {
  test('shows the extra units, the balance and the ledger', async () => {
    const r = run(['user', 'l_balance'], { env: { DATABASE_URL: srv.databaseUrl }, cwd: srv.dir });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^extra units:\n  ai_minutes +balance 10$/m);
    assert.match(r.stdout, /^ledger \(newest 10\):$/m);
    assert.match(r.stdout, /^  #\d+ \S+ +grant +ai_minutes +10 +used after 0 +balance \+10 +req_[0-9a-f]{16} topup-1$/m);
    assert.match(r.stdout, /^  #\d+ \S+ +consume +ai_minutes +4 +used after 34 +balance -4 +req_[0-9a-f]{16} job-1$/m);
    const w = run(['user', 'l_window'], { env: { DATABASE_URL: srv.databaseUrl }, cwd: srv.dir });
    assert.match(w.stdout, /^  scenarios +\+2 for the window from \S+ \(0 drawn from the balance\)$/m);
  });
});

describe('two instances on one database', () => {
  test('units granted on one are drawn on by the other at once, and shown within a second', async () => {
    const dir = tmpDir();
    const a = await startServer({}, { cwd: dir });
    const b = await startServer({}, { cwd: dir });
    try {
      const on = (s, method, p, body) => req(s, method, p, { token: SERVICE_KEY, body });
      const user = 'l_two';
      assert.equal((await on(b, 'POST', `${A}/consume`, { user_id: user, quota: 'ai_minutes', amount: 29 })).status, 200);
      const g = await on(a, 'POST', `${A}/quota-grants`, { user_id: user, quota: 'ai_minutes', units: 3, scope: 'balance' });
      assert.equal(g.status, 200, JSON.stringify(g.body));
      const c = await on(b, 'POST', `${A}/consume`, { user_id: user, quota: 'ai_minutes', amount: 3 });
      assert.equal(c.status, 200, `the other instance decides with the balance at once: ${JSON.stringify(c.body)}`);
      assert.deepEqual([c.body.used, c.body.balance, c.body.remaining], [32, 1, 1]);
      let shown;
      for (const t0 = Date.now(); Date.now() - t0 < 1500; await new Promise((r) => setTimeout(r, 100))) {
        shown = (await on(b, 'GET', `${A}/usage?user_id=${user}`)).body.quotas.ai_minutes;
        if (shown.balance === 1) break;
      }
      assert.deepEqual([shown.used, shown.balance, shown.remaining], [32, 1, 1]);
    } finally {
      await stopServer(a);
      await stopServer(b);
    }
  });
});
