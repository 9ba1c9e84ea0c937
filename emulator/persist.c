/*
 * persist.c: the state file (see persist.h). Saving compares the new snapshot with the last one
 * written, so a request that changed nothing costs a serialization and no disk write.
 */
#include "persist.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "api.h"
#include "base/buf.h"
#include "base/file.h"
#include "base/log.h"

#define PATH_MAX_LEN (EMU_URL_MAX + 16)

/* ---- loading ---- */

static enum err load_parts(struct emu *app, const json_t *snap, char *err, size_t errlen)
{
    json_t *version = json_object_get(snap, "version");

    if (!json_is_integer(version) || json_integer_value(version) != EMU_STATE_VERSION) {
        snprintf(err, errlen, "unknown version (want %d)", EMU_STATE_VERSION);
        return ERR_INVALID;
    }
    if (emu_state_from_json(app->st, json_object_get(snap, "state"), err, errlen) != ERR_OK ||
        emu_idem_from_json(app->idem, json_object_get(snap, "idempotency"), err, errlen) !=
            ERR_OK ||
        emu_webhooks_from_json(app->wh, json_object_get(snap, "webhooks"), err, errlen) != ERR_OK)
        return ERR_INVALID;
    return ERR_OK;
}

enum err emu_persist_load(struct emu *app, const char *path, char *err, size_t errlen)
{
    struct buf b;
    json_error_t je;
    json_t *snap = NULL;
    char why[256];
    enum err e;

    buf_init(&b, EMU_STATE_MAX);
    e = file_read_all(path, &b, err, errlen);
    if (e == ERR_NOT_FOUND)
        goto out;
    if (e != ERR_OK) {
        e = ERR_INVALID;
        goto out;
    }
    snap = json_loadb(buf_str(&b), b.len, JSON_REJECT_DUPLICATES, &je);
    if (!snap) {
        snprintf(err, errlen, "state file '%s' is not JSON (line %d, column %d): %s", path, je.line,
                 je.column, je.text);
        e = ERR_INVALID;
        goto out;
    }
    e = load_parts(app, snap, why, sizeof(why));
    if (e != ERR_OK)
        snprintf(err, errlen, "state file '%s': %s", path, why);
out:
    json_decref(snap);
    buf_release(&b);
    return e;
}

/* ---- saving ---- */

static char *snapshot_dump(struct emu *app)
{
    json_t *snap = json_pack("{s:i,s:o,s:o,s:o}", "version", EMU_STATE_VERSION, "state",
                             emu_state_to_json(app->st), "idempotency", emu_idem_to_json(app->idem),
                             "webhooks", emu_webhooks_to_json(app->wh));
    char *out = snap ? json_dumps(snap, JSON_COMPACT) : NULL;

    json_decref(snap);
    if (!out)
        abort(); /* json_pack and json_dumps fail only on out-of-memory here */
    return out;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* fsyncs the directory holding path, so that the rename itself survives a crash. */
static bool sync_dir(const char *path)
{
    char dir[PATH_MAX_LEN];
    const char *slash = strrchr(path, '/');
    int fd;
    bool ok;

    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

/* Writes data to path through path.tmp: written, fsynced, renamed over path, mode 0600. */
static enum err write_atomic(const char *path, const char *data, char *err, size_t errlen)
{
    char tmp[PATH_MAX_LEN];
    int fd;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    if (fchmod(fd, 0600) != 0 || !write_all(fd, data, strlen(data)) || !write_all(fd, "\n", 1) ||
        fsync(fd) != 0) {
        close(fd);
        goto fail_unlink;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0)
        goto fail_unlink;
    if (!sync_dir(path))
        goto fail;
    return ERR_OK;
fail_unlink:
    snprintf(err, errlen, "cannot write state file '%s': %s", path, strerror(errno));
    (void)unlink(tmp); /* best effort: a stale temporary file is overwritten next time */
    return ERR_INTERNAL;
fail:
    snprintf(err, errlen, "cannot write state file '%s': %s", path, strerror(errno));
    return ERR_INTERNAL;
}

enum err emu_persist_save(struct emu *app, char *err, size_t errlen)
{
    char *dump;

    if (!app->cfg.state_file[0])
        return ERR_OK;
    dump = snapshot_dump(app);
    if (app->state_saved && strcmp(dump, app->state_saved) == 0) {
        free(dump);
        return ERR_OK;
    }
    if (write_atomic(app->cfg.state_file, dump, err, errlen) != ERR_OK) {
        free(dump);
        return ERR_INTERNAL;
    }
    free(app->state_saved);
    app->state_saved = dump;
    return ERR_OK;
}

void emu_persist_after_request(struct emu *app, struct response *resp)
{
    char err[EMU_URL_MAX + 128];
    enum err e;

    if (!app->cfg.state_file[0])
        return;
    pthread_mutex_lock(&app->mu);
    e = emu_persist_save(app, err, sizeof(err));
    pthread_mutex_unlock(&app->mu);
    if (e == ERR_OK)
        return;
    log_error("%s", err);
    emu_api_error(resp, 500, "api_error", NULL, NULL, err);
}
