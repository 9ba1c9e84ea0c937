/*
 * pg_db.h: the PostgreSQL backend's machinery, shared by its two files: pg_db.c (libpq
 * connections in a pool, reset when broken, statements prepared once per session, the
 * transaction runner that retries deadlock victims) and pg.c (the SQL and the row operations).
 * Nothing outside store/pg*.c includes it.
 */
#ifndef SUBGATE_STORE_PG_DB_H
#define SUBGATE_STORE_PG_DB_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "base/err.h"
#include "store/backend.h"

/* The statements of pg.c, by number: pg_db.c prepares pg_stmts[id] once per session. */
enum pg_stmt {
    PGS_SCHEMA_VERSION,
    PGS_MIGRATION_BUMP,
    PGS_PING,
    PGS_CUSTOMER_GET,
    PGS_CUSTOMER_GET_BY_STRIPE_ID,
    PGS_CUSTOMER_INSERT,
    PGS_CUSTOMER_INSERT_NEW,
    PGS_CUSTOMER_MARK_TRIAL,
    PGS_SUBSCRIPTION_PUT,
    PGS_SUBSCRIPTION_INSERT_NEW,
    PGS_SUBSCRIPTION_GET,
    PGS_SUBSCRIPTION_LOCK,
    PGS_SUBSCRIPTION_GET_FOR_USER,
    PGS_INVOICE_PUT,
    PGS_INVOICE_INSERT_NEW,
    PGS_INVOICE_GET,
    PGS_INVOICE_LOCK,
    PGS_INVOICE_CONTEXT,
    PGS_INVOICE_LIST,
    PGS_USAGE_GET,
    PGS_USAGE_ADD,
    PGS_USAGE_SUB,
    PGS_EVENT_GET,
    PGS_EVENT_CLAIM,
    PGS_EVENT_FAILED,
    PGS_EVENT_LIST,
    PGS_EVENT_RAW,
    PGS_KEYED_CLAIM,
    PGS_KEYED_GET,
    PGS_KEYED_DECIDE,
    PGS_KEYED_PRUNE,
    PGS_CHECKOUT_LATEST,
    PGS_CHECKOUT_EXPIRE_STALE,
    PGS_CHECKOUT_INSERT,
    PGS_CHECKOUT_CLOSE,
    PGS_TRIAL_RESERVE,
    PGS_SUB_LIST_LIVE,
    PGS_DUP_INSERT,
    PGS_DUP_LIST,
    PGS_DUP_UPDATE,
    PGS_HEALTH_TOUCH,
    PGS_SCHEDULE_GET,
    PGS_SCHEDULE_LOCK,
    PGS_SCHEDULE_PUT,
    PGS_GRANT_INSERT,
    PGS_GRANT_GET,
    PGS_GRANT_REVOKE,
    PGS_GRANT_LIST_USER,
    PGS_GRANT_LIST_ACTIVE,
    PGS_GRANT_DUE,
    PGS_GRANT_ANNOUNCE,
    PGS_GRACE_DUE,
    PGS_GRACE_ANNOUNCE,
    PGS_OUTBOX_INSERT,
    PGS_OUTBOX_CLAIM,
    PGS_OUTBOX_FINISH,
    PGS_OUTBOX_LIST,
    PGS_OUTBOX_GET,
    PGS_OUTBOX_REPLAY,
    PGS_BEGIN,
    PGS_COMMIT,
    PGS_ROLLBACK,
    PGS_SAVEPOINT,
    PGS_RELEASE,
    PGS_ROLLBACK_TO,
    PGS_LEDGER_INSERT,
    PGS_LEDGER_LIST,
    PGS_LEDGER_GRANT_GET,
    PGS_USAGE_ENSURE,
    PGS_USAGE_GET_LOCK,
    PGS_EXTRA_GET,
    PGS_EXTRA_GET_LOCK,
    PGS_EXTRA_ADD,
    PGS_EXTRA_LIST,
    PGS_EXTRA_ANY,
    PGS_USAGE_LIST_1, /* ... PGS_USAGE_LIST_8: usage_list of 1 to 8 pairs */
    PGS_USAGE_LIST_8 = PGS_USAGE_LIST_1 + 7,
    PGS_USAGE_ADD_NOTED,
    PGS_EVENT_LIST_FAILED,
    PGS_COUNT,
};

