// subgate.js: the browser and Node client of subgate's user API (pricing, subscription, usage,
// invoices, checkout, checkout-success, portal, cancel, and plan changes: change-plan,
// preview-plan-change, cancel-plan-change, resume-subscription), and of its entitlement tokens
// (entitlementToken, and verifyEntitlementToken, which checks one locally with WebCrypto). An ES module with no dependencies and
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
const ACCESS = '/api/v1/access';

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
      throw new SubgateError({ status: 0, type: 'connection_error', code: 'connection_failed', message: `cannot reach subgate: ${e.message}` });
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

  /**
   * GET /access/ledger: the user's usage ledger, newest first ({data, has_more, next_before}):
   * every consume, track, refund and grant of units. Pass next_before as `before` for the
   * next page; quota narrows it to one quota; limit 1-200 (default 50).
   */
  ledger({ quota, limit, before } = {}) {
    return this._request('GET', '/api/v1/access/ledger', { query: { quota, limit, before } });
  }

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

  /**
   * POST /access/entitlement-token: {token, expires_at, kid}, a short-lived token signed by
   * subgate stating the user's tier, features and quotas (verifyEntitlementToken checks it).
   * A user asks for itself; a service (a service key as token) names the user with userId.
   */
  entitlementToken({ userId } = {}) {
    const body = userId === undefined ? undefined : { user_id: userId };
    return this._request('POST', `${ACCESS}/entitlement-token`, { body });
  }
}

/** Why verifyEntitlementToken refused a token: code is one of malformed, alg, unknown_kid,
 * signature, expired, issuer, audience, jwks. */
export class EntitlementTokenError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'EntitlementTokenError';
    this.code = code;
  }
}

// The algorithms subgate signs with, pinned by the key's type: alg must agree with the JWK.
const TOKEN_ALGS = {
  ES256: { kty: 'EC', crv: 'P-256', key: { name: 'ECDSA', namedCurve: 'P-256' }, verify: { name: 'ECDSA', hash: 'SHA-256' } },
  EdDSA: { kty: 'OKP', crv: 'Ed25519', key: { name: 'Ed25519' }, verify: { name: 'Ed25519' } },
};
const jwksCache = new Map(); // jwksUrl -> JWKS, refetched when a kid is not in it

function b64urlBytes(s) {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new EntitlementTokenError('malformed', 'entitlement token: not base64url');
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function b64urlJson(s) {
  try {
    return JSON.parse(new TextDecoder().decode(b64urlBytes(s)));
  } catch (e) {
    if (e instanceof EntitlementTokenError) throw e;
    throw new EntitlementTokenError('malformed', 'entitlement token: a part is not JSON');
  }
}

async function fetchJwks(url, fetchImpl) {
  let res;
  try {
    res = await fetchImpl(url);
  } catch (e) {
    throw new EntitlementTokenError('jwks', `cannot fetch the JWKS at ${url}: ${e.message}`);
  }
  if (!res.ok) throw new EntitlementTokenError('jwks', `the JWKS at ${url} answered ${res.status}`);
  const jwks = await res.json();
  jwksCache.set(url, jwks);
  return jwks;
}

// The JWK named kid: from jwks, or from jwksUrl (cached; fetched again once for an unknown kid).
async function findKey(kid, { jwks, jwksUrl, fetch: fetchImpl }) {
  const find = (set) => ((set && set.keys) || []).find((k) => k.kid === kid);
  if (jwks) return find(jwks);
  if (!jwksUrl) throw new TypeError('verifyEntitlementToken needs jwks or jwksUrl');
  const f = fetchImpl || globalThis.fetch.bind(globalThis);
  return find(jwksCache.get(jwksUrl)) || find(await fetchJwks(jwksUrl, f));
}

function checkClaims(c, { issuer, audience, now, leeway }) {
  const t = now === undefined ? Math.floor(Date.now() / 1000) : now;
  if (typeof c.exp !== 'number') throw new EntitlementTokenError('malformed', 'entitlement token: no exp');
  if (t > c.exp + leeway) throw new EntitlementTokenError('expired', `entitlement token expired at ${c.exp}`);
  if (issuer !== undefined && c.iss !== issuer) throw new EntitlementTokenError('issuer', `entitlement token: wrong issuer '${c.iss}'`);
  const aud = Array.isArray(c.aud) ? c.aud : c.aud === undefined ? [] : [c.aud];
  if (audience !== undefined && !aud.includes(audience)) throw new EntitlementTokenError('audience', 'entitlement token: wrong audience');
}

/**
 * Verifies an entitlement token locally, with no call to subgate, and returns its claims
 * {iss, sub, iat, exp, tier, features, quotas, aud?}. options: jwks (the JWKS object) or jwksUrl
 * (subgate's /.well-known/jwks.json, fetched and cached), issuer and audience (checked when
 * given), now (Unix seconds, default the clock), leeway (seconds of clock skew, default 60).
 * Throws EntitlementTokenError on a malformed token, an alg other than ES256 or EdDSA, an
 * unknown kid, a bad signature, expiry, or a wrong issuer or audience.
 */
export async function verifyEntitlementToken(token, options = {}) {
  const { leeway = 60 } = options;
  const p = typeof token === 'string' ? token.split('.') : [];
  if (p.length !== 3) throw new EntitlementTokenError('malformed', 'entitlement token: not a JWS compact token');
  const header = b64urlJson(p[0]);
  const alg = Object.hasOwn(TOKEN_ALGS, header.alg) ? TOKEN_ALGS[header.alg] : null;
  if (!alg) throw new EntitlementTokenError('alg', `entitlement token: alg '${header.alg}' is not ES256 or EdDSA`);
  const jwk = await findKey(header.kid, options);
  if (!jwk) throw new EntitlementTokenError('unknown_kid', `entitlement token: unknown kid '${header.kid}'`);
  if (jwk.kty !== alg.kty || jwk.crv !== alg.crv) throw new EntitlementTokenError('alg', `entitlement token: alg '${header.alg}' does not match the key`);
  const { kty, crv, x, y } = jwk;
  const key = await crypto.subtle.importKey('jwk', y === undefined ? { kty, crv, x } : { kty, crv, x, y }, alg.key, false, ['verify']);
  const data = new TextEncoder().encode(`${p[0]}.${p[1]}`);
  if (!(await crypto.subtle.verify(alg.verify, key, b64urlBytes(p[2]), data))) {
    throw new EntitlementTokenError('signature', 'entitlement token: bad signature');
  }
  const claims = b64urlJson(p[1]);
  checkClaims(claims, { ...options, leeway });
  return claims;
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
