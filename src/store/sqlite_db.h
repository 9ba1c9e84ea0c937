/*
 * sqlite_db.h: the SQLite backend's machinery, shared by its three files: sqlite_db.c (the pool of
 * WAL connections, the writer queue, the transaction runner, the checkpoint thread, statements
 * prepared once per connection), sqlite.c (the SQL and the row operations) and sqlite_vfs.c (the
 * VFS, which writes a transaction's WAL frames at once). Nothing outside
 * store/sqlite*.c includes it.
 */
#ifndef SUBGATE_STORE_SQLITE_DB_H
#define SUBGATE_STORE_SQLITE_DB_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "base/err.h"
#include "store/backend.h"

/* The statements of sqlite.c, by number: sqlite_db.c prepares sqlite_sql[id] on first use. */
enum sqlite_stmt {
    SQ_SCHEMA_VERSION,
    SQ_PING,
    SQ_CUSTOMER_GET,
    SQ_CUSTOMER_GET_BY_STRIPE_ID,
    SQ_CUSTOMER_INSERT,
    SQ_CUSTOMER_INSERT_NEW,
    SQ_CUSTOMER_MARK_TRIAL,
    SQ_SUBSCRIPTION_PUT,
    SQ_SUBSCRIPTION_INSERT_NEW,
    SQ_SUBSCRIPTION_GET,
    SQ_SUBSCRIPTION_GET_FOR_USER,
    SQ_INVOICE_PUT,
    SQ_INVOICE_INSERT_NEW,
    SQ_INVOICE_GET,
    SQ_INVOICE_LIST,
    SQ_USAGE_GET,
    SQ_USAGE_ADD,
    SQ_USAGE_SUB,
    SQ_EVENT_GET,
    SQ_EVENT_CLAIM,
    SQ_EVENT_FAILED,
    SQ_EVENT_LIST,
    SQ_EVENT_RAW,
    SQ_KEYED_CLAIM,
    SQ_KEYED_GET,
    SQ_KEYED_DECIDE,
    SQ_KEYED_PRUNE,
    SQ_CHECKOUT_LATEST,
    SQ_CHECKOUT_EXPIRE_STALE,
    SQ_CHECKOUT_INSERT,
    SQ_CHECKOUT_CLOSE,
    SQ_TRIAL_RESERVE,
    SQ_SUB_LIST_LIVE,
    SQ_DUP_INSERT,
    SQ_DUP_LIST,
    SQ_DUP_UPDATE,
    SQ_HEALTH_TOUCH,
    SQ_BEGIN,
    SQ_SCHEDULE_GET,
    SQ_SCHEDULE_PUT,
    SQ_GRANT_INSERT,
    SQ_GRANT_GET,
    SQ_GRANT_REVOKE,
    SQ_GRANT_LIST_USER,
    SQ_GRANT_LIST_ACTIVE,
    SQ_GRANT_DUE,
    SQ_GRANT_ANNOUNCE,
    SQ_GRACE_DUE,
    SQ_GRACE_ANNOUNCE,
    SQ_OUTBOX_INSERT,
    SQ_OUTBOX_CLAIM,
    SQ_OUTBOX_FINISH,
    SQ_OUTBOX_LIST,
    SQ_OUTBOX_GET,
    SQ_OUTBOX_REPLAY,
    SQ_LEDGER_INSERT,
    SQ_LEDGER_LIST,
    SQ_LEDGER_GRANT_GET,
    SQ_EXTRA_GET,
    SQ_EXTRA_ADD,
    SQ_EXTRA_LIST,
    SQ_EXTRA_ANY,
    SQ_USAGE_LIST_1, /* ... SQ_USAGE_LIST_8: usage_list of 1 to 8 pairs */
    SQ_USAGE_LIST_8 = SQ_USAGE_LIST_1 + 7,
    SQ_EVENT_LIST_FAILED,
    SQ_COMMIT,
    SQ_ROLLBACK,
    SQ_SAVEPOINT,
    SQ_RELEASE,
    SQ_ROLLBACK_TO,
    SQ_COUNT,
};

extern const char *const sqlite_sql[SQ_COUNT];

enum sqlite_arg_kind {
    SQ_ARG_TEXT,
    SQ_ARG_I64,
};

