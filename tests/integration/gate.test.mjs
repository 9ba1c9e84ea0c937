// gate.test.mjs: docs/nginx.example.conf run by a real nginx (Debian package) in front of a
// small Node upstream, asking subgate's gate (auth_request) before every /api/ request.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
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

function startApp() {
  return new Promise((resolve) => {
    const s = http.createServer((rq, rs) => {
      seen.push({ url: rq.url, tier: rq.headers['x-subgate-tier'] });
      rs.setHeader('content-type', 'application/json');
      rs.end(JSON.stringify({ upstream: true, url: rq.url }));
    });
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
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
    const r = http.request({ host: u.hostname, port: u.port, path: p, headers: { authorization: `Bearer ${token}` } }, (rs) => {
      rs.resume();
      rs.on('end', () => resolve({ status: rs.statusCode, headers: rs.headers }));
    });
    r.on('error', reject);
    r.end();
  });
}

describe('nginx auth_request in front of an app', { skip: !NGINX && 'nginx is not installed' }, () => {
  before(async () => {
    srv = await startServer({ STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_PLUS_PRICE_ID: PLUS_PRICE });
    app = await startApp();
    appPort = app.address().port;
    ngx = await startNginx();
  });
  after(async () => {
    if (ngx && !ngx.exited) { ngx.child.kill('SIGQUIT'); await ngx.exit; }
    if (process.env.GATE_DEBUG) console.log(ngx?.log);
    if (app) app.close();
    await stopServer(srv);
  });

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
