/*
 * sqlite.c: the SQLite backend of store/. A pool of WAL-mode connections, each used by one thread
 * at a time, with its statements prepared once; writers of one process queue on a mutex; a
 * background thread checkpoints the WAL.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "billing/order.h"
#include "store/backend.h"
#include "store/migrations.h"

#define BUSY_TIMEOUT_MS     5000 /* how long a writer waits for another process's write lock */
#define CHECKPOINT_BUSY_MS  100  /* how long a RESTART checkpoint waits, holding writers back */
#define BUSY_YIELDS         3    /* busy_wait: the first waits only yield the CPU, */
#define BUSY_SLEEP_MIN_US   50   /* then sleep this long, doubling */
#define BUSY_SLEEP_MAX_US   200  /* up to this */
#define POOL_MAX            64
#define CHECKPOINT_PERIOD_S 1
#define CHECKPOINT_PAGES    2048 /* each time the WAL grows by this much, wake the checkpointer */
#define WAL_RESTART_PAGES   8192 /* a WAL this long is checkpointed with writers held back, */
#define WAL_TAIL_PAGES      256  /* once passive checkpoints leave no more than this behind */
#define CHECKPOINT_PASSES   4    /* or after this many of them */

/*
 * wal_autocheckpoint = 0: commits never pay for a checkpoint, the checkpoint thread does it.
 * The WAL hook installed after these pragmas replaces the automatic one anyway.
 * journal_size_limit: after a burst, the WAL file shrinks back to 64 MiB when it restarts.
 */
#define CONN_PRAGMAS                                                                     \
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; " \
    "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;"

enum stmt_id {
    STMT_SCHEMA_VERSION,
    STMT_PING,
    STMT_CUSTOMER_GET,
    STMT_CUSTOMER_GET_BY_STRIPE_ID,
    STMT_CUSTOMER_INSERT,
    STMT_CUSTOMER_MARK_TRIAL,
    STMT_SUBSCRIPTION_UPSERT,
    STMT_SUBSCRIPTION_GET,
    STMT_SUBSCRIPTION_GET_FOR_USER,
    STMT_INVOICE_UPSERT,
    STMT_INVOICE_LIST,
    STMT_USAGE_GET,
    STMT_USAGE_CONSUME,
    STMT_EVENT_GET,
    STMT_EVENT_STATUS,
    STMT_EVENT_DONE,
    STMT_EVENT_FAILED,
    STMT_EVENT_LIST,
    STMT_EVENT_RAW,
    STMT_CUSTOMER_LINK,
    STMT_INVOICE_GET,
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_IDEM_GET,
    STMT_IDEM_PUT,
    STMT_COUNT,
};

/* Column lists in the field order of the store_*_record tables (backend.h). */
#define CUSTOMER_COLS "user_id, stripe_customer_id, email, had_trial, created"
#define SUBSCRIPTION_COLS                                                             \
    "id, user_id, stripe_customer_id, tier, price_id, status, current_period_start, " \
    "current_period_end, cancel_at_period_end, cancel_at, canceled_at, trial_end, "   \
    "past_due_since, stripe_updated"
#define INVOICE_COLS                                                                             \
    "id, user_id, subscription_id, number, status, amount_due, amount_paid, currency, created, " \
    "period_start, period_end, hosted_invoice_url, invoice_pdf"
#define EVENT_COLS "id, type, created, status, attempts, last_error, received_at, applied_at"

static const char *const stmt_sql[STMT_COUNT] = {
    [STMT_SCHEMA_VERSION] = "PRAGMA user_version",
    [STMT_PING] = "SELECT 1",
    [STMT_CUSTOMER_GET] = "SELECT " CUSTOMER_COLS " FROM customers WHERE user_id = ?1",
    [STMT_CUSTOMER_GET_BY_STRIPE_ID] =
        "SELECT " CUSTOMER_COLS " FROM customers WHERE stripe_customer_id = ?1",
    [STMT_CUSTOMER_INSERT] =
        "INSERT INTO customers (" CUSTOMER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)",
    [STMT_CUSTOMER_MARK_TRIAL] = "UPDATE customers SET had_trial = 1 WHERE user_id = ?1",
    [STMT_SUBSCRIPTION_UPSERT] =
        "INSERT INTO subscriptions (" SUBSCRIPTION_COLS ", updated_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) "
        "ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, "
        "stripe_customer_id = excluded.stripe_customer_id, tier = excluded.tier, "
        "price_id = excluded.price_id, status = excluded.status, "
        "current_period_start = excluded.current_period_start, "
        "current_period_end = excluded.current_period_end, "
        "cancel_at_period_end = excluded.cancel_at_period_end, cancel_at = excluded.cancel_at, "
        "canceled_at = excluded.canceled_at, trial_end = excluded.trial_end, "
        "past_due_since = excluded.past_due_since, stripe_updated = excluded.stripe_updated, "
        "updated_at = excluded.updated_at",
    [STMT_SUBSCRIPTION_GET] = "SELECT " SUBSCRIPTION_COLS " FROM subscriptions WHERE id = ?1",
    [STMT_SUBSCRIPTION_GET_FOR_USER] =
        "SELECT " SUBSCRIPTION_COLS " FROM subscriptions WHERE user_id = ?1 "
        "ORDER BY status IN ('active', 'trialing', 'past_due') DESC, updated_at DESC, "
        "stripe_updated DESC, id DESC LIMIT 1",
    [STMT_INVOICE_UPSERT] =
        "INSERT INTO invoices (" INVOICE_COLS ") "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
        "ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, "
        "subscription_id = excluded.subscription_id, number = excluded.number, "
        "status = excluded.status, amount_due = excluded.amount_due, "
        "amount_paid = excluded.amount_paid, currency = excluded.currency, "
        "created = excluded.created, period_start = excluded.period_start, "
        "period_end = excluded.period_end, hosted_invoice_url = excluded.hosted_invoice_url, "
        "invoice_pdf = excluded.invoice_pdf",
    [STMT_INVOICE_LIST] = "SELECT " INVOICE_COLS " FROM invoices WHERE user_id = ?1 "
                          "ORDER BY created DESC, id DESC LIMIT ?2",
    [STMT_USAGE_GET] = "SELECT used FROM usage_counters "
                       "WHERE user_id = ?1 AND quota = ?2 AND window_start = ?3",
    /*
     * One statement, so the check and the add cannot be separated: a write statement takes the
     * write lock before it reads. ?5 is the limit (INT64_MAX when unlimited); "?4 <= ?5 - used"
     * cannot overflow because 0 <= used. No row comes back when the grant is refused.
     */
    [STMT_USAGE_CONSUME] =
        "INSERT INTO usage_counters (user_id, quota, window_start, used) "
        "SELECT ?1, ?2, ?3, ?4 WHERE ?4 <= ?5 "
        "ON CONFLICT (user_id, quota, window_start) DO UPDATE SET used = used + excluded.used "
        "WHERE excluded.used <= ?5 - used RETURNING used",
    [STMT_EVENT_GET] = "SELECT " EVENT_COLS " FROM webhook_events WHERE id = ?1",
    [STMT_EVENT_STATUS] = "SELECT status = 'failed' FROM webhook_events WHERE id = ?1",
    /* ?5 is 'applied' or 'ignored'; ?8 the time. raw_body is kept from the first delivery. */
    [STMT_EVENT_DONE] =
        "INSERT INTO webhook_events (id, type, created, raw_body, status, attempts, last_error, "
        "received_at, applied_at) VALUES (?1, ?2, ?3, ?4, ?5, 1, '', ?6, "
        "CASE WHEN ?5 = 'applied' THEN ?6 END) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, attempts = attempts + 1, "
        "last_error = '', applied_at = coalesce(excluded.applied_at, applied_at)",
    [STMT_EVENT_FAILED] =
        "INSERT INTO webhook_events (id, type, created, raw_body, status, attempts, last_error, "
        "received_at) VALUES (?1, ?2, ?3, ?4, 'failed', 1, ?5, ?6) "
        "ON CONFLICT (id) DO UPDATE SET status = 'failed', attempts = attempts + 1, "
        "last_error = excluded.last_error",
    [STMT_EVENT_LIST] = "SELECT " EVENT_COLS " FROM webhook_events "
                        "WHERE ?1 = 0 OR status = 'failed' "
                        "ORDER BY received_at DESC, id DESC LIMIT ?2",
    [STMT_EVENT_RAW] = "SELECT raw_body FROM webhook_events WHERE id = ?1",
    /* Either side already linked (user or Stripe customer): the existing link is kept. */
    [STMT_CUSTOMER_LINK] = "INSERT INTO customers (" CUSTOMER_COLS ") "
                           "VALUES (?1, ?2, '', ?3, ?4) ON CONFLICT DO NOTHING",
    [STMT_INVOICE_GET] = "SELECT " INVOICE_COLS " FROM invoices WHERE id = ?1",
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_IDEM_GET] = "SELECT scope, request_hash, response_status, response_body "
                      "FROM idempotency_keys WHERE key = ?1",
    [STMT_IDEM_PUT] = "INSERT INTO idempotency_keys (key, scope, request_hash, response_status, "
                      "response_body, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};

