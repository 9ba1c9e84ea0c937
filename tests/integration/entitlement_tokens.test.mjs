// entitlement_tokens.test.mjs: signed entitlement tokens (issue #15 item 5): the JWKS at
// /.well-known/jwks.json, tokens for a user and for a service, checked with Node's crypto alone
// and with the JS client; refused after expiry and under another key; a previous key listed in
// ENTITLEMENT_TOKEN_PUBLIC_KEYS still verifies after a rotation; claims match GET /access/usage.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Subgate, SubgateError, verifyEntitlementToken } from '../../clients/js/subgate.js';
import { PLUS_PRICE, WEBHOOK_SECRET, subscribe } from './access_lib.mjs';
import { SERVICE_KEY, errorOf, req, run, startServer, stopServer, tmpDir, userToken } from './lib.mjs';

const A = '/api/v1/access';
const ENV = { STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_PLUS_PRICE_ID: PLUS_PRICE };
const dir = tmpDir();

// Writes a new key pair's PEMs: { priv, pub } paths and the public KeyObject.
function keyFiles(name, type) {
  const { privateKey, publicKey } = type === 'ec'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('ed25519');
  const priv = path.join(dir, `${name}.key.pem`);
  const pub = path.join(dir, `${name}.pub.pem`);
  fs.writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  fs.writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { priv, pub, publicKey };
}

// RFC 7638: SHA-256 of the required members in lexical order.
function thumbprint(publicKey) {
  const j = publicKey.export({ format: 'jwk' });
  const members = j.kty === 'EC' ? { crv: j.crv, kty: j.kty, x: j.x, y: j.y } : { crv: j.crv, kty: j.kty, x: j.x };
  return crypto.createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

const parts = (token) => {
  const [h, p, s] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), claims: JSON.parse(Buffer.from(p, 'base64url')), input: `${h}.${p}`, sig: Buffer.from(s, 'base64url') };
};

// Node's crypto, independently of the client: the JWK of the header's kid verifies the signature.
function nodeVerify(token, jwks) {
  const t = parts(token);
  const jwk = jwks.keys.find((k) => k.kid === t.header.kid);
  assert.ok(jwk, `kid ${t.header.kid} in the JWKS`);
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const ok = t.header.alg === 'ES256'
    ? crypto.verify('sha256', Buffer.from(t.input), { key, dsaEncoding: 'ieee-p1363' }, t.sig)
    : crypto.verify(null, Buffer.from(t.input), key, t.sig);
  assert.ok(ok, 'signature verifies with node:crypto');
  return t;
}

const ec = keyFiles('ec', 'ec');
const ed = keyFiles('ed', 'ed');
let srv; // ES256
let other; // EdDSA, another key, its own issuer and audience
const jwksOf = async (s) => (await req(s, 'GET', '/.well-known/jwks.json')).body;
const tokenFor = (s, user) => req(s, 'POST', `${A}/entitlement-token`, { token: userToken(user) });

before(async () => {
  srv = await startServer({ ...ENV, ENTITLEMENT_TOKEN_KEY_FILE: ec.priv, ENTITLEMENT_TOKEN_TTL: '120' });
  other = await startServer({
    ...ENV, ENTITLEMENT_TOKEN_KEY_FILE: ed.priv, ENTITLEMENT_TOKEN_ISSUER: 'https://billing.example',
    ENTITLEMENT_TOKEN_AUDIENCE: 'app.example',
  });
});
after(async () => { await stopServer(srv); await stopServer(other); });

describe('JWKS', () => {
  test('publishes the public key with its RFC 7638 kid, cacheable, without a token', async () => {
    const r = await req(srv, 'GET', '/.well-known/jwks.json');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('cache-control'), /^public, max-age=\d+$/);
    assert.equal(r.body.keys.length, 1);
    const k = r.body.keys[0];
    assert.deepEqual({ ...k, x: undefined, y: undefined }, { kty: 'EC', crv: 'P-256', kid: thumbprint(ec.publicKey), alg: 'ES256', use: 'sig', x: undefined, y: undefined });
    assert.equal(k.d, undefined);
    const o = (await jwksOf(other)).keys;
    assert.deepEqual(o.map((x) => [x.kty, x.crv, x.alg, x.kid]), [['OKP', 'Ed25519', 'EdDSA', thumbprint(ed.publicKey)]]);
  });
});

