/*
 * pg.c: the PostgreSQL backend of store/: its SQL and its row operations, one small function
 * each. Atomic steps are single conditional statements (INSERT ... ON CONFLICT ... WHERE ...
 * RETURNING) or row locks (SELECT ... FOR UPDATE). The pool and the transaction runner are in
 * pg_db.c; every rule made of several operations is above the ops table (apply.c, usage.c,
 * migrate.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "store/backend.h"
#include "store/migrations.h"
#include "store/pg_db.h"

#define MIGRATE_LOCK_KEY "7526466872665830517" /* pg_advisory_xact_lock key of migrations */

/* Column lists in the field order of the store_*_record tables (backend.h). */
#define CUSTOMER_COLS "user_id, stripe_customer_id, email, had_trial, created"
#define SUBSCRIPTION_COLS                                                             \
    "id, user_id, stripe_customer_id, tier, price_id, status, current_period_start, " \
    "current_period_end, cancel_at_period_end, cancel_at, canceled_at, trial_end, "   \
    "past_due_since, stripe_updated, created, schedule_id, pending_price_id, "        \
    "pending_expires_at, latest_invoice"
#define GRANT_COLS \
    "id, user_id, tier, starts_at, ends_at, reason, created_at, revoked_at, announced_at"
#define LEDGER_COLS                                                               \
    "user_id, quota, kind, amount, window_start, used_after, balance, idem_key, " \
    "request_id, reason, created_ms, id"
#define EXTRA_COLS    "user_id, quota, window_start, units, taken"
#define SCHEDULE_COLS "id, subscription_id, status, next_price_id, next_at, stripe_updated"
#define SUBSCRIPTION_INSERT                                                \
    "INSERT INTO subscriptions (" SUBSCRIPTION_COLS ", updated_at, live) " \
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) "
#define INVOICE_COLS                                                                             \
    "id, user_id, subscription_id, number, status, amount_due, amount_paid, currency, created, " \
    "period_start, period_end, hosted_invoice_url, invoice_pdf"
#define INVOICE_INSERT                         \
    "INSERT INTO invoices (" INVOICE_COLS ") " \
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
#define EVENT_COLS "id, type, created, status, attempts, last_error, received_at, applied_at"
#define OUTCOME_COLS \
    "granted, used, quota_limit, remaining, window_start, resets_at, tier, extra, balance"
#define CHECKOUT_COLS \
    "id, user_id, fingerprint, idem_key, url, trial_days, status, created, expires_at"
#define OUTBOX_COLS                                                                  \
    "id, type, payload, created_at, next_attempt_at, attempts, status, last_error, " \
    "delivered_at, claimed_by, claim_until, dedupe_key"
#define DUP_COLS \
    "id, user_id, kept_id, status, refunded, attempts, last_error, detected_at, resolved_at"

/* clang-format off */
/* usage_list: one primary-key lookup per (quota, window start) pair, $q and $w. */
#define USAGE_ARM(q, w) \
    "SELECT quota, window_start, used FROM usage_counters " \
    "WHERE user_id = $1 AND quota = $" q " AND window_start = $" w
/* usage_list of n pairs: USAGE_LIST_n, n arms. */
#define USAGE_LIST_1 USAGE_ARM("2", "3")
#define USAGE_LIST_2 USAGE_LIST_1 " UNION ALL " USAGE_ARM("4", "5")
#define USAGE_LIST_3 USAGE_LIST_2 " UNION ALL " USAGE_ARM("6", "7")
#define USAGE_LIST_4 USAGE_LIST_3 " UNION ALL " USAGE_ARM("8", "9")
#define USAGE_LIST_5 USAGE_LIST_4 " UNION ALL " USAGE_ARM("10", "11")
#define USAGE_LIST_6 USAGE_LIST_5 " UNION ALL " USAGE_ARM("12", "13")
#define USAGE_LIST_7 USAGE_LIST_6 " UNION ALL " USAGE_ARM("14", "15")
#define USAGE_LIST_8 USAGE_LIST_7 " UNION ALL " USAGE_ARM("16", "17")