enum arg_kind {
    ARG_TEXT,
    ARG_I64,
};

struct sql_arg {
    enum arg_kind kind;
    const char *text; /* borrowed until the statement is released */
    int64_t i64;      /* ARG_I64: the value; ARG_TEXT: the length in bytes, -1 up to the NUL */
};

static struct sql_arg text_arg(const char *s)
{
    return (struct sql_arg){ ARG_TEXT, s, -1 };
}

/* Text of len bytes, which may hold NUL bytes (a raw webhook body). */
static struct sql_arg textn_arg(const char *s, size_t len)
{
    return (struct sql_arg){ ARG_TEXT, s, len > INT_MAX ? INT_MAX : (int64_t)len };
}

static struct sql_arg i64_arg(int64_t v)
{
    return (struct sql_arg){ ARG_I64, NULL, v };
}

/* A statement and what to bind: the fields of rec first (when layout is set), then args. */
struct query {
    enum stmt_id id;
    const struct store_record *layout;
    const void *rec;
    const struct sql_arg *args;
    size_t nargs;
};

/* busy_wait's state, one per connection. */
struct busy {
    int64_t since_ns; /* when the current wait for a lock began */
    int64_t limit_ns; /* how long one wait may last */
};

struct conn {
    sqlite3 *db;
    sqlite3_stmt *stmts[STMT_COUNT]; /* prepared on first use, kept until close */
    struct conn *next_idle;
    struct busy busy;
};

struct checkpointer {
    sqlite3 *db; /* its own connection, used by the thread only */
    struct busy busy;
    pthread_mutex_t *write_mu; /* the store's: held for a RESTART checkpoint */
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* on CLOCK_MONOTONIC */
    bool stop;           /* guarded by mu */
    bool kick;           /* guarded by mu: the WAL grew by CHECKPOINT_PAGES */
    int kicked_at;       /* guarded by write_mu: WAL frames at the last kick */
};

/*
 * Every write transaction and write statement runs with write_mu held. SQLite lets one writer
 * at a time have the database; without the mutex, the threads of this process would fight for
 * that lock, and a loser would sleep in the busy handler while the lock is free again. With it,
 * they queue here and are woken at once, and only writers in other processes meet the busy
 * handler (BEGIN IMMEDIATE and busy_wait keep that correct).
 */
struct sqlite_store {
    struct store base; /* first member: store.c casts between them */
    char *path;
    bool memory; /* ":memory:": one connection, as each connection would get its own database */
    pthread_mutex_t write_mu;
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cond; /* signalled when a connection is checked in */
    struct conn *conns;
    int nconns;
    struct conn *idle; /* guarded by pool_mu */
    struct checkpointer cp;
};

static struct sqlite_store *to_sqlite(struct store *st)
{
    return (struct sqlite_store *)st;
}

/* Maps a failed SQLite call to an err; logs what is not a plain uniqueness conflict. */
static enum err db_err(sqlite3 *db, int rc)
{
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        return ERR_CONFLICT;
    log_error("sqlite: %s (%s)", sqlite3_errmsg(db), sqlite3_errstr(rc));
    return ERR_STORE;
}

static struct conn *conn_checkout(struct sqlite_store *s)
{
    struct conn *c;

    pthread_mutex_lock(&s->pool_mu);
    while (!s->idle)
        pthread_cond_wait(&s->pool_cond, &s->pool_mu);
    c = s->idle;
    s->idle = c->next_idle;
    pthread_mutex_unlock(&s->pool_mu);
    return c;
}

static void conn_checkin(struct sqlite_store *s, struct conn *c)
{
    pthread_mutex_lock(&s->pool_mu);
    c->next_idle = s->idle;
    s->idle = c;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_mu);
}

/*
 * A connection to write with: write_mu first, so a writer waiting for its turn holds no
 * connection that a reader could use. The pool is LIFO: writers mostly get the connection the
 * last writer used, whose page cache is still valid.
 */
static struct conn *writer_checkout(struct sqlite_store *s)
{
    pthread_mutex_lock(&s->write_mu);
    return conn_checkout(s);
}

static void writer_checkin(struct sqlite_store *s, struct conn *c)
{
    conn_checkin(s, c);
    pthread_mutex_unlock(&s->write_mu);
}

static enum err stmt_get(struct conn *c, enum stmt_id id, sqlite3_stmt **out)
{
    if (!c->stmts[id]) {
        int rc = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->stmts[id], NULL);
        if (rc != SQLITE_OK)
            return db_err(c->db, rc);
    }
    *out = c->stmts[id];
    return ERR_OK;
}

/* Makes a cached statement ready for its next use. NULL is a no-op. */
static void stmt_release(sqlite3_stmt *stmt)
{
    if (!stmt)
        return;
    sqlite3_reset(stmt); /* repeats the step's error, which the caller already has */
    sqlite3_clear_bindings(stmt);
}

static int bind_field(sqlite3_stmt *stmt, int idx, const struct store_field *f, const char *p)
{
    int64_t v64;
    int v;
    bool b;

    switch (f->kind) {
    case FIELD_TEXT:
        return sqlite3_bind_text(stmt, idx, p, -1, SQLITE_STATIC);
    case FIELD_I64:
        memcpy(&v64, p, sizeof(v64));
        return sqlite3_bind_int64(stmt, idx, v64);
    case FIELD_INT:
        memcpy(&v, p, sizeof(v));
        return sqlite3_bind_int(stmt, idx, v);
    case FIELD_BOOL:
        memcpy(&b, p, sizeof(b));
        return sqlite3_bind_int(stmt, idx, b);
    }
    return SQLITE_MISUSE;
}

