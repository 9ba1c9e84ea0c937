/*
 * pg.c: the PostgreSQL backend of store/ (libpq). A pool of connections, each used by one thread
 * at a time with its statements prepared once per session; a connection found broken is reset
 * before its next use, so one store outlives a server restart.
 */
#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "billing/order.h"
#include "store/backend.h"
#include "store/migrations.h"

#define POOL_MAX         64
#define TX_ATTEMPTS      3 /* a transaction picked as a deadlock victim runs again, this many times */
#define PARAMS_MAX       16
#define MIGRATE_LOCK_KEY "7526466872665830517" /* pg_advisory_xact_lock key of migrations */

/*
 * Session settings, before the URL's own (which win): connecting and every statement give up
 * within seconds instead of hanging on a dead or stuck server, and TCP keepalives notice a
 * peer that vanished without closing the connection.
 */
static const struct {
    const char *key;
    const char *value;
} conn_settings[] = {
    { "connect_timeout", "3" },
    { "keepalives", "1" },
    { "keepalives_idle", "10" },
    { "keepalives_interval", "5" },
    { "keepalives_count", "3" },
    { "tcp_user_timeout", "10000" },
    { "application_name", "subgate" },
    { "options", "-c statement_timeout=15000 -c client_min_messages=warning" },
};

enum stmt_id {
    STMT_PING,
    STMT_CUSTOMER_GET,
    STMT_CUSTOMER_GET_BY_STRIPE_ID,
    STMT_CUSTOMER_INSERT,
    STMT_CUSTOMER_MARK_TRIAL,
    STMT_CUSTOMER_LINK,
    STMT_SUBSCRIPTION_UPSERT,
    STMT_SUBSCRIPTION_INSERT_NEW,
    STMT_SUBSCRIPTION_GET,
    STMT_SUBSCRIPTION_LOCK,
    STMT_SUBSCRIPTION_GET_FOR_USER,
    STMT_INVOICE_UPSERT,
    STMT_INVOICE_INSERT_NEW,
    STMT_INVOICE_LOCK,
    STMT_INVOICE_LIST,
    STMT_USAGE_GET,
    STMT_USAGE_CONSUME,
    STMT_EVENT_GET,
    STMT_EVENT_CLAIM,
    STMT_EVENT_FAILED,
    STMT_EVENT_LIST,
    STMT_EVENT_RAW,
    STMT_IDEM_CLAIM,
    STMT_IDEM_GET,
    STMT_IDEM_SET,
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_COUNT,
};

/* Column lists in the field order of the store_*_record tables (backend.h). */
#define CUSTOMER_COLS "user_id, stripe_customer_id, email, had_trial, created"
#define SUBSCRIPTION_COLS                                                             \
    "id, user_id, stripe_customer_id, tier, price_id, status, current_period_start, " \
    "current_period_end, cancel_at_period_end, cancel_at, canceled_at, trial_end, "   \
    "past_due_since, stripe_updated"
#define SUBSCRIPTION_VALUES \
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
#define INVOICE_COLS                                                                             \
    "id, user_id, subscription_id, number, status, amount_due, amount_paid, currency, created, " \
    "period_start, period_end, hosted_invoice_url, invoice_pdf"
#define INVOICE_VALUES "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
#define EVENT_COLS     "id, type, created, status, attempts, last_error, received_at, applied_at"

struct stmt {
    const char *sql;
    bool writes; /* run outside a transaction it may commit: never run twice */
};