struct pg_stmt_def {
    const char *sql;
    bool writes; /* may commit when run outside a transaction: never sent twice */
};

extern const struct pg_stmt_def pg_stmts[PGS_COUNT];

enum pg_arg_kind {
    PG_ARG_TEXT,
    PG_ARG_BYTES, /* binary: may hold any byte */
    PG_ARG_I64,
    PG_ARG_BOOL,
};

struct pg_arg {
    enum pg_arg_kind kind;
    const char *text; /* borrowed until the statement has run */
    int64_t i64;      /* PG_ARG_I64, PG_ARG_BOOL: the value; PG_ARG_BYTES: the length */
};

static inline struct pg_arg pg_text(const char *s)
{
    return (struct pg_arg){ PG_ARG_TEXT, s, 0 };
}

/*
 * Binary bytes, sent as they are. They must outlive the run, not only the call: a pipelined
 * statement (pg_db_pipeline_send) keeps a pointer to them, where it copies everything else.
 * They are the caller's (a webhook's raw body), never a function's local buffer.
 */
static inline struct pg_arg pg_bytes(const char *s, size_t len)
{
    return (struct pg_arg){ PG_ARG_BYTES, s, len > INT_MAX ? INT_MAX : (int64_t)len };
}

static inline struct pg_arg pg_i64(int64_t v)
{
    return (struct pg_arg){ PG_ARG_I64, NULL, v };
}

static inline struct pg_arg pg_bool(bool b)
{
    return (struct pg_arg){ PG_ARG_BOOL, NULL, b };
}

/* A statement and what to pass: the fields of rec first (when layout is set), then args. */
struct pg_query {
    enum pg_stmt id;
    const struct store_record *layout;
    const void *rec;
    const struct pg_arg *args;
    size_t nargs;
};

/* Opens the pool for target (the URL after its scheme) with ops as its table. */
MUST_CHECK enum err pg_db_open(const char *target, int pool_size, const struct store_ops *ops,
                               struct store **out, char *errbuf, size_t errlen);
void pg_db_close(struct store *st);

/* The store's URL, password included (never print it); borrowed until pg_db_close. */
const char *pg_db_url(struct store *st);

/*
 * A new connection to url with the pool's session settings (timeouts, keepalives, notices to
 * our log): check PQstatus, and PQfinish it in any case.
 */
PGconn *pg_db_connect(const char *url);

/*
 * Changes of usage counters and extra units are told to the other instances by NOTIFY on
 * PG_USAGE_CHANNEL, the users' ids as payload, one per line (an empty payload: every user); a
 * change that added extra units also on PG_EXTRAS_CHANNEL, first: some user has them
 * (store.extras_seen). The runs note what they change (pg_db_note_usage, pg_db_note_extras);
 * after each run its notes join those waiting, and the listener thread (pg_listen.c) takes them
 * (pg_db_usage_take) and sends one NOTIFY for all of them, every PG_USAGE_TELL_MS at the most:
 * one notification for many batches, not one per commit.
 */
#define PG_USAGE_CHANNEL     "subgate_usage"
#define PG_EXTRAS_CHANNEL    "subgate_extras"
#define PG_USAGE_PAYLOAD_MAX 8000 /* a payload's bytes with its NUL: PostgreSQL's limit */
#define PG_USAGE_TELL_MS     10

/*
 * Notes that this run changes user_id's usage counters or extra units. A user id with a newline,
 * or more users than a payload holds, makes the notification name everyone.
 */
