/*
 * sqlite.c: the SQLite backend of store/: its SQL and its row operations, one small function
 * each. The pool, the writer queue and the transaction runner are in sqlite_db.c; every rule
 * made of several operations is above the ops table (apply.c, usage.c, migrate.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"
#include "store/backend.h"
#include "store/migrations.h"
#include "store/sqlite_db.h"

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
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21) "
#define INVOICE_COLS                                                                             \
    "id, user_id, subscription_id, number, status, amount_due, amount_paid, currency, created, " \
    "period_start, period_end, hosted_invoice_url, invoice_pdf"
#define INVOICE_INSERT                         \
    "INSERT INTO invoices (" INVOICE_COLS ") " \
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
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
/* usage_list: one primary-key lookup per (quota, window start) pair, ?q and ?w. */
#define USAGE_ARM(q, w) \
    "SELECT quota, window_start, used FROM usage_counters " \
    "WHERE user_id = ?1 AND quota = ?" q " AND window_start = ?" w
/* usage_list of n pairs: USAGE_LIST_n, n arms. */
#define USAGE_LIST_1 USAGE_ARM("2", "3")
#define USAGE_LIST_2 USAGE_LIST_1 " UNION ALL " USAGE_ARM("4", "5")
#define USAGE_LIST_3 USAGE_LIST_2 " UNION ALL " USAGE_ARM("6", "7")
#define USAGE_LIST_4 USAGE_LIST_3 " UNION ALL " USAGE_ARM("8", "9")
#define USAGE_LIST_5 USAGE_LIST_4 " UNION ALL " USAGE_ARM("10", "11")
#define USAGE_LIST_6 USAGE_LIST_5 " UNION ALL " USAGE_ARM("12", "13")
#define USAGE_LIST_7 USAGE_LIST_6 " UNION ALL " USAGE_ARM("14", "15")
#define USAGE_LIST_8 USAGE_LIST_7 " UNION ALL " USAGE_ARM("16", "17")
/* clang-format on */

