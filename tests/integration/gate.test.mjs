// gate.test.mjs: docs/nginx.example.conf run by a real nginx (Debian package) in front of a real
// case-insensitive app (Express, its default router, plus a Tomcat-style ';' parameter strip),
// asking subgate's gate (auth_request) before every request but the public exceptions. The
// bypass walk sends each variant of a gated path (case, dots, slashes, escapes, ';') and wants
// it refused exactly like the canonical path, with the app's gated handlers never reached.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import { freePort, req, startServer, stopServer, tmpDir, userToken } from './lib.mjs';
import { PLUS_PRICE, WEBHOOK_SECRET, subscribe } from './access_lib.mjs';

const NGINX = ['/usr/sbin/nginx', '/usr/local/sbin/nginx'].find((p) => fs.existsSync(p))
  || spawnSync('sh', ['-c', 'command -v nginx']).stdout?.toString().trim();

let srv;
let app;
let appPort;
let ngx;
let ngxBase;
const seen = []; // requests that reached the upstream

// The app: Express routes ignore case by default; ';' parameters are stripped from each path
// segment first, as Tomcat and Spring do. Every hit records the handler it reached.
function startApp() {
  const a = express();
  a.use((rq, rs, next) => {
    const q = rq.url.indexOf('?');
    const p = q < 0 ? rq.url : rq.url.slice(0, q);
    rq.url = p.replace(/;[^/]*/g, '') + (q < 0 ? '' : rq.url.slice(q));
    next();
  });
  const handler = (name) => (rq, rs) => {
    seen.push({ url: rq.originalUrl, handler: name, tier: rq.headers['x-subgate-tier'] });
    rs.json({ upstream: true, handler: name, url: rq.originalUrl });
  };
  for (const [mount, name] of [['/api/business-german', 'business-german'], ['/api/custom-ai', 'custom-ai'],
    ['/api/ai', 'ai'], ['/api/scenarios/start', 'scenarios'], ['/api', 'api'], ['/static', 'static']]) {
    a.use(mount, handler(name));
  }
  a.get(['/', '/index.html', '/about'], handler('public'));
  return new Promise((resolve) => { const s = a.listen(0, '127.0.0.1', () => resolve(s)); });
}

// The example configuration with this run's ports and temp paths inside dir.
function nginxConf(dir, ngxPort) {
  let conf = fs.readFileSync(path.resolve('docs/nginx.example.conf'), 'utf8');
  const swaps = [['server 127.0.0.1:3000;', `server 127.0.0.1:${appPort};`],
    ['server 127.0.0.1:8080;', `server 127.0.0.1:${srv.port};`],
    ['listen 127.0.0.1:8000;', `listen 127.0.0.1:${ngxPort};`]];
  for (const [from, to] of swaps) {
    assert.ok(conf.includes(from), from);
    conf = conf.replaceAll(from, to);
  }
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `    ${t}_temp_path ${path.join(dir, t)};`).join('\n');
  assert.ok(conf.includes('http {\n'));
  return conf.replace('http {\n', `http {\n${temps}\n`);
}

