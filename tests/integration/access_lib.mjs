// access_lib.mjs: helpers shared by the access and gate tests: a Plus subscriber made the way
// production makes one, through a signed customer.subscription.created webhook.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { now, req } from './lib.mjs';

export const WEBHOOK_SECRET = 'whsec_access_integration_0123456789';
export const PLUS_PRICE = 'price_plus_integration';

// Signs and posts a customer.subscription.created event making user a subscriber of price.
export async function subscribe(srv, user, price = PLUS_PRICE, status = 'active') {
  const file = path.resolve('tests/fixtures/stripe/subscription.2023-08-16.json');
  const sub = JSON.parse(fs.readFileSync(file, 'utf8'));
  const t = now();
  Object.assign(sub, {
    id: `sub_${crypto.randomBytes(6).toString('hex')}`,
    customer: `cus_${crypto.randomBytes(6).toString('hex')}`,
    status,
    metadata: { user_id: user },
    current_period_start: t - 86400,
    current_period_end: t + 30 * 86400,
  });
  sub.items.data[0].price.id = price;
  const event = {
    id: `evt_${crypto.randomBytes(8).toString('hex')}`,
    object: 'event',
    type: 'customer.subscription.created',
    created: t,
    data: { object: sub },
    api_version: '2023-08-16',
  };
  const body = JSON.stringify(event);
  const sig = crypto.createHmac('sha256', WEBHOOK_SECRET).update(`${t}.${body}`).digest('hex');
  const r = await req(srv, 'POST', '/api/v1/payments/webhook', {
    raw: body,
    headers: { 'content-type': 'application/json', 'stripe-signature': `t=${t},v1=${sig}` },
  });
  assert.equal(r.status, 200, `webhook: ${JSON.stringify(r.body)}`);
}