void pg_db_note_usage(struct store_tx *tx, const char *user_id);

/* Notes that this run adds extra units (for PG_EXTRAS_CHANNEL). */
void pg_db_note_extras(struct store_tx *tx);

/*
 * From now on the runs' notes are kept for pg_db_usage_take, and fd is written a byte when they
 * begin to wait (a non-blocking pipe's end). -1: they are dropped. Set before the store is
 * shared between threads, and back to -1 after.
 */
void pg_db_usage_tell_to(struct store *st, int fd);

/*
 * Takes the notes waiting: false when none; else payload (PG_USAGE_PAYLOAD_MAX bytes) holds
 * PG_USAGE_CHANNEL's payload and *extras whether PG_EXTRAS_CHANNEL is due too.
 */
bool pg_db_usage_take(struct store *st, char *payload, bool *extras);

/*
 * store_ops.watch_start and watch_stop (pg_listen.c): LISTEN for subscription writes (into
 * cache) and usage writes (into usage_cache, which may be NULL).
 */
struct store_watch *pg_listen_start(struct store *st, struct entcache *cache,
                                    struct entcache *usage_cache);
void pg_listen_stop(struct store_watch *w);

/* store_ops.unit_begin and unit_end (see backend.h). */
MUST_CHECK enum err pg_db_unit_begin(struct store_tx *tx, bool savepoint);
MUST_CHECK enum err pg_db_unit_end(struct store_tx *tx, bool savepoint, enum err *unit_err,
                                   bool *again, char *errbuf, size_t errlen);

/* store_ops.pipeline_capture, pipeline_send and pipeline_use (see backend.h). */
void pg_db_pipeline_capture(struct store_tx *tx, int k);
MUST_CHECK enum err pg_db_pipeline_send(struct store_tx *tx, int *sent);
MUST_CHECK enum err pg_db_pipeline_use(struct store_tx *tx, int k);

/* store_ops.run: WRITE runs are retried, whole, when picked as a deadlock or serialization victim.
 */
MUST_CHECK enum err pg_db_run(struct store *st, enum store_run_kind kind, store_tx_fn fn, void *arg,
                              char *errbuf, size_t errlen);

/* Runs q; on success *res holds the result (PQclear it). */
MUST_CHECK enum err pg_db_query(struct store_tx *tx, const struct pg_query *q, PGresult **res);

/* Runs q, which yields at most one row, into a record: ERR_NOT_FOUND when no row. */
MUST_CHECK enum err pg_db_fetch_record(struct store_tx *tx, const struct pg_query *q,
                                       const struct store_record *layout, void *out);

/* Runs q, which yields at most one row, into an integer: ERR_NOT_FOUND when no row. */
MUST_CHECK enum err pg_db_fetch_i64(struct store_tx *tx, const struct pg_query *q, int64_t *out);

/* Runs q into out[max] records; *n = how many. */
MUST_CHECK enum err pg_db_fetch_list(struct store_tx *tx, const struct pg_query *q,
                                     const struct store_record *layout, int max, void *out, int *n);

/* Runs a write; *changes = rows it changed, when not NULL. */
MUST_CHECK enum err pg_db_write(struct store_tx *tx, const struct pg_query *q, int *changes);

/* Runs sql (several statements allowed, no parameters) outside the statement cache. */
MUST_CHECK enum err pg_db_exec(struct store_tx *tx, const char *sql);

/* The SQLSTATE of the run's last failure is code ("42P01", ...). */
bool pg_db_failed_with(const struct store_tx *tx, const char *code);

/* Reads the first layout->count columns of a row into a record. */
void pg_db_read_record(const PGresult *res, int row, const struct store_record *layout, void *out);
/* The same from the columns starting at col. */
void pg_db_read_record_at(const PGresult *res, int row, int col, const struct store_record *layout,
                          void *out);

#endif /* SUBGATE_STORE_PG_DB_H */