describe('tokens', () => {
  test('a user gets a token whose claims are GET /access/usage, signed by the published key', async () => {
    const user = 'tok_plus_user';
    await subscribe(srv, user);
    const used = await req(srv, 'POST', `${A}/consume`, { token: SERVICE_KEY, body: { user_id: user, quota: 'ai_minutes', amount: 3 } });
    assert.equal(used.status, 200);
    const r = await tokenFor(srv, user);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const jwks = await jwksOf(srv);
    const t = nodeVerify(r.body.token, jwks);
    assert.deepEqual(t.header, { alg: 'ES256', kid: jwks.keys[0].kid, typ: 'JWT' });
    assert.equal(r.body.kid, t.header.kid);
    assert.equal(t.sig.length, 64, 'JOSE r||s, not DER');
    const c = t.claims;
    assert.equal(c.iss, 'subgate');
    assert.equal(c.sub, user);
    assert.equal(c.aud, undefined);
    assert.equal(c.exp - c.iat, 120);
    assert.equal(r.body.expires_at, c.exp);
    const usage = await req(srv, 'GET', `${A}/usage?user_id=${user}`, { token: SERVICE_KEY });
    assert.equal(c.tier, 'plus');
    assert.equal(c.tier, usage.body.tier);
    assert.deepEqual(c.quotas, usage.body.quotas);
    assert.equal(c.quotas.ai_minutes.used, 3);
    const pricing = (await req(srv, 'GET', '/api/v1/payments/pricing')).body;
    assert.deepEqual(c.features, pricing.tiers.find((x) => x.id === 'plus').features);
  });

  test('granted units are in the claims as GET /access/usage shows them', async () => {
    const user = 'tok_units_user';
    const g = await req(srv, 'POST', `${A}/quota-grants`, { token: SERVICE_KEY, body: { user_id: user, quota: 'scenarios', units: 4, scope: 'balance' } });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    const r = await tokenFor(srv, user);
    const c = nodeVerify(r.body.token, await jwksOf(srv)).claims;
    const usage = await req(srv, 'GET', `${A}/usage?user_id=${user}`, { token: SERVICE_KEY });
    assert.deepEqual(c.quotas, usage.body.quotas);
    assert.deepEqual([c.quotas.scenarios.balance, c.quotas.scenarios.remaining], [4, 9]);
  });

  test('a service names the user; a user may not name another; a service must name one', async () => {
    const s = await req(srv, 'POST', `${A}/entitlement-token`, { token: SERVICE_KEY, body: { user_id: 'tok_free_user' } });
    assert.equal(s.status, 200, JSON.stringify(s.body));
    const c = nodeVerify(s.body.token, await jwksOf(srv)).claims;
    assert.equal(c.sub, 'tok_free_user');
    assert.equal(c.tier, 'free');
    const usage = await req(srv, 'GET', `${A}/usage?user_id=tok_free_user`, { token: SERVICE_KEY });
    assert.deepEqual(c.quotas, usage.body.quotas);
    const none = await req(srv, 'POST', `${A}/entitlement-token`, { token: SERVICE_KEY });
    assert.equal(none.status, 400);
    assert.equal(errorOf(none).param, 'user_id');
    const named = await req(srv, 'POST', `${A}/entitlement-token`, { token: userToken('u_a'), body: { user_id: 'u_b' } });
    assert.equal(named.status, 403);
    const unknown = await req(srv, 'POST', `${A}/entitlement-token`, { token: SERVICE_KEY, body: { user_id: 'u', tier: 'x' } });
    assert.equal(unknown.status, 400);
    assert.equal(errorOf(unknown).code, 'parameter_unknown');
    assert.equal((await req(srv, 'POST', `${A}/entitlement-token`)).status, 401);
  });
});

