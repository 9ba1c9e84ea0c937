// metrics.test.mjs: GET /metrics (SPEC section 6, issue #12 item 2): Prometheus's text format,
// checked by promtool itself (Debian's prometheus package), and counting what happened.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';

import { SERVICE_KEY, now, req, startServer, stopServer, userToken } from './lib.mjs';

const WHSEC = 'whsec_metrics_0123456789abcdef';

let srv;
before(async () => { srv = await startServer({ STRIPE_WEBHOOK_SECRET: WHSEC }); });
after(async () => { await stopServer(srv); });

async function metrics() {
  const r = await fetch(`${srv.base}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return r.text();
}

// The value of one series, by its name and labels exactly as rendered.
function value(text, series) {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `no series ${series}`);
  return Number(line.slice(series.length + 1));
}

function signed(body) {
  const t = now();
  return { raw: body, headers: { 'content-type': 'application/json', 'stripe-signature': `t=${t},v1=${crypto.createHmac('sha256', WHSEC).update(`${t}.${body}`).digest('hex')}` } };
}

test('passes promtool check metrics', async () => {
  const text = await metrics();
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(r.error, undefined, `promtool: ${r.error}`);
  assert.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`);
});

test('counts requests by route and class, consumes, webhooks and the build', async () => {
  const before = await metrics();
  const health = 'subgate_http_requests_total{route="GET /healthz",code="2xx"}';
  const granted = 'subgate_consumes_total{quota="ai_minutes",result="granted"}';
  const refused = 'subgate_consumes_total{quota="ai_minutes",result="refused"}';
  const bad = 'subgate_http_requests_total{route="unmatched",code="4xx"}';
  const ignored = 'subgate_webhook_events_total{kind="ignored",outcome="applied"}';
  const ignoredNow = 'subgate_webhook_events_total{kind="ignored",outcome="ignored"}';
  const forged = 'subgate_webhook_events_total{kind="other",outcome="refused"}';
  for (let i = 0; i < 3; i++) assert.equal((await req(srv, 'GET', '/healthz')).status, 200);
  assert.equal((await req(srv, 'GET', '/no/such/route')).status, 404);
  const consume = (amount) => req(srv, 'POST', '/api/v1/access/consume', { token: SERVICE_KEY, body: { user_id: 'm_user', quota: 'ai_minutes', amount } });
  assert.equal((await consume(30)).status, 200);
  assert.equal((await consume(1)).status, 402);
  const ev = JSON.stringify({ id: 'evt_metrics', object: 'event', type: 'customer.created', created: now(), data: { object: { id: 'cus_m', object: 'customer' } } });
  assert.equal((await req(srv, 'POST', '/api/v1/payments/webhook', signed(ev))).status, 200);
  assert.equal((await req(srv, 'POST', '/api/v1/payments/webhook', { raw: ev, headers: { 'content-type': 'application/json', 'stripe-signature': 't=1,v1=00' } })).status, 400);
  const after = await metrics();
  assert.equal(value(after, health) - value(before, health), 3);
  assert.equal(value(after, bad) - value(before, bad), 1);
  assert.equal(value(after, granted) - value(before, granted), 1);
  assert.equal(value(after, refused) - value(before, refused), 1);
  assert.equal(value(after, ignoredNow) - value(before, ignoredNow), 1);
  assert.equal(value(after, ignored), value(before, ignored));
  assert.equal(value(after, forged) - value(before, forged), 1);
  const buckets = 'subgate_http_request_duration_seconds_count{route="GET /healthz"}';
  assert.ok(value(after, buckets) >= 3);
  assert.ok(value(after, 'subgate_open_connections') >= 1, 'this request\'s own connection');
  assert.match(after, /^subgate_build_info\{version="[^"]+"\} 1$/m);
  const writes = 'subgate_store_writes_total';
  const commits = 'subgate_store_commits_total';
  assert.ok(value(after, writes) - value(before, writes) >= 3, 'two consumes and a webhook record');
  assert.ok(value(after, commits) > value(before, commits));
  assert.ok(value(after, commits) <= value(after, writes), 'a batch of writes commits once');
  const user = await req(srv, 'GET', '/api/v1/payments/usage', { token: userToken('m_user') });
  assert.equal(user.status, 200);
});
