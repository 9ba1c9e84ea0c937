// js_client.test.mjs: the JavaScript client (clients/js/subgate.js) driven against the real
// binary and the Stripe emulator: buy a plan through the hosted page, come back with
// checkoutSuccess, read subscription, usage and invoices, open the portal, cancel; plan changes
// on test clocks (preview and upgrade, downgrade withdrawn, cancellation resumed, annual
// checkout); and errors as SubgateError with the fields of subgate's Stripe-shaped bodies.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Subgate, SubgateError } from '../../clients/js/subgate.js';
import {
  CANCEL, DAY, ORIGIN, SUCCESS, T0, billingFlows, startBilling, stopBilling,
} from './billing_lib.mjs';
import { SERVICE_KEY, emuControl, now, userToken } from './lib.mjs';

const WHSEC = 'whsec_js_client_integration';

let emu;
let srv;
const { stripe, drain, advance, payPage, paidSession } = billingFlows(() => emu);

before(async () => {
  ({ emu, srv } = await startBilling(WHSEC, { STRIPE_PUBLISHABLE_KEY: 'pk_test_jsclient' }));
});

after(async () => stopBilling({ emu, srv }));

// Pays a session on the emulator's hosted page; the session id from the success redirect.
async function pay(url) {
  const back = new URL((await payPage(url)).headers.get('location'));
  assert.equal(back.origin, ORIGIN);
  return back.searchParams.get('session_id');
}

