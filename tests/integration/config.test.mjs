// config.test.mjs: start-up configuration over the real binary: .env, validation, check-config,
// public-key tokens, TIERS_FILE.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import {
  BIN, EMULATOR_BIN, SECRET, errorOf, req, run, signJwt, startEmulator, startServer, stopEmulator, stopServer, tmpDir,
  userToken, now,
} from './lib.mjs';

describe('subcommands', () => {
  test('version prints the version', () => {
    const r = run(['version']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^subgate \d+\.\d+\.\d+/);
  });
  test('an unknown command exits 2', () => {
    const r = run(['frobnicate']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
  });
  test('migrate creates the schema and is idempotent', () => {
    const dir = tmpDir();
    const env = { DATABASE_URL: `sqlite:${path.join(dir, 'db', 'x.db')}` };
    const a = run(['migrate'], { env, cwd: dir });
    assert.equal(a.status, 0, a.stderr);
    assert.match(a.stdout, /applied [1-9]\d* migration/);
    const b = run(['migrate'], { env, cwd: dir });
    assert.equal(b.status, 0, b.stderr);
    assert.match(b.stdout, /applied 0 migration/);
  });
  test('token mints a token the server accepts', async () => {
    const dir = tmpDir();
    const t = run(['token', 'user_minted', 'm@example.com'], { env: { JWT_SECRET: SECRET }, cwd: dir });
    assert.equal(t.status, 0, t.stderr);
    const srv = await startServer();
    try {
      const r = await req(srv, 'GET', '/api/v1/payments/subscription', { token: t.stdout.trim() });
      assert.equal(r.status, 200);
    } finally { await stopServer(srv); }
  });
});

describe('configuration errors stop start-up with one line naming the variable', () => {
  const base = { JWT_SECRET: SECRET };
  const cases = [
    ['no way to verify tokens', { JWT_SECRET: undefined }, /JWT_SECRET/],
    ['a short JWT secret', { JWT_SECRET: 'short' }, /^subgate: JWT_SECRET: /],
    ['a bad Stripe key', { STRIPE_SECRET_KEY: 'pk_test_oops' }, /^subgate: STRIPE_SECRET_KEY: /],
    ['a bad webhook secret', { STRIPE_WEBHOOK_SECRET: 'whsec_ok,nope' }, /^subgate: STRIPE_WEBHOOK_SECRET: /],
    ['a bad port', { LISTEN: '127.0.0.1:99999' }, /^subgate: LISTEN: /],
    ['a bad database url', { DATABASE_URL: 'mysql://x' }, /^subgate: DATABASE_URL: /],
    ['a bad redirect origin', { ALLOWED_REDIRECT_ORIGINS: 'localhost:3000' }, /^subgate: ALLOWED_REDIRECT_ORIGINS: /],
    ['a missing key file', { JWT_SECRET: undefined, JWT_PUBLIC_KEY_FILE: '/nonexistent/key.pem' }, /^subgate: JWT_PUBLIC_KEY_FILE: /],
    ['a missing tiers file', { TIERS_FILE: '/nonexistent/tiers.json' }, /^subgate: TIERS_FILE: /],
    ['a locale Stripe Checkout does not have', { CHECKOUT_LOCALE: 'xx' }, /^subgate: CHECKOUT_LOCALE: must be one of Stripe Checkout's locales \(auto, .*\), got 'xx'$/],
    ['a checkout option that is no boolean', { CHECKOUT_AUTOMATIC_TAX: 'maybe' }, /^subgate: CHECKOUT_AUTOMATIC_TAX: must be 'false' or 'true', got 'maybe'$/],
  ];
  for (const [name, env, want] of cases) {
    test(name, () => {
      const r = run(['serve'], { env: { ...base, ...env, LISTEN: env.LISTEN || '127.0.0.1:1' } });
      assert.notEqual(r.status, 0);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], want);
      assert.ok(!r.stderr.includes('whsec_ok'), 'no secret value in the message');
    });
  }
  test('a malformed .env names the file and line', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, '.env'), 'JWT_SECRET=abc\nTHIS IS NOT AN ASSIGNMENT\n');
    const r = run(['serve'], { cwd: dir });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /\.env.*2/);
  });
});