const struct pg_stmt_def pg_stmts[PGS_COUNT] = {
    [PGS_SCHEMA_VERSION] = { "SELECT coalesce(max(version), 0) FROM schema_migrations", false },
    [PGS_MIGRATION_BUMP] = { "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", true },
    [PGS_PING] = { "SELECT 1", false },
    [PGS_CUSTOMER_GET] = { "SELECT " CUSTOMER_COLS " FROM customers WHERE user_id = $1", false },
    [PGS_CUSTOMER_GET_BY_STRIPE_ID] = {
        "SELECT " CUSTOMER_COLS " FROM customers WHERE stripe_customer_id = $1", false },
    [PGS_CUSTOMER_INSERT] = {
        "INSERT INTO customers (" CUSTOMER_COLS ") VALUES ($1, $2, $3, $4, $5)", true },
    /* Either side already linked (user or Stripe customer): the existing link is kept. */
    [PGS_CUSTOMER_INSERT_NEW] = {
        "INSERT INTO customers (" CUSTOMER_COLS ") VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT DO NOTHING", true },
    [PGS_CUSTOMER_MARK_TRIAL] = {
        "UPDATE customers SET had_trial = TRUE WHERE user_id = $1", true },
    [PGS_SUBSCRIPTION_PUT] = {
        SUBSCRIPTION_INSERT
        "ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, "
        "stripe_customer_id = excluded.stripe_customer_id, tier = excluded.tier, "
        "price_id = excluded.price_id, status = excluded.status, "
        "current_period_start = excluded.current_period_start, "
        "current_period_end = excluded.current_period_end, "
        "cancel_at_period_end = excluded.cancel_at_period_end, cancel_at = excluded.cancel_at, "
        "canceled_at = excluded.canceled_at, trial_end = excluded.trial_end, "
        "past_due_since = excluded.past_due_since, stripe_updated = excluded.stripe_updated, "
    "schedule_id = excluded.schedule_id, pending_price_id = excluded.pending_price_id, "
    "pending_expires_at = excluded.pending_expires_at, latest_invoice = excluded.latest_invoice, "
        "updated_at = excluded.updated_at, live = excluded.live, created = greatest(excluded.created, subscriptions.created)", true },
    [PGS_SUBSCRIPTION_INSERT_NEW] = { SUBSCRIPTION_INSERT "ON CONFLICT (id) DO NOTHING", true },
    [PGS_SUBSCRIPTION_GET] = {
        "SELECT " SUBSCRIPTION_COLS " FROM subscriptions WHERE id = $1", false },
    [PGS_SUBSCRIPTION_LOCK] = {
        "SELECT " SUBSCRIPTION_COLS " FROM subscriptions WHERE id = $1 FOR UPDATE", false },
    [PGS_SUBSCRIPTION_GET_FOR_USER] = {
        "SELECT " SUBSCRIPTION_COLS " FROM subscriptions WHERE user_id = $1 "
        "ORDER BY live DESC, updated_at DESC, stripe_updated DESC, id DESC LIMIT 1", false },
    [PGS_INVOICE_PUT] = {
        INVOICE_INSERT
        "ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, "
        "subscription_id = excluded.subscription_id, number = excluded.number, "
        "status = excluded.status, amount_due = excluded.amount_due, "
        "amount_paid = excluded.amount_paid, currency = excluded.currency, "
        "created = excluded.created, period_start = excluded.period_start, "
        "period_end = excluded.period_end, hosted_invoice_url = excluded.hosted_invoice_url, "
        "invoice_pdf = excluded.invoice_pdf", true },
    [PGS_INVOICE_INSERT_NEW] = { INVOICE_INSERT "ON CONFLICT (id) DO NOTHING", true },
    [PGS_INVOICE_GET] = { "SELECT " INVOICE_COLS " FROM invoices WHERE id = $1", false },
    [PGS_INVOICE_LOCK] = {
        "SELECT " INVOICE_COLS " FROM invoices WHERE id = $1 FOR UPDATE", false },
    /* PGS_CUSTOMER_GET_BY_STRIPE_ID ($1) and PGS_INVOICE_LOCK ($2), each maybe no row, as one */
    [PGS_INVOICE_CONTEXT] = {
        "SELECT c.*, i.* FROM (VALUES (1)) AS one(n) "
        "LEFT JOIN LATERAL (SELECT " CUSTOMER_COLS " FROM customers "
        "WHERE stripe_customer_id = $1) AS c ON TRUE "
        "LEFT JOIN LATERAL (SELECT " INVOICE_COLS " FROM invoices WHERE id = $2 FOR UPDATE) AS i "
        "ON TRUE", false },
    [PGS_INVOICE_LIST] = {
        "SELECT " INVOICE_COLS " FROM invoices WHERE user_id = $1 "
        "ORDER BY created DESC, id DESC LIMIT $2", false },
    [PGS_USAGE_GET] = {
        "SELECT used FROM usage_counters "
        "WHERE user_id = $1 AND quota = $2 AND window_start = $3", false },
    /* One primary-key lookup per (quota, window start) pair: one statement per count of pairs. */
    [PGS_USAGE_LIST_1] = { USAGE_LIST_1, false },
    [PGS_USAGE_LIST_1 + 1] = { USAGE_LIST_2, false },
    [PGS_USAGE_LIST_1 + 2] = { USAGE_LIST_3, false },
    [PGS_USAGE_LIST_1 + 3] = { USAGE_LIST_4, false },
    [PGS_USAGE_LIST_1 + 4] = { USAGE_LIST_5, false },
    [PGS_USAGE_LIST_1 + 5] = { USAGE_LIST_6, false },
    [PGS_USAGE_LIST_1 + 6] = { USAGE_LIST_7, false },
    [PGS_USAGE_LIST_8] = { USAGE_LIST_8, false },
    /*
     * One statement: ON CONFLICT locks the counter and evaluates the WHERE on its latest
     * version, so the check and the add cannot be separated. $5 is the limit (INT64_MAX when
     * unlimited); "$4 <= $5 - used" cannot overflow because 0 <= used. No row comes back when
     * the grant is refused.
     */
    [PGS_USAGE_ADD] = {
        "INSERT INTO usage_counters AS u (user_id, quota, window_start, used) "
        "SELECT $1::text, $2::text, $3::bigint, $4::bigint WHERE $4::bigint <= $5::bigint "
        "ON CONFLICT (user_id, quota, window_start) DO UPDATE SET used = u.used + excluded.used "
        "WHERE excluded.used <= $5::bigint - u.used RETURNING used", true },
    /*
     * PGS_USAGE_ADD and the ledger entry of what it granted, in one statement: $1-$12 are the
     * entry's fields (LEDGER_COLS; used_after, $6, comes from the counter), $13 the limit. No
     * row comes back, and no entry is written, when the grant is refused.
     */
    [PGS_USAGE_ADD_NOTED] = {
        "WITH c AS (INSERT INTO usage_counters AS u (user_id, quota, window_start, used) "
        "SELECT $1::text, $2::text, $5::bigint, $4::bigint WHERE $4::bigint <= $13::bigint "
        "ON CONFLICT (user_id, quota, window_start) DO UPDATE SET used = u.used + excluded.used "
        "WHERE excluded.used <= $13::bigint - u.used RETURNING u.used) "
        "INSERT INTO usage_ledger (" LEDGER_COLS ") SELECT $1, $2, $3, $4, $5, "
        "c.used + 0 * $6::bigint, $7, $8, $9, $10, $11, "
        "coalesce(nullif($12::bigint, 0), nextval('usage_ledger_id_seq')) FROM c "
        "RETURNING used_after", true },
    [PGS_USAGE_SUB] = {
        "UPDATE usage_counters SET used = greatest(used - $4::bigint, 0) "
        "WHERE user_id = $1 AND quota = $2 AND window_start = $3 RETURNING used", true },
    [PGS_EVENT_GET] = { "SELECT " EVENT_COLS " FROM webhook_events WHERE id = $1", false },
    /*
     * Records the event first, inside the transaction that applies it: the unique id makes a
     * concurrent delivery of the same event wait for this one, then find it applied ($7 =
     * replay: record it again whatever its status). No row changed: a duplicate.
     */
    [PGS_EVENT_CLAIM] = {
        "INSERT INTO webhook_events AS e (id, type, created, raw_body, status, attempts, "
        "last_error, received_at, applied_at) VALUES ($1, $2, $3, $4::bytea, $5::text, 1, '', "
        "$6::bigint, CASE WHEN $5::text = 'applied' THEN $6::bigint END) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, attempts = e.attempts + 1, "
        "last_error = '', applied_at = coalesce(excluded.applied_at, e.applied_at) "
        "WHERE $7::boolean OR e.status = 'failed'", true },
    [PGS_EVENT_FAILED] = {
        "INSERT INTO webhook_events AS e (id, type, created, raw_body, status, attempts, "
        "last_error, received_at) VALUES ($1, $2, $3, $4::bytea, 'failed', 1, $5, $6) "
        "ON CONFLICT (id) DO UPDATE SET status = 'failed', attempts = e.attempts + 1, "
        "last_error = excluded.last_error", true },
    [PGS_EVENT_LIST] = {
        "SELECT " EVENT_COLS " FROM webhook_events ORDER BY received_at DESC, id DESC LIMIT $1",
        false },
    /* The partial index webhook_events_failed, in its order. */
    [PGS_EVENT_LIST_FAILED] = {
        "SELECT " EVENT_COLS " FROM webhook_events WHERE status = 'failed' "
        "ORDER BY received_at DESC, id DESC LIMIT $1", false },
    [PGS_EVENT_RAW] = { "SELECT raw_body FROM webhook_events WHERE id = $1", false },
    /* The first request with a key inserts it; one with the same key waits until it commits. */
    [PGS_KEYED_CLAIM] = {
        "INSERT INTO idempotency_keys (key, scope, request_hash, created) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING", true },
    [PGS_KEYED_GET] = {
        "SELECT " OUTCOME_COLS ", granted IS NOT NULL, scope, request_hash "
        "FROM idempotency_keys WHERE key = $1", false },
    [PGS_KEYED_DECIDE] = {
        "UPDATE idempotency_keys SET granted = $1, used = $2, quota_limit = $3, remaining = $4, "
        "window_start = $5, resets_at = $6, tier = $7, extra = $8, balance = $9 WHERE key = $10",
        true },
    [PGS_KEYED_PRUNE] = {
        "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys "
        "WHERE created < $1 ORDER BY created LIMIT $2 FOR UPDATE SKIP LOCKED)", true },
    [PGS_CHECKOUT_LATEST] = {
        "SELECT " CHECKOUT_COLS " FROM checkout_sessions WHERE user_id = $1 "
        "ORDER BY status = 'open' DESC, created DESC, id DESC LIMIT 1", false },
    [PGS_CHECKOUT_EXPIRE_STALE] = {
        "UPDATE checkout_sessions SET status = 'expired' "
        "WHERE user_id = $1 AND status = 'open' AND expires_at <= $2", true },
    [PGS_CHECKOUT_INSERT] = {
        "INSERT INTO checkout_sessions (" CHECKOUT_COLS ") "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", true },
    [PGS_CHECKOUT_CLOSE] = {
        "UPDATE checkout_sessions SET status = $2 WHERE id = $1 AND status = 'open'", true },
    /*
     * The trial is free when nobody holds it, the caller does (a retry), its holder's session
     * expired, or its holder made no session within the hold ($4: the hold's oldest start).
     */
    [PGS_TRIAL_RESERVE] = {
        "UPDATE customers SET trial_hold = $2, trial_hold_at = $3 WHERE user_id = $1 "
        "AND NOT had_trial AND (trial_hold = '' OR trial_hold = $2 "
        "OR EXISTS (SELECT 1 FROM checkout_sessions s WHERE s.idem_key = customers.trial_hold "
        "AND s.status = 'expired') OR (trial_hold_at < $4 AND NOT EXISTS (SELECT 1 FROM "
        "checkout_sessions s WHERE s.idem_key = customers.trial_hold AND s.status <> 'expired')))",
        true },
    [PGS_SUB_LIST_LIVE] = {
        "SELECT " SUBSCRIPTION_COLS " FROM subscriptions WHERE user_id = $1 AND live "
        "ORDER BY created, seen, id LIMIT $2", false }, /* seen: first stored */
    [PGS_DUP_INSERT] = {
        "INSERT INTO duplicate_subscriptions (" DUP_COLS ") "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING", true },
    [PGS_DUP_LIST] = {
        "SELECT " DUP_COLS " FROM duplicate_subscriptions "
        "WHERE NOT $1::boolean OR status = 'pending' ORDER BY detected_at, id LIMIT $2", false },
    [PGS_DUP_UPDATE] = {
        "UPDATE duplicate_subscriptions SET status = $4, refunded = $5, attempts = $6, "
        "last_error = $7, resolved_at = $9 WHERE id = $1 AND user_id = $2 AND kept_id = $3 "
        "AND detected_at = $8", true },
    [PGS_HEALTH_TOUCH] = {
        "INSERT INTO health (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        true },
    [PGS_GRANT_INSERT] = {
        "INSERT INTO tier_grants (" GRANT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        true },
    [PGS_GRANT_GET] = { "SELECT " GRANT_COLS " FROM tier_grants WHERE id = $1", false },
    [PGS_GRANT_REVOKE] = {
        "UPDATE tier_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at = 0", true },
    [PGS_GRANT_LIST_USER] = {
        "SELECT " GRANT_COLS " FROM tier_grants WHERE user_id = $1 "
        "ORDER BY created_at DESC, seq DESC LIMIT $2", false },
    [PGS_GRANT_LIST_ACTIVE] = {
        "SELECT " GRANT_COLS " FROM tier_grants WHERE revoked_at = 0 "
        "AND (ends_at = 0 OR ends_at > $1) ORDER BY user_id, id LIMIT $2", false },
    /* Grants with a clock transition (start or end) at or before $1 not announced yet. */
    [PGS_GRANT_DUE] = {
        "SELECT " GRANT_COLS " FROM tier_grants WHERE revoked_at = 0 AND "
        "((ends_at > 0 AND ends_at <= $1 AND announced_at < ends_at) OR "
        "(starts_at > created_at AND starts_at <= $1 AND announced_at < starts_at)) "
        "ORDER BY id LIMIT $2", false },
    [PGS_GRANT_ANNOUNCE] = {
        "UPDATE tier_grants SET announced_at = $2 WHERE id = $1 AND announced_at < $2", true },
    /*
     * Past-due subscriptions whose grace ($2 s) ended at or before $1, not announced yet, and
     * after subgate stored the state (a state stored after its grace ended announced the change
     * itself, when it was stored).
     */
    [PGS_GRACE_DUE] = {
        "SELECT " SUBSCRIPTION_COLS " FROM subscriptions WHERE status = 'past_due' "
        "AND past_due_since > 0 AND past_due_since <= $1::bigint - $2::bigint "
        "AND past_due_since + $2::bigint > updated_at "
        "AND grace_announced < past_due_since ORDER BY id LIMIT $3", false },
    [PGS_GRACE_ANNOUNCE] = {
        "UPDATE subscriptions SET grace_announced = $2 WHERE id = $1 AND grace_announced < $2",
        true },
    [PGS_OUTBOX_INSERT] = {
        "INSERT INTO outbox (" OUTBOX_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
        "$11, $12) ON CONFLICT (dedupe_key) DO NOTHING", true },
    /*
     * Exactly one claimer per row across instances: the rows are locked as they are picked and
     * rows another transaction holds are skipped; the lease keeps them off until it ends.
     */
    [PGS_OUTBOX_CLAIM] = {
        "UPDATE outbox SET claimed_by = $1, claim_until = $3 WHERE id IN "
        "(SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $2 "
        "AND claim_until <= $2 ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) "
        "RETURNING " OUTBOX_COLS, true },
    [PGS_OUTBOX_FINISH] = {
        "UPDATE outbox SET next_attempt_at = $3, attempts = $4, status = $5, last_error = $6, "
        "delivered_at = $7, claimed_by = '', claim_until = 0 WHERE id = $1 AND claimed_by = $2 "
        "AND status = 'pending'", true },
    [PGS_OUTBOX_LIST] = {
        "SELECT " OUTBOX_COLS " FROM outbox WHERE NOT $1::boolean OR status = 'failed' "
        "ORDER BY created_at DESC, id DESC LIMIT $2", false },
    [PGS_OUTBOX_GET] = { "SELECT " OUTBOX_COLS " FROM outbox WHERE id = $1", false },
    [PGS_OUTBOX_REPLAY] = {
        "UPDATE outbox SET status = 'pending', next_attempt_at = $2, attempts = 0, "
        "claimed_by = '', claim_until = 0 WHERE id = $1", true },
    /* id 0 is assigned by the database (its sequence) */
    [PGS_LEDGER_INSERT] = {
        "INSERT INTO usage_ledger (" LEDGER_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
        "$10, $11, coalesce(nullif($12::bigint, 0), nextval('usage_ledger_id_seq'))) RETURNING id",
        true },
    [PGS_LEDGER_LIST] = {
        "SELECT " LEDGER_COLS " FROM usage_ledger WHERE user_id = $1 "
        "AND ($2::text = '' OR quota = $2::text) AND ($3::bigint <= 0 OR id < $3::bigint) "
        "ORDER BY id DESC LIMIT $4", false },
    [PGS_LEDGER_GRANT_GET] = {
        "SELECT " LEDGER_COLS " FROM usage_ledger WHERE user_id = $1 "
        "AND kind = 'grant' AND idem_key = $2 AND idem_key <> ''", false },
    /* The counter made (at 0) when missing, so that it can be locked. */
    [PGS_USAGE_ENSURE] = {
        "INSERT INTO usage_counters (user_id, quota, window_start, used) "
        "VALUES ($1, $2, $3, 0) ON CONFLICT (user_id, quota, window_start) DO NOTHING", true },
    [PGS_USAGE_GET_LOCK] = {
        "SELECT used FROM usage_counters "
        "WHERE user_id = $1 AND quota = $2 AND window_start = $3 FOR UPDATE", false },
    [PGS_EXTRA_GET] = {
        "SELECT " EXTRA_COLS " FROM quota_extras "
        "WHERE user_id = $1 AND quota = $2 AND window_start = $3", false },
    [PGS_EXTRA_GET_LOCK] = {
        "SELECT " EXTRA_COLS " FROM quota_extras "
        "WHERE user_id = $1 AND quota = $2 AND window_start = $3 FOR UPDATE", false },
    [PGS_EXTRA_ADD] = {
        "INSERT INTO quota_extras AS x (" EXTRA_COLS ") VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (user_id, quota, window_start) DO UPDATE SET "
        "units = x.units + excluded.units, taken = x.taken + excluded.taken", true },
    [PGS_EXTRA_ANY] = { "SELECT CASE WHEN EXISTS (SELECT 1 FROM quota_extras) THEN 1 ELSE 0 END",
                        false },
    [PGS_EXTRA_LIST] = {
        "SELECT " EXTRA_COLS " FROM quota_extras WHERE user_id = $1 "
        "ORDER BY quota, window_start LIMIT $2", false },
    [PGS_SCHEDULE_GET] = { "SELECT " SCHEDULE_COLS " FROM schedules WHERE id = $1", false },
    [PGS_SCHEDULE_LOCK] = {
        "SELECT " SCHEDULE_COLS " FROM schedules WHERE id = $1 FOR UPDATE", false },
    [PGS_SCHEDULE_PUT] = {
        "INSERT INTO schedules (" SCHEDULE_COLS ") VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (id) DO UPDATE SET subscription_id = excluded.subscription_id, "
        "status = excluded.status, next_price_id = excluded.next_price_id, "
        "next_at = excluded.next_at, stripe_updated = excluded.stripe_updated", true },
    [PGS_BEGIN] = { "BEGIN", false },
    [PGS_COMMIT] = { "COMMIT", true },
    [PGS_ROLLBACK] = { "ROLLBACK", false },
    [PGS_SAVEPOINT] = { "SAVEPOINT unit", false },
    [PGS_RELEASE] = { "RELEASE SAVEPOINT unit", false },
    [PGS_ROLLBACK_TO] = { "ROLLBACK TO SAVEPOINT unit", false },
};
/* clang-format on */

/* A query of statement id with only args (no record). */
#define QUERY(id, args)                            \
    {                                              \
        (id), NULL, NULL, (args), ARRAY_SIZE(args) \
    }

/* Schema: the version is the greatest version in schema_migrations. */

static const struct migration *pg_migrations_list(size_t *count)
{
    *count = pg_migrations_count;
    return pg_migrations;
}

/* A database never migrated has no schema_migrations table: version 0. */
static enum err pg_schema_version(struct store_tx *tx, int *version)
{
    const struct pg_query q = { PGS_SCHEMA_VERSION, NULL, NULL, NULL, 0 };
    int64_t v = 0;
    enum err err = pg_db_fetch_i64(tx, &q, &v);

    if (err == ERR_STORE && pg_db_failed_with(tx, "42P01"))
        err = ERR_OK;
    *version = err || v < 0 || v > INT_MAX ? 0 : (int)v;
    return err;
}

/*
 * The advisory lock serializes migrators across processes until the transaction ends; the
 * version is read after it is held, so a migration another instance applied meanwhile is seen.
 * A migration may take long on a big table: no statement timeout inside.
 */
static enum err pg_migration_lock(struct store_tx *tx)
{
    static const char *const steps[] = {
        "SET LOCAL statement_timeout = 0",
        "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")",
        ("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL PRIMARY KEY, "
         "name TEXT NOT NULL, applied_at BIGINT NOT NULL DEFAULT extract(epoch FROM now()))"),
    };
    enum err err = ERR_OK;

    for (size_t i = 0; i < ARRAY_SIZE(steps) && err == ERR_OK; i++)
        err = pg_db_exec(tx, steps[i]);
    return err;
}

static enum err pg_migration_run(struct store_tx *tx, const struct migration *m)
{
    const struct pg_arg args[] = { pg_i64(m->version), pg_text(m->name) };
    const struct pg_query bump = QUERY(PGS_MIGRATION_BUMP, args);
    enum err err = pg_db_exec(tx, m->sql);

    return err ? err : pg_db_write(tx, &bump, NULL);
}

static enum err pg_ping(struct store_tx *tx)
{
    const struct pg_query q = { PGS_PING, NULL, NULL, NULL, 0 };
    int64_t one = 0;
    enum err err = pg_db_fetch_i64(tx, &q, &one);

    return err == ERR_OK && one == 1 ? ERR_OK : ERR_STORE;
}

/* Customers */

static enum err pg_customer_get(struct store_tx *tx, const char *user_id, struct customer *out)
{
    const struct pg_arg args[] = { pg_text(user_id) };
    const struct pg_query q = QUERY(PGS_CUSTOMER_GET, args);

    return pg_db_fetch_record(tx, &q, &store_customer_record, out);
}

static enum err pg_customer_get_by_stripe_id(struct store_tx *tx, const char *stripe_customer_id,
                                             struct customer *out)
{
    const struct pg_arg args[] = { pg_text(stripe_customer_id) };
    const struct pg_query q = QUERY(PGS_CUSTOMER_GET_BY_STRIPE_ID, args);

    return pg_db_fetch_record(tx, &q, &store_customer_record, out);
}

static enum err pg_customer_insert(struct store_tx *tx, const struct customer *c)
{
    const struct pg_query q = { PGS_CUSTOMER_INSERT, &store_customer_record, c, NULL, 0 };

    return pg_db_write(tx, &q, NULL);
}

static enum err pg_customer_insert_new(struct store_tx *tx, const struct customer *c, bool *linked)
{
    const struct pg_query q = { PGS_CUSTOMER_INSERT_NEW, &store_customer_record, c, NULL, 0 };
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *linked = !err && changes == 1;
    return err;
}

static enum err pg_customer_mark_trial(struct store_tx *tx, const char *user_id, bool *found)
{
    const struct pg_arg args[] = { pg_text(user_id) };
    const struct pg_query q = QUERY(PGS_CUSTOMER_MARK_TRIAL, args);
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *found = !err && changes > 0;
    return err;
}

/* Subscriptions */

static enum err pg_subscription_get(struct store_tx *tx, const char *id, bool lock,
                                    struct subscription *out)
{
    const struct pg_arg args[] = { pg_text(id) };
    const struct pg_query q = QUERY(lock ? PGS_SUBSCRIPTION_LOCK : PGS_SUBSCRIPTION_GET, args);

    return pg_db_fetch_record(tx, &q, &store_subscription_record, out);
}

static enum err sub_write(struct store_tx *tx, enum pg_stmt id, const struct store_sub_row *r,
                          int *changes)
{
    const struct pg_arg args[] = { pg_i64(r->updated_at), pg_bool(r->live) };
    const struct pg_query q = { id, &store_subscription_record, r->sub, args, ARRAY_SIZE(args) };

    return pg_db_write(tx, &q, changes);
}

static enum err pg_subscription_insert_new(struct store_tx *tx, const struct store_sub_row *row,
                                           bool *inserted)
{
    int changes = 0;
    enum err err = sub_write(tx, PGS_SUBSCRIPTION_INSERT_NEW, row, &changes);

    *inserted = !err && changes == 1;
    return err;
}

static enum err pg_subscription_put(struct store_tx *tx, const struct store_sub_row *row)
{
    return sub_write(tx, PGS_SUBSCRIPTION_PUT, row, NULL);
}

static enum err pg_subscription_get_for_user(struct store_tx *tx, const char *user_id,
                                             struct subscription *out)
{
    const struct pg_arg args[] = { pg_text(user_id) };
    const struct pg_query q = QUERY(PGS_SUBSCRIPTION_GET_FOR_USER, args);

    return pg_db_fetch_record(tx, &q, &store_subscription_record, out);
}

/* Invoices */

static enum err pg_invoice_get(struct store_tx *tx, const char *id, bool lock, struct invoice *out)
{
    const struct pg_arg args[] = { pg_text(id) };
    const struct pg_query q = QUERY(lock ? PGS_INVOICE_LOCK : PGS_INVOICE_GET, args);

    return pg_db_fetch_record(tx, &q, &store_invoice_record, out);
}

static enum err pg_invoice_context_get(struct store_tx *tx, const char *stripe_customer_id,
                                       const char *invoice_id, struct store_invoice_context *out)
{
    const struct pg_arg args[] = { pg_text(stripe_customer_id), pg_text(invoice_id) };
    const struct pg_query q = QUERY(PGS_INVOICE_CONTEXT, args);
    const int inv_col = (int)store_customer_record.count;
    PGresult *res = NULL;
    enum err err = pg_db_query(tx, &q, &res);

    if (err == ERR_OK && PQntuples(res) != 1)
        err = ERR_STORE; /* one row, always: the VALUES row */
    if (err == ERR_OK) {
        out->customer = PQgetisnull(res, 0, 0) ? ERR_NOT_FOUND : ERR_OK; /* user_id NOT NULL */
        if (!out->customer)
            pg_db_read_record_at(res, 0, 0, &store_customer_record, &out->cus);
        out->stored = PQgetisnull(res, 0, inv_col) ? ERR_NOT_FOUND : ERR_OK; /* id NOT NULL */
        if (!out->stored)
            pg_db_read_record_at(res, 0, inv_col, &store_invoice_record, &out->inv);
    }
    PQclear(res);
    return err;
}

static enum err pg_invoice_insert_new(struct store_tx *tx, const struct invoice *inv,
                                      bool *inserted)
{
    const struct pg_query q = { PGS_INVOICE_INSERT_NEW, &store_invoice_record, inv, NULL, 0 };
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *inserted = !err && changes == 1;
    return err;
}

static enum err pg_invoice_put(struct store_tx *tx, const struct invoice *inv)
{
    const struct pg_query q = { PGS_INVOICE_PUT, &store_invoice_record, inv, NULL, 0 };

    return pg_db_write(tx, &q, NULL);
}

static enum err pg_invoice_list(struct store_tx *tx, const char *user_id, int max,
                                struct invoice *out, int *n)
{
    const struct pg_arg args[] = { pg_text(user_id), pg_i64(max) };
    const struct pg_query q = QUERY(PGS_INVOICE_LIST, args);

    return pg_db_fetch_list(tx, &q, &store_invoice_record, max, out, n);
}

/* Usage */

static enum err pg_usage_get(struct store_tx *tx, const char *user_id, const char *quota,
                             int64_t window_start, int64_t *used)
{
    const struct pg_arg args[] = { pg_text(user_id), pg_text(quota), pg_i64(window_start) };
    const struct pg_query q = QUERY(PGS_USAGE_GET, args);

    return pg_db_fetch_i64(tx, &q, used);
}

static enum err pg_usage_list(struct store_tx *tx, const char *user_id, size_t n,
                              const char *const *quotas, const int64_t *window_starts,
                              struct usage_row *out, int *k)
{
    struct pg_arg args[1 + 2 * USAGE_LIST_MAX] = { pg_text(user_id) }; /* user, then pairs */

    _Static_assert(USAGE_LIST_MAX == 8, "one statement per count of pairs, 1 to 8");
    *k = 0;
    if (n == 0 || n > USAGE_LIST_MAX)
        return ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        args[1 + 2 * i] = pg_text(quotas[i]);
        args[2 + 2 * i] = pg_i64(window_starts[i]);
    }
    const struct pg_query q = { (enum pg_stmt)(PGS_USAGE_LIST_1 + n - 1), NULL, NULL, args,
                                1 + 2 * n };
    return pg_db_fetch_list(tx, &q, &store_usage_row_record, USAGE_LIST_MAX, out, k);
}

static enum err pg_usage_add_within(struct store_tx *tx, const struct usage_grant *g,
                                    int64_t *used_after)
{
    const struct pg_arg args[] = {
        pg_text(g->user_id),
        pg_text(g->quota),
        pg_i64(g->window_start),
        pg_i64(g->n),
        pg_i64(g->limit < 0 ? INT64_MAX : g->limit),
    };
    const struct pg_query q = QUERY(PGS_USAGE_ADD, args);

    pg_db_note_usage(tx, g->user_id);
    return pg_db_fetch_i64(tx, &q, used_after);
}

static enum err pg_usage_add_noted(struct store_tx *tx, const struct usage_grant *g,
                                   const struct ledger_entry *e, int64_t *used_after)
{
    const struct pg_arg args[] = { pg_i64(g->limit < 0 ? INT64_MAX : g->limit) };
    const struct pg_query q = { PGS_USAGE_ADD_NOTED, &store_ledger_record, e, args,
                                ARRAY_SIZE(args) };

    pg_db_note_usage(tx, g->user_id);
    return pg_db_fetch_i64(tx, &q, used_after);
}

static enum err pg_usage_sub(struct store_tx *tx, const struct usage_grant *g, int64_t *used_after)
{
    const struct pg_arg args[] = { pg_text(g->user_id), pg_text(g->quota), pg_i64(g->window_start),
                                   pg_i64(g->n) };
    const struct pg_query q = QUERY(PGS_USAGE_SUB, args);

    pg_db_note_usage(tx, g->user_id);
    return pg_db_fetch_i64(tx, &q, used_after);
}

static enum err pg_grant_due(struct store_tx *tx, int64_t now, int max, struct grant_record *out,
                             int *n)
{
    const struct pg_arg args[] = { pg_i64(now), pg_i64(max) };
    const struct pg_query q = QUERY(PGS_GRANT_DUE, args);

    return pg_db_fetch_list(tx, &q, &store_grant_record, max, out, n);
}

static enum err pg_grant_announce(struct store_tx *tx, const char *id, int64_t at, bool *claimed)
{
    const struct pg_arg args[] = { pg_text(id), pg_i64(at) };
    const struct pg_query q = QUERY(PGS_GRANT_ANNOUNCE, args);
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *claimed = !err && changes > 0;
    return err;
}

static enum err pg_grace_due(struct store_tx *tx, int64_t now, int64_t grace_s, int max,
                             struct subscription *out, int *n)
{
    const struct pg_arg args[] = { pg_i64(now), pg_i64(grace_s), pg_i64(max) };
    const struct pg_query q = QUERY(PGS_GRACE_DUE, args);

    return pg_db_fetch_list(tx, &q, &store_subscription_record, max, out, n);
}

static enum err pg_grace_announce(struct store_tx *tx, const char *id, int64_t at, bool *claimed)
{
    const struct pg_arg args[] = { pg_text(id), pg_i64(at) };
    const struct pg_query q = QUERY(PGS_GRACE_ANNOUNCE, args);
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *claimed = !err && changes > 0;
    return err;
}

/* The usage ledger and extra quota units */

static enum err pg_ledger_insert(struct store_tx *tx, const struct ledger_entry *e, int64_t *id)
{
    const struct pg_query q = { PGS_LEDGER_INSERT, &store_ledger_record, e, NULL, 0 };

    return pg_db_fetch_i64(tx, &q, id);
}

static enum err pg_ledger_list(struct store_tx *tx, const char *user_id, const char *quota,
                               int64_t before, int max, struct ledger_entry *out, int *n)
{
    const struct pg_arg args[] = { pg_text(user_id), pg_text(quota), pg_i64(before), pg_i64(max) };
    const struct pg_query q = QUERY(PGS_LEDGER_LIST, args);

    return pg_db_fetch_list(tx, &q, &store_ledger_record, max, out, n);
}

static enum err pg_ledger_grant_get(struct store_tx *tx, const char *user_id, const char *key,
                                    struct ledger_entry *out)
{
    const struct pg_arg args[] = { pg_text(user_id), pg_text(key) };
    const struct pg_query q = QUERY(PGS_LEDGER_GRANT_GET, args);

    return pg_db_fetch_record(tx, &q, &store_ledger_record, out);
}

/* The counter is made when missing, then its row locked until the transaction ends. */
static enum err pg_usage_lock(struct store_tx *tx, const struct usage_grant *g, int64_t *used)
{
    const struct pg_arg args[] = { pg_text(g->user_id), pg_text(g->quota),
                                   pg_i64(g->window_start) };
    const struct pg_query ensure = QUERY(PGS_USAGE_ENSURE, args);
    const struct pg_query lock = QUERY(PGS_USAGE_GET_LOCK, args);
    enum err err = pg_db_write(tx, &ensure, NULL);

    return err ? err : pg_db_fetch_i64(tx, &lock, used);
}

static enum err pg_extra_get(struct store_tx *tx, const struct usage_grant *g, int64_t window_start,
                             bool lock, struct quota_extra *out)
{
    const struct pg_arg args[] = { pg_text(g->user_id), pg_text(g->quota), pg_i64(window_start) };
    const struct pg_query q = QUERY(lock ? PGS_EXTRA_GET_LOCK : PGS_EXTRA_GET, args);

    return pg_db_fetch_record(tx, &q, &store_extra_record, out);
}

static enum err pg_extra_add(struct store_tx *tx, const struct quota_extra *d)
{
    const struct pg_query q = { PGS_EXTRA_ADD, &store_extra_record, d, NULL, 0 };

    pg_db_note_usage(tx, d->user_id);
    pg_db_note_extras(tx);
    return pg_db_write(tx, &q, NULL);
}

static enum err pg_extra_any(struct store_tx *tx, bool *any)
{
    const struct pg_query q = { PGS_EXTRA_ANY, NULL, NULL, NULL, 0 };
    int64_t v = 0;
    enum err err = pg_db_fetch_i64(tx, &q, &v);

    *any = !err && v != 0;
    return err;
}

static enum err pg_extra_list(struct store_tx *tx, const char *user_id, int max,
                              struct quota_extra *out, int *n)
{
    const struct pg_arg args[] = { pg_text(user_id), pg_i64(max) };
    const struct pg_query q = QUERY(PGS_EXTRA_LIST, args);

    return pg_db_fetch_list(tx, &q, &store_extra_record, max, out, n);
}

/* The webhook inbox */

static enum err pg_event_get(struct store_tx *tx, const char *id, struct webhook_event *out)
{
    const struct pg_arg args[] = { pg_text(id) };
    const struct pg_query q = QUERY(PGS_EVENT_GET, args);

    return pg_db_fetch_record(tx, &q, &store_event_record, out);
}

static enum err pg_event_claim(struct store_tx *tx, const struct store_event_in *in,
                               const char *status, int64_t now, bool *claimed)
{
    const struct billing_event *ev = in->ev;
    const struct pg_arg args[] = { pg_text(ev->id),
                                   pg_text(ev->type),
                                   pg_i64(ev->created),
                                   pg_bytes(in->raw, in->raw_len),
                                   pg_text(status),
                                   pg_i64(now),
                                   pg_bool(in->mode == STORE_EVENT_REPLAY) };
    const struct pg_query q = QUERY(PGS_EVENT_CLAIM, args);
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *claimed = !err && changes == 1;
    return err;
}

/*
 * Cuts s where its UTF-8 stops being valid: PostgreSQL refuses invalid text, and a message cut
 * to fit its field may end inside a character.
 */
static void utf8_cut(char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (p[i]) {
        size_t len = p[i] < 0x80             ? 1
                     : (p[i] & 0xE0) == 0xC0 ? 2
                     : (p[i] & 0xF0) == 0xE0 ? 3
                     : (p[i] & 0xF8) == 0xF0 ? 4
                                             : 0;
        size_t k = 1;
        while (len && k < len && (p[i + k] & 0xC0) == 0x80)
            k++;
        if (!len || k < len)
            break;
        i += len;
    }
    s[i] = '\0';
}

static enum err pg_event_fail(struct store_tx *tx, const struct store_event_in *in, int64_t now,
                              const char *why)
{
    const struct billing_event *ev = in->ev;
    char last_error[sizeof(((struct webhook_event *)0)->last_error)];
    const struct pg_arg args[] = { pg_text(ev->id),     pg_text(ev->type),
                                   pg_i64(ev->created), pg_bytes(in->raw, in->raw_len),
                                   pg_text(last_error), pg_i64(now) };
    const struct pg_query q = QUERY(PGS_EVENT_FAILED, args);

    (void)str_copy(last_error, sizeof(last_error), why); /* a cut message is still a message */
    utf8_cut(last_error);
    return pg_db_write(tx, &q, NULL);
}

static enum err pg_event_list(struct store_tx *tx, bool failed_only, int max,
                              struct webhook_event *out, int *n)
{
    const struct pg_arg args[] = { pg_i64(max) };
    const struct pg_query q = QUERY(failed_only ? PGS_EVENT_LIST_FAILED : PGS_EVENT_LIST, args);

    return pg_db_fetch_list(tx, &q, &store_event_record, max, out, n);
}

/* The raw body: bytea, sent back in its text (hex) form. */
static enum err pg_event_raw(struct store_tx *tx, const char *id, char **raw, size_t *raw_len)
{
    const struct pg_arg args[] = { pg_text(id) };
    const struct pg_query q = QUERY(PGS_EVENT_RAW, args);
    PGresult *res = NULL;
    unsigned char *bytes = NULL;
    size_t len = 0;
    enum err err = pg_db_query(tx, &q, &res);

    if (err == ERR_OK && PQntuples(res) == 0)
        err = ERR_NOT_FOUND;
    if (err == ERR_OK) {
        bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 0), &len);
        if (!bytes) {
            log_error("postgres: cannot decode a raw event body");
            err = ERR_STORE;
        }
    }
    if (err == ERR_OK) {
        *raw = xmalloc(len + 1);
        if (len)
            memcpy(*raw, bytes, len);
        (*raw)[len] = '\0';
        *raw_len = len;
    }
    PQfreemem(bytes); /* NULL is a no-op */
    PQclear(res);
    return err;
}

