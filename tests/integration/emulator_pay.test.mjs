// emulator_pay.test.mjs: paying open invoices in the Stripe emulator (#14), over its HTTP API on
// test clocks: POST /v1/invoices/{id}/pay and the hosted invoice page's card form (declines,
// authentication), pending updates applied on payment or expired after 23 hours (the invoice
// voided), pause (control route) and POST /v1/subscriptions/{id}/resume, the refusal of cancel
// changes on a schedule-managed subscription, the annual Plus price; every request checked
// against Stripe's OpenAPI spec (stripe_params.py).
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { emuControl, startEmulator, stopEmulator, stripeApi, assertStripeRequestsValid } from './lib.mjs';
import { DAY, FEB1, MAR1, T0, emuFlows, itemChange, prorate } from './emu_flows.mjs';

const HOUR = 3600;
const DECLINE = '4000000000000002';
const ACTION = '4000002760003184';
const PAID = ['invoice.paid', 'invoice.payment_succeeded'];
const ISSUED_PAID = ['invoice.created', 'invoice.finalized', ...PAID];

let emu;
const { ok, page, sessionFor, subscribed, advance, eventsAfter, lastEventId, invoices } = emuFlows(() => emu);

async function setCard(cus, card) {
  assert.equal((await emuControl(emu, 'POST', `/_emulator/customers/${cus.id}/card`, { card })).status, 200);
}

// A change to `price` on a declining card with pending_if_incomplete, at `at`.
async function pendingChange(clock, cus, sub, price, at) {
  await advance(clock, at);
  await setCard(cus, DECLINE);
  const upd = await ok('POST', `/v1/subscriptions/${sub.id}`, {
    items: itemChange(sub, price), proration_behavior: 'always_invoice', payment_behavior: 'pending_if_incomplete',
  });
  assert.equal(upd.items.data[0].price.id, sub.items.data[0].price.id);
  assert.equal(upd.pending_update.subscription_items[0].price.id, price);
  const inv = await ok('GET', `/v1/invoices/${upd.latest_invoice}`);
  assert.equal(inv.status, 'open');
  return { upd, inv };
}

before(async () => { emu = await startEmulator(); });
after(async () => { await stopEmulator(emu); });
beforeEach(async () => { assert.equal((await emuControl(emu, 'POST', '/_emulator/reset')).status, 200); });

describe('the annual Plus price', () => {
  test('price_plus_annual is seeded: Plus, 19990 usd a year; monthly Plus to it restarts the cycle', async () => {
    const p = await ok('GET', '/v1/prices/price_plus_annual', { expand: ['product'] });
    assert.deepEqual([p.unit_amount, p.currency, p.recurring.interval, p.product.id, p.product.name],
      [19990, 'usd', 'year', 'prod_plus', 'Plus']);
    const { clock, sub } = await subscribed('price_plus_monthly');
    const at = T0 + 10 * DAY;
    await advance(clock, at);
    const upd = await ok('POST', `/v1/subscriptions/${sub.id}`, { items: itemChange(sub, 'price_plus_annual') });
    assert.deepEqual([upd.current_period_start, upd.current_period_end, upd.plan.interval], [at, at + 365 * DAY, 'year']);
    const inv = await ok('GET', `/v1/invoices/${upd.latest_invoice}`);
    assert.equal(inv.amount_paid, 19990 - prorate(1999, T0, FEB1, at));
  });
});

