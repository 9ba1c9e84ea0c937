/*
 * test_store_sqlite.c: what only the SQLite backend promises, checked by looking at the file
 * with sqlite3 itself: WAL mode, the version guard, and two migrators racing on one file.
 */
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

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
};

static void *migrate_main(void *arg)
{
    struct migrator *m = arg;
    struct store *st = NULL;
    char msg[256];

    m->err = store_open(m->url, 1, &st, msg, sizeof(msg));
    if (m->err == ERR_OK)
        m->err = store_migrate(st, &m->applied, msg, sizeof(msg));
    store_close(st);
    return NULL;
}

/* Two stores stand for two processes: each migration must run exactly once between them. */
static void test_concurrent_migrate(void)
{
    char path[128], url[160];
    struct migrator m[2] = { { url, ERR_INTERNAL, 0 }, { url, ERR_INTERNAL, 0 } };
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
    T_EQ_I64(m[0].err, ERR_OK, "first migrator");
    T_EQ_I64(m[1].err, ERR_OK, "second migrator");
    T_EQ_I64(store_open(url, 1, &st, msg, sizeof(msg)), ERR_OK, "reopen %s", msg);
    T_EQ_I64(m[0].applied + m[1].applied, store_schema_version_latest(st),
             "each migration ran once");
    T_EQ_I64(store_schema_version(st, &version), ERR_OK, "read version");
    T_EQ_I64(version, store_schema_version_latest(st), "at the latest version");
    store_close(st);
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
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
    if (nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        printf("# could not remove %s\n", tmpdir);
    return t_done();
}
