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

describe('hostile or sloppy input changes nothing', () => {
  const bodies = [
    ['amount 1.0', '{"user_id":"%U","quota":"ai_minutes","amount":1.0}', 'amount'],
    ['amount as a string', '{"user_id":"%U","quota":"ai_minutes","amount":"1"}', 'amount'],
    ['amount true', '{"user_id":"%U","quota":"ai_minutes","amount":true}', 'amount'],
    ['amount 0', '{"user_id":"%U","quota":"ai_minutes","amount":0}', 'amount'],
    ['amount -1', '{"user_id":"%U","quota":"ai_minutes","amount":-1}', 'amount'],
    ['amount past the maximum', '{"user_id":"%U","quota":"ai_minutes","amount":1000001}', 'amount'],
    ['amount past int64', '{"user_id":"%U","quota":"ai_minutes","amount":99999999999999999999999}', null],
    ['amount twice', '{"user_id":"%U","quota":"ai_minutes","amount":1,"amount":500}', null],
    ['an unknown field', '{"user_id":"%U","quota":"ai_minutes","amount":1,"units":1}', 'units'],
    ['user_id in an array', '{"user_id":["%U"],"quota":"ai_minutes","amount":1}', 'user_id'],
    ['a NUL in user_id', '{"user_id":"%U\\u0000x","quota":"ai_minutes","amount":1}', null],
    ['an array body', '[{"user_id":"%U","quota":"ai_minutes","amount":1}]', null],
  ];
  for (const kind of ['consume', 'track', 'refund']) {
    test(`${kind}: 400 JSON for each, nothing recorded`, async () => {
      const user = `audit_hostile_${kind}`;
      if (kind === 'refund') assert.equal((await svc('POST', `${A}/consume`, { user_id: user, quota: 'ai_minutes', amount: 4 })).status, 200);
      const before = await usageOf(user);
      const entries = (await ledgerOf(user)).length;
      for (const [name, raw, param] of bodies) {
        const r = await req(srv, 'POST', `${A}/${kind}`, { token: SERVICE_KEY, raw: raw.replace('%U', user), headers: { 'content-type': 'application/json' } });
        assert.equal(r.status, 400, `${name}: ${r.text}`);
        const e = errorOf(r);
        if (param) assert.equal(e.param, param, name);
      }
      const bin = Buffer.concat([Buffer.from(`{"user_id":"${user}`), Buffer.from([0xff, 0xfe]), Buffer.from('","quota":"ai_minutes","amount":1}')]);
      const r = await req(srv, 'POST', `${A}/${kind}`, { token: SERVICE_KEY, raw: bin, headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 400, 'bytes that are not UTF-8');
      errorOf(r);
      const noType = await req(srv, 'POST', `${A}/${kind}`, { token: SERVICE_KEY, raw: JSON.stringify({ user_id: user, quota: 'ai_minutes', amount: 1 }) });
      assert.equal(noType.status, 415);
      errorOf(noType);
      const badKey = await svc('POST', `${A}/${kind}`, { user_id: user, quota: 'ai_minutes', amount: 1 }, { 'Idempotency-Key': 'k'.repeat(256) });
      assert.equal(badKey.status, 400);
      assert.equal(errorOf(badKey).code, 'idempotency_key_invalid');
      const asUser = await req(srv, 'POST', `${A}/${kind}`, { token: userToken(user), body: { user_id: user, quota: 'ai_minutes', amount: 1 } });
      assert.equal(asUser.status, 403, 'a user cannot change its usage');
      assert.deepEqual(await usageOf(user), before);
      assert.equal((await ledgerOf(user)).length, entries);
    });
  }

  test('a user token reads only its own usage, check and ledger; repeated user_id cannot widen it', async () => {
    const tok = userToken('audit_me');
    for (const p of [`${A}/usage?user_id=audit_other`, `${A}/ledger?user_id=audit_other`,
      `${A}/check?feature=unlimited_ai&user_id=audit_other`]) {
      const r = await req(srv, 'GET', p, { token: tok });
      assert.equal(r.status, 403, p);
      assert.equal(errorOf(r).code, 'forbidden');
    }
    // Two user_id values are ambiguous: refused, whichever comes first (audit_hostile).
    for (const p of [`${A}/usage?user_id=audit_other&user_id=audit_me`, `${A}/usage?user_id=audit_me&user_id=audit_other`]) {
      const r = await req(srv, 'GET', p, { token: tok });
      assert.equal(r.status, 400, p);
      assert.equal(errorOf(r).param, 'user_id');
    }
    const unknown = await req(srv, 'GET', `${A}/usage?user=audit_me`, { token: tok });
    assert.equal(unknown.status, 400);
    assert.equal(errorOf(unknown).code, 'parameter_unknown');
    for (const p of [`${A}/grants?user_id=audit_me`]) {
      const r = await req(srv, 'GET', p, { token: tok });
      assert.equal(r.status, 401, `${p}: a service route`);
      errorOf(r);
    }
    const qg = await req(srv, 'POST', `${A}/quota-grants`, { token: tok, body: { user_id: 'audit_me', quota: 'ai_minutes', units: 5, scope: 'balance' } });
    assert.equal(qg.status, 401, 'a user cannot grant itself units');
    assert.equal((await usageOf('audit_me')).remaining, 30);
  });

  test('a service key on a user route: 401 JSON', async () => {
    const r = await svc('GET', '/api/v1/payments/usage');
    assert.equal(r.status, 401);
    errorOf(r);
    assert.match(r.headers.get('www-authenticate'), /^Bearer realm="subgate"/);
  });
});

describe('at once', () => {
  test('one Idempotency-Key sent 12 times at once consumes once', async () => {
    const user = 'audit_burst_key';
    const rs = await Promise.all(Array.from({ length: 12 }, () =>
      svc('POST', `${A}/consume`, { user_id: user, quota: 'ai_minutes', amount: 3 }, { 'Idempotency-Key': 'burst' })));
    assert.deepEqual(rs.map((r) => r.status), Array(12).fill(200));
    assert.equal(rs.filter((r) => r.headers.get('idempotent-replayed') === 'true').length, 11);
    for (const r of rs) assert.deepEqual(r.body, rs[0].body);
    assert.equal((await usageOf(user)).used, 3);
    assert.equal((await ledgerOf(user)).length, 1);
  });

  test('a balance of 5 drawn on by 12 consumes at once grants 5', async () => {
    const user = 'audit_burst_balance';
    assert.equal((await svc('POST', `${A}/consume`, { user_id: user, quota: 'ai_minutes', amount: 30 })).status, 200);
    assert.equal((await svc('POST', `${A}/quota-grants`, { user_id: user, quota: 'ai_minutes', units: 5, scope: 'balance' })).status, 200);
    const rs = await Promise.all(Array.from({ length: 12 }, (_, i) =>
      svc('POST', `${A}/consume`, { user_id: user, quota: 'ai_minutes', amount: 1 }, { 'Idempotency-Key': `b${i}` })));
    assert.equal(rs.filter((r) => r.status === 200).length, 5);
    assert.equal(rs.filter((r) => r.status === 402).length, 7);
    const u = await usageOf(user);
    assert.equal(u.used, 35);
    assert.equal(u.remaining, 0);
  });
});