describe('POST /v1/invoices/{id}/pay', () => {
  test('a pending update: declined, then paid with the saved card; the update applies', async () => {
    const { clock, cus, sub } = await subscribed();
    const at = T0 + 10 * DAY;
    const { upd, inv } = await pendingChange(clock, cus, sub, 'price_plus_monthly', at);
    assert.equal(upd.pending_update.expires_at, at + 23 * HOUR);
    assert.equal(upd.pending_update.billing_cycle_anchor, null);
    assert.equal(inv.amount_due, 1354 - 677);
    let since = await lastEventId();
    const declined = await stripeApi(emu, 'POST', `/v1/invoices/${inv.id}/pay`, {});
    assert.equal(declined.status, 402);
    assert.deepEqual([declined.body.error.type, declined.body.error.code], ['card_error', 'card_declined']);
    assert.deepEqual((await eventsAfter(since)).map((e) => e.type), ['invoice.payment_failed']);
    assert.equal((await ok('GET', `/v1/invoices/${inv.id}`)).attempt_count, 2);
    await setCard(cus, '4242424242424242');
    since = await lastEventId();
    const paid = await ok('POST', `/v1/invoices/${inv.id}/pay`, { expand: ['subscription'] });
    assert.equal(paid.status, 'paid');
    assert.equal(paid.amount_paid, 677);
    assert.equal((await ok('GET', `/v1/charges/${paid.charge}`)).amount, 677);
    assert.equal(paid.subscription.items.data[0].price.id, 'price_plus_monthly');
    assert.equal(paid.subscription.pending_update, null);
    assert.equal(paid.subscription.current_period_end, FEB1);
    const events = await eventsAfter(since);
    assert.deepEqual(events.map((e) => e.type), [...PAID, 'customer.subscription.updated',
      'customer.subscription.pending_update_applied']);
    assert.equal(events[2].data.previous_attributes.items.data[0].price.id, 'price_premium_monthly');
    assert.equal(events[2].data.previous_attributes.pending_update.subscription_items[0].price.id, 'price_plus_monthly');
    const again = await stripeApi(emu, 'POST', `/v1/invoices/${inv.id}/pay`, {});
    assert.equal(again.status, 400);
    assert.equal(again.body.error.type, 'invalid_request_error');
    assert.equal(again.body.error.message, 'Invoice is already paid');
    assert.equal((await stripeApi(emu, 'POST', '/v1/invoices/in_nope/pay', {})).status, 404);
  });

  test('a card that needs authentication: 402 and invoice.payment_action_required', async () => {
    const { clock, cus, sub } = await subscribed();
    const { inv } = await pendingChange(clock, cus, sub, 'price_plus_monthly', T0 + 2 * DAY);
    await setCard(cus, ACTION);
    const since = await lastEventId();
    const r = await stripeApi(emu, 'POST', `/v1/invoices/${inv.id}/pay`, { payment_method: 'pm_card_visa' });
    assert.equal(r.status, 402);
    assert.equal(r.body.error.code, 'invoice_payment_intent_requires_action');
    assert.deepEqual((await eventsAfter(since)).map((e) => e.type), ['invoice.payment_action_required']);
    assert.equal((await ok('GET', `/v1/invoices/${inv.id}`)).status, 'open');
  });

  test('a past_due subscription whose latest invoice is paid becomes active', async () => {
    const { clock, cus, sub } = await subscribed();
    await setCard(cus, DECLINE);
    await advance(clock, FEB1 + 60);
    const due = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.equal(due.status, 'past_due');
    await setCard(cus, '4242424242424242');
    const since = await lastEventId();
    assert.equal((await ok('POST', `/v1/invoices/${due.latest_invoice}/pay`, {})).amount_paid, 999);
    const events = await eventsAfter(since);
    assert.deepEqual(events.map((e) => e.type), [...PAID, 'customer.subscription.updated']);
    assert.deepEqual(events[2].data.previous_attributes, { status: 'past_due' });
    assert.equal((await ok('GET', `/v1/subscriptions/${sub.id}`)).status, 'active');
  });
});

