/*
 * test_store_sqlite.c: what only the SQLite backend promises, checked by looking at the file
 * with sqlite3 itself: WAL mode, the version guard, two migrators racing on one file, two
 * stores (standing for two processes) consuming from one counter, and a WAL that stays bounded
 * under writes without a pause, and usage counters read from memory.
 */
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "store/migrations.h"
#include "store/store.h"
#include "t.h"

static char tmpdir[64]; /* /tmp/subgate-sqlite-XXXXXX */

static void db_path(char *buf, size_t size, const char *name)
{
    (void)snprintf(buf, size, "%s/%s.db", tmpdir, name);
}

/* Runs one statement on the file directly; returns its first column as text, or "". */
static void raw_sql(const char *path, const char *sql, char *out, size_t size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;

    out[0] = '\0';
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0))
        (void)snprintf(out, size, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

static void test_wal_mode(void)
{
    char path[128], url[160], mode[32];
    struct store *st = NULL;
    char msg[256] = "";

    db_path(path, sizeof(path), "wal");
    (void)snprintf(url, sizeof(url), "sqlite:%s", path);
    T_EQ_I64(store_open(url, 3, &st, msg, sizeof(msg)), ERR_OK, "open %s", msg);
    raw_sql(path, "PRAGMA journal_mode", mode, sizeof(mode));
    T_EQ_STR(mode, "wal", "a file database runs in WAL mode");
    store_close(st);
}

static void test_newer_version_refused(void)
{
    char path[128], url[160], out[32];
    struct store *st = NULL;
    char msg[256] = "";
    int applied = -1;

    db_path(path, sizeof(path), "newer");
    (void)snprintf(url, sizeof(url), "sqlite:%s", path);
    raw_sql(path, "PRAGMA user_version = 999", out, sizeof(out));
    T_EQ_I64(store_open(url, 1, &st, msg, sizeof(msg)), ERR_OK, "open %s", msg);
    T_EQ_I64(store_migrate(st, &applied, msg, sizeof(msg)), ERR_STORE, "a newer schema is refused");
    T_EQ_I64(applied, 0, "nothing applied");
    T_OK(strstr(msg, "999") && strstr(msg, "newer"), "the message says why: %s", msg);
    store_close(st);
}

struct migrator {
    const char *url;
    enum err err;
    int applied;
    char msg[256];
};

static void *migrate_main(void *arg)
{
    struct migrator *m = arg;
    struct store *st = NULL;

    m->err = store_open(m->url, 1, &st, m->msg, sizeof(m->msg));
    if (m->err == ERR_OK)
        m->err = store_migrate(st, &m->applied, m->msg, sizeof(m->msg));
    store_close(st);
    return NULL;
}

/* Two stores stand for two processes: each migration must run exactly once between them. */
static void test_concurrent_migrate(void)
{
    char path[128], url[160];
    struct migrator m[2] = { { url, ERR_INTERNAL, 0, "" }, { url, ERR_INTERNAL, 0, "" } };
    pthread_t th[2];
    struct store *st = NULL;
    char msg[256] = "";
    int version = -1;

    db_path(path, sizeof(path), "race");
    (void)snprintf(url, sizeof(url), "sqlite:%s", path);
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, migrate_main, &m[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    T_EQ_I64(m[0].err, ERR_OK, "first migrator %s", m[0].msg);
    T_EQ_I64(m[1].err, ERR_OK, "second migrator %s", m[1].msg);
    T_EQ_I64(store_open(url, 1, &st, msg, sizeof(msg)), ERR_OK, "reopen %s", msg);
    T_EQ_I64(m[0].applied + m[1].applied, store_schema_version_latest(st),
             "each migration ran once");
    T_EQ_I64(store_schema_version(st, &version), ERR_OK, "read version");
    T_EQ_I64(version, store_schema_version_latest(st), "at the latest version");
    store_close(st);
}

static struct store *open_migrated(const char *url, int pool_size)
{
    struct store *st = NULL;
    char msg[256] = "";
    int applied = 0;

    if (store_open(url, pool_size, &st, msg, sizeof(msg)) != ERR_OK ||
        store_migrate(st, &applied, msg, sizeof(msg)) != ERR_OK) {
        printf("Bail out! %s\n", msg);
        exit(1);
    }
    return st;
}

#define STORES       2
#define THREADS_PER  4
#define CONSUMES_PER 200
#define SHARED_LIMIT 1000 /* below STORES * THREADS_PER * CONSUMES_PER: some are refused */

struct consumer {
    struct store *st;
    int granted;
    int failed;
};

static void *consumer_main(void *arg)
{
    struct consumer *w = arg;
    struct usage_grant g = { "shared", "ai_minutes", 86400, 1, SHARED_LIMIT, false, NULL, NULL };

    for (int i = 0; i < CONSUMES_PER; i++) {
        bool granted = false;
        int64_t used = 0;
        if (store_usage_consume(w->st, &g, &granted, &used) != ERR_OK || used > SHARED_LIMIT)
            w->failed++;
        w->granted += granted;
    }
    return NULL;
}

/*
 * Threads of one store queue on its writer mutex; two stores meet in SQLite's lock and the
 * busy handler, as two processes do. Neither may fail, nor grant past the limit.
 */
static void test_two_stores_consume(void)
{
    char path[128], url[160];
    struct store *st[STORES];
    struct consumer w[STORES * THREADS_PER];
    pthread_t th[STORES * THREADS_PER];
    int granted = 0, failed = 0;
    int64_t used = -1;

    db_path(path, sizeof(path), "two");
    (void)snprintf(url, sizeof(url), "sqlite:%s", path);
    for (int i = 0; i < STORES; i++)
        st[i] = open_migrated(url, THREADS_PER + 1);
    for (int i = 0; i < STORES * THREADS_PER; i++) {
        w[i] = (struct consumer){ st[i / THREADS_PER], 0, 0 };
        pthread_create(&th[i], NULL, consumer_main, &w[i]);
    }
    for (int i = 0; i < STORES * THREADS_PER; i++) {
        pthread_join(th[i], NULL);
        granted += w[i].granted;
        failed += w[i].failed;
    }
    T_EQ_I64(failed, 0, "two stores: no consume failed or saw the counter past the limit");
    T_EQ_I64(granted, SHARED_LIMIT, "two stores: exactly the limit granted");
    T_EQ_I64(store_usage_get(st[1], "shared", "ai_minutes", 86400, &used), ERR_OK, "read");
    T_EQ_I64(used, SHARED_LIMIT, "two stores: the counter reads the limit");
    for (int i = 0; i < STORES; i++)
        store_close(st[i]);
}

#define WAL_COMMITS   32768                       /* one WAL frame each: 128 MiB unbounded */
#define WAL_MAX_BYTES (INT64_C(96) * 1024 * 1024) /* journal_size_limit is 64 MiB */

/*
 * Writes without a pause leave a passive checkpoint no moment to finish, and a WAL that never
 * starts over grows by every commit. The checkpointer must make it start over anyway.
 */
static void test_wal_bounded(void)
{
    char path[128], url[160], wal[160];
    struct usage_grant g = { "steady", "ai_minutes", 86400, 1, -1, false, NULL, NULL };
    struct store *st;
    struct stat sb;
    int failed = 0;

    db_path(path, sizeof(path), "steady");
    (void)snprintf(url, sizeof(url), "sqlite:%s", path);
    (void)snprintf(wal, sizeof(wal), "%s-wal", path);
    st = open_migrated(url, 2);
    for (int i = 0; i < WAL_COMMITS; i++) {
        bool granted = false;
        int64_t used = 0;
        failed += store_usage_consume(st, &g, &granted, &used) != ERR_OK || !granted;
    }
    T_EQ_I64(failed, 0, "%d consumes in a row", WAL_COMMITS);
    T_OK(stat(wal, &sb) == 0, "the WAL file exists");
    T_OK(sb.st_size < WAL_MAX_BYTES, "the WAL stays bounded: %lld bytes", (long long)sb.st_size);
    store_close(st);
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

/*
 * A database written by version 1 (replies stored rendered) migrates to outcomes stored as
 * data: a retry after the upgrade is answered from what the old reply said.
 */
static void test_legacy_replies_migrate(void)
{
    static const char legacy[] =
        "INSERT INTO idempotency_keys (key, scope, request_hash, response_status, response_body, "
        "created) VALUES "
        "('kg', 'usage.consume', 'h', 200, '{\"amount\":1,\"granted\":true,\"limit\":30,"
        "\"quota\":\"ai_minutes\",\"remaining\":25,\"resets_at\":172800,\"tier\":\"free\","
        "\"used\":5,\"user_id\":\"u1\",\"window\":\"day\",\"window_start\":86400}', 1000), "
        "('kr', 'usage.consume', 'h', 402, '{\"error\":{\"code\":\"quota_exceeded\",\"limit\":30,"
        "\"remaining\":0,\"resets_at\":172800,\"tier\":\"free\",\"used\":30}}', 1000), "
        "('ku', 'usage.track', 'h', 200, '{\"limit\":null,\"remaining\":null,\"used\":7,"
        "\"window_start\":86400,\"resets_at\":172800,\"tier\":\"plus\"}', 1000);"
        "INSERT INTO subscriptions (id, user_id, status, updated_at) VALUES "
        "('sub_live', 'u1', 'past_due', 1), ('sub_old', 'u1', 'canceled', 2);";

    static const struct {
        const char *key, *scope;
        bool granted;
        int64_t used, limit, remaining, window_start;
        const char *tier;
    } want[] = {
        { "kg", "usage.consume", true, 5, 30, 25, 86400, "free" },
        { "kr", "usage.consume", false, 30, 30, 0, 0, "free" },
        { "ku", "usage.track", true, 7, -1, -1, 86400, "plus" },
    };

    char path[128], url[160], msg[256] = "";
    struct store *st = NULL;
    struct subscription sub;
    sqlite3 *db = NULL;
    int applied = 0;

    db_path(path, sizeof(path), "legacy");
    (void)snprintf(url, sizeof(url), "sqlite:%s", path);
    T_OK(sqlite3_open(path, &db) == SQLITE_OK &&
             sqlite3_exec(db, sqlite_migrations[0].sql, NULL, NULL, NULL) == SQLITE_OK &&
             sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL) == SQLITE_OK &&
             sqlite3_exec(db, legacy, NULL, NULL, NULL) == SQLITE_OK,
         "a database at version 1 with stored replies: %s", sqlite3_errmsg(db));
    sqlite3_close(db);
    T_EQ_I64(store_open(url, 2, &st, msg, sizeof(msg)), ERR_OK, "open %s", msg);
    T_EQ_I64(store_migrate(st, &applied, msg, sizeof(msg)), ERR_OK, "migrate %s", msg);
    T_OK(applied >= 1, "the later migrations ran (%d)", applied);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct usage_grant g = { "u1", "ai_minutes", 86400, 1, 30, false, NULL, NULL };
        const struct store_idempotency k = { want[i].key, want[i].scope, "h", 2000 };
        struct usage_outcome o = { .limit = 99, .tier = "other" };
        bool replayed = false;
        T_EQ_I64(store_usage_consume_once(st, &g, &k, &o, &replayed), ERR_OK, "%s", want[i].key);
        T_EQ_I64(replayed, true, "%s: replayed", want[i].key);
        T_EQ_I64(o.granted, want[i].granted, "%s: granted", want[i].key);
        T_EQ_I64(o.used, want[i].used, "%s: used", want[i].key);
        T_EQ_I64(o.limit, want[i].limit, "%s: limit", want[i].key);
        T_EQ_I64(o.remaining, want[i].remaining, "%s: remaining", want[i].key);
        T_EQ_I64(o.window_start, want[i].window_start, "%s: window_start", want[i].key);
        T_EQ_I64(o.resets_at, 172800, "%s: resets_at", want[i].key);
        T_EQ_STR(o.tier, want[i].tier, "%s: tier", want[i].key);
    }
    T_EQ_I64(store_subscription_get_for_user(st, "u1", &sub), ERR_OK, "the user's subscription");
    T_EQ_STR(sub.id, "sub_live", "rows from before are ranked live first after the migration");
    store_close(st);
}

#define USAGE_TTL_MS 150

/* u_mem's ai_minutes counter in window 86400, through the store. */
static int64_t usage_of(struct store *st)
{
    const char *quotas[] = { "ai_minutes" };
    const int64_t starts[] = { 86400 };
    struct usage_read rd[1] = { { -1, -1, -1 } };

    T_EQ_I64(store_usage_read_many(st, "u_mem", 1, quotas, starts, rd), ERR_OK, "usage read");
    return rd[0].used;
}

/*
 * On SQLite only this process changes the counters serving reads, so with the caches on they
 * are read from memory: a change made behind the store's back (hand-written SQL) shows only once
 * the TTL has passed, while the store's own consume shows at once (the contract's usage_cache).
 */
static void test_usage_from_memory(void)
{
    const struct store_cache_params cache = { .users = 16, .ttl_ms = USAGE_TTL_MS };
    struct usage_grant g = { "u_mem", "ai_minutes", 86400, 2, 100, false, NULL, NULL };
    char path[128], url[160], out[32];
    const struct timespec past_ttl = { 0, 3 * USAGE_TTL_MS * 1000000L };
    bool granted = false;
    int64_t used = -1;
    struct store *st;

    db_path(path, sizeof(path), "mem");
    (void)snprintf(url, sizeof(url), "sqlite:%s", path);
    st = open_migrated(url, 2);
    store_cache_start(st, &cache);
    T_EQ_I64(store_usage_consume(st, &g, &granted, &used), ERR_OK, "consume 2");
    T_EQ_I64(usage_of(st), 2, "read (and kept)");
    raw_sql(path, "UPDATE usage_counters SET used = 9 WHERE user_id = 'u_mem' RETURNING used", out,
            sizeof(out));
    T_OK(strcmp(out, "9") == 0, "changed behind the store's back: %s", out);
    T_EQ_I64(usage_of(st), 2, "within the TTL the read comes from memory");
    (void)nanosleep(&past_ttl, NULL);
    T_EQ_I64(usage_of(st), 9, "past the TTL the change shows");
    T_EQ_I64(store_usage_consume(st, &g, &granted, &used), ERR_OK, "consume 2 more");
    T_OK(granted && used == 11, "granted, 11 used: %d %lld", granted, (long long)used);
    T_EQ_I64(usage_of(st), 11, "the store's own change shows at once");
    store_close(st);
}

int main(void)
{
    (void)snprintf(tmpdir, sizeof(tmpdir), "/tmp/subgate-sqlite-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    test_wal_mode();
    test_newer_version_refused();
    test_concurrent_migrate();
    test_two_stores_consume();
    test_wal_bounded();
    test_legacy_replies_migrate();
    test_usage_from_memory();
    if (nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        printf("# could not remove %s\n", tmpdir);
    return t_done();
}
