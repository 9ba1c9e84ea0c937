// webhook.test.mjs: POST /api/v1/payments/webhook on the real binary (SPEC §5): signed events
// are recorded and applied once, anything unsigned, forged, stale or signed with another secret
// is refused with nothing stored, bad bodies never crash, and `subgate events` shows the inbox.
// Signatures are made with Node's crypto, an implementation independent of ours.
import crypto from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { errorOf, now, req, run, startServer, stopServer, userToken } from './lib.mjs';

const WHSEC = 'whsec_integration_0123456789abcdef';
const OTHER = 'whsec_someone_else_0123456789abcdef';
const PRICE = 'price_premium_integration';
const HOOK = '/api/v1/payments/webhook';

function sign(body, { secret = WHSEC, t = now() } = {}) {
  const v1 = crypto.createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  return `t=${t},v1=${v1}`;
}

function subscription(id, user, fields = {}) {
  const t = now();
  return {
    id, object: 'subscription', customer: `cus_${user}`, status: 'active',
    current_period_start: t - 60, current_period_end: t + 30 * 86400,
    cancel_at_period_end: false, canceled_at: null, cancel_at: null, trial_end: null,
    metadata: { user_id: user },
    items: { object: 'list', data: [{ id: `si_${id}`, price: { id: PRICE } }] },
    ...fields,
  };
}

function event(id, type, object, created = now()) {
  return JSON.stringify({ id, object: 'event', type, created, livemode: false, data: { object } });
}

function post(srv, body, headers = {}) {
  return req(srv, 'POST', HOOK, { raw: body, headers: { 'content-type': 'application/json; charset=utf-8', ...headers } });
}

function postSigned(srv, body, opts) {
  return post(srv, body, { 'stripe-signature': sign(body, opts) });
}

// `subgate events ARGS` against the server's database: the rows as arrays of columns.
function events(srv, args = []) {
  const r = run(['events', ...args], { env: { DATABASE_URL: `sqlite:${path.join(srv.dir, 'subgate.db')}` }, cwd: srv.dir });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split('\t'));
}

const ids = (rows) => rows.map((r) => r[0]);

let srv;
before(async () => {
  // `subgate events replay` writes from another process and the tests look at once: no
  // entitlement cache, whose TTL would let the server answer from what it read before.
  srv = await startServer({
    STRIPE_WEBHOOK_SECRET: `${OTHER},${WHSEC}`, STRIPE_PREMIUM_PRICE_ID: PRICE, ENTITLEMENT_CACHE_USERS: '0',
  });
});
after(async () => { await stopServer(srv); });

