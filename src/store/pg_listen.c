/*
 * pg_listen.c: the PostgreSQL backend's watcher of other processes' writes
 * (store_ops.watch_start). Migration 005 makes every write of a subscriptions row NOTIFY
 * subgate_entitlements with the row's user id; a transaction that changes usage counters or
 * extra units NOTIFYs PG_USAGE_CHANNEL with its users (pg_db_note_usage). Both are delivered
 * when the writing transaction commits, whichever process wrote it. One thread per store
 * LISTENs on a connection of its own and drops the named users' entries from the entitlement
 * cache and the usage cache. When that connection is lost, notifications may have been
 * missed: both caches are dropped, and dropped again once LISTEN is back (what was cached
 * meanwhile was never covered). Until then the caches' TTL alone bounds staleness.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "store/entcache.h"
#include "store/pg_db.h"

#define LISTEN_SQL \
    "LISTEN subgate_entitlements; LISTEN " PG_USAGE_CHANNEL "; LISTEN " PG_EXTRAS_CHANNEL
#define BACKOFF_FIRST_MS 100  /* the first wait before connecting again, doubled each failure */
#define BACKOFF_MAX_MS   5000 /* and never longer */

struct store_watch {
    const char *url;  /* borrowed from the store, which outlives its watcher */
    struct store *st; /* its extras_seen */
    struct entcache *cache;
    struct entcache *usage; /* NULL: none */
    pthread_t thread;
    int wake[2]; /* a pipe: pg_listen_stop writes to wake[1] */
    int tell[2]; /* a pipe: the runs write to tell[1] when usage notes begin to wait */
};

