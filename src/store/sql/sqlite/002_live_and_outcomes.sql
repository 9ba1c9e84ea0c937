-- 002_live_and_outcomes.sql: a subscription's "live" flag, written with every state from the one
-- definition in src/billing/status.c (this backfill states it once more, for rows written before),
-- and idempotency records that keep a consume's outcome as data instead of a rendered reply.

ALTER TABLE subscriptions ADD COLUMN live INTEGER NOT NULL DEFAULT 0 CHECK (live IN (0, 1));
UPDATE subscriptions SET live = status IN ('active', 'trialing', 'past_due');

ALTER TABLE idempotency_keys ADD COLUMN granted INTEGER CHECK (granted IN (0, 1)); -- NULL: in flight
ALTER TABLE idempotency_keys ADD COLUMN used INTEGER NOT NULL DEFAULT 0;
ALTER TABLE idempotency_keys ADD COLUMN quota_limit INTEGER NOT NULL DEFAULT -1; -- < 0: unlimited
ALTER TABLE idempotency_keys ADD COLUMN remaining INTEGER NOT NULL DEFAULT -1;
ALTER TABLE idempotency_keys ADD COLUMN window_start INTEGER NOT NULL DEFAULT 0;
ALTER TABLE idempotency_keys ADD COLUMN resets_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE idempotency_keys ADD COLUMN tier TEXT NOT NULL DEFAULT '';

-- Replies stored by 001's code: a granted one carries the quota at the top level, a refused one
-- (402) inside "error".
UPDATE idempotency_keys SET
    granted = (response_status = 200),
    used = coalesce(json_extract(response_body, iif(response_status = 200, '$.used', '$.error.used')), 0),
    quota_limit = coalesce(json_extract(response_body, iif(response_status = 200, '$.limit', '$.error.limit')), -1),
    remaining = coalesce(json_extract(response_body, iif(response_status = 200, '$.remaining', '$.error.remaining')), -1),
    window_start = coalesce(json_extract(response_body, '$.window_start'), 0),
    resets_at = coalesce(json_extract(response_body, iif(response_status = 200, '$.resets_at', '$.error.resets_at')), 0),
    tier = coalesce(json_extract(response_body, iif(response_status = 200, '$.tier', '$.error.tier')), '')
WHERE response_status IS NOT NULL AND json_valid(response_body);

ALTER TABLE idempotency_keys DROP COLUMN response_status;
ALTER TABLE idempotency_keys DROP COLUMN response_body;
