/*
 * pg_listen.c: the PostgreSQL backend's watcher of subscription writes (store_ops.watch_start).
 * Migration 005 makes every write of a subscriptions row NOTIFY subgate_entitlements with the
 * row's user id, delivered when the writing transaction commits, whichever process wrote it.
 * One thread per store LISTENs on a connection of its own and drops the named users' entries
 * from the entitlement cache. When that connection is lost, notifications may have been
 * missed: the whole cache is dropped, and dropped again once LISTEN is back (what was cached
 * meanwhile was never covered). Until then the cache's TTL alone bounds staleness.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "base/log.h"
#include "base/xalloc.h"
#include "store/entcache.h"
#include "store/pg_db.h"

#define LISTEN_SQL       "LISTEN subgate_entitlements"
#define BACKOFF_FIRST_MS 100  /* the first wait before connecting again, doubled each failure */
#define BACKOFF_MAX_MS   5000 /* and never longer */

struct store_watch {
    const char *url; /* borrowed from the store, which outlives its watcher */
    struct entcache *cache;
    pthread_t thread;
    int wake[2]; /* a pipe: pg_listen_stop writes to wake[1] */
};

/* The first line of libpq's last message about db. */
static void log_pq(const char *what, const PGconn *db)
{
    const char *msg = PQerrorMessage(db);

    log_warn("postgres: entitlement listener: %s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

/* Waits up to timeout_ms (-1: no limit) for fd to be readable; true when stop was asked. */
static bool wait_readable(const struct store_watch *w, int fd, int timeout_ms, bool *readable)
{
    struct pollfd p[2] = { { w->wake[0], POLLIN, 0 }, { fd, POLLIN, 0 } };
    int n = poll(p, fd >= 0 ? 2 : 1, timeout_ms);

    *readable = n > 0 && fd >= 0 && p[1].revents != 0;
    if (n < 0 && errno != EINTR)
        *readable = true; /* let PQconsumeInput find out what is wrong */
    return n > 0 && p[0].revents != 0;
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

/* Drops the entry of each user named by a notification; false when the connection is lost. */
static bool listen_drain(const struct store_watch *w, PGconn *db)
{
    PGnotify *n;

    if (!PQconsumeInput(db))
        return false;
    while ((n = PQnotifies(db)) != NULL) {
        entcache_invalidate(w->cache, n->extra);
        PQfreemem(n);
    }
    return PQstatus(db) == CONNECTION_OK;
}

/* Serves notifications on db until it is lost (false) or stop is asked (true). */
static bool listen_serve(const struct store_watch *w, PGconn *db)
{
    bool readable;

    for (;;) {
        if (wait_readable(w, PQsocket(db), -1, &readable))
            return true;
        if (readable && !listen_drain(w, db))
            return false;
    }
}

static void *listen_main(void *arg)
{
    struct store_watch *w = arg;
    int backoff_ms = BACKOFF_FIRST_MS;
    bool lost = false; /* a connection was lost before this one */
    bool readable;

    for (;;) {
        PGconn *db = listen_connect(w);
        bool stop;

        if (!db) {
            if (wait_readable(w, -1, backoff_ms, &readable))
                return NULL;
            backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
            continue;
        }
        entcache_clear(w->cache); /* entries cached while no one listened */
        if (lost)
            log_info("postgres: entitlement listener: listening again");
        stop = listen_serve(w, db);
        if (!stop)
            log_pq("connection lost, the cache is dropped", db);
        PQfinish(db);
        if (stop)
            return NULL;
        entcache_clear(w->cache); /* notifications may have been missed */
        lost = true;
        backoff_ms = BACKOFF_FIRST_MS;
    }
}

struct store_watch *pg_listen_start(struct store *st, struct entcache *cache)
{
    struct store_watch *w = xcalloc(1, sizeof(*w));

    w->url = pg_db_url(st);
    w->cache = cache;
    if (pipe(w->wake) != 0 || pthread_create(&w->thread, NULL, listen_main, w) != 0) {
        log_error("postgres: cannot start the entitlement listener: %s", strerror(errno));
        abort(); /* out of threads or descriptors at start-up: as xmalloc does */
    }
    return w;
}

void pg_listen_stop(struct store_watch *w)
{
    if (!w)
        return;
    if (write(w->wake[1], "x", 1) != 1)
        abort(); /* a pipe with room for one byte: cannot fail */
    pthread_join(w->thread, NULL);
    close(w->wake[0]);
    close(w->wake[1]);
    free(w);
}
