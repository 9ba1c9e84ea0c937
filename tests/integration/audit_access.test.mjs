// audit_access.test.mjs: a black-box audit of the access routes (consume, track, refund, usage,
// check, ledger, quota-grants, grants) against the README's words: retries with the same
// Idempotency-Key however the client writes its Authorization header, a grant's key reused with
// another start, grants listed newest first, and what hostile or sloppy input gets (a JSON 4xx,
// nothing changed).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SERVICE_KEY, errorOf, now, req, startServer, stopServer, tmpDir, userToken } from './lib.mjs';

const A = '/api/v1/access';

let srv;
before(async () => { srv = await startServer({ HTTP_THREADS: '4' }, { cwd: tmpDir() }); });
after(async () => { await stopServer(srv); });

const svc = (method, p, body, headers = {}) => req(srv, method, p, { token: SERVICE_KEY, body, headers });
const usageOf = async (user, quota = 'ai_minutes') => {
  const r = await svc('GET', `${A}/usage?user_id=${encodeURIComponent(user)}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.quotas[quota];
};
const ledgerOf = async (user) => {
  const r = await svc('GET', `${A}/ledger?user_id=${encodeURIComponent(user)}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.data;
};

describe('Idempotency-Key and the Authorization header', () => {
  // RFC 7235: the scheme is case-insensitive, and the server accepts "bearer" and extra spaces;
  // a retry written another way by the same service is still a retry of the same request.
  const spellings = [`bearer ${SERVICE_KEY}`, `BEARER  ${SERVICE_KEY}`, `Bearer ${SERVICE_KEY}`];

  for (const kind of ['consume', 'track']) {
    test(`a ${kind} retried with the scheme spelled another way counts once`, async () => {
      const user = `audit_scheme_${kind}`;
      const body = { user_id: user, quota: 'ai_minutes', amount: 5 };
      const first = await req(srv, 'POST', `${A}/${kind}`, { body, headers: { authorization: `Bearer ${SERVICE_KEY}`, 'idempotency-key': 'job-1' } });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.equal(first.body.used, 5);
      for (const authorization of spellings) {
        const r = await req(srv, 'POST', `${A}/${kind}`, { body, headers: { authorization, 'idempotency-key': 'job-1' } });
        assert.equal(r.status, 200, `${authorization}: ${JSON.stringify(r.body)}`);
        assert.equal(r.headers.get('idempotent-replayed'), 'true', `${JSON.stringify(authorization)} is a retry`);
        assert.deepEqual(r.body, first.body, 'answered as the first time');
      }
      assert.equal((await usageOf(user)).used, 5, 'counted once');
      assert.equal((await ledgerOf(user)).length, 1, 'one ledger entry');
    });
  }

  test('a refund retried with the scheme spelled another way gives back once', async () => {
    const user = 'audit_scheme_refund';
    assert.equal((await svc('POST', `${A}/consume`, { user_id: user, quota: 'ai_minutes', amount: 10 })).status, 200);
    const body = { user_id: user, quota: 'ai_minutes', amount: 3 };
    const first = await req(srv, 'POST', `${A}/refund`, { body, headers: { authorization: `Bearer ${SERVICE_KEY}`, 'idempotency-key': 'rf-1' } });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.used, 7);
    const again = await req(srv, 'POST', `${A}/refund`, { body, headers: { authorization: `bearer  ${SERVICE_KEY}`, 'idempotency-key': 'rf-1' } });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal((await usageOf(user)).used, 7, 'a retry gives nothing more');
  });
});

describe('grants', () => {
  const grant = (body, headers = {}) => svc('POST', `${A}/grants`, body, headers);

  test('the key of a grant with another starts_at: 409, nothing changed', async () => {
    const user = 'audit_grant_start';
    const start = now() + 3600;
    const g = await grant({ user_id: user, tier: 'plus', starts_at: start }, { 'Idempotency-Key': 'contract-1' });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    const same = await grant({ user_id: user, tier: 'plus', starts_at: start }, { 'Idempotency-Key': 'contract-1' });
    assert.equal(same.status, 200);
    assert.equal(same.headers.get('idempotent-replayed'), 'true');
    assert.equal(same.body.id, g.body.id);
    const other = await grant({ user_id: user, tier: 'plus', starts_at: start + 86400 }, { 'Idempotency-Key': 'contract-1' });
    assert.equal(other.status, 409, `another body: ${JSON.stringify(other.body)}`);
    assert.equal(errorOf(other).code, 'idempotency_key_reused');
    const list = await svc('GET', `${A}/grants?user_id=${user}`);
    assert.equal(list.body.count, 1);
    assert.equal(list.body.data[0].starts_at, start, 'the grant keeps its start');
  });

  test('a retry without starts_at of a grant made without one is still the same grant', async () => {
    const user = 'audit_grant_nostart';
    const g = await grant({ user_id: user, tier: 'plus' }, { 'Idempotency-Key': 'comp-1' });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    await new Promise((r) => setTimeout(r, 1100)); // "now" moves on: the default start must not count
    const again = await grant({ user_id: user, tier: 'plus' }, { 'Idempotency-Key': 'comp-1' });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(again.body, g.body);
  });

  test('GET /grants lists newest first, also grants made within one second', async () => {
    const user = 'audit_grant_order';
    const made = [];
    for (let i = 0; i < 8; i++) {
      const g = await grant({ user_id: user, tier: i % 2 ? 'plus' : 'premium', reason: `n${i}` });
      assert.equal(g.status, 200, JSON.stringify(g.body));
      made.push(g.body.id);
    }
    const list = await svc('GET', `${A}/grants?user_id=${user}`);
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.data.map((g) => g.id), made.reverse(), 'newest first');
  });
});
