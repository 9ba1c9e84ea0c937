-- 012_raw_body_lz4.sql (issue #13): each webhook event's raw body (a few KiB, kept for replay)
-- is compressed when its row is stored. PostgreSQL's own method, pglz, took about 10% of the
-- core during the webhooks row of make bench, an eighth of the database's CPU per event; lz4
-- takes a fraction of that. Only a server built with lz4 (Debian's and most are) and of version
-- 14 or later offers it, so the column is changed only where it does. Bodies already stored
-- keep their compression; both read the same.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        EXECUTE 'ALTER TABLE webhook_events ALTER COLUMN raw_body SET COMPRESSION lz4';
    END IF;
END
$$;