static int bind_query(sqlite3_stmt *stmt, const struct query *q)
{
    const size_t nfields = q->layout ? q->layout->count : 0;
    int rc = SQLITE_OK;

    for (size_t i = 0; i < nfields && rc == SQLITE_OK; i++) {
        const struct store_field *f = &q->layout->fields[i];
        rc = bind_field(stmt, (int)i + 1, f, (const char *)q->rec + f->off);
    }
    for (size_t i = 0; i < q->nargs && rc == SQLITE_OK; i++) {
        const struct sql_arg *a = &q->args[i];
        int idx = (int)(nfields + i) + 1;
        rc = a->kind == ARG_TEXT ? sqlite3_bind_text(stmt, idx, a->text, (int)a->i64, SQLITE_STATIC)
                                 : sqlite3_bind_int64(stmt, idx, a->i64);
    }
    return rc;
}

/* Steps once more: *row tells whether a row is ready to read. */
static enum err query_next(struct conn *c, sqlite3_stmt *stmt, bool *row)
{
    int rc = sqlite3_step(stmt);

    *row = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return ERR_OK;
    return db_err(c->db, rc);
}

/* Prepares (once), binds and steps q. Release *out with stmt_release() whatever the result. */
static enum err query_run(struct conn *c, const struct query *q, sqlite3_stmt **out, bool *row)
{
    enum err err = stmt_get(c, q->id, out);
    int rc;

    *row = false;
    if (err)
        return err;
    rc = bind_query(*out, q);
    if (rc != SQLITE_OK)
        return db_err(c->db, rc);
    return query_next(c, *out, row);
}

/*
 * After a row, steps to the end, so an autocommit write has committed (or said why not). Never
 * call it after SQLITE_DONE: stepping again would run the statement a second time.
 */
static enum err query_finish(struct conn *c, sqlite3_stmt *stmt)
{
    bool row = true;
    enum err err = ERR_OK;

    while (err == ERR_OK && row)
        err = query_next(c, stmt, &row);
    return err;
}

static void read_text(sqlite3_stmt *stmt, int col, const struct store_field *f, char *dst)
{
    const unsigned char *text = sqlite3_column_text(stmt, col);

    if (!str_copy(dst, f->size, text ? (const char *)text : ""))
        log_warn("sqlite: column '%s' longer than its field, truncated", f->name);
}

static void read_field(sqlite3_stmt *stmt, int col, const struct store_field *f, char *p)
{
    int64_t v64 = 0;
    int v;
    bool b;

    if (f->kind != FIELD_TEXT)
        v64 = sqlite3_column_int64(stmt, col);
    switch (f->kind) {
    case FIELD_TEXT:
        read_text(stmt, col, f, p);
        return;
    case FIELD_I64:
        memcpy(p, &v64, sizeof(v64));
        return;
    case FIELD_INT:
        v = v64 < INT_MIN ? INT_MIN : v64 > INT_MAX ? INT_MAX : (int)v64;
        memcpy(p, &v, sizeof(v));
        return;
    case FIELD_BOOL:
        b = v64 != 0;
        memcpy(p, &b, sizeof(b));
        return;
    }
}

static void read_record(sqlite3_stmt *stmt, const struct store_record *layout, void *out)
{
    assert(sqlite3_column_count(stmt) == (int)layout->count);
    memset(out, 0, layout->size);
    for (size_t i = 0; i < layout->count; i++) {
        const struct store_field *f = &layout->fields[i];
        assert(strcmp(sqlite3_column_name(stmt, (int)i), f->name) == 0);
        read_field(stmt, (int)i, f, (char *)out + f->off);
    }
}

/* Runs q, which yields at most one row, into a record: ERR_NOT_FOUND when no row. */
static enum err conn_fetch_record(struct conn *c, const struct query *q,
                                  const struct store_record *layout, void *out)
{
    sqlite3_stmt *stmt = NULL;
    bool row = false;
    enum err err = query_run(c, q, &stmt, &row);

    if (err == ERR_OK && !row)
        err = ERR_NOT_FOUND;
    if (err == ERR_OK) {
        read_record(stmt, layout, out);
        err = query_finish(c, stmt);
    }
    stmt_release(stmt);
    return err;
}

/* Runs q, which yields at most one row, into an integer: ERR_NOT_FOUND when no row. */
static enum err conn_fetch_i64(struct conn *c, const struct query *q, int64_t *out)
{
    sqlite3_stmt *stmt = NULL;
    bool row = false;
    enum err err = query_run(c, q, &stmt, &row);

    if (err == ERR_OK && !row)
        err = ERR_NOT_FOUND;
    if (err == ERR_OK) {
        *out = sqlite3_column_int64(stmt, 0);
        err = query_finish(c, stmt);
    }
    stmt_release(stmt);
    return err;
}

static enum err fetch_record(struct sqlite_store *s, const struct query *q,
                             const struct store_record *layout, void *out)
{
    struct conn *c = conn_checkout(s);
    enum err err = conn_fetch_record(c, q, layout, out);

    conn_checkin(s, c);
    return err;
}

static enum err fetch_i64(struct sqlite_store *s, const struct query *q, int64_t *out)
{
    struct conn *c = conn_checkout(s);
    enum err err = conn_fetch_i64(c, q, out);

    conn_checkin(s, c);
    return err;
}

/* Runs a write; *changes = rows it changed, when not NULL. */
static enum err exec_write(struct sqlite_store *s, const struct query *q, int *changes)
{
    struct conn *c = writer_checkout(s);
    sqlite3_stmt *stmt = NULL;
    bool row = false;
    enum err err = query_run(c, q, &stmt, &row);

    if (err == ERR_OK && row)
        err = query_finish(c, stmt);
    if (err == ERR_OK && changes)
        *changes = sqlite3_changes(c->db);
    stmt_release(stmt);
    writer_checkin(s, c);
    return err;
}

/* Migrations: the schema version is the database header's user_version. */

static int latest_version(void)
{
    return sqlite_migrations_count ? sqlite_migrations[sqlite_migrations_count - 1].version : 0;
}

static enum err conn_read_version(struct conn *c, int *version)
{
    const struct query q = { STMT_SCHEMA_VERSION, NULL, NULL, NULL, 0 };
    int64_t v = 0;
    enum err err = conn_fetch_i64(c, &q, &v);

    *version = (int)v; /* written only by us, from an int */
    return err;
}

/* Runs sql (several statements allowed); on failure writes "<what>: <cause>" into errbuf. */
static enum err exec_sql(sqlite3 *db, const char *sql, const char *what, char *errbuf,
                         size_t errlen)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

    if (rc == SQLITE_OK)
        return ERR_OK;
    store_errf(errbuf, errlen, "%s: %s", what, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return ERR_STORE;
}

/*
 * Applies m and bumps the version in one transaction. BEGIN IMMEDIATE takes the write lock
 * before the version is read again, so a concurrent migrator that got there first makes this
 * a no-op (*ran stays false) instead of a second run.
 */
