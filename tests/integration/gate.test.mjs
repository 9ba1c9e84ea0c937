// gate.test.mjs: docs/nginx.example.conf run by a real nginx (Debian package) in front of a real
// case-insensitive app (Express, its default router, plus a Tomcat-style ';' parameter strip),
// asking subgate's gate (auth_request) before every request but the public exceptions. The
// bypass walk sends each variant of a gated path (case, dots, slashes, escapes, ';') and wants
// it refused exactly like the canonical path, with the app's gated handlers never reached. The
// app, the walks and the tests shared with the Caddy example are in gate_lib.mjs, nginx's start
// in nginx_lib.mjs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import { gateStack, gateStripTests, gateTests, rawGet, seen } from './gate_lib.mjs';
import { NGINX, startNginx, stopNginx } from './nginx_lib.mjs';

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
