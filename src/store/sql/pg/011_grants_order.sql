-- 011_grants_order.sql: a user's grants are listed newest first, but created_at counts seconds
-- and ids are random (or digests of an Idempotency-Key), so grants made within one second came
-- back in any order. seq numbers them as they are made; the list orders by it after created_at.

ALTER TABLE tier_grants ADD COLUMN seq BIGSERIAL;