static enum err migration_apply(struct conn *c, const struct migration *m, bool *ran, char *errbuf,
                                size_t errlen)
{
    char what[128];
    char bump[64];
    int version = 0;
    enum err err;

    (void)snprintf(what, sizeof(what), "cannot apply migration %03d_%s", m->version, m->name);
    (void)snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", m->version);
    err = exec_sql(c->db, "BEGIN IMMEDIATE", what, errbuf, errlen);
    if (err)
        return err;
    err = conn_read_version(c, &version);
    if (err || version >= m->version)
        goto out_rollback;
    err = exec_sql(c->db, m->sql, what, errbuf, errlen);
    if (!err)
        err = exec_sql(c->db, bump, what, errbuf, errlen);
    if (!err)
        err = exec_sql(c->db, "COMMIT", what, errbuf, errlen);
    if (err)
        goto out_rollback;
    *ran = true;
    return ERR_OK;
out_rollback:
    if (!sqlite3_get_autocommit(c->db))
        (void)!exec_sql(c->db, "ROLLBACK", "rollback", NULL, 0); /* err says what failed */
    return err;
}

static enum err conn_migrate(struct conn *c, int *applied, char *errbuf, size_t errlen)
{
    int version = 0;
    enum err err = conn_read_version(c, &version);

    if (err) {
        store_errf(errbuf, errlen, "cannot read the schema version: %s", sqlite3_errmsg(c->db));
        return err;
    }
    if (version > latest_version()) {
        store_errf(errbuf, errlen,
                   "database schema version %d is newer than this binary knows (%d): upgrade "
                   "subgate",
                   version, latest_version());
        return ERR_STORE;
    }
    for (size_t i = 0; i < sqlite_migrations_count && !err; i++) {
        const struct migration *m = &sqlite_migrations[i];
        bool ran = false;
        assert(i == 0 || m->version > sqlite_migrations[i - 1].version);
        if (m->version <= version)
            continue;
        err = migration_apply(c, m, &ran, errbuf, errlen);
        *applied += ran;
    }
    return err;
}

static enum err sqlite_migrate(struct store *st, int *applied, char *errbuf, size_t errlen)
{
    struct sqlite_store *s = to_sqlite(st);
    struct conn *c = writer_checkout(s);
    enum err err = conn_migrate(c, applied, errbuf, errlen);

    writer_checkin(s, c);
    return err;
}

static enum err sqlite_schema_version(struct store *st, int *version)
{
    struct sqlite_store *s = to_sqlite(st);
    struct conn *c = conn_checkout(s);
    enum err err = conn_read_version(c, version);

    conn_checkin(s, c);
    return err;
}

static int sqlite_schema_version_latest(const struct store *st)
{
    (void)st;
    return latest_version();
}

static enum err sqlite_ping(struct store *st)
{
    const struct query q = { STMT_PING, NULL, NULL, NULL, 0 };
    int64_t one = 0;
    enum err err = fetch_i64(to_sqlite(st), &q, &one);

    return err == ERR_OK && one == 1 ? ERR_OK : ERR_STORE;
}

/* Domain operations */

static enum err sqlite_customer_get(struct store *st, const char *user_id, struct customer *out)
{
    const struct sql_arg args[] = { text_arg(user_id) };
    const struct query q = { STMT_CUSTOMER_GET, NULL, NULL, args, ARRAY_SIZE(args) };

    return fetch_record(to_sqlite(st), &q, &store_customer_record, out);
}

static enum err sqlite_customer_get_by_stripe_id(struct store *st, const char *stripe_customer_id,
                                                 struct customer *out)
{
    const struct sql_arg args[] = { text_arg(stripe_customer_id) };
    const struct query q = { STMT_CUSTOMER_GET_BY_STRIPE_ID, NULL, NULL, args, ARRAY_SIZE(args) };

    return fetch_record(to_sqlite(st), &q, &store_customer_record, out);
}

static enum err sqlite_customer_insert(struct store *st, const struct customer *c)
{
    const struct query q = { STMT_CUSTOMER_INSERT, &store_customer_record, c, NULL, 0 };

    return exec_write(to_sqlite(st), &q, NULL);
}

static enum err sqlite_customer_mark_trial(struct store *st, const char *user_id)
{
    const struct sql_arg args[] = { text_arg(user_id) };
    const struct query q = { STMT_CUSTOMER_MARK_TRIAL, NULL, NULL, args, ARRAY_SIZE(args) };
    int changes = 0;
    enum err err = exec_write(to_sqlite(st), &q, &changes);

    return err == ERR_OK && changes == 0 ? ERR_NOT_FOUND : err;
}

static enum err sqlite_subscription_upsert(struct store *st, const struct subscription *sub,
                                           int64_t updated_at)
{
    const struct sql_arg args[] = { i64_arg(updated_at) };
    const struct query q = { STMT_SUBSCRIPTION_UPSERT, &store_subscription_record, sub, args,
                             ARRAY_SIZE(args) };

    return exec_write(to_sqlite(st), &q, NULL);
}

static enum err sqlite_subscription_get(struct store *st, const char *id, struct subscription *out)
{
    const struct sql_arg args[] = { text_arg(id) };
    const struct query q = { STMT_SUBSCRIPTION_GET, NULL, NULL, args, ARRAY_SIZE(args) };

    return fetch_record(to_sqlite(st), &q, &store_subscription_record, out);
}

static enum err sqlite_subscription_get_for_user(struct store *st, const char *user_id,
                                                 struct subscription *out)
{
    const struct sql_arg args[] = { text_arg(user_id) };
    const struct query q = { STMT_SUBSCRIPTION_GET_FOR_USER, NULL, NULL, args, ARRAY_SIZE(args) };

    return fetch_record(to_sqlite(st), &q, &store_subscription_record, out);
}

static enum err sqlite_invoice_upsert(struct store *st, const struct invoice *inv)
{
    const struct query q = { STMT_INVOICE_UPSERT, &store_invoice_record, inv, NULL, 0 };

    return exec_write(to_sqlite(st), &q, NULL);
}

static enum err sqlite_invoice_list(struct store *st, const char *user_id, int max,
                                    struct invoice *out, int *n)
{
    struct sqlite_store *s = to_sqlite(st);
    const struct sql_arg args[] = { text_arg(user_id), i64_arg(max) };
    const struct query q = { STMT_INVOICE_LIST, NULL, NULL, args, ARRAY_SIZE(args) };
    struct conn *c = conn_checkout(s);
    sqlite3_stmt *stmt = NULL;
    bool row = false;
    enum err err = query_run(c, &q, &stmt, &row);

    while (err == ERR_OK && row && *n < max) {
        read_record(stmt, &store_invoice_record, &out[*n]);
        (*n)++;
        err = query_next(c, stmt, &row);
    }
    if (err)
        *n = 0;
    stmt_release(stmt);
    conn_checkin(s, c);
    return err;
}

static enum err sqlite_usage_get(struct store *st, const char *user_id, const char *quota,
                                 int64_t window_start, int64_t *used)
{
    const struct sql_arg args[] = { text_arg(user_id), text_arg(quota), i64_arg(window_start) };
    const struct query q = { STMT_USAGE_GET, NULL, NULL, args, ARRAY_SIZE(args) };
    enum err err = fetch_i64(to_sqlite(st), &q, used);

    if (err == ERR_NOT_FOUND) {
        *used = 0;
        err = ERR_OK;
    }
    return err;
}