static const struct stmt stmts[STMT_COUNT] = {
    [STMT_PING] = { "SELECT 1", false },
    [STMT_CUSTOMER_GET] = { "SELECT " CUSTOMER_COLS " FROM customers WHERE user_id = $1", false },
    [STMT_CUSTOMER_GET_BY_STRIPE_ID] = { "SELECT " CUSTOMER_COLS
                                         " FROM customers WHERE stripe_customer_id = $1",
                                         false },
    [STMT_CUSTOMER_INSERT] = { "INSERT INTO customers (" CUSTOMER_COLS
                               ") VALUES ($1, $2, $3, $4, $5)",
                               true },
    [STMT_CUSTOMER_MARK_TRIAL] = { "UPDATE customers SET had_trial = TRUE WHERE user_id = $1",
                                   true },
    /* Either side already linked (user or Stripe customer): the existing link is kept. */
    [STMT_CUSTOMER_LINK] = { "INSERT INTO customers (" CUSTOMER_COLS ") "
                             "VALUES ($1, $2, '', $3::boolean, $4) ON CONFLICT DO NOTHING",
                             true },
    [STMT_SUBSCRIPTION_UPSERT] = { "INSERT INTO subscriptions (" SUBSCRIPTION_COLS
                                   ", updated_at) " SUBSCRIPTION_VALUES
                                   "ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, "
                                   "stripe_customer_id = excluded.stripe_customer_id, tier = excluded.tier, "
                                   "price_id = excluded.price_id, status = excluded.status, "
                                   "current_period_start = excluded.current_period_start, "
                                   "current_period_end = excluded.current_period_end, "
                                   "cancel_at_period_end = excluded.cancel_at_period_end, cancel_at = excluded.cancel_at, "
                                   "canceled_at = excluded.canceled_at, trial_end = excluded.trial_end, "
                                   "past_due_since = excluded.past_due_since, stripe_updated = excluded.stripe_updated, "
                                   "updated_at = excluded.updated_at",
                                   true },
    [STMT_SUBSCRIPTION_INSERT_NEW] = { "INSERT INTO subscriptions (" SUBSCRIPTION_COLS
                                       ", updated_at) " SUBSCRIPTION_VALUES
                                       "ON CONFLICT (id) DO NOTHING",
                                       true },
    [STMT_SUBSCRIPTION_GET] = { "SELECT " SUBSCRIPTION_COLS " FROM subscriptions WHERE id = $1",
                                false },
    [STMT_SUBSCRIPTION_LOCK] = { "SELECT " SUBSCRIPTION_COLS
                                 " FROM subscriptions WHERE id = $1 FOR UPDATE",
                                 false },
    [STMT_SUBSCRIPTION_GET_FOR_USER] = { "SELECT " SUBSCRIPTION_COLS
                                         " FROM subscriptions WHERE user_id = $1 "
                                         "ORDER BY status IN ('active', 'trialing', 'past_due') DESC, updated_at DESC, "
                                         "stripe_updated DESC, id DESC LIMIT 1",
                                         false },
    [STMT_INVOICE_UPSERT] = { "INSERT INTO invoices (" INVOICE_COLS ") " INVOICE_VALUES
                              "ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, "
                              "subscription_id = excluded.subscription_id, number = excluded.number, "
                              "status = excluded.status, amount_due = excluded.amount_due, "
                              "amount_paid = excluded.amount_paid, currency = excluded.currency, "
                              "created = excluded.created, period_start = excluded.period_start, "
                              "period_end = excluded.period_end, hosted_invoice_url = excluded.hosted_invoice_url, "
                              "invoice_pdf = excluded.invoice_pdf",
                              true },
    [STMT_INVOICE_INSERT_NEW] = { "INSERT INTO invoices (" INVOICE_COLS ") " INVOICE_VALUES
                                  "ON CONFLICT (id) DO NOTHING",
                                  true },
    [STMT_INVOICE_LOCK] = { "SELECT " INVOICE_COLS " FROM invoices WHERE id = $1 FOR UPDATE",
                            false },
    [STMT_INVOICE_LIST] = { "SELECT " INVOICE_COLS " FROM invoices WHERE user_id = $1 "
                            "ORDER BY created DESC, id DESC LIMIT $2",
                            false },
    [STMT_USAGE_GET] = { "SELECT used FROM usage_counters "
                         "WHERE user_id = $1 AND quota = $2 AND window_start = $3",
                         false },
    /*
     * One statement: ON CONFLICT locks the counter and evaluates the WHERE on its latest
     * version, so the check and the add cannot be separated. $5 is the limit (INT64_MAX when
     * unlimited); "$4 <= $5 - used" cannot overflow because 0 <= used. No row comes back when
     * the grant is refused.
     */
    [STMT_USAGE_CONSUME] = { "INSERT INTO usage_counters AS u (user_id, quota, window_start, used) "
                             "SELECT $1::text, $2::text, $3::bigint, $4::bigint WHERE $4::bigint <= $5::bigint "
                             "ON CONFLICT (user_id, quota, window_start) DO UPDATE SET used = u.used + excluded.used "
                             "WHERE excluded.used <= $5::bigint - u.used RETURNING used",
                             true },
    [STMT_EVENT_GET] = { "SELECT " EVENT_COLS " FROM webhook_events WHERE id = $1", false },
    /*
     * Records the event first, inside the transaction that applies it: the unique id makes a
     * concurrent delivery of the same event wait for this one, then find it applied ($7 =
     * replay: record it again whatever its status). No row changed: a duplicate.
     */
    [STMT_EVENT_CLAIM] = { "INSERT INTO webhook_events AS e (id, type, created, raw_body, status, attempts, "
                           "last_error, received_at, applied_at) VALUES ($1, $2, $3, $4::bytea, $5::text, 1, '', "
                           "$6::bigint, CASE WHEN $5::text = 'applied' THEN $6::bigint END) "
                           "ON CONFLICT (id) DO UPDATE SET status = excluded.status, attempts = e.attempts + 1, "
                           "last_error = '', applied_at = coalesce(excluded.applied_at, e.applied_at) "
                           "WHERE $7::boolean OR e.status = 'failed'",
                           true },
    [STMT_EVENT_FAILED] = { "INSERT INTO webhook_events AS e (id, type, created, raw_body, status, attempts, "
                            "last_error, received_at) VALUES ($1, $2, $3, $4::bytea, 'failed', 1, $5, $6) "
                            "ON CONFLICT (id) DO UPDATE SET status = 'failed', attempts = e.attempts + 1, "
                            "last_error = excluded.last_error",
                            true },
    [STMT_EVENT_LIST] = { "SELECT " EVENT_COLS " FROM webhook_events "
                          "WHERE NOT $1::boolean OR status = 'failed' "
                          "ORDER BY received_at DESC, id DESC LIMIT $2",
                          false },
    [STMT_EVENT_RAW] = { "SELECT " EVENT_COLS ", raw_body FROM webhook_events WHERE id = $1",
                         false },
    /* The first request with a key inserts it; one with the same key waits until it commits. */
    [STMT_IDEM_CLAIM] = { "INSERT INTO idempotency_keys (key, scope, request_hash, created) "
                          "VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
                          true },
    [STMT_IDEM_GET] = { "SELECT scope, request_hash, response_status, response_body "
                        "FROM idempotency_keys WHERE key = $1",
                        false },
    [STMT_IDEM_SET] = { "UPDATE idempotency_keys SET response_status = $2, response_body = $3 "
                        "WHERE key = $1",
                        true },
    [STMT_BEGIN] = { "BEGIN", false },
    [STMT_COMMIT] = { "COMMIT", true },
    [STMT_ROLLBACK] = { "ROLLBACK", false },
};

enum arg_kind {
    ARG_TEXT,
    ARG_BYTES, /* binary: may hold any byte */
    ARG_I64,
    ARG_BOOL,
};

struct sql_arg {
    enum arg_kind kind;
    const char *text; /* borrowed until the statement has run */
    int64_t i64;      /* ARG_I64, ARG_BOOL: the value; ARG_BYTES: the length */
};

static struct sql_arg text_arg(const char *s)
{
    return (struct sql_arg){ ARG_TEXT, s, 0 };
}

static struct sql_arg bytes_arg(const char *s, size_t len)
{
    return (struct sql_arg){ ARG_BYTES, s, len > INT_MAX ? INT_MAX : (int64_t)len };
}

static struct sql_arg i64_arg(int64_t v)
{
    return (struct sql_arg){ ARG_I64, NULL, v };
}

static struct sql_arg bool_arg(bool b)
{
    return (struct sql_arg){ ARG_BOOL, NULL, b };
}

/* A statement and what to pass: the fields of rec first (when layout is set), then args. */
struct query {
    enum stmt_id id;
    const struct store_record *layout;
    const void *rec;
    const struct sql_arg *args;
    size_t nargs;
};

/* The parameters of one statement, as libpq takes them; numbers rendered in num[]. */
struct params {
    const char *values[PARAMS_MAX];
    int lengths[PARAMS_MAX];
    int formats[PARAMS_MAX];
    char num[PARAMS_MAX][24];
    int n;
};

struct conn {
    PGconn *db;                /* NULL until first used */
    const char *url;           /* borrowed from the store */
    bool prepared[STMT_COUNT]; /* in this session: a reset forgets them */
    bool op_first;             /* the next statement is the first of an operation */
    char sqlstate[6];          /* of the last failure, "" when none */
    char errmsg[256];          /* of the last failure, for messages */
    struct conn *next_idle;
};

struct pg_store {
    struct store base; /* first member: store.c casts between them */
    char *url;         /* the full URL, password included: never printed */
    char *shown;       /* user, host, port and database only, for messages */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cond; /* signalled when a connection is checked in */
    struct conn *conns;
    int nconns;
    struct conn *idle; /* guarded by pool_mu */
};

static struct pg_store *to_pg(struct store *st)
{
    return (struct pg_store *)st;
}

/* Connections: lazily opened, checked before each operation, reset when broken. */

static void conn_note(struct conn *c, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char *nl;

    (void)str_copy(c->sqlstate, sizeof(c->sqlstate), state ? state : "");            /* 5 chars */
    (void)str_copy(c->errmsg, sizeof(c->errmsg), msg ? msg : PQerrorMessage(c->db)); /* cut */
    nl = strchr(c->errmsg, '\n');
    if (nl)
        *nl = '\0';
}

static bool sqlstate_is(const struct conn *c, const char *code)
{
    return strcmp(c->sqlstate, code) == 0;
}

/* Lost connection, server shutting down or overloaded, statement timed out: try again later. */
static bool conn_unavailable(const struct conn *c)
{
    return PQstatus(c->db) != CONNECTION_OK || str_has_prefix(c->sqlstate, "08") ||
           str_has_prefix(c->sqlstate, "57") || str_has_prefix(c->sqlstate, "53");
}

