// write_pool.test.mjs: hot writes (consume, track, refund, webhooks) run on a pool of their own
// (WRITE_CONCURRENCY), their connections suspended while they wait for their batch's commit, so
// that the serving threads go on answering and concurrent writes meet in one batch (#13 item 4).
//
// Each test holds the database's write lock from outside (the sqlite3 shell, or psql) for a
// moment: every write waits for it, which makes the order of answers certain without timing.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { after, test } from 'node:test';
import { BACKEND, SERVICE_KEY, logged, req, run, startServer, stopServer, userToken } from './lib.mjs';

const A = '/api/v1/access';
const HOLD_S = 2; // how long the lock is held: far under the 5 s a writer waits for it
const servers = [];
after(async () => { for (const s of servers) await stopServer(s); });

async function start(env) {
  const srv = await startServer({ HTTP_THREADS: '1', ...env });
  servers.push(srv);
  return srv;
}

// Whether srv's database write lock is held by someone else now.
function lockHeld(srv) {
  const url = srv.databaseUrl;
  if (url.startsWith('sqlite:')) { // no busy timeout: a held lock fails at once
    const r = spawnSync('sqlite3', [url.slice('sqlite:'.length), 'BEGIN IMMEDIATE; ROLLBACK;'],
      { encoding: 'utf8' });
    return r.status !== 0 && /locked|busy/i.test(r.stderr);
  }
  const r = spawnSync('psql', [url, '-X', '-A', '-t', '-c',
    "SELECT count(*) FROM pg_locks WHERE relation = 'usage_counters'::regclass AND granted " +
    "AND mode = 'ExclusiveLock'"], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() === '1';
}

// Holds the write lock of srv's database for HOLD_S seconds; resolves once it is held, to
// { ended }: a promise of the holder's end (wrapped, or awaiting this would wait for it).
async function holdWriteLock(srv) {
  const url = srv.databaseUrl;
  const [cmd, args, script] = url.startsWith('sqlite:')
    ? ['sqlite3', ['-cmd', '.timeout 10000', url.slice('sqlite:'.length)],
      `BEGIN IMMEDIATE;\n.shell sleep ${HOLD_S}\nCOMMIT;\n`]
    : ['psql', [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1'],
      'BEGIN;\nLOCK TABLE usage_counters, usage_ledger IN EXCLUSIVE MODE;\n' +
      `SELECT pg_sleep(${HOLD_S});\nCOMMIT;\n`];
  const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  let exited = null;
  child.stderr.on('data', (d) => { err += d; });
  const ended = new Promise((resolve) => child.on('exit', (code) => { exited = code; resolve(code); }));
  child.stdin.end(script);
  while (!lockHeld(srv)) {
    assert.equal(exited, null, `${cmd} ended (${exited}) before locking: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { ended: ended.then((code) => assert.equal(code, 0, `${cmd}: ${err}`)) };
}

function consume(srv, user, amount = 1) {
  return req(srv, 'POST', `${A}/consume`, {
    headers: { authorization: `Bearer ${SERVICE_KEY}` },
    body: { user_id: user, quota: 'ai_minutes', amount },
  });
}

async function metric(srv, name) {
  const text = await (await fetch(`${srv.base}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
  assert.ok(m, `${name} in /metrics`);
  return Number(m[1]);
}

// Resolves to the order in which the promises settled: their indexes.
function settleOrder(promises) {
  const order = [];
  return Promise.all(promises.map((p, i) => p.then((v) => { order.push(i); return v; })))
    .then((values) => ({ order, values }));
}

test('writes waiting for their commit leave the serving thread free, and meet in one batch', async () => {
  const srv = await start({ WRITE_CONCURRENCY: '16' });
  assert.equal((await consume(srv, 'u_pool_warm')).status, 200); // the user's counter exists
  const writes0 = await metric(srv, 'subgate_store_writes_total');
  const commits0 = await metric(srv, 'subgate_store_commits_total');

  const held = await holdWriteLock(srv);
  const users = Array.from({ length: 12 }, (_, i) => `u_pool${i % 3}`);
  const writes = users.map((u) => consume(srv, u));
  // One serving thread: it answers this while every write above waits for the lock.
  const probes = [fetch(`${srv.base}/healthz`).then((r) => r.status),
    req(srv, 'GET', `${A}/check?feature=unlimited_ai`, { token: userToken('u_pool0') })
      .then((r) => r.status)];
  const { order, values } = await settleOrder([...probes, ...writes]);
  await held.ended;
  assert.deepEqual(order.slice(0, 2).sort(), [0, 1],
    `the health and check answers came first, not after writes: ${order}`);
  assert.deepEqual(values.slice(0, 2), [200, 200]);
  for (const r of values.slice(2)) assert.equal(r.status, 200, JSON.stringify(r.body));

  const writes1 = await metric(srv, 'subgate_store_writes_total');
  const commits1 = await metric(srv, 'subgate_store_commits_total');
  assert.equal(writes1 - writes0, 12);
  // The first write waits for the lock alone; the eleven queued behind it are one batch.
  assert.ok(commits1 - commits0 <= 3, `${commits1 - commits0} commits for 12 writes`);
  for (const u of ['u_pool0', 'u_pool1', 'u_pool2']) {
    const r = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken(u) });
    assert.equal(r.body.ai_minutes_used, 4, `${u}: ${JSON.stringify(r.body)}`);
  }
});

test('a full write queue answers 503 busy at once, nothing done', async () => {
  const srv = await start({ WRITE_CONCURRENCY: '1', WRITE_QUEUE_MAX: '1' });
  assert.equal((await consume(srv, 'u_full')).status, 200);
  const held = await holdWriteLock(srv);
  const first = consume(srv, 'u_full', 2); // runs, waiting for the lock
  await new Promise((r) => setTimeout(r, 200)); // on the pool's one thread before the next
  const second = consume(srv, 'u_full', 3); // waits in the queue
  await new Promise((r) => setTimeout(r, 200));
  const refused = [consume(srv, 'u_full', 5), req(srv, 'POST', `${A}/track`, {
    headers: { authorization: `Bearer ${SERVICE_KEY}` },
    body: { user_id: 'u_full', quota: 'scenarios', amount: 1 },
  })];
  const { order, values } = await settleOrder([...refused, first, second]);
  await held.ended;
  assert.deepEqual(order.slice(0, 2).sort(), [0, 1], `the refusals came first: ${order}`);
  for (const r of values.slice(0, 2)) {
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'busy');
    assert.match(r.body.error.message, /writes/);
    assert.match(r.headers.get('retry-after') || '', /^[1-9][0-9]*$/);
    assert.ok(r.headers.get('request-id'));
  }
  assert.equal(values[2].status, 200);
  assert.equal(values[3].status, 200);
  const u = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken('u_full') });
  assert.equal(u.body.ai_minutes_used, 1 + 2 + 3);
  assert.equal(u.body.scenarios_completed, 0);
  assert.ok(await logged(srv, /writes already wait for the database: 503/), srv.log);
  assert.equal(await metric(srv, 'subgate_write_queue_refusals_total'), 2);
});