async function startNginx() {
  const dir = tmpDir();
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, nginxConf(dir, port));
  const child = spawn(NGINX, ['-p', dir, '-c', conf, '-e', 'stderr', '-g',
    `daemon off; pid ${path.join(dir, 'nginx.pid')}; error_log stderr;`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const n = { child, conf, log: '', exited: null };
  child.stderr.on('data', (d) => { n.log += d; });
  n.exit = new Promise((r) => child.on('exit', (code, signal) => { n.exited = { code, signal }; r(); }));
  ngxBase = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (n.exited) throw new Error(`nginx exited: ${n.log}`);
    try { await fetch(`${ngxBase}/`); return n; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not start: ${n.log}`);
}

async function get(p, token) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const r = await fetch(ngxBase + p, { headers });
  await r.text();
  return { status: r.status, h: (k) => r.headers.get(k) };
}

// A GET with the path sent byte for byte (fetch would resolve dot segments itself).
function rawGet(p, token) {
  return new Promise((resolve, reject) => {
    const u = new URL(ngxBase);
    const headers = token ? { authorization: `Bearer ${token}` } : {};
    const r = http.request({ host: u.hostname, port: u.port, path: p, headers }, (rs) => {
      rs.resume();
      rs.on('end', () => resolve({ status: rs.statusCode, headers: rs.headers }));
    });
    r.on('error', reject);
    r.end();
  });
}


// The answer as the client sees it: what "refused exactly like" compares.
const verdict = (r) => ({ status: r.status, reason: r.headers['x-subgate-reason'] ?? null,
  tier: r.headers['x-subgate-tier'] ?? null, required: r.headers['x-subgate-required-tier'] ?? null });

// The issue #11 bypasses and more: each variant of a Plus path, for a free user and without a
// token, is answered exactly as its canonical path is, and reaches no handler of the app.
const PLUS_WALK = {
  '/api/business-german/lesson1': ['/api/Business-German/lesson1', '/API/business-german/lesson1',
    '/Api/BUSINESS-GERMAN/lesson1', '/api//business-german/lesson1', '/api/./business-german/lesson1',
    '/api/free/../business-german/lesson1', '/api/free/%2E%2E/Business-German/lesson1',
    '/api/%62usiness-german/lesson1', '/API/BUSINESS-GERMAN',
    '/api/business-german/lesson1?next=/../free', '//api/business-german/lesson1'],
  '/api/custom-ai/run': ['/api/CUSTOM-AI/run', '/api/Custom-Ai/run', '/API/custom-ai/RUN',
    '/api/custom-ai/', '/api/%63ustom-ai/run'],
};

// Paths a router may read differently from nginx: refused (403 bad_path) by the default config.
const AMBIGUOUS = ['/api/business-german;/x', '/api/business-german;jsessionid=1/lesson1',
  '/api/free/..;/business-german/lesson1', '/static/..;/api/business-german/x', '/api/ai;/chat',
  '/api\\business-german/x', '/api/business-german%2Flesson1', '/api/business-german%5clesson1',
  '/api/business-german/%00', '/api/business-german%3b/x'];

async function walkPlus(tokens) {
  const before = seen.length;
  for (const [canon, variants] of Object.entries(PLUS_WALK)) {
    for (const tok of tokens) {
      const want = verdict(await rawGet(canon, tok));
      assert.ok(want.status === 401 || want.status === 403, `${canon}: ${JSON.stringify(want)}`);
      for (const v of variants) assert.deepEqual(verdict(await rawGet(v, tok)), want, v);
    }
  }
  assert.deepEqual(seen.slice(before), [], 'no variant reached the app');
}

// Each spelling of the AI path is metered: remaining falls by one per request.
async function walkAi(variants, user) {
  const tok = userToken(user);
  const before = seen.length;
  for (const [i, v] of variants.entries()) {
    const r = await rawGet(v, tok);
    assert.equal(r.status, 200, v);
    assert.equal(r.headers['x-subgate-remaining'], String(29 - i), v);
  }
  // Express reaches its ai handler for the case variants; '//' and '%2e%2e' it leaves alone and
  // routes to its /api handler, which the gate metered as well (stricter, never looser).
  const hits = seen.slice(before);
  assert.equal(hits.length, variants.length);
  assert.ok(hits.every((h) => (h.handler === 'ai' || h.handler === 'api') && h.tier === 'free'));
  assert.ok(hits.filter((h) => h.handler === 'ai').length >= Math.min(variants.length, 3));
  const u = await req(srv, 'GET', '/api/v1/payments/usage', { token: tok });
  assert.equal(u.body.ai_minutes_used, variants.length);
}

const AI_WALK = ['/api/ai/chat', '/api/AI/chat', '/API/AI/CHAT', '/Api/Ai/Chat?x=1', '/api//ai/./chat',
  '/api/free/%2e%2e/AI/chat'];

// subgate (with env), the app and nginx, for one describe block.
function stack(env) {
  before(async () => {
    srv = await startServer({ STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_PLUS_PRICE_ID: PLUS_PRICE, ...env });
    app = await startApp();
    appPort = app.address().port;
    ngx = await startNginx();
  });
  after(async () => {
    if (ngx && !ngx.exited) { ngx.child.kill('SIGQUIT'); await ngx.exit; }
    if (process.env.GATE_DEBUG) console.log(ngx?.log);
    if (app) { app.closeAllConnections?.(); app.close(); }
    await stopServer(srv);
  });
}

describe('nginx auth_request in front of an app', { skip: !NGINX && 'nginx is not installed' }, () => {
  stack({});

  test('nginx accepts the example configuration', () => {
    const r = spawnSync(NGINX, ['-t', '-p', path.dirname(ngx.conf), '-c', ngx.conf, '-e', 'stderr',
      '-g', `pid ${path.join(path.dirname(ngx.conf), 'test.pid')}; error_log stderr;`]);
    assert.equal(r.status, 0, r.stderr.toString());
  });
  test('ungated paths pass without a token', async () => {
    const r = await get('/index.html');
    assert.equal(r.status, 200);
  });
  test('gated paths need a token: 401', async () => {
    const r = await get('/api/ai/chat');
    assert.equal(r.status, 401);
    assert.equal(r.h('x-subgate-reason'), 'unauthenticated');
    assert.equal(r.h('www-authenticate'), 'Bearer');
  });
  test('escaped dot segments cannot sneak past a rule', async () => {
    for (const p of ['/api/free/%2E%2E/business-german/x', '/api/free/%2e%2e%2fbusiness-german/x']) {
      const r = await rawGet(p, userToken('g_free'));
      assert.equal(r.status, 403, p);
      assert.match(r.headers['x-subgate-reason'], /^(not_in_tier|bad_path)$/);
    }
  });
  test('case, dot, slash and escape variants of Plus paths are refused like the canonical path', async () => {
    await walkPlus([userToken('g_walk_free'), null]);
  });
  test('every spelling of the AI path is metered (no unmetered /api/AI/chat)', async () => {
    await walkAi(AI_WALK, 'g_walk_ai');
  });
  test('";" parameters, backslashes, encoded separators and NUL are refused (403 bad_path)', async () => {
    const before = seen.length;
    for (const tok of [userToken('g_walk_free'), userToken('g_plus'), null]) {
      for (const p of AMBIGUOUS) {
        const r = await rawGet(p, tok);
        assert.ok(r.status === 403 || r.status === 400, `${p}: ${r.status}`);
        if (r.status === 403) assert.equal(r.headers['x-subgate-reason'], 'bad_path', p);
      }
    }
    assert.deepEqual(seen.slice(before), [], 'none reached the app');
  });
  test('no ungated fall-through: a path with no rule and no public exception is refused', async () => {
    const before = seen.length;
    for (const p of ['/about', '/ABOUT', '/apix', '/static/', '/Static/..%2Fapi/ai/chat', '/_subgate']) {
      const r = await rawGet(p, userToken('g_walk_free'));
      assert.ok(r.status === 403 || r.status === 404, `${p}: ${r.status}`);
      if (r.status === 403) assert.match(r.headers['x-subgate-reason'], /^(no_rule|bad_path)$/, p);
    }
    assert.deepEqual(seen.slice(before), []);
  });
  test('public exceptions hand the app the path nginx matched, not the raw one', async () => {
    const before = seen.length;
    for (const p of ['/', '/index.html', '/INDEX.HTML', '/static/app.js', '/STATIC/App.JS',
      '/api/business-german/%2E%2E/%2E%2E/index.html', '/api/custom-ai/%2e%2e/%2e%2e/static/x.js']) {
      const r = await rawGet(p, null);
      assert.equal(r.status, 200, p);
    }
    const hits = seen.slice(before);
    assert.deepEqual(hits.map((h) => h.handler), ['public', 'public', 'public', 'static', 'static', 'public', 'static']);
    assert.equal(hits[5].url, '/index.html');
    assert.equal(hits[6].url, '/static/x.js');
  });
  test('a free user is refused the Plus routes', async () => {
    for (const p of ['/api/business-german/lesson/1', '/api/custom-ai/', '/api/free/../business-german/x']) {
      const r = await get(p, userToken('g_free'));
      assert.equal(r.status, 403, p);
      assert.equal(r.h('x-subgate-reason'), 'not_in_tier');
      assert.equal(r.h('x-subgate-tier'), 'free');
      assert.equal(r.h('x-subgate-required-tier'), 'plus');
    }
    assert.ok(!seen.some((s) => s.url.includes('business-german') || s.url.includes('custom-ai')));
  });
  test('a free user is stopped at the 31st AI minute of a day', async () => {
    const tok = userToken('g_free_ai');
    for (let i = 1; i <= 30; i++) {
      const r = await get(`/api/ai/chat?n=${i}`, tok);
      assert.equal(r.status, 200, `minute ${i}`);
      assert.equal(r.h('x-subgate-remaining'), String(30 - i));
      assert.equal(r.h('x-subgate-tier'), 'free');
    }
    const r = await get('/api/ai/chat?n=31', tok);
    assert.equal(r.status, 403);
    assert.equal(r.h('x-subgate-reason'), 'quota_exceeded');
    assert.equal(r.h('x-subgate-remaining'), '0');
    assert.ok(Number(r.h('x-subgate-resets-at')) % 86400 === 0);
    assert.equal(seen.filter((s) => s.url.startsWith('/api/ai/chat?n=')).length, 30);
    const u = await req(srv, 'GET', '/api/v1/payments/usage', { token: tok });
    assert.equal(u.body.ai_minutes_used, 30);
  });
  test('a Plus user passes the Plus routes and is not stopped at 31 minutes', async () => {
    await subscribe(srv, 'g_plus');
    const tok = userToken('g_plus');
    const r = await get('/api/business-german/lesson/1', tok);
    assert.equal(r.status, 200);
    assert.equal(r.h('x-subgate-tier'), 'plus');
    assert.equal(seen.at(-1).tier, 'plus');
    for (let i = 1; i <= 31; i++) assert.equal((await get('/api/ai/chat', tok)).status, 200);
    assert.equal((await get('/api/ai/chat', tok)).h('x-subgate-remaining'), 'unlimited');
  });
  test('a POST is gated the same way (the subrequest is a GET without body)', async () => {
    const r = await fetch(`${ngxBase}/api/custom-ai/run`, {
      method: 'POST', headers: { authorization: `Bearer ${userToken('g_free')}`, 'content-type': 'application/json' }, body: '{"x":1}',
    });
    await r.text();
    assert.equal(r.status, 403);
  });
});

// For apps whose router strips ';' parameters (Tomcat, Spring): GATE_PATH_PARAMS=strip answers
// each ';' variant exactly as the canonical path, and meters it.
describe('nginx in front of a ";"-stripping app, GATE_PATH_PARAMS=strip', { skip: !NGINX && 'nginx is not installed' }, () => {
  stack({ GATE_PATH_PARAMS: 'strip' });

  test('";" variants of Plus paths are refused like the canonical path', async () => {
    const before = seen.length;
    for (const tok of [userToken('g_strip_free'), null]) {
      const want = verdict(await rawGet('/api/business-german/lesson1', tok));
      for (const v of ['/api/business-german;/lesson1', '/api/Business-German;jsessionid=1/lesson1',
        '/api/free/..;/business-german/lesson1', '/api;x/business-german;y/lesson1;z']) {
        assert.deepEqual(verdict(await rawGet(v, tok)), want, v);
      }
    }
    assert.deepEqual(seen.slice(before), []);
  });
  test('";" variants of the AI path are metered', async () => {
    await walkAi(['/api/ai;/chat', '/api/AI;v=1/chat', '/api;x/ai/chat'], 'g_strip_ai');
  });
  test('the case and dot walk holds with strip as well', async () => {
    await walkPlus([userToken('g_strip_free'), null]);
  });
});
