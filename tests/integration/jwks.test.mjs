// jwks.test.mjs: user tokens verified against a JWKS (JWT_JWKS_URL, JWT_JWKS_FILE): selection by
// kid, rotation through the refetch on an unknown kid, its rate limit, and algorithm confusion.
// The identity provider is a node:http server on loopback that counts its fetches.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { errorOf, logged, now, req, run, signJwt, startServer, stopServer, tmpDir } from './lib.mjs';

const ISSUER = 'https://tenant.idp.example/';
const AUDIENCE = 'subgate-api';
const ROUTE = '/api/v1/payments/subscription';

function rsaKey(kid) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, alg: 'RS256', publicKey, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' } };
}

function ecKey(kid) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, alg: 'ES256', publicKey, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig' } };
}

const claims = (sub, extra = {}) => ({ sub, iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + 600, ...extra });

function tokenFor(key, sub = 'jwks_user', { kid = key.kid, extra = {} } = {}) {
  const header = kid === null ? {} : { kid }; // null: no kid
  return signJwt(claims(sub, extra), { alg: key.alg, key: key.privateKey, header });
}

// A JWKS endpoint: serve(keys) changes what it publishes; fetches counts the GETs.
async function startIdp() {
  const idp = { keys: [], fetches: 0 };
  idp.server = http.createServer((rq, rs) => {
    idp.fetches++;
    rs.writeHead(200, { 'content-type': 'application/json' });
    rs.end(JSON.stringify({ keys: idp.keys.map((k) => k.jwk) }));
  });
  await new Promise((r) => idp.server.listen(0, '127.0.0.1', r));
  idp.url = `http://127.0.0.1:${idp.server.address().port}/.well-known/jwks.json`;
  return idp;
}

const stopIdp = (idp) => new Promise((r) => idp.server.close(r));

const jwksEnv = (url, extra = {}) => ({
  JWT_SECRET: undefined, JWT_JWKS_URL: url, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, ...extra,
});

