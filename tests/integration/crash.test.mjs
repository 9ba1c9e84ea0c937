// crash.test.mjs: kill -9 under concurrent writes (issue #13 item 4, group commit). Every
// consume and track answered 200 must be in the database after a restart: a write is answered
// only once the batch holding it has committed, and a commit survives the process dying.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { BACKEND, SERVICE_KEY, req, startServer, stopServer, userToken } from './lib.mjs';

const A = '/api/v1/access';
const ENV = { HTTP_THREADS: '8' }; // enough serving threads for batches to form
const USERS = 40;
const IN_FLIGHT = 32;

let srv;
after(async () => { await stopServer(srv); });

// Sends writes IN_FLIGHT at a time until stop(); counts the 200 answers per user.
function writeLoad(server, acked, stop) {
  let n = 0;
  const one = async () => {
    while (!stop()) {
      const i = n++;
      const user = `u_crash${i % USERS}`;
      const path = i % 4 === 0 ? 'track' : 'consume';
      const quota = path === 'track' ? 'scenarios' : 'ai_minutes';
      try {
        const r = await fetch(`${server.base}${A}/${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${SERVICE_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ user_id: user, quota, amount: 1 }),
        });
        await r.text();
        if (r.status === 200) acked[quota][user] = (acked[quota][user] || 0) + 1;
      } catch { /* the server died under it: not acknowledged */ }
    }
  };
  return Promise.all(Array.from({ length: IN_FLIGHT }, one));
}

test('kill -9 during concurrent consumes loses no acknowledged write', async (t) => {
  const first = await startServer(ENV);
  const acked = { ai_minutes: {}, scenarios: {} };
  let stopped = false;
  const load = writeLoad(first, acked, () => stopped);
  await new Promise((r) => setTimeout(r, 1500));
  const text = await (await fetch(`${first.base}/metrics`)).text();
  const series = (name) => Number(text.match(new RegExp(`^${name} (\\d+)$`, 'm'))[1]);
  const writes = series('subgate_store_writes_total');
  const commits = series('subgate_store_commits_total');
  // On PostgreSQL a commit waits for its WAL flush, so writes meet in batches; SQLite's commits
  // (no fsync with synchronous=NORMAL) take microseconds and rarely overlap with these clients.
  assert.ok(commits <= writes && (BACKEND !== 'postgres' || commits < writes),
    `batches: ${commits} commits for ${writes} writes`);
  t.diagnostic(`${commits} commits for ${writes} writes before the kill`);
  first.child.kill('SIGKILL');
  await first.exit;
  stopped = true;
  await load;
  const total = Object.values(acked.ai_minutes).reduce((a, b) => a + b, 0) +
    Object.values(acked.scenarios).reduce((a, b) => a + b, 0);
  assert.ok(total > 100, `only ${total} writes were answered before the kill`);

  srv = await startServer(ENV, { cwd: first.dir });
  for (let u = 0; u < USERS; u++) {
    const user = `u_crash${u}`;
    const r = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken(user) });
    assert.equal(r.status, 200);
    assert.ok(r.body.ai_minutes_used >= (acked.ai_minutes[user] || 0),
      `${user}: ${acked.ai_minutes[user]} consumes answered 200, ${r.body.ai_minutes_used} stored`);
    assert.ok(r.body.scenarios_completed >= (acked.scenarios[user] || 0),
      `${user}: ${acked.scenarios[user]} tracks answered 200, ${r.body.scenarios_completed} stored`);
  }
});
