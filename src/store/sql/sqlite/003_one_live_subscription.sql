-- 003_one_live_subscription.sql: what keeps a user at one live subscription (issue #10): the
-- checkout sessions subgate opened (one open per user), the trial a session holds, Stripe's
-- `created` of a subscription (of two live ones the older is kept), and the duplicates found
-- anyway (canceled and refunded).

ALTER TABLE subscriptions ADD COLUMN created INTEGER NOT NULL DEFAULT 0;

ALTER TABLE customers ADD COLUMN trial_hold TEXT NOT NULL DEFAULT ''; -- idem_key of the holder
ALTER TABLE customers ADD COLUMN trial_hold_at INTEGER NOT NULL DEFAULT 0;

CREATE TABLE checkout_sessions (
    id TEXT NOT NULL PRIMARY KEY,  -- cs_...
    user_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,     -- digest of what was asked: the same ask gets the same session
    idem_key TEXT NOT NULL,        -- the Idempotency-Key it was created with
    url TEXT NOT NULL DEFAULT '',
    trial_days INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,          -- open, complete, expired
    created INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX checkout_sessions_user ON checkout_sessions (user_id, created DESC, id DESC);
CREATE INDEX checkout_sessions_key ON checkout_sessions (idem_key);
CREATE UNIQUE INDEX checkout_sessions_one_open ON checkout_sessions (user_id) WHERE status = 'open';

CREATE TABLE duplicate_subscriptions (
    id TEXT NOT NULL PRIMARY KEY,         -- the newer live subscription: canceled, refunded
    user_id TEXT NOT NULL,
    kept_id TEXT NOT NULL,                -- the older one, kept
    status TEXT NOT NULL,                 -- pending, resolved
    refunded INTEGER NOT NULL DEFAULT 0,  -- minor units refunded
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    detected_at INTEGER NOT NULL,
    resolved_at INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX duplicate_subscriptions_status ON duplicate_subscriptions (status);