const char *const sqlite_sql[SQ_COUNT] = {
    [SQ_SCHEMA_VERSION] = "PRAGMA user_version",
    [SQ_PING] = "SELECT 1",
    [SQ_CUSTOMER_GET] = "SELECT " CUSTOMER_COLS " FROM customers WHERE user_id = ?1",
    [SQ_CUSTOMER_GET_BY_STRIPE_ID] =
        "SELECT " CUSTOMER_COLS " FROM customers WHERE stripe_customer_id = ?1",
    [SQ_CUSTOMER_INSERT] = "INSERT INTO customers (" CUSTOMER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)",
    /* Either side already linked (user or Stripe customer): the existing link is kept. */
    [SQ_CUSTOMER_INSERT_NEW] = "INSERT INTO customers (" CUSTOMER_COLS ") "
                               "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    [SQ_CUSTOMER_MARK_TRIAL] = "UPDATE customers SET had_trial = 1 WHERE user_id = ?1",
    [SQ_SUBSCRIPTION_PUT] = SUBSCRIPTION_INSERT
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
    "updated_at = excluded.updated_at, live = excluded.live, created = max(excluded.created, subscriptions.created)",
    [SQ_SUBSCRIPTION_INSERT_NEW] = SUBSCRIPTION_INSERT "ON CONFLICT (id) DO NOTHING",
    [SQ_SUBSCRIPTION_GET] = "SELECT " SUBSCRIPTION_COLS " FROM subscriptions WHERE id = ?1",
    [SQ_SUBSCRIPTION_GET_FOR_USER] = "SELECT " SUBSCRIPTION_COLS " FROM subscriptions "
                                     "WHERE user_id = ?1 ORDER BY live DESC, updated_at DESC, "
                                     "stripe_updated DESC, id DESC LIMIT 1",
    [SQ_INVOICE_PUT] = INVOICE_INSERT
    "ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, "
    "subscription_id = excluded.subscription_id, number = excluded.number, "
    "status = excluded.status, amount_due = excluded.amount_due, "
    "amount_paid = excluded.amount_paid, currency = excluded.currency, "
    "created = excluded.created, period_start = excluded.period_start, "
    "period_end = excluded.period_end, hosted_invoice_url = excluded.hosted_invoice_url, "
    "invoice_pdf = excluded.invoice_pdf",
    [SQ_INVOICE_INSERT_NEW] = INVOICE_INSERT "ON CONFLICT (id) DO NOTHING",
    [SQ_INVOICE_GET] = "SELECT " INVOICE_COLS " FROM invoices WHERE id = ?1",
    [SQ_INVOICE_LIST] = "SELECT " INVOICE_COLS " FROM invoices WHERE user_id = ?1 "
                        "ORDER BY created DESC, id DESC LIMIT ?2",
    [SQ_USAGE_GET] = "SELECT used FROM usage_counters "
                     "WHERE user_id = ?1 AND quota = ?2 AND window_start = ?3",
    /* One primary-key lookup per (quota, window start) pair: one statement per count of pairs. */
    [SQ_USAGE_LIST_1] = USAGE_LIST_1,
    [SQ_USAGE_LIST_1 + 1] = USAGE_LIST_2,
    [SQ_USAGE_LIST_1 + 2] = USAGE_LIST_3,
    [SQ_USAGE_LIST_1 + 3] = USAGE_LIST_4,
    [SQ_USAGE_LIST_1 + 4] = USAGE_LIST_5,
    [SQ_USAGE_LIST_1 + 5] = USAGE_LIST_6,
    [SQ_USAGE_LIST_1 + 6] = USAGE_LIST_7,
    [SQ_USAGE_LIST_8] = USAGE_LIST_8,
    /*
     * One statement, so the check and the add cannot be separated: a write statement takes the
     * write lock before it reads. ?5 is the limit (INT64_MAX when unlimited); "?4 <= ?5 - used"
     * cannot overflow because 0 <= used. No row changes when the grant is refused. No RETURNING
     * here: SQLite fills a temporary table for its rows, which cost more than reading the
     * counter again (SQ_USAGE_GET).
     */
    [SQ_USAGE_ADD] =
        "INSERT INTO usage_counters (user_id, quota, window_start, used) "
        "SELECT ?1, ?2, ?3, ?4 WHERE ?4 <= ?5 "
        "ON CONFLICT (user_id, quota, window_start) DO UPDATE SET used = used + excluded.used "
        "WHERE excluded.used <= ?5 - used",
    [SQ_USAGE_SUB] = "UPDATE usage_counters SET used = max(used - ?4, 0) "
                     "WHERE user_id = ?1 AND quota = ?2 AND window_start = ?3",
    [SQ_EVENT_GET] = "SELECT " EVENT_COLS " FROM webhook_events WHERE id = ?1",
    /*
     * ?5 is 'applied' or 'ignored', ?6 the time, ?7 replay. raw_body is kept from the first
     * delivery. No row changed: a duplicate (applied or ignored before, not a replay).
     */
    [SQ_EVENT_CLAIM] =
        "INSERT INTO webhook_events (id, type, created, raw_body, status, attempts, last_error, "
        "received_at, applied_at) VALUES (?1, ?2, ?3, ?4, ?5, 1, '', ?6, "
        "CASE WHEN ?5 = 'applied' THEN ?6 END) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, attempts = attempts + 1, "
        "last_error = '', applied_at = coalesce(excluded.applied_at, applied_at) "
        "WHERE ?7 OR webhook_events.status = 'failed'",
    [SQ_EVENT_FAILED] =
        "INSERT INTO webhook_events (id, type, created, raw_body, status, attempts, last_error, "
        "received_at) VALUES (?1, ?2, ?3, ?4, 'failed', 1, ?5, ?6) "
        "ON CONFLICT (id) DO UPDATE SET status = 'failed', attempts = attempts + 1, "
        "last_error = excluded.last_error",
    [SQ_EVENT_LIST] = "SELECT " EVENT_COLS " FROM webhook_events "
                      "ORDER BY received_at DESC, id DESC LIMIT ?1",
    /* The partial index webhook_events_failed, in its order. */
    [SQ_EVENT_LIST_FAILED] = "SELECT " EVENT_COLS " FROM webhook_events WHERE status = 'failed' "
                             "ORDER BY received_at DESC, id DESC LIMIT ?1",
    [SQ_EVENT_RAW] = "SELECT raw_body FROM webhook_events WHERE id = ?1",
    [SQ_KEYED_CLAIM] = "INSERT INTO idempotency_keys (key, scope, request_hash, created) "
                       "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key) DO NOTHING",
    [SQ_KEYED_GET] = "SELECT " OUTCOME_COLS ", granted IS NOT NULL, scope, request_hash "
                     "FROM idempotency_keys WHERE key = ?1",
    [SQ_KEYED_DECIDE] = "UPDATE idempotency_keys SET granted = ?1, used = ?2, quota_limit = ?3, "
                        "remaining = ?4, window_start = ?5, resets_at = ?6, tier = ?7, "
                        "extra = ?8, balance = ?9 WHERE key = ?10",
    [SQ_KEYED_PRUNE] = "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM "
                       "idempotency_keys WHERE created < ?1 ORDER BY created LIMIT ?2)",
    [SQ_CHECKOUT_LATEST] = "SELECT " CHECKOUT_COLS " FROM checkout_sessions WHERE user_id = ?1 "
                           "ORDER BY status = 'open' DESC, created DESC, id DESC LIMIT 1",
    [SQ_CHECKOUT_EXPIRE_STALE] = "UPDATE checkout_sessions SET status = 'expired' "
                                 "WHERE user_id = ?1 AND status = 'open' AND expires_at <= ?2",
    [SQ_CHECKOUT_INSERT] = "INSERT INTO checkout_sessions (" CHECKOUT_COLS ") "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [SQ_CHECKOUT_CLOSE] =
        "UPDATE checkout_sessions SET status = ?2 WHERE id = ?1 AND status = 'open'",
    /*
     * The trial is free when nobody holds it, the caller does (a retry), its holder's session
     * expired, or its holder made no session within the hold (?4: the hold's oldest start).
     */
    [SQ_TRIAL_RESERVE] =
        "UPDATE customers SET trial_hold = ?2, trial_hold_at = ?3 WHERE user_id = ?1 "
        "AND had_trial = 0 AND (trial_hold = '' OR trial_hold = ?2 "
        "OR EXISTS (SELECT 1 FROM checkout_sessions s WHERE s.idem_key = customers.trial_hold "
        "AND s.status = 'expired') OR (trial_hold_at < ?4 AND NOT EXISTS (SELECT 1 FROM "
        "checkout_sessions s WHERE s.idem_key = customers.trial_hold AND s.status <> 'expired')))",
    [SQ_SUB_LIST_LIVE] =
        "SELECT " SUBSCRIPTION_COLS " FROM subscriptions WHERE user_id = ?1 "
        "AND live = 1 ORDER BY created, rowid, id LIMIT ?2", /* rowid: first stored */
    [SQ_DUP_INSERT] = "INSERT INTO duplicate_subscriptions (" DUP_COLS ") "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO NOTHING",
    [SQ_DUP_LIST] = "SELECT " DUP_COLS " FROM duplicate_subscriptions "
                    "WHERE ?1 = 0 OR status = 'pending' ORDER BY detected_at, id LIMIT ?2",
    [SQ_DUP_UPDATE] = "UPDATE duplicate_subscriptions SET status = ?4, refunded = ?5, "
                      "attempts = ?6, last_error = ?7, resolved_at = ?9 WHERE id = ?1 "
                      "AND user_id = ?2 AND kept_id = ?3 AND detected_at = ?8",
    [SQ_HEALTH_TOUCH] = "INSERT INTO health (id, at) VALUES (1, ?1) "
                        "ON CONFLICT (id) DO UPDATE SET at = excluded.at",
    [SQ_GRANT_INSERT] = "INSERT INTO tier_grants (" GRANT_COLS ") "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [SQ_GRANT_GET] = "SELECT " GRANT_COLS " FROM tier_grants WHERE id = ?1",
    [SQ_GRANT_REVOKE] = "UPDATE tier_grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at = 0",
    /* newest first: rowid follows insertion (ids are random), within a second too */
    [SQ_GRANT_LIST_USER] = "SELECT " GRANT_COLS " FROM tier_grants WHERE user_id = ?1 "
                           "ORDER BY created_at DESC, rowid DESC LIMIT ?2",
    [SQ_GRANT_LIST_ACTIVE] = "SELECT " GRANT_COLS " FROM tier_grants WHERE revoked_at = 0 "
                             "AND (ends_at = 0 OR ends_at > ?1) ORDER BY user_id, id LIMIT ?2",
    /* Grants with a clock transition (start or end) at or before ?1 not announced yet. */
    [SQ_GRANT_DUE] = "SELECT " GRANT_COLS " FROM tier_grants WHERE revoked_at = 0 AND "
                     "((ends_at > 0 AND ends_at <= ?1 AND announced_at < ends_at) OR "
                     "(starts_at > created_at AND starts_at <= ?1 AND announced_at < starts_at)) "
                     "ORDER BY id LIMIT ?2",
    [SQ_GRANT_ANNOUNCE] = "UPDATE tier_grants SET announced_at = ?2 "
                          "WHERE id = ?1 AND announced_at < ?2",
    /*
     * Past-due subscriptions whose grace (?2 s) ended at or before ?1, not announced yet, and
     * after subgate stored the state (a state stored after its grace ended announced the change
     * itself, when it was stored).
     */
    [SQ_GRACE_DUE] = "SELECT " SUBSCRIPTION_COLS " FROM subscriptions WHERE status = 'past_due' "
                     "AND past_due_since > 0 AND past_due_since <= ?1 - ?2 "
                     "AND past_due_since + ?2 > updated_at "
                     "AND grace_announced < past_due_since ORDER BY id LIMIT ?3",
    [SQ_GRACE_ANNOUNCE] = "UPDATE subscriptions SET grace_announced = ?2 "
                          "WHERE id = ?1 AND grace_announced < ?2",
    [SQ_OUTBOX_INSERT] = "INSERT INTO outbox (" OUTBOX_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                         "?8, ?9, ?10, ?11, ?12) ON CONFLICT (dedupe_key) DO NOTHING",
    /* One process writes at a time (BEGIN IMMEDIATE): the select and the update are one step. */
    [SQ_OUTBOX_CLAIM] = "UPDATE outbox SET claimed_by = ?1, claim_until = ?3 WHERE id IN "
                        "(SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?2 "
                        "AND claim_until <= ?2 ORDER BY next_attempt_at, id LIMIT ?4) "
                        "RETURNING " OUTBOX_COLS,
    [SQ_OUTBOX_FINISH] = "UPDATE outbox SET next_attempt_at = ?3, attempts = ?4, status = ?5, "
                         "last_error = ?6, delivered_at = ?7, claimed_by = '', claim_until = 0 "
                         "WHERE id = ?1 AND claimed_by = ?2 AND status = 'pending'",
    [SQ_OUTBOX_LIST] = "SELECT " OUTBOX_COLS " FROM outbox WHERE ?1 = 0 OR status = 'failed' "
                       "ORDER BY created_at DESC, id DESC LIMIT ?2",
    [SQ_OUTBOX_GET] = "SELECT " OUTBOX_COLS " FROM outbox WHERE id = ?1",
    [SQ_OUTBOX_REPLAY] = "UPDATE outbox SET status = 'pending', next_attempt_at = ?2, "
                         "attempts = 0, claimed_by = '', claim_until = 0 WHERE id = ?1",
    /* id 0 is assigned by the database (AUTOINCREMENT: never reused) */
    [SQ_LEDGER_INSERT] = "INSERT INTO usage_ledger (" LEDGER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, "
                         "?6, ?7, ?8, ?9, ?10, ?11, nullif(?12, 0))",
    [SQ_LEDGER_LIST] = "SELECT " LEDGER_COLS " FROM usage_ledger WHERE user_id = ?1 "
                       "AND (?2 = '' OR quota = ?2) AND (?3 <= 0 OR id < ?3) "
                       "ORDER BY id DESC LIMIT ?4",
    [SQ_LEDGER_GRANT_GET] = "SELECT " LEDGER_COLS " FROM usage_ledger WHERE user_id = ?1 "
                            "AND kind = 'grant' AND idem_key = ?2 AND idem_key <> ''",
    [SQ_EXTRA_GET] = "SELECT " EXTRA_COLS " FROM quota_extras "
                     "WHERE user_id = ?1 AND quota = ?2 AND window_start = ?3",
    [SQ_EXTRA_ADD] = "INSERT INTO quota_extras (" EXTRA_COLS ") VALUES (?1, ?2, ?3, ?4, ?5) "
                     "ON CONFLICT (user_id, quota, window_start) DO UPDATE SET "
                     "units = units + excluded.units, taken = taken + excluded.taken",
    [SQ_EXTRA_ANY] = "SELECT EXISTS (SELECT 1 FROM quota_extras)",
    [SQ_EXTRA_LIST] = "SELECT " EXTRA_COLS " FROM quota_extras WHERE user_id = ?1 "
                      "ORDER BY quota, window_start LIMIT ?2",
    [SQ_SCHEDULE_GET] = "SELECT " SCHEDULE_COLS " FROM schedules WHERE id = ?1",
    [SQ_SCHEDULE_PUT] =
        "INSERT INTO schedules (" SCHEDULE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
        "ON CONFLICT (id) DO UPDATE SET subscription_id = excluded.subscription_id, "
        "status = excluded.status, next_price_id = excluded.next_price_id, "
        "next_at = excluded.next_at, stripe_updated = excluded.stripe_updated",
    [SQ_BEGIN] = "BEGIN IMMEDIATE",
    [SQ_COMMIT] = "COMMIT",
    [SQ_ROLLBACK] = "ROLLBACK",
    [SQ_SAVEPOINT] = "SAVEPOINT unit",
    [SQ_RELEASE] = "RELEASE unit",
    [SQ_ROLLBACK_TO] = "ROLLBACK TO unit",
};

