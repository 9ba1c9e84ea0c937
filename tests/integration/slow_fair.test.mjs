// slow_fair.test.mjs: one client cannot fill the queue of requests that wait for Stripe (SPEC
// §8). Each user may have STRIPE_PER_CLIENT_MAX of them queued or running; past that its
// next is answered 429 rate_limited with Retry-After at once, nothing done, and another user's
// checkout still goes through. Slots come back when the work ends, also when the client left
// while its request waited on a suspended connection. Bounded: a second of Stripe delay a call.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import {
  emuControl, errorOf, logged, now, req, startEmulator, startServer, stopEmulator, stopServer, userToken,
} from './lib.mjs';

const P = '/api/v1/payments';
const WHSEC = 'whsec_slow_fair_0123456789';
const ORIGIN = 'http://localhost:3000';
const DELAY_MS = 1000;
const PER_CLIENT = 3;
const FLOOD = 10; // more than the pool holds (2 running + 6 waiting)

let emu;
before(async () => { emu = await startEmulator({ EMULATOR_WEBHOOK_SECRET: WHSEC }); });
after(async () => { await stopEmulator(emu); });

const env = {
  STRIPE_SECRET_KEY: 'sk_test_emulator',
  STRIPE_API_BASE: '',
  STRIPE_WEBHOOK_SECRET: WHSEC,
  STRIPE_PREMIUM_PRICE_ID: 'price_premium_monthly',
  STRIPE_PLUS_PRICE_ID: 'price_plus_monthly',
  STRIPE_CONCURRENCY: '2',
  STRIPE_QUEUE_MAX: '6',
  STRIPE_PER_CLIENT_MAX: String(PER_CLIENT),
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const BODY = { tier: 'premium', success_url: `${ORIGIN}/ok`, cancel_url: `${ORIGIN}/no` };
// One token per user, reused (the cap counts by user: tokens of one user share it).
const tokenOf = (user) => userToken(user, { exp: now() + 3600 });
const checkout = (srv, token) => req(srv, 'POST', `${P}/create-checkout-session`, {
  token, headers: { origin: ORIGIN }, body: BODY,
});

async function slowStripe(on) {
  const r = await emuControl(emu, 'POST', '/_emulator/faults', on ? { mode: 'timeout', percent: 100, delay_ms: DELAY_MS } : { mode: 'none' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

// Asks until the answer is not 429 (the client's slots came back), at most ms.
async function untilNotLimited(srv, token, ms) {
  let r;
  for (const t0 = Date.now(); Date.now() - t0 < ms; await sleep(200)) {
    r = await checkout(srv, token);
    if (r.status !== 429) return r;
  }
  return r;
}

// Sends a checkout on a socket of its own; resolves once written.
function rawCheckout(srv, token) {
  const body = JSON.stringify(BODY);
  const sock = net.connect(srv.port, '127.0.0.1');
  sock.on('error', () => {});
  return new Promise((resolve) => sock.on('connect', () => {
    sock.write(`POST ${P}/create-checkout-session HTTP/1.1\r\nHost: 127.0.0.1\r\n`
      + `Authorization: Bearer ${token}\r\nContent-Type: application/json\r\n`
      + `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, () => resolve(sock));
  }));
}

describe('one client cannot fill the Stripe queue', () => {
  test('a flood from A is capped at 429 while B checks out; A asks again once it drains', async () => {
    const srv = await startServer({ ...env, STRIPE_API_BASE: emu.base });
    const a = tokenOf('fair_a');
    try {
      await slowStripe(true);
      const flood = Array.from({ length: FLOOD }, () => checkout(srv, a));
      // The refusals come at once, before any of A's checkouts can be done with Stripe.
      const first = await Promise.race(flood);
      const b = await checkout(srv, tokenOf('fair_b'));
      assert.equal(b.status, 200, `B is served while A floods: ${b.status} ${b.text}`);
      assert.equal(first.status, 429, `A past its cap: ${first.status} ${first.text}`);
      const rs = await Promise.all(flood);
      const limited = rs.filter((r) => r.status === 429);
      assert.ok(limited.length >= FLOOD - PER_CLIENT - 1, `statuses: ${rs.map((r) => r.status)}`);
      assert.ok(rs.filter((r) => r.status === 200).length >= 1, `statuses: ${rs.map((r) => r.status)}`);
      for (const r of rs) assert.ok(r.status === 200 || r.status === 429, `${r.status} ${r.text}`);
      for (const r of limited) {
        const e = errorOf(r);
        assert.equal(e.code, 'rate_limited');
        assert.equal(e.type, 'rate_limit_error');
        assert.equal(r.headers.get('retry-after'), '1');
        assert.match(r.headers.get('request-id') || '', /^req_[0-9a-f]{16}$/);
        assert.equal(r.headers.get('access-control-allow-origin'), ORIGIN, 'a page can read the 429');
      }
      assert.ok(await logged(srv, /"status":429/), 'the refusals have access-log lines');
      const m = await req(srv, 'GET', '/metrics');
      const counted = Number((/^subgate_stripe_queue_refusals_total\{reason="client_cap"\} (\d+)$/m.exec(m.text) || [])[1]);
      assert.equal(counted, limited.length, 'each 429 is counted in /metrics');
      const again = await checkout(srv, a);
      assert.equal(again.status, 200, `A's slots came back: ${again.status} ${again.text}`);
    } finally {
      await slowStripe(false);
      await stopServer(srv);
    }
  });

  test('made-up tokens get 401 at once, never a place in a full queue', async () => {
    const srv = await startServer({ ...env, STRIPE_API_BASE: emu.base });
    try {
      await slowStripe(true);
      // Three users fill the pool: 2 running + 6 waiting, 3 + 3 + 2 within their caps.
      const held = ['fill_a', 'fill_a', 'fill_a', 'fill_b', 'fill_b', 'fill_b', 'fill_c', 'fill_c']
        .map((u) => checkout(srv, tokenOf(u)));
      await sleep(300);
      const t0 = Date.now();
      const forged = await Promise.all(Array.from({ length: 20 }, (_, i) =>
        checkout(srv, `${tokenOf(`forged_${i}`)}x`)));
      const took = Date.now() - t0;
      for (const r of forged) {
        assert.equal(r.status, 401, `a bad token past a full queue: ${r.status} ${r.text}`);
        assert.equal(errorOf(r).code, 'invalid_token');
        assert.match(r.headers.get('www-authenticate') || '', /^Bearer realm="subgate", error="invalid_token"$/);
        assert.equal(r.headers.get('access-control-allow-origin'), ORIGIN, 'a page can read the 401');
      }
      assert.ok(took < DELAY_MS, `the 401s came before the first Stripe call ended (${took} ms)`);
      const rs = await Promise.all(held);
      for (const r of rs) assert.equal(r.status, 200, `${r.status} ${r.text}`);
    } finally {
      await slowStripe(false);
      await stopServer(srv);
    }
  });

  test('the tokens of one user share its cap', async () => {
    const srv = await startServer({ ...env, STRIPE_API_BASE: emu.base });
    try {
      await slowStripe(true);
      const tokens = Array.from({ length: PER_CLIENT + 2 }, (_, i) =>
        userToken('fair_many_tokens', { exp: now() + 3600 + i }));
      assert.equal(new Set(tokens).size, tokens.length, 'every token differs');
      const rs = await Promise.all(tokens.map((t) => checkout(srv, t)));
      const statuses = rs.map((r) => r.status).sort();
      assert.deepEqual(statuses, [...Array(PER_CLIENT).fill(200), 429, 429], `statuses: ${statuses}`);
    } finally {
      await slowStripe(false);
      await stopServer(srv);
    }
  });

  test('a client that leaves while its request waits for Stripe gets its slot back', async () => {
    const srv = await startServer({ ...env, STRIPE_API_BASE: emu.base, STRIPE_PER_CLIENT_MAX: '1' });
    const a = tokenOf('fair_gone');
    try {
      await slowStripe(true);
      const sock = await rawCheckout(srv, a);
      await sleep(300); // at Stripe now, its connection suspended
      const second = await checkout(srv, a);
      assert.equal(second.status, 429, `the first holds A's one slot: ${second.status} ${second.text}`);
      sock.destroy();
      await slowStripe(false);
      const r = await untilNotLimited(srv, a, 20000);
      assert.equal(r.status, 200, `the slot came back after the client left: ${r.status} ${r.text}`);
    } finally {
      await slowStripe(false);
      await stopServer(srv);
    }
  });
});
