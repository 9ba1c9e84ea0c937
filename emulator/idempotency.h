/*
 * idempotency.h: Stripe's Idempotency-Key semantics for the emulator. The first answer to a key
 * (scoped per API key) is kept; the same key with the same method, path and parameters replays
 * it, with other parameters it is an error. Not thread-safe: callers hold the emulator's mutex.
 */
#ifndef SUBGATE_EMULATOR_IDEMPOTENCY_H
#define SUBGATE_EMULATOR_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "base/base.h"
#include "base/err.h"

#define EMU_IDEM_MAX_KEYS 20000 /* past this, the oldest half is forgotten */

enum emu_idem_result {
    EMU_IDEM_NEW,      /* never seen: run the request, then emu_idem_store */
    EMU_IDEM_REPLAY,   /* seen with the same request: *status and *body are the first answer */
    EMU_IDEM_MISMATCH, /* seen with other parameters */
};

struct emu_idem_request {
    const char *api_key;
    const char *key; /* the Idempotency-Key header */
    const char *method;
    const char *path;
    const char *params; /* the raw form body */
};

struct emu_idem; /* opaque */

struct emu_idem *emu_idem_new(void);
void emu_idem_free(struct emu_idem *m); /* NULL is a no-op */
void emu_idem_reset(struct emu_idem *m);

/* On EMU_IDEM_REPLAY, *body is a new string (free()) and *status the first status. */
enum emu_idem_result emu_idem_lookup(struct emu_idem *m, const struct emu_idem_request *r,
                                     int *status, char **body);

/* Keeps the answer to r (copies everything). */
void emu_idem_store(struct emu_idem *m, const struct emu_idem_request *r, int status,
                    const char *body);

/* The kept answers as JSON, for the state file: {"keys": {...}, "order": [...]} (a new copy). */
json_t *emu_idem_to_json(const struct emu_idem *m);

/*
 * Replaces the kept answers with a snapshot made by emu_idem_to_json. A snapshot of the wrong
 * shape fails with ERR_INVALID, one line in err, and the answers as they were.
 */
MUST_CHECK enum err emu_idem_from_json(struct emu_idem *m, const json_t *snap, char *err,
                                       size_t errlen);

#endif /* SUBGATE_EMULATOR_IDEMPOTENCY_H */
