// review_findings.test.mjs: the defects a black-box review of issues #15 and #16 found from
// outside (HTTP, the command line), one test each. Each failed on the code as reviewed (3
// December 2026) and passes since its fix; each says which sentence of the README / openapi.json
// it holds the service to.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import {
  BIN, EMULATOR_BIN, SERVICE_KEY, freePort, logged, req, run, signJwt, startServer, stopServer, tmpDir,
} from './lib.mjs';

const A = '/api/v1/access';
const svc = { token: SERVICE_KEY };

// README (GET /access/usage): "remaining counts them (limit + extra − used, then the balance)";
// openapi QuotaState (the schema of track's answer, MeterRecorded): remaining is "limit + extra
// - used (never below 0) + balance", extra and balance "shown ... when either is non-zero".
test('track answers remaining with the extra units and the balance, as usage does', async () => {
  const srv = await startServer();
  try {
    const u = 'rv_track';
    for (const [units, scope] of [[10, 'balance'], [4, 'window']]) {
      assert.equal((await req(srv, 'POST', `${A}/quota-grants`, { ...svc, body: { user_id: u, quota: 'ai_minutes', units, scope } })).status, 200);
    }
    const t = await req(srv, 'POST', `${A}/track`, { ...svc, body: { user_id: u, quota: 'ai_minutes', amount: 5 } });
    assert.equal(t.status, 200);
    const usage = (await req(srv, 'GET', `${A}/usage?user_id=${u}`, svc)).body.quotas.ai_minutes;
    assert.equal(usage.remaining, 30 + 4 - 5 + 10); // 39: usage is right
    assert.equal(t.body.remaining, usage.remaining, `track said remaining ${t.body.remaining}, usage ${usage.remaining}`);
    assert.equal(t.body.extra, 4);
    assert.equal(t.body.balance, 10);
  } finally {
    await stopServer(srv);
  }
});

// README (quota-grants): "scope: window: on top of the limit for the user's current window";
// a balance is "drawn on once a window's allowance (limit + extra) is spent". Extra units granted
// for the window after the window has already drawn on the balance add nothing: 10 balance
// units and 5 window units are granted, but the user can use only 10 of the 15.
test('extra units for the window granted after a balance draw are not lost', async () => {
  const srv = await startServer();
  try {
    const u = 'rv_lost';
    const grant = (units, scope) => req(srv, 'POST', `${A}/quota-grants`, { ...svc, body: { user_id: u, quota: 'ai_minutes', units, scope } });
    const consume = (amount) => req(srv, 'POST', `${A}/consume`, { ...svc, body: { user_id: u, quota: 'ai_minutes', amount } });
    assert.equal((await grant(10, 'balance')).status, 200);
    const c = await consume(35); // 30 of the limit, 5 from the balance
    assert.equal(c.status, 200);
    assert.equal(c.body.remaining, 5);
    const g = await grant(5, 'window');
    assert.equal(g.status, 200);
    assert.equal(g.body.usage.remaining, 10, `5 more units for the window, remaining still ${g.body.usage.remaining}`);
    // 30 + 5 + 10 = 45 units in all were given for this window: 10 more may be consumed.
    const more = await consume(10);
    assert.equal(more.status, 200, JSON.stringify(more.body));
  } finally {
    await stopServer(srv);
  }
});

