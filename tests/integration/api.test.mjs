// api.test.mjs: the service over HTTP: operations, pricing, authentication, bad input.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { BACKEND, SECRET, errorOf, logged, now, req, signJwt, startServer, stopServer, userToken } from './lib.mjs';

let srv;
before(async () => {
  srv = await startServer({ MAX_BODY_BYTES: '2048', STRIPE_PUBLISHABLE_KEY: 'pk_test_integration' });
});
after(async () => { await stopServer(srv); });

describe('operations', () => {
  test('healthz answers ok', async () => {
    const r = await req(srv, 'GET', '/healthz');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { status: 'ok' });
    assert.match(r.headers.get('request-id'), /^req_[0-9a-f]{16}$/);
  });
  test('readyz reports the migrated database of the backend in use', async () => {
    const r = await req(srv, 'GET', '/readyz');
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'ready');
    assert.equal(r.body.database, BACKEND);
    assert.ok(r.body.schema_version >= 1);
  });
  test('request ids differ per request', async () => {
    const a = await req(srv, 'GET', '/healthz');
    const b = await req(srv, 'GET', '/healthz');
    assert.notEqual(a.headers.get('request-id'), b.headers.get('request-id'));
  });
});

describe('pricing', () => {
  test('lists the four built-in tiers with the publishable key', async () => {
    const r = await req(srv, 'GET', '/api/v1/payments/pricing');
    assert.equal(r.status, 200);
    assert.equal(r.body.publishable_key, 'pk_test_integration');
    const ids = r.body.tiers.map((t) => t.id);
    assert.deepEqual(ids, ['free', 'premium', 'plus', 'enterprise']);
    const byId = Object.fromEntries(r.body.tiers.map((t) => [t.id, t]));
    assert.equal(byId.free.price.amount, 0);
    assert.equal(byId.premium.price.amount, 999);
    assert.equal(byId.premium.price.currency, 'usd');
    assert.equal(byId.premium.price.interval, 'month');
    assert.equal(byId.plus.price.amount, 1999);
    assert.equal(byId.enterprise.contact_sales, true);
    assert.equal(byId.free.limits.ai_minutes, 30);
    assert.equal(byId.free.limits.scenarios, 5);
    assert.equal(byId.premium.limits.ai_minutes, null);
    assert.ok(byId.plus.features.includes('business_german'));
  });
});

describe('routing', () => {
  test('an unknown route is a JSON 404', async () => {
    const r = await req(srv, 'GET', '/api/v1/payments/nope');
    assert.equal(r.status, 404);
    assert.equal(errorOf(r).type, 'invalid_request_error');
  });
  test('a known route with the wrong method is a 405 with Allow', async () => {
    const r = await req(srv, 'DELETE', '/api/v1/payments/pricing');
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'GET, HEAD');
    errorOf(r);
    const post = await req(srv, 'GET', '/api/v1/access/consume');
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'POST');
  });
  test('HEAD on a GET route: the GET answer\'s status and headers, no body', async () => {
    for (const p of ['/healthz', '/api/v1/payments/pricing', '/openapi.json']) {
      const get = await fetch(`${srv.base}${p}`);
      const getBody = await get.text();
      const head = await fetch(`${srv.base}${p}`, { method: 'HEAD' });
      assert.equal(head.status, 200, p);
      assert.equal(head.headers.get('content-type'), get.headers.get('content-type'), p);
      assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(getBody)), p);
      assert.equal(await head.text(), '', p);
    }
    const noAuth = await fetch(`${srv.base}/api/v1/payments/subscription`, { method: 'HEAD' });
    assert.equal(noAuth.status, 401, 'HEAD authenticates as GET does');
    assert.match(noAuth.headers.get('www-authenticate'), /^Bearer realm="subgate"/);
    const onPost = await fetch(`${srv.base}/api/v1/access/consume`, { method: 'HEAD' });
    assert.equal(onPost.status, 405, 'no GET route: no HEAD');
    assert.equal(onPost.headers.get('allow'), 'POST');
  });
  test('a successful answer carries no Allow header', async () => {
    const r = await req(srv, 'GET', '/api/v1/payments/pricing');
    assert.equal(r.headers.get('allow'), null);
  });
});