/* Idempotency records */

static enum err pg_keyed_claim(struct store_tx *tx, const struct store_idempotency *k,
                               bool *claimed)
{
    const struct pg_arg args[] = { pg_text(k->key), pg_text(k->scope), pg_text(k->request_hash),
                                   pg_i64(k->now) };
    const struct pg_query q = QUERY(PGS_KEYED_CLAIM, args);
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *claimed = !err && changes == 1;
    return err;
}

/* The outcome's columns, then decided, scope and request_hash. */
static enum err pg_keyed_get(struct store_tx *tx, const char *key, struct store_keyed_row *out)
{
    const struct pg_arg args[] = { pg_text(key) };
    const struct pg_query q = QUERY(PGS_KEYED_GET, args);
    const int n = (int)store_outcome_record.count;
    PGresult *res = NULL;
    enum err err = pg_db_query(tx, &q, &res);

    memset(out, 0, sizeof(*out));
    if (err == ERR_OK && PQntuples(res) == 0)
        err = ERR_NOT_FOUND;
    if (err == ERR_OK) {
        pg_db_read_record(res, 0, &store_outcome_record, &out->outcome);
        out->decided = PQgetvalue(res, 0, n)[0] == 't';
        if (!str_copy(out->scope, sizeof(out->scope), PQgetvalue(res, 0, n + 1)) ||
            !str_copy(out->request_hash, sizeof(out->request_hash), PQgetvalue(res, 0, n + 2)))
            out->scope[0] = '\0'; /* cannot be ours: compares unequal */
    }
    PQclear(res);
    return err;
}