test('WRITE_CONCURRENCY=0 serves writes on the serving threads', async () => {
  const srv = await start({ WRITE_CONCURRENCY: '0' });
  const r = await consume(srv, 'u_inline', 2);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.used, 2);
  assert.ok(await logged(srv, /\(1 threads, 0 write threads, database/), srv.log);
});

test('by default the write pool is 16 fibers of one thread, on either database', async () => {
  const srv = await start({});
  const line = new RegExp(`\\(1 threads, 16 write fibers on one thread, database ${BACKEND}`);
  assert.ok(await logged(srv, line), srv.log);
  assert.equal((await consume(srv, 'u_default')).status, 200);
});

test('bodies nested to the JSON parser\'s limit and past it are refused on the write pool, which goes on', async () => {
  const srv = await start({});
  const writes = [];
  for (const depth of [2000, 2047, 2100, 6000]) {
    const body = `{"user_id":${'['.repeat(depth)}${']'.repeat(depth)},"quota":"ai_minutes","amount":1}`;
    for (let i = 0; i < 4; i++) {
      writes.push(req(srv, 'POST', `${A}/consume`, {
        headers: { authorization: `Bearer ${SERVICE_KEY}`, 'content-type': 'application/json' },
        raw: body,
      }));
    }
  }
  for (const r of await Promise.all(writes)) {
    assert.equal(r.status, 400, JSON.stringify(r.body).slice(0, 300)); // a user id must be a string
    assert.ok(r.body.error.message, JSON.stringify(r.body).slice(0, 300));
  }
  const ok = await consume(srv, 'u_deep', 3);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.used, 3);
});

test('WRITE_CONCURRENCY and WRITE_QUEUE_MAX out of range stop start-up, naming them', () => {
  for (const [name, value] of [['WRITE_CONCURRENCY', '257'], ['WRITE_CONCURRENCY', '-2'],
    ['WRITE_QUEUE_MAX', '0'], ['WRITE_QUEUE_MAX', 'many']]) {
    const r = run(['check-config'], { env: { [name]: value, JWT_SECRET: 'x'.repeat(32) } });
    assert.notEqual(r.status, 0, `${name}=${value} accepted`);
    assert.match(r.stderr + r.stdout, new RegExp(name), `${name}=${value}: ${r.stderr}`);
  }
});

