// subgate.js: the browser and Node client of subgate's user API (pricing, subscription, usage,
// invoices, checkout, checkout-success, portal, cancel, and plan changes: change-plan,
// preview-plan-change, cancel-plan-change, resume-subscription). An ES module with no dependencies and
// no build step: it needs only fetch (every browser, Node 18+).

/** An error answer of subgate, from its Stripe-shaped body {"error": {type, code, param, message}}. */
export class SubgateError extends Error {
  constructor({ status, type, code, param, message, requestId }) {
    super(message || `subgate answered ${status}`);
    this.name = 'SubgateError';
    this.status = status;       // HTTP status; 0 when the request did not reach subgate
    this.type = type || 'api_error';
    this.code = code || null;
    this.param = param || null;
    this.requestId = requestId || null; // the Request-Id header, for subgate's logs
  }
}

const PAYMENTS = '/api/v1/payments';

// The body of change-plan and preview-plan-change: interval only when given (the server refuses
// unknown members and a null interval).
function planBody(tier, interval) {
  const body = { tier };
  if (interval !== undefined && interval !== null) body.interval = interval;
  return body;
}

export class Subgate {
  /**
   * @param {object} opts
   * @param {string} opts.baseUrl  subgate's address, e.g. "https://billing.example.com"
   * @param {string|(() => string|Promise<string>)} [opts.token]  the user's JWT, or a function
   *   returning it (called before each request, so a refreshed token is always used)
   * @param {typeof fetch} [opts.fetch]  a fetch implementation (default: globalThis.fetch)
   */
  constructor({ baseUrl, token, fetch: fetchImpl } = {}) {
    if (!baseUrl) throw new TypeError('Subgate: baseUrl is required');
    this.baseUrl = String(baseUrl).replace(/\/+$/, '');
    this.token = token;
    this._fetch = fetchImpl || globalThis.fetch.bind(globalThis);
  }

  async _token() {
    const t = typeof this.token === 'function' ? await this.token() : this.token;
    return t || null;
  }

  async _request(method, path, { query, body, auth = true } = {}) {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    const headers = {};
    if (auth) {
      const t = await this._token();
      if (t) headers.Authorization = `Bearer ${t}`;
    }
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await this._fetch(url.toString(), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new SubgateError({ status: 0, type: 'connection_error', message: `cannot reach subgate: ${e.message}` });
    }
    const requestId = res.headers.get('Request-Id');
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!res.ok) {
      const e = (data && data.error) || {};
      throw new SubgateError({
        status: res.status, type: e.type, code: e.code, param: e.param,
        message: e.message || `subgate answered ${res.status}`, requestId,
      });
    }
    return data;
  }

  /** GET /pricing: the tiers and the publishable key. Needs no token. */
  pricing() { return this._request('GET', `${PAYMENTS}/pricing`, { auth: false }); }

  /** GET /subscription: the user's subscription and the tier it grants now. */
  subscription() { return this._request('GET', `${PAYMENTS}/subscription`); }

  /** GET /usage: the user's quotas (used, limit, remaining, resets_at). */
  usage() { return this._request('GET', `${PAYMENTS}/usage`); }

  /** GET /invoices: stored invoices, newest first; limit 1-100 (default 10). */
  async invoices({ limit } = {}) {
    return this._request('GET', `${PAYMENTS}/invoices`, { query: { limit } });
  }

  /**
   * POST /create-checkout-session: {session_id, url}; send the browser to url.
   * @param {object} opts
   * @param {string} opts.tier  a tier with checkout (GET /pricing: `checkout: true`)
   * @param {string} opts.successUrl  on ALLOWED_REDIRECT_ORIGINS; may hold {CHECKOUT_SESSION_ID}
   * @param {string} opts.cancelUrl  on ALLOWED_REDIRECT_ORIGINS
   * @param {number} [opts.trialDays]  0-730
   * @param {'month'|'year'} [opts.interval]  which of the tier's `prices` (default: its primary price)
   */
  checkout({ tier, successUrl, cancelUrl, trialDays, interval } = {}) {
    const body = { tier, success_url: successUrl, cancel_url: cancelUrl };
    if (trialDays !== undefined) body.trial_days = trialDays;
    if (interval !== undefined) body.interval = interval;
    return this._request('POST', `${PAYMENTS}/create-checkout-session`, { body });
  }

  /** POST /checkout-success: applies the paid session at once; answers like subscription(). */
  checkoutSuccess(sessionId) {
    return this._request('POST', `${PAYMENTS}/checkout-success`, { body: { session_id: sessionId } });
  }

  /** POST /customer-portal: {url} of a Stripe billing-portal session returning to returnUrl. */
  portal(returnUrl) {
    return this._request('POST', `${PAYMENTS}/customer-portal`, { body: { return_url: returnUrl } });
  }

  /** POST /cancel-subscription: at period end (default) or now with {immediate: true}. */
  cancel({ immediate = false } = {}) {
    return this._request('POST', `${PAYMENTS}/cancel-subscription`, { query: { immediate: immediate ? 'true' : 'false' } });
  }

  /**
   * POST /change-plan: an upgrade (a higher tier, or per year instead of per month) applies at
   * once and its proration is charged now; a downgrade is scheduled for the period end (see
   * `pending_change`, withdrawn by cancelPlanChange()). Answers like subscription() plus
   * `change: {type, status, effective_at?, invoice?}`. Rejects with status 402 and code
   * `payment_pending` when the upgrade's payment is declined or needs authentication (the
   * invoice to pay is then in subscription().pending_change), 409 while the subscription ends at
   * period end, is past due or awaits a payment, 404 without a subscription.
   * @param {object} opts
   * @param {string} opts.tier  a tier sold through checkout
   * @param {'month'|'year'} [opts.interval]  default: the interval paid by now
   */
  changePlan({ tier, interval } = {}) {
    return this._request('POST', `${PAYMENTS}/change-plan`, { body: planBody(tier, interval) });
  }

  /**
   * POST /preview-plan-change: what changePlan() with the same arguments would do, changing
   * nothing: {change, tier, interval, price_id, price, effective_at, amount_due_now, currency,
   * next_invoice: {amount_due, currency, date}}.
   * @param {object} opts
   * @param {string} opts.tier
   * @param {'month'|'year'} [opts.interval]
   */
  previewPlanChange({ tier, interval } = {}) {
    return this._request('POST', `${PAYMENTS}/preview-plan-change`, { body: planBody(tier, interval) });
  }

  /**
   * POST /cancel-plan-change: withdraws the downgrade scheduled for the period end. Answers like
   * subscription() plus `change` (status `withdrawn`, or `unchanged` when none was scheduled).
   */
  cancelPlanChange() {
    return this._request('POST', `${PAYMENTS}/cancel-plan-change`);
  }

  /**
   * POST /resume-subscription: withdraws a cancellation at period end, so the subscription
   * renews. Answers like subscription() plus `change` (status `resumed`, or `unchanged`).
   */
  resumeSubscription() {
    return this._request('POST', `${PAYMENTS}/resume-subscription`);
  }
}

