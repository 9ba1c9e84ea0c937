// cli.test.mjs: a command line that behaves (#16 item 4): --help, -h, help COMMAND,
// COMMAND --help and unknown commands; WWW-Authenticate on every 401; the request log line's
// level and error code, and the path of an unknown route (escaped, bounded, never a token).
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { freePort, logged, now, req, run, SERVICE_KEY, signJwt, startServer, stopServer, userToken } from './lib.mjs';

const COMMANDS = ['serve', 'migrate', 'sync', 'events', 'outbox', 'user', 'check-config', 'token', 'version', 'help'];

describe('subgate --help, -h, help COMMAND', () => {
  for (const flag of ['--help', '-h', 'help']) {
    test(`subgate ${flag}: every command with one line, on stdout, exit 0`, () => {
      const r = run([flag]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, /^usage: subgate COMMAND/);
      for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${c} +\\S.*$`, 'm'), c);
      const listed = [...r.stdout.matchAll(/^ {2}([a-z-]+) {2,}/gm)].map((m) => m[1]);
      assert.deepEqual([...listed].sort(), [...COMMANDS].sort());
    });
  }
  for (const c of COMMANDS) {
    test(`subgate help ${c} and subgate ${c} --help print its help, exit 0`, () => {
      const r = run(['help', c]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, new RegExp(`^usage: subgate ${c}\\b`));
      if (!['version', 'help', 'check-config'].includes(c)) assert.match(r.stdout, /^environment/m);
      if (c !== 'version') assert.match(r.stdout, /^examples?:\n {2}\S/m);
      for (const flag of ['--help', '-h']) {
        const again = run([c, flag]);
        assert.equal(again.status, 0, again.stderr);
        assert.equal(again.stdout, r.stdout, `${c} ${flag}`);
      }
    });
  }
  test('help of an unknown command, and an unknown command: exit 2 naming subgate --help', () => {
    for (const args of [['help', 'nosuch'], ['nosuch'], ['--nosuch'], ['help', 'sync', 'extra']]) {
      const r = run(args);
      assert.equal(r.status, 2, args.join(' '));
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^subgate: .*'subgate --help'/, args.join(' '));
    }
  });
  test('token --help prints help instead of minting a token for "--help"', () => {
    const r = run(['token', '--help'], { env: { JWT_SECRET: 'x'.repeat(40) } });
    assert.equal(r.status, 0);
    assert.doesNotMatch(r.stdout, /^eyJ/m);
  });
});

// Sends a raw GET (the target as given, no URL normalisation); resolves to the answer's head.
function rawGet(port, target, headers = '') {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let data = '';
    s.on('connect', () => s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n${headers}Connection: close\r\n\r\n`));
    s.on('data', (d) => { data += d; });
    s.on('close', () => resolve(data));
    s.on('error', reject);
  });
}

// The log line of the request whose answer carried Request-Id id, parsed.
async function lineOf(srv, id) {
  assert.ok(await logged(srv, new RegExp(`"request_id":"${id}"`)), `no log line for ${id}`);
  return JSON.parse(srv.log.split('\n').find((l) => l.includes(`"request_id":"${id}"`)));
}

describe('401 answers and log lines', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await stopServer(srv); });

  const REALM = 'Bearer realm="subgate"';
  const INVALID = 'Bearer realm="subgate", error="invalid_token"';
  const cases = [
    ['a user route without a token', '/api/v1/payments/subscription', undefined, REALM, 'missing_credentials'],
    ['a user route with a bad token', '/api/v1/payments/subscription', 'not.a.jwt', INVALID, 'invalid_token'],
    ['a user route with an expired token', '/api/v1/payments/subscription', userToken('u', { exp: now() - 3600 }), INVALID, 'invalid_token'],
    ['a user route with a token signed by another key', '/api/v1/payments/usage', signJwt({ sub: 'u', exp: now() + 600 }, { key: 'k'.repeat(40) }), INVALID, 'invalid_token'],
    ['a service route without a key', '/api/v1/access/grants?user_id=u', undefined, REALM, 'missing_credentials'],
    ['a service route with a wrong key', '/api/v1/access/grants?user_id=u', 'svc_wrong_key_0123456789', INVALID, 'invalid_credentials'],
    ['a user or service route without either', '/api/v1/access/usage?user_id=u', undefined, REALM, 'missing_credentials'],
  ];
  for (const [name, p, token, want, code] of cases) {
    test(`${name}: 401 with ${want}, logged at warn with code ${code}`, async () => {
      const r = await req(srv, 'GET', p, { token });
      assert.equal(r.status, 401);
      assert.equal(r.headers.get('www-authenticate'), want);
      assert.equal(r.body.error.code, code);
      const line = await lineOf(srv, r.headers.get('request-id'));
      assert.equal(line.level, 'warn');
      assert.equal(line.code, code);
      assert.equal(line.status, 401);
      if (token) assert.ok(!srv.log.includes(token), 'the token reached the log');
    });
  }
  test('another scheme than Bearer: 401 without an error code in the challenge', async () => {
    const r = await req(srv, 'GET', '/api/v1/payments/subscription', { headers: { authorization: 'Basic dTpw' } });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), REALM);
  });
  test('the gate: 401 without a token carries the same challenge', async () => {
    const r = await req(srv, 'GET', '/api/v1/access/gate', { headers: { 'x-original-uri': '/api/ai/chat' } });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), REALM);
    const bad = await req(srv, 'GET', '/api/v1/access/gate', { token: 'bad', headers: { 'x-original-uri': '/api/ai/chat' } });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers.get('www-authenticate'), INVALID);
  });
  test('a valid service key and a valid token: no challenge', async () => {
    const s = await req(srv, 'GET', '/api/v1/access/grants?user_id=u', { token: SERVICE_KEY });
    assert.equal(s.status, 200);
    assert.equal(s.headers.get('www-authenticate'), null);
    const u = await req(srv, 'GET', '/api/v1/payments/subscription', { token: userToken('u') });
    assert.equal(u.status, 200);
    assert.equal(u.headers.get('www-authenticate'), null);
    const line = await lineOf(srv, u.headers.get('request-id'));
    assert.equal(line.level, 'info');
    assert.equal(line.code, undefined);
    assert.equal(line.path, undefined);
  });
});