describe('check-config', () => {
  test('prints the effective configuration with secrets redacted; the environment beats .env', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, '.env'), `JWT_SECRET=${SECRET}\nSTRIPE_PUBLISHABLE_KEY=pk_test_fromdotenv\nLISTEN=127.0.0.1:9999\n`);
    const env = {
      STRIPE_SECRET_KEY: 'sk_test_supersecretvalue123', STRIPE_WEBHOOK_SECRET: 'whsec_topsecret1', LISTEN: '127.0.0.1:7777',
      STRIPE_PREMIUM_PRICE_ID: 'price_p', STRIPE_PLUS_PRICE_ID: 'price_x',
    };
    const r = run(['check-config'], { env, cwd: dir });
    assert.equal(r.status, 0, r.stderr);
    for (const s of ['supersecretvalue123', 'topsecret1', SECRET]) assert.ok(!r.stdout.includes(s), `${s} leaked`);
    assert.match(r.stdout, /STRIPE_PUBLISHABLE_KEY=pk_test_fromdotenv/);
    assert.match(r.stdout, /LISTEN=127\.0\.0\.1:7777/);
    assert.match(r.stdout, /STRIPE_SECRET_KEY=.*redacted/);
  });
});

describe('prices, with Stripe configured', () => {
  const STRIPE = { STRIPE_SECRET_KEY: 'sk_test_x', STRIPE_WEBHOOK_SECRET: 'whsec_x', JWT_SECRET: SECRET };
  const cases = [
    ['no premium price', { STRIPE_PLUS_PRICE_ID: 'price_x' }, /^subgate: STRIPE_PREMIUM_PRICE_ID: tier 'premium' is sold through checkout and needs a Stripe price id/m],
    ['no plus price', { STRIPE_PREMIUM_PRICE_ID: 'price_p' }, /^subgate: STRIPE_PLUS_PRICE_ID: tier 'plus' /m],
    ['a product id for a price', { STRIPE_PREMIUM_PRICE_ID: 'prod_123', STRIPE_PLUS_PRICE_ID: 'price_x' }, /^subgate: STRIPE_PREMIUM_PRICE_ID: 'prod_123' \(tier 'premium'\) is not a Stripe price id/m],
  ];
  for (const [name, prices, want] of cases) {
    for (const cmd of ['check-config', 'serve', 'sync']) {
      test(`${cmd} refuses ${name}`, () => {
        const dir = tmpDir();
        const r = run([cmd], { env: { ...STRIPE, ...prices, DATABASE_URL: 'sqlite:x.db' }, cwd: dir });
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, want);
        assert.ok(!fs.existsSync(path.join(dir, 'x.db')), 'refused before opening the database');
      });
    }
  }
  test('without Stripe, a tier without a price is no error', () => {
    const r = run(['check-config'], { env: { JWT_SECRET: SECRET } });
    assert.equal(r.status, 0, r.stderr);
  });
});

