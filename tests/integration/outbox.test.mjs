// outbox.test.mjs: outgoing webhooks to the app (issue #15) on the real binary: a local
// receiver in the test; events caused by signed Stripe webhooks and by consumes are delivered
// once, signed so that the JS client's verifyWebhook accepts them; a receiver that is down gets
// them later (shortened backoff); a change that fails and rolls back leaves no event; two
// instances on one PostgreSQL database deliver each event once; `subgate outbox` lists, shows
// and replays.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { verifyWebhook } from '../../clients/js/subgate.js';
import { PLUS_PRICE, WEBHOOK_SECRET, subscribe } from './access_lib.mjs';
import {
  PG_URL, SERVICE_KEY, createPgDatabase, now, req, run, startServer, stopServer,
} from './lib.mjs';

const APP_SECRET = 'app_secret_new_0123456789abcdef';
const OLD_SECRET = 'app_secret_old_0123456789abcdef';
const HOOK = '/api/v1/payments/webhook';

// A receiver: records every delivery; answers `status()` (a function, so a test can take it
// down and bring it back).
async function startReceiver() {
  const rec = { deliveries: [], status: () => 200 };
  rec.delayMs = 0;
  rec.server = http.createServer((q, s) => {
    const chunks = [];
    q.on('data', (c) => chunks.push(c));
    q.on('end', () => {
      const code = rec.status();
      rec.deliveries.push({ body: Buffer.concat(chunks).toString('utf8'), headers: q.headers, code });
      setTimeout(() => {
        s.writeHead(code, { 'content-type': 'text/plain' });
        s.end('ok');
      }, rec.delayMs);
    });
  });
  await new Promise((r) => rec.server.listen(0, '127.0.0.1', r));
  rec.url = `http://127.0.0.1:${rec.server.address().port}/hooks/subgate`;
  rec.ok = () => rec.deliveries.filter((d) => d.code === 200);
  rec.events = (type) => rec.ok().map((d) => JSON.parse(d.body)).filter((e) => !type || e.type === type);
  return rec;
}

const stopReceiver = (rec) => new Promise((r) => rec.server.close(r));

async function until(check, ms = 8000) {
  for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 50))) {
    const v = check();
    if (v) return v;
    if (Date.now() - t0 > ms) return v;
  }
}

function signStripe(body, t = now()) {
  return `t=${t},v1=${crypto.createHmac('sha256', WEBHOOK_SECRET).update(`${t}.${body}`).digest('hex')}`;
}

function postStripe(srv, event) {
  const body = JSON.stringify(event);
  return req(srv, 'POST', HOOK, { raw: body, headers: { 'content-type': 'application/json', 'stripe-signature': signStripe(body) } });
}

function subEvent(user, { price = PLUS_PRICE, id = `sub_${crypto.randomBytes(6).toString('hex')}`, type = 'customer.subscription.created', customer } = {}) {
  const t = now();
  return {
    id: `evt_${crypto.randomBytes(8).toString('hex')}`, object: 'event', type, created: t,
    data: {
      object: {
        id, object: 'subscription', customer: customer || `cus_${user}`, status: 'active',
        current_period_start: t - 60, current_period_end: t + 30 * 86400,
        cancel_at_period_end: false, canceled_at: null, cancel_at: null, trial_end: t + 3 * 86400,
        metadata: { user_id: user }, created: t - 60,
        items: { object: 'list', data: [{ id: `si_${id}`, price: { id: price } }] },
      },
    },
  };
}

const consume = (srv, user, amount) =>
  req(srv, 'POST', '/api/v1/access/consume', { token: SERVICE_KEY, body: { user_id: user, quota: 'ai_minutes', amount } });

// `subgate outbox ARGS` on srv's database.
function outbox(srv, args = []) {
  return run(['outbox', ...args], { env: { DATABASE_URL: `sqlite:${path.join(srv.dir, 'subgate.db')}` }, cwd: srv.dir });
}
const rows = (out) => out.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split('\t'));

