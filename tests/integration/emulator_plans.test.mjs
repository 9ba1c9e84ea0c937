// emulator_plans.test.mjs: plan changes in the Stripe emulator (#14 item 6), over its HTTP API
// on a test clock: upgrades with proration invoices (always_invoice, create_prorations), the
// upcoming-invoice preview, declines and authentication on a change, downgrades scheduled at
// period end through subscription schedules (applied, or released), cancel and resume,
// monthly to annual, promotion codes and automatic tax at checkout, the portal's plan switch;
// every request checked against Stripe's OpenAPI spec (stripe_params.py).
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { emuControl, startEmulator, stopEmulator, stripeApi, assertStripeRequestsValid } from './lib.mjs';
import { DAY, FEB1, MAR1, T0, emuFlows, itemChange, prorate } from './emu_flows.mjs';

let emu;
const { ok, page, sessionFor, subscribed, advance, eventsAfter, lastEventId, invoices } = emuFlows(() => emu);

before(async () => { emu = await startEmulator(); });
after(async () => { await stopEmulator(emu); });
beforeEach(async () => { assert.equal((await emuControl(emu, 'POST', '/_emulator/reset')).status, 200); });

describe('subscription updates with prorations', () => {
  test('always_invoice: the preview, then a paid proration invoice of the same amount at once', async () => {
    const { clock, sub } = await subscribed();
    const at = T0 + 10 * DAY;
    await advance(clock, at);
    const credit = prorate(999, T0, FEB1, at);
    const charge = prorate(1999, T0, FEB1, at);
    assert.deepEqual([credit, charge], [677, 1354]);
    const preview = await ok('GET', '/v1/invoices/upcoming', {
      customer: sub.customer,
      subscription: sub.id,
      subscription_items: itemChange(sub, 'price_plus_monthly'),
      subscription_proration_behavior: 'always_invoice',
      subscription_proration_date: at,
    });
    assert.equal(preview.object, 'invoice');
    assert.equal(preview.id, undefined);
    assert.equal(preview.amount_due, charge - credit);
    assert.deepEqual(preview.lines.data.map((l) => [l.amount, l.proration]), [[-credit, true], [charge, true]]);
    const since = await lastEventId();
    const upd = await ok('POST', `/v1/subscriptions/${sub.id}`, {
      items: itemChange(sub, 'price_plus_monthly'),
      proration_behavior: 'always_invoice',
      proration_date: at,
      payment_behavior: 'error_if_incomplete',
    });
    assert.equal(upd.items.data[0].price.id, 'price_plus_monthly');
    assert.equal(upd.current_period_end, FEB1);
    const inv = await ok('GET', `/v1/invoices/${upd.latest_invoice}`);
    assert.equal(inv.billing_reason, 'subscription_update');
    assert.equal(inv.status, 'paid');
    assert.equal(inv.amount_paid, preview.amount_due);
    assert.deepEqual(inv.lines.data.map((l) => l.amount), preview.lines.data.map((l) => l.amount));
    assert.match(inv.lines.data[0].description, /^Unused time on Premium after 11 Jan 2026$/);
    assert.match(inv.lines.data[1].description, /^Remaining time on Plus after 11 Jan 2026$/);
    assert.equal((await ok('GET', `/v1/charges/${inv.charge}`)).amount, 677);
    const events = await eventsAfter(since);
    assert.deepEqual(events.map((e) => e.type), ['customer.subscription.updated', 'invoice.created',
      'invoice.finalized', 'invoice.paid', 'invoice.payment_succeeded']);
    assert.equal(events[0].data.previous_attributes.items.data[0].price.id, 'price_premium_monthly');
  });

  test('create_prorations: pending items on the next invoice, as the preview shows', async () => {
    const { clock, sub } = await subscribed();
    const at = T0 + 10 * DAY;
    await advance(clock, at);
    const upd = await ok('POST', `/v1/subscriptions/${sub.id}`, {
      items: itemChange(sub, 'price_plus_monthly'),
      proration_behavior: 'create_prorations',
    });
    assert.equal(upd.latest_invoice, sub.latest_invoice);
    assert.equal((await invoices(sub)).length, 1);
    const next = await ok('GET', '/v1/invoices/upcoming', { subscription: sub.id });
    assert.equal(next.amount_due, 1354 - 677 + 1999);
    assert.equal(next.next_payment_attempt, FEB1);
    assert.deepEqual(next.lines.data.map((l) => [l.amount, l.proration]), [[-677, true], [1354, true], [1999, false]]);
    await advance(clock, FEB1 + 60);
    const invs = await invoices(sub);
    assert.equal(invs.length, 2);
    assert.equal(invs[1].billing_reason, 'subscription_cycle');
    assert.equal(invs[1].amount_paid, next.amount_due);
    assert.deepEqual(invs[1].lines.data.map((l) => l.amount), [-677, 1354, 1999]);
    const after = await ok('GET', '/v1/invoices/upcoming', { customer: sub.customer });
    assert.equal(after.amount_due, 1999);
  });

  test('proration_behavior none switches the price and invoices nothing', async () => {
    const { clock, sub } = await subscribed();
    await advance(clock, T0 + 5 * DAY);
    await ok('POST', `/v1/subscriptions/${sub.id}`, { items: itemChange(sub, 'price_plus_monthly'), proration_behavior: 'none' });
    assert.equal((await ok('GET', '/v1/invoices/upcoming', { subscription: sub.id })).amount_due, 1999);
  });

  test('a declining card: the invoice stays open and the subscription past_due; error_if_incomplete refuses; pending_if_incomplete waits', async () => {
    const { clock, cus, sub } = await subscribed();
    await advance(clock, T0 + 10 * DAY);
    assert.equal((await emuControl(emu, 'POST', `/_emulator/customers/${cus.id}/card`, { card: '4000000000000002' })).status, 200);
    const refused = await stripeApi(emu, 'POST', `/v1/subscriptions/${sub.id}`, {
      items: itemChange(sub, 'price_plus_monthly'), proration_behavior: 'always_invoice', payment_behavior: 'error_if_incomplete',
    });
    assert.equal(refused.status, 402);
    assert.equal(refused.body.error.type, 'card_error');
    assert.equal(refused.body.error.code, 'card_declined');
    assert.equal((await ok('GET', `/v1/subscriptions/${sub.id}`)).items.data[0].price.id, 'price_premium_monthly');
    const pending = await ok('POST', `/v1/subscriptions/${sub.id}`, {
      items: itemChange(sub, 'price_plus_monthly'), proration_behavior: 'always_invoice', payment_behavior: 'pending_if_incomplete',
    });
    assert.equal(pending.items.data[0].price.id, 'price_premium_monthly');
    assert.equal(pending.pending_update.subscription_items[0].price.id, 'price_plus_monthly');
    assert.equal(pending.status, 'active');
    const since = await lastEventId();
    const upd = await ok('POST', `/v1/subscriptions/${sub.id}`, {
      items: itemChange(sub, 'price_plus_monthly'), proration_behavior: 'always_invoice', payment_behavior: 'allow_incomplete',
    });
    assert.equal(upd.status, 'past_due');
    assert.equal(upd.items.data[0].price.id, 'price_plus_monthly');
    const inv = await ok('GET', `/v1/invoices/${upd.latest_invoice}`);
    assert.equal(inv.status, 'open');
    assert.equal(inv.amount_due, 677);
    assert.deepEqual((await eventsAfter(since)).map((e) => e.type), ['customer.subscription.updated', 'invoice.created',
      'invoice.finalized', 'invoice.payment_failed']);
  });

  test('a card that needs authentication: invoice.payment_action_required', async () => {
    const { clock, cus, sub } = await subscribed();
    await advance(clock, T0 + 10 * DAY);
    await emuControl(emu, 'POST', `/_emulator/customers/${cus.id}/card`, { card: '4000002760003184' });
    const since = await lastEventId();
    const upd = await ok('POST', `/v1/subscriptions/${sub.id}`, { items: itemChange(sub, 'price_plus_monthly'), proration_behavior: 'always_invoice' });
    assert.equal((await ok('GET', `/v1/invoices/${upd.latest_invoice}`)).status, 'open');
    assert.deepEqual((await eventsAfter(since)).map((e) => e.type), ['customer.subscription.updated', 'invoice.created',
      'invoice.finalized', 'invoice.payment_action_required']);
  });

  test('monthly to annual restarts the billing cycle and charges the year less the unused month', async () => {
    const { clock, sub } = await subscribed();
    const at = T0 + 10 * DAY;
    await advance(clock, at);
    const preview = await ok('GET', '/v1/invoices/upcoming', { subscription: sub.id, subscription_items: itemChange(sub, 'price_premium_annual') });
    assert.equal(preview.amount_due, 9990 - 677);
    const upd = await ok('POST', `/v1/subscriptions/${sub.id}`, { items: itemChange(sub, 'price_premium_annual') });
    assert.equal(upd.current_period_start, at);
    assert.equal(upd.billing_cycle_anchor, at);
    assert.equal(upd.current_period_end, at + 365 * DAY);
    assert.equal(upd.plan.interval, 'year');
    const inv = await ok('GET', `/v1/invoices/${upd.latest_invoice}`);
    assert.equal(inv.amount_paid, preview.amount_due);
    assert.deepEqual(inv.lines.data.map((l) => [l.amount, l.proration]), [[-677, true], [9990, false]]);
    const events = await eventsAfter((await eventsAfter()).find((e) => e.type === 'test_helpers.test_clock.ready').id);
    const updated = events.find((e) => e.type === 'customer.subscription.updated');
    assert.equal(updated.data.previous_attributes.current_period_end, FEB1);
  });

  test('cancel_at_period_end true, then false (resume): the subscription renews', async () => {
    const { clock, sub } = await subscribed();
    const since = await lastEventId();
    const c = await ok('POST', `/v1/subscriptions/${sub.id}`, { cancel_at_period_end: true });
    assert.equal(c.cancel_at, FEB1);
    assert.equal((await stripeApi(emu, 'GET', '/v1/invoices/upcoming', { subscription: sub.id })).status, 404);
    const r = await ok('POST', `/v1/subscriptions/${sub.id}`, { cancel_at_period_end: false });
    assert.equal(r.cancel_at_period_end, false);
    assert.equal(r.cancel_at, null);
    const events = await eventsAfter(since);
    assert.deepEqual(events.map((e) => e.data.previous_attributes.cancel_at_period_end), [false, true]);
    await advance(clock, FEB1 + 60);
    const s = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.equal(s.status, 'active');
    assert.equal(s.current_period_start, FEB1);
  });
});