test('a signed subscription event is applied and visible to the user', async () => {
  const body = event('evt_sub_created', 'customer.subscription.created', subscription('sub_a', 'user_a'));
  const r = await postSigned(srv, body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual({ received: r.body.received, duplicate: r.body.duplicate }, { received: true, duplicate: false });
  // the answer's exact bytes (written without a JSON tree since #13: the same as before)
  assert.equal(r.text, '{"received":true,"id":"evt_sub_created","duplicate":false,"ignored":false}');
  const s = await req(srv, 'GET', '/api/v1/payments/subscription', { token: userToken('user_a') });
  assert.equal(s.status, 200);
  assert.equal(s.body.tier, 'premium');
  assert.equal(s.body.status, 'active');
  assert.equal(s.body.price_id, PRICE);
});

test('a duplicate answers 200 and is applied once', async () => {
  const body = event('evt_dup', 'customer.subscription.updated', subscription('sub_a', 'user_a'));
  assert.equal((await postSigned(srv, body)).status, 200);
  const again = await postSigned(srv, body);
  assert.equal(again.status, 200);
  assert.equal(again.body.duplicate, true);
  assert.equal(again.text, '{"received":true,"id":"evt_dup","duplicate":true,"ignored":false}');
  const row = events(srv).find((r) => r[0] === 'evt_dup');
  assert.ok(row, 'listed');
  assert.equal(row[3], 'applied');
  assert.equal(row[4], '1', 'attempts: applied once');
});

test('an older event never overwrites a newer state', async () => {
  const t = now();
  const canceled = subscription('sub_b', 'user_b', { status: 'canceled', canceled_at: t - 5 });
  assert.equal((await postSigned(srv, event('evt_b_new', 'customer.subscription.deleted', canceled, t))).status, 200);
  assert.equal((await postSigned(srv, event('evt_b_old', 'customer.subscription.updated', subscription('sub_b', 'user_b'), t - 10))).status, 200);
  const s = await req(srv, 'GET', '/api/v1/payments/subscription', { token: userToken('user_b') });
  assert.equal(s.body.status, 'canceled');
  assert.equal(s.body.tier, 'free');
});

test('bad signatures: 400 and nothing stored', async () => {
  const cases = [
    ['unsigned', 'evt_unsigned', {}],
    ['forged', 'evt_forged', { 'stripe-signature': `t=${now()},v1=${'0'.repeat(64)}` }],
    ['stale', 'evt_stale', null, { t: now() - 301 }],
    ['another secret', 'evt_other', null, { secret: 'whsec_not_ours_0123456789' }],
    ['malformed header', 'evt_malformed_header', { 'stripe-signature': 'garbage' }],
  ];
  for (const [name, id, headers, signOpts] of cases) {
    const body = event(id, 'customer.subscription.created', subscription('sub_x', 'user_x'));
    const r = headers ? await post(srv, body, headers) : await postSigned(srv, body, signOpts);
    assert.equal(r.status, 400, name);
    assert.match(errorOf(r).message, /signature|timestamp|Stripe-Signature/, name);
  }
  const listed = ids(events(srv, ['--limit', '1000']));
  for (const [, id] of cases) assert.ok(!listed.includes(id), `${id} not stored`);
  const s = await req(srv, 'GET', '/api/v1/payments/subscription', { token: userToken('user_x') });
  assert.equal(s.body.status, 'none');
});

test('a body that is not an event: 400, nothing stored, no crash', async () => {
  for (const body of ['not json at all', '{"id": "evt_no_type"}', '[]', '{"id":1,"type":"x","created":1}', '']) {
    const r = await postSigned(srv, body);
    assert.equal(r.status, 400, body);
    errorOf(r);
  }
  assert.ok(!ids(events(srv)).includes('evt_no_type'));
  assert.equal((await req(srv, 'GET', '/healthz')).status, 200);
});

test('a malformed object of a handled type: 400, recorded as failed', async () => {
  const body = event('evt_bad_object', 'customer.subscription.updated', { id: 'sub_bad', status: 7 });
  const r = await postSigned(srv, body);
  assert.equal(r.status, 400);
  const row = events(srv, ['--failed']).find((x) => x[0] === 'evt_bad_object');
  assert.ok(row, 'listed as failed');
  assert.equal(row[3], 'failed');
  assert.match(row[5], /status/);
});

test('an unknown type is recorded as ignored and answered 200', async () => {
  const r = await postSigned(srv, event('evt_ignored', 'customer.updated', { id: 'cus_1', object: 'customer' }));
  assert.equal(r.status, 200);
  assert.equal(r.body.ignored, true);
  assert.equal(r.text, '{"received":true,"id":"evt_ignored","duplicate":false,"ignored":true}');
  assert.equal(events(srv).find((x) => x[0] === 'evt_ignored')[3], 'ignored');
});

test('an invoice of an unknown customer fails with 500 and is applied on a later delivery', async () => {
  const inv = { id: 'in_late', object: 'invoice', customer: 'cus_user_c', subscription: 'sub_c', status: 'paid', amount_due: 999, amount_paid: 999, currency: 'usd', created: now() };
  const body = event('evt_inv_late', 'invoice.paid', inv);
  const r = await postSigned(srv, body);
  assert.equal(r.status, 500);
  assert.match(errorOf(r).message, /no user for stripe customer 'cus_user_c'/);
  assert.equal(events(srv, ['--failed']).find((x) => x[0] === 'evt_inv_late')[4], '1');
  // The subscription links the customer; Stripe's retry then applies the invoice.
  assert.equal((await postSigned(srv, event('evt_sub_c', 'customer.subscription.created', subscription('sub_c', 'user_c')))).status, 200);
  const retry = await postSigned(srv, body);
  assert.equal(retry.status, 200, JSON.stringify(retry.body));
  const list = await req(srv, 'GET', '/api/v1/payments/invoices', { token: userToken('user_c') });
  assert.deepEqual(list.body.data.map((i) => [i.id, i.status]), [['in_late', 'paid']]);
  const row = events(srv).find((x) => x[0] === 'evt_inv_late');
  assert.deepEqual([row[3], row[4], row[5]], ['applied', '2', '']);
});

test('subgate events replay applies a stored event again', () => {
  // With the price configured, as the server has it (without, the replay would be refused).
  const r = run(['events', 'replay', 'evt_sub_created'], { env: { DATABASE_URL: `sqlite:${path.join(srv.dir, 'subgate.db')}`, STRIPE_PREMIUM_PRICE_ID: PRICE }, cwd: srv.dir });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /replayed evt_sub_created \(customer\.subscription\.created\): applied/);
  const missing = run(['events', 'replay', 'evt_nope'], { env: { DATABASE_URL: `sqlite:${path.join(srv.dir, 'subgate.db')}` }, cwd: srv.dir });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /no such event/);
  const usage = run(['events', '--limit', '0'], { env: { DATABASE_URL: `sqlite:${path.join(srv.dir, 'subgate.db')}` }, cwd: srv.dir });
  assert.equal(usage.status, 2);
});

