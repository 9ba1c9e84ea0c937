-- 002_live_and_outcomes.sql: a subscription's "live" flag, written with every state from the one
-- definition in src/billing/status.c (this backfill states it once more, for rows written before),
-- and idempotency records that keep a consume's outcome as data instead of a rendered reply.

ALTER TABLE subscriptions ADD COLUMN live BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE subscriptions SET live = status IN ('active', 'trialing', 'past_due');

ALTER TABLE idempotency_keys
    ADD COLUMN granted BOOLEAN, -- NULL: in flight
    ADD COLUMN used BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN quota_limit BIGINT NOT NULL DEFAULT -1, -- < 0: unlimited
    ADD COLUMN remaining BIGINT NOT NULL DEFAULT -1,
    ADD COLUMN window_start BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN resets_at BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN tier TEXT NOT NULL DEFAULT '';

-- Replies stored by 001's code: a granted one carries the quota at the top level, a refused one
-- (402) inside "error".
UPDATE idempotency_keys SET
    granted = (response_status = 200),
    used = coalesce((b ->> 'used')::bigint, 0),
    quota_limit = coalesce((b ->> 'limit')::bigint, -1),
    remaining = coalesce((b ->> 'remaining')::bigint, -1),
    window_start = coalesce((b ->> 'window_start')::bigint, 0),
    resets_at = coalesce((b ->> 'resets_at')::bigint, 0),
    tier = coalesce(b ->> 'tier', '')
FROM (SELECT key AS k, CASE WHEN response_status = 200 THEN response_body::jsonb
                            ELSE response_body::jsonb -> 'error' END AS b
      FROM idempotency_keys WHERE response_status IS NOT NULL) AS old
WHERE key = old.k;

ALTER TABLE idempotency_keys DROP COLUMN response_status, DROP COLUMN response_body;
