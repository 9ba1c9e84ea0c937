// caddy.test.mjs: docs/caddy.example.Caddyfile run by a real Caddy (Debian package) in front of
// the same case-insensitive Express app as the nginx test, asking subgate's gate (forward_auth)
// before every request but the public exceptions, and walking the same bypass lists
// (gate_lib.mjs): each variant of a gated path is refused exactly like the canonical path, and
// allowed users get through. Caddy runs as this user on a loopback port, with no admin endpoint,
// no automatic HTTPS and its storage in a temp dir. Without caddy the suite is skipped, except
// under CI=true, where it fails.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { freePort, tmpDir, userToken } from './lib.mjs';
import { gateStack, gateStripTests, gateTests, rawGet, seen } from './gate_lib.mjs';

const CADDY = ['/usr/bin/caddy', '/usr/local/bin/caddy'].find((p) => fs.existsSync(p))
  || spawnSync('sh', ['-c', 'command -v caddy']).stdout?.toString().trim();
const SKIP = !CADDY && !process.env.CI && 'caddy is not installed (scripts/deps.sh --test installs it)';
const EXAMPLE = path.resolve('docs/caddy.example.Caddyfile');

// Caddy's environment: its data and config dirs (and HOME) inside dir, nothing of the user's.
function caddyEnv(dir) {
  return { PATH: process.env.PATH, HOME: dir, XDG_DATA_HOME: path.join(dir, 'data'),
    XDG_CONFIG_HOME: path.join(dir, 'config') };
}

// The example with this run's ports; everything else as written.
function caddyfile(ctx, port) {
  let conf = fs.readFileSync(EXAMPLE, 'utf8');
  const swaps = [['reverse_proxy 127.0.0.1:3000', `reverse_proxy 127.0.0.1:${ctx.appPort}`],
    ['forward_auth @gated 127.0.0.1:8080 {', `forward_auth @gated 127.0.0.1:${ctx.srv.port} {`],
    ['http://127.0.0.1:8000 {', `http://127.0.0.1:${port} {`]];
  for (const [from, to] of swaps) {
    assert.equal(conf.split(from).length, 2, from);
    conf = conf.replace(from, to);
  }
  return conf;
}