test('the customer link owns the subscription: an event naming another user is refused and changes nothing', async () => {
  const mine = subscription('sub_own', 'user_own');
  assert.equal((await postSigned(srv, event('evt_own', 'customer.subscription.created', mine))).status, 200);
  const cases = [
    ['the same subscription', 'evt_steal', subscription('sub_own', 'user_own', { metadata: { user_id: 'user_thief' } })],
    ['a new one on the linked customer', 'evt_steal_new', subscription('sub_own2', 'user_own', { metadata: { user_id: 'user_thief' } })],
    ['the stored subscription of another customer', 'evt_steal_cus', subscription('sub_own', 'user_thief')],
  ];
  for (const [name, id, obj] of cases) {
    const r = await postSigned(srv, event(id, 'customer.subscription.updated', obj));
    assert.equal(r.status, 409, `${name}: ${JSON.stringify(r.body)}`);
    assert.equal(errorOf(r).code, 'event_conflict', name);
    const row = events(srv, ['--failed']).find((x) => x[0] === id);
    assert.ok(row, `${name}: listed as failed`);
    assert.match(row[5], /linked to user 'user_own'|belongs to another user/, name);
  }
  const own = await req(srv, 'GET', '/api/v1/payments/subscription', { token: userToken('user_own') });
  assert.deepEqual([own.body.tier, own.body.status], ['premium', 'active']);
  const thief = await req(srv, 'GET', '/api/v1/payments/subscription', { token: userToken('user_thief') });
  assert.deepEqual([thief.body.tier, thief.body.status], ['free', 'none']);
});

test('a price no tier names is not applied: the user keeps the tier, the event waits for a replay', async () => {
  const paid = subscription('sub_np', 'user_np');
  assert.equal((await postSigned(srv, event('evt_np_paid', 'customer.subscription.created', paid))).status, 200);
  const moved = subscription('sub_np', 'user_np', { items: { object: 'list', data: [{ id: 'si_np', price: { id: 'price_nobody' } }] } });
  const r = await postSigned(srv, event('evt_np_unknown', 'customer.subscription.updated', moved, now() + 1));
  assert.equal(r.status, 500, JSON.stringify(r.body));
  assert.match(errorOf(r).message, /price 'price_nobody' .* not the price of any tier/);
  const s = await req(srv, 'GET', '/api/v1/payments/subscription', { token: userToken('user_np') });
  assert.deepEqual([s.body.tier, s.body.price_id], ['premium', PRICE]);
  const row = events(srv, ['--failed']).find((x) => x[0] === 'evt_np_unknown');
  assert.ok(row, 'listed by events --failed');
  const db = { DATABASE_URL: `sqlite:${path.join(srv.dir, 'subgate.db')}` };
  const still = run(['events', 'replay', 'evt_np_unknown'], { env: db, cwd: srv.dir });
  assert.notEqual(still.status, 0, 'not applied while the price is unknown');
  const replay = run(['events', 'replay', 'evt_np_unknown'], { env: { ...db, STRIPE_PREMIUM_PRICE_ID: PRICE, STRIPE_PLUS_PRICE_ID: 'price_nobody' }, cwd: srv.dir });
  assert.equal(replay.status, 0, replay.stderr + replay.stdout);
  const after = await req(srv, 'GET', '/api/v1/payments/subscription', { token: userToken('user_np') });
  assert.deepEqual([after.body.tier, after.body.price_id], ['plus', 'price_nobody']);
});

