-- 005_entitlement_notify.sql: every write of a subscription tells the instances sharing this
-- database which user it was about (NOTIFY subgate_entitlements, the user id as payload,
-- delivered when the writing transaction commits), so their entitlement caches drop that user
-- at once (store/pg_listen.c). A trigger, so no path that writes the table can forget it.

CREATE FUNCTION subgate_entitlements_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('subgate_entitlements', OLD.user_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
        PERFORM pg_notify('subgate_entitlements', NEW.user_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER subscriptions_notify AFTER INSERT OR UPDATE OR DELETE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION subgate_entitlements_notify();
