// nginx_lib.mjs: docs/nginx.example.conf run by a real nginx (Debian package) with this run's
// ports and temp paths, for the gate tests (gate.test.mjs, audit_gate.test.mjs) to put in front
// of gate_lib.mjs's app with gateStack(ctx, env, startNginx, stopNginx).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, tmpDir } from './lib.mjs';

export const NGINX = ['/usr/sbin/nginx', '/usr/local/sbin/nginx'].find((p) => fs.existsSync(p))
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

export async function startNginx(ctx) {
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

export async function stopNginx(n) {
  if (!n.exited) { n.child.kill('SIGQUIT'); await n.exit; }
  if (process.env.GATE_DEBUG) console.log(n.log);
}