/* A query of statement id with only args (no record). */
#define QUERY(id, args)                            \
    {                                              \
        (id), NULL, NULL, (args), ARRAY_SIZE(args) \
    }

/* Schema: the version is the database header's user_version. */

static const struct migration *sq_migrations(size_t *count)
{
    *count = sqlite_migrations_count;
    return sqlite_migrations;
}

static enum err sq_schema_version(struct store_tx *tx, int *version)
{
    const struct sqlite_query q = { SQ_SCHEMA_VERSION, NULL, NULL, NULL, 0 };
    int64_t v = 0;
    enum err err = sqlite_db_fetch_i64(tx, &q, &v);

    *version = err ? 0 : (int)v; /* written only by us, from an int */
    return err;
}

/* BEGIN IMMEDIATE has taken the database's write lock: migrators are serialized already. */
static enum err sq_migration_lock(struct store_tx *tx)
{
    (void)tx;
    return ERR_OK;
}

static enum err sq_migration_run(struct store_tx *tx, const struct migration *m)
{
    char bump[64];
    enum err err = sqlite_db_exec(tx, m->sql);

    (void)snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", m->version); /* fits */
    return err ? err : sqlite_db_exec(tx, bump);
}

static enum err sq_ping(struct store_tx *tx)
{
    const struct sqlite_query q = { SQ_PING, NULL, NULL, NULL, 0 };
    int64_t one = 0;
    enum err err = sqlite_db_fetch_i64(tx, &q, &one);

