// audit_gate.test.mjs: a black-box audit of the gate (SPEC §8: "the gate is never looser than
// the app's router"), run through docs/nginx.example.conf in front of gate_lib.mjs's Express app,
// and of the gate endpoint itself (X-Original-URI missing, empty, duplicated, huge).
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SERVICE_KEY, req, startServer, stopServer, userToken } from './lib.mjs';
import { gateStack, rawGet, seen, verdict } from './gate_lib.mjs';
import { NGINX, startNginx, stopNginx } from './nginx_lib.mjs';

// Express routes a path with ".." or "." segments (plain or escaped) after a gated prefix to
// that prefix's handler: it resolves nothing. Each is refused like the canonical Plus path.
const DOTS_AFTER_PLUS = {
  '/api/business-german/lesson1': ['/api/business-german/../x', '/api/business-german/%2e%2e/x',
    '/api/Business-German/%2E%2E/x', '/api/business-german/..', '/api/business-german/.%2e',
    '/api/business-german/x/../../y', '/api/business-german/../ai/chat'],
  '/api/custom-ai/run': ['/api/custom-ai/../run', '/api/custom-ai/.%2e/run', '/api/CUSTOM-AI/%2e%2e'],
};

describe('nginx in front of Express: dot segments after a gated prefix', { skip: !NGINX && 'nginx is not installed' }, () => {
  const ctx = {};
  gateStack(ctx, {}, startNginx, stopNginx);

  // Seen failing on main: every variant answered 200 allowed for a free user and reached the
  // app's business-german or custom-ai handler (the gate resolved "/api/business-german/../x"
  // to "/api/x", a rule any signed-in user passes).
  test('a free user and an anonymous one are refused as on the canonical path, and reach no handler', async () => {
    const before = seen.length;
    for (const tok of [userToken('ag_dots_free'), null]) {
      for (const [canon, variants] of Object.entries(DOTS_AFTER_PLUS)) {
        const want = verdict(await rawGet(ctx, canon, tok));
        assert.ok(want.status === 401 || want.status === 403, JSON.stringify(want));
        for (const v of variants) assert.deepEqual(verdict(await rawGet(ctx, v, tok)), want, v);
      }
    }
    assert.deepEqual(seen.slice(before).map((h) => `${h.handler} ${h.url}`), [], 'no variant reached the app');
  });

  // Seen failing on main: "/api/ai/%2e%2e/chat" reached the ai handler with no
  // X-Subgate-Remaining, and ai_minutes stayed at 0.
  test('the AI handler reached through a dot segment is metered', async () => {
    const tok = userToken('ag_dots_ai');
    const before = seen.length;
    const variants = ['/api/ai/../chat', '/api/AI/%2e%2e/chat', '/api/ai/.%2E', '/api/ai/./chat'];
    for (const [i, v] of variants.entries()) {
      const r = await rawGet(ctx, v, tok);
      assert.equal(r.status, 200, v);
      assert.equal(r.headers['x-subgate-remaining'], String(29 - i), v);
    }
    const hits = seen.slice(before);
    assert.equal(hits.length, variants.length);
    assert.ok(hits.every((h) => h.handler === 'ai' && h.tier === 'free'), JSON.stringify(hits.map((h) => h.handler)));
  });

  test('a dot segment that resolves above a public path stays refused (no rule)', async () => {
    const before = seen.length;
    for (const p of ['/api/ai/../../about', '/api/business-german/%2e%2e/%2e%2e/about']) {
      const r = await rawGet(ctx, p, userToken('ag_dots_free'));
      assert.equal(r.status, 403, p);
      assert.equal(r.headers['x-subgate-reason'], 'no_rule', p);
    }
    assert.deepEqual(seen.slice(before), []);
  });

  test('double encoding, overlong UTF-8 and look-alikes are not decoded into a looser rule', async () => {
    // Express routes none of these to a gated handler other than /api's; the gate holds them to
    // the canonical path's rule or to /api's, and never passes them to a Plus handler.
    const before = seen.length;
    const tok = userToken('ag_enc_free');
    for (const p of ['/api/business-german/%252e%252e/x', '/api/free/%252e%252e/business-german/x',
      '/api/business-german%C0%AE%C0%AE/x', '/api/%C0%AE%C0%AE/business-german/x', '/api/business%E2%80%90german/x',
      '/api/business-german%2F..%2Fx', '/api/business-german/x%00']) {
      const r = await rawGet(ctx, p, tok);
      if (r.status === 200) assert.equal(seen.at(-1).handler, 'api', p);
      else assert.ok(r.status === 403 || r.status === 400, `${p}: ${r.status}`);
    }
    assert.ok(!seen.slice(before).some((h) => h.handler !== 'api'));
  });
});