static enum err conn_usage_consume(struct conn *c, const struct usage_grant *g, bool *granted,
                                   int64_t *used_after)
{
    const struct sql_arg args[] = {
        text_arg(g->user_id),
        text_arg(g->quota),
        i64_arg(g->window_start),
        i64_arg(g->n),
        i64_arg(g->limit < 0 ? INT64_MAX : g->limit),
    };
    const struct query consume = { STMT_USAGE_CONSUME, NULL, NULL, args, ARRAY_SIZE(args) };
    const struct query get = { STMT_USAGE_GET, NULL, NULL, args, 3 }; /* the key only */
    enum err err = conn_fetch_i64(c, &consume, used_after);

    *granted = err == ERR_OK;
    if (err == ERR_NOT_FOUND) /* refused: report the counter as it stands */
        err = conn_fetch_i64(c, &get, used_after);
    if (err == ERR_NOT_FOUND) {
        *used_after = 0;
        err = ERR_OK;
    }
    return err;
}

static enum err sqlite_usage_consume(struct store *st, const struct usage_grant *g, bool *granted,
                                     int64_t *used_after)
{
    struct sqlite_store *s = to_sqlite(st);
    struct conn *c = writer_checkout(s);
    enum err err = conn_usage_consume(c, g, granted, used_after);

    writer_checkin(s, c);
    return err;
}

static enum err sqlite_event_get(struct store *st, const char *id, struct webhook_event *out)
{
    const struct sql_arg args[] = { text_arg(id) };
    const struct query q = { STMT_EVENT_GET, NULL, NULL, args, ARRAY_SIZE(args) };

    return fetch_record(to_sqlite(st), &q, &store_event_record, out);
}

/* Transactions and the webhook inbox: several statements on one connection, all or nothing. */

/* Runs a write on c; *changes = rows it changed, when not NULL. */
static enum err conn_write(struct conn *c, const struct query *q, int *changes)
{
    sqlite3_stmt *stmt = NULL;
    bool row = false;
    enum err err = query_run(c, q, &stmt, &row);

    if (err == ERR_OK && row)
        err = query_finish(c, stmt);
    if (err == ERR_OK && changes)
        *changes = sqlite3_changes(c->db);
    stmt_release(stmt);
    return err;
}

static enum err conn_simple(struct conn *c, enum stmt_id id)
{
    const struct query q = { id, NULL, NULL, NULL, 0 };

    return conn_write(c, &q, NULL);
}

/*
 * BEGIN IMMEDIATE takes the write lock first, so what the transaction reads stays true until
 * it commits: the compare and the store of an apply cannot be split by another writer.
 */
static enum err tx_begin(struct conn *c)
{
    return conn_simple(c, STMT_BEGIN);
}

/* Commits when err is ERR_OK, else rolls back; returns the first failure. */
static enum err tx_end(struct conn *c, enum err err)
{
    if (err == ERR_OK)
        err = conn_simple(c, STMT_COMMIT);
    if (err != ERR_OK && !sqlite3_get_autocommit(c->db))
        (void)!conn_simple(c, STMT_ROLLBACK); /* err already says what failed */
    return err;
}

static enum err conn_subscription_apply(struct conn *c, const struct subscription *sub,
                                        int64_t updated_at, bool *applied)
{
    const struct sql_arg id[] = { text_arg(sub->id) };
    const struct query get = { STMT_SUBSCRIPTION_GET, NULL, NULL, id, ARRAY_SIZE(id) };
    const struct sql_arg at[] = { i64_arg(updated_at) };
    struct subscription stored, merged;
    enum err err = conn_fetch_record(c, &get, &store_subscription_record, &stored);

    *applied = false;
    if (err && err != ERR_NOT_FOUND)
        return err;
    if (!subscription_state_merge(err ? NULL : &stored, sub, &merged))
        return ERR_OK;
    *applied = err == ERR_NOT_FOUND || subscription_state_is_newer(sub, &stored);
    const struct query put = { STMT_SUBSCRIPTION_UPSERT, &store_subscription_record, &merged, at,
                               ARRAY_SIZE(at) };
    return conn_write(c, &put, NULL);
}

static enum err sqlite_subscription_apply(struct store *st, const struct subscription *sub,
                                          int64_t updated_at, bool *applied)
{
    struct sqlite_store *s = to_sqlite(st);
    struct conn *c = writer_checkout(s);
    enum err err = tx_begin(c);

    if (!err)
        err = conn_subscription_apply(c, sub, updated_at, applied);
    err = tx_end(c, err);
    if (err)
        *applied = false;
    writer_checkin(s, c);
    return err;
}

/* Links user and Stripe customer unless either is linked already; marks the trial if asked. */
static enum err conn_customer_link(struct conn *c, const char *user_id, const char *customer_id,
                                   bool trial, int64_t now)
{
    const struct sql_arg link[] = { text_arg(user_id), text_arg(customer_id), i64_arg(trial),
                                    i64_arg(now) };
    const struct query ins = { STMT_CUSTOMER_LINK, NULL, NULL, link, ARRAY_SIZE(link) };
    const struct query mark = { STMT_CUSTOMER_MARK_TRIAL, NULL, NULL, link, 1 };
    enum err err = ERR_OK;

    if (user_id[0] && customer_id[0])
        err = conn_write(c, &ins, NULL);
    if (!err && trial && user_id[0])
        err = conn_write(c, &mark, NULL);
    return err;
}

/* The user of an object: its own user_id, else the stored customer's. */
static enum err conn_resolve_user(struct conn *c, const struct billing_event *ev, char *user_id,
                                  char *errbuf, size_t errlen)
{
    const struct sql_arg args[] = { text_arg(ev->customer_id) };
    const struct query q = { STMT_CUSTOMER_GET_BY_STRIPE_ID, NULL, NULL, args, ARRAY_SIZE(args) };
    struct customer cus;
    enum err err;

    if (user_id[0])
        return ERR_OK;
    err =
        ev->customer_id[0] ? conn_fetch_record(c, &q, &store_customer_record, &cus) : ERR_NOT_FOUND;
    if (err == ERR_NOT_FOUND)
        store_errf(errbuf, errlen,
                   "no user for stripe customer '%s': no metadata.user_id and the customer is not "
                   "linked yet",
                   ev->customer_id);
    if (!err)
        memcpy(user_id, cus.user_id, USER_ID_MAX);
    return err;
}

static enum err apply_subscription(struct conn *c, const struct billing_event *ev,
                                   const char *user_id, int64_t now, char *errbuf, size_t errlen)
{
    struct subscription sub = ev->sub;
    bool applied = false;
    enum err err;

    if (user_id[0])
        memcpy(sub.user_id, user_id, USER_ID_MAX);
    err = conn_resolve_user(c, ev, sub.user_id, errbuf, errlen);
    if (!err)
        err = conn_subscription_apply(c, &sub, now, &applied);
    if (!err)
        err = conn_customer_link(c, sub.user_id, sub.stripe_customer_id,
                                 billing_subscription_has_trial(&sub), now);
    return err;
}

static enum err apply_invoice(struct conn *c, const struct billing_event *ev, char *errbuf,
                              size_t errlen)
{
    const struct sql_arg id[] = { text_arg(ev->invoice.id) };
    const struct query get = { STMT_INVOICE_GET, NULL, NULL, id, ARRAY_SIZE(id) };
    struct invoice inv = ev->invoice, stored;
    enum err err = conn_resolve_user(c, ev, inv.user_id, errbuf, errlen);

    if (err)
        return err;
    err = conn_fetch_record(c, &get, &store_invoice_record, &stored);
    if (err == ERR_OK && !invoice_state_supersedes(&inv, &stored))
        return ERR_OK; /* a late event: the stored invoice is further along */
    if (err && err != ERR_NOT_FOUND)
        return err;
    const struct query put = { STMT_INVOICE_UPSERT, &store_invoice_record, &inv, NULL, 0 };
    return conn_write(c, &put, NULL);
}