describe('outgoing webhooks', () => {
  let rec;
  let srv;

  before(async () => {
    rec = await startReceiver();
    srv = await startServer({
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_PLUS_PRICE_ID: PLUS_PRICE,
      APP_WEBHOOK_URL: rec.url, APP_WEBHOOK_SECRETS: `${APP_SECRET},${OLD_SECRET}`,
      APP_WEBHOOK_RETRY_BASE_MS: '200', QUOTA_THRESHOLDS: '50,100', ENTITLEMENT_CACHE_USERS: '0',
    });
  });
  after(async () => {
    await stopServer(srv);
    await stopReceiver(rec);
  });

  test('a tier change by a signed Stripe webhook is delivered once, verifiable by the JS client', async () => {
    await subscribe(srv, 'u_tier');
    const got = await until(() => rec.events('subscription.tier_changed').find((e) => e.data.user_id === 'u_tier'));
    assert.ok(got, `no tier_changed delivered: ${srv.log.slice(-1500)}`);
    const d = rec.ok().find((x) => JSON.parse(x.body).id === got.id);
    // Either secret of the rotation verifies; a wrong one does not.
    for (const s of [APP_SECRET, OLD_SECRET, [OLD_SECRET]]) {
      const ev = await verifyWebhook(d.body, d.headers['subgate-signature'], s);
      assert.equal(ev.id, got.id);
    }
    await assert.rejects(verifyWebhook(d.body, d.headers['subgate-signature'], 'not_the_secret_0123456789'), /matches/);
    assert.equal(d.headers['subgate-event-id'], got.id);
    assert.match(got.id, /^evt_[0-9a-f]{24}$/);
    assert.deepEqual(Object.keys(got), ['id', 'type', 'created', 'data']);
    assert.equal(got.data.old_tier, 'free');
    assert.equal(got.data.new_tier, 'plus');
    assert.match(got.data.subscription_id, /^sub_/);
    assert.ok(Math.abs(got.data.effective_at - now()) < 30);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(rec.events('subscription.tier_changed').filter((e) => e.data.user_id === 'u_tier').length, 1);
  });

  test('a grant that raises the tier, and its revocation, each send tier_changed; a grant below it sends nothing', async () => {
    const grant = (body) => req(srv, 'POST', '/api/v1/access/grants', { token: SERVICE_KEY, body });
    const g = await grant({ user_id: 'u_granted', tier: 'enterprise', reason: 'contract' });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    const up = await until(() => rec.events('subscription.tier_changed').find((e) => e.data.user_id === 'u_granted'));
    assert.ok(up, `no tier_changed for the grant: ${srv.log.slice(-1500)}`);
    assert.deepEqual([up.data.old_tier, up.data.new_tier, up.data.grant_id, up.data.subscription_id], ['free', 'enterprise', g.body.id, '']);
    const r = await req(srv, 'POST', '/api/v1/access/grants/revoke', { token: SERVICE_KEY, body: { id: g.body.id } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const down = await until(() => rec.events('subscription.tier_changed').find((e) => e.data.user_id === 'u_granted' && e.data.new_tier === 'free'));
    assert.ok(down, 'no tier_changed for the revocation');
    assert.equal(down.data.old_tier, 'enterprise');
    await subscribe(srv, 'u_granted_low');
    assert.ok(await until(() => rec.events('subscription.tier_changed').find((e) => e.data.user_id === 'u_granted_low')));
    assert.equal((await grant({ user_id: 'u_granted_low', tier: 'premium' })).status, 200);
    await new Promise((res) => setTimeout(res, 800));
    assert.equal(rec.events('subscription.tier_changed').filter((e) => e.data.user_id === 'u_granted_low').length, 1,
      'premium below plus: no change, no event');
  });

  test('a grant starting later and ending by the clock: tier_changed at each, once', async () => {
    const starts = now() + 2;
    const ends = starts + 2;
    const g = await req(srv, 'POST', '/api/v1/access/grants',
      { token: SERVICE_KEY, body: { user_id: 'u_clock', tier: 'plus', starts_at: starts, ends_at: ends } });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    await new Promise((res) => setTimeout(res, 500));
    const mine = () => rec.events('subscription.tier_changed').filter((e) => e.data.user_id === 'u_clock');
    assert.equal(mine().length, 0, 'not in force yet: nothing');
    const up = await until(() => mine().find((e) => e.data.new_tier === 'plus'), 8000);
    assert.ok(up, `no tier_changed at the start: ${srv.log.slice(-1500)}`);
    assert.deepEqual([up.data.old_tier, up.data.grant_id, up.data.effective_at], ['free', g.body.id, starts]);
    const down = await until(() => mine().find((e) => e.data.new_tier === 'free'), 8000);
    assert.ok(down, 'no tier_changed at the end');
    assert.deepEqual([down.data.old_tier, down.data.grant_id, down.data.effective_at], ['plus', g.body.id, ends]);
    await new Promise((res) => setTimeout(res, 800));
    assert.equal(mine().length, 2, 'each transition once');
  });

  test('one grant ending as another starts is one tier change', async () => {
    const t = now() + 2;
    const grant = (body) => req(srv, 'POST', '/api/v1/access/grants', { token: SERVICE_KEY, body: { user_id: 'u_handoff', ...body } });
    assert.equal((await grant({ tier: 'plus', ends_at: t })).status, 200);
    assert.equal((await grant({ tier: 'premium', starts_at: t })).status, 200);
    const mine = () => rec.events('subscription.tier_changed').filter((e) => e.data.user_id === 'u_handoff');
    assert.ok(await until(() => mine().find((e) => e.data.new_tier === 'premium'), 8000), 'the hand-off');
    await new Promise((res) => setTimeout(res, 800));
    assert.deepEqual(mine().map((e) => `${e.data.old_tier}>${e.data.new_tier}`), ['free>plus', 'plus>premium'],
      'the grant of plus, then one change at the hand-off');
    assert.equal(mine()[1].data.effective_at, t);
  });

  test('trial_will_end, payment.failed and payment.action_required come from their Stripe events', async () => {
    const ev = subEvent('u_trial');
    assert.equal((await postStripe(srv, ev)).status, 200);
    const will = { ...subEvent('u_trial', { id: ev.data.object.id, type: 'customer.subscription.trial_will_end' }) };
    will.data.object.status = 'trialing';
    assert.equal((await postStripe(srv, will)).status, 200);
    // The same Stripe event again: no second outgoing event.
    assert.equal((await postStripe(srv, will)).status, 200);
    for (const type of ['invoice.payment_failed', 'invoice.payment_action_required']) {
      const t = now();
      const inv = {
        id: `in_${crypto.randomBytes(6).toString('hex')}`, object: 'invoice', customer: 'cus_u_trial',
        subscription: ev.data.object.id, status: 'open', amount_due: 900, amount_paid: 0, currency: 'usd',
        created: t, period_start: t, period_end: t + 86400, number: 'X-1', hosted_invoice_url: 'https://pay.example/i',
      };
      const r = await postStripe(srv, { id: `evt_${crypto.randomBytes(8).toString('hex')}`, object: 'event', type, created: t, data: { object: inv } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const ok = await until(() => rec.events('payment.action_required').length === 1 && rec.events('payment.failed').length === 1 &&
      rec.events('subscription.trial_will_end').length === 1);
    assert.ok(ok, srv.log.slice(-1500));
    const f = rec.events('payment.failed')[0];
    assert.equal(f.data.user_id, 'u_trial');
    assert.equal(f.data.amount_due, 900);
    assert.equal(rec.events('subscription.trial_will_end')[0].data.subscription_id, ev.data.object.id);
  });

  test('a change that fails and rolls back writes no event', async () => {
    const before = rows(outbox(srv).stdout).length;
    const r = await postStripe(srv, subEvent('u_rollback', { price: 'price_nobody_sells' }));
    assert.equal(r.status, 500);
    // The subscription of another user: refused inside the transaction, rolled back.
    const taken = subEvent('u_owner');
    assert.equal((await postStripe(srv, taken)).status, 200);
    await until(() => rec.events('subscription.tier_changed').some((e) => e.data.user_id === 'u_owner'));
    const stolen = subEvent('u_thief', { id: taken.data.object.id, customer: 'cus_u_thief', type: 'customer.subscription.updated' });
    assert.notEqual((await postStripe(srv, stolen)).status, 200);
    await new Promise((x) => setTimeout(x, 500));
    const list = rows(outbox(srv, ['--limit', '1000']).stdout);
    assert.equal(list.length, before + 1, list.join('\n')); // u_owner's only
    assert.ok(!rec.events().some((e) => ['u_rollback', 'u_thief'].includes(e.data.user_id)));
  });

  test('quota thresholds and exhaustion: once per window, not on every call', async () => {
    const u = 'u_quota';
    for (const n of [10, 10, 10]) assert.equal((await consume(srv, u, n)).status, 200); // 10, 20, 30 of 30
    for (let i = 0; i < 3; i++) assert.equal((await consume(srv, u, 1)).status, 402); // refused
    await until(() => rec.events('quota.exhausted').some((e) => e.data.user_id === u));
    await new Promise((x) => setTimeout(x, 600));
    const mine = rec.events().filter((e) => e.type.startsWith('quota.') && e.data.user_id === u);
    assert.deepEqual(mine.map((e) => [e.type, e.data.percent ?? null, e.data.used]).sort(),
      [['quota.exhausted', null, 30], ['quota.threshold', 100, 30], ['quota.threshold', 50, 20]]);
    assert.equal(mine[0].data.limit, 30);
    assert.equal(mine[0].data.quota, 'ai_minutes');
    // The support view lists them with their delivery state, and the ledger of the consumes.
    const view = run(['user', u], { env: { DATABASE_URL: `sqlite:${path.join(srv.dir, 'subgate.db')}` }, cwd: srv.dir });
    assert.equal(view.status, 0, view.stderr);
    assert.match(view.stdout, /^outgoing events \(the user's among the newest \d+\):$/m);
    assert.match(view.stdout, /^  evt_\w+ +quota\.exhausted +delivered +1 attempt\(s\)/m);
    assert.match(view.stdout, /^  evt_\w+ +quota\.threshold +delivered/m);
    assert.equal((view.stdout.match(/^  #\d+ .* consume +ai_minutes +10 +used after/gm) || []).length, 3);
    assert.doesNotMatch(view.stdout, /tier_changed/, 'only the user\'s events');
  });

  test('a receiver that is down gets the event later', async () => {
    let down = true;
    rec.status = () => (down ? 500 : 200);
    await consume(srv, 'u_down', 30);
    const failed = await until(() => rec.deliveries.filter((d) => d.code === 500 && d.body.includes('u_down')).length >= 2);
    assert.ok(failed, 'no failed attempts');
    const list = rows(outbox(srv).stdout).filter((r) => r[1].startsWith('quota.'));
    assert.ok(list.some((r) => r[3] === 'pending' && Number(r[4]) >= 1 && r[5] === 'HTTP 500: ok'), list.join('\n'));
    down = false;
    const ok = await until(() => rec.events('quota.exhausted').some((e) => e.data.user_id === 'u_down'), 10000);
    assert.ok(ok, 'not delivered after the receiver came back');
    rec.status = () => 200;
  });

  test('a receiver that is not listening gets the event once it listens again', async () => {
    const port = rec.server.address().port;
    await stopReceiver(rec);
    await consume(srv, 'u_gone', 30);
    const seen = await until(() => rows(outbox(srv).stdout).some((r) => r[1] === 'quota.exhausted' && Number(r[4]) >= 2 && /connect/i.test(r[5])));
    assert.ok(seen, rows(outbox(srv).stdout).join('\n'));
    await new Promise((r) => rec.server.listen(port, '127.0.0.1', r));
    const ok = await until(() => rec.events('quota.exhausted').some((e) => e.data.user_id === 'u_gone'), 10000);
    assert.ok(ok, 'not delivered after the receiver listened again');
  });

  test('subgate outbox lists, shows failures and replays', async () => {
    const list = rows(outbox(srv).stdout);
    assert.ok(list.length > 0);
    const delivered = list.find((r) => r[3] === 'delivered');
    assert.ok(delivered, list.join('\n'));
    const f = outbox(srv, ['--failed']);
    assert.equal(f.status, 0);
    assert.match(f.stdout, /# no failed events/);
    const shown = outbox(srv, ['show', delivered[0]]);
    assert.equal(shown.status, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`payload: \\{"id":"${delivered[0]}"`));
    const count = () => rec.ok().filter((d) => JSON.parse(d.body).id === delivered[0]).length;
    const was = count();
    const r = outbox(srv, ['replay', delivered[0]]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(await until(() => count() === was + 1), 'the replay was not delivered');
    assert.equal(outbox(srv, ['replay', 'evt_nope']).status, 1);
    assert.equal(outbox(srv, ['bogus']).status, 2);
  });
});

const SKIP = PG_URL ? false : 'SUBGATE_TEST_PG_URL is not set: two instances need a shared PostgreSQL';

describe('two instances on one PostgreSQL database', { skip: SKIP }, () => {
  test('deliver each event exactly once', async () => {
    const rec = await startReceiver();
    const env = {
      DATABASE_URL: createPgDatabase(), STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_PLUS_PRICE_ID: PLUS_PRICE,
      APP_WEBHOOK_URL: rec.url, APP_WEBHOOK_SECRETS: APP_SECRET, APP_WEBHOOK_RETRY_BASE_MS: '200',
      ENTITLEMENT_CACHE_USERS: '0', QUOTA_THRESHOLDS: '10,20,30,40,50,60,70,80',
    };
    const [a, b] = await Promise.all([startServer(env), startServer(env)]);
    try {
      // Slow answers keep each claim busy, so both instances claim while events are due.
      rec.delayMs = 20;
      const users = Array.from({ length: 12 }, (_, i) => `u_multi_${i}`);
      await Promise.all(users.map((u, i) => consume(i % 2 ? a : b, u, 30)));
      const expected = users.length * 9; // thresholds 10..80 (8) and exhausted
      await until(() => rec.ok().length >= expected, 15000);
      await new Promise((x) => setTimeout(x, 1500));
      const ids = rec.ok().map((d) => JSON.parse(d.body).id);
      assert.equal(ids.length, expected);
      assert.equal(new Set(ids).size, expected, 'an event was delivered twice');
    } finally {
      await stopServer(a);
      await stopServer(b);
      await stopReceiver(rec);
    }
  });
});