static enum err pg_keyed_decide(struct store_tx *tx, const char *key, const struct usage_outcome *o)
{
    const struct pg_arg args[] = { pg_text(key) };
    const struct pg_query q = { PGS_KEYED_DECIDE, &store_outcome_record, o, args,
                                ARRAY_SIZE(args) };

    return pg_db_write(tx, &q, NULL);
}

/* SKIP LOCKED: a key that a request is still deciding is left for the next round. */
static enum err pg_keyed_prune(struct store_tx *tx, int64_t before, int max, int *deleted)
{
    const struct pg_arg args[] = { pg_i64(before), pg_i64(max) };
    const struct pg_query q = QUERY(PGS_KEYED_PRUNE, args);

    return pg_db_write(tx, &q, deleted);
}

/* Checkout sessions and trials */

static enum err pg_checkout_latest(struct store_tx *tx, const char *user_id,
                                   struct checkout_record *out)
{
    const struct pg_arg args[] = { pg_text(user_id) };
    const struct pg_query q = QUERY(PGS_CHECKOUT_LATEST, args);

    return pg_db_fetch_record(tx, &q, &store_checkout_record, out);
}

static enum err pg_checkout_expire_stale(struct store_tx *tx, const char *user_id, int64_t now)
{
    const struct pg_arg args[] = { pg_text(user_id), pg_i64(now) };
    const struct pg_query q = QUERY(PGS_CHECKOUT_EXPIRE_STALE, args);