// The gate endpoint alone: what it reads the path from.
describe('the gate endpoint and X-Original-URI', () => {
  let srv;
  before(async () => { srv = await startServer({}); });
  after(async () => { await stopServer(srv); });

  // A request head sent byte for byte (several X-Original-URI lines, any bytes).
  const gate = (headerLines, method = 'GET') => new Promise((resolve, reject) => {
    const rq = http.request({ host: '127.0.0.1', port: srv.port, method, path: '/api/v1/access/gate' }, (rs) => {
      let text = '';
      rs.on('data', (d) => { text += d; });
      rs.on('end', () => resolve({ status: rs.statusCode, reason: rs.headers['x-subgate-reason'] ?? null, text }));
    });
    rq.on('error', reject);
    for (const [k, v] of Object.entries(headerLines)) rq.setHeader(k, v);
    rq.end();
  });
  const auth = (u) => ({ authorization: `Bearer ${userToken(u)}` });

  test('missing, empty, relative or oversized: 403 bad_path', async () => {
    for (const h of [{}, { 'x-original-uri': '' }, { 'x-original-uri': 'api/ai/chat' },
      { 'x-original-uri': `/api/${'a'.repeat(4000)}` }, { 'x-original-uri': 'http://evil/api/x' }]) {
      const r = await gate({ ...h, ...auth('ag_hdr') });
      assert.equal(r.status, 403, JSON.stringify(h).slice(0, 80));
      assert.equal(r.reason, 'bad_path');
    }
  });

  // Seen failing on main: the first of two X-Original-URI headers decided (200 allowed for
  // "/api/x" then "/api/business-german/x"), so a proxy that appends the header rather than
  // setting it would let the client choose the path the gate judges.
  test('two X-Original-URI headers are refused (400), whichever comes first', async () => {
    for (const pair of [['/api/x', '/api/business-german/x'], ['/api/business-german/x', '/api/x'], ['/api/x', '/api/x']]) {
      const head = `GET /api/v1/access/gate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${userToken('ag_dup')}\r\n`
        + `X-Original-URI: ${pair[0]}\r\nx-original-uri: ${pair[1]}\r\nConnection: close\r\n\r\n`;
      const answer = await new Promise((resolve, reject) => {
        const sock = net.connect(srv.port, '127.0.0.1');
        let text = '';
        sock.setTimeout(5000, () => sock.destroy(new Error('no answer in 5 s')));
        sock.on('data', (d) => { text += d; });
        sock.on('end', () => resolve(text));
        sock.on('error', reject);
        sock.end(head);
      });
      assert.match(answer, /^HTTP\/1\.1 400 /, JSON.stringify(pair));
      assert.doesNotMatch(answer, /"allowed":true/);
    }
  });

  // Seen failing before this fix (with the dots fix in): the refused request below spent one
  // ai_minutes unit (used 1): the resolved form's quota was granted, then the form as written
  // was refused for scenarios, and the first grant was kept.
  test('a path held to two quotas that is refused for one spends nothing of the other', async () => {
    const user = 'ag_two_quotas';
    const consume = await req(srv, 'POST', '/api/v1/access/consume', { token: SERVICE_KEY, body: { user_id: user, quota: 'scenarios', amount: 5 } });
    assert.equal(consume.status, 200);
    for (const p of ['/api/scenarios/start/../../ai/x', '/api/ai/../scenarios/start']) {
      const r = await gate({ 'x-original-uri': p, ...auth(user) });
      assert.equal(r.status, 403, p);
      assert.equal(r.reason, 'quota_exceeded', p);
    }
    const u = await req(srv, 'GET', `/api/v1/access/usage?user_id=${user}`, { token: SERVICE_KEY });
    assert.equal(u.body.quotas.ai_minutes.used, 0, 'nothing spent by a refused request');
    assert.equal(u.body.quotas.scenarios.used, 5);
    // All or nothing in one transaction: no AI minute was ever spent, so the ledger has no
    // entry for one (a grant given back by a refund afterwards left a consume and a refund).
    const l = await req(srv, 'GET', `/api/v1/access/ledger?user_id=${user}&quota=ai_minutes`, { token: SERVICE_KEY });
    assert.equal(l.status, 200, l.text);
    assert.deepEqual(l.body.data.map((e) => e.kind), [], 'no AI minute entries after refusals');
    const ok = await gate({ 'x-original-uri': '/api/ai/../scenarios/x', ...auth(user) });
    assert.equal(ok.status, 200, 'an AI path only: one minute');
    const after = await req(srv, 'GET', `/api/v1/access/usage?user_id=${user}`, { token: SERVICE_KEY });
    assert.equal(after.body.quotas.ai_minutes.used, 1);
  });

  test('the method of the gate request and X-Original-Method do not change the verdict', async () => {
    for (const method of ['GET', 'POST']) {
      for (const m of ['GET', 'DELETE', 'OPTIONS']) {
        const r = await gate({ 'x-original-uri': '/api/custom-ai/run', 'x-original-method': m, ...auth('ag_method') }, method);
        assert.equal(r.status, 403, `${method} ${m}`);
        assert.equal(r.reason, 'not_in_tier');
      }
    }
  });
});

