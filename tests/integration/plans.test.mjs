// plans.test.mjs: plan changes through subgate's API (issue #14) against the Stripe emulator on
// test clocks: an upgrade charged a prorated amount at once (as its preview said), a downgrade
// applied exactly at the period end and withdrawn before it, monthly to annual, a resumed
// cancellation, an upgrade whose card is declined (visible in /subscription until its invoice is
// paid), double clicks, and what a hostile client sends.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CANCEL, DAY, SUCCESS, T0, billingFlows, paymentsCalls, startBilling, stopBilling,
} from './billing_lib.mjs';
import { assertStripeRequestsValid, emuControl, now, req, userToken } from './lib.mjs';

const P = '/api/v1/payments';
const WHSEC = 'whsec_plans_integration_secret';

let emu;
let srv;
const flows = billingFlows(() => emu);
const { stripe, drain, advance, payPage, stripeInvoices } = flows;
const { call, ok, subscriber } = paymentsCalls(() => srv, flows);

before(async () => {
  ({ emu, srv } = await startBilling(WHSEC, { PAST_DUE_GRACE_DAYS: '0' }));
});

after(async () => stopBilling({ emu, srv }));

describe('an upgrade is charged its proration at once, as the preview said', () => {
  const user = 'plan_up';
  let ctx;
  let preview;

  test('the preview names the amount due now and the next invoice', async () => {
    ctx = await subscriber(user);
    await advance(ctx.clock, T0 + 10 * DAY);
    preview = await ok(user, 'POST', '/preview-plan-change', { tier: 'plus' });
    assert.equal(preview.change, 'upgrade');
    assert.equal(preview.tier, 'plus');
    assert.equal(preview.interval, 'month');
    assert.equal(preview.price_id, 'price_plus_monthly');
    // 21 of 31 days left: plus for them, less the unused premium, each rounded to the cent.
    assert.equal(preview.amount_due_now, Math.round(1999 * 21 / 31) - Math.round(999 * 21 / 31));
    assert.equal(preview.currency, 'usd');
    assert.equal(preview.effective_at, T0 + 10 * DAY);
    assert.deepEqual(preview.next_invoice, { amount_due: 1999, currency: 'usd', date: T0 + 31 * DAY });
    assert.equal((await ok(user, 'GET', '/subscription')).tier, 'premium', 'a preview changes nothing');
    assert.equal((await stripeInvoices(ctx.sub.id)).length, 1);
  });

  test('the change: plus at once, one paid invoice of the previewed amount', async () => {
    const r = await ok(user, 'POST', '/change-plan', { tier: 'plus' });
    assert.equal(r.tier, 'plus');
    assert.equal(r.price_id, 'price_plus_monthly');
    assert.equal(r.pending_change, null);
    assert.equal(r.change.type, 'upgrade');
    assert.equal(r.change.status, 'applied');
    assert.equal(r.change.invoice.status, 'paid');
    assert.equal(r.change.invoice.amount_paid, preview.amount_due_now);
    const invs = await stripeInvoices(ctx.sub.id);
    assert.equal(invs.length, 2);
    assert.equal(invs[0].amount_paid, preview.amount_due_now);
    const listed = await ok(user, 'GET', '/invoices');
    assert.ok(listed.data.some((i) => i.id === invs[0].id && i.amount_paid === preview.amount_due_now), 'listed at once');
    await drain();
    const s = await ok(user, 'GET', '/subscription');
    assert.equal(s.tier, 'plus', 'the webhooks that follow keep plus');
    assert.equal(s.pending_change, null);
  });

  test('asked again (a double click after the first landed): nothing more is charged', async () => {
    const r = await ok(user, 'POST', '/change-plan', { tier: 'plus' });
    assert.equal(r.change.type, 'none');
    assert.equal((await stripeInvoices(ctx.sub.id)).length, 2);
  });

  test('the next renewal charges plus', async () => {
    await advance(ctx.clock, T0 + 31 * DAY + 60);
    const invs = await stripeInvoices(ctx.sub.id);
    assert.equal(invs[0].amount_paid, 1999);
    assert.equal((await ok(user, 'GET', '/subscription')).tier, 'plus');
  });
});

describe('two clicks at once upgrade once', () => {
  test('one proration invoice, both answered with plus', async () => {
    const user = 'plan_double';
    const ctx = await subscriber(user);
    await advance(ctx.clock, T0 + 5 * DAY);
    const rs = await Promise.all([1, 2, 3, 4, 5].map(() => call(user, 'POST', '/change-plan', { tier: 'plus' })));
    for (const r of rs) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.tier, 'plus');
    }
    assert.equal((await ok(user, 'GET', '/subscription')).tier, 'plus', 'no click stored an older read over the change');
    const invs = await stripeInvoices(ctx.sub.id);
    assert.equal(invs.filter((i) => i.billing_reason === 'subscription_update').length, 1, JSON.stringify(invs.map((i) => i.billing_reason)));
  });
});