/* Maps a failed statement (res may be NULL) to an err; logs what is not expected. */
static enum err result_err(struct conn *c, const PGresult *res)
{
    conn_note(c, res);
    if (conn_unavailable(c)) {
        log_warn("postgres: unavailable: %s", c->errmsg);
        return ERR_UNAVAILABLE;
    }
    if (sqlstate_is(c, "23505"))
        return ERR_CONFLICT;
    if (!sqlstate_is(c, "42P01")) /* undefined table: the schema version of a new database */
        log_error("postgres: %s (%s)", c->errmsg, c->sqlstate);
    return ERR_STORE;
}

static void conn_forget_prepared(struct conn *c)
{
    memset(c->prepared, 0, sizeof(c->prepared));
}

/* Server notices go to our log, not to stderr as libpq's default does. */
static void notice_log(void *arg, const char *message)
{
    (void)arg;
    log_warn("postgres: %.*s", (int)strcspn(message, "\n"), message);
}

static enum err conn_connect(struct conn *c)
{
    const char *keys[ARRAY_SIZE(conn_settings) + 2];
    const char *values[ARRAY_SIZE(conn_settings) + 2];
    size_t n = 0;

    for (; n < ARRAY_SIZE(conn_settings); n++) {
        keys[n] = conn_settings[n].key;
        values[n] = conn_settings[n].value;
    }
    keys[n] = "dbname"; /* the URL, expanded: last, so what it sets wins */
    values[n++] = c->url;
    keys[n] = NULL;
    values[n] = NULL;
    c->db = PQconnectdbParams(keys, values, 1);
    if (!c->db)
        abort(); /* libpq is out of memory: as xmalloc does */
    conn_forget_prepared(c);
    (void)PQsetNoticeProcessor(c->db, notice_log, NULL); /* the previous one: the default */
    if (PQstatus(c->db) == CONNECTION_OK)
        return ERR_OK;
    conn_note(c, NULL);
    return ERR_UNAVAILABLE;
}

static enum err conn_reset(struct conn *c)
{
    PQreset(c->db);
    conn_forget_prepared(c);
    if (PQstatus(c->db) != CONNECTION_OK) {
        conn_note(c, NULL);
        log_warn("postgres: cannot reconnect: %s", c->errmsg);
        return ERR_UNAVAILABLE;
    }
    log_info("postgres: reconnected");
    return ERR_OK;
}

/*
 * Before an operation: connects the first time; otherwise reads what the server sent while the
 * connection sat idle (without blocking: libpq's socket is non-blocking), so a server that shut
 * down or restarted since shows as a broken connection, which is reset before anything is sent.
 * A server shutting down sends a FATAL message, then closes: the first read takes the message,
 * the second finds the end of the stream.
 */
static enum err conn_ready(struct conn *c)
{
    if (!c->db)
        return conn_connect(c);
    for (int i = 0;
         i < 2 && PQstatus(c->db) == CONNECTION_OK && PQtransactionStatus(c->db) == PQTRANS_IDLE;
         i++)
        (void)!PQconsumeInput(c->db); /* a failure shows in PQstatus */
    if (PQstatus(c->db) == CONNECTION_OK)
        return ERR_OK;
    return conn_reset(c);
}

static struct conn *conn_checkout(struct pg_store *s)
{
    struct conn *c;

    pthread_mutex_lock(&s->pool_mu);
    while (!s->idle)
        pthread_cond_wait(&s->pool_cond, &s->pool_mu);
    c = s->idle;
    s->idle = c->next_idle;
    pthread_mutex_unlock(&s->pool_mu);
    c->op_first = true;
    c->sqlstate[0] = '\0';
    c->errmsg[0] = '\0';
    return c;
}

static void conn_checkin(struct pg_store *s, struct conn *c)
{
    if (c->db && PQstatus(c->db) == CONNECTION_OK && PQtransactionStatus(c->db) != PQTRANS_IDLE) {
        log_error("postgres: connection checked in inside a transaction; rolling back");
        PQclear(PQexec(c->db, "ROLLBACK"));
    }
    pthread_mutex_lock(&s->pool_mu);
    c->next_idle = s->idle;
    s->idle = c;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_mu);
}

/* Statements */

static void params_add(struct params *p, const char *value, int len, int format)
{
    assert(p->n < PARAMS_MAX);
    p->values[p->n] = value;
    p->lengths[p->n] = len;
    p->formats[p->n] = format;
    p->n++;
}

static void params_add_i64(struct params *p, int64_t v)
{
    assert(p->n < PARAMS_MAX);
    (void)snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, v); /* fits: 20 digits */
    params_add(p, p->num[p->n], 0, 0);
}

static void params_add_field(struct params *p, const struct store_field *f, const char *src)
{
    int64_t v64;
    int v;
    bool b;

    switch (f->kind) {
    case FIELD_TEXT:
        params_add(p, src, 0, 0);
        return;
    case FIELD_I64:
        memcpy(&v64, src, sizeof(v64));
        params_add_i64(p, v64);
        return;
    case FIELD_INT:
        memcpy(&v, src, sizeof(v));
        params_add_i64(p, v);
        return;
    case FIELD_BOOL:
        memcpy(&b, src, sizeof(b));
        params_add(p, b ? "t" : "f", 0, 0);
        return;
    }
}

static void params_add_arg(struct params *p, const struct sql_arg *a)
{
    switch (a->kind) {
    case ARG_TEXT:
        params_add(p, a->text, 0, 0);
        return;
    case ARG_BYTES:
        params_add(p, a->text, (int)a->i64, 1);
        return;
    case ARG_I64:
        params_add_i64(p, a->i64);
        return;
    case ARG_BOOL:
        params_add(p, a->i64 ? "t" : "f", 0, 0);
        return;
    }
}

static void params_build(struct params *p, const struct query *q)
{
    const size_t nfields = q->layout ? q->layout->count : 0;

    p->n = 0;
    for (size_t i = 0; i < nfields; i++) {
        const struct store_field *f = &q->layout->fields[i];
        params_add_field(p, f, (const char *)q->rec + f->off);
    }
    for (size_t i = 0; i < q->nargs; i++)
        params_add_arg(p, &q->args[i]);
}

static void stmt_name(enum stmt_id id, char *buf, size_t size)
{
    (void)snprintf(buf, size, "subgate_%d", (int)id); /* fits */
}

static enum err stmt_prepare(struct conn *c, enum stmt_id id)
{
    char name[32];
    PGresult *res;
    enum err err = ERR_OK;

    if (c->prepared[id])
        return ERR_OK;
    stmt_name(id, name, sizeof(name));
    res = PQprepare(c->db, name, stmts[id].sql, 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        err = result_err(c, res);
    PQclear(res);
    c->prepared[id] = err == ERR_OK;
    return err;
}

/* Prepares (once per session) and runs id; *out holds the result on success. */
static enum err stmt_exec(struct conn *c, enum stmt_id id, const struct params *p, PGresult **out)
{
    char name[32];
    enum err err = stmt_prepare(c, id);
    ExecStatusType status;