describe('the hosted invoice page', () => {
  test('a card form while open: a decline, then 4242 pays, starts the new cycle and becomes the saved card', async () => {
    const { clock, cus, sub } = await subscribed();
    const at = T0 + 10 * DAY;
    const { upd, inv } = await pendingChange(clock, cus, sub, 'price_premium_annual', at);
    assert.equal(upd.pending_update.billing_cycle_anchor, at);
    assert.equal(inv.amount_due, 9990 - 677);
    const url = new URL(inv.hosted_invoice_url).pathname;
    assert.equal(url, `/invoice/${inv.id}`);
    assert.match((await page('GET', url)).text, /name="card"/);
    let since = await lastEventId();
    const bad = await page('POST', `${url}/pay`, { card: '4000 0000 0000 0002' });
    assert.equal(bad.status, 402);
    assert.match(bad.text, /Your card was declined\./);
    assert.deepEqual((await eventsAfter(since)).map((e) => e.type), ['invoice.payment_failed']);
    assert.equal((await page('POST', `${url}/pay`, { card: '1234' })).status, 402);
    since = await lastEventId();
    const r = await page('POST', `${url}/pay`, { card: '4242 4242 4242 4242' });
    assert.equal(r.status, 303);
    assert.equal(r.location, url);
    const shown = await page('GET', url);
    assert.match(shown.text, /Status: paid\./);
    assert.doesNotMatch(shown.text, /name="card"/);
    assert.equal((await page('POST', `${url}/pay`, { card: '4242 4242 4242 4242' })).status, 409);
    const events = await eventsAfter(since);
    assert.deepEqual(events.map((e) => e.type), [...PAID, 'customer.subscription.updated',
      'customer.subscription.pending_update_applied']);
    assert.equal(events[2].data.previous_attributes.current_period_end, FEB1);
    const s = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.deepEqual([s.items.data[0].price.id, s.current_period_start, s.current_period_end, s.billing_cycle_anchor, s.pending_update],
      ['price_premium_annual', at, at + 365 * DAY, at, null]);
    await advance(clock, at + 365 * DAY + 60);
    const invs = await invoices(sub);
    assert.deepEqual(invs.map((i) => [i.billing_reason, i.status, i.amount_paid]), [
      ['subscription_create', 'paid', 999], ['subscription_update', 'paid', 9990 - 677], ['subscription_cycle', 'paid', 9990]]);
  });

  test('an authentication card goes through the 3DS step: failing it pays nothing, completing it pays', async () => {
    const { clock, cus, sub } = await subscribed();
    await setCard(cus, DECLINE);
    await advance(clock, FEB1 + 60);
    const due = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.equal(due.status, 'past_due');
    const url = `/invoice/${due.latest_invoice}`;
    assert.equal((await page('POST', `${url}/3ds/complete`)).status, 409);
    const since = await lastEventId();
    const auth = await page('POST', `${url}/pay`, { card: '4000 0025 0000 3155' });
    assert.equal(auth.status, 200);
    assert.match(auth.text, new RegExp(`action="${url}/3ds/complete"`));
    const failed = await page('POST', `${url}/3ds/fail`);
    assert.equal(failed.status, 402);
    assert.match(failed.text, /unable to authenticate/);
    assert.equal((await ok('GET', `/v1/invoices/${due.latest_invoice}`)).status, 'open');
    assert.equal((await page('POST', `${url}/pay`, { card: '4000 0025 0000 3155' })).status, 200);
    const r = await page('POST', `${url}/3ds/complete`);
    assert.equal(r.status, 303);
    const events = await eventsAfter(since);
    assert.deepEqual(events.map((e) => e.type), [...PAID, 'customer.subscription.updated']);
    assert.equal((await ok('GET', `/v1/subscriptions/${sub.id}`)).status, 'active');
    await advance(clock, MAR1 + 60);
    assert.equal((await invoices(sub)).at(-1).status, 'paid');
  });
});

describe('pending updates expire', () => {
  test('after 23 hours on clock advance: the invoice is voided and the update discarded', async () => {
    const { clock, cus, sub } = await subscribed();
    const at = T0 + 10 * DAY;
    const { inv } = await pendingChange(clock, cus, sub, 'price_plus_monthly', at);
    await advance(clock, at + 23 * HOUR - 1);
    assert.notEqual((await ok('GET', `/v1/subscriptions/${sub.id}`)).pending_update, null);
    const since = await lastEventId();
    await advance(clock, at + 23 * HOUR);
    const events = await eventsAfter(since);
    assert.deepEqual(events.map((e) => e.type), ['invoice.voided', 'customer.subscription.updated',
      'customer.subscription.pending_update_expired', 'test_helpers.test_clock.ready']);
    assert.equal(events[0].data.object.status_transitions.voided_at, at + 23 * HOUR);
    assert.equal(events[1].data.previous_attributes.pending_update.expires_at, at + 23 * HOUR);
    const s = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.deepEqual([s.pending_update, s.items.data[0].price.id, s.status], [null, 'price_premium_monthly', 'active']);
    assert.equal((await ok('GET', `/v1/invoices/${inv.id}`)).status, 'void');
    const pay = await stripeApi(emu, 'POST', `/v1/invoices/${inv.id}/pay`, {});
    assert.equal(pay.status, 400);
    assert.equal(pay.body.error.type, 'invalid_request_error');
    assert.equal((await page('POST', `/invoice/${inv.id}/pay`, { card: '4242424242424242' })).status, 409);
    await setCard(cus, '4242424242424242');
    await advance(clock, FEB1 + 60);
    assert.deepEqual((await invoices(sub)).map((i) => [i.status, i.amount_paid]), [['paid', 999], ['void', 0], ['paid', 999]]);
  });

  test('an update made an hour before the period ends expires at the period end, before the renewal', async () => {
    const { clock, cus, sub } = await subscribed();
    const { upd } = await pendingChange(clock, cus, sub, 'price_plus_monthly', FEB1 - HOUR);
    assert.equal(upd.pending_update.expires_at, FEB1);
    const since = await lastEventId();
    await advance(clock, FEB1 + 60);
    assert.deepEqual((await eventsAfter(since)).map((e) => e.type), ['invoice.voided', 'customer.subscription.updated',
      'customer.subscription.pending_update_expired', 'customer.subscription.updated', 'invoice.created',
      'invoice.finalized', 'invoice.payment_failed', 'test_helpers.test_clock.ready']);
    const s = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.deepEqual([s.status, s.items.data[0].price.id], ['past_due', 'price_premium_monthly']);
  });
});

