// slow_stripe.test.mjs: requests that call Stripe run on a bounded pool of their own, so a slow
// Stripe never holds the threads that serve check, consume, gate, webhooks and /healthz (issue
// #11 item 2); past the pool's queue they are answered 503 with Retry-After at once. Bounded: a
// few seconds of Stripe delay, twenty checkouts.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import {
  SERVICE_KEY, emuControl, errorOf, now, req, startEmulator, startServer, stopEmulator,
  stopServer, userToken,
} from './lib.mjs';

const P = '/api/v1/payments';
const WHSEC = 'whsec_slow_stripe_0123456789';
const ORIGIN = 'http://localhost:3000';
const DELAY_MS = 2500;

let emu;
before(async () => { emu = await startEmulator({ EMULATOR_WEBHOOK_SECRET: WHSEC }); });
after(async () => { await stopEmulator(emu); });

const env = (extra) => ({
  STRIPE_SECRET_KEY: 'sk_test_emulator',
  STRIPE_API_BASE: emu.base,
  STRIPE_WEBHOOK_SECRET: WHSEC,
  STRIPE_PREMIUM_PRICE_ID: 'price_premium_monthly',
  STRIPE_PLUS_PRICE_ID: 'price_plus_monthly',
  HTTP_THREADS: '2',
  ...extra,
});

const checkout = (srv, user) => req(srv, 'POST', `${P}/create-checkout-session`, {
  token: userToken(user, { exp: now() + 3600 }),
  headers: { origin: ORIGIN },
  body: { tier: 'premium', success_url: `${ORIGIN}/ok`, cancel_url: `${ORIGIN}/no` },
});

function signedEvent(id) {
  const body = JSON.stringify({ id, object: 'event', type: 'customer.created', created: now(), data: { object: { id: 'cus_x', object: 'customer' } } });
  const t = now();
  const v1 = crypto.createHmac('sha256', WHSEC).update(`${t}.${body}`).digest('hex');
  return { raw: body, headers: { 'content-type': 'application/json', 'stripe-signature': `t=${t},v1=${v1}` } };
}

async function timed(f) {
  const t0 = performance.now();
  const r = await f();
  return { r, ms: performance.now() - t0 };
}

async function slowStripe(on) {
  const r = await emuControl(emu, 'POST', '/_emulator/faults', on ? { mode: 'timeout', percent: 100, delay_ms: DELAY_MS } : { mode: 'none' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

describe('Stripe off the serving threads', () => {
  test('with twenty checkouts waiting on a slow Stripe, everything else answers at once', async () => {
    const srv = await startServer(env({ STRIPE_CONCURRENCY: '20' }));
    try {
      await slowStripe(true);
      const inflight = Promise.all(Array.from({ length: 20 }, (_, i) => checkout(srv, `slow_${i}`)));
      await new Promise((r) => setTimeout(r, 300)); // all twenty are at Stripe now
      const probes = [];
      for (let i = 0; i < 5; i++) {
        probes.push(['healthz', await timed(() => req(srv, 'GET', '/healthz'))]);
        probes.push(['check', await timed(() => req(srv, 'GET', '/api/v1/access/check?feature=basic', { token: userToken('probe') }))]);
        probes.push(['consume', await timed(() => req(srv, 'POST', '/api/v1/access/consume', { token: SERVICE_KEY, body: { user_id: 'probe', quota: 'ai_minutes', amount: 1 } }))]);
        probes.push(['gate', await timed(() => req(srv, 'GET', '/api/v1/access/gate', { token: userToken('probe'), headers: { 'x-original-uri': '/api/ai/chat', 'x-original-method': 'POST' } }))]);
        probes.push(['webhook', await timed(() => req(srv, 'POST', `${P}/webhook`, signedEvent(`evt_probe_${i}`)))]);
      }
      const rs = await inflight;
      for (const [name, { r, ms }] of probes) {
        assert.ok(r.status < 500, `${name}: ${r.status} ${JSON.stringify(r.body)}`);
        assert.ok(ms < 1000, `${name} waited ${Math.round(ms)} ms behind Stripe`);
      }
      for (const r of rs) assert.equal(r.status, 200, JSON.stringify(r.body));
    } finally {
      await slowStripe(false);
      await stopServer(srv);
    }
  });

  test('past the queue, a request that needs Stripe is answered 503 with Retry-After at once', async () => {
    const srv = await startServer(env({ STRIPE_CONCURRENCY: '1', STRIPE_QUEUE_MAX: '1' }));
    try {
      await slowStripe(true);
      const rs = await Promise.all(Array.from({ length: 4 }, (_, i) => timed(() => checkout(srv, `busy_${i}`))));
      const busy = rs.filter(({ r }) => r.status === 503);
      assert.ok(busy.length >= 1, `some were refused: ${rs.map(({ r }) => r.status)}`);
      for (const { r, ms } of busy) {
        assert.equal(errorOf(r).code, 'busy');
        assert.equal(r.headers.get('retry-after'), '5');
        assert.equal(r.headers.get('access-control-allow-origin'), ORIGIN, 'a page can read the 503');
        assert.ok(ms < 1000, `refused at once, not after ${Math.round(ms)} ms`);
      }
      assert.ok(rs.some(({ r }) => r.status === 200), 'the ones in the pool were served');
      const m = await req(srv, 'GET', '/metrics');
      const counted = Number((/^subgate_stripe_queue_refusals_total\{reason="queue_full"\} (\d+)$/m.exec(m.text) || [])[1]);
      assert.equal(counted, busy.length, 'each 503 is counted in /metrics');
    } finally {
      await slowStripe(false);
      await stopServer(srv);
    }
  });
});
