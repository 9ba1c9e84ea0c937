// sync.test.mjs: `subgate sync` against the Stripe emulator: its usage errors, real drift (missed
// webhooks, rows changed or lost in the database) reported by --dry-run without a write and then
// repaired, a price no tier names left alone, and --import adopting the customers of a team
// moving off hand-written billing, by a metadata key.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  emuControl, now, req, run, startEmulator, startServer, stopEmulator, stopServer, stripeApi,
  tmpDir, userToken,
} from './lib.mjs';

const P = '/api/v1/payments';
const WHSEC = 'whsec_sync_integration_secret';
const ORIGIN = 'http://localhost:3000';
const SUCCESS = `${ORIGIN}/billing/success?session_id={CHECKOUT_SESSION_ID}`;
const CANCEL = `${ORIGIN}/billing/cancel`;
const CARD_OK = '4242424242424242';
const PREMIUM = 'price_premium_monthly';
const PLUS = 'price_plus_monthly';

// One emulator and one subgate (its database in its own directory) for a describe block.
async function startPair({ webhooks }) {
  const emu = await startEmulator({ EMULATOR_WEBHOOK_SECRET: WHSEC });
  const dir = tmpDir();
  const env = {
    STRIPE_SECRET_KEY: 'sk_test_emulator',
    STRIPE_API_BASE: emu.base,
    STRIPE_WEBHOOK_SECRET: WHSEC,
    STRIPE_PREMIUM_PRICE_ID: PREMIUM,
    STRIPE_PLUS_PRICE_ID: PLUS,
    PAST_DUE_GRACE_DAYS: '0',
    // Other processes (subgate sync) write here and the tests look at once: no entitlement
    // cache, whose TTL would let the server answer from what it read before.
    ENTITLEMENT_CACHE_USERS: '0',
    DATABASE_URL: `sqlite:${path.join(dir, 'subgate.db')}`,
  };
  const srv = await startServer(env, { cwd: dir });
  if (webhooks) {
    const r = await emuControl(emu, 'POST', '/_emulator/webhooks', { url: `${srv.base}${P}/webhook`, secret: WHSEC });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  return { emu, srv, env };
}

const call = (srv, user, method, p, body) => req(srv, method, P + p, { token: userToken(user, { exp: now() + 3600 }), body });

async function subscription(srv, user) {
  const r = await call(srv, user, 'GET', '/subscription');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

async function invoices(srv, user) {
  const r = await call(srv, user, 'GET', '/invoices?limit=100');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

// What a user sees: the subscription and the invoices.
async function view(srv, user) {
  return { subscription: await subscription(srv, user), invoices: await invoices(srv, user) };
}

// `subgate sync ARGS` on the pair's database: { status, stdout, stderr }.
function sync(pair, args, env = {}) {
  return run(['sync', ...args], { env: { ...pair.env, ...env }, cwd: pair.srv.dir });
}

function syncOk(pair, args, env) {
  const r = sync(pair, args, env);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  return r.stdout;
}

// Runs one SQL statement on the server's database, behind subgate's back.
function sqlBehindTheBack(srv, statement) {
  const url = srv.databaseUrl;
  const r = url.startsWith('sqlite:')
    ? spawnSync('sqlite3', ['-cmd', '.timeout 10000', url.slice('sqlite:'.length), statement], { encoding: 'utf8' })
    : spawnSync('psql', [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', statement], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${statement}: ${r.stderr}`);
}

// Pays a hosted checkout page with the test card that succeeds; resolves to the session id.
async function pay(url) {
  const page = await fetch(url);
  assert.equal(page.status, 200);
  await page.text();
  const r = await fetch(`${url}/pay`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ card: CARD_OK }).toString(),
    redirect: 'manual',
  });
  assert.equal(r.status, 303);
  return new URL(r.headers.get('location')).searchParams.get('session_id');
}

// A Stripe customer made at the emulator, as hand-written billing makes them (metadata as
// given, on a test clock when asked), subscribed to price through a paid checkout session; with
// `user`, the session and the subscription name that user as subgate's own checkout does.
async function stripeSubscriber(emu, { metadata = {}, price = PREMIUM, trial, clock, user } = {}) {
  const cus = await stripeApi(emu, 'POST', '/v1/customers', {
    email: 'someone@example.com', metadata, ...(clock ? { test_clock: clock } : {}),
  });
  assert.equal(cus.status, 200, JSON.stringify(cus.body));
  if (!price) return { customer: cus.body };
  const session = await stripeApi(emu, 'POST', '/v1/checkout/sessions', {
    mode: 'subscription', customer: cus.body.id, line_items: [{ price, quantity: 1 }],
    success_url: SUCCESS, cancel_url: CANCEL,
    ...(user ? { client_reference_id: user, metadata: { user_id: user } } : {}),
    subscription_data: {
      ...(user ? { metadata: { user_id: user } } : {}), ...(trial ? { trial_period_days: trial } : {}),
    },
  });
  assert.equal(session.status, 200, JSON.stringify(session.body));
  const sessionId = await pay(session.body.url);
  const cs = await stripeApi(emu, 'GET', `/v1/checkout/sessions/${sessionId}`);
  const sub = await stripeApi(emu, 'GET', `/v1/subscriptions/${cs.body.subscription}`);
  assert.equal(sub.status, 200, JSON.stringify(sub.body));
  return { customer: cus.body, sub: sub.body };
}

async function drain(emu) {
  const r = await emuControl(emu, 'POST', '/_emulator/webhooks/drain', { timeout_ms: 20000 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

describe('sync usage', () => {
  const cases = [
    [['--bogus'], /unknown argument '--bogus'/],
    [['--user'], /--user needs a value/],
    [['--user', ''], /--user: a user id is 1 to 255 bytes/],
    [['--user', 'x'.repeat(256)], /--user: a user id is 1 to 255 bytes/],
    [['--dry-run', '--dry-run'], /--dry-run given twice/],
    [['--import', '--user', 'u1'], /--import walks every Stripe customer: not with --user/],
    [['--import-key', 'team'], /--import-key is only for --import/],
    [['--import', '--import-key', 'a[b]'], /--import-key: 'a\[b\]' is not a Stripe metadata key/],
    [['--import', '--import-key', 'k'.repeat(41)], /is not a Stripe metadata key \(1 to 40 bytes/],
    [['--import', '--import-key'], /--import-key needs a value/],
  ];
  for (const [args, want] of cases) {
    test(`sync ${args.join(' ').slice(0, 60)}: exit 2 with the usage, before reading any configuration`, () => {
      const r = run(['sync', ...args], { env: {} }); // no Stripe key: a usage error comes first
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, want);
      assert.match(r.stderr, /^usage: subgate sync \[--user ID\] \[--dry-run\]$/m);
      assert.equal(r.stdout, '');
    });
  }
  test('sync --help prints the usage, then the help, and exits 0', () => {
    const r = run(['sync', '--help'], { env: {} });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^usage: subgate sync \[--user ID\] \[--dry-run\]\n {7}subgate sync --import \[--import-key KEY\] \[--dry-run\]\n\n/);
  });
  test('a valid command line without Stripe configured exits 1 naming the variable', () => {
    const r = run(['sync', '--dry-run'], { env: {} });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^subgate: STRIPE_SECRET_KEY: required by sync$/m);
  });
});

describe('drift: --dry-run reports it and writes nothing, sync repairs it, a second sync finds none', () => {
  let pair;
  const ann = 'drift_ann'; // drifts at Stripe while the webhooks are held back
  const bob = 'drift_bob'; // drifts in the database: a lost subscription row, an invoice set back
  let annSub;
  let annInvoices;
  let bobInvoice;

  before(async () => {
    pair = await startPair({ webhooks: true });
    const { emu, srv } = pair;
    const clock = await stripeApi(emu, 'POST', '/v1/test_helpers/test_clocks', { frozen_time: now() });
    assert.equal(clock.status, 200, JSON.stringify(clock.body));
    for (const [user, c] of [[ann, clock.body.id], [bob, undefined]]) {
      const { sub } = await stripeSubscriber(emu, { metadata: { user_id: user }, clock: c, user });
      // subgate learns of it from the return to the success page, as a browser would bring it
      const sessions = await stripeApi(emu, 'GET', '/v1/checkout/sessions', { subscription: sub.id });
      const back = await call(srv, user, 'POST', '/checkout-success', { session_id: sessions.body.data[0].id });
      assert.equal(back.status, 200, JSON.stringify(back.body));
      if (user === ann) annSub = { ...sub, clock: clock.body };
    }
    await drain(emu);
    annInvoices = (await invoices(srv, ann)).data;
    [bobInvoice] = (await invoices(srv, bob)).data;
    assert.equal(annInvoices.length, 1);
    assert.equal(bobInvoice.status, 'paid');
  });

  after(async () => {
    if (!pair) return;
    await stopServer(pair.srv);
    await stopEmulator(pair.emu);
  });

  test('in step: sync and its dry run find nothing to repair', () => {
    const out = syncOk(pair, []);
    assert.match(out, /^synced 2 customer\(s\): 2 subscription\(s\), 0 repaired, 2 invoice\(s\), 0 repaired, 0 failed$/m);
    const dry = syncOk(pair, ['--dry-run']);
    assert.match(dry, /^dry run: nothing is written$/m);
    assert.match(dry, /^dry run over 2 customer\(s\): 2 subscription\(s\), 0 to repair, 2 invoice\(s\), 0 to repair, 0 failed; nothing was written$/m);
  });

  test('the drift is real: what users see is out of step with Stripe', async () => {
    const { emu, srv } = pair;
    // Ann: with the webhooks held back, she moves to plus at Stripe and her clock runs past
    // the period end: a renewal (a new period, a new paid invoice) subgate never hears of.
    const hold = await emuControl(emu, 'POST', '/_emulator/webhooks', { order: 'shuffled', duplicate_percent: 0 });
    assert.equal(hold.status, 200, JSON.stringify(hold.body));
    const upd = await stripeApi(emu, 'POST', `/v1/subscriptions/${annSub.id}`, {
      items: [{ id: annSub.items.data[0].id, price: PLUS }], proration_behavior: 'none',
    });
    assert.equal(upd.status, 200, JSON.stringify(upd.body));
    const adv = await stripeApi(emu, 'POST', `/v1/test_helpers/test_clocks/${annSub.clock.id}/advance`, {
      frozen_time: annSub.current_period_end + 3600,
    });
    assert.equal(adv.status, 200, JSON.stringify(adv.body));
    const atStripe = await stripeApi(emu, 'GET', '/v1/invoices', { customer: annSub.customer });
    assert.equal(atStripe.body.data.length, 2, 'the renewal invoice is at Stripe');
    // Bob: his subscription row is lost and his invoice set back to open, in the database.
    sqlBehindTheBack(srv, `DELETE FROM subscriptions WHERE user_id = '${bob}'`);
    sqlBehindTheBack(srv, `UPDATE invoices SET status = 'open', amount_paid = 0 WHERE id = '${bobInvoice.id}'`);
    const a = await subscription(srv, ann);
    assert.equal(a.tier, 'premium');
    assert.equal(a.current_period_end, annSub.current_period_end);
    assert.equal((await invoices(srv, ann)).count, 1);
    assert.equal((await subscription(srv, bob)).tier, 'free');
    assert.equal((await invoices(srv, bob)).data[0].status, 'open');
  });

  test('--dry-run reports every drift and changes nothing', async () => {
    const { srv } = pair;
    const before_ = { ann: await view(srv, ann), bob: await view(srv, bob) };
    const out = syncOk(pair, ['--dry-run']);
    assert.match(out, /^dry run: nothing is written$/m);
    assert.match(out, new RegExp(`^  would repair ${annSub.id} \\(user ${ann}\\): status 'active', tier 'plus'$`, 'm'));
    assert.match(out, new RegExp(`^  would repair in_\\w+ \\(user ${ann}\\): invoice status 'paid', amount_paid \\d+ usd$`, 'm'));
    assert.match(out, new RegExp(`^  would repair sub_\\w+ \\(user ${bob}\\): status 'active', tier 'premium'$`, 'm'));
    assert.match(out, new RegExp(`^  would repair ${bobInvoice.id} \\(user ${bob}\\): invoice status 'paid', amount_paid ${bobInvoice.amount_paid} usd$`, 'm'));
    assert.match(out, new RegExp(`^cus_\\w+ user ${ann}: 1 subscription\\(s\\), 1 to repair, 2 invoice\\(s\\), 1 to repair$`, 'm'));
    assert.match(out, new RegExp(`^cus_\\w+ user ${bob}: 1 subscription\\(s\\), 1 to repair, 1 invoice\\(s\\), 1 to repair$`, 'm'));
    assert.match(out, /^dry run over 2 customer\(s\): 2 subscription\(s\), 2 to repair, 3 invoice\(s\), 2 to repair, 0 failed; nothing was written$/m);
    assert.doesNotMatch(out, /^ {2}repaired /m);
    const one = syncOk(pair, ['--dry-run', '--user', ann]);
    assert.match(one, /^dry run over 1 customer\(s\): 1 subscription\(s\), 1 to repair, 2 invoice\(s\), 1 to repair, 0 failed; nothing was written$/m);
    assert.deepEqual({ ann: await view(srv, ann), bob: await view(srv, bob) }, before_, 'nothing was written');
  });

  test('sync repairs it, as the dry run said', async () => {
    const { srv } = pair;
    const out = syncOk(pair, []);
    assert.match(out, new RegExp(`^  repaired ${annSub.id} \\(user ${ann}\\): status 'active', tier 'plus'$`, 'm'));
    assert.match(out, new RegExp(`^  repaired ${bobInvoice.id} \\(user ${bob}\\): invoice status 'paid'`, 'm'));
    assert.match(out, /^synced 2 customer\(s\): 2 subscription\(s\), 2 repaired, 3 invoice\(s\), 2 repaired, 0 failed$/m);
    const a = await subscription(srv, ann);
    assert.equal(a.tier, 'plus');
    assert.equal(a.price_id, PLUS);
    assert.ok(a.current_period_start >= annSub.current_period_end, JSON.stringify(a));
    const ai = await invoices(srv, ann);
    assert.equal(ai.count, 2);
    assert.ok(ai.data.every((i) => i.status === 'paid'), JSON.stringify(ai.data));
    const b = await subscription(srv, bob);
    assert.equal(b.tier, 'premium');
    assert.equal(b.status, 'active');
    assert.deepEqual((await invoices(srv, bob)).data, [bobInvoice]);
  });

  test('a second sync, and its dry run, find nothing left to repair', () => {
    const out = syncOk(pair, []);
    assert.match(out, /^synced 2 customer\(s\): 2 subscription\(s\), 0 repaired, 3 invoice\(s\), 0 repaired, 0 failed$/m);
    const dry = syncOk(pair, ['--dry-run']);
    assert.match(dry, /^dry run over 2 customer\(s\): 2 subscription\(s\), 0 to repair, 3 invoice\(s\), 0 to repair, 0 failed; nothing was written$/m);
  });

  test('the webhooks held back, delivered late, take nothing back', async () => {
    const { emu, srv } = pair;
    const repaired = await view(srv, ann);
    const r = await emuControl(emu, 'POST', '/_emulator/webhooks', { order: 'ordered' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await drain(emu);
    assert.deepEqual(await view(srv, ann), repaired);
  });

  test('a price no tier names is reported and not applied, in a dry run too; the user keeps the tier', async () => {
    const { srv } = pair;
    const kept = await subscription(srv, ann);
    for (const args of [[], ['--dry-run']]) {
      const r = sync(pair, ['--user', ann, ...args], { STRIPE_PLUS_PRICE_ID: 'price_some_other_plus' });
      assert.equal(r.status, 1, r.stderr + r.stdout);
      assert.match(r.stdout, new RegExp(`^  cus_\\w+: subscription '${annSub.id}' has price '${PLUS}', which no tier names: not applied`, 'm'));
      assert.match(r.stdout, new RegExp(`^cus_\\w+ user ${ann}: failed \\(upstream\\)$`, 'm'));
      assert.match(r.stdout, /0 repaired|0 to repair/);
      assert.deepEqual(await subscription(srv, ann), kept);
    }
  });
});

describe('--import adopts the customers of hand-written billing', () => {
  let pair;
  const cus = {};

  before(async () => {
    pair = await startPair({ webhooks: false }); // subgate hears nothing of them: not set up yet
    const { emu, srv } = pair;
    // A user subgate already knows: its checkout made (and stored) their customer.
    const made = await call(srv, 'imp_owned', 'POST', '/create-checkout-session', { tier: 'premium', success_url: SUCCESS, cancel_url: CANCEL });
    assert.equal(made.status, 200, JSON.stringify(made.body));
    cus.owned = (await stripeApi(emu, 'GET', '/v1/customers', { email: 'imp_owned@example.com' })).body.data[0];
    // The team's own customers, paying already.
    cus.alice = await stripeSubscriber(emu, { metadata: { user_id: 'imp_alice' } });
    cus.trina = await stripeSubscriber(emu, { metadata: { user_id: 'imp_trina' }, trial: 7 });
    cus.bob = await stripeSubscriber(emu, { metadata: { app_user: 'imp_bob' }, price: PLUS });
    cus.none = await stripeSubscriber(emu, { metadata: {}, price: null });
    cus.long = await stripeSubscriber(emu, { metadata: { user_id: 'x'.repeat(300) }, price: null });
    cus.dup = await stripeSubscriber(emu, { metadata: { user_id: 'imp_owned' }, price: null });
    cus.twin1 = await stripeSubscriber(emu, { metadata: { user_id: 'imp_twin' }, price: null });
    cus.twin2 = await stripeSubscriber(emu, { metadata: { user_id: 'imp_twin' }, price: null });
  });

  after(async () => {
    if (!pair) return;
    await stopServer(pair.srv);
    await stopEmulator(pair.emu);
  });

  const id = (k) => cus[k].customer?.id ?? cus[k].id;
  const skips = () => [
    `skipped ${id('bob')}: no metadata 'user_id'`,
    `skipped ${id('none')}: no metadata 'user_id'`,
    `skipped ${id('long')}: metadata 'user_id' is not a user id (300 bytes; 1 to 255)`,
    `skipped ${id('dup')}: user imp_owned is already linked to ${id('owned')}`,
  ];
  // Stripe lists the newest customer first: the second twin is the one linked.
  const twinSkip = () => `skipped ${id('twin1')}: user imp_twin is already linked to ${id('twin2')}`;

  test('without --import, customers subgate never stored are left alone', async () => {
    const out = syncOk(pair, []);
    assert.match(out, /^synced 1 customer\(s\): 0 subscription\(s\), 0 repaired, 0 invoice\(s\), 0 repaired, 0 failed$/m);
    assert.doesNotMatch(out, /linked|skipped|imported/);
    assert.equal((await subscription(pair.srv, 'imp_alice')).tier, 'free');
  });

  test('--import --dry-run reports what it would link and skip, and writes nothing', async () => {
    const { srv } = pair;
    const before_ = { alice: await view(srv, 'imp_alice'), trina: await view(srv, 'imp_trina') };
    const out = syncOk(pair, ['--import', '--dry-run']);
    const lines = out.split('\n');
    assert.match(out, /^dry run: nothing is written$/m);
    for (const [k, user] of [['alice', 'imp_alice'], ['trina', 'imp_trina'], ['twin2', 'imp_twin']])
      assert.ok(lines.includes(`would link ${id(k)} to user ${user}`), `${k}: ${out}`);
    assert.ok(lines.includes(`  would repair ${cus.alice.sub.id} (user imp_alice): status 'active', tier 'premium'`), out);
    assert.ok(lines.includes(`  would repair ${cus.trina.sub.id} (user imp_trina): status 'trialing', tier 'premium'`), out);
    for (const line of [...skips(), twinSkip()]) assert.ok(lines.includes(line), `${line}\n${out}`);
    assert.match(out, /^would import: 3 to link, 5 skipped$/m);
    assert.match(out, /^dry run over 4 customer\(s\): 2 subscription\(s\), 2 to repair, 2 invoice\(s\), 2 to repair, 0 failed; nothing was written$/m);
    assert.deepEqual({ alice: await view(srv, 'imp_alice'), trina: await view(srv, 'imp_trina') }, before_);
    assert.doesNotMatch(syncOk(pair, []), /imp_alice/, 'no link was made');
  });

  test('--import links them by metadata.user_id, syncs them, and reports what it could not link', async () => {
    const { srv } = pair;
    const out = syncOk(pair, ['--import']);
    const lines = out.split('\n');
    for (const [k, user] of [['alice', 'imp_alice'], ['trina', 'imp_trina'], ['twin2', 'imp_twin']])
      assert.ok(lines.includes(`linked ${id(k)} to user ${user}`), `${k}: ${out}`);
    assert.ok(lines.includes(`${id('alice')} user imp_alice: 1 subscription(s), 1 repaired, 1 invoice(s), 1 repaired`), out);
    for (const line of [...skips(), twinSkip()]) assert.ok(lines.includes(line), `${line}\n${out}`);
    assert.match(out, /^imported: 3 linked, 5 skipped$/m);
    assert.match(out, /^synced 4 customer\(s\): 2 subscription\(s\), 2 repaired, 2 invoice\(s\), 2 repaired, 0 failed$/m);
    const a = await subscription(srv, 'imp_alice');
    assert.equal(a.tier, 'premium');
    assert.equal(a.status, 'active');
    assert.equal(a.price_id, PREMIUM);
    const inv = await invoices(srv, 'imp_alice');
    assert.equal(inv.count, 1);
    assert.equal(inv.data[0].status, 'paid');
    assert.equal((await subscription(srv, 'imp_trina')).status, 'trialing');
  });

  test('an adopted user is a paying user: a second checkout is refused, a later one gets no second trial', async () => {
    const { emu, srv } = pair;
    const again = await call(srv, 'imp_alice', 'POST', '/create-checkout-session', { tier: 'premium', success_url: SUCCESS, cancel_url: CANCEL });
    assert.equal(again.status, 409, JSON.stringify(again.body));
    const end = await stripeApi(emu, 'DELETE', `/v1/subscriptions/${cus.trina.sub.id}`);
    assert.equal(end.status, 200, JSON.stringify(end.body));
    syncOk(pair, ['--user', 'imp_trina']);
    const r = await call(srv, 'imp_trina', 'POST', '/create-checkout-session', { tier: 'premium', success_url: SUCCESS, cancel_url: CANCEL, trial_days: 7 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.trial.granted, 0, JSON.stringify(r.body));
    assert.match(r.body.trial.reason, /trial/);
  });

  test('a second --import links nothing new and repairs nothing', () => {
    const out = syncOk(pair, ['--import']);
    assert.doesNotMatch(out, /^linked /m);
    assert.match(out, /^imported: 0 linked, 5 skipped$/m);
    assert.match(out, /^synced 4 customer\(s\): \d+ subscription\(s\), 0 repaired, \d+ invoice\(s\), 0 repaired, 0 failed$/m);
  });

  test('--import-key names another metadata key', async () => {
    const { srv } = pair;
    const out = syncOk(pair, ['--import', '--import-key', 'app_user']);
    assert.ok(out.split('\n').includes(`linked ${id('bob')} to user imp_bob`), out);
    assert.ok(out.split('\n').includes(`skipped ${id('none')}: no metadata 'app_user'`), out);
    assert.match(out, /^imported: 1 linked, \d+ skipped$/m);
    const b = await subscription(srv, 'imp_bob');
    assert.equal(b.tier, 'plus');
    assert.equal(b.status, 'active');
  });
});
