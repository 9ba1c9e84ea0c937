// entitlement_cache.test.mjs: the entitlement cache's staleness bounds (issue #13 item 1).
// One instance: its own webhook write is seen by the very next check, however long the TTL.
// Two instances on one SQLite file: the other's write is seen within ENTITLEMENT_CACHE_TTL_MS.
// Two on one PostgreSQL database (SUBGATE_TEST_PG_URL; skipped without it): with LISTEN/NOTIFY
// within 500 ms under a TTL of a minute; with ENTITLEMENT_CACHE_LISTEN=false within the TTL.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  PG_URL, SERVICE_KEY, createPgDatabase, logged, now, req, startServer, stopServer, tmpDir, userToken,
} from './lib.mjs';

const WHSEC = 'whsec_entitlement_cache_0123456789';
const PREMIUM = 'price_premium_ent';
const CHECK = '/api/v1/access/check?feature=unlimited_ai';
const PG_SKIP = PG_URL ? false : 'SUBGATE_TEST_PG_URL is not set: NOTIFY needs a shared PostgreSQL';
const BASE_ENV = { STRIPE_WEBHOOK_SECRET: WHSEC, STRIPE_PREMIUM_PRICE_ID: PREMIUM };

// A signed customer.subscription.created making user premium (status active, or as given).
async function subscribe(srv, user, status = 'active') {
  const t = now();
  const id = `evt_ent_${crypto.randomBytes(6).toString('hex')}`;
  const body = JSON.stringify({
    id, object: 'event', type: 'customer.subscription.created', created: t, livemode: false,
    data: {
      object: {
        id: `sub_${user}`, object: 'subscription', customer: `cus_${user}`, status,
        current_period_start: t - 60, current_period_end: t + 30 * 86400,
        cancel_at_period_end: false, canceled_at: null, cancel_at: null, trial_end: null,
        metadata: { user_id: user },
        items: { object: 'list', data: [{ id: `si_${user}`, price: { id: PREMIUM } }] },
      },
    },
  });
  const sig = crypto.createHmac('sha256', WHSEC).update(`${t}.${body}`).digest('hex');
  const r = await req(srv, 'POST', '/api/v1/payments/webhook', {
    raw: body, headers: { 'content-type': 'application/json', 'stripe-signature': `t=${t},v1=${sig}` },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.duplicate, false);
}

async function tierOf(srv, user) {
  const r = await req(srv, 'GET', CHECK, { token: userToken(user) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.tier;
}

// Asks srv every 10 ms until user's tier is want; the milliseconds it took after `since`.
async function seenWithin(srv, user, want, since, limitMs) {
  for (;;) {
    const tier = await tierOf(srv, user);
    const took = performance.now() - since;
    if (tier === want) return took;
    assert.ok(took < limitMs, `still '${tier}' after ${Math.round(took)} ms (bound ${limitMs} ms)`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// A cached free answer on a, the user made premium through b, then how long until a says so.
async function crossInstance(a, b, user) {
  assert.equal(await tierOf(a, user), 'free');
  assert.equal(await tierOf(a, user), 'free', 'cached');
  await subscribe(b, user);
  assert.equal(await tierOf(b, user), 'premium', 'the writer sees its own write at once');
  return performance.now();
}

describe('one instance: its own write is seen at once', () => {
  let srv;
  before(async () => {
    srv = await startServer({ ...BASE_ENV, ENTITLEMENT_CACHE_TTL_MS: '3600000' });
  });
  after(() => stopServer(srv));

  test('a webhook changes the tier and the very next check says so', async () => {
    for (const user of ['ent_own_1', 'ent_own_2', 'ent_own_3']) {
      assert.equal(await tierOf(srv, user), 'free');
      assert.equal(await tierOf(srv, user), 'free', 'cached for an hour');
      await subscribe(srv, user);
      assert.equal(await tierOf(srv, user), 'premium', 'invalidated by the write');
      const sub = await req(srv, 'GET', '/api/v1/payments/subscription', { token: userToken(user) });
      assert.equal(sub.body.tier, 'premium');
      assert.equal(sub.body.status, 'active');
    }
  });

  test('a later state of the subscription too (canceled: free again)', async () => {
    const user = 'ent_own_1';
    assert.equal(await tierOf(srv, user), 'premium');
    const t = now() + 5;
    const body = JSON.stringify({
      id: `evt_ent_cancel_${crypto.randomBytes(4).toString('hex')}`, object: 'event',
      type: 'customer.subscription.deleted', created: t, livemode: false,
      data: {
        object: {
          id: `sub_${user}`, object: 'subscription', customer: `cus_${user}`, status: 'canceled',
          current_period_start: t - 60, current_period_end: t + 30 * 86400,
          cancel_at_period_end: false, canceled_at: t, cancel_at: null, trial_end: null,
          metadata: { user_id: user },
          items: { object: 'list', data: [{ id: `si_${user}`, price: { id: PREMIUM } }] },
        },
      },
    });
    const sig = crypto.createHmac('sha256', WHSEC).update(`${t}.${body}`).digest('hex');
    const r = await req(srv, 'POST', '/api/v1/payments/webhook', {
      raw: body, headers: { 'content-type': 'application/json', 'stripe-signature': `t=${t},v1=${sig}` },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(await tierOf(srv, user), 'free');
  });
});

describe('two instances on one SQLite file: the TTL bounds staleness', () => {
  const TTL = 1000;
  let a;
  let b;
  before(async () => {
    // Not named subgate.db: kept on SQLite in a PostgreSQL run too (lib.mjs databaseUrl).
    const dir = tmpDir();
    const env = { ...BASE_ENV, DATABASE_URL: `sqlite:${path.join(dir, 'shared.db')}`, ENTITLEMENT_CACHE_TTL_MS: String(TTL) };
    a = await startServer(env, { cwd: dir });
    b = await startServer(env, { cwd: dir });
  });
  after(async () => {
    await stopServer(a);
    await stopServer(b);
  });

  test(`B's write is seen by A within ENTITLEMENT_CACHE_TTL_MS (${TTL} ms)`, async () => {
    const since = await crossInstance(a, b, 'ent_sqlite');
    await seenWithin(a, 'ent_sqlite', 'premium', since, TTL + 250);
  });
});

// Starts two instances on a fresh PostgreSQL database (extra may name another) for each call;
// all are stopped after the suite that called pgPairs.
function pgPairs() {
  const servers = [];
  after(async () => {
    for (const s of servers) await stopServer(s);
  });
  return async (extra) => {
    const env = { ...BASE_ENV, DATABASE_URL: createPgDatabase(), ...extra };
    const a = await startServer(env);
    const b = await startServer(env);
    servers.push(a, b);
    return [a, b];
  };
}

describe('two instances on one PostgreSQL database', { skip: PG_SKIP }, () => {
  const pair = pgPairs();

  test('with LISTEN/NOTIFY: B\'s write is seen by A within 500 ms, under a TTL of a minute', async () => {
    const [a, b] = await pair({ ENTITLEMENT_CACHE_TTL_MS: '60000' });
    for (const user of ['ent_pg_1', 'ent_pg_2', 'ent_pg_3']) {
      const since = await crossInstance(a, b, user);
      await seenWithin(a, user, 'premium', since, 500);
    }
  });

  test('without (ENTITLEMENT_CACHE_LISTEN=false): within the TTL, not before it is due', async () => {
    const TTL = 1500;
    const [a, b] = await pair({ ENTITLEMENT_CACHE_TTL_MS: String(TTL), ENTITLEMENT_CACHE_LISTEN: 'false' });
    const cachedAt = performance.now();
    const since = await crossInstance(a, b, 'ent_pg_nolisten');
    const took = await seenWithin(a, 'ent_pg_nolisten', 'premium', since, TTL + 250);
    // Nothing told A: it kept its cached answer until the entry expired.
    assert.ok(since - cachedAt + took >= TTL - 50, `seen after ${Math.round(took)} ms: before the TTL`);
  });
});

// The usage counters GET /usage reads are kept the same way: another instance's consume, refund
// or grant of extra units is told by NOTIFY (one per transaction, naming its users).
const SVC = { token: SERVICE_KEY };
const usageOf = async (srv, user) => {
  const r = await req(srv, 'GET', `/api/v1/access/usage?user_id=${user}`, SVC);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.quotas.ai_minutes;
};
const spend = async (srv, path, user, amount) => {
  const r = await req(srv, 'POST', path, { ...SVC, body: { user_id: user, quota: 'ai_minutes', amount } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
};

// Asks srv every 10 ms until ok(quota) holds; the milliseconds it took after `since`.
async function usageWithin(srv, user, ok, since, limitMs) {
  for (;;) {
    const q = await usageOf(srv, user);
    const took = performance.now() - since;
    if (ok(q)) return took;
    assert.ok(took < limitMs, `${user}: still ${JSON.stringify(q)} after ${Math.round(took)} ms (bound ${limitMs} ms)`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('two instances on one PostgreSQL database: usage counters', { skip: PG_SKIP }, () => {
  const pair = pgPairs();

  test('with LISTEN/NOTIFY: B\'s consume, refund and grant are seen by A within 500 ms, under a TTL of a minute', async () => {
    const [a, b] = await pair({ ENTITLEMENT_CACHE_TTL_MS: '60000' });
    const user = 'use_pg_1';
    assert.equal((await usageOf(a, user)).used, 0);
    assert.equal((await usageOf(a, user)).used, 0, 'cached');
    let since = performance.now();
    await spend(b, '/api/v1/access/consume', user, 7);
    await usageWithin(a, user, (q) => q.used === 7, since, 500);
    since = performance.now();
    await spend(b, '/api/v1/access/refund', user, 2);
    await usageWithin(a, user, (q) => q.used === 5, since, 500);
    since = performance.now();
    const g = await req(b, 'POST', '/api/v1/access/quota-grants', { ...SVC, body: { user_id: user, quota: 'ai_minutes', units: 40, scope: 'balance' } });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    await usageWithin(a, user, (q) => q.balance === 40, since, 500);
  });

  test('many users consuming at once on B (batched into shared commits) are each seen by A', async () => {
    const [a, b] = await pair({ ENTITLEMENT_CACHE_TTL_MS: '60000' });
    const users = Array.from({ length: 24 }, (_, i) => `use_pg_many_${i}`);
    for (const u of users) assert.equal((await usageOf(a, u)).used, 0);
    const since = performance.now();
    await Promise.all(users.map((u, i) => spend(b, '/api/v1/access/consume', u, 1 + (i % 5))));
    for (const [i, u] of users.entries()) await usageWithin(a, u, (q) => q.used === 1 + (i % 5), since, 1000);
  });

  test('a notification naming several users, one per line, drops each; an empty one drops all', async () => {
    const url = createPgDatabase();
    const [a] = await pair({ DATABASE_URL: url, ENTITLEMENT_CACHE_TTL_MS: '60000' });
    const users = ['use_pg_line_1', 'use_pg_line_2', 'use_pg_line_3'];
    for (const u of users) await spend(a, '/api/v1/access/consume', u, 1);
    await new Promise((r) => setTimeout(r, 300)); // A's own NOTIFY of these consumes comes and goes
    for (const u of users) assert.equal((await usageOf(a, u)).used, 1);
    // Hand-written SQL changes what A keeps; only the notification tells A.
    const psql = (sql) => {
      const r = spawnSync('psql', [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8', timeout: 30000 });
      assert.equal(r.status, 0, r.stderr);
    };
    psql("UPDATE usage_counters SET used = 9 WHERE quota = 'ai_minutes'");
    for (const u of users) assert.equal((await usageOf(a, u)).used, 1, 'kept in memory');
    let since = performance.now();
    psql(`NOTIFY subgate_usage, E'${users[0]}\\n${users[2]}'`);
    await usageWithin(a, users[0], (q) => q.used === 9, since, 500);
    await usageWithin(a, users[2], (q) => q.used === 9, since, 500);
    assert.equal((await usageOf(a, users[1])).used, 1, 'a user not named is kept');
    since = performance.now();
    psql("NOTIFY subgate_usage, ''");
    await usageWithin(a, users[1], (q) => q.used === 9, since, 500);
  });

  // Defect seen in review: changes noted while the listener's connection was lost waited with no
  // wake-up left, so nothing was ever sent again. Seen failing before the fix in 2 runs of 3 (A
  // never saw the consume made after the listeners came back: the cut must come while changes
  // wait, which the four streams make likely); 3 of 3 passed after it.
  test('the listeners\' connections cut while B consumes: B\'s later consumes still reach A', async () => {
    const url = createPgDatabase();
    const [a, b] = await pair({ DATABASE_URL: url, ENTITLEMENT_CACHE_TTL_MS: '60000' });
    let stop = false;
    // Four streams, so that changes are nearly always waiting to be sent when a cut comes.
    const streams = [0, 1, 2, 3].map(async (i) => {
      while (!stop) { // within the free quota however long it runs
        await spend(b, '/api/v1/access/consume', `use_pg_stream_${i}`, 1);
        await spend(b, '/api/v1/access/refund', `use_pg_stream_${i}`, 1);
      }
    });
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 5; i++) {
      const r = spawnSync('psql', [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c',
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
        + "AND pid <> pg_backend_pid() AND (query LIKE 'LISTEN%' OR query LIKE '%pg_notify%')"], { encoding: 'utf8', timeout: 30000 });
      assert.equal(r.status, 0, r.stderr);
      await new Promise((r2) => setTimeout(r2, 150));
    }
    stop = true;
    await Promise.all(streams);
    assert.ok(await logged(b, /listening again/, 5000), b.log.slice(-1500));
    assert.ok(await logged(a, /listening again/, 5000), a.log.slice(-1500));
    await new Promise((r) => setTimeout(r, 500)); // both listeners back
    const user = 'use_pg_after_cut';
    assert.equal((await usageOf(a, user)).used, 0);
    const since = performance.now();
    await spend(b, '/api/v1/access/consume', user, 4);
    await usageWithin(a, user, (q) => q.used === 4, since, 1000);
  });

  test('without (ENTITLEMENT_CACHE_LISTEN=false): within the TTL, not before it is due', async () => {
    const TTL = 1500;
    const [a, b] = await pair({ ENTITLEMENT_CACHE_TTL_MS: String(TTL), ENTITLEMENT_CACHE_LISTEN: 'false' });
    const user = 'use_pg_nolisten';
    const cachedAt = performance.now();
    assert.equal((await usageOf(a, user)).used, 0);
    const since = performance.now();
    await spend(b, '/api/v1/access/consume', user, 3);
    assert.equal((await usageOf(b, user)).used, 3, 'the writer sees its own write at once');
    const took = await usageWithin(a, user, (q) => q.used === 3, since, TTL + 250);
    assert.ok(since - cachedAt + took >= TTL - 50, `seen after ${Math.round(took)} ms: before the TTL`);
  });
});
