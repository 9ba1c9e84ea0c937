// subgate.d.ts: types of subgate.js, the client of subgate's user API.

export interface SubgateOptions {
  /** subgate's address, e.g. "https://billing.example.com" (a trailing slash is dropped). */
  baseUrl: string;
  /** The user's JWT, or a function returning it (called before each request). */
  token?: string | (() => string | null | undefined | Promise<string | null | undefined>);
  /** A fetch implementation; default globalThis.fetch. */
  fetch?: typeof fetch;
}

export type Interval = 'month' | 'year';

/** A price in minor units (cents). */
export interface Price {
  amount: number;
  currency: string;
  interval: Interval;
}

export interface Tier {
  id: string;
  name: string;
  description?: string;
  rank?: number;
  /** The primary price; null: contact sales */
  price: Price | null;
  /** The prices sold, one per interval (e.g. month and year); [] for contact sales. */
  prices?: Price[];
  /** whether checkout() can sell it */
  checkout: boolean;
  contact_sales?: boolean;
  features: string[];
  [key: string]: unknown;
}

export interface Pricing {
  publishable_key?: string | null;
  tiers: Tier[];
  [key: string]: unknown;
}

/** A downgrade (or a shorter interval) scheduled for the period end; cancelPlanChange() withdraws it. */
export interface ScheduledChange {
  type: 'downgrade';
  status: 'scheduled';
  tier: string | null;
  interval: Interval | null;
  price_id: string;
  /** Unix seconds: when it takes effect (the period end). */
  effective_at: number | null;
  schedule_id: string;
}

/** An upgrade waiting for its invoice to be paid (declined card, or authentication needed). */
export interface PaymentPendingChange {
  type: 'upgrade';
  status: 'payment_pending';
  tier: string | null;
  interval: Interval | null;
  price_id: string;
  /** Unix seconds: the upgrade lapses then if unpaid. */
  expires_at: number | null;
  /** Paying hosted_invoice_url applies the upgrade; null until its webhook arrived. */
  invoice: {
    id: string;
    status: string;
    amount_due: number;
    currency: string;
    hosted_invoice_url: string;
  } | null;
}

/** The change in flight, shown by subscription(); null when there is none. */
export type PendingChange = ScheduledChange | PaymentPendingChange | null;

/** What changePlan(), cancelPlanChange() or resumeSubscription() did. */
export interface PlanChange {
  type: 'upgrade' | 'downgrade' | 'none' | 'withdrawn' | 'resume';
  status: 'applied' | 'scheduled' | 'unchanged' | 'withdrawn' | 'resumed';
  /** A downgrade: when it takes effect (the period end), Unix seconds. */
  effective_at?: number;
  /** An upgrade: its proration invoice, charged at once. */
  invoice?: {
    id: string;
    status: string;
    amount_due: number;
    amount_paid: number;
    currency: string;
    hosted_invoice_url: string;
  } | null;
}

export interface Subscription {
  /** The tier it grants now ("free" when it grants none). */
  tier: string;
  /** "none", "active", "trialing", "past_due", "canceled", ... */
  status: string;
  id?: string;
  price_id?: string | null;
  /** The interval of its price; null when its price is in no tier. */
  interval?: Interval | null;
  cancel_at_period_end?: boolean;
  /** Unix seconds; null when unset. */
  cancel_at?: number | null;
  current_period_start?: number | null;
  current_period_end?: number | null;
  trial_end?: number | null;
  access?: string;
  access_until?: number | null;
  pending_change?: PendingChange;
  [key: string]: unknown;
}

/** The answer of changePlan(), cancelPlanChange() and resumeSubscription(). */
export interface SubscriptionWithChange extends Subscription {
  change: PlanChange;
}

export interface PlanChangeOptions {
  /** A tier sold through checkout. */
  tier: string;
  /** Default: the interval the user pays by now (when the tier is sold per it). */
  interval?: Interval;
}

/** The answer of previewPlanChange(): what changePlan() would do, nothing changed. */
export interface PlanPreview {
  change: 'upgrade' | 'downgrade' | 'none';
  tier: string;
  interval: Interval;
  price_id: string;
  price: Price;
  /** Unix seconds: now for an upgrade, the period end for a downgrade; 0 for none. */
  effective_at: number;
  /** Minor units charged at once: an upgrade's proration, 0 for a downgrade. */
  amount_due_now: number;
  currency: string;
  /** The invoice after the change. */
  next_invoice: { amount_due: number; currency: string; date: number };
}

export interface Quota {
  used: number;
  limit: number | null;
  remaining: number | null;
  resets_at?: number | string | null;
  /** Units granted on top of limit for this window; shown with balance when either is non-zero. */
  extra?: number;
  /** Granted units kept until used, drawn on once limit + extra are used. */
  balance?: number;
  [key: string]: unknown;
}

export interface LedgerEntry {
  id: number;
  user_id: string;
  quota: string;
  kind: 'consume' | 'track' | 'refund' | 'grant';
  amount: number;
  scope: 'window' | 'balance';
  window_start: number | null;
  used_after: number;
  balance_change: number;
  idempotency_key: string | null;
  request_id: string | null;
  reason: string | null;
  created_at: number;
  created_at_ms: number;
}

