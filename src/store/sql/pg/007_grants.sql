-- 007_grants.sql: tiers granted to users outside Stripe (issue #15): contracts (Enterprise),
-- comps, support. A grant may start later and end; a revoked one stays, for the record.

CREATE TABLE tier_grants (
    id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);

CREATE INDEX tier_grants_user ON tier_grants (user_id);
