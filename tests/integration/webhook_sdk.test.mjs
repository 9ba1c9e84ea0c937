// webhook_sdk.test.mjs: the official Stripe SDK referees stripe/webhook.c through
// tests/tools/stripe_webhook_tool (path from TOOLS_DIR). Headers the SDK makes must verify with
// our code, headers our code makes must pass stripe.webhooks.constructEvent, and both sides must
// refuse the same bad inputs. Time is pinned: our tool takes NOW, the SDK takes receivedAt.
// One deliberate difference is not tested here: we also refuse timestamps more than the
// tolerance in the future, while the SDK only checks the age.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const Stripe = require('stripe');
const stripe = new Stripe('sk_test_x');

const TOOL = path.resolve(process.env.TOOLS_DIR || 'build/release/tests/tools', 'stripe_webhook_tool');
const SECRET = 'whsec_sdk_referee_0123456789abcdef';
const OTHER = 'whsec_someone_else_0123456789abcdef';
const NOW = 1700000000;

const payloads = {
  ascii: JSON.stringify({ id: 'evt_1', object: 'event', type: 'invoice.paid' }, null, 2),
  utf8: JSON.stringify({ id: 'evt_2', object: 'event', data: { name: 'Zoë Ærø 日本語 €5 😀' } }),
  newline: JSON.stringify({ id: 'evt_3', object: 'event' }) + '\n',
};

function tool(args, payload) {
  const r = spawnSync(TOOL, args, { input: Buffer.from(payload, 'utf8'), encoding: 'utf8' });
  if (r.error) throw r.error;
  assert.ok(!/AddressSanitizer|runtime error/.test(r.stderr), r.stderr);
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

function ourVerify(header, secrets, now, payload) {
  return tool(['verify', header, secrets.join(','), String(now)], payload);
}

function ourSign(secret, t, payload) {
  const r = tool(['sign', secret, String(t)], payload);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

function sdkHeader(payload, secret, timestamp) {
  return stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });
}

// constructEvent with the clock pinned at now (seconds); returns null or the error message.
function sdkRefusal(payload, header, secret, now, tolerance = 300) {
  try {
    const event = stripe.webhooks.constructEvent(payload, header, secret, tolerance, undefined, now * 1000);
    assert.equal(event.object, 'event');
    return null;
  } catch (e) {
    return e.message;
  }
}

for (const [name, payload] of Object.entries(payloads)) {
  test(`SDK header verifies with our code (${name})`, () => {
    const r = ourVerify(sdkHeader(payload, SECRET, NOW), [SECRET], NOW, payload);
    assert.equal(r.status, 0, r.stderr);
  });

  test(`our header passes constructEvent (${name})`, () => {
    assert.equal(sdkRefusal(payload, ourSign(SECRET, NOW, payload), SECRET, NOW), null);
  });

  test(`our header equals the SDK's (${name})`, () => {
    assert.equal(ourSign(SECRET, NOW, payload), sdkHeader(payload, SECRET, NOW));
  });
}

test('rotation: the SDK header verifies when its secret is the second one configured', () => {
  const payload = payloads.utf8;
  const r = ourVerify(sdkHeader(payload, SECRET, NOW), [OTHER, SECRET], NOW, payload);
  assert.equal(r.status, 0, r.stderr);
});

// Each case: what is signed and with what, then what the verifier is given.
const negatives = [
  { name: 'wrong secret', secret: OTHER, t: NOW, now: NOW, tamper: false, why: 'no signature matches', sdk: /No signatures found matching/ },
  { name: 'stale timestamp', secret: SECRET, t: NOW - 301, now: NOW, tamper: false, why: 'timestamp outside the tolerance zone', sdk: /Timestamp outside the tolerance zone/ },
  { name: 'tampered payload', secret: SECRET, t: NOW, now: NOW, tamper: true, why: 'no signature matches', sdk: /No signatures found matching/ },
];

for (const c of negatives) {
  const signed = payloads.utf8;
  const given = c.tamper ? signed.replace('€5', '€6') : signed;

  test(`both refuse: ${c.name}, header from the SDK`, () => {
    const header = sdkHeader(signed, c.secret, c.t);
    const r = ourVerify(header, [SECRET], c.now, given);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, c.why);
    assert.match(sdkRefusal(given, header, SECRET, c.now) ?? '', c.sdk);
  });

  test(`both refuse: ${c.name}, header from our code`, () => {
    const header = ourSign(c.secret, c.t, signed);
    assert.match(sdkRefusal(given, header, SECRET, c.now) ?? '', c.sdk);
    const r = ourVerify(header, [SECRET], c.now, given);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, c.why);
  });
}

test("constructEvent's tolerance parameter and ours agree on the boundary", () => {
  const payload = payloads.ascii;
  const header = ourSign(SECRET, NOW - 300, payload);
  assert.equal(sdkRefusal(payload, header, SECRET, NOW, 300), null);
  assert.equal(ourVerify(header, [SECRET], NOW, payload).status, 0);
  assert.match(sdkRefusal(payload, header, SECRET, NOW, 299) ?? '', /tolerance zone/);
  assert.equal(ourVerify(header, [SECRET], NOW + 1, payload).stderr, 'timestamp outside the tolerance zone');
});
