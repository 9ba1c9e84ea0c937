-- 001_init.sql: the whole schema of the SPEC for PostgreSQL, the same tables as SQLite's 001.
-- Times are BIGINT Unix seconds, money BIGINT minor units. Ids and keys collate as "C" so
-- ORDER BY id sorts by bytes, as SQLite does. raw_body is BYTEA: the body is kept byte for
-- byte, whatever its encoding. No foreign keys: Stripe events arrive in any order, so a
-- subscription or invoice may be stored before the customer row it belongs to.

CREATE TABLE customers (
    user_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    stripe_customer_id TEXT COLLATE "C" NOT NULL UNIQUE,
    email TEXT NOT NULL DEFAULT '',
    had_trial BOOLEAN NOT NULL DEFAULT FALSE,
    created BIGINT NOT NULL
);

CREATE TABLE subscriptions (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    user_id TEXT COLLATE "C" NOT NULL,
    stripe_customer_id TEXT COLLATE "C" NOT NULL DEFAULT '',
    tier TEXT NOT NULL DEFAULT '',
    price_id TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    current_period_start BIGINT NOT NULL DEFAULT 0,
    current_period_end BIGINT NOT NULL DEFAULT 0,
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
    cancel_at BIGINT NOT NULL DEFAULT 0,
    canceled_at BIGINT NOT NULL DEFAULT 0,
    trial_end BIGINT NOT NULL DEFAULT 0,
    past_due_since BIGINT NOT NULL DEFAULT 0,
    stripe_updated BIGINT NOT NULL DEFAULT 0, -- the Stripe event or fetch time of this state
    updated_at BIGINT NOT NULL                -- when subgate last wrote the row
);

CREATE INDEX subscriptions_user ON subscriptions (user_id);

CREATE TABLE invoices (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    user_id TEXT COLLATE "C" NOT NULL,
    subscription_id TEXT COLLATE "C" NOT NULL DEFAULT '',
    number TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT '',
    amount_due BIGINT NOT NULL DEFAULT 0,
    amount_paid BIGINT NOT NULL DEFAULT 0,
    currency TEXT NOT NULL DEFAULT '',
    created BIGINT NOT NULL,
    period_start BIGINT NOT NULL DEFAULT 0,
    period_end BIGINT NOT NULL DEFAULT 0,
    hosted_invoice_url TEXT NOT NULL DEFAULT '',
    invoice_pdf TEXT NOT NULL DEFAULT ''
);

CREATE INDEX invoices_user_created ON invoices (user_id, created DESC, id DESC);

CREATE TABLE usage_counters (
    user_id TEXT COLLATE "C" NOT NULL,
    quota TEXT COLLATE "C" NOT NULL,
    window_start BIGINT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0),
    PRIMARY KEY (user_id, quota, window_start)
);

-- The webhook inbox: each Stripe event id is applied at most once.
CREATE TABLE webhook_events (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    type TEXT NOT NULL,
    created BIGINT NOT NULL,
    raw_body BYTEA NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('applied', 'failed', 'ignored')),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error TEXT NOT NULL DEFAULT '',
    received_at BIGINT NOT NULL,
    applied_at BIGINT           -- NULL until applied
);

CREATE INDEX webhook_events_status ON webhook_events (status);
CREATE INDEX webhook_events_received ON webhook_events (received_at DESC, id DESC);

-- Replies to requests that carried an idempotency key, replayed on a retry with the same key.
CREATE TABLE idempotency_keys (
    key TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    scope TEXT NOT NULL,        -- the operation, e.g. "usage.consume"
    request_hash TEXT NOT NULL, -- a retry with another body under the same key is refused
    response_status INTEGER,    -- NULL while the first request is in flight
    response_body TEXT,
    created BIGINT NOT NULL
);

CREATE INDEX idempotency_keys_created ON idempotency_keys (created);
