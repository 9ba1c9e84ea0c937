-- 010_failed_events_index.sql (issue #13): the inbox's index on status held every event, so each
-- event written changed one more index page, and no query used it (the event list asks for all
-- events or for the failed ones). Only failed events are indexed now, in the list's order.

DROP INDEX webhook_events_status;

CREATE INDEX webhook_events_failed ON webhook_events (received_at DESC, id DESC)
    WHERE status = 'failed';
