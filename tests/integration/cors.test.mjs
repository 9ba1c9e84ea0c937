// cors.test.mjs: CORS for the origins of CORS_ORIGINS (issue #12 item 1). Preflights on the
// routes a user's page calls are answered 204 with the origin itself (never '*'); answers on
// those routes carry Access-Control-Allow-Origin; service-only and Stripe routes, and origins
// that are not configured, get no CORS header at all and a refused preflight.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { errorOf, req, run, SECRET, SERVICE_KEY, startServer, stopServer, userToken } from './lib.mjs';

const P = '/api/v1/payments';
const A = '/api/v1/access';
const APP = 'http://localhost:5173';
const OTHER_APP = 'https://app.example';

// The routes a browser may call, with their method.
const BROWSER = [
  ['GET', `${P}/pricing`],
  ['GET', `${P}/subscription`],
  ['GET', `${P}/invoices`],
  ['GET', `${P}/usage`],
  ['POST', `${P}/create-checkout-session`],
  ['POST', `${P}/checkout-success`],
  ['POST', `${P}/customer-portal`],
  ['POST', `${P}/cancel-subscription`],
  ['POST', `${P}/change-plan`],
  ['POST', `${P}/preview-plan-change`],
  ['POST', `${P}/cancel-plan-change`],
  ['POST', `${P}/resume-subscription`],
  ['GET', `${A}/check`],
];

// Service-only, Stripe and operations routes: never CORS.
const SERVICE = [
  ['POST', `${A}/consume`],
  ['POST', `${A}/track`],
  ['POST', `${A}/refund`],
  ['GET', `${A}/usage`],
  ['GET', `${A}/gate`],
  ['POST', `${A}/gate`],
  ['POST', `${P}/webhook`],
  ['GET', '/metrics'],
  ['GET', '/healthz'],
];

let srv; // CORS_ORIGINS set, apart from ALLOWED_REDIRECT_ORIGINS
let follows; // CORS_ORIGINS unset: ALLOWED_REDIRECT_ORIGINS
let plain; // neither set: the default origin http://localhost:3000

before(async () => {
  srv = await startServer({ CORS_ORIGINS: `${APP}, https://App.Example`, ALLOWED_REDIRECT_ORIGINS: 'http://localhost:3000' });
  follows = await startServer({ ALLOWED_REDIRECT_ORIGINS: 'https://shop.example,http://localhost:8000' });
  plain = await startServer({});
});

after(async () => {
  await stopServer(srv);
  await stopServer(follows);
  await stopServer(plain);
});

const preflight = (s, p, origin, method, headers = 'authorization, content-type') =>
  req(s, 'OPTIONS', p, {
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
  });

function assertNoCors(r, what) {
  for (const [name] of r.headers) {
    assert.ok(!name.startsWith('access-control-'), `${what}: unexpected ${name}: ${r.headers.get(name)}`);
  }
}

function assertPreflightOk(r, origin, method, what) {
  assert.equal(r.status, 204, `${what}: ${JSON.stringify(r.body)}`);
  assert.equal(r.headers.get('access-control-allow-origin'), origin, what);
  assert.equal(r.headers.get('vary'), 'Origin', what);
  assert.equal(r.headers.get('access-control-allow-methods'), method, what);
  assert.equal(r.headers.get('access-control-allow-headers'), 'Authorization, Content-Type, Idempotency-Key', what);
  assert.equal(r.headers.get('access-control-max-age'), '600', what);
  assert.equal(r.headers.get('access-control-allow-credentials'), null, `${what}: bearer tokens, no cookies`);
  assert.equal(r.body, '', `${what}: no body`);
}

function assertActualCors(r, origin, what) {
  assert.equal(r.headers.get('access-control-allow-origin'), origin, what);
  assert.equal(r.headers.get('vary'), 'Origin', what);
  assert.equal(r.headers.get('access-control-expose-headers'), 'Request-Id, Idempotent-Replayed, Retry-After', what);
}

