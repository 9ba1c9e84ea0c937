// grants.test.mjs: tiers granted outside Stripe (issue #15 item 3): a service grants Enterprise
// to a user with an end and the user has it (check, usage, /subscription saying where it comes
// from) until the end and not after; a revoked grant ends at once; a grant below the user's
// Stripe tier changes nothing; Idempotency-Key retries; what a hostile caller sends; another
// process sees a grant within ENTITLEMENT_CACHE_TTL_MS.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PLUS_PRICE, WEBHOOK_SECRET, subscribe } from './access_lib.mjs';
import { SERVICE_KEY, now, req, run, startServer, stopServer, tmpDir, userToken } from './lib.mjs';

const A = '/api/v1/access';
const ENV = { STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_PLUS_PRICE_ID: PLUS_PRICE, HTTP_THREADS: '4' };

let srv;
let dir;
before(async () => {
  dir = tmpDir();
  srv = await startServer({ ...ENV, DATABASE_URL: `sqlite:${path.join(dir, 'subgate.db')}` }, { cwd: dir });
});
after(async () => { await stopServer(srv); });

const grant = (body, headers = {}) => req(srv, 'POST', `${A}/grants`, { token: SERVICE_KEY, body, headers });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function view(s, user) {
  const sub = await req(s, 'GET', '/api/v1/payments/subscription', { token: userToken(user) });
  assert.equal(sub.status, 200, JSON.stringify(sub.body));
  const check = await req(s, 'GET', `${A}/check?feature=white_label`, { token: userToken(user) });
  assert.equal(check.status, 200, JSON.stringify(check.body));
  return { sub: sub.body, check: check.body };
}

