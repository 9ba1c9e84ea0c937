/*
 * sqlite_db.c: the SQLite backend's machinery (see sqlite_db.h): a pool of WAL-mode connections,
 * each used by one thread at a time with its statements prepared once; writers of one process
 * queue on a mutex; the transaction runner; a background thread checkpoints the WAL.
 */
#include "store/sqlite_db.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "billing/status.h"
#include "store/pool.h"

#define BUSY_TIMEOUT_MS     5000 /* how long a writer waits for another process's write lock */
#define CHECKPOINT_BUSY_MS  100  /* how long a RESTART checkpoint waits, holding writers back */
#define BUSY_YIELDS         3    /* busy_wait: the first waits only yield the CPU, */
#define BUSY_SLEEP_MIN_US   50   /* then sleep this long, doubling */
#define BUSY_SLEEP_MAX_US   200  /* up to this */
#define CHECKPOINT_PERIOD_S 1
#define CHECKPOINT_PAGES    2048 /* each time the WAL grows by this much, wake the checkpointer */
#define WAL_RESTART_PAGES   8192 /* a WAL this long is checkpointed with writers held back, */
#define WAL_TAIL_PAGES      256  /* once passive checkpoints leave no more than this behind */
#define CHECKPOINT_PASSES   4    /* or after this many of them */

/*
 * wal_autocheckpoint = 0: commits never pay for a checkpoint, the checkpoint thread does it.
 * The WAL hook installed after these pragmas replaces the automatic one anyway.
 * journal_size_limit: after a burst, the WAL file shrinks back to 64 MiB when it restarts.
 * page_size (a new database's only: it must come before WAL): 1 KiB pages, so that a commit of
 * writes spread over many users' rows writes a quarter of the bytes to the WAL, and the
 * checkpoint a quarter to the file (docs/benchmarks.md).
 */
#define CONN_PRAGMAS                                                                                              \
    "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; " \
    "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864; PRAGMA cache_size = -512;"

/* busy_wait's state, one per connection. */
struct busy {
    int64_t since_ns; /* when the current wait for a lock began */
    int64_t limit_ns; /* how long one wait may last */
};

struct conn {
    sqlite3 *db;
    sqlite3_stmt *stmts[SQ_COUNT]; /* prepared on first use, kept until close */
    struct busy busy;
    char errmsg[256]; /* of the last failure in the current run, for messages */
};

/* What a run lends to its function. */
struct store_tx {
    struct conn *c;
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
    struct store_pool pool;
    struct conn *conns;
    int nconns;
    struct checkpointer cp;
};

static struct sqlite_store *to_sqlite(struct store *st)
{
    return (struct sqlite_store *)st;
}

/*
 * Maps a failed SQLite call to an err, keeping its message for the run's caller; logs what is
 * not a plain uniqueness conflict.
 */
static enum err db_err(struct conn *c, int rc)
{
    int primary = rc & 0xff;

    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        return ERR_CONFLICT;
    (void)str_copy(c->errmsg, sizeof(c->errmsg), sqlite3_errmsg(c->db)); /* a cut one will do */
    log_error("sqlite: %s (%s)", c->errmsg, sqlite3_errstr(rc));
    /* The disk, not the request: full, read-only, failing. Try again later (503). */
    if (primary == SQLITE_FULL || primary == SQLITE_READONLY || primary == SQLITE_IOERR ||
        primary == SQLITE_CANTOPEN || primary == SQLITE_BUSY)
        return ERR_UNAVAILABLE;
    return ERR_STORE;
}

static struct conn *conn_checkout(struct sqlite_store *s)
{
    return store_pool_take(&s->pool);
}

