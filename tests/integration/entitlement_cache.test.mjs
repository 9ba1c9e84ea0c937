// entitlement_cache.test.mjs: the entitlement cache's staleness bounds (issue #13 item 1).
// One instance: its own webhook write is seen by the very next check, however long the TTL.
// Two instances on one SQLite file: the other's write is seen within ENTITLEMENT_CACHE_TTL_MS.
// Two on one PostgreSQL database (SUBGATE_TEST_PG_URL; skipped without it): with LISTEN/NOTIFY
// within 500 ms under a TTL of a minute; with ENTITLEMENT_CACHE_LISTEN=false within the TTL.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  PG_URL, createPgDatabase, now, req, startServer, stopServer, tmpDir, userToken,
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

describe('two instances on one PostgreSQL database', { skip: PG_SKIP }, () => {
  const servers = [];
  const pair = async (extra) => {
    const env = { ...BASE_ENV, DATABASE_URL: createPgDatabase(), ...extra };
    const a = await startServer(env);
    const b = await startServer(env);
    servers.push(a, b);
    return [a, b];
  };
  after(async () => {
    for (const s of servers) await stopServer(s);
  });

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