    return err == ERR_OK && one == 1 ? ERR_OK : ERR_STORE;
}

/* Customers */

static enum err sq_customer_get(struct store_tx *tx, const char *user_id, struct customer *out)
{
    const struct sqlite_arg args[] = { sq_text(user_id) };
    const struct sqlite_query q = QUERY(SQ_CUSTOMER_GET, args);

    return sqlite_db_fetch_record(tx, &q, &store_customer_record, out);
}

static enum err sq_customer_get_by_stripe_id(struct store_tx *tx, const char *stripe_customer_id,
                                             struct customer *out)
{
    const struct sqlite_arg args[] = { sq_text(stripe_customer_id) };
    const struct sqlite_query q = QUERY(SQ_CUSTOMER_GET_BY_STRIPE_ID, args);

    return sqlite_db_fetch_record(tx, &q, &store_customer_record, out);
}

static enum err sq_customer_insert(struct store_tx *tx, const struct customer *c)
{
    const struct sqlite_query q = { SQ_CUSTOMER_INSERT, &store_customer_record, c, NULL, 0 };

    return sqlite_db_write(tx, &q, NULL);
}

static enum err sq_customer_insert_new(struct store_tx *tx, const struct customer *c, bool *linked)
{
    const struct sqlite_query q = { SQ_CUSTOMER_INSERT_NEW, &store_customer_record, c, NULL, 0 };
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *linked = !err && changes == 1;
    return err;
}

static enum err sq_customer_mark_trial(struct store_tx *tx, const char *user_id, bool *found)
{
    const struct sqlite_arg args[] = { sq_text(user_id) };
    const struct sqlite_query q = QUERY(SQ_CUSTOMER_MARK_TRIAL, args);
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *found = !err && changes > 0;
    return err;
}

/* Subscriptions: BEGIN IMMEDIATE holds the whole database, so a read needs no row lock. */

static enum err sq_subscription_get(struct store_tx *tx, const char *id, bool lock,
                                    struct subscription *out)
{
    const struct sqlite_arg args[] = { sq_text(id) };
    const struct sqlite_query q = QUERY(SQ_SUBSCRIPTION_GET, args);

    (void)lock;
    return sqlite_db_fetch_record(tx, &q, &store_subscription_record, out);
}

static enum err sub_write(struct store_tx *tx, enum sqlite_stmt id, const struct store_sub_row *r,
                          int *changes)
{
    const struct sqlite_arg args[] = { sq_i64(r->updated_at), sq_i64(r->live) };
    const struct sqlite_query q = { id, &store_subscription_record, r->sub, args,
                                    ARRAY_SIZE(args) };

    return sqlite_db_write(tx, &q, changes);
}

static enum err sq_subscription_insert_new(struct store_tx *tx, const struct store_sub_row *row,
                                           bool *inserted)
{
    int changes = 0;
    enum err err = sub_write(tx, SQ_SUBSCRIPTION_INSERT_NEW, row, &changes);

    *inserted = !err && changes == 1;
    return err;
}

static enum err sq_subscription_put(struct store_tx *tx, const struct store_sub_row *row)
{
    return sub_write(tx, SQ_SUBSCRIPTION_PUT, row, NULL);
}

static enum err sq_subscription_get_for_user(struct store_tx *tx, const char *user_id,
                                             struct subscription *out)
{
    const struct sqlite_arg args[] = { sq_text(user_id) };
    const struct sqlite_query q = QUERY(SQ_SUBSCRIPTION_GET_FOR_USER, args);

    return sqlite_db_fetch_record(tx, &q, &store_subscription_record, out);
}

/* Invoices */

static enum err sq_invoice_get(struct store_tx *tx, const char *id, bool lock, struct invoice *out)
{
    const struct sqlite_arg args[] = { sq_text(id) };
    const struct sqlite_query q = QUERY(SQ_INVOICE_GET, args);

    (void)lock;
    return sqlite_db_fetch_record(tx, &q, &store_invoice_record, out);
}

static enum err sq_invoice_insert_new(struct store_tx *tx, const struct invoice *inv,
                                      bool *inserted)
{
    const struct sqlite_query q = { SQ_INVOICE_INSERT_NEW, &store_invoice_record, inv, NULL, 0 };
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *inserted = !err && changes == 1;
    return err;
}

static enum err sq_invoice_put(struct store_tx *tx, const struct invoice *inv)
{
    const struct sqlite_query q = { SQ_INVOICE_PUT, &store_invoice_record, inv, NULL, 0 };

    return sqlite_db_write(tx, &q, NULL);
}

static enum err sq_invoice_list(struct store_tx *tx, const char *user_id, int max,
                                struct invoice *out, int *n)
{
    const struct sqlite_arg args[] = { sq_text(user_id), sq_i64(max) };
    const struct sqlite_query q = QUERY(SQ_INVOICE_LIST, args);

    return sqlite_db_fetch_list(tx, &q, &store_invoice_record, max, out, n);
}

/* Usage */