// README (Outgoing webhooks): quota.exhausted is sent when "a consume or track reaches the
// limit, or is refused". A user with 100 extra units for this window has used 30 of an
// allowance of 130 and may go on consuming (remaining 100): nothing is exhausted, and the app,
// told so, would block or upsell a user who was just sold more units.
test('quota.exhausted is not sent while extra units remain', async () => {
  const got = [];
  const hook = http.createServer((q, s) => {
    let b = '';
    q.on('data', (d) => { b += d; });
    q.on('end', () => { got.push(JSON.parse(b)); s.end('ok'); });
  });
  const hookPort = await freePort();
  await new Promise((r) => hook.listen(hookPort, '127.0.0.1', r));
  const srv = await startServer({
    APP_WEBHOOK_URL: `http://127.0.0.1:${hookPort}/hook`,
    APP_WEBHOOK_SECRETS: 'whsec_review_0123456789',
    APP_WEBHOOK_RETRY_BASE_MS: '100',
  });
  try {
    const u = 'rv_exhausted';
    assert.equal((await req(srv, 'POST', `${A}/quota-grants`, { ...svc, body: { user_id: u, quota: 'ai_minutes', units: 100, scope: 'window' } })).status, 200);
    const c = await req(srv, 'POST', `${A}/consume`, { ...svc, body: { user_id: u, quota: 'ai_minutes', amount: 30 } });
    assert.equal(c.status, 200);
    assert.equal(c.body.remaining, 100);
    await new Promise((r) => setTimeout(r, 1500));
    const exhausted = got.filter((e) => e.type === 'quota.exhausted' && e.data.user_id === u);
    assert.deepEqual(exhausted, [], 'quota.exhausted sent with 100 units remaining');
  } finally {
    await stopServer(srv);
    hook.close();
  }
});

// README (API): a 404's path is logged with "segments that look like tokens replaced by
// [redacted]"; SPEC §6: "secrets and tokens are never logged". A user token in a segment next to
// a ';' parameter, a space or a quote reaches the log whole.
test('a token in an unknown path never reaches the log', async () => {
  const srv = await startServer();
  try {
    // A token as `subgate token` mints them (short enough to fit the 200 logged bytes whole).
    const now = Math.floor(Date.now() / 1000);
    const tok = signJwt({ sub: 'u1', iat: now, exp: now + 600 });
    assert.equal((await req(srv, 'GET', `${A}/usage`, { token: tok })).status, 200, 'a live token');
    for (const p of [`/nope;jsessionid=${tok}`, `/billing/x;${tok}`, `/nope/Bearer%20${tok}`, `/nope/(${tok})`, `/nope/token:${tok}`]) {
      assert.equal((await req(srv, 'GET', p)).status, 404);
    }
    await logged(srv, /nope\/token:/);
    const leaked = srv.log.split('\n').filter((l) => l.includes(tok));
    assert.deepEqual(leaked, [], 'a whole, valid bearer token is in the log');
  } finally {
    await stopServer(srv);
  }
});