static enum err apply_checkout(struct conn *c, const struct billing_event *ev, int64_t now,
                               char *errbuf, size_t errlen)
{
    enum err err = conn_customer_link(c, ev->user_id, ev->customer_id, false, now);

    if (!err && ev->has_sub)
        err = apply_subscription(c, ev, ev->user_id, now, errbuf, errlen);
    return err;
}

static enum err apply_effect(struct conn *c, const struct billing_event *ev, int64_t now,
                             char *errbuf, size_t errlen)
{
    switch (ev->kind) {
    case EVENT_CHECKOUT:
        return apply_checkout(c, ev, now, errbuf, errlen);
    case EVENT_SUBSCRIPTION:
        return apply_subscription(c, ev, "", now, errbuf, errlen);
    case EVENT_INVOICE:
        return apply_invoice(c, ev, errbuf, errlen);
    case EVENT_IGNORED:
        break;
    }
    return ERR_OK;
}

/* *seen: the event was applied or ignored before (a failed one may be tried again). */
static enum err conn_event_seen(struct conn *c, const char *id, bool *seen)
{
    const struct sql_arg args[] = { text_arg(id) };
    const struct query q = { STMT_EVENT_STATUS, NULL, NULL, args, ARRAY_SIZE(args) };
    int64_t failed = 0;
    enum err err = conn_fetch_i64(c, &q, &failed);

    *seen = err == ERR_OK && !failed;
    return err == ERR_NOT_FOUND ? ERR_OK : err;
}

static enum err conn_event_done(struct conn *c, const struct store_event_in *in, int64_t now)
{
    const struct billing_event *ev = in->ev;
    const char *status = ev->kind == EVENT_IGNORED ? "ignored" : "applied";
    const struct sql_arg args[] = { text_arg(ev->id),     text_arg(ev->type),
                                    i64_arg(ev->created), textn_arg(in->raw, in->raw_len),
                                    text_arg(status),     i64_arg(now) };
    const struct query q = { STMT_EVENT_DONE, NULL, NULL, args, ARRAY_SIZE(args) };

    return conn_write(c, &q, NULL);
}

static enum err conn_event_record_apply(struct conn *c, const struct store_event_in *in,
                                        int64_t now, enum store_event_result *result, char *errbuf,
                                        size_t errlen)
{
    bool seen = false;
    enum err err = conn_event_seen(c, in->ev->id, &seen);

    if (err || (seen && in->mode == STORE_EVENT_RECEIVE))
        return err;
    err = apply_effect(c, in->ev, now, errbuf, errlen);
    if (!err)
        err = conn_event_done(c, in, now);
    if (!err)
        *result = in->ev->kind == EVENT_IGNORED ? STORE_EVENT_IGNORED : STORE_EVENT_APPLIED;
    return err;
}

static enum err sqlite_event_record_apply(struct store *st, const struct store_event_in *in,
                                          int64_t now, enum store_event_result *result,
                                          char *errbuf, size_t errlen)
{
    struct sqlite_store *s = to_sqlite(st);
    struct conn *c = writer_checkout(s);
    enum err err = tx_begin(c);

    *result = STORE_EVENT_DUPLICATE;
    if (!err)
        err = conn_event_record_apply(c, in, now, result, errbuf, errlen);
    err = tx_end(c, err);
    if (err)
        *result = STORE_EVENT_DUPLICATE;
    if (err == ERR_STORE && errbuf && !errbuf[0])
        store_errf(errbuf, errlen, "database: %s", sqlite3_errmsg(c->db));
    writer_checkin(s, c);
    return err;
}

static enum err sqlite_event_record_failed(struct store *st, const struct store_event_in *in,
                                           int64_t now, const char *why)
{
    const struct billing_event *ev = in->ev;
    char last_error[sizeof(((struct webhook_event *)0)->last_error)];
    const struct sql_arg args[] = { text_arg(ev->id),     text_arg(ev->type),
                                    i64_arg(ev->created), textn_arg(in->raw, in->raw_len),
                                    text_arg(last_error), i64_arg(now) };
    const struct query q = { STMT_EVENT_FAILED, NULL, NULL, args, ARRAY_SIZE(args) };

    (void)str_copy(last_error, sizeof(last_error), why); /* a cut message is still a message */
    return exec_write(to_sqlite(st), &q, NULL);
}

static enum err sqlite_event_list(struct store *st, bool failed_only, int max,
                                  struct webhook_event *out, int *n)
{
    struct sqlite_store *s = to_sqlite(st);
    const struct sql_arg args[] = { i64_arg(failed_only), i64_arg(max) };
    const struct query q = { STMT_EVENT_LIST, NULL, NULL, args, ARRAY_SIZE(args) };
    struct conn *c = conn_checkout(s);
    sqlite3_stmt *stmt = NULL;
    bool row = false;
    enum err err = query_run(c, &q, &stmt, &row);

    while (err == ERR_OK && row && *n < max) {
        read_record(stmt, &store_event_record, &out[*n]);
        (*n)++;
        err = query_next(c, stmt, &row);
    }
    if (err)
        *n = 0;
    stmt_release(stmt);
    conn_checkin(s, c);
    return err;
}

static enum err conn_event_raw(struct conn *c, const char *id, char **raw, size_t *raw_len)
{
    const struct sql_arg args[] = { text_arg(id) };
    const struct query q = { STMT_EVENT_RAW, NULL, NULL, args, ARRAY_SIZE(args) };
    sqlite3_stmt *stmt = NULL;
    bool row = false;
    enum err err = query_run(c, &q, &stmt, &row);

    if (err == ERR_OK && !row)
        err = ERR_NOT_FOUND;
    if (err == ERR_OK) {
        const char *text = (const char *)sqlite3_column_text(stmt, 0);
        *raw_len = (size_t)sqlite3_column_bytes(stmt, 0);
        *raw = xmalloc(*raw_len + 1);
        if (*raw_len)
            memcpy(*raw, text, *raw_len);
        (*raw)[*raw_len] = '\0';
        err = query_finish(c, stmt);
    }
    stmt_release(stmt);
    return err;
}

static enum err sqlite_event_get_raw(struct store *st, const char *id, struct webhook_event *out,
                                     char **raw, size_t *raw_len)
{
    struct sqlite_store *s = to_sqlite(st);
    const struct sql_arg args[] = { text_arg(id) };
    const struct query q = { STMT_EVENT_GET, NULL, NULL, args, ARRAY_SIZE(args) };
    struct conn *c = conn_checkout(s);
    enum err err = conn_fetch_record(c, &q, &store_event_record, out);

    if (!err)
        err = conn_event_raw(c, id, raw, raw_len);
    if (err) {
        free(*raw);
        *raw = NULL;
        *raw_len = 0;
    }
    conn_checkin(s, c);
    return err;
}

/* Keyed consume: the reply is stored with the consume, in one transaction. */

static const char *column_text(sqlite3_stmt *stmt, int col)
{
    const unsigned char *t = sqlite3_column_text(stmt, col);

    return t ? (const char *)t : "";
}