static enum err sq_usage_get(struct store_tx *tx, const char *user_id, const char *quota,
                             int64_t window_start, int64_t *used)
{
    const struct sqlite_arg args[] = { sq_text(user_id), sq_text(quota), sq_i64(window_start) };
    const struct sqlite_query q = QUERY(SQ_USAGE_GET, args);

    return sqlite_db_fetch_i64(tx, &q, used);
}

static enum err sq_usage_list(struct store_tx *tx, const char *user_id, size_t n,
                              const char *const *quotas, const int64_t *window_starts,
                              struct usage_row *out, int *k)
{
    struct sqlite_arg args[1 + 2 * USAGE_LIST_MAX] = { sq_text(user_id) }; /* user, then pairs */

    _Static_assert(USAGE_LIST_MAX == 8, "one statement per count of pairs, 1 to 8");
    *k = 0;
    if (n == 0 || n > USAGE_LIST_MAX)
        return ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        args[1 + 2 * i] = sq_text(quotas[i]);
        args[2 + 2 * i] = sq_i64(window_starts[i]);
    }
    const struct sqlite_query q = { (enum sqlite_stmt)(SQ_USAGE_LIST_1 + n - 1), NULL, NULL, args,
                                    1 + 2 * n };
    return sqlite_db_fetch_list(tx, &q, &store_usage_row_record, USAGE_LIST_MAX, out, k);
}

static enum err sq_usage_add_within(struct store_tx *tx, const struct usage_grant *g,
                                    int64_t *used_after)
{
    const struct sqlite_arg args[] = {
        sq_text(g->user_id),
        sq_text(g->quota),
        sq_i64(g->window_start),
        sq_i64(g->n),
        sq_i64(g->limit < 0 ? INT64_MAX : g->limit),
    };
    const struct sqlite_query q = QUERY(SQ_USAGE_ADD, args);
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    if (!err && changes == 0)
        return ERR_NOT_FOUND; /* refused: nothing added */
    return err ? err : sq_usage_get(tx, g->user_id, g->quota, g->window_start, used_after);
}

static enum err sq_usage_sub(struct store_tx *tx, const struct usage_grant *g, int64_t *used_after)
{
    const struct sqlite_arg args[] = { sq_text(g->user_id), sq_text(g->quota),
                                       sq_i64(g->window_start), sq_i64(g->n) };
    const struct sqlite_query q = QUERY(SQ_USAGE_SUB, args);
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    if (!err && changes == 0)
        return ERR_NOT_FOUND; /* no counter: nothing to take back */
    return err ? err : sq_usage_get(tx, g->user_id, g->quota, g->window_start, used_after);
}

static enum err sq_grant_due(struct store_tx *tx, int64_t now, int max, struct grant_record *out,
                             int *n)
{
    const struct sqlite_arg args[] = { sq_i64(now), sq_i64(max) };
    const struct sqlite_query q = QUERY(SQ_GRANT_DUE, args);

    return sqlite_db_fetch_list(tx, &q, &store_grant_record, max, out, n);
}

static enum err sq_grant_announce(struct store_tx *tx, const char *id, int64_t at, bool *claimed)
{
    const struct sqlite_arg args[] = { sq_text(id), sq_i64(at) };
    const struct sqlite_query q = QUERY(SQ_GRANT_ANNOUNCE, args);
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *claimed = !err && changes > 0;
    return err;
}

static enum err sq_grace_due(struct store_tx *tx, int64_t now, int64_t grace_s, int max,
                             struct subscription *out, int *n)
{
    const struct sqlite_arg args[] = { sq_i64(now), sq_i64(grace_s), sq_i64(max) };
    const struct sqlite_query q = QUERY(SQ_GRACE_DUE, args);

    return sqlite_db_fetch_list(tx, &q, &store_subscription_record, max, out, n);
}

static enum err sq_grace_announce(struct store_tx *tx, const char *id, int64_t at, bool *claimed)
{
    const struct sqlite_arg args[] = { sq_text(id), sq_i64(at) };
    const struct sqlite_query q = QUERY(SQ_GRACE_ANNOUNCE, args);
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *claimed = !err && changes > 0;
    return err;
}

/* The usage ledger and extra quota units */

static enum err sq_ledger_insert(struct store_tx *tx, const struct ledger_entry *e, int64_t *id)
{
    const struct sqlite_query q = { SQ_LEDGER_INSERT, &store_ledger_record, e, NULL, 0 };

    return sqlite_db_insert(tx, &q, id);
}

static enum err sq_ledger_list(struct store_tx *tx, const char *user_id, const char *quota,
                               int64_t before, int max, struct ledger_entry *out, int *n)
{
    const struct sqlite_arg args[] = { sq_text(user_id), sq_text(quota), sq_i64(before),
                                       sq_i64(max) };
    const struct sqlite_query q = QUERY(SQ_LEDGER_LIST, args);

    return sqlite_db_fetch_list(tx, &q, &store_ledger_record, max, out, n);
}

static enum err sq_ledger_grant_get(struct store_tx *tx, const char *user_id, const char *key,
                                    struct ledger_entry *out)
{
    const struct sqlite_arg args[] = { sq_text(user_id), sq_text(key) };
    const struct sqlite_query q = QUERY(SQ_LEDGER_GRANT_GET, args);

    return sqlite_db_fetch_record(tx, &q, &store_ledger_record, out);
}

/* A write transaction holds the database's write lock: the counter cannot change under it. */
static enum err sq_usage_lock(struct store_tx *tx, const struct usage_grant *g, int64_t *used)
{
    enum err err = sq_usage_get(tx, g->user_id, g->quota, g->window_start, used);

    if (err == ERR_NOT_FOUND) {
        *used = 0;
        err = ERR_OK;
    }
    return err;
}

static enum err sq_extra_get(struct store_tx *tx, const struct usage_grant *g, int64_t window_start,
                             bool lock, struct quota_extra *out)
{
    const struct sqlite_arg args[] = { sq_text(g->user_id), sq_text(g->quota),
                                       sq_i64(window_start) };
    const struct sqlite_query q = QUERY(SQ_EXTRA_GET, args);

    (void)lock; /* as sq_usage_lock */
    return sqlite_db_fetch_record(tx, &q, &store_extra_record, out);
}

