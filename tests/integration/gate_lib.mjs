// gate_lib.mjs: what the proxy gate tests share (gate.test.mjs for nginx, caddy.test.mjs for
// Caddy): the app behind the proxy, the bypass lists, and the walks and tests that every example
// configuration must pass. A proxy test starts subgate, the app and its proxy per describe block
// (gateStack) and calls gateTests; what only one proxy does stays in its own file.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import express from 'express';
import { req, startServer, stopServer, userToken } from './lib.mjs';
import { PLUS_PRICE, WEBHOOK_SECRET, subscribe } from './access_lib.mjs';

export const seen = []; // requests that reached the app

// The app: Express routes ignore case by default; ';' parameters are stripped from each path
// segment first, as Tomcat and Spring do. Every hit records the handler it reached, the tier the
// proxy passed on, and the body it got.
export function startApp() {
  const a = express();
  a.use((rq, rs, next) => {
    const q = rq.url.indexOf('?');
    const p = q < 0 ? rq.url : rq.url.slice(0, q);
    rq.url = p.replace(/;[^/]*/g, '') + (q < 0 ? '' : rq.url.slice(q));
    next();
  });
  a.use(express.text({ type: '*/*' }));
  const handler = (name) => (rq, rs) => {
    seen.push({
      url: rq.originalUrl, handler: name, tier: rq.headers['x-subgate-tier'], headers: rq.headers,
      method: rq.method, body: typeof rq.body === 'string' ? rq.body : '',
    });
    rs.json({ upstream: true, handler: name, url: rq.originalUrl });
  };
  for (const [mount, name] of [['/api/business-german', 'business-german'], ['/api/custom-ai', 'custom-ai'],
    ['/api/ai', 'ai'], ['/api/scenarios/start', 'scenarios'], ['/api', 'api'], ['/static', 'static']]) {
    a.use(mount, handler(name));
  }
  a.get(['/', '/index.html', '/about'], handler('public'));
  return new Promise((resolve) => { const s = a.listen(0, '127.0.0.1', () => resolve(s)); });
}

// One describe block's stack: subgate (with env), the app, then the proxy that start(ctx) starts
// in front of them (ctx.srv and ctx.appPort are set by then) and stop(proxy) stops. ctx.base is
// the proxy's http://127.0.0.1:PORT, which start returns as { base, ... }.
export function gateStack(ctx, env, start, stop) {
  before(async () => {
    ctx.srv = await startServer({ STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_PLUS_PRICE_ID: PLUS_PRICE, ...env });
    ctx.app = await startApp();
    ctx.appPort = ctx.app.address().port;
    ctx.proxy = await start(ctx);
    ctx.base = ctx.proxy.base;
  });
  after(async () => {
    if (ctx.proxy) await stop(ctx.proxy);
    if (ctx.app) { ctx.app.closeAllConnections?.(); ctx.app.close(); }
    await stopServer(ctx.srv);
  });
}

export async function get(ctx, p, token) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const r = await fetch(ctx.base + p, { headers });
  await r.text();
  return { status: r.status, h: (k) => r.headers.get(k) };
}