/**
 * Verifies an outgoing webhook of subgate (APP_WEBHOOK_URL) and returns the parsed event
 * `{id, type, created, data}`. `signatureHeader` is `Subgate-Signature`
 * (`t=<unix>,v1=<hex>[,v1=<hex>...]`, HMAC-SHA256 of `<t>.<rawBody>`); `secrets` is one secret
 * or a list (during a rotation, any of them verifies). `rawBody` must be the bytes as received
 * (a string or Uint8Array), never re-serialized JSON. Throws SubgateError (code
 * `invalid_signature`) when no signature matches or `t` is older or newer than
 * `toleranceSeconds`. Uses Web Crypto: Node 18+ and browsers alike.
 */
export async function verifyWebhook(rawBody, signatureHeader, secrets, { toleranceSeconds = 300, now } = {}) {
  const fail = (message) => new SubgateError({ status: 400, type: 'invalid_request_error', code: 'invalid_signature', message });
  const enc = new TextEncoder();
  const body = typeof rawBody === 'string' ? rawBody : new TextDecoder().decode(rawBody);
  let t = null;
  const v1 = [];
  for (const part of String(signatureHeader || '').split(',')) {
    const eq = part.indexOf('=');
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === 't' && /^[0-9]{1,12}$/.test(v)) t = Number(v);
    else if (k === 'v1' && /^[0-9a-f]{64}$/.test(v)) v1.push(v);
  }
  if (t === null || v1.length === 0) throw fail('Subgate-Signature has no t= or no v1= value');
  const current = now === undefined ? Math.floor(Date.now() / 1000) : now;
  if (Math.abs(current - t) > toleranceSeconds) throw fail('Subgate-Signature is outside the tolerance');
  const list = Array.isArray(secrets) ? secrets : [secrets];
  for (const secret of list) {
    const key = await crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, enc.encode(`${t}.${body}`)));
    const hex = Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join('');
    for (const sig of v1) {
      let diff = 0; // constant time over the 64 digits
      for (let i = 0; i < 64; i++) diff |= hex.charCodeAt(i) ^ sig.charCodeAt(i);
      if (diff === 0) return JSON.parse(body);
    }
  }
  throw fail('no Subgate-Signature v1 value matches a secret');
}

export default Subgate;
