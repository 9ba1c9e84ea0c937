// js_browser.test.mjs: the JavaScript client in a real browser (Debian's chromium, driven by
// playwright-core), on a page of another origin than subgate's: the page, served from
// 127.0.0.2, loads clients/js/subgate.js and calls pricing, subscription, usage and
// create-checkout-session through CORS, pays on the emulator's hosted page, and comes back to
// apply the payment with checkoutSuccess. A page of an origin not in CORS_ORIGINS cannot read
// any answer.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  emuControl, freePort, logged, now, startEmulator, startServer, stopEmulator, stopServer, tmpDir, userToken,
} from './lib.mjs';

const CLIENT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../clients/js');
const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((p) => fs.existsSync(p));
const WHSEC = 'whsec_js_browser_integration';

// The page: it keeps subgate's address and the user's token for the tab, applies a returning
// checkout, then shows pricing, subscription and usage in window.state.
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>subgate in a browser</title>
<script type="module">
  import { Subgate, SubgateError } from '/subgate.js';
  const q = new URLSearchParams(location.search);
  for (const k of ['api', 'token']) if (q.get(k)) sessionStorage.setItem(k, q.get(k));
  const sg = new Subgate({ baseUrl: sessionStorage.getItem('api'), token: () => sessionStorage.getItem('token') });
  window.sg = sg;
  const plain = (e) => (e instanceof SubgateError
    ? { error: true, status: e.status, type: e.type, code: e.code, message: e.message, requestId: e.requestId }
    : { error: true, message: String(e) });
  window.state = (async () => {
    try {
      const s = {};
      if (q.get('session_id')) s.applied = await sg.checkoutSuccess(q.get('session_id'));
      s.pricing = await sg.pricing();
      s.sub = await sg.subscription();
      s.usage = await sg.usage();
      return s;
    } catch (e) { return plain(e); }
  })();
  window.buy = (tier) => sg.checkout({
    tier, successUrl: location.origin + '/?session_id={CHECKOUT_SESSION_ID}', cancelUrl: location.origin + '/',
  }).catch(plain);
</script>
`;

// A static server for the page and the client's files.
async function startStatic(host) {
  const port = await freePort();
  const server = http.createServer((rq, rs) => {
    const u = new URL(rq.url, 'http://x');
    if (u.pathname === '/') {
      rs.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      rs.end(PAGE);
    } else if (u.pathname === '/subgate.js') {
      rs.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      rs.end(fs.readFileSync(path.join(CLIENT_DIR, 'subgate.js')));
    } else {
      rs.writeHead(404);
      rs.end();
    }
  });
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(port, host, resolve); });
  return { server, origin: `http://${host}:${port}` };
}

let browser;
let emu;
let srv;
let page; // the configured origin
let stranger; // an origin that is not configured

before(async () => {
  if (!CHROMIUM) return;
  page = await startStatic('127.0.0.2');
  stranger = await startStatic('127.0.0.3');
  emu = await startEmulator({ EMULATOR_WEBHOOK_SECRET: WHSEC });
  const dir = tmpDir();
  srv = await startServer({
    STRIPE_SECRET_KEY: 'sk_test_emulator',
    STRIPE_API_BASE: emu.base,
    STRIPE_WEBHOOK_SECRET: WHSEC,
    STRIPE_PREMIUM_PRICE_ID: 'price_premium_monthly',
    STRIPE_PLUS_PRICE_ID: 'price_plus_monthly',
    STRIPE_PUBLISHABLE_KEY: 'pk_test_browser',
    ALLOWED_REDIRECT_ORIGINS: page.origin, // and so CORS_ORIGINS
    HTTP_THREADS: '4',
    DATABASE_URL: `sqlite:${path.join(dir, 'subgate.db')}`,
  }, { cwd: dir });
  const r = await emuControl(emu, 'POST', '/_emulator/webhooks', { url: `${srv.base}/api/v1/payments/webhook`, secret: WHSEC });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  for (const s of [page, stranger]) s?.server.close();
  await stopServer(srv);
  await stopEmulator(emu);
});

const open = (origin, user) =>
  `${origin}/?api=${encodeURIComponent(srv.base)}&token=${encodeURIComponent(userToken(user, { exp: now() + 900 }))}`;

describe('the JS client in headless Chromium, on another origin', { skip: !CHROMIUM && 'chromium is not installed (scripts/deps.sh --test)' }, () => {
  test('a page of a configured origin buys premium through the emulator', async () => {
    const tab = await browser.newPage();
    await tab.goto(open(page.origin, 'browser_alice'));
    const first = await tab.evaluate(() => window.state);
    assert.ok(!first.error, JSON.stringify(first));
    assert.equal(first.pricing.publishable_key, 'pk_test_browser');
    assert.equal(first.sub.tier, 'free');
    assert.equal(typeof first.usage, 'object');

    const session = await tab.evaluate(() => window.buy('premium'));
    assert.ok(!session.error, JSON.stringify(session));
    assert.match(session.session_id, /^cs_/);
    // The browser sent preflights for the calls with an Authorization header (subgate's log).
    for (const p of ['subscription', 'usage', 'create-checkout-session']) {
      assert.ok(await logged(srv, new RegExp(`"method":"OPTIONS","route":"/api/v1/payments/${p}"[^\\n]*"status":204`)), p);
    }

    await tab.goto(session.url); // Stripe's hosted page (the emulator's)
    await Promise.all([
      tab.waitForURL((u) => u.toString().startsWith(`${page.origin}/?session_id=`)),
      tab.click('button[type=submit]'),
    ]);
    const back = await tab.evaluate(() => window.state);
    assert.ok(!back.error, JSON.stringify(back));
    assert.equal(back.applied.tier, 'premium');
    assert.equal(back.sub.tier, 'premium');
    assert.equal(back.sub.status, 'active');
    await tab.close();
  });

  test('a page of an origin that is not configured cannot read subgate', async () => {
    const tab = await browser.newPage();
    await tab.goto(open(stranger.origin, 'browser_bob'));
    const state = await tab.evaluate(() => window.state);
    assert.equal(state.error, true);
    assert.equal(state.status, 0, JSON.stringify(state));
    assert.equal(state.type, 'connection_error');
    await tab.close();
  });
});
