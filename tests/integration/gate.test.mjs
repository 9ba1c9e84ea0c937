// gate.test.mjs: docs/nginx.example.conf run by a real nginx (Debian package) in front of a real
// case-insensitive app (Express, its default router, plus a Tomcat-style ';' parameter strip),
// asking subgate's gate (auth_request) before every request but the public exceptions. The
// bypass walk sends each variant of a gated path (case, dots, slashes, escapes, ';') and wants
// it refused exactly like the canonical path, with the app's gated handlers never reached. The
// app, the walks and the tests shared with the Caddy example are in gate_lib.mjs.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { freePort, tmpDir } from './lib.mjs';
import { gateStack, gateStripTests, gateTests, rawGet, seen } from './gate_lib.mjs';

const NGINX = ['/usr/sbin/nginx', '/usr/local/sbin/nginx'].find((p) => fs.existsSync(p))
  || spawnSync('sh', ['-c', 'command -v nginx']).stdout?.toString().trim();

// The example configuration with this run's ports and temp paths inside dir.
function nginxConf(ctx, dir, ngxPort) {
  let conf = fs.readFileSync(path.resolve('docs/nginx.example.conf'), 'utf8');
  const swaps = [['server 127.0.0.1:3000;', `server 127.0.0.1:${ctx.appPort};`],
    ['server 127.0.0.1:8080;', `server 127.0.0.1:${ctx.srv.port};`],
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

async function startNginx(ctx) {
  const dir = tmpDir();
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, nginxConf(ctx, dir, port));
  const child = spawn(NGINX, ['-p', dir, '-c', conf, '-e', 'stderr', '-g',
    `daemon off; pid ${path.join(dir, 'nginx.pid')}; error_log stderr;`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const n = { child, conf, log: '', exited: null, base: `http://127.0.0.1:${port}` };
  child.stderr.on('data', (d) => { n.log += d; });
  n.exit = new Promise((r) => child.on('exit', (code, signal) => { n.exited = { code, signal }; r(); }));
  for (let i = 0; i < 200; i++) {
    if (n.exited) throw new Error(`nginx exited: ${n.log}`);
    try { await fetch(`${n.base}/`); return n; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not start: ${n.log}`);
}

async function stopNginx(n) {
  if (!n.exited) { n.child.kill('SIGQUIT'); await n.exit; }
  if (process.env.GATE_DEBUG) console.log(n.log);
}

describe('nginx auth_request in front of an app', { skip: !NGINX && 'nginx is not installed' }, () => {
  const ctx = {};
  gateStack(ctx, {}, startNginx, stopNginx);

  test('nginx accepts the example configuration', () => {
    const dir = path.dirname(ctx.proxy.conf);
    const r = spawnSync(NGINX, ['-t', '-p', dir, '-c', ctx.proxy.conf, '-e', 'stderr',
      '-g', `pid ${path.join(dir, 'test.pid')}; error_log stderr;`]);
    assert.equal(r.status, 0, r.stderr.toString());
  });
  gateTests(ctx, 'g');
  test('public exceptions hand the app the path nginx matched, not the raw one', async () => {
    const before = seen.length;
    for (const p of ['/', '/index.html', '/INDEX.HTML', '/static/app.js', '/STATIC/App.JS',
      '/api/business-german/%2E%2E/%2E%2E/index.html', '/api/custom-ai/%2e%2e/%2e%2e/static/x.js']) {
      const r = await rawGet(ctx, p, null);
      assert.equal(r.status, 200, p);
    }
    const hits = seen.slice(before);
    assert.deepEqual(hits.map((h) => h.handler), ['public', 'public', 'public', 'static', 'static', 'public', 'static']);
    assert.equal(hits[5].url, '/index.html');
    assert.equal(hits[6].url, '/static/x.js');
  });
});

// For apps whose router strips ';' parameters (Tomcat, Spring): GATE_PATH_PARAMS=strip answers
// each ';' variant exactly as the canonical path, and meters it.
describe('nginx in front of a ";"-stripping app, GATE_PATH_PARAMS=strip', { skip: !NGINX && 'nginx is not installed' }, () => {
  const ctx = {};
  gateStack(ctx, { GATE_PATH_PARAMS: 'strip' }, startNginx, stopNginx);
  gateStripTests(ctx, 'g');
});