    *out = NULL;
    if (err)
        return err;
    stmt_name(id, name, sizeof(name));
    *out = PQexecPrepared(c->db, name, p->n, p->values, p->lengths, p->formats, 0);
    status = PQresultStatus(*out);
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
        return ERR_OK;
    err = result_err(c, *out);
    PQclear(*out);
    *out = NULL;
    return err;
}

/*
 * Runs q; on success *out holds the result (PQclear it). The first statement of an operation
 * checks the connection first; when it still fails on a lost connection and could not have
 * committed anything (it does not write outside a transaction), the connection is reset and
 * the statement sent once more.
 */
static enum err query_exec(struct conn *c, const struct query *q, PGresult **out)
{
    struct params p;
    bool first = c->op_first;
    enum err err = first ? conn_ready(c) : ERR_OK;

    *out = NULL;
    c->op_first = false;
    if (err)
        return err;
    params_build(&p, q);
    err = stmt_exec(c, q->id, &p, out);
    if (err == ERR_UNAVAILABLE && first && !stmts[q->id].writes &&
        PQstatus(c->db) != CONNECTION_OK && conn_reset(c) == ERR_OK)
        err = stmt_exec(c, q->id, &p, out);
    return err;
}

/* Reading results */

static void read_i64(const PGresult *res, int row, int col, int64_t *out)
{
    const char *v = PQgetvalue(res, row, col);

    *out = 0;
    if (!PQgetisnull(res, row, col) && parse_i64(v, strlen(v), INT64_MIN, INT64_MAX, out))
        log_warn("postgres: column %d is not an integer: '%s'", col, v);
}

static void read_field(const PGresult *res, int row, int col, const struct store_field *f, char *p)
{
    int64_t v64 = 0;
    int v;
    bool b;

    if (f->kind != FIELD_TEXT && f->kind != FIELD_BOOL)
        read_i64(res, row, col, &v64);
    switch (f->kind) {
    case FIELD_TEXT:
        if (!str_copy(p, f->size, PQgetvalue(res, row, col)))
            log_warn("postgres: column '%s' longer than its field, truncated", f->name);
        return;
    case FIELD_I64:
        memcpy(p, &v64, sizeof(v64));
        return;
    case FIELD_INT:
        v = v64 < INT_MIN ? INT_MIN : v64 > INT_MAX ? INT_MAX : (int)v64;
        memcpy(p, &v, sizeof(v));
        return;
    case FIELD_BOOL:
        b = PQgetvalue(res, row, col)[0] == 't';
        memcpy(p, &b, sizeof(b));
        return;
    }
}

/* Reads the first layout->count columns of a row into a record. */
static void read_record(const PGresult *res, int row, const struct store_record *layout, void *out)
{
    assert(PQnfields(res) >= (int)layout->count);
    memset(out, 0, layout->size);
    for (size_t i = 0; i < layout->count; i++) {
        const struct store_field *f = &layout->fields[i];
        assert(strcmp(PQfname(res, (int)i), f->name) == 0);
        read_field(res, row, (int)i, f, (char *)out + f->off);
    }
}

/* Runs q, which yields at most one row, into a record: ERR_NOT_FOUND when no row. */
static enum err conn_fetch_record(struct conn *c, const struct query *q,
                                  const struct store_record *layout, void *out)
{
    PGresult *res = NULL;
    enum err err = query_exec(c, q, &res);

    if (err == ERR_OK && PQntuples(res) == 0)
        err = ERR_NOT_FOUND;
    if (err == ERR_OK)
        read_record(res, 0, layout, out);
    PQclear(res);
    return err;
}

/* Runs q, which yields at most one row, into an integer: ERR_NOT_FOUND when no row. */
static enum err conn_fetch_i64(struct conn *c, const struct query *q, int64_t *out)
{
    PGresult *res = NULL;
    enum err err = query_exec(c, q, &res);

    if (err == ERR_OK && PQntuples(res) == 0)
        err = ERR_NOT_FOUND;
    if (err == ERR_OK)
        read_i64(res, 0, 0, out);
    PQclear(res);
    return err;
}

/* Runs a write; *changes = rows it changed, when not NULL. */
static enum err conn_write(struct conn *c, const struct query *q, int *changes)
{
    PGresult *res = NULL;
    enum err err = query_exec(c, q, &res);
    int64_t n = 0;

    if (err == ERR_OK && changes) {
        const char *tuples = PQcmdTuples(res);
        if (parse_i64(tuples, strlen(tuples), 0, INT_MAX, &n) != ERR_OK)
            n = 0;
        *changes = (int)n;
    }
    PQclear(res);
    return err;
}

static enum err fetch_record(struct pg_store *s, const struct query *q,
                             const struct store_record *layout, void *out)
{
    struct conn *c = conn_checkout(s);
    enum err err = conn_fetch_record(c, q, layout, out);

    conn_checkin(s, c);
    return err;
}

static enum err exec_write(struct pg_store *s, const struct query *q, int *changes)
{
    struct conn *c = conn_checkout(s);
    enum err err = conn_write(c, q, changes);

    conn_checkin(s, c);
    return err;
}

/* Runs a list of rows (invoices, events) into out[max]; *n = how many. */
static enum err fetch_list(struct pg_store *s, const struct query *q,
                           const struct store_record *layout, int max, void *out, int *n)
{
    struct conn *c = conn_checkout(s);
    PGresult *res = NULL;
    enum err err = query_exec(c, q, &res);
    int rows = err ? 0 : PQntuples(res);

    for (int i = 0; i < rows && i < max; i++)
        read_record(res, i, layout, (char *)out + (size_t)i * layout->size);
    *n = rows < max ? rows : max;
    PQclear(res);
    conn_checkin(s, c);
    return err;
}

/* Transactions */

static enum err conn_simple(struct conn *c, enum stmt_id id)
{
    const struct query q = { id, NULL, NULL, NULL, 0 };

    return conn_write(c, &q, NULL);
}

static enum err tx_begin(struct conn *c)
{
    c->sqlstate[0] = '\0'; /* what tx_retryable() reads is this attempt's */
    return conn_simple(c, STMT_BEGIN);
}

/* Commits when err is ERR_OK, else rolls back; returns the first failure. */
static enum err tx_end(struct conn *c, enum err err)
{
    if (err == ERR_OK && PQtransactionStatus(c->db) != PQTRANS_INTRANS)
        err = ERR_STORE; /* a failed statement went unnoticed: COMMIT would roll back */
    if (err == ERR_OK)
        err = conn_simple(c, STMT_COMMIT);
    if (err != ERR_OK && PQstatus(c->db) == CONNECTION_OK &&
        PQtransactionStatus(c->db) != PQTRANS_IDLE) {
        char state[sizeof(c->sqlstate)];
        memcpy(state, c->sqlstate, sizeof(state));
        (void)!conn_simple(c, STMT_ROLLBACK); /* err already says what failed */
        memcpy(c->sqlstate, state, sizeof(state));
    }
    return err;
}

/* A deadlock victim or serialization failure: the whole transaction may run again. */
static bool tx_retryable(const struct conn *c, enum err err)
{
    return err == ERR_STORE && (sqlstate_is(c, "40P01") || sqlstate_is(c, "40001"));
}

/* Migrations: the schema version is the greatest version in schema_migrations. */

static int latest_version(void)
{
    return pg_migrations_count ? pg_migrations[pg_migrations_count - 1].version : 0;
}

/* Runs sql (several statements allowed, no parameters) outside the statement cache. */
static enum err conn_exec_sql(struct conn *c, const char *sql, const char *what, char *errbuf,
                              size_t errlen)
{
    PGresult *res = PQexec(c->db, sql);
    ExecStatusType status = PQresultStatus(res);
    enum err err = ERR_OK;

    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        err = result_err(c, res);
        store_errf(errbuf, errlen, "%s: %s", what, c->errmsg);
    }
    PQclear(res);
    return err;
}