describe('user authentication', () => {
  const path = '/api/v1/payments/subscription';
  const cases = [
    ['no Authorization header', undefined, /missing/i],
    ['an expired token', () => userToken('u', { exp: now() - 3600 }), /expired/i],
    ['a not-yet-valid token', () => userToken('u', { nbf: now() + 3600 }), /not yet valid/i],
    ['a token without exp', () => signJwt({ sub: 'u', iat: now() }), /exp/i],
    ['a token signed with another secret', () => userToken('u', {}, { key: 'another-secret-another-secret-1234' }), /signature/i],
    ['an alg:none token', () => signJwt({ sub: 'u', exp: now() + 600 }, { alg: 'none' }), /algorithm/i],
    ['garbage', () => 'not.a.token', /malformed|signature|token/i],
  ];
  for (const [name, make, why] of cases) {
    test(`rejects ${name} with 401`, async () => {
      const token = make ? make() : undefined;
      const r = await req(srv, 'GET', path, { token });
      assert.equal(r.status, 401);
      const e = errorOf(r);
      assert.equal(e.type, 'authentication_error');
      assert.match(e.message, why);
    });
  }
  test('rejects a Basic scheme', async () => {
    const r = await req(srv, 'GET', path, { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    assert.equal(r.status, 401);
  });
  test('accepts a valid HS256 token: a user without a subscription is free', async () => {
    const r = await req(srv, 'GET', path, { token: userToken('user_sub_1') });
    assert.equal(r.status, 200);
    assert.equal(r.body.tier, 'free');
    assert.equal(r.body.status, 'none');
    assert.equal(r.body.cancel_at_period_end, false);
  });
});

describe('checkout input', () => {
  const path = '/api/v1/payments/create-checkout-session';
  const good = { tier: 'premium', success_url: 'http://localhost:3000/ok?s={CHECKOUT_SESSION_ID}', cancel_url: 'http://localhost:3000/cancel' };
  const tok = () => userToken('user_checkout');
  test('malformed JSON says where', async () => {
    const r = await req(srv, 'POST', path, { token: tok(), raw: '{"tier": "premium",\n "x": }', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 400);
    assert.match(errorOf(r).message, /line 2 column \d+/);
  });
  const bad = [
    ['tier of the wrong type', { ...good, tier: 7 }, 'tier', /string/],
    ['a missing tier', { success_url: good.success_url, cancel_url: good.cancel_url }, 'tier', /missing/],
    ['an unknown tier', { ...good, tier: 'gold' }, 'tier', /unknown tier/],
    ['the enterprise tier', { ...good, tier: 'enterprise' }, 'tier', /contact sales/],
    ['the free tier', { ...good, tier: 'free' }, 'tier', /checkout/],
    ['a foreign success_url', { ...good, success_url: 'https://evil.example/ok' }, 'success_url', /allowed origin/],
    ['a relative cancel_url', { ...good, cancel_url: '/cancel' }, 'cancel_url', /absolute/],
    ['a javascript: url', { ...good, success_url: 'javascript:alert(1)' }, 'success_url', /absolute/],
    ['trial_days over 730', { ...good, trial_days: 731 }, 'trial_days', /730/],
    ['trial_days as a string', { ...good, trial_days: '7' }, 'trial_days', /integer/],
    ['an unknown field', { ...good, coupon: 'X' }, 'coupon', /unknown field/],
  ];
  for (const [name, body, param, why] of bad) {
    test(`rejects ${name} with 400`, async () => {
      const r = await req(srv, 'POST', path, { token: tok(), body });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      const e = errorOf(r);
      assert.equal(e.param, param);
      assert.match(e.message, why);
    });
  }
  test('a JSON array body is refused', async () => {
    const r = await req(srv, 'POST', path, { token: tok(), body: [1] });
    assert.equal(r.status, 400);
  });
  test('duplicate keys are refused', async () => {
    const r = await req(srv, 'POST', path, { token: tok(), raw: '{"tier":"premium","tier":"plus"}', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 400);
    assert.match(errorOf(r).message, /duplicate/);
  });
  test('a wrong Content-Type is a 415', async () => {
    const r = await req(srv, 'POST', path, { token: tok(), raw: JSON.stringify(good), headers: { 'content-type': 'text/plain' } });
    assert.equal(r.status, 415);
    errorOf(r);
  });
  test('a body over the cap is a 413', async () => {
    const r = await req(srv, 'POST', path, { token: tok(), body: { ...good, pad: 'x'.repeat(5000) } });
    assert.equal(r.status, 413);
    assert.equal(errorOf(r).code, 'body_too_large');
  });
  test('a chunked body over the cap (no Content-Length) is a 413', async () => {
    const count413 = () => (srv.log.match(/"status":413/g) || []).length;
    await new Promise((res) => setTimeout(res, 100)); // the log thread writes lines every 10 ms
    const before = count413();
    const chunk = new TextEncoder().encode('x'.repeat(1024));
    let sent = 0;
    const stream = new ReadableStream({
      pull(c) { if (sent++ < 8) c.enqueue(chunk); else c.close(); },
    });
    const r = await fetch(srv.base + path, {
      method: 'POST', body: stream, duplex: 'half',
      headers: { authorization: `Bearer ${tok()}`, 'content-type': 'application/json' },
    });
    // the rest of the body is read and dropped, and the 413 answered (never a closed connection)
    assert.equal(r.status, 413);
    assert.equal(errorOf({ body: await r.json() }).code, 'body_too_large');
    const after = await req(srv, 'GET', '/healthz');
    assert.equal(after.status, 200, 'the server keeps serving');
    await new Promise((res) => setTimeout(res, 100)); // the log thread writes lines every 10 ms
    assert.equal(count413(), before + 1, 'exactly one 413 was logged for the chunked request');
  });
  test('authentication comes before the body', async () => {
    const r = await req(srv, 'POST', path, { raw: '{', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 401);
  });
  test('valid input without Stripe configured is a 503 naming the variable', async () => {
    const r = await req(srv, 'POST', path, { token: tok(), body: good });
    assert.equal(r.status, 503);
    assert.match(errorOf(r).message, /STRIPE_SECRET_KEY/);
  });
});

describe('invoices, portal and cancel input', () => {
  const tok = () => userToken('user_inv');
  for (const q of ['limit=0', 'limit=101', 'limit=abc', 'limit=', 'limit=5&foo=1']) {
    test(`invoices?${q} is a 400`, async () => {
      const r = await req(srv, 'GET', `/api/v1/payments/invoices?${q}`, { token: tok() });
      assert.equal(r.status, 400);
      errorOf(r);
    });
  }
  // As /invoices refuses a parameter it does not take, so does /subscription (it took any).
  test('subscription?foo=1 is a 400 naming the parameter; without it, 200', async () => {
    const r = await req(srv, 'GET', '/api/v1/payments/subscription?foo=1', { token: tok() });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).param, 'foo');
    assert.equal((await req(srv, 'GET', '/api/v1/payments/subscription', { token: tok() })).status, 200);
  });
  test('invoices of a new user is an empty list', async () => {
    const r = await req(srv, 'GET', '/api/v1/payments/invoices?limit=100', { token: tok() });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.data, []);
  });
  test('portal with a foreign return_url is a 400', async () => {
    const r = await req(srv, 'POST', '/api/v1/payments/customer-portal', { token: tok(), body: { return_url: 'https://evil.example/' } });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).param, 'return_url');
  });
  test('portal for a user without a billing account is a 404', async () => {
    const r = await req(srv, 'POST', '/api/v1/payments/customer-portal', { token: tok(), body: { return_url: 'http://localhost:3000/account' } });
    assert.equal(r.status, 404);
  });
  test('cancel without a subscription is a 404', async () => {
    const r = await req(srv, 'POST', '/api/v1/payments/cancel-subscription?immediate=false', { token: tok() });
    assert.equal(r.status, 404);
  });
  test('cancel with immediate=maybe is a 400', async () => {
    const r = await req(srv, 'POST', '/api/v1/payments/cancel-subscription?immediate=maybe', { token: tok() });
    assert.equal(r.status, 400);
  });
});

