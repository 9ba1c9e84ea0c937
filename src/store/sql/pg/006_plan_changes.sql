-- 006_plan_changes.sql: plan changes in flight (issue #14). A subscription carries the schedule
-- that manages it and the pending update an upgrade waits on (from Stripe's subscription
-- object); the schedules table holds what each schedule changes next, and when.

ALTER TABLE subscriptions ADD COLUMN schedule_id TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN pending_price_id TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN pending_expires_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN latest_invoice TEXT NOT NULL DEFAULT '';

CREATE TABLE schedules (
    id TEXT NOT NULL PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    status TEXT NOT NULL,
    next_price_id TEXT NOT NULL,
    next_at BIGINT NOT NULL,
    stripe_updated BIGINT NOT NULL
);

CREATE INDEX schedules_subscription ON schedules (subscription_id);