struct sqlite_arg {
    enum sqlite_arg_kind kind;
    const char *text; /* borrowed until the statement is released */
    int64_t i64; /* SQ_ARG_I64: the value; SQ_ARG_TEXT: the length in bytes, -1 up to the NUL */
};

static inline struct sqlite_arg sq_text(const char *s)
{
    return (struct sqlite_arg){ SQ_ARG_TEXT, s, -1 };
}

/* Text of len bytes, which may hold NUL bytes (a raw webhook body). */
static inline struct sqlite_arg sq_textn(const char *s, size_t len)
{
    return (struct sqlite_arg){ SQ_ARG_TEXT, s, len > INT_MAX ? INT_MAX : (int64_t)len };
}

static inline struct sqlite_arg sq_i64(int64_t v)
{
    return (struct sqlite_arg){ SQ_ARG_I64, NULL, v };
}

/* A statement and what to bind: the fields of rec first (when layout is set), then args. */
struct sqlite_query {
    enum sqlite_stmt id;
    const struct store_record *layout;
    const void *rec;
    const struct sqlite_arg *args;
    size_t nargs;
};

/* Opens the pool at path (":memory:" for a private database) with ops as its table. */
MUST_CHECK enum err sqlite_db_open(const char *path, int pool_size, const struct store_ops *ops,
                                   struct store **out, char *errbuf, size_t errlen);
void sqlite_db_close(struct store *st);

/*
 * sqlite_vfs.c: the name of the VFS the connections open with (registered on the first call):
 * the platform's, with each transaction's WAL appends written at once. NULL when it could not
 * be registered: SQLite's default VFS then.
 */
const char *sqlite_vfs_name(void);

/* store_ops.run: reads on any connection; writes queued on the process's writer mutex. */
MUST_CHECK enum err sqlite_db_run(struct store *st, enum store_run_kind kind, store_tx_fn fn,
                                  void *arg, char *errbuf, size_t errlen);

/* store_ops.unit_begin and unit_end (see backend.h). */
MUST_CHECK enum err sqlite_db_unit_begin(struct store_tx *tx, bool savepoint);
MUST_CHECK enum err sqlite_db_unit_end(struct store_tx *tx, bool savepoint, enum err *unit_err,
                                       bool *again, char *errbuf, size_t errlen);

/* Runs q, which yields at most one row, into a record: ERR_NOT_FOUND when no row. */
MUST_CHECK enum err sqlite_db_fetch_record(struct store_tx *tx, const struct sqlite_query *q,
                                           const struct store_record *layout, void *out);

/* Runs q, which yields at most one row, into an integer: ERR_NOT_FOUND when no row. */
MUST_CHECK enum err sqlite_db_fetch_i64(struct store_tx *tx, const struct sqlite_query *q,
                                        int64_t *out);

/* Runs q into out[max] records; *n = how many. */
MUST_CHECK enum err sqlite_db_fetch_list(struct store_tx *tx, const struct sqlite_query *q,
                                         const struct store_record *layout, int max, void *out,
                                         int *n);

/* Runs a write; *changes = rows it changed, when not NULL. */
MUST_CHECK enum err sqlite_db_write(struct store_tx *tx, const struct sqlite_query *q,
                                    int *changes);

/*
 * Runs q, an INSERT of one row, and gives the row's rowid: what "RETURNING id" would for an
 * INTEGER PRIMARY KEY, without the temporary table SQLite fills for RETURNING's rows.
 */
MUST_CHECK enum err sqlite_db_insert(struct store_tx *tx, const struct sqlite_query *q,
                                     int64_t *rowid);

/*
 * Runs q, which yields at most one row, and hands the row to read(stmt, ctx): ERR_NOT_FOUND when
 * no row. For rows that are not one record (a raw body, a record and more columns).
 */
MUST_CHECK enum err sqlite_db_fetch_with(struct store_tx *tx, const struct sqlite_query *q,
                                         void (*read)(sqlite3_stmt *stmt, void *ctx), void *ctx);

/* Reads the first layout->count columns of the current row into a record. */
void sqlite_db_read_record(sqlite3_stmt *stmt, const struct store_record *layout, void *out);

/* Runs sql (several statements, no parameters): a migration's script. */
MUST_CHECK enum err sqlite_db_exec(struct store_tx *tx, const char *sql);

#endif /* SUBGATE_STORE_SQLITE_DB_H */
