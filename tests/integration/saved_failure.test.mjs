// saved_failure.test.mjs: a Stripe 500 that Stripe saved under subgate's Idempotency-Key. Stripe
// replays such a 500 (Idempotent-Replayed: true) to every request with the key for 24 hours, and
// subgate's keys are stable per user (customer), per ask (checkout session) and per state and
// target (upgrade), so the user could not check out or upgrade for a day. The emulator's
// 500_saved fault keeps its 500 under the key as Stripe does (500_applied after the request took
// effect: Stripe's indeterminate 500); subgate walks on to the next key of a chain derived from
// the saved one (src/stripe/client.c), and these tests hold it to: the checkout succeeds on the
// user's first request, concurrent requests still share one customer and one session, an
// indeterminate 500 leaves at most an object nobody uses, and an upgrade succeeds on the next
// request with one change charged.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CANCEL, DAY, SUCCESS, T0, billingFlows, paymentsCalls, startBilling, stopBilling } from './billing_lib.mjs';
import { emuControl } from './lib.mjs';

const WHSEC = 'whsec_saved_failure_integration';

let emu;
let srv;
const flows = billingFlows(() => emu);
const { stripe, advance, stripeInvoices } = flows;
const { call, ok, subscriber } = paymentsCalls(() => srv, flows);

before(async () => {
  ({ emu, srv } = await startBilling(WHSEC));
});

after(async () => stopBilling({ emu, srv }));

// The next `count` requests of method and path answer a 500 Stripe keeps under their key.
async function savedFault(path, mode = '500_saved', count = 1) {
  const r = await emuControl(emu, 'POST', '/_emulator/faults', { mode, count, method: 'POST', path });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

async function faultsLeft() {
  return (await emuControl(emu, 'GET', '/_emulator/faults')).body.count;
}

const checkout = (user) => call(user, 'POST', '/create-checkout-session', { tier: 'premium', success_url: SUCCESS, cancel_url: CANCEL });

async function customersOf(user) {
  return (await stripe('GET', '/v1/customers', { email: `${user}@example.com`, limit: 100 })).data;
}

async function sessionsOf(cus) {
  return (await stripe('GET', '/v1/checkout/sessions', { customer: cus, limit: 100 })).data;
}

// The user's checkout succeeds on the first request; the last answer.
async function checkoutOk(user) {
  const r = await checkout(user);
  assert.equal(r.status, 200, `the first request: ${JSON.stringify(r.body)}`);
  assert.match(r.body.session_id, /^cs_/);
  return r.body;
}

describe('a saved 500 does not lock the user out of checkout', () => {
  test('on POST /v1/customers: one customer, and the checkout succeeds', async () => {
    const user = 'saved_customer';
    await savedFault('/v1/customers');
    const s = await checkoutOk(user);
    assert.equal(await faultsLeft(), 0, 'the fault was met');
    const cus = await customersOf(user);
    assert.equal(cus.length, 1);
    assert.deepEqual((await sessionsOf(cus[0].id)).map((x) => x.id), [s.session_id]);
    const again = await checkoutOk(user); // the same ask: the same session
    assert.equal(again.session_id, s.session_id);
  });

  test('on POST /v1/checkout/sessions: one session, and the checkout succeeds', async () => {
    const user = 'saved_session';
    await savedFault('/v1/checkout/sessions');
    const s = await checkoutOk(user);
    assert.equal(await faultsLeft(), 0, 'the fault was met');
    const cus = await customersOf(user);
    assert.equal(cus.length, 1);
    assert.deepEqual((await sessionsOf(cus[0].id)).map((x) => x.id), [s.session_id]);
  });

  test('two concurrent checkouts meet a saved 500 on the customer: one customer, one session', async () => {
    const user = 'saved_concurrent';
    await savedFault('/v1/customers');
    const [a, b] = await Promise.all([checkout(user), checkout(user)]);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(b.status, 200, JSON.stringify(b.body));
    assert.equal(a.body.session_id, b.body.session_id);
    const cus = await customersOf(user);
    assert.equal(cus.length, 1);
    assert.equal((await sessionsOf(cus[0].id)).length, 1);
  });

  test('two concurrent checkouts after a saved 500 on the session: one session', async () => {
    const user = 'saved_concurrent_session';
    await checkoutOk('saved_warmup'); // another user: nothing of this one's is made yet
    await savedFault('/v1/checkout/sessions');
    const [a, b] = await Promise.all([checkout(user), checkout(user)]);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(b.status, 200, JSON.stringify(b.body));
    assert.equal(a.body.session_id, b.body.session_id);
    assert.equal(await faultsLeft(), 0, 'the fault was met');
    const cus = await customersOf(user);
    assert.equal(cus.length, 1);
    assert.deepEqual((await sessionsOf(cus[0].id)).map((x) => x.id), [a.body.session_id]);
  });

  test('an indeterminate 500 (the customer was made): a second, unused customer at most', async () => {
    const user = 'applied_customer';
    await savedFault('/v1/customers', '500_applied');
    const s = await checkoutOk(user);
    const cus = await customersOf(user);
    assert.ok(cus.length <= 2, `${cus.length} customers`);
    const used = [];
    for (const c of cus) if ((await sessionsOf(c.id)).length) used.push(c.id);
    assert.equal(used.length, 1, 'one customer has the session; the other has nothing');
    assert.deepEqual((await sessionsOf(used[0])).map((x) => x.id), [s.session_id]);
    assert.equal((await checkoutOk(user)).session_id, s.session_id, 'and stays the user\'s');
  });
});

describe('a saved 500 on an upgrade', () => {
  test('fails that request only: the next one upgrades, charged once', async () => {
    const user = 'saved_upgrade';
    const ctx = await subscriber(user);
    await advance(ctx.clock, T0 + 10 * DAY);
    await savedFault(`/v1/subscriptions/${ctx.sub.id}`);
    // Its own retry met the saved 500 after a 500 of its own: whether that took effect is
    // unknown, so this request stops; the next reads the subscription again and goes on.
    const first = await call(user, 'POST', '/change-plan', { tier: 'plus' });
    assert.equal(first.status, 502, JSON.stringify(first.body));
    const next = await ok(user, 'POST', '/change-plan', { tier: 'plus' });
    assert.equal(next.tier, 'plus');
    assert.equal(next.change.type, 'upgrade');
    const invs = await stripeInvoices(ctx.sub.id);
    assert.equal(invs.filter((i) => i.billing_reason === 'subscription_update').length, 1);
    assert.equal((await ok(user, 'GET', '/subscription')).tier, 'plus');
  });

  test('an indeterminate 500 (the upgrade happened): the next request changes nothing more', async () => {
    const user = 'applied_upgrade';
    const ctx = await subscriber(user);
    await advance(ctx.clock, T0 + 10 * DAY);
    await savedFault(`/v1/subscriptions/${ctx.sub.id}`, '500_applied');
    const first = await call(user, 'POST', '/change-plan', { tier: 'plus' });
    assert.equal(first.status, 502, JSON.stringify(first.body));
    const next = await ok(user, 'POST', '/change-plan', { tier: 'plus' });
    assert.equal(next.tier, 'plus');
    const invs = await stripeInvoices(ctx.sub.id);
    assert.equal(invs.filter((i) => i.billing_reason === 'subscription_update').length, 1);
  });
});