describe('a downgrade waits for the period end, exactly', () => {
  const user = 'plan_down';
  let ctx;
  let end;

  test('scheduled: plus is kept, and /subscription shows the change to come', async () => {
    ctx = await subscriber(user, 'price_plus_monthly');
    end = ctx.sub.current_period_end;
    assert.equal(end, T0 + 31 * DAY);
    await advance(ctx.clock, T0 + 3 * DAY);
    const preview = await ok(user, 'POST', '/preview-plan-change', { tier: 'premium' });
    assert.equal(preview.change, 'downgrade');
    assert.equal(preview.amount_due_now, 0);
    assert.equal(preview.effective_at, end);
    assert.deepEqual(preview.next_invoice, { amount_due: 999, currency: 'usd', date: end });
    const r = await ok(user, 'POST', '/change-plan', { tier: 'premium' });
    assert.equal(r.change.type, 'downgrade');
    assert.equal(r.change.effective_at, end);
    assert.equal(r.tier, 'plus');
    assert.equal(r.pending_change.type, 'downgrade');
    assert.equal(r.pending_change.tier, 'premium');
    assert.equal(r.pending_change.interval, 'month');
    assert.equal(r.pending_change.effective_at, end);
    assert.equal((await stripeInvoices(ctx.sub.id)).length, 1, 'nothing charged now');
    await drain();
    const again = await ok(user, 'POST', '/change-plan', { tier: 'premium' });
    assert.equal(again.pending_change.tier, 'premium', 'a second click keeps the one schedule');
    assert.equal((await ok(user, 'GET', '/subscription')).pending_change.effective_at, end);
  });

  test('a second before the end it is still plus; at the end it is premium', async () => {
    await advance(ctx.clock, end - 1);
    assert.equal((await ok(user, 'GET', '/subscription')).tier, 'plus');
    await advance(ctx.clock, end);
    const s = await ok(user, 'GET', '/subscription');
    assert.equal(s.tier, 'premium');
    assert.equal(s.price_id, 'price_premium_monthly');
    assert.equal(s.current_period_start, end);
    assert.equal(s.pending_change, null);
    const invs = await stripeInvoices(ctx.sub.id);
    assert.equal(invs[0].amount_paid, 999, 'the renewal at the end charges premium');
    assert.equal(invs.filter((i) => i.billing_reason === 'subscription_update').length, 0, 'no proration');
  });
});

describe('a downgrade withdrawn before the end', () => {
  test('cancel-plan-change: no change to come, and plus renews', async () => {
    const user = 'plan_withdraw';
    const ctx = await subscriber(user, 'price_plus_monthly');
    const end = ctx.sub.current_period_end;
    await ok(user, 'POST', '/change-plan', { tier: 'premium' });
    const r = await ok(user, 'POST', '/cancel-plan-change');
    assert.equal(r.change.status, 'withdrawn');
    assert.equal(r.pending_change, null);
    assert.equal(r.tier, 'plus');
    const twice = await ok(user, 'POST', '/cancel-plan-change');
    assert.equal(twice.change.status, 'unchanged', 'a second click finds nothing to withdraw');
    await drain();
    assert.equal((await ok(user, 'GET', '/subscription')).pending_change, null);
    await advance(ctx.clock, end + 60);
    const s = await ok(user, 'GET', '/subscription');
    assert.equal(s.tier, 'plus');
    assert.equal(s.current_period_start, end);
    assert.equal((await stripeInvoices(ctx.sub.id))[0].amount_paid, 1999);
  });

  test('asking for the current plan withdraws the downgrade too', async () => {
    const user = 'plan_withdraw_same';
    await subscriber(user, 'price_plus_monthly');
    await ok(user, 'POST', '/change-plan', { tier: 'premium' });
    const r = await ok(user, 'POST', '/change-plan', { tier: 'plus' });
    assert.equal(r.change.type, 'none');
    assert.equal(r.pending_change, null);
  });

  test('an upgrade over a scheduled downgrade drops it and charges at once', async () => {
    const user = 'plan_down_up';
    const ctx = await subscriber(user, 'price_premium_annual');
    await ok(user, 'POST', '/change-plan', { tier: 'premium', interval: 'month' });
    assert.equal((await ok(user, 'GET', '/subscription')).pending_change.interval, 'month');
    const r = await ok(user, 'POST', '/change-plan', { tier: 'plus', interval: 'year' });
    assert.equal(r.tier, 'plus');
    assert.equal(r.interval, 'year');
    assert.equal(r.pending_change, null);
    const sched = await stripe('GET', '/v1/subscriptions/' + ctx.sub.id);
    assert.equal(sched.schedule, null);
  });

  test('cancelling with a downgrade scheduled: the schedule goes, the cancel holds', async () => {
    const user = 'plan_down_cancel';
    await subscriber(user, 'price_plus_monthly');
    await ok(user, 'POST', '/change-plan', { tier: 'premium' });
    const r = await ok(user, 'POST', '/cancel-subscription');
    assert.equal(r.cancel_at_period_end, true);
    assert.equal(r.pending_change, null);
  });
});

