-- 004_health.sql: one row readiness writes to, so /readyz knows when writes fail (disk full,
-- read-only) and when they work again.

CREATE TABLE health (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
) STRICT;