describe('pause and resume', () => {
  test('paused: no invoices; resumed (billing_cycle_anchor now): a new cycle charged at once', async () => {
    const { clock, sub } = await subscribed();
    await advance(clock, T0 + 10 * DAY);
    let since = await lastEventId();
    const paused = await emuControl(emu, 'POST', `/_emulator/subscriptions/${sub.id}/pause`);
    assert.equal(paused.status, 200);
    assert.equal(paused.body.status, 'paused');
    const events = await eventsAfter(since);
    assert.deepEqual(events.map((e) => e.type), ['customer.subscription.updated', 'customer.subscription.paused']);
    assert.deepEqual(events[0].data.previous_attributes, { status: 'active' });
    assert.equal((await emuControl(emu, 'POST', `/_emulator/subscriptions/${sub.id}/pause`)).status, 400);
    assert.equal((await emuControl(emu, 'POST', '/_emulator/subscriptions/sub_nope/pause')).status, 404);
    const at = FEB1 + 10 * DAY;
    await advance(clock, at);
    assert.equal((await invoices(sub)).length, 1);
    since = await lastEventId();
    const r = await ok('POST', `/v1/subscriptions/${sub.id}/resume`, {});
    assert.deepEqual([r.status, r.current_period_start, r.current_period_end, r.billing_cycle_anchor],
      ['active', at, at + 28 * DAY, at]);
    const inv = await ok('GET', `/v1/invoices/${r.latest_invoice}`);
    assert.deepEqual([inv.billing_reason, inv.status, inv.amount_paid, inv.period_start, inv.period_end],
      ['subscription_update', 'paid', 999, at, at + 28 * DAY]);
    const resumed = await eventsAfter(since);
    assert.deepEqual(resumed.map((e) => e.type), ['customer.subscription.updated', 'customer.subscription.resumed', ...ISSUED_PAID]);
    assert.equal(resumed[0].data.previous_attributes.status, 'paused');
    assert.equal(resumed[0].data.previous_attributes.current_period_end, FEB1);
    const again = await stripeApi(emu, 'POST', `/v1/subscriptions/${sub.id}/resume`, {});
    assert.equal(again.status, 400);
    assert.equal(again.body.error.type, 'invalid_request_error');
    await advance(clock, at + 28 * DAY + 60);
    assert.equal((await invoices(sub)).at(-1).billing_reason, 'subscription_cycle');
  });

  test('billing_cycle_anchor unchanged: the current period, prorated (always_invoice) or free (none)', async () => {
    const { clock, sub } = await subscribed();
    await emuControl(emu, 'POST', `/_emulator/subscriptions/${sub.id}/pause`);
    const at = FEB1 + 10 * DAY;
    await advance(clock, at);
    const r = await ok('POST', `/v1/subscriptions/${sub.id}/resume`, {
      billing_cycle_anchor: 'unchanged', proration_behavior: 'always_invoice', proration_date: at,
    });
    assert.deepEqual([r.status, r.current_period_start, r.current_period_end, r.billing_cycle_anchor],
      ['active', FEB1, MAR1, sub.billing_cycle_anchor]);
    const inv = await ok('GET', `/v1/invoices/${r.latest_invoice}`);
    assert.equal(inv.amount_paid, prorate(999, FEB1, MAR1, at));
    assert.equal(inv.lines.data[0].proration, true);
    const other = await subscribed('price_plus_monthly');
    await emuControl(emu, 'POST', `/_emulator/subscriptions/${other.sub.id}/pause`);
    const r2 = await ok('POST', `/v1/subscriptions/${other.sub.id}/resume`, { billing_cycle_anchor: 'unchanged', proration_behavior: 'none' });
    assert.equal(r2.latest_invoice, other.sub.latest_invoice);
    assert.equal(r2.status, 'active');
  });

  test('a declined resume charge leaves the subscription past_due until the invoice is paid', async () => {
    const { clock, cus, sub } = await subscribed();
    await emuControl(emu, 'POST', `/_emulator/subscriptions/${sub.id}/pause`);
    await advance(clock, T0 + 3 * DAY);
    await setCard(cus, DECLINE);
    const r = await ok('POST', `/v1/subscriptions/${sub.id}/resume`, { billing_cycle_anchor: 'now' });
    assert.equal(r.status, 'past_due');
    const inv = await ok('GET', `/v1/invoices/${r.latest_invoice}`);
    assert.equal(inv.status, 'open');
    const p = await page('POST', `/invoice/${inv.id}/pay`, { card: '4242424242424242' });
    assert.equal(p.status, 303);
    assert.equal((await ok('GET', `/v1/subscriptions/${sub.id}`)).status, 'active');
  });
});