// A request with the path sent byte for byte (fetch would resolve dot segments itself).
export function rawGet(ctx, p, token, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(ctx.base);
    const h = { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) };
    const r = http.request({ host: u.hostname, port: u.port, path: p, method, headers: h }, (rs) => {
      let text = '';
      rs.setEncoding('utf8');
      rs.on('data', (d) => { text += d; });
      rs.on('end', () => resolve({ status: rs.statusCode, headers: rs.headers, text }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

// The answer as the client sees it: what "refused exactly like" compares.
export const verdict = (r) => ({ status: r.status, reason: r.headers['x-subgate-reason'] ?? null,
  tier: r.headers['x-subgate-tier'] ?? null, required: r.headers['x-subgate-required-tier'] ?? null });

// The issue #11 bypasses and more: each variant of a Plus path, for a free user and without a
// token, is answered exactly as its canonical path is, and reaches no handler of the app.
export const PLUS_WALK = {
  '/api/business-german/lesson1': ['/api/Business-German/lesson1', '/API/business-german/lesson1',
    '/Api/BUSINESS-GERMAN/lesson1', '/api//business-german/lesson1', '/api/./business-german/lesson1',
    '/api/free/../business-german/lesson1', '/api/free/%2E%2E/Business-German/lesson1',
    '/api/%62usiness-german/lesson1', '/API/BUSINESS-GERMAN',
    '/api/business-german/lesson1?next=/../free', '//api/business-german/lesson1'],
  '/api/custom-ai/run': ['/api/CUSTOM-AI/run', '/api/Custom-Ai/run', '/API/custom-ai/RUN',
    '/api/custom-ai/', '/api/%63ustom-ai/run'],
};

// Paths a router may read differently from the proxy: refused (403 bad_path) by the default config.
export const AMBIGUOUS = ['/api/business-german;/x', '/api/business-german;jsessionid=1/lesson1',
  '/api/free/..;/business-german/lesson1', '/static/..;/api/business-german/x', '/api/ai;/chat',
  '/api\\business-german/x', '/api/business-german%2Flesson1', '/api/business-german%5clesson1',
  '/api/business-german/%00', '/api/business-german%3b/x'];

// Paths that are neither gated by a rule nor a public exception: refused, never passed on.
export const NO_FALL_THROUGH = ['/about', '/ABOUT', '/apix', '/static/', '/Static/..%2Fapi/ai/chat', '/_subgate'];

// The ';' variants for GATE_PATH_PARAMS=strip.
export const STRIP_WALK = ['/api/business-german;/lesson1', '/api/Business-German;jsessionid=1/lesson1',
  '/api/free/..;/business-german/lesson1', '/api;x/business-german;y/lesson1;z'];

export const AI_WALK = ['/api/ai/chat', '/api/AI/chat', '/API/AI/CHAT', '/Api/Ai/Chat?x=1', '/api//ai/./chat',
  '/api/free/%2e%2e/AI/chat'];

export async function walkPlus(ctx, tokens) {
  const before = seen.length;
  for (const [canon, variants] of Object.entries(PLUS_WALK)) {
    for (const tok of tokens) {
      const want = verdict(await rawGet(ctx, canon, tok));
      assert.ok(want.status === 401 || want.status === 403, `${canon}: ${JSON.stringify(want)}`);
      for (const v of variants) assert.deepEqual(verdict(await rawGet(ctx, v, tok)), want, v);
    }
  }
  assert.deepEqual(seen.slice(before), [], 'no variant reached the app');
}

// Each spelling of the AI path is metered: remaining falls by one per request.
export async function walkAi(ctx, variants, user) {
  const tok = userToken(user);
  const before = seen.length;
  for (const [i, v] of variants.entries()) {
    const r = await rawGet(ctx, v, tok);
    assert.equal(r.status, 200, v);
    assert.equal(r.headers['x-subgate-remaining'], String(29 - i), v);
  }
  // Express reaches its ai handler for the case variants; '//' and '%2e%2e' it leaves alone and
  // routes to its /api handler, which the gate metered as well (stricter, never looser).
  const hits = seen.slice(before);
  assert.equal(hits.length, variants.length);
  assert.ok(hits.every((h) => (h.handler === 'ai' || h.handler === 'api') && h.tier === 'free'));
  assert.ok(hits.filter((h) => h.handler === 'ai').length >= Math.min(variants.length, 3));
  const u = await req(ctx.srv, 'GET', '/api/v1/payments/usage', { token: tok });
  assert.equal(u.body.ai_minutes_used, variants.length);
}

// The tests every example configuration passes, in the default configuration (GATE_PATH_PARAMS
// unset). prefix names the users, so that two proxies' suites never share one.
export function gateTests(ctx, prefix) {
  const u = (name) => `${prefix}_${name}`;
  test('ungated paths pass without a token', async () => {
    const r = await get(ctx, '/index.html');
    assert.equal(r.status, 200);
  });
  test('gated paths need a token: 401', async () => {
    const r = await get(ctx, '/api/ai/chat');
    assert.equal(r.status, 401);
    assert.equal(r.h('x-subgate-reason'), 'unauthenticated');
    assert.equal(r.h('www-authenticate'), 'Bearer realm="subgate"');
  });
  test('escaped dot segments cannot sneak past a rule', async () => {
    for (const p of ['/api/free/%2E%2E/business-german/x', '/api/free/%2e%2e%2fbusiness-german/x']) {
      const r = await rawGet(ctx, p, userToken(u('free')));
      assert.equal(r.status, 403, p);
      assert.match(r.headers['x-subgate-reason'], /^(not_in_tier|bad_path)$/);
    }
  });
  test('case, dot, slash and escape variants of Plus paths are refused like the canonical path', async () => {
    await walkPlus(ctx, [userToken(u('walk_free')), null]);
  });
  test('every spelling of the AI path is metered (no unmetered /api/AI/chat)', async () => {
    await walkAi(ctx, AI_WALK, u('walk_ai'));
  });
  test('";" parameters, backslashes, encoded separators and NUL are refused (403 bad_path)', async () => {
    const before = seen.length;
    for (const tok of [userToken(u('walk_free')), userToken(u('plus')), null]) {
      for (const p of AMBIGUOUS) {
        const r = await rawGet(ctx, p, tok);
        assert.ok(r.status === 403 || r.status === 400, `${p}: ${r.status}`);
        if (r.status === 403) assert.equal(r.headers['x-subgate-reason'], 'bad_path', p);
      }
    }
    assert.deepEqual(seen.slice(before), [], 'none reached the app');
  });
  test('no ungated fall-through: a path with no rule and no public exception is refused', async () => {
    const before = seen.length;
    for (const p of NO_FALL_THROUGH) {
      const r = await rawGet(ctx, p, userToken(u('walk_free')));
      assert.ok(r.status === 403 || r.status === 404, `${p}: ${r.status}`);
      if (r.status === 403) assert.match(r.headers['x-subgate-reason'], /^(no_rule|bad_path)$/, p);
    }
    assert.deepEqual(seen.slice(before), []);
  });
  test('a free user is refused the Plus routes', async () => {
    for (const p of ['/api/business-german/lesson/1', '/api/custom-ai/', '/api/free/../business-german/x']) {
      const r = await get(ctx, p, userToken(u('free')));
      assert.equal(r.status, 403, p);
      assert.equal(r.h('x-subgate-reason'), 'not_in_tier');
      assert.equal(r.h('x-subgate-tier'), 'free');
      assert.equal(r.h('x-subgate-required-tier'), 'plus');
    }
    assert.ok(!seen.some((s) => s.url.includes('business-german') || s.url.includes('custom-ai')));
  });
  test('a free user is stopped at the 31st AI minute of a day', async () => {
    const tok = userToken(u('free_ai'));
    const before = seen.length;
    for (let i = 1; i <= 30; i++) {
      const r = await get(ctx, `/api/ai/chat?n=${i}`, tok);
      assert.equal(r.status, 200, `minute ${i}`);
      assert.equal(r.h('x-subgate-remaining'), String(30 - i));
      assert.equal(r.h('x-subgate-tier'), 'free');
    }
    const r = await get(ctx, '/api/ai/chat?n=31', tok);
    assert.equal(r.status, 403);
    assert.equal(r.h('x-subgate-reason'), 'quota_exceeded');
    assert.equal(r.h('x-subgate-remaining'), '0');
    assert.ok(Number(r.h('x-subgate-resets-at')) % 86400 === 0);
    assert.equal(seen.slice(before).filter((s) => s.url.startsWith('/api/ai/chat?n=')).length, 30);
    const usage = await req(ctx.srv, 'GET', '/api/v1/payments/usage', { token: tok });
    assert.equal(usage.body.ai_minutes_used, 30);
  });
  test('a Plus user passes the Plus routes and is not stopped at 31 minutes', async () => {
    await subscribe(ctx.srv, u('plus'));
    const tok = userToken(u('plus'));
    const r = await get(ctx, '/api/business-german/lesson/1', tok);
    assert.equal(r.status, 200);
    assert.equal(r.h('x-subgate-tier'), 'plus');
    assert.equal(seen.at(-1).tier, 'plus');
    for (let i = 1; i <= 31; i++) assert.equal((await get(ctx, '/api/ai/chat', tok)).status, 200);
    assert.equal((await get(ctx, '/api/ai/chat', tok)).h('x-subgate-remaining'), 'unlimited');
  });
  test('a POST is gated the same way (the subrequest is a GET without body)', async () => {
    const r = await fetch(`${ctx.base}/api/custom-ai/run`, {
      method: 'POST', headers: { authorization: `Bearer ${userToken(u('free'))}`, 'content-type': 'application/json' }, body: '{"x":1}',
    });
    await r.text();
    assert.equal(r.status, 403);
  });
}

// The same for an app whose router strips ';' parameters (Tomcat, Spring), under
// GATE_PATH_PARAMS=strip: each ';' variant is answered exactly as the canonical path, and metered.
export function gateStripTests(ctx, prefix) {
  const u = (name) => `${prefix}_${name}`;
  test('";" variants of Plus paths are refused like the canonical path', async () => {
    const before = seen.length;
    for (const tok of [userToken(u('strip_free')), null]) {
      const want = verdict(await rawGet(ctx, '/api/business-german/lesson1', tok));
      for (const v of STRIP_WALK) assert.deepEqual(verdict(await rawGet(ctx, v, tok)), want, v);
    }
    assert.deepEqual(seen.slice(before), []);
  });
  test('";" variants of the AI path are metered', async () => {
    await walkAi(ctx, ['/api/ai;/chat', '/api/AI;v=1/chat', '/api;x/ai/chat'], u('strip_ai'));
  });
  test('the case and dot walk holds with strip as well', async () => {
    await walkPlus(ctx, [userToken(u('strip_free')), null]);
  });
}