describe('public-key tokens', () => {
  const pair = (type) => (type === 'rsa'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }));
  for (const [type, alg] of [['rsa', 'RS256'], ['ec', 'ES256']]) {
    test(`${alg}: accepts the issuer's tokens, rejects HS256 signed with the public key`, async () => {
      const dir = tmpDir();
      const { publicKey, privateKey } = pair(type);
      const pem = publicKey.export({ type: 'spki', format: 'pem' });
      const file = path.join(dir, 'pub.pem');
      fs.writeFileSync(file, pem);
      const srv = await startServer({ JWT_SECRET: undefined, JWT_PUBLIC_KEY_FILE: file, JWT_ISSUER: 'https://issuer.example', JWT_AUDIENCE: 'subgate' });
      try {
        const claims = { sub: 'pk_user', iss: 'https://issuer.example', aud: 'subgate', exp: now() + 600 };
        const good = await req(srv, 'GET', '/api/v1/payments/subscription', { token: signJwt(claims, { alg, key: privateKey }) });
        assert.equal(good.status, 200);
        const confused = await req(srv, 'GET', '/api/v1/payments/subscription', { token: signJwt(claims, { alg: 'HS256', key: pem }) });
        assert.equal(confused.status, 401);
        const wrongIss = await req(srv, 'GET', '/api/v1/payments/subscription', { token: signJwt({ ...claims, iss: 'https://evil.example' }, { alg, key: privateKey }) });
        assert.equal(wrongIss.status, 401);
        assert.match(errorOf(wrongIss).message, /issuer/);
        const wrongAud = await req(srv, 'GET', '/api/v1/payments/subscription', { token: signJwt({ ...claims, aud: ['other'] }, { alg, key: privateKey }) });
        assert.equal(wrongAud.status, 401);
        assert.match(errorOf(wrongAud).message, /audience/);
        const otherKey = pair(type).privateKey;
        const forged = await req(srv, 'GET', '/api/v1/payments/subscription', { token: signJwt(claims, { alg, key: otherKey }) });
        assert.equal(forged.status, 401);
      } finally { await stopServer(srv); }
    });
  }
});

describe('TIERS_FILE', () => {
  test('replaces the built-in catalogue', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'tiers.json');
    const cat = JSON.parse(fs.readFileSync(path.resolve('docs/tiers.example.json'), 'utf8'));
    cat.tiers = cat.tiers.filter((t) => t.id !== 'enterprise');
    fs.writeFileSync(file, JSON.stringify(cat));
    const srv = await startServer({ TIERS_FILE: file });
    try {
      const r = await req(srv, 'GET', '/api/v1/payments/pricing');
      assert.deepEqual(r.body.tiers.map((t) => t.id), ['free', 'premium', 'plus']);
      const c = await req(srv, 'POST', '/api/v1/payments/create-checkout-session', { token: userToken(), body: { tier: 'enterprise', success_url: 'http://localhost:3000/a', cancel_url: 'http://localhost:3000/b' } });
      assert.equal(c.status, 400);
      assert.match(errorOf(c).message, /unknown tier/);
    } finally { await stopServer(srv); }
  });
  test('a broken file stops start-up naming the variable', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'tiers.json');
    fs.writeFileSync(file, '{"tiers": [}');
    const r = run(['serve'], { env: { JWT_SECRET: SECRET, TIERS_FILE: file } });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /^subgate: TIERS_FILE: .*line 1/);
  });
});

describe('one listener per address', () => {
  // A second process on a taken address must fail at once, not share the port (SO_REUSEPORT).
  const second = (bin, args, env) => spawnSync(bin, args, { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 5000 });
  test('a second serve on a taken address exits non-zero naming it', async () => {
    const srv = await startServer();
    try {
      const r = second(BIN, ['serve'], { JWT_SECRET: SECRET, LISTEN: `127.0.0.1:${srv.port}`, DATABASE_URL: `sqlite:${path.join(tmpDir(), 'x.db')}` });
      assert.equal(r.error, undefined, 'it exits by itself');
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${srv.port}: address already in use`, 'i'));
      assert.equal((await req(srv, 'GET', '/healthz')).status, 200, 'the first one still serves');
    } finally { await stopServer(srv); }
  });
  test('a second emulator on a taken address exits non-zero naming it', async () => {
    const emu = await startEmulator();
    try {
      const addr = emu.base.slice('http://'.length);
      const r = second(EMULATOR_BIN, [], { EMULATOR_LISTEN: addr });
      assert.equal(r.error, undefined, 'it exits by itself');
      assert.notEqual(r.status, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot listen on ${addr.replace(/\./g, '\\.')}: address already in use`, 'i'));
    } finally { await stopEmulator(emu); }
  });
});
