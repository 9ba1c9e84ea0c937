/*
 * emu.h: the emulator as one object: its configuration, its state behind one mutex, webhooks,
 * faults, idempotency keys and the log of /v1 requests. The handlers (api.c, control.c,
 * pages.c) use it; it uses only state, webhooks, faults and idempotency, never a handler, and
 * dispatch.c routes requests to the handlers.
 */
#ifndef SUBGATE_EMULATOR_EMU_H
#define SUBGATE_EMULATOR_EMU_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "faults.h"
#include "http/request.h"
#include "idempotency.h"
#include "state.h"
#include "webhooks.h"

#define EMU_URL_MAX    1024
#define EMU_SECRET_MAX 256
#define EMU_REQLOG_MAX 10000 /* /v1 requests remembered for GET /_emulator/requests */

struct emu_config {
    char host[64];
    uint16_t port;
    char secret_key[EMU_SECRET_MAX];
    char public_url[EMU_URL_MAX]; /* base of hosted pages; "" = http://host:port */
    char webhook_url[EMU_URL_MAX];
    char webhook_secret[EMU_SECRET_MAX];
    char premium_price[EMU_ID_MAX];
    char plus_price[EMU_ID_MAX];
    char state_file[EMU_URL_MAX]; /* EMULATOR_STATE_FILE; "" = state lives in memory only */
};

struct emu {
    struct emu_config cfg;
    pthread_mutex_t mu; /* guards st and idem: every state change runs under it */
    struct emu_state *st;
    struct emu_idem *idem;
    struct emu_webhooks *wh;              /* thread-safe on its own */
    struct emu_webhook_delivery delivery; /* the current delivery settings (under mu) */
    struct emu_faults *faults;
    pthread_mutex_t log_mu; /* guards reqlog */
    json_t *reqlog;         /* [{method, path, query, body, status}], oldest first */
    char *state_saved;      /* the snapshot last written to cfg.state_file (under mu), or NULL */
};

/* A new emulator for cfg (copied): prices seeded, webhooks configured, nothing listening. */
struct emu *emu_new(const struct emu_config *cfg);

void emu_free(struct emu *app); /* NULL is a no-op */

/* Empties state, events, idempotency keys, faults and the request log (keeps the prices). */
void emu_reset(struct emu *app);

/* Emits event `type` about obj (copied) with previous_attributes prev (NULL when none). */
void emu_emit(struct emu *app, const char *type, const json_t *obj, const json_t *prev,
              int64_t created);

/* Appends one /v1 request to the request log. */
void emu_reqlog_add(struct emu *app, const struct request *req, const char *query, int status);

#endif /* SUBGATE_EMULATOR_EMU_H */