    return pg_db_write(tx, &q, NULL);
}

static enum err pg_checkout_insert(struct store_tx *tx, const struct checkout_record *c)
{
    const struct pg_query q = { PGS_CHECKOUT_INSERT, &store_checkout_record, c, NULL, 0 };

    return pg_db_write(tx, &q, NULL);
}

static enum err pg_checkout_close(struct store_tx *tx, const char *id, const char *status,
                                  bool *closed)
{
    const struct pg_arg args[] = { pg_text(id), pg_text(status) };
    const struct pg_query q = QUERY(PGS_CHECKOUT_CLOSE, args);
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *closed = !err && changes == 1;
    return err;
}

static enum err pg_trial_reserve(struct store_tx *tx, const char *user_id, const char *key,
                                 int64_t now, int64_t stale_before, bool *reserved)
{
    const struct pg_arg args[] = { pg_text(user_id), pg_text(key), pg_i64(now),
                                   pg_i64(stale_before) };
    const struct pg_query q = QUERY(PGS_TRIAL_RESERVE, args);
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *reserved = !err && changes == 1;
    return err;
}

/* Live subscriptions and duplicates */

static enum err pg_subscription_list_live(struct store_tx *tx, const char *user_id, int max,
                                          struct subscription *out, int *n)
{
    const struct pg_arg args[] = { pg_text(user_id), pg_i64(max) };
    const struct pg_query q = QUERY(PGS_SUB_LIST_LIVE, args);

