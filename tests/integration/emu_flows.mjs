// emu_flows.mjs: the Stripe emulator's API driven directly on test clocks, for the emulator's
// own tests (emulator_plans, emulator_pay): calls that must answer 200, its hosted pages, a paid
// subscription on a fresh clock, clock advances, the event log, and Stripe's proration rule.
import assert from 'node:assert/strict';
import { stripeApi } from './lib.mjs';

export const DAY = 86400;
export const T0 = 1767225600; // 2026-01-01T00:00:00Z
export const FEB1 = T0 + 31 * DAY;
export const MAR1 = FEB1 + 28 * DAY;

// Stripe's proration: amount x remaining / period, to the second, rounded half away from zero.
export function prorate(amount, start, end, at) {
  const exact = (amount * (end - at)) / (end - start);
  return Math.sign(exact) * Math.round(Math.abs(exact));
}

export function itemChange(sub, price) {
  return [{ id: sub.items.data[0].id, price }];
}

// The helpers over one emulator; emu() returns it (it is started in a before hook).
export function emuFlows(emu) {
  async function ok(method, p, params) {
    const r = await stripeApi(emu(), method, p, params);
    assert.equal(r.status, 200, `${method} ${p}: ${JSON.stringify(r.body)}`);
    return r.body;
  }

  async function page(method, p, fields) {
    const r = await fetch(emu().base + p, {
      method,
      redirect: 'manual',
      headers: fields ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {},
      body: fields ? new URLSearchParams(fields).toString() : undefined,
    });
    return { status: r.status, text: await r.text(), location: r.headers.get('location') };
  }

  async function sessionFor(customer, extra = {}, price = 'price_premium_monthly') {
    return ok('POST', '/v1/checkout/sessions', {
      mode: 'subscription',
      customer,
      line_items: [{ price, quantity: 1 }],
      success_url: 'https://app.example/ok?session={CHECKOUT_SESSION_ID}',
      ...extra,
    });
  }

  // A customer on a new test clock at T0 with a subscription to `price` paid by card 4242;
  // fields go with the card on the hosted page, session into the session.
  async function subscribed(price = 'price_premium_monthly', { fields = {}, session = {} } = {}) {
    const clock = await ok('POST', '/v1/test_helpers/test_clocks', { frozen_time: T0 });
    const cus = await ok('POST', '/v1/customers', { email: 'p@example.com', test_clock: clock.id });
    const s = await sessionFor(cus.id, session, price);
    const r = await page('POST', `/checkout/${s.id}/pay`, { card: '4242 4242 4242 4242', ...fields });
    assert.equal(r.status, 303, r.text);
    const done = await ok('GET', `/v1/checkout/sessions/${s.id}`);
    const sub = await ok('GET', `/v1/subscriptions/${done.subscription}`);
    return { clock, cus, sub, session: done };
  }

  async function advance(clock, t) {
    return ok('POST', `/v1/test_helpers/test_clocks/${clock.id}/advance`, { frozen_time: t });
  }

  // The events since `since` (an event id, or the start), oldest first.
  async function eventsAfter(since) {
    const all = (await ok('GET', '/v1/events', { limit: 100 })).data.reverse();
    const i = since ? all.findIndex((e) => e.id === since) : -1;
    return all.slice(i + 1);
  }

  async function lastEventId() {
    return (await ok('GET', '/v1/events', { limit: 1 })).data[0]?.id;
  }

  async function invoices(sub) {
    return (await ok('GET', '/v1/invoices', { subscription: sub.id, limit: 100 })).data.reverse();
  }

  return { ok, page, sessionFor, subscribed, advance, eventsAfter, lastEventId, invoices };
}