describe('an Enterprise grant with an end', () => {
  test('in force until its end, free after', async () => {
    const user = 'g_contract';
    let v = await view(srv, user);
    assert.equal(v.sub.tier, 'free');
    assert.equal(v.sub.source, 'default');
    assert.equal(v.check.allowed, false);
    const ends = now() + 3;
    const r = await grant({ user_id: user, tier: 'enterprise', ends_at: ends, reason: 'contract 42' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(r.body.id, /^grant_/);
    assert.equal(r.body.active, true);
    assert.equal(r.body.ends_at, ends);
    v = await view(srv, user);
    assert.equal(v.sub.tier, 'enterprise', 'at once on this instance');
    assert.equal(v.sub.source, 'grant');
    assert.equal(v.sub.grant.id, r.body.id);
    assert.equal(v.sub.status, 'none', 'no Stripe subscription');
    assert.equal(v.check.allowed, true);
    assert.equal(v.check.tier, 'enterprise');
    const usage = await req(srv, 'GET', `${A}/usage?user_id=${user}`, { token: SERVICE_KEY });
    assert.equal(usage.body.tier, 'enterprise');
    assert.equal(usage.body.quotas.ai_minutes.limit, null, 'unlimited');
    const listed = await req(srv, 'GET', `${A}/grants?user_id=${user}`, { token: SERVICE_KEY });
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.data.map((g) => g.id), [r.body.id]);
    while (now() < ends) await sleep(200);
    v = await view(srv, user);
    assert.equal(v.sub.tier, 'free', 'expired at its end');
    assert.equal(v.sub.source, 'default');
    assert.equal(v.check.allowed, false);
    const after_ = await req(srv, 'GET', `${A}/grants?user_id=${user}`, { token: SERVICE_KEY });
    assert.equal(after_.body.data[0].active, false, 'kept for the record, not active');
  });
});

describe('revoking', () => {
  test('a revoked grant ends at once; revoking again answers it again', async () => {
    const user = 'g_revoked';
    const g = (await grant({ user_id: user, tier: 'plus' })).body;
    assert.equal((await view(srv, user)).sub.tier, 'plus');
    const r = await req(srv, 'POST', `${A}/grants/revoke`, { token: SERVICE_KEY, body: { id: g.id } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(r.body.revoked_at > 0);
    assert.equal(r.body.active, false);
    assert.equal((await view(srv, user)).sub.tier, 'free');
    const again = await req(srv, 'POST', `${A}/grants/revoke`, { token: SERVICE_KEY, body: { id: g.id } });
    assert.equal(again.status, 200);
    assert.equal(again.body.revoked_at, r.body.revoked_at);
    assert.equal((await req(srv, 'POST', `${A}/grants/revoke`, { token: SERVICE_KEY, body: { id: 'grant_nope' } })).status, 404);
    const long = await req(srv, 'POST', `${A}/grants/revoke`, { token: SERVICE_KEY, body: { id: 'grant_' + 'x'.repeat(300) } });
    assert.equal(long.status, 404, 'an id longer than any grant has is unknown too');
    assert.equal(long.body.error.code, 'resource_missing');
  });

  test('the list shows the 100 newest and says when there are older ones', async () => {
    const user = 'g_many';
    const ids = [];
    for (let i = 0; i < 101; i++) {
      const g = await grant({ user_id: user, tier: 'plus', reason: `n${i}` });
      assert.equal(g.status, 200);
      ids.push(g.body.id);
    }
    const listed = await req(srv, 'GET', `${A}/grants?user_id=${user}`, { token: SERVICE_KEY });
    assert.equal(listed.status, 200);
    assert.equal(listed.body.count, 100);
    assert.equal(listed.body.data.length, 100);
    assert.equal(listed.body.has_more, true);
    assert.equal(listed.body.data[0].id, ids[100], 'newest first');
    assert.ok(!listed.body.data.some((g) => g.id === ids[0]), 'the oldest is the one left out');
    const one = await req(srv, 'GET', `${A}/grants?user_id=g_revoked`, { token: SERVICE_KEY });
    assert.equal(one.body.has_more, false);
  });
});

describe('the best of Stripe and grants', () => {
  test('a grant below the Stripe tier changes nothing; above it wins', async () => {
    const user = 'g_stripe_plus';
    await subscribe(srv, user);
    assert.equal((await view(srv, user)).sub.source, 'stripe');
    await grant({ user_id: user, tier: 'premium' });
    let v = await view(srv, user);
    assert.equal(v.sub.tier, 'plus');
    assert.equal(v.sub.source, 'stripe');
    assert.equal(v.sub.grant, null);
    await grant({ user_id: user, tier: 'enterprise' });
    v = await view(srv, user);
    assert.equal(v.sub.tier, 'enterprise');
    assert.equal(v.sub.source, 'grant');
    assert.equal(v.sub.status, 'active', 'the Stripe subscription is still shown');
  });

  test('a grant that starts later is not in force yet', async () => {
    const user = 'g_later';
    const r = await grant({ user_id: user, tier: 'plus', starts_at: now() + 3600 });
    assert.equal(r.body.active, false);
    assert.equal((await view(srv, user)).sub.tier, 'free');
  });
});

describe('retries and hostile callers', () => {
  test('one Idempotency-Key makes one grant; reused for another grant it is 409', async () => {
    const headers = { 'Idempotency-Key': 'grant-once-1' };
    const a = await grant({ user_id: 'g_idem', tier: 'plus' }, headers);
    const b = await grant({ user_id: 'g_idem', tier: 'plus' }, headers);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(b.body.id, a.body.id);
    assert.equal(b.headers.get('idempotent-replayed'), 'true');
    assert.equal((await grant({ user_id: 'g_idem', tier: 'enterprise' }, headers)).status, 409);
    const listed = await req(srv, 'GET', `${A}/grants?user_id=g_idem`, { token: SERVICE_KEY });
    assert.equal(listed.body.count, 1);
  });

  test('bad bodies are 400 with the parameter, users and strangers cannot grant', async () => {
    const rows = [
      [{ tier: 'plus' }, 'user_id'],
      [{ user_id: 'g_bad' }, 'tier'],
      [{ user_id: 'g_bad', tier: 'gold' }, 'tier'],
      [{ user_id: 'g_bad', tier: 'free' }, 'tier'],
      [{ user_id: 'g_bad', tier: 'plus', ends_at: now() - 10 }, 'ends_at'],
      [{ user_id: 'g_bad', tier: 'plus', ends_at: 'soon' }, 'ends_at'],
      [{ user_id: 'g_bad', tier: 'plus', starts_at: -5 }, 'starts_at'],
      [{ user_id: 'g_bad', tier: 'plus', reason: 'x'.repeat(300) }, 'reason'],
      [{ user_id: 'g_bad', tier: 'plus', admin: true }, 'admin'],
      [{ user_id: '', tier: 'plus' }, 'user_id'],
    ];
    for (const [body, param] of rows) {
      const r = await grant(body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.param, param, JSON.stringify(r.body));
    }
    const byUser = await req(srv, 'POST', `${A}/grants`, { token: userToken('g_bad'), body: { user_id: 'g_bad', tier: 'enterprise' } });
    assert.ok(byUser.status === 401 || byUser.status === 403, `a user: ${byUser.status}`);
    assert.equal((await req(srv, 'POST', `${A}/grants`, { body: { user_id: 'g_bad', tier: 'enterprise' } })).status, 401);
    assert.equal((await req(srv, 'GET', `${A}/grants`, { token: SERVICE_KEY })).status, 400);
    assert.equal((await view(srv, 'g_bad')).sub.tier, 'free', 'nothing was granted');
  });
});

describe('another process', () => {
  test('sees a grant within ENTITLEMENT_CACHE_TTL_MS', async () => {
    const other = await startServer({ ...ENV, DATABASE_URL: `sqlite:${path.join(dir, 'subgate.db')}`, ENTITLEMENT_CACHE_TTL_MS: '500' }, { cwd: dir });
    try {
      const user = 'g_other';
      assert.equal((await view(other, user)).sub.tier, 'free');
      await grant({ user_id: user, tier: 'plus' });
      const t0 = Date.now();
      let tier = 'free';
      while (tier !== 'plus' && Date.now() - t0 < 5000) {
        await sleep(100);
        tier = (await view(other, user)).sub.tier;
      }
      assert.equal(tier, 'plus');
      assert.ok(Date.now() - t0 < 1500, `seen after ${Date.now() - t0} ms`);
    } finally {
      await stopServer(other);
    }
  });
});

describe('subgate user ID', () => {
  test('the support view: customer, subscription, tier and its source, grants, usage, invoices, events', async () => {
    const user = 'g_support';
    await subscribe(srv, user);
    const g = (await grant({ user_id: user, tier: 'enterprise', reason: 'support case 7' })).body;
    const consumed = await req(srv, 'POST', `${A}/consume`, { token: SERVICE_KEY, body: { user_id: user, quota: 'ai_minutes', amount: 3 } });
    assert.equal(consumed.status, 200, JSON.stringify(consumed.body));
    const r = run(['user', user], { env: { ...ENV, DATABASE_URL: `sqlite:${path.join(dir, 'subgate.db')}` }, cwd: dir });
    assert.equal(r.status, 0, r.stderr);
    const out = r.stdout;
    assert.match(out, /^user: +g_support$/m);
    assert.match(out, /^customer: +cus_\w+/m);
    assert.match(out, /^subscription: +sub_\w+ +active +tier plus/m);
    assert.match(out, /^tier now: +enterprise \(granted\)$/m);
    assert.match(out, new RegExp(`^  ${g.id} +enterprise .* in force  support case 7$`, 'm'));
    assert.match(out, /^  ai_minutes +3 of unlimited/m);
    assert.match(out, /^events \(the user's among the newest \d+\):\n  evt_\w+ +customer\.subscription\.created +applied/m);
    const none = run(['user', 'g_nobody'], { env: { ...ENV, DATABASE_URL: `sqlite:${path.join(dir, 'subgate.db')}` }, cwd: dir });
    assert.equal(none.status, 0, none.stderr);
    assert.match(none.stdout, /^customer: +none/m);
    assert.match(none.stdout, /^tier now: +free \(default\)$/m);
    assert.equal(run(['user'], { env: ENV, cwd: dir }).status, 2);
  });
});
