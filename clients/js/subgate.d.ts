// subgate.d.ts: types of subgate.js, the client of subgate's user API.

export interface SubgateOptions {
  /** subgate's address, e.g. "https://billing.example.com" (a trailing slash is dropped). */
  baseUrl: string;
  /** The user's JWT, or a function returning it (called before each request). */
  token?: string | (() => string | null | undefined | Promise<string | null | undefined>);
  /** A fetch implementation; default globalThis.fetch. */
  fetch?: typeof fetch;
}

export interface Tier {
  id: string;
  name: string;
  description?: string;
  rank?: number;
  /** null: contact sales */
  price: { amount: number; currency: string; interval: string } | null;
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

export interface Subscription {
  tier: string;
  /** "none", "active", "trialing", "past_due", "canceled", ... */
  status: string;
  cancel_at_period_end?: boolean;
  current_period_end?: number | null;
  [key: string]: unknown;
}

export interface Quota {
  used: number;
  limit: number | null;
  remaining: number | null;
  resets_at?: number | string | null;
  [key: string]: unknown;
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
  invoices(options?: { limit?: number }): Promise<InvoiceList>;
  checkout(options: CheckoutOptions): Promise<CheckoutSession>;
  checkoutSuccess(sessionId: string): Promise<Subscription>;
  portal(returnUrl: string): Promise<{ url: string }>;
  cancel(options?: { immediate?: boolean }): Promise<Subscription>;
}

export default Subgate;
