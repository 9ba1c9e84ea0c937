/*
 * migrate.c: the schema migration loop, written once for every backend: each pending
 * migration runs in its own transaction together with the bump of the schema version, after
 * the backend's migration lock, so instances migrating at once apply each exactly once.
 */
#include <assert.h>
#include <stdio.h>

#include "store/backend.h"
#include "store/store.h"

struct migrate_arg {
    const struct store_ops *ops;
    const struct migration *m; /* NULL: only read the version */
    int version;
    bool ran;
};

static enum err version_tx(struct store_tx *tx, void *arg)
{
    struct migrate_arg *a = arg;

    return a->ops->schema_version(tx, &a->version);
}

/* Applies a->m unless the version, read under the lock, says it was applied meanwhile. */
static enum err migration_tx(struct store_tx *tx, void *arg)
{
    struct migrate_arg *a = arg;
    enum err err = a->ops->migration_lock(tx);

    a->ran = false;
    if (!err)
        err = a->ops->schema_version(tx, &a->version);
    if (err || a->version >= a->m->version)
        return err;
    err = a->ops->migration_run(tx, a->m);
    a->ran = err == ERR_OK;
    return err;
}

static int latest(const struct store *st)
{
    size_t n = 0;
    const struct migration *list = st->ops->migrations(&n);

    return n ? list[n - 1].version : 0;
}

enum err store_schema_version(struct store *st, int *version)
{
    struct migrate_arg a = { .ops = st->ops };
    enum err err = store_run(st, STORE_RUN_READ, version_tx, &a);

    *version = err ? 0 : a.version;
    return err;
}

int store_schema_version_latest(const struct store *st)
{
    return latest(st);
}

static enum err ping_tx(struct store_tx *tx, void *arg)
{
    const struct migrate_arg *a = arg;

    return a->ops->ping(tx);
}

enum err store_ping(struct store *st)
{
    struct migrate_arg a = { .ops = st->ops };

    return store_run(st, STORE_RUN_READ, ping_tx, &a) == ERR_OK ? ERR_OK : ERR_STORE;
}

enum err store_migrate(struct store *st, int *applied, char *errbuf, size_t errlen)
{
    char cause[256] = "";
    size_t n = 0;
    const struct migration *list = st->ops->migrations(&n);
    struct migrate_arg a = { .ops = st->ops };
    enum err err = st->ops->run(st, STORE_RUN_READ, version_tx, &a, cause, sizeof(cause));

    *applied = 0;
    if (err) {
        store_errf(errbuf, errlen, "cannot read the schema version: %s",
                   cause[0] ? cause : err_name(err));
        return err;
    }
    if (a.version > latest(st)) {
        store_errf(errbuf, errlen,
                   "database schema version %d is newer than this binary knows (%d): upgrade "
                   "subgate",
                   a.version, latest(st));
        return ERR_STORE;
    }
    for (size_t i = 0; i < n && !err; i++) {
        assert(i == 0 || list[i].version > list[i - 1].version);
        if (list[i].version <= a.version)
            continue;
        a.m = &list[i];
        cause[0] = '\0';
        err = st->ops->run(st, STORE_RUN_WRITE, migration_tx, &a, cause, sizeof(cause));
        if (err)
            store_errf(errbuf, errlen, "cannot apply migration %03d_%s: %s", list[i].version,
                       list[i].name, cause[0] ? cause : err_name(err));
        *applied += !err && a.ran;
    }
    return err;
}
