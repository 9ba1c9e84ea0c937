// storage_faults.test.mjs: when the database stops taking writes (disk full, read-only), writes
// answer 503 with Retry-After, /readyz says not ready, reads keep working, and everything comes
// back by itself once writes work again (issue #11 item 5). On SQLite the fault is a file size
// limit put on the running server (prlimit: every write past 4 KiB fails, as on a full disk);
// on PostgreSQL the server is switched to read-only transactions (ALTER SYSTEM, reloaded).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';

import { BACKEND, PG_URL, SERVICE_KEY, errorOf, logged, req, startServer, stopServer, userToken } from './lib.mjs';

const A = '/api/v1/access';
const consume = (srv, user) => req(srv, 'POST', `${A}/consume`, {
  token: SERVICE_KEY, body: { user_id: user, quota: 'ai_minutes', amount: 1 },
});

function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.error || r.stderr}`);
}

// Writes fail from now on, until healed.
function breakWrites(srv) {
  if (BACKEND === 'sqlite') sh('prlimit', ['--pid', String(srv.child.pid), '--fsize=4096:unlimited']);
  else {
    sh('psql', [PG_URL, '-X', '-q', '-c', 'ALTER SYSTEM SET default_transaction_read_only = on']);
    sh('psql', [PG_URL, '-X', '-q', '-c', 'SELECT pg_reload_conf()']);
  }
}

function healWrites(srv) {
  if (BACKEND === 'sqlite') sh('prlimit', ['--pid', String(srv.child.pid), '--fsize=unlimited:unlimited']);
  else {
    sh('psql', [PG_URL, '-X', '-q', '-c', 'ALTER SYSTEM RESET default_transaction_read_only']);
    sh('psql', [PG_URL, '-X', '-q', '-c', 'SELECT pg_reload_conf()']);
  }
}

// PostgreSQL applies a reload to each session at its next command: poll briefly.
async function until(fn, what) {
  for (let i = 0; i < 50; i++) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

let srv;
before(async () => { srv = await startServer({ HTTP_THREADS: '2' }); });
after(async () => {
  try { healWrites(srv); } catch { /* already healed */ }
  await stopServer(srv);
});

test('writes refused by the storage answer 503; readiness follows; it heals by itself', async () => {
  assert.equal((await consume(srv, 'sf_user')).status, 200);
  let used = 1;
  assert.equal((await req(srv, 'GET', '/readyz')).status, 200);
  breakWrites(srv);
  try {
    let r;
    // PostgreSQL's sessions take the reload at their next command: a consume may still pass.
    await until(async () => {
      r = await consume(srv, 'sf_user');
      if (r.status === 200) used++;
      return r.status !== 200;
    }, 'a refused write');
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.headers.get('retry-after'), '5');
    assert.equal(errorOf(r).type, 'api_error');
    // The request's log line: at error, with the answer's code.
    const id = r.headers.get('request-id');
    assert.ok(await logged(srv, new RegExp(`"request_id":"${id}"`)), 'no log line');
    const line = JSON.parse(srv.log.split('\n').find((l) => l.includes(`"request_id":"${id}"`)));
    assert.equal(line.level, 'error');
    assert.equal(line.code, errorOf(r).code);
    const ready = await req(srv, 'GET', '/readyz');
    assert.equal(ready.status, 503, JSON.stringify(ready.body));
    assert.equal(errorOf(ready).code, 'database_not_writable');
    const usage = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken('sf_user') });
    assert.equal(usage.status, 200, 'reads still work');
    assert.equal(usage.body.ai_minutes_used, used, 'the refused consume recorded nothing');
  } finally {
    healWrites(srv);
  }
  await until(async () => (await req(srv, 'GET', '/readyz')).status === 200, 'ready again');
  const r = await consume(srv, 'sf_user');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.used, used + 1);
});
