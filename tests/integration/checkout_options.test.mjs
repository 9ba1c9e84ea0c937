// checkout_options.test.mjs: the checkout options of the configuration (#14 item 4) end to end:
// with CHECKOUT_PROMOTION_CODES, CHECKOUT_AUTOMATIC_TAX and CHECKOUT_LOCALE subgate makes its
// sessions with Stripe's parameters for them (checked against Stripe's OpenAPI spec with
// stripe_params.py), the hosted page takes the promotion code SUBGATE20 and the address, and the
// first invoice is the price less the code's discount plus the emulator's automatic tax; without
// them none of those parameters is sent, and a session made under other options is not reused.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  emuControl, now, req, startEmulator, startServer, stopEmulator, stopServer, stripeApi, tmpDir,
  userToken, STRIPE_PARAMS_TOOL,
} from './lib.mjs';

const P = '/api/v1/payments';
const WHSEC = 'whsec_checkout_options_secret';
const ORIGIN = 'http://localhost:3000';
const SUCCESS = `${ORIGIN}/billing/success?session_id={CHECKOUT_SESSION_ID}`;
const CANCEL = `${ORIGIN}/billing/cancel`;
const CARD_OK = '4242 4242 4242 4242';
const PRICE = 'price_premium_monthly';
const EMU_TAX_PERCENT = 10; // the emulator's automatic tax: one fixed exclusive test rate
const OPTIONS = { CHECKOUT_PROMOTION_CODES: 'true', CHECKOUT_AUTOMATIC_TAX: 'true', CHECKOUT_LOCALE: 'de' };
// What those options send, by Stripe's parameter names (the session has an existing customer).
const SENT = {
  allow_promotion_codes: 'true',
  'automatic_tax[enabled]': 'true',
  billing_address_collection: 'required',
  'tax_id_collection[enabled]': 'true',
  'customer_update[address]': 'auto',
  'customer_update[name]': 'auto',
  locale: 'de',
};
const ADDRESS = { name: 'Steuer GmbH', line1: '1 Main St', city: 'Springfield', postal_code: '12345', country: 'US' };

let emu;
let srv;
let env;
let webhooks = false;