/* The first line of libpq's last message about db. */
static void log_pq(const char *what, const PGconn *db)
{
    const char *msg = PQerrorMessage(db);

    log_warn("postgres: entitlement listener: %s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

/* Waits up to timeout_ms; true when stop was asked. */
static bool wait_stop(const struct store_watch *w, int timeout_ms)
{
    struct pollfd p = { w->wake[0], POLLIN, 0 };

    return poll(&p, 1, timeout_ms) > 0 && p.revents != 0;
}

/* A connection that LISTENs, or NULL. */
static PGconn *listen_connect(const struct store_watch *w)
{
    PGconn *db = pg_db_connect(w->url);
    PGresult *res;

    if (PQstatus(db) != CONNECTION_OK) {
        log_pq("cannot connect", db);
        PQfinish(db);
        return NULL;
    }
    res = PQexec(db, LISTEN_SQL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_pq("cannot LISTEN", db);
        PQclear(res);
        PQfinish(db);
        return NULL;
    }
    PQclear(res);
    return db;
}

static void clear_both(const struct store_watch *w)
{
    entcache_clear(w->cache);
    if (w->usage)
        entcache_clear(w->usage);
}

/* A usage notification's payload: user ids, one per line; empty for every user. */
static void usage_drop(struct entcache *usage, char *payload)
{
    char *line = payload;

    if (!payload[0]) {
        entcache_clear(usage);
        return;
    }
    for (char *nl; line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        entcache_invalidate(usage, line);
    }
}

/* Drops the entry of each user named by a notification; false when the connection is lost. */
static bool listen_drain(const struct store_watch *w, PGconn *db)
{
    PGnotify *n;

    if (!PQconsumeInput(db))
        return false;
    while ((n = PQnotifies(db)) != NULL) {
        if (strcmp(n->relname, PG_EXTRAS_CHANNEL) == 0)
            atomic_store(&w->st->extras_seen, true); /* sent before the usage notification */
        else if (strcmp(n->relname, PG_USAGE_CHANNEL) != 0)
            entcache_invalidate(w->cache, n->extra);
        else if (w->usage)
            usage_drop(w->usage, n->extra);
        PQfreemem(n);
    }
    return PQstatus(db) == CONNECTION_OK;
}

/*
 * NOTIFYs the usage notes waiting, extras first; false when the connection is lost. A failure
 * loses them: the other instances' TTL bounds what they miss.
 */
static bool tell_usage(const struct store_watch *w, PGconn *db)
{
    static const char sql[] = "SELECT pg_notify('" PG_EXTRAS_CHANNEL "', '') WHERE $2 = '1' "
                              "UNION ALL SELECT pg_notify('" PG_USAGE_CHANNEL "', $1)";
    char payload[PG_USAGE_PAYLOAD_MAX];
    bool extras = false;
    const char *values[2] = { payload, NULL };
    PGresult *res;
    bool ok;

    if (!pg_db_usage_take(w->st, payload, &extras))
        return true;
    values[1] = extras ? "1" : "0";
    res = PQexecParams(db, sql, 2, NULL, values, NULL, NULL, 0);
    ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    if (!ok)
        log_pq("cannot NOTIFY usage changes", db);
    return ok || PQstatus(db) == CONNECTION_OK;
}

/* Empties the tell pipe (non-blocking). */
static void tell_drain(const struct store_watch *w)
{
    char buf[64];

    while (read(w->tell[0], buf, sizeof(buf)) > 0) {
    }
}

/*
 * Serves notifications on db until it is lost (false) or stop is asked (true), and sends the
 * usage notes PG_USAGE_TELL_MS after they began to wait (so that one NOTIFY covers many runs).
 */
static bool listen_serve(const struct store_watch *w, PGconn *db)
{
    /* When the notes waiting are sent (monotonic ms; -1: none wait). At once on a new
       connection: notes that waited while the last one was lost have no byte in the pipe. */
    int64_t due = clock_mono_ms();

    for (;;) {
        struct pollfd p[3] = { { w->wake[0], POLLIN, 0 },
                               { PQsocket(db), POLLIN, 0 },
                               { w->tell[0], POLLIN, 0 } };
        int64_t now = clock_mono_ms();
        int timeout = due < 0 ? -1 : due > now ? (int)(due - now) : 0;
        int n = poll(p, 3, timeout);

        if (n < 0 && errno != EINTR)
            p[1].revents = POLLIN; /* let PQconsumeInput find out what is wrong */
        if (n > 0 && p[0].revents)
            return true;
        if (p[1].revents && !listen_drain(w, db))
            return false;
        if (n > 0 && p[2].revents) {
            tell_drain(w);
            if (due < 0)
                due = clock_mono_ms() + PG_USAGE_TELL_MS;
        }
        if (due >= 0 && clock_mono_ms() >= due) {
            due = -1;
            /* notifications read while waiting for its answer wait in libpq: drained too */
            if (!tell_usage(w, db) || !listen_drain(w, db))
                return false;
        }
    }
}

static void *listen_main(void *arg)
{
    struct store_watch *w = arg;
    int backoff_ms = BACKOFF_FIRST_MS;
    bool lost = false; /* a connection was lost before this one */

    for (;;) {
        PGconn *db = listen_connect(w);
        bool stop;

        if (!db) {
            if (wait_stop(w, backoff_ms))
                return NULL;
            backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
            continue;
        }
        clear_both(w); /* entries cached while no one listened */
        if (lost)
            log_info("postgres: entitlement listener: listening again");
        stop = listen_serve(w, db);
        if (!stop)
            log_pq("connection lost, the cache is dropped", db);
        PQfinish(db);
        if (stop)
            return NULL;
        clear_both(w); /* notifications may have been missed */
        lost = true;
        backoff_ms = BACKOFF_FIRST_MS;
    }
}

struct store_watch *pg_listen_start(struct store *st, struct entcache *cache,
                                    struct entcache *usage_cache)
{
    struct store_watch *w = xcalloc(1, sizeof(*w));

    w->url = pg_db_url(st);
    w->st = st;
    w->cache = cache;
    w->usage = usage_cache;
    if (pipe(w->wake) != 0 || pipe(w->tell) != 0 || fcntl(w->tell[0], F_SETFL, O_NONBLOCK) != 0 ||
        fcntl(w->tell[1], F_SETFL, O_NONBLOCK) != 0 ||
        pthread_create(&w->thread, NULL, listen_main, w) != 0) {
        log_error("postgres: cannot start the entitlement listener: %s", strerror(errno));
        abort(); /* out of threads or descriptors at start-up: as xmalloc does */
    }
    pg_db_usage_tell_to(st, w->tell[1]);
    return w;
}

void pg_listen_stop(struct store_watch *w)
{
    if (!w)
        return;
    pg_db_usage_tell_to(w->st, -1); /* the store is no longer shared: no run is writing */
    if (write(w->wake[1], "x", 1) != 1)
        abort(); /* a pipe with room for one byte: cannot fail */
    pthread_join(w->thread, NULL);
    close(w->wake[0]);
    close(w->wake[1]);
    close(w->tell[0]);
    close(w->tell[1]);
    free(w);
}
