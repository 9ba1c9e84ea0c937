/*
 * sqlite_vfs.c: the VFS the SQLite backend opens its databases with (see sqlite_db.h): the
 * platform's own, with each transaction's appends to the WAL sent in one write.
 *
 * SQLite appends a page to the WAL as two writes, a 24-byte frame header and then the page, so a
 * consume that changes four pages costs eight write(2)s, and a webhook sixteen. Here the appends
 * are copied into a buffer of the WAL file's, which goes out in one write:
 *  - when the commit frame's page is in (its header names the database's size after the commit,
 *    where other frames' hold zero): SQLite has not yet published the commit in the WAL index,
 *    so no reader, in this process or another, can look for these frames before they are in the
 *    file, and a failed write fails the commit as SQLite's own would;
 *  - before anything else touches the file (a read, a sync, a truncate, its size, a write that
 *    does not follow on, closing), and when the buffer is full. A write in place (SQLite
 *    rewrites a page within its transaction, or frame checksums at the commit) is not
 *    buffered: it goes to the file at once, its failure SQLite's to see;
 *  - as a safety net, at the database file's shared-memory barrier, which SQLite crosses while
 *    it publishes a commit: frames still buffered then go out before the header is whole.
 * A process killed with frames still buffered loses only a transaction that had not committed:
 * nothing it wrote was acknowledged, and SQLite ignores a WAL's unfinished tail anyway. On a
 * power loss it is as before: with synchronous = NORMAL, commits since the last checkpoint's
 * sync may be lost, whole.
 *
 * Every other file (the database, its shared memory, temporary files) is the platform's,
 * reached through forwarders. The VFS methods other than xOpen are the platform VFS's own, on a
 * copy of its struct (so they see its pAppData).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/xalloc.h"
#include "store/sqlite_db.h"

/* A WAL buffer starts at WAL_BUF_FIRST bytes, doubled as transactions need, up to WAL_BUF_MAX:
 * a longer transaction goes out in pieces. */
#define VFS_NAME      "subgate"
#define WAL_HDR       32 /* the WAL's header, at its start */
#define FRAME_HDR     24 /* a WAL frame's header */
#define WAL_BUF_FIRST ((size_t)32 << 10)
#define WAL_BUF_MAX   ((size_t)128 << 10)

struct vfile {
    sqlite3_file base;  /* pMethods: wal_methods for a WAL, plain_methods otherwise */
    sqlite3_file *real; /* the platform's file, in the same allocation, after this struct */
    struct vfile *peer; /* a WAL's database file, and a database file's open WAL */
    /* WAL files only: appends not yet written, at offset off */
    unsigned char *buf;
    size_t len, cap;
    sqlite3_int64 off;
    sqlite3_int64 end; /* past the last byte this generation of the WAL holds, buffer included */
    bool commit_next;  /* the last append was a commit frame's header: its page ends the commit */
};

/* Where the platform's file starts, after ours, aligned for any member it may have. */
#define REAL_AT ((sizeof(struct vfile) + 15) & ~(size_t)15)

static sqlite3_vfs vfs;
static sqlite3_vfs *plat;

/* Writes the buffered appends out; whatever happens, they are dropped from the buffer. */
static int wal_flush(struct vfile *f)
{
    int rc;

    if (f->len == 0)
        return SQLITE_OK;
    rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->off);
    if (rc != SQLITE_OK)
        f->end = f->off; /* the file holds nothing past it */
    f->len = 0;
    f->commit_next = false;
    return rc;
}

/* Makes room for n more bytes; false when they cannot be buffered (too long: written as is). */
static bool wal_room(struct vfile *f, size_t n)
{
    size_t cap = f->cap ? f->cap : WAL_BUF_FIRST;

    if (f->len + n > WAL_BUF_MAX)
        return false;
    while (cap < f->len + n)
        cap *= 2;
    if (cap > f->cap) {
        f->buf = xrealloc(f->buf, cap);
        f->cap = cap;
    }
    return true;
}

static bool commit_header(const void *data, int n)
{
    const unsigned char *p = data;

    return n == FRAME_HDR && (p[4] | p[5] | p[6] | p[7]) != 0;
}

/* Writes straight to the file (after what waits has gone out): the WAL's end follows. */
static int wal_write_through(struct vfile *f, const void *data, int n, sqlite3_int64 at)
{
    int rc = wal_flush(f);

    if (rc == SQLITE_OK)
        rc = f->real->pMethods->xWrite(f->real, data, n, at);
    if (rc == SQLITE_OK && at + n > f->end)
        f->end = at + n;
    return rc;
}