describe('monthly to annual', () => {
  test('an upgrade: a new yearly cycle from now, charged the year less the unused month', async () => {
    const user = 'plan_annual';
    const ctx = await subscriber(user);
    await advance(ctx.clock, T0 + 10 * DAY);
    const preview = await ok(user, 'POST', '/preview-plan-change', { tier: 'premium', interval: 'year' });
    assert.equal(preview.change, 'upgrade');
    assert.equal(preview.amount_due_now, 9990 - Math.round(999 * 21 / 31));
    assert.equal(preview.next_invoice.date, T0 + 10 * DAY + 365 * DAY);
    const r = await ok(user, 'POST', '/change-plan', { tier: 'premium', interval: 'year' });
    assert.equal(r.tier, 'premium');
    assert.equal(r.interval, 'year');
    assert.equal(r.price_id, 'price_premium_annual');
    assert.equal(r.current_period_start, T0 + 10 * DAY);
    assert.equal(r.current_period_end, T0 + 10 * DAY + 365 * DAY);
    assert.equal(r.change.invoice.amount_paid, preview.amount_due_now);
  });

  test('annual to monthly waits for the end of the year paid for', async () => {
    const user = 'plan_annual_down';
    const ctx = await subscriber(user, 'price_premium_annual');
    const r = await ok(user, 'POST', '/change-plan', { tier: 'premium', interval: 'month' });
    assert.equal(r.change.type, 'downgrade');
    assert.equal(r.change.effective_at, ctx.sub.current_period_end);
    assert.equal(r.interval, 'year');
  });

  test('a plan change keeps the interval the user pays by', async () => {
    const user = 'plan_keep_year';
    await subscriber(user, 'price_premium_annual');
    const p = await ok(user, 'POST', '/preview-plan-change', { tier: 'plus' });
    assert.equal(p.interval, 'year');
    assert.equal(p.price_id, 'price_plus_annual');
  });
});

describe('a cancellation resumed', () => {
  test('resume-subscription: the period end renews instead of ending', async () => {
    const user = 'plan_resume';
    const ctx = await subscriber(user);
    const end = ctx.sub.current_period_end;
    assert.equal((await ok(user, 'POST', '/cancel-subscription')).cancel_at_period_end, true);
    const changed = await call(user, 'POST', '/change-plan', { tier: 'plus' });
    assert.equal(changed.status, 409, 'no plan change while it is ending');
    assert.equal(changed.body.error.code, 'subscription_canceling');
    const r = await ok(user, 'POST', '/resume-subscription');
    assert.equal(r.cancel_at_period_end, false);
    assert.equal(r.change.status, 'resumed');
    assert.equal((await ok(user, 'POST', '/resume-subscription')).change.status, 'unchanged');
    await drain();
    assert.equal((await ok(user, 'GET', '/subscription')).cancel_at_period_end, false);
    await advance(ctx.clock, end + 60);
    const s = await ok(user, 'GET', '/subscription');
    assert.equal(s.status, 'active');
    assert.equal(s.tier, 'premium');
    assert.equal(s.current_period_start, end);
  });
});

describe('an upgrade whose card is declined', () => {
  test('402, premium kept, the pending change and its invoice shown; paying it applies plus', async () => {
    const user = 'plan_declined';
    const ctx = await subscriber(user);
    await advance(ctx.clock, T0 + 10 * DAY);
    assert.equal((await emuControl(emu, 'POST', `/_emulator/customers/${ctx.cus.id}/card`, { card: '4000000000000002' })).status, 200);
    const r = await call(user, 'POST', '/change-plan', { tier: 'plus' });
    assert.equal(r.status, 402, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'payment_pending');
    await drain();
    let s = await ok(user, 'GET', '/subscription');
    assert.equal(s.tier, 'premium');
    assert.equal(s.status, 'active');
    assert.equal(s.pending_change.type, 'upgrade');
    assert.equal(s.pending_change.status, 'payment_pending');
    assert.equal(s.pending_change.tier, 'plus');
    assert.equal(s.pending_change.invoice.status, 'open');
    assert.ok(s.pending_change.invoice.hosted_invoice_url);
    assert.equal((await call(user, 'POST', '/change-plan', { tier: 'plus', interval: 'year' })).status, 409);
    await payPage(new URL(s.pending_change.invoice.hosted_invoice_url).pathname);
    await drain();
    s = await ok(user, 'GET', '/subscription');
    assert.equal(s.tier, 'plus', 'by the webhooks, on one frozen second');
    assert.equal(s.pending_change, null);
  });
});

