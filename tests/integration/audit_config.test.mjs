// audit_config.test.mjs: a black-box audit of the command line, the configuration's bad values
// and hostile user tokens against a JWKS (README "Commands", "Configuration", "Hosted identity
// providers (JWKS)"): a command that takes no arguments refuses one (exit 2) instead of
// ignoring it; each bad value names its variable in one line without printing a secret; every
// hostile token is a 401 with the Stripe-shaped error; a JWKS endpoint that answers garbage, too
// much or a redirect leaves the keys there were.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { BIN, SECRET, errorOf, freePort, now, req, run, signJwt, startServer, stopServer, tmpDir } from './lib.mjs';

describe('a command that takes no arguments refuses one', () => {
  // Defect: serve, migrate, check-config and version ignored their arguments, so
  // `subgate serve --port 9000` served on LISTEN (8080) and exited 0 only when stopped. Seen on
  // the previous binary: serve --bogus was still serving when the 5 s timeout killed it, and
  // version/migrate/check-config with an argument exited 0.
  for (const cmd of ['serve', 'migrate', 'check-config', 'version']) {
    test(`${cmd} --bogus: exit 2 naming the argument and '${cmd} --help'`, async () => {
      const dir = tmpDir();
      const env = {
        PATH: process.env.PATH, JWT_SECRET: SECRET, LISTEN: `127.0.0.1:${await freePort()}`,
        DATABASE_URL: `sqlite:${path.join(dir, 'x.db')}`,
      };
      const r = spawnSync(BIN, [cmd, '--bogus'], { cwd: dir, env, encoding: 'utf8', timeout: 5000 });
      assert.equal(r.error, undefined, `${cmd} ran on instead of refusing: ${r.stderr}`);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, `subgate: ${cmd}: unexpected argument '--bogus' (see 'subgate ${cmd} --help')\n`);
    });
  }
  test('token: a wrong number of arguments or a bad TTL_S is a usage error (2), as for the other commands', () => {
    for (const args of [['token'], ['token', 'u', 'e@x', '60', 'extra'], ['token', 'u', 'e@x', '0'], ['token', 'u', 'e@x', 'abc']]) {
      const r = run(args, { env: { JWT_SECRET: SECRET } });
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^subgate: (usage: subgate token|token: TTL_S)/);
    }
  });
  test('the commands with arguments still refuse bad ones with 2 and their usage', () => {
    for (const args of [['outbox', '--limit', '0'], ['outbox', '--bogus'], ['events', '--limit', 'x'], ['sync', '--bogus'], ['user']]) {
      const r = run(args, { env: { JWT_SECRET: SECRET, DATABASE_URL: 'sqlite:x.db' } });
      assert.equal(r.status, 2, args.join(' '));
      assert.match(r.stderr, /usage: subgate /, args.join(' '));
    }
  });
});