/*
 * Appends (past everything this WAL generation holds) are buffered. A write in place (a page
 * SQLite rewrites within its transaction, frame checksums redone at the commit) goes to the file
 * at once, after what waits, so that its failure is the caller's and nothing is left waiting
 * once the commit frame is out.
 */
static int wal_write(sqlite3_file *file, const void *data, int n, sqlite3_int64 at)
{
    struct vfile *f = (struct vfile *)file;
    bool ends_commit;
    int rc;

    if (at == 0 && n == WAL_HDR) { /* a new generation of the WAL starts at its header */
        rc = wal_flush(f);
        if (rc != SQLITE_OK)
            return rc;
        f->end = 0;
    }
    if (at < f->end) /* in place */
        return wal_write_through(f, data, n, at);
    if (f->len > 0 && at != f->end) { /* past a gap: what waits goes out first */
        rc = wal_flush(f);
        if (rc != SQLITE_OK)
            return rc;
    }
    ends_commit = f->commit_next && n != FRAME_HDR;
    if (!wal_room(f, (size_t)n)) {
        rc = wal_flush(f);
        if (rc != SQLITE_OK)
            return rc;
        if (!wal_room(f, (size_t)n)) /* longer than the buffer */
            return wal_write_through(f, data, n, at);
    }
    if (f->len == 0)
        f->off = at;
    memcpy(f->buf + f->len, data, (size_t)n);
    f->len += (size_t)n;
    f->end = at + n;
    f->commit_next = commit_header(data, n);
    return ends_commit ? wal_flush(f) : SQLITE_OK;
}

static int wal_read(sqlite3_file *file, void *out, int n, sqlite3_int64 at)
{
    struct vfile *f = (struct vfile *)file;
    int rc = wal_flush(f);

    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, out, n, at);
}

static int wal_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    struct vfile *f = (struct vfile *)file;
    int rc = wal_flush(f);

    if (rc == SQLITE_OK && size < f->end)
        f->end = size;
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int wal_sync(sqlite3_file *file, int flags)
{
    struct vfile *f = (struct vfile *)file;
    int rc = wal_flush(f);

    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wal_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    struct vfile *f = (struct vfile *)file;
    int rc = wal_flush(f);

    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int wal_file_control(sqlite3_file *file, int op, void *arg)
{
    struct vfile *f = (struct vfile *)file;
    int rc = wal_flush(f);

    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int wal_fetch(sqlite3_file *file, sqlite3_int64 at, int n, void **out)
{
    struct vfile *f = (struct vfile *)file;
    int rc = wal_flush(f);

    *out = NULL;
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch(f->real, at, n, out);
}

static int file_close(sqlite3_file *file)
{
    struct vfile *f = (struct vfile *)file;
    int rc = wal_flush(f);
    int rc2 = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;

    if (f->peer && f->peer->peer == f)
        f->peer->peer = NULL;
    free(f->buf);
    f->buf = NULL;
    f->peer = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

/* The forwarders: the platform's method on the platform's file. */
#define REAL(file) (((struct vfile *)(file))->real)

static int plain_read(sqlite3_file *file, void *out, int n, sqlite3_int64 at)
{
    return REAL(file)->pMethods->xRead(REAL(file), out, n, at);
}

static int plain_write(sqlite3_file *file, const void *data, int n, sqlite3_int64 at)
{
    return REAL(file)->pMethods->xWrite(REAL(file), data, n, at);
}

static int plain_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    return REAL(file)->pMethods->xTruncate(REAL(file), size);
}

static int plain_sync(sqlite3_file *file, int flags)
{
    return REAL(file)->pMethods->xSync(REAL(file), flags);
}

static int plain_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    return REAL(file)->pMethods->xFileSize(REAL(file), size);
}

static int plain_lock(sqlite3_file *file, int level)
{
    return REAL(file)->pMethods->xLock(REAL(file), level);
}

static int plain_unlock(sqlite3_file *file, int level)
{
    return REAL(file)->pMethods->xUnlock(REAL(file), level);
}

static int plain_check_reserved(sqlite3_file *file, int *out)
{
    return REAL(file)->pMethods->xCheckReservedLock(REAL(file), out);
}

static int plain_file_control(sqlite3_file *file, int op, void *arg)
{
    return REAL(file)->pMethods->xFileControl(REAL(file), op, arg);
}

static int plain_sector_size(sqlite3_file *file)
{
    return REAL(file)->pMethods->xSectorSize(REAL(file));
}

static int plain_device_characteristics(sqlite3_file *file)
{
    return REAL(file)->pMethods->xDeviceCharacteristics(REAL(file));
}

static int plain_shm_map(sqlite3_file *file, int region, int size, int extend, void volatile **out)
{
    return REAL(file)->pMethods->xShmMap(REAL(file), region, size, extend, out);
}

static int plain_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    return REAL(file)->pMethods->xShmLock(REAL(file), offset, n, flags);
}