describe('subscription schedules', () => {
  async function scheduleDowngrade(sub) {
    const sched = await ok('POST', '/v1/subscription_schedules', { from_subscription: sub.id });
    assert.match(sched.id, /^sub_sched_/);
    assert.equal(sched.status, 'active');
    assert.deepEqual(sched.current_phase, { start_date: T0, end_date: FEB1 });
    assert.equal((await ok('GET', `/v1/subscriptions/${sub.id}`)).schedule, sched.id);
    const upd = await ok('POST', `/v1/subscription_schedules/${sched.id}`, {
      end_behavior: 'release',
      proration_behavior: 'none',
      phases: [
        { items: [{ price: 'price_plus_monthly', quantity: 1 }], start_date: T0, end_date: FEB1 },
        { items: [{ price: 'price_premium_monthly', quantity: 1 }], iterations: 1 },
      ],
    });
    assert.deepEqual(upd.phases.map((p) => [p.items[0].price, p.start_date, p.end_date]),
      [['price_plus_monthly', T0, FEB1], ['price_premium_monthly', FEB1, MAR1]]);
    return upd;
  }

  test('a downgrade applies exactly at period end on clock advance, without proration', async () => {
    const { clock, sub } = await subscribed('price_plus_monthly');
    const sched = await scheduleDowngrade(sub);
    const next = await ok('GET', '/v1/invoices/upcoming', { subscription: sub.id });
    assert.equal(next.amount_due, 999);
    await advance(clock, FEB1 - 1);
    assert.equal((await ok('GET', `/v1/subscriptions/${sub.id}`)).items.data[0].price.id, 'price_plus_monthly');
    const since = await lastEventId();
    await advance(clock, FEB1);
    const s = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.equal(s.items.data[0].price.id, 'price_premium_monthly');
    assert.equal(s.schedule, sched.id);
    const invs = await invoices(sub);
    assert.equal(invs.at(-1).amount_paid, 999);
    assert.equal(invs.at(-1).lines.data.length, 1);
    const types = (await eventsAfter(since)).map((e) => e.type);
    assert.deepEqual(types, ['subscription_schedule.updated', 'customer.subscription.updated', 'invoice.created',
      'invoice.finalized', 'invoice.paid', 'invoice.payment_succeeded', 'test_helpers.test_clock.ready']);
    assert.deepEqual((await ok('GET', `/v1/subscription_schedules/${sched.id}`)).current_phase, { start_date: FEB1, end_date: MAR1 });
    await advance(clock, MAR1);
    const done = await ok('GET', `/v1/subscription_schedules/${sched.id}`);
    assert.equal(done.status, 'completed');
    assert.equal(done.completed_at, MAR1);
    const s2 = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.equal(s2.schedule, null);
    assert.equal(s2.items.data[0].price.id, 'price_premium_monthly');
    assert.ok((await eventsAfter(since)).some((e) => e.type === 'subscription_schedule.completed'));
  });

  test('released: the subscription stays as it is', async () => {
    const { clock, sub } = await subscribed('price_plus_monthly');
    const sched = await scheduleDowngrade(sub);
    const since = await lastEventId();
    const rel = await ok('POST', `/v1/subscription_schedules/${sched.id}/release`, {});
    assert.equal(rel.status, 'released');
    assert.equal(rel.released_subscription, sub.id);
    const events = await eventsAfter(since);
    assert.deepEqual(events.map((e) => e.type), ['subscription_schedule.released', 'customer.subscription.updated']);
    assert.equal(events[1].data.previous_attributes.schedule, sched.id);
    assert.equal((await ok('GET', `/v1/subscriptions/${sub.id}`)).schedule, null);
    await advance(clock, FEB1 + 60);
    const s = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.equal(s.items.data[0].price.id, 'price_plus_monthly');
    assert.equal((await invoices(sub)).at(-1).amount_paid, 1999);
    assert.equal((await stripeApi(emu, 'POST', `/v1/subscription_schedules/${sched.id}/release`, {})).status, 400);
  });

  test('one schedule per subscription', async () => {
    const { sub } = await subscribed();
    await ok('POST', '/v1/subscription_schedules', { from_subscription: sub.id });
    const again = await stripeApi(emu, 'POST', '/v1/subscription_schedules', { from_subscription: sub.id });
    assert.equal(again.status, 400);
    assert.match(again.body.error.message, /already attached to a schedule/);
  });
});

