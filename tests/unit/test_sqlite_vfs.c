/*
 * test_sqlite_vfs.c: the SQLite backend's VFS (store/sqlite_vfs.c), which writes a
 * transaction's WAL frames at once. Under it sits a counting VFS, made the default before the
 * backend's is registered, that counts (and on demand fails) the writes to WAL files. Checked:
 * one write per commit where SQLite alone makes two per page; each commit readable at once by a
 * connection on SQLite's own VFS, as another process would read it; transactions longer than
 * the buffer, pages spilled and rewritten within a transaction, a WAL restarted by a
 * checkpoint; a failed write, appended or in place, fails its commit and loses nothing
 * committed; and a process that dies in the middle of a transaction leaves every commit before
 * it whole.
 */
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/sqlite_db.h"
#include "t.h"

static char tmpdir[64]; /* /tmp/subgate-vfs-XXXXXX */

/* The counting VFS: the platform's, with WAL files' xWrite counted. */
static sqlite3_vfs count_vfs;
static sqlite3_vfs *unix_vfs;
static sqlite3_io_methods counted_methods;
static int (*unix_write)(sqlite3_file *, const void *, int, sqlite3_int64);
static int wal_writes;
static int fail_writes;          /* this many WAL writes from now on fail */
static bool fail_commit_rewrite; /* the next rewrite in place of a commit frame's header fails */
static sqlite3_int64 wal_end;    /* past the furthest byte written to the WAL since its start */

static int count_write(sqlite3_file *f, const void *data, int n, sqlite3_int64 at)
{
    const unsigned char *p = data;

    wal_writes++;
    if (at == 0)
        wal_end = 0;
    if (fail_writes > 0) {
        fail_writes--;
        return SQLITE_IOERR_WRITE;
    }
    if (fail_commit_rewrite && n == 24 && at < wal_end && (p[4] | p[5] | p[6] | p[7])) {
        fail_commit_rewrite = false;
        return SQLITE_IOERR_WRITE;
    }
    if (at + n > wal_end)
        wal_end = at + n;
    return unix_write(f, data, n, at);
}

static int count_open(sqlite3_vfs *self, const char *name, sqlite3_file *f, int flags,
                      int *out_flags)
{
    int rc = unix_vfs->xOpen(unix_vfs, name, f, flags, out_flags);

    (void)self;
    if (rc == SQLITE_OK && (flags & SQLITE_OPEN_WAL)) {
        if (!unix_write) {
            counted_methods = *f->pMethods;
            unix_write = counted_methods.xWrite;
            counted_methods.xWrite = count_write;
        }
        f->pMethods = &counted_methods;
    }
    return rc;
}

static void count_vfs_install(void)
{
    unix_vfs = sqlite3_vfs_find(NULL);
    count_vfs = *unix_vfs;
    count_vfs.zName = "count";
    count_vfs.xOpen = count_open;
    count_vfs.pNext = NULL;
    if (sqlite3_vfs_register(&count_vfs, 1) != SQLITE_OK)
        abort();
}

static void path_of(char *buf, size_t size, const char *name)
{
    (void)snprintf(buf, size, "%s/%s.db", tmpdir, name);
}