// README (make run): "Each log line starts with the process that wrote it ...; Ctrl-C stops
// both"; run.sh itself: "Until one of them stops". When the emulator dies (crash, OOM, kill -9),
// run.sh leaves subgate running alone, says nothing, and every Stripe route answers 503.
// A copy of run.sh and the two binaries in a temporary "repository", run with SUBGATE_RUN_DIR
// in another: { child, out(), exit, url } once it prints its URL.
async function startRunSh(listen, emuListen) {
  const repo = tmpDir();
  const work = tmpDir();
  fs.mkdirSync(path.join(repo, 'scripts'));
  fs.mkdirSync(path.join(repo, 'build/release'), { recursive: true });
  fs.copyFileSync('scripts/run.sh', path.join(repo, 'scripts/run.sh'));
  fs.copyFileSync(BIN, path.join(repo, 'build/release/subgate'));
  fs.copyFileSync(EMULATOR_BIN, path.join(repo, 'build/release/stripe-emulator'));
  for (const f of ['build/release/subgate', 'build/release/stripe-emulator']) fs.chmodSync(path.join(repo, f), 0o755);
  const child = spawn('sh', [path.join(repo, 'scripts/run.sh')], {
    env: { PATH: process.env.PATH, LISTEN: listen, EMULATOR_LISTEN: emuListen, SUBGATE_RUN_DIR: work },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const r = { child, out: '', work };
  child.stdout.on('data', (d) => { r.out += d; });
  child.stderr.on('data', (d) => { r.out += d; });
  r.exit = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  for (let i = 0; i < 300 && !/^run: open /m.test(r.out); i++) await new Promise((res) => setTimeout(res, 50));
  const m = r.out.match(/^run: open (\S+)#token=(\S+)$/m);
  assert.ok(m, r.out);
  [, r.url, r.token] = m;
  return r;
}

// README (make run): "Each log line starts with the process that wrote it ...; Ctrl-C stops
// both"; run.sh itself: "Until one of them stops". When the emulator dies (crash, OOM, kill -9),
// run.sh leaves subgate running alone, says nothing, and every Stripe route answers 503.
test('run.sh stops and says so when the Stripe emulator dies', async () => {
  const r = await startRunSh(`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`);
  try {
    const kids = spawnSync('ps', ['-o', 'pid=,comm=', '--ppid', String(r.child.pid)], { encoding: 'utf8' }).stdout;
    const emu = kids.split('\n').map((l) => l.trim().split(/\s+/)).find(([, c]) => c === 'stripe-emulator');
    assert.ok(emu, kids);
    process.kill(Number(emu[0]), 'SIGKILL');
    const res = await Promise.race([r.exit, new Promise((res2) => setTimeout(() => res2('still running'), 5000))]);
    assert.notEqual(res, 'still running', `run.sh still runs 5 s after the emulator died; output:\n${r.out.slice(-600)}`);
    assert.match(r.out, /the Stripe emulator stopped/);
  } finally {
    r.child.kill('SIGTERM');
    await r.exit;
  }
});

// README: "LISTEN and EMULATOR_LISTEN in the environment change the addresses", LISTEN may be
// "[::1]:8080 for IPv6", and "Checkout and the portal come back to that page, so subgate's own
// origin ... is among the ALLOWED_REDIRECT_ORIGINS". With LISTEN=[::1]:PORT run.sh prints
// http://[::1]:PORT/billing/ but allows only 127.0.0.1 and localhost: the page's checkout is 400.
test('run.sh on [::1]: checkout back to the printed page is allowed', async () => {
  const port = await freePort();
  const r = await startRunSh(`[::1]:${port}`, `127.0.0.1:${await freePort()}`);
  try {
    const page = r.url;
    assert.equal(new URL(page).host, `[::1]:${port}`);
    const res = await fetch(new URL('../api/v1/payments/create-checkout-session', page), {
      method: 'POST',
      headers: { authorization: `Bearer ${r.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tier: 'premium', success_url: `${page}?session_id={CHECKOUT_SESSION_ID}`, cancel_url: page }),
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
  } finally {
    r.child.kill('SIGTERM');
    await r.exit;
  }
});

// README (API): "the service writes one JSON log line per request ...: at warn for a 4xx answer
// ..., the error answers' lines with the body's error code". A consume refused with 402
// quota_exceeded is logged at warn without its code (every other 4xx tried has it).
test('a refused consume is logged with its error code', async () => {
  const srv = await startServer();
  try {
    const r = await req(srv, 'POST', `${A}/consume`, { ...svc, body: { user_id: 'rv_refused', quota: 'ai_minutes', amount: 31 } });
    assert.equal(r.status, 402);
    assert.equal(r.body.error.code, 'quota_exceeded');
    const id = r.headers.get('request-id');
    await logged(srv, new RegExp(`"request_id":"${id}"`));
    const line = srv.log.split('\n').find((l) => l.includes(`"request_id":"${id}"`));
    assert.ok(line, srv.log);
    assert.equal(JSON.parse(line).level, 'warn');
    assert.equal(JSON.parse(line).code, 'quota_exceeded', line);
  } finally {
    await stopServer(srv);
  }
});

// `subgate user ID` is the support view (issue #16 item 6, README Commands). It prints what the
// API stored as is: a grant's or a ledger entry's reason (any JSON string a service sent) goes
// to the support person's terminal with its escape sequences and line breaks, so a reason can
// clear the screen, retitle the terminal or forge lines of the report.
test('subgate user prints stored text without control characters', async () => {
  const srv = await startServer();
  try {
    const u = 'rv_support';
    const evil = '\u001b[2J\u001b]0;owned\u0007\r\nsubscription:  active plus (forged)';
    assert.equal((await req(srv, 'POST', `${A}/grants`, { ...svc, body: { user_id: u, tier: 'plus', reason: evil } })).status, 200);
    const r = run(['user', u], { env: { DATABASE_URL: srv.databaseUrl }, cwd: srv.dir });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f]/.test(r.stdout), `control characters in the output: ${JSON.stringify(r.stdout.match(/.*owned.*/))}`);
    assert.ok(!/^subscription: {2}active plus \(forged\)$/m.test(r.stdout), 'a forged line');
  } finally {
    await stopServer(srv);
  }
});

// A user id is any token `sub` of 1 to 255 bytes (README, sync --import), "-x" among them; a
// support person cannot look such a user up: `subgate user -x` and `subgate user -- -x` are both
// usage errors. And a usage error writes: `subgate user` with no ID creates and migrates the
// default database (./var/subgate.db) before saying so.
test('subgate user: an id starting with "-" can be looked up, and a usage error writes nothing', () => {
  const dir = tmpDir();
  const none = run(['user'], { cwd: dir });
  assert.equal(none.status, 2);
  assert.equal(fs.existsSync(path.join(dir, 'var/subgate.db')), false, 'subgate user (no ID) made var/subgate.db');
  const db = `sqlite:${path.join(tmpDir(), 'x.db')}`;
  assert.equal(run(['migrate'], { env: { DATABASE_URL: db } }).status, 0);
  const dash = run(['user', '--', '-x'], { env: { DATABASE_URL: db } });
  assert.equal(dash.status, 0, dash.stderr);
  assert.match(dash.stdout, /^user: +-x$/m);
});

// README (Outgoing webhooks): subscription.tier_changed is sent for "a grant starting later than
// it was made or ending, by the clock (effective_at its starts_at or ends_at ...)". A grant that
// starts and ends while the server is down is announced after the restart by its end alone:
// "premium -> free" for a user the app was never told became premium (a running server sends
// both). The stream should stay consistent: both changes, or none.
test('a grant that started and ended while the server was down is announced consistently', async () => {
  const got = [];
  const hook = http.createServer((q, s) => {
    let b = '';
    q.on('data', (d) => { b += d; });
    q.on('end', () => { got.push(JSON.parse(b)); s.end('ok'); });
  });
  const hookPort = await freePort();
  await new Promise((r) => hook.listen(hookPort, '127.0.0.1', r));
  const env = {
    APP_WEBHOOK_URL: `http://127.0.0.1:${hookPort}/hook`,
    APP_WEBHOOK_SECRETS: 'whsec_review_0123456789',
    APP_WEBHOOK_RETRY_BASE_MS: '100',
  };
  const dir = tmpDir();
  let srv = await startServer(env, { cwd: dir });
  try {
    const t = Math.floor(Date.now() / 1000);
    const g = await req(srv, 'POST', `${A}/grants`, { ...svc, body: { user_id: 'rv_down', tier: 'premium', starts_at: t + 2, ends_at: t + 4 } });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    await stopServer(srv);
    await new Promise((r) => setTimeout(r, 6000));
    srv = await startServer(env, { cwd: dir, port: srv.port });
    await new Promise((r) => setTimeout(r, 2000));
    const changes = got.filter((e) => e.type === 'subscription.tier_changed' && e.data.user_id === 'rv_down')
      .map((e) => `${e.data.old_tier}>${e.data.new_tier}`);
    assert.ok(changes.length === 0 || changes.join(',') === 'free>premium,premium>free',
      `events after the restart: ${JSON.stringify(changes)}`);
  } finally {
    await stopServer(srv);
    hook.close();
  }
});
