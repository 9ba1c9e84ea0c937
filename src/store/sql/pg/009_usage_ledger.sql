-- 009_usage_ledger.sql (issue #15): the usage ledger, one append-only entry per change of a
-- user's usage or quota units, and extra quota units granted outside the tier's limits.

CREATE TABLE usage_ledger (
    id BIGSERIAL PRIMARY KEY,
    user_id TEXT NOT NULL,
    quota TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    used_after BIGINT NOT NULL,
    balance BIGINT NOT NULL,
    idem_key TEXT NOT NULL,
    request_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE INDEX usage_ledger_user ON usage_ledger (user_id, id);

-- A grant made with an Idempotency-Key is made once per user and key.
CREATE UNIQUE INDEX usage_ledger_grant_key ON usage_ledger (user_id, idem_key)
    WHERE kind = 'grant' AND idem_key <> '';

-- window_start -9223372036854775808 is the balance row; taken counts, on a window's row, the
-- balance units that window's consumes drew (a refund gives them back).
CREATE TABLE quota_extras (
    user_id TEXT NOT NULL,
    quota TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    units BIGINT NOT NULL,
    taken BIGINT NOT NULL,
    PRIMARY KEY (user_id, quota, window_start)
);

-- A consume's stored outcome (its answer to a retry) shows the extra units and balance too.
ALTER TABLE idempotency_keys ADD COLUMN extra BIGINT NOT NULL DEFAULT 0;
ALTER TABLE idempotency_keys ADD COLUMN balance BIGINT NOT NULL DEFAULT 0;

-- The latest clock transition of a grant (its start, when later than its making, or its end)
-- whose tier change was announced (subscription.tier_changed): each is announced once.
ALTER TABLE tier_grants ADD COLUMN announced_at BIGINT NOT NULL DEFAULT 0;

-- The past_due_since whose end of grace (PAST_DUE_GRACE_DAYS later, when the tier drops by the
-- clock) was announced (subscription.tier_changed): each once.
ALTER TABLE subscriptions ADD COLUMN grace_announced BIGINT NOT NULL DEFAULT 0;
