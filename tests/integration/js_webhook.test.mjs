// js_webhook.test.mjs: the JS client's verifyWebhook on its own (no server): signatures made here
// with Node's crypto, one or several secrets, the tolerance, tampered bodies and bad headers.
// The outbox test checks it against what subgate itself sends.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';

import { SubgateError, verifyWebhook } from '../../clients/js/subgate.js';

const NEW = 'app_secret_new_0123456789abcdef';
const OLD = 'app_secret_old_0123456789abcdef';
const BODY = '{"id":"evt_0123","type":"quota.exhausted","created":1700000000,"data":{"user_id":"u1"}}';
const T = 1700000000;

const mac = (secret, t, body) => crypto.createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
const header = (t, body, ...secrets) => [`t=${t}`, ...secrets.map((s) => `v1=${mac(s, t, body)}`)].join(',');

test('a valid signature verifies and the event comes back parsed', async () => {
  const ev = await verifyWebhook(BODY, header(T, BODY, NEW), NEW, { now: T + 10 });
  assert.equal(ev.id, 'evt_0123');
  const bytes = new TextEncoder().encode(BODY);
  assert.equal((await verifyWebhook(bytes, header(T, BODY, NEW), [NEW], { now: T })).type, 'quota.exhausted');
});

test('during a rotation, either secret verifies', async () => {
  const h = header(T, BODY, NEW, OLD);
  assert.equal((await verifyWebhook(BODY, h, OLD, { now: T })).id, 'evt_0123');
  assert.equal((await verifyWebhook(BODY, h, ['another_secret_0123456', NEW], { now: T })).id, 'evt_0123');
});

test('refused: tampered body, wrong secret, stale or future t, malformed header', async () => {
  const cases = [
    [`${BODY} `, header(T, BODY, NEW), NEW, T],
    [BODY, header(T, BODY, NEW), 'wrong_secret_0123456789', T],
    [BODY, header(T, BODY, NEW), NEW, T + 301],
    [BODY, header(T, BODY, NEW), NEW, T - 301],
    [BODY, `v1=${mac(NEW, T, BODY)}`, NEW, T],
    [BODY, `t=${T}`, NEW, T],
    [BODY, '', NEW, T],
    [BODY, undefined, NEW, T],
  ];
  for (const [body, h, secrets, now] of cases) {
    await assert.rejects(verifyWebhook(body, h, secrets, { now }), (e) => e instanceof SubgateError && e.code === 'invalid_signature',
      `${h} at ${now}`);
  }
  assert.equal((await verifyWebhook(BODY, header(T, BODY, NEW), NEW, { now: T + 3600, toleranceSeconds: 7200 })).id, 'evt_0123');
});