/* A database never migrated has no schema_migrations table: version 0. */
static enum err conn_read_version(struct conn *c, int *version)
{
    PGresult *res = PQexec(c->db, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    enum err err = ERR_OK;
    int64_t v = 0;

    *version = 0;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        read_i64(res, 0, 0, &v);
    else
        err = result_err(c, res);
    PQclear(res);
    if (err == ERR_STORE && sqlstate_is(c, "42P01"))
        err = ERR_OK;
    *version = v < 0 || v > INT_MAX ? 0 : (int)v;
    return err;
}

/*
 * The advisory lock serializes migrators across processes until the transaction ends; the
 * version is read after it is held, so a migration another instance applied meanwhile is seen.
 * A migration may take long on a big table: no statement timeout inside.
 */
static enum err migration_lock(struct conn *c, const char *what, char *errbuf, size_t errlen)
{
    static const char *const steps[] = {
        "SET LOCAL statement_timeout = 0",
        "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")",
        ("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL PRIMARY KEY, "
         "name TEXT NOT NULL, applied_at BIGINT NOT NULL DEFAULT extract(epoch FROM now()))"),
    };
    enum err err = ERR_OK;

    for (size_t i = 0; i < ARRAY_SIZE(steps) && err == ERR_OK; i++)
        err = conn_exec_sql(c, steps[i], what, errbuf, errlen);
    return err;
}

static enum err migration_bump(struct conn *c, const struct migration *m, const char *what,
                               char *errbuf, size_t errlen)
{
    char version[16];
    const char *values[] = { version, m->name };
    PGresult *res;
    enum err err = ERR_OK;

    (void)snprintf(version, sizeof(version), "%d", m->version); /* fits */
    res = PQexecParams(c->db, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                       NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        err = result_err(c, res);
        store_errf(errbuf, errlen, "%s: %s", what, c->errmsg);
    }
    PQclear(res);
    return err;
}

/* Applies m and records its version in one transaction; *ran = false when already applied. */
static enum err migration_apply(struct conn *c, const struct migration *m, bool *ran, char *errbuf,
                                size_t errlen)
{
    char what[128];
    int version = 0;
    enum err err;

    (void)snprintf(what, sizeof(what), "cannot apply migration %03d_%s", m->version, m->name);
    err = conn_exec_sql(c, "BEGIN", what, errbuf, errlen);
    if (!err)
        err = migration_lock(c, what, errbuf, errlen);
    if (!err)
        err = conn_read_version(c, &version);
    if (err || version >= m->version)
        goto out_rollback;
    err = conn_exec_sql(c, m->sql, what, errbuf, errlen);
    if (!err)
        err = migration_bump(c, m, what, errbuf, errlen);
    if (!err)
        err = conn_exec_sql(c, "COMMIT", what, errbuf, errlen);
    if (err)
        goto out_rollback;
    *ran = true;
    return ERR_OK;
out_rollback:
    if (PQstatus(c->db) == CONNECTION_OK && PQtransactionStatus(c->db) != PQTRANS_IDLE)
        (void)!conn_exec_sql(c, "ROLLBACK", "rollback", NULL, 0); /* err says what failed */
    return err;
}

static enum err conn_migrate(struct conn *c, int *applied, char *errbuf, size_t errlen)
{
    int version = 0;
    enum err err = conn_read_version(c, &version);

    if (err) {
        store_errf(errbuf, errlen, "cannot read the schema version: %s", c->errmsg);
        return err;
    }
    if (version > latest_version()) {
        store_errf(errbuf, errlen,
                   "database schema version %d is newer than this binary knows (%d): upgrade "
                   "subgate",
                   version, latest_version());
        return ERR_STORE;
    }
    for (size_t i = 0; i < pg_migrations_count && !err; i++) {
        const struct migration *m = &pg_migrations[i];
        bool ran = false;
        assert(i == 0 || m->version > pg_migrations[i - 1].version);
        if (m->version <= version)
            continue;
        err = migration_apply(c, m, &ran, errbuf, errlen);
        *applied += ran;
    }
    return err;
}

static enum err pg_migrate(struct store *st, int *applied, char *errbuf, size_t errlen)
{
    struct pg_store *s = to_pg(st);
    struct conn *c = conn_checkout(s);
    enum err err = conn_ready(c);

    if (err)
        store_errf(errbuf, errlen, "cannot migrate database '%s': %s", s->shown, c->errmsg);
    else
        err = conn_migrate(c, applied, errbuf, errlen);
    conn_checkin(s, c);
    return err;
}

static enum err pg_schema_version(struct store *st, int *version)
{
    struct pg_store *s = to_pg(st);
    struct conn *c = conn_checkout(s);
    enum err err = conn_ready(c);

    *version = 0;
    if (!err)
        err = conn_read_version(c, version);
    conn_checkin(s, c);
    return err;
}

static int pg_schema_version_latest(const struct store *st)
{
    (void)st;
    return latest_version();
}

static enum err pg_ping(struct store *st)
{
    const struct query q = { STMT_PING, NULL, NULL, NULL, 0 };
    struct pg_store *s = to_pg(st);
    struct conn *c = conn_checkout(s);
    int64_t one = 0;
    enum err err = conn_fetch_i64(c, &q, &one);

    conn_checkin(s, c);
    return err == ERR_OK && one == 1 ? ERR_OK : ERR_STORE;
}

/* Domain operations */

static enum err pg_customer_get(struct store *st, const char *user_id, struct customer *out)
{
    const struct sql_arg args[] = { text_arg(user_id) };
    const struct query q = { STMT_CUSTOMER_GET, NULL, NULL, args, ARRAY_SIZE(args) };

    return fetch_record(to_pg(st), &q, &store_customer_record, out);
}

static enum err pg_customer_get_by_stripe_id(struct store *st, const char *stripe_customer_id,
                                             struct customer *out)
{
    const struct sql_arg args[] = { text_arg(stripe_customer_id) };
    const struct query q = { STMT_CUSTOMER_GET_BY_STRIPE_ID, NULL, NULL, args, ARRAY_SIZE(args) };

    return fetch_record(to_pg(st), &q, &store_customer_record, out);
}

static enum err pg_customer_insert(struct store *st, const struct customer *c)
{
    const struct query q = { STMT_CUSTOMER_INSERT, &store_customer_record, c, NULL, 0 };

    return exec_write(to_pg(st), &q, NULL);
}