    return pg_db_fetch_list(tx, &q, &store_subscription_record, max, out, n);
}

static enum err pg_duplicate_insert(struct store_tx *tx, const struct duplicate_record *d,
                                    bool *inserted)
{
    const struct pg_query q = { PGS_DUP_INSERT, &store_duplicate_record, d, NULL, 0 };
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *inserted = !err && changes == 1;
    return err;
}

static enum err pg_duplicate_list(struct store_tx *tx, bool pending_only, int max,
                                  struct duplicate_record *out, int *n)
{
    const struct pg_arg args[] = { pg_bool(pending_only), pg_i64(max) };
    const struct pg_query q = QUERY(PGS_DUP_LIST, args);

    return pg_db_fetch_list(tx, &q, &store_duplicate_record, max, out, n);
}

static enum err pg_duplicate_update(struct store_tx *tx, const struct duplicate_record *d)
{
    const struct pg_query q = { PGS_DUP_UPDATE, &store_duplicate_record, d, NULL, 0 };

    return pg_db_write(tx, &q, NULL);
}

/* The outbox */

static enum err pg_outbox_insert(struct store_tx *tx, const struct outbox_event *e, bool *inserted)
{
    const struct pg_query q = { PGS_OUTBOX_INSERT, &store_outbox_record, e, NULL, 0 };
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *inserted = !err && changes == 1;
    return err;
}