describe('error log lines: level, code, and the path of an unknown route', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await stopServer(srv); });

  test('a 400 is logged at warn with the answer\'s code', async () => {
    const r = await req(srv, 'POST', '/api/v1/access/consume', { token: SERVICE_KEY, raw: '{"user_id":', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 400);
    const line = await lineOf(srv, r.headers.get('request-id'));
    assert.equal(line.level, 'warn');
    assert.equal(line.code, r.body.error.code);
    assert.equal(line.code, 'json_invalid');
    assert.equal(line.path, undefined, 'a matched route logs its template, not the path');
  });
  test('a 5xx is logged at error with the answer\'s code', async () => {
    const r = await req(srv, 'POST', '/api/v1/payments/webhook', { raw: '{}', headers: { 'stripe-signature': 't=1,v1=00' } });
    assert.equal(r.status, 503);
    const line = await lineOf(srv, r.headers.get('request-id'));
    assert.equal(line.level, 'error');
    assert.equal(line.code, r.body.error.code);
    assert.equal(line.code, 'webhooks_not_configured');
  });
  test('stripe out of reach: the request line and the failure line are at error, with the code', async () => {
    const port = await freePort(); // nothing listens there
    const down = await startServer({
      STRIPE_SECRET_KEY: 'sk_test_unreachable', STRIPE_API_BASE: `http://127.0.0.1:${port}`,
      STRIPE_PREMIUM_PRICE_ID: 'price_premium', STRIPE_PLUS_PRICE_ID: 'price_plus',
    });
    try {
      const r = await req(down, 'POST', '/api/v1/payments/create-checkout-session', {
        token: userToken('stripe_down'),
        body: { tier: 'premium', success_url: 'http://localhost:3000/ok', cancel_url: 'http://localhost:3000/no' },
      });
      assert.ok(r.status >= 500, `status ${r.status}`);
      const line = await lineOf(down, r.headers.get('request-id'));
      assert.equal(line.level, 'error');
      assert.equal(line.code, r.body.error.code);
      assert.ok(await logged(down, new RegExp(`"level":"error","msg":"stripe: cannot [^"]*request ${r.headers.get('request-id')}[^"]*answered '${r.body.error.code}'`)), down.log);
      assert.ok(!down.log.includes('sk_test_unreachable'));
    } finally {
      await stopServer(down);
    }
  });
  test('an unknown route logs its path, without the query string, at warn with resource_missing', async () => {
    const r = await req(srv, 'GET', '/api/v1/no/such/route?access_token=qs_secret_value');
    assert.equal(r.status, 404);
    const line = await lineOf(srv, r.headers.get('request-id'));
    assert.equal(line.level, 'warn');
    assert.equal(line.code, 'resource_missing');
    assert.equal(line.route, null);
    assert.equal(line.path, '/api/v1/no/such/route');
    assert.ok(!srv.log.includes('qs_secret_value'));
  });
  test('control bytes in the path are escaped', async () => {
    const head = await rawGet(srv.port, '/nosuch/%01ab%1b[31m%0aline');
    assert.match(head, /^HTTP\/1\.1 404/);
    const id = head.match(/^Request-Id: (\S+)/mi)[1];
    const text = srv.log.split('\n').find((l) => l.includes(id)) ?? (await lineOf(srv, id), srv.log.split('\n').find((l) => l.includes(id)));
    assert.ok(text.includes('"path":"/nosuch/\\u0001ab\\u001b[31m\\u000aline"'), text);
    assert.ok(!/[\x00-\x1f]/.test(text), 'a raw control byte in the line');
  });
  test('a long path is cut at 200 bytes', async () => {
    const p = `/${'a'.repeat(150)}/${'b'.repeat(400)}`;
    const r = await req(srv, 'GET', p);
    assert.equal(r.status, 404);
    const line = await lineOf(srv, r.headers.get('request-id'));
    assert.equal(line.path, `${p.slice(0, 200)}...`);
  });
  test('a token pasted into the path is not logged', async () => {
    const tok = userToken('path_user');
    for (const p of [`/api/v1/payments/${tok}`, `/x/${SERVICE_KEY}/y`]) {
      const r = await req(srv, 'GET', p);
      assert.equal(r.status, 404);
      const line = await lineOf(srv, r.headers.get('request-id'));
      assert.match(line.path, /\[redacted\]/);
      assert.ok(!srv.log.includes(tok.split('.')[1]), 'the token reached the log');
      assert.ok(!srv.log.includes(SERVICE_KEY), 'the key reached the log');
    }
  });
});