describe('promotion codes and automatic tax at checkout', () => {
  test('SUBGATE20 exists; discounts[0][promotion_code] takes 20% off for three months', async () => {
    const list = await ok('GET', '/v1/promotion_codes', { code: 'SUBGATE20', active: true });
    assert.equal(list.data.length, 1);
    const promo = list.data[0];
    assert.equal(promo.coupon.percent_off, 20);
    assert.equal(promo.coupon.duration, 'repeating');
    assert.equal(promo.coupon.duration_in_months, 3);
    const { clock, sub, session } = await subscribed('price_premium_monthly', { session: { discounts: [{ promotion_code: promo.id }] } });
    assert.equal(session.amount_subtotal, 999);
    assert.equal(session.amount_total, 799);
    assert.equal(session.total_details.amount_discount, 200);
    assert.equal(sub.discount.promotion_code, promo.id);
    assert.equal(sub.discount.coupon.id, promo.coupon.id);
    await advance(clock, T0 + 100 * DAY);
    const invs = await invoices(sub);
    assert.deepEqual(invs.map((i) => i.amount_paid), [799, 799, 799, 999]);
    assert.deepEqual(invs[0].total_discount_amounts.map((d) => d.amount), [200]);
    assert.equal(invs[0].discount.coupon.percent_off, 20);
    assert.equal((await ok('GET', `/v1/promotion_codes/${promo.id}`)).times_redeemed, 1);
    assert.equal((await ok('GET', `/v1/subscriptions/${sub.id}`)).discount, null);
  });

  test('allow_promotion_codes: the hosted page takes the code; a wrong one is refused', async () => {
    const cus = await ok('POST', '/v1/customers', { email: 'q@example.com' });
    const s = await sessionFor(cus.id, { allow_promotion_codes: true });
    assert.equal(s.allow_promotion_codes, true);
    assert.match((await page('GET', `/checkout/${s.id}`)).text, /name="promotion_code"/);
    const bad = await page('POST', `/checkout/${s.id}/pay`, { card: '4242424242424242', promotion_code: 'NOPE' });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /This code is invalid\./);
    const r = await page('POST', `/checkout/${s.id}/pay`, { card: '4242424242424242', promotion_code: 'subgate20' });
    assert.equal(r.status, 303);
    const done = await ok('GET', `/v1/checkout/sessions/${s.id}`, { expand: ['invoice'] });
    assert.equal(done.invoice.total, 799);
    const both = await stripeApi(emu, 'POST', '/v1/checkout/sessions', {
      mode: 'subscription', success_url: 'https://x', line_items: [{ price: 'price_premium_monthly' }],
      allow_promotion_codes: true, discounts: [{ promotion_code: 'promo_subgate20' }],
    });
    assert.equal(both.status, 400);
  });

  test('automatic tax: an address is needed, collected on the page, and 10% goes on the invoices', async () => {
    const clock = await ok('POST', '/v1/test_helpers/test_clocks', { frozen_time: T0 });
    const cus = await ok('POST', '/v1/customers', { email: 't@example.com', test_clock: clock.id });
    const base = { automatic_tax: { enabled: true }, billing_address_collection: 'required', tax_id_collection: { enabled: true }, locale: 'fr' };
    const refused = await stripeApi(emu, 'POST', '/v1/checkout/sessions', {
      mode: 'subscription', customer: cus.id, success_url: 'https://x', line_items: [{ price: 'price_premium_monthly' }], ...base,
    });
    assert.equal(refused.status, 400);
    assert.match(refused.body.error.message, /customer_update\[address\]/);
    const s = await sessionFor(cus.id, { ...base, customer_update: { address: 'auto', name: 'auto' } });
    assert.equal(s.automatic_tax.enabled, true);
    assert.equal(s.locale, 'fr');
    assert.equal(s.billing_address_collection, 'required');
    assert.equal(s.tax_id_collection.enabled, true);
    assert.match((await page('GET', `/checkout/${s.id}`)).text, /name="postal_code"/);
    assert.equal((await page('POST', `/checkout/${s.id}/pay`, { card: '4242424242424242' })).status, 400);
    const r = await page('POST', `/checkout/${s.id}/pay`, {
      card: '4242424242424242', name: 'Tax Payer', line1: '1 Main St', city: 'Springfield', postal_code: '12345', country: 'US',
    });
    assert.equal(r.status, 303, r.text);
    const done = await ok('GET', `/v1/checkout/sessions/${s.id}`, { expand: ['invoice', 'subscription'] });
    assert.equal(done.automatic_tax.status, 'complete');
    assert.equal(done.total_details.amount_tax, 100);
    assert.equal(done.amount_total, 1099);
    assert.equal(done.subscription.automatic_tax.enabled, true);
    const inv = done.invoice;
    assert.deepEqual([inv.subtotal, inv.tax, inv.total, inv.amount_paid], [999, 100, 1099, 1099]);
    assert.deepEqual(inv.automatic_tax, { enabled: true, status: 'complete' });
    assert.equal(inv.total_tax_amounts[0].amount, 100);
    assert.equal(inv.total_tax_amounts[0].inclusive, false);
    const c = await ok('GET', `/v1/customers/${cus.id}`);
    assert.equal(c.address.postal_code, '12345');
    assert.equal(c.name, 'Tax Payer');
    const next = await ok('GET', '/v1/invoices/upcoming', { customer: cus.id });
    assert.equal(next.tax, 100);
    await advance(clock, FEB1 + 60);
    assert.equal((await invoices(done.subscription)).at(-1).amount_paid, 1099);
  });
});

