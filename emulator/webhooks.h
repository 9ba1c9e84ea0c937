/*
 * webhooks.h: the emulator's events and their delivery. Every state change of the emulator
 * emits a Stripe event object here; a delivery thread POSTs each one, signed like Stripe
 * (Stripe-Signature: t=...,v1=...), to the configured endpoint, retrying with backoff, in
 * emission order, or shuffled and duplicated on request.
 */
#ifndef SUBGATE_EMULATOR_WEBHOOKS_H
#define SUBGATE_EMULATOR_WEBHOOKS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "base/err.h"

#define EMU_EVENT_ID_MAX 64

struct emu_webhooks; /* opaque; every function is thread-safe */

enum emu_webhook_order {
    EMU_WEBHOOK_ORDERED,  /* one at a time, in emission order, as Stripe tends to */
    EMU_WEBHOOK_SHUFFLED, /* held until emu_webhooks_flush, then sent in a random order */
};

struct emu_webhook_delivery {
    enum emu_webhook_order order;
    int duplicate_percent; /* 0-100: share of events delivered a second time */
    int64_t retry_base_ms; /* first retry delay, doubling per attempt (Stripe: hours; here ms) */
    int max_attempts;      /* attempts per event before giving up, >= 1 */
    uint64_t seed;         /* shuffling and duplication are reproducible from it */
};

/* Starts the delivery thread. No endpoint yet: events are recorded, not sent. */
struct emu_webhooks *emu_webhooks_new(void);

/* Stops the thread (pending deliveries are dropped) and frees everything. NULL is a no-op. */
void emu_webhooks_free(struct emu_webhooks *w);

/* Sets the endpoint; url NULL or "" stops delivery. secret is a whsec_... string. */
void emu_webhooks_configure(struct emu_webhooks *w, const char *url, const char *secret);

void emu_webhooks_set_delivery(struct emu_webhooks *w, const struct emu_webhook_delivery *d);

/*
 * Records the event `type` about `object` (a Stripe object; deep-copied), with the
 * previous_attributes of an *.updated event (NULL when none), at emulator time `created`,
 * and queues its delivery. Writes the new event id ("evt_...") into id_out.
 */
void emu_webhooks_emit(struct emu_webhooks *w, const char *type, const json_t *object,
                       const json_t *previous, int64_t created, char id_out[EMU_EVENT_ID_MAX]);

/* Releases events held by the shuffled mode into the delivery queue. */
void emu_webhooks_flush(struct emu_webhooks *w);

/* Waits until nothing is queued or being delivered, up to timeout_ms. True when idle. */
bool emu_webhooks_drain(struct emu_webhooks *w, int64_t timeout_ms);

/* The event with this id as Stripe's event object (new reference), or NULL. */
json_t *emu_webhooks_event_json(struct emu_webhooks *w, const char *id);

/* {"object":"list","data":[newest first...],"has_more":...} of recorded events (GET /v1/events). */
json_t *emu_webhooks_list_json(struct emu_webhooks *w, int limit, const char *starting_after);

/* {"delivered":n,"failed":n,"pending":n,"attempts":n,...}: delivery counters for the control API.
 */
json_t *emu_webhooks_status_json(struct emu_webhooks *w);

/* Forgets every event and pending delivery; keeps the endpoint configuration. */
void emu_webhooks_reset(struct emu_webhooks *w);

/*
 * The events and what is left to deliver, for the state file: {"events": [event objects, in
 * emission order], "queue": [{"event": id, "attempts": n}], "held": [...], "delivered": n,
 * "failed": n, "attempts": n}. A new copy.
 */
json_t *emu_webhooks_to_json(struct emu_webhooks *w);

/*
 * Replaces the events and deliveries with a snapshot made by emu_webhooks_to_json; queued
 * deliveries are due at once (and dropped when no endpoint is configured). A snapshot of the
 * wrong shape fails with ERR_INVALID, one line in err, and nothing changed.
 */
MUST_CHECK enum err emu_webhooks_from_json(struct emu_webhooks *w, const json_t *snap, char *err,
                                           size_t errlen);

#endif /* SUBGATE_EMULATOR_WEBHOOKS_H */