static void conn_checkin(struct sqlite_store *s, struct conn *c)
{
    store_pool_give(&s->pool, c);
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

static enum err stmt_get(struct conn *c, enum sqlite_stmt id, sqlite3_stmt **out)
{
    if (!c->stmts[id]) {
        int rc = sqlite3_prepare_v3(c->db, sqlite_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->stmts[id], NULL);
        if (rc != SQLITE_OK)
            return db_err(c, rc);
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

static int bind_field(sqlite3_stmt *stmt, int idx, const struct store_field *f, const void *rec)
{
    const struct store_value v = store_field_value(f, rec);

    if (v.is_text)
        return sqlite3_bind_text(stmt, idx, v.text, -1, SQLITE_STATIC);
    return sqlite3_bind_int64(stmt, idx, v.i64);
}

static int bind_query(sqlite3_stmt *stmt, const struct sqlite_query *q)
{
    const size_t nfields = q->layout ? q->layout->count : 0;
    int rc = SQLITE_OK;

    for (size_t i = 0; i < nfields && rc == SQLITE_OK; i++) {
        const struct store_field *f = &q->layout->fields[i];
        rc = bind_field(stmt, (int)i + 1, f, q->rec);
    }
    for (size_t i = 0; i < q->nargs && rc == SQLITE_OK; i++) {
        const struct sqlite_arg *a = &q->args[i];
        int idx = (int)(nfields + i) + 1;
        rc = a->kind == SQ_ARG_TEXT
                 ? sqlite3_bind_text(stmt, idx, a->text, (int)a->i64, SQLITE_STATIC)
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
    return db_err(c, rc);
}

/* Prepares (once), binds and steps q. Release *out with stmt_release() whatever the result. */
static enum err query_run(struct conn *c, const struct sqlite_query *q, sqlite3_stmt **out,
                          bool *row)
{
    enum err err = stmt_get(c, q->id, out);
    int rc;

    *row = false;
    if (err)
        return err;
    rc = bind_query(*out, q);
    if (rc != SQLITE_OK)
        return db_err(c, rc);
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

static void read_field(sqlite3_stmt *stmt, int col, const struct store_field *f, void *rec)
{
    if (f->kind != FIELD_TEXT && f->kind != FIELD_SUB_STATUS)
        store_field_from_i64(f, rec, sqlite3_column_int64(stmt, col));
    else if (!store_field_from_text(f, rec, (const char *)sqlite3_column_text(stmt, col)))
        log_warn("sqlite: column '%s' longer than its field, truncated", f->name);
}

void sqlite_db_read_record(sqlite3_stmt *stmt, const struct store_record *layout, void *out)
{
    assert(sqlite3_column_count(stmt) >= (int)layout->count);
    memset(out, 0, layout->size);
    for (size_t i = 0; i < layout->count; i++) {
        const struct store_field *f = &layout->fields[i];
        assert(strcmp(sqlite3_column_name(stmt, (int)i), f->name) == 0);
        read_field(stmt, (int)i, f, out);
    }
}

/* Runs a write; *changes = rows it changed, when not NULL. */
static enum err conn_write(struct conn *c, const struct sqlite_query *q, int *changes)
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

struct record_out {
    const struct store_record *layout;
    void *out;
};

static void read_one_record(sqlite3_stmt *stmt, void *ctx)
{
    const struct record_out *r = ctx;

    sqlite_db_read_record(stmt, r->layout, r->out);
}

enum err sqlite_db_fetch_record(struct store_tx *tx, const struct sqlite_query *q,
                                const struct store_record *layout, void *out)
{
    struct record_out r = { layout, out };

    return sqlite_db_fetch_with(tx, q, read_one_record, &r);
}

static void read_one_i64(sqlite3_stmt *stmt, void *ctx)
{
    *(int64_t *)ctx = sqlite3_column_int64(stmt, 0);
}

enum err sqlite_db_fetch_i64(struct store_tx *tx, const struct sqlite_query *q, int64_t *out)
{
    return sqlite_db_fetch_with(tx, q, read_one_i64, out);
}

enum err sqlite_db_fetch_list(struct store_tx *tx, const struct sqlite_query *q,
                              const struct store_record *layout, int max, void *out, int *n)
{
    struct conn *c = tx->c;
    sqlite3_stmt *stmt = NULL;
    bool row = false;
    enum err err = query_run(c, q, &stmt, &row);

    *n = 0;
    while (err == ERR_OK && row && *n < max) {
        sqlite_db_read_record(stmt, layout, (char *)out + (size_t)*n * layout->size);
        (*n)++;
        err = query_next(c, stmt, &row);
    }
    if (err)
        *n = 0;
    stmt_release(stmt);
    return err;
}

enum err sqlite_db_fetch_with(struct store_tx *tx, const struct sqlite_query *q,
                              void (*read)(sqlite3_stmt *stmt, void *ctx), void *ctx)
{
    sqlite3_stmt *stmt = NULL;
    bool row = false;
    enum err err = query_run(tx->c, q, &stmt, &row);

    if (err == ERR_OK && !row)
        err = ERR_NOT_FOUND;
    if (err == ERR_OK) {
        read(stmt, ctx);
        err = query_finish(tx->c, stmt);
    }
    stmt_release(stmt);
    return err;
}

enum err sqlite_db_write(struct store_tx *tx, const struct sqlite_query *q, int *changes)
{
    return conn_write(tx->c, q, changes);
}

enum err sqlite_db_insert(struct store_tx *tx, const struct sqlite_query *q, int64_t *rowid)
{
    enum err err = conn_write(tx->c, q, NULL);

    if (err == ERR_OK)
        *rowid = sqlite3_last_insert_rowid(tx->c->db);
    return err;
}

enum err sqlite_db_exec(struct store_tx *tx, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(tx->c->db, sql, NULL, NULL, &msg);

    if (rc == SQLITE_OK)
        return ERR_OK;
    (void)str_copy(tx->c->errmsg, sizeof(tx->c->errmsg), msg ? msg : sqlite3_errstr(rc));
    log_error("sqlite: %s (%s)", tx->c->errmsg, sqlite3_errstr(rc));
    sqlite3_free(msg);
    return ERR_STORE;
}

static enum err conn_simple(struct conn *c, enum sqlite_stmt id)
{
    const struct sqlite_query q = { id, NULL, NULL, NULL, 0 };

    return conn_write(c, &q, NULL);
}

/*
 * BEGIN IMMEDIATE takes the write lock first, so what the transaction reads stays true until
 * it commits: the compare and the store of an apply cannot be split by another writer.
 */
static enum err tx_begin(struct conn *c)
{
    return conn_simple(c, SQ_BEGIN);
}

/* Commits when err is ERR_OK, else rolls back; returns the first failure. */
static enum err tx_end(struct conn *c, enum err err)
{
    if (err == ERR_OK)
        err = conn_simple(c, SQ_COMMIT);
    if (err != ERR_OK && !sqlite3_get_autocommit(c->db))
        (void)!conn_simple(c, SQ_ROLLBACK); /* err already says what failed */
    return err;
}

/* Takes the connection a run of this kind needs: writers queue on write_mu first. */
static struct conn *run_checkout(struct sqlite_store *s, enum store_run_kind kind)
{
    struct conn *c = kind == STORE_RUN_READ ? conn_checkout(s) : writer_checkout(s);

    c->errmsg[0] = '\0';
    return c;
}

static void run_checkin(struct sqlite_store *s, enum store_run_kind kind, struct conn *c)
{
    if (kind == STORE_RUN_READ)
        conn_checkin(s, c);
    else
        writer_checkin(s, c);
}

/*
 * Another process's write lock is waited for in busy_wait, and BEGIN IMMEDIATE takes the lock
 * before anything is read, so a transaction here never needs to run twice.
 */
enum err sqlite_db_run(struct store *st, enum store_run_kind kind, store_tx_fn fn, void *arg,
                       char *errbuf, size_t errlen)
{
    struct sqlite_store *s = to_sqlite(st);
    struct store_tx tx = { run_checkout(s, kind) };
    enum err err = ERR_OK;

    if (kind == STORE_RUN_WRITE)
        err = tx_begin(tx.c);
    if (err == ERR_OK)
        err = fn(&tx, arg);
    if (kind == STORE_RUN_WRITE)
        err = tx_end(tx.c, err);
    if ((err == ERR_STORE || err == ERR_UNAVAILABLE) && errbuf && errlen && !errbuf[0])
        store_errf(errbuf, errlen, "%s", tx.c->errmsg[0] ? tx.c->errmsg : "database error");
    run_checkin(s, kind, tx.c);
    return err;
}

/* Group commit: one savepoint per unit inside the batch's transaction */

enum err sqlite_db_unit_begin(struct store_tx *tx, bool savepoint)
{
    tx->c->errmsg[0] = '\0'; /* a failure's message is this unit's */
    return savepoint ? conn_simple(tx->c, SQ_SAVEPOINT) : ERR_OK;
}

/*
 * A statement failing inside a transaction undoes itself only, except where SQLite rolls the
 * whole transaction back (a full disk, an I/O error): then the batch has nothing to commit.
 * BEGIN IMMEDIATE holds the lock, so no unit is ever asked to run again.
 */
enum err sqlite_db_unit_end(struct store_tx *tx, bool savepoint, enum err *unit_err, bool *again,
                            char *errbuf, size_t errlen)
{
    struct conn *c = tx->c;
    enum err err;

    *again = false;
    if ((*unit_err == ERR_STORE || *unit_err == ERR_UNAVAILABLE) && errbuf && errlen && !errbuf[0])
        store_errf(errbuf, errlen, "%s", c->errmsg[0] ? c->errmsg : "database error");
    if (sqlite3_get_autocommit(c->db)) {
        if (*unit_err == ERR_OK)
            *unit_err = ERR_STORE; /* a failure that rolled back went unnoticed */
        return *unit_err;
    }
    if (!savepoint)
        return ERR_OK;
    if (*unit_err == ERR_OK)
        return conn_simple(c, SQ_RELEASE);
    err = conn_simple(c, SQ_ROLLBACK_TO);
    return err ? err : conn_simple(c, SQ_RELEASE);
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

/*
 * The connection's pragmas. Switching a new file to WAL needs its exclusive lock, and SQLite
 * answers SQLITE_BUSY at once, without the busy handler, when another process opening the same
 * new file holds a shared lock meanwhile (waiting could deadlock): so try again, for as long as
 * a writer would wait.
 */
static int pragmas_run(sqlite3 *db)
{
    int64_t until = monotonic_ns() + BUSY_TIMEOUT_MS * INT64_C(1000000);
    int rc;

    while ((rc = sqlite3_exec(db, CONN_PRAGMAS, NULL, NULL, NULL)) != SQLITE_OK &&
           (rc & 0xff) == SQLITE_BUSY && monotonic_ns() < until)
        (void)usleep(1000); /* an interrupted sleep only means an earlier retry */
    return rc;
}

/* *busy: busy_wait's state, owned by whoever uses the connection; waits last BUSY_TIMEOUT_MS. */
static enum err db_open(const char *path, struct busy *busy, sqlite3 **out, char *errbuf,
                        size_t errlen)
{
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags, sqlite_vfs_name());

    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(db, 1);
        busy->limit_ns = BUSY_TIMEOUT_MS * INT64_C(1000000);
        rc = sqlite3_busy_handler(db, busy_wait, busy);
    }
    if (rc == SQLITE_OK)
        rc = pragmas_run(db);
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

void sqlite_db_close(struct store *st)
{
    struct sqlite_store *s = to_sqlite(st);

    checkpointer_stop(&s->cp);
    for (int i = 0; i < s->nconns; i++)
        conn_close(&s->conns[i]);
    pthread_cond_destroy(&s->cp.wake);
    pthread_mutex_destroy(&s->cp.mu);
    store_pool_release(&s->pool);
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
        store_pool_give(&s->pool, c);
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

static struct sqlite_store *sqlite_store_new(const char *path, int pool_size,
                                             const struct store_ops *ops)
{
    struct sqlite_store *s = xcalloc(1, sizeof(*s));

    s->base.ops = ops;
    s->path = xstrdup(path);
    s->memory = strcmp(path, ":memory:") == 0;
    s->nconns = s->memory ? 1 : store_pool_size(pool_size);
    s->conns = xcalloc((size_t)s->nconns, sizeof(*s->conns));
    store_pool_init(&s->pool, s->nconns);
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

enum err sqlite_db_open(const char *target, int pool_size, const struct store_ops *ops,
                        struct store **out, char *errbuf, size_t errlen)
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
    s = sqlite_store_new(target, pool_size, ops);
    err = pool_open(s, errbuf, errlen);
    if (!err && !s->memory)
        err = checkpointer_start(s, errbuf, errlen);
    if (err) {
        sqlite_db_close(&s->base);
        return err;
    }
    *out = &s->base;
    return ERR_OK;
}