/* A connection in WAL mode as the backend sets it up, on the VFS named (NULL: default). */
static sqlite3 *open_db(const char *path, const char *vfs)
{
    sqlite3 *db = NULL;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) != SQLITE_OK ||
        sqlite3_exec(db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                     "PRAGMA wal_autocheckpoint = 0;",
                     NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "cannot open %s: %s\n", path, db ? sqlite3_errmsg(db) : "?");
        exit(2);
    }
    return db;
}

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* The first column of the first row of sql, as an integer (-1 when none). */
static long long one_i64(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    long long v = -1;

    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static bool intact(sqlite3 *db)
{
    sqlite3_stmt *stmt = NULL;
    bool ok = false;

    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        ok = strcmp((const char *)sqlite3_column_text(stmt, 0), "ok") == 0;
    sqlite3_finalize(stmt);
    return ok;
}

/* Three tables with an index each, so a row in each changes about six pages. */
static const char *const SCHEMA =
    "CREATE TABLE a (id INTEGER PRIMARY KEY, k TEXT, v BLOB); CREATE INDEX a_k ON a (k);"
    "CREATE TABLE b (id INTEGER PRIMARY KEY, k TEXT, v BLOB); CREATE INDEX b_k ON b (k);"
    "CREATE TABLE c (id INTEGER PRIMARY KEY, k TEXT, v BLOB); CREATE INDEX c_k ON c (k);";

static int insert_three(sqlite3 *db, int i)
{
    char sql[512];

    (void)snprintf(sql, sizeof(sql),
                   "BEGIN; INSERT INTO a (k, v) VALUES ('k%d', randomblob(1500));"
                   "INSERT INTO b (k, v) VALUES ('k%d', randomblob(1500));"
                   "INSERT INTO c (k, v) VALUES ('k%d', randomblob(1500)); COMMIT;",
                   i * 7919 % 1000, i * 104729 % 1000, i);
    return exec(db, sql);
}

static void test_one_write_per_commit(void)
{
    char path[128];
    sqlite3 *plain, *ours;
    int before, n;

    /* SQLite's own VFS (counted): two writes per page. */
    path_of(path, sizeof(path), "plain");
    plain = open_db(path, "count");
    T_OK(exec(plain, SCHEMA) == SQLITE_OK, "schema on SQLite's VFS");
    for (int i = 0; i < 50; i++)
        (void)insert_three(plain, i);
    before = wal_writes;
    T_OK(insert_three(plain, 50) == SQLITE_OK, "a commit on SQLite's VFS");
    n = wal_writes - before;
    T_OK(n >= 6, "SQLite's VFS writes the WAL %d times for one commit of 3 rows", n);
    sqlite3_close(plain);

    path_of(path, sizeof(path), "ours");
    ours = open_db(path, sqlite_vfs_name());
    T_OK(exec(ours, SCHEMA) == SQLITE_OK, "schema on the backend's VFS");
    for (int i = 0; i < 50; i++)
        (void)insert_three(ours, i);
    before = wal_writes;
    T_OK(insert_three(ours, 50) == SQLITE_OK, "a commit on the backend's VFS");
    T_EQ_I64(wal_writes - before, 1, "the backend's VFS writes the WAL once for that commit");
    before = wal_writes;
    for (int i = 51; i < 151; i++)
        (void)insert_three(ours, i);
    T_EQ_I64(wal_writes - before, 100, "and once per commit over 100 commits");
    T_EQ_I64(one_i64(ours, "SELECT count(*) FROM c"), 151, "every row is there");
    sqlite3_close(ours);
}

/* Each commit read at once by another connection on SQLite's own VFS; WAL restarts between. */
static void test_visible_at_once(void)
{
    char path[128];
    sqlite3 *w, *r;
    int seen = 0, before;

    path_of(path, sizeof(path), "visible");
    w = open_db(path, sqlite_vfs_name());
    T_OK(exec(w, SCHEMA) == SQLITE_OK, "schema");
    r = open_db(path, "unix");
    before = wal_writes;
    for (int i = 0; i < 300; i++) {
        if (insert_three(w, i) != SQLITE_OK)
            break;
        if (one_i64(r, "SELECT count(*) FROM c") == i + 1 &&
            one_i64(r, "SELECT length(v) FROM b ORDER BY id DESC LIMIT 1") == 1500)
            seen++;
        if (i % 50 == 49) /* the reader empties the WAL: the writer starts it again */
            (void)exec(r, "PRAGMA wal_checkpoint(TRUNCATE)");
    }
    T_EQ_I64(seen, 300, "each of 300 commits read at once on SQLite's VFS, across WAL restarts");
    /* SQLite syncs a restarted WAL's header before its first frame: one write more each time */
    T_EQ_I64(wal_writes - before, 300 + 5, "in one write each, and 5 restarted WALs' headers");
    T_OK(intact(r), "integrity_check ok");
    sqlite3_close(r);
    sqlite3_close(w);
}

/* Longer than the buffer, and pages spilled from a small cache then written again. */
static void test_long_transactions(void)
{
    char path[128];
    sqlite3 *w, *r;

    path_of(path, sizeof(path), "long");
    w = open_db(path, sqlite_vfs_name());
    T_OK(exec(w, "PRAGMA cache_size = 8; CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);") ==
             SQLITE_OK,
         "schema, small cache");
    T_OK(exec(w,
              "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
              "WHERE i < 400) INSERT INTO t SELECT i, zeroblob(3000) FROM n; COMMIT;") == SQLITE_OK,
         "one transaction of about 1.2 MB");
    T_OK(exec(w, "BEGIN; UPDATE t SET v = randomblob(3000); UPDATE t SET v = randomblob(2000) "
                 "WHERE id % 2 = 0; UPDATE t SET v = randomblob(2500) WHERE id % 3 = 0; "
                 "COMMIT;") == SQLITE_OK,
         "one transaction rewriting its own spilled pages");
    r = open_db(path, "unix");
    T_EQ_I64(one_i64(r, "SELECT sum(length(v)) FROM t"), 133 * 3000 + 134 * 2000 + 133 * 2500,
             "what both committed is read on SQLite's VFS");
    T_OK(intact(r), "integrity_check ok");
    sqlite3_close(r);
    sqlite3_close(w);
}

/* A write that fails fails its commit; what was committed before stays, and the next commits. */
static void test_write_fails(void)
{
    char path[128];
    sqlite3 *w, *r;
    int rc;

    path_of(path, sizeof(path), "fails");
    w = open_db(path, sqlite_vfs_name());
    T_OK(exec(w, SCHEMA) == SQLITE_OK, "schema");
    for (int i = 0; i < 10; i++)
        (void)insert_three(w, i);
    fail_writes = 1;
    rc = insert_three(w, 10);
    fail_writes = 0;
    T_OK(rc != SQLITE_OK, "a commit whose WAL write fails is refused (rc %d)", rc);
    (void)exec(w, "ROLLBACK");
    r = open_db(path, "unix");
    T_EQ_I64(one_i64(r, "SELECT count(*) FROM a"), 10, "the 10 commits before it are there");
    T_OK(insert_three(w, 11) == SQLITE_OK, "the next commit goes through");
    T_EQ_I64(one_i64(r, "SELECT count(*) FROM a"), 11, "and is read on SQLite's VFS");
    T_OK(intact(r), "integrity_check ok");
    sqlite3_close(r);
    sqlite3_close(w);
}

/*
 * A transaction that writes a spilled page again has its frames' checksums redone in place at
 * the commit, the commit frame's header last: when that write fails, so does the commit, and
 * the commits before it stay readable. (Buffered, it went out only at the barrier, where a
 * failure can only be logged, and the commit was answered as done.)
 */
static void test_rewrite_fails(void)
{
    char path[128];
    sqlite3 *w, *r;
    int rc;

    path_of(path, sizeof(path), "rewrite");
    w = open_db(path, sqlite_vfs_name());
    T_OK(exec(w, "PRAGMA cache_size = 8; CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);"
                 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) "
                 "INSERT INTO t SELECT i, zeroblob(3000) FROM n;") == SQLITE_OK,
         "200 rows committed");
    fail_commit_rewrite = true;
    rc = exec(w, "BEGIN; UPDATE t SET v = randomblob(3000); UPDATE t SET v = randomblob(2000) "
                 "WHERE id % 2 = 0; COMMIT;");
    T_OK(!fail_commit_rewrite, "the commit frame's header was rewritten in place");
    fail_commit_rewrite = false;
    T_OK(rc != SQLITE_OK, "the commit whose rewrite failed is refused (rc %d)", rc);
    (void)exec(w, "ROLLBACK");
    r = open_db(path, "unix");
    T_EQ_I64(one_i64(r, "SELECT sum(length(v)) FROM t"), 200 * 3000,
             "what was committed before is read on SQLite's VFS");
    T_OK(intact(r), "integrity_check ok");
    T_OK(exec(w, "UPDATE t SET v = zeroblob(10) WHERE id = 1") == SQLITE_OK,
         "the next commit goes through");
    T_EQ_I64(one_i64(r, "SELECT sum(length(v)) FROM t"), 199 * 3000 + 10, "and is read");
    sqlite3_close(r);
    sqlite3_close(w);
}