static enum err pg_outbox_claim(struct store_tx *tx, const char *owner, int64_t now_ms,
                                int64_t lease_until, int max, struct outbox_event *out, int *n)
{
    const struct pg_arg args[] = { pg_text(owner), pg_i64(now_ms), pg_i64(lease_until),
                                   pg_i64(max) };
    const struct pg_query q = QUERY(PGS_OUTBOX_CLAIM, args);

    return pg_db_fetch_list(tx, &q, &store_outbox_record, max, out, n);
}

static enum err pg_outbox_finish(struct store_tx *tx, const struct outbox_event *e, bool *done)
{
    const struct pg_arg args[] = {
        pg_text(e->id),     pg_text(e->claimed_by), pg_i64(e->next_attempt_at), pg_i64(e->attempts),
        pg_text(e->status), pg_text(e->last_error), pg_i64(e->delivered_at)
    };
    const struct pg_query q = QUERY(PGS_OUTBOX_FINISH, args);
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *done = !err && changes == 1;
    return err;
}

static enum err pg_outbox_list(struct store_tx *tx, bool failed_only, int max,
                               struct outbox_event *out, int *n)
{
    const struct pg_arg args[] = { pg_bool(failed_only), pg_i64(max) };
    const struct pg_query q = QUERY(PGS_OUTBOX_LIST, args);