static enum err pg_customer_mark_trial(struct store *st, const char *user_id)
{
    const struct sql_arg args[] = { text_arg(user_id) };
    const struct query q = { STMT_CUSTOMER_MARK_TRIAL, NULL, NULL, args, ARRAY_SIZE(args) };
    int changes = 0;
    enum err err = exec_write(to_pg(st), &q, &changes);

    return err == ERR_OK && changes == 0 ? ERR_NOT_FOUND : err;
}

static enum err pg_subscription_upsert(struct store *st, const struct subscription *sub,
                                       int64_t updated_at)
{
    const struct sql_arg args[] = { i64_arg(updated_at) };
    const struct query q = { STMT_SUBSCRIPTION_UPSERT, &store_subscription_record, sub, args,
                             ARRAY_SIZE(args) };

    return exec_write(to_pg(st), &q, NULL);
}

static enum err pg_subscription_get(struct store *st, const char *id, struct subscription *out)
{
    const struct sql_arg args[] = { text_arg(id) };
    const struct query q = { STMT_SUBSCRIPTION_GET, NULL, NULL, args, ARRAY_SIZE(args) };

    return fetch_record(to_pg(st), &q, &store_subscription_record, out);
}

static enum err pg_subscription_get_for_user(struct store *st, const char *user_id,
                                             struct subscription *out)
{
    const struct sql_arg args[] = { text_arg(user_id) };
    const struct query q = { STMT_SUBSCRIPTION_GET_FOR_USER, NULL, NULL, args, ARRAY_SIZE(args) };

    return fetch_record(to_pg(st), &q, &store_subscription_record, out);
}

static enum err pg_invoice_upsert(struct store *st, const struct invoice *inv)
{
    const struct query q = { STMT_INVOICE_UPSERT, &store_invoice_record, inv, NULL, 0 };

    return exec_write(to_pg(st), &q, NULL);
}

static enum err pg_invoice_list(struct store *st, const char *user_id, int max, struct invoice *out,
                                int *n)
{
    const struct sql_arg args[] = { text_arg(user_id), i64_arg(max) };
    const struct query q = { STMT_INVOICE_LIST, NULL, NULL, args, ARRAY_SIZE(args) };

    return fetch_list(to_pg(st), &q, &store_invoice_record, max, out, n);
}

static enum err conn_usage_get(struct conn *c, const struct sql_arg key[3], int64_t *used)
{
    const struct query get = { STMT_USAGE_GET, NULL, NULL, key, 3 };
    enum err err = conn_fetch_i64(c, &get, used);

    if (err == ERR_NOT_FOUND) {
        *used = 0;
        err = ERR_OK;
    }
    return err;
}

static enum err pg_usage_get(struct store *st, const char *user_id, const char *quota,
                             int64_t window_start, int64_t *used)
{
    const struct sql_arg key[] = { text_arg(user_id), text_arg(quota), i64_arg(window_start) };
    struct pg_store *s = to_pg(st);
    struct conn *c = conn_checkout(s);
    enum err err = conn_usage_get(c, key, used);

    conn_checkin(s, c);
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
    enum err err = conn_fetch_i64(c, &consume, used_after);

    *granted = err == ERR_OK;
    if (err == ERR_NOT_FOUND) /* refused: report the counter as it stands */
        err = conn_usage_get(c, args, used_after);
    return err;
}

static enum err pg_usage_consume(struct store *st, const struct usage_grant *g, bool *granted,
                                 int64_t *used_after)
{
    struct pg_store *s = to_pg(st);
    struct conn *c = conn_checkout(s);
    enum err err = conn_usage_consume(c, g, granted, used_after);

    conn_checkin(s, c);
    if (err)
        *granted = false;
    return err;
}

static enum err pg_event_get(struct store *st, const char *id, struct webhook_event *out)
{
    const struct sql_arg args[] = { text_arg(id) };
    const struct query q = { STMT_EVENT_GET, NULL, NULL, args, ARRAY_SIZE(args) };

    return fetch_record(to_pg(st), &q, &store_event_record, out);
}

/* Compare-and-store inside a transaction: row locks instead of a database-wide write lock. */

/*
 * Locks the row that lock_q selects into *stored; when there is none, inserts new_q (which
 * does nothing on a conflict) and sets *inserted. When another transaction inserted the row
 * first, the insert waited for it to commit, and the row is then locked and read instead.
 */
static enum err conn_lock_or_insert(struct conn *c, const struct query *lock_q,
                                    const struct query *new_q, void *stored, bool *inserted)
{
    enum err err = conn_fetch_record(c, lock_q, new_q->layout, stored);
    int changes = 0;

    *inserted = false;
    if (err != ERR_NOT_FOUND)
        return err;
    err = conn_write(c, new_q, &changes);
    *inserted = err == ERR_OK && changes == 1;
    if (err || *inserted)
        return err;
    return conn_fetch_record(c, lock_q, new_q->layout, stored);
}

static enum err conn_subscription_apply(struct conn *c, const struct subscription *sub,
                                        int64_t updated_at, bool *applied)
{
    const struct sql_arg id[] = { text_arg(sub->id) };
    const struct sql_arg at[] = { i64_arg(updated_at) };
    const struct query lock = { STMT_SUBSCRIPTION_LOCK, NULL, NULL, id, ARRAY_SIZE(id) };
    struct subscription stored, merged;
    const struct query fresh = { STMT_SUBSCRIPTION_INSERT_NEW, &store_subscription_record, &merged,
                                 at, ARRAY_SIZE(at) };
    const struct query put = { STMT_SUBSCRIPTION_UPSERT, &store_subscription_record, &merged, at,
                               ARRAY_SIZE(at) };
    bool inserted = false;
    enum err err;

    *applied = false;
    (void)subscription_state_merge(NULL, sub, &merged); /* nothing stored: always stored */
    err = conn_lock_or_insert(c, &lock, &fresh, &stored, &inserted);
    if (err || inserted) {
        *applied = inserted;
        return err;
    }
    if (!subscription_state_merge(&stored, sub, &merged))
        return ERR_OK;
    *applied = subscription_state_is_newer(sub, &stored);
    return conn_write(c, &put, NULL);
}

static enum err pg_subscription_apply(struct store *st, const struct subscription *sub,
                                      int64_t updated_at, bool *applied)
{
    struct pg_store *s = to_pg(st);
    struct conn *c = conn_checkout(s);
    enum err err = ERR_STORE;

    for (int i = 0; i < TX_ATTEMPTS && (i == 0 || tx_retryable(c, err)); i++) {
        err = tx_begin(c);
        if (!err)
            err = conn_subscription_apply(c, sub, updated_at, applied);
        err = tx_end(c, err);
    }
    if (err)
        *applied = false;
    conn_checkin(s, c);
    return err;
}

/* The webhook inbox: record and apply in one transaction. */