describe('preflights', () => {
  test('every browser route answers a configured origin with 204 and the headers it needs', async () => {
    for (const [method, p] of BROWSER) {
      for (const origin of [APP, OTHER_APP]) {
        const r = await preflight(srv, p, origin, method);
        assertPreflightOk(r, origin, method, `${method} ${p} from ${origin}`);
      }
    }
  });

  test('a method the route does not serve is refused with a clear error', async () => {
    const r = await preflight(srv, `${P}/pricing`, APP, 'DELETE');
    assert.equal(r.status, 403);
    const e = errorOf(r);
    assert.equal(e.code, 'cors_method_not_allowed');
    assert.match(e.message, /DELETE.*allowed: GET/);
    assertNoCors(r, 'wrong method');
  });

  test('an origin that is not configured gets 403 and no CORS header', async () => {
    // http://localhost:3000 is a redirect origin here, but CORS_ORIGINS is set apart.
    for (const origin of ['https://evil.example', 'http://localhost:3000', 'null', `${APP}.evil.example`, 'http://localhost:51730']) {
      const r = await preflight(srv, `${P}/subscription`, origin, 'GET');
      assert.equal(r.status, 403, origin);
      const e = errorOf(r);
      assert.equal(e.type, 'permission_error');
      assert.equal(e.code, 'cors_origin_not_allowed');
      assert.ok(e.message.includes('CORS_ORIGINS'), e.message);
      assertNoCors(r, origin);
      assert.equal(r.headers.get('vary'), null, origin);
    }
  });

  test('service-only, Stripe and operations routes refuse every preflight', async () => {
    for (const [method, p] of SERVICE) {
      const r = await preflight(srv, p, APP, method);
      assert.equal(r.status, 403, `${method} ${p}`);
      assert.equal(errorOf(r).code, 'cors_not_allowed', `${method} ${p}`);
      assertNoCors(r, `${method} ${p}`);
    }
  });

  test('a preflight on an unknown path is 404, and OPTIONS without preflight headers stays 405', async () => {
    const r = await preflight(srv, `${P}/nope`, APP, 'GET');
    assert.equal(r.status, 404);
    assertNoCors(r, 'unknown path');
    const bare = await req(srv, 'OPTIONS', `${P}/pricing`);
    assert.equal(bare.status, 405);
    assert.equal(bare.headers.get('allow'), 'GET, HEAD');
    assertNoCors(bare, 'bare OPTIONS');
    const noMethod = await req(srv, 'OPTIONS', `${P}/pricing`, { headers: { origin: APP } });
    assert.equal(noMethod.status, 405);
    assertNoCors(noMethod, 'OPTIONS with Origin alone');
  });
});