/* The key's stored reply: ERR_NOT_FOUND when the key is new, ERR_CONFLICT for another request. */
static enum err keyed_replay(struct conn *c, const struct store_idempotency *k,
                             struct store_reply *out)
{
    const struct sql_arg args[] = { text_arg(k->key) };
    const struct query q = { STMT_IDEM_GET, NULL, NULL, args, ARRAY_SIZE(args) };
    sqlite3_stmt *stmt = NULL;
    bool row = false;
    enum err err = query_run(c, &q, &stmt, &row);

    if (err == ERR_OK && !row)
        err = ERR_NOT_FOUND;
    if (err == ERR_OK && (strcmp(column_text(stmt, 0), k->scope) != 0 ||
                          strcmp(column_text(stmt, 1), k->request_hash) != 0))
        err = ERR_CONFLICT;
    if (err == ERR_OK) {
        out->status = sqlite3_column_int(stmt, 2);
        out->body = xstrdup(column_text(stmt, 3));
        out->replayed = true;
        err = query_finish(c, stmt);
    }
    stmt_release(stmt);
    return err;
}

static enum err keyed_consume(struct conn *c, const struct usage_grant *g,
                              const struct store_idempotency *k, store_reply_fn render, void *ctx,
                              struct store_reply *out)
{
    bool granted = false;
    int64_t used = 0;
    enum err err = keyed_replay(c, k, out);

    if (err != ERR_NOT_FOUND)
        return err;
    if ((err = conn_usage_consume(c, g, &granted, &used)) != ERR_OK)
        return err;
    render(ctx, granted, used, &out->status, &out->body);
    const struct sql_arg args[] = { text_arg(k->key),          text_arg(k->scope),
                                    text_arg(k->request_hash), i64_arg(out->status),
                                    text_arg(out->body),       i64_arg(k->now) };
    const struct query put = { STMT_IDEM_PUT, NULL, NULL, args, ARRAY_SIZE(args) };
    return conn_write(c, &put, NULL);
}

static enum err sqlite_usage_consume_once(struct store *st, const struct usage_grant *g,
                                          const struct store_idempotency *k, store_reply_fn render,
                                          void *ctx, struct store_reply *out)
{
    struct sqlite_store *s = to_sqlite(st);
    struct conn *c = writer_checkout(s);
    enum err err = tx_begin(c);

    if (err == ERR_OK)
        err = tx_end(c, keyed_consume(c, g, k, render, ctx, out));
    if (err != ERR_OK) {
        free(out->body);
        memset(out, 0, sizeof(*out));
    }
    writer_checkin(s, c);
    return err;
}

/* The checkpoint thread */

/*
 * Called by SQLite after each commit, on the committing thread, which holds write_mu. Wakes the
 * checkpointer each time the WAL has grown by CHECKPOINT_PAGES: under steady writes a passive
 * checkpoint rarely empties the WAL, and waking it after every commit past a fixed length made
 * it checkpoint (two fdatasyncs) every few commits.
 */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct checkpointer *cp = arg;

    (void)db;
    (void)name;
    if (pages < cp->kicked_at) /* the WAL started over */
        cp->kicked_at = 0;
    if (pages - cp->kicked_at < CHECKPOINT_PAGES)
        return SQLITE_OK;
    cp->kicked_at = pages;
    pthread_mutex_lock(&cp->mu);
    cp->kick = true;
    pthread_cond_signal(&cp->wake);
    pthread_mutex_unlock(&cp->mu);
    return SQLITE_OK;
}

/* Waits, with cp->mu held, for the period to pass, a kick or the stop. */
static void checkpoint_wait(struct checkpointer *cp)
{
    struct timespec deadline;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += CHECKPOINT_PERIOD_S;
    while (!cp->stop && !cp->kick)
        if (pthread_cond_timedwait(&cp->wake, &cp->mu, &deadline) == ETIMEDOUT)
            return;
}

/*
 * PASSIVE never waits for readers or writers, so requests go on while it copies the WAL into
 * the database. But a writer starts the WAL over only when it finds it fully copied, and under
 * steady writes new commits land during every passive checkpoint. So once the WAL is
 * WAL_RESTART_PAGES long, passive checkpoints repeat until one finds little new (each copies
 * what came in during the one before), and then a RESTART checkpoint runs with this process's
 * writers held back on write_mu: it copies that little, waits for other processes' writers and
 * for readers, and the next writer starts the WAL over. Writers wait for the RESTART's two
 * fdatasyncs of a short tail, not for the whole WAL's. It is skipped when the last passive pass
 * had to leave much of what it saw (a reader still uses an old snapshot, and waiting for it would
 * hold writers back), and it waits for at most CHECKPOINT_BUSY_MS; the next kick tries again.
 */
static void checkpoint_once(struct checkpointer *cp)
{
    int frames = 0, before = 0, copied = 0;
    int rc = SQLITE_OK;

    for (int pass = 0; pass < CHECKPOINT_PASSES && rc == SQLITE_OK; pass++) {
        before = frames;
        rc = sqlite3_wal_checkpoint_v2(cp->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied);
        if (frames < WAL_RESTART_PAGES || frames - before <= WAL_TAIL_PAGES)
            break;
    }
    if (rc == SQLITE_OK && frames >= WAL_RESTART_PAGES && frames - copied <= WAL_TAIL_PAGES) {
        pthread_mutex_lock(cp->write_mu);
        rc = sqlite3_wal_checkpoint_v2(cp->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
        pthread_mutex_unlock(cp->write_mu);
    }
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        log_warn("sqlite: wal checkpoint failed: %s", sqlite3_errmsg(cp->db));
}

static void *checkpoint_main(void *arg)
{
    struct checkpointer *cp = arg;

    pthread_mutex_lock(&cp->mu);
    while (!cp->stop) {
        checkpoint_wait(cp);
        if (cp->stop)
            break;
        cp->kick = false;
        pthread_mutex_unlock(&cp->mu);
        checkpoint_once(cp);
        pthread_mutex_lock(&cp->mu);
    }
    pthread_mutex_unlock(&cp->mu);
    return NULL;
}

static void checkpointer_init(struct checkpointer *cp, pthread_mutex_t *write_mu)
{
    pthread_condattr_t attr;

    cp->write_mu = write_mu;
    pthread_mutex_init(&cp->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&cp->wake, &attr);
    pthread_condattr_destroy(&attr);
}

static void checkpointer_stop(struct checkpointer *cp)
{
    if (cp->running) {
        pthread_mutex_lock(&cp->mu);
        cp->stop = true;
        pthread_cond_signal(&cp->wake);
        pthread_mutex_unlock(&cp->mu);
        pthread_join(cp->thread, NULL);
        cp->running = false;
    }
    sqlite3_close(cp->db);
    cp->db = NULL;
}

/* Opening and closing */

/* Creates the missing directories above the file at path, like mkdir -p. */
static enum err make_parents(const char *path, char *errbuf, size_t errlen)
{
    char dir[PATH_MAX];
    char why[128];
    const char *slash = strrchr(path, '/');

    if (!slash || slash == path)
        return ERR_OK;
    if (!str_copyn(dir, sizeof(dir), path, (size_t)(slash - path))) {
        store_errf(errbuf, errlen, "cannot open database '%s': path too long", path);
        return ERR_INVALID;
    }
    for (char *p = dir + 1;; p++) {
        bool end = *p == '\0';
        if (*p != '/' && !end)
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            store_errf(errbuf, errlen,
                       "cannot open database '%s': cannot create directory '%s': %s", path, dir,
                       strerror_r(errno, why, sizeof(why)));
            return ERR_STORE;
        }
        if (end)
            return ERR_OK;
        *p = '/';
    }
}