/* The safety net of the header comment: a database's WAL appends go out before a publication. */
static void plain_shm_barrier(sqlite3_file *file)
{
    struct vfile *f = (struct vfile *)file;

    if (f->peer && f->peer->len > 0 && wal_flush(f->peer) != SQLITE_OK)
        log_error("sqlite: cannot write the WAL before publishing a commit");
    REAL(file)->pMethods->xShmBarrier(REAL(file));
}

static int plain_shm_unmap(sqlite3_file *file, int delete_flag)
{
    return REAL(file)->pMethods->xShmUnmap(REAL(file), delete_flag);
}

static int plain_fetch(sqlite3_file *file, sqlite3_int64 at, int n, void **out)
{
    return REAL(file)->pMethods->xFetch(REAL(file), at, n, out);
}

static int plain_unfetch(sqlite3_file *file, sqlite3_int64 at, void *p)
{
    return REAL(file)->pMethods->xUnfetch(REAL(file), at, p);
}

static const sqlite3_io_methods plain_methods = {
    .iVersion = 3,
    .xClose = file_close,
    .xRead = plain_read,
    .xWrite = plain_write,
    .xTruncate = plain_truncate,
    .xSync = plain_sync,
    .xFileSize = plain_file_size,
    .xLock = plain_lock,
    .xUnlock = plain_unlock,
    .xCheckReservedLock = plain_check_reserved,
    .xFileControl = plain_file_control,
    .xSectorSize = plain_sector_size,
    .xDeviceCharacteristics = plain_device_characteristics,
    .xShmMap = plain_shm_map,
    .xShmLock = plain_shm_lock,
    .xShmBarrier = plain_shm_barrier,
    .xShmUnmap = plain_shm_unmap,
    .xFetch = plain_fetch,
    .xUnfetch = plain_unfetch,
};

static const sqlite3_io_methods wal_methods = {
    .iVersion = 3,
    .xClose = file_close,
    .xRead = wal_read,
    .xWrite = wal_write,
    .xTruncate = wal_truncate,
    .xSync = wal_sync,
    .xFileSize = wal_file_size,
    .xLock = plain_lock,
    .xUnlock = plain_unlock,
    .xCheckReservedLock = plain_check_reserved,
    .xFileControl = wal_file_control,
    .xSectorSize = plain_sector_size,
    .xDeviceCharacteristics = plain_device_characteristics,
    .xShmMap = plain_shm_map,
    .xShmLock = plain_shm_lock,
    .xShmBarrier = plain_shm_barrier,
    .xShmUnmap = plain_shm_unmap,
    .xFetch = wal_fetch,
    .xUnfetch = plain_unfetch,
};

static int vfs_open(sqlite3_vfs *self, const char *name, sqlite3_file *file, int flags,
                    int *out_flags)
{
    struct vfile *f = (struct vfile *)file;
    bool wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc;

    (void)self;
    memset(f, 0, sizeof(*f));
    f->real = (sqlite3_file *)((char *)f + REAL_AT);
    rc = plat->xOpen(plat, name, f->real, flags, out_flags);
    if (!f->real->pMethods) /* nothing to close */
        return rc == SQLITE_OK ? SQLITE_CANTOPEN : rc;
    /* An older platform file has no shared memory or mapping to forward to: not wrapped. */
    if (f->real->pMethods->iVersion < 3) {
        (void)f->real->pMethods->xClose(f->real);
        return SQLITE_CANTOPEN;
    }
    f->base.pMethods = wal ? &wal_methods : &plain_methods;
    if (rc == SQLITE_OK && wal && name) {
        f->peer = (struct vfile *)sqlite3_database_file_object(name);
        if (f->peer)
            f->peer->peer = f;
    }
    return rc;
}

static void vfs_register_once(void)
{
    plat = sqlite3_vfs_find(NULL);
    if (!plat)
        return;
    vfs = *plat;
    vfs.zName = VFS_NAME;
    vfs.szOsFile = (int)(REAL_AT + (size_t)plat->szOsFile);
    vfs.xOpen = vfs_open;
    vfs.pNext = NULL;
    if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK)
        plat = NULL;
}

const char *sqlite_vfs_name(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    (void)pthread_once(&once, vfs_register_once);
    return plat ? VFS_NAME : NULL;
}