describe('actual requests', () => {
  const token = userToken('cors_user');

  test('browser routes carry the origin, Vary and the exposed headers, errors included', async () => {
    const pricing = await req(srv, 'GET', `${P}/pricing`, { headers: { origin: APP } });
    assert.equal(pricing.status, 200);
    assertActualCors(pricing, APP, 'pricing');
    const sub = await req(srv, 'GET', `${P}/subscription`, { token, headers: { origin: OTHER_APP } });
    assert.equal(sub.status, 200);
    assertActualCors(sub, OTHER_APP, 'subscription');
    for (const p of [`${P}/usage`, `${P}/invoices`, `${A}/check?feature=custom_ai`]) {
      const r = await req(srv, 'GET', p, { token, headers: { origin: APP } });
      assert.equal(r.status, 200, `${p}: ${JSON.stringify(r.body)}`);
      assertActualCors(r, APP, p);
    }
    // The page must read a 401 to send the user to log in again.
    const anon = await req(srv, 'GET', `${P}/subscription`, { headers: { origin: APP } });
    assert.equal(anon.status, 401);
    assertActualCors(anon, APP, '401');
    const cancel = await req(srv, 'POST', `${P}/cancel-subscription`, { token, headers: { origin: APP } });
    assert.ok(cancel.status >= 400, JSON.stringify(cancel.body));
    assertActualCors(cancel, APP, 'cancel error');
  });

  test('no Origin, or one not configured: no CORS header', async () => {
    const none = await req(srv, 'GET', `${P}/pricing`);
    assert.equal(none.status, 200);
    assertNoCors(none, 'no origin');
    const evil = await req(srv, 'GET', `${P}/subscription`, { token, headers: { origin: 'https://evil.example' } });
    assert.equal(evil.status, 200, 'CORS is the browser\'s rule; the server still answers');
    assertNoCors(evil, 'evil origin');
  });

  test('service-only routes never carry CORS headers, even for a configured origin', async () => {
    const consume = await req(srv, 'POST', `${A}/consume`, {
      token: SERVICE_KEY, headers: { origin: APP }, body: { user_id: 'cors_user', quota: 'ai_minutes', amount: 1 },
    });
    assert.ok(consume.status < 500, JSON.stringify(consume.body));
    assertNoCors(consume, 'consume');
    const usage = await req(srv, 'GET', `${A}/usage?user_id=cors_user`, { token: SERVICE_KEY, headers: { origin: APP } });
    assert.equal(usage.status, 200, JSON.stringify(usage.body));
    assertNoCors(usage, 'access usage');
    const gate = await req(srv, 'GET', `${A}/gate`, { headers: { origin: APP } });
    assertNoCors(gate, 'gate');
    const metrics = await req(srv, 'GET', '/metrics', { headers: { origin: APP } });
    assertNoCors(metrics, 'metrics');
  });
});

describe("the server's own answers", () => {
  // Refused before any route runs (the head's checks): a page must still read the error.
  test('a refused head on a browser route carries CORS; on a service route it does not', async () => {
    const r = await req(srv, 'GET', `${P}/usage?x=%ff`, { token: userToken('u_head'), headers: { origin: APP } });
    assert.equal(r.status, 400);
    assertActualCors(r, APP, 'browser route, head refused');
    const s = await req(srv, 'GET', `${A}/usage?x=%ff`, { token: SERVICE_KEY, headers: { origin: APP } });
    assert.equal(s.status, 400);
    assertNoCors(s, 'service route, head refused');
  });
});

describe('the default', () => {
  test('CORS_ORIGINS unset follows ALLOWED_REDIRECT_ORIGINS', async () => {
    for (const origin of ['https://shop.example', 'http://localhost:8000']) {
      const r = await preflight(follows, `${P}/create-checkout-session`, origin, 'POST', 'authorization, content-type, idempotency-key');
      assertPreflightOk(r, origin, 'POST', origin);
      const pricing = await req(follows, 'GET', `${P}/pricing`, { headers: { origin } });
      assertActualCors(pricing, origin, origin);
    }
    const r = await preflight(follows, `${P}/pricing`, 'http://localhost:3000', 'GET');
    assert.equal(r.status, 403);
    assertNoCors(r, 'the built-in default is replaced');
  });

  test('with neither set, the default origin http://localhost:3000 may call', async () => {
    const r = await preflight(plain, `${P}/usage`, 'http://localhost:3000', 'GET');
    assertPreflightOk(r, 'http://localhost:3000', 'GET', 'default');
  });

  test('check-config shows CORS_ORIGINS and where it came from', () => {
    const r = run(['check-config'], { env: { JWT_SECRET: SECRET, ALLOWED_REDIRECT_ORIGINS: 'https://shop.example' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^CORS_ORIGINS=https:\/\/shop\.example {2}# default$/m);
    const bad = run(['check-config'], { env: { JWT_SECRET: SECRET, CORS_ORIGINS: '*' } });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /CORS_ORIGINS: must start with 'http:\/\/' or 'https:\/\/'/);
  });
});