export interface LedgerList {
  object: 'list';
  user_id: string;
  data: LedgerEntry[];
  has_more: boolean;
  next_before: number | null;
}

export interface Usage {
  quotas?: Record<string, Quota>;
  [key: string]: unknown;
}

export interface Invoice {
  id: string;
  [key: string]: unknown;
}

export interface InvoiceList {
  data: Invoice[];
  [key: string]: unknown;
}

export interface CheckoutSession {
  session_id: string;
  /** The hosted checkout page: send the browser there. */
  url: string;
  trial?: unknown;
}

export interface CheckoutOptions {
  tier: string;
  /** Must be on ALLOWED_REDIRECT_ORIGINS; may hold {CHECKOUT_SESSION_ID}. */
  successUrl: string;
  cancelUrl: string;
  trialDays?: number;
  /** Which of the tier's prices (Tier.prices); default its primary price. */
  interval?: Interval;
}

/** An error answer: subgate's {"error": {type, code, param, message}} and its status. */
export class SubgateError extends Error {
  /** The HTTP status; 0 when subgate could not be reached. */
  status: number;
  type: string;
  code: string | null;
  param: string | null;
  message: string;
  /** The Request-Id header, to find the request in subgate's logs. */
  requestId: string | null;
}

export class Subgate {
  constructor(options: SubgateOptions);
  baseUrl: string;
  token: SubgateOptions['token'];
  pricing(): Promise<Pricing>;
  subscription(): Promise<Subscription>;
  usage(): Promise<Usage>;
  ledger(options?: { quota?: string; limit?: number; before?: number }): Promise<LedgerList>;
  invoices(options?: { limit?: number }): Promise<InvoiceList>;
  checkout(options: CheckoutOptions): Promise<CheckoutSession>;
  checkoutSuccess(sessionId: string): Promise<Subscription>;
  portal(returnUrl: string): Promise<{ url: string }>;
  cancel(options?: { immediate?: boolean }): Promise<Subscription>;
  /** An upgrade now (charged; rejects 402 payment_pending when declined), a downgrade at period end. */
  changePlan(options: PlanChangeOptions): Promise<SubscriptionWithChange>;
  previewPlanChange(options: PlanChangeOptions): Promise<PlanPreview>;
  /** Withdraws the downgrade scheduled for the period end. */
  cancelPlanChange(): Promise<SubscriptionWithChange>;
  /** Withdraws a cancellation at period end. */
  resumeSubscription(): Promise<SubscriptionWithChange>;
  /** A user's own token; a service (service key as token) names the user. */
  entitlementToken(options?: { userId?: string }): Promise<EntitlementTokenAnswer>;
}

export interface EntitlementTokenAnswer {
  token: string;
  /** Unix seconds: the token's exp. */
  expires_at: number;
  /** The key that signed it, as /.well-known/jwks.json lists it. */
  kid: string;
}

export interface EntitlementQuota {
  /** null: unlimited. */
  limit: number | null;
  used: number;
  remaining: number | null;
  window: string;
  window_start: number;
  resets_at: number;
}

export interface EntitlementClaims {
  iss: string;
  sub: string;
  aud?: string;
  iat: number;
  exp: number;
  tier: string;
  features: string[];
  quotas: Record<string, EntitlementQuota>;
}

export interface Jwks {
  keys: Array<Record<string, unknown>>;
}

export interface VerifyEntitlementOptions {
  /** The JWKS itself, or jwksUrl: subgate's /.well-known/jwks.json, fetched and cached. */
  jwks?: Jwks;
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  /** Unix seconds; default the clock. */
  now?: number;
  /** Seconds of clock skew accepted after exp; default 60. */
  leeway?: number;
  fetch?: typeof fetch;
}

export class EntitlementTokenError extends Error {
  code: 'malformed' | 'alg' | 'unknown_kid' | 'signature' | 'expired' | 'issuer' | 'audience' | 'jwks';
}

/** Verifies a token locally (WebCrypto: ES256, and Ed25519 where the runtime has it). */
export function verifyEntitlementToken(token: string, options: VerifyEntitlementOptions): Promise<EntitlementClaims>;

export default Subgate;

/** An outgoing webhook event of subgate (APP_WEBHOOK_URL). */
export interface WebhookEvent {
  id: string; // "evt_...": stable, for dedupe
  type:
    | 'subscription.tier_changed'
    | 'subscription.trial_will_end'
    | 'subscription.duplicate_canceled'
    | 'payment.failed'
    | 'payment.action_required'
    | 'quota.threshold'
    | 'quota.exhausted';
  created: number;
  data: Record<string, unknown>;
}

/**
 * Verifies `Subgate-Signature` over the raw body with any of `secrets`; resolves to the event,
 * rejects with SubgateError (code `invalid_signature`).
 */
export function verifyWebhook(
  rawBody: string | Uint8Array,
  signatureHeader: string | null | undefined,
  secrets: string | string[],
  options?: { toleranceSeconds?: number; now?: number },
): Promise<WebhookEvent>;