/* Links user and Stripe customer unless either is linked already; marks the trial if asked. */
static enum err conn_customer_link(struct conn *c, const char *user_id, const char *customer_id,
                                   bool trial, int64_t now)
{
    const struct sql_arg link[] = { text_arg(user_id), text_arg(customer_id), bool_arg(trial),
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
    const struct query lock = { STMT_INVOICE_LOCK, NULL, NULL, id, ARRAY_SIZE(id) };
    struct invoice inv = ev->invoice, stored;
    const struct query fresh = { STMT_INVOICE_INSERT_NEW, &store_invoice_record, &inv, NULL, 0 };
    const struct query put = { STMT_INVOICE_UPSERT, &store_invoice_record, &inv, NULL, 0 };
    bool inserted = false;
    enum err err = conn_resolve_user(c, ev, inv.user_id, errbuf, errlen);

    if (!err)
        err = conn_lock_or_insert(c, &lock, &fresh, &stored, &inserted);
    if (err || inserted)
        return err;
    if (!invoice_state_supersedes(&inv, &stored))
        return ERR_OK; /* a late event: the stored invoice is further along */
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

/* Records the event as applied or ignored; *claimed = false for a duplicate (nothing written). */
static enum err conn_event_claim(struct conn *c, const struct store_event_in *in, int64_t now,
                                 bool *claimed)
{
    const struct billing_event *ev = in->ev;
    const char *status = ev->kind == EVENT_IGNORED ? "ignored" : "applied";
    const struct sql_arg args[] = { text_arg(ev->id),
                                    text_arg(ev->type),
                                    i64_arg(ev->created),
                                    bytes_arg(in->raw, in->raw_len),
                                    text_arg(status),
                                    i64_arg(now),
                                    bool_arg(in->mode == STORE_EVENT_REPLAY) };
    const struct query q = { STMT_EVENT_CLAIM, NULL, NULL, args, ARRAY_SIZE(args) };
    int changes = 0;
    enum err err = conn_write(c, &q, &changes);

    *claimed = err == ERR_OK && changes == 1;
    return err;
}

static enum err conn_event_record_apply(struct conn *c, const struct store_event_in *in,
                                        int64_t now, enum store_event_result *result, char *errbuf,
                                        size_t errlen)
{
    bool claimed = false;
    enum err err = conn_event_claim(c, in, now, &claimed);

    if (err || !claimed)
        return err;
    err = apply_effect(c, in->ev, now, errbuf, errlen);
    if (!err)
        *result = in->ev->kind == EVENT_IGNORED ? STORE_EVENT_IGNORED : STORE_EVENT_APPLIED;
    return err;
}

static enum err pg_event_record_apply(struct store *st, const struct store_event_in *in,
                                      int64_t now, enum store_event_result *result, char *errbuf,
                                      size_t errlen)
{
    struct pg_store *s = to_pg(st);
    struct conn *c = conn_checkout(s);
    enum err err = ERR_STORE;

    for (int i = 0; i < TX_ATTEMPTS && (i == 0 || tx_retryable(c, err)); i++) {
        *result = STORE_EVENT_DUPLICATE;
        store_errf(errbuf, errlen, "%s", "");
        err = tx_begin(c);
        if (!err)
            err = conn_event_record_apply(c, in, now, result, errbuf, errlen);
        err = tx_end(c, err);
    }
    if (err)
        *result = STORE_EVENT_DUPLICATE;
    if ((err == ERR_STORE || err == ERR_UNAVAILABLE) && errbuf && !errbuf[0])
        store_errf(errbuf, errlen, "database: %s", c->errmsg);
    conn_checkin(s, c);
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

static enum err pg_event_record_failed(struct store *st, const struct store_event_in *in,
                                       int64_t now, const char *why)
{
    const struct billing_event *ev = in->ev;
    char last_error[sizeof(((struct webhook_event *)0)->last_error)];
    const struct sql_arg args[] = { text_arg(ev->id),     text_arg(ev->type),
                                    i64_arg(ev->created), bytes_arg(in->raw, in->raw_len),
                                    text_arg(last_error), i64_arg(now) };
    const struct query q = { STMT_EVENT_FAILED, NULL, NULL, args, ARRAY_SIZE(args) };

    (void)str_copy(last_error, sizeof(last_error), why); /* a cut message is still a message */
    utf8_cut(last_error);
    return exec_write(to_pg(st), &q, NULL);
}

static enum err pg_event_list(struct store *st, bool failed_only, int max,
                              struct webhook_event *out, int *n)
{
    const struct sql_arg args[] = { bool_arg(failed_only), i64_arg(max) };
    const struct query q = { STMT_EVENT_LIST, NULL, NULL, args, ARRAY_SIZE(args) };

    return fetch_list(to_pg(st), &q, &store_event_record, max, out, n);
}

/* The raw body, after the record's columns: bytea, sent back in its text (hex) form. */
static enum err read_raw(const PGresult *res, int col, char **raw, size_t *raw_len)
{
    size_t len = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, col), &len);

    if (!bytes) {
        log_error("postgres: cannot decode a raw event body");
        return ERR_STORE;
    }
    *raw = xmalloc(len + 1);
    if (len)
        memcpy(*raw, bytes, len);
    (*raw)[len] = '\0';
    *raw_len = len;
    PQfreemem(bytes);
    return ERR_OK;
}

static enum err pg_event_get_raw(struct store *st, const char *id, struct webhook_event *out,
                                 char **raw, size_t *raw_len)
{
    const struct sql_arg args[] = { text_arg(id) };
    const struct query q = { STMT_EVENT_RAW, NULL, NULL, args, ARRAY_SIZE(args) };
    struct pg_store *s = to_pg(st);
    struct conn *c = conn_checkout(s);
    PGresult *res = NULL;
    enum err err = query_exec(c, &q, &res);

    if (err == ERR_OK && PQntuples(res) == 0)
        err = ERR_NOT_FOUND;
    if (err == ERR_OK) {
        read_record(res, 0, &store_event_record, out);
        err = read_raw(res, (int)store_event_record.count, raw, raw_len);
    }
    PQclear(res);
    conn_checkin(s, c);
    return err;
}

/* Keyed consume: the key is claimed first, and its reply stored with the consume. */

/* The key's stored reply: ERR_CONFLICT for another request under the same key. */
static enum err keyed_replay(struct conn *c, const struct store_idempotency *k,
                             struct store_reply *out)
{
    const struct sql_arg args[] = { text_arg(k->key) };
    const struct query q = { STMT_IDEM_GET, NULL, NULL, args, ARRAY_SIZE(args) };
    PGresult *res = NULL;
    enum err err = query_exec(c, &q, &res);
    int64_t status = 0;

    if (err == ERR_OK && (PQntuples(res) != 1 || PQgetisnull(res, 0, 2)))
        err = ERR_STORE; /* the claim said it exists, and its reply commits with it */
    if (err == ERR_OK && (strcmp(PQgetvalue(res, 0, 0), k->scope) != 0 ||
                          strcmp(PQgetvalue(res, 0, 1), k->request_hash) != 0))
        err = ERR_CONFLICT;
    if (err == ERR_OK) {
        read_i64(res, 0, 2, &status);
        out->status = (int)status; /* an HTTP status we stored */
        out->body = xstrdup(PQgetvalue(res, 0, 3));
        out->replayed = true;
    }
    PQclear(res);
    return err;
}

static enum err keyed_consume(struct conn *c, const struct usage_grant *g,
                              const struct store_idempotency *k, store_reply_fn render, void *ctx,
                              struct store_reply *out)
{
    const struct sql_arg claim_args[] = { text_arg(k->key), text_arg(k->scope),
                                          text_arg(k->request_hash), i64_arg(k->now) };
    const struct query claim = { STMT_IDEM_CLAIM, NULL, NULL, claim_args, ARRAY_SIZE(claim_args) };
    bool granted = false;
    int64_t used = 0;
    int changes = 0;
    enum err err = conn_write(c, &claim, &changes);

    if (err)
        return err;
    if (changes == 0)
        return keyed_replay(c, k, out);
    if ((err = conn_usage_consume(c, g, &granted, &used)) != ERR_OK)
        return err;
    render(ctx, granted, used, &out->status, &out->body);
    const struct sql_arg args[] = { text_arg(k->key), i64_arg(out->status), text_arg(out->body) };
    const struct query put = { STMT_IDEM_SET, NULL, NULL, args, ARRAY_SIZE(args) };
    return conn_write(c, &put, NULL);
}

static void reply_clear(struct store_reply *out)
{
    free(out->body);
    memset(out, 0, sizeof(*out));
}

static enum err pg_usage_consume_once(struct store *st, const struct usage_grant *g,
                                      const struct store_idempotency *k, store_reply_fn render,
                                      void *ctx, struct store_reply *out)
{
    struct pg_store *s = to_pg(st);
    struct conn *c = conn_checkout(s);
    enum err err = ERR_STORE;

    for (int i = 0; i < TX_ATTEMPTS && (i == 0 || tx_retryable(c, err)); i++) {
        reply_clear(out);
        err = tx_begin(c);
        if (!err)
            err = keyed_consume(c, g, k, render, ctx, out);
        err = tx_end(c, err);
    }
    if (err != ERR_OK)
        reply_clear(out);
    conn_checkin(s, c);
    return err;
}

/* Opening and closing */

/*
 * libpq takes the user information of a URL up to the first '@' or '/': a password holding a
 * raw '@' or '/' would be read as part of the host, port or database, which libpq's messages
 * echo. Such a URL is refused: every '@' before the query must come before the first '/', and
 * there may be one.
 */
static bool url_userinfo_ok(const char *url)
{
    const char *sep = strstr(url, "://");
    const char *rest = sep ? sep + 3 : url;
    size_t end = strcspn(rest, "?#");
    size_t slash = strcspn(rest, "/");
    int ats = 0;

    for (size_t i = 0; i < end; i++) {
        if (rest[i] != '@')
            continue;
        if (i > slash || ++ats > 1)
            return false;
    }
    return true;
}

static const char *conninfo_value(const PQconninfoOption *opts, const char *key)
{
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, key) == 0)
            return o->val ? o->val : "";
    return "";
}