describe('bad configuration values: one line naming the variable, exit non-zero, no secret', () => {
  const SHORT = 'short_app_secret';
  const cases = [
    ['APP_WEBHOOK_RETRY_BASE_MS', '0', /must be an integer 1-3600000, got '0'/],
    ['APP_WEBHOOK_RETRY_BASE_MS', '3600001', /must be an integer 1-3600000/],
    ['APP_WEBHOOK_RETRY_BASE_MS', '1e3', /must be an integer/],
    ['JWT_JWKS_REFRESH', '-5', /must be an integer 1-86400, got '-5'/],
    ['JWT_JWKS_MIN_REFRESH', 'abc', /must be an integer 1-3600, got 'abc'/],
    ['ENTITLEMENT_TOKEN_TTL', '29', /must be an integer 30-86400/],
    ['ENTITLEMENT_CACHE_TTL_MS', '99999999999999999999', /must be an integer/],
    ['MAX_BODY_BYTES', ' 65536', /must be an integer/],
    ['QUOTA_THRESHOLDS', '80,101', /percentage 1-100, got '101'/],
    ['QUOTA_THRESHOLDS', '1,2,3,4,5,6,7,8,9', /at most 8 entries/],
    ['LOG_LEVEL', 'verbose', /must be debug, info, warn or error/],
    ['GATE_PATH_PARAMS', 'keep', /must be 'refuse' or 'strip', got 'keep'/],
    ['STORE_GROUP_COMMIT', 'yes', /must be 'off' or 'on'/],
    ['ENTITLEMENT_CACHE_LISTEN', '1', /must be 'false' or 'true'/],
    ['APP_WEBHOOK_URL', 'http://app.example/hooks', /https:\/\/ URL \(http:\/\/ only for a loopback host\)/],
    ['APP_WEBHOOK_URL', 'http://127.0.0.1.evil.example/hooks', /https:\/\/ URL/],
    ['APP_WEBHOOK_SECRETS', `0123456789abcdefXYZ,${SHORT.slice(0, 10)}`, /each secret must be at least 16 bytes/],
    ['APP_WEBHOOK_SECRETS', '0123456789abcdefXYZ,,0123456789abcdefXYZ', /empty entry in the list/],
  ];
  for (const [name, value, want] of cases) {
    test(`${name}='${value.length > 40 ? `${value.slice(0, 40)}…` : value}'`, () => {
      const env = { JWT_SECRET: SECRET, DATABASE_URL: 'sqlite:x.db', [name]: value };
      if (name.startsWith('APP_WEBHOOK') && !env.APP_WEBHOOK_URL) env.APP_WEBHOOK_URL = 'http://127.0.0.1:9/hooks';
      if (name.startsWith('APP_WEBHOOK') && !env.APP_WEBHOOK_SECRETS) env.APP_WEBHOOK_SECRETS = '0123456789abcdefXYZ';
      for (const cmd of ['check-config', 'serve']) {
        const r = run([cmd], { env });
        assert.equal(r.status, 1, `${cmd}: ${r.stderr}`);
        const lines = r.stderr.trim().split('\n');
        assert.equal(lines.length, 1, r.stderr);
        assert.ok(lines[0].startsWith(`subgate: ${name}: `), lines[0]);
        assert.match(lines[0], want);
        assert.ok(!r.stderr.includes('0123456789abcdefXYZ') && !r.stderr.includes(SECRET), 'a secret printed');
      }
    });
  }
});

describe('a .env line without =', () => {
  // Defect: the message quoted the line's first word, so a secret pasted on a line of its own
  // (a key wrapped after STRIPE_SECRET_KEY=) was printed on stderr, which a service manager
  // logs. Seen on the previous binary: "cannot parse '.env' line 2: missing '=' after
  // 'sk_live_51Hx0123456789abcdefSECRET'".
  test('names the file and line and does not print the word', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, '.env'), 'STRIPE_SECRET_KEY=\nsk_live_51Hx0123456789abcdefSECRET\n');
    for (const cmd of ['check-config', 'serve']) {
      const r = run([cmd], { env: { JWT_SECRET: SECRET }, cwd: dir });
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.stderr, "subgate: cannot parse '.env' line 2: missing '=' after the key (not shown: it may be a pasted value)\n");
    }
  });
});

describe('check-config and the database password', () => {
  // Defect: check-config printed DATABASE_URL as given, so `subgate check-config` (run to show a
  // colleague the configuration) printed the PostgreSQL password, though it prints every other
  // secret redacted and the database's own error messages leave the password out. Seen on the
  // previous binary: DATABASE_URL=postgres://subgate:pw_0f3c9a7e@127.0.0.1:1/subgate.
  const cases = [
    ['postgres://subgate:pw_0f3c9a7e@127.0.0.1:1/subgate', 'postgres://subgate:(redacted)@127.0.0.1:1/subgate'],
    ['postgresql://subgate@db.internal:5432/subgate?password=pw_0f3c9a7e&sslmode=require', 'postgresql://subgate@db.internal:5432/subgate?(redacted)'],
    ['postgres://db.internal:5432/subgate', 'postgres://db.internal:5432/subgate'],
    ['sqlite:var/x.db', 'sqlite:var/x.db'],
  ];
  for (const [url, shown] of cases) {
    test(`DATABASE_URL=${url} is shown as ${shown}`, () => {
      const r = run(['check-config'], { env: { JWT_SECRET: SECRET, DATABASE_URL: url } });
      assert.equal(r.status, 0, r.stderr);
      assert.ok(!r.stdout.includes('pw_0f3c9a7e'), 'the password printed');
      assert.match(r.stdout, new RegExp(`^DATABASE_URL=${shown.replace(/[.?()]/g, '\\$&')} {2}# env$`, 'm'));
    });
  }
});