static int64_t monotonic_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

/*
 * SQLite's busy handler, met when another process holds the lock we want (this process's own
 * writers queue on write_mu). sqlite3_busy_timeout() sleeps 1 ms at first and up to 100 ms,
 * while a subgate transaction takes tens of microseconds; this yields, then polls every
 * 50-200 us, for up to b->limit_ns. arg is the connection's struct busy.
 */
static int busy_wait(void *arg, int count)
{
    struct busy *b = arg;
    int64_t now = monotonic_ns();
    long sleep_us = BUSY_SLEEP_MIN_US;

    if (count == 0)
        b->since_ns = now;
    if (now - b->since_ns >= b->limit_ns)
        return 0; /* give up: the caller gets SQLITE_BUSY */
    if (count < BUSY_YIELDS) {
        (void)sched_yield(); /* cannot fail on Linux */
        return 1;
    }
    for (int i = BUSY_YIELDS; i < count && sleep_us < BUSY_SLEEP_MAX_US; i++)
        sleep_us *= 2;
    (void)usleep((useconds_t)(sleep_us < BUSY_SLEEP_MAX_US ? sleep_us : BUSY_SLEEP_MAX_US));
    return 1; /* an interrupted sleep only means an earlier retry */
}

/* *busy: busy_wait's state, owned by whoever uses the connection; waits last BUSY_TIMEOUT_MS. */
static enum err db_open(const char *path, struct busy *busy, sqlite3 **out, char *errbuf,
                        size_t errlen)
{
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(db, 1);
        busy->limit_ns = BUSY_TIMEOUT_MS * INT64_C(1000000);
        rc = sqlite3_busy_handler(db, busy_wait, busy);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, CONN_PRAGMAS, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        store_errf(errbuf, errlen, "cannot open database '%s': %s", path,
                   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return ERR_STORE;
    }
    *out = db;
    return ERR_OK;
}

static void conn_close(struct conn *c)
{
    for (size_t i = 0; i < ARRAY_SIZE(c->stmts); i++)
        sqlite3_finalize(c->stmts[i]);
    if (sqlite3_close(c->db) != SQLITE_OK)
        log_error("sqlite: cannot close connection: %s", sqlite3_errmsg(c->db));
}

static void sqlite_close(struct store *st)
{
    struct sqlite_store *s = to_sqlite(st);

    checkpointer_stop(&s->cp);
    for (int i = 0; i < s->nconns; i++)
        conn_close(&s->conns[i]);
    pthread_cond_destroy(&s->cp.wake);
    pthread_mutex_destroy(&s->cp.mu);
    pthread_cond_destroy(&s->pool_cond);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_mutex_destroy(&s->write_mu);
    free(s->conns);
    free(s->path);
    free(s);
}

static enum err pool_open(struct sqlite_store *s, char *errbuf, size_t errlen)
{
    for (int i = 0; i < s->nconns; i++) {
        struct conn *c = &s->conns[i];
        enum err err = db_open(s->path, &c->busy, &c->db, errbuf, errlen);
        if (err)
            return err;
        if (!s->memory)
            sqlite3_wal_hook(c->db, wal_hook, &s->cp);
        c->next_idle = s->idle;
        s->idle = c;
    }
    return ERR_OK;
}

static enum err checkpointer_start(struct sqlite_store *s, char *errbuf, size_t errlen)
{
    struct checkpointer *cp = &s->cp;
    enum err err = db_open(s->path, &cp->busy, &cp->db, errbuf, errlen);

    if (err)
        return err;
    cp->busy.limit_ns = CHECKPOINT_BUSY_MS * INT64_C(1000000); /* see checkpoint_once() */
    if (pthread_create(&cp->thread, NULL, checkpoint_main, cp) != 0) {
        store_errf(errbuf, errlen, "cannot open database '%s': cannot start checkpoint thread",
                   s->path);
        return ERR_STORE;
    }
    cp->running = true;
    return ERR_OK;
}

static const struct store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sqlite_close,
    .migrate = sqlite_migrate,
    .schema_version = sqlite_schema_version,
    .schema_version_latest = sqlite_schema_version_latest,
    .ping = sqlite_ping,
    .customer_get = sqlite_customer_get,
    .customer_get_by_stripe_id = sqlite_customer_get_by_stripe_id,
    .customer_insert = sqlite_customer_insert,
    .customer_mark_trial = sqlite_customer_mark_trial,
    .subscription_upsert = sqlite_subscription_upsert,
    .subscription_apply = sqlite_subscription_apply,
    .subscription_get = sqlite_subscription_get,
    .subscription_get_for_user = sqlite_subscription_get_for_user,
    .invoice_upsert = sqlite_invoice_upsert,
    .invoice_list = sqlite_invoice_list,
    .usage_get = sqlite_usage_get,
    .usage_consume = sqlite_usage_consume,
    .event_get = sqlite_event_get,
    .event_record_apply = sqlite_event_record_apply,
    .event_record_failed = sqlite_event_record_failed,
    .event_list = sqlite_event_list,
    .event_get_raw = sqlite_event_get_raw,
    .usage_consume_once = sqlite_usage_consume_once,
};

static struct sqlite_store *sqlite_store_new(const char *path, int pool_size)
{
    struct sqlite_store *s = xcalloc(1, sizeof(*s));

    s->base.ops = &sqlite_ops;
    s->path = xstrdup(path);
    s->memory = strcmp(path, ":memory:") == 0;
    s->nconns = s->memory ? 1 : pool_size < 1 ? 1 : pool_size > POOL_MAX ? POOL_MAX : pool_size;
    s->conns = xcalloc((size_t)s->nconns, sizeof(*s->conns));
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_cond_init(&s->pool_cond, NULL);
    pthread_mutex_init(&s->write_mu, NULL);
    checkpointer_init(&s->cp, &s->write_mu);
    return s;
}

/*
 * Once per process, before the first connection: no memory statistics. With them, every
 * allocation SQLite makes takes a global mutex, and Debian's build (no lookaside) allocates
 * often. sqlite3_config() refuses once SQLite is initialized (something else used it first); the
 * statistics then stay on, which costs only speed.
 */
static void global_init(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

enum err sqlite_store_open(const char *target, int pool_size, struct store **out, char *errbuf,
                           size_t errlen)
{
    struct sqlite_store *s;
    enum err err;

    (void)pthread_once(&global_once, global_init); /* fails only on invalid arguments */

    if (target[0] == '\0') {
        store_errf(errbuf, errlen, "cannot open database '': empty path (want sqlite:PATH)");
        return ERR_INVALID;
    }
    if (strcmp(target, ":memory:") != 0) {
        err = make_parents(target, errbuf, errlen);
        if (err)
            return err;
    }
    s = sqlite_store_new(target, pool_size);
    err = pool_open(s, errbuf, errlen);
    if (!err && !s->memory)
        err = checkpointer_start(s, errbuf, errlen);
    if (err) {
        sqlite_close(&s->base);
        return err;
    }
    *out = &s->base;
    return ERR_OK;
}
