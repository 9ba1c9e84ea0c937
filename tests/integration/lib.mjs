// lib.mjs: starts the real subgate binary on loopback with a fresh database, and signs tokens
// with Node's own crypto (an implementation independent of ours). With SUBGATE_TEST_PG_URL set
// (the maintenance URL of a throwaway PostgreSQL server: scripts/pg.sh start), every test's
// database is a fresh PostgreSQL database instead of a SQLite file, so the same suite runs on
// both backends (see databaseUrl below).
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

// Stripe's parameter checker (../shared/tools next to the repository; tests run from its root).
export const STRIPE_PARAMS_TOOL = path.resolve('../shared/tools/stripe_params.py');

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

// Recording for the OpenAPI check (zz_openapi.test.mjs): with SUBGATE_OPENAPI_LOG naming a
// file, every answer that a fetch in this process gets from a server startServer started (req
// below, the JS client, the tests' own fetch calls) is appended to it as one JSON line:
// { file, method, path, status, contentType, headers, body }. Raw-socket probes (net.connect)
// and other processes (nginx, Chromium, Python) are not recorded.
export const OPENAPI_LOG = process.env.SUBGATE_OPENAPI_LOG || '';
const servedOrigins = new Set();
if (OPENAPI_LOG) {
  const realFetch = globalThis.fetch;
  const record = (entry) => fs.appendFileSync(OPENAPI_LOG, `${JSON.stringify(entry)}\n`);
  globalThis.fetch = async function recordingFetch(input, init = {}) {
    const r = await realFetch(input, init);
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (!servedOrigins.has(url.origin)) return r;
    const method = (init.method || (input instanceof Request ? input.method : 'GET')).toUpperCase();
    const entry = {
      file: path.basename(process.argv[1] || '?'),
      method,
      path: url.pathname,
      status: r.status,
      contentType: r.headers.get('content-type'),
      headers: Object.fromEntries(r.headers),
      body: null,
    };
    if (r.body === null) { record(entry); return r; }
    // The clone is read beside the caller's copy; a body the caller abandons is still recorded
    // as far as it arrived, and a failure to read it is recorded as such.
    r.clone().text().then(
      (text) => record({ ...entry, body: text }),
      (e) => record({ ...entry, body: null, bodyError: String(e) }),
    );
    return r;
  };
}

export function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'subgate-it-'));
}

// PostgreSQL mode: the maintenance URL, and the backend the suite runs on.
export const PG_URL = process.env.SUBGATE_TEST_PG_URL || '';
export const BACKEND = PG_URL ? 'postgres' : 'sqlite';