describe('the JavaScript client', () => {
  const user = 'js_alice';
  let calls = 0;
  // A token function, as an app with refreshing tokens would pass.
  const client = () => new Subgate({ baseUrl: `${srv.base}/`, token: () => { calls++; return userToken(user, { exp: now() + 600 }); } });

  test('pricing needs no token and lists the tiers', async () => {
    const p = await new Subgate({ baseUrl: srv.base }).pricing();
    assert.equal(p.publishable_key, 'pk_test_jsclient');
    assert.ok(p.tiers.some((t) => t.id === 'premium'));
  });

  test('a new user is free, with usage and no invoices', async () => {
    const sg = client();
    const s = await sg.subscription();
    assert.equal(s.tier, 'free');
    assert.equal(s.status, 'none');
    const u = await sg.usage();
    assert.equal(typeof u, 'object');
    assert.deepEqual((await sg.invoices({ limit: 5 })).data ?? [], []);
    assert.ok(calls >= 3, 'the token function is called for each request');
  });

  test('ledger: the user\'s own usage entries, a page at a time', async () => {
    const svc = (path, body) => fetch(`${srv.base}${path}`, {
      method: 'POST', headers: { authorization: `Bearer ${SERVICE_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    for (let i = 0; i < 3; i++) {
      assert.equal((await svc('/api/v1/access/consume', { user_id: user, quota: 'scenarios', amount: 1 })).status, 200);
    }
    const sg = client();
    const p1 = await sg.ledger({ quota: 'scenarios', limit: 2 });
    assert.deepEqual(p1.data.map((e) => [e.kind, e.quota, e.amount]), [['consume', 'scenarios', 1], ['consume', 'scenarios', 1]]);
    assert.equal(p1.has_more, true);
    const p2 = await sg.ledger({ quota: 'scenarios', before: p1.next_before });
    assert.equal(p2.data.length, 1);
    assert.equal(p2.has_more, false);
    await assert.rejects(sg.ledger({ limit: 0 }), (e) => e instanceof SubgateError && e.status === 400 && e.param === 'limit');
  });

  test('errors are SubgateError with status, type, code, param, message and requestId', async () => {
    const sg = client();
    await assert.rejects(sg.checkout({ tier: 'gold', successUrl: SUCCESS, cancelUrl: CANCEL }), (e) => {
      assert.ok(e instanceof SubgateError);
      assert.equal(e.status, 400);
      assert.equal(e.type, 'invalid_request_error');
      assert.equal(e.param, 'tier');
      assert.ok(e.code && e.message, JSON.stringify(e));
      assert.match(e.requestId, /^req_/);
      return true;
    });
    await assert.rejects(new Subgate({ baseUrl: srv.base }).subscription(), (e) => e instanceof SubgateError && e.status === 401);
    await assert.rejects(sg.invoices({ limit: 1000 }), (e) => e.status === 400 && e.param === 'limit');
    await assert.rejects(new Subgate({ baseUrl: 'http://127.0.0.1:1' }).pricing(), (e) => e.status === 0 && e.type === 'connection_error' && e.code === 'connection_failed');
  });

  test('buys premium, comes back with checkoutSuccess, reads and cancels', async () => {
    const sg = client();
    const session = await sg.checkout({ tier: 'premium', successUrl: SUCCESS, cancelUrl: CANCEL });
    assert.match(session.session_id, /^cs_/);
    const id = await pay(session.url);
    assert.equal(id, session.session_id);
    const s = await sg.checkoutSuccess(id);
    assert.equal(s.tier, 'premium');
    assert.equal(s.status, 'active');
    assert.equal((await sg.subscription()).tier, 'premium');
    const u = await sg.usage();
    assert.equal(typeof u, 'object');
    const inv = await sg.invoices({ limit: 10 });
    assert.ok(Array.isArray(inv.data), JSON.stringify(inv));
    const portal = await sg.portal(`${ORIGIN}/account`);
    assert.match(portal.url, /^http/);
    const atEnd = await sg.cancel();
    assert.equal(atEnd.cancel_at_period_end, true);
    const now_ = await sg.cancel({ immediate: true });
    assert.equal(now_.status, 'canceled');
    assert.equal((await sg.subscription()).tier, 'free');
    await assert.rejects(sg.cancel(), (e) => e instanceof SubgateError && e.status === 404);
  });
});

const userClient = (user) => new Subgate({ baseUrl: srv.base, token: () => userToken(user, { exp: now() + 3600 }) });

// A user subscribed to price on a test clock at T0 (billing_lib's paidSession), applied
// through the client.
async function subscriber(user, price = 'price_premium_monthly') {
  const { clock, cus, session } = await paidSession(user, price);
  const sg = userClient(user);
  const sub = await sg.checkoutSuccess(session.id);
  await drain();
  return { sg, clock, cus, sub };
}

describe('plan changes through the JavaScript client', () => {
  test('previewPlanChange, then changePlan premium to plus charges the previewed amount', async () => {
    const { sg, clock, sub } = await subscriber('js_plan_up');
    assert.equal(sub.tier, 'premium');
    assert.equal(sub.interval, 'month');
    assert.equal(sub.pending_change, null);
    await advance(clock, T0 + 10 * DAY);
    const preview = await sg.previewPlanChange({ tier: 'plus' });
    assert.equal(preview.change, 'upgrade');
    assert.equal(preview.tier, 'plus');
    assert.equal(preview.interval, 'month');
    assert.equal(preview.price_id, 'price_plus_monthly');
    assert.deepEqual(preview.price, { amount: 1999, currency: 'usd', interval: 'month' });
    assert.equal(preview.amount_due_now, Math.round(1999 * 21 / 31) - Math.round(999 * 21 / 31));
    assert.equal(preview.effective_at, T0 + 10 * DAY);
    assert.deepEqual(preview.next_invoice, { amount_due: 1999, currency: 'usd', date: T0 + 31 * DAY });
    assert.equal((await sg.subscription()).tier, 'premium', 'a preview changes nothing');

    const r = await sg.changePlan({ tier: 'plus' });
    assert.equal(r.tier, 'plus');
    assert.equal(r.price_id, 'price_plus_monthly');
    assert.equal(r.pending_change, null);
    assert.equal(r.change.type, 'upgrade');
    assert.equal(r.change.status, 'applied');
    assert.equal(r.change.invoice.status, 'paid');
    assert.equal(r.change.invoice.amount_paid, preview.amount_due_now);
    const invs = (await stripe('GET', '/v1/invoices', { subscription: sub.id, limit: 100 })).data;
    assert.equal(invs.length, 2);
    assert.equal(invs[0].amount_paid, preview.amount_due_now, 'Stripe charged what the preview said');
    await drain();
    assert.equal((await sg.subscription()).tier, 'plus');
    assert.equal((await sg.changePlan({ tier: 'plus' })).change.type, 'none', 'asked again: nothing more');
  });

  test('a downgrade is scheduled for the period end, and cancelPlanChange withdraws it', async () => {
    const { sg, sub } = await subscriber('js_plan_down', 'price_plus_monthly');
    const end = sub.current_period_end;
    const preview = await sg.previewPlanChange({ tier: 'premium' });
    assert.equal(preview.change, 'downgrade');
    assert.equal(preview.amount_due_now, 0);
    assert.equal(preview.effective_at, end);
    const r = await sg.changePlan({ tier: 'premium' });
    assert.equal(r.change.type, 'downgrade');
    assert.equal(r.change.status, 'scheduled');
    assert.equal(r.change.effective_at, end);
    assert.equal(r.tier, 'plus', 'plus is kept until the end');
    assert.equal(r.pending_change.type, 'downgrade');
    assert.equal(r.pending_change.status, 'scheduled');
    assert.equal(r.pending_change.tier, 'premium');
    assert.equal(r.pending_change.effective_at, end);
    await drain();
    assert.equal((await sg.subscription()).pending_change.tier, 'premium');

    const w = await sg.cancelPlanChange();
    assert.equal(w.change.status, 'withdrawn');
    assert.equal(w.pending_change, null);
    assert.equal(w.tier, 'plus');
    assert.equal((await sg.cancelPlanChange()).change.status, 'unchanged', 'nothing left to withdraw');
    await drain();
    assert.equal((await sg.subscription()).pending_change, null);
  });

  test('cancel at period end, then resumeSubscription renews', async () => {
    const { sg, clock, sub } = await subscriber('js_plan_resume');
    const end = sub.current_period_end;
    const c = await sg.cancel();
    assert.equal(c.cancel_at_period_end, true);
    await assert.rejects(sg.changePlan({ tier: 'plus' }), (e) => {
      assert.ok(e instanceof SubgateError);
      assert.equal(e.status, 409);
      assert.equal(e.code, 'subscription_canceling');
      return true;
    });
    const r = await sg.resumeSubscription();
    assert.equal(r.cancel_at_period_end, false);
    assert.equal(r.change.status, 'resumed');
    assert.equal((await sg.resumeSubscription()).change.status, 'unchanged');
    await drain();
    await advance(clock, end + 60);
    const s = await sg.subscription();
    assert.equal(s.status, 'active');
    assert.equal(s.tier, 'premium');
    assert.equal(s.current_period_start, end);
    assert.equal(s.cancel_at_period_end, false);
  });

  test('errors: an unknown tier or interval is a 400 SubgateError, no subscription a 404', async () => {
    const { sg } = await subscriber('js_plan_errors');
    for (const call of [() => sg.changePlan({ tier: 'gold' }), () => sg.previewPlanChange({ tier: 'gold' })]) {
      await assert.rejects(call(), (e) => {
        assert.ok(e instanceof SubgateError);
        assert.equal(e.status, 400);
        assert.equal(e.type, 'invalid_request_error');
        assert.equal(e.param, 'tier');
        assert.ok(e.code && e.message, JSON.stringify(e));
        assert.match(e.requestId, /^req_/);
        return true;
      });
    }
    await assert.rejects(sg.changePlan({ tier: 'plus', interval: 'week' }), (e) => e instanceof SubgateError && e.status === 400 && e.param === 'interval' && !!e.code);
    assert.equal((await sg.subscription()).tier, 'premium', 'nothing changed');
    const nobody = userClient('js_plan_nobody');
    await assert.rejects(nobody.changePlan({ tier: 'plus' }), (e) => e instanceof SubgateError && e.status === 404);
    await assert.rejects(nobody.previewPlanChange({ tier: 'plus' }), (e) => e instanceof SubgateError && e.status === 404);
    await assert.rejects(nobody.cancelPlanChange(), (e) => e instanceof SubgateError && e.status === 404);
    await assert.rejects(nobody.resumeSubscription(), (e) => e instanceof SubgateError && e.status === 404);
  });

  test('a declined upgrade rejects with status 402 payment_pending; pending_change shows the invoice', async () => {
    const { sg, clock, cus } = await subscriber('js_plan_declined');
    await advance(clock, T0 + 10 * DAY);
    assert.equal((await emuControl(emu, 'POST', `/_emulator/customers/${cus.id}/card`, { card: '4000000000000002' })).status, 200);
    await assert.rejects(sg.changePlan({ tier: 'plus' }), (e) => {
      assert.ok(e instanceof SubgateError);
      assert.equal(e.status, 402);
      assert.equal(e.code, 'payment_pending');
      return true;
    });
    await drain();
    const s = await sg.subscription();
    assert.equal(s.tier, 'premium');
    assert.equal(s.pending_change.type, 'upgrade');
    assert.equal(s.pending_change.status, 'payment_pending');
    assert.ok(s.pending_change.invoice.hosted_invoice_url);
  });

  test('checkout with interval year buys the annual price; pricing lists both', async () => {
    const p = await new Subgate({ baseUrl: srv.base }).pricing();
    const premium = p.tiers.find((t) => t.id === 'premium');
    assert.deepEqual(premium.prices.map((x) => x.interval), ['month', 'year']);
    const sg = userClient('js_plan_checkout_year');
    const session = await sg.checkout({ tier: 'premium', interval: 'year', successUrl: SUCCESS, cancelUrl: CANCEL });
    const s = await sg.checkoutSuccess(await pay(session.url));
    assert.equal(s.tier, 'premium');
    assert.equal(s.interval, 'year');
    assert.equal(s.price_id, 'price_premium_annual');
  });
});