describe('schedules own cancellation', () => {
  test('cancel_at_period_end or cancel_at on a schedule-managed subscription: 400, until it is released', async () => {
    const { sub } = await subscribed();
    const sched = await ok('POST', '/v1/subscription_schedules', { from_subscription: sub.id });
    for (const params of [{ cancel_at_period_end: true }, { cancel_at: FEB1 }]) {
      const r = await stripeApi(emu, 'POST', `/v1/subscriptions/${sub.id}`, params);
      assert.equal(r.status, 400);
      assert.equal(r.body.error.type, 'invalid_request_error');
      assert.equal(r.body.error.message, `The subscription is managed by the subscription schedule \`${sched.id}\`, and updating any cancelation behavior directly is not allowed. Please update the schedule instead.`);
    }
    assert.equal((await ok('GET', `/v1/subscriptions/${sub.id}`)).cancel_at_period_end, false);
    await ok('POST', `/v1/subscriptions/${sub.id}`, { metadata: { note: 'fine' } });
    await ok('POST', `/v1/subscription_schedules/${sched.id}/release`, {});
    assert.equal((await ok('POST', `/v1/subscriptions/${sub.id}`, { cancel_at_period_end: true })).cancel_at_period_end, true);
  });
});

describe('request log', () => {
  test('every request of these flows is valid for Stripe\'s OpenAPI spec', async () => {
    const { clock, cus, sub } = await subscribed();
    const { inv } = await pendingChange(clock, cus, sub, 'price_plus_annual', T0 + DAY);
    await setCard(cus, '4242424242424242');
    await ok('POST', `/v1/invoices/${inv.id}/pay`, { expand: ['subscription', 'charge'], payment_method: 'pm_card_visa', off_session: true });
    await emuControl(emu, 'POST', `/_emulator/subscriptions/${sub.id}/pause`);
    await ok('POST', `/v1/subscriptions/${sub.id}/resume`, {
      billing_cycle_anchor: 'unchanged', proration_behavior: 'create_prorations', proration_date: T0 + DAY, expand: ['latest_invoice'],
    });
    await ok('POST', '/v1/subscription_schedules', { from_subscription: sub.id });
    await stripeApi(emu, 'POST', `/v1/subscriptions/${sub.id}`, { cancel_at_period_end: true });
    await stripeApi(emu, 'POST', `/v1/subscriptions/${sub.id}`, { cancel_at: FEB1 });
    const seen = await assertStripeRequestsValid(emu);
    for (const want of ['POST /v1/invoices/{id}/pay', 'POST /v1/subscriptions/{id}/resume', 'POST /v1/subscriptions/{id}']) {
      assert.ok(seen.has(want), want);
    }
  });
});