static enum err sq_extra_add(struct store_tx *tx, const struct quota_extra *d)
{
    const struct sqlite_query q = { SQ_EXTRA_ADD, &store_extra_record, d, NULL, 0 };

    return sqlite_db_write(tx, &q, NULL);
}

static enum err sq_extra_any(struct store_tx *tx, bool *any)
{
    const struct sqlite_query q = { SQ_EXTRA_ANY, NULL, NULL, NULL, 0 };
    int64_t v = 0;
    enum err err = sqlite_db_fetch_i64(tx, &q, &v);

    *any = !err && v != 0;
    return err;
}

static enum err sq_extra_list(struct store_tx *tx, const char *user_id, int max,
                              struct quota_extra *out, int *n)
{
    const struct sqlite_arg args[] = { sq_text(user_id), sq_i64(max) };
    const struct sqlite_query q = QUERY(SQ_EXTRA_LIST, args);

    return sqlite_db_fetch_list(tx, &q, &store_extra_record, max, out, n);
}

/* The webhook inbox */

static enum err sq_event_get(struct store_tx *tx, const char *id, struct webhook_event *out)
{
    const struct sqlite_arg args[] = { sq_text(id) };
    const struct sqlite_query q = QUERY(SQ_EVENT_GET, args);

    return sqlite_db_fetch_record(tx, &q, &store_event_record, out);
}

static enum err sq_event_claim(struct store_tx *tx, const struct store_event_in *in,
                               const char *status, int64_t now, bool *claimed)
{
    const struct billing_event *ev = in->ev;
    const struct sqlite_arg args[] = { sq_text(ev->id),
                                       sq_text(ev->type),
                                       sq_i64(ev->created),
                                       sq_textn(in->raw, in->raw_len),
                                       sq_text(status),
                                       sq_i64(now),
                                       sq_i64(in->mode == STORE_EVENT_REPLAY) };
    const struct sqlite_query q = QUERY(SQ_EVENT_CLAIM, args);
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *claimed = !err && changes == 1;
    return err;
}

static enum err sq_event_fail(struct store_tx *tx, const struct store_event_in *in, int64_t now,
                              const char *why)
{
    const struct billing_event *ev = in->ev;
    const struct sqlite_arg args[] = { sq_text(ev->id),     sq_text(ev->type),
                                       sq_i64(ev->created), sq_textn(in->raw, in->raw_len),
                                       sq_text(why),        sq_i64(now) };
    const struct sqlite_query q = QUERY(SQ_EVENT_FAILED, args);

    return sqlite_db_write(tx, &q, NULL);
}

static enum err sq_event_list(struct store_tx *tx, bool failed_only, int max,
                              struct webhook_event *out, int *n)
{
    const struct sqlite_arg args[] = { sq_i64(max) };
    const struct sqlite_query q = QUERY(failed_only ? SQ_EVENT_LIST_FAILED : SQ_EVENT_LIST, args);

    return sqlite_db_fetch_list(tx, &q, &store_event_record, max, out, n);
}

struct raw_out {
    char *raw;
    size_t len;
};

static void read_raw(sqlite3_stmt *stmt, void *ctx)
{
    struct raw_out *r = ctx;
    const char *text = (const char *)sqlite3_column_text(stmt, 0);

    r->len = (size_t)sqlite3_column_bytes(stmt, 0);
    r->raw = xmalloc(r->len + 1);
    if (r->len)
        memcpy(r->raw, text, r->len);
    r->raw[r->len] = '\0';
}

static enum err sq_event_raw(struct store_tx *tx, const char *id, char **raw, size_t *raw_len)
{
    const struct sqlite_arg args[] = { sq_text(id) };
    const struct sqlite_query q = QUERY(SQ_EVENT_RAW, args);
    struct raw_out r = { NULL, 0 };
    enum err err = sqlite_db_fetch_with(tx, &q, read_raw, &r);

    *raw = r.raw;
    *raw_len = r.len;
    return err;
}

/* Idempotency records */

static enum err sq_keyed_claim(struct store_tx *tx, const struct store_idempotency *k,
                               bool *claimed)
{
    const struct sqlite_arg args[] = { sq_text(k->key), sq_text(k->scope), sq_text(k->request_hash),
                                       sq_i64(k->now) };
    const struct sqlite_query q = QUERY(SQ_KEYED_CLAIM, args);
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *claimed = !err && changes == 1;
    return err;
}

static const char *column_text(sqlite3_stmt *stmt, int col)
{
    const unsigned char *t = sqlite3_column_text(stmt, col);

    return t ? (const char *)t : "";
}

/* The outcome's columns, then decided, scope and request_hash. */
static void read_keyed(sqlite3_stmt *stmt, void *ctx)
{
    struct store_keyed_row *row = ctx;
    int n = (int)store_outcome_record.count;

    sqlite_db_read_record(stmt, &store_outcome_record, &row->outcome);
    row->decided = sqlite3_column_int(stmt, n) != 0;
    if (!str_copy(row->scope, sizeof(row->scope), column_text(stmt, n + 1)) ||
        !str_copy(row->request_hash, sizeof(row->request_hash), column_text(stmt, n + 2)))
        row->scope[0] = '\0'; /* cannot be ours: compares unequal */
}

static enum err sq_keyed_get(struct store_tx *tx, const char *key, struct store_keyed_row *out)
{
    const struct sqlite_arg args[] = { sq_text(key) };
    const struct sqlite_query q = QUERY(SQ_KEYED_GET, args);

    memset(out, 0, sizeof(*out));
    return sqlite_db_fetch_with(tx, &q, read_keyed, out);
}

static enum err sq_keyed_decide(struct store_tx *tx, const char *key, const struct usage_outcome *o)
{
    const struct sqlite_arg args[] = { sq_text(key) };
    const struct sqlite_query q = { SQ_KEYED_DECIDE, &store_outcome_record, o, args,
                                    ARRAY_SIZE(args) };

    return sqlite_db_write(tx, &q, NULL);
}

static enum err sq_keyed_prune(struct store_tx *tx, int64_t before, int max, int *deleted)
{
    const struct sqlite_arg args[] = { sq_i64(before), sq_i64(max) };
    const struct sqlite_query q = QUERY(SQ_KEYED_PRUNE, args);

    return sqlite_db_write(tx, &q, deleted);
}