// A JWKS endpoint whose answer is idp.mode's.
async function startIdp(jwk) {
  const idp = { mode: 'ok', fetches: 0 };
  idp.server = http.createServer((q, s) => {
    idp.fetches++;
    if (idp.mode === 'garbage') { s.writeHead(200, { 'content-type': 'text/html' }); s.end('<html>maintenance</html>'); return; }
    if (idp.mode === 'huge') { s.writeHead(200); s.end(JSON.stringify({ keys: [jwk], pad: 'x'.repeat(300 * 1024) })); return; }
    if (idp.mode === 'redirect') { s.writeHead(302, { location: `${idp.url}?moved` }); s.end(); return; }
    if (idp.mode === 'empty') { s.writeHead(200); s.end('{"keys":[]}'); return; }
    if (idp.mode === 'error') { s.writeHead(500); s.end('{"keys":[]}'); return; }
    s.writeHead(200, { 'content-type': 'application/json' });
    s.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise((r) => idp.server.listen(0, '127.0.0.1', r));
  idp.url = `http://127.0.0.1:${idp.server.address().port}/jwks.json`;
  return idp;
}

describe('hostile user tokens against a JWKS', () => {
  const ROUTE = '/api/v1/payments/subscription';
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'sig', alg: 'RS256' };
  const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
  const claims = (extra = {}) => ({ sub: 'u_hostile', iss: 'https://idp.example/', aud: 'api', exp: now() + 600, ...extra });
  const rs = (c = claims(), header = {}) => signJwt(c, { alg: 'RS256', key: privateKey, header: { kid: 'k1', ...header } });
  let idp;
  let srv;

  before(async () => {
    idp = await startIdp(jwk);
    srv = await startServer({
      JWT_SECRET: undefined, JWT_JWKS_URL: idp.url, JWT_ISSUER: 'https://idp.example/', JWT_AUDIENCE: 'api', JWT_JWKS_MIN_REFRESH: '1',
    });
  });
  after(async () => {
    await stopServer(srv);
    idp.server.closeAllConnections();
    await new Promise((r) => idp.server.close(r));
  });

  const cases = [
    ['alg none', () => signJwt(claims(), { alg: 'none', header: { kid: 'k1' } }), /algorithm not allowed/],
    ['alg "None"', () => `${b64({ alg: 'None', kid: 'k1' })}.${b64(claims())}.`, /algorithm not allowed/],
    ['HS256 keyed with the public key PEM', () => signJwt(claims(), { alg: 'HS256', key: publicKey.export({ type: 'spki', format: 'pem' }), header: { kid: 'k1' } }), /algorithm not allowed/],
    ['ES256 named on the RSA key', () => `${b64({ alg: 'ES256', kid: 'k1' })}.${b64(claims())}.${'A'.repeat(86)}`, /algorithm not allowed/],
    ['a kid the set does not have', () => rs(claims(), { kid: 'nope' }), /unknown key id/],
    ['no kid', () => rs(claims(), { kid: undefined }), /unknown key id/],
    ['expired', () => rs(claims({ exp: now() - 3600 })), /expired/],
    ['nbf an hour ahead', () => rs(claims({ nbf: now() + 3600 })), /not yet valid/],
    ['no exp', () => rs(claims({ exp: undefined })), /missing exp/],
    ['exp a string', () => rs(claims({ exp: String(now() + 600) })), /invalid time claim/],
    ['wrong iss', () => rs(claims({ iss: 'https://evil.example/' })), /issuer/],
    ['wrong aud', () => rs(claims({ aud: ['other'] })), /audience/],
    ['no sub', () => rs(claims({ sub: undefined })), /sub/],
    ['a crit header', () => rs(claims(), { crit: ['exp'] }), /critical/],
    ['a duplicate sub', () => {
      const h = b64({ alg: 'RS256', kid: 'k1' });
      const p = b64(`{"sub":"u_hostile","iss":"https://idp.example/","aud":"api","exp":${now() + 600},"sub":"admin"}`);
      return `${h}.${p}.${crypto.sign('sha256', Buffer.from(`${h}.${p}`), privateKey).toString('base64url')}`;
    }, /malformed/],
    ['bad base64', () => 'a$b.c.d', /malformed/],
    ['four parts', () => `${rs()}.x`, /malformed/],
    ['a header that is not JSON', () => `${b64('nope')}.${b64(claims())}.AAAA`, /malformed/],
    ['a 5000-byte kid', () => rs(claims(), { kid: 'z'.repeat(5000) }), /malformed|unknown key id/],
  ];
  for (const [name, make, want] of cases) {
    test(`${name}: 401 invalid_token with a Stripe-shaped error`, async () => {
      const r = await req(srv, 'GET', ROUTE, { token: make() });
      assert.equal(r.status, 401, JSON.stringify(r.body));
      const e = errorOf(r);
      assert.deepEqual([e.type, e.code], ['authentication_error', 'invalid_token']);
      assert.match(e.message, want);
      assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="subgate", error="invalid_token"');
    });
  }

  test('a good token passes (the cases above fail for their own reason)', async () => {
    assert.equal((await req(srv, 'GET', ROUTE, { token: rs() })).status, 200);
  });

  for (const mode of ['garbage', 'huge', 'redirect', 'empty', 'error']) {
    test(`a JWKS refetch answering ${mode} keeps the keys there were`, async () => {
      await new Promise((r) => setTimeout(r, 1100)); // past JWT_JWKS_MIN_REFRESH
      idp.mode = mode;
      const before = idp.fetches;
      const r = await req(srv, 'GET', ROUTE, { token: rs(claims(), { kid: `rotated-${mode}` }) });
      assert.equal(r.status, 401);
      assert.match(errorOf(r).message, /unknown key id/);
      assert.equal(idp.fetches, before + 1, 'one fetch, the redirect not followed');
      idp.mode = 'ok';
      assert.equal((await req(srv, 'GET', ROUTE, { token: rs() })).status, 200, 'the old key still serves');
    });
  }
});

describe('JWT_JWKS_REFRESH', () => {
  test('the periodic fetch takes up a rotation with no unknown kid to trigger it', async () => {
    const pair = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const a = pair();
    const b = pair();
    const jwkOf = (k, kid) => ({ ...k.publicKey.export({ format: 'jwk' }), kid, use: 'sig' });
    let published = [jwkOf(a, 'a')];
    const idp = http.createServer((q, s) => { s.writeHead(200); s.end(JSON.stringify({ keys: published })); });
    await new Promise((r) => idp.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${idp.address().port}/jwks.json`;
    // A minimum of an hour between unknown-kid fetches: only the periodic fetch can bring key b.
    const srv = await startServer({ JWT_SECRET: undefined, JWT_JWKS_URL: url, JWT_JWKS_REFRESH: '1', JWT_JWKS_MIN_REFRESH: '3600' });
    const token = (k, kid) => signJwt({ sub: 'u_rot', exp: now() + 600 }, { alg: 'ES256', key: k.privateKey, header: { kid } });
    const status = async (t) => (await req(srv, 'GET', '/api/v1/payments/subscription', { token: t })).status;
    try {
      assert.equal(await status(token(a, 'a')), 200);
      assert.equal(await status(token(b, 'b')), 401, 'b is not published yet');
      published = [jwkOf(b, 'b')];
      let ok = false;
      for (let i = 0; i < 60 && !ok; i++) {
        await new Promise((r) => setTimeout(r, 100));
        ok = (await status(token(b, 'b'))) === 200;
      }
      assert.ok(ok, `key b never taken up: ${srv.log.slice(-1000)}`);
      assert.equal(await status(token(a, 'a')), 401, 'a withdrawn key is refused after the refresh');
    } finally {
      await stopServer(srv);
      idp.closeAllConnections();
      await new Promise((r) => idp.close(r));
    }
  });
});