async function serve(extra) {
  srv = await startServer({ ...env, ...extra }, { cwd: env.dir });
  const probe = await req(srv, 'POST', `${P}/webhook`, { raw: '{}', headers: { 'content-type': 'application/json' } });
  webhooks = probe.status !== 404;
  if (webhooks) {
    const r = await emuControl(emu, 'POST', '/_emulator/webhooks', { url: `${srv.base}${P}/webhook`, secret: WHSEC });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
}

before(async () => {
  emu = await startEmulator({ EMULATOR_WEBHOOK_SECRET: WHSEC });
  const dir = tmpDir();
  env = {
    dir,
    STRIPE_SECRET_KEY: 'sk_test_emulator',
    STRIPE_API_BASE: emu.base,
    STRIPE_WEBHOOK_SECRET: WHSEC,
    STRIPE_PREMIUM_PRICE_ID: PRICE,
    STRIPE_PLUS_PRICE_ID: 'price_plus_monthly',
    ENTITLEMENT_CACHE_USERS: '0',
    DATABASE_URL: `sqlite:${path.join(dir, 'subgate.db')}`,
  };
  await serve(OPTIONS);
});

after(async () => {
  await stopServer(srv);
  await stopEmulator(emu);
});

const call = (user, method, p, body) => req(srv, method, P + p, { token: userToken(user, { exp: now() + 3600 }), body });

async function emu200(method, p, params) {
  const r = await stripeApi(emu, method, p, params);
  assert.equal(r.status, 200, `${method} ${p}: ${JSON.stringify(r.body)}`);
  return r.body;
}

async function checkout(user) {
  const r = await call(user, 'POST', '/create-checkout-session', { tier: 'premium', success_url: SUCCESS, cancel_url: CANCEL });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

// The form of the last checkout session subgate made, from the emulator's request log (call it
// right after the session was asked for: nothing else makes sessions here).
async function lastSessionForm() {
  const log = (await emuControl(emu, 'GET', '/_emulator/requests')).body.data;
  const creates = log.filter((r) => r.method === 'POST' && r.path === '/v1/checkout/sessions' && r.status === 200);
  assert.ok(creates.length > 0, 'subgate made a checkout session');
  return creates.at(-1).body;
}

function page(url, fields) {
  return fetch(fields ? `${url}/pay` : url, {
    method: fields ? 'POST' : 'GET',
    redirect: 'manual',
    headers: fields ? { 'content-type': 'application/x-www-form-urlencoded' } : {},
    body: fields ? new URLSearchParams(fields).toString() : undefined,
  });
}

// Stripe's rounding of a fraction of an amount in minor units: half away from zero.
const roundHalfAway = (x) => Math.sign(x) * Math.round(Math.abs(x));

describe('checkout options from the configuration', () => {
  const user = 'co_alice';
  let session;

  test('the session is made with Stripe\'s parameters for every option, valid per the spec', async () => {
    session = await checkout(user);
    const s = await emu200('GET', `/v1/checkout/sessions/${session.session_id}`);
    assert.equal(s.allow_promotion_codes, true);
    assert.equal(s.automatic_tax.enabled, true);
    assert.equal(s.locale, 'de');
    assert.equal(s.billing_address_collection, 'required');
    assert.equal(s.tax_id_collection.enabled, true);
    const form = new URLSearchParams(await lastSessionForm());
    for (const [k, v] of Object.entries(SENT)) assert.equal(form.get(k), v, k);
    const res = spawnSync('python3', [STRIPE_PARAMS_TOOL, 'POST', '/v1/checkout/sessions', '--form', form.toString()], { encoding: 'utf8' });
    assert.equal(res.status, 0, res.stdout + res.stderr);
    for (const k of Object.keys(SENT)) assert.match(res.stdout, new RegExp(`^VALID\\t${k.replace(/[[\]]/g, '\\$&')}\\t`, 'm'), k);
  });

  test('the same ask gets the same session back', async () => {
    assert.equal((await checkout(user)).session_id, session.session_id);
  });

  test('a wrong promotion code is refused on the page', async () => {
    const shown = await (await page(session.url)).text();
    assert.match(shown, /name="promotion_code"/);
    assert.match(shown, /name="postal_code"/);
    const r = await page(session.url, { card: CARD_OK, promotion_code: 'NOPE', ...ADDRESS });
    assert.equal(r.status, 400);
    assert.match(await r.text(), /This code is invalid\./);
    const s = await emu200('GET', `/v1/checkout/sessions/${session.session_id}`);
    assert.equal(s.status, 'open');
  });

  test('a promotion code applied: the first invoice is the price less 20% plus the automatic tax', async () => {
    const promo = (await emu200('GET', '/v1/promotion_codes', { code: 'SUBGATE20', active: true })).data[0];
    assert.ok(promo, 'the emulator seeds SUBGATE20');
    const price = await emu200('GET', `/v1/prices/${PRICE}`);
    const subtotal = price.unit_amount;
    const discount = roundHalfAway((subtotal * promo.coupon.percent_off) / 100);
    const tax = roundHalfAway(((subtotal - discount) * EMU_TAX_PERCENT) / 100);
    const total = subtotal - discount + tax;

    const r = await page(session.url, { card: CARD_OK, promotion_code: 'SUBGATE20', ...ADDRESS });
    assert.equal(r.status, 303, await r.text());
    const back = new URL(r.headers.get('location'));
    assert.equal(back.origin, ORIGIN);
    assert.equal(back.searchParams.get('session_id'), session.session_id);
    const done = await call(user, 'POST', '/checkout-success', { session_id: session.session_id });
    assert.equal(done.status, 200, JSON.stringify(done.body));

    const s = await emu200('GET', `/v1/checkout/sessions/${session.session_id}`, { expand: ['invoice', 'subscription'] });
    assert.equal(s.status, 'complete');
    assert.equal(s.subscription.discount.promotion_code, promo.id);
    assert.equal(s.subscription.automatic_tax.enabled, true);
    const inv = s.invoice;
    assert.deepEqual([inv.subtotal, inv.tax, inv.total, inv.amount_paid], [subtotal, tax, total, total]);
    assert.deepEqual(inv.total_discount_amounts.map((d) => d.amount), [discount]);
    const cus = await emu200('GET', `/v1/customers/${s.customer}`);
    assert.equal(cus.address.postal_code, ADDRESS.postal_code, 'customer_update[address]=auto saved it');
    assert.equal(cus.name, ADDRESS.name, 'customer_update[name]=auto saved it');

    if (webhooks) {
      const drained = await emuControl(emu, 'POST', '/_emulator/webhooks/drain', { timeout_ms: 20000 });
      assert.equal(drained.status, 200, JSON.stringify(drained.body));
    }
    let mine = [];
    for (let i = 0; i < 100 && mine.length === 0; i++) {
      const list = await call(user, 'GET', '/invoices');
      assert.equal(list.status, 200, JSON.stringify(list.body));
      mine = list.body.data.filter((x) => x.status === 'paid');
      if (mine.length === 0) await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(mine.length, 1, 'subgate lists the first invoice');
    assert.equal(mine[0].amount_paid, total);
  });
});

describe('without the options', () => {
  const user = 'co_bob';

  test('a session asked under the options is not handed back once they are off', async () => {
    const first = await checkout(user);
    await stopServer(srv);
    await serve({});
    const second = await checkout(user);
    assert.notEqual(second.session_id, first.session_id);
    const old = await emu200('GET', `/v1/checkout/sessions/${first.session_id}`);
    assert.equal(old.status, 'expired', 'the other options\' session was expired at Stripe');
  });

  test('none of their parameters is sent', async () => {
    const { session_id: id, url } = await checkout(user);
    const s = await emu200('GET', `/v1/checkout/sessions/${id}`);
    assert.equal(s.allow_promotion_codes ?? null, null);
    assert.equal(s.automatic_tax.enabled, false);
    assert.equal(s.locale ?? null, null);
    assert.notEqual(s.billing_address_collection, 'required'); // the default, 'auto'
    assert.equal(s.tax_id_collection.enabled, false);
    const form = new URLSearchParams(await lastSessionForm());
    for (const k of Object.keys(SENT)) assert.equal(form.has(k), false, `${k} is not sent`);
    assert.doesNotMatch(await (await page(url)).text(), /name="promotion_code"/);
  });
});