/* Checkout sessions and trials */

static enum err sq_checkout_latest(struct store_tx *tx, const char *user_id,
                                   struct checkout_record *out)
{
    const struct sqlite_arg args[] = { sq_text(user_id) };
    const struct sqlite_query q = QUERY(SQ_CHECKOUT_LATEST, args);

    return sqlite_db_fetch_record(tx, &q, &store_checkout_record, out);
}

static enum err sq_checkout_expire_stale(struct store_tx *tx, const char *user_id, int64_t now)
{
    const struct sqlite_arg args[] = { sq_text(user_id), sq_i64(now) };
    const struct sqlite_query q = QUERY(SQ_CHECKOUT_EXPIRE_STALE, args);

    return sqlite_db_write(tx, &q, NULL);
}

static enum err sq_checkout_insert(struct store_tx *tx, const struct checkout_record *c)
{
    const struct sqlite_query q = { SQ_CHECKOUT_INSERT, &store_checkout_record, c, NULL, 0 };

    return sqlite_db_write(tx, &q, NULL);
}

static enum err sq_checkout_close(struct store_tx *tx, const char *id, const char *status,
                                  bool *closed)
{
    const struct sqlite_arg args[] = { sq_text(id), sq_text(status) };
    const struct sqlite_query q = QUERY(SQ_CHECKOUT_CLOSE, args);
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *closed = !err && changes == 1;
    return err;
}

static enum err sq_trial_reserve(struct store_tx *tx, const char *user_id, const char *key,
                                 int64_t now, int64_t stale_before, bool *reserved)
{
    const struct sqlite_arg args[] = { sq_text(user_id), sq_text(key), sq_i64(now),
                                       sq_i64(stale_before) };
    const struct sqlite_query q = QUERY(SQ_TRIAL_RESERVE, args);
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *reserved = !err && changes == 1;
    return err;
}

/* Live subscriptions and duplicates */

static enum err sq_subscription_list_live(struct store_tx *tx, const char *user_id, int max,
                                          struct subscription *out, int *n)
{
    const struct sqlite_arg args[] = { sq_text(user_id), sq_i64(max) };
    const struct sqlite_query q = QUERY(SQ_SUB_LIST_LIVE, args);

    return sqlite_db_fetch_list(tx, &q, &store_subscription_record, max, out, n);
}

static enum err sq_duplicate_insert(struct store_tx *tx, const struct duplicate_record *d,
                                    bool *inserted)
{
    const struct sqlite_query q = { SQ_DUP_INSERT, &store_duplicate_record, d, NULL, 0 };
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *inserted = !err && changes == 1;
    return err;
}

static enum err sq_duplicate_list(struct store_tx *tx, bool pending_only, int max,
                                  struct duplicate_record *out, int *n)
{
    const struct sqlite_arg args[] = { sq_i64(pending_only), sq_i64(max) };
    const struct sqlite_query q = QUERY(SQ_DUP_LIST, args);

    return sqlite_db_fetch_list(tx, &q, &store_duplicate_record, max, out, n);
}

static enum err sq_duplicate_update(struct store_tx *tx, const struct duplicate_record *d)
{
    const struct sqlite_query q = { SQ_DUP_UPDATE, &store_duplicate_record, d, NULL, 0 };

    return sqlite_db_write(tx, &q, NULL);
}

/* Schedules */

static enum err sq_schedule_get(struct store_tx *tx, const char *id, bool lock,
                                struct schedule_record *out)
{
    const struct sqlite_arg args[] = { sq_text(id) };
    const struct sqlite_query q = QUERY(SQ_SCHEDULE_GET, args);

    (void)lock; /* a write transaction holds the database lock */
    return sqlite_db_fetch_record(tx, &q, &store_schedule_record, out);
}

static enum err sq_schedule_put(struct store_tx *tx, const struct schedule_record *s)
{
    const struct sqlite_query q = { SQ_SCHEDULE_PUT, &store_schedule_record, s, NULL, 0 };

    return sqlite_db_write(tx, &q, NULL);
}

/* Grants */

static enum err sq_grant_insert(struct store_tx *tx, const struct grant_record *g)
{
    const struct sqlite_query q = { SQ_GRANT_INSERT, &store_grant_record, g, NULL, 0 };

    return sqlite_db_write(tx, &q, NULL);
}

static enum err sq_grant_get(struct store_tx *tx, const char *id, struct grant_record *out)
{
    const struct sqlite_arg args[] = { sq_text(id) };
    const struct sqlite_query q = QUERY(SQ_GRANT_GET, args);

    return sqlite_db_fetch_record(tx, &q, &store_grant_record, out);
}

static enum err sq_grant_revoke(struct store_tx *tx, const char *id, int64_t at, bool *found)
{
    const struct sqlite_arg args[] = { sq_text(id), sq_i64(at) };
    const struct sqlite_query q = QUERY(SQ_GRANT_REVOKE, args);
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *found = !err && changes == 1;
    return err;
}

static enum err sq_grant_list(struct store_tx *tx, const char *user_id, int64_t at, int max,
                              struct grant_record *out, int *n)
{
    const struct sqlite_arg user_args[] = { sq_text(user_id), sq_i64(max) };
    const struct sqlite_arg active_args[] = { sq_i64(at), sq_i64(max) };
    const struct sqlite_query qu = QUERY(SQ_GRANT_LIST_USER, user_args);
    const struct sqlite_query qa = QUERY(SQ_GRANT_LIST_ACTIVE, active_args);

    return sqlite_db_fetch_list(tx, user_id[0] ? &qu : &qa, &store_grant_record, max, out, n);
}

static enum err sq_health_touch(struct store_tx *tx, int64_t now)
{
    const struct sqlite_arg args[] = { sq_i64(now) };
    const struct sqlite_query q = QUERY(SQ_HEALTH_TOUCH, args);

    return sqlite_db_write(tx, &q, NULL);
}

/*
 * Other processes on the file tell us nothing: the entitlement cache's TTL alone bounds how
 * long their writes go unseen.
 */
/* The outbox */