/* A process that dies mid-transaction (frames buffered, nothing published) loses only it. */
static void test_death_mid_transaction(void)
{
    char path[128];
    sqlite3 *r;
    pid_t pid;
    int status = 0;

    path_of(path, sizeof(path), "death");
    pid = fork();
    if (pid == 0) {
        sqlite3 *w = open_db(path, sqlite_vfs_name());
        if (exec(w, SCHEMA) != SQLITE_OK)
            _exit(3);
        for (int i = 0; i < 20; i++)
            if (insert_three(w, i) != SQLITE_OK)
                _exit(3);
        (void)exec(w, "PRAGMA cache_size = 8; BEGIN; INSERT INTO a (k, v) SELECT 'x', "
                      "randomblob(2000) FROM a; INSERT INTO a (k, v) SELECT 'y', "
                      "randomblob(2000) FROM a;");
        (void)kill(getpid(), SIGKILL);
        _exit(4);
    }
    T_OK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) &&
             WTERMSIG(status) == SIGKILL,
         "the writer died by SIGKILL in the middle of a transaction");
    r = open_db(path, "unix");
    T_EQ_I64(one_i64(r, "SELECT count(*) FROM a"), 20, "its 20 commits are there, nothing more");
    T_EQ_I64(one_i64(r, "SELECT count(*) FROM c"), 20, "in every table");
    T_OK(intact(r), "integrity_check ok");
    sqlite3_close(r);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    (void)snprintf(tmpdir, sizeof(tmpdir), "/tmp/subgate-vfs-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 2;
    count_vfs_install(); /* before the backend's VFS, which wraps the default */
    T_OK(sqlite_vfs_name() != NULL, "the backend's VFS is registered");
    test_one_write_per_commit();
    test_visible_at_once();
    test_long_transactions();
    test_write_fails();
    test_rewrite_fails();
    test_death_mid_transaction();
    (void)nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return t_done();
}
