-- 006_grants.sql: tiers granted to users outside Stripe (issue #15): contracts (Enterprise),
-- comps, support. A grant may start later and end; a revoked one stays, for the record.

CREATE TABLE tier_grants (
    id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
) STRICT;

CREATE INDEX tier_grants_user ON tier_grants (user_id);