async function startCaddy(ctx) {
  assert.ok(CADDY, 'caddy is not installed (scripts/deps.sh --test installs it)');
  const dir = tmpDir();
  const port = await freePort();
  const conf = path.join(dir, 'Caddyfile');
  fs.writeFileSync(conf, caddyfile(ctx, port));
  const child = spawn(CADDY, ['run', '--adapter', 'caddyfile', '--config', conf],
    { cwd: dir, env: caddyEnv(dir), stdio: ['ignore', 'pipe', 'pipe'] });
  const c = { child, dir, conf, log: '', exited: null, base: `http://127.0.0.1:${port}` };
  child.stdout.on('data', (d) => { c.log += d; });
  child.stderr.on('data', (d) => { c.log += d; });
  c.exit = new Promise((r) => child.on('exit', (code, signal) => { c.exited = { code, signal }; r(); }));
  for (let i = 0; i < 200; i++) {
    if (c.exited) throw new Error(`caddy exited: ${c.log}`);
    try { await fetch(`${c.base}/`); return c; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`caddy did not start: ${c.log}`);
}

async function stopCaddy(c) {
  if (!c.exited) { c.child.kill('SIGTERM'); await c.exit; }
  if (process.env.GATE_DEBUG) console.log(c.log);
}

// Counted on its own: under CI=true a missing caddy is a failure, not only a failed hook.
test('caddy is installed', { skip: SKIP }, () => {
  assert.ok(CADDY, 'caddy is not installed (scripts/deps.sh --test installs it)');
});

describe('Caddy forward_auth in front of an app', { skip: SKIP }, () => {
  const ctx = {};
  gateStack(ctx, {}, startCaddy, stopCaddy);

  test('caddy accepts the example as written', () => {
    const dir = tmpDir();
    const r = spawnSync(CADDY, ['validate', '--adapter', 'caddyfile', '--config', EXAMPLE],
      { cwd: dir, env: caddyEnv(dir), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // and it is formatted as caddy fmt would have it
    const f = spawnSync(CADDY, ['fmt', EXAMPLE], { cwd: dir, env: caddyEnv(dir), encoding: 'utf8' });
    assert.equal(f.status, 0, f.stderr);
    assert.equal(f.stdout, fs.readFileSync(EXAMPLE, 'utf8'));
  });
  test('no admin endpoint, no automatic HTTPS, storage in the temp dir', () => {
    assert.match(ctx.proxy.log, /admin endpoint disabled/);
    assert.match(ctx.proxy.log, /automatic HTTPS is completely disabled/);
    assert.doesNotMatch(ctx.proxy.log, /"level":"error"/);
    assert.ok(fs.existsSync(path.join(ctx.proxy.dir, 'config', 'caddy')));
  });
  gateTests(ctx, 'c');
  test('public exceptions pass only as plain paths, which the app gets unchanged', async () => {
    const before = seen.length;
    for (const p of ['/', '/index.html', '/INDEX.HTML', '/static/app.js', '/STATIC/App.JS',
      '/static/css/site.min.css?v=3']) {
      const r = await rawGet(ctx, p, null);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['x-subgate-reason'], undefined, p);
    }
    const hits = seen.slice(before);
    assert.deepEqual(hits.map((h) => h.handler), ['public', 'public', 'public', 'static', 'static', 'static']);
    assert.deepEqual(hits.map((h) => h.url), ['/', '/index.html', '/INDEX.HTML', '/static/app.js', '/STATIC/App.JS',
      '/static/css/site.min.css?v=3']);
    // Caddy's own path matchers would take these for /index.html or /static/x.js, and the app
    // would route them to its Plus handlers: here they are gated and refused instead.
    const tricks = ['/api/business-german/%2E%2E/%2E%2E/index.html', '/api/custom-ai/%2e%2e/%2e%2e/static/x.js',
      '/api/business-german/../../index.html', '/static/../api/business-german/x', '/static//../api/custom-ai/x',
      '/%69ndex.html', '/static/%2e%2e/api/business-german/x', '/index.html/../api/business-german/x', '/static/a..b',
      '/static//x', '/static/./x'];
    for (const tok of [null, userToken('c_pub_free')]) {
      for (const p of tricks) {
        const r = await rawGet(ctx, p, tok);
        assert.ok(r.status === 401 || r.status === 403, `${p}: ${r.status}`);
        assert.match(r.headers['x-subgate-reason'], /^(unauthenticated|no_rule|not_in_tier|bad_path)$/, p);
      }
    }
    assert.deepEqual(seen.slice(before + hits.length), [], 'no trick reached the app');
  });
  test('the app gets the tier from the gate only: a client cannot send its own', async () => {
    const forged = { 'x-subgate-tier': 'plus', 'x-subgate-remaining': '999', 'x-subgate-reason': 'allowed',
      'x-subgate-required-tier': 'free', 'x-subgate-resets-at': '1' };
    const before = seen.length;
    let r = await rawGet(ctx, '/index.html', null, { headers: forged });
    assert.equal(r.status, 200);
    r = await rawGet(ctx, '/api/other', userToken('c_forge_free'), { headers: forged });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-subgate-tier'], 'free');
    assert.equal(r.headers['x-subgate-remaining'], undefined);
    r = await rawGet(ctx, '/api/business-german/x', userToken('c_forge_free'), { headers: forged });
    assert.equal(r.status, 403);
    const hits = seen.slice(before);
    assert.equal(hits.length, 2);
    for (const h of Object.keys(forged)) assert.equal(hits[0].headers[h], undefined, `public: ${h}`);
    assert.equal(hits[1].headers['x-subgate-tier'], 'free');
    assert.equal(hits[1].headers['x-subgate-reason'], 'allowed');
    for (const h of ['x-subgate-remaining', 'x-subgate-required-tier', 'x-subgate-resets-at']) {
      assert.ok(!hits[1].headers[h], `gated: ${h} = ${hits[1].headers[h]}`);
    }
  });
  test('an allowed POST reaches the app with its method and whole body', async () => {
    const before = seen.length;
    const body = JSON.stringify({ text: 'x'.repeat(5000) });
    const r = await rawGet(ctx, '/api/ai/chat', userToken('c_post_ai'),
      { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-subgate-remaining'], '29');
    const hits = seen.slice(before);
    assert.equal(hits.length, 1);
    assert.equal(hits[0].method, 'POST');
    assert.equal(hits[0].body, body);
  });
});

describe('Caddy in front of a ";"-stripping app, GATE_PATH_PARAMS=strip', { skip: SKIP }, () => {
  const ctx = {};
  gateStack(ctx, { GATE_PATH_PARAMS: 'strip' }, startCaddy, stopCaddy);
  gateStripTests(ctx, 'c');
});
