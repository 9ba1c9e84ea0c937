/*
 * persist.h: the emulator's state file (EMULATOR_STATE_FILE). Everything a restart must not
 * lose (objects and their private data, events and pending deliveries, idempotency keys) is one
 * JSON snapshot {"version": 1, "state", "idempotency", "webhooks"}, written atomically (a
 * temporary file beside it, fsync, rename, mode 0600) before the answer to the request that
 * changed it is sent. Faults, the request log and the webhook delivery settings are test knobs
 * and are not kept. Uses the emulator object (emu.h); dispatch.c and main.c call it.
 */
#ifndef SUBGATE_EMULATOR_PERSIST_H
#define SUBGATE_EMULATOR_PERSIST_H

#include <stddef.h>

#include "base/base.h"
#include "base/err.h"
#include "emu.h"
#include "http/request.h"

#define EMU_STATE_VERSION 1
#define EMU_STATE_MAX     ((size_t)256 * 1024 * 1024) /* a larger file is refused at start */

/*
 * Replaces app's state with the snapshot in path. ERR_NOT_FOUND (app untouched) when there is
 * no such file; ERR_INVALID when it cannot be read, is not JSON, has another version or the
 * wrong shape, with one line in err naming the file. Call before serving.
 */
MUST_CHECK enum err emu_persist_load(struct emu *app, const char *path, char *err, size_t errlen);

/*
 * Writes app's snapshot to app->cfg.state_file when it differs from the one last written (a
 * no-op without a state file). The caller holds app->mu. ERR_INTERNAL with one line in err
 * when the file cannot be written; the state in memory is kept and the next save tries again.
 */
MUST_CHECK enum err emu_persist_save(struct emu *app, char *err, size_t errlen);

/*
 * After a request was handled and before its answer goes out: saves as emu_persist_save does,
 * taking app->mu, and turns the answer into a 500 naming the file when the save fails.
 */
void emu_persist_after_request(struct emu *app, struct response *resp);

#endif /* SUBGATE_EMULATOR_PERSIST_H */