describe('logging', () => {
  test('one JSON line per request, with its id and route, and no token', async () => {
    const token = userToken('user_log');
    const r = await req(srv, 'GET', '/api/v1/payments/subscription', { token });
    const id = r.headers.get('request-id');
    assert.ok(await logged(srv, new RegExp(id)), 'the line is written');
    const lines = srv.log.split('\n').filter((l) => l.includes(id));
    assert.equal(lines.length, 1);
    const line = JSON.parse(lines[0]);
    assert.equal(line.route, '/api/v1/payments/subscription');
    assert.equal(line.status, 200);
    assert.equal(line.user, 'user_log');
    assert.equal(typeof line.latency_ms, 'number');
    assert.ok(!srv.log.includes(token.split('.')[2]), 'the token signature is not logged');
    assert.ok(!srv.log.includes(SECRET), 'the secret is not logged');
  });
});

describe('concurrency', () => {
  test('64 concurrent requests all succeed', async () => {
    const token = userToken('user_many');
    const rs = await Promise.all(Array.from({ length: 64 }, () => req(srv, 'GET', '/api/v1/payments/subscription', { token })));
    assert.deepEqual([...new Set(rs.map((r) => r.status))], [200]);
  });
});

describe('graceful shutdown', () => {
  test('SIGTERM lets a request in flight finish, then exits 0', async () => {
    const s = await startServer();
    const body = JSON.stringify({ tier: 'gold', success_url: 'http://localhost:3000/a', cancel_url: 'http://localhost:3000/b' });
    const token = userToken('user_term');
    const sock = net.connect(s.port, '127.0.0.1');
    await new Promise((r) => sock.on('connect', r));
    let answer = '';
    sock.on('data', (d) => { answer += d; });
    const closed = new Promise((r) => sock.on('close', r));
    sock.write(`POST /api/v1/payments/create-checkout-session HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, 10)}`);
    await new Promise((r) => setTimeout(r, 200));
    s.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(s.exited, null, 'still running while a request is in flight');
    sock.write(body.slice(10));
    await closed;
    assert.match(answer, /^HTTP\/1\.1 400/);
    assert.match(answer, /unknown tier/);
    const exit = await s.exit;
    assert.equal(exit.code, 0);
    assert.match(s.log, /stopped/);
  });
});