describe('JS client', () => {
  test('gets a token and verifies it (jwks or jwksUrl); refuses it after expiry', async () => {
    const sg = new Subgate({ baseUrl: srv.base, token: userToken('tok_js_user') });
    const got = await sg.entitlementToken();
    const jwks = await jwksOf(srv);
    const claims = await verifyEntitlementToken(got.token, { jwks, issuer: 'subgate' });
    assert.equal(claims.sub, 'tok_js_user');
    assert.equal(claims.tier, 'free');
    const viaUrl = await verifyEntitlementToken(got.token, { jwksUrl: `${srv.base}/.well-known/jwks.json` });
    assert.deepEqual(viaUrl, claims);
    await assert.rejects(verifyEntitlementToken(got.token, { jwks, now: claims.exp + 61 }), /expired/);
    await verifyEntitlementToken(got.token, { jwks, now: claims.exp + 30 }); // within the default leeway
    await assert.rejects(verifyEntitlementToken(got.token, { jwks, now: claims.exp + 5, leeway: 0 }), /expired/);
    await assert.rejects(verifyEntitlementToken(got.token, { jwks, issuer: 'someone-else' }), /issuer/);
    const svc = new Subgate({ baseUrl: srv.base, token: SERVICE_KEY });
    assert.equal((await svc.entitlementToken({ userId: 'tok_js_svc' })).kid, jwks.keys[0].kid);
  });

  test('EdDSA tokens verify with issuer and audience; another key is refused', async () => {
    const r = await tokenFor(other, 'tok_ed_user');
    assert.equal(r.status, 200);
    const ojwks = await jwksOf(other);
    nodeVerify(r.body.token, ojwks);
    const c = await verifyEntitlementToken(r.body.token, { jwks: ojwks, issuer: 'https://billing.example', audience: 'app.example' });
    assert.equal(c.aud, 'app.example');
    await assert.rejects(verifyEntitlementToken(r.body.token, { jwks: ojwks, audience: 'other.example' }), /audience/);
    const jwks = await jwksOf(srv);
    await assert.rejects(verifyEntitlementToken(r.body.token, { jwks }), /unknown kid/);
    // The other server's token under this server's kid: the signature gives it away.
    const t = r.body.token.split('.');
    const forged = [Buffer.from(JSON.stringify({ alg: 'ES256', kid: jwks.keys[0].kid, typ: 'JWT' })).toString('base64url'), t[1], t[2]].join('.');
    await assert.rejects(verifyEntitlementToken(forged, { jwks }), /signature/);
    const none = [Buffer.from(JSON.stringify({ alg: 'none', kid: jwks.keys[0].kid })).toString('base64url'), t[1], ''].join('.');
    await assert.rejects(verifyEntitlementToken(none, { jwks }), /alg/);
  });

  test('the client raises SubgateError for a server without a key', async () => {
    const bare = await startServer(ENV);
    try {
      const sg = new Subgate({ baseUrl: bare.base, token: userToken('u') });
      await assert.rejects(sg.entitlementToken(), (e) => e instanceof SubgateError && e.status === 503 && e.code === 'entitlement_tokens_not_configured');
      const j = await req(bare, 'GET', '/.well-known/jwks.json');
      assert.equal(j.status, 503);
      assert.equal(errorOf(j).code, 'entitlement_tokens_not_configured');
    } finally { await stopServer(bare); }
  });
});

describe('rotation and configuration', () => {
  test('a previous key in ENTITLEMENT_TOKEN_PUBLIC_KEYS keeps its tokens verifiable', async () => {
    const old = await tokenFor(srv, 'tok_rotated');
    const rotated = await startServer({ ...ENV, ENTITLEMENT_TOKEN_KEY_FILE: ed.priv, ENTITLEMENT_TOKEN_PUBLIC_KEYS: ec.pub });
    try {
      const jwks = await jwksOf(rotated);
      assert.deepEqual(jwks.keys.map((k) => k.kid), [thumbprint(ed.publicKey), thumbprint(ec.publicKey)]);
      assert.equal((await verifyEntitlementToken(old.body.token, { jwks })).sub, 'tok_rotated');
      nodeVerify(old.body.token, jwks);
      const fresh = await tokenFor(rotated, 'tok_rotated');
      assert.equal(parts(fresh.body.token).header.kid, thumbprint(ed.publicKey));
      assert.equal((await verifyEntitlementToken(fresh.body.token, { jwks })).sub, 'tok_rotated');
    } finally { await stopServer(rotated); }
  });

  test('a bad key file stops start-up with one line naming the variable', () => {
    const rsa = path.join(dir, 'rsa.pem');
    fs.writeFileSync(rsa, crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const junk = path.join(dir, 'junk.pem');
    fs.writeFileSync(junk, 'not a key\n');
    const cases = [
      [{ ENTITLEMENT_TOKEN_KEY_FILE: rsa }, /^subgate: ENTITLEMENT_TOKEN_KEY_FILE: .*P-256.*Ed25519/],
      [{ ENTITLEMENT_TOKEN_KEY_FILE: junk }, /^subgate: ENTITLEMENT_TOKEN_KEY_FILE: .*not a PEM private key/],
      [{ ENTITLEMENT_TOKEN_KEY_FILE: ec.priv, ENTITLEMENT_TOKEN_PUBLIC_KEYS: junk }, /^subgate: ENTITLEMENT_TOKEN_PUBLIC_KEYS: /],
      [{ ENTITLEMENT_TOKEN_PUBLIC_KEYS: ec.pub }, /^subgate: ENTITLEMENT_TOKEN_PUBLIC_KEYS: needs ENTITLEMENT_TOKEN_KEY_FILE/],
      [{ ENTITLEMENT_TOKEN_TTL: '10' }, /ENTITLEMENT_TOKEN_TTL: must be an integer 30-86400/],
    ];
    for (const [env, re] of cases) {
      const r = run(['serve'], { env: { JWT_SECRET: 'integration-secret-0123456789-abcdefghij', LISTEN: '127.0.0.1:1', DATABASE_URL: '', ...env } });
      assert.notEqual(r.status, 0, JSON.stringify(env));
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], re);
    }
  });
});