// Quotas at the limit and the amounts a hostile service may send; /metrics under random paths.
describe('quotas at the limit, and /metrics under hostile requests', () => {
  let srv;
  before(async () => { srv = await startServer({}); });
  after(async () => { await stopServer(srv); });
  const A = '/api/v1/access';
  const meter = (kind, user, amount) => req(srv, 'POST', `${A}/${kind}`, { token: SERVICE_KEY, raw: `{"user_id":"${user}","quota":"ai_minutes","amount":${amount}}`, headers: { 'content-type': 'application/json' } });
  const used = async (user) => (await req(srv, 'GET', `${A}/usage?user_id=${user}`, { token: SERVICE_KEY })).body.quotas.ai_minutes.used;

  test('amounts that are not an integer 1..1000000 are refused (400) and record nothing', async () => {
    for (const amount of ['0', '-1', '-0', '1.5', '1.0', '1e0', '"1"', 'true', '[1]', '1000001', '9223372036854775807', '9223372036854775808']) {
      for (const kind of ['consume', 'refund', 'track']) {
        const r = await meter(kind, 'ag_amounts', amount);
        assert.equal(r.status, 400, `${kind} ${amount}: ${r.text}`);
      }
    }
    assert.equal(await used('ag_amounts'), 0);
  });

  test('concurrent consumes and gate requests at the limit: exactly the limit granted', async () => {
    const user = 'ag_race';
    const tok = userToken(user);
    const gate = () => req(srv, 'GET', `${A}/gate`, { token: tok, headers: { 'x-original-uri': '/api/ai/chat' } });
    const all = await Promise.all(Array.from({ length: 48 }, (_, i) => (i % 2 ? meter('consume', user, 1) : gate())));
    const granted = all.filter((r) => r.status === 200).length;
    assert.equal(granted, 30, JSON.stringify(all.map((r) => r.status)));
    assert.ok(all.every((r) => r.status === 200 || r.status === 402 || r.status === 403));
    assert.equal(await used(user), 30);
    // Sizes that cannot all fit: 7 + 7 + 7 + 7 = 28 of 30, never 35.
    const sevens = await Promise.all(Array.from({ length: 12 }, () => meter('consume', 'ag_race7', 7)));
    assert.equal(sevens.filter((r) => r.status === 200).length, 4);
    assert.equal(await used('ag_race7'), 28);
  });

  test('a refund larger than what was used stops at zero, and grants no more than the limit after', async () => {
    const user = 'ag_refund';
    assert.equal((await meter('consume', user, 5)).status, 200);
    const r = await meter('refund', user, 50);
    assert.equal(r.status, 200);
    assert.equal(r.body.used, 0);
    assert.equal(r.body.remaining, 30);
    assert.equal((await meter('consume', user, 31)).status, 402, 'the refund made no room past the limit');
    assert.equal((await meter('consume', user, 30)).status, 200);
  });

  test('random paths, methods and quota names add no /metrics series', async () => {
    const series = async () => (await (await fetch(`${srv.base}/metrics`)).text()).split('\n').filter((l) => l && !l.startsWith('#'))
      .map((l) => l.slice(0, l.lastIndexOf(' ')));
    const before = await series();
    for (let i = 0; i < 20; i++) {
      await (await fetch(`${srv.base}/x${i}/${'%41'.repeat(i)}?q=${i}`)).text();
      await (await fetch(`${srv.base}/api/v1/payments/p${i}`, { method: 'PATCH' })).text();
      await req(srv, 'POST', `${A}/consume`, { token: SERVICE_KEY, body: { user_id: `u${i}`, quota: `quota_${i}`, amount: 1 } });
      await req(srv, 'GET', `${A}/gate`, { headers: { 'x-original-uri': `/api/r${i}` } });
    }
    const afterS = await series();
    assert.deepEqual(afterS, before);
    assert.ok(!afterS.some((l) => /x1|quota_1|\/p1|u1\b|\/api\/r1/.test(l)), 'no request value in a label');
  });
});
