-- 001_init.sql: the whole schema of the SPEC for SQLite. Times are INTEGER Unix seconds, money
-- INTEGER minor units, booleans INTEGER 0/1. STRICT tables refuse a value of the wrong type.
-- No foreign keys between these tables: Stripe events arrive in any order, so a subscription
-- or invoice may be stored before the customer row it belongs to.

CREATE TABLE customers (
    user_id TEXT NOT NULL PRIMARY KEY,
    stripe_customer_id TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL DEFAULT '',
    had_trial INTEGER NOT NULL DEFAULT 0 CHECK (had_trial IN (0, 1)),
    created INTEGER NOT NULL
) STRICT;

CREATE TABLE subscriptions (
    id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    stripe_customer_id TEXT NOT NULL DEFAULT '',
    tier TEXT NOT NULL DEFAULT '',
    price_id TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    current_period_start INTEGER NOT NULL DEFAULT 0,
    current_period_end INTEGER NOT NULL DEFAULT 0,
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0 CHECK (cancel_at_period_end IN (0, 1)),
    cancel_at INTEGER NOT NULL DEFAULT 0,
    canceled_at INTEGER NOT NULL DEFAULT 0,
    trial_end INTEGER NOT NULL DEFAULT 0,
    past_due_since INTEGER NOT NULL DEFAULT 0,
    stripe_updated INTEGER NOT NULL DEFAULT 0, -- the Stripe event or fetch time of this state
    updated_at INTEGER NOT NULL                -- when subgate last wrote the row
) STRICT;

CREATE INDEX subscriptions_user ON subscriptions (user_id);

CREATE TABLE invoices (
    id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL DEFAULT '',
    number TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT '',
    amount_due INTEGER NOT NULL DEFAULT 0,
    amount_paid INTEGER NOT NULL DEFAULT 0,
    currency TEXT NOT NULL DEFAULT '',
    created INTEGER NOT NULL,
    period_start INTEGER NOT NULL DEFAULT 0,
    period_end INTEGER NOT NULL DEFAULT 0,
    hosted_invoice_url TEXT NOT NULL DEFAULT '',
    invoice_pdf TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX invoices_user_created ON invoices (user_id, created DESC, id DESC);

CREATE TABLE usage_counters (
    user_id TEXT NOT NULL,
    quota TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
    PRIMARY KEY (user_id, quota, window_start)
) STRICT, WITHOUT ROWID;

-- The webhook inbox: each Stripe event id is applied at most once.
CREATE TABLE webhook_events (
    id TEXT NOT NULL PRIMARY KEY,
    type TEXT NOT NULL,
    created INTEGER NOT NULL,
    raw_body TEXT NOT NULL,
    status TEXT NOT NULL,       -- applied, failed, ignored
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    received_at INTEGER NOT NULL,
    applied_at INTEGER          -- NULL until applied
) STRICT;

CREATE INDEX webhook_events_status ON webhook_events (status);

-- Replies to requests that carried an idempotency key, replayed on a retry with the same key.
CREATE TABLE idempotency_keys (
    key TEXT NOT NULL PRIMARY KEY,
    scope TEXT NOT NULL,        -- the operation, e.g. "usage.consume"
    request_hash TEXT NOT NULL, -- a retry with another body under the same key is refused
    response_status INTEGER,    -- NULL while the first request is in flight
    response_body TEXT,
    created INTEGER NOT NULL
) STRICT;

CREATE INDEX idempotency_keys_created ON idempotency_keys (created);