/*
 * Parses the URL as libpq does; on success *shown is what messages name it by (a new string):
 * user, host, port and database, as libpq read them, never the password nor other options.
 */
static bool url_parse(const char *url, char **shown)
{
    char *msg = NULL;
    PQconninfoOption *opts = url_userinfo_ok(url) ? PQconninfoParse(url, &msg) : NULL;
    const char *user, *port;
    size_t size = strlen(url) + 16;

    PQfreemem(msg); /* it may quote the URL */
    *shown = NULL;
    if (!opts)
        return false;
    user = conninfo_value(opts, "user");
    port = conninfo_value(opts, "port");
    *shown = xmalloc(size);
    (void)snprintf(*shown, size, "postgresql://%s%s%s%s%s/%s", user, user[0] ? "@" : "",
                   conninfo_value(opts, "host"), port[0] ? ":" : "", port,
                   conninfo_value(opts, "dbname")); /* decoded: never longer than url */
    PQconninfoFree(opts);
    return true;
}

static void pg_close(struct store *st)
{
    struct pg_store *s = to_pg(st);

    for (int i = 0; i < s->nconns; i++)
        PQfinish(s->conns[i].db); /* NULL is a no-op */
    pthread_cond_destroy(&s->pool_cond);
    pthread_mutex_destroy(&s->pool_mu);
    free(s->conns);
    free(s->shown);
    free(s->url);
    free(s);
}

static const struct store_ops pg_ops = {
    .name = "postgres",
    .close = pg_close,
    .migrate = pg_migrate,
    .schema_version = pg_schema_version,
    .schema_version_latest = pg_schema_version_latest,
    .ping = pg_ping,
    .customer_get = pg_customer_get,
    .customer_get_by_stripe_id = pg_customer_get_by_stripe_id,
    .customer_insert = pg_customer_insert,
    .customer_mark_trial = pg_customer_mark_trial,
    .subscription_upsert = pg_subscription_upsert,
    .subscription_apply = pg_subscription_apply,
    .subscription_get = pg_subscription_get,
    .subscription_get_for_user = pg_subscription_get_for_user,
    .invoice_upsert = pg_invoice_upsert,
    .invoice_list = pg_invoice_list,
    .usage_get = pg_usage_get,
    .usage_consume = pg_usage_consume,
    .event_get = pg_event_get,
    .event_record_apply = pg_event_record_apply,
    .event_record_failed = pg_event_record_failed,
    .event_list = pg_event_list,
    .event_get_raw = pg_event_get_raw,
    .usage_consume_once = pg_usage_consume_once,
};

static struct pg_store *pg_store_new(char *url, char *shown, int pool_size)
{
    struct pg_store *s = xcalloc(1, sizeof(*s));

    s->base.ops = &pg_ops;
    s->url = url;
    s->shown = shown;
    s->nconns = pool_size < 1 ? 1 : pool_size > POOL_MAX ? POOL_MAX : pool_size;
    s->conns = xcalloc((size_t)s->nconns, sizeof(*s->conns));
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_cond_init(&s->pool_cond, NULL);
    for (int i = s->nconns - 1; i >= 0; i--) {
        s->conns[i].url = s->url;
        s->conns[i].next_idle = s->idle;
        s->idle = &s->conns[i];
    }
    return s;
}

enum err pg_store_open(const char *target, int pool_size, struct store **out, char *errbuf,
                       size_t errlen)
{
    size_t len = strlen("postgresql://") + strlen(target) + 1;
    char *url = xmalloc(len);
    char *shown = NULL;
    struct pg_store *s;
    enum err err;

    (void)snprintf(url, len, "postgresql://%s", target); /* both schemes name one backend */
    if (!url_parse(url, &shown)) {
        store_errf(
            errbuf, errlen,
            "cannot open database 'postgresql://...': invalid URL (libpq's URI syntax, with '@' "
            "and '/' percent-encoded in the user name and password)");
        free(url);
        return ERR_INVALID;
    }
    s = pg_store_new(url, shown, pool_size);
    err = conn_connect(&s->conns[0]); /* fail now when the server is not there */
    if (err) {
        store_errf(errbuf, errlen, "cannot open database '%s': %s", s->shown, s->conns[0].errmsg);
        pg_close(&s->base);
        return err;
    }
    *out = &s->base;
    return ERR_OK;
}
