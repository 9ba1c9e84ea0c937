-- 008_outbox.sql: outgoing webhooks to the app (issue #15). A row is written in the same
-- transaction as the change that causes it; the delivery thread claims due rows (claimed_by,
-- claim_until: a lease in Unix milliseconds), posts them and records the outcome. dedupe_key
-- makes an event once per cause (a Stripe event and type, a quota window's threshold).

CREATE TABLE outbox (
    id TEXT NOT NULL PRIMARY KEY,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT NOT NULL DEFAULT '',
    delivered_at BIGINT NOT NULL DEFAULT 0,
    claimed_by TEXT NOT NULL DEFAULT '',
    claim_until BIGINT NOT NULL DEFAULT 0,
    dedupe_key TEXT NOT NULL UNIQUE
);

CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_created ON outbox (created_at);