// Creates a fresh, empty database on the PostgreSQL server of maintenanceUrl; its URL.
export function createPgDatabase(maintenanceUrl = PG_URL) {
  const name = `sg_${crypto.randomBytes(8).toString('hex')}`;
  const r = spawnSync('psql', [maintenanceUrl, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${name}`],
    { encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) throw new Error(`psql: CREATE DATABASE ${name} failed: ${r.error || r.stderr}`);
  const u = new URL(maintenanceUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

// The DATABASE_URL a process gets for url (undefined: the default of a server in dir,
// sqlite:<dir>/subgate.db). In PostgreSQL mode every SQLite file named subgate.db, the name of
// "the test's database", stands for one fresh PostgreSQL database of its own (made on first
// use, then reused, so that `subgate events` or `sync` run on the same file see the server's
// data); SQLite files of any other name (two processes on one file, migrate on a new path) and
// any other URL are kept as they are.
const pgDatabases = new Map();
export function databaseUrl(url, dir) {
  const u = url === undefined ? `sqlite:${path.join(dir, 'subgate.db')}` : url;
  if (!PG_URL || !u.startsWith('sqlite:')) return u;
  const file = path.resolve(dir, u.slice('sqlite:'.length));
  if (path.basename(file) !== 'subgate.db') return u;
  if (!pgDatabases.has(file)) pgDatabases.set(file, createPgDatabase());
  return pgDatabases.get(file);
}

// Runs a subcommand to completion: { status, stdout, stderr }.
export function run(args, { env = {}, cwd } = {}) {
  const dir = cwd || tmpDir();
  const fullEnv = { PATH: process.env.PATH, ...env };
  if (typeof env.DATABASE_URL === 'string') fullEnv.DATABASE_URL = databaseUrl(env.DATABASE_URL, dir);
  for (const k of Object.keys(fullEnv)) if (fullEnv[k] === undefined) delete fullEnv[k];
  const r = spawnSync(BIN, args, { cwd: dir, env: fullEnv, encoding: 'utf8', timeout: 30000 });
  assertNoSanitizerReport(r.stderr);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Starts `subgate serve`; resolves once /healthz answers. env replaces the defaults given here;
// srv.databaseUrl is the database it was given. ulimit (e.g. '-Sn 1024') runs the server under
// that shell `ulimit` first. port (default: a free one) is for a restart on the same address,
// or a test that must know its origin before the start (the billing page's own origin).
export async function startServer(env = {}, { cwd, ulimit, port: fixedPort } = {}) {
  const dir = cwd || tmpDir();
  const port = fixedPort || await freePort();
  const fullEnv = {
    PATH: process.env.PATH,
    JWT_SECRET: SECRET,
    SERVICE_API_KEYS: SERVICE_KEY,
    LISTEN: `127.0.0.1:${port}`,
    HTTP_THREADS: '2',
    ...env,
    DATABASE_URL: 'DATABASE_URL' in env && env.DATABASE_URL === undefined ? undefined : databaseUrl(env.DATABASE_URL, dir),
  };
  for (const k of Object.keys(fullEnv)) if (fullEnv[k] === undefined) delete fullEnv[k];
  const [cmd, args] = ulimit ? ['sh', ['-c', `ulimit ${ulimit} && exec "$0" serve`, BIN]] : [BIN, ['serve']];
  const child = spawn(cmd, args, { cwd: dir, env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const srv = { child, port, dir, base: `http://127.0.0.1:${port}`, databaseUrl: fullEnv.DATABASE_URL, log: '', exited: null };
  child.stdout.on('data', (d) => { srv.log += d; });
  child.stderr.on('data', (d) => { srv.log += d; });
  srv.exit = new Promise((resolve) => child.on('exit', (code, signal) => { srv.exited = { code, signal }; resolve(srv.exited); }));
  servedOrigins.add(srv.base);
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

// Waits until the server's log matches re (request lines are written by a log thread every
// 10 ms, so a line can follow its answer by that much); resolves to whether it did within ms.
export async function logged(srv, re, ms = 2000) {
  for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise((r) => setTimeout(r, 10))) {
    if (re.test(srv.log)) return true;
  }
  return re.test(srv.log);
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
  return { status: r.status, headers: r.headers, body: parsed, text };
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

// The Stripe emulator (build/<flavor>/stripe-emulator) on a free loopback port; resolves to
// { child, base, log } once it prints its address.
export const EMULATOR_BIN = path.resolve(process.env.EMULATOR_BIN || 'build/release/stripe-emulator');
export const EMULATOR_KEY = 'sk_test_emulator';

export function startEmulator(env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(EMULATOR_BIN, [], {
      env: { PATH: process.env.PATH, EMULATOR_LISTEN: '127.0.0.1:0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const e = { child, base: null, log: '', exited: null };
    let out = '';
    e.exit = new Promise((res) => child.on('exit', (code, signal) => { e.exited = { code, signal }; res(e.exited); }));
    child.stderr.on('data', (d) => { e.log += d; });
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^stripe-emulator listening on (http:\/\/127\.0\.0\.1:\d+)\n/);
      if (m && !e.base) { e.base = m[1]; resolve(e); }
    });
    child.on('exit', (code) => { if (!e.base) reject(new Error(`emulator exited ${code}: ${e.log}`)); });
  });
}

// Stops the emulator with SIGTERM; any sanitizer report fails the caller.
export async function stopEmulator(emu) {
  if (!emu) return;
  if (!emu.exited) {
    emu.child.kill('SIGTERM');
    const t = setTimeout(() => emu.child.kill('SIGKILL'), 15000);
    await emu.exit;
    clearTimeout(t);
  }
  assertNoSanitizerReport(emu.log);
}

// Stripe's form encoding: nested objects and arrays as a[b][0]=c.
export function stripeForm(params) {
  const flat = [];
  const walk = (prefix, v) => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(`${prefix}[${i}]`, x));
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}[${k}]` : k, x);
    else flat.push([prefix, String(v)]);
  };
  walk('', params);
  return new URLSearchParams(flat).toString();
}

// Calls the emulator's Stripe API directly: { status, body }.
export async function stripeApi(emu, method, p, params = {}, { idem } = {}) {
  const headers = { authorization: `Bearer ${EMULATOR_KEY}` };
  if (idem) headers['idempotency-key'] = idem;
  let url = emu.base + p;
  let body;
  const q = stripeForm(params);
  if (method === 'GET' || method === 'DELETE') { if (q) url += `?${q}`; } else {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = q;
  }
  const r = await fetch(url, { method, headers, body });
  return { status: r.status, body: await r.json() };
}

// Calls the emulator's control API (/_emulator/...) with a JSON body: { status, body }.
export async function emuControl(emu, method, p, json) {
  const r = await fetch(emu.base + p, {
    method,
    headers: { 'content-type': 'application/json' },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  return { status: r.status, body: await r.json() };
}

// Every request the emulator logged, checked against Stripe's OpenAPI spec (stripe_params.py):
// ids in paths become the spec's templates. Returns the set of "METHOD /path/{id}" seen.
const ID_TEMPLATES = {
  cus: '/{customer}', sub_sched: '/{schedule}', sub: '/{subscription_exposed_id}', cs_test: '/{session}',
  in: '/{invoice}', promo: '/{promotion_code}', coupon: '/{coupon}', clock: '/{test_clock}',
};
export async function assertStripeRequestsValid(emu) {
  const log = (await emuControl(emu, 'GET', '/_emulator/requests')).body.data;
  const seen = new Set(log.map((r) => `${r.method} ${r.path.replace(/\/(sub_sched|sub|promo|coupon|in)_[A-Za-z0-9_]+/, '/{id}')}`));
  const checked = new Set();
  for (const r of log) {
    const p = r.path.replace(/\/(cus|sub_sched|sub|cs_test|in|promo|coupon|clock)_[A-Za-z0-9_]+/, (m, k) => ID_TEMPLATES[k]);
    const body = r.method === 'GET' ? r.query : r.body;
    // Requests that differ only in ids and numbers are checked once: the spec's types and enums
    // do not tell one id or number from another.
    const shape = `${r.method} ${p} ${(body || '').replace(/=[a-z]+_[A-Za-z0-9_]+/g, '=id').replace(/=\d+/g, '=0')}`;
    if (checked.has(shape)) continue;
    checked.add(shape);
    const res = spawnSync('python3', [STRIPE_PARAMS_TOOL, '-q', r.method, p, '--form', body], { encoding: 'utf8' });
    if (res.status !== 0) throw new Error(`not valid for Stripe's spec: ${r.method} ${p} ${body}: ${res.stdout}${res.stderr}`);
  }
  return seen;
}