describe('JWT_JWKS_URL', () => {
  let idp;
  let srv;
  const a = rsaKey('key-a');
  const b = rsaKey('key-b');
  const e = ecKey('key-e');

  before(async () => {
    idp = await startIdp();
    idp.keys = [a, e];
    srv = await startServer(jwksEnv(idp.url, { JWT_JWKS_MIN_REFRESH: '1' }));
  });
  after(async () => {
    await stopServer(srv);
    await stopIdp(idp);
  });

  test('a token signed by key A with kid A is accepted', async () => {
    const r = await req(srv, 'GET', ROUTE, { token: tokenFor(a) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });

  test('an ES256 key works', async () => {
    const r = await req(srv, 'GET', ROUTE, { token: tokenFor(e) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });

  test('claims are checked as for a PEM key', async () => {
    const wrongIss = signJwt(claims('u', { iss: 'https://evil.example/' }), { alg: 'RS256', key: a.privateKey, header: { kid: 'key-a' } });
    const r = await req(srv, 'GET', ROUTE, { token: wrongIss });
    assert.equal(r.status, 401);
    assert.match(errorOf(r).message, /issuer/);
    const expired = tokenFor(a, 'u', { extra: { exp: now() - 3600 } });
    assert.equal((await req(srv, 'GET', ROUTE, { token: expired })).status, 401);
  });

  test('a key of the set signing under another kid is refused', async () => {
    const r = await req(srv, 'GET', ROUTE, { token: tokenFor(a, 'u', { kid: 'key-e' }) });
    assert.equal(r.status, 401);
    assert.match(errorOf(r).message, /algorithm/);
    const noKid = await req(srv, 'GET', ROUTE, { token: tokenFor(a, 'u', { kid: null }) });
    assert.equal(noKid.status, 401);
  });

  test('alg confusion: HS256 keyed with the public key or its n is refused', async () => {
    const pem = a.publicKey.export({ type: 'spki', format: 'pem' });
    for (const key of [pem, Buffer.from(a.jwk.n, 'base64url'), a.jwk.n]) {
      const t = signJwt(claims('u'), { alg: 'HS256', key, header: { kid: 'key-a' } });
      const r = await req(srv, 'GET', ROUTE, { token: t });
      assert.equal(r.status, 401);
      assert.match(errorOf(r).message, /algorithm/);
    }
    const none = await req(srv, 'GET', ROUTE, { token: signJwt(claims('u'), { alg: 'none', header: { kid: 'key-a' } }) });
    assert.equal(none.status, 401);
  });

  test('an unknown kid is refused', async () => {
    const stranger = rsaKey('key-x');
    const r = await req(srv, 'GET', ROUTE, { token: tokenFor(stranger) });
    assert.equal(r.status, 401);
    assert.match(errorOf(r).message, /unknown key id/);
  });

  test('rotation: key B is accepted once the provider publishes it', async () => {
    await new Promise((r) => setTimeout(r, 1100)); // past JWT_JWKS_MIN_REFRESH
    idp.keys = [b, e];
    const before = idp.fetches;
    const r = await req(srv, 'GET', ROUTE, { token: tokenFor(b) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(idp.fetches, before + 1, 'one fetch for the unknown kid');
    const old = await req(srv, 'GET', ROUTE, { token: tokenFor(a) });
    assert.equal(old.status, 401, 'a withdrawn key is refused, cached token or not');
  });

  test('random unknown kids cause a bounded number of fetches', async () => {
    await new Promise((r) => setTimeout(r, 1100));
    const before = idp.fetches;
    const started = Date.now();
    const tokens = Array.from({ length: 60 }, () => tokenFor(b, 'u', { kid: crypto.randomUUID() }));
    const answers = await Promise.all(tokens.map((token) => req(srv, 'GET', ROUTE, { token })));
    for (const r of answers) assert.equal(r.status, 401);
    const seconds = (Date.now() - started) / 1000;
    assert.ok(idp.fetches - before <= Math.ceil(seconds) + 2, `${idp.fetches - before} fetches in ${seconds} s`);
    assert.equal((await req(srv, 'GET', ROUTE, { token: tokenFor(b) })).status, 200);
  });
});

describe('JWT_JWKS_URL at start-up', () => {
  test('an unreachable provider: serve, refuse tokens, accept them once it answers', async () => {
    const idp = await startIdp();
    const a = rsaKey('key-a');
    const { url } = idp;
    await stopIdp(idp);
    const srv = await startServer(jwksEnv(url, { JWT_JWKS_MIN_REFRESH: '1' }));
    let later;
    try {
      const r = await req(srv, 'GET', ROUTE, { token: tokenFor(a) });
      assert.equal(r.status, 401);
      assert.ok(await logged(srv, /cannot fetch JWKS/), srv.log);
      later = http.createServer((rq, rs) => {
        rs.writeHead(200, { 'content-type': 'application/json' });
        rs.end(JSON.stringify({ keys: [a.jwk] }));
      });
      await new Promise((res) => later.listen(Number(new URL(url).port), '127.0.0.1', res));
      let status = 0;
      for (let i = 0; i < 40 && status !== 200; i++) {
        await new Promise((res) => setTimeout(res, 100));
        status = (await req(srv, 'GET', ROUTE, { token: tokenFor(a) })).status;
      }
      assert.equal(status, 200);
    } finally {
      await stopServer(srv);
      if (later) await new Promise((r) => later.close(r));
    }
  });
});

describe('JWT_JWKS_FILE', () => {
  test('keys from a file verify tokens; a kid-less single key serves kid-less tokens', async () => {
    const dir = tmpDir();
    const a = rsaKey('file-a');
    const e = ecKey('file-e');
    const file = path.join(dir, 'jwks.json');
    fs.writeFileSync(file, JSON.stringify({ keys: [a.jwk, e.jwk, { kty: 'oct', k: 'c2VjcmV0', kid: 'file-a' }] }));
    const srv = await startServer({ JWT_SECRET: undefined, JWT_JWKS_FILE: file, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE });
    try {
      assert.equal((await req(srv, 'GET', ROUTE, { token: tokenFor(a) })).status, 200);
      assert.equal((await req(srv, 'GET', ROUTE, { token: tokenFor(e) })).status, 200);
      assert.equal((await req(srv, 'GET', ROUTE, { token: tokenFor(rsaKey('other')) })).status, 401);
    } finally { await stopServer(srv); }

    const single = path.join(dir, 'single.json');
    const { kid, ...bare } = a.jwk;
    assert.ok(kid);
    fs.writeFileSync(single, JSON.stringify({ keys: [bare] }));
    const srv2 = await startServer({ JWT_SECRET: undefined, JWT_JWKS_FILE: single, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE });
    try {
      assert.equal((await req(srv2, 'GET', ROUTE, { token: tokenFor(a, 'u', { kid: null }) })).status, 200);
      assert.equal((await req(srv2, 'GET', ROUTE, { token: tokenFor(a) })).status, 401);
    } finally { await stopServer(srv2); }
  });
});

describe('JWKS configuration errors stop start-up with one line', () => {
  const cases = [
    ['JWT_SECRET and JWT_JWKS_URL', { JWT_JWKS_URL: 'https://idp.example/.well-known/jwks.json' },
      /^subgate: set one of JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_URL and JWT_JWKS_FILE, not both JWT_SECRET and JWT_JWKS_URL$/],
    ['plain http to a remote host', { JWT_SECRET: undefined, JWT_JWKS_URL: 'http://idp.example/jwks.json' }, /^subgate: JWT_JWKS_URL: must be an https:\/\/ URL/],
    ['not a URL', { JWT_SECRET: undefined, JWT_JWKS_URL: 'idp.example/jwks.json' }, /^subgate: JWT_JWKS_URL: /],
    ['a missing JWKS file', { JWT_SECRET: undefined, JWT_JWKS_FILE: '/nonexistent/jwks.json' }, /^subgate: JWT_JWKS_FILE: /],
    ['a bad JWT_JWKS_MIN_REFRESH', { JWT_SECRET: undefined, JWT_JWKS_URL: 'https://idp.example/jwks.json', JWT_JWKS_MIN_REFRESH: '0' }, /^subgate: JWT_JWKS_MIN_REFRESH: /],
  ];
  for (const [name, env, want] of cases) {
    test(name, () => {
      const r = run(['serve'], { env: { JWT_SECRET: 'integration-secret-0123456789-abcdefghij', ...env, LISTEN: '127.0.0.1:1' } });
      assert.notEqual(r.status, 0);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], want);
    });
  }

  test('a JWKS file with no usable key', () => {
    const file = path.join(tmpDir(), 'jwks.json');
    fs.writeFileSync(file, JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }));
    const r = run(['serve'], { env: { JWT_JWKS_FILE: file, LISTEN: '127.0.0.1:1' } });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr.trim(), /^subgate: JWT_JWKS_FILE: cannot use JWKS file '.*': JWKS has no usable key/);
  });

  test('check-config shows the JWKS variables', () => {
    const r = run(['check-config'], { env: { JWT_JWKS_URL: 'https://idp.example/.well-known/jwks.json', JWT_JWKS_MIN_REFRESH: '5' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^JWT_JWKS_URL=https:\/\/idp\.example\/\.well-known\/jwks\.json {2}# env$/m);
    assert.match(r.stdout, /^JWT_JWKS_FILE=\(unset\)/m);
    assert.match(r.stdout, /^JWT_JWKS_MIN_REFRESH=5 {2}# env$/m);
    assert.match(r.stdout, /^JWT_JWKS_REFRESH=600 {2}# default$/m);
  });
});