    return pg_db_fetch_list(tx, &q, &store_outbox_record, max, out, n);
}

static enum err pg_outbox_get(struct store_tx *tx, const char *id, struct outbox_event *out)
{
    const struct pg_arg args[] = { pg_text(id) };
    const struct pg_query q = QUERY(PGS_OUTBOX_GET, args);

    return pg_db_fetch_record(tx, &q, &store_outbox_record, out);
}

static enum err pg_outbox_replay(struct store_tx *tx, const char *id, int64_t now_ms, bool *found)
{
    const struct pg_arg args[] = { pg_text(id), pg_i64(now_ms) };
    const struct pg_query q = QUERY(PGS_OUTBOX_REPLAY, args);
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *found = !err && changes == 1;
    return err;
}

/* Schedules */

static enum err pg_schedule_get(struct store_tx *tx, const char *id, bool lock,
                                struct schedule_record *out)
{
    const struct pg_arg args[] = { pg_text(id) };
    const struct pg_query q = QUERY(lock ? PGS_SCHEDULE_LOCK : PGS_SCHEDULE_GET, args);

    return pg_db_fetch_record(tx, &q, &store_schedule_record, out);
}

static enum err pg_schedule_put(struct store_tx *tx, const struct schedule_record *s)
{
    const struct pg_query q = { PGS_SCHEDULE_PUT, &store_schedule_record, s, NULL, 0 };

    return pg_db_write(tx, &q, NULL);
}

/* Grants */

static enum err pg_grant_insert(struct store_tx *tx, const struct grant_record *g)
{
    const struct pg_query q = { PGS_GRANT_INSERT, &store_grant_record, g, NULL, 0 };

    return pg_db_write(tx, &q, NULL);
}

static enum err pg_grant_get(struct store_tx *tx, const char *id, struct grant_record *out)
{
    const struct pg_arg args[] = { pg_text(id) };
    const struct pg_query q = QUERY(PGS_GRANT_GET, args);

    return pg_db_fetch_record(tx, &q, &store_grant_record, out);
}

static enum err pg_grant_revoke(struct store_tx *tx, const char *id, int64_t at, bool *found)
{
    const struct pg_arg args[] = { pg_text(id), pg_i64(at) };
    const struct pg_query q = QUERY(PGS_GRANT_REVOKE, args);
    int changes = 0;
    enum err err = pg_db_write(tx, &q, &changes);

    *found = !err && changes == 1;
    return err;
}

static enum err pg_grant_list(struct store_tx *tx, const char *user_id, int64_t at, int max,
                              struct grant_record *out, int *n)
{
    const struct pg_arg user_args[] = { pg_text(user_id), pg_i64(max) };
    const struct pg_arg active_args[] = { pg_i64(at), pg_i64(max) };
    const struct pg_query qu = QUERY(PGS_GRANT_LIST_USER, user_args);
    const struct pg_query qa = QUERY(PGS_GRANT_LIST_ACTIVE, active_args);

    return pg_db_fetch_list(tx, user_id[0] ? &qu : &qa, &store_grant_record, max, out, n);
}

static enum err pg_health_touch(struct store_tx *tx, int64_t now)
{
    const struct pg_arg args[] = { pg_i64(now) };
    const struct pg_query q = QUERY(PGS_HEALTH_TOUCH, args);

    return pg_db_write(tx, &q, NULL);
}

static const struct store_ops pg_ops = {
    .name = "postgres",
    .close = pg_db_close,
    .run = pg_db_run,
    .unit_begin = pg_db_unit_begin,
    .unit_end = pg_db_unit_end,
    .pipeline_capture = pg_db_pipeline_capture,
    .pipeline_send = pg_db_pipeline_send,
    .pipeline_use = pg_db_pipeline_use,
    .migrations = pg_migrations_list,
    .schema_version = pg_schema_version,
    .migration_lock = pg_migration_lock,
    .migration_run = pg_migration_run,
    .ping = pg_ping,
    .customer_get = pg_customer_get,
    .customer_get_by_stripe_id = pg_customer_get_by_stripe_id,
    .invoice_context_get = pg_invoice_context_get,
    .customer_insert = pg_customer_insert,
    .customer_insert_new = pg_customer_insert_new,
    .customer_mark_trial = pg_customer_mark_trial,
    .subscription_get = pg_subscription_get,
    .subscription_insert_new = pg_subscription_insert_new,
    .subscription_put = pg_subscription_put,
    .subscription_get_for_user = pg_subscription_get_for_user,
    .invoice_get = pg_invoice_get,
    .invoice_insert_new = pg_invoice_insert_new,
    .invoice_put = pg_invoice_put,
    .invoice_list = pg_invoice_list,
    .usage_get = pg_usage_get,
    .usage_list = pg_usage_list,
    .usage_add_within = pg_usage_add_within,
    .usage_sub = pg_usage_sub,
    .event_get = pg_event_get,
    .event_claim = pg_event_claim,
    .event_fail = pg_event_fail,
    .event_list = pg_event_list,
    .event_raw = pg_event_raw,
    .keyed_claim = pg_keyed_claim,
    .keyed_get = pg_keyed_get,
    .keyed_decide = pg_keyed_decide,
    .keyed_prune = pg_keyed_prune,
    .checkout_latest = pg_checkout_latest,
    .checkout_expire_stale = pg_checkout_expire_stale,
    .checkout_insert = pg_checkout_insert,
    .checkout_close = pg_checkout_close,
    .trial_reserve = pg_trial_reserve,
    .subscription_list_live = pg_subscription_list_live,
    .duplicate_insert = pg_duplicate_insert,
    .duplicate_list = pg_duplicate_list,
    .duplicate_update = pg_duplicate_update,
    .outbox_insert = pg_outbox_insert,
    .outbox_claim = pg_outbox_claim,
    .outbox_finish = pg_outbox_finish,
    .outbox_list = pg_outbox_list,
    .outbox_get = pg_outbox_get,
    .outbox_replay = pg_outbox_replay,
    .health_touch = pg_health_touch,
    .schedule_get = pg_schedule_get,
    .schedule_put = pg_schedule_put,
    .grant_due = pg_grant_due,
    .grace_due = pg_grace_due,
    .grace_announce = pg_grace_announce,
    .grant_announce = pg_grant_announce,
    .ledger_insert = pg_ledger_insert,
    .usage_add_noted = pg_usage_add_noted,
    .ledger_list = pg_ledger_list,
    .ledger_grant_get = pg_ledger_grant_get,
    .usage_lock = pg_usage_lock,
    .extra_get = pg_extra_get,
    .extra_add = pg_extra_add,
    .extra_list = pg_extra_list,
    .extra_any = pg_extra_any,
    .grant_insert = pg_grant_insert,
    .grant_get = pg_grant_get,
    .grant_revoke = pg_grant_revoke,
    .grant_list = pg_grant_list,
    .watch_start = pg_listen_start,
    .watch_stop = pg_listen_stop,
};

enum err pg_store_open(const char *target, int pool_size, struct store **out, char *errbuf,
                       size_t errlen)
{
    return pg_db_open(target, pool_size, &pg_ops, out, errbuf, errlen);
}