static enum err sq_outbox_insert(struct store_tx *tx, const struct outbox_event *e, bool *inserted)
{
    const struct sqlite_query q = { SQ_OUTBOX_INSERT, &store_outbox_record, e, NULL, 0 };
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *inserted = !err && changes == 1;
    return err;
}

static enum err sq_outbox_claim(struct store_tx *tx, const char *owner, int64_t now_ms,
                                int64_t lease_until, int max, struct outbox_event *out, int *n)
{
    const struct sqlite_arg args[] = { sq_text(owner), sq_i64(now_ms), sq_i64(lease_until),
                                       sq_i64(max) };
    const struct sqlite_query q = QUERY(SQ_OUTBOX_CLAIM, args);

    return sqlite_db_fetch_list(tx, &q, &store_outbox_record, max, out, n);
}

static enum err sq_outbox_finish(struct store_tx *tx, const struct outbox_event *e, bool *done)
{
    const struct sqlite_arg args[] = {
        sq_text(e->id),     sq_text(e->claimed_by), sq_i64(e->next_attempt_at), sq_i64(e->attempts),
        sq_text(e->status), sq_text(e->last_error), sq_i64(e->delivered_at)
    };
    const struct sqlite_query q = QUERY(SQ_OUTBOX_FINISH, args);
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *done = !err && changes == 1;
    return err;
}

static enum err sq_outbox_list(struct store_tx *tx, bool failed_only, int max,
                               struct outbox_event *out, int *n)
{
    const struct sqlite_arg args[] = { sq_i64(failed_only), sq_i64(max) };
    const struct sqlite_query q = QUERY(SQ_OUTBOX_LIST, args);

    return sqlite_db_fetch_list(tx, &q, &store_outbox_record, max, out, n);
}

static enum err sq_outbox_get(struct store_tx *tx, const char *id, struct outbox_event *out)
{
    const struct sqlite_arg args[] = { sq_text(id) };
    const struct sqlite_query q = QUERY(SQ_OUTBOX_GET, args);

    return sqlite_db_fetch_record(tx, &q, &store_outbox_record, out);
}

static enum err sq_outbox_replay(struct store_tx *tx, const char *id, int64_t now_ms, bool *found)
{
    const struct sqlite_arg args[] = { sq_text(id), sq_i64(now_ms) };
    const struct sqlite_query q = QUERY(SQ_OUTBOX_REPLAY, args);
    int changes = 0;
    enum err err = sqlite_db_write(tx, &q, &changes);

    *found = !err && changes == 1;
    return err;
}

static struct store_watch *sq_watch_start(struct store *st, struct entcache *cache,
                                          struct entcache *usage_cache)
{
    (void)st;
    (void)cache;
    (void)usage_cache;
    return NULL;
}

static void sq_watch_stop(struct store_watch *w)
{
    (void)w; /* never started */
}

static const struct store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sqlite_db_close,
    .run = sqlite_db_run,
    .unit_begin = sqlite_db_unit_begin,
    .unit_end = sqlite_db_unit_end,
    .migrations = sq_migrations,
    .schema_version = sq_schema_version,
    .migration_lock = sq_migration_lock,
    .migration_run = sq_migration_run,
    .ping = sq_ping,
    .customer_get = sq_customer_get,
    .customer_get_by_stripe_id = sq_customer_get_by_stripe_id,
    .customer_insert = sq_customer_insert,
    .customer_insert_new = sq_customer_insert_new,
    .customer_mark_trial = sq_customer_mark_trial,
    .subscription_get = sq_subscription_get,
    .subscription_insert_new = sq_subscription_insert_new,
    .subscription_put = sq_subscription_put,
    .subscription_get_for_user = sq_subscription_get_for_user,
    .invoice_get = sq_invoice_get,
    .invoice_insert_new = sq_invoice_insert_new,
    .invoice_put = sq_invoice_put,
    .invoice_list = sq_invoice_list,
    .usage_get = sq_usage_get,
    .usage_list = sq_usage_list,
    .usage_add_within = sq_usage_add_within,
    .usage_sub = sq_usage_sub,
    .event_get = sq_event_get,
    .event_claim = sq_event_claim,
    .event_fail = sq_event_fail,
    .event_list = sq_event_list,
    .event_raw = sq_event_raw,
    .keyed_claim = sq_keyed_claim,
    .keyed_get = sq_keyed_get,
    .keyed_decide = sq_keyed_decide,
    .keyed_prune = sq_keyed_prune,
    .checkout_latest = sq_checkout_latest,
    .checkout_expire_stale = sq_checkout_expire_stale,
    .checkout_insert = sq_checkout_insert,
    .checkout_close = sq_checkout_close,
    .trial_reserve = sq_trial_reserve,
    .subscription_list_live = sq_subscription_list_live,
    .duplicate_insert = sq_duplicate_insert,
    .duplicate_list = sq_duplicate_list,
    .duplicate_update = sq_duplicate_update,
    .outbox_insert = sq_outbox_insert,
    .outbox_claim = sq_outbox_claim,
    .outbox_finish = sq_outbox_finish,
    .outbox_list = sq_outbox_list,
    .outbox_get = sq_outbox_get,
    .outbox_replay = sq_outbox_replay,
    .health_touch = sq_health_touch,
    .schedule_get = sq_schedule_get,
    .schedule_put = sq_schedule_put,
    .grant_due = sq_grant_due,
    .grace_due = sq_grace_due,
    .grace_announce = sq_grace_announce,
    .grant_announce = sq_grant_announce,
    .ledger_insert = sq_ledger_insert,
    .ledger_list = sq_ledger_list,
    .ledger_grant_get = sq_ledger_grant_get,
    .usage_lock = sq_usage_lock,
    .extra_get = sq_extra_get,
    .extra_add = sq_extra_add,
    .extra_list = sq_extra_list,
    .extra_any = sq_extra_any,
    .grant_insert = sq_grant_insert,
    .grant_get = sq_grant_get,
    .grant_revoke = sq_grant_revoke,
    .grant_list = sq_grant_list,
    .watch_start = sq_watch_start,
    .watch_stop = sq_watch_stop,
};

enum err sqlite_store_open(const char *target, int pool_size, struct store **out, char *errbuf,
                           size_t errlen)
{
    return sqlite_db_open(target, pool_size, &sqlite_ops, out, errbuf, errlen);
}
