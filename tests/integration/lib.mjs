// lib.mjs: starts the real subgate binary on loopback with a fresh database, and signs tokens
// with Node's own crypto (an implementation independent of ours).
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const BIN = path.resolve(process.env.SUBGATE_BIN || 'build/release/subgate');
export const SECRET = 'integration-secret-0123456789-abcdefghij';
export const SERVICE_KEY = 'svc_integration_key_0123456789';

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'subgate-it-'));
}

// Runs a subcommand to completion: { status, stdout, stderr }.
export function run(args, { env = {}, cwd } = {}) {
  const dir = cwd || tmpDir();
  const fullEnv = { PATH: process.env.PATH, ...env };
  for (const k of Object.keys(fullEnv)) if (fullEnv[k] === undefined) delete fullEnv[k];
  const r = spawnSync(BIN, args, { cwd: dir, env: fullEnv, encoding: 'utf8', timeout: 30000 });
  assertNoSanitizerReport(r.stderr);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Starts `subgate serve`; resolves once /healthz answers. env replaces the defaults given here.
export async function startServer(env = {}, { cwd } = {}) {
  const dir = cwd || tmpDir();
  const port = await freePort();
  const fullEnv = {
    PATH: process.env.PATH,
    JWT_SECRET: SECRET,
    SERVICE_API_KEYS: SERVICE_KEY,
    DATABASE_URL: `sqlite:${path.join(dir, 'subgate.db')}`,
    LISTEN: `127.0.0.1:${port}`,
    HTTP_THREADS: '2',
    ...env,
  };
  for (const k of Object.keys(fullEnv)) if (fullEnv[k] === undefined) delete fullEnv[k];
  const child = spawn(BIN, ['serve'], { cwd: dir, env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const srv = { child, port, dir, base: `http://127.0.0.1:${port}`, log: '', exited: null };
  child.stdout.on('data', (d) => { srv.log += d; });
  child.stderr.on('data', (d) => { srv.log += d; });
  srv.exit = new Promise((resolve) => child.on('exit', (code, signal) => { srv.exited = { code, signal }; resolve(srv.exited); }));
  for (let i = 0; i < 300; i++) {
    if (srv.exited) throw new Error(`subgate exited early (${JSON.stringify(srv.exited)}): ${srv.log}`);
    try {
      const r = await fetch(`${srv.base}/healthz`);
      if (r.status === 200) return srv;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`subgate did not start: ${srv.log}`);
}

// Sanitizer builds report on stderr; any report fails the test that ran the process.
const SANITIZER = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/;
export function assertNoSanitizerReport(text) {
  if (SANITIZER.test(text)) throw new Error(`sanitizer report:\n${text}`);
}

// Stops the server with SIGTERM; it must exit 0 with no sanitizer report.
export async function stopServer(srv) {
  if (!srv) return null;
  if (!srv.exited) {
    srv.child.kill('SIGTERM');
    const t = setTimeout(() => srv.child.kill('SIGKILL'), 15000);
    await srv.exit;
    clearTimeout(t);
  }
  assertNoSanitizerReport(srv.log);
  if (srv.exited.code !== 0) throw new Error(`subgate exited with ${JSON.stringify(srv.exited)}: ${srv.log.slice(-2000)}`);
  return srv.exited;
}

// Sends a request; resolves to { status, headers, body (parsed JSON or text) }.
export async function req(srv, method, p, { token, body, headers = {}, raw } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let payload;
  if (raw !== undefined) payload = raw;
  else if (body !== undefined) { payload = JSON.stringify(body); h['content-type'] ??= 'application/json'; }
  const r = await fetch(srv.base + p, { method, headers: h, body: payload });
  const text = await r.text();
  let parsed = text;
  try { parsed = JSON.parse(text); } catch { /* keep text */ }
  return { status: r.status, headers: r.headers, body: parsed };
}

const b64url = (b) => Buffer.from(b).toString('base64url');

// Signs a JWT. alg: HS256 (key = secret string or Buffer), RS256/ES256 (key = KeyObject or PEM).
export function signJwt(claims, { alg = 'HS256', key = SECRET, header = {} } = {}) {
  const head = b64url(JSON.stringify({ alg, typ: 'JWT', ...header }));
  const body = b64url(JSON.stringify(claims));
  const input = `${head}.${body}`;
  let sig;
  if (alg === 'HS256') sig = crypto.createHmac('sha256', key).update(input).digest();
  else if (alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(input), key);
  else if (alg === 'ES256') sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'none') return `${input}.`;
  else throw new Error(`alg ${alg}`);
  return `${input}.${b64url(sig)}`;
}

export const now = () => Math.floor(Date.now() / 1000);

// A valid user token for sub.
export function userToken(sub = 'user_1', extra = {}, opts = {}) {
  return signJwt({ sub, email: `${sub}@example.com`, iat: now(), exp: now() + 600, ...extra }, opts);
}

// Asserts the Stripe-shaped error body; returns the inner error object.
export function errorOf(res) {
  if (!res.body || typeof res.body !== 'object' || !res.body.error) throw new Error(`not an error body: ${JSON.stringify(res.body)}`);
  const e = res.body.error;
  for (const k of ['type', 'code', 'message']) if (typeof e[k] !== 'string' || !e[k]) throw new Error(`error.${k} missing: ${JSON.stringify(e)}`);
  return e;
}