test('times outside 1970..9999 are refused with 400 and change nothing; reads still work', async () => {
  assert.equal((await postSigned(srv, event('evt_time_ok', 'customer.subscription.created', subscription('sub_time', 'user_time')))).status, 200);
  const huge = '9223372036854775807';
  const cases = [
    ['created 2^63-1', `{"id":"evt_time_max","object":"event","type":"customer.subscription.updated","created":${huge},"data":{"object":${JSON.stringify(subscription('sub_time', 'user_time', { status: 'canceled' }))}}}`],
    ['created -1', event('evt_time_neg', 'customer.subscription.updated', subscription('sub_time', 'user_time', { status: 'canceled' }), -1)],
    ['a period end in the year 10000', event('evt_time_10000', 'customer.subscription.updated', subscription('sub_time', 'user_time', { current_period_end: 253402300800 }))],
    ['a negative trial end', event('evt_time_trial', 'customer.subscription.updated', subscription('sub_time', 'user_time', { trial_end: -86400 }))],
    ['a period start of 2^63-1', event('evt_time_start', 'customer.subscription.updated', subscription('sub_time', 'user_time', { current_period_start: 9007199254740991 }))],
  ];
  for (const [name, body] of cases) {
    const r = await postSigned(srv, body);
    assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.body)}`);
    assert.match(errorOf(r).message, /1970 to the year 9999/, name);
  }
  const s = await req(srv, 'GET', '/api/v1/payments/subscription', { token: userToken('user_time') });
  assert.deepEqual([s.status, s.body.tier, s.body.status], [200, 'premium', 'active']);
  const u = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken('user_time') });
  assert.equal(u.status, 200);
});

test('without STRIPE_WEBHOOK_SECRET the webhook answers 503', async () => {
  const plain = await startServer({});
  try {
    const body = event('evt_nosecret', 'customer.subscription.created', subscription('sub_n', 'user_n'));
    const r = await post(plain, body, { 'stripe-signature': sign(body) });
    assert.equal(r.status, 503);
    assert.match(errorOf(r).message, /STRIPE_WEBHOOK_SECRET/);
  } finally {
    await stopServer(plain);
  }
});

test('a downgrade schedule in any order: shown once the subscription names it and the schedule is live, never revived after its end', async () => {
  const LOWER = 'price_lower_not_configured';
  const schedule = (sub, status, fields = {}) => ({
    id: sub.schedule, object: 'subscription_schedule', status, subscription: sub.id, customer: sub.customer,
    end_behavior: 'release',
    current_phase: status === 'active' ? { start_date: sub.current_period_start, end_date: sub.current_period_end } : null,
    phases: [
      { start_date: sub.current_period_start, end_date: sub.current_period_end, items: [{ price: PRICE, quantity: 1 }] },
      { start_date: sub.current_period_end, end_date: sub.current_period_end + 30 * 86400, items: [{ price: LOWER, quantity: 1 }] },
    ],
    ...fields,
  });
  const pending = async (user) => {
    const r = await req(srv, 'GET', '/api/v1/payments/subscription', { token: userToken(user) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.pending_change;
  };
  const t = now();
  for (const [user, scheduleFirst] of [['u_sched_sub_first', false], ['u_sched_sched_first', true]]) {
    const sub = subscription(`sub_${user}`, user, { schedule: `sub_sched_${user}` });
    const evSub = event(`evt_${user}_sub`, 'customer.subscription.updated', sub, t);
    const evSched = event(`evt_${user}_sched`, 'subscription_schedule.created', schedule(sub, 'active'), t);
    for (const body of scheduleFirst ? [evSched, evSub] : [evSub, evSched]) assert.equal((await postSigned(srv, body)).status, 200);
    const p = await pending(user);
    assert.equal(p?.type, 'downgrade', `${user}: ${JSON.stringify(p)}`);
    assert.equal(p.price_id, LOWER);
    assert.equal(p.effective_at, sub.current_period_end);
    const released = event(`evt_${user}_rel`, 'subscription_schedule.released', schedule(sub, 'released', { subscription: null }), t + 5);
    const late = event(`evt_${user}_late`, 'subscription_schedule.updated', schedule(sub, 'active'), t + 9);
    assert.equal((await postSigned(srv, released)).status, 200);
    assert.equal((await postSigned(srv, late)).status, 200);
    assert.equal(await pending(user), null, `${user}: a released schedule stays released, even before the subscription says so`);
  }
});