describe('what a client may not ask', () => {
  test('bad tiers, intervals and bodies are 400, no subscription is 404, nothing changes', async () => {
    const user = 'plan_hostile';
    const rows = [
      [{ tier: 'gold' }, 400, 'tier'],
      [{ tier: 'enterprise' }, 400, 'tier'],
      [{ tier: 'free' }, 400, 'tier'],
      [{ tier: 'plus', interval: 'week' }, 400, 'interval'],
      [{ tier: 'plus', interval: 7 }, 400, 'interval'],
      [{ tier: 'plus', coupon: 'FREE' }, 400, 'coupon'],
      [{}, 400, 'tier'],
    ];
    assert.equal((await call(user, 'POST', '/change-plan', { tier: 'plus' })).status, 404);
    assert.equal((await call(user, 'POST', '/preview-plan-change', { tier: 'plus' })).status, 404);
    assert.equal((await call(user, 'POST', '/resume-subscription')).status, 404);
    assert.equal((await call(user, 'POST', '/cancel-plan-change')).status, 404);
    const ctx = await subscriber(user);
    for (const [body, status, param] of rows) {
      for (const route of ['/change-plan', '/preview-plan-change']) {
        const r = await call(user, 'POST', route, body);
        assert.equal(r.status, status, `${route} ${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.param, param, JSON.stringify(r.body));
      }
    }
    const bad = await req(srv, 'POST', `${P}/change-plan`, { raw: '{"tier":', headers: { 'content-type': 'application/json' }, token: userToken(user, { exp: now() + 3600 }) });
    assert.equal(bad.status, 400);
    assert.equal((await req(srv, 'POST', `${P}/change-plan`, { body: { tier: 'plus' } })).status, 401);
    assert.equal((await ok(user, 'GET', '/subscription')).tier, 'premium');
    assert.equal((await stripeInvoices(ctx.sub.id)).length, 1);
  });
});

describe('checkout per year', () => {
  test('interval year buys the annual price; /pricing lists both', async () => {
    const pricing = await req(srv, 'GET', `${P}/pricing`);
    const premium = pricing.body.tiers.find((t) => t.id === 'premium');
    assert.deepEqual(premium.prices, [
      { amount: 999, currency: 'usd', interval: 'month' }, { amount: 9990, currency: 'usd', interval: 'year' }]);
    const user = 'plan_checkout_year';
    const r = await ok(user, 'POST', '/create-checkout-session', { tier: 'premium', interval: 'year', success_url: SUCCESS, cancel_url: CANCEL });
    await payPage(r.url);
    const s = await ok(user, 'POST', '/checkout-success', { session_id: r.session_id });
    assert.equal(s.tier, 'premium');
    assert.equal(s.interval, 'year');
    assert.equal(s.price_id, 'price_premium_annual');
    const week = await call('plan_checkout_week', 'POST', '/create-checkout-session', { tier: 'premium', interval: 'week', success_url: SUCCESS, cancel_url: CANCEL });
    assert.equal(week.status, 400);
    assert.equal(week.body.error.param, 'interval');
  });
});

describe('paused and resumed by Stripe', () => {
  test('customer.subscription.paused makes the user free; .resumed gives the tier back', async () => {
    const user = 'plan_paused';
    const ctx = await subscriber(user);
    assert.equal((await emuControl(emu, 'POST', `/_emulator/subscriptions/${ctx.sub.id}/pause`)).status, 200);
    await drain();
    let s = await ok(user, 'GET', '/subscription');
    assert.equal(s.status, 'paused');
    assert.equal(s.tier, 'free');
    assert.equal((await call(user, 'POST', '/change-plan', { tier: 'plus' })).status, 404, 'a paused subscription is not live');
    await stripe('POST', `/v1/subscriptions/${ctx.sub.id}/resume`, { billing_cycle_anchor: 'now' });
    await drain();
    s = await ok(user, 'GET', '/subscription');
    assert.equal(s.status, 'active');
    assert.equal(s.tier, 'premium');
  });
});

describe("Stripe's spec", () => {
  test('every request of these flows, subgate\'s among them, is valid for it', async () => {
    const seen = await assertStripeRequestsValid(emu);
    for (const want of ['GET /v1/invoices/upcoming', 'POST /v1/subscription_schedules', 'POST /v1/subscription_schedules/{id}',
      'POST /v1/subscription_schedules/{id}/release', 'POST /v1/subscriptions/{id}', 'GET /v1/invoices/{id}']) assert.ok(seen.has(want), want);
  });
});