describe('billing portal plan switch', () => {
  test('switching on the portal page creates and pays the proration invoice', async () => {
    const { clock, cus, sub } = await subscribed();
    await advance(clock, T0 + 10 * DAY);
    const ps = await ok('POST', '/v1/billing_portal/sessions', { customer: cus.id, return_url: 'https://app.example/account' });
    const pg = await page('GET', `/portal/${ps.id}`);
    assert.match(pg.text, /Switch to Plus \(\$19\.99 per month\)/);
    assert.match(pg.text, /Switch to Premium \(\$99\.90 per year\)/);
    const r = await page('POST', `/portal/${ps.id}/switch`, { subscription: sub.id, price: 'price_plus_monthly' });
    assert.equal(r.status, 303);
    const s = await ok('GET', `/v1/subscriptions/${sub.id}`);
    assert.equal(s.items.data[0].price.id, 'price_plus_monthly');
    const inv = await ok('GET', `/v1/invoices/${s.latest_invoice}`);
    assert.equal(inv.billing_reason, 'subscription_update');
    assert.equal(inv.amount_paid, 677);
  });
});

describe('request log', () => {
  test('every request of these flows is valid for Stripe\'s OpenAPI spec', async () => {
    const { clock, sub } = await subscribed('price_plus_monthly', { session: { discounts: [{ promotion_code: 'promo_subgate20' }] } });
    await ok('GET', '/v1/invoices/upcoming', {
      customer: sub.customer, subscription: sub.id, subscription_items: itemChange(sub, 'price_premium_monthly'),
      subscription_proration_behavior: 'create_prorations', subscription_proration_date: T0 + 60,
      subscription_billing_cycle_anchor: 'unchanged', expand: ['lines.data.price'],
    });
    await advance(clock, T0 + DAY);
    await ok('POST', `/v1/subscriptions/${sub.id}`, {
      items: itemChange(sub, 'price_premium_monthly'), proration_behavior: 'always_invoice', proration_date: T0 + DAY,
      payment_behavior: 'pending_if_incomplete', billing_cycle_anchor: 'unchanged', expand: ['latest_invoice'],
    });
    await ok('POST', `/v1/subscriptions/${sub.id}`, { cancel_at_period_end: true });
    await ok('POST', `/v1/subscriptions/${sub.id}`, { cancel_at_period_end: false, pause_collection: { behavior: 'void' } });
    await ok('POST', `/v1/subscriptions/${sub.id}`, { pause_collection: '' });
    const sched = await ok('POST', '/v1/subscription_schedules', { from_subscription: sub.id, expand: ['subscription'] });
    await ok('POST', `/v1/subscription_schedules/${sched.id}`, {
      end_behavior: 'release', proration_behavior: 'none', metadata: { why: 'downgrade' },
      phases: [
        { items: [{ price: 'price_premium_monthly', quantity: 1 }], start_date: T0, end_date: FEB1, proration_behavior: 'none' },
        { items: [{ price: 'price_plus_monthly', quantity: 1 }], iterations: 1, proration_behavior: 'none' },
      ],
    });
    await ok('GET', `/v1/subscription_schedules/${sched.id}`);
    await ok('POST', `/v1/subscription_schedules/${sched.id}/release`, { preserve_cancel_date: false });
    await ok('GET', '/v1/promotion_codes', { code: 'SUBGATE20', active: true, limit: 5 });
    await ok('GET', '/v1/promotion_codes/promo_subgate20');
    await ok('GET', '/v1/coupons/coupon_subgate20');
    const cus = await ok('POST', '/v1/customers', { email: 'l@example.com' });
    await sessionFor(cus.id, {
      allow_promotion_codes: true, automatic_tax: { enabled: true }, billing_address_collection: 'required',
      tax_id_collection: { enabled: true }, customer_update: { address: 'auto', name: 'auto' }, locale: 'auto',
    });
    const seen = await assertStripeRequestsValid(emu);
    for (const want of ['GET /v1/invoices/upcoming', 'POST /v1/subscription_schedules', 'POST /v1/subscription_schedules/{id}',
      'GET /v1/subscription_schedules/{id}', 'POST /v1/subscription_schedules/{id}/release', 'GET /v1/promotion_codes',
      'GET /v1/promotion_codes/{id}', 'GET /v1/coupons/{id}', 'POST /v1/subscriptions/{id}']) assert.ok(seen.has(want), want);
  });
});
